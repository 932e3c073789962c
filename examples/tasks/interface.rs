//! The task queue's remote interfaces and messages, shared by the broker,
//! its workers and its clients.

use serde::{Deserialize, Serialize};

/// The name the broker registers in the name server.
pub(crate) const BROKER_NAME: &str = "example.tasks.broker";

/// What each worker's name in the name server starts with; the worker's
/// own name follows.
pub(crate) const WORKER_NAME_PREFIX: &str = "example.tasks.worker.";

/// The metadata tag every worker registers with, to find them all with a
/// yellow-pages lookup (`rmi-naming yplookup --any example.tasks.worker`).
pub(crate) const WORKER_TAG: &str = "example.tasks.worker";

/// A task: what to run, with which arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Task {
    /// The broker's number for it.
    pub(crate) id: u64,
    /// Which task function (`add`).
    pub(crate) name: String,
    /// Its arguments.
    pub(crate) args: Vec<i64>,
}

/// A task handed to one worker, which owns it until it acknowledges it or
/// stops renewing the lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Lease {
    /// The task.
    pub(crate) task: Task,
    /// This lease's number: renew it with [`Broker::renew`].
    pub(crate) lease: u64,
    /// How long the lease lasts without a renewal, in milliseconds.
    pub(crate) timeout_ms: u64,
    /// How many times the task was handed out, this time included: more
    /// than 1 when an earlier worker died or gave up.
    pub(crate) attempt: u32,
}

/// A finished task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Outcome {
    /// Its value, or why it failed.
    pub(crate) value: Result<i64, String>,
    /// The worker that ran it.
    pub(crate) worker: String,
    /// How many times it was handed to a worker: more than 1 when an
    /// earlier worker died or was too slow to renew its lease.
    pub(crate) attempts: u32,
}

/// The broker: a task queue with leases, and the results of finished
/// tasks.
#[rmi::expose]
pub(crate) trait Broker {
    /// Queues the task `name(args)`; returns its id.
    fn submit(&self, name: String, args: Vec<i64>) -> u64;

    /// Long poll: leases the next queued task to `worker`, waiting up to
    /// `wait_ms` milliseconds for one; `None` when none came.
    async fn fetch(&self, worker: String, wait_ms: u64) -> Option<Lease>;

    /// Extends a lease by its timeout; `false` when it had already run out
    /// (the task was queued again, maybe given to another worker).
    fn renew(&self, lease: u64) -> bool;

    /// Acknowledges task `id` as finished with `value`, under `lease`.
    /// Returns `false` when another attempt finished it first (the result is
    /// then ignored).
    fn ack(&self, id: u64, lease: u64, worker: String, value: Result<i64, String>) -> bool;

    /// Long poll: the outcome of task `id`, waiting up to `wait_ms`
    /// milliseconds for it; `None` when it is not finished yet.
    ///
    /// # Errors
    ///
    /// An id the broker never gave out.
    async fn result(&self, id: u64, wait_ms: u64) -> Result<Option<Outcome>, String>;
}

/// What a worker says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerStats {
    /// Its name.
    pub(crate) name: String,
    /// How many tasks it finished.
    pub(crate) completed: u64,
    /// The task it is running, if any.
    pub(crate) running: Option<u64>,
}

/// The object each worker hosts and registers in the name server, to be
/// inspected (as `celery inspect`).
#[rmi::expose]
pub(crate) trait WorkerControl {
    /// The worker's counters.
    fn stats(&self) -> WorkerStats;
}
