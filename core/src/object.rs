//! What a daemon needs from an object it hosts, and what `describe` tells.
//!
//! `#[rmi::expose]` implements [`Exposed`] for a type (or, for a trait, for
//! the generated `<Trait>Object<T>` wrapper): the object's type name, its
//! methods, and a `dispatch` that decodes a call's arguments into the
//! method's parameter types, calls it, and encodes what it returns. The
//! helpers below are what that generated code calls; they are public for
//! it, through `rmi::__private`, and not meant to be called by hand.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::encoded::Encoded;
use crate::error::{RemoteError, RemoteErrorKind};
use crate::message::Reply;

/// One exposed method, as `#[expose]` describes it at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// The method's name, as callers name it.
    pub name: &'static str,
    /// Its Rust signature, as text.
    pub signature: &'static str,
    /// Whether callers do not wait for it (`#[oneway]`).
    pub oneway: bool,
    /// Whether it streams its results (it returns a
    /// [`crate::stream::Stream`]).
    pub stream: bool,
}

/// One method of an object, as `describe` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MethodDescription {
    /// The method's name.
    pub name: String,
    /// Its Rust signature, as text.
    pub signature: String,
    /// Whether callers do not wait for it.
    pub oneway: bool,
    /// Whether it streams its results (callers read them with
    /// `call_stream`).
    pub stream: bool,
}

/// An object hosted by a daemon, as `describe` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectDescription {
    /// The object's id in its daemon.
    pub object: String,
    /// The Rust type behind it.
    pub type_name: String,
    /// Its exposed methods, in the order they were declared.
    pub methods: Vec<MethodDescription>,
    /// How its instances are made: `single` (one object, as registered),
    /// `session` (one per client connection) or `percall`.
    pub instance_mode: String,
}

impl From<&MethodInfo> for MethodDescription {
    fn from(m: &MethodInfo) -> Self {
        MethodDescription {
            name: m.name.to_owned(),
            signature: m.signature.to_owned(),
            oneway: m.oneway,
            stream: m.stream,
        }
    }
}

/// A future that yields a call's reply.
pub type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send + 'static>>;

/// A synchronous method's call with its arguments decoded, ready to run
/// where blocking is safe.
pub type BlockingCall = Box<dyn FnOnce() -> Reply + Send + 'static>;

/// What a dispatched call became: its reply at once (a `#[nonblocking]`
/// method, or an error before the method ran), a future (an `async`
/// method), or a call to run where it may block (any other synchronous
/// method).
#[allow(missing_debug_implementations)]
pub enum Dispatch {
    /// The reply.
    Ready(Reply),
    /// A future that yields the reply.
    Pending(ReplyFuture),
    /// A synchronous method that may block: the daemon runs it on tokio's
    /// blocking pool, so that it holds up no other call.
    Blocking(BlockingCall),
    /// A method that streams its results (it returns a
    /// [`crate::stream::Stream`]): the producer the daemon polls for its
    /// items.
    Stream(crate::stream::Source),
}

/// An object a daemon can host. `#[rmi::expose]` implements it; you rarely
/// write it by hand.
pub trait Exposed: Send + Sync + 'static {
    /// The Rust type's name, for `describe` and error messages.
    fn type_name(&self) -> &'static str;

    /// The interface a reference to it names (see [`crate::peer`]): the
    /// exposed type's name, or for a trait's `<Trait>Object`, the trait's.
    fn interface(&self) -> &str {
        self.type_name()
    }

    /// The exposed methods.
    fn methods(&self) -> &'static [MethodInfo];

    /// Whether calls to it depend on their connection (one instance per
    /// client connection, say): the daemon then runs them in the
    /// connection's scope (see [`crate::peer::Scope`]) whatever they carry.
    fn per_connection(&self) -> bool {
        false
    }

    /// How its instances are made, for `describe`: `single` (one object),
    /// or for a daemon's factory `session` or `percall`.
    fn instance_mode(&self) -> &'static str {
        "single"
    }

    /// Runs `method` with `args`, or gets it ready to run: the arguments are
    /// decoded here; an `async` method becomes a future, a synchronous one a
    /// [`BlockingCall`] that the daemon runs on the blocking pool, and only a
    /// `#[nonblocking]` one runs inside this call.
    fn dispatch(self: Arc<Self>, method: &str, args: Encoded) -> Dispatch;

    /// As [`Exposed::dispatch`], with the method's name as bytes, as the
    /// wire carries it: `#[expose]` matches them without reading them as a
    /// `str` first. By default, a name that is not UTF-8 names no method.
    fn dispatch_bytes(self: Arc<Self>, method: &[u8], args: Encoded) -> Dispatch {
        match std::str::from_utf8(method) {
            Ok(method) => self.dispatch(method, args),
            Err(_) => Dispatch::Ready(method_not_found(
                self.type_name(),
                &String::from_utf8_lossy(method),
                self.methods(),
            )),
        }
    }
}

/// What `#[expose]` knows of an exposed type without an instance of it:
/// what a daemon that makes the instances itself (see the daemon's instance
/// modes) answers before it has one.
#[derive(Debug, Clone, Copy)]
pub struct TypeInfo {
    /// As [`Exposed::type_name`].
    pub type_name: &'static str,
    /// As [`Exposed::interface`].
    pub interface: &'static str,
    /// As [`Exposed::methods`].
    pub methods: &'static [MethodInfo],
}

/// An exposed type whose description needs no instance. `#[rmi::expose]`
/// implements it.
pub trait ExposedType: Exposed {
    /// The type's description.
    fn type_info() -> TypeInfo;
}

/// A value that may travel as an argument or a return value.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel to or from a remote object",
    label = "must implement serde::Serialize and serde::Deserialize, own its data, and be Send",
    note = "derive the traits with #[derive(serde::Serialize, serde::Deserialize)], and use owned types (String, not &str)"
)]
pub trait Remote: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Remote for T {}

/// Compile-time check used by generated code: `T` may travel.
pub const fn assert_remote<T: Remote>() {}

/// Decodes a call's arguments as the method's parameter tuple.
///
/// # Errors
///
/// A [`RemoteErrorKind::BadArguments`] error naming the method and its
/// signature.
#[inline]
pub fn decode_args<T: DeserializeOwned>(args: &Encoded, method: &MethodInfo) -> Result<T, RemoteError> {
    args.decode::<T>().map_err(|e| {
        RemoteError::new(
            RemoteErrorKind::BadArguments,
            format!("the arguments do not match `{}`: {e}", method.signature),
        )
    })
}

/// Encodes a method's return value.
#[inline]
pub fn encode_return<T: Serialize + ?Sized>(value: &T) -> Reply {
    if crate::json::replying_in_json() {
        return crate::json::encode_json_reply(value);
    }
    Encoded::encode(value).map_err(|e| {
        RemoteError::new(RemoteErrorKind::Internal, format!("the return value could not be encoded: {e}"))
    })
}

/// Encodes a fallible method's outcome: the value, or the error with its
/// source chain as an application error.
pub fn encode_result<T, E>(result: Result<T, E>) -> Reply
where
    T: Serialize,
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    match result {
        Ok(value) => encode_return(&value),
        Err(e) => {
            let e: Box<dyn std::error::Error + Send + Sync + 'static> = e.into();
            Err(RemoteError::from_error(RemoteErrorKind::Application, &*e))
        }
    }
}

/// The reply for a method name the object does not have.
pub fn method_not_found(type_name: &str, method: &str, methods: &[MethodInfo]) -> Reply {
    let names: Vec<&str> = methods.iter().map(|m| m.name).collect();
    Err(RemoteError::new(
        RemoteErrorKind::MethodNotFound,
        format!("{type_name} has no exposed method {method:?} (it has: {})", names.join(", ")),
    ))
}

/// The description of `object`, hosted as `id`.
pub fn describe(id: &str, object: &dyn Exposed) -> ObjectDescription {
    ObjectDescription {
        object: id.to_owned(),
        type_name: object.type_name().to_owned(),
        methods: object.methods().iter().map(MethodDescription::from).collect(),
        instance_mode: object.instance_mode().to_owned(),
    }
}

pub use crate::context::current_deadline;
