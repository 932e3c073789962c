//! The caller's context inside methods, against real daemons on loopback:
//! the connection and peer, the deadline, a correlation id carried through
//! a chain of three servers, annotations for the called method only, and
//! the context following a call across `.await`s and onto the blocking pool.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestDaemon, builder, proxy_builder};

/// What one method saw of its context.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    connection: Option<u64>,
    peer: Option<String>,
    /// Milliseconds left before the deadline, if there is one.
    left_ms: Option<u64>,
    correlation: Option<String>,
    user: Option<String>,
}

fn seen() -> Seen {
    let c = rmi::context().expect("a context inside a method");
    Seen {
        connection: c.connection_id(),
        peer: c.peer().map(str::to_owned),
        left_ms: c
            .deadline()
            .map(|d| d.saturating_duration_since(std::time::Instant::now()).as_millis() as u64),
        correlation: c.correlation_id().map(str::to_owned),
        user: c.annotation("user").map(str::to_owned),
    }
}

/// A link of a chain: records what it saw, and calls the next link.
#[derive(Debug, Default)]
pub struct Link {
    log: Arc<Mutex<Vec<Seen>>>,
}

#[rmi::expose]
impl Link {
    /// What this call sees, after an `.await`.
    pub async fn look(&self) -> Seen {
        tokio::time::sleep(Duration::from_millis(1)).await;
        seen()
    }

    /// What this call sees, on the blocking pool.
    pub fn look_blocking(&self) -> Seen {
        seen()
    }

    /// Records what it sees, then calls `next` (if any) the same way;
    /// returns every link's view, this one's first.
    pub async fn pass(&self, next: Vec<String>) -> Result<Vec<Seen>, rmi::Error> {
        let mine = seen();
        self.log.lock().unwrap().push(mine.clone());
        let mut all = vec![mine];
        if let Some((first, rest)) = next.split_first() {
            let link = LinkProxy::new(first.as_str())?;
            all.extend(link.pass(rest.to_vec()).await?);
        }
        Ok(all)
    }
}

async fn link() -> (TestDaemon, String, Arc<Mutex<Vec<Seen>>>) {
    let d = TestDaemon::start(builder()).await;
    let object = Link::default();
    let log = object.log.clone();
    let uri = d.daemon.register(object, Some("link")).unwrap();
    (d, uri.to_string(), log)
}

#[tokio::test]
async fn a_method_sees_its_connection_peer_and_deadline_across_awaits_and_on_the_blocking_pool() {
    let (d, uri, _) = link().await;
    let proxy = LinkProxy::from_proxy(proxy_builder(&d.daemon.uri_for("link")).build().unwrap())
        .with_timeout(Some(Duration::from_secs(5)));
    let a = proxy.look().await.unwrap();
    let b = proxy.look_blocking().await.unwrap();
    assert!(a.connection.is_some());
    assert_eq!(a.connection, b.connection, "one proxy, one connection");
    let peer = a.peer.clone().unwrap();
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    assert!(a.left_ms.is_some_and(|ms| ms > 4_000 && ms <= 5_000), "{a:?}");
    assert!(b.left_ms.is_some_and(|ms| ms > 4_000 && ms <= 5_000), "{b:?}");
    assert_eq!((a.correlation.as_deref(), a.user.as_deref()), (None, None));
    // Another proxy, another connection.
    let other = LinkProxy::new(uri.as_str()).unwrap().with_timeout(None);
    let c = other.look().await.unwrap();
    assert_ne!(c.connection, a.connection);
    assert_eq!(c.left_ms, None, "no timeout, no deadline");
    // Outside a method there is none.
    assert!(rmi::context().is_none());
}

#[tokio::test]
async fn a_correlation_id_goes_through_a_chain_of_three_servers_and_annotations_stop_at_the_first() {
    let (a, a_uri, a_log) = link().await;
    let (_b, b_uri, b_log) = link().await;
    let (_c, c_uri, c_log) = link().await;
    let first = LinkProxy::from_proxy(proxy_builder(&a.daemon.uri_for("link")).build().unwrap());
    let _ = a_uri;
    let views = rmi::correlate("req-42", async {
        rmi::annotate([("user", "ada")], first.pass(vec![b_uri.clone(), c_uri.clone()])).await
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(views.len(), 3);
    for (i, view) in views.iter().enumerate() {
        assert_eq!(view.correlation.as_deref(), Some("req-42"), "link {i}: {view:?}");
    }
    assert_eq!(views[0].user.as_deref(), Some("ada"));
    assert_eq!(views[1].user, None, "annotations are for the called method only");
    assert_eq!(views[2].user, None);
    // Each server logged the same id.
    for log in [&a_log, &b_log, &c_log] {
        assert_eq!(log.lock().unwrap()[0].correlation.as_deref(), Some("req-42"));
    }
    // Without a correlation id, none is made up.
    let plain = first.pass(vec![]).await.unwrap();
    assert_eq!(plain[0].correlation, None);
}

#[tokio::test]
async fn too_many_annotations_are_refused_before_anything_is_sent() {
    let (d, _, log) = link().await;
    let proxy = LinkProxy::from_proxy(proxy_builder(&d.daemon.uri_for("link")).build().unwrap());
    let many = (0..17).map(|i| (format!("k{i}"), "v"));
    let err = rmi::annotate(many, proxy.pass(vec![])).await.unwrap_err();
    assert!(err.to_string().contains("17 annotations, more than the 16 allowed"), "{err}");
    assert!(log.lock().unwrap().is_empty());
    // Sixteen go.
    let sixteen = (0..16).map(|i| (format!("k{i}"), "v"));
    let views = rmi::annotate(sixteen, proxy.pass(vec![])).await.unwrap().unwrap();
    assert_eq!(views.len(), 1);
}
