//! The name server's interface and its client: what proxies need to resolve
//! `RMINAME:` and `RMIMETA:` URIs, and what users call to register names.
//!
//! The wire interface is one exposed trait, [`NameServerApi`]: the name
//! server (in `rmi-naming`) implements it and hosts it as
//! `NameServerApiObject`; clients call it through [`NameServerProxy`], a
//! friendlier face over the generated `NameServerApiProxy`.

use std::collections::BTreeSet;
use std::time::Duration;

use rmi_core::{Config, Error, HostPort, ObjectUri, Uri};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use crate::proxy::Options;
use crate::{IntoUri, Proxy};

/// The object id of the name server in its daemon.
pub const NAME_SERVER_OBJECT: &str = "RMI.NameServer";
/// What a discovery query says (sent by UDP to the broadcast port).
pub const DISCOVERY_QUERY: &[u8] = b"GET_NSURI";
/// How many discovery queries are sent before giving up.
const DISCOVERY_ATTEMPTS: usize = 3;
/// How long each discovery query waits for an answer.
const DISCOVERY_WAIT: Duration = Duration::from_millis(700);
/// Longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 512;

/// One registered name: where it points and its metadata tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Registration {
    /// The logical name, such as `example.greeting`.
    pub name: String,
    /// The object it stands for.
    pub uri: ObjectUri,
    /// Tags for yellow-pages lookups, such as `class:weather`.
    pub metadata: BTreeSet<String>,
}

/// Which names an operation applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NameFilter {
    /// Every name.
    All,
    /// Exactly this name.
    Exact(String),
    /// Names beginning with this.
    Prefix(String),
    /// Names matching this regular expression (the whole name must match).
    Regex(String),
}

/// Whether a yellow-pages lookup wants objects with all the tags, or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetaMatch {
    /// Objects that have every tag.
    All,
    /// Objects that have at least one of the tags.
    Any,
}

/// What the name server refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NamingError {
    /// The name is not registered.
    #[error("no name {0:?} is registered")]
    NotFound(String),
    /// Safe registration refused to overwrite a name.
    #[error(
        "the name {name:?} is already registered (to {uri}); remove it first, or register without safe mode"
    )]
    Taken {
        /// The name.
        name: String,
        /// What it points to.
        uri: ObjectUri,
    },
    /// The name cannot be used.
    #[error("invalid name {name:?}: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why not.
        reason: String,
    },
    /// A metadata tag cannot be used.
    #[error("invalid metadata tag {tag:?}: {reason}")]
    BadTag {
        /// The tag.
        tag: String,
        /// Why not.
        reason: String,
    },
    /// The regular expression does not compile.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    BadRegex {
        /// The expression.
        pattern: String,
        /// The compiler's complaint.
        reason: String,
    },
    /// The storage failed; nothing was changed.
    #[error("the name server's storage failed: {0}")]
    Storage(String),
    /// The lease is not live: it expired (not kept alive for its TTL), was
    /// revoked, or was never granted by this name server's store.
    #[error("no live lease {0:x} (it expired or was revoked)")]
    LeaseNotFound(u64),
    /// A lease cannot be granted as asked.
    #[error("cannot grant the lease: {0}")]
    BadLease(String),
}

/// The TTL of a lease when none is given: a name registered with it is
/// removed this long after its daemon stops keeping it alive (it dies, is
/// frozen or loses the network); a daemon that shuts down removes its names
/// at once. Keep-alives go every third of the TTL.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);

/// Checks a name: what `RMINAME:` URIs can carry.
///
/// # Errors
///
/// [`NamingError::BadName`] saying why.
pub fn check_name(name: &str) -> Result<(), NamingError> {
    let bad = |reason: &str| Err(NamingError::BadName { name: name.to_owned(), reason: reason.to_owned() });
    if name.is_empty() {
        return bad("names cannot be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("names are at most 512 bytes");
    }
    if name.contains('@') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("names cannot contain '@', spaces or control characters");
    }
    Ok(())
}

/// Checks a metadata tag: what `RMIMETA:` URIs can carry.
///
/// # Errors
///
/// [`NamingError::BadTag`] saying why.
pub fn check_tag(tag: &str) -> Result<(), NamingError> {
    let bad = |reason: &str| Err(NamingError::BadTag { tag: tag.to_owned(), reason: reason.to_owned() });
    if tag.is_empty() {
        return bad("tags cannot be empty");
    }
    if tag.len() > MAX_NAME_LEN {
        return bad("tags are at most 512 bytes");
    }
    if tag.contains('@') || tag.contains(',') || tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("tags cannot contain '@', ',', spaces or control characters");
    }
    Ok(())
}

/// The metadata tag of a registration whose object speaks Pyro5 (a Python
/// daemon's, registered through `rmi-naming`'s Pyro5 name server): proxies
/// that resolve to it call it through Pyro5's protocol.
pub const PYRO5_TAG: &str = "rmi.protocol:pyro5";

/// The name server's remote interface, as it travels on the wire.
#[rmi_macros::expose(crate = crate)]
pub trait NameServerApi {
    /// Registers (or, unless `safe`, replaces) a name.
    async fn register(&self, registration: Registration, safe: bool) -> Result<(), NamingError>;
    /// The registration of a name.
    #[rmi_macros::nonblocking]
    fn lookup(&self, name: String) -> Result<Registration, NamingError>;
    /// The registrations whose names pass `filter`, sorted by name.
    fn list(&self, filter: NameFilter) -> Result<Vec<Registration>, NamingError>;
    /// Removes the names that pass `filter`; returns how many.
    async fn remove(&self, filter: NameFilter) -> Result<u64, NamingError>;
    /// Replaces a name's metadata tags.
    async fn set_metadata(&self, name: String, metadata: BTreeSet<String>) -> Result<(), NamingError>;
    /// The registrations that have all (or any) of `tags`, sorted by name.
    fn yplookup(&self, tags: BTreeSet<String>, mode: MetaMatch) -> Result<Vec<Registration>, NamingError>;
    /// How many names are registered.
    #[rmi_macros::nonblocking]
    fn count(&self) -> u64;
    /// Answers, to show the name server is up.
    #[rmi_macros::nonblocking]
    fn ping(&self);
    /// Grants a lease of `ttl_ms` milliseconds (1 s to 1 h); returns its id.
    async fn grant_lease(&self, ttl_ms: u64) -> Result<u64, NamingError>;
    /// Restarts a live lease's TTL.
    async fn keep_alive(&self, lease: u64) -> Result<(), NamingError>;
    /// Ends a lease now, removing its names; returns how many.
    async fn revoke_lease(&self, lease: u64) -> Result<u64, NamingError>;
    /// As `register`, the name kept only while `lease` is live.
    async fn register_leased(
        &self,
        registration: Registration,
        safe: bool,
        lease: u64,
    ) -> Result<(), NamingError>;
}

/// A client of a name server.
///
/// ```no_run
/// # async fn demo(uri: rmi_core::ObjectUri) -> Result<(), rmi_core::Error> {
/// let ns = rmi_proxy::locate_ns(None).await?;
/// ns.register("example.greeting", &uri).await?;
/// assert_eq!(ns.lookup("example.greeting").await?, uri);
/// # Ok(()) }
/// ```
///
/// A client made by [`locate_ns`] from several name servers (`RMI_NS_HOST`
/// with a list) fails over: a call whose name server does not answer
/// (cannot be connected, lost the connection, timed out) is made again on
/// the next one, which stays the one used until it fails in turn.
#[derive(Debug, Clone)]
pub struct NameServerProxy {
    /// The name servers, in the order they are tried.
    candidates: std::sync::Arc<[NameServerApiProxy]>,
    /// The one in use, an index into `candidates`.
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Whether an error says the name server did not answer (so another may).
fn unanswered(e: &Error) -> bool {
    matches!(e, Error::Connect { .. } | Error::ConnectionLost(_) | Error::Timeout(_))
}

impl NameServerProxy {
    /// A client of the name server at `uri` (`RMI:RMI.NameServer@host:port`),
    /// configured from the environment.
    ///
    /// # Errors
    ///
    /// A malformed URI or an invalid `RMI_*` variable.
    pub fn new(uri: impl IntoUri) -> Result<Self, Error> {
        let config = Config::from_env()?;
        Ok(Self::from_proxy(Options::direct(&config).proxy(uri.into_uri()?, config.call_timeout)))
    }

    /// A client over a proxy for the name server object.
    pub fn from_proxy(proxy: Proxy) -> Self {
        Self::failing_over(vec![proxy], 0)
    }

    /// A client of the first of `proxies` that answers, starting at
    /// `first`, failing over to the next in turn.
    fn failing_over(proxies: Vec<Proxy>, first: usize) -> Self {
        NameServerProxy {
            candidates: proxies.into_iter().map(NameServerApiProxy::from_proxy).collect(),
            current: std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(first)),
        }
    }

    fn api(&self) -> &NameServerApiProxy {
        let i = self.current.load(std::sync::atomic::Ordering::Relaxed);
        // `candidates` is never empty; `i` is always one of its indices.
        #[allow(clippy::indexing_slicing)]
        &self.candidates[i % self.candidates.len()]
    }

    /// Makes a call on the name server in use, then on each other in turn
    /// while none answers.
    async fn call<T, F>(&self, f: impl Fn(NameServerApiProxy) -> F) -> Result<T, Error>
    where
        F: std::future::Future<Output = Result<T, Error>>,
    {
        let start = self.current.load(std::sync::atomic::Ordering::Relaxed);
        let n = self.candidates.len();
        let mut last = None;
        for step in 0..n {
            let i = (start + step) % n;
            let Some(api) = self.candidates.get(i) else { break };
            match f(api.clone()).await {
                Err(e) if unanswered(&e) && n > 1 => {
                    tracing::debug!(name_server = %api.proxy().uri(), "the name server did not answer ({e}); trying the next");
                    last = Some(e);
                }
                done => {
                    if step > 0 {
                        tracing::info!(name_server = %api.proxy().uri(), "failed over to this name server");
                        self.current.store(i, std::sync::atomic::Ordering::Relaxed);
                    }
                    return done;
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Protocol("no name server to call".into())))
    }

    /// The proxy of the name server in use.
    pub fn proxy(&self) -> &Proxy {
        self.api().proxy()
    }

    /// The URI of the name server in use.
    pub fn uri(&self) -> &Uri {
        self.api().proxy().uri()
    }

    /// The URIs of every name server this client may use, in order.
    pub fn uris(&self) -> Vec<Uri> {
        self.candidates.iter().map(|c| c.proxy().uri().clone()).collect()
    }

    /// Registers `name` for `uri`, replacing an earlier registration.
    ///
    /// # Errors
    ///
    /// A bad name, or any [`Error`] of the call.
    pub async fn register(&self, name: &str, uri: &ObjectUri) -> Result<(), Error> {
        self.register_with(name, uri, Vec::<String>::new(), false).await
    }

    /// Registers `name` for `uri` with metadata `tags`; with `safe`, refuses
    /// to replace an existing registration.
    ///
    /// # Errors
    ///
    /// A bad name or tag, a taken name (with `safe`), or any [`Error`] of the
    /// call.
    pub async fn register_with<T: Into<String>>(
        &self,
        name: &str,
        uri: &ObjectUri,
        tags: impl IntoIterator<Item = T>,
        safe: bool,
    ) -> Result<(), Error> {
        let registration = self.registration(name, uri, tags);
        self.call(|api| {
            let registration = registration.clone();
            async move { api.register(registration, safe).await }
        })
        .await
    }

    /// Registers `name` for `uri` with metadata `tags`, kept only while
    /// `lease` lives (see [`NameServerProxy::grant_lease`], and
    /// [`Lease`](crate::Lease), which keeps one alive).
    ///
    /// # Errors
    ///
    /// A bad name or tag, a taken name (with `safe`), a lease that is not
    /// live ([`NamingError::LeaseNotFound`]), or any [`Error`] of the call.
    pub async fn register_leased<T: Into<String>>(
        &self,
        name: &str,
        uri: &ObjectUri,
        tags: impl IntoIterator<Item = T>,
        safe: bool,
        lease: u64,
    ) -> Result<(), Error> {
        let registration = self.registration(name, uri, tags);
        self.call(|api| {
            let registration = registration.clone();
            async move { api.register_leased(registration, safe, lease).await }
        })
        .await
    }

    /// Grants a lease of `ttl` (1 s to 1 h, rounded up to whole
    /// milliseconds); returns its id. It ends unless kept alive
    /// ([`NameServerProxy::keep_alive`]) within every `ttl`.
    ///
    /// # Errors
    ///
    /// A TTL out of range, too many leases, or any [`Error`] of the call.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<u64, Error> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.call(|api| async move { api.grant_lease(ms).await }).await
    }

    /// Restarts the TTL of a live lease.
    ///
    /// # Errors
    ///
    /// [`NamingError::LeaseNotFound`] (as a remote error) when it has ended,
    /// or any [`Error`] of the call.
    pub async fn keep_alive(&self, lease: u64) -> Result<(), Error> {
        self.call(|api| async move { api.keep_alive(lease).await }).await
    }

    /// Ends a lease now and removes its names; returns how many.
    ///
    /// # Errors
    ///
    /// An unknown lease, or any [`Error`] of the call.
    pub async fn revoke_lease(&self, lease: u64) -> Result<u64, Error> {
        self.call(|api| async move { api.revoke_lease(lease).await }).await
    }

    /// Where `name` points.
    ///
    /// # Errors
    ///
    /// An unknown name, or any [`Error`] of the call.
    pub async fn lookup(&self, name: &str) -> Result<ObjectUri, Error> {
        Ok(self.lookup_registration(name).await?.uri)
    }

    /// Where `name` points, with its metadata.
    ///
    /// # Errors
    ///
    /// An unknown name, or any [`Error`] of the call.
    pub async fn lookup_registration(&self, name: &str) -> Result<Registration, Error> {
        self.call(|api| async move { api.lookup(name.to_owned()).await }).await
    }

    /// The registrations whose names pass `filter`, sorted by name.
    ///
    /// # Errors
    ///
    /// A bad regular expression, or any [`Error`] of the call.
    pub async fn list(&self, filter: NameFilter) -> Result<Vec<Registration>, Error> {
        self.call(|api| {
            let filter = filter.clone();
            async move { api.list(filter).await }
        })
        .await
    }

    /// Removes `name`; returns whether it was registered.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the call.
    pub async fn remove(&self, name: &str) -> Result<bool, Error> {
        Ok(self.remove_matching(NameFilter::Exact(name.to_owned())).await? > 0)
    }

    /// Removes every name that passes `filter`; returns how many.
    ///
    /// # Errors
    ///
    /// A bad regular expression, or any [`Error`] of the call.
    pub async fn remove_matching(&self, filter: NameFilter) -> Result<u64, Error> {
        self.call(|api| {
            let filter = filter.clone();
            async move { api.remove(filter).await }
        })
        .await
    }

    /// Replaces the metadata tags of `name`.
    ///
    /// # Errors
    ///
    /// An unknown name, a bad tag, or any [`Error`] of the call.
    pub async fn set_metadata<T: Into<String>>(
        &self,
        name: &str,
        tags: impl IntoIterator<Item = T>,
    ) -> Result<(), Error> {
        let tags: BTreeSet<String> = tags.into_iter().map(Into::into).collect();
        self.call(|api| {
            let tags = tags.clone();
            async move { api.set_metadata(name.to_owned(), tags).await }
        })
        .await
    }

    /// Yellow pages: the registrations with all (or any) of `tags`.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the call.
    pub async fn yplookup<T: Into<String>>(
        &self,
        tags: impl IntoIterator<Item = T>,
        mode: MetaMatch,
    ) -> Result<Vec<Registration>, Error> {
        let tags: BTreeSet<String> = tags.into_iter().map(Into::into).collect();
        self.call(|api| {
            let tags = tags.clone();
            async move { api.yplookup(tags, mode).await }
        })
        .await
    }

    /// How many names are registered.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the call.
    pub async fn count(&self) -> Result<u64, Error> {
        self.call(|api| async move { api.count().await }).await
    }

    /// Checks that the name server answers.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the call.
    pub async fn ping(&self) -> Result<(), Error> {
        self.call(|api| async move { api.ping().await }).await
    }

    /// The registration of `name` for `uri` with `tags`, warned about if it
    /// cannot be reached from where the name server is used.
    fn registration<T: Into<String>>(
        &self,
        name: &str,
        uri: &ObjectUri,
        tags: impl IntoIterator<Item = T>,
    ) -> Registration {
        self.warn_if_unreachable(name, uri);
        Registration {
            name: name.to_owned(),
            uri: uri.clone(),
            metadata: tags.into_iter().map(Into::into).collect(),
        }
    }

    /// A loopback URI registered with a name server that other machines use
    /// is a trap (Pyro's most reported one): they would get an address that
    /// points at themselves.
    fn warn_if_unreachable(&self, name: &str, uri: &ObjectUri) {
        let ns_is_local = match self.uri() {
            Uri::Object(ns) => match &ns.location {
                rmi_core::Location::Tcp(hp) => hp.host.is_loopback(),
                rmi_core::Location::Unix(_) => true,
            },
            _ => true,
        };
        let object_is_local = match &uri.location {
            rmi_core::Location::Tcp(hp) => hp.host.is_loopback(),
            rmi_core::Location::Unix(_) => true,
        };
        if object_is_local && !ns_is_local {
            tracing::warn!(
                "registering {name:?} as {uri}: a loopback address, with a name server other machines use; \
                 they cannot reach it (bind the daemon to a reachable address, or advertise one)"
            );
        }
    }
}

/// Finds the name server and returns a client for it, configured from the
/// environment.
///
/// With `address` (`host` or `host:port`), that name server; otherwise the
/// one at `RMI_NS_HOST`/`RMI_NS_PORT` if set; otherwise the one that answers
/// a UDP discovery query on `RMI_NS_BCPORT` (broadcast, and loopback), and
/// as a last resort `127.0.0.1:RMI_NS_PORT`. The name server is pinged before
/// it is returned.
///
/// # Errors
///
/// [`Error::Connect`] when no name server answers, with where it looked.
pub async fn locate_ns(address: Option<&str>) -> Result<NameServerProxy, Error> {
    locate_ns_with(&Config::from_env()?, address).await
}

/// As [`locate_ns`], with `config` in place of the environment.
///
/// # Errors
///
/// As [`locate_ns`].
pub async fn locate_ns_with(config: &Config, address: Option<&str>) -> Result<NameServerProxy, Error> {
    // The name server's own URI needs no name to be resolved.
    let options = Options::direct(config);
    locate(config, &options, address).await
}

/// The name server client with the connection settings of `options`.
pub(crate) async fn locate(
    config: &Config,
    options: &Options,
    address: Option<&str>,
) -> Result<NameServerProxy, Error> {
    let at = |hp: HostPort| ObjectUri {
        object: NAME_SERVER_OBJECT.to_owned(),
        location: rmi_core::Location::Tcp(hp),
    };
    let direct = match address {
        Some(text) => rmi_core::config::parse_ns_hosts("the name server address", text)?
            .iter()
            .map(|h| h.with_default_port(config.ns_port))
            .collect(),
        None => config.name_servers(),
    };
    let candidates: Vec<ObjectUri> = if direct.is_empty() {
        let mut found = Vec::new();
        if let Some(uri) = discover(config.ns_bcport).await {
            found.push(uri);
        }
        found.push(at(HostPort {
            host: rmi_core::Host::V4(std::net::Ipv4Addr::LOCALHOST),
            port: config.ns_port,
        }));
        found
    } else {
        direct.into_iter().map(at).collect()
    };
    let proxies: Vec<Proxy> =
        candidates.iter().map(|uri| options.proxy(Uri::Object(uri.clone()), config.call_timeout)).collect();
    let mut last = None;
    for (i, proxy) in proxies.iter().enumerate() {
        let ns = NameServerProxy::from_proxy(proxy.clone());
        match ns.ping().await {
            // The others stay, to fail over to.
            Ok(()) => return Ok(NameServerProxy::failing_over(proxies, i)),
            Err(e @ Error::Auth(_)) => return Err(e),
            Err(e) => last = Some((proxy.uri().clone(), e)),
        }
    }
    let where_ = match address {
        Some(a) => format!("at {a}"),
        None if !config.ns_hosts.is_empty() => "at RMI_NS_HOST/RMI_NS_PORT".to_owned(),
        None => format!("by broadcast on UDP port {} nor at 127.0.0.1:{}", config.ns_bcport, config.ns_port),
    };
    let detail = last.map_or_else(String::new, |(uri, e)| {
        format!(" (last tried {uri}: {})", rmi_core::error::chain_text(&e))
    });
    Err(Error::Connect {
        address: format!("the name server {where_}"),
        source: std::sync::Arc::new(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no name server answered{detail}"),
        )),
    })
}

/// A client of the name servers a `RMINAME:`/`RMIMETA:` URI lists, with
/// the connection settings of `options`; the first is used until it fails.
pub(crate) fn listed(list: &[HostPort], options: &Options) -> NameServerProxy {
    let proxies = list
        .iter()
        .map(|hp| {
            let uri = ObjectUri {
                object: NAME_SERVER_OBJECT.to_owned(),
                location: rmi_core::Location::Tcp(hp.clone()),
            };
            options.proxy(Uri::Object(uri), options.config.call_timeout)
        })
        .collect();
    NameServerProxy::failing_over(proxies, 0)
}

/// The name server a discovery answer names: rmi's URI, or, from an
/// `rmi-naming` that also answers Pyro5's tools, its Pyro5 name server
/// (`PYRO:Pyro.NameServer@…`), which is rmi's name server on the same port.
fn discovered(answer: &str) -> Result<ObjectUri, rmi_core::UriError> {
    match answer.parse::<Uri>()? {
        Uri::Pyro5(uri) if uri.object == PYRO5_NAME_SERVER => {
            Ok(ObjectUri { object: NAME_SERVER_OBJECT.to_owned(), location: uri.location })
        }
        Uri::Pyro5(_) | Uri::Name(_) | Uri::Meta(_) => answer.parse::<ObjectUri>(),
        Uri::Object(uri) => Ok(uri),
    }
}

/// The id Pyro5 gives its name server object (what `rmi-naming` answers
/// Pyro5's tools as).
pub const PYRO5_NAME_SERVER: &str = "Pyro.NameServer";

/// Asks who the name server is, by UDP to the broadcast port (broadcast
/// address and loopback); the first valid answer wins.
async fn discover(bcport: u16) -> Option<ObjectUri> {
    let socket = UdpSocket::bind("0.0.0.0:0").await.ok()?;
    let _ = socket.set_broadcast(true);
    let targets = [format!("255.255.255.255:{bcport}"), format!("127.255.255.255:{bcport}")];
    let mut buf = [0u8; 1024];
    for _ in 0..DISCOVERY_ATTEMPTS {
        for target in &targets {
            let _ = socket.send_to(DISCOVERY_QUERY, target).await;
        }
        let deadline = tokio::time::Instant::now() + DISCOVERY_WAIT;
        while let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            let answer = buf.get(..n).and_then(|b| std::str::from_utf8(b).ok()).map(str::trim);
            match answer.map(discovered) {
                Some(Ok(uri)) => {
                    tracing::debug!(%from, %uri, "name server found by discovery");
                    return Some(uri);
                }
                _ => tracing::debug!(%from, "ignored a discovery answer that is not a URI"),
            }
        }
    }
    None
}
