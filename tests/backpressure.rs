//! Flow control, against a real daemon on loopback: a client that stops
//! reading its replies holds a bounded amount of the daemon's memory and
//! slows nobody else down; the write timeout closes it; a daemon that stops
//! reading makes a proxy's callers wait rather than buffer.
//!
//! The daemon runs in this test process and the stalled clients are raw
//! connections that hold next to nothing, so the growth of this process's
//! resident memory is the daemon's. The tests that read it take turns
//! (`TURN`), and the replies are made of fresh pages, so that what is
//! counted is what the daemon holds. Resident memory says what the process
//! costs, but not whether the daemon gave its memory back: glibc keeps
//! freed blocks for reuse. So the allocator is counted too (`HEAP`): the
//! bytes allocated and not freed are what the daemon still holds.

mod common;

use std::time::{Duration, Instant};

use common::{CalculatorProxy, PATIENCE, TestDaemon, builder};
use rmi::{Blob, ObjectUri};
use rmi_core::link::{self, MessageReader, MessageWriter};
use rmi_core::net::Connection;
use rmi_core::{Call, Encoded, Message};

#[global_allocator]
static HEAP: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed, by the whole process. (Reallocations
/// are already in both counts; `bytes_reallocated` is their net, again.)
fn live_heap() -> isize {
    let stats = HEAP.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

/// One test at a time: some read this process's memory, others allocate
/// plenty of it.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn turn() -> tokio::sync::MutexGuard<'static, ()> {
    TURN.lock().await
}

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
        writer.send_batched(&Message::call(id, None, Call::new("blobs", "blob", args.clone()))).unwrap();
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
    let _turn = turn().await;
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

impl DaemonThread {
    /// The thread the daemon's (current-thread) runtime runs on.
    fn runtime_thread(&self) -> std::thread::ThreadId {
        self.thread.as_ref().expect("running").thread().id()
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
    let _turn = turn().await;
    blocking_methods_do_not_stall_others(Flavor::MultiThread).await;
}

#[tokio::test]
async fn blocking_methods_do_not_stall_others_on_a_current_thread_runtime() {
    let _turn = turn().await;
    blocking_methods_do_not_stall_others(Flavor::CurrentThread).await;
}

/// What one burst of 20 stalled clients did to the daemon.
struct Burst {
    /// The most the daemon held for its clients.
    peak_queued: usize,
    /// The most resident memory.
    peak_rss: usize,
    /// The most heap in use.
    peak_heap: isize,
    /// How long after the burst's start its connections were all closed.
    closed_after: Duration,
    /// Resident memory once they were.
    after_rss: usize,
    /// Heap bytes in use once they were.
    after_heap: isize,
}

/// 20 clients each pipeline 1,500 calls of 1 MiB replies and read none;
/// samples the daemon for 2 s, checks that fresh clients are served
/// meanwhile, then waits for the write timeout to close them.
async fn stalled_burst(d: &TestDaemon, calc: &ObjectUri, write_timeout: Duration) -> Burst {
    let blobs = d.daemon.uri_for("blobs");
    let before = d.daemon.connections();
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(stalled_client(&blobs, 1_500, MIB as u64).await);
    }
    let mut peak_queued = 0;
    let mut peak_rss = rss();
    let mut peak_heap = live_heap();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        peak_queued = peak_queued.max(d.daemon.queued_bytes());
        peak_rss = peak_rss.max(rss());
        peak_heap = peak_heap.max(live_heap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let median = fresh_first_calls(calc, 11).await;
    assert!(median < Duration::from_millis(10), "a fresh client's first call took {median:?}");
    while d.daemon.connections() > before {
        assert!(started.elapsed() < write_timeout + PATIENCE, "the stalled connections stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed_after = started.elapsed();
    assert_eq!(d.daemon.queued_bytes(), 0, "everything held for the stalled clients was given back");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stalled);
    Burst { peak_queued, peak_rss, peak_heap, closed_after, after_rss: rss(), after_heap: live_heap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_stalled_clients_stay_within_the_daemons_bound_until_the_write_timeout_closes_them() {
    let _turn = turn().await;
    let write_timeout = Duration::from_secs(3);
    let d = TestDaemon::start(builder().write_timeout(Some(write_timeout))).await;
    d.daemon.register(Blobs, Some("blobs")).unwrap();
    let calc = d.daemon.register(common::Calculator::default(), Some("calc")).unwrap();
    let reader = rmi::Proxy::new(d.daemon.uri_for("blobs")).unwrap();
    for _ in 0..32 {
        let b: Blob = reader.call("blob", (MIB as u64,)).await.unwrap();
        assert_eq!(b.len(), MIB);
    }
    drop(reader);
    // A client that reads its replies calls on throughout; none may fail.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let steady = tokio::spawn({
        let calc = CalculatorProxy::new(&calc).unwrap();
        async move {
            let mut calls = 0u64;
            while !*stopped.borrow_and_update() {
                assert_eq!(calc.add(2, 3).await.unwrap(), 5);
                calls += 1;
                let _ = tokio::time::timeout(Duration::from_millis(5), stopped.changed()).await;
            }
            calls
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = rss();
    let idle_heap = live_heap();
    let total = rmi_daemon::DEFAULT_MAX_QUEUED_TOTAL;

    // While they last, the daemon's total stays within its bound (one reply
    // per connection may pass it: a connection holding nothing always starts
    // one call), and so does its memory; the write timeout closes them.
    let first = stalled_burst(&d, &calc, write_timeout).await;
    // Twice: nothing of a burst stays behind.
    let second = stalled_burst(&d, &calc, write_timeout).await;
    let mib = |bytes: usize| bytes / MIB;
    for (n, b) in [(1, &first), (2, &second)] {
        println!(
            "burst {n} of 20 stalled clients: held at most {} MiB for them (bound {} MiB), heap grew by {} MiB \
             ({} MiB resident); all closed {:?} after they started (write timeout {write_timeout:?}); then {} KiB of heap over idle \
             ({} MiB resident)",
            mib(b.peak_queued),
            mib(total),
            (b.peak_heap - idle_heap) / MIB as isize,
            mib(b.peak_rss.saturating_sub(idle)),
            b.closed_after,
            (b.after_heap - idle_heap) / 1024,
            (b.after_rss as i64 - idle as i64) / MIB as i64,
        );
        // Everything it held is freed: the heap is back to its idle size
        // (the steady client's calls come and go meanwhile).
        assert!(
            (b.after_heap - idle_heap).unsigned_abs() <= MIB,
            "the daemon still holds {} KiB of heap after burst {n}",
            (b.after_heap - idle_heap) / 1024
        );
        assert!(b.peak_queued >= total / 2, "the stalled clients should have filled the bound");
        assert!(b.peak_queued <= total + 20 * MIB, "the daemon held {} MiB", mib(b.peak_queued));

        assert!(b.closed_after >= write_timeout, "closed before the write timeout: {:?}", b.closed_after);
    }
    // Its memory: what it holds, and of each connection the reply the socket
    // is taking (freed once all written) and the calls it holds unstarted
    // (at most HELD_LIMIT), and a little more (buffers, the test's own
    // clients); resident memory adds what glibc keeps and is only checked
    // for gross excess.
    let per_connection = MIB + rmi_daemon::HELD_LIMIT;
    for b in [&first, &second] {
        let heap = (b.peak_heap - idle_heap).unsigned_abs();
        assert!(heap < total + 20 * per_connection + 16 * MIB, "the heap grew by {} MiB", mib(heap));
    }
    let grown = first.peak_rss.saturating_sub(idle);
    assert!(grown < 2 * total + 32 * MIB, "grew by {} MiB", mib(grown));
    stop.send(true).unwrap();
    let steady_calls = steady.await.unwrap();
    assert!(steady_calls > 10, "the steady client made {steady_calls} calls");
}

/// Notes when its calls end, cancelled or not.
#[derive(Debug, Default)]
pub struct Waiter {
    ended: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

/// Counts one end when dropped.
struct Ends(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl Drop for Ends {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[rmi::expose]
impl Waiter {
    /// Waits `millis` without holding a thread.
    pub async fn wait(&self, millis: u64) -> u64 {
        let _ends = Ends(self.ended.clone());
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }

    /// Adds.
    #[rmi::nonblocking]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_call_limit_a_cancel_still_aborts_a_running_call_at_once() {
    let _turn = turn().await;
    let d = TestDaemon::start(builder().max_calls_per_connection(2)).await;
    let waiter = Waiter::default();
    let ended = waiter.ended.clone();
    let uri = d.daemon.register(waiter, Some("waiter")).unwrap();
    let proxy = WaiterProxy::new(&uri).unwrap();
    // Two calls fill the limit; the first gives up after 300 ms.
    let first = tokio::spawn({
        let p = proxy.clone().with_timeout(Some(Duration::from_millis(300)));
        async move { p.wait(10_000).await }
    });
    let second = tokio::spawn({
        let p = proxy.clone();
        async move { p.wait(10_000).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third call waits its turn behind them.
    let started = Instant::now();
    let third = tokio::spawn({
        let p = proxy.clone();
        async move { p.add(20, 22).await }
    });
    let err = first.await.unwrap().unwrap_err();
    assert!(matches!(err, rmi::Error::Timeout(_)), "{err:?}");
    let gave_up = Instant::now();
    // The cancel reached the daemon though the connection is at its limit:
    // the first call was aborted, and the third took its place.
    while ended.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(gave_up.elapsed() < Duration::from_secs(2), "the cancelled call is still running");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let aborted_after = gave_up.elapsed();
    assert_eq!(tokio::time::timeout(PATIENCE, third).await.unwrap().unwrap().unwrap(), 42);
    let third_took = started.elapsed();
    println!(
        "aborted {aborted_after:?} after the caller gave up; the held call answered after {third_took:?}"
    );
    assert!(aborted_after < Duration::from_millis(500), "aborted only after {aborted_after:?}");
    assert!(third_took < Duration::from_secs(2), "the held call waited {third_took:?}");
    second.abort();
}

/// A cancel that arrives with its call, in the same read, before the call's
/// worker first ran: the call is still aborted, and gives its place back at
/// once (with room for one call, the next one is answered), not left to run
/// to its end.
#[tokio::test]
async fn a_cancel_read_with_its_call_aborts_it() {
    let _turn = turn().await;
    let d = TestDaemon::start(builder().max_calls_per_connection(1)).await;
    let uri = d.daemon.register(Waiter::default(), Some("waiter")).unwrap();
    let mut connection = Connection::connect(&uri.location).await.unwrap();
    let session = rmi_core::handshake::client_handshake(&mut connection, None).await.unwrap();
    let (mut reader, writer) = link::split(connection, session, MIB);
    // Queued together, so that one write carries both.
    let wait = Call::new("waiter", "wait", Encoded::encode(&(600_000u64,)).unwrap());
    writer.send_batched(&Message::Call { id: 1, remaining: None, call: wait }).unwrap();
    writer.send_batched(&Message::Cancel { id: 1 }).unwrap();
    // The only place is free again: the next call is answered, and the
    // aborted one sent no reply.
    let add = Call::new("waiter", "add", Encoded::encode(&(20u64, 22u64)).unwrap());
    writer.send(&Message::Call { id: 2, remaining: None, call: add }).unwrap();
    match tokio::time::timeout(PATIENCE, reader.recv::<Message>()).await {
        Ok(Some(Ok(Message::Reply { id, reply }))) => {
            assert_eq!(id, 2, "a reply for the cancelled call came back");
            assert_eq!(reply.unwrap().decode::<u64>().unwrap(), 42);
        }
        Err(_) => panic!("no reply in {PATIENCE:?}: the cancelled call still holds the connection's place"),
        other => panic!("expected the reply to call 2, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_stops_reading_makes_callers_wait_not_buffer() {
    let _turn = turn().await;
    // A "daemon" that completes the handshake and then reads nothing until
    // told to; then it counts what the proxy had queued for it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (drain, drained) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut socket, _) = listener.accept().await.unwrap();
        rmi_core::handshake::server_handshake(&mut socket, None).await.unwrap();
        drained.await.unwrap();
        let mut received = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), socket.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            received += n;
        }
        received
    });
    let uri: ObjectUri = format!("RMI:stuck@{addr}").parse().unwrap();
    let proxy = common::proxy_builder(&uri).timeout(Some(Duration::from_millis(500))).build().unwrap();
    // 200 calls with 1 MiB arguments each (encoded: copied into the queue).
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let arg = "x".repeat(MIB) + &i.to_string();
                proxy.call::<u64>("take", (arg,)).await
            })
        })
        .collect();
    for call in calls {
        let err = tokio::time::timeout(PATIENCE, call).await.unwrap().unwrap().unwrap_err();
        assert!(matches!(err, rmi::Error::Timeout(_)), "{err:?}");
    }
    // Every caller gave up; what did the proxy keep for the daemon?
    drain.send(()).unwrap();
    let received = tokio::time::timeout(PATIENCE, daemon).await.unwrap().unwrap();
    println!("a daemon that read nothing: the proxy held {} MiB for it, of 200 MiB asked", received / MIB);
    assert!(received < 32 * MIB, "the proxy queued {} MiB for a daemon that was not reading", received / MIB);
    drop(proxy);
}

#[tokio::test]
async fn a_batch_of_blocking_calls_runs_on_the_blocking_pool_in_order() {
    let _turn = turn().await;
    let d = DaemonThread::start(Flavor::CurrentThread, builder());
    let uri = d.daemon.register(Sleeper, Some("sleeper")).unwrap();
    let proxy = rmi::Proxy::new(&uri).unwrap();
    let mut batch = proxy.batch();
    let calls: Vec<_> = (0..5u64)
        .map(|i| {
            if i % 2 == 0 { batch.call::<u64>("sleep", (200u64,)) } else { batch.call::<u64>("quick", (i,)) }
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    let running = tokio::spawn(async move { batch.run().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ping_started = Instant::now();
    rmi::Proxy::new(&uri).unwrap().ping().await.unwrap();
    let ping = ping_started.elapsed();
    let results = running.await.unwrap().unwrap();
    let took = started.elapsed();
    for (i, call) in calls.into_iter().enumerate() {
        let want = if i % 2 == 0 { 200 } else { i as u64 };
        assert_eq!(results.get(call).unwrap(), want);
    }
    println!("a batch blocking 600 ms: a ping meanwhile took {ping:?}; the batch {took:?}");
    assert!(ping < Duration::from_millis(10), "a ping beside a blocking batch took {ping:?}");
    assert!(took >= Duration::from_millis(600), "the batch's calls ran one after another: {took:?}");
}

/// Tells where its methods run.
#[derive(Debug)]
pub struct Whereabouts {
    runtime: std::thread::ThreadId,
}

#[rmi::expose]
impl Whereabouts {
    /// A plain method: on the blocking pool.
    pub fn plain(&self) -> bool {
        std::thread::current().id() == self.runtime
    }

    /// A `#[nonblocking]` method: where its call was read.
    #[rmi::nonblocking]
    pub fn marked(&self) -> bool {
        std::thread::current().id() == self.runtime
    }

    /// An async method: on the runtime.
    pub async fn later(&self) -> bool {
        tokio::task::yield_now().await;
        std::thread::current().id() == self.runtime
    }
}

#[tokio::test]
async fn plain_methods_run_on_the_blocking_pool_and_marked_ones_where_they_are_read() {
    let _turn = turn().await;
    let d = DaemonThread::start(Flavor::CurrentThread, builder());
    let uri = d.daemon.register(Whereabouts { runtime: d.runtime_thread() }, Some("where")).unwrap();
    let proxy = WhereaboutsProxy::new(&uri).unwrap();
    assert!(!proxy.plain().await.unwrap(), "a plain fn ran on the runtime's thread");
    assert!(proxy.marked().await.unwrap(), "a #[nonblocking] fn left the runtime's thread");
    assert!(proxy.later().await.unwrap(), "an async fn left the runtime's thread");
}
