//! The task client: submits `add(5, 5)` with a Celery-style `delay`, which
//! returns a result handle at once, then waits on the handle for the
//! result.
//!
//! ```text
//! rmi-naming                                  # terminal 1
//! cargo run --example task_broker             # terminal 2
//! cargo run --example task_worker             # terminal 3 (and more)
//! cargo run --example task_client             # terminal 4
//! Sent add(5, 5) as task add[1]
//! add(5, 5) = 10 (task add[1], run by worker-4242, attempts 1)
//! ```
//!
//! `task_client add <x> <y>` sends other numbers; `task_client --many <n>`
//! sends `add(i, i)` for i in 0..n at once, then collects every result,
//! one line each, and prints how many tasks each worker ran. Flags:
//! `--broker <URI>` (default `RMINAME:example.tasks.broker`), `--timeout
//! <seconds>` for each result (default 60).

// The client names tasks; only workers run them.
#[allow(dead_code)]
mod app;
// The client uses only the broker's proxy.
#[allow(dead_code)]
mod interface;
#[path = "../common/seconds.rs"]
mod seconds;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use interface::{BROKER_NAME, BrokerProxy, Outcome};

/// Queues add(5, 5) on the Celery-style task queue with delay, which returns
/// a result handle at once, then waits on the handle for the result. Needs
/// the broker and a worker running.
#[derive(Debug, Parser)]
#[command(name = "task_client", after_help = "Examples: task_client add -7 3; task_client --many 1000")]
struct Cli {
    /// The task to queue (default: add 5 5).
    #[arg(value_enum, requires_all = ["x", "y"], conflicts_with = "many")]
    task: Option<TaskName>,

    /// The task's first argument.
    #[arg(allow_negative_numbers = true)]
    x: Option<i64>,

    /// The task's second argument.
    #[arg(allow_negative_numbers = true)]
    y: Option<i64>,

    /// Queue add(i, i) for i in 0..N at once instead, then collect every
    /// result and say how many tasks each worker ran.
    #[arg(long, value_name = "N")]
    many: Option<i64>,

    /// The broker's URI.
    #[arg(long, value_name = "URI", default_value_t = format!("RMINAME:{BROKER_NAME}"))]
    broker: String,

    /// How long to wait for each result, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = seconds::parse, default_value = "60")]
    timeout: Duration,
}

/// The tasks the client can queue (`app.rs` has them).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum TaskName {
    // add(x, y) = x + y (no doc comment: clap would list it as a long help).
    Add,
}

/// How long one long poll for a result waits: well under the proxy's call
/// timeout (30 s).
const RESULT_POLL: Duration = Duration::from_secs(5);

/// A task the client can queue by name: the role of a Celery task function,
/// whose `add.delay(5, 5)` becomes `add.delay(vec![5, 5])`.
#[derive(Debug)]
struct TaskFunction {
    broker: BrokerProxy,
    name: &'static str,
}

impl TaskFunction {
    /// Queues the task with `args` and returns a handle on its result at
    /// once, as Celery's `delay`.
    async fn delay(&self, args: Vec<i64>) -> anyhow::Result<AsyncResult> {
        let id = self.broker.submit(self.name.to_owned(), args).await.context("submitting")?;
        Ok(AsyncResult { broker: self.broker.clone(), id, label: format!("{}[{id}]", self.name) })
    }
}

/// A handle on the result of a queued task, as Celery's `AsyncResult`.
#[derive(Debug)]
struct AsyncResult {
    broker: BrokerProxy,
    id: u64,
    /// `add[7]`.
    label: String,
}

impl AsyncResult {
    /// Waits up to `timeout` for the task to finish; returns its outcome.
    async fn get(&self, timeout: Duration) -> anyhow::Result<Outcome> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("task {} did not finish within {timeout:?}", self.label);
            }
            let wait = left.min(RESULT_POLL).as_millis() as u64;
            let outcome = self.broker.result(self.id, wait).await.context("asking for the result")?;
            if let Some(outcome) = outcome {
                return Ok(outcome);
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let timeout = cli.timeout;
    let add = TaskFunction { broker: BrokerProxy::new(cli.broker.as_str())?, name: app::ADD };

    if let Some(n) = cli.many {
        return many(&add, n, timeout).await;
    }
    // clap requires both arguments with the task; add is the only task.
    let (x, y) = match (cli.task, cli.x, cli.y) {
        (Some(TaskName::Add), Some(x), Some(y)) => (x, y),
        _ => (5, 5),
    };
    let result = add.delay(vec![x, y]).await?;
    println!("Sent add({x}, {y}) as task {}", result.label);
    let outcome = result.get(timeout).await?;
    let value = outcome.value.map_err(|e| anyhow::anyhow!("task {} failed: {e}", result.label))?;
    println!(
        "add({x}, {y}) = {value} (task {}, run by {}, attempts {})",
        result.label, outcome.worker, outcome.attempts
    );
    Ok(())
}

/// Sends `add(i, i)` for i in 0..n, then waits for every result.
async fn many(add: &TaskFunction, n: i64, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..n {
        handles.push((i, add.delay(vec![i, i]).await?));
    }
    println!("Sent {n} tasks in {:.3} s", started.elapsed().as_secs_f64());
    let mut by_worker = BTreeMap::<String, u64>::new();
    for (i, handle) in &handles {
        let outcome = handle.get(timeout).await?;
        let value = outcome.value.map_err(|e| anyhow::anyhow!("task {} failed: {e}", handle.label))?;
        println!("add({i}, {i}) = {value} (task {}, run by {})", handle.label, outcome.worker);
        *by_worker.entry(outcome.worker).or_default() += 1;
    }
    let spread: Vec<String> = by_worker.iter().map(|(worker, count)| format!("{worker}={count}")).collect();
    println!(
        "{n} results in {:.3} s; tasks per worker: {}",
        started.elapsed().as_secs_f64(),
        spread.join(" ")
    );
    Ok(())
}
