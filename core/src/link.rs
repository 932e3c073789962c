//! A connection split for concurrent use: one task reads, any task writes.
//!
//! [`MessageReader`] belongs to the connection's reading task.
//! [`MessageWriter`] is a cheap `Clone` that any task sends through: a
//! message is encoded into the connection's queue under a short lock, then
//! either written at once in the sender's own task ([`MessageWriter::send`]:
//! no hop, for a call alone on its connection), or left to the
//! per-connection flusher task ([`MessageWriter::send_batched`]: for calls
//! that have company, so that every frame queued before the flusher runs
//! goes out in one vectored write). The flusher also takes over whenever the
//! socket is full, waiting for it to drain.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::Session;
use crate::frame::{FrameReader, FrameWriter, TransportError, Wire, decode_wire_frame};
use crate::net::{Connection, ReadHalf, WriteHalf};

/// Splits a connection whose handshake is done into its reader and writer.
/// Spawns the writer's flusher task, so it must run inside a tokio runtime.
pub fn split(
    connection: Connection,
    session: Option<Session>,
    max_message: usize,
) -> (MessageReader, MessageWriter) {
    let (sealer, opener) = session.map(Session::split).unzip();
    let (read, write) = connection.into_split();
    let reader = MessageReader { io: read, frames: FrameReader::new(max_message, opener), done: false };
    let wake = Arc::new(Notify::new());
    let closed = CancellationToken::new();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            frames: FrameWriter::new(max_message, sealer),
            flushing: false,
            failed: None,
        }),
        io: write,
        wake: wake.clone(),
        drained: Notify::new(),
        closed: closed.clone(),
    });
    tokio::spawn(flusher(Arc::downgrade(&shared), wake, closed));
    (reader, MessageWriter { shared })
}

/// The reading half: frames in, messages out.
#[derive(Debug)]
pub struct MessageReader {
    io: ReadHalf,
    frames: FrameReader,
    done: bool,
}

impl MessageReader {
    /// Whether the peer is known to have closed the connection (or the
    /// socket failed), from what the runtime has already seen: no system
    /// call. A caller about to reuse an idle connection checks it.
    pub fn peer_closed(&self) -> bool {
        if self.done {
            return true;
        }
        match self.io.ready_now() {
            Some(Ok(ready)) => ready.is_read_closed() || ready.is_error(),
            Some(Err(_)) => true,
            None => false,
        }
    }

    /// Whether another message is already (at least partly) here: more
    /// follow at once, so a sender can batch its answers.
    pub fn has_buffered(&self) -> bool {
        self.frames.has_buffered()
    }

    /// The next message; `None` once the peer closed cleanly or after an
    /// error was returned.
    pub async fn recv<T: Wire>(&mut self) -> Option<Result<T, TransportError>> {
        if self.done {
            return None;
        }
        let frame = poll_fn(|cx| self.frames.poll_frame(Pin::new(&mut self.io), cx)).await;
        let item = match frame {
            None => None,
            Some(Ok(payload)) => Some(decode_wire_frame(payload)),
            Some(Err(e)) => Some(Err(e)),
        };
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

/// The writing half, shared by every task that sends on the connection.
#[derive(Debug, Clone)]
pub struct MessageWriter {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    io: WriteHalf,
    /// Wakes the flusher when the socket filled up.
    wake: Arc<Notify>,
    /// Woken each time the flusher emptied the queue.
    drained: Notify,
    /// Cancelled when the connection is closed; stops the flusher.
    closed: CancellationToken,
}

#[derive(Debug)]
struct State {
    frames: FrameWriter,
    /// The flusher owns the socket until the queue is empty; senders only
    /// queue meanwhile, so that frames keep their order.
    flushing: bool,
    /// The first write error: the connection is broken for every sender.
    failed: Option<TransportError>,
}

/// How long a closed connection may take to deliver what was queued.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(10);

impl Shared {
    /// Writes the queue out, waiting for the socket as needed.
    async fn drain(&self) {
        loop {
            let done = {
                let mut state = self.lock();
                state.frames.try_flush(|bufs| self.io.try_write_vectored(bufs)).unwrap_or(true)
            };
            if done || self.io.writable().await.is_err() {
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queue half-written
        // (encoding either queues a whole frame or nothing), so a poisoned
        // lock is still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl MessageWriter {
    /// Encodes `message`, queues it, and writes what the socket takes now,
    /// in this task.
    ///
    /// # Errors
    ///
    /// [`TransportError::FrameTooLarge`] or [`TransportError::Encode`] for
    /// this message only (nothing was queued and the connection stays
    /// usable); the connection's write error once it is broken.
    pub fn send<T: Wire>(&self, message: &T) -> Result<(), TransportError> {
        self.queue(message, false)
    }

    /// Encodes `message` and queues it for the flusher, which writes every
    /// frame queued by then in one vectored write. Use it when other messages
    /// are likely to follow at once (other calls in flight).
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::send`].
    pub fn send_batched<T: Wire>(&self, message: &T) -> Result<(), TransportError> {
        self.queue(message, true)
    }

    fn queue<T: Wire>(&self, message: &T, batched: bool) -> Result<(), TransportError> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        if let Some(e) = &state.failed {
            return Err(e.clone());
        }
        state.frames.push_wire(message)?;
        if state.flushing {
            return Ok(());
        }
        if batched {
            state.flushing = true;
            shared.wake.notify_one();
            return Ok(());
        }
        match state.frames.try_flush(|bufs| shared.io.try_write_vectored(bufs)) {
            Ok(true) => Ok(()),
            Ok(false) => {
                state.flushing = true;
                shared.wake.notify_one();
                Ok(())
            }
            Err(e) => {
                let e = TransportError::from(e);
                state.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.shared.lock().frames.queued()
    }

    /// Waits while more than `limit` bytes are queued (backpressure for
    /// senders that do not wait for replies, such as oneway calls).
    pub async fn wait_below(&self, limit: usize) {
        loop {
            let drained = self.shared.drained.notified();
            {
                let state = self.shared.lock();
                if state.frames.queued() <= limit || state.failed.is_some() || !state.flushing {
                    return;
                }
            }
            drained.await;
        }
    }

    /// Closes the connection gracefully: later sends fail, and what is
    /// already queued is still delivered, now if the socket takes it, or by a
    /// lingering task (for at most [`LINGER`]) if it does not.
    pub fn close(&self) {
        let shared = &self.shared;
        let mut state = shared.lock();
        if state.failed.is_some() {
            return;
        }
        state.failed = Some(TransportError::from(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the connection was closed",
        )));
        let drained = state.frames.try_flush(|bufs| shared.io.try_write_vectored(bufs)).unwrap_or(true);
        drop(state);
        if drained {
            shared.closed.cancel();
            return;
        }
        let lingering = shared.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = tokio::time::timeout(LINGER, lingering.drain()).await;
                    lingering.closed.cancel();
                });
            }
            Err(_) => shared.closed.cancel(),
        }
    }

    /// Closes the connection at once, dropping what is queued: for a
    /// connection that is already broken.
    pub fn abort(&self) {
        let mut state = self.shared.lock();
        if state.failed.is_none() {
            state.failed = Some(TransportError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the connection was closed",
            )));
        }
        drop(state);
        self.shared.closed.cancel();
    }

    /// Whether sends fail because the connection broke or was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().failed.is_some()
    }
}

/// Writes the queue out whenever the socket was full, until the connection
/// closes or every writer is gone.
async fn flusher(shared: Weak<Shared>, wake: Arc<Notify>, closed: CancellationToken) {
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = closed.cancelled() => return,
        }
        let Some(shared) = shared.upgrade() else { return };
        loop {
            {
                let mut state = shared.lock();
                match state.frames.try_flush(|bufs| shared.io.try_write_vectored(bufs)) {
                    Ok(true) => {
                        state.flushing = false;
                        shared.drained.notify_waiters();
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        state.failed = Some(e.into());
                        state.flushing = false;
                        shared.drained.notify_waiters();
                        break;
                    }
                }
            }
            // The socket is full: wait until it drains.
            let writable = tokio::select! {
                r = shared.io.writable() => r,
                () = closed.cancelled() => return,
            };
            if let Err(e) = writable {
                let mut state = shared.lock();
                state.failed = Some(e.into());
                state.flushing = false;
                shared.drained.notify_waiters();
                break;
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Let the flusher end with the last writer.
        self.closed.cancel();
    }
}
