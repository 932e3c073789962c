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

#[allow(dead_code)]
#[path = "../common/flags.rs"]
mod flags;
// The client names tasks; only workers run them.
#[allow(dead_code)]
mod app;
// The client uses only the broker's proxy.
#[allow(dead_code)]
mod interface;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use interface::{BROKER_NAME, BrokerProxy, Outcome};

const USAGE: &str = "usage: task_client [add <x> <y> | --many <n>] [--broker <URI>] [--timeout <seconds>]
  (defaults: add 5 5, RMINAME:example.tasks.broker, 60)";

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
    let flags = flags::Flags::parse(USAGE, &["--broker", "--timeout", "--many"], &[])?;
    let broker_uri = flags.text("--broker").map_or_else(|| format!("RMINAME:{BROKER_NAME}"), str::to_owned);
    let timeout = flags.seconds("--timeout", Duration::from_secs(60))?;
    let add = TaskFunction { broker: BrokerProxy::new(broker_uri.as_str())?, name: app::ADD };

    if let Some(n) = flags.text("--many") {
        let n: i64 = n.parse().with_context(|| format!("--many {n:?}: not a number\n{USAGE}"))?;
        return many(&add, n, timeout).await;
    }
    let (x, y) = match flags.positional() {
        [] => (5, 5),
        [task, x, y] if task == app::ADD => (
            x.parse().with_context(|| format!("{x:?} is not an integer"))?,
            y.parse().with_context(|| format!("{y:?} is not an integer"))?,
        ),
        _ => bail!("{USAGE}"),
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
