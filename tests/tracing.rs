//! Every call is a `tracing` span on both sides, quiet at the default
//! level: with `rmi=debug`, a chain of two servers shows the call's path,
//! each step with its object, method, id, correlation id and peer.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{TestDaemon, builder, proxy_builder};

/// Where the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Calls the next hop, if there is one.
#[derive(Debug, Default)]
pub struct Hop;

#[rmi::expose]
impl Hop {
    /// Passes `n + 1` to `next` (if any), or returns it.
    pub async fn pass(&self, n: u32, next: Option<String>) -> Result<u32, rmi::Error> {
        match next {
            Some(next) => HopProxy::new(next.as_str())?.pass(n + 1, None).await,
            None => Ok(n + 1),
        }
    }
}

async fn run_chain(filter: &str) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let a = TestDaemon::start(builder()).await;
    let b = TestDaemon::start(builder()).await;
    a.daemon.register(Hop, Some("a")).unwrap();
    let b_uri = b.daemon.register(Hop, Some("b")).unwrap();
    let first = HopProxy::from_proxy(proxy_builder(&a.daemon.uri_for("a")).build().unwrap());
    let n = rmi::correlate("req-7", first.pass(1, Some(b_uri.to_string()))).await.unwrap().unwrap();
    assert_eq!(n, 3);
    captured.text()
}

#[tokio::test]
async fn with_rmi_at_debug_a_call_shows_its_path_through_the_chain() {
    let log = run_chain("rmi=debug").await;
    // The client's call, the first server's, its call onwards, the second's.
    let client = log.lines().filter(|l| l.contains("rmi.call{") && l.contains("call returned")).count();
    assert_eq!(client, 2, "{log}");
    for object in ["a", "b"] {
        let started = log
            .lines()
            .find(|l| l.contains(&format!("object=\"{object}\"")) && l.contains("call started"))
            .unwrap_or_else(|| panic!("no span for {object}:\n{log}"));
        assert!(started.contains("method=\"pass\""), "{started}");
        assert!(started.contains("correlation=\"req-7\""), "{started}");
        assert!(started.contains("peer=127.0.0.1:") || started.contains("peer=\"127.0.0.1:"), "{started}");
        assert!(started.contains(" id="), "{started}");
        let ended =
            log.lines().find(|l| l.contains(&format!("object=\"{object}\"")) && l.contains("call ended"));
        assert!(ended.is_some_and(|l| l.contains("outcome=Ok")), "{log}");
    }
}

#[tokio::test]
async fn calls_are_quiet_at_the_default_level() {
    let log = run_chain("info").await;
    assert!(!log.contains("rmi.call"), "{log}");
    assert!(!log.contains("call started"), "{log}");
}
