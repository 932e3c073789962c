//! Objects as values, against a real daemon on loopback: references
//! returned (autoproxy) and passed (callbacks over the client's own
//! connection), their lifetimes, re-entrant calls and cycles, and the
//! interface a reference names.
//!
//! The clients here bind nothing: no daemon, no listener; the daemon calls
//! them back over the connections they opened.

mod common;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{PATIENCE, TestDaemon, builder};
use rmi::Remote;

/// Waits until `check` holds, within `PATIENCE`; returns how long it took.
async fn eventually(what: &str, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < PATIENCE, "never: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

/// A counter, handed out by reference.
#[derive(Debug, Default)]
pub struct Counter {
    count: AtomicU32,
    /// Set when the counter is dropped.
    dropped: Option<Arc<AtomicBool>>,
}

impl Drop for Counter {
    fn drop(&mut self) {
        if let Some(flag) = &self.dropped {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

#[rmi::expose]
impl Counter {
    /// Counts one more; returns the count.
    #[rmi::nonblocking]
    pub fn add(&self) -> u32 {
        self.count.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Hands out counters (Pyro's autoproxy), and keeps references it is given.
#[derive(Debug, Default)]
pub struct Factory {
    kept: Mutex<Vec<Remote<CounterProxy>>>,
}

#[rmi::expose]
impl Factory {
    /// A fresh counter, by reference.
    #[rmi::nonblocking]
    pub fn make(&self) -> Remote<CounterProxy> {
        Remote::new(Counter::default())
    }

    /// Counters in a struct and a `Vec`.
    #[rmi::nonblocking]
    pub fn make_many(&self, n: u32) -> Bundle {
        Bundle {
            first: Remote::new(Counter::default()),
            rest: (1..n).map(|_| Remote::new(Counter::default())).collect(),
        }
    }

    /// Keeps `counter`.
    #[rmi::nonblocking]
    pub fn keep(&self, counter: Remote<CounterProxy>) {
        self.kept.lock().unwrap().push(counter);
    }

    /// Forgets one kept counter.
    #[rmi::nonblocking]
    pub fn forget_one(&self) {
        self.kept.lock().unwrap().pop();
    }

    /// Calls every kept counter; returns their counts.
    pub async fn add_to_kept(&self) -> Result<Vec<u32>, rmi::Error> {
        let kept: Vec<CounterProxy> = self.kept.lock().unwrap().iter().map(Remote::proxy).collect();
        let mut counts = Vec::new();
        for counter in kept {
            counts.push(counter.add().await?);
        }
        Ok(counts)
    }

    /// Calls `counter` once, where it lives.
    pub async fn add_to(&self, counter: Remote<CounterProxy>) -> Result<u32, rmi::Error> {
        counter.proxy().add().await
    }
}

/// References inside a struct and a `Vec`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Bundle {
    first: Remote<CounterProxy>,
    rest: Vec<Remote<CounterProxy>>,
}

/// What a client hears of a long job.
#[derive(Debug, Default)]
pub struct Progress {
    heard: Mutex<Vec<u32>>,
    fail_at: Option<u32>,
}

#[rmi::expose]
impl Progress {
    /// One step done.
    pub async fn report(&self, percent: u32) -> Result<(), String> {
        if self.fail_at == Some(percent) {
            return Err(format!("the client refused step {percent}"));
        }
        self.heard.lock().unwrap().push(percent);
        Ok(())
    }
}

/// A server that calls its clients back, and is called back into.
#[derive(Debug, Default)]
pub struct Jobs {
    lock: tokio::sync::Mutex<u32>,
}

#[rmi::expose]
impl Jobs {
    /// Runs a job of `steps` steps, reporting each to `progress`.
    pub async fn run(&self, steps: u32, progress: Remote<ProgressProxy>) -> Result<u32, rmi::Error> {
        let progress = progress.proxy();
        for step in 1..=steps {
            progress.report(step * 100 / steps).await?;
        }
        Ok(steps)
    }

    /// Asks `asker` for a number; it asks this object back.
    pub async fn ask(&self, asker: Remote<AskerProxy>) -> Result<u32, rmi::Error> {
        Ok(asker.proxy().think().await? + 1)
    }

    /// What `think` asks back for.
    #[rmi::nonblocking]
    pub fn base(&self) -> u32 {
        41
    }

    /// Holds the lock while calling `asker` back, whose call back into
    /// `take` needs the same lock: a cycle that cannot complete.
    pub async fn hold(&self, asker: Remote<AskerProxy>) -> Result<u32, rmi::Error> {
        let _held = self.lock.lock().await;
        asker.proxy().think().await
    }

    /// Takes the lock.
    pub async fn take(&self) -> u32 {
        *self.lock.lock().await
    }
}

/// A client object that calls the server back from inside a callback.
#[derive(Debug)]
pub struct Asker {
    jobs: JobsProxy,
    via_take: bool,
}

#[rmi::expose]
impl Asker {
    /// Asks the server for its base (or takes its lock).
    pub async fn think(&self) -> Result<u32, rmi::Error> {
        if self.via_take { self.jobs.take().await } else { self.jobs.base().await }
    }
}

async fn daemon_with(objects: impl FnOnce(&rmi::Daemon)) -> TestDaemon {
    let d = TestDaemon::start(builder()).await;
    objects(&d.daemon);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_reference_is_a_working_typed_proxy_and_is_released_when_dropped() {
    let d = daemon_with(|d| {
        d.register(Factory::default(), Some("factory")).unwrap();
    })
    .await;
    let factory = FactoryProxy::new(d.daemon.uri_for("factory")).unwrap();
    let counter = factory.make().await.unwrap();
    assert_eq!(counter.interface(), "Counter");
    let proxy = counter.proxy();
    assert_eq!(proxy.add().await.unwrap(), 1);
    assert_eq!(proxy.add().await.unwrap(), 2);
    assert_eq!(d.daemon.exported_objects(), 1);
    // The proxy keeps the reference alive on its own.
    drop(counter);
    assert_eq!(proxy.add().await.unwrap(), 3);
    drop(proxy);
    let took = eventually("the export was released", || d.daemon.exported_objects() == 0).await;
    println!("an autoproxied counter released {took:?} after its last proxy was dropped");
    // Inside structs and vectors too.
    let bundle = factory.make_many(5).await.unwrap();
    assert_eq!(d.daemon.exported_objects(), 5);
    assert_eq!(bundle.first.proxy().add().await.unwrap(), 1);
    for counter in &bundle.rest {
        assert_eq!(counter.proxy().add().await.unwrap(), 1);
    }
    drop(bundle);
    eventually("the bundle was released", || d.daemon.exported_objects() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_fresh_objects_dropped_leave_the_export_table_empty() {
    let d = daemon_with(|d| {
        d.register(Factory::default(), Some("factory")).unwrap();
    })
    .await;
    let factory = FactoryProxy::new(d.daemon.uri_for("factory")).unwrap();
    let mut held = Vec::new();
    for i in 0..1_000 {
        let counter = factory.make().await.unwrap();
        if i % 10 == 0 {
            assert_eq!(counter.proxy().add().await.unwrap(), 1);
        }
        held.push(counter);
    }
    assert_eq!(d.daemon.exported_objects(), 1_000);
    drop(held);
    // One round trip: the releases go out with the next write.
    assert_eq!(factory.make().await.unwrap().interface(), "Counter");
    eventually("all 1,001 exports were released", || d.daemon.exported_objects() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_passes_a_callback_and_hears_every_step_with_no_listener_of_its_own() {
    let d = daemon_with(|d| {
        d.register(Jobs::default(), Some("jobs")).unwrap();
    })
    .await;
    let jobs = JobsProxy::new(d.daemon.uri_for("jobs")).unwrap();
    let progress = Arc::new(Progress::default());
    let steps = jobs.run(4, Remote::from_arc(progress.clone())).await.unwrap();
    assert_eq!(steps, 4);
    assert_eq!(*progress.heard.lock().unwrap(), vec![25, 50, 75, 100]);
    // An error raised in a callback reaches the server as a remote error,
    // and its caller with the message.
    let refusing = Progress { fail_at: Some(50), ..Progress::default() };
    let err = jobs.run(4, Remote::new(refusing)).await.unwrap_err();
    assert!(err.to_string().contains("the client refused step 50"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_that_calls_the_server_back_completes() {
    let d = daemon_with(|d| {
        d.register(Jobs::default(), Some("jobs")).unwrap();
    })
    .await;
    let jobs = JobsProxy::new(d.daemon.uri_for("jobs")).unwrap();
    // A → client → A, all on the one connection the client opened.
    let asker = Asker { jobs: jobs.clone(), via_take: false };
    assert_eq!(jobs.ask(Remote::new(asker)).await.unwrap(), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_that_cannot_complete_ends_with_the_deadline_not_a_hang() {
    let d = daemon_with(|d| {
        d.register(Jobs::default(), Some("jobs")).unwrap();
    })
    .await;
    let jobs =
        JobsProxy::new(d.daemon.uri_for("jobs")).unwrap().with_timeout(Some(Duration::from_millis(800)));
    let asker = Asker { jobs: jobs.clone(), via_take: true };
    let started = Instant::now();
    let err =
        tokio::time::timeout(PATIENCE, jobs.hold(Remote::new(asker))).await.expect("no hang").unwrap_err();
    let took = started.elapsed();
    println!("a cycle that cannot complete ended after {took:?}: {err}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        matches!(&err, rmi::Error::Timeout(_)) || err.to_string().contains("no reply within"),
        "the deadline's error, not {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_reference_sent_twice_and_dropped_once_stays_alive() {
    let d = daemon_with(|d| {
        d.register(Factory::default(), Some("factory")).unwrap();
    })
    .await;
    let factory = FactoryProxy::new(d.daemon.uri_for("factory")).unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let counter = Remote::new(Counter { count: AtomicU32::new(0), dropped: Some(dropped.clone()) });
    factory.keep(counter.clone()).await.unwrap();
    factory.keep(counter.clone()).await.unwrap();
    drop(counter);
    assert_eq!(factory.add_to_kept().await.unwrap(), vec![1, 2]);
    factory.forget_one().await.unwrap();
    assert_eq!(factory.add_to_kept().await.unwrap(), vec![3], "one copy is still held");
    assert!(!dropped.load(Ordering::SeqCst));
    factory.forget_one().await.unwrap();
    // The release travels with the next message; the client then drops
    // the object.
    eventually("the counter was released and dropped", || dropped.load(Ordering::SeqCst)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_of_the_wrong_interface_is_a_clear_error() {
    let d = daemon_with(|d| {
        d.register(Jobs::default(), Some("jobs")).unwrap();
    })
    .await;
    let jobs = rmi::Proxy::new(d.daemon.uri_for("jobs")).unwrap();
    let err =
        jobs.call::<u32>("run", (2u32, Remote::<CounterProxy>::new(Counter::default()))).await.unwrap_err();
    assert!(matches!(err, rmi::Error::BadArguments(_)), "{err:?}");
    assert!(err.to_string().contains("expected a reference to Progress"), "{err}");
    assert!(err.to_string().contains("\"Counter\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_object_travels_as_its_uri_and_is_called_directly() {
    let home = daemon_with(|d| {
        d.register(Counter::default(), Some("counter")).unwrap();
    })
    .await;
    let other = daemon_with(|d| {
        d.register(Factory::default(), Some("factory")).unwrap();
    })
    .await;
    let counter_uri = home.daemon.uri_for("counter");
    let direct = CounterProxy::new(&counter_uri).unwrap();
    assert_eq!(direct.add().await.unwrap(), 1);
    let factory = FactoryProxy::new(other.daemon.uri_for("factory")).unwrap();
    let reference = Remote::from_proxy(&direct).expect("connected: its URI is known");
    // The client lets go of the counter's daemon: only a direct call from
    // the other daemon can reach the counter now.
    drop(direct);
    eventually("the client left the counter's daemon", || home.daemon.connections() == 0).await;
    assert_eq!(factory.add_to(reference).await.unwrap(), 2, "the other daemon called the counter directly");
    assert_eq!(other.daemon.exported_objects(), 0, "nothing went through the middle");
    assert_eq!(factory.add_to(Remote::to(counter_uri)).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_into_a_daemon_that_is_gone_fails_at_once() {
    let d = daemon_with(|d| {
        d.register(Factory::default(), Some("factory")).unwrap();
    })
    .await;
    let factory = FactoryProxy::new(d.daemon.uri_for("factory")).unwrap();
    let counter = factory.make().await.unwrap().proxy();
    assert_eq!(counter.add().await.unwrap(), 1);
    d.stop().await;
    let started = Instant::now();
    let err = tokio::time::timeout(PATIENCE, counter.add()).await.expect("no hang").unwrap_err();
    assert!(matches!(err, rmi::Error::ConnectionLost(_) | rmi::Error::ObjectNotFound(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_local_reference_is_called_as_a_remote_one() {
    let counter: Remote<CounterProxy> = Remote::new(Counter::default());
    let proxy = counter.proxy();
    assert_eq!(proxy.add().await.unwrap(), 1);
    assert_eq!(counter.proxy().add().await.unwrap(), 2, "the same object");
    // Outside a call, a reference cannot be serialized.
    assert!(serde_json::to_string(&counter).is_err());
}

/// Takes references of any interface.
#[derive(Debug, Default)]
pub struct AnyCaller;

#[rmi::expose]
impl AnyCaller {
    /// Calls `method` on `target`, whatever its interface, by name.
    pub async fn call_by_name(&self, target: Remote<rmi::Proxy>, method: String) -> Result<u32, rmi::Error> {
        let interface = target.interface().to_owned();
        let typed: Result<Remote<CounterProxy>, _> = target.clone().typed();
        assert_eq!(typed.is_ok(), interface == "Counter");
        target.proxy().call(&method, ()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untyped_reference_takes_any_interface_and_is_called_by_name() {
    let d = daemon_with(|d| {
        d.register(AnyCaller, Some("any")).unwrap();
    })
    .await;
    let any = AnyCallerProxy::new(d.daemon.uri_for("any")).unwrap();
    let counter = Remote::<CounterProxy>::new(Counter::default());
    assert_eq!(any.call_by_name(counter.clone().untyped(), "add".into()).await.unwrap(), 1);
    assert_eq!(any.call_by_name(Remote::any(Arc::new(Counter::default())), "add".into()).await.unwrap(), 1);
    let err = any.call_by_name(counter.untyped(), "nope".into()).await.unwrap_err();
    assert!(err.to_string().contains("no exposed method \"nope\""), "{err}");
}
