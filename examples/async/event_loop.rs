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
#[path = "../common/flags.rs"]
mod flags;
#[allow(dead_code)]
mod rng;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rng::SplitMix64;
use tokio::sync::mpsc;

const USAGE: &str =
    "usage: event_loop [--end <s>] [--delay <s>] [--a <lo-hi>] [--b <lo-hi>] [--c <lo-hi>] [--seed <n>]
  (defaults: --end 60 --delay 1 --a 0-5 --b 3-7 --c 5-10, all in seconds)";

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
    work: [(Duration, Duration); 3],
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
        let (low, high) = self.work[task as usize];
        tokio::time::sleep(rng.between(low, high)).await;
        if self.time() + self.delay < self.end {
            self.call_later(self.delay, task.next(), rng);
        } else {
            self.stop();
        }
    }
}

/// Parses `low-high` in seconds (`0-5`, `0.1-0.25`).
fn range(flags: &flags::Flags, name: &str, default: (u64, u64)) -> anyhow::Result<(Duration, Duration)> {
    let Some(text) = flags.text(name) else {
        return Ok((Duration::from_secs(default.0), Duration::from_secs(default.1)));
    };
    let parse = |s: &str| s.trim().parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok());
    let (low, high) = text
        .split_once('-')
        .and_then(|(low, high)| Some((parse(low)?, parse(high)?)))
        .filter(|(low, high)| low <= high)
        .with_context(|| format!("{name} {text:?}: expected <low>-<high> in seconds\n{USAGE}"))?;
    Ok((low, high))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let flags = flags::Flags::parse(USAGE, &["--end", "--delay", "--a", "--b", "--c", "--seed"], &[])?;
    let (stop, mut stopped) = mpsc::unbounded_channel();
    let event_loop = Arc::new(EventLoop {
        start: Instant::now(),
        end: flags.seconds("--end", Duration::from_secs(60))?,
        delay: flags.seconds("--delay", Duration::from_secs(1))?,
        work: [range(&flags, "--a", (0, 5))?, range(&flags, "--b", (3, 7))?, range(&flags, "--c", (5, 10))?],
        stop,
    });
    let rng = SplitMix64::new(flags.get("--seed", SplitMix64::clock_seed())?);
    event_loop.call_later(Duration::ZERO, Task::A, rng);
    // run_forever: until a callback stops the loop.
    stopped.recv().await.context("the loop ended without being stopped")?;
    println!("Loop stopped after {:.1} seconds", event_loop.time().as_secs_f64());
    Ok(())
}
