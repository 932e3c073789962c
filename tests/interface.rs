//! `#[rmi::expose]` on a trait: a client needs only the interface to get a
//! typed proxy (the role of a Java RMI remote interface).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::{PATIENCE, TestDaemon, builder};

/// What a client crate would depend on: the interface alone.
mod interface {
    /// A counter shared by every client.
    #[rmi::expose]
    pub(crate) trait Counter {
        /// Adds `n`, returns the new total.
        fn add(&self, n: u64) -> u64;
        /// The total, after a short wait.
        async fn total_later(&self, millis: u64) -> u64;
        /// Fails on purpose.
        fn fail(&self, why: String) -> Result<u64, String>;
        /// A method with a default body.
        fn describe_self(&self) -> String {
            "a counter".to_owned()
        }
        /// Adds without waiting.
        #[rmi::oneway]
        fn bump(&self);
    }
}

use interface::{Counter, CounterObject, CounterProxy};

/// The implementation, which the client never sees.
#[derive(Default)]
struct Total(AtomicU64);

impl Counter for Total {
    fn add(&self, n: u64) -> u64 {
        self.0.fetch_add(n, Ordering::SeqCst) + n
    }

    async fn total_later(&self, millis: u64) -> u64 {
        tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        self.0.load(Ordering::SeqCst)
    }

    fn fail(&self, why: String) -> Result<u64, String> {
        Err(why)
    }

    fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_trait_gives_a_typed_proxy_without_the_implementation() {
    let d = TestDaemon::start(builder()).await;
    let uri = d.daemon.register(CounterObject(Total::default()), Some("counter")).unwrap();
    let counter = CounterProxy::new(&uri).unwrap();
    assert_eq!(counter.add(5).await.unwrap(), 5);
    assert_eq!(counter.add(2).await.unwrap(), 7);
    assert_eq!(counter.total_later(5).await.unwrap(), 7);
    assert_eq!(counter.describe_self().await.unwrap(), "a counter");
    let err = counter.fail("on purpose".into()).await.unwrap_err();
    assert_eq!(err.remote().map(|r| r.message()), Some("on purpose"));

    counter.bump().await.unwrap();
    let started = std::time::Instant::now();
    while counter.total_later(0).await.unwrap() != 8 {
        assert!(started.elapsed() < PATIENCE, "the oneway call never ran");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let description = counter.proxy().describe().await.unwrap();
    assert!(description.type_name.ends_with("Total"), "{}", description.type_name);
    let names: Vec<_> = description.methods.iter().map(|m| (m.name.as_str(), m.oneway)).collect();
    assert_eq!(
        names,
        [("add", false), ("total_later", false), ("fail", false), ("describe_self", false), ("bump", true)]
    );
    assert_eq!(description.methods[1].signature, "async fn total_later(&self, millis: u64) -> u64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_methods_of_an_exposed_trait_run_on_any_thread() {
    // `async fn` in the trait is made `Send`, so calls can be spawned.
    let d = TestDaemon::start(builder()).await;
    let uri = d.daemon.register(CounterObject(Total::default()), None).unwrap();
    let counter = CounterProxy::new(&uri).unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move { counter.total_later(1).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}
