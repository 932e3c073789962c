//! Alarms for deadlines that almost never pass: a call's timeout, a
//! connection's idle time.
//!
//! A tokio timer per call costs a timer-wheel insertion and removal on the
//! call path, and every timer in the wheel makes each park of the runtime
//! read the clock and search the wheel again. These deadlines are met by
//! nearly every call, so rmi sets them on an [`Alarm`] instead: a deadline
//! no earlier than the one the alarm is set for costs a compare; an earlier
//! one moves the alarm (rarely: most deadlines are a fixed time after now,
//! so they only grow). One thread per process, asleep until the earliest
//! alarm, rings them; what an alarm rings ([`Ring`]) then looks at its own
//! deadlines and sets the alarm again for the next.
//!
//! An alarm rings at its time or a little after (the thread's wake-up), and
//! may ring when nothing is due (a deadline it was set for was met): what it
//! rings checks the time itself.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// What an alarm rings.
pub trait Ring: Send + Sync {
    /// The alarm's time came: called on the alarm thread, so it must not
    /// block for long.
    fn ring(&self);
}

/// Not set: the time an unset alarm holds.
const UNSET: u64 = u64::MAX;

/// One owner's alarm (a connection's, say); see the module documentation.
pub struct Alarm {
    /// When it rings, in nanoseconds from the clock's epoch ([`UNSET`]: not
    /// set).
    at: Arc<AtomicU64>,
    target: Weak<dyn Ring>,
}

impl std::fmt::Debug for Alarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.at.load(Ordering::Relaxed);
        f.debug_struct("Alarm").field("set", &(at != UNSET)).finish()
    }
}

impl Alarm {
    /// An alarm that rings `target` (while it lives).
    pub fn new(target: Weak<dyn Ring>) -> Self {
        Alarm { at: Arc::new(AtomicU64::new(UNSET)), target }
    }

    /// Makes sure the alarm rings at `deadline` or earlier.
    #[inline]
    pub fn ring_by(&self, deadline: Instant) {
        self.ring_by_ticks(ticks(deadline));
    }

    /// As [`Alarm::ring_by`], the deadline in [`ticks`].
    #[inline]
    pub fn ring_by_ticks(&self, at: u64) {
        let mut current = self.at.load(Ordering::Acquire);
        loop {
            if current <= at {
                return;
            }
            match self.at.compare_exchange_weak(current, at, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        Clock::get().schedule(at, self.at.clone(), self.target.clone());
    }
}

/// `at` as the alarm clock counts: nanoseconds since it started, a number
/// cheaper to store (in an atomic), add to and compare than an `Instant`.
/// Times before the clock started count as 0, and far ones saturate.
#[inline]
pub fn ticks(at: Instant) -> u64 {
    Clock::get().nanos(at)
}

/// Of `deadlines` (an id and its deadline in [`ticks`], if it has one),
/// the ids due at `now`, and the earliest deadline still to come: what an
/// alarm's owner times out when rung, and when to set the alarm next.
pub fn due(deadlines: impl Iterator<Item = (u64, Option<u64>)>, now: u64) -> (Vec<u64>, Option<u64>) {
    let mut due = Vec::new();
    let mut next: Option<u64> = None;
    for (id, deadline) in deadlines {
        match deadline {
            Some(d) if d <= now => due.push(id),
            Some(d) => next = Some(next.map_or(d, |n| n.min(d))),
            None => {}
        }
    }
    (due, next)
}

/// A duration in [`ticks`].
#[inline]
pub fn ticks_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(UNSET - 1)
}

/// An alarm's entry on the clock.
struct Entry {
    at: u64,
    /// The alarm's time now: the entry is stale unless it is still `at`.
    current: Arc<AtomicU64>,
    target: Weak<dyn Ring>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// The process's alarm clock: its entries, earliest first, and the thread
/// that rings them.
struct Clock {
    epoch: Instant,
    entries: Mutex<BinaryHeap<Reverse<Entry>>>,
    changed: Condvar,
    /// The entries' count after the last purge: the heap is purged of
    /// stale entries (moved, or whose owner is gone) when it doubles.
    purged: std::sync::atomic::AtomicUsize,
}

/// Below this many entries the heap is not purged.
const PURGE_FLOOR: usize = 1024;

impl Clock {
    fn get() -> &'static Clock {
        static CLOCK: OnceLock<&'static Clock> = OnceLock::new();
        CLOCK.get_or_init(|| {
            let clock: &'static Clock = Box::leak(Box::new(Clock {
                epoch: Instant::now(),
                entries: Mutex::new(BinaryHeap::new()),
                changed: Condvar::new(),
                purged: std::sync::atomic::AtomicUsize::new(0),
            }));
            // Without the thread no alarm rings: a process that cannot
            // start one cannot time its calls out either.
            if let Err(e) = std::thread::Builder::new()
                .name("rmi-alarm".into())
                // It only waits and wakes: no need for a default 8 MiB stack.
                .stack_size(256 * 1024)
                .spawn(move || clock.run())
            {
                tracing::error!("rmi cannot start its alarm thread; deadlines will not be enforced: {e}");
            }
            clock
        })
    }

    fn nanos(&self, at: Instant) -> u64 {
        // Far deadlines saturate: they never ring, like no deadline.
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(UNSET - 1)
    }

    fn entries(&self) -> MutexGuard<'_, BinaryHeap<Reverse<Entry>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn schedule(&self, at: u64, current: Arc<AtomicU64>, target: Weak<dyn Ring>) {
        let mut entries = self.entries();
        // An entry leaves the heap when its time comes; one whose alarm
        // moved earlier, or whose owner is gone (a closed connection's idle
        // alarm), would wait for its time, so they are dropped when the
        // heap has doubled since the last purge.
        let threshold = self.purged.load(Ordering::Relaxed).saturating_mul(2).max(PURGE_FLOOR);
        if entries.len() >= threshold {
            entries.retain(|Reverse(e)| {
                e.current.load(Ordering::Acquire) == e.at && e.target.strong_count() > 0
            });
            self.purged.store(entries.len(), Ordering::Relaxed);
        }
        let earliest = entries.peek().is_none_or(|Reverse(e)| at < e.at);
        entries.push(Reverse(Entry { at, current, target }));
        drop(entries);
        if earliest {
            self.changed.notify_one();
        }
    }

    /// Rings each alarm when its time comes, for as long as the process
    /// runs.
    fn run(&self) {
        let mut entries = self.entries();
        loop {
            let now = self.nanos(Instant::now());
            let next = entries.peek().map(|Reverse(e)| e.at);
            match next {
                None => {
                    entries = self.changed.wait(entries).unwrap_or_else(PoisonError::into_inner);
                }
                Some(at) if at > now => {
                    let wait = Duration::from_nanos(at - now);
                    entries =
                        self.changed.wait_timeout(entries, wait).unwrap_or_else(PoisonError::into_inner).0;
                }
                Some(_) => {
                    let Some(Reverse(due)) = entries.pop() else { continue };
                    let rings = due
                        .current
                        .compare_exchange(due.at, UNSET, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok();
                    if rings && let Some(target) = due.target.upgrade() {
                        // Rung without the lock: it may set its alarm again.
                        // A panic in what it wakes or drops must not end the
                        // thread every deadline of the process relies on.
                        drop(entries);
                        let rung = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                            target.ring();
                            drop(target);
                        }));
                        if rung.is_err() {
                            tracing::error!(
                                "an rmi alarm's owner panicked when rung; the alarm thread goes on"
                            );
                        }
                        entries = self.entries();
                    }
                }
            }
        }
    }
}

/// A [`Ring`] that wakes a task: a loop that selects on its socket and
/// waits for its alarm too.
#[derive(Debug, Default)]
pub struct Bell {
    rang: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Bell {
    /// Whether the alarm rang since the last poll that said so; the task
    /// is woken when it rings.
    pub fn poll_rang(&self, cx: &mut Context<'_>, last: &mut Option<Waker>) -> Poll<()> {
        if !last.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let waker = cx.waker().clone();
            *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(waker.clone());
            *last = Some(waker);
        }
        if self.rang.swap(false, Ordering::AcqRel) { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl Ring for Bell {
    fn ring(&self) {
        self.rang.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    struct Tell(Mutex<mpsc::Sender<Instant>>);

    impl Ring for Tell {
        fn ring(&self) {
            let _ = self.0.lock().unwrap().send(Instant::now());
        }
    }

    fn told() -> (Arc<Tell>, mpsc::Receiver<Instant>) {
        let (tx, rx) = mpsc::channel();
        (Arc::new(Tell(Mutex::new(tx))), rx)
    }

    #[test]
    fn rings_at_its_time_and_only_then() {
        let (target, rang) = told();
        let alarm = Alarm::new(Arc::downgrade(&target) as Weak<dyn Ring>);
        let set = Instant::now();
        alarm.ring_by(set + Duration::from_millis(80));
        // A later deadline does not move it.
        alarm.ring_by(set + Duration::from_secs(30));
        let at = rang.recv_timeout(Duration::from_secs(5)).expect("it rings");
        assert!(at >= set + Duration::from_millis(80), "not early: {:?}", at - set);
        assert!(at < set + Duration::from_secs(5), "not the later deadline");
        assert!(rang.recv_timeout(Duration::from_millis(200)).is_err(), "once");
    }

    #[test]
    fn an_earlier_deadline_moves_it_and_a_rung_alarm_sets_again() {
        let (target, rang) = told();
        let alarm = Alarm::new(Arc::downgrade(&target) as Weak<dyn Ring>);
        let set = Instant::now();
        alarm.ring_by(set + Duration::from_secs(30));
        alarm.ring_by(set + Duration::from_millis(20));
        let at = rang.recv_timeout(Duration::from_secs(5)).expect("the earlier deadline rings");
        assert!(at < set + Duration::from_secs(5));
        // The 30 s entry is stale now: the alarm is unset until set again.
        alarm.ring_by(Instant::now() + Duration::from_millis(10));
        rang.recv_timeout(Duration::from_secs(5)).expect("set again, it rings again");
    }

    #[test]
    fn a_dropped_target_is_not_rung_and_a_passed_deadline_rings_at_once() {
        let (target, rang) = told();
        let alarm = Alarm::new(Arc::downgrade(&target) as Weak<dyn Ring>);
        alarm.ring_by(Instant::now() + Duration::from_millis(30));
        drop(target);
        assert!(rang.recv_timeout(Duration::from_millis(300)).is_err());
        let (target, rang) = told();
        let alarm = Alarm::new(Arc::downgrade(&target) as Weak<dyn Ring>);
        alarm.ring_by(Instant::now() - Duration::from_millis(5));
        rang.recv_timeout(Duration::from_secs(5)).expect("a deadline passed rings at once");
    }

    #[test]
    fn stale_and_orphaned_entries_do_not_pile_up() {
        // Many alarms set far ahead whose owners go at once (closed
        // connections' idle alarms): the heap is purged as it grows.
        for _ in 0..20_000 {
            let (target, _rang) = told();
            let alarm = Alarm::new(Arc::downgrade(&target) as Weak<dyn Ring>);
            alarm.ring_by(Instant::now() + Duration::from_secs(300));
        }
        let left = Clock::get().entries().len();
        assert!(left <= 2 * PURGE_FLOOR + 64, "{left} entries kept for owners that are gone");
    }

    #[test]
    fn a_panicking_owner_does_not_stop_the_alarms() {
        struct Panics;
        impl Ring for Panics {
            fn ring(&self) {
                panic!("rung");
            }
        }
        let panics = Arc::new(Panics);
        let first = Alarm::new(Arc::downgrade(&panics) as Weak<dyn Ring>);
        first.ring_by(Instant::now());
        let (target, rang) = told();
        let alarm = Alarm::new(Arc::downgrade(&target) as Weak<dyn Ring>);
        alarm.ring_by(Instant::now() + Duration::from_millis(50));
        rang.recv_timeout(Duration::from_secs(5)).expect("the thread lived on");
        drop(panics);
    }

    #[test]
    fn a_bell_wakes_its_task_and_says_it_rang_once() {
        let bell = Arc::new(Bell::default());
        let woken = Arc::new(AtomicBool::new(false));
        struct Flag(Arc<AtomicBool>);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let waker = Waker::from(Arc::new(Flag(woken.clone())));
        let mut cx = Context::from_waker(&waker);
        let mut last = None;
        assert!(bell.poll_rang(&mut cx, &mut last).is_pending());
        bell.ring();
        assert!(woken.load(Ordering::SeqCst));
        assert!(bell.poll_rang(&mut cx, &mut last).is_ready());
        assert!(bell.poll_rang(&mut cx, &mut last).is_pending());
    }
}
