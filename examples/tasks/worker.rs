//! A task worker: pulls tasks from the broker, runs them, and acknowledges
//! each with its result once it finished. Start as many as you like; each
//! registers in the name server as `example.tasks.worker.<name>` (tagged
//! `example.tasks.worker`) with an object that reports its counters.
//!
//! ```text
//! rmi-naming                                          # terminal 1
//! cargo run --example task_broker                     # terminal 2
//! cargo run --example task_worker -- --name alice     # terminal 3
//! cargo run --example task_worker -- --name bob       # terminal 4
//! cargo run --example task_client                     # terminal 5
//! ```
//!
//! It logs as a Celery worker does:
//!
//! ```text
//! Worker alice ready, registered as example.tasks.worker.alice
//! Received task: add[1]
//! Task add[1] succeeded in 0.000021s: 10
//! ```
//!
//! The worker asks for a task with a long poll (the broker answers when it
//! has one, or after a few seconds with none), renews the task's lease a
//! few times per lease timeout while it runs, and acknowledges it with the
//! result only then: killed mid-task, it leaves a lease that runs out, and
//! the broker gives the task to another worker. `--task-time <seconds>`
//! makes every task take that much longer, to watch that happen. Flags:
//! `--name` (default `worker-<pid>`), `--broker <URI>` (default
//! `RMINAME:example.tasks.broker`).

mod app;
// The worker uses the broker's proxy and implements the worker control.
#[allow(dead_code)]
mod interface;
#[path = "../common/seconds.rs"]
mod seconds;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use interface::{
    BROKER_NAME, BrokerProxy, Lease, WORKER_NAME_PREFIX, WORKER_TAG, WorkerControl, WorkerControlObject,
    WorkerStats,
};

/// A worker of the Celery-style task queue: pulls tasks from the broker,
/// runs them, and acknowledges each with its result once it finished,
/// renewing its lease meanwhile. Registers in the name server as
/// example.tasks.worker.<NAME>. Start as many as you like; stop one with
/// Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "task_worker")]
struct Cli {
    /// The worker's name, in its log, its registration and the results
    /// (default: worker-<pid>).
    #[arg(long)]
    name: Option<String>,

    /// The broker's URI.
    #[arg(long, value_name = "URI", default_value_t = format!("RMINAME:{BROKER_NAME}"))]
    broker: String,

    /// Extra time every task takes, in seconds: to kill a worker mid-task and
    /// watch its task go to another.
    #[arg(long, value_name = "SECONDS", value_parser = seconds::parse, default_value = "0")]
    task_time: Duration,
}

/// How long one `fetch` waits for a task before asking again: well under
/// the proxy's call timeout (30 s).
const FETCH_WAIT: Duration = Duration::from_secs(5);

/// How long to wait before trying again when the broker cannot be reached.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The worker's counters, shared with its control object.
#[derive(Debug, Default)]
struct Counters {
    completed: AtomicU64,
    /// The running task's id, or 0.
    running: AtomicU64,
}

/// The control object the worker registers in the name server.
#[derive(Debug)]
struct Control {
    name: String,
    counters: Arc<Counters>,
}

impl WorkerControl for Control {
    fn stats(&self) -> WorkerStats {
        let running = self.counters.running.load(Ordering::Relaxed);
        WorkerStats {
            name: self.name.clone(),
            completed: self.counters.completed.load(Ordering::Relaxed),
            running: (running != 0).then_some(running),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let name = cli.name.unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let task_time = cli.task_time;
    let broker = BrokerProxy::new(cli.broker.as_str())?;

    let counters = Arc::new(Counters::default());
    let daemon = rmi::Daemon::bind("127.0.0.1:0").await?;
    let control = Control { name: name.clone(), counters: counters.clone() };
    let uri = daemon.register(WorkerControlObject(control), Some("worker"))?;
    let registered = format!("{WORKER_NAME_PREFIX}{name}");
    let ns = rmi::locate_ns(None).await.context("the task queue needs a name server (run rmi-naming)")?;
    ns.register_with(&registered, &uri, [WORKER_TAG], false).await?;
    println!("Worker {name} ready, registered as {registered}");

    let serving = daemon.clone();
    tokio::spawn(async move { serving.serve().await });
    tokio::select! {
        () = work(&broker, &name, task_time, &counters) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    daemon.shutdown();
    let _ = ns.remove(&registered).await;
    Ok(())
}

/// Pulls and runs tasks, forever.
async fn work(broker: &BrokerProxy, name: &str, task_time: Duration, counters: &Counters) {
    let wait_ms = FETCH_WAIT.as_millis() as u64;
    loop {
        let lease = match broker.fetch(name.to_owned(), wait_ms).await {
            Ok(Some(lease)) => lease,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("cannot fetch a task from the broker: {e}; retrying in {RETRY_DELAY:?}");
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        counters.running.store(lease.task.id, Ordering::Relaxed);
        run(broker, name, task_time, lease).await;
        counters.running.store(0, Ordering::Relaxed);
        counters.completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs one leased task, renewing the lease meanwhile, and acknowledges it.
async fn run(broker: &BrokerProxy, name: &str, task_time: Duration, lease: Lease) {
    let task = &lease.task;
    let label = format!("{}[{}]", task.name, task.id);
    match lease.attempt {
        1 => println!("Received task: {label}"),
        n => println!("Received task: {label} (attempt {n})"),
    }
    let started = Instant::now();
    let execution = async {
        if !task_time.is_zero() {
            tokio::time::sleep(task_time).await;
        }
        app::run(&task.name, &task.args)
    };
    tokio::pin!(execution);
    let renew_every = Duration::from_millis(lease.timeout_ms / 3).max(Duration::from_millis(1));
    let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
    let value = loop {
        tokio::select! {
            value = &mut execution => break value,
            _ = renewals.tick() => match broker.renew(lease.lease).await {
                Ok(true) => {}
                Ok(false) => eprintln!("the lease of {label} ran out: another worker may run it too"),
                Err(e) => eprintln!("cannot renew the lease of {label}: {e}"),
            },
        }
    };
    let took = started.elapsed().as_secs_f64();
    match &value {
        Ok(v) => println!("Task {label} succeeded in {took:.6}s: {v}"),
        Err(e) => println!("Task {label} raised an error in {took:.6}s: {e}"),
    }
    // The acknowledgement matters: retry it while the broker is away, for
    // as long as the lease would last (then the task runs again anyway).
    let give_up = Instant::now() + Duration::from_millis(lease.timeout_ms);
    loop {
        match broker.ack(task.id, lease.lease, name.to_owned(), value.clone()).await {
            Ok(true) => return,
            Ok(false) => {
                println!("Task {label} was finished by another worker first; result discarded");
                return;
            }
            Err(e) if Instant::now() < give_up => {
                eprintln!("cannot acknowledge {label}: {e}; retrying");
                tokio::time::sleep(RETRY_DELAY.min(Duration::from_millis(lease.timeout_ms))).await;
            }
            Err(e) => {
                eprintln!("cannot acknowledge {label}: {e}; giving up, the broker will hand it out again");
                return;
            }
        }
    }
}
