//! Remote calls end to end on loopback: typed and dynamic proxies, oneway,
//! every error, concurrency, re-entrancy, timeouts, keys, restarts.

mod common;

use std::time::{Duration, Instant};

use common::{Calculator, CalculatorProxy, PATIENCE, Relay, RelayProxy, TestDaemon, builder, proxy_builder};
use rmi::{Blob, Error, Key, Proxy, RemoteErrorKind};

#[tokio::test]
async fn typed_and_dynamic_calls() {
    let (_d, uri) = TestDaemon::calculator().await;
    let typed = CalculatorProxy::new(&uri).unwrap();
    assert_eq!(typed.add(2, 3).await.unwrap(), 5);
    assert_eq!(typed.slow_add(2, 3, 1).await.unwrap(), 5);
    typed.nothing().await.unwrap();
    assert_eq!(typed.secret_plus_one().await.unwrap(), 42);

    let dynamic = Proxy::new(&uri).unwrap();
    assert_eq!(dynamic.call::<i64>("add", (40, 2)).await.unwrap(), 42);
    dynamic.call::<()>("nothing", ()).await.unwrap();
}

#[tokio::test]
async fn an_error_travels_with_its_chain() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = CalculatorProxy::new(&uri).unwrap();
    assert_eq!(calc.divide(7, 2).await.unwrap(), 3);
    let err = calc.divide(7, 0).await.unwrap_err();
    let Error::Remote(remote) = &err else { panic!("expected a remote error, got {err:?}") };
    assert_eq!(remote.kind(), RemoteErrorKind::Application);
    assert_eq!(remote.message(), "cannot divide 7 by zero");
    assert_eq!(remote.chain().collect::<Vec<_>>(), ["zero has no inverse"]);
}

#[tokio::test]
async fn unknown_objects_methods_and_bad_arguments_each_have_their_error() {
    let (d, uri) = TestDaemon::calculator().await;
    let missing = Proxy::new(d.daemon.uri_for("nobody")).unwrap();
    let err = missing.call::<i64>("add", (1, 2)).await.unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound(_)), "{err:?}");
    assert!(err.to_string().contains("\"nobody\""), "{err}");

    let calc = Proxy::new(&uri).unwrap();
    let err = calc.call::<i64>("subtract", (1, 2)).await.unwrap_err();
    assert!(matches!(err, Error::MethodNotFound(_)), "{err:?}");
    assert!(err.to_string().contains("has: add, slow_add"), "{err}");
    // Private methods and functions without `self` are not exposed.
    for hidden in ["secret", "unit"] {
        let err = calc.call::<u32>(hidden, ()).await.unwrap_err();
        assert!(matches!(err, Error::MethodNotFound(_)), "{hidden}: {err:?}");
    }

    let err = calc.call::<i64>("add", ("one", "two")).await.unwrap_err();
    assert!(matches!(err, Error::BadArguments(_)), "{err:?}");
    assert!(err.to_string().contains("fn add(&self, a: i64, b: i64) -> i64"), "{err}");
    let err = calc.call::<i64>("add", (1,)).await.unwrap_err();
    assert!(matches!(err, Error::BadArguments(_)), "{err:?}");
    let err = calc.call::<i64>("add", (1, 2, 3)).await.unwrap_err();
    assert!(matches!(err, Error::BadArguments(_)), "too many arguments: {err:?}");

    // The wrong return type is the caller's own decoding error.
    let err = calc.call::<String>("add", (1, 2)).await.unwrap_err();
    assert!(matches!(err, Error::Serialization(_)), "{err:?}");

    // After all that, the daemon serves as before.
    assert_eq!(calc.call::<i64>("add", (1, 2)).await.unwrap(), 3);
}

#[tokio::test]
async fn a_panic_becomes_a_remote_error_and_the_daemon_keeps_serving() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = CalculatorProxy::new(&uri).unwrap();
    for err in [calc.panics().await.unwrap_err(), calc.panics_later().await.unwrap_err()] {
        let Error::Remote(remote) = &err else { panic!("expected a remote error, got {err:?}") };
        assert_eq!(remote.kind(), RemoteErrorKind::Panic);
        assert!(remote.message().contains("deliberate"), "{remote}");
    }
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
}

#[tokio::test]
async fn oneway_calls_are_delivered() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = CalculatorProxy::new(&uri).unwrap();
    for i in 0..50 {
        calc.record(format!("line {i}")).await.unwrap();
    }
    Proxy::new(&uri).unwrap().call_oneway("record", ("dynamic",)).await.unwrap();
    let started = Instant::now();
    let records = loop {
        let records = calc.records().await.unwrap();
        if records.len() == 51 || started.elapsed() > PATIENCE {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(records.len(), 51);
    for i in 0..50 {
        assert!(records.contains(&format!("line {i}")));
    }
    assert!(records.contains(&"dynamic".to_owned()));
}

#[tokio::test]
async fn oneway_does_not_wait_for_the_method() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = Proxy::new(&uri).unwrap();
    let started = Instant::now();
    // A oneway call of a slow method returns at once.
    calc.call_oneway("slow_add", (1, 2, 3_000)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_tasks_times_a_hundred_calls_on_one_connection() {
    let (_d, uri) = TestDaemon::calculator().await;
    let typed = CalculatorProxy::new(&uri).unwrap();
    let dynamic = Proxy::new(&uri).unwrap();
    let mut tasks = Vec::new();
    for t in 0..100i64 {
        let (typed, dynamic) = (typed.clone(), dynamic.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100i64 {
                if i % 2 == 0 {
                    assert_eq!(typed.add(t, i).await.unwrap(), t + i);
                } else {
                    assert_eq!(dynamic.call::<i64>("add", (t, i)).await.unwrap(), t + i);
                }
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(PATIENCE, task).await.expect("in time").expect("task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_clients_with_their_own_connections() {
    let (_d, uri) = TestDaemon::calculator().await;
    let mut tasks = Vec::new();
    for t in 0..100i64 {
        let calc = CalculatorProxy::new(&uri).unwrap();
        tasks.push(tokio::spawn(async move {
            for i in 0..100i64 {
                assert_eq!(calc.add(t, i).await.unwrap(), t + i);
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(PATIENCE, task).await.expect("in time").expect("task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_does_not_hold_up_others_on_the_same_connection() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = CalculatorProxy::new(&uri).unwrap();
    let slow = tokio::spawn({
        let calc = calc.clone();
        async move { calc.slow_add(1, 1, 2_000).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    for _ in 0..10 {
        calc.add(1, 1).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_millis(1_500), "{:?}", started.elapsed());
    assert!(!slow.is_finished());
    assert_eq!(slow.await.unwrap().unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_back_into_the_calling_daemon_completes() {
    let a = TestDaemon::start(builder()).await;
    let b = TestDaemon::start(builder()).await;
    let uri_a = a.daemon.register(Relay, Some("relay")).unwrap();
    let uri_b = b.daemon.register(Relay, Some("relay")).unwrap();
    let relay = RelayProxy::new(&uri_a).unwrap();
    // client → A.relay → B.bounce → A.finish, while A.relay is still waiting.
    let n = tokio::time::timeout(PATIENCE, relay.relay(uri_b.to_string(), uri_a.to_string(), 41))
        .await
        .expect("no deadlock")
        .unwrap();
    assert_eq!(n, 42);
}

#[tokio::test]
async fn timeouts_per_proxy_and_per_call() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = CalculatorProxy::new(&uri).unwrap().with_timeout(Some(Duration::from_millis(200)));
    let started = Instant::now();
    let err = calc.slow_add(1, 2, 10_000).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The connection is still good after a timed-out call.
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);

    let dynamic = Proxy::new(&uri).unwrap();
    let err = dynamic
        .call_with_timeout::<i64>("slow_add", (1, 2, 10_000), Some(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(d) if d <= Duration::from_millis(100)), "{err:?}");
    // Without a timeout, a slow call completes.
    let patient = dynamic.with_timeout(None);
    assert_eq!(patient.call::<i64>("slow_add", (1, 2, 300)).await.unwrap(), 3);
}

#[tokio::test]
async fn keys_on_both_sides_work_and_on_one_side_fail() {
    let key = Key::from("s3cret");
    let keyed = TestDaemon::start(builder().key(Some(key.clone()))).await;
    let uri = keyed.daemon.register(Calculator::default(), Some("calc")).unwrap();

    let good = CalculatorProxy::from_proxy(proxy_builder(&uri).key(Some(key.clone())).build().unwrap());
    assert_eq!(good.add(1, 2).await.unwrap(), 3);

    let keyless = CalculatorProxy::new(&uri).unwrap();
    let err = keyless.add(1, 2).await.unwrap_err();
    assert!(matches!(err, Error::Auth(rmi::AuthError::KeyRequired)), "{err:?}");

    let wrong =
        CalculatorProxy::from_proxy(proxy_builder(&uri).key(Some(Key::from("guess"))).build().unwrap());
    let err = wrong.add(1, 2).await.unwrap_err();
    assert!(matches!(err, Error::Auth(rmi::AuthError::WrongKey)), "{err:?}");

    let (_open, open_uri) = TestDaemon::calculator().await;
    let key_only_here = CalculatorProxy::from_proxy(proxy_builder(&open_uri).key(Some(key)).build().unwrap());
    let err = key_only_here.add(1, 2).await.unwrap_err();
    assert!(matches!(err, Error::Auth(rmi::AuthError::ServerHasNoKey)), "{err:?}");

    // The keyed daemon still serves its rightful clients.
    assert_eq!(good.add(2, 2).await.unwrap(), 4);
}

#[tokio::test]
async fn the_daemon_restarts_and_the_proxy_reconnects() {
    let first = TestDaemon::start(builder()).await;
    let uri = first.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let calc = CalculatorProxy::new(&uri).unwrap();
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
    first.stop().await;

    let err = calc.add(1, 2).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. } | Error::ConnectionLost(_)), "{err:?}");

    let address = uri.location.to_string();
    let second = TestDaemon::start_at(builder(), &address).await;
    second.daemon.register(Calculator::default(), Some("calc")).unwrap();
    assert_eq!(calc.add(2, 3).await.unwrap(), 5);
}

#[tokio::test]
async fn a_call_in_flight_fails_at_once_when_the_connection_drops() {
    let d = TestDaemon::start(builder().shutdown_grace(Duration::from_millis(50))).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let calc = CalculatorProxy::new(&uri).unwrap().with_timeout(None);
    let call = tokio::spawn({
        let calc = calc.clone();
        async move { calc.slow_add(1, 2, 60_000).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dropped = Instant::now();
    d.daemon.shutdown();
    let err = tokio::time::timeout(PATIENCE, call).await.expect("the call ended").unwrap().unwrap_err();
    assert!(matches!(err, Error::ConnectionLost(_)), "{err:?}");
    assert!(dropped.elapsed() < Duration::from_secs(2), "{:?}", dropped.elapsed());
}

#[tokio::test]
async fn ten_mebibytes_travel_as_a_blob() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = CalculatorProxy::new(&uri).unwrap();
    let data: Vec<u8> = (0..10 << 20).map(|i| (i % 251) as u8).collect();
    let blob = Blob::from(data.clone());
    assert_eq!(calc.blob_len(blob.clone()).await.unwrap(), 10 << 20);
    assert_eq!(calc.echo_blob(blob).await.unwrap().as_slice(), &data[..]);
}

#[tokio::test]
async fn a_message_over_the_limit_fails_alone() {
    let d = TestDaemon::start(builder().max_message_size(1 << 20)).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let calc = CalculatorProxy::from_proxy(proxy_builder(&uri).max_message_size(1 << 20).build().unwrap());
    let err = calc.blob_len(Blob::from(vec![0; 2 << 20])).await.unwrap_err();
    assert!(matches!(err, Error::MessageTooLarge { .. }), "{err:?}");
    // A client with a larger limit than the daemon's gets its connection
    // refused for that frame, and others are unaffected.
    let big = CalculatorProxy::from_proxy(proxy_builder(&uri).max_message_size(8 << 20).build().unwrap());
    let err = big.blob_len(Blob::from(vec![0; 2 << 20])).await.unwrap_err();
    assert!(matches!(err, Error::ConnectionLost(_)), "{err:?}");
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
    assert_eq!(big.add(1, 2).await.unwrap(), 3);
}

#[tokio::test]
async fn describe_lists_methods_with_signatures_and_oneway_flags() {
    let (_d, uri) = TestDaemon::calculator().await;
    let description = Proxy::new(&uri).unwrap().describe().await.unwrap();
    assert_eq!(description.object, "calc");
    assert_eq!(description.type_name, "Calculator");
    let find = |name: &str| description.methods.iter().find(|m| m.name == name).unwrap();
    assert_eq!(find("add").signature, "fn add(&self, a: i64, b: i64) -> i64");
    assert_eq!(find("slow_add").signature, "async fn slow_add(&self, a: i64, b: i64, millis: u64) -> i64");
    assert_eq!(find("divide").signature, "fn divide(&self, a: i64, b: i64) -> Result<i64, DivideByZero>");
    assert!(find("record").oneway);
    assert!(!find("add").oneway);
    let names: Vec<&str> = description.methods.iter().map(|m| m.name.as_str()).collect();
    assert!(!names.contains(&"secret") && !names.contains(&"unit"), "{names:?}");
}

#[tokio::test]
async fn register_unregister_and_list() {
    let d = TestDaemon::start(builder()).await;
    let named = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    assert_eq!(named.to_string(), format!("RMI:calc@{}", d.daemon.location()));
    let generated = d.daemon.register(Calculator::default(), None).unwrap();
    assert!(generated.object.starts_with("obj_") && generated.object.len() == 36, "{generated}");
    assert!(matches!(
        d.daemon.register(Calculator::default(), Some("calc")),
        Err(rmi::DaemonError::DuplicateId(_))
    ));
    for bad in ["", "a@b", "two words", "RMI.Daemon"] {
        assert!(
            matches!(
                d.daemon.register(Calculator::default(), Some(bad)),
                Err(rmi::DaemonError::InvalidId { .. })
            ),
            "{bad:?}"
        );
    }
    let mut expected = vec!["RMI.Daemon".to_owned(), "calc".to_owned(), generated.object.clone()];
    expected.sort();
    assert_eq!(d.daemon.objects(), expected);

    let calc = CalculatorProxy::new(&named).unwrap();
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    assert!(d.daemon.unregister("calc"));
    assert!(!d.daemon.unregister("calc"));
    assert!(matches!(calc.add(1, 1).await.unwrap_err(), Error::ObjectNotFound(_)));
    Proxy::new(&generated).unwrap().ping().await.unwrap();
}

#[tokio::test]
async fn unix_sockets_and_ipv6() {
    let path = std::env::temp_dir().join(format!("rmi-test-{}.sock", std::process::id()));
    let d = TestDaemon::start_at(builder(), &format!("./u:{}", path.display())).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    assert!(uri.to_string().starts_with("RMI:calc@./u:/"), "{uri}");
    assert_eq!(CalculatorProxy::new(&uri).unwrap().add(2, 2).await.unwrap(), 4);
    d.stop().await;
    assert!(!path.exists(), "the socket file is removed");

    let d = TestDaemon::start_at(builder(), "[::1]:0").await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    assert!(uri.to_string().starts_with("RMI:calc@[::1]:"), "{uri}");
    assert_eq!(CalculatorProxy::new(&uri).unwrap().add(3, 3).await.unwrap(), 6);
}

#[tokio::test]
async fn a_proxy_to_nowhere_says_where() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let calc = CalculatorProxy::new(format!("RMI:calc@127.0.0.1:{port}")).unwrap();
    let err = calc.add(1, 2).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(matches!(CalculatorProxy::new("RMI:calc"), Err(Error::Uri(_))));
    assert!(CalculatorProxy::connect(format!("RMI:calc@127.0.0.1:{port}")).await.is_err());
}
