//! One client connection: its handshake, its reading loop, and its calls.
//!
//! The loop reads requests and starts every call on a task of its own, so a
//! slow call holds up nothing, and a method may call another daemon that
//! calls back into this one. Each task writes its own response through the
//! shared writer. A `Cancel` aborts its call; a client that goes away takes
//! its calls in flight with it (oneway calls run on).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::FutureExt;
use futures::future::{AbortHandle, Abortable};
use rmi_core::handshake::server_handshake;
use rmi_core::link::{self, MessageWriter};
use rmi_core::message::deadline_from;
use rmi_core::net::Connection;
use rmi_core::object::{Dispatch, Exposed, with_deadline};
use rmi_core::{Encoded, RemoteError, RemoteErrorKind, Reply, Request, Response, TransportError};
use tokio_util::task::TaskTracker;

use crate::daemon::Inner;

/// Calls in flight on one connection, by id, to cancel them.
type InFlight = Arc<Mutex<HashMap<u64, AbortHandle>>>;

fn lock(calls: &InFlight) -> MutexGuard<'_, HashMap<u64, AbortHandle>> {
    // Insertions and removals leave the map whole; a poisoned lock is usable.
    calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Aborts the connection's calls in flight when dropped: when the client
/// went away, or when the daemon abandons the connection after its shutdown
/// grace.
struct AbortOnDrop(InFlight);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for (_, call) in lock(&self.0).drain() {
            call.abort();
        }
    }
}

/// Serves one accepted connection until it closes or the daemon shuts down.
pub(crate) async fn serve(daemon: Arc<Inner>, mut connection: Connection) {
    let peer = connection.peer();
    let options = &daemon.options;
    let handshake = server_handshake(&mut connection, options.key.as_ref());
    let session = match tokio::time::timeout(options.handshake_timeout, handshake).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            tracing::info!(%peer, "refused a connection: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "closed a connection that did not finish its handshake in {:?}", options.handshake_timeout);
            return;
        }
    };
    tracing::debug!(%peer, "connection accepted");
    let (mut reader, writer) = link::split(connection, session, options.max_message_size);
    let calls: InFlight = Arc::default();
    let abort_calls = AbortOnDrop(calls.clone());
    let tasks = TaskTracker::new();
    let shut_down = loop {
        let request = tokio::select! {
            request = reader.recv::<Request>() => request,
            () = daemon.shutdown.cancelled() => break true,
        };
        match request {
            Some(Ok(Request::Call { id, remaining, call })) => {
                let deadline = deadline_from(remaining);
                let Some(object) = daemon.registry.get(&call.object) else {
                    if call.oneway {
                        tracing::debug!(%peer, object = call.object, "oneway call to an unknown object dropped");
                    } else {
                        send_reply(&writer, id, Err(daemon.registry.not_found(&call.object)), false);
                    }
                    continue;
                };
                if call.oneway {
                    // Oneway calls belong to the daemon, not the connection:
                    // they run on after the client is gone.
                    let method = call.method;
                    daemon.calls.spawn(async move {
                        if let Err(e) = run(object, &method, call.args, deadline).await {
                            tracing::info!(method, "oneway call failed: {e}");
                        }
                    });
                    continue;
                }
                let (abort, registration) = AbortHandle::new_pair();
                lock(&calls).insert(id, abort);
                let (calls, writer) = (calls.clone(), writer.clone());
                tasks.spawn(async move {
                    let call = Abortable::new(run(object, &call.method, call.args, deadline), registration);
                    let Ok(reply) = call.await else { return };
                    let others = {
                        let mut calls = lock(&calls);
                        calls.remove(&id);
                        !calls.is_empty()
                    };
                    // With other calls in flight, more replies follow: let the
                    // flusher write them together.
                    send_reply(&writer, id, reply, others);
                });
            }
            Some(Ok(Request::Cancel { id })) => {
                if let Some(call) = lock(&calls).remove(&id) {
                    call.abort();
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                log_broken(&peer, &e);
                break false;
            }
            None => break false,
        }
    };
    if !shut_down {
        // The client is gone: nobody will read these replies.
        drop(abort_calls);
    }
    tasks.close();
    tasks.wait().await;
    writer.close();
    tracing::debug!(%peer, "connection closed");
}

fn log_broken(peer: &str, e: &TransportError) {
    match e {
        TransportError::Io(_) | TransportError::ClosedMidFrame => {
            tracing::debug!(%peer, "connection lost: {e}")
        }
        _ => tracing::info!(%peer, "closed a connection: {e}"),
    }
}

/// Sends a call's reply, now or `batched` with others; a reply too large
/// for the limit becomes an error reply instead, so the caller is not left
/// waiting.
fn send_reply(writer: &MessageWriter, id: u64, reply: Reply, batched: bool) {
    let response = Response { id, reply };
    let sent = if batched { writer.send_batched(&response) } else { writer.send(&response) };
    match sent {
        Ok(()) => {}
        Err(TransportError::FrameTooLarge { len, max }) => {
            let error = RemoteError::new(
                RemoteErrorKind::Internal,
                format!("the reply of {len} bytes exceeds the limit of {max} bytes (RMI_MAX_MESSAGE_SIZE)"),
            );
            let _ = writer.send(&Response { id, reply: Err(error) });
        }
        Err(e) => tracing::debug!("reply {id} not sent: {e}"),
    }
}

/// Runs one call on `object`: a panic in the method becomes a remote
/// error, and calls the method makes inherit the deadline.
pub(crate) async fn run(
    object: Arc<dyn Exposed>,
    method: &str,
    args: Encoded,
    deadline: Option<Instant>,
) -> Reply {
    if deadline.is_some_and(|d| d <= Instant::now()) {
        return Err(RemoteError::new(
            RemoteErrorKind::DeadlineExceeded,
            "the call's deadline passed before it ran",
        ));
    }
    with_deadline(deadline, async move {
        match std::panic::catch_unwind(AssertUnwindSafe(|| object.dispatch(method, args))) {
            Ok(Dispatch::Ready(reply)) => reply,
            Ok(Dispatch::Pending(future)) => match AssertUnwindSafe(future).catch_unwind().await {
                Ok(reply) => reply,
                Err(panic) => Err(panicked(method, panic)),
            },
            Err(panic) => Err(panicked(method, panic)),
        }
    })
    .await
}

fn panicked(method: &str, panic: Box<dyn std::any::Any + Send>) -> RemoteError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned());
    RemoteError::new(RemoteErrorKind::Panic, format!("method {method:?} panicked: {message}"))
}
