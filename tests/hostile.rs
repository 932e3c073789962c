//! Hostile clients against a real daemon and a real name server on
//! loopback: each wave is followed by a well-behaved client's call, which
//! must succeed quickly. Every wave runs twice: against plaintext servers,
//! and against servers that run TLS (where raw bytes meet the TLS layer,
//! and the waves that follow an honest handshake misbehave inside TLS).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Calculator, CalculatorProxy, TestDaemon, builder, proxy_builder};
use rmi::tls::{ClientAuth, ClientTls, ServerTls};
use rmi::{Config, Key, NameServerProxy, ObjectUri, Proxy};
use rmi_core::net::Connection;
use rmi_naming::devcerts::{DevCa, Usage, Validity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// TLS for both sides, with certificates made for this test.
#[derive(Clone)]
struct Tls {
    server: ServerTls,
    client: ClientTls,
}

impl Tls {
    fn new() -> Self {
        let ca = DevCa::new("hostile CA").unwrap();
        let cert = ca.issue("daemon", &["127.0.0.1"], Usage::Server, Validity::days(1)).unwrap();
        let roots = rmi::tls::roots([ca.cert().der().clone()]).unwrap();
        Tls {
            server: ServerTls::new(cert.chain(), cert.key(), ClientAuth::None).unwrap(),
            client: ClientTls::new(roots, None).unwrap(),
        }
    }
}

/// Plaintext, or TLS.
type Mode = Option<Arc<Tls>>;

fn plaintext() -> Mode {
    None
}

fn tls() -> Mode {
    Some(Arc::new(Tls::new()))
}

/// How quickly a well-behaved call must succeed after a wave.
const QUICK: Duration = Duration::from_secs(1);

/// The two servers every wave is aimed at.
struct Targets {
    _daemon: TestDaemon,
    calc: ObjectUri,
    ns: rmi_naming::RunningNameServer,
    mode: Mode,
}

impl Targets {
    async fn start(key: Option<Key>, mode: Mode) -> Self {
        let server_tls = mode.as_ref().map(|t| t.server.clone());
        let daemon = TestDaemon::start(builder().key(key.clone()).tls(server_tls.clone())).await;
        let calc = daemon.daemon.register(Calculator::default(), Some("calc")).unwrap();
        let mut options = rmi_naming::NameServerOptions::from_config(&Config::default());
        options.port = 0;
        options.broadcast_port = None;
        options.key = key;
        options.tls = server_tls;
        let ns = rmi_naming::start(options).await.unwrap();
        Targets { _daemon: daemon, calc, ns, mode }
    }

    /// A proxy builder for `uri` in this mode.
    fn proxy(&self, uri: &ObjectUri) -> rmi::ProxyBuilder {
        proxy_builder(uri).tls(self.mode.as_ref().map(|t| t.client.clone()))
    }

    /// A connection that has done the handshakes honestly, ready to misbehave.
    async fn handshaken(&self, addr: SocketAddr, key: Option<&Key>) -> Connection {
        handshaken(addr, key, &self.mode).await
    }

    fn addresses(&self) -> [SocketAddr; 2] {
        [address(&self.calc), address(self.ns.uri())]
    }

    /// A fresh well-behaved client of each server calls once, quickly.
    async fn still_serve(&self, key: Option<&Key>, after: &str) {
        let calc = CalculatorProxy::from_proxy(self.proxy(&self.calc).key(key.cloned()).build().unwrap());
        let ns = NameServerProxy::from_proxy(self.proxy(self.ns.uri()).key(key.cloned()).build().unwrap());
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

/// A connection that has done the handshakes (TLS's in TLS mode, then
/// rmi's) honestly, ready to misbehave.
async fn handshaken(addr: SocketAddr, key: Option<&Key>, mode: &Mode) -> Connection {
    let location = rmi::Location::Tcp(addr.into());
    let mut connection = Connection::connect(&location).await.unwrap();
    if let Some(tls) = mode {
        connection = tls.client.connect(connection, &location).await.unwrap();
    }
    rmi_core::handshake::client_handshake(&mut connection, key).await.unwrap();
    connection
}

/// Runs a wave against plaintext servers and against TLS servers.
macro_rules! both_modes {
    ($($wave:ident),* $(,)?) => {
        mod plaintext {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $wave() {
                    super::$wave(super::plaintext()).await;
                }
            )*
        }
        mod over_tls {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $wave() {
                    super::$wave(super::tls()).await;
                }
            )*
        }
    };
}

both_modes!(
    random_bytes_truncated_frames_and_dropped_handshakes,
    lying_length_prefixes_reserve_no_memory,
    announced_frames_within_a_large_limit_are_not_reserved_either,
    wrong_keys_replays_and_reordered_frames,
    a_burst_of_a_thousand_connects,
    wrong_argument_types_unknown_objects_and_methods,
);

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

async fn random_bytes_truncated_frames_and_dropped_handshakes(mode: Mode) {
    let targets = Targets::start(None, mode).await;
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
            let mut s = targets.handshaken(addr, None).await;
            let body = garbage.bytes(round * 11);
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            let _ = s.write_all(&frame).await;
            let mut cut = targets.handshaken(addr, None).await;
            let _ = cut.write_all(&(1000u32).to_be_bytes()).await;
            let _ = cut.write_all(&garbage.bytes(round)).await;
        }
    }
    targets.still_serve(None, "random bytes and truncated frames").await;
}

async fn lying_length_prefixes_reserve_no_memory(mode: Mode) {
    let targets = Targets::start(None, mode).await;
    let (rss_before, vsz_before) = memory();
    let mut held = Vec::new();
    for addr in targets.addresses() {
        for prefix in [1u32 << 30, 2 << 30, 3 << 30, u32::MAX] {
            for _ in 0..25 {
                let mut s = targets.handshaken(addr, None).await;
                s.write_all(&prefix.to_be_bytes()).await.unwrap();
                s.flush().await.unwrap();
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

async fn announced_frames_within_a_large_limit_are_not_reserved_either(mode: Mode) {
    // A daemon that accepts 3 GiB messages: 1 and 2 GiB announcements pass
    // the limit, and still nothing is reserved for them beyond what arrives.
    let server_tls = mode.as_ref().map(|t| t.server.clone());
    let daemon = TestDaemon::start(builder().max_message_size(3 << 30).tls(server_tls)).await;
    let uri = daemon.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let client_tls = mode.as_ref().map(|t| t.client.clone());
    let new_proxy =
        || CalculatorProxy::from_proxy(proxy_builder(&uri).tls(client_tls.clone()).build().unwrap());
    // One call first, so that what the process sets up once (rmi's alarm
    // thread and its allocator arena, say) is in the baseline.
    let warm = new_proxy();
    assert_eq!(tokio::time::timeout(QUICK, warm.add(1, 1)).await.unwrap().unwrap(), 2);
    let (rss_before, vsz_before) = memory();
    let mut held = Vec::new();
    for prefix in [1u32 << 30, 2 << 30] {
        for _ in 0..25 {
            let mut s = handshaken(address(&uri), None, &mode).await;
            s.write_all(&prefix.to_be_bytes()).await.unwrap();
            s.write_all(&[0; 4096]).await.unwrap();
            s.flush().await.unwrap();
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
    let calc = new_proxy();
    assert_eq!(tokio::time::timeout(QUICK, calc.add(1, 1)).await.unwrap().unwrap(), 2);
    drop(held);
}

async fn wrong_keys_replays_and_reordered_frames(mode: Mode) {
    let key = Key::from("the right key");
    let targets = Targets::start(Some(key.clone()), mode.clone()).await;
    for uri in [targets.calc.clone(), targets.ns.uri().clone()] {
        for wrong in [None, Some(Key::from("a wrong key"))] {
            let proxy = targets.proxy(&uri).key(wrong).build().unwrap();
            assert!(matches!(proxy.ping().await, Err(rmi::Error::Auth(_))));
        }
        if let Some(tls) = &mode {
            // Under TLS a man in the middle sees records, not runs: one with a
            // byte altered fails TLS's check, and the daemon drops the
            // connection.
            let relay = rmi_core::testing::bit_flipper(address(&uri), 4096).await.unwrap();
            let through =
                ObjectUri { object: uri.object.clone(), location: rmi::Location::Tcp(relay.into()) };
            let proxy = CalculatorProxy::from_proxy(
                Proxy::builder_with_config(&through, &Config::default())
                    .tls(Some(tls.client.clone()))
                    .key(Some(key.clone()))
                    .timeout(Some(Duration::from_secs(5)))
                    .build()
                    .unwrap(),
            );
            let sent = proxy.blob_len(rmi::Blob::from(vec![7u8; 64 * 1024])).await;
            assert!(sent.is_err(), "the daemon took an altered record: {sent:?}");
            continue;
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

async fn a_burst_of_a_thousand_connects(mode: Mode) {
    let targets = Targets::start(None, mode).await;
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

async fn wrong_argument_types_unknown_objects_and_methods(mode: Mode) {
    let targets = Targets::start(None, mode).await;
    let calc = targets.proxy(&targets.calc).build().unwrap();
    let ns = targets.proxy(targets.ns.uri()).build().unwrap();
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
        let nobody = targets
            .proxy(&ObjectUri { object: "nobody".into(), location: location.location.clone() })
            .build()
            .unwrap();
        assert!(matches!(nobody.call::<()>("ping", ()).await, Err(rmi::Error::ObjectNotFound(_))));
    }
    targets.still_serve(None, "wrong arguments, unknown objects and methods").await;
}
