//! Methods that stream their results, against a real daemon on loopback:
//! the three ends (end, error, cancel), drop and a closed connection
//! stopping the producer, typed and dynamic streams, and where streams are
//! refused. (A slow consumer bounding the producer is `stream_memory.rs`:
//! it reads the process's memory, so it runs alone.)

mod common;
#[path = "common/numbers.rs"]
mod numbers;

use std::sync::atomic::Ordering;
use std::time::Instant;

use common::{PATIENCE, TestDaemon, builder, proxy_builder};
use futures::StreamExt;
use numbers::{Numbers, NumbersProxy, eventually, numbers};
use rmi::{Error, RemoteErrorKind};

#[tokio::test]
async fn a_stream_delivers_every_item_in_order_then_ends() {
    let (_d, numbers, tally) = numbers().await;
    let mut stream = numbers.count(100_000).await.unwrap();
    let mut expected = 0;
    while let Some(item) = stream.next().await {
        assert_eq!(item.unwrap(), expected);
        expected += 1;
    }
    assert_eq!(expected, 100_000);
    // Ended: it stays ended, and the producer is gone.
    assert!(stream.next().await.is_none());
    eventually("the producer dropped", || tally.dropped()).await;
    // The connection serves on.
    assert_eq!(numbers.add(2, 3).await.unwrap(), 5);
    // An empty stream just ends.
    assert!(numbers.count(0).await.unwrap().next().await.is_none());
}

#[tokio::test]
async fn an_error_ends_the_stream_after_the_items_before_it() {
    let (_d, numbers, _) = numbers().await;
    let items: Vec<Result<u64, Error>> =
        numbers.failing(3, "disk on fire".into()).await.unwrap().collect().await;
    assert_eq!(items.len(), 4, "{items:?}");
    for (i, item) in items.iter().take(3).enumerate() {
        assert_eq!(*item.as_ref().unwrap(), i as u64);
    }
    let Err(Error::Remote(e)) = &items[3] else { panic!("expected the method's error: {items:?}") };
    assert_eq!(e.kind(), RemoteErrorKind::Application);
    assert_eq!(e.message(), "disk on fire");
}

#[tokio::test]
async fn dropping_the_stream_stops_the_producer_within_a_round_trip() {
    let (_d, numbers, tally) = numbers().await;
    let mut ticks = numbers.ticks(1).await.unwrap();
    for expected in 0..5 {
        assert_eq!(ticks.next().await.unwrap().unwrap(), expected);
    }
    assert!(!tally.dropped());
    let dropped = Instant::now();
    drop(ticks);
    eventually("the producer dropped", || tally.dropped()).await;
    let took = dropped.elapsed();
    println!("the producer was dropped {took:?} after its stream");
    // The same connection serves a plain call, and a new stream, at once.
    assert_eq!(numbers.add(1, 1).await.unwrap(), 2);
    let mut again = numbers.count(3).await.unwrap();
    assert_eq!(again.next().await.unwrap().unwrap(), 0);
}

#[tokio::test]
async fn large_items_arrive_whole_from_a_blocking_iterator() {
    let (_d, numbers, _) = numbers().await;
    let mut chunks = numbers.chunks(64, 64 * 1024).await.unwrap();
    let mut count = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.len(), 64 * 1024);
        for (k, byte) in chunk.iter().enumerate().step_by(997) {
            assert_eq!(u64::from(*byte), (count + k as u64) % 251, "chunk {count} byte {k}");
        }
        count += 1;
    }
    assert_eq!(count, 64);
}

#[tokio::test]
async fn streams_are_dynamic_too_and_errors_come_through_them() {
    let (d, _numbers, _) = numbers().await;
    let proxy = proxy_builder(&d.daemon.uri_for("numbers")).build().unwrap();
    let items: Vec<u64> =
        proxy.call_stream::<u64>("count", (5u64,)).await.unwrap().map(Result::unwrap).collect().await;
    assert_eq!(items, [0, 1, 2, 3, 4]);
    // An unknown method, bad arguments: the stream's first outcome.
    let mut stream = proxy.call_stream::<u64>("nope", ()).await.unwrap();
    let Some(Err(Error::MethodNotFound(e))) = stream.next().await else { panic!("expected an error") };
    assert!(e.message().contains("has no exposed method \"nope\""), "{e}");
    assert!(stream.next().await.is_none());
    let mut stream = proxy.call_stream::<u64>("count", ("ten",)).await.unwrap();
    let Some(Err(Error::BadArguments(e))) = stream.next().await else { panic!("expected an error") };
    assert!(e.message().contains("fn count(&self, n: u64) -> rmi::Stream<u64>"), "{e}");
    // Items of another type than the caller asked for: a clear error.
    // (Postcard does not describe its values: 0 and 1 read as booleans, 2
    // does not.)
    let outcomes: Vec<_> = proxy.call_stream::<bool>("count", (5u64,)).await.unwrap().collect().await;
    let Some(Err(Error::Serialization(e))) = outcomes.last() else { panic!("expected a decoding error") };
    assert!(e.contains("do not decode as bool"), "{e}");
    assert!(outcomes.len() <= 3, "{outcomes:?}");
    // A streaming method called for one reply is refused, and says why.
    let err = proxy.call::<u64>("count", (5u64,)).await.unwrap_err();
    assert!(
        err.to_string().contains("streams its results, which a call waiting for one reply cannot read"),
        "{err}"
    );
    // And a plain method read as a stream: refused, and not run.
    let mut stream = proxy.call_stream::<u64>("add", (1u64, 2u64)).await.unwrap();
    let Some(Err(Error::BadArguments(e))) = stream.next().await else { panic!("expected a refusal") };
    assert_eq!(e.message(), "method \"add\" does not stream its results: call it for one reply");
    // The connection serves on.
    assert_eq!(proxy.call::<u64>("add", (1u64, 2u64)).await.unwrap(), 3);
}

#[tokio::test]
async fn a_stream_inside_a_batch_is_refused() {
    let (d, _numbers, tally) = numbers().await;
    let proxy = proxy_builder(&d.daemon.uri_for("numbers")).build().unwrap();
    let mut batch = proxy.batch();
    let sum = batch.call::<u64>("add", (1u64, 2u64)).unwrap();
    let stream = batch.call::<Vec<u64>>("count", (3u64,)).unwrap();
    let results = batch.run().await.unwrap();
    assert_eq!(results.get(sum).unwrap(), 3);
    let err = results.get(stream).unwrap_err();
    let Error::BadArguments(e) = &err else { panic!("{err:?}") };
    assert_eq!(
        e.message(),
        "method \"count\" streams its results, which a batch cannot carry: call it on its own"
    );
    assert_eq!(tally.produced.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn shutting_down_the_daemon_ends_its_streams_with_the_reason() {
    let (d, numbers, tally) = numbers().await;
    let mut ticks = numbers.ticks(5).await.unwrap();
    assert_eq!(ticks.next().await.unwrap().unwrap(), 0);
    d.daemon.shutdown();
    let end = past_the_items(&mut ticks).await;
    let Some(Err(Error::Remote(e))) = end else { panic!("expected the shutdown: {end:?}") };
    assert_eq!(e.kind(), RemoteErrorKind::ShuttingDown);
    eventually("the producer dropped", || tally.dropped()).await;
}

/// What a stream gives after its items: its end, or what cut it off
/// (within `PATIENCE`).
async fn past_the_items<T>(
    stream: &mut (impl futures::Stream<Item = Result<T, Error>> + Unpin),
) -> Option<Result<T, Error>> {
    let rest = async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    };
    tokio::time::timeout(PATIENCE, rest).await.expect("the stream ended in time")
}

/// Relays one connection to `to`; cutting it closes both sides.
async fn relay(to: std::net::SocketAddr) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut daemon = tokio::net::TcpStream::connect(to).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
    });
    (address, task)
}

#[tokio::test]
async fn a_closed_connection_stops_every_stream_on_it() {
    let d = TestDaemon::start(builder()).await;
    let object = Numbers::default();
    let tally = object.tally.clone();
    d.daemon.register(object, Some("numbers")).unwrap();
    let direct: std::net::SocketAddr = d.daemon.location().to_string().parse().unwrap();
    let (address, cut) = relay(direct).await;
    let uri: rmi::ObjectUri = format!("RMI:numbers@{address}").parse().unwrap();
    let numbers = NumbersProxy::from_proxy(proxy_builder(&uri).build().unwrap());
    let mut a = numbers.ticks(2).await.unwrap();
    let mut b = numbers.lines(1_000_000).await.unwrap();
    assert!(a.next().await.unwrap().is_ok());
    assert!(b.next().await.unwrap().is_ok());
    cut.abort();
    // Both producers stop.
    eventually("both producers dropped", || tally.drops.load(Ordering::SeqCst) == 2).await;
    let end = past_the_items(&mut a).await;
    assert!(matches!(end, Some(Err(Error::ConnectionLost(_)))), "{end:?}");
    let end = past_the_items(&mut b).await;
    assert!(matches!(end, Some(Err(Error::ConnectionLost(_)))), "{end:?}");
    eventually("the daemon's streams gone", || d.daemon.connections() == 0).await;
}

#[tokio::test]
async fn a_stream_is_produced_in_its_calls_context() {
    let (_d, numbers, _) = numbers().await;
    for blocking in [false, true] {
        let stream = rmi::correlate("req-s", async {
            if blocking { numbers.context_seen_blocking().await } else { numbers.context_seen().await }
        })
        .await
        .unwrap()
        .unwrap();
        let items: Vec<String> = stream.map(Result::unwrap).collect().await;
        assert_eq!(items, ["req-s peer=true", "req-s peer=true"], "blocking: {blocking}");
    }
}
