//! What a call and its reply carry on the wire.
//!
//! A [`Call`] names an object and a method and carries the arguments encoded
//! once ([`Encoded`]); the daemon decodes them only in the method's own
//! dispatch code, straight into its parameter types. A [`Reply`] carries the
//! encoded return value or a [`RemoteError`]. tarpc wraps both with request
//! ids, deadlines and cancellation ([`ClientMessage`], [`Response`]).

use serde::{Deserialize, Serialize};

use crate::blob::Encoded;
use crate::error::RemoteError;

/// One method call on one remote object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Call {
    /// The object's id in the daemon.
    pub object: String,
    /// The exposed method's name.
    pub method: String,
    /// The arguments, as a tuple, encoded once.
    pub args: Encoded,
    /// The caller does not wait for the method: the daemon acknowledges the
    /// call at once and runs the method on its own.
    pub oneway: bool,
}

impl Call {
    /// A call of `method` on `object` with `args` (already encoded).
    pub fn new(object: impl Into<String>, method: impl Into<String>, args: Encoded) -> Self {
        Call { object: object.into(), method: method.into(), args, oneway: false }
    }

    /// The same call, marked oneway.
    #[must_use]
    pub fn oneway(mut self) -> Self {
        self.oneway = true;
        self
    }
}

/// The outcome of a call: the encoded return value, or what went wrong.
pub type Reply = Result<Encoded, RemoteError>;

/// What a client sends: tarpc's request (with id and deadline) or cancel.
pub type ClientMessage = tarpc::ClientMessage<Call>;
/// What a server sends back: tarpc's response to one request id.
pub type Response = tarpc::Response<Reply>;

impl tarpc::RequestName for Call {
    /// tarpc names requests in its traces; a call's name is its method's.
    fn name(&self) -> &str {
        &self.method
    }
}
