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
    /// Woken when the count falls below the bound.
    room: Notify,
}

impl QueueBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        QueueBudget { used: AtomicUsize::new(0), limit, room: Notify::new() }
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

    /// Counts `bytes` more, whatever the count.
    pub fn add(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_add(bytes, Ordering::AcqRel);
        }
    }

    /// Counts `bytes` more if the count is below the bound now; returns
    /// whether it did.
    pub fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.limit).then(|| used.saturating_add(bytes))
            })
            .is_ok()
    }

    /// Counts `bytes` fewer (added or reserved before), waking those waiting
    /// for room if the count falls below the bound.
    pub fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        if before >= self.limit && before - bytes < self.limit {
            self.room.notify_waiters();
        }
    }

    /// Waits until the count is below the bound.
    pub async fn wait_room(&self) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if !self.is_full() {
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
        assert!(budget.try_reserve(60), "below the bound, a reservation passes it");
        assert!(!budget.try_reserve(1), "at or past the bound, none");
        assert!(budget.is_full());
        budget.release(60);
        assert_eq!(budget.used(), 60);
        assert!(budget.try_reserve(1));
        budget.add(500);
        assert_eq!(budget.used(), 561);
    }

    #[tokio::test]
    async fn those_waiting_for_room_wake_when_the_count_falls_below_the_bound() {
        let budget = std::sync::Arc::new(QueueBudget::new(10));
        budget.add(20);
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.wait_room().await }
        });
        tokio::task::yield_now().await;
        budget.release(5);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "still at the bound");
        budget.release(10);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }
}
