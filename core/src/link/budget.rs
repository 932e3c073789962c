//! A bound on bytes held for writing, shared by many connections.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Bytes held for writing by many connections together (a daemon's), with
/// the bound they should stay below.
///
/// Writers created with [`LinkOptions::budget`](super::LinkOptions::budget)
/// count what they have queued and not yet written; a server may also count
/// room it sets aside for replies not made yet ([`QueueBudget::try_reserve`]).
/// The count may pass the bound (a message already made is queued whatever
/// the count); what the bound decides is whether more work may start.
#[derive(Debug)]
pub struct QueueBudget {
    used: AtomicUsize,
    limit: usize,
    /// Tasks waiting for room: only then does a release wake anyone (so
    /// that releases cost no lock otherwise).
    waiting: AtomicUsize,
    /// Woken on releases while tasks wait.
    room: Notify,
}

impl QueueBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        QueueBudget { used: AtomicUsize::new(0), limit, waiting: AtomicUsize::new(0), room: Notify::new() }
    }

    /// The bound.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes counted now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether the count is at or past the bound.
    pub fn is_full(&self) -> bool {
        self.used() >= self.limit
    }

    /// Whether `bytes` more would fit under the bound now.
    pub fn has_room_for(&self, bytes: usize) -> bool {
        self.used().saturating_add(bytes) <= self.limit
    }

    /// Counts `bytes` more, whatever the count.
    pub fn add(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_add(bytes, Ordering::AcqRel);
        }
    }

    /// Counts `bytes` more if they fit under the bound; returns whether it
    /// did.
    pub fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Counts `bytes` fewer (added or reserved before), waking those waiting
    /// for room.
    pub fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.used.fetch_sub(bytes, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Waits until `bytes` more would fit under the bound.
    pub async fn wait_room_for(&self, bytes: usize) {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.has_room_for(bytes) {
                return;
            }
            room.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_bound_and_releases_reopen_it() {
        let budget = QueueBudget::new(100);
        assert!(budget.try_reserve(60));
        assert!(!budget.try_reserve(41), "a reservation never passes the bound");
        assert!(budget.try_reserve(40));
        assert!(budget.is_full());
        assert!(!budget.try_reserve(1), "at the bound, none");
        budget.release(60);
        assert_eq!(budget.used(), 40);
        assert!(!budget.is_full());
        budget.add(500);
        assert_eq!(budget.used(), 540, "what is queued is counted whatever the bound");
    }

    #[tokio::test]
    async fn those_waiting_for_room_wake_when_their_bytes_fit() {
        let budget = std::sync::Arc::new(QueueBudget::new(10));
        budget.add(20);
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.wait_room_for(4).await }
        });
        tokio::task::yield_now().await;
        budget.release(5);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "15 counted: no room for 4 more");
        budget.release(9);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }
}
