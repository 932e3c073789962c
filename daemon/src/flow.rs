//! Flow control for one connection: when the daemon may start another of
//! its calls, and the calls read but not started yet.
//!
//! A call's reply is memory the daemon holds until the client reads it. So
//! a connection starts a call only while what it holds for its client is
//! below its bound: the bytes queued and not yet written, plus, for every
//! call running, room for a reply as large as its recent ones (the
//! *estimate*). The daemon's connections together also stay below the
//! daemon's bound: a call reserves its estimate there, and the queued bytes
//! of every connection are counted there too (by its writer). A connection
//! holding nothing at all may always start one call, so that clients that
//! read their replies are served while others' replies wait.
//!
//! A fresh connection knows nothing of its replies' sizes yet: until its
//! first reply sets the estimate, each running call counts for a quarter
//! of a megabyte, so that a burst of calls that each make a large reply at
//! once makes a few (16, against the default bound) before the first shows
//! how large they are, while as many slow calls (long polls, say) still run
//! side by side.
//!
//! Calls that may not start yet wait in the connection's [`Held`] queue, in
//! order, while the reader goes on reading: cancels still act at once (and,
//! later, replies to calls the daemon makes). Only when the held calls reach
//! their own bound does the reader stop reading, and TCP carries the
//! backpressure to the client.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use rmi_core::Call;
use rmi_core::link::{MessageWriter, QueueBudget};
use tokio::sync::Notify;

/// The estimate before a connection's first reply sets it (see the module
/// documentation).
const FIRST_ESTIMATE: usize = 256 * 1024;
/// The smallest estimate: small replies still count for something.
const MIN_ESTIMATE: usize = 1024;
/// A reply smaller than the estimate lowers it by this fraction of it: the
/// estimate follows a large reply at once and forgets it over a few dozen
/// small ones.
const DECAY: usize = 8;
/// Bytes of calls a connection may hold, read but not started (its
/// replies have no room yet, or it is at its limit of calls); past them the
/// daemon stops reading from it, and TCP carries the backpressure.
pub const HELD_LIMIT: usize = 1024 * 1024;
/// What a held call costs beyond its arguments (its id, names, deadline).
const HELD_OVERHEAD: usize = 96;

/// The bounds and counts that decide whether a connection may start a call.
#[derive(Debug)]
pub(crate) struct Flow {
    max_calls: usize,
    max_queued: usize,
    budget: Arc<QueueBudget>,
    in_flight: AtomicUsize,
    estimate: AtomicUsize,
    /// Until the first reply: the estimate is a guess, and the first reply
    /// replaces it.
    guessing: AtomicBool,
    /// Set while the reader waits for room.
    waiting: AtomicBool,
    /// Woken when a call ends while the reader waits.
    finished: Notify,
}

/// A started call's claim on the daemon's budget, given back when it ends.
#[derive(Debug)]
#[must_use = "a ticket is given back with Flow::finish"]
pub(crate) struct Ticket {
    reserved: usize,
}

impl Flow {
    pub(crate) fn new(max_calls: usize, max_queued: usize, budget: Arc<QueueBudget>) -> Self {
        Flow {
            max_calls,
            max_queued,
            budget,
            in_flight: AtomicUsize::new(0),
            estimate: AtomicUsize::new(FIRST_ESTIMATE),
            guessing: AtomicBool::new(true),
            waiting: AtomicBool::new(false),
            finished: Notify::new(),
        }
    }

    /// The room set aside for a running call's reply.
    fn estimate(&self) -> usize {
        self.estimate.load(Ordering::Relaxed)
    }

    /// Calls started and not finished.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Starts a call if the connection (whose writer holds `queued` bytes)
    /// and the daemon have room for its reply.
    pub(crate) fn try_start(&self, queued: usize) -> Option<Ticket> {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        if in_flight >= self.max_calls {
            return None;
        }
        let estimate = self.estimate();
        let held = queued.saturating_add(in_flight.saturating_mul(estimate));
        let reserved = if held == 0 {
            // Holding nothing: always one call, outside the daemon's budget.
            0
        } else if held >= self.max_queued || !self.budget.try_reserve(estimate) {
            return None;
        } else {
            estimate
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Ticket { reserved })
    }

    /// Ends a call whose reply (if it sent one) took `reply` bytes; returns
    /// how many calls were in flight before.
    pub(crate) fn finish(&self, ticket: Ticket, reply: Option<usize>) -> usize {
        self.budget.release(ticket.reserved);
        if let Some(size) = reply {
            let guessed =
                self.guessing.load(Ordering::Relaxed) && self.guessing.swap(false, Ordering::Relaxed);
            let estimate = self.estimate.load(Ordering::Relaxed);
            let next =
                if guessed || size >= estimate { size } else { (estimate - estimate / DECAY).max(size) };
            let next = next.max(MIN_ESTIMATE);
            if next != estimate {
                self.estimate.store(next, Ordering::Relaxed);
            }
        }
        let before = self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            self.finished.notify_one();
        }
        before
    }

    /// Waits until a call may start on the connection written by `writer`
    /// (or may have become able to: the caller checks again).
    pub(crate) async fn room(&self, writer: &MessageWriter) {
        let finished = self.finished.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        self.waiting.store(true, Ordering::SeqCst);
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        let reserved = in_flight.saturating_mul(self.estimate());
        if in_flight >= self.max_calls || reserved >= self.max_queued {
            // Only a call ending makes room.
            finished.await;
        } else {
            // Room comes when the output falls to where the running calls'
            // replies fit under the bound (or to nothing, which frees the
            // connection from the daemon's budget), when a call ends, or
            // when the daemon's budget has room again.
            let target = self.max_queued - reserved - 1;
            let queued = writer.queued();
            let estimate = self.estimate();
            let budget_blocks = !self.budget.has_room_for(estimate) && queued.saturating_add(reserved) > 0;
            let below = if queued > target { target } else { 0 };
            if queued > target || budget_blocks {
                tokio::select! {
                    () = &mut finished => {}
                    () = writer.wait_below(below), if queued > below => {}
                    () = self.budget.wait_room_for(estimate), if budget_blocks => {}
                }
            }
        }
        self.waiting.store(false, Ordering::SeqCst);
    }
}

/// A call read and not started yet.
#[derive(Debug)]
pub(crate) struct HeldCall {
    pub(crate) id: u64,
    pub(crate) call: Call,
    pub(crate) deadline: Option<Instant>,
}

impl HeldCall {
    fn size(&self) -> usize {
        self.call.args.wire_len() + self.call.object.len() + self.call.method.len() + HELD_OVERHEAD
    }
}

/// The calls a connection read and has not started, in order, within
/// [`HELD_LIMIT`] bytes (one call may pass it, so that any call fits).
#[derive(Debug, Default)]
pub(crate) struct Held {
    calls: VecDeque<HeldCall>,
    bytes: usize,
}

impl Held {
    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Whether the reader may read another request.
    pub(crate) fn has_room(&self) -> bool {
        self.bytes < HELD_LIMIT
    }

    /// Whether the reader may read on to find the replies to the daemon's
    /// own calls (callbacks), behind the client's calls: within four times
    /// the held bound, so that a callback is not stuck behind calls held
    /// for room (a client that floods past that waits for its deadline).
    pub(crate) fn has_room_for_replies(&self) -> bool {
        self.bytes < 4 * HELD_LIMIT
    }

    pub(crate) fn push(&mut self, call: HeldCall) {
        self.bytes += call.size();
        self.calls.push_back(call);
    }

    pub(crate) fn pop(&mut self) -> Option<HeldCall> {
        let call = self.calls.pop_front()?;
        self.bytes -= call.size();
        Some(call)
    }

    /// Drops the held call `id` (its caller gave up); whether it was held.
    pub(crate) fn cancel(&mut self, id: u64) -> bool {
        let Some(at) = self.calls.iter().position(|c| c.id == id) else { return false };
        if let Some(call) = self.calls.remove(at) {
            self.bytes -= call.size();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmi_core::Encoded;

    fn reply(len: usize) -> usize {
        len
    }

    #[test]
    fn an_idle_connection_always_starts_one_call_and_large_replies_bound_the_rest() {
        let budget = Arc::new(QueueBudget::new(64 << 20));
        let flow = Flow::new(1024, 4 << 20, budget.clone());
        let first = flow.try_start(0).unwrap();
        assert_eq!(first.reserved, 0, "an idle connection's call is outside the budget");
        // Before any reply, the first estimate bounds the burst.
        let mut tickets = vec![first];
        while let Some(t) = flow.try_start(0) {
            tickets.push(t);
        }
        assert_eq!(tickets.len(), (4 << 20) / FIRST_ESTIMATE);
        for t in tickets {
            flow.finish(t, Some(reply(1 << 20)));
        }
        assert_eq!(budget.used(), 0, "every reservation was given back");
        // A 1 MiB reply set the estimate.
        assert_eq!(flow.estimate.load(Ordering::Relaxed), 1 << 20);
        let mut tickets = Vec::new();
        while let Some(t) = flow.try_start(0) {
            tickets.push(t);
        }
        assert_eq!(tickets.len(), 4, "1 MiB replies: 4 fit in 4 MiB (the first outside the budget)");
        assert_eq!(budget.used(), 3 << 20);
        for t in tickets {
            flow.finish(t, Some(reply(1 << 20)));
        }
        // Queued bytes count too.
        assert!(flow.try_start(4 << 20).is_none());
    }

    #[test]
    fn the_first_reply_replaces_the_guess() {
        let flow = Flow::new(1024, 4 << 20, Arc::new(QueueBudget::new(64 << 20)));
        let t = flow.try_start(0).unwrap();
        flow.finish(t, Some(reply(10)));
        assert_eq!(flow.estimate.load(Ordering::Relaxed), MIN_ESTIMATE, "set, not decayed from the guess");
        let t = flow.try_start(0).unwrap();
        flow.finish(t, Some(reply(100_000)));
        assert_eq!(flow.estimate.load(Ordering::Relaxed), 100_000, "a larger reply raises it at once");
        let t = flow.try_start(0).unwrap();
        flow.finish(t, Some(reply(10)));
        assert_eq!(
            flow.estimate.load(Ordering::Relaxed),
            100_000 - 100_000 / DECAY,
            "a smaller one lowers it by a step"
        );
    }

    #[test]
    fn small_replies_lower_the_estimate_to_its_floor() {
        let flow = Flow::new(1024, 4 << 20, Arc::new(QueueBudget::new(64 << 20)));
        for _ in 0..200 {
            let t = flow.try_start(0).unwrap();
            flow.finish(t, Some(reply(8)));
        }
        assert_eq!(flow.estimate.load(Ordering::Relaxed), MIN_ESTIMATE);
        let tickets: Vec<_> = (0..1024).map_while(|_| flow.try_start(0)).collect();
        assert_eq!(tickets.len(), 1024, "small replies: the call limit is what binds");
        assert!(flow.try_start(0).is_none());
        for t in tickets {
            flow.finish(t, None);
        }
    }

    #[test]
    fn the_daemons_budget_stops_connections_that_hold_something() {
        let budget = Arc::new(QueueBudget::new(1 << 20));
        let flow = Flow::new(1024, 4 << 20, budget.clone());
        let first = flow.try_start(0).expect("an idle connection still starts a call");
        flow.finish(first, Some(reply(64 << 10)));
        budget.add(1 << 20);
        let idle = flow.try_start(0).expect("an idle connection still starts a call");
        assert!(flow.try_start(0).is_none(), "one holding something waits for the daemon's room");
        budget.release(64 << 10);
        let more = flow.try_start(0).expect("room for one reply again");
        assert!(flow.try_start(0).is_none(), "and only for one");
        flow.finish(idle, None);
        flow.finish(more, None);
        assert_eq!(budget.used(), (1 << 20) - (64 << 10));
    }

    #[test]
    fn held_calls_keep_their_order_and_their_bound() {
        let mut held = Held::default();
        let call = |id| HeldCall {
            id,
            call: Call::new("o", "m", Encoded::encode(&vec![0u8; 1000]).unwrap()),
            deadline: None,
        };
        let mut id = 0;
        while held.has_room() {
            held.push(call(id));
            id += 1;
        }
        assert!(id > 100 && held.bytes >= HELD_LIMIT);
        assert!(held.cancel(5));
        assert!(!held.cancel(5));
        assert!(held.has_room() || held.bytes >= HELD_LIMIT);
        let order: Vec<u64> = std::iter::from_fn(|| held.pop().map(|c| c.id)).collect();
        assert_eq!(order.len() as u64, id - 1);
        assert!(order.windows(2).all(|w| w[0] < w[1]) && !order.contains(&5));
        assert_eq!(held.bytes, 0);
    }
}
