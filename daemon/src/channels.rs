//! Channels: services other than rmi's objects (a tarpc service) served on
//! the daemon's own listener, behind its TLS and its key. A client names the
//! channel in rmi's handshake (`rmi_core::handshake::client_handshake_channel`);
//! once the handshake is done, the connection's bytes are the service's.

use std::sync::Arc;

use rmi_core::auth::Session;
use rmi_core::context::ConnectionInfo;
use rmi_core::net::Connection;

/// A connection to a channel, its handshakes done.
#[allow(missing_debug_implementations)]
#[non_exhaustive]
pub struct Channel {
    /// The connection (over TLS when the daemon has it): the service's
    /// bytes from here on.
    pub connection: Connection,
    /// With a key, the session of rmi's handshake: an
    /// [`rmi_core::transport::Transport`] made with it seals and checks
    /// every run of frames, as rmi's own connections do.
    pub session: Option<Session>,
    /// The daemon's message size limit, for the service's transport.
    pub max_message_size: usize,
    /// Who connected (its peer and, over TLS, its certificate).
    pub info: Arc<ConnectionInfo>,
    /// Cancelled when the daemon shuts down: the service should stop
    /// reading the connection then (rmi's tarpc bridge ends its requests,
    /// as the daemon ends its own connections).
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// What serves a channel's connections: it is given each one, and runs the
/// service on it (spawning what it needs).
#[derive(Clone)]
pub(crate) struct ChannelHandler(pub(crate) Arc<dyn Fn(Channel) + Send + Sync>);

impl std::fmt::Debug for ChannelHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelHandler")
    }
}
