//! The daemon: binds, hosts objects, serves calls until shut down.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmi_core::config::Pyro5Mode;
use rmi_core::link::QueueBudget;
use rmi_core::net::Listener;
use rmi_core::object::{Exposed, ExposedType};
use rmi_core::tls::ServerTls;
use rmi_core::uri::parse_bind_address;
use rmi_core::{Config, ConfigError, Host, HostPort, Key, Location, ObjectUri, UriError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection;
use crate::instances::{InstanceMode, Instances};
use crate::registry::Registry;
use crate::state::{Inner, Options};

/// How long a new connection may take to finish its handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `serve` waits, after `shutdown`, for calls in flight to finish.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog until one
/// closes. Each idle connection costs a task and a 16 KiB read buffer.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Calls one connection may have running at once; beyond that its calls
/// wait, held by the daemon (which keeps reading cancels), until one
/// finishes.
pub const DEFAULT_MAX_CALLS_PER_CONNECTION: usize = 1_024;
/// Bytes the daemon may hold for one connection's client: replies queued
/// and not yet written, and room set aside for the replies of its calls
/// running. Past it, the connection's calls wait until its client reads:
/// enough to keep a fast network busy (4 MiB in flight is 1 Gbit/s over a
/// 32 ms round trip), small enough that 1,000 stalled clients cost little.
pub const DEFAULT_MAX_QUEUED_PER_CONNECTION: usize = 4 * 1024 * 1024;
/// Bytes the daemon may hold for all its connections' clients together;
/// past it, only connections that hold nothing start calls (one at a time),
/// so that stalled clients cannot stop those that read.
pub const DEFAULT_MAX_QUEUED_TOTAL: usize = 64 * 1024 * 1024;
/// How long a client may take none of the replies waiting for it before
/// the daemon closes its connection and cancels its calls (as nginx's
/// `send_timeout`: a client that reads slowly but steadily is not cut off).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may sit with no call in flight and nothing sent
/// before the daemon closes it (proxies reconnect on their next call).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

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
    /// The name server refused a name, or could not be reached.
    #[error("cannot register {name:?} in the name server")]
    Naming {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: rmi_core::Error,
    },
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
    pub(crate) inner: Arc<Inner>,
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

    /// TLS for every connection: the daemon's certificate and which clients
    /// it accepts (default: `RMI_TLS=on` with `RMI_TLS_SERVER_CERT` and
    /// `RMI_TLS_SERVER_KEY`, or none). Clients must connect with TLS too;
    /// one that does not is told so and refused.
    pub fn tls(mut self, tls: Option<ServerTls>) -> Self {
        self.options.tls = Ok(tls);
        self
    }

    /// Whether Python clients of Pyro5 (5.x, json serializer) are served too,
    /// on the same port, each connection told apart by its first bytes
    /// (default: `RMI_PYRO5`, or off). See the README's interop section.
    /// [`Pyro5Mode::On`] beside a shared key and without TLS makes
    /// [`DaemonBuilder::bind`] fail: Pyro5 carries no authentication.
    pub fn pyro5(mut self, mode: Pyro5Mode) -> Self {
        self.options.pyro5 = mode;
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

    /// How many connections are served at once (default: 10,000); more wait
    /// in the listen backlog until one closes.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.options.max_connections = max.max(1);
        self
    }

    /// How many calls one connection may have running at once (default:
    /// 1,024); beyond that its calls wait, held by the daemon, until one
    /// finishes.
    pub fn max_calls_per_connection(mut self, max: usize) -> Self {
        self.options.max_calls_per_connection = max.max(1);
        self
    }

    /// How many bytes the daemon may hold for one connection's client
    /// (default: 4 MiB): its replies queued and not yet written, and room
    /// for the replies of its calls running (as large as its recent ones).
    /// Past it, the connection's next calls wait until the client reads.
    /// One reply larger than this still goes out, alone.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rmi_daemon::DaemonError> {
    /// let daemon = rmi_daemon::Daemon::builder()?
    ///     .max_queued_per_connection(16 << 20)
    ///     .max_queued_total(256 << 20)
    ///     .bind("127.0.0.1:0")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn max_queued_per_connection(mut self, bytes: usize) -> Self {
        self.options.max_queued_per_connection = bytes.max(1);
        self
    }

    /// How many bytes the daemon may hold for all its connections' clients
    /// together (default: 64 MiB). Past it, a connection that holds
    /// something starts no more calls until the total falls below; one
    /// that holds nothing may still start a call, so that clients that read
    /// their replies are served while others' replies wait.
    pub fn max_queued_total(mut self, bytes: usize) -> Self {
        self.options.max_queued_total = bytes.max(1);
        self
    }

    /// How long a client may take none of the replies waiting for it before
    /// its connection is closed and its calls cancelled (default: 30 s;
    /// `None`: never). A client that reads slowly but steadily is not cut
    /// off.
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.write_timeout = timeout;
        self
    }

    /// How long a connection may sit idle (no call in flight, nothing sent)
    /// before it is closed (default: 300 s; `None`: never). It is looked at
    /// every eighth of that time (at least a millisecond apart), so it
    /// closes within an eighth more.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.idle_timeout = timeout;
        self
    }

    /// How long `serve` lets calls in flight finish after `shutdown`
    /// (default: 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.options.shutdown_grace = grace;
        self
    }

    /// The name server [`Daemon::register_named`] registers names in
    /// (default: the one `locate_ns` finds with the daemon's settings).
    pub fn name_server(mut self, ns: rmi_proxy::NameServerProxy) -> Self {
        self.options.name_server = Some(ns);
        self
    }

    /// The TTL of the lease [`Daemon::register_named`] registers names
    /// with: how long after the daemon dies (or freezes, or is cut off)
    /// its names go (default: [`rmi_proxy::DEFAULT_LEASE_TTL`], 5 s; 1 s
    /// to 1 h). A daemon that shuts down removes them at once.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.options.lease_ttl = ttl;
        self
    }

    /// The host to put in object URIs instead of the bound one: the public
    /// name of a machine behind NAT, or the address clients reach when
    /// bound to `0.0.0.0`.
    pub fn advertise(mut self, host: Host) -> Self {
        self.options.advertise = Some(host);
        self
    }

    /// The application's [`Hooks`](crate::Hooks): told of each connection
    /// and each call, and able to refuse them (access logs, per-method
    /// metrics, authorization). None by default.
    pub fn hooks(mut self, hooks: impl crate::Hooks) -> Self {
        self.options.hooks = Some(crate::hooks::SharedHooks(Arc::new(hooks)));
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
        if let Err(e) = &self.options.tls {
            return Err(DaemonError::Config(e.clone()));
        }
        if self.options.pyro5 == Pyro5Mode::On
            && self.options.key.is_some()
            && matches!(self.options.tls, Ok(None))
        {
            return Err(DaemonError::Config(rmi_core::ConfigError::new(
                "RMI_PYRO5",
                "Pyro5 has no authentication: beside a shared key it would let anyone in without it. \
                 Serve Pyro5 over TLS, or say RMI_PYRO5=beside-key (DaemonBuilder::pyro5(Pyro5Mode::BesideKey)) \
                 to accept unauthenticated Pyro5 clients knowingly",
            )));
        }
        let bind_error = |source| DaemonError::Bind { address: location.to_string(), source };
        let listener = Listener::bind(location).await.map_err(bind_error)?;
        let location = listener.location().map_err(bind_error)?;
        let advertised = advertised(&location, self.options.advertise.as_ref());
        let output = Arc::new(QueueBudget::new(self.options.max_queued_total));
        Ok(Daemon {
            inner: Arc::new(Inner {
                registry: Registry::with_daemon_object(
                    self.options.max_message_size,
                    self.options.hooks.as_ref().map(|h| h.0.clone()),
                ),
                options: self.options,
                shutdown: CancellationToken::new(),
                calls: TaskTracker::new(),
                connections: std::sync::atomic::AtomicUsize::new(0),
                connection_ids: std::sync::atomic::AtomicU64::new(0),
                output,
                peers: Mutex::default(),
                location,
                advertised,
                listener: Mutex::new(Some(listener)),
                pyro5_objects: dashmap::DashMap::new(),
                channels: dashmap::DashMap::new(),
                lease: tokio::sync::OnceCell::new(),
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
                tls: match &config.tls {
                    None => Ok(None),
                    Some(tls) => tls.server.clone().map(Some).ok_or_else(|| {
                        ConfigError::new(
                            "RMI_TLS_SERVER_CERT",
                            "RMI_TLS is on: a daemon needs its certificate and key (RMI_TLS_SERVER_CERT and RMI_TLS_SERVER_KEY)",
                        )
                    }),
                },
                max_message_size: config.max_message_size,
                handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
                shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                max_calls_per_connection: DEFAULT_MAX_CALLS_PER_CONNECTION,
                max_queued_per_connection: DEFAULT_MAX_QUEUED_PER_CONNECTION,
                max_queued_total: DEFAULT_MAX_QUEUED_TOTAL,
                write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
                idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
                advertise: None,
                pyro5: config.pyro5,
                hooks: None,
                config: config.clone(),
                name_server: None,
                lease_ttl: rmi_proxy::DEFAULT_LEASE_TTL,
            },
        }
    }

    /// Serves a channel named `name` on the daemon's listener, behind its TLS
    /// and key: each connection that names it in rmi's handshake is handed to
    /// `serve` (which runs the service on it: a tarpc service, with the `rmi`
    /// crate's `tarpc` feature). Returns the URI to register in the name
    /// server (`RMI:<name>@<daemon>`).
    ///
    /// # Errors
    ///
    /// [`DaemonError::InvalidId`] for a name objects could not have;
    /// [`DaemonError::DuplicateId`] when a channel has the name already.
    pub fn register_channel(
        &self,
        name: &str,
        serve: impl Fn(crate::Channel) + Send + Sync + 'static,
    ) -> Result<ObjectUri, DaemonError> {
        crate::registry::check_id(name)?;
        if name.len() > rmi_core::handshake::MAX_CHANNEL_NAME {
            return Err(DaemonError::InvalidId {
                id: name.to_owned(),
                reason: format!(
                    "a channel name takes at most {} bytes",
                    rmi_core::handshake::MAX_CHANNEL_NAME
                ),
            });
        }
        match self.inner.channels.entry(name.to_owned()) {
            dashmap::Entry::Occupied(_) => Err(DaemonError::DuplicateId(name.to_owned())),
            dashmap::Entry::Vacant(slot) => {
                slot.insert(crate::channels::ChannelHandler(Arc::new(serve)));
                Ok(ObjectUri { object: name.to_owned(), location: self.inner.advertised.clone() })
            }
        }
    }

    /// Serves `object` to Pyro5 clients as `id`, in Pyro5's own terms (JSON
    /// values, keyword arguments): for objects that speak Pyro5's API rather
    /// than an rmi interface, as `rmi-naming`'s `Pyro.NameServer`. rmi's own
    /// clients do not see it; the daemon must speak Pyro5
    /// ([`DaemonBuilder::pyro5`]).
    pub fn register_pyro5(&self, id: &str, object: Arc<dyn crate::Pyro5Object>) {
        self.inner.pyro5_objects.insert(id.to_owned(), object);
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

    /// Hosts an object the daemon makes itself, with `factory`, as `mode`
    /// says: one instance for the daemon ([`InstanceMode::Single`]), one per
    /// client connection ([`InstanceMode::Session`]), or one per call
    /// ([`InstanceMode::PerCall`]). The type is the factory's, checked at
    /// compile time. (The `rmi` crate's documentation has an example.)
    ///
    /// # Errors
    ///
    /// As [`Daemon::register`].
    pub fn register_factory<O, F>(
        &self,
        mode: InstanceMode,
        factory: F,
        id: Option<&str>,
    ) -> Result<ObjectUri, DaemonError>
    where
        O: ExposedType,
        F: Fn() -> O + Send + Sync + 'static,
    {
        self.register_arc(Arc::new(Instances::new(mode, factory)), id)
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
        let permits = Arc::new(tokio::sync::Semaphore::new(self.inner.options.max_connections));
        loop {
            // A permit first: at the limit, new connections wait in the
            // listen backlog instead of being accepted and starved.
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                () = self.inner.shutdown.cancelled() => break,
            };
            let Ok(permit) = permit else { break };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                () = self.inner.shutdown.cancelled() => break,
            };
            match accepted {
                Ok(connection) => {
                    backoff = Duration::from_millis(5);
                    let inner = self.inner.clone();
                    connections.spawn(async move {
                        let _permit = permit;
                        let _counted = Counted::new(&inner.connections);
                        connection::serve(inner.clone(), connection).await;
                    });
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
        let grace = self.inner.options.shutdown_grace;
        // The names go first, so that no client is sent here any more.
        self.revoke_lease(grace).await;
        self.inner.calls.close();
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

    /// How many connections are being served now.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many objects the daemon exports now over all its connections:
    /// local objects passed as references (autoproxies), each until its
    /// client releases it or goes away.
    pub fn exported_objects(&self) -> usize {
        self.inner.exports()
    }

    /// How many of their clients' objects (callbacks) the daemon's objects
    /// hold references to now, over connections still open.
    pub fn imported_objects(&self) -> usize {
        self.inner.imports()
    }

    /// How many bytes the daemon holds for its clients now, all connections
    /// together: replies queued and not yet written, and the room set aside
    /// for the replies of calls running (see
    /// [`DaemonBuilder::max_queued_total`]).
    pub fn queued_bytes(&self) -> usize {
        self.inner.output.used()
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

/// Counts one connection while it lives.
struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Counted<'a> {
    fn new(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Counted(count)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
