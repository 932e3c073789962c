//! rmi's protocol: everything the daemon, the proxies and the name server
//! share.
//!
//! Users reach these items through the `rmi` crate; this crate is the layer
//! underneath, kept free of any other rmi crate.
//!
//! # Layout
//!
//! - [`uri`]: `RMI:`, `RMINAME:` and `RMIMETA:` URIs, parsed strictly.
//! - [`frame`]: length-prefixed frames, bounded before anything is
//!   allocated, written with vectored writes.
//! - [`auth`]: the shared key, the per-connection session that seals every
//!   run of frames with one tag, and their errors.
//! - [`handshake`]: the version and key handshake on a new connection.
//! - [`idmap`]: maps keyed by call id, with a cheap hash.
//! - [`invoke`]: running one call on one object, where the rule says it runs
//!   (the runtime, the blocking pool), panics caught: for daemons, and for
//!   clients that host callbacks.
//! - [`transport`]: a connection as a stream and sink of postcard messages,
//!   in the shape tarpc expects.
//! - [`blob`]: [`Blob`] and [`Text`], bytes carried without copies.
//! - [`encoded`]: [`Encoded`], values encoded once.
//! - [`exports`]: the local objects a value passes as references, collected
//!   while it is encoded.
//! - `wire`: the varints and the reader of the hand-written codecs.
//! - [`message`]: calls, cancels, replies and releases: what travels after the
//!   handshake, either way.
//! - [`link`]: a connection split into one reader and a writer any task shares;
//!   what the writer holds is published, counted in a shared budget, and cut off
//!   by a write timeout when the peer stops reading.
//! - [`net`]: TCP and Unix sockets behind one type, plaintext or TLS.
//! - [`json`]: values in JSON for the front doors that speak it (Pyro5's
//!   json serializer, calls from the command line).
//! - [`pyro5`]: Pyro5's framing (protocol 502): its header, annotations and
//!   bounded reads, for speaking to Pyro5 clients and daemons.
//! - [`tls`]: TLS under the frames (rustls on ring): server and client
//!   configurations, the split TLS stream, the peer's certificate identity.
//! - [`object`]: what a daemon needs from a hosted object ([`object::Exposed`]),
//!   `describe`'s answer, and the deadline a handled call passes on.
//! - [`peer`]: objects as values: what each end of a connection exports to
//!   the other, the references it holds (imports), and their release.
//! - [`stream`]: [`stream::Stream`], a method's results streamed to its
//!   caller in chunks, under credit-based flow control.
//! - [`context`]: the caller's context inside a method ([`context::context`]),
//!   and the correlation id and annotations calls carry.
//! - [`error`]: [`RemoteError`] (sent as data) and [`Error`] (what a caller
//!   gets).
//! - [`config`]: the `RMI_*` environment variables, read in one place.
//!
//! This crate has no feature flags.

// Data from the network must never panic this code: these are denied outside
// tests, and the few justified exceptions say why where they stand.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod alarm;
pub mod auth;
pub mod blob;
pub mod config;
pub mod context;
pub mod encoded;
pub mod error;
pub mod exports;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
pub mod idmap;
pub mod invoke;
pub mod json;
pub mod link;
pub mod message;
pub mod net;
pub mod object;
pub mod peer;
pub mod pyro5;
pub mod stream;
#[doc(hidden)]
pub mod testing;
pub mod tls;
pub mod transport;
pub mod uri;
pub mod wake;
mod wire;

pub use auth::{AuthError, Key};
pub use blob::{Blob, Text};
pub use config::{Config, ConfigError};
pub use encoded::Encoded;
pub use error::{Error, RemoteError, RemoteErrorKind};
pub use frame::TransportError;
pub use message::{Call, Inbound, Message, OutgoingCall, OutgoingReply, Reply};
pub use transport::Transport;
pub use uri::{Host, HostPort, Location, MetaUri, NameUri, ObjectUri, Uri, UriError};
