//! Silent and idle connections, and every limit at its edge: handshake
//! timeout, idle timeout, maximum connections, calls per connection.

mod common;

use std::time::{Duration, Instant};

use common::{Calculator, CalculatorProxy, PATIENCE, TestDaemon, builder, proxy_builder};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn address(uri: &rmi::ObjectUri) -> std::net::SocketAddr {
    uri.location.to_string().parse().unwrap()
}

/// Waits until `check` holds, within `PATIENCE`.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < PATIENCE, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_silent_connections_do_not_slow_a_client_down() {
    // Both ends of 2,000 connections live in this process.
    let limit = rlimit::increase_nofile_limit(8192).unwrap();
    assert!(limit >= 4200, "could not raise the open-file limit (got {limit})");
    let d = TestDaemon::start(builder().handshake_timeout(Duration::from_secs(120))).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let mut silent = Vec::with_capacity(2000);
    for _ in 0..2000 {
        silent.push(TcpStream::connect(address(&uri)).await.unwrap());
    }
    eventually("the daemon accepted 2,000 silent connections", || d.daemon.connections() >= 2000).await;
    // Fresh clients: connecting, the handshake and a call, each served fast.
    let mut times = Vec::new();
    for _ in 0..10 {
        let calc = CalculatorProxy::new(&uri).unwrap();
        let started = Instant::now();
        assert_eq!(calc.add(20, 22).await.unwrap(), 42);
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "first call of a fresh client beside 2,000 silent connections: median {:?}, max {:?}",
        times[5], times[9]
    );
    assert!(times[5] < Duration::from_millis(10), "median {:?}", times[5]);
    drop(silent);
}

#[tokio::test]
async fn the_handshake_timeout_closes_silent_connections_and_spares_slow_ones() {
    let limit = Duration::from_millis(400);
    let d = TestDaemon::start(builder().handshake_timeout(limit)).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    // Silent: closed once the limit passes, not before.
    let started = Instant::now();
    let mut silent = TcpStream::connect(address(&uri)).await.unwrap();
    let mut byte = [0u8; 1];
    let end = tokio::time::timeout(PATIENCE, silent.read(&mut byte)).await.unwrap();
    assert!(matches!(end, Ok(0) | Err(_)));
    let waited = started.elapsed();
    assert!(waited >= limit - Duration::from_millis(20) && waited < limit * 4, "closed after {waited:?}");
    // Slow but inside the limit: served.
    let mut slow = TcpStream::connect(address(&uri)).await.unwrap();
    tokio::time::sleep(limit / 2).await;
    assert!(rmi_core::handshake::client_handshake(&mut slow, None).await.is_ok());
}

#[tokio::test]
async fn the_idle_timeout_closes_quiet_connections_and_proxies_reconnect() {
    let limit = Duration::from_millis(400);
    let d = TestDaemon::start(builder().idle_timeout(Some(limit))).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let calc = CalculatorProxy::new(&uri).unwrap();
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    assert_eq!(d.daemon.connections(), 1);
    // Below the limit: still open.
    tokio::time::sleep(limit / 2).await;
    assert_eq!(d.daemon.connections(), 1, "closed before its idle time");
    // Past it: closed.
    eventually("the idle connection was closed", || d.daemon.connections() == 0).await;
    // The proxy notices and connects again for its next call.
    assert_eq!(calc.add(2, 2).await.unwrap(), 4);
    // A call that runs longer than the idle limit keeps its connection.
    assert_eq!(calc.slow_add(3, 3, 1_000).await.unwrap(), 6);
}

#[tokio::test]
async fn at_the_connection_limit_newcomers_wait_and_then_get_in() {
    let d = TestDaemon::start(builder().max_connections(3)).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let mut in_use = Vec::new();
    for i in 0..3 {
        let calc = CalculatorProxy::new(&uri).unwrap();
        assert_eq!(calc.add(i, 1).await.unwrap(), i + 1);
        in_use.push(calc);
    }
    // The fourth waits in the backlog: its connect times out, clearly.
    let waiting = CalculatorProxy::from_proxy(
        proxy_builder(&uri).connect_timeout(Duration::from_millis(300)).build().unwrap(),
    );
    let err = waiting.add(1, 1).await.unwrap_err();
    assert!(matches!(err, rmi::Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    // One leaves; a newcomer gets in.
    drop(in_use.pop());
    eventually("a connection slot was freed", || d.daemon.connections() == 2).await;
    let newcomer = CalculatorProxy::new(&uri).unwrap();
    assert_eq!(newcomer.add(5, 5).await.unwrap(), 10);
    for calc in &in_use {
        assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_calls_per_connection_limit_calls_wait_their_turn() {
    let d = TestDaemon::start(builder().max_calls_per_connection(2)).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let calc = CalculatorProxy::new(&uri).unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let calc = calc.clone();
            tokio::spawn(async move { calc.slow_add(i, 1, 200).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), i as i64 + 1);
    }
    // Two at a time: three rounds of 200 ms, and no error.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(550), "{took:?}: more than 2 ran at once");
    assert!(took < Duration::from_secs(5), "{took:?}");
}
