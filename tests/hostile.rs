//! Hostile clients against a real daemon and a real name server on
//! loopback: each wave is followed by a well-behaved client's call, which
//! must succeed quickly.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Calculator, CalculatorProxy, TestDaemon, builder, proxy_builder};
use rmi::{Config, Key, NameServerProxy, ObjectUri, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How quickly a well-behaved call must succeed after a wave.
const QUICK: Duration = Duration::from_secs(1);

/// The two servers every wave is aimed at.
struct Targets {
    _daemon: TestDaemon,
    calc: ObjectUri,
    ns: rmi_naming::RunningNameServer,
}

impl Targets {
    async fn start(key: Option<Key>) -> Self {
        let daemon = TestDaemon::start(builder().key(key.clone())).await;
        let calc = daemon.daemon.register(Calculator::default(), Some("calc")).unwrap();
        let mut options = rmi_naming::NameServerOptions::from_config(&Config::default());
        options.port = 0;
        options.broadcast_port = None;
        options.key = key;
        let ns = rmi_naming::start(options).await.unwrap();
        Targets { _daemon: daemon, calc, ns }
    }

    fn addresses(&self) -> [SocketAddr; 2] {
        [address(&self.calc), address(self.ns.uri())]
    }

    /// A fresh well-behaved client of each server calls once, quickly.
    async fn still_serve(&self, key: Option<&Key>, after: &str) {
        let calc = CalculatorProxy::from_proxy(proxy_builder(&self.calc).key(key.cloned()).build().unwrap());
        let ns = NameServerProxy::from_proxy(proxy_builder(self.ns.uri()).key(key.cloned()).build().unwrap());
        let started = Instant::now();
        let sum = tokio::time::timeout(QUICK, calc.add(2, 3)).await;
        assert!(matches!(sum, Ok(Ok(5))), "the daemon after {after}: {sum:?}");
        let pong = tokio::time::timeout(QUICK, ns.ping()).await;
        assert!(matches!(pong, Ok(Ok(()))), "the name server after {after}: {pong:?}");
        assert!(started.elapsed() < QUICK, "after {after}: {:?}", started.elapsed());
    }
}

fn address(uri: &ObjectUri) -> SocketAddr {
    uri.location.to_string().parse().unwrap()
}

/// A small deterministic generator, enough for garbage.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A connection that has done the handshake honestly, ready to misbehave.
async fn handshaken(addr: SocketAddr, key: Option<&Key>) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    rmi_core::handshake::client_handshake(&mut stream, key).await.unwrap();
    stream
}

/// What this process holds: resident and virtual size, in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmSize:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_truncated_frames_and_dropped_handshakes() {
    let targets = Targets::start(None).await;
    let mut garbage = Garbage(0x9E37_79B9_7F4A_7C15);
    for addr in targets.addresses() {
        // Random bytes, from the first byte on.
        for round in 0..50 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let _ = s.write_all(&garbage.bytes(1 + round * 37)).await;
        }
        // Dropped in the middle of the handshake.
        for cut in 1..40 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut hello = vec![0, 0, 0, 39];
            hello.extend_from_slice(b"RMI\0\x00\x02\x00");
            hello.extend_from_slice(&[7; 32]);
            let _ = s.write_all(&hello[..cut.min(hello.len())]).await;
        }
        // After an honest handshake: random frames, and frames cut short.
        for round in 0..30 {
            let mut s = handshaken(addr, None).await;
            let body = garbage.bytes(round * 11);
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            let _ = s.write_all(&frame).await;
            let mut cut = handshaken(addr, None).await;
            let _ = cut.write_all(&(1000u32).to_be_bytes()).await;
            let _ = cut.write_all(&garbage.bytes(round)).await;
        }
    }
    targets.still_serve(None, "random bytes and truncated frames").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_length_prefixes_reserve_no_memory() {
    let targets = Targets::start(None).await;
    let (rss_before, vsz_before) = memory();
    let mut held = Vec::new();
    for addr in targets.addresses() {
        for prefix in [1u32 << 30, 2 << 30, 3 << 30, u32::MAX] {
            for _ in 0..25 {
                let mut s = handshaken(addr, None).await;
                s.write_all(&prefix.to_be_bytes()).await.unwrap();
                held.push(s);
            }
        }
    }
    // Every one is refused at once: the server closes it without waiting
    // for the announced bytes.
    for s in &mut held {
        let mut byte = [0u8; 1];
        let end = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await;
        assert!(matches!(end, Ok(Ok(0)) | Ok(Err(_))), "a 1-4 GiB frame was not refused: {end:?}");
    }
    let (rss_after, vsz_after) = memory();
    // 200 frames of 1-4 GiB announced: had any been reserved, the virtual
    // size would have grown by gigabytes.
    assert!(rss_after.saturating_sub(rss_before) < 64 * 1024, "RSS grew {} KiB", rss_after - rss_before);
    assert!(vsz_after.saturating_sub(vsz_before) < 256 * 1024, "VSZ grew {} KiB", vsz_after - vsz_before);
    targets.still_serve(None, "1-4 GiB length prefixes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_frames_within_a_large_limit_are_not_reserved_either() {
    // A daemon that accepts 3 GiB messages: 1 and 2 GiB announcements pass
    // the limit, and still nothing is reserved for them beyond what arrives.
    let daemon = TestDaemon::start(builder().max_message_size(3 << 30)).await;
    let uri = daemon.daemon.register(Calculator::default(), Some("calc")).unwrap();
    // One call first, so that what the process sets up once (rmi's alarm
    // thread and its allocator arena, say) is in the baseline.
    let warm = CalculatorProxy::new(&uri).unwrap();
    assert_eq!(tokio::time::timeout(QUICK, warm.add(1, 1)).await.unwrap().unwrap(), 2);
    let (rss_before, vsz_before) = memory();
    let mut held = Vec::new();
    for prefix in [1u32 << 30, 2 << 30] {
        for _ in 0..25 {
            let mut s = handshaken(address(&uri), None).await;
            s.write_all(&prefix.to_be_bytes()).await.unwrap();
            s.write_all(&[0; 4096]).await.unwrap();
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_after, vsz_after) = memory();
    // The process-wide budget for memory reserved ahead of data is 256 MiB;
    // past it, each connection holds about what it sent.
    let budget_kib = 256 * 1024;
    assert!(rss_after.saturating_sub(rss_before) < 64 * 1024, "RSS grew {} KiB", rss_after - rss_before);
    assert!(
        vsz_after.saturating_sub(vsz_before) < budget_kib + 128 * 1024,
        "VSZ grew {} KiB for 50 frames of 1-2 GiB announced",
        vsz_after - vsz_before
    );
    let calc = CalculatorProxy::new(&uri).unwrap();
    assert_eq!(tokio::time::timeout(QUICK, calc.add(1, 1)).await.unwrap().unwrap(), 2);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_replays_and_reordered_frames() {
    let key = Key::from("the right key");
    let targets = Targets::start(Some(key.clone())).await;
    for uri in [targets.calc.clone(), targets.ns.uri().clone()] {
        for wrong in [None, Some(Key::from("a wrong key"))] {
            let proxy = proxy_builder(&uri).key(wrong).build().unwrap();
            assert!(matches!(proxy.ping().await, Err(rmi::Error::Auth(_))));
        }
        // Through a man in the middle that replays the first call's run of
        // frames, or swaps the first two runs: the daemon drops the connection.
        for attack in ["replay", "reorder"] {
            let mut first = None;
            let relay = rmi_core::testing::man_in_the_middle_runs(address(&uri), move |index, run| {
                match (attack, index) {
                    ("replay", 0) => vec![run.clone(), run],
                    ("reorder", 0) => {
                        first = Some(run);
                        vec![]
                    }
                    ("reorder", 1) => vec![run, first.take().unwrap_or_default()],
                    _ => vec![run],
                }
            })
            .await
            .unwrap();
            let through =
                ObjectUri { object: uri.object.clone(), location: rmi::Location::Tcp(relay.into()) };
            let proxy = Proxy::builder_with_config(&through, &Config::default())
                .key(Some(key.clone()))
                .timeout(Some(Duration::from_secs(5)))
                .build()
                .unwrap();
            // The second call after a pause, so that it is a run of its own.
            let second = async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                proxy.ping().await
            };
            let (a, b) = tokio::join!(proxy.ping(), second);
            assert!(a.is_err() || b.is_err(), "{attack}: the daemon answered a tampered stream");
        }
    }
    targets.still_serve(Some(&key), "wrong keys, replays and reordered frames").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_a_thousand_connects() {
    let targets = Targets::start(None).await;
    for addr in targets.addresses() {
        let connects: Vec<_> = (0..1000)
            .map(|_| {
                tokio::spawn(async move {
                    let started = Instant::now();
                    let s = TcpStream::connect(addr).await;
                    (started.elapsed(), s.is_ok())
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        for c in connects {
            let (took, ok) = c.await.unwrap();
            assert!(ok, "a connect failed");
            slowest = slowest.max(took);
        }
        assert!(slowest < Duration::from_secs(1), "a connect waited {slowest:?}");
    }
    targets.still_serve(None, "a burst of 1,000 connects").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_argument_types_unknown_objects_and_methods() {
    let targets = Targets::start(None).await;
    let calc = Proxy::new(&targets.calc).unwrap();
    let ns = Proxy::new(targets.ns.uri()).unwrap();
    // Each a method that exists, with arguments of the wrong types.
    for (proxy, method) in [(&calc, "add"), (&ns, "lookup"), (&ns, "register")] {
        for _ in 0..20 {
            let err = proxy.call::<u64>(method, ("x", 1.5, vec![1u8], u64::MAX)).await.unwrap_err();
            assert!(matches!(err, rmi::Error::BadArguments(_)), "{method}: {err:?}");
            let err = proxy.call::<u64>(method, ()).await.unwrap_err();
            assert!(matches!(err, rmi::Error::BadArguments(_)), "{method}: {err:?}");
        }
        let err = proxy.call::<()>("no_such_method", ()).await.unwrap_err();
        assert!(matches!(err, rmi::Error::MethodNotFound(_)), "{err:?}");
    }
    for location in [&targets.calc, targets.ns.uri()] {
        let nobody =
            Proxy::new(ObjectUri { object: "nobody".into(), location: location.location.clone() }).unwrap();
        assert!(matches!(nobody.call::<()>("ping", ()).await, Err(rmi::Error::ObjectNotFound(_))));
    }
    targets.still_serve(None, "wrong arguments, unknown objects and methods").await;
}
