//! A connection split for concurrent use: one task reads, any task writes.
//!
//! [`MessageReader`] belongs to the connection's reading task.
//! [`MessageWriter`] is a cheap `Clone` that any task sends through: a
//! message is encoded into the connection's queue under a short lock, then
//! either written at once in the sender's own task ([`MessageWriter::send`]:
//! no hop, for a call alone on its connection), or left to the
//! per-connection flusher task ([`MessageWriter::send_batched`]: for calls
//! that have company, so that every frame queued before the flusher runs
//! goes out in one vectored write: on a multi-thread runtime, woken, it
//! yields once first, so that the tasks running or ready queue theirs
//! before it writes). The flusher also takes over whenever the socket is full,
//! waiting for it to drain.
//!
//! What a writer holds is visible without its lock ([`MessageWriter::queued`])
//! and may be counted in a [`QueueBudget`] shared with other connections, so
//! that a server can stop making replies for peers that do not read them.
//! With a write timeout ([`LinkOptions::write_timeout`]), a peer that takes
//! none of the waiting bytes for that long has its connection shut down,
//! both ways: the queue is dropped, and the reading side sees the end.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::Session;
use crate::frame::{
    Encode, FrameReader, FrameWriter, TransportError, Wire, decode_wire_frame, decode_wire_frame_into,
};
use crate::net::{Connection, ReadHalf, WriteHalf};

mod budget;

pub use budget::QueueBudget;

/// How a link's writer bounds what it holds.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    max_message: usize,
    write_timeout: Option<Duration>,
    budget: Option<Arc<QueueBudget>>,
}

impl LinkOptions {
    /// Messages over `max_message` bytes are refused both ways; no write
    /// timeout, no shared budget.
    pub fn new(max_message: usize) -> Self {
        LinkOptions { max_message, write_timeout: None, budget: None }
    }

    /// Shuts the connection down when the peer takes none of the bytes
    /// waiting for it for `timeout` (`None`, the default: never). A peer that
    /// reads slowly but steadily is not cut off; one that stopped reading is.
    #[must_use]
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Counts the bytes queued and not yet written in `budget`.
    #[must_use]
    pub fn budget(mut self, budget: Arc<QueueBudget>) -> Self {
        self.budget = Some(budget);
        self
    }
}

/// Splits a connection whose handshake is done into its reader and writer.
/// Spawns the writer's flusher task, so it must run inside a tokio runtime.
pub fn split(
    connection: Connection,
    session: Option<Session>,
    max_message: usize,
) -> (MessageReader, MessageWriter) {
    split_with(connection, session, LinkOptions::new(max_message))
}

/// As [`split`], with the writer's bounds in `options`.
pub fn split_with(
    connection: Connection,
    session: Option<Session>,
    options: LinkOptions,
) -> (MessageReader, MessageWriter) {
    let LinkOptions { max_message, write_timeout, budget } = options;
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
            counted: 0,
        }),
        io: write,
        queued: AtomicUsize::new(0),
        budget,
        write_timeout,
        wake: wake.clone(),
        drained: Notify::new(),
        closed: closed.clone(),
        broken: AtomicBool::new(false),
    });
    // On a current-thread runtime the flusher, woken, already runs after
    // every task that is ready: it has no need to yield.
    let yields =
        tokio::runtime::Handle::current().runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread;
    tokio::spawn(flusher(Arc::downgrade(&shared), wake, closed, yields));
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
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for [`MessageReader::recv`]'s message: for a caller that polls
    /// it among other things, without a future of its own to keep (what was
    /// read so far stays in the reader).
    #[inline]
    pub fn poll_recv<T: Wire>(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, TransportError>>> {
        Poll::Ready(Some(match ready!(self.poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Ok(frame)) => self.decode(frame),
            Some(Err(e)) => Err(e),
        }))
    }

    /// The next frame, not decoded yet ([`MessageReader::decode`] decodes
    /// it); `None` as for [`MessageReader::recv`]. A loop that waits for
    /// other things too (in a `select!`) moves this small frame through
    /// its branches rather than the message it holds.
    pub async fn frame(&mut self) -> Option<Result<Frame, TransportError>> {
        poll_fn(|cx| self.poll_frame(cx)).await
    }

    /// Polls for [`MessageReader::frame`]'s frame, as
    /// [`MessageReader::poll_recv`] for a message.
    #[inline]
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame, TransportError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let frame = ready!(self.frames.poll_frame(Pin::new(&mut self.io), cx));
        self.done = !matches!(frame, Some(Ok(_)));
        Poll::Ready(frame.map(|f| f.map(Frame)))
    }

    /// Decodes a frame [`MessageReader::frame`] returned; after an error,
    /// the reader returns no more.
    ///
    /// # Errors
    ///
    /// [`TransportError::Malformed`] for a frame that holds no valid message.
    pub fn decode<T: Wire>(&mut self, frame: Frame) -> Result<T, TransportError> {
        let decoded = decode_wire_frame(frame.0);
        self.done |= decoded.is_err();
        decoded
    }

    /// As [`MessageReader::decode`], into `out`, which holds `None` on an
    /// error: a loop that keeps the message where it lies saves moving a
    /// large one (see [`Wire::decode_into`]).
    ///
    /// # Errors
    ///
    /// As [`MessageReader::decode`].
    #[inline]
    pub fn decode_into<T: Wire>(&mut self, frame: Frame, out: &mut Option<T>) -> Result<(), TransportError> {
        let decoded = decode_wire_frame_into(frame.0, out);
        self.done |= decoded.is_err();
        decoded
    }
}

/// A frame read and not decoded yet (see [`MessageReader::frame`]).
#[derive(Debug)]
pub struct Frame(Bytes);

/// The writing half, shared by every task that sends on the connection.
#[derive(Debug, Clone)]
pub struct MessageWriter {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    io: WriteHalf,
    /// Bytes queued and not yet written, as of the last change: read without
    /// the lock.
    queued: AtomicUsize,
    /// Where the queued bytes are counted with other connections'.
    budget: Option<Arc<QueueBudget>>,
    /// How long the peer may take none of the waiting bytes.
    write_timeout: Option<Duration>,
    /// Wakes the flusher when the socket filled up.
    wake: Arc<Notify>,
    /// Woken each time the flusher wrote some of the queue, emptied it, or
    /// gave up on it.
    drained: Notify,
    /// Cancelled when the connection is closed; stops the flusher.
    closed: CancellationToken,
    /// Whether `State::failed` is set, read without the lock (a proxy asks
    /// before every call).
    broken: AtomicBool,
}

#[derive(Debug)]
struct State {
    frames: FrameWriter,
    /// The flusher owns the socket until the queue is empty; senders only
    /// queue meanwhile, so that frames keep their order.
    flushing: bool,
    /// The first write error: the connection is broken for every sender.
    failed: Option<TransportError>,
    /// The queued bytes as last published (in `Shared::queued` and the
    /// budget).
    counted: usize,
}

/// How long a closed connection may take to deliver what was queued.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(10);

impl Shared {
    /// What the connection holds for the peer: the queue, and under TLS
    /// the records encrypted and not yet taken by the socket.
    #[inline]
    fn held(&self, state: &State) -> usize {
        state.frames.queued() + self.io.pending_bytes()
    }

    /// Writes what the socket takes now: whether everything went (with TLS,
    /// the records under the queue too).
    #[inline]
    fn write_now(&self, state: &mut State) -> std::io::Result<bool> {
        if state.frames.try_flush(|bufs| self.io.try_write_vectored(bufs))? {
            self.io.flush_pending()
        } else {
            Ok(false)
        }
    }

    /// Writes the queue out, waiting for the socket as needed.
    async fn drain(&self) {
        loop {
            let done = {
                let mut state = self.lock();
                let done = self.write_now(&mut state).unwrap_or(true);
                self.settle(&mut state);
                done
            };
            if done || self.io.writable().await.is_err() {
                return;
            }
        }
    }

    /// Publishes the queue's size, to readers without the lock and to the
    /// budget, if it changed (on the common path, a write that took
    /// everything, it did not).
    #[inline]
    fn settle(&self, state: &mut State) {
        let now = self.held(state);
        if now != state.counted {
            self.publish(state, now);
        }
    }

    #[cold]
    fn publish(&self, state: &mut State, now: usize) {
        let before = std::mem::replace(&mut state.counted, now);
        self.queued.store(now, Ordering::Relaxed);
        if let Some(budget) = &self.budget {
            if now > before {
                budget.add(now - before);
            } else {
                budget.release(before - now);
            }
        }
    }

    /// Breaks the connection for every sender with `e`, dropping the queue.
    #[cold]
    fn fail(&self, state: &mut State, e: TransportError) {
        self.set_failed(state, e);
        state.flushing = false;
        state.frames.discard();
        self.settle(state);
        self.drained.notify_waiters();
    }

    /// Records the first reason sends fail, and says so to `is_closed`
    /// (which reads `broken`, not the lock).
    fn set_failed(&self, state: &mut State, e: TransportError) {
        state.failed.get_or_insert(e);
        self.broken.store(true, Ordering::Release);
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
    pub fn send<T: Encode>(&self, message: &T) -> Result<(), TransportError> {
        self.queue(message, false)
    }

    /// Encodes `message` and queues it for the flusher, which writes every
    /// frame queued by then in one vectored write. Use it when other messages
    /// are likely to follow at once (other calls in flight).
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::send`].
    pub fn send_batched<T: Encode>(&self, message: &T) -> Result<(), TransportError> {
        self.queue(message, true)
    }

    fn queue<T: Encode>(&self, message: &T, batched: bool) -> Result<(), TransportError> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        if let Some(e) = &state.failed {
            return Err(e.clone());
        }
        state.frames.push_wire(message)?;
        if state.flushing {
            shared.settle(&mut state);
            return Ok(());
        }
        if batched {
            state.flushing = true;
            shared.settle(&mut state);
            shared.wake.notify_one();
            return Ok(());
        }
        match shared.write_now(&mut state) {
            Ok(true) => {
                shared.settle(&mut state);
                Ok(())
            }
            Ok(false) => {
                state.flushing = true;
                shared.settle(&mut state);
                shared.wake.notify_one();
                Ok(())
            }
            Err(e) => {
                let e = TransportError::from(e);
                shared.fail(&mut state, e.clone());
                Err(e)
            }
        }
    }

    /// Bytes queued and not yet written, as of the last change (no lock).
    #[inline]
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Waits while more than `limit` bytes are queued: backpressure for
    /// senders, so that a peer that does not read makes them wait rather
    /// than the queue grow. Returns at once when the connection is broken
    /// (the next send says why).
    pub async fn wait_below(&self, limit: usize) {
        if self.queued() <= limit {
            return;
        }
        loop {
            let drained = self.shared.drained.notified();
            {
                let state = self.shared.lock();
                if self.shared.held(&state) <= limit || state.failed.is_some() || !state.flushing {
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
        let closed = TransportError::from(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the connection was closed",
        ));
        shared.set_failed(&mut state, closed);
        let drained = shared.write_now(&mut state).unwrap_or(true);
        shared.settle(&mut state);
        drop(state);
        if drained {
            // Under TLS, the end said in TLS, after the last frame.
            shared.io.close_notify();
            shared.closed.cancel();
            return;
        }
        let lingering = shared.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if tokio::time::timeout(LINGER, lingering.drain()).await.is_ok() {
                        lingering.io.close_notify();
                    }
                    let mut state = lingering.lock();
                    state.frames.discard();
                    lingering.settle(&mut state);
                    drop(state);
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
        let closed = TransportError::from(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the connection was closed",
        ));
        self.shared.fail(&mut state, closed);
        drop(state);
        self.shared.closed.cancel();
    }

    /// Whether sends fail because the connection broke or was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.broken.load(Ordering::Acquire)
    }
}

/// Writes the queue out whenever the socket was full, until the connection
/// closes or every writer is gone; shuts the connection down when the peer
/// takes nothing for the write timeout.
///
/// With `yields` (a multi-thread runtime), it yields once when woken, before
/// it writes: the task that woke it would otherwise hand it its worker at
/// once (tokio's LIFO slot), and every frame would go out in a write of its
/// own. Yielded, it runs once the worker has run what is ready (or at the
/// worker's next maintenance, 61 polls on), and writes what they queued.
async fn flusher(shared: Weak<Shared>, wake: Arc<Notify>, closed: CancellationToken, yields: bool) {
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = closed.cancelled() => return,
        }
        if yields {
            tokio::task::yield_now().await;
        }
        let Some(shared) = shared.upgrade() else { return };
        let mut progress = Instant::now();
        loop {
            {
                let mut state = shared.lock();
                let before = shared.held(&state);
                match shared.write_now(&mut state) {
                    Ok(true) => {
                        state.flushing = false;
                        shared.settle(&mut state);
                        shared.drained.notify_waiters();
                        break;
                    }
                    Ok(false) => {
                        if shared.held(&state) < before {
                            progress = Instant::now();
                            shared.settle(&mut state);
                            shared.drained.notify_waiters();
                        }
                    }
                    Err(e) => {
                        shared.fail(&mut state, e.into());
                        break;
                    }
                }
            }
            // The socket is full: wait until it drains.
            let stalled = async {
                match shared.write_timeout {
                    Some(timeout) => tokio::time::sleep_until((progress + timeout).into()).await,
                    None => std::future::pending().await,
                }
            };
            let writable = tokio::select! {
                r = shared.io.writable() => r,
                () = closed.cancelled() => return,
                () = stalled => {
                    shared.time_out();
                    return;
                }
            };
            if let Err(e) = writable {
                let mut state = shared.lock();
                shared.fail(&mut state, e.into());
                break;
            }
        }
    }
}

impl Shared {
    /// The peer took nothing for the write timeout: drop the queue and shut
    /// the connection down both ways, so that its reader sees the end too.
    fn time_out(&self) {
        let timeout = self.write_timeout.unwrap_or_default();
        let mut state = self.lock();
        let waiting = self.held(&state);
        let e = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the peer took none of the {waiting} bytes waiting for it for {timeout:?} (the write timeout)"
            ),
        );
        tracing::info!("closing a connection: {e}");
        self.fail(&mut state, e.into());
        drop(state);
        self.io.shutdown();
        self.closed.cancel();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Let the flusher end with the last writer.
        self.closed.cancel();
        // What is still queued will never be written: uncount it.
        if let Some(budget) = &self.budget {
            let state = self.state.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
            budget.release(std::mem::take(&mut state.counted));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::message::Message;
    use crate::net::{Connection, Listener};

    /// A linked pair on loopback: the accepted end's halves, and the
    /// connecting end's.
    async fn pair()
    -> ((super::MessageReader, super::MessageWriter), (super::MessageReader, super::MessageWriter)) {
        let listener = Listener::bind_tcp("127.0.0.1:0").await.unwrap();
        let location = listener.location().unwrap();
        let (accepted, connected) = tokio::join!(listener.accept(), Connection::connect(&location));
        (super::split(accepted.unwrap(), None, 1 << 20), super::split(connected.unwrap(), None, 1 << 20))
    }

    #[tokio::test]
    async fn a_writer_is_closed_once_closed_gracefully_or_aborted() {
        let ((_r1, closed), (mut peer, aborted)) = pair().await;
        assert!(!closed.is_closed() && !aborted.is_closed());
        closed.send(&Message::Cancel { id: 7 }).unwrap();
        closed.close();
        assert!(closed.is_closed(), "closed gracefully");
        assert!(closed.send(&Message::Cancel { id: 8 }).is_err());
        // What was queued before the close still arrives.
        assert_eq!(peer.recv::<Message>().await.unwrap().unwrap(), Message::Cancel { id: 7 });
        aborted.abort();
        assert!(aborted.is_closed(), "aborted");
    }
}
