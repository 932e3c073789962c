//! Configuration from `RMI_*` environment variables, read in one place.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `RMI_NS_HOST` | unset: discover by broadcast | host of the name server (`localhost`, `10.0.0.5`, `::1`) |
//! | `RMI_NS_PORT` | `9090` | TCP port of the name server |
//! | `RMI_NS_BCPORT` | `9091` | UDP port the name server answers discovery broadcasts on |
//! | `RMI_HMAC_KEY` | unset: no authentication | shared secret; both sides must hold the same one |
//! | `RMI_MAX_MESSAGE_SIZE` | `64M` | largest frame sent or accepted, in bytes (`K`, `M`, `G` suffixes are powers of 1024) |
//! | `RMI_CALL_TIMEOUT` | `30s` | how long a proxy waits for a reply (`500ms`, `30s`, `5m`, `1h`; a bare number is seconds; `0` or `none` waits forever) |
//!
//! An invalid value is an error that names the variable; nothing falls back to
//! a default silently.

use std::fmt;
use std::time::Duration;

use crate::auth::Key;
use crate::uri::Host;

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
];

/// Settings shared by daemons, proxies and the name server.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Name server host (`RMI_NS_HOST`). Default: `None`, find the name server
    /// by a UDP broadcast.
    pub ns_host: Option<Host>,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ns_host: None,
            ns_port: DEFAULT_NS_PORT,
            ns_bcport: DEFAULT_NS_BCPORT,
            hmac_key: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            call_timeout: Some(DEFAULT_CALL_TIMEOUT),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("ns_host", &self.ns_host)
            .field("ns_port", &self.ns_port)
            .field("ns_bcport", &self.ns_bcport)
            .field("hmac_key", &self.hmac_key) // Key's Debug does not show the secret
            .field("max_message_size", &self.max_message_size)
            .field("call_timeout", &self.call_timeout)
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
            config.ns_host = Some(parse_ns_host(&v)?);
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
        Ok(config)
    }
}

fn parse_ns_host(value: &str) -> Result<Host, ConfigError> {
    value.trim().parse::<Host>().map_err(|e| {
        ConfigError::new(
            "RMI_NS_HOST",
            format!("{value:?} is not a host name or IP address ({})", e.problem()),
        )
    })
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
        assert_eq!(c.ns_host, None);
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
        assert_eq!(c.ns_host, Some(Host::V6(std::net::Ipv6Addr::LOCALHOST)));
        assert_eq!(c.ns_port, 7000);
        assert_eq!(c.ns_bcport, 7001);
        assert_eq!(c.hmac_key, Some(Key::new(b"s3cret".to_vec())));
        assert_eq!(c.max_message_size, 512 * 1024);
        assert_eq!(c.call_timeout, Some(Duration::from_millis(1500)));
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
