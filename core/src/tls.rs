//! TLS under rmi's frames: confidentiality, and identities by certificate.
//!
//! A daemon (or name server) holds a [`ServerTls`]: its certificate chain and
//! key, and, for mutual TLS, the CA bundle its clients' certificates must
//! chain to. A proxy holds a [`ClientTls`]: the CA bundle it verifies servers
//! with (and the server's name, DNS or IP, is checked by default), and its
//! own certificate when the server asks for one. Both are built from PEM
//! files or from DER already in memory, or from the `RMI_TLS_*` variables
//! (see [`crate::config`]). rustls runs on the `ring` provider, passed
//! explicitly: no other provider can be picked at run time.
//!
//! TLS runs first on a fresh connection; rmi's own handshake (version, and
//! the shared key when there is one) then runs inside it. A plaintext rmi
//! client meeting a TLS daemon, and a TLS client meeting a plaintext one,
//! each get one clear error at once ([`AuthError::TlsRequired`],
//! [`AuthError::ServerHasNoTls`]): each side recognises the other's first
//! bytes and answers in the form the other reads.
//!
//! After the handshake the connection is a [`TlsStream`], which one task
//! reads while others write (see `stream`); the peer's verified certificate
//! is a [`PeerIdentity`].

use std::fmt;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::auth::AuthError;
use crate::frame::TransportError;
use crate::net::Connection;
use crate::uri::{Host, HostPort, Location};

mod identity;
mod stream;

pub use identity::PeerIdentity;
/// The rustls this crate uses, for its error types and for configurations
/// built by hand ([`ServerTls::from_rustls`], [`ClientTls::from_rustls`]).
pub use rustls;
pub use stream::TlsStream;

/// The first byte of every TLS record that opens a handshake.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The one crypto provider rmi uses: ring, its cipher suites with
/// AES-128-GCM first (as Go's TLS orders them: fewer rounds than
/// AES-256-GCM, so less CPU per byte on bulk data, and as safe for this
/// use).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut provider = rustls::crypto::ring::default_provider();
            let first = |suite: &rustls::SupportedCipherSuite| {
                !matches!(
                    suite.suite(),
                    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                        | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                )
            };
            provider.cipher_suites.sort_by_key(first);
            Arc::new(provider)
        })
        .clone()
}

/// TLS that could not be set up, or a TLS handshake that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate, key or CA bundle could not be read or used.
    #[error("TLS setup: {0}")]
    Setup(String),
    /// The TLS handshake (or a later record) failed: the reason, said for
    /// people, then rustls's own words. (Shared: errors travel in every
    /// call's `Result`, which stays small.)
    #[error("{}", explain(.0))]
    Failed(Arc<rustls::Error>),
}

impl TlsError {
    /// rustls's error, when the handshake failed.
    pub fn rustls(&self) -> Option<&rustls::Error> {
        match self {
            TlsError::Failed(e) => Some(e.as_ref()),
            TlsError::Setup(_) => None,
        }
    }

    /// The certificate problem found when verifying the peer, if that is
    /// why it failed.
    pub fn certificate_error(&self) -> Option<&rustls::CertificateError> {
        match self.rustls() {
            Some(rustls::Error::InvalidCertificate(e)) => Some(e),
            _ => None,
        }
    }

    /// The alert the peer ended the handshake with, if it refused.
    pub fn alert(&self) -> Option<rustls::AlertDescription> {
        match self.rustls() {
            Some(rustls::Error::AlertReceived(a)) => Some(*a),
            _ => None,
        }
    }

    fn setup(what: impl fmt::Display) -> Self {
        TlsError::Setup(what.to_string())
    }
}

fn explain(e: &rustls::Error) -> String {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as E};
    let why = match e {
        E::InvalidCertificate(Cert::UnknownIssuer) => {
            "the peer's certificate is not signed by a CA this side trusts (RMI_TLS_CA)".to_owned()
        }
        E::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
            "the peer's certificate has expired".to_owned()
        }
        E::InvalidCertificate(Cert::NotValidYet | Cert::NotValidYetContext { .. }) => {
            "the peer's certificate is not valid yet".to_owned()
        }
        E::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            "the server's certificate does not name the host connected to (connect by a name or address \
             among its subject alternative names, or say which name to verify: ClientTls::server_name)"
                .to_owned()
        }
        E::InvalidCertificate(Cert::UnknownRevocationStatus | Cert::Revoked) => {
            "the peer's certificate is revoked or its revocation status is unknown".to_owned()
        }
        E::InvalidCertificate(_) => "the peer's certificate is not acceptable".to_owned(),
        E::NoCertificatesPresented => {
            "the client presented no certificate, and this server requires one (RMI_TLS_REQUIRE_CLIENT_CERT)"
                .to_owned()
        }
        E::AlertReceived(Alert::CertificateRequired) => {
            "the server requires a client certificate (set RMI_TLS_CLIENT_CERT and RMI_TLS_CLIENT_KEY)"
                .to_owned()
        }
        E::AlertReceived(
            alert @ (Alert::UnknownCA
            | Alert::BadCertificate
            | Alert::CertificateExpired
            | Alert::CertificateRevoked
            | Alert::CertificateUnknown
            | Alert::UnsupportedCertificate
            | Alert::AccessDenied),
        ) => format!("the peer refused this side's certificate ({alert:?})"),
        E::AlertReceived(alert) => format!("the peer ended the TLS session ({alert:?})"),
        _ => "TLS failed".to_owned(),
    };
    format!("{why}: {e}")
}

/// The certificate chain in a PEM file (the leaf first, then its
/// intermediates).
///
/// # Errors
///
/// [`TlsError::Setup`] naming the file when it cannot be read or holds no
/// certificate.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| TlsError::setup(format!("cannot read certificates from {}: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(TlsError::setup(format!("{} holds no PEM certificate", path.display())));
    }
    Ok(chain)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
///
/// [`TlsError::Setup`] naming the file when it cannot be read or holds no key.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError::setup(format!("cannot read a private key from {}: {e}", path.display())))
}

/// The CA certificates in a PEM bundle, as trust anchors.
///
/// # Errors
///
/// [`TlsError::Setup`] naming the file when it cannot be read or a
/// certificate in it is not usable as a trust anchor.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let certificates = load_certificates(path)?;
    roots(certificates).map_err(|e| TlsError::setup(format!("{}: {e}", path.display())))
}

/// Trust anchors from CA certificates (DER).
///
/// # Errors
///
/// [`TlsError::Setup`] when a certificate is not usable as a trust anchor.
pub fn roots(
    certificates: impl IntoIterator<Item = CertificateDer<'static>>,
) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for certificate in certificates {
        store.add(certificate).map_err(|e| TlsError::setup(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(store)
}

/// Which clients a TLS server accepts.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Any client; no client certificate is asked for.
    None,
    /// Clients with a certificate from one of these CAs, or with none (the
    /// application tells them apart by [`PeerIdentity`]).
    Optional(RootCertStore),
    /// Only clients with a certificate from one of these CAs.
    Required(RootCertStore),
}

/// A server's TLS: its certificate and key, and which clients it accepts.
/// Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for ServerTls {}

impl ServerTls {
    /// TLS with `chain` (the server's certificate first) and its `key`,
    /// accepting the clients `clients` says.
    ///
    /// # Errors
    ///
    /// [`TlsError::Setup`] when the key does not fit the certificate or the
    /// CA bundle is empty.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        clients: ClientAuth,
    ) -> Result<Self, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::setup)?;
        let builder = match clients {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(roots) | ClientAuth::Required(roots) if roots.is_empty() => {
                return Err(TlsError::setup("the CA bundle to verify clients with holds no certificate"));
            }
            ClientAuth::Optional(roots) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .allow_unauthenticated()
                    .build()
                    .map_err(TlsError::setup)?,
            ),
            ClientAuth::Required(roots) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .build()
                    .map_err(TlsError::setup)?,
            ),
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::setup(format!("the certificate and key do not go together: {e}")))?;
        Ok(ServerTls { config: Arc::new(config) })
    }

    /// TLS from PEM files: the certificate chain, its key, and the CA bundle
    /// clients' certificates are verified with (`None`: no client
    /// certificates); `require_client_cert` refuses clients without one.
    ///
    /// # Errors
    ///
    /// [`TlsError::Setup`] naming the file that cannot be read or used; a
    /// client certificate required without a CA bundle.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
        require_client_cert: bool,
    ) -> Result<Self, TlsError> {
        let clients = match (client_ca, require_client_cert) {
            (None, true) => {
                return Err(TlsError::setup(
                    "client certificates are required but no CA bundle says which to accept",
                ));
            }
            (None, false) => ClientAuth::None,
            (Some(ca), false) => ClientAuth::Optional(load_roots(ca)?),
            (Some(ca), true) => ClientAuth::Required(load_roots(ca)?),
        };
        Self::new(load_certificates(cert)?, load_private_key(key)?, clients)
    }

    /// A server configuration built by hand (it must use the `ring`
    /// provider, as rmi does: see [`rustls::crypto::ring`]).
    pub fn from_rustls(config: Arc<ServerConfig>) -> Self {
        ServerTls { config }
    }

    /// Runs the TLS handshake on an accepted connection. A plaintext rmi
    /// client is told that TLS is required (in the form it reads), and
    /// refused.
    ///
    /// # Errors
    ///
    /// [`AuthError::ClientHasNoTls`] for a plaintext client, the handshake's
    /// [`TlsError`], or an I/O error.
    pub async fn accept(&self, mut connection: Connection) -> Result<Connection, TransportError> {
        let mut first = [0u8; 1];
        connection.read_exact(&mut first).await?;
        if first[0] != TLS_HANDSHAKE_RECORD {
            crate::handshake::refuse_plaintext(&mut connection, first[0]).await;
            return Err(AuthError::ClientHasNoTls.into());
        }
        let io = Handshaking::new(connection, Some(first[0]));
        let stream = tokio_rustls::TlsAcceptor::from(self.config.clone()).accept(io).await?;
        let (io, tls) = stream.into_inner();
        into_tls(io.into_inner(), rustls::Connection::Server(tls))
    }
}

/// A client's TLS: the CAs it verifies servers with, and its own
/// certificate if it has one. Cheap to clone; clones share one session
/// cache, so that reconnecting resumes the TLS session.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

impl Eq for ClientTls {}

impl ClientTls {
    /// TLS verifying servers with `roots`, presenting `identity` (a
    /// certificate chain and its key) when a server asks for one.
    ///
    /// # Errors
    ///
    /// [`TlsError::Setup`] when `roots` is empty or the key does not fit the
    /// certificate.
    pub fn new(
        roots: RootCertStore,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<Self, TlsError> {
        if roots.is_empty() {
            return Err(TlsError::setup("the CA bundle to verify servers with holds no certificate"));
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::setup)?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
                TlsError::setup(format!("the client certificate and key do not go together: {e}"))
            })?,
        };
        Ok(ClientTls { config: Arc::new(config), server_name: None })
    }

    /// TLS from PEM files: the CA bundle, and the client's certificate chain
    /// and key (`None`: no client certificate).
    ///
    /// # Errors
    ///
    /// [`TlsError::Setup`] naming the file that cannot be read or used.
    pub fn from_pem_files(ca: &Path, client: Option<(&Path, &Path)>) -> Result<Self, TlsError> {
        let identity = match client {
            None => None,
            Some((cert, key)) => Some((load_certificates(cert)?, load_private_key(key)?)),
        };
        Self::new(load_roots(ca)?, identity)
    }

    /// A client configuration built by hand (it must use the `ring`
    /// provider, as rmi does).
    pub fn from_rustls(config: Arc<ClientConfig>) -> Self {
        ClientTls { config, server_name: None }
    }

    /// Verifies every server's certificate against `name` instead of the
    /// host connected to (default: that host, or `localhost` over a Unix
    /// socket). For servers reached by an address their certificate does
    /// not list.
    ///
    /// # Errors
    ///
    /// [`TlsError::Setup`] when `name` is neither a DNS name nor an IP
    /// address.
    pub fn server_name(mut self, name: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| TlsError::setup(format!("{name:?} is not a DNS name or an IP address: {e}")))?;
        self.server_name = Some(name);
        Ok(self)
    }

    /// The name a server at `location` must prove it is.
    fn name_for(&self, location: &Location) -> Result<ServerName<'static>, TlsError> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        match location {
            Location::Tcp(HostPort { host: Host::V4(ip), .. }) => Ok(ServerName::IpAddress((*ip).into())),
            Location::Tcp(HostPort { host: Host::V6(ip), .. }) => Ok(ServerName::IpAddress((*ip).into())),
            Location::Tcp(HostPort { host: Host::Name(name), .. }) => ServerName::try_from(name.clone())
                .map_err(|e| {
                    TlsError::setup(format!("{name:?} cannot be verified as a TLS server name: {e}"))
                }),
            Location::Unix(_) => Ok(ServerName::DnsName(
                rustls_pki_types::DnsName::try_from("localhost")
                    .map_err(|e| TlsError::setup(e.to_string()))?
                    .to_owned(),
            )),
        }
    }

    /// Runs the TLS handshake on a connection to `location`, verifying the
    /// server's certificate and name.
    ///
    /// # Errors
    ///
    /// [`AuthError::ServerHasNoTls`] when the server answered in plaintext
    /// rmi, the handshake's [`TlsError`], or an I/O error.
    pub async fn connect(
        &self,
        connection: Connection,
        location: &Location,
    ) -> Result<Connection, TransportError> {
        let name = self.name_for(location)?;
        let io = Handshaking::new(connection, None);
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        match connector.connect(name, io).into_fallible().await {
            Ok(stream) => {
                let (io, tls) = stream.into_inner();
                into_tls(io.into_inner(), rustls::Connection::Client(tls))
            }
            Err((e, io)) if io.saw_rmi() => {
                drop(e);
                Err(AuthError::ServerHasNoTls.into())
            }
            Err((e, _)) => Err(e.into()),
        }
    }
}

impl From<TlsError> for TransportError {
    fn from(e: TlsError) -> Self {
        TransportError::Tls(e)
    }
}

fn into_tls(connection: Connection, tls: rustls::Connection) -> Result<Connection, TransportError> {
    let socket = connection
        .into_socket()
        .map_err(|_| TlsError::setup("TLS over a connection that already runs TLS"))?;
    Ok(Connection::Tls(TlsStream::new(socket, tls)))
}

/// A connection during the TLS handshake: gives back a byte already read
/// (the server peeks at the first), and keeps the first bytes the peer
/// sent (the client tells a plaintext rmi answer by them).
struct Handshaking {
    io: Connection,
    preread: Option<u8>,
    seen: [u8; 8],
    seen_len: usize,
}

impl Handshaking {
    fn new(io: Connection, preread: Option<u8>) -> Self {
        Handshaking { io, preread, seen: [0; 8], seen_len: 0 }
    }

    fn into_inner(self) -> Connection {
        self.io
    }

    /// Whether the peer's first bytes were an rmi handshake message: a
    /// length prefix, then rmi's magic.
    fn saw_rmi(&self) -> bool {
        self.seen_len == self.seen.len() && self.seen.get(4..) == Some(crate::handshake::MAGIC.as_slice())
    }
}

impl AsyncRead for Handshaking {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(byte) = this.preread.take() {
            if buf.remaining() > 0 {
                buf.put_slice(&[byte]);
                return Poll::Ready(Ok(()));
            }
            this.preread = Some(byte);
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let fresh = buf.filled().get(before..).unwrap_or_default();
            let room = this.seen.len() - this.seen_len;
            let take = room.min(fresh.len());
            if let (Some(to), Some(from)) =
                (this.seen.get_mut(this.seen_len..this.seen_len + take), fresh.get(..take))
            {
                to.copy_from_slice(from);
                this.seen_len += take;
            }
        }
        polled
    }
}

impl AsyncWrite for Handshaking {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
