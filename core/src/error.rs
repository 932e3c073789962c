//! Errors: the remote error sent as data, and the caller's error enum.
//!
//! Two families are kept apart (as tarpc's `ServerError` and `RpcError`):
//! [`RemoteError`] is what a daemon *sends* when a call fails on its side; it
//! travels on the wire and is rebuilt on the caller's side with its whole error
//! chain. [`Error`] is what a caller *gets*: every way a remote call can fail,
//! one of which is a `RemoteError`.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::auth::AuthError;
use crate::uri::UriError;

/// At most this many causes of a remote error are kept when one arrives: a
/// peer cannot make us build (and later drop, recursively) an unbounded chain.
pub const MAX_REMOTE_CHAIN: usize = 64;

/// What kind of failure a daemon reports for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RemoteErrorKind {
    /// No object is registered under the id the call named.
    ObjectNotFound,
    /// The object has no exposed method of that name.
    MethodNotFound,
    /// The arguments could not be decoded as the method's parameter types.
    BadArguments,
    /// The method panicked; the daemon caught it and kept serving.
    Panic,
    /// The method returned an error of its own (`Err(e)` from a `Result`).
    Application,
    /// The daemon is at a limit (connections or calls in flight); try again.
    Busy,
    /// The call's deadline passed on the daemon's side.
    DeadlineExceeded,
    /// The daemon is shutting down.
    ShuttingDown,
    /// The reply could not be encoded, or another failure inside the daemon.
    Internal,
    /// The daemon's hooks refused the call (see the daemon's `Hooks`): not
    /// allowed for this caller.
    Refused,
}

impl RemoteErrorKind {
    /// The kinds in the order of their wire indices (their declaration order,
    /// as postcard numbers enum variants).
    const ALL: [RemoteErrorKind; 10] = [
        RemoteErrorKind::ObjectNotFound,
        RemoteErrorKind::MethodNotFound,
        RemoteErrorKind::BadArguments,
        RemoteErrorKind::Panic,
        RemoteErrorKind::Application,
        RemoteErrorKind::Busy,
        RemoteErrorKind::DeadlineExceeded,
        RemoteErrorKind::ShuttingDown,
        RemoteErrorKind::Internal,
        RemoteErrorKind::Refused,
    ];

    /// The kind's number on the wire.
    pub(crate) fn wire_index(self) -> u32 {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0) as u32
    }

    /// The kind with number `index` on the wire.
    pub(crate) fn from_wire_index(index: u32) -> Option<Self> {
        Self::ALL.get(index as usize).copied()
    }
}

impl fmt::Display for RemoteErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemoteErrorKind::ObjectNotFound => "object not found",
            RemoteErrorKind::MethodNotFound => "method not found",
            RemoteErrorKind::BadArguments => "bad arguments",
            RemoteErrorKind::Panic => "panic in remote method",
            RemoteErrorKind::Application => "remote method failed",
            RemoteErrorKind::Busy => "daemon busy",
            RemoteErrorKind::DeadlineExceeded => "deadline exceeded on the daemon",
            RemoteErrorKind::ShuttingDown => "daemon shutting down",
            RemoteErrorKind::Internal => "internal daemon error",
            RemoteErrorKind::Refused => "call refused",
        })
    }
}

/// A failure on the remote side of a call, sent as data: its kind, its
/// message, and the messages of its chain of causes (outermost first).
///
/// `source()` walks the chain, so `anyhow`'s `{:#}` or any error reporter
/// prints the remote causes as if they had happened locally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.display())]
pub struct RemoteError {
    kind: RemoteErrorKind,
    message: String,
    #[source]
    cause: Option<Box<RemoteCause>>,
}

/// One cause in a [`RemoteError`]'s chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RemoteCause {
    message: String,
    #[source]
    cause: Option<Box<RemoteCause>>,
}

impl RemoteError {
    /// A remote error with no chain.
    pub fn new(kind: RemoteErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), cause: None }
    }

    /// A remote error from a local error: its `Display` becomes the message
    /// and its `source()` chain becomes the remote chain.
    pub fn from_error(kind: RemoteErrorKind, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = Vec::new();
        let mut next = error.source();
        while let Some(e) = next {
            chain.push(e.to_string());
            next = e.source();
        }
        Self::with_chain(kind, error.to_string(), chain)
    }

    /// A remote error with the given chain of cause messages, outermost first.
    /// Only the first [`MAX_REMOTE_CHAIN`] are kept.
    pub fn with_chain(kind: RemoteErrorKind, message: impl Into<String>, chain: Vec<String>) -> Self {
        let total = chain.len();
        let mut cause = None;
        if total > MAX_REMOTE_CHAIN {
            cause = Some(Box::new(RemoteCause {
                message: format!("… and {} more causes", total - MAX_REMOTE_CHAIN),
                cause: None,
            }));
        }
        for message in chain.into_iter().take(MAX_REMOTE_CHAIN).rev() {
            cause = Some(Box::new(RemoteCause { message, cause }));
        }
        Self { kind, message: message.into(), cause }
    }

    /// The message, prefixed with the kind unless the method's own error
    /// (whose message speaks for itself).
    fn display(&self) -> String {
        match self.kind {
            RemoteErrorKind::Application => self.message.clone(),
            kind => format!("{kind}: {}", self.message),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> RemoteErrorKind {
        self.kind
    }

    /// The remote error's own message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The messages of the remote causes, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &str> {
        std::iter::successors(self.cause.as_deref(), |c| c.cause.as_deref()).map(|c| c.message.as_str())
    }
}

/// On the wire a remote error is flat: `(kind, message, [cause, …])`.
#[derive(Serialize, Deserialize)]
struct WireRemoteError<S> {
    kind: RemoteErrorKind,
    message: S,
    chain: Vec<S>,
}

impl Serialize for RemoteError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireRemoteError { kind: self.kind, message: self.message.as_str(), chain: self.chain().collect() }
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RemoteError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireRemoteError::<String>::deserialize(deserializer)?;
        Ok(RemoteError::with_chain(wire.kind, wire.message, wire.chain))
    }
}

impl Drop for RemoteCause {
    // Dropping a long chain of boxes recursively could exhaust the stack;
    // unlink it iteratively.
    fn drop(&mut self) {
        let mut next = self.cause.take();
        while let Some(mut cause) = next {
            next = cause.cause.take();
        }
    }
}

/// Everything that can go wrong when calling a remote object.
///
/// It is `Clone`, because one broken connection fails every call that was
/// multiplexed on it with the same cause.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon or name server could not be reached.
    #[error("cannot connect to {address}")]
    Connect {
        /// The address that was tried.
        address: String,
        /// Why the connection failed.
        #[source]
        source: Arc<io::Error>,
    },
    /// No reply came before the call's timeout.
    #[error("no reply within {0:?} (the call timeout)")]
    Timeout(Duration),
    /// The handshake or a frame's authentication failed: wrong key, key on one
    /// side only, protocol version mismatch, tampered or replayed frames.
    #[error("authentication failed")]
    Auth(#[from] AuthError),
    /// TLS failed: the peer's certificate was refused here (unknown CA,
    /// expired, another name), this side's was refused there, or a record
    /// was broken. [`crate::tls::TlsError`] says which.
    #[error("TLS failed: {0}")]
    Tls(crate::tls::TlsError),
    /// The peer broke the protocol (malformed frame or message, frame over the
    /// size limit, unexpected reply).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The daemon has no object with the requested id.
    #[error("object not found: {}", .0.message())]
    ObjectNotFound(RemoteError),
    /// The object has no exposed method with the requested name.
    #[error("method not found: {}", .0.message())]
    MethodNotFound(RemoteError),
    /// The daemon could not decode the arguments as the method's parameters.
    #[error("bad arguments: {}", .0.message())]
    BadArguments(RemoteError),
    /// The call reached the method and failed there, or the daemon refused it
    /// (busy, shutting down); the remote error carries the remote chain.
    #[error(transparent)]
    Remote(RemoteError),
    /// The connection broke while the call was in flight, or broke before it
    /// could be sent. The daemon may or may not have run the call.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The daemon refused the connection after its handshake (its hooks'
    /// validation), saying why; the call did not run.
    #[error("the daemon refused the connection: {0}")]
    Refused(String),
    /// A message was larger than the size limit; nothing was sent.
    #[error("message of {size} bytes exceeds the limit of {max} bytes (RMI_MAX_MESSAGE_SIZE)")]
    MessageTooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Arguments or a return value could not be encoded or decoded here.
    #[error("serialization failed: {0}")]
    Serialization(String),
    /// A call of a batch did not run: an earlier call of the same batch
    /// failed, and a daemon stops a batch at its first failure.
    #[error(
        "call {index} ({method:?}) of the batch did not run: call {failed_index} ({failed_method:?}) failed before it"
    )]
    NotRun {
        /// The call's position in the batch, from 0.
        index: usize,
        /// The call's method.
        method: String,
        /// The position of the call that failed.
        failed_index: usize,
        /// That call's method.
        failed_method: String,
    },
    /// A URI was malformed.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// An `RMI_*` variable is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

impl From<RemoteError> for Error {
    /// Maps the daemon's error kinds onto the caller's variants: unknown
    /// object, unknown method and bad arguments get their own; the rest stay
    /// remote errors.
    fn from(e: RemoteError) -> Self {
        match e.kind() {
            RemoteErrorKind::ObjectNotFound => Error::ObjectNotFound(e),
            RemoteErrorKind::MethodNotFound => Error::MethodNotFound(e),
            RemoteErrorKind::BadArguments => Error::BadArguments(e),
            _ => Error::Remote(e),
        }
    }
}

/// An error and its causes on one line: `outer: middle: inner`.
pub fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

impl Error {
    /// This error as a remote error, to relay it to a caller further away:
    /// the remote error behind it, or one that says what happened here.
    pub fn into_remote(self) -> RemoteError {
        match self {
            Error::ObjectNotFound(e)
            | Error::MethodNotFound(e)
            | Error::BadArguments(e)
            | Error::Remote(e) => e,
            Error::Timeout(_) => RemoteError::from_error(RemoteErrorKind::DeadlineExceeded, &self),
            other => RemoteError::from_error(RemoteErrorKind::Internal, &other),
        }
    }

    /// The remote error behind this error, if the failure happened remotely.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            Error::ObjectNotFound(e)
            | Error::MethodNotFound(e)
            | Error::BadArguments(e)
            | Error::Remote(e) => Some(e),
            _ => None,
        }
    }
}

/// The remote error for a panic in `method` (or in what is named so),
/// with the panic's message when it has one.
pub(crate) fn panicked(method: &str, panic: Box<dyn std::any::Any + Send>) -> RemoteError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned());
    RemoteError::new(RemoteErrorKind::Panic, format!("method {method:?} panicked: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] io::Error);

    #[test]
    fn chain_survives_the_wire() {
        let local = Outer(Middle(io::Error::other("inner")));
        let remote = RemoteError::from_error(RemoteErrorKind::Application, &local);
        let bytes = postcard::to_allocvec(&remote).unwrap();
        let back: RemoteError = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, remote);
        assert_eq!(back.message(), "outer");
        assert_eq!(back.chain().collect::<Vec<_>>(), ["middle", "inner"]);
        // source() walks the same chain, so error reporters print it.
        let mut sources = Vec::new();
        let mut next = std::error::Error::source(&back);
        while let Some(e) = next {
            sources.push(e.to_string());
            next = e.source();
        }
        assert_eq!(sources, ["middle", "inner"]);
    }

    #[test]
    fn a_hostile_chain_is_capped() {
        let chain = vec![String::new(); 1_000_000];
        let wire = WireRemoteError { kind: RemoteErrorKind::Application, message: "m".to_string(), chain };
        let bytes = postcard::to_allocvec(&wire).unwrap();
        let back: RemoteError = postcard::from_bytes(&bytes).unwrap();
        let kept: Vec<_> = back.chain().collect();
        assert_eq!(kept.len(), MAX_REMOTE_CHAIN + 1);
        assert_eq!(kept[MAX_REMOTE_CHAIN], format!("… and {} more causes", 1_000_000 - MAX_REMOTE_CHAIN));
    }

    #[test]
    fn remote_kinds_map_to_caller_variants() {
        let e = Error::from(RemoteError::new(RemoteErrorKind::MethodNotFound, "no method 'x'"));
        assert!(matches!(e, Error::MethodNotFound(_)));
        assert_eq!(e.to_string(), "method not found: no method 'x'");
        let e = Error::from(RemoteError::new(RemoteErrorKind::Panic, "boom"));
        assert!(matches!(&e, Error::Remote(r) if r.kind() == RemoteErrorKind::Panic));
        assert_eq!(e.remote().map(|r| r.message()), Some("boom"));
        assert_eq!(e.to_string(), "panic in remote method: boom");
        // The method's own error speaks for itself, with its causes after it.
        let local = Outer(Middle(io::Error::other("inner")));
        let e = Error::from(RemoteError::from_error(RemoteErrorKind::Application, &local));
        assert_eq!(chain_text(&e), "outer: middle: inner");
    }
}
