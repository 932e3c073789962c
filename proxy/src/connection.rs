//! One connection to a daemon, shared by every call a proxy (and its
//! clones) makes: many calls in flight, each matched to its response by id.
//!
//! A caller registers a waiter and writes its request itself: at once when
//! it is the only call in flight (no task hop), or batched with the others
//! through the connection's flusher. Then it waits, and the first waiting
//! caller reads the socket for everyone (leader and followers): it hands
//! other callers their responses until its own arrives, then passes the
//! reading on. A call alone on its connection is thus one task from request
//! to reply, like a hand-written client; when the connection breaks, the
//! reader fails every waiter at once with the reason, so no call hangs.

use rmi_core::tls::ClientTls;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures::future::AbortHandle;
use rmi_core::alarm::{self, Alarm, Ring};
use rmi_core::handshake::client_handshake;
use rmi_core::idmap::IdMap;
use rmi_core::link::{self, MessageReader, MessageWriter};
use rmi_core::net::Connection;
use rmi_core::peer::{Peer, Scope};
use rmi_core::{Call, Error, Inbound, Key, Location, Message, OutgoingCall, Reply, TransportError};

mod hosting;
mod streaming;

pub(crate) use streaming::CREDIT_EVERY;

/// Bytes of oneway calls that may wait in the queue before the caller waits
/// for the flusher.
const ONEWAY_QUEUE_LIMIT: usize = 256 * 1024;
/// Bytes of requests that may wait to be written on one connection; past
/// them a caller waits (within its deadline) before it queues its request,
/// so that a daemon that stops reading makes callers wait rather than the
/// queue grow.
pub const MAX_QUEUED_REQUESTS: usize = 4 * 1024 * 1024;
/// A connection idle for longer is checked for a closed peer before it is
/// used again (a daemon restart takes far longer than this).
const IDLE_CHECK_AFTER: Duration = Duration::from_millis(1);

/// How a call failed, and whether it may be retried on a new connection.
#[derive(Debug)]
pub(crate) enum CallFailure {
    /// Nothing was sent: retrying on a new connection is safe.
    NotSent(Error),
    /// The request went out; the daemon may have run it.
    Failed(Error),
}

/// Where a waiting call's reply is left for it.
#[derive(Debug)]
enum Slot {
    /// Not yet; the waker resumes the caller when it comes, or when its
    /// deadline passes (see [`ClientConnection::ring`]).
    Waiting(Option<Waker>, Option<u64>),
    /// Here it is.
    Done(Result<Reply, Error>),
    /// A call whose results stream: its chunks of items as they come, then
    /// its end (see `streaming`).
    Stream(Box<streaming::StreamSlot>),
}

#[derive(Debug, Default)]
struct Pending {
    next_id: u64,
    slots: IdMap<Slot>,
    /// Why the connection ended, once it did.
    closed: Option<Error>,
}

/// Leaves the task's waker in a call's slot (unless it is there already).
fn park(waker: &mut Option<Waker>, cx: &std::task::Context<'_>) {
    match waker {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *waker = Some(cx.waker().clone()),
    }
}

impl Pending {
    /// Why a call has no slot any more: the connection ended.
    fn reason(&self) -> Error {
        self.closed.clone().unwrap_or_else(|| Error::ConnectionLost("the connection closed".into()))
    }

    /// Leaves `outcome` for call `id`, waking its caller.
    fn deliver(&mut self, id: u64, outcome: Result<Reply, Error>) -> Option<Waker> {
        let slot = self.slots.get_mut(&id)?;
        let waker = match slot {
            Slot::Waiting(waker, _) => waker.take(),
            Slot::Done(_) => None,
            Slot::Stream(stream) => return stream.end(outcome),
        };
        *slot = Slot::Done(outcome);
        waker
    }
}

/// What a waiting caller may do next.
enum Turn<'a> {
    /// Its reply (or the reason there is none).
    Reply(Result<Reply, Error>),
    /// Read for everyone: nobody else is reading. With the count of
    /// expiries as of when the call's slot was seen still waiting.
    Read(futures::lock::MutexGuard<'a, MessageReader>, u64),
}

/// The reader, held by the caller reading for everyone; released when it is
/// done (or gives up), and then handed to a caller still waiting.
struct Leading<'a> {
    guard: Option<futures::lock::MutexGuard<'a, MessageReader>>,
    connection: &'a ClientConnection,
    /// The call whose reply the reader read for itself: its slot goes in
    /// the same look at the pending calls as the hand-off.
    answered: Option<u64>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.connection.hand_off(self.answered);
    }
}

/// A live connection to one daemon.
#[derive(Debug)]
pub(crate) struct ClientConnection {
    writer: MessageWriter,
    pending: Mutex<Pending>,
    /// Held by the caller currently reading for everyone (or, while this
    /// client exports objects, by its reading task: see `hosting`).
    reader: futures::lock::Mutex<MessageReader>,
    address: String,
    /// When a call last started on it, in alarm ticks.
    last_used: AtomicU64,
    /// What this client exports over the connection (objects it passed as
    /// references, called back by the daemon), and what it imported.
    peer: Arc<Peer>,
    /// The daemon's calls to this client's objects that are awaiting
    /// something, by the daemon's call id, to cancel them.
    hosted: Mutex<rmi_core::idmap::IdMap<AbortHandle>>,
    /// Whether the reading task runs.
    reading: AtomicBool,
    /// What replies from this connection decode in.
    scope: Scope,
    /// This connection, to hand to the tasks it starts.
    me: Weak<ClientConnection>,
    /// The connection as the context of the daemon's calls back names it.
    contexts: rmi_core::context::ConnectionContext,
    /// The credit the daemon grants this client's uploads.
    upload_credits: rmi_core::stream::Streams,
    /// Rings when a waiting call's deadline may have passed: calls are
    /// timed by it rather than by a tokio timer each.
    alarm: Alarm,
    /// How many times calls timed out here: the caller reading for
    /// everyone looks at its own call again when this moves.
    expiries: AtomicU64,
}

impl Drop for ClientConnection {
    fn drop(&mut self) {
        self.writer.close();
        self.peer.close();
    }
}

impl ClientConnection {
    /// Connects to `location` and runs the handshake, all within
    /// `connect_timeout`.
    pub(crate) async fn open(
        location: &Location,
        key: Option<&Key>,
        tls: Option<&ClientTls>,
        max_message: usize,
        connect_timeout: Duration,
    ) -> Result<Arc<Self>, Error> {
        let address = location.to_string();
        let connecting = async {
            let mut connection = Connection::connect(location)
                .await
                .map_err(|e| Error::Connect { address: address.clone(), source: Arc::new(e) })?;
            let failed = |e| match e {
                TransportError::Auth(a) => Error::Auth(a),
                TransportError::Tls(t) => Error::Tls(t),
                TransportError::Io(io) => Error::Connect { address: address.clone(), source: io },
                other => Error::Protocol(format!("handshake with {address} failed: {other}")),
            };
            if let Some(tls) = tls {
                connection = tls.connect(connection, location).await.map_err(failed)?;
            }
            let session = client_handshake(&mut connection, key).await.map_err(failed)?;
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
        let identity = connection.peer_identity().cloned();
        let (reader, writer) = link::split(connection, session, max_message);
        let peer = Peer::new();
        Ok(Arc::new_cyclic(|me: &Weak<ClientConnection>| ClientConnection {
            scope: Scope::weak(peer.clone(), &(me.clone() as Weak<dyn rmi_core::peer::Link>)),
            writer,
            pending: Mutex::new(Pending::default()),
            reader: futures::lock::Mutex::new(reader),
            address: address.clone(),
            last_used: AtomicU64::new(alarm::ticks(Instant::now())),
            peer,
            hosted: Mutex::default(),
            reading: AtomicBool::new(false),
            me: me.clone(),
            upload_credits: rmi_core::stream::Streams::default(),
            alarm: Alarm::new(me.clone() as Weak<dyn Ring>),
            expiries: AtomicU64::new(0),
            contexts: rmi_core::context::ConnectionContext::new(Some(Arc::new(
                rmi_core::context::ConnectionInfo {
                    id: next_connection_id(),
                    peer: address.clone(),
                    identity,
                },
            ))),
        }))
    }

    /// The scope replies from this connection decode in.
    pub(crate) fn scope(&self) -> Scope {
        self.scope.clone()
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // The map stays consistent at every step, so a poisoned lock is usable.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the connection has ended, as far as is known without a system
    /// call (the runtime records a peer's close as it happens). `now` saves
    /// the check on a connection in steady use.
    pub(crate) fn is_closed(&self, now: Instant) -> bool {
        self.is_closed_at(alarm::ticks(now))
    }

    /// As [`ClientConnection::is_closed`], `now` in alarm ticks; counts the
    /// connection used now.
    pub(crate) fn is_closed_at(&self, now: u64) -> bool {
        // A connection that ended has its writer closed first (`fail_all`):
        // one atomic load, not the pending calls' lock.
        if self.writer.is_closed() {
            return true;
        }
        let last = self.last_used.swap(now, Ordering::Relaxed);
        if now.saturating_sub(last) < alarm::ticks_of(IDLE_CHECK_AFTER) {
            return false;
        }
        // The reader is held until every call has been told: a caller that
        // took it in between would read on, its slot failed unbeknownst.
        let Some(reader) = self.reader.try_lock() else { return false };
        if !reader.peer_closed() {
            return false;
        }
        self.fail_all(Error::ConnectionLost("the daemon closed the connection".into()));
        drop(reader);
        true
    }

    /// Where the connection goes.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Sends the call in `pending_call` and waits for its reply until
    /// `deadline` (also in alarm ticks, `deadline_ticks`); `timeout` is what
    /// the deadline stands for, to report it, and `remaining` the time left
    /// now, for the daemon. A call that was not sent
    /// ([`CallFailure::NotSent`]) is left in `pending_call`, to be retried
    /// on a new connection without a copy.
    pub(crate) async fn send_call(
        &self,
        pending_call: &mut Option<Call>,
        deadline: Option<Instant>,
        deadline_ticks: Option<u64>,
        timeout: Option<Duration>,
        remaining: Option<Duration>,
    ) -> Result<Reply, CallFailure> {
        if self.writer.queued() > MAX_QUEUED_REQUESTS {
            // The daemon is not taking what was sent: wait for room.
            let room = self.writer.wait_below(MAX_QUEUED_REQUESTS);
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline.into(), room).await.is_err() {
                        return Err(CallFailure::Failed(Error::Timeout(timeout.unwrap_or_default())));
                    }
                }
                None => room.await,
            }
        }
        // The call is encoded where it lies and dropped there once sent: it
        // is large, and each move of it a copy. One not sent stays, for a
        // retry on a new connection.
        let Some(call) = pending_call.as_ref() else {
            return Err(CallFailure::Failed(Error::ConnectionLost("no call to send".into())));
        };
        let (id, in_flight) = self.open_slot(Slot::Waiting(None, deadline_ticks))?;
        if let Some(deadline) = deadline_ticks {
            self.alarm.ring_by_ticks(deadline);
        }
        let alone = in_flight == 1;
        let mut guard = InFlight { connection: self, id, sent: false, done: false };
        self.export(call.args.exports());
        let request = OutgoingCall { id, remaining, call };
        let sent = if alone { self.writer.send(&request) } else { self.writer.send_batched(&request) };
        if let Err(e) = sent {
            return Err(CallFailure::NotSent(send_error(e)));
        }
        *pending_call = None;
        guard.sent = true;
        match self.wait(id).await {
            Err(Error::Timeout(_)) => {
                // The alarm ended the wait and took the slot: the daemon is
                // told to cancel here (the guard then hands the reading on,
                // if this caller was woken to take it).
                let _ = self.writer.send(&Message::Cancel { id });
                Err(CallFailure::Failed(Error::Timeout(timeout.unwrap_or_default())))
            }
            outcome => {
                guard.done = true;
                outcome.map_err(CallFailure::Failed)
            }
        }
    }

    /// A fresh id for a call, with `slot` waiting for what comes back for
    /// it; and how many calls are in flight now, this one included.
    #[inline]
    fn open_slot(&self, slot: Slot) -> Result<(u64, usize), CallFailure> {
        let mut pending = self.pending();
        if let Some(reason) = &pending.closed {
            return Err(CallFailure::NotSent(reason.clone()));
        }
        let id = pending.next_id;
        pending.next_id = pending.next_id.wrapping_add(1);
        pending.slots.insert(id, slot);
        Ok((id, pending.slots.len()))
    }

    /// The reply for call `id`, once someone delivered it.
    async fn delivered(&self, id: u64) -> Result<Reply, Error> {
        poll_fn(|cx| {
            let mut pending = self.pending();
            match pending.slots.get_mut(&id) {
                Some(Slot::Waiting(waker, _)) => {
                    park(waker, cx);
                    Poll::Pending
                }
                Some(Slot::Done(_)) => match pending.slots.remove(&id) {
                    Some(Slot::Done(outcome)) => Poll::Ready(outcome),
                    _ => Poll::Pending,
                },
                Some(Slot::Stream(_)) => Poll::Ready(Err(not_a_stream())),
                None => Poll::Ready(Err(pending.reason())),
            }
        })
        .await
    }

    /// Waits for the reply to call `id`: delivered by whoever reads, or read
    /// by this caller when nobody else is reading.
    async fn wait(&self, id: u64) -> Result<Reply, Error> {
        let (guard, mut expiries) = match poll_fn(|cx| self.poll_turn(id, cx)).await {
            Turn::Reply(outcome) => return outcome,
            Turn::Read(guard, expiries) => (guard, expiries),
        };
        let mut leading = Leading { guard: Some(guard), connection: self, answered: None };
        // The slot was waiting when the reader was taken, and only the
        // reader delivers replies: it can only have changed since if a call
        // timed out, which the count of expiries shows, or if a message
        // other than a reply ended the connection.
        let mut look = false;
        loop {
            if look {
                expiries = self.expiries.load(Ordering::Acquire);
                // Our deadline may have passed.
                if matches!(self.pending().slots.get(&id), Some(Slot::Done(_))) {
                    drop(leading);
                    return self.delivered(id).await;
                }
            }
            let Some(reader) = leading.guard.as_mut() else { break };
            let next = poll_fn(|cx| {
                if self.expiries.load(Ordering::Acquire) != expiries {
                    // A call timed out: maybe ours.
                    return Poll::Ready(None);
                }
                reader.poll_recv::<Inbound>(cx).map(Some)
            })
            .await;
            let Some(next) = next else {
                look = true;
                continue;
            };
            match next {
                Some(Ok(Inbound::Reply { id: got, reply })) => {
                    if got == id {
                        leading.answered = Some(id);
                        return Ok(reply);
                    }
                    let waker = self.pending().deliver(got, Ok(reply));
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
                Some(Ok(Inbound::Other(other))) => {
                    self.incoming(*other);
                    // It may have ended every call, ours too (the daemon
                    // closing the connection with its reason).
                    look = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(self.fail_all(broken(e))),
                None => return Err(self.fail_all(closed_by_daemon())),
            }
        }
        Err(Error::ConnectionLost("the connection closed".into()))
    }

    /// Reads one message for everyone: a reply goes to its caller, anything
    /// else where it belongs (see `hosting`); a broken connection fails
    /// every call, and is the error.
    async fn read_one(&self, reader: &mut MessageReader) -> Result<(), Error> {
        match reader.recv::<Inbound>().await {
            Some(Ok(Inbound::Reply { id, reply })) => {
                let waker = self.pending().deliver(id, Ok(reply));
                if let Some(waker) = waker {
                    waker.wake();
                }
                Ok(())
            }
            Some(Ok(Inbound::Other(other))) => {
                self.incoming(*other);
                Ok(())
            }
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(self.fail_all(broken(e))),
            None => Err(self.fail_all(closed_by_daemon())),
        }
    }

    /// Whether call `id` has its reply, or may read for everyone now. The
    /// waker is left in the call's slot first, so that a reader handing over
    /// (see [`Leading`]) after our attempt to read failed still finds us.
    fn poll_turn(&self, id: u64, cx: &mut std::task::Context<'_>) -> Poll<Turn<'_>> {
        let mut pending = self.pending();
        match pending.slots.get_mut(&id) {
            Some(Slot::Waiting(waker, _)) => {
                park(waker, cx);
                match self.reader.try_lock() {
                    Some(guard) => Poll::Ready(Turn::Read(guard, self.expiries.load(Ordering::Acquire))),
                    None => Poll::Pending,
                }
            }
            Some(Slot::Done(_)) => match pending.slots.remove(&id) {
                Some(Slot::Done(outcome)) => Poll::Ready(Turn::Reply(outcome)),
                _ => Poll::Pending,
            },
            Some(Slot::Stream(_)) => Poll::Ready(Turn::Reply(Err(not_a_stream()))),
            None => Poll::Ready(Turn::Reply(Err(pending.reason()))),
        }
    }

    /// Ends the calls whose deadline passed with a timeout (the caller
    /// reports it), and sets the alarm for the next deadline.
    fn expire(&self) {
        let now = alarm::ticks(Instant::now());
        let (wakers, next): (Vec<Waker>, _) = {
            let mut pending = self.pending();
            let waiting = pending.slots.iter().map(|(id, slot)| match slot {
                Slot::Waiting(_, deadline) => (*id, *deadline),
                _ => (*id, None),
            });
            let (due, next) = alarm::due(waiting, now);
            let wakers = due
                .into_iter()
                .filter_map(|id| pending.deliver(id, Err(Error::Timeout(Duration::ZERO))))
                .collect();
            (wakers, next)
        };
        if let Some(next) = next {
            self.alarm.ring_by_ticks(next);
        }
        self.expiries.fetch_add(1, Ordering::AcqRel);
        for waker in wakers {
            waker.wake();
        }
    }

    /// Wakes one caller still waiting, to take over reading (the reader was
    /// just released); first forgets call `answered`, whose reply the
    /// reader took for itself.
    fn hand_off(&self, answered: Option<u64>) {
        let mut pending = self.pending();
        if let Some(id) = answered {
            pending.slots.remove(&id);
        }
        let waker = pending.slots.values().find_map(|slot| match slot {
            Slot::Waiting(Some(waker), _) => Some(waker.clone()),
            Slot::Stream(stream) => stream.waiting(),
            _ => None,
        });
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ends the connection for everyone with `reason`, and returns it.
    fn fail_all(&self, reason: Error) -> Error {
        self.writer.abort();
        self.peer.close();
        for (_, call) in self.hosted().drain() {
            call.abort();
        }
        let wakers: Vec<Waker> = {
            let mut pending = self.pending();
            pending.closed.get_or_insert_with(|| reason.clone());
            let ids: Vec<u64> = pending.slots.keys().copied().collect();
            ids.into_iter().filter_map(|id| pending.deliver(id, Err(reason.clone()))).collect()
        };
        for waker in wakers {
            waker.wake();
        }
        reason
    }

    /// Sends a oneway call: done once it is handed to the connection; waits
    /// only when many oneway calls are still queued.
    pub(crate) async fn send_oneway(&self, call: Call) -> Result<(), CallFailure> {
        if let Some(reason) = &self.pending().closed {
            return Err(CallFailure::NotSent(reason.clone()));
        }
        self.export(call.args.exports());
        self.writer
            .send_batched(&Message::call(0, None, call.oneway()))
            .map_err(|e| CallFailure::NotSent(send_error(e)))?;
        self.writer.wait_below(ONEWAY_QUEUE_LIMIT).await;
        Ok(())
    }
}

impl Ring for ClientConnection {
    fn ring(&self) {
        self.expire();
    }
}

/// A fresh id for a client's connection: 1, 2, 3… in the order this
/// process opens them.
fn next_connection_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed) + 1
}

/// What a broken connection means to its callers.
fn broken(e: TransportError) -> Error {
    match e {
        TransportError::Auth(a) => Error::Auth(a),
        e @ (TransportError::Malformed(_) | TransportError::FrameTooLarge { .. }) => {
            Error::Protocol(format!("the daemon sent {e}"))
        }
        e => Error::ConnectionLost(e.to_string()),
    }
}

/// A call waited on as one reply has a stream's slot: ids never mix, so
/// this is a bug, reported rather than hung on.
#[cold]
fn not_a_stream() -> Error {
    Error::Protocol("a call's reply was awaited on a streaming call's id".into())
}

fn closed_by_daemon() -> Error {
    Error::ConnectionLost("the daemon closed the connection".into())
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
        let removed = self.connection.pending().slots.remove(&self.id).is_some();
        if removed && self.sent {
            // Best effort: the connection may be gone already.
            let _ = self.connection.writer.send(&Message::Cancel { id: self.id });
        }
        // This caller may have been the one woken to take over reading.
        if self.connection.reader.try_lock().is_some() {
            self.connection.hand_off(None);
        }
    }
}
