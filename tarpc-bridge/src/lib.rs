//! tarpc services carried by rmi (the `rmi` crate's `tarpc` feature, which
//! makes this crate `rmi::tarpc`): a tarpc service
//! served on an rmi daemon's listener, behind its TLS and its shared key,
//! registered in `rmi-naming` like any object, and reached by a tarpc client
//! through `RMINAME:`.
//!
//! ```no_run
//! # #[tarpc::service] trait World { async fn hello(name: String) -> String; }
//! # #[derive(Clone)] struct HelloServer;
//! # impl World for HelloServer { async fn hello(self, _: tarpc::context::Context, name: String) -> String { name } }
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use futures::StreamExt;
//! use tarpc::server::Channel;
//!
//! let daemon = rmi::Daemon::bind("127.0.0.1:0").await?;
//! let uri = rmi_tarpc::serve(&daemon, "example.world", |transport| {
//!     let requests = tarpc::server::BaseChannel::with_defaults(transport).execute(HelloServer.serve());
//!     tokio::spawn(requests.for_each(|response| async move {
//!         tokio::spawn(response);
//!     }));
//! })?;
//! rmi::locate_ns(None).await?.register("example.world", &uri).await?;
//!
//! // Elsewhere:
//! let transport = rmi_tarpc::connect("RMINAME:example.world").await?;
//! let client = WorldClient::new(tarpc::client::Config::default(), transport).spawn();
//! let greeting = client.hello(tarpc::context::current(), "rmi".into()).await?;
//! # Ok(()) }
//! ```
//!
//! The messages travel in rmi's frames ([`rmi_core::transport::Transport`]):
//! postcard-encoded, sealed by the key when the daemon has one, inside TLS
//! when `RMI_TLS` is on, within the message size limit.

use rmi_core::handshake::client_handshake_channel;
use rmi_core::net::Connection;
use rmi_core::transport::Transport;
use rmi_core::{Config, Error, ObjectUri, Uri};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a served tarpc service reads requests from and writes responses to.
pub type ServerTransport<Req, Resp> =
    Transport<UntilShutdown<Connection>, ::tarpc::ClientMessage<Req>, ::tarpc::Response<Resp>>;

/// A served connection that reads as ended once its daemon shuts down, so
/// that the tarpc service on it stops taking requests (the responses of
/// those it took can still be written), as the daemon's own connections do.
pub struct UntilShutdown<IO> {
    io: IO,
    stop: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    stopped: bool,
}

impl<IO> UntilShutdown<IO> {
    fn new(io: IO, shutdown: tokio_util::sync::CancellationToken) -> Self {
        UntilShutdown { io, stop: Box::pin(shutdown.cancelled_owned()), stopped: false }
    }
}

impl<IO> std::fmt::Debug for UntilShutdown<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UntilShutdown").field("stopped", &self.stopped).finish_non_exhaustive()
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for UntilShutdown<IO> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.stopped && this.stop.as_mut().poll(cx).is_ready() {
            this.stopped = true;
        }
        if this.stopped {
            // The end of the stream: tarpc's server stops reading requests.
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for UntilShutdown<IO> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// What a tarpc client sends requests over.
pub type ClientTransport<Req, Resp> =
    Transport<Connection, ::tarpc::Response<Resp>, ::tarpc::ClientMessage<Req>>;

/// Serves a tarpc service as `name` on `daemon`'s listener: `serve` is given
/// each connection's transport and runs the service on it (as in the module
/// example). When the daemon shuts down, each transport ends (its requests
/// stop), so the service's tasks end with it. Returns the URI to register
/// in the name server.
///
/// # Errors
///
/// As [`rmi_daemon::Daemon::register_channel`].
pub fn serve<Req, Resp>(
    daemon: &rmi_daemon::Daemon,
    name: &str,
    serve: impl Fn(ServerTransport<Req, Resp>) + Send + Sync + 'static,
) -> Result<ObjectUri, rmi_daemon::DaemonError>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    daemon.register_channel(name, move |channel| {
        let connection = UntilShutdown::new(channel.connection, channel.shutdown);
        serve(Transport::new(connection, channel.session, channel.max_message_size));
    })
}

/// Connects to the tarpc service `uri` names (`RMINAME:<name>`, looked up in
/// the name server, or `RMI:<name>@<host>:<port>`), with the environment's
/// key and TLS settings.
///
/// # Errors
///
/// The URI's, the name server's, the connection's or the handshake's error.
pub async fn connect<Req, Resp>(uri: impl rmi_proxy::IntoUri) -> Result<ClientTransport<Req, Resp>, Error>
where
    Req: Serialize + Send + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    connect_with(&Config::from_env()?, uri).await
}

/// As [`connect`], with `config` in place of the environment's.
///
/// # Errors
///
/// As [`connect`].
pub async fn connect_with<Req, Resp>(
    config: &Config,
    uri: impl rmi_proxy::IntoUri,
) -> Result<ClientTransport<Req, Resp>, Error>
where
    Req: Serialize + Send + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    let target = match uri.into_uri()? {
        Uri::Object(object) => object,
        Uri::Name(name) => {
            let listed: Vec<String> = name.name_servers.iter().map(ToString::to_string).collect();
            let at = (!listed.is_empty()).then(|| listed.join(","));
            let ns = rmi_proxy::locate_ns_with(config, at.as_deref()).await?;
            ns.lookup(&name.name).await?
        }
        other => {
            return Err(Error::Protocol(format!("{other}: a tarpc service is named by RMINAME: or RMI:")));
        }
    };
    let location = &target.location;
    let timeout = rmi_proxy::DEFAULT_CONNECT_TIMEOUT;
    let connection = tokio::time::timeout(timeout, Connection::connect(location))
        .await
        .map_err(|_| Error::Timeout(timeout))?
        .map_err(|source| Error::Connect {
            address: location.to_string(),
            source: std::sync::Arc::new(source),
        })?;
    let mut connection = match &config.tls {
        Some(tls) => tls.client.connect(connection, location).await?,
        None => connection,
    };
    let session = client_handshake_channel(&mut connection, config.hmac_key.as_ref(), &target.object).await?;
    Ok(Transport::new(connection, session, config.max_message_size))
}
