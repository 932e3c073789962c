//! One connection to a daemon, shared by every call a proxy (and its
//! clones) makes: many calls in flight, each matched to its response by id.
//!
//! A caller registers a waiter, writes its request itself (no task hop on
//! the way out; see `rmi_core::link`), and waits. One reader task per
//! connection completes waiters as responses arrive; when the connection
//! breaks it fails every waiter at once with the reason, so no call hangs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rmi_core::handshake::client_handshake;
use rmi_core::link::{self, MessageReader, MessageWriter};
use rmi_core::net::Connection;
use rmi_core::{Call, Error, Key, Location, Reply, Request, Response, TransportError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How a call failed, and whether it may be retried on a new connection.
#[derive(Debug)]
pub(crate) enum CallFailure {
    /// Nothing was sent: retrying on a new connection is safe.
    NotSent(Error),
    /// The request went out; the daemon may have run it.
    Failed(Error),
}

type Waiter = oneshot::Sender<Result<Reply, Error>>;

#[derive(Debug, Default)]
struct Pending {
    next_id: u64,
    waiting: HashMap<u64, Waiter>,
    /// Why the connection ended, once it did.
    closed: Option<Error>,
}

fn lock(pending: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    // The map stays consistent at every step, so a poisoned lock is usable.
    pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A live connection to one daemon.
#[derive(Debug)]
pub(crate) struct ClientConnection {
    writer: MessageWriter,
    pending: Arc<Mutex<Pending>>,
    reader: JoinHandle<()>,
    address: String,
}

impl Drop for ClientConnection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.close();
    }
}

impl ClientConnection {
    /// Connects to `location` and runs the handshake, all within
    /// `connect_timeout`.
    pub(crate) async fn open(
        location: &Location,
        key: Option<&Key>,
        max_message: usize,
        connect_timeout: Duration,
    ) -> Result<Self, Error> {
        let address = location.to_string();
        let connecting = async {
            let mut connection = Connection::connect(location)
                .await
                .map_err(|e| Error::Connect { address: address.clone(), source: Arc::new(e) })?;
            let session = client_handshake(&mut connection, key).await.map_err(|e| match e {
                TransportError::Auth(a) => Error::Auth(a),
                TransportError::Io(io) => Error::Connect { address: address.clone(), source: io },
                other => Error::Protocol(format!("handshake with {address} failed: {other}")),
            })?;
            Ok::<_, Error>((connection, session))
        };
        let (connection, session) =
            tokio::time::timeout(connect_timeout, connecting).await.map_err(|_| Error::Connect {
                address: address.clone(),
                source: Arc::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection and handshake within {connect_timeout:?}"),
                )),
            })??;
        let (reader, writer) = link::split(connection, session, max_message);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let reader = tokio::spawn(read_responses(reader, pending.clone(), writer.clone()));
        Ok(ClientConnection { writer, pending, reader, address })
    }

    /// Whether the connection has ended.
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.pending).closed.is_some() || self.writer.is_closed()
    }

    /// Where the connection goes.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Sends `call` and waits for its reply until `deadline`; `timeout` is
    /// what the deadline stands for, to report it.
    pub(crate) async fn call(
        &self,
        call: Call,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<Reply, CallFailure> {
        let (id, response) = {
            let mut pending = lock(&self.pending);
            if let Some(reason) = &pending.closed {
                return Err(CallFailure::NotSent(reason.clone()));
            }
            let id = pending.next_id;
            pending.next_id = pending.next_id.wrapping_add(1);
            let (tx, rx) = oneshot::channel();
            pending.waiting.insert(id, tx);
            (id, rx)
        };
        let mut guard = InFlight { connection: self, id, sent: false, done: false };
        if let Err(e) = self.writer.send(&Request::call(id, deadline, call)) {
            return Err(CallFailure::NotSent(send_error(e)));
        }
        guard.sent = true;
        let outcome = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), response).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    let waited = timeout.unwrap_or_default();
                    return Err(CallFailure::Failed(Error::Timeout(waited)));
                }
            },
            None => response.await,
        };
        guard.done = true;
        match outcome {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(CallFailure::Failed(e)),
            Err(_) => Err(CallFailure::Failed(Error::ConnectionLost("the connection closed".into()))),
        }
    }

    /// Sends a oneway call: done once it is handed to the connection.
    pub(crate) fn call_oneway(&self, call: Call) -> Result<(), CallFailure> {
        if let Some(reason) = &lock(&self.pending).closed {
            return Err(CallFailure::NotSent(reason.clone()));
        }
        self.writer
            .send(&Request::call(0, None, call.oneway()))
            .map_err(|e| CallFailure::NotSent(send_error(e)))
    }
}

fn send_error(e: TransportError) -> Error {
    match e {
        TransportError::FrameTooLarge { len, max } => {
            Error::MessageTooLarge { size: usize::try_from(len).unwrap_or(usize::MAX), max }
        }
        other => Error::from(other),
    }
}

/// A call in flight: if its future is dropped (a timeout, or the caller gave
/// up), the waiter is removed and the daemon is told to cancel.
struct InFlight<'a> {
    connection: &'a ClientConnection,
    id: u64,
    sent: bool,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let removed = lock(&self.connection.pending).waiting.remove(&self.id).is_some();
        if removed && self.sent {
            // Best effort: the connection may be gone already.
            let _ = self.connection.writer.send(&Request::Cancel { id: self.id });
        }
    }
}

async fn read_responses(mut reader: MessageReader, pending: Arc<Mutex<Pending>>, writer: MessageWriter) {
    let reason = loop {
        match reader.recv::<Response>().await {
            Some(Ok(Response { id, reply })) => {
                let waiter = lock(&pending).waiting.remove(&id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Ok(reply));
                }
            }
            Some(Err(TransportError::Auth(e))) => break Error::Auth(e),
            Some(Err(e @ (TransportError::Malformed(_) | TransportError::FrameTooLarge { .. }))) => {
                break Error::Protocol(format!("the daemon sent {e}"));
            }
            Some(Err(e)) => break Error::ConnectionLost(e.to_string()),
            None => break Error::ConnectionLost("the daemon closed the connection".into()),
        }
    };
    writer.close();
    let waiters: Vec<Waiter> = {
        let mut pending = lock(&pending);
        pending.closed = Some(reason.clone());
        pending.waiting.drain().map(|(_, w)| w).collect()
    };
    for waiter in waiters {
        let _ = waiter.send(Err(reason.clone()));
    }
}
