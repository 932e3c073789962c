//! What the daemon's tasks share: its settings and its state.

use rmi_core::ConfigError;
use rmi_core::tls::ServerTls;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rmi_core::link::QueueBudget;
use rmi_core::net::Listener;
use rmi_core::peer::Peer;
use rmi_core::{Host, Key, Location};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::registry::Registry;

/// Settings of a daemon.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) key: Option<Key>,
    /// TLS for every connection; an error when the environment turned TLS
    /// on without a server certificate (reported by `bind`).
    pub(crate) tls: Result<Option<ServerTls>, ConfigError>,
    pub(crate) max_message_size: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_calls_per_connection: usize,
    pub(crate) max_queued_per_connection: usize,
    pub(crate) max_queued_total: usize,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) advertise: Option<Host>,
    /// Whether Pyro5 clients are served too.
    pub(crate) pyro5: rmi_core::config::Pyro5Mode,
    /// The application's hooks, if it gave any.
    pub(crate) hooks: Option<crate::hooks::SharedHooks>,
    /// The settings the daemon was built from (the name server's client
    /// uses them when none was given).
    pub(crate) config: rmi_core::Config,
    /// The name server names are registered in, if not the one
    /// `locate_ns` finds.
    pub(crate) name_server: Option<rmi_proxy::NameServerProxy>,
    /// The TTL of the daemon's lease.
    pub(crate) lease_ttl: Duration,
}

/// Everything the daemon's tasks share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) registry: Arc<Registry>,
    pub(crate) options: Options,
    pub(crate) shutdown: CancellationToken,
    /// Oneway calls, which outlive their connections.
    pub(crate) calls: TaskTracker,
    /// Connections being served now.
    pub(crate) connections: std::sync::atomic::AtomicUsize,
    /// The id the next connection is given (see `ConnectionInfo`).
    pub(crate) connection_ids: std::sync::atomic::AtomicU64,
    /// What the daemon holds for its clients, all connections together.
    pub(crate) output: Arc<QueueBudget>,
    /// The object spaces of the connections (what each exported), to count
    /// them.
    pub(crate) peers: Mutex<Vec<Weak<Peer>>>,
    /// Where the daemon listens.
    pub(crate) location: Location,
    /// What its URIs say (differs behind NAT, or when bound to 0.0.0.0).
    pub(crate) advertised: Location,
    pub(crate) listener: Mutex<Option<Listener>>,
    /// Objects served to Pyro5 clients in Pyro5's own terms (see
    /// [`crate::Pyro5Object`]), by id.
    pub(crate) pyro5_objects: dashmap::DashMap<String, Arc<dyn crate::pyro5::Pyro5Object>>,
    /// Services served on the listener beside rmi's objects, by name.
    pub(crate) channels: dashmap::DashMap<String, crate::channels::ChannelHandler>,
    /// The lease the daemon's names are registered with, once granted.
    pub(crate) lease: tokio::sync::OnceCell<rmi_proxy::Lease>,
}

impl Inner {
    /// Counts the object space of a new connection.
    /// A fresh connection id: 1, 2, 3… in the order connections arrive.
    pub(crate) fn next_connection_id(&self) -> u64 {
        self.connection_ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    pub(crate) fn add_peer(&self, peer: &Arc<Peer>) {
        let mut peers = self.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        peers.retain(|p| p.strong_count() > 0);
        peers.push(Arc::downgrade(peer));
    }

    /// Objects exported over all connections now.
    pub(crate) fn exports(&self) -> usize {
        self.live_peers().iter().map(|p| p.export_count()).sum()
    }

    /// Clients' objects referenced over all open connections now.
    pub(crate) fn imports(&self) -> usize {
        self.live_peers().iter().filter(|p| !p.is_closed()).map(|p| p.import_count()).sum()
    }

    fn live_peers(&self) -> Vec<Arc<Peer>> {
        let peers = self.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        peers.iter().filter_map(Weak::upgrade).collect()
    }
}
