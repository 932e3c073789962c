//! Building proxies: [`ProxyBuilder`], and the constructors that start from
//! the environment. A proxy built here resolves names (`RMINAME:`,
//! `RMIMETA:`) through the name server (see `resolve`).

use std::sync::Arc;
use std::time::Duration;

use rmi_core::tls::ClientTls;
use rmi_core::{Config, Error, Key, ObjectUri, Text, Uri};

use crate::proxy::{IntoUri, Options, Proxy, Unreachable};
use crate::resolve;

impl Options {
    /// The settings `config` gives, names resolved through the name server.
    pub(crate) fn from_config(config: &Config) -> Self {
        Options { resolver: Some(resolve::resolve), ..Options::direct(config) }
    }
}

/// Builds a [`Proxy`] with settings other than the environment's.
#[derive(Debug, Clone)]
#[must_use]
pub struct ProxyBuilder {
    uri: Result<Uri, Error>,
    options: Options,
    timeout: Option<Duration>,
}

impl ProxyBuilder {
    /// The shared HMAC key (default: `RMI_HMAC_KEY`, or none).
    pub fn key(mut self, key: Option<Key>) -> Self {
        self.options.key = key;
        self
    }

    /// TLS for the connection (default: `RMI_TLS=on` with `RMI_TLS_CA`,
    /// or none): the server's certificate is verified against the CAs, and
    /// its name against the host connected to.
    pub fn tls(mut self, tls: Option<ClientTls>) -> Self {
        self.options.tls = tls;
        self
    }

    /// How long each call waits for its reply (default: `RMI_CALL_TIMEOUT`).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest message sent or accepted (default: `RMI_MAX_MESSAGE_SIZE`).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.options.max_message_size = bytes;
        self
    }

    /// How long connecting may take when a call has no deadline
    /// (default: 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// The proxy, not connected yet.
    ///
    /// # Errors
    ///
    /// [`Error::Uri`] when the URI was malformed.
    pub fn build(self) -> Result<Proxy, Error> {
        Ok(Proxy::from_parts(self.uri?, self.options, self.timeout))
    }
}

impl Proxy {
    /// A proxy for the object at `uri`, configured from the `RMI_*`
    /// environment variables; it connects on its first call.
    ///
    /// # Errors
    ///
    /// [`Error::Uri`] for a malformed URI, [`Error::Config`] for an invalid
    /// `RMI_*` variable.
    pub fn new(uri: impl IntoUri) -> Result<Self, Error> {
        Self::builder_with_config(uri, &Config::from_env()?).build()
    }

    /// A proxy for `uri`, connected now so that a wrong address or key shows
    /// at once.
    ///
    /// # Errors
    ///
    /// As [`Proxy::new`], and when the daemon cannot be reached or refuses
    /// the connection.
    pub async fn connect(uri: impl IntoUri) -> Result<Self, Error> {
        let proxy = Self::new(uri)?;
        proxy.connection().await?;
        Ok(proxy)
    }

    /// A builder, starting from the `RMI_*` environment variables.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid `RMI_*` variable.
    pub fn builder(uri: impl IntoUri) -> Result<ProxyBuilder, Error> {
        Ok(Self::builder_with_config(uri, &Config::from_env()?))
    }

    /// A builder starting from `config` instead of the environment.
    pub fn builder_with_config(uri: impl IntoUri, config: &Config) -> ProxyBuilder {
        ProxyBuilder {
            uri: uri.into_uri(),
            options: Options::from_config(config),
            timeout: config.call_timeout,
        }
    }

    /// A proxy for `uri` whose calls fail (the environment's settings were
    /// invalid when a reference made it).
    pub(crate) fn unreachable(uri: &ObjectUri) -> Self {
        Self::builder_with_config(uri, &Config::default()).build().unwrap_or_else(|_| {
            Proxy::over(
                rmi_core::peer::LocalLink::new(Arc::new(Unreachable)),
                Text::from(uri.object.as_str()),
                None,
            )
        })
    }
}
