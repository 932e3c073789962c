//! Shared helpers for the loopback tests: objects to host, and daemons that
//! stop when dropped.

// Each test file uses a different part of this module.
#![allow(dead_code, unreachable_pub)]

use std::sync::Mutex;
use std::time::Duration;

use rmi::{Blob, Daemon, DaemonBuilder, ObjectUri};

/// Waits on every helper: a bound, so that a broken test fails instead of
/// hanging.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A daemon serving in the background; shut down when dropped.
pub struct TestDaemon {
    pub daemon: Daemon,
    serving: Option<tokio::task::JoinHandle<Result<(), rmi::DaemonError>>>,
}

impl TestDaemon {
    /// Binds `127.0.0.1:0` with `builder` and serves.
    pub async fn start(builder: DaemonBuilder) -> Self {
        Self::start_at(builder, "127.0.0.1:0").await
    }

    pub async fn start_at(builder: DaemonBuilder, address: &str) -> Self {
        let daemon = builder.bind(address).await.expect("bind");
        let serving = tokio::spawn({
            let daemon = daemon.clone();
            async move { daemon.serve().await }
        });
        TestDaemon { daemon, serving: Some(serving) }
    }

    /// A daemon with default settings (no key) hosting a Calculator as "calc".
    pub async fn calculator() -> (Self, ObjectUri) {
        let d = Self::start(builder()).await;
        let uri = d.daemon.register(Calculator::default(), Some("calc")).expect("register");
        (d, uri)
    }

    /// Shuts the daemon down and waits for `serve` to return.
    pub async fn stop(mut self) {
        self.daemon.shutdown();
        let Some(serving) = self.serving.take() else { return };
        let served = tokio::time::timeout(PATIENCE, serving).await.expect("serve returned in time");
        served.expect("serve task").expect("serve");
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.daemon.shutdown();
    }
}

/// A daemon builder with default settings, whatever the environment says.
pub fn builder() -> DaemonBuilder {
    Daemon::builder_with_config(&rmi::Config::default())
}

/// A proxy builder with default settings, whatever the environment says.
pub fn proxy_builder(uri: &ObjectUri) -> rmi::ProxyBuilder {
    rmi::Proxy::builder_with_config(uri, &rmi::Config::default())
}

/// The error of a division by zero, with a cause, to see chains travel.
#[derive(Debug, thiserror::Error)]
#[error("cannot divide {0} by zero")]
pub struct DivideByZero(pub i64, #[source] pub NoInverse);

#[derive(Debug, thiserror::Error)]
#[error("zero has no inverse")]
pub struct NoInverse;

/// The object most tests call.
#[derive(Default)]
pub struct Calculator {
    records: Mutex<Vec<String>>,
}

#[rmi::expose]
impl Calculator {
    /// Adds.
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    /// Adds after a while, without holding a thread.
    pub async fn slow_add(&self, a: i64, b: i64, millis: u64) -> i64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        a + b
    }

    /// Divides, or fails with an error that has a cause.
    pub fn divide(&self, a: i64, b: i64) -> Result<i64, DivideByZero> {
        if b == 0 { Err(DivideByZero(a, NoInverse)) } else { Ok(a / b) }
    }

    /// Panics.
    pub fn panics(&self) -> u32 {
        panic!("deliberate panic")
    }

    /// Panics after an await.
    pub async fn panics_later(&self) -> u32 {
        tokio::task::yield_now().await;
        panic!("deliberate async panic")
    }

    /// Records a line; callers do not wait.
    #[rmi::oneway]
    pub fn record(&self, line: String) {
        self.records.lock().unwrap().push(line);
    }

    /// What was recorded.
    pub fn records(&self) -> Vec<String> {
        self.records.lock().unwrap().clone()
    }

    /// A blob's length.
    pub fn blob_len(&self, blob: Blob) -> u64 {
        blob.len() as u64
    }

    /// The blob, back.
    pub fn echo_blob(&self, blob: Blob) -> Blob {
        blob
    }

    /// Returns nothing.
    pub fn nothing(&self) {}

    /// Uses a method that is not exposed.
    pub fn secret_plus_one(&self) -> u32 {
        self.secret() + 1
    }

    fn secret(&self) -> u32 {
        41
    }

    /// Not exposed: it takes no `self`.
    pub fn unit() -> Self {
        Calculator::default()
    }
}

/// An object that calls other objects, to see re-entrant calls complete.
pub struct Relay;

#[rmi::expose]
impl Relay {
    /// Asks `other` to bounce `n` back to `back`.
    pub async fn relay(&self, other: String, back: String, n: u32) -> Result<u32, rmi::Error> {
        RelayProxy::new(other)?.bounce(back, n).await
    }

    /// Calls `back.finish(n)`.
    pub async fn bounce(&self, back: String, n: u32) -> Result<u32, rmi::Error> {
        RelayProxy::new(back)?.finish(n).await
    }

    /// The end of the chain.
    pub fn finish(&self, n: u32) -> u32 {
        n + 1
    }
}
