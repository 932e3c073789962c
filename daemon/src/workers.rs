//! A connection's `async` calls run on reusable tasks (workers).
//!
//! A call goes to an idle worker if there is one, or starts a new worker
//! when all are busy, so calls still run concurrently (a slow call holds up
//! nothing, a call back into this daemon finds a worker) without creating a
//! task per call. Workers park when idle, and a few too many idle ones end.
//! (`#[nonblocking]` calls run on the connection's reading task, and
//! synchronous ones on tokio's blocking pool: see `connection`.)

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, Waker};

/// Idle workers kept per connection; more idle ones end. As many as the
/// calls a burst of 64 in flight starts, so that such bursts reuse their
/// workers rather than start tasks for most of their calls.
const MAX_IDLE: usize = 64;

/// The jobs of one connection and its idle workers.
#[derive(Debug)]
pub(crate) struct Pool<J> {
    state: Mutex<State<J>>,
}

#[derive(Debug)]
struct State<J> {
    jobs: VecDeque<J>,
    /// Parked workers, by id, with the waker that resumes them.
    idle: Vec<(usize, Waker)>,
    next_id: usize,
    closed: bool,
}

impl<J> Pool<J> {
    pub(crate) fn new() -> Self {
        Pool {
            state: Mutex::new(State { jobs: VecDeque::new(), idle: Vec::new(), next_id: 0, closed: false }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J>> {
        // Every change leaves the state whole; a poisoned lock is usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands `job` to an idle worker, or gives it back when none is idle
    /// (the caller then starts a worker with it).
    pub(crate) fn offer(&self, job: J) -> Option<J> {
        let mut state = self.lock();
        match state.idle.pop() {
            Some((_, waker)) => {
                state.jobs.push_back(job);
                drop(state);
                waker.wake();
                None
            }
            None => Some(job),
        }
    }

    /// A new worker's id.
    pub(crate) fn enlist(&self) -> usize {
        let mut state = self.lock();
        state.next_id += 1;
        state.next_id
    }

    /// The next job for worker `id`, parking while there is none; `None`
    /// when the connection closed or enough workers are idle already.
    pub(crate) async fn next(&self, id: usize) -> Option<J> {
        poll_fn(|cx| {
            let mut state = self.lock();
            if let Some(job) = state.jobs.pop_front() {
                state.idle.retain(|(w, _)| *w != id);
                return Poll::Ready(Some(job));
            }
            if state.closed {
                return Poll::Ready(None);
            }
            let crowded = state.idle.len() >= MAX_IDLE;
            match state.idle.iter_mut().find(|(w, _)| *w == id) {
                Some((_, waker)) => waker.clone_from(cx.waker()),
                None if crowded => return Poll::Ready(None),
                None => state.idle.push((id, cx.waker().clone())),
            }
            Poll::Pending
        })
        .await
    }

    /// Ends the workers once the jobs queued are done.
    pub(crate) fn close(&self) {
        let idle = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        for (_, waker) in idle {
            waker.wake();
        }
    }
}
