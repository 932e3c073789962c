//! Running one call on one object: a panic in the method becomes a remote
//! error, a deadline that passed stops the call before it runs, and calls
//! the method makes inherit its deadline.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use rmi_core::object::{Dispatch, Exposed, ReplyFuture, sync_with_deadline, with_deadline};
use rmi_core::{Encoded, RemoteError, RemoteErrorKind, Reply};

/// A call started: done already (a synchronous method, or an error before
/// the method ran), or still running.
pub(crate) enum Started {
    Done(Reply),
    Running(ReplyFuture),
}

/// Starts one call on `object`, catching a panic in a synchronous method.
pub(crate) fn start(
    object: Arc<dyn Exposed>,
    method: &str,
    args: Encoded,
    deadline: Option<Instant>,
) -> Started {
    if deadline.is_some_and(|d| d <= Instant::now()) {
        return Started::Done(Err(RemoteError::new(
            RemoteErrorKind::DeadlineExceeded,
            "the call's deadline passed before it ran",
        )));
    }
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        sync_with_deadline(deadline, || object.dispatch(method, args))
    })) {
        Ok(Dispatch::Ready(reply)) => Started::Done(reply),
        Ok(Dispatch::Pending(future)) => Started::Running(future),
        Err(panic) => Started::Done(Err(panicked(method, panic))),
    }
}

/// Finishes a call that is awaiting something, catching a panic in it.
pub(crate) async fn finish(method: &str, future: ReplyFuture) -> Reply {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(reply) => reply,
        Err(panic) => Err(panicked(method, panic)),
    }
}

/// Runs one call on `object` to its end: a panic in the method becomes a
/// remote error, and calls the method makes inherit the deadline.
pub(crate) async fn run(
    object: Arc<dyn Exposed>,
    method: &str,
    args: Encoded,
    deadline: Option<Instant>,
) -> Reply {
    match start(object, method, args, deadline) {
        Started::Done(reply) => reply,
        Started::Running(future) => with_deadline(deadline, finish(method, future)).await,
    }
}

fn panicked(method: &str, panic: Box<dyn std::any::Any + Send>) -> RemoteError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned());
    RemoteError::new(RemoteErrorKind::Panic, format!("method {method:?} panicked: {message}"))
}
