//! Flow control, against a real daemon on loopback: a client that stops
//! reading its replies holds a bounded amount of the daemon's memory and
//! slows nobody else down; the write timeout closes it; a daemon that stops
//! reading makes a proxy's callers wait rather than buffer.
//!
//! The daemon runs in this test process and the stalled clients are raw
//! connections that hold next to nothing, so the growth of this process's
//! resident memory is the daemon's. The tests that read it take turns
//! (`MEMORY`), and the replies are made of fresh pages, so that what is
//! counted is what the daemon holds.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{CalculatorProxy, PATIENCE, TestDaemon, builder};
use rmi::{Blob, ObjectUri};
use rmi_core::link::{self, MessageReader, MessageWriter};
use rmi_core::net::Connection;
use rmi_core::{Call, Encoded, Request};

/// One test at a time reads this process's memory.
static MEMORY: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;

/// Makes replies of fresh memory.
#[derive(Debug, Default)]
pub struct Blobs;

#[rmi::expose]
impl Blobs {
    /// `len` bytes, every page touched.
    pub fn blob(&self, len: u64) -> Blob {
        Blob::from(vec![7u8; len as usize])
    }
}

/// This process's resident memory, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/self/status");
    let kib: usize = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
    kib * 1024
}

/// A client that pipelines `calls` calls of `blob(len)` and never reads a
/// reply: the reader is held, unread, for as long as the pair lives.
async fn stalled_client(uri: &ObjectUri, calls: u64, len: u64) -> (MessageReader, MessageWriter) {
    let mut connection = Connection::connect(&uri.location).await.unwrap();
    let session = rmi_core::handshake::client_handshake(&mut connection, None).await.unwrap();
    let (reader, writer) = link::split(connection, session, 64 * MIB);
    let args = Encoded::encode(&(len,)).unwrap();
    for id in 0..calls {
        writer.send_batched(&Request::call(id, None, Call::new("blobs", "blob", args.clone()))).unwrap();
    }
    (reader, writer)
}

/// Fresh clients' first calls (connecting included): the median of `n`.
async fn fresh_first_calls(uri: &ObjectUri, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for i in 0..n as i64 {
        let calc = CalculatorProxy::new(uri).unwrap();
        let started = Instant::now();
        assert_eq!(calc.add(i, 1).await.unwrap(), i + 1);
        times.push(started.elapsed());
    }
    times.sort();
    times[n / 2]
}

/// The highest resident memory seen while sampling for `period`.
async fn peak_rss(period: Duration) -> usize {
    let until = Instant::now() + period;
    let mut peak = rss();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        peak = peak.max(rss());
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_bounded_memory_and_slows_nobody() {
    let _turn = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let d = TestDaemon::start(builder()).await;
    d.daemon.register(Blobs, Some("blobs")).unwrap();
    let calc = d.daemon.register(common::Calculator::default(), Some("calc")).unwrap();
    let blobs = d.daemon.uri_for("blobs");
    // Warm up: the same replies, read, so that the idle figure includes
    // what a working daemon keeps.
    let reader = rmi::Proxy::new(&blobs).unwrap();
    for _ in 0..32 {
        let b: Blob = reader.call("blob", (MIB as u64,)).await.unwrap();
        assert_eq!(b.len(), MIB);
    }
    drop(reader);
    let idle = rss();

    let stalled = stalled_client(&blobs, 1_500, MIB as u64).await;
    let peak = peak_rss(Duration::from_secs(2)).await;
    let median = fresh_first_calls(&calc, 11).await;
    let grown = peak.saturating_sub(idle);
    println!(
        "1,500 unread 1 MiB replies: the daemon grew by {} MiB; a fresh client's first call took {median:?} (median)",
        grown / MIB
    );
    assert!(grown < 64 * MIB, "the daemon grew by {} MiB", grown / MIB);
    assert!(median < Duration::from_millis(10), "a fresh client's first call took {median:?}");
    drop(stalled);
}

/// Holds its thread, as a Pyro user's method would.
#[derive(Debug, Default)]
pub struct Sleeper;

#[rmi::expose]
impl Sleeper {
    /// Blocks its thread for `millis`.
    pub fn sleep(&self, millis: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(millis));
        millis
    }

    /// Returns at once.
    pub fn quick(&self, x: u64) -> u64 {
        x
    }
}

/// Which tokio runtime a daemon runs on.
#[derive(Debug, Clone, Copy)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

/// A daemon on a runtime of its own, in a thread of its own (as in a
/// process of its own): what blocks it cannot block the test's clients.
struct DaemonThread {
    daemon: rmi::Daemon,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DaemonThread {
    /// Starts a daemon built by `builder` on a runtime of `flavor` (the
    /// multi-thread one with tokio's default of one worker per core), and
    /// lets `setup` register its objects.
    fn start(flavor: Flavor, builder: rmi::DaemonBuilder) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = match flavor {
                Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
                Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
            }
            .enable_all()
            .build()
            .unwrap();
            runtime.block_on(async move {
                let daemon = builder.bind("127.0.0.1:0").await.unwrap();
                tx.send(daemon.clone()).unwrap();
                daemon.serve().await.unwrap();
            });
        });
        let daemon = rx.recv_timeout(PATIENCE).expect("the daemon thread started");
        DaemonThread { daemon, thread: Some(thread) }
    }
}

impl Drop for DaemonThread {
    fn drop(&mut self) {
        self.daemon.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// (cores + 1) clients each call a method that blocks for 1.5 s; meanwhile
/// another client's ping, and a ping and a quick call on the connection of a
/// blocked call, are answered at once.
async fn blocking_methods_do_not_stall_others(flavor: Flavor) {
    let d = DaemonThread::start(flavor, builder());
    let uri = d.daemon.register(Sleeper, Some("sleeper")).unwrap();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let proxies: Vec<SleeperProxy> = (0..=cores).map(|_| SleeperProxy::new(&uri).unwrap()).collect();
    for p in &proxies {
        p.quick(0).await.unwrap();
    }
    let started = Instant::now();
    let blocked: Vec<_> = proxies
        .iter()
        .map(|p| {
            let p = p.clone();
            tokio::spawn(async move { p.sleep(1_500).await })
        })
        .collect();
    // Let every blocking call start.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = rmi::Proxy::new(&uri).unwrap();
    let started_ping = Instant::now();
    other.ping().await.unwrap();
    let fresh = started_ping.elapsed();
    let same = proxies[0].proxy();
    let started_ping = Instant::now();
    same.ping().await.unwrap();
    let same_ping = started_ping.elapsed();
    let started_quick = Instant::now();
    assert_eq!(proxies[0].quick(7).await.unwrap(), 7);
    let same_quick = started_quick.elapsed();
    let measured = started.elapsed();
    println!(
        "beside {} blocked calls ({flavor:?}): a fresh client's ping {fresh:?}, on a blocked call's connection \
         a ping {same_ping:?} and a quick call {same_quick:?}",
        cores + 1
    );
    for call in blocked {
        assert_eq!(call.await.unwrap().unwrap(), 1_500);
    }
    // The blocked calls ran together, and were all still running when the
    // others were answered.
    let all = started.elapsed();
    assert!(measured < Duration::from_millis(1_400), "measured after the blocked calls: {measured:?}");
    assert!(all < Duration::from_millis(2_900), "the blocked calls ran one after another: {all:?}");
    assert!(fresh < Duration::from_millis(10), "a fresh client's ping took {fresh:?}");
    assert!(same_ping < Duration::from_millis(10), "a ping beside a blocked call took {same_ping:?}");
    assert!(same_quick < Duration::from_millis(10), "a quick call beside a blocked call took {same_quick:?}");
}

#[tokio::test]
async fn blocking_methods_do_not_stall_others_on_a_multi_thread_runtime() {
    blocking_methods_do_not_stall_others(Flavor::MultiThread).await;
}

#[tokio::test]
async fn blocking_methods_do_not_stall_others_on_a_current_thread_runtime() {
    blocking_methods_do_not_stall_others(Flavor::CurrentThread).await;
}
