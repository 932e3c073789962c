//! rmi URIs: where an object lives, or how to find it through the name server.
//!
//! | form | meaning |
//! | --- | --- |
//! | `RMI:<object-id>@<host>:<port>` | one object in one daemon, over TCP |
//! | `RMI:<object-id>@./u:<path>` | the same over a Unix domain socket |
//! | `RMINAME:<name>[@<ns-host>:<ns-port>]` | resolved through the name server on first use |
//! | `RMIMETA:<tag>[,<tag>…][@<ns-host>:<ns-port>]` | any object registered with all those tags |
//!
//! Parsing is strict and `Display` gives back text that parses to the same
//! value. The scheme is matched without regard to case (`rmi:` works) and is
//! always printed in capitals. Hosts are IPv4 addresses, host names, or IPv6
//! addresses in brackets (`[::1]`).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an `RMI:` URI looks like, quoted in errors.
const EXPECTED_OBJECT: &str = "RMI:<object-id>@<host>:<port> or RMI:<object-id>@./u:<socket-path>";
/// What an `RMINAME:` URI looks like, quoted in errors.
const EXPECTED_NAME: &str = "RMINAME:<name> or RMINAME:<name>@<host>:<port>";
/// What an `RMIMETA:` URI looks like, quoted in errors.
const EXPECTED_META: &str = "RMIMETA:<tag>[,<tag>…] or RMIMETA:<tag>[,<tag>…]@<host>:<port>";
/// What any rmi URI looks like, quoted when the scheme itself is wrong.
const EXPECTED_ANY: &str = "RMI:<object-id>@<host>:<port>, RMI:<object-id>@./u:<socket-path>, \
                            RMINAME:<name>[@<host>:<port>], RMIMETA:<tag>[,<tag>…][@<host>:<port>] \
                            or PYRO:<object-id>@<host>:<port> (a Pyro5 daemon)";

/// The marker that introduces a Unix socket path in place of `host:port`.
const UNIX_MARKER: &str = "./u:";

/// Longest host name DNS allows (RFC 1035), in characters.
const MAX_HOST_NAME: usize = 253;
/// Longest label (the part between dots) of a host name (RFC 1035).
const MAX_HOST_LABEL: usize = 63;

/// A URI that could not be parsed: the input, what is wrong with it and what
/// was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URI {input:?}: {problem}; expected {expected}")]
pub struct UriError {
    input: String,
    problem: String,
    expected: &'static str,
}

impl UriError {
    fn new(input: &str, problem: impl Into<String>, expected: &'static str) -> Self {
        Self { input: input.to_owned(), problem: problem.into(), expected }
    }

    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

/// Any rmi URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Uri {
    /// `RMI:<id>@<location>`: a concrete object.
    Object(ObjectUri),
    /// `RMINAME:<name>`: a name to look up in the name server.
    Name(NameUri),
    /// `RMIMETA:<tags>`: metadata tags to look up in the name server.
    Meta(MetaUri),
    /// `PYRO:<id>@<host>:<port>`: an object of a Pyro5 daemon (Python),
    /// called through Pyro5's protocol with its json serializer.
    Pyro5(ObjectUri),
}

/// `RMI:<object-id>@<location>`: one object hosted by one daemon.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectUri {
    /// The object's id inside its daemon.
    pub object: String,
    /// Where the daemon listens.
    pub location: Location,
}

/// Where a daemon listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A TCP address.
    Tcp(HostPort),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

/// A host and a port: `127.0.0.1:9090`, `example.org:9090`, `[::1]:9090`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host.
    pub host: Host,
    /// The TCP port, never 0.
    pub port: u16,
}

/// A host: an IP address or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address, written in brackets in URIs.
    V6(Ipv6Addr),
    /// A host name such as `localhost` or `server.example.org`.
    Name(String),
}

/// `RMINAME:<name>[@<host>:<port>]`: a logical name, resolved through the name
/// server (the one given, or the one `locate_ns` finds).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameUri {
    /// The registered name.
    pub name: String,
    /// The name servers to ask, tried in turn; empty for the default ones
    /// (`RMI_NS_HOST`, or discovery).
    pub name_servers: Vec<HostPort>,
}

/// `RMIMETA:<tag>[,<tag>…][@<host>:<port>]`: any object registered with all
/// of these metadata tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetaUri {
    /// The tags, at least one, in the order given.
    pub tags: Vec<String>,
    /// The name servers to ask, tried in turn; empty for the default ones
    /// (`RMI_NS_HOST`, or discovery).
    pub name_servers: Vec<HostPort>,
}

impl Host {
    /// The host as the resolver wants it: an address without brackets, or the
    /// name.
    pub fn to_lookup_string(&self) -> String {
        match self {
            Host::V4(a) => a.to_string(),
            Host::V6(a) => a.to_string(),
            Host::Name(n) => n.clone(),
        }
    }

    /// Whether this is a loopback address or `localhost`, which other machines
    /// cannot reach.
    pub fn is_loopback(&self) -> bool {
        match self {
            Host::V4(a) => a.is_loopback(),
            Host::V6(a) => a.is_loopback(),
            Host::Name(n) => n.eq_ignore_ascii_case("localhost"),
        }
    }
}

/// What a bare host looks like, quoted in errors.
const EXPECTED_HOST: &str = "a host name, an IPv4 address or an IPv6 address";

impl FromStr for Host {
    type Err = UriError;

    /// Parses a bare host: `localhost`, `10.0.0.5`, `::1` or `[::1]`.
    fn from_str(input: &str) -> Result<Self, UriError> {
        let inner = input.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(input);
        if let Ok(v6) = inner.parse::<Ipv6Addr>() {
            return Ok(Host::V6(v6));
        }
        parse_host(input, inner, EXPECTED_HOST)
    }
}

impl From<std::net::IpAddr> for Host {
    fn from(ip: std::net::IpAddr) -> Self {
        match ip {
            std::net::IpAddr::V4(a) => Host::V4(a),
            std::net::IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl From<std::net::SocketAddr> for HostPort {
    fn from(addr: std::net::SocketAddr) -> Self {
        HostPort { host: addr.ip().into(), port: addr.port() }
    }
}

/// Splits `SCHEME:rest`, matching the scheme without regard to case.
fn strip_scheme<'a>(input: &'a str, scheme: &str) -> Option<&'a str> {
    let head = input.get(..scheme.len())?;
    if head.eq_ignore_ascii_case(scheme) { input.get(scheme.len()..) } else { None }
}

/// Checks an object id or a name: not empty, no `@`, no spaces or control
/// characters (they could not be printed back unambiguously).
fn check_word(input: &str, word: &str, what: &str, expected: &'static str) -> Result<(), UriError> {
    if word.is_empty() {
        return Err(UriError::new(input, format!("the {what} is empty"), expected));
    }
    if let Some(c) = word.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(UriError::new(
            input,
            format!("the {what} contains {c:?}; spaces and control characters are not allowed"),
            expected,
        ));
    }
    Ok(())
}

/// What a bind address looks like, quoted in errors.
const EXPECTED_BIND: &str = "<host>:<port> (port 0 picks a free one), [<ipv6>]:<port> or ./u:<socket-path>";

/// Parses an address to listen on: `host:port` (port 0 for a free port),
/// `[::1]:port`, or `./u:<path>` for a Unix socket.
///
/// # Errors
///
/// A [`UriError`] quoting the input.
pub fn parse_bind_address(input: &str) -> Result<Location, UriError> {
    if let Some(path) = input.strip_prefix(UNIX_MARKER) {
        if path.is_empty() {
            return Err(UriError::new(input, "the Unix socket path is empty", EXPECTED_BIND));
        }
        return Ok(Location::Unix(PathBuf::from(path)));
    }
    HostPort::parse_port_in(input, input, EXPECTED_BIND, true).map(Location::Tcp)
}

impl HostPort {
    fn parse_in(input: &str, text: &str, expected: &'static str) -> Result<Self, UriError> {
        Self::parse_port_in(input, text, expected, false)
    }

    fn parse_port_in(
        input: &str,
        text: &str,
        expected: &'static str,
        allow_zero: bool,
    ) -> Result<Self, UriError> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let Some((addr, after)) = rest.split_once(']') else {
                return Err(UriError::new(input, "the IPv6 address has no closing ']'", expected));
            };
            let ip = addr
                .parse::<Ipv6Addr>()
                .map_err(|_| UriError::new(input, format!("{addr:?} is not an IPv6 address"), expected))?;
            let Some(port) = after.strip_prefix(':') else {
                return Err(UriError::new(input, "the port is missing after the address", expected));
            };
            (Host::V6(ip), port)
        } else {
            let Some((host, port)) = text.rsplit_once(':') else {
                return Err(UriError::new(input, format!("{text:?} has no ':<port>'"), expected));
            };
            if host.contains(':') {
                return Err(UriError::new(
                    input,
                    "an IPv6 address must be written in brackets, as [::1]",
                    expected,
                ));
            }
            (parse_host(input, host, expected)?, port)
        };
        let port = match port.parse::<u16>() {
            Ok(0) if !allow_zero => {
                return Err(UriError::new(input, "port 0 cannot be connected to", expected));
            }
            Ok(p) if !port.starts_with('+') => p,
            _ => {
                return Err(UriError::new(
                    input,
                    format!("the port {port:?} is not a number from 1 to 65535"),
                    expected,
                ));
            }
        };
        Ok(HostPort { host, port })
    }
}

fn parse_host(input: &str, host: &str, expected: &'static str) -> Result<Host, UriError> {
    if host.is_empty() {
        return Err(UriError::new(input, "the host is empty", expected));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host
            .parse::<Ipv4Addr>()
            .map(Host::V4)
            .map_err(|_| UriError::new(input, format!("{host:?} is not an IPv4 address"), expected));
    }
    if host.len() > MAX_HOST_NAME {
        return Err(UriError::new(
            input,
            format!("the host name is longer than {MAX_HOST_NAME} characters"),
            expected,
        ));
    }
    for label in host.split('.') {
        let valid = !label.is_empty()
            && label.len() <= MAX_HOST_LABEL
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(UriError::new(
                input,
                format!(
                    "{host:?} is not a valid host name (letters, digits and '-', in dot-separated parts)"
                ),
                expected,
            ));
        }
    }
    Ok(Host::Name(host.to_owned()))
}

/// Parses the optional `@<host>:<port>[,<host>:<port>…]` of
/// `RMINAME:`/`RMIMETA:`.
fn parse_name_servers(
    input: &str,
    at: Option<&str>,
    expected: &'static str,
) -> Result<Vec<HostPort>, UriError> {
    let Some(at) = at else { return Ok(Vec::new()) };
    let list: Vec<&str> = at.split(',').collect();
    if list.len() > crate::config::MAX_NAME_SERVERS {
        return Err(UriError::new(input, "it names more than 16 name servers", expected));
    }
    list.into_iter().map(|hp| HostPort::parse_in(input, hp, expected)).collect()
}

impl FromStr for ObjectUri {
    type Err = UriError;

    fn from_str(input: &str) -> Result<Self, UriError> {
        let expected = EXPECTED_OBJECT;
        let Some(rest) = strip_scheme(input, "RMI:") else {
            return Err(UriError::new(input, "it does not start with 'RMI:'", expected));
        };
        let Some((object, location)) = rest.split_once('@') else {
            return Err(UriError::new(input, "there is no '@' before the location", expected));
        };
        check_word(input, object, "object id", expected)?;
        let location = if let Some(path) = location.strip_prefix(UNIX_MARKER) {
            if path.is_empty() {
                return Err(UriError::new(input, "the Unix socket path is empty", expected));
            }
            Location::Unix(PathBuf::from(path))
        } else {
            Location::Tcp(HostPort::parse_in(input, location, expected)?)
        };
        Ok(ObjectUri { object: object.to_owned(), location })
    }
}

impl FromStr for NameUri {
    type Err = UriError;

    fn from_str(input: &str) -> Result<Self, UriError> {
        let expected = EXPECTED_NAME;
        let Some(rest) = strip_scheme(input, "RMINAME:") else {
            return Err(UriError::new(input, "it does not start with 'RMINAME:'", expected));
        };
        let (name, at) = match rest.split_once('@') {
            Some((name, at)) => (name, Some(at)),
            None => (rest, None),
        };
        check_word(input, name, "name", expected)?;
        let name_servers = parse_name_servers(input, at, expected)?;
        Ok(NameUri { name: name.to_owned(), name_servers })
    }
}

impl FromStr for MetaUri {
    type Err = UriError;

    fn from_str(input: &str) -> Result<Self, UriError> {
        let expected = EXPECTED_META;
        let Some(rest) = strip_scheme(input, "RMIMETA:") else {
            return Err(UriError::new(input, "it does not start with 'RMIMETA:'", expected));
        };
        let (tags, at) = match rest.split_once('@') {
            Some((tags, at)) => (tags, Some(at)),
            None => (rest, None),
        };
        let mut parsed = Vec::new();
        for tag in tags.split(',') {
            check_word(input, tag, "tag", expected)?;
            parsed.push(tag.to_owned());
        }
        let name_servers = parse_name_servers(input, at, expected)?;
        Ok(MetaUri { tags: parsed, name_servers })
    }
}

impl FromStr for Uri {
    type Err = UriError;

    fn from_str(input: &str) -> Result<Self, UriError> {
        // Longest scheme first: "RMI:" is not a prefix of the others, but keep
        // the order obvious.
        if strip_scheme(input, "RMINAME:").is_some() {
            input.parse().map(Uri::Name)
        } else if strip_scheme(input, "RMIMETA:").is_some() {
            input.parse().map(Uri::Meta)
        } else if strip_scheme(input, "RMI:").is_some() {
            input.parse().map(Uri::Object)
        } else if let Some(rest) = strip_scheme(input, "PYRO:") {
            // The same shape as RMI:, and checked the same way.
            format!("RMI:{rest}")
                .parse()
                .map(Uri::Pyro5)
                .map_err(|e: UriError| UriError::new(input, e.problem(), "PYRO:<object-id>@<host>:<port>"))
        } else {
            Err(UriError::new(input, "unknown scheme", EXPECTED_ANY))
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Tcp(hp) => hp.fmt(f),
            Location::Unix(path) => write!(f, "{UNIX_MARKER}{}", path.display()),
        }
    }
}

impl fmt::Display for ObjectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RMI:{}@{}", self.object, self.location)
    }
}

impl fmt::Display for NameUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RMINAME:{}", self.name)?;
        write_name_servers(f, &self.name_servers)
    }
}

fn write_name_servers(f: &mut fmt::Formatter<'_>, list: &[HostPort]) -> fmt::Result {
    for (i, ns) in list.iter().enumerate() {
        write!(f, "{}{ns}", if i == 0 { '@' } else { ',' })?;
    }
    Ok(())
}

impl fmt::Display for MetaUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RMIMETA:{}", self.tags.join(","))?;
        write_name_servers(f, &self.name_servers)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Object(u) => u.fmt(f),
            Uri::Name(u) => u.fmt(f),
            Uri::Meta(u) => u.fmt(f),
            Uri::Pyro5(u) => write!(f, "PYRO:{}@{}", u.object, u.location),
        }
    }
}

impl From<ObjectUri> for Uri {
    fn from(u: ObjectUri) -> Self {
        Uri::Object(u)
    }
}

impl From<NameUri> for Uri {
    fn from(u: NameUri) -> Self {
        Uri::Name(u)
    }
}

impl From<MetaUri> for Uri {
    fn from(u: MetaUri) -> Self {
        Uri::Meta(u)
    }
}

/// URIs travel as their text, and are checked again when they arrive.
macro_rules! serde_as_text {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_text!(Uri, ObjectUri, NameUri, MetaUri);

#[cfg(test)]
mod tests;
