//! The streaming object the stream tests call: streams in every form a
//! method makes them, counting what they produced and when they are
//! dropped.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rmi::Blob;

use super::common::{PATIENCE, TestDaemon, builder, proxy_builder};

/// Waits until `check` holds, within `PATIENCE`; returns how long it took.
pub async fn eventually(what: &str, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < PATIENCE, "never: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

/// The process's resident memory, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/self/status");
    let kib: usize = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB");
    kib * 1024
}

/// The current context's correlation id, and whether it knows its peer.
fn seen() -> String {
    let context = rmi::context();
    let correlation = context.as_ref().and_then(|c| c.correlation_id()).unwrap_or("none").to_owned();
    let peer = context.as_ref().and_then(|c| c.peer()).is_some();
    format!("{correlation} peer={peer}")
}

/// Counts what a producer made, and whether it was dropped.
#[derive(Debug, Default)]
pub struct Tally {
    pub produced: AtomicU64,
    /// How many producers were dropped.
    pub drops: AtomicU64,
}

impl Tally {
    pub fn dropped(&self) -> bool {
        self.drops.load(Ordering::SeqCst) > 0
    }
}

/// Counts a drop when the stream holding it is dropped.
struct DropFlag(Arc<Tally>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Streams, in every form a method can make them.
#[derive(Debug, Default)]
pub struct Numbers {
    pub tally: Arc<Tally>,
}

#[rmi::expose]
impl Numbers {
    /// `0..n`, made as they are asked for.
    #[rmi::nonblocking]
    pub fn count(&self, n: u64) -> rmi::Stream<u64> {
        let tally = self.tally.clone();
        let flag = DropFlag(tally.clone());
        rmi::Stream::iter((0..n).inspect(move |_| {
            let _keep = &flag;
            tally.produced.fetch_add(1, Ordering::SeqCst);
        }))
    }

    /// `n` lines of about 1 KiB each, made as they are asked for.
    #[rmi::nonblocking]
    pub fn lines(&self, n: u64) -> rmi::Stream<String> {
        let tally = self.tally.clone();
        let flag = DropFlag(tally.clone());
        rmi::Stream::iter((0..n).map(move |i| {
            let _keep = &flag;
            tally.produced.fetch_add(1, Ordering::SeqCst);
            format!("{i:>8} {}", "x".repeat(1015))
        }))
    }

    /// `good` items, then the error `why`.
    pub async fn failing(&self, good: u64, why: String) -> rmi::Stream<u64> {
        let items = (0..good).map(Ok).chain(std::iter::once(Err(why)));
        rmi::Stream::try_new(futures::stream::iter(items))
    }

    /// An item every `millis` ms, forever (until dropped).
    pub async fn ticks(&self, millis: u64) -> rmi::Stream<u64> {
        let flag = DropFlag(self.tally.clone());
        let ticks = futures::stream::unfold(0u64, move |i| async move {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Some((i, i + 1))
        });
        rmi::Stream::new(ticks.map(move |i| {
            let _keep = &flag;
            i
        }))
    }

    /// `n` chunks of `size` bytes, byte `k` of chunk `i` being `(i + k) % 251`,
    /// from an iterator that may block (it runs on the blocking pool).
    pub fn chunks(&self, n: u64, size: u32) -> rmi::Stream<Blob> {
        rmi::Stream::blocking((0..n).map(move |i| {
            Blob::from((0..size).map(|k| ((i + u64::from(k)) % 251) as u8).collect::<Vec<u8>>())
        }))
    }

    /// What the producer sees of its call's context, item by item: the
    /// correlation id, and whether it knows the peer.
    pub async fn context_seen(&self) -> rmi::Stream<String> {
        rmi::Stream::new(futures::stream::iter(0..2).map(|_| seen()))
    }

    /// The same, from an iterator on the blocking pool.
    pub fn context_seen_blocking(&self) -> rmi::Stream<String> {
        let first = seen();
        rmi::Stream::blocking(std::iter::once(first).chain((0..1).map(|_| seen())))
    }

    /// A plain method beside the streams.
    #[rmi::nonblocking]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

pub async fn numbers() -> (TestDaemon, NumbersProxy, Arc<Tally>) {
    let d = TestDaemon::start(builder()).await;
    let object = Numbers::default();
    let tally = object.tally.clone();
    let uri = d.daemon.register(object, Some("numbers")).unwrap();
    (d, NumbersProxy::from_proxy(proxy_builder(&uri).build().unwrap()), tally)
}
