//! The daemon: binds, hosts objects, serves calls until shut down.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmi_core::net::Listener;
use rmi_core::object::Exposed;
use rmi_core::uri::parse_bind_address;
use rmi_core::{Config, ConfigError, Host, HostPort, Key, Location, ObjectUri, UriError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection;
use crate::registry::Registry;

/// How long a new connection may take to finish its handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `serve` waits, after `shutdown`, for calls in flight to finish.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why a daemon could not be set up, or an object not registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The address to bind is malformed.
    #[error(transparent)]
    Address(#[from] UriError),
    /// The address could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An `RMI_*` variable is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An object is already registered under this id.
    #[error("an object is already registered as {0:?}")]
    DuplicateId(String),
    /// The id cannot be used.
    #[error("invalid object id {id:?}: {reason}")]
    InvalidId {
        /// The id.
        id: String,
        /// Why not.
        reason: String,
    },
    /// No randomness for a generated id.
    #[error("cannot generate an object id: {0}")]
    Random(String),
    /// `serve` was called twice.
    #[error("this daemon is already serving")]
    AlreadyServing,
    /// Accepting connections failed for good.
    #[error("the listener failed")]
    Listener(#[source] io::Error),
}

/// Settings of a daemon.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) key: Option<Key>,
    pub(crate) max_message_size: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) advertise: Option<Host>,
}

/// Everything the daemon's tasks share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) registry: Arc<Registry>,
    pub(crate) options: Options,
    pub(crate) shutdown: CancellationToken,
    /// Oneway calls, which outlive their connections.
    pub(crate) calls: TaskTracker,
    /// Where the daemon listens.
    location: Location,
    /// What its URIs say (differs behind NAT, or when bound to 0.0.0.0).
    advertised: Location,
    listener: Mutex<Option<Listener>>,
}

/// Hosts objects and serves calls to them from any number of connections.
///
/// ```no_run
/// # async fn demo(greeter: impl rmi_core::object::Exposed) -> Result<(), Box<dyn std::error::Error>> {
/// let daemon = rmi_daemon::Daemon::bind("127.0.0.1:0").await?;
/// let uri = daemon.register(greeter, Some("greeter"))?;
/// println!("{uri}");
/// daemon.serve().await?; // until daemon.shutdown()
/// # Ok(()) }
/// ```
///
/// A `Daemon` is a cheap handle: clones control the same daemon, so one task
/// can serve while another registers objects or shuts it down.
#[derive(Debug, Clone)]
pub struct Daemon {
    inner: Arc<Inner>,
}

/// Builds a [`Daemon`] with settings other than the environment's.
#[derive(Debug, Clone)]
#[must_use]
pub struct DaemonBuilder {
    options: Options,
}

impl DaemonBuilder {
    /// The shared HMAC key clients must hold (default: `RMI_HMAC_KEY`, or
    /// none).
    pub fn key(mut self, key: Option<Key>) -> Self {
        self.options.key = key;
        self
    }

    /// The largest message sent or accepted (default: `RMI_MAX_MESSAGE_SIZE`).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.options.max_message_size = bytes;
        self
    }

    /// How long a connection may take to finish its handshake (default: 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.options.handshake_timeout = timeout;
        self
    }

    /// How long `serve` lets calls in flight finish after `shutdown`
    /// (default: 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.options.shutdown_grace = grace;
        self
    }

    /// The host to put in object URIs instead of the bound one: the public
    /// name of a machine behind NAT, or the address clients reach when
    /// bound to `0.0.0.0`.
    pub fn advertise(mut self, host: Host) -> Self {
        self.options.advertise = Some(host);
        self
    }

    /// Binds `address`: `host:port` (port 0 for a free one), `[::1]:port`, or
    /// `./u:<path>` for a Unix socket.
    ///
    /// # Errors
    ///
    /// A malformed address, or the bind error.
    pub async fn bind(self, address: &str) -> Result<Daemon, DaemonError> {
        let location = parse_bind_address(address)?;
        self.bind_location(&location).await
    }

    /// Binds `location`.
    ///
    /// # Errors
    ///
    /// The bind error.
    pub async fn bind_location(self, location: &Location) -> Result<Daemon, DaemonError> {
        let bind_error = |source| DaemonError::Bind { address: location.to_string(), source };
        let listener = Listener::bind(location).await.map_err(bind_error)?;
        let location = listener.location().map_err(bind_error)?;
        let advertised = advertised(&location, self.options.advertise.as_ref());
        Ok(Daemon {
            inner: Arc::new(Inner {
                registry: Registry::with_daemon_object(),
                options: self.options,
                shutdown: CancellationToken::new(),
                calls: TaskTracker::new(),
                location,
                advertised,
                listener: Mutex::new(Some(listener)),
            }),
        })
    }
}

/// The location to put in URIs: the advertised host if one was given; for
/// a daemon bound to every interface, the loopback address (with a warning:
/// other machines need `advertise`).
fn advertised(bound: &Location, advertise: Option<&Host>) -> Location {
    match (bound, advertise) {
        (Location::Tcp(hp), Some(host)) => Location::Tcp(HostPort { host: host.clone(), port: hp.port }),
        (Location::Tcp(HostPort { host: Host::V4(ip), port }), None) if ip.is_unspecified() => {
            tracing::warn!(
                "bound to {ip}: object URIs say 127.0.0.1; use advertise(host) for other machines"
            );
            Location::Tcp(HostPort { host: Host::V4(std::net::Ipv4Addr::LOCALHOST), port: *port })
        }
        (Location::Tcp(HostPort { host: Host::V6(ip), port }), None) if ip.is_unspecified() => {
            tracing::warn!("bound to [{ip}]: object URIs say [::1]; use advertise(host) for other machines");
            Location::Tcp(HostPort { host: Host::V6(std::net::Ipv6Addr::LOCALHOST), port: *port })
        }
        _ => bound.clone(),
    }
}

impl Daemon {
    /// Binds `address` with the settings of the `RMI_*` environment
    /// variables: `host:port` (port 0 for a free one), `[::1]:port`, or
    /// `./u:<path>` for a Unix socket.
    ///
    /// # Errors
    ///
    /// An invalid `RMI_*` variable, a malformed address, or the bind error.
    pub async fn bind(address: &str) -> Result<Daemon, DaemonError> {
        Self::builder()?.bind(address).await
    }

    /// A builder starting from the `RMI_*` environment variables.
    ///
    /// # Errors
    ///
    /// An invalid `RMI_*` variable.
    pub fn builder() -> Result<DaemonBuilder, DaemonError> {
        Ok(Self::builder_with_config(&Config::from_env()?))
    }

    /// A builder starting from `config`.
    pub fn builder_with_config(config: &Config) -> DaemonBuilder {
        DaemonBuilder {
            options: Options {
                key: config.hmac_key.clone(),
                max_message_size: config.max_message_size,
                handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
                shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
                advertise: None,
            },
        }
    }

    /// Hosts `object` under `id` (or a generated `obj_…` id) and returns its
    /// URI.
    ///
    /// # Errors
    ///
    /// [`DaemonError::DuplicateId`] when the id is taken;
    /// [`DaemonError::InvalidId`] for an id with `@` or spaces, or the id of
    /// the daemon's own object, `RMI.Daemon`.
    pub fn register<O: Exposed>(&self, object: O, id: Option<&str>) -> Result<ObjectUri, DaemonError> {
        self.register_arc(Arc::new(object), id)
    }

    /// As [`Daemon::register`], for an object already shared.
    ///
    /// # Errors
    ///
    /// As [`Daemon::register`].
    pub fn register_arc(&self, object: Arc<dyn Exposed>, id: Option<&str>) -> Result<ObjectUri, DaemonError> {
        let id = self.inner.registry.insert(object, id)?;
        Ok(self.uri_for(&id))
    }

    /// Stops hosting the object `id`; calls already running finish. Returns
    /// whether it was registered.
    pub fn unregister(&self, id: &str) -> bool {
        self.inner.registry.remove(id)
    }

    /// The ids of the hosted objects (with the daemon's own, `RMI.Daemon`).
    pub fn objects(&self) -> Vec<String> {
        self.inner.registry.ids()
    }

    /// The URI the object `id` has (or would have) in this daemon.
    pub fn uri_for(&self, id: &str) -> ObjectUri {
        ObjectUri { object: id.to_owned(), location: self.inner.advertised.clone() }
    }

    /// Where the daemon listens (with the real port when 0 was asked).
    pub fn location(&self) -> &Location {
        &self.inner.location
    }

    /// Accepts connections and serves calls until [`Daemon::shutdown`]; then
    /// stops accepting, lets calls in flight finish (for up to the shutdown
    /// grace), and returns.
    ///
    /// # Errors
    ///
    /// [`DaemonError::AlreadyServing`] when called twice.
    pub async fn serve(&self) -> Result<(), DaemonError> {
        let listener = {
            let mut slot = self.inner.listener.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.take().ok_or(DaemonError::AlreadyServing)?
        };
        tracing::info!(location = %self.inner.location, "daemon serving");
        // A JoinSet, reaped as connections end, so that connections still
        // open after the shutdown grace are aborted when it is dropped.
        let mut connections = tokio::task::JoinSet::new();
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                () = self.inner.shutdown.cancelled() => break,
            };
            match accepted {
                Ok(connection) => {
                    backoff = Duration::from_millis(5);
                    connections.spawn(connection::serve(self.inner.clone(), connection));
                }
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it
                    // was accepted: log, wait a little, keep serving.
                    tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        drop(listener);
        self.inner.calls.close();
        let grace = self.inner.options.shutdown_grace;
        let finished = async {
            while connections.join_next().await.is_some() {}
            self.inner.calls.wait().await;
        };
        if tokio::time::timeout(grace, finished).await.is_err() {
            tracing::warn!("calls still running {grace:?} after shutdown were abandoned");
            connections.abort_all();
        }
        tracing::info!(location = %self.inner.location, "daemon stopped");
        Ok(())
    }

    /// Asks `serve` to stop; returns at once.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Whether [`Daemon::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }
}
