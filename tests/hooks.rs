//! The daemon's hooks, against a real daemon on loopback, with a recorder:
//! a refused connection (the client sees the reason; no other hook runs),
//! the order of connect, calls and disconnect (after the calls ended,
//! before the session instance is dropped), a refused call, and every
//! outcome a call can have.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Calculator, CalculatorProxy, PATIENCE, TestDaemon, builder, proxy_builder};
use rmi::{CallInfo, CallOutcome, ConnectionInfo, Error, Hooks, InstanceMode, RemoteErrorKind};

/// Writes down every hook in order.
#[derive(Debug, Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
    /// Connections from this many on are refused.
    refuse_from: Option<u64>,
}

impl Recorder {
    fn push(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Hooks for Recorder {
    fn validate(&self, connection: &ConnectionInfo) -> Result<(), String> {
        self.push(format!("validate {}", connection.id));
        match self.refuse_from {
            Some(from) if connection.id >= from => {
                Err(format!("connection {} is not welcome", connection.id))
            }
            _ => Ok(()),
        }
    }

    fn connected(&self, connection: &ConnectionInfo) {
        assert!(connection.peer.starts_with("127.0.0.1:"), "{}", connection.peer);
        self.push(format!("connected {}", connection.id));
    }

    fn disconnected(&self, connection: &ConnectionInfo) {
        self.push(format!("disconnected {}", connection.id));
    }

    fn before_call(&self, call: &CallInfo<'_>) -> Result<(), String> {
        self.push(format!("before {}.{}", call.object, call.method));
        if call.method == "secret_plus_one" {
            return Err("secrets are for admins".into());
        }
        Ok(())
    }

    fn after_call(&self, call: &CallInfo<'_>, outcome: CallOutcome, elapsed: Duration) {
        assert!(elapsed < PATIENCE);
        self.push(format!("after {}.{} {outcome:?}", call.object, call.method));
    }
}

async fn eventually(recorder: &Recorder, line: &str) {
    let started = std::time::Instant::now();
    while !recorder.lines().iter().any(|l| l == line) {
        assert!(started.elapsed() < PATIENCE, "never {line:?}: {:?}", recorder.lines());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn hooks_see_connections_and_calls_in_order_with_every_outcome() {
    let recorder = Recorder::default();
    let d = TestDaemon::start(builder().hooks(recorder.clone())).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    {
        let calc = CalculatorProxy::from_proxy(proxy_builder(&uri).build().unwrap());
        assert_eq!(calc.add(2, 3).await.unwrap(), 5);
        let err = calc.divide(1, 0).await.unwrap_err();
        assert!(matches!(&err, Error::Remote(e) if e.kind() == RemoteErrorKind::Application), "{err:?}");
        let err = calc.panics().await.unwrap_err();
        assert!(matches!(&err, Error::Remote(e) if e.kind() == RemoteErrorKind::Panic), "{err:?}");
        let err = calc.secret_plus_one().await.unwrap_err();
        let Error::Remote(e) = &err else { panic!("{err:?}") };
        assert_eq!(e.kind(), RemoteErrorKind::Refused);
        assert_eq!(e.message(), "refused: secrets are for admins");
        // A call the caller gives up on.
        let slow = calc.clone().with_timeout(Some(Duration::from_millis(50)));
        assert!(matches!(slow.slow_add(1, 1, 10_000).await, Err(Error::Timeout(_))));
        eventually(&recorder, "after calc.slow_add Cancelled").await;
        calc.record("a oneway line".into()).await.unwrap();
        eventually(&recorder, "after calc.record Ok").await;
    }
    eventually(&recorder, "disconnected 1").await;
    let lines = recorder.lines();
    assert_eq!(
        lines,
        [
            "validate 1",
            "connected 1",
            "before calc.add",
            "after calc.add Ok",
            "before calc.divide",
            "after calc.divide Failed(Application)",
            "before calc.panics",
            "after calc.panics Failed(Panic)",
            "before calc.secret_plus_one",
            "after calc.secret_plus_one Failed(Refused)",
            "before calc.slow_add",
            "after calc.slow_add Cancelled",
            "before calc.record",
            "after calc.record Ok",
            "disconnected 1",
        ]
    );
}

#[tokio::test]
async fn a_refused_connection_hears_why_and_runs_no_other_hook() {
    let recorder = Recorder { refuse_from: Some(2), ..Recorder::default() };
    let d = TestDaemon::start(builder().hooks(recorder.clone())).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let welcome = CalculatorProxy::from_proxy(proxy_builder(&uri).build().unwrap());
    assert_eq!(welcome.add(1, 1).await.unwrap(), 2);
    let refused = CalculatorProxy::from_proxy(proxy_builder(&uri).build().unwrap());
    let err = refused.add(1, 1).await.unwrap_err();
    let Error::Refused(reason) = &err else { panic!("expected the refusal, got {err:?}") };
    assert!(reason.starts_with("connection ") && reason.ends_with(" is not welcome"), "{reason}");
    assert!(err.to_string().starts_with("the daemon refused the connection: connection"), "{err}");
    // The welcome client is served on.
    assert_eq!(welcome.add(2, 2).await.unwrap(), 4);
    let lines = recorder.lines();
    let refused_ids: Vec<&String> =
        lines.iter().filter(|l| l.starts_with("validate") && l != &"validate 1").collect();
    assert!(!refused_ids.is_empty(), "{lines:?}");
    // Of the refused connections, only their validation: no connect, no
    // call, no disconnect.
    for line in lines.iter().filter(|l| l.starts_with("connected") || l.starts_with("disconnected")) {
        assert!(line.ends_with(" 1"), "{lines:?}");
    }
    assert_eq!(lines.iter().filter(|l| l.starts_with("connected")).count(), 1, "{lines:?}");
    assert_eq!(lines.iter().filter(|l| *l == "before calc.add").count(), 2, "{lines:?}");
}

/// A per-connection object that notes when it is dropped.
#[derive(Debug)]
pub struct Session {
    recorder: Recorder,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.recorder.push("session dropped".into());
    }
}

#[rmi::expose]
impl Session {
    /// Takes a while, so that the connection closes while it runs.
    pub async fn work(&self, millis: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }
}

#[tokio::test]
async fn a_connection_is_told_closed_after_its_calls_and_before_its_session_goes() {
    let recorder = Recorder::default();
    let d = TestDaemon::start(builder().hooks(recorder.clone())).await;
    let made = recorder.clone();
    d.daemon
        .register_factory(InstanceMode::Session, move || Session { recorder: made.clone() }, Some("session"))
        .unwrap();
    {
        let session = SessionProxy::from_proxy(proxy_builder(&d.daemon.uri_for("session")).build().unwrap());
        assert_eq!(session.work(1).await.unwrap(), 1);
    }
    eventually(&recorder, "session dropped").await;
    let lines = recorder.lines();
    assert_eq!(
        lines,
        [
            "validate 1",
            "connected 1",
            "before session.work",
            "after session.work Ok",
            "disconnected 1",
            "session dropped",
        ]
    );
}

/// A batch's calls are put to `before_call` with their own object and
/// method, so that per-method authorization holds for batches too: the
/// batch runs up to the refused call, which answers `Refused`.
#[tokio::test]
async fn the_hooks_see_and_refuse_the_calls_inside_a_batch() {
    let recorder = Recorder::default();
    let d = TestDaemon::start(builder().hooks(recorder.clone())).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let calc = rmi::Proxy::new(&uri).unwrap();
    let mut batch = calc.batch();
    let first = batch.call::<i64>("add", (1, 2)).unwrap();
    let _: rmi::BatchCall<()> = batch.call("record", ("before the secret",)).unwrap();
    let secret = batch.call::<u32>("secret_plus_one", ()).unwrap();
    let _: rmi::BatchCall<()> = batch.call("record", ("after the secret",)).unwrap();
    let results = batch.run().await.unwrap();
    assert_eq!(results.get(first).unwrap(), 3);
    let refused = results.get(secret).unwrap_err();
    let Error::Remote(remote) = &refused else { panic!("expected a refusal, got {refused:?}") };
    assert_eq!(remote.kind(), RemoteErrorKind::Refused);
    assert!(remote.message().contains("secrets are for admins"), "{remote}");
    // Nothing from the refused call on ran.
    assert_eq!(calc.call::<Vec<String>>("records", ()).await.unwrap(), ["before the secret"]);
    let lines = recorder.lines();
    assert!(lines.iter().any(|l| l == "before calc.secret_plus_one"), "{lines:?}");
    d.stop().await;
}
