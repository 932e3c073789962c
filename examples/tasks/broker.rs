//! The task broker: holds the task queue of the Celery-style task queue,
//! as an rmi object registered in the name server as
//! `example.tasks.broker`. Clients submit tasks to it, workers pull them.
//!
//! ```text
//! rmi-naming                                            # terminal 1 (cargo run -p rmi-naming)
//! cargo run --example task_broker [-- --lease 30]       # terminal 2
//! cargo run --example task_worker -- --name alice       # terminal 3, and as many more as you like
//! cargo run --example task_client                       # terminal 4: add(5, 5) = 10 …
//! ```
//!
//! A task is acknowledged only after it finished (Celery's `acks_late`):
//! `fetch` *leases* the task to a worker, which renews the lease while the
//! task runs and acknowledges it with the result. A lease not renewed for
//! `--lease` seconds (30 by default) runs out, and the task goes back to
//! the front of the queue for another worker: a worker that dies mid-task
//! loses nothing. The price is the usual one: a task may run more than
//! once (when a worker is only slow), so tasks should be idempotent; the
//! first result to arrive wins. Workers and clients wait with long polls,
//! calls the broker answers as soon as there is something, or after a
//! while with nothing.
//!
//! The queue lives in the broker's memory, and finished tasks' results stay
//! there for as long as it runs: a production broker would persist the
//! queue and let results expire.
//!
//! It prints `Ready. Object uri = <uri>` once serving, and a line for each
//! lease that runs out. Stop it with Ctrl-C (it removes its name).

// The broker implements `Broker` and never uses the worker's interface.
#[allow(dead_code)]
mod interface;
#[path = "../common/seconds.rs"]
mod seconds;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use interface::{BROKER_NAME, Broker, BrokerObject, Lease, Outcome, Task};
use tokio::sync::Notify;

/// The broker of the Celery-style task queue: holds the queue as an rmi
/// object registered in the name server, which clients submit tasks to and
/// workers pull them from. A task is leased to one worker at a time, and
/// goes back in the queue if its lease runs out (the worker died). Needs a
/// name server (rmi-naming). Stop it with Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "task_broker")]
struct Cli {
    /// Where the broker's daemon listens, as host:port; port 0 picks a free
    /// one.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:0")]
    bind: String,

    /// How long a worker's lease on a task lasts without renewal, in
    /// seconds; then the task goes to another worker.
    #[arg(long, value_name = "SECONDS", value_parser = seconds::parse, default_value = "30")]
    lease: Duration,

    /// The name the broker registers in the name server.
    #[arg(long, default_value = BROKER_NAME)]
    name: String,
}

/// Where a task is.
#[derive(Debug)]
enum Status {
    /// In the queue.
    Queued,
    /// Leased, under this lease.
    Leased(u64),
    /// Finished.
    Done(Outcome),
}

/// One task and what became of it.
#[derive(Debug)]
struct Entry {
    task: Task,
    status: Status,
    /// How many times it was leased.
    attempts: u32,
    /// Woken when it is done, for the clients waiting on its result.
    done: Arc<Notify>,
}

/// A lease in force.
#[derive(Debug)]
struct ActiveLease {
    task: u64,
    worker: String,
    expires: Instant,
}

/// The queue's state, behind one lock held only for short, non-blocking
/// updates.
#[derive(Debug, Default)]
struct State {
    /// The ids of the queued tasks, next first.
    queue: VecDeque<u64>,
    tasks: HashMap<u64, Entry>,
    leases: HashMap<u64, ActiveLease>,
    next_task: u64,
    next_lease: u64,
}

/// The broker object; clones share the queue (the daemon's and the lease
/// reaper's).
#[derive(Debug, Clone)]
struct Queue {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Woken when a task is queued, for the workers waiting in `fetch`.
    ready: Notify,
    /// How long a lease lasts without renewal.
    lease_timeout: Duration,
}

impl Queue {
    fn new(lease_timeout: Duration) -> Self {
        Queue { shared: Arc::new(Shared { state: Mutex::default(), ready: Notify::new(), lease_timeout }) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole: a poisoned lock is usable.
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leases the next queued task to `worker`, if there is one.
    fn try_lease(&self, worker: &str) -> Option<Lease> {
        let mut state = self.state();
        let state = &mut *state;
        while let Some(id) = state.queue.pop_front() {
            let Some(entry) = state.tasks.get_mut(&id) else { continue };
            if !matches!(entry.status, Status::Queued) {
                continue; // finished by a late acknowledgement meanwhile
            }
            state.next_lease += 1;
            let lease = state.next_lease;
            entry.status = Status::Leased(lease);
            entry.attempts += 1;
            let expires = Instant::now() + self.shared.lease_timeout;
            state.leases.insert(lease, ActiveLease { task: id, worker: worker.to_owned(), expires });
            return Some(Lease {
                task: entry.task.clone(),
                lease,
                timeout_ms: self.shared.lease_timeout.as_millis() as u64,
                attempt: entry.attempts,
            });
        }
        None
    }

    /// Puts the tasks of the leases that ran out back at the front of the
    /// queue.
    fn expire_leases(&self) {
        let now = Instant::now();
        let mut requeued = Vec::new();
        {
            let mut state = self.state();
            let state = &mut *state;
            let expired: Vec<u64> =
                state.leases.iter().filter(|(_, l)| l.expires <= now).map(|(&id, _)| id).collect();
            for lease in expired {
                let Some(active) = state.leases.remove(&lease) else { continue };
                let Some(entry) = state.tasks.get_mut(&active.task) else { continue };
                if matches!(entry.status, Status::Leased(l) if l == lease) {
                    entry.status = Status::Queued;
                    state.queue.push_front(active.task);
                    requeued.push((format!("{}[{}]", entry.task.name, entry.task.id), active.worker));
                }
            }
        }
        for (task, worker) in &requeued {
            println!("Lease of task {task} by {worker} ran out: back in the queue");
        }
        if !requeued.is_empty() {
            self.shared.ready.notify_waiters();
        }
    }
}

impl Broker for Queue {
    fn submit(&self, name: String, args: Vec<i64>) -> u64 {
        let id = {
            let mut state = self.state();
            state.next_task += 1;
            let id = state.next_task;
            let entry = Entry {
                task: Task { id, name, args },
                status: Status::Queued,
                attempts: 0,
                done: Arc::default(),
            };
            state.tasks.insert(id, entry);
            state.queue.push_back(id);
            id
        };
        self.shared.ready.notify_waiters();
        id
    }

    async fn fetch(&self, worker: String, wait_ms: u64) -> Option<Lease> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            // Register for a wake-up *before* looking, so a task queued in
            // between is not missed.
            let ready = self.shared.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(lease) = self.try_lease(&worker) {
                return Some(lease);
            }
            if tokio::time::timeout_at(deadline, ready).await.is_err() {
                return None;
            }
        }
    }

    fn renew(&self, lease: u64) -> bool {
        let timeout = self.shared.lease_timeout;
        match self.state().leases.get_mut(&lease) {
            Some(active) => {
                active.expires = Instant::now() + timeout;
                true
            }
            None => false,
        }
    }

    fn ack(&self, id: u64, lease: u64, worker: String, value: Result<i64, String>) -> bool {
        let mut state = self.state();
        let state = &mut *state;
        state.leases.remove(&lease);
        let Some(entry) = state.tasks.get_mut(&id) else { return false };
        match entry.status {
            // Another attempt finished first: this result is ignored.
            Status::Done(_) => return false,
            // Another worker holds it now (this lease ran out): its lease
            // ends here.
            Status::Leased(current) => {
                state.leases.remove(&current);
            }
            // Queued again after this lease ran out: take it out.
            Status::Queued => state.queue.retain(|&queued| queued != id),
        }
        entry.status = Status::Done(Outcome { value, worker, attempts: entry.attempts });
        entry.done.notify_waiters();
        true
    }

    async fn result(&self, id: u64, wait_ms: u64) -> Result<Option<Outcome>, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            let done = {
                let state = self.state();
                let entry = state.tasks.get(&id).ok_or_else(|| format!("no task {id}"))?;
                if let Status::Done(outcome) = &entry.status {
                    return Ok(Some(outcome.clone()));
                }
                entry.done.clone()
            };
            // Between the look above and this registration, `ack` may have
            // run: look again once registered.
            let notified = done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(Status::Done(outcome)) = self.state().tasks.get(&id).map(|e| &e.status) {
                return Ok(Some(outcome.clone()));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { bind, lease, name } = Cli::parse();
    if lease.is_zero() {
        anyhow::bail!("--lease must be more than 0 seconds");
    }

    let queue = Queue::new(lease);
    let daemon = rmi::Daemon::bind(&bind).await?;
    let uri = daemon.register(BrokerObject(queue.clone()), Some("broker"))?;
    let ns = rmi::locate_ns(None).await.context("the task queue needs a name server (run rmi-naming)")?;
    ns.register(&name, &uri).await?;
    println!("Registered {name} with the name server at {}", ns.uri());
    println!("Ready. Object uri = {uri}");

    // The lease reaper: checks a few times per lease timeout.
    let reaper = queue.clone();
    let period = (lease / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            reaper.expire_leases();
        }
    });

    tokio::select! {
        served = daemon.serve() => served?,
        _ = tokio::signal::ctrl_c() => daemon.shutdown(),
    }
    let _ = ns.remove(&name).await;
    Ok(())
}
