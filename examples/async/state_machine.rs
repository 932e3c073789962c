//! A finite-state machine made of coroutines: states S0 (start) to S4
//! (end), each an `async fn` that draws a random 0 or 1 and awaits the
//! state it leads to. Each returns a line naming itself and the value it
//! was entered with; its caller puts its own before it, so the start state
//! ends up printing the whole path.
//!
//! ```text
//! cargo run --example state_machine [-- --seed 129 --step 1]
//! Start State called
//! ...evaluating...
//! ...evaluating...
//! ...evaluating...
//! ...evaluating...
//! ...stop computation...
//! Resume of the Transition:
//! Start State calling State 1 with transition value = 1
//! State 1 calling State 2 with transition value = 1
//! State 2 calling State 1 with transition value = 0
//! State 1 calling State 3 with transition value = 0
//! State 3 calling End State with transition value = 1
//! ```
//!
//! The transitions: S0: 0→S2, 1→S1. S1: 0→S3, 1→S2. S2: 0→S1, 1→S3.
//! S3: 0→S1, 1→S4 (end). Each state waits `--step` seconds (1, as the
//! seed) before it moves on; `--seed` picks the random draws (a SplitMix64
//! generator, `rng.rs`; each draw is the top bit of the next number), so a
//! run can be replayed (seed 129 takes the path of the seed's example
//! above). The states call each other in a cycle, so each call is boxed
//! (`Box::pin`): an `async fn` that awaits itself, even through others,
//! would otherwise be a future of infinite size.

#[allow(dead_code)]
mod rng;
#[path = "../common/seconds.rs"]
mod seconds;

use std::time::Duration;

use clap::Parser;
use rng::SplitMix64;

/// A finite-state machine of coroutines: states S0 to S4 call each other on
/// random 0/1 transitions until the end state, then the start state prints
/// the path taken.
#[derive(Debug, Parser)]
#[command(name = "state_machine")]
struct Cli {
    /// The seed of the random transitions, to replay a run (default: one
    /// from the clock, printed on stderr).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// How long each state waits before it moves on, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = seconds::parse, default_value = "1")]
    step: Duration,
}

/// What the states share: the random draws and the time each state takes.
#[derive(Debug)]
struct Machine {
    rng: SplitMix64,
    step: Duration,
}

impl Machine {
    /// Draws the next transition value, then waits the state's time.
    async fn transition(&mut self) -> u8 {
        let value = self.rng.bit();
        tokio::time::sleep(self.step).await;
        value
    }
}

/// S0: starts the machine and prints the path it took.
async fn start_state(machine: &mut Machine) {
    println!("Start State called");
    let value = machine.transition().await;
    let result = if value == 0 {
        Box::pin(state2(machine, value)).await
    } else {
        Box::pin(state1(machine, value)).await
    };
    print!("Resume of the Transition:\nStart State calling {result}");
}

/// S1: 0 leads to S3, 1 to S2.
async fn state1(machine: &mut Machine, entered_with: u8) -> String {
    let value = machine.transition().await;
    println!("...evaluating...");
    let result = if value == 0 {
        Box::pin(state3(machine, value)).await
    } else {
        Box::pin(state2(machine, value)).await
    };
    format!("State 1 with transition value = {entered_with}\nState 1 calling {result}")
}

/// S2: 0 leads to S1, 1 to S3.
async fn state2(machine: &mut Machine, entered_with: u8) -> String {
    let value = machine.transition().await;
    println!("...evaluating...");
    let result = if value == 0 {
        Box::pin(state1(machine, value)).await
    } else {
        Box::pin(state3(machine, value)).await
    };
    format!("State 2 with transition value = {entered_with}\nState 2 calling {result}")
}

/// S3: 0 leads to S1, 1 to the end.
async fn state3(machine: &mut Machine, entered_with: u8) -> String {
    let value = machine.transition().await;
    println!("...evaluating...");
    let result = if value == 0 {
        Box::pin(state1(machine, value)).await
    } else {
        Box::pin(end_state(machine, value)).await
    };
    format!("State 3 with transition value = {entered_with}\nState 3 calling {result}")
}

/// S4: the end.
async fn end_state(_machine: &mut Machine, entered_with: u8) -> String {
    println!("...stop computation...");
    format!("End State with transition value = {entered_with}\n")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(SplitMix64::clock_seed);
    let step = cli.step;
    if cli.seed.is_none() {
        eprintln!("(seed {seed}: --seed {seed} replays this run)");
    }
    start_state(&mut Machine { rng: SplitMix64::new(seed), step }).await;
    Ok(())
}
