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
}

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
#[derive(Debug, Clone)]
pub struct NameServerProxy {
    api: NameServerApiProxy,
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
        NameServerProxy { api: NameServerApiProxy::from_proxy(proxy) }
    }

    /// The proxy underneath.
    pub fn proxy(&self) -> &Proxy {
        self.api.proxy()
    }

    /// The name server's URI.
    pub fn uri(&self) -> &Uri {
        self.api.proxy().uri()
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
        self.warn_if_unreachable(name, uri);
        let registration = Registration {
            name: name.to_owned(),
            uri: uri.clone(),
            metadata: tags.into_iter().map(Into::into).collect(),
        };
        self.api.register(registration, safe).await
    }

    /// Where `name` points.
    ///
    /// # Errors
    ///
    /// An unknown name, or any [`Error`] of the call.
    pub async fn lookup(&self, name: &str) -> Result<ObjectUri, Error> {
        Ok(self.api.lookup(name.to_owned()).await?.uri)
    }

    /// Where `name` points, with its metadata.
    ///
    /// # Errors
    ///
    /// An unknown name, or any [`Error`] of the call.
    pub async fn lookup_registration(&self, name: &str) -> Result<Registration, Error> {
        self.api.lookup(name.to_owned()).await
    }

    /// The registrations whose names pass `filter`, sorted by name.
    ///
    /// # Errors
    ///
    /// A bad regular expression, or any [`Error`] of the call.
    pub async fn list(&self, filter: NameFilter) -> Result<Vec<Registration>, Error> {
        self.api.list(filter).await
    }

    /// Removes `name`; returns whether it was registered.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the call.
    pub async fn remove(&self, name: &str) -> Result<bool, Error> {
        Ok(self.api.remove(NameFilter::Exact(name.to_owned())).await? > 0)
    }

    /// Removes every name that passes `filter`; returns how many.
    ///
    /// # Errors
    ///
    /// A bad regular expression, or any [`Error`] of the call.
    pub async fn remove_matching(&self, filter: NameFilter) -> Result<u64, Error> {
        self.api.remove(filter).await
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
        self.api.set_metadata(name.to_owned(), tags.into_iter().map(Into::into).collect()).await
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
        self.api.yplookup(tags.into_iter().map(Into::into).collect(), mode).await
    }

    /// How many names are registered.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the call.
    pub async fn count(&self) -> Result<u64, Error> {
        self.api.count().await
    }

    /// Checks that the name server answers.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the call.
    pub async fn ping(&self) -> Result<(), Error> {
        self.api.ping().await
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
        Some(text) => Some(parse_address(text, config.ns_port)?),
        None => config.ns_host.clone().map(|host| HostPort { host, port: config.ns_port }),
    };
    let candidates = match direct {
        Some(hp) => vec![at(hp)],
        None => {
            let mut found = Vec::new();
            if let Some(uri) = discover(config.ns_bcport).await {
                found.push(uri);
            }
            found.push(at(HostPort {
                host: rmi_core::Host::V4(std::net::Ipv4Addr::LOCALHOST),
                port: config.ns_port,
            }));
            found
        }
    };
    let mut last = None;
    for uri in candidates {
        let ns = NameServerProxy::from_proxy(options.proxy(Uri::Object(uri.clone()), config.call_timeout));
        match ns.ping().await {
            Ok(()) => return Ok(ns),
            Err(e @ Error::Auth(_)) => return Err(e),
            Err(e) => last = Some((uri, e)),
        }
    }
    let where_ = match address {
        Some(a) => format!("at {a}"),
        None if config.ns_host.is_some() => "at RMI_NS_HOST/RMI_NS_PORT".to_owned(),
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

/// Parses `host` or `host:port` (IPv6 in brackets when with a port).
fn parse_address(text: &str, default_port: u16) -> Result<HostPort, Error> {
    let with_port = format!("RMI:x@{text}");
    if let Ok(uri) = with_port.parse::<ObjectUri>()
        && let rmi_core::Location::Tcp(hp) = uri.location
    {
        return Ok(hp);
    }
    let host: rmi_core::Host = text.parse()?;
    Ok(HostPort { host, port: default_port })
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
