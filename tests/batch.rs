//! Batches: many calls in one message, run in order, stopped at the first
//! failure, as Pyro's `BatchProxy` does.

mod common;

use std::time::Duration;

use common::{PATIENCE, TestDaemon, proxy_builder};
use rmi::{Error, Proxy, RemoteErrorKind};

#[tokio::test]
async fn ten_thousand_calls_run_in_order_in_one_batch() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = Proxy::new(&uri).unwrap();
    let mut batch = calc.batch();
    let sums: Vec<_> = (0..10_000i64).map(|i| batch.call::<i64>("add", (i, 1)).unwrap()).collect();
    for line in ["one", "two", "three"] {
        let _: rmi::BatchCall<()> = batch.call("record", (line,)).unwrap();
    }
    let records = batch.call::<Vec<String>>("records", ()).unwrap();
    assert_eq!(batch.len(), 10_004);
    let results = batch.run().await.unwrap();
    assert!(results.all_ok());
    assert_eq!((results.len(), results.ran()), (10_004, 10_004));
    for (i, sum) in sums.into_iter().enumerate() {
        assert_eq!(results.get(sum).unwrap(), i as i64 + 1);
    }
    // The calls ran one after another, in the order they were recorded.
    assert_eq!(results.get(records).unwrap(), ["one", "two", "three"]);
}

#[tokio::test]
async fn a_batch_stops_at_its_first_failure() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = Proxy::new(&uri).unwrap();
    let mut batch = calc.batch();
    let before = batch.call::<i64>("divide", (8, 2)).unwrap();
    let failing = batch.call::<i64>("divide", (7, 0)).unwrap();
    let after = batch.call::<i64>("add", (1, 1)).unwrap();
    let _: rmi::BatchCall<()> = batch.call("record", ("after the failure",)).unwrap();
    let results = batch.run().await.unwrap();
    assert_eq!((results.len(), results.ran()), (4, 2));
    assert!(!results.all_ok());
    assert_eq!(results.get(before).unwrap(), 4);
    let err = results.get(failing).unwrap_err();
    let Error::Remote(remote) = &err else { panic!("expected the method's error, got {err:?}") };
    assert_eq!(remote.message(), "cannot divide 7 by zero");
    assert_eq!(remote.chain().collect::<Vec<_>>(), ["zero has no inverse"]);
    let err = results.get(after).unwrap_err();
    assert!(
        matches!(&err, Error::NotRun { index: 2, failed_index: 1, method, failed_method }
            if method == "add" && failed_method == "divide"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        r#"call 2 ("add") of the batch did not run: call 1 ("divide") failed before it"#
    );
    // Nothing after the failure ran.
    assert!(calc.call::<Vec<String>>("records", ()).await.unwrap().is_empty());
}

#[tokio::test]
async fn calls_that_await_panic_or_do_not_exist_each_end_a_batch_their_way() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = Proxy::new(&uri).unwrap();

    // A call that awaits, then sync calls after it: the rest of the batch
    // runs after the await, in order.
    let mut batch = calc.batch();
    let first = batch.call::<i64>("add", (1, 2)).unwrap();
    let slow = batch.call::<i64>("slow_add", (3, 4, 20)).unwrap();
    let _: rmi::BatchCall<()> = batch.call("record", ("after the slow one",)).unwrap();
    let panics = batch.call::<u32>("panics_later", ()).unwrap();
    let never = batch.call::<i64>("add", (0, 0)).unwrap();
    let results = batch.run().await.unwrap();
    assert_eq!(results.get(first).unwrap(), 3);
    assert_eq!(results.get(slow).unwrap(), 7);
    let err = results.get(panics).unwrap_err();
    assert!(matches!(&err, Error::Remote(r) if r.kind() == RemoteErrorKind::Panic), "{err:?}");
    assert!(matches!(results.get(never), Err(Error::NotRun { index: 4, failed_index: 3, .. })));
    assert_eq!(calc.call::<Vec<String>>("records", ()).await.unwrap(), ["after the slow one"]);

    // A sync panic, an unknown method, bad arguments.
    for (method, wanted) in
        [("panics", "Panic"), ("no_such_method", "MethodNotFound"), ("add", "BadArguments")]
    {
        let mut batch = calc.batch();
        let call = if method == "panics" {
            batch.call::<i64>(method, ()).unwrap()
        } else {
            batch.call::<i64>(method, ("not a number",)).unwrap()
        };
        let next = batch.call::<i64>("add", (1, 1)).unwrap();
        let results = batch.run().await.unwrap();
        let err = results.get(call).unwrap_err();
        let kind = match &err {
            Error::MethodNotFound(_) => "MethodNotFound",
            Error::BadArguments(_) => "BadArguments",
            Error::Remote(r) if r.kind() == RemoteErrorKind::Panic => "Panic",
            other => panic!("{method}: unexpected {other:?}"),
        };
        assert_eq!(kind, wanted, "{method}: {err}");
        assert!(matches!(results.get(next), Err(Error::NotRun { .. })));
    }
}

#[tokio::test]
async fn results_are_read_with_their_own_type_and_batch() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = Proxy::new(&uri).unwrap();
    let mut one = calc.batch();
    let wrong_type = one.call::<String>("add", (1, 2)).unwrap();
    let mut two = calc.batch();
    let elsewhere = two.call::<i64>("add", (1, 2)).unwrap();
    let results = one.run().await.unwrap();
    let err = results.get(wrong_type).unwrap_err();
    assert!(matches!(&err, Error::Serialization(m) if m.contains("does not decode as")), "{err:?}");
    let err = results.get(elsewhere).unwrap_err();
    assert!(matches!(&err, Error::Serialization(m) if m.contains("another batch")), "{err:?}");
    // An empty batch sends nothing and has nothing.
    let empty = calc.batch().run().await.unwrap();
    assert!(empty.is_empty() && empty.all_ok());
}

#[tokio::test]
async fn a_batch_fails_as_a_whole_for_an_unknown_object_a_timeout_or_its_size() {
    let (d, uri) = TestDaemon::calculator().await;
    let missing = Proxy::new(d.daemon.uri_for("nobody")).unwrap();
    let mut batch = missing.batch();
    let _ = batch.call::<i64>("add", (1, 2)).unwrap();
    let err = batch.run().await.unwrap_err();
    assert!(matches!(&err, Error::ObjectNotFound(_)), "{err:?}");

    let impatient = proxy_builder(&uri).timeout(Some(Duration::from_millis(200))).build().unwrap();
    let mut batch = impatient.batch();
    let _ = batch.call::<i64>("slow_add", (1, 2, 10_000)).unwrap();
    let err = tokio::time::timeout(PATIENCE, batch.run()).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");

    let small = proxy_builder(&uri).max_message_size(64 * 1024).build().unwrap();
    let mut batch = small.batch();
    let mut recorded = 0;
    let err = loop {
        match batch.call::<()>("record", ("x".repeat(1000),)) {
            Ok(_) => recorded += 1,
            Err(e) => break e,
        }
        assert!(recorded < 1_000, "the size limit was never reached");
    };
    assert!(matches!(err, Error::MessageTooLarge { max: 65_536, .. }), "{err:?}");
    // What fits still goes, in one message under the limit.
    assert_eq!(batch.len(), recorded);
    assert!(batch.run().await.unwrap().all_ok());
}

#[tokio::test]
async fn a_oneway_batch_returns_at_once_and_runs_in_order() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = Proxy::new(&uri).unwrap();
    let mut batch = calc.batch();
    let _ = batch.call::<i64>("slow_add", (1, 1, 300)).unwrap();
    for i in 0..100 {
        let _ = batch.call::<()>("record", (format!("line {i}"),)).unwrap();
    }
    let started = std::time::Instant::now();
    batch.run_oneway().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(300), "a oneway batch waited for its calls");
    let wanted: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let records = calc.call::<Vec<String>>("records", ()).await.unwrap();
        if records == wanted {
            break;
        }
        assert!(records.len() < 100 && std::time::Instant::now() < deadline, "records: {records:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_batch_whose_replies_outgrow_the_message_limit_stops_there() {
    let d = TestDaemon::start(common::builder().max_message_size(64 * 1024)).await;
    let uri = d.daemon.register(common::Calculator::default(), Some("calc")).unwrap();
    let calc = proxy_builder(&uri).max_message_size(64 * 1024).build().unwrap();
    for i in 0..40 {
        calc.call::<()>("record", (format!("{i:01000}"),)).await.unwrap();
    }
    // Each `records()` reply is ~40 KB: the second takes the batch past 64 KiB.
    let mut batch = calc.batch();
    let calls: Vec<_> = (0..3).map(|_| batch.call::<Vec<String>>("records", ()).unwrap()).collect();
    let results = batch.run().await.unwrap();
    assert_eq!(results.ran(), 2);
    assert_eq!(results.get(calls[0]).unwrap().len(), 40);
    let err = results.get(calls[1]).unwrap_err();
    assert!(
        matches!(&err, Error::Remote(r) if r.kind() == RemoteErrorKind::Internal
            && r.message().contains("exceed the message size limit of 65536 bytes")),
        "{err:?}"
    );
    assert!(matches!(results.get(calls[2]), Err(Error::NotRun { index: 2, failed_index: 1, .. })));
    // The daemon serves on.
    assert_eq!(calc.call::<i64>("add", (1, 2)).await.unwrap(), 3);
}

#[tokio::test]
async fn a_typed_batch_records_with_the_methods_types_and_runs_when_awaited() {
    let (_d, uri) = TestDaemon::calculator().await;
    let calc = common::CalculatorProxy::new(&uri).unwrap();
    let mut batch = common::CalculatorBatch::new(&calc);
    let sum = batch.add(2, 3).unwrap();
    let slow = batch.slow_add(4, 5, 1).unwrap();
    let recorded = batch.record("typed".to_owned()).unwrap();
    let records = batch.records().unwrap();
    let quotient = batch.divide(1, 0).unwrap();
    let never = batch.add(0, 0).unwrap();
    let results = batch.await.unwrap();
    assert_eq!(results.get(sum).unwrap(), 5);
    assert_eq!(results.get(slow).unwrap(), 9);
    results.get(recorded).unwrap();
    assert_eq!(results.get(records).unwrap(), ["typed"]);
    assert!(matches!(results.get(quotient), Err(Error::Remote(_))));
    assert!(matches!(results.get(never), Err(Error::NotRun { index: 5, failed_index: 4, .. })));

    // The dynamic batch underneath runs oneway.
    let mut batch = common::CalculatorBatch::new(&calc);
    let _ = batch.record("oneway".to_owned()).unwrap();
    rmi::Batch::from(batch).run_oneway().await.unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while calc.records().await.unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the oneway batch never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(calc.records().await.unwrap(), ["typed", "oneway"]);
}
