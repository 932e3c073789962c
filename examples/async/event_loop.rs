//! The event loop: three callbacks, task A, B and C, each do some work for
//! a random time and then schedule the next one (A → B → C → A …) a delay
//! later, until the loop's clock reaches an end time; then the loop stops.
//!
//! ```text
//! cargo run --example event_loop                   # the seed's timings: runs about a minute
//! cargo run --example event_loop -- --end 3 --delay 0.2 --a 0-0.5 --b 0.3-0.7 --c 0.5-1
//! task_A called
//! task_B called
//! task_C called
//! task_A called
//! …
//! Loop stopped after 3.1 seconds
//! ```
//!
//! Flags, in seconds: `--end` (60), `--delay` between callbacks (1), and the
//! ranges of each task's work, `--a` (0-5), `--b` (3-7), `--c` (5-10);
//! `--seed` replays the random work times.
//!
//! asyncio's `call_soon` and `call_later` become `tokio::spawn` of a task
//! that sleeps first, `loop.time()` the time since the loop started, and
//! `run_forever` / `stop` a channel that `main` waits on. The seed's
//! callbacks block the loop with `time.sleep` while they "work"; here the
//! work is an async sleep, which would let other tasks run meanwhile.

#[allow(dead_code)]
mod rng;
#[path = "../common/seconds.rs"]
mod seconds;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rng::SplitMix64;
use tokio::sync::mpsc;

/// An event loop of three callbacks, task A, B and C: each works a random
/// time, then schedules the next (A → B → C → A …) a delay later, until the
/// loop's clock passes the end time. All times are in seconds; the defaults
/// are the seed's (a run of about a minute).
#[derive(Debug, Parser)]
#[command(
    name = "event_loop",
    after_help = "Example, in a few seconds: event_loop --end 3 --delay 0.2 --a 0-0.5 --b 0.3-0.7 --c 0.5-1"
)]
struct Cli {
    /// When the callbacks stop scheduling each other, from the loop's start.
    #[arg(long, value_name = "SECONDS", value_parser = seconds::parse, default_value = "60")]
    end: Duration,

    /// How long after a callback the next one runs.
    #[arg(long, value_name = "SECONDS", value_parser = seconds::parse, default_value = "1")]
    delay: Duration,

    /// The range of task A's work time.
    #[arg(long, value_name = "LOW-HIGH", value_parser = work_range, default_value = "0-5")]
    a: WorkRange,

    /// The range of task B's work time.
    #[arg(long, value_name = "LOW-HIGH", value_parser = work_range, default_value = "3-7")]
    b: WorkRange,

    /// The range of task C's work time.
    #[arg(long, value_name = "LOW-HIGH", value_parser = work_range, default_value = "5-10")]
    c: WorkRange,

    /// The seed of the random work times, to replay a run (default: one
    /// from the clock).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

/// How long a task may work: from `low` to `high`.
#[derive(Debug, Clone, Copy)]
struct WorkRange {
    low: Duration,
    high: Duration,
}

/// Parses `low-high` in seconds (`0-5`, `0.1-0.25`).
fn work_range(text: &str) -> Result<WorkRange, String> {
    let (low, high) = text.split_once('-').ok_or_else(|| format!("{text:?} is not <low>-<high>"))?;
    let (low, high) = (seconds::parse(low)?, seconds::parse(high)?);
    if low > high {
        return Err(format!("{text:?} ends before it starts"));
    }
    Ok(WorkRange { low, high })
}

/// The three callbacks.
#[derive(Debug, Clone, Copy)]
enum Task {
    A,
    B,
    C,
}

impl Task {
    /// The task each one schedules.
    fn next(self) -> Task {
        match self {
            Task::A => Task::B,
            Task::B => Task::C,
            Task::C => Task::A,
        }
    }
}

/// The loop's clock and settings, shared by the callbacks.
#[derive(Debug)]
struct EventLoop {
    /// When the loop started: `time()` counts from here.
    start: Instant,
    /// When callbacks stop scheduling each other, from `start`.
    end: Duration,
    /// How long after a callback the next one runs (the seed's 1 s).
    delay: Duration,
    /// The range of each task's work time: A, B, C.
    work: [WorkRange; 3],
    /// `stop()` sends here; `main` waits for it.
    stop: mpsc::UnboundedSender<()>,
}

impl EventLoop {
    /// The loop's clock, as asyncio's `loop.time()`.
    fn time(&self) -> Duration {
        self.start.elapsed()
    }

    /// Runs `task` after `delay`, as asyncio's `call_later` (a zero delay is
    /// `call_soon`). The random generator travels with the chain of calls.
    fn call_later(self: &Arc<Self>, delay: Duration, task: Task, rng: SplitMix64) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            this.run(task, rng).await;
        });
    }

    /// Stops the loop, as asyncio's `loop.stop()`.
    fn stop(&self) {
        // If main is gone, the loop is already stopped.
        let _ = self.stop.send(());
    }

    /// One callback: prints, works a random time, then schedules the next
    /// callback, or stops the loop when the next would start past the end.
    async fn run(self: Arc<Self>, task: Task, mut rng: SplitMix64) {
        println!("task_{task:?} called");
        let WorkRange { low, high } = self.work[task as usize];
        tokio::time::sleep(rng.between(low, high)).await;
        if self.time() + self.delay < self.end {
            self.call_later(self.delay, task.next(), rng);
        } else {
            self.stop();
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (stop, mut stopped) = mpsc::unbounded_channel();
    let event_loop = Arc::new(EventLoop {
        start: Instant::now(),
        end: cli.end,
        delay: cli.delay,
        work: [cli.a, cli.b, cli.c],
        stop,
    });
    let rng = SplitMix64::new(cli.seed.unwrap_or_else(SplitMix64::clock_seed));
    event_loop.call_later(Duration::ZERO, Task::A, rng);
    // run_forever: until a callback stops the loop.
    stopped.recv().await.context("the loop ended without being stopped")?;
    println!("Loop stopped after {:.1} seconds", event_loop.time().as_secs_f64());
    Ok(())
}
