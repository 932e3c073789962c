//! Futures polled only when they woke.
//!
//! A loop that `select!`s its hot future (a socket's next message) against
//! rare ones (shutdown, an idle timer) polls every branch each time the task
//! wakes, and the rare ones are not free to poll: a cancellation token takes
//! a lock, a timer re-registers its waker. [`Dormant`] wraps a rare future
//! with a waker of its own that notes that *this* future woke before it
//! wakes the task; polling a dormant future that has not woken since its
//! last poll costs an atomic swap and a waker compare, and does not poll it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// The waker a dormant future is polled with: marks it woken, then wakes
/// the task that polls it.
struct Flag {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// A future polled only when it woke (or the task polling it changed); see
/// the module documentation. Polling it after it completed polls the
/// future again, as polling the future itself would.
pub struct Dormant<F> {
    future: Pin<Box<F>>,
    flag: Arc<Flag>,
    /// The flag as a waker, made once.
    waker: Waker,
    /// The task the flag wakes, as last polled (compared without a lock).
    task: Option<Waker>,
}

impl<F: Future> Dormant<F> {
    /// Wraps `future`; its first poll polls it.
    pub fn new(future: F) -> Self {
        let flag = Arc::new(Flag { woken: AtomicBool::new(true), task: Mutex::new(None) });
        Dormant { future: Box::pin(future), waker: Waker::from(flag.clone()), flag, task: None }
    }

    /// Replaces the future (a timer re-armed, say): the next poll polls it.
    pub fn set(&mut self, future: F) {
        self.future.set(future);
        self.flag.woken.store(true, Ordering::Release);
    }

    /// The future, to act on it in place (a timer reset, say): the next
    /// poll polls it.
    pub fn get_mut(&mut self) -> Pin<&mut F> {
        self.flag.woken.store(true, Ordering::Release);
        self.future.as_mut()
    }

    /// Polls the future if it woke since its last poll.
    pub fn poll_woken(&mut self, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            let task = cx.waker().clone();
            *self.flag.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task.clone());
            self.task = Some(task);
            // A wake may have gone to the old task: poll to be sure.
            self.flag.woken.store(true, Ordering::Release);
        }
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        self.future.as_mut().poll(&mut Context::from_waker(&self.waker))
    }

    /// Waits for the future, polling it only when it woke.
    pub fn woken(&mut self) -> impl Future<Output = F::Output> + '_ {
        std::future::poll_fn(move |cx| self.poll_woken(cx))
    }
}

impl<F> std::fmt::Debug for Dormant<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dormant").field("woken", &self.flag.woken.load(Ordering::Relaxed)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A future that counts its polls and is ready once told.
    struct Counted {
        polls: Arc<AtomicUsize>,
        ready: Arc<Mutex<(bool, Option<Waker>)>>,
    }

    impl Future for Counted {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            let mut ready = self.ready.lock().unwrap();
            if ready.0 {
                return Poll::Ready(());
            }
            ready.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    struct CountWakes(AtomicUsize);
    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn polled_only_after_its_own_wake() {
        let polls = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(Mutex::new((false, None::<Waker>)));
        let mut dormant = Dormant::new(Counted { polls: polls.clone(), ready: ready.clone() });
        let task = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(dormant.poll_woken(&mut cx).is_pending());
        for _ in 0..10 {
            assert!(dormant.poll_woken(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1, "not woken: not polled again");
        // It wakes: the task hears it, and the next poll polls the future.
        let inner = ready.lock().unwrap().1.take().unwrap();
        ready.lock().unwrap().0 = true;
        inner.wake();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert!(dormant.poll_woken(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_new_task_polls_again_and_set_rearms() {
        let polls = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(Mutex::new((false, None::<Waker>)));
        let mut dormant = Dormant::new(Counted { polls: polls.clone(), ready: ready.clone() });
        let one = Waker::from(Arc::new(CountWakes(AtomicUsize::new(0))));
        let two = Waker::from(Arc::new(CountWakes(AtomicUsize::new(0))));
        assert!(dormant.poll_woken(&mut Context::from_waker(&one)).is_pending());
        assert!(dormant.poll_woken(&mut Context::from_waker(&two)).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 2, "another task: polled to be sure");
        dormant.set(Counted { polls: polls.clone(), ready: ready.clone() });
        assert!(dormant.poll_woken(&mut Context::from_waker(&two)).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 3, "a new future is polled");
    }
}
