//! Configuration from `RMI_*` environment variables, read in one place.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `RMI_NS_HOST` | unset: discover by broadcast | host of the name server (`localhost`, `10.0.0.5`, `::1`), or several, tried in turn: `10.0.0.5,10.0.0.6:9092,[::1]:9090` (an entry without a port uses `RMI_NS_PORT`) |
//! | `RMI_NS_PORT` | `9090` | TCP port of the name server |
//! | `RMI_NS_BCPORT` | `9091` | UDP port the name server answers discovery broadcasts on |
//! | `RMI_HMAC_KEY` | unset: no authentication | shared secret; both sides must hold the same one |
//! | `RMI_MAX_MESSAGE_SIZE` | `64M` | largest frame sent or accepted, in bytes (`K`, `M`, `G` suffixes are powers of 1024) |
//! | `RMI_CALL_TIMEOUT` | `30s` | how long a proxy waits for a reply (`500ms`, `30s`, `5m`, `1h`; a bare number is seconds; `0` or `none` waits forever) |
//! | `RMI_TLS` | `off` | `on`: every connection runs TLS (daemons, proxies, the name server and its commands) |
//! | `RMI_TLS_CA` | required with `RMI_TLS=on` | PEM bundle of the CAs peers' certificates are verified with |
//! | `RMI_TLS_SERVER_CERT` | unset | PEM certificate chain a daemon presents (the leaf first) |
//! | `RMI_TLS_SERVER_KEY` | unset | PEM private key of that certificate |
//! | `RMI_TLS_REQUIRE_CLIENT_CERT` | `off` | `on`: a daemon refuses clients without a certificate from `RMI_TLS_CA` (mutual TLS) |
//! | `RMI_TLS_CLIENT_CERT` | unset | PEM certificate chain a proxy presents when a server asks |
//! | `RMI_TLS_CLIENT_KEY` | unset | PEM private key of that certificate |
//! | `RMI_PYRO5` | `off` | `on`: daemons also speak Pyro5 (json) on their port, to Python clients; refused beside `RMI_HMAC_KEY` without TLS (Pyro5 has no authentication) unless `beside-key` |
//!
//! These mirror Pyro5's `SSL`, `SSL_CACERTS`, `SSL_SERVERCERT`, `SSL_SERVERKEY`,
//! `SSL_REQUIRECLIENTCERT`, `SSL_CLIENTCERT` and `SSL_CLIENTKEY`. The files are
//! read when the configuration is: a file that cannot be read or used is an
//! error naming its variable. A daemon presents its certificate to clients; a
//! daemon that is also a client (it registers with the name server, it calls
//! other daemons) verifies servers with the same `RMI_TLS_CA`.
//!
//! An invalid value is an error that names the variable; nothing falls back to
//! a default silently.

use std::fmt;
use std::time::Duration;

use crate::auth::Key;
use crate::tls::{ClientTls, ServerTls};
use crate::uri::{Host, HostPort};

/// The name server's default TCP port (Pyro's, too).
pub const DEFAULT_NS_PORT: u16 = 9090;
/// The name server's default UDP discovery port (Pyro's, too).
pub const DEFAULT_NS_BCPORT: u16 = 9091;
/// Default frame size limit: large enough for a 10 MiB argument with room to
/// spare, small enough that one message cannot take the process's memory.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// The smallest frame size limit accepted: below this even a handshake or an
/// error message may not fit.
pub const MIN_MAX_MESSAGE_SIZE: usize = 1024;
/// The largest frame size limit: the length prefix is 32 bits, and a frame
/// carries up to 64 bytes of framing and authentication around the message.
pub const MAX_MAX_MESSAGE_SIZE: usize = u32::MAX as usize - 64;
/// Default time a proxy waits for a reply. Pyro waits forever by default,
/// which leaves callers of a frozen server hanging; rmi does not.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Each variable rmi reads, with its default and meaning, for `--help` texts
/// and documentation.
pub const ENV_VARS: &[(&str, &str, &str)] = &[
    ("RMI_NS_HOST", "(discover by broadcast)", "host of the name server"),
    ("RMI_NS_PORT", "9090", "TCP port of the name server"),
    ("RMI_NS_BCPORT", "9091", "UDP port for name server discovery"),
    ("RMI_HMAC_KEY", "(none)", "shared secret that authenticates every connection"),
    ("RMI_MAX_MESSAGE_SIZE", "64M", "largest message sent or accepted, in bytes (K/M/G suffixes)"),
    ("RMI_CALL_TIMEOUT", "30s", "how long a call waits for its reply (0 or none: forever)"),
    ("RMI_TLS", "off", "on: every connection runs TLS"),
    ("RMI_TLS_CA", "(none)", "PEM bundle of the CAs peers are verified with (required with RMI_TLS=on)"),
    ("RMI_TLS_SERVER_CERT", "(none)", "PEM certificate chain a daemon presents"),
    ("RMI_TLS_SERVER_KEY", "(none)", "PEM private key of the daemon's certificate"),
    ("RMI_TLS_REQUIRE_CLIENT_CERT", "off", "on: daemons refuse clients without a certificate (mutual TLS)"),
    ("RMI_TLS_CLIENT_CERT", "(none)", "PEM certificate chain a proxy presents when asked"),
    ("RMI_TLS_CLIENT_KEY", "(none)", "PEM private key of the proxy's certificate"),
    (
        "RMI_PYRO5",
        "off",
        "on: daemons also speak Pyro5 (json) to Python clients (beside-key: even with a key)",
    ),
];

/// Whether daemons also speak Pyro5 (`RMI_PYRO5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pyro5Mode {
    /// rmi only (the default).
    #[default]
    Off,
    /// Pyro5 too, on the same port, told apart by its first bytes. Refused
    /// by a daemon with a shared key and no TLS: Pyro5's connections carry
    /// no authentication, so they would open a door the key closes.
    On,
    /// Pyro5 too, even beside a shared key: rmi's connections need the key,
    /// Pyro5's do not (the operator says so knowingly).
    BesideKey,
}

/// TLS as the `RMI_TLS_*` variables set it up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSettings {
    /// What proxies verify servers with (`RMI_TLS_CA`) and present when a
    /// server asks (`RMI_TLS_CLIENT_CERT`, `RMI_TLS_CLIENT_KEY`).
    pub client: ClientTls,
    /// What daemons present (`RMI_TLS_SERVER_CERT`, `RMI_TLS_SERVER_KEY`)
    /// and which clients they accept: those with a certificate from
    /// `RMI_TLS_CA` or, unless `RMI_TLS_REQUIRE_CLIENT_CERT` is on, without
    /// one. `None` when no server certificate is set.
    pub server: Option<ServerTls>,
}

/// Settings shared by daemons, proxies and the name server.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Name server hosts (`RMI_NS_HOST`), tried in this order; an entry
    /// without a port is at `ns_port`. Default: none, find the name server
    /// by a UDP broadcast.
    pub ns_hosts: Vec<NsHost>,
    /// Name server TCP port (`RMI_NS_PORT`). Default: 9090.
    pub ns_port: u16,
    /// Name server discovery UDP port (`RMI_NS_BCPORT`). Default: 9091.
    pub ns_bcport: u16,
    /// Shared HMAC key (`RMI_HMAC_KEY`). Default: `None`, no authentication.
    pub hmac_key: Option<Key>,
    /// Largest message sent or accepted, in bytes (`RMI_MAX_MESSAGE_SIZE`).
    /// Default: 64 MiB.
    pub max_message_size: usize,
    /// How long a call waits for its reply (`RMI_CALL_TIMEOUT`); `None` waits
    /// forever. Default: 30 seconds.
    pub call_timeout: Option<Duration>,
    /// TLS for every connection (`RMI_TLS=on` and the `RMI_TLS_*` files).
    /// Default: `None`, plaintext.
    pub tls: Option<TlsSettings>,
    /// Whether daemons also speak Pyro5 (`RMI_PYRO5`). Default: off.
    pub pyro5: Pyro5Mode,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ns_hosts: Vec::new(),
            ns_port: DEFAULT_NS_PORT,
            ns_bcport: DEFAULT_NS_BCPORT,
            hmac_key: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            call_timeout: Some(DEFAULT_CALL_TIMEOUT),
            tls: None,
            pyro5: Pyro5Mode::Off,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("ns_hosts", &self.ns_hosts)
            .field("ns_port", &self.ns_port)
            .field("ns_bcport", &self.ns_bcport)
            .field("hmac_key", &self.hmac_key) // Key's Debug does not show the secret
            .field("max_message_size", &self.max_message_size)
            .field("call_timeout", &self.call_timeout)
            .field("tls", &self.tls)
            .field("pyro5", &self.pyro5)
            .finish()
    }
}

/// An `RMI_*` variable with a value rmi cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    var: &'static str,
    reason: String,
}

impl ConfigError {
    /// The error for `var`, with a reason that says what was expected.
    pub fn new(var: &'static str, reason: impl Into<String>) -> Self {
        Self { var, reason: reason.into() }
    }

    /// The variable at fault.
    pub fn var(&self) -> &'static str {
        self.var
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first variable whose value is invalid or
    /// not UTF-8.
    pub fn from_env() -> Result<Self, ConfigError> {
        for (var, _, _) in ENV_VARS {
            if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(var) {
                return Err(ConfigError::new(var, "the value is not valid UTF-8"));
            }
        }
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads the configuration through `lookup` (a variable's name to its
    /// value), so that tests and embedders need not touch the environment.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first variable whose value is invalid.
    pub fn from_lookup(lookup: impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        if let Some(v) = lookup("RMI_NS_HOST") {
            config.ns_hosts = parse_ns_hosts("RMI_NS_HOST", &v)?;
        }
        if let Some(v) = lookup("RMI_NS_PORT") {
            config.ns_port = parse_port("RMI_NS_PORT", &v)?;
        }
        if let Some(v) = lookup("RMI_NS_BCPORT") {
            config.ns_bcport = parse_port("RMI_NS_BCPORT", &v)?;
        }
        if let Some(v) = lookup("RMI_HMAC_KEY") {
            if v.is_empty() {
                return Err(ConfigError::new(
                    "RMI_HMAC_KEY",
                    "the key is set but empty; unset the variable to run without authentication",
                ));
            }
            config.hmac_key = Some(Key::new(v.into_bytes()));
        }
        if let Some(v) = lookup("RMI_MAX_MESSAGE_SIZE") {
            config.max_message_size = parse_size("RMI_MAX_MESSAGE_SIZE", &v)?;
        }
        if let Some(v) = lookup("RMI_CALL_TIMEOUT") {
            config.call_timeout = parse_timeout("RMI_CALL_TIMEOUT", &v)?;
        }
        config.tls = tls_from_lookup(&lookup)?;
        if let Some(v) = lookup("RMI_PYRO5") {
            config.pyro5 = match v.trim().to_ascii_lowercase().as_str() {
                "beside-key" => Pyro5Mode::BesideKey,
                _ => match parse_switch("RMI_PYRO5", &v) {
                    Ok(true) => Pyro5Mode::On,
                    Ok(false) => Pyro5Mode::Off,
                    Err(_) => {
                        return Err(ConfigError::new(
                            "RMI_PYRO5",
                            format!("{v:?} is none of on, off, beside-key"),
                        ));
                    }
                },
            };
        }
        Ok(config)
    }
}

/// The TLS variables, read in [`ENV_VARS`]' order, each once.
fn tls_from_lookup(
    lookup: &impl Fn(&'static str) -> Option<String>,
) -> Result<Option<TlsSettings>, ConfigError> {
    let on = match lookup("RMI_TLS") {
        Some(v) => parse_switch("RMI_TLS", &v)?,
        None => false,
    };
    let file = |var: &'static str| lookup(var).map(|v| (var, std::path::PathBuf::from(v.trim())));
    let ca = file("RMI_TLS_CA");
    let server_cert = file("RMI_TLS_SERVER_CERT");
    let server_key = file("RMI_TLS_SERVER_KEY");
    let require = match lookup("RMI_TLS_REQUIRE_CLIENT_CERT") {
        Some(v) => Some(parse_switch("RMI_TLS_REQUIRE_CLIENT_CERT", &v)?),
        None => None,
    };
    let client_cert = file("RMI_TLS_CLIENT_CERT");
    let client_key = file("RMI_TLS_CLIENT_KEY");
    if !on {
        let set = [&ca, &server_cert, &server_key, &client_cert, &client_key].into_iter().flatten().next();
        if let Some((var, _)) = set {
            return Err(ConfigError::new(
                var,
                "it is set but RMI_TLS is not on (set RMI_TLS=on, or unset it)",
            ));
        }
        if require.is_some() {
            return Err(ConfigError::new(
                "RMI_TLS_REQUIRE_CLIENT_CERT",
                "it is set but RMI_TLS is not on (set RMI_TLS=on, or unset it)",
            ));
        }
        return Ok(None);
    }
    let Some((_, ca)) = ca else {
        return Err(ConfigError::new(
            "RMI_TLS_CA",
            "RMI_TLS is on and needs the PEM bundle of the CAs that peers' certificates are verified with",
        ));
    };
    let pair = |cert: Option<(&'static str, std::path::PathBuf)>,
                key: Option<(&'static str, std::path::PathBuf)>| {
        match (cert, key) {
            (Some((_, c)), Some((_, k))) => Ok(Some((c, k))),
            (None, None) => Ok(None),
            (Some((var, _)), None) | (None, Some((var, _))) => {
                let other = if var.ends_with("CERT") { "its _KEY" } else { "its _CERT" };
                Err(ConfigError::new(var, format!("it is set without {other}: a certificate needs its key")))
            }
        }
    };
    let client_pair = pair(client_cert, client_key)?;
    let client =
        ClientTls::from_pem_files(&ca, client_pair.as_ref().map(|(c, k)| (c.as_path(), k.as_path())))
            .map_err(|e| {
                let (cert, key) = client_pair.as_ref().map(|(c, k)| (c.as_path(), k.as_path())).unzip();
                tls_error(
                    &e,
                    &[("RMI_TLS_CLIENT_CERT", cert), ("RMI_TLS_CLIENT_KEY", key), ("RMI_TLS_CA", Some(&ca))],
                )
            })?;
    let server = match pair(server_cert, server_key)? {
        Some((cert, key)) => Some(
            ServerTls::from_pem_files(&cert, &key, Some(&ca), require.unwrap_or(false)).map_err(|e| {
                tls_error(
                    &e,
                    &[
                        ("RMI_TLS_SERVER_CERT", Some(&cert)),
                        ("RMI_TLS_SERVER_KEY", Some(&key)),
                        ("RMI_TLS_CA", Some(&ca)),
                    ],
                )
            })?,
        ),
        None if require == Some(true) => {
            return Err(ConfigError::new(
                "RMI_TLS_REQUIRE_CLIENT_CERT",
                "it applies to a daemon's certificate: set RMI_TLS_SERVER_CERT and RMI_TLS_SERVER_KEY too",
            ));
        }
        None => None,
    };
    Ok(Some(TlsSettings { client, server }))
}

/// A TLS setup error as the error of the variable whose file it names
/// (the first of `vars` when it names none: a certificate and key that do
/// not go together).
fn tls_error(e: &crate::tls::TlsError, vars: &[(&'static str, Option<&std::path::Path>)]) -> ConfigError {
    let text = e.to_string();
    let named = vars.iter().find(|(_, path)| path.is_some_and(|p| text.contains(&p.display().to_string())));
    let var = named.or(vars.first()).map_or("RMI_TLS", |(var, _)| *var);
    ConfigError::new(var, text)
}

/// Parses `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
///
/// # Errors
///
/// A [`ConfigError`] naming `var` for anything else.
pub fn parse_switch(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(ConfigError::new(var, format!("{value:?} is neither on nor off"))),
    }
}

/// One name server address of `RMI_NS_HOST`: a host, and its port if given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NsHost {
    /// The host.
    pub host: Host,
    /// The port; `None` for `RMI_NS_PORT`.
    pub port: Option<u16>,
}

impl NsHost {
    /// The address, `default_port` standing for a missing port.
    pub fn with_default_port(&self, default_port: u16) -> HostPort {
        HostPort { host: self.host.clone(), port: self.port.unwrap_or(default_port) }
    }
}

impl Config {
    /// The name servers `RMI_NS_HOST` lists, each with its port; empty when
    /// unset.
    pub fn name_servers(&self) -> Vec<HostPort> {
        self.ns_hosts.iter().map(|h| h.with_default_port(self.ns_port)).collect()
    }
}

/// The most name servers a list may hold.
pub const MAX_NAME_SERVERS: usize = 16;

/// Parses a list of name servers, `host[:port]` separated by commas (IPv6
/// in brackets when with a port: `[::1]:9090`).
///
/// # Errors
///
/// A [`ConfigError`] naming `var` and the first entry that is not an address.
pub fn parse_ns_hosts(var: &'static str, value: &str) -> Result<Vec<NsHost>, ConfigError> {
    let entries: Vec<&str> = value.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    if entries.is_empty() {
        return Err(ConfigError::new(var, format!("{value:?} names no host")));
    }
    if entries.len() > MAX_NAME_SERVERS {
        return Err(ConfigError::new(var, format!("{} hosts: at most {MAX_NAME_SERVERS}", entries.len())));
    }
    entries.into_iter().map(|entry| parse_ns_entry(var, entry)).collect()
}

fn parse_ns_entry(var: &'static str, entry: &str) -> Result<NsHost, ConfigError> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err(ConfigError::new(var, format!("{entry:?}: expected [v6-address]:port"))),
            },
            None => return Err(ConfigError::new(var, format!("{entry:?}: a '[' without its ']'"))),
        }
    } else {
        match entry.split_once(':') {
            // A bare IPv6 address has several colons, and no port.
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            _ => (entry, None),
        }
    };
    let host = host.parse::<Host>().map_err(|e| {
        ConfigError::new(var, format!("{entry:?} is not a host name or IP address ({})", e.problem()))
    })?;
    let port = port.map(|p| parse_port(var, p)).transpose()?;
    Ok(NsHost { host, port })
}

/// Parses a port from 1 to 65535.
///
/// # Errors
///
/// A [`ConfigError`] naming `var` when `value` is not such a port.
pub fn parse_port(var: &'static str, value: &str) -> Result<u16, ConfigError> {
    match value.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ConfigError::new(var, format!("{value:?} is not a port number from 1 to 65535"))),
    }
}

/// Parses a size in bytes with an optional `K`, `M` or `G` suffix (powers of
/// 1024), between [`MIN_MAX_MESSAGE_SIZE`] and [`MAX_MAX_MESSAGE_SIZE`].
///
/// # Errors
///
/// A [`ConfigError`] naming `var` when `value` is not such a size.
pub fn parse_size(var: &'static str, value: &str) -> Result<usize, ConfigError> {
    let text = value.trim();
    let lower = text.to_ascii_lowercase();
    let lower = lower.strip_suffix("ib").or_else(|| lower.strip_suffix('b')).unwrap_or(&lower);
    let (digits, unit) = match lower.char_indices().last() {
        Some((i, 'k')) => (lower.get(..i), 1usize << 10),
        Some((i, 'm')) => (lower.get(..i), 1 << 20),
        Some((i, 'g')) => (lower.get(..i), 1 << 30),
        _ => (Some(lower), 1),
    };
    let size = digits
        .map(str::trim)
        .and_then(|d| d.parse::<usize>().ok())
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| {
            ConfigError::new(var, format!("{value:?} is not a size in bytes such as 65536, 512K or 64M"))
        })?;
    if !(MIN_MAX_MESSAGE_SIZE..=MAX_MAX_MESSAGE_SIZE).contains(&size) {
        return Err(ConfigError::new(
            var,
            format!(
                "{value:?} is outside {MIN_MAX_MESSAGE_SIZE} bytes to {MAX_MAX_MESSAGE_SIZE} bytes (4 GiB less framing)"
            ),
        ));
    }
    Ok(size)
}

/// Parses a timeout: `500ms`, `30s`, `5m`, `1h`, a bare number of seconds
/// (fractions allowed), or `0`/`none` for no timeout.
///
/// # Errors
///
/// A [`ConfigError`] naming `var` when `value` is not such a duration.
pub fn parse_timeout(var: &'static str, value: &str) -> Result<Option<Duration>, ConfigError> {
    let text = value.trim().to_ascii_lowercase();
    if text == "none" {
        return Ok(None);
    }
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text.as_str(), 1.0)
    };
    let bad = || ConfigError::new(var, format!("{value:?} is not a duration such as 500ms, 30s, 5m or none"));
    let number: f64 = number.trim().parse().map_err(|_| bad())?;
    if !number.is_finite() || number < 0.0 {
        return Err(bad());
    }
    let duration = Duration::try_from_secs_f64(number * scale).map_err(|_| bad())?;
    Ok(if duration.is_zero() { None } else { Some(duration) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&'static str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = with(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.ns_port, 9090);
        assert_eq!(c.ns_bcport, 9091);
        assert_eq!(c.ns_hosts, Vec::new());
        assert_eq!(c.hmac_key, None);
        assert_eq!(c.max_message_size, 64 << 20);
        assert_eq!(c.call_timeout, Some(Duration::from_secs(30)));
    }

    #[test]
    fn every_variable_is_read() {
        let c = with(&[
            ("RMI_NS_HOST", "::1"),
            ("RMI_NS_PORT", "7000"),
            ("RMI_NS_BCPORT", "7001"),
            ("RMI_HMAC_KEY", "s3cret"),
            ("RMI_MAX_MESSAGE_SIZE", "512K"),
            ("RMI_CALL_TIMEOUT", "1500ms"),
        ])
        .unwrap();
        assert_eq!(c.ns_hosts, vec![NsHost { host: Host::V6(std::net::Ipv6Addr::LOCALHOST), port: None }]);
        assert_eq!(c.ns_port, 7000);
        assert_eq!(c.ns_bcport, 7001);
        assert_eq!(c.hmac_key, Some(Key::new(b"s3cret".to_vec())));
        assert_eq!(c.max_message_size, 512 * 1024);
        assert_eq!(c.call_timeout, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn several_name_servers_in_order() {
        let c =
            with(&[("RMI_NS_HOST", "10.0.0.5, ns2:9092,[::1]:7000,::1"), ("RMI_NS_PORT", "9099")]).unwrap();
        let text: Vec<String> = c.name_servers().iter().map(ToString::to_string).collect();
        assert_eq!(text, ["10.0.0.5:9099", "ns2:9092", "[::1]:7000", "[::1]:9099"]);
        for bad in ["a:0", "[::1", "[::1]x", "a,,b!", ","] {
            assert!(with(&[("RMI_NS_HOST", bad)]).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn sizes_and_timeouts_in_their_forms() {
        assert_eq!(parse_size("V", "65536"), Ok(65536));
        assert_eq!(parse_size("V", "64M"), Ok(64 << 20));
        assert_eq!(parse_size("V", "1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("V", "2kb"), Ok(2048));
        assert_eq!(parse_timeout("V", "30"), Ok(Some(Duration::from_secs(30))));
        assert_eq!(parse_timeout("V", "0.25"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(parse_timeout("V", "2m"), Ok(Some(Duration::from_secs(120))));
        assert_eq!(parse_timeout("V", "1h"), Ok(Some(Duration::from_secs(3600))));
        assert_eq!(parse_timeout("V", "0"), Ok(None));
        assert_eq!(parse_timeout("V", "None"), Ok(None));
    }

    #[test]
    fn invalid_values_name_their_variable() {
        let cases: &[(&'static str, &str, &str)] = &[
            ("RMI_NS_HOST", "bad host!", "not a host name or IP address"),
            ("RMI_NS_PORT", "0", "not a port number"),
            ("RMI_NS_PORT", "70000", "not a port number"),
            ("RMI_NS_BCPORT", "x", "not a port number"),
            ("RMI_HMAC_KEY", "", "set but empty"),
            ("RMI_MAX_MESSAGE_SIZE", "12", "outside 1024 bytes"),
            ("RMI_MAX_MESSAGE_SIZE", "5G", "outside 1024 bytes"),
            ("RMI_MAX_MESSAGE_SIZE", "lots", "not a size in bytes"),
            ("RMI_CALL_TIMEOUT", "-1", "not a duration"),
            ("RMI_CALL_TIMEOUT", "soon", "not a duration"),
            ("RMI_CALL_TIMEOUT", "inf", "not a duration"),
        ];
        for (var, value, reason) in cases {
            let err = with(&[(var, value)]).expect_err(value);
            assert_eq!(err.var(), *var);
            let text = err.to_string();
            assert!(text.starts_with(&format!("invalid {var}: ")), "{text}");
            assert!(text.contains(reason), "{text} should say {reason:?}");
        }
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let c = with(&[("RMI_HMAC_KEY", "topsecret")]).unwrap();
        assert!(!format!("{c:?}").contains("topsecret"));
    }

    #[test]
    fn every_documented_variable_is_read() {
        // A variable listed in ENV_VARS but never looked up would be a lie in --help.
        let seen = std::cell::RefCell::new(Vec::new());
        Config::from_lookup(|v| {
            seen.borrow_mut().push(v);
            None
        })
        .unwrap();
        let documented: Vec<_> = ENV_VARS.iter().map(|(v, _, _)| *v).collect();
        assert_eq!(*seen.borrow(), documented);
    }
}
