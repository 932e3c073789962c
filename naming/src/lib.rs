//! rmi's name server: maps logical names to object URIs, as Pyro's
//! `python -m Pyro5.nameserver` does; a library, and the `rmi-naming`
//! binary that serves it and talks to it.
//!
//! The name server is an ordinary object (`RMI.NameServer`) hosted by an
//! ordinary daemon ([`rmi_daemon::Daemon`]), so it gets the transport,
//! authentication and limits of every daemon; its interface and client
//! ([`NameServerProxy`](rmi_proxy::NameServerProxy)) live in `rmi-proxy`,
//! where proxies can reach them to resolve `RMINAME:` URIs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let options = rmi_naming::NameServerOptions::from_config(&rmi_core::Config::from_env()?);
//! rmi_naming::run(options, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `server`: the name server object: checks names, tags and patterns.
//! - `backend`: where the names are kept: the embedded store or etcd.
//! - `store`: the embedded store: the names in memory, each change logged
//!   before it is acknowledged, and their leases.
//! - `etcd`: the names in etcd, cached from a watch (the `etcd` feature).
//! - `log`: the crash-safe append-only log with group commit.
//! - `discovery`: the UDP responder that answers discovery queries.
//! - `bin/rmi-naming`: the binary: serve, and the control commands.
//!
//! # Features
//!
//! - `etcd` (off by default): [`NameServerOptions::etcd`], the names kept in
//!   an etcd cluster, so that several name servers serve the same names
//!   (`rmi-naming --etcd`). It builds etcd's gRPC client (tonic, prost;
//!   `protoc` must be installed).

// Data from the network must never panic this code: these are denied outside
// tests, and the few justified exceptions say why where they stand.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

mod backend;
mod discovery;
#[cfg(feature = "etcd")]
mod etcd;
mod log;
pub mod pyro5;
mod server;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rmi_core::tls::ServerTls;
use rmi_core::{Config, ConfigError, Host, HostPort, Key, Location, ObjectUri};
use rmi_daemon::{Daemon, DaemonError};
use rmi_proxy::{NAME_SERVER_OBJECT, NameServerApiObject};
use tokio::sync::watch;

pub use server::NameServer;

pub mod devcerts;
pub mod devetcd;

/// How a name server runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NameServerOptions {
    /// The host to listen on. Default: `127.0.0.1` (this machine only).
    pub host: Host,
    /// The TCP port; 0 picks a free one. Default: `RMI_NS_PORT`, 9090.
    pub port: u16,
    /// The UDP port discovery queries are answered on; 0 picks a free one,
    /// `None` answers none. Default: `RMI_NS_BCPORT`, 9091.
    pub broadcast_port: Option<u16>,
    /// The storage file that makes registrations survive a restart; `None`
    /// keeps them in memory. Default: none.
    pub storage: Option<PathBuf>,
    /// The shared HMAC key clients must hold. Default: `RMI_HMAC_KEY`.
    pub key: Option<Key>,
    /// The largest message accepted. Default: `RMI_MAX_MESSAGE_SIZE`.
    pub max_message_size: usize,
    /// The host to put in the name server's URI, if not `host`.
    pub advertise: Option<Host>,
    /// TLS for every connection: the name server's certificate and which
    /// clients it accepts. Default: `RMI_TLS=on` with `RMI_TLS_SERVER_CERT`
    /// and `RMI_TLS_SERVER_KEY`, or none.
    pub tls: Option<ServerTls>,
    /// Whether Python's Pyro5 tools are served too (`locate_ns`,
    /// `PYRONAME:`, `python -m Pyro5.nsc`): the name server as
    /// `Pyro.NameServer`, on the same port. Default: `RMI_PYRO5`, off.
    pub pyro5: rmi_core::config::Pyro5Mode,
    /// Keep the names in etcd instead of the embedded store: several name
    /// servers on one etcd cluster then serve the same names. Needs the
    /// `etcd` feature. Default: none (`rmi-naming` reads `RMI_NS_ETCD`).
    pub etcd: Option<EtcdOptions>,
    /// Set when the environment turned TLS on without a server
    /// certificate: `start` reports it rather than run in plaintext.
    tls_missing: Option<ConfigError>,
}

impl NameServerOptions {
    /// The options `config` gives (the host is always `127.0.0.1`:
    /// `RMI_NS_HOST` says where clients look, not where to listen).
    pub fn from_config(config: &Config) -> Self {
        NameServerOptions {
            host: Host::V4(std::net::Ipv4Addr::LOCALHOST),
            port: config.ns_port,
            broadcast_port: Some(config.ns_bcport),
            storage: None,
            key: config.hmac_key.clone(),
            max_message_size: config.max_message_size,
            advertise: None,
            pyro5: config.pyro5,
            etcd: None,
            tls: config.tls.as_ref().and_then(|t| t.server.clone()),
            tls_missing: config.tls.as_ref().filter(|t| t.server.is_none()).map(|_| {
                ConfigError::new(
                    "RMI_TLS_SERVER_CERT",
                    "RMI_TLS is on: the name server needs its certificate and key (RMI_TLS_SERVER_CERT and RMI_TLS_SERVER_KEY)",
                )
            }),
        }
    }
}

/// The key prefix etcd registrations are kept under when none is given.
pub const DEFAULT_ETCD_PREFIX: &str = "/rmi/naming/";

/// Where etcd is, and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdOptions {
    /// The members' client URLs (`http://127.0.0.1:2379`), any number.
    pub endpoints: Vec<String>,
    /// The prefix of every key rmi-naming writes: registrations are
    /// `<prefix>names/<name>`. Default: [`DEFAULT_ETCD_PREFIX`].
    pub prefix: String,
    /// etcd's user and password, when its authentication is on.
    pub user: Option<(String, String)>,
    /// TLS to etcd (its endpoints then `https://`), when its client URLs
    /// serve TLS.
    pub tls: Option<EtcdTls>,
}

/// TLS to etcd: the CA its members' certificates are verified with, and the
/// certificate rmi-naming presents when etcd asks for one
/// (`--client-cert-auth`). PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA bundle.
    pub ca: PathBuf,
    /// The client certificate chain and its key.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl EtcdOptions {
    /// The members at `endpoints`, the default prefix, no user, no TLS.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdOptions { endpoints, prefix: DEFAULT_ETCD_PREFIX.to_owned(), user: None, tls: None }
    }
}

/// Why a name server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Its daemon could not start.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The storage file could not be opened or read.
    #[error("cannot open the storage file {path}")]
    Storage {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// etcd could not be reached or read, or this build has no etcd.
    #[error("etcd: {0}")]
    Etcd(String),
    /// The discovery port could not be bound.
    #[error(
        "cannot answer discovery on UDP {address} (another name server there? use another --bcport, or --no-broadcast)"
    )]
    Discovery {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A name server that is serving.
#[derive(Debug)]
pub struct RunningNameServer {
    uri: ObjectUri,
    daemon: Daemon,
    discovery: Option<SocketAddr>,
    stop_discovery: watch::Sender<bool>,
    serving: tokio::task::JoinHandle<Result<(), DaemonError>>,
    responder: Option<tokio::task::JoinHandle<()>>,
    expiry: tokio::task::JoinHandle<()>,
}

impl RunningNameServer {
    /// The name server's URI (`RMI:RMI.NameServer@host:port`).
    pub fn uri(&self) -> &ObjectUri {
        &self.uri
    }

    /// Where discovery queries are answered, if they are.
    pub fn discovery_address(&self) -> Option<SocketAddr> {
        self.discovery
    }

    /// The daemon that hosts the name server (it can host other objects too).
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// Stops serving and waits until it has.
    ///
    /// # Errors
    ///
    /// What the daemon's `serve` reported.
    pub async fn stop(self) -> Result<(), DaemonError> {
        self.daemon.shutdown();
        self.expiry.abort();
        let _ = self.stop_discovery.send(true);
        if let Some(responder) = self.responder {
            let _ = responder.await;
        }
        self.serving.await.unwrap_or(Ok(()))
    }
}

/// Starts a name server: opens its storage, binds, hosts the name server
/// object, and answers discovery.
///
/// # Errors
///
/// [`StartError`] saying what could not be opened or bound.
pub async fn start(options: NameServerOptions) -> Result<RunningNameServer, StartError> {
    let store = match (&options.etcd, &options.storage) {
        (Some(_), Some(path)) => {
            return Err(StartError::Etcd(format!(
                "the names are either in etcd or in the storage file {}, not both",
                path.display()
            )));
        }
        (Some(etcd), None) => etcd_backend(etcd).await?,
        (None, Some(path)) => backend::Backend::Embedded(
            store::Store::open(path).map_err(|source| StartError::Storage { path: path.clone(), source })?,
        ),
        (None, None) => backend::Backend::Embedded(store::Store::in_memory()),
    };
    if let (None, Some(missing)) = (&options.tls, &options.tls_missing) {
        return Err(StartError::Daemon(DaemonError::Config(missing.clone())));
    }
    let mut builder = Daemon::builder_with_config(&Config::default())
        .key(options.key.clone())
        .tls(options.tls.clone())
        .pyro5(options.pyro5)
        .max_message_size(options.max_message_size);
    if let Some(host) = &options.advertise {
        builder = builder.advertise(host.clone());
    }
    let location = Location::Tcp(HostPort { host: options.host.clone(), port: options.port });
    let daemon = builder.bind_location(&location).await?;
    let store = Arc::new(store);
    let expiry = tokio::spawn(expire_leases(Arc::downgrade(&store)));
    let uri =
        daemon.register(NameServerApiObject(NameServer::new(store.clone())), Some(NAME_SERVER_OBJECT))?;
    if options.pyro5 != rmi_core::config::Pyro5Mode::Off {
        let facade = pyro5::PyroNameServer { ns: NameServer::new(store) };
        daemon.register_pyro5(pyro5::PYRO5_NAME_SERVER, Arc::new(facade));
    }
    let (stop_discovery, stopped) = watch::channel(false);
    let (discovery, responder) = match options.broadcast_port {
        Some(port) => {
            let address = format!("0.0.0.0:{port}");
            let socket = tokio::net::UdpSocket::bind(&address)
                .await
                .map_err(|source| StartError::Discovery { address: address.clone(), source })?;
            let bound = socket.local_addr().map_err(|source| StartError::Discovery { address, source })?;
            let pyro5 = options.pyro5 != rmi_core::config::Pyro5Mode::Off;
            (Some(bound), Some(tokio::spawn(discovery::respond(socket, uri.clone(), pyro5, stopped))))
        }
        None => (None, None),
    };
    let serving = tokio::spawn({
        let daemon = daemon.clone();
        async move { daemon.serve().await }
    });
    Ok(RunningNameServer { uri, daemon, discovery, stop_discovery, serving, responder, expiry })
}

#[cfg(feature = "etcd")]
async fn etcd_backend(options: &EtcdOptions) -> Result<backend::Backend, StartError> {
    Ok(backend::Backend::Etcd(etcd::EtcdStore::connect(options).await.map_err(StartError::Etcd)?))
}

#[cfg(not(feature = "etcd"))]
async fn etcd_backend(_: &EtcdOptions) -> Result<backend::Backend, StartError> {
    Err(StartError::Etcd(
        "this rmi-naming was built without etcd: build it with `cargo build -p rmi-naming --features etcd`"
            .into(),
    ))
}

/// How often leases are checked for their end: a name goes at most this
/// long after its lease's TTL.
const EXPIRY_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// Ends the leases not kept alive, and their names, while the store lives.
async fn expire_leases(store: std::sync::Weak<backend::Backend>) {
    let mut ticks = tokio::time::interval(EXPIRY_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(store) = store.upgrade() else { return };
        let gone = store.expire(std::time::Instant::now());
        if gone > 0 {
            tracing::info!("{gone} names removed: their lease was not kept alive");
        }
    }
}

/// Runs a name server until `shutdown` completes (the binary passes Ctrl-C).
///
/// # Errors
///
/// [`StartError`] when it cannot start.
pub async fn run(options: NameServerOptions, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let running = start(options).await?;
    shutdown.await;
    running.stop().await?;
    Ok(())
}
