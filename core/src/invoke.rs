//! Running one call on one object: a panic in the method becomes a remote
//! error, a deadline that passed stops the call before it runs, and calls
//! the method makes inherit its context (its deadline, its correlation id:
//! see [`crate::context`]).
//!
//! Where a method runs is one rule: an `async` method runs on the runtime
//! (it must not block); a synchronous method may block, so it runs on
//! tokio's blocking pool ([`Started::Blocking`]); a synchronous method
//! marked `#[nonblocking]` runs at once, where its call was read.
//!
//! Daemons run their objects' calls with it, and so does a client for the
//! objects it passed as references (callbacks): both sides host objects.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::context::CallContext;
use crate::encoded::Encoded;
use crate::error::panicked;
use crate::error::{RemoteError, RemoteErrorKind};
use crate::message::Reply;
use crate::object::{BlockingCall, Dispatch, Exposed, ReplyFuture};
use crate::stream::Source;
use futures::FutureExt;

/// A call started: done already (a `#[nonblocking]` method, or an error
/// before the method ran), still running (an `async` method), or to run
/// where it may block (another synchronous method).
#[allow(missing_debug_implementations)]
pub enum Started {
    /// The reply.
    Done(Reply),
    /// A future that yields it.
    Running(ReplyFuture),
    /// A call to run where it may block ([`run_blocking`], or
    /// [`on_blocking_pool`]).
    Blocking(BlockingCall),
    /// A method that streams its results: the producer of its items.
    Stream(Source),
}

/// Starts one call on `object`, catching a panic in a synchronous method.
#[inline]
pub fn start(object: Arc<dyn Exposed>, method: &str, args: Encoded, context: &mut CallContext) -> Started {
    start_at(object, method.as_bytes(), args, context, None)
}

/// As [`start`], with `now` the time if the caller has just read the clock
/// (it is read otherwise), to see whether the call's deadline passed.
#[inline]
fn start_at(
    object: Arc<dyn Exposed>,
    method: &[u8],
    args: Encoded,
    context: &mut CallContext,
    now: Option<std::time::Instant>,
) -> Started {
    if context.deadline().is_some_and(|d| d <= now.unwrap_or_else(std::time::Instant::now)) {
        return Started::Done(Err(RemoteError::new(
            RemoteErrorKind::DeadlineExceeded,
            "the call's deadline passed before it ran",
        )));
    }
    match crate::context::sync_borrowed(context, || object.dispatch_bytes(method, args)) {
        Ok(Dispatch::Ready(reply)) => Started::Done(reply),
        Ok(Dispatch::Pending(future)) => Started::Running(future),
        Ok(Dispatch::Blocking(call)) => Started::Blocking(call),
        Ok(Dispatch::Stream(source)) => Started::Stream(source),
        Err(panic) => Started::Done(Err(panicked(&String::from_utf8_lossy(method), panic))),
    }
}

/// As [`start`], for a call whose caller says whether it reads the
/// results as a stream (`stream`): a caller and a method that disagree get
/// a clear error, and a method that does not stream does not run. `now`
/// is the time if the caller has just read the clock (it is read
/// otherwise), to see whether the call's deadline passed.
#[inline(always)]
pub fn start_as(
    object: Arc<dyn Exposed>,
    method: &crate::Text,
    args: Encoded,
    context: &mut CallContext,
    stream: bool,
    now: Option<std::time::Instant>,
) -> Started {
    if stream && object.methods().iter().any(|m| m.name.as_bytes() == method.as_bytes() && !m.stream) {
        return Started::Done(Err(RemoteError::new(
            RemoteErrorKind::BadArguments,
            format!("method {method:?} does not stream its results: call it for one reply"),
        )));
    }
    match start_at(object, method.as_bytes(), args, context, now) {
        Started::Stream(_) if !stream => Started::Done(Err(stream_refused(
            method,
            "a call waiting for one reply cannot read: call it as a stream (`call_stream`, or the typed proxy)",
        ))),
        other => other,
    }
}

/// Runs a synchronous method's call, on the thread it may block: a panic
/// becomes a remote error, and calls it makes inherit the deadline.
pub fn run_blocking(method: &str, call: BlockingCall, context: CallContext) -> Reply {
    match std::panic::catch_unwind(AssertUnwindSafe(|| context.sync_scope(call))) {
        Ok(reply) => reply,
        Err(panic) => Err(panicked(method, panic)),
    }
}

/// Runs a synchronous method's call on tokio's blocking pool and waits for
/// its reply.
pub async fn on_blocking_pool(method: &str, call: BlockingCall, context: CallContext) -> Reply {
    let name = method.to_owned();
    match tokio::task::spawn_blocking(move || run_blocking(&name, call, context)).await {
        Ok(reply) => reply,
        Err(_) => Err(RemoteError::new(
            RemoteErrorKind::ShuttingDown,
            format!("method {method:?} did not run: the runtime is shutting down"),
        )),
    }
}

/// Finishes a call that is awaiting something, catching a panic in it.
pub async fn finish(method: &str, future: ReplyFuture) -> Reply {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(reply) => reply,
        Err(panic) => Err(panicked(method, panic)),
    }
}

/// Runs one call on `object` to its end: a panic in the method becomes a
/// remote error, and calls the method makes inherit the deadline. A
/// streaming method is refused: its results are not one reply.
pub async fn run(object: Arc<dyn Exposed>, method: &str, args: Encoded, context: CallContext) -> Reply {
    let mut context = context;
    let started = start(object, method, args, &mut context);
    complete(started, method, context, "cannot be awaited as one reply").await
}

/// Runs a started call to its end where streams cannot go (a batch, a
/// oneway call, a local reference): a streaming method is refused, `why`
/// saying why.
pub async fn complete(started: Started, method: &str, context: CallContext, why: &str) -> Reply {
    match started {
        Started::Done(reply) => reply,
        Started::Running(future) => context.scope(finish(method, future)).await,
        Started::Blocking(call) => on_blocking_pool(method, call, context).await,
        Started::Stream(_) => Err(stream_refused(method, why)),
    }
}

/// The error for a streaming method called where streams cannot go.
pub fn stream_refused(method: &str, why: &str) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::BadArguments,
        format!("method {method:?} streams its results, which {why}"),
    )
}
