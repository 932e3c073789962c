//! Instance modes, against a real daemon on loopback: objects the daemon
//! makes itself from a factory, one per daemon, per connection or per call,
//! counted as they are made and dropped under 64 concurrent callers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{PATIENCE, TestDaemon, builder};
use rmi::InstanceMode;

/// How many instances were made and dropped.
#[derive(Debug, Default)]
pub struct Census {
    made: AtomicU64,
    dropped: AtomicU64,
}

impl Census {
    fn made(&self) -> u64 {
        self.made.load(Ordering::SeqCst)
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// An object that counts its instances, and the calls each one served.
#[derive(Debug)]
pub struct Tally {
    census: Arc<Census>,
    calls: AtomicU64,
    id: u64,
}

impl Tally {
    fn factory(census: &Arc<Census>) -> impl Fn() -> Tally + Send + Sync + 'static {
        let census = census.clone();
        move || {
            // A slow constructor: concurrent first calls overlap in it.
            std::thread::sleep(Duration::from_millis(20));
            let id = census.made.fetch_add(1, Ordering::SeqCst) + 1;
            Tally { census: census.clone(), calls: AtomicU64::new(0), id }
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.census.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[rmi::expose]
impl Tally {
    /// This instance's id and how many calls it served, this one included.
    pub async fn call(&self) -> (u64, u64) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        (self.id, self.calls.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// The same, synchronously, on the fast path.
    #[rmi::nonblocking]
    pub fn quick(&self) -> (u64, u64) {
        (self.id, self.calls.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < PATIENCE, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// 64 concurrent calls through `proxies` (cycled); their answers.
async fn sixty_four(proxies: &[TallyProxy]) -> Vec<(u64, u64)> {
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let p = proxies[i % proxies.len()].clone();
            tokio::spawn(async move { p.call().await })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap().unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_is_built_once_under_64_concurrent_first_calls() {
    let d = TestDaemon::start(builder()).await;
    let census = Arc::new(Census::default());
    let uri =
        d.daemon.register_factory(InstanceMode::Single, Tally::factory(&census), Some("tally")).unwrap();
    assert_eq!(census.made(), 0, "made on the first call, not before");
    let proxies: Vec<TallyProxy> = (0..8).map(|_| TallyProxy::new(&uri).unwrap()).collect();
    let answers = sixty_four(&proxies).await;
    assert_eq!(census.made(), 1, "one instance for the daemon");
    assert!(answers.iter().all(|(id, _)| *id == 1));
    let mut counts: Vec<u64> = answers.iter().map(|(_, n)| *n).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=64).collect::<Vec<_>>(), "all 64 calls on the one instance");
    drop(proxies);
    assert_eq!(census.dropped(), 0, "kept while registered");
    d.daemon.unregister("tally");
    eventually("unregistered, the instance was dropped", || census.dropped() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_is_one_per_connection_and_goes_with_it() {
    let d = TestDaemon::start(builder().idle_timeout(Some(Duration::from_millis(300)))).await;
    let census = Arc::new(Census::default());
    let uri =
        d.daemon.register_factory(InstanceMode::Session, Tally::factory(&census), Some("tally")).unwrap();
    // 64 concurrent calls over one connection: one session.
    let first = TallyProxy::new(&uri).unwrap();
    let answers = sixty_four(std::slice::from_ref(&first)).await;
    assert_eq!(census.made(), 1);
    assert!(answers.iter().all(|(id, _)| *id == 1));
    // Another proxy, another connection: another session.
    let second = TallyProxy::new(&uri).unwrap();
    assert_eq!(second.quick().await.unwrap(), (2, 1));
    assert_eq!(first.quick().await.unwrap(), (1, 65));
    assert_eq!(census.made(), 2);
    // The first connection closes: its session is dropped once its calls end.
    let running = tokio::spawn({
        let first = first.clone();
        async move { first.call().await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    drop(first);
    assert!(running.await.unwrap().is_ok());
    eventually("the first session was dropped", || census.dropped() == 1).await;
    assert_eq!(second.quick().await.unwrap(), (2, 2), "the other session lives on");
    // A reconnect starts a new session: the idle timeout closes the
    // connection, and the proxy connects again.
    eventually("the idle connection was closed", || d.daemon.connections() == 0).await;
    eventually("the second session was dropped", || census.dropped() == 2).await;
    assert_eq!(second.quick().await.unwrap(), (3, 1));
    assert_eq!(census.made(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percall_is_fresh_for_each_call_and_dropped_before_its_reply() {
    let d = TestDaemon::start(builder()).await;
    let census = Arc::new(Census::default());
    let uri =
        d.daemon.register_factory(InstanceMode::PerCall, Tally::factory(&census), Some("tally")).unwrap();
    let proxies: Vec<TallyProxy> = (0..8).map(|_| TallyProxy::new(&uri).unwrap()).collect();
    let answers = sixty_four(&proxies).await;
    assert_eq!(census.made(), 64);
    assert!(answers.iter().all(|(_, n)| *n == 1), "each instance served one call");
    let mut ids: Vec<u64> = answers.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 64);
    assert_eq!(census.dropped(), 64, "every instance dropped before its reply was sent");
    // One at a time, async and sync: dropped by the time the reply is here.
    for i in 1..=3 {
        assert_eq!(proxies[0].call().await.unwrap().1, 1);
        assert_eq!(census.dropped(), 64 + 2 * i - 1);
        assert_eq!(proxies[0].quick().await.unwrap().1, 1);
        assert_eq!(census.dropped(), 64 + 2 * i);
    }
}

#[tokio::test]
async fn a_registered_factory_describes_its_type_without_making_one() {
    let d = TestDaemon::start(builder()).await;
    let census = Arc::new(Census::default());
    let uri =
        d.daemon.register_factory(InstanceMode::Session, Tally::factory(&census), Some("tally")).unwrap();
    let description = rmi::Proxy::new(&uri).unwrap().describe().await.unwrap();
    assert_eq!(description.type_name, "Tally");
    let names: Vec<&str> = description.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["call", "quick"]);
    assert_eq!(census.made(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_on_its_connections_session() {
    let d = TestDaemon::start(builder()).await;
    let census = Arc::new(Census::default());
    let uri =
        d.daemon.register_factory(InstanceMode::Session, Tally::factory(&census), Some("tally")).unwrap();
    let tally = TallyProxy::new(&uri).unwrap();
    assert_eq!(tally.quick().await.unwrap(), (1, 1));
    let mut batch = TallyBatch::new(&tally);
    let calls: Vec<_> = (0..3).map(|_| batch.quick().unwrap()).collect();
    let results = batch.await.unwrap();
    let answers: Vec<(u64, u64)> = calls.into_iter().map(|c| results.get(c).unwrap()).collect();
    assert_eq!(answers, [(1, 2), (1, 3), (1, 4)], "the connection's own session");
    assert_eq!(census.made(), 1);
}
