//! One client connection: its handshake, its reading loop, and its calls.
//!
//! The loop reads requests and starts each call as flow control allows
//! (see `flow`): at once while the connection and the daemon have room for
//! its reply, otherwise it is held, in order, until they do, while the loop
//! goes on reading, so that a `Cancel` still aborts its call at once. Calls
//! run concurrently, so a slow call holds up no other and a method may call
//! another daemon that calls back into this one: every call starts where it
//! was read (its arguments decoded, the hooks asked); an `async` method's
//! future then runs on a worker of the connection (see `workers`); a
//! synchronous method that may block runs on tokio's blocking pool; a
//! `#[nonblocking]` one runs to its end on the reading task, on any runtime
//! (a worker would buy it a hop that costs more than the call: measured on
//! a multi-thread runtime, 64 calls in flight on one connection go faster
//! here than spread over its workers; other connections' calls still run on
//! the other workers). Such a method holds up the reading of its
//! connection, its cancels included, while it runs: that is what
//! `#[nonblocking]` promises is short. Each call writes its own
//! reply through the shared writer. A client that goes
//! away, or that takes none of its replies for the write timeout, takes its
//! calls in flight with it (oneway calls run on).

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::future::{AbortHandle, AbortRegistration, Abortable};
use rmi_core::alarm::{Alarm, Bell, Ring};
use rmi_core::context::{CallContext, ConnectionContext, ConnectionInfo};
use rmi_core::handshake::{Greeting, server_greeting};
use rmi_core::idmap::IdMap;
use rmi_core::link::{self, Frame, LinkOptions, MessageWriter};
use rmi_core::message::deadline_from;
use rmi_core::net::Connection;
use rmi_core::object::{BlockingCall, Exposed, ReplyFuture};
use rmi_core::wake::Dormant;
use rmi_core::{Call, Message, OutgoingReply, RemoteError, RemoteErrorKind, Reply, Text, TransportError};
use tokio_util::task::TaskTracker;

use crate::callbacks::Callbacks;
use crate::flow::{Flow, Held, HeldCall, Ticket};
use crate::hooks::{Hooks, Traced};
use crate::registry::Registry;
use crate::state::Inner;
use crate::workers::Pool;
use rmi_core::invoke::{Started, complete, finish, run_blocking, start_as};
use rmi_core::peer::{Peer, Scope, export_not_found, parse_export_object_id};
use rmi_core::stream::{Source, Streams, Uploads};

/// A call handed to a worker: it was started on the reading task, and the
/// worker runs its future (an `async` method's) to its end. It is
/// registered for cancelling before it is handed over, so that a `Cancel`
/// read before the worker first polls it still aborts it.
struct Job {
    id: u64,
    method: Text,
    future: ReplyFuture,
    context: CallContext,
    ticket: Ticket,
    registration: AbortRegistration,
}

/// What a connection's tasks share.
struct Shared {
    writer: MessageWriter,
    /// Calls that are awaiting something, by id, to cancel them. (A
    /// synchronous method runs to its end in one go; there is nothing to
    /// cancel, so it is not registered.)
    calls: Mutex<IdMap<AbortHandle>>,
    /// When another call may start.
    flow: Flow,
    pool: Pool<Job>,
    /// Every task running a call of this connection: its workers and its
    /// calls on the blocking pool.
    tasks: TaskTracker,
    /// What the daemon exported over this connection (references it passed
    /// the client), and imported from it (the client's callbacks).
    peer: Arc<Peer>,
    /// The daemon's own calls to the client's objects.
    callbacks: Arc<Callbacks>,
    /// What references in this connection's calls decode in.
    scope: Scope,
    /// The streams its methods return, in flight.
    streams: Streams,
    /// The uploads its calls carry, in flight.
    uploads: Uploads,
    /// The connection, as its calls' context names it.
    info: Arc<ConnectionInfo>,
    /// The daemon's hooks, if it has any.
    hooks: Option<Arc<dyn Hooks>>,
    /// Its calls' contexts' shared part.
    contexts: ConnectionContext,
    /// Bytes that may wait in the writer before a stream waits to send.
    max_queued: usize,
}

impl Shared {
    fn calls(&self) -> MutexGuard<'_, IdMap<AbortHandle>> {
        // Insertions and removals leave the map whole; a poisoned lock is usable.
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn abort_all(&self) {
        for (_, call) in self.calls().drain() {
            call.abort();
        }
    }

    async fn run_job(self: &Arc<Self>, job: Job) {
        let Job { id, method, future, context, ticket, registration } = job;
        let finished = Abortable::new(context.scope(finish(&method, future)), registration).await;
        self.calls().remove(&id);
        match finished {
            Ok(reply) => self.complete(id, ticket, reply),
            // Cancelled: the caller gave up and reads no reply.
            Err(_) => {
                self.flow.finish(ticket, None);
            }
        }
    }

    /// Produces the stream a call returned, to its end or its cancel; the
    /// call holds its ticket until then.
    async fn stream(
        self: Arc<Self>,
        id: u64,
        source: Source,
        ticket: Ticket,
        traced: Option<Traced>,
        context: CallContext,
    ) {
        let (abort, registration) = AbortHandle::new_pair();
        self.calls().insert(id, abort);
        // The producer runs in its call's context (its peer, its
        // correlation id), as the method did.
        let export = |exports: &rmi_core::exports::Exports| {
            self.peer.export(exports);
        };
        let produce = context.scope(self.streams.produce(id, source, &self.writer, &export, self.max_queued));
        let produced = Abortable::new(produce, registration)
            .await
            .map(|end| end.and_then(|()| rmi_core::object::encode_return(&())));
        self.calls().remove(&id);
        match produced {
            Ok(end) => {
                if let Some(traced) = traced {
                    traced.ended(&end);
                }
                self.complete(id, ticket, end);
            }
            // Cancelled (the caller dropped its stream), or ended by the
            // daemon's shutdown, which sent the end itself.
            Err(_) => {
                self.flow.finish(ticket, None);
            }
        }
    }

    /// Starts a call of `object` (see [`start_call`]).
    #[inline]
    fn start_call(
        &self,
        id: u64,
        object: Arc<dyn Exposed>,
        call: &mut Call,
        context: &mut CallContext,
        now: Option<Instant>,
        traced: &mut Option<Traced>,
    ) -> Started {
        start_call(&self.scope, self.hooks.as_ref(), &self.info, (id, object, call), context, now, traced)
    }

    /// Ends the streams in flight: the daemon is shutting down, and their
    /// callers hear it at once rather than when the grace runs out.
    fn end_streams(&self) {
        for id in self.streams.ids() {
            let Some(call) = self.calls().remove(&id) else { continue };
            call.abort();
            let error = RemoteError::new(
                RemoteErrorKind::ShuttingDown,
                "the daemon is shutting down: the stream ends",
            );
            self.reply(id, Err(error), true);
        }
    }

    /// Runs a call that may block on the blocking pool; it sends its own
    /// reply from there.
    fn run_blocking(
        self: &Arc<Self>,
        id: u64,
        method: Text,
        call: BlockingCall,
        context: CallContext,
        ticket: Ticket,
    ) {
        let shared = self.clone();
        self.tasks.spawn_blocking(move || {
            let reply = run_blocking(&method, call, context);
            shared.complete(id, ticket, reply);
        });
    }

    /// Sends a finished call's reply, then counts the call finished (so that
    /// the reply is in the queue before the room it held is given back).
    /// With other calls in flight, more replies follow: the flusher writes
    /// them together.
    fn complete(&self, id: u64, ticket: Ticket, reply: Reply) {
        let size = reply.as_ref().map_or(64, rmi_core::Encoded::wire_len);
        let others = self.flow.in_flight() > 1;
        self.reply(id, reply, others);
        self.flow.finish(ticket, Some(size));
    }

    /// Sends a reply: the references it passes are exported over this
    /// connection first.
    #[inline]
    fn reply(&self, id: u64, reply: Reply, batched: bool) {
        if let Ok(value) = &reply {
            self.peer.export(value.exports());
        }
        send_reply(&self.writer, id, reply, batched);
    }
}

/// Aborts the connection's calls in flight when dropped: when the client
/// went away, or when the daemon abandons the connection after its shutdown
/// grace.
struct AbortOnDrop(Arc<Shared>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort_all();
    }
}

/// A worker: runs its first job, then whatever the pool hands it.
async fn worker(shared: Arc<Shared>, first: Job) {
    let id = shared.pool.enlist();
    let mut job = Some(first);
    while let Some(next) = job.take() {
        shared.run_job(next).await;
        job = shared.pool.next(id).await;
    }
}

/// The last object this connection called, kept while the registry does
/// not change: most connections call one object over and over.
#[derive(Default)]
struct LastObject(Option<(String, u64, Arc<dyn Exposed>)>);

impl LastObject {
    fn get(&mut self, registry: &Registry, id: &Text) -> Option<Arc<dyn Exposed>> {
        let generation = registry.generation();
        if let Some((cached, at, object)) = &self.0
            && id == cached.as_str()
            && *at == generation
        {
            return Some(object.clone());
        }
        let id = id.as_str();
        let object = registry.get(id)?;
        self.0 = Some((id.to_owned(), generation, object.clone()));
        Some(object)
    }
}

/// Runs TLS's handshake when the daemon has TLS, then rmi's.
async fn open(
    mut connection: Connection,
    options: &crate::state::Options,
) -> Result<(Connection, Greeting), TransportError> {
    if let Ok(Some(tls)) = &options.tls {
        connection = tls.accept(connection).await?;
    }
    let pyro5 = options.pyro5 != rmi_core::config::Pyro5Mode::Off;
    let greeting = server_greeting(&mut connection, options.key.as_ref(), pyro5).await?;
    Ok((connection, greeting))
}

/// Hands a connection that named a channel to the channel's service, once
/// the daemon's `validate` hook accepts it.
fn serve_channel(
    daemon: &Arc<Inner>,
    connection: Connection,
    session: Option<rmi_core::auth::Session>,
    name: String,
    peer: String,
) {
    let Some(serve) = daemon.channels.get(&name).map(|c| c.value().clone()) else {
        tracing::info!(%peer, "closed a connection to the unknown channel {name:?}");
        return;
    };
    let identity = connection.peer_identity().cloned();
    let info = Arc::new(ConnectionInfo { id: daemon.next_connection_id(), peer: peer.clone(), identity });
    if let Some(hooks) = &daemon.options.hooks
        && let Err(reason) = hooks.0.validate(&info)
    {
        tracing::info!(%peer, "refused a connection to channel {name:?}: {reason}");
        return;
    }
    tracing::debug!(%peer, "connection to channel {name:?}");
    (serve.0)(crate::Channel {
        connection,
        session,
        max_message_size: daemon.options.max_message_size,
        info,
        shutdown: daemon.shutdown.child_token(),
    });
}

/// Serves one accepted connection until it closes or the daemon shuts down.
pub(crate) async fn serve(daemon: Arc<Inner>, connection: Connection) {
    let peer = connection.peer();
    let options = &daemon.options;
    let handshake = open(connection, options);
    let (connection, session) = match tokio::time::timeout(options.handshake_timeout, handshake).await {
        Ok(Ok((connection, Greeting::Rmi(session)))) => (connection, session),
        Ok(Ok((connection, Greeting::Channel { session, name }))) => {
            return serve_channel(&daemon, connection, session, name, peer);
        }
        Ok(Ok((connection, Greeting::Pyro5))) => {
            let identity = connection.peer_identity().cloned();
            let info = Arc::new(ConnectionInfo { id: daemon.next_connection_id(), peer, identity });
            return crate::pyro5::serve(daemon, connection, info).await;
        }
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
    let link = LinkOptions::new(options.max_message_size)
        .write_timeout(options.write_timeout)
        .budget(daemon.output.clone());
    let identity = connection.peer_identity().cloned();
    let (mut reader, writer) = link::split_with(connection, session, link);
    let info = Arc::new(ConnectionInfo { id: daemon.next_connection_id(), peer: peer.clone(), identity });
    if let Some(hooks) = &options.hooks {
        if let Err(reason) = hooks.0.validate(&info) {
            tracing::info!(%peer, "refused a connection: {reason}");
            refuse(&mut reader, &writer, &reason).await;
            return;
        }
        hooks.0.connected(&info);
    }
    let space = Peer::new();
    daemon.add_peer(&space);
    let callbacks = Callbacks::new(writer.clone(), space.clone(), peer.clone());
    let scope = Scope::new(space.clone(), callbacks.clone());
    let shared = Arc::new(Shared {
        writer,
        peer: space,
        callbacks,
        scope,
        calls: Mutex::default(),
        flow: Flow::new(
            options.max_calls_per_connection,
            options.max_queued_per_connection,
            daemon.output.clone(),
        ),
        pool: Pool::new(),
        tasks: TaskTracker::new(),
        streams: Streams::default(),
        uploads: Uploads::default(),
        max_queued: options.max_queued_per_connection,
        contexts: ConnectionContext::new(Some(info.clone())),
        info: info.clone(),
        hooks: options.hooks.as_ref().map(|h| h.0.clone()),
    });
    let abort_calls = AbortOnDrop(shared.clone());
    let mut starter = Starter { daemon: &daemon, shared: &shared, last: LastObject::default() };
    let mut held = Held::default();
    let idle_timeout = options.idle_timeout;
    // The idle time is kept by an alarm, not a tokio timer: a timer in the
    // runtime's wheel costs every park of the runtime a search of the wheel.
    let bell = Arc::new(Bell::default());
    let alarm = Alarm::new(Arc::downgrade(&bell) as Weak<dyn Ring>);
    let mut idle = idle_timeout.map(|timeout| Idleness::new(timeout, Instant::now()));
    if let Some(first) = idle.as_ref().and_then(Idleness::first_look) {
        alarm.ring_by(first);
    }
    let mut bell_waker = None;
    // Shutdown is dormant: polled only when it woke, so that a wake for the
    // next request does not poll it (a cancellation token takes a lock).
    let mut shutdown = Dormant::new(daemon.shutdown.clone().cancelled_owned());
    let shut_down = loop {
        if !held.is_empty() && shared.writer.is_closed() {
            // The write timeout gave up on the client: its held calls are
            // not to start.
            break false;
        }
        // Start the held calls there is room for now, in order.
        while !held.is_empty() {
            let Some(ticket) = shared.flow.try_start(shared.writer.queued()) else { break };
            let Some(call) = held.pop() else {
                shared.flow.finish(ticket, None);
                break;
            };
            let more = !held.is_empty() || reader.has_buffered();
            starter.begin(call, ticket, more, None);
        }
        // Read on while there is room for held calls, so that cancels act
        // at once; past it, TCP carries the backpressure.
        // Replies to the daemon's own calls (callbacks) are read even past
        // the held calls' bound, within a larger one.
        let readable = held.has_room() || (shared.callbacks.waiting() && held.has_room_for_replies());
        // What woke the connection, polled in order: the dormant branches
        // cost next to nothing until they wake. The frame, not the message,
        // comes out of it: a message is large, and each move a copy. (A
        // `select!` did the same at more cost: a future per branch.)
        let woke = {
            let mut room = std::pin::pin!((!held.is_empty()).then(|| shared.flow.room(&shared.writer)));
            std::future::poll_fn(|cx| {
                if shutdown.poll_woken(cx).is_ready() {
                    return Poll::Ready(Woke::Shutdown);
                }
                if readable && let Poll::Ready(frame) = reader.poll_frame(cx) {
                    return Poll::Ready(Woke::Frame(frame));
                }
                if let Some(room) = room.as_mut().as_pin_mut()
                    && room.poll(cx).is_ready()
                {
                    return Poll::Ready(Woke::Room);
                }
                if idle.is_some() && bell.poll_rang(cx, &mut bell_waker).is_ready() {
                    return Poll::Ready(Woke::Idle);
                }
                Poll::Pending
            })
            .await
        };
        let frame = match woke {
            Woke::Shutdown => break true,
            Woke::Frame(frame) => frame,
            Woke::Room => continue,
            Woke::Idle => {
                let Some(idle) = &mut idle else { continue };
                let busy = shared.flow.in_flight() > 0 || !held.is_empty();
                match idle.look(Instant::now(), busy) {
                    Ok(Some(next)) => alarm.ring_by(next),
                    Ok(None) => {}
                    Err(Quiet) => {
                        tracing::debug!(%peer, "closing a connection idle for {:?}", idle.timeout);
                        break false;
                    }
                }
                continue;
            }
        };
        if let Some(idle) = &mut idle {
            idle.request();
        }
        // Decoded where it stays: a message is large, and each move a copy.
        let mut request = None;
        let decoded = match frame {
            Some(Ok(frame)) => reader.decode_into::<Message>(frame, &mut request),
            Some(Err(e)) => Err(e),
            None => break false,
        };
        // A call is started where it lies, not moved (see `Starter::start`).
        if let Some(Message::Call { id, remaining, call }) = &mut request {
            // The clock is read for a call with a deadline only.
            let now = remaining.map(|_| Instant::now());
            let (id, deadline) = (*id, now.and_then(|now| deadline_from(now, *remaining)));
            if call.oneway {
                starter.oneway(std::mem::take(call), deadline, &peer);
                continue;
            }
            if call.meta.as_ref().is_some_and(|m| m.upload) {
                // Its items follow it, maybe before it starts.
                shared.uploads.open(id, &shared.writer);
            }
            if held.is_empty()
                && let Some(ticket) = shared.flow.try_start(shared.writer.queued())
            {
                starter.start(id, call, deadline, ticket, reader.has_buffered(), now);
            } else {
                held.push(HeldCall { id, call: std::mem::take(call), deadline });
            }
            continue;
        }
        if let Err(e) = decoded {
            log_broken(&peer, &e);
            break false;
        }
        match request {
            Some(Message::Cancel { id }) => {
                if let Some(call) = shared.calls().remove(&id) {
                    call.abort();
                } else {
                    held.cancel(id);
                    drop(shared.uploads.take(id));
                }
            }
            Some(Message::Reply { id, reply }) => shared.callbacks.deliver(id, reply),
            Some(Message::Release { export, count }) => {
                shared.peer.release(export, count);
            }
            Some(Message::Credit { id, bytes }) => shared.streams.grant(id, bytes),
            Some(Message::Items { id, items }) => {
                let within_window = shared.uploads.push(id, items);
                if !within_window {
                    tracing::info!(%peer, "closed a connection that sent an upload past its window");
                    break false;
                }
            }
            Some(Message::ItemsEnd { id, failure }) => {
                shared.uploads.end(id, failure.map(|f| f.as_str().to_owned()));
            }
            // A call was started above; anything else needs nothing here.
            _ => {}
        }
    };
    if shut_down {
        shared.end_streams();
        // Calls that never started: their callers hear why at once.
        while let Some(call) = held.pop() {
            let error = RemoteError::new(RemoteErrorKind::ShuttingDown, "the daemon is shutting down");
            shared.reply(call.id, Err(error), true);
        }
    } else {
        // The client is gone: nobody will read these replies.
        drop(abort_calls);
    }
    // Nothing the client exported can be called any more.
    shared.callbacks.fail_all();
    shared.uploads.fail_all("the connection closed");
    shared.pool.close();
    shared.tasks.close();
    shared.tasks.wait().await;
    shared.writer.close();
    if let Some(hooks) = &shared.hooks {
        hooks.disconnected(&shared.info);
    }
    // Everything exported over the connection goes with it (its session
    // instances too).
    shared.peer.close();
    tracing::debug!(%peer, "connection closed");
}

/// The shortest time between two looks at a connection's idle time.
const MIN_IDLE_STEP: Duration = Duration::from_millis(1);

/// How long a connection has been idle, known without reading the clock
/// at every request: requests are counted, and the idle alarm looks at the
/// count every eighth of the timeout. A look that finds new requests (or
/// calls still running) starts the quiet time again from then, so a
/// connection is closed once quiet for the whole timeout, and at most an
/// eighth of it later than that.
struct Idleness {
    timeout: Duration,
    /// Requests read so far (wrapping), and as of the last look.
    requests: u64,
    seen: u64,
    /// When the connection was last known to be in use.
    since: Instant,
}

impl Idleness {
    fn new(timeout: Duration, now: Instant) -> Self {
        Idleness { timeout, requests: 0, seen: 0, since: now }
    }

    /// Time between looks: an eighth of the timeout, and never less than
    /// [`MIN_IDLE_STEP`].
    fn step(&self) -> Duration {
        (self.timeout / 8).max(MIN_IDLE_STEP)
    }

    /// When to look first (`None`: a timeout too far to keep).
    fn first_look(&self) -> Option<Instant> {
        self.since.checked_add(self.step().min(self.timeout))
    }

    #[inline]
    fn request(&mut self) {
        self.requests = self.requests.wrapping_add(1);
    }

    /// At the alarm, `now`: whether the connection has been quiet for the
    /// whole timeout, and if not, when to look next (`None`: too far to
    /// keep); `busy` when calls are running or waiting (a connection in use
    /// is not idle).
    fn look(&mut self, now: Instant, busy: bool) -> Result<Option<Instant>, Quiet> {
        if self.requests != self.seen || busy {
            self.seen = self.requests;
            self.since = now;
        }
        if busy {
            // Not idle, whatever the timeout (even none at all).
            return Ok(now.checked_add(self.step()));
        }
        let quiet_for = now.saturating_duration_since(self.since);
        if quiet_for >= self.timeout {
            return Err(Quiet);
        }
        // Never sooner than a step's floor: a tiny timeout does not spin.
        let wait = (self.timeout - quiet_for).min(self.step()).max(MIN_IDLE_STEP);
        Ok(now.checked_add(wait))
    }
}

/// A connection quiet for its whole idle timeout.
struct Quiet;

/// What woke a connection's loop.
enum Woke {
    /// The daemon is shutting down.
    Shutdown,
    /// A frame came (or the connection ended).
    Frame(Option<Result<Frame, TransportError>>),
    /// A held call may have room to start.
    Room,
    /// The idle alarm rang.
    Idle,
}

/// Starts the calls of one connection where they belong.
struct Starter<'a> {
    daemon: &'a Arc<Inner>,
    shared: &'a Arc<Shared>,
    last: LastObject,
}

impl Starter<'_> {
    /// Starts `call`, which holds `ticket`; `more` says whether other
    /// requests are already here (their replies can go out together); `now`
    /// is the time, if the call was read just now.
    fn begin(&mut self, call: HeldCall, ticket: Ticket, more: bool, now: Option<Instant>) {
        let HeldCall { id, mut call, deadline } = call;
        self.start(id, &mut call, deadline, ticket, more, now);
    }

    /// As [`Starter::begin`], for a call read just now, started where it
    /// lies: a call is large, and each move of it a copy (they were a
    /// tenth of the daemon's cost per call).
    #[inline]
    fn start(
        &mut self,
        id: u64,
        call: &mut Call,
        deadline: Option<Instant>,
        ticket: Ticket,
        more: bool,
        now: Option<Instant>,
    ) {
        let shared = self.shared;
        let mut context = match call.meta.take() {
            Some(meta) if meta.upload => match shared.uploads.take(id) {
                Some(upload) => shared.contexts.call_with_upload(deadline, *meta, upload),
                None => shared.contexts.call(deadline, Some(meta)),
            },
            meta => shared.contexts.call(deadline, meta),
        };
        let Some(object) = self.object(&call.object) else {
            shared.complete(id, ticket, Err(self.not_found(&call.object)));
            return;
        };
        // Every call starts here, on any runtime (see the module's doc).
        let mut traced = None;
        let started = shared.start_call(id, object, call, &mut context, now, &mut traced);
        let future = match started {
            Started::Done(reply) => {
                let size = reply.as_ref().map_or(64, rmi_core::Encoded::wire_len);
                shared.reply(id, reply, more || shared.flow.in_flight() > 1);
                shared.flow.finish(ticket, Some(size));
                return;
            }
            Started::Blocking(run) => {
                shared.run_blocking(id, std::mem::take(&mut call.method), run, context, ticket);
                return;
            }
            Started::Stream(source) => {
                shared.tasks.spawn(shared.clone().stream(id, source, ticket, traced, context));
                return;
            }
            Started::Running(future) => future,
        };
        let (abort, registration) = AbortHandle::new_pair();
        shared.calls().insert(id, abort);
        let job = Job { id, method: std::mem::take(&mut call.method), future, context, ticket, registration };
        if let Some(job) = shared.pool.offer(job) {
            shared.tasks.spawn(worker(shared.clone(), job));
        }
    }

    /// The object a call names: an object the daemon exported over this
    /// connection (`@e<id>`), or one registered in it.
    #[inline(always)]
    fn object(&mut self, id: &Text) -> Option<Arc<dyn Exposed>> {
        match parse_export_object_id(id.as_bytes()) {
            Some(export) => self.shared.peer.exported(export),
            None => self.last.get(&self.daemon.registry, id),
        }
    }

    /// Why no object answers to `id`.
    #[cold]
    fn not_found(&self, id: &Text) -> RemoteError {
        match parse_export_object_id(id.as_bytes()) {
            Some(_) => export_not_found(id),
            None => self.daemon.registry.not_found(id),
        }
    }

    /// Runs a oneway call: it belongs to the daemon, not the connection,
    /// and runs on after the client is gone.
    fn oneway(&mut self, mut call: Call, deadline: Option<Instant>, peer: &str) {
        let Some(object) = self.object(&call.object) else {
            let e = self.not_found(&call.object);
            tracing::debug!(%peer, object = %call.object, "oneway call dropped: {e}");
            return;
        };
        let scope = self.shared.scope.clone();
        let hooks = self.shared.hooks.clone();
        let info = self.shared.info.clone();
        let mut context = self.shared.contexts.call(deadline, call.meta.take());
        self.daemon.calls.spawn(async move {
            let started = start_call(
                &scope,
                hooks.as_ref(),
                &info,
                (0, object, &mut call),
                &mut context,
                None,
                &mut None,
            );
            let method = call.method;
            let reply = complete(started, &method, context, "a oneway call cannot return").await;
            if let Err(e) = reply {
                tracing::info!(%method, "oneway call failed: {e}");
            }
        });
    }
}

/// Tells a client its connection is refused, and why, then reads what it
/// sends until it closes (for at most a second), so that closing does not
/// reset the connection before the client has read the reason.
async fn refuse(reader: &mut link::MessageReader, writer: &MessageWriter, reason: &str) {
    let _ = writer.send(&Message::Close { reason: Text::from(reason) });
    writer.close();
    let drain = async { while let Some(Ok(_)) = reader.recv::<Message>().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Starts a call of `object` in the connection's `scope` (when its
/// arguments carry references, or the object lives per connection): the
/// `hooks` asked first, if the daemon has any (a refusal is the call's
/// reply), and the call traced for them to its end; the caller's and the
/// method's idea of streaming checked. Returns the started call, and for a
/// stream puts its trace (ended with the stream) in `traced` (an out
/// parameter rather than half of a returned pair, which cost a copy of the
/// call started); the call's method name and object are left in it, its
/// arguments taken.
#[inline]
fn start_call(
    scope: &Scope,
    hooks: Option<&Arc<dyn Hooks>>,
    info: &Arc<ConnectionInfo>,
    call: (u64, Arc<dyn Exposed>, &mut Call),
    context: &mut CallContext,
    now: Option<Instant>,
    traced_out: &mut Option<Traced>,
) -> Started {
    if call.2.args.is_json() {
        return start_json_call(scope, hooks, info, call, context, now, traced_out);
    }
    start_postcard_call(scope, hooks, info, call, context, now, traced_out)
}

/// As [`start_call`], for a call whose arguments are JSON (`rmi-naming
/// call`): its reply is JSON too.
#[cold]
#[inline(never)]
fn start_json_call(
    scope: &Scope,
    hooks: Option<&Arc<dyn Hooks>>,
    info: &Arc<ConnectionInfo>,
    call: (u64, Arc<dyn Exposed>, &mut Call),
    context: &mut CallContext,
    now: Option<Instant>,
    traced_out: &mut Option<Traced>,
) -> Started {
    let started = rmi_core::json::with_json_replies(|| {
        start_postcard_call(scope, hooks, info, call, context, now, traced_out)
    });
    rmi_core::json::json_started(started)
}

#[inline(always)]
fn start_postcard_call(
    scope: &Scope,
    hooks: Option<&Arc<dyn Hooks>>,
    info: &Arc<ConnectionInfo>,
    (id, object, call): (u64, Arc<dyn Exposed>, &mut Call),
    context: &mut CallContext,
    now: Option<Instant>,
    traced_out: &mut Option<Traced>,
) -> Started {
    let scoped = call.args.carries_references() || object.per_connection();
    let args = std::mem::take(&mut call.args);
    if !Traced::wanted(hooks) {
        // Written out rather than through `enter_if`: the plain path, inlined.
        return if scoped {
            scope.enter(|| start_as(object, &call.method, args, context, call.stream, now))
        } else {
            start_as(object, &call.method, args, context, call.stream, now)
        };
    }
    let described = (&call.object, &call.method, id, call.oneway);
    let traced = match Traced::start(hooks, info, described, context.correlation_id()) {
        Ok(traced) => traced,
        Err(reason) => {
            let refused = RemoteError::new(RemoteErrorKind::Refused, format!("refused: {reason}"));
            return Started::Done(Err(refused));
        }
    };
    let started = scope.enter_if(scoped, || start_as(object, &call.method, args, context, call.stream, now));
    match started {
        Started::Done(reply) => {
            traced.ended(&reply);
            Started::Done(reply)
        }
        Started::Running(future) => Started::Running(traced.around(future)),
        Started::Blocking(run) => Started::Blocking(traced.around_blocking(run)),
        Started::Stream(source) => {
            *traced_out = Some(traced);
            Started::Stream(source)
        }
    }
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
    // Encoded where it lies, not moved into a `Message` first.
    let response = OutgoingReply { id, reply: &reply };
    let sent = if batched { writer.send_batched(&response) } else { writer.send(&response) };
    match sent {
        Ok(()) => {}
        Err(TransportError::FrameTooLarge { len, max }) => {
            let error = RemoteError::new(
                RemoteErrorKind::Internal,
                format!("the reply of {len} bytes exceeds the limit of {max} bytes (RMI_MAX_MESSAGE_SIZE)"),
            );
            let _ = writer.send(&Message::Reply { id, reply: Err(error) });
        }
        Err(e) => tracing::debug!("reply {id} not sent: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Follows the alarm from `start`: each look at the time the last one
    /// asked for, a request read just before the looks `requests_before`
    /// name; returns when the connection was closed.
    fn closed_at(timeout: Duration, start: Instant, requests_before: &[usize]) -> Duration {
        let mut idle = Idleness::new(timeout, start);
        let mut at = idle.first_look().expect("a near first look");
        for look in 0..10_000 {
            if requests_before.contains(&look) {
                idle.request();
            }
            match idle.look(at, false) {
                Ok(Some(next)) => {
                    assert!(next > at, "the next look is later");
                    at = next;
                }
                Ok(None) => panic!("a near timeout is kept"),
                Err(Quiet) => return at - start,
            }
        }
        panic!("never closed");
    }

    #[test]
    fn a_quiet_connection_closes_at_its_timeout() {
        let timeout = Duration::from_secs(300);
        assert_eq!(closed_at(timeout, Instant::now(), &[]), timeout);
    }

    #[test]
    fn a_request_puts_the_close_off_by_the_timeout_and_at_most_an_eighth_more() {
        let timeout = Duration::from_secs(80);
        let step = timeout / 8;
        // Requests read just before the third look (at 3 steps): the last
        // of them may have come right after the second look, at 2 steps.
        let closed = closed_at(timeout, Instant::now(), &[2]);
        let last_request_at_latest = step * 3;
        let last_request_at_earliest = step * 2;
        assert!(closed >= last_request_at_latest + timeout, "closed early: {closed:?}");
        assert!(closed <= last_request_at_earliest + timeout + step, "closed late: {closed:?}");
    }

    #[test]
    fn a_busy_connection_is_not_idle() {
        let timeout = Duration::from_secs(8);
        let start = Instant::now();
        let mut idle = Idleness::new(timeout, start);
        let mut at = start;
        for _ in 0..100 {
            at += Duration::from_secs(1);
            assert!(matches!(idle.look(at, true), Ok(Some(_))), "closed while calls ran");
        }
        // Quiet from the last busy look on.
        assert!(matches!(idle.look(at + timeout - Duration::from_millis(1), false), Ok(Some(_))));
        assert!(matches!(idle.look(at + timeout, false), Err(Quiet)));
    }

    #[test]
    fn a_huge_or_tiny_timeout_neither_panics_nor_spins() {
        let now = Instant::now();
        let mut huge = Idleness::new(Duration::MAX, now);
        huge.request();
        // Kept, with a look far off or none at all; no overflow.
        assert!(huge.look(now, false).is_ok());
        assert!(huge.look(now, true).is_ok());
        for timeout in [Duration::ZERO, Duration::from_nanos(1), Duration::from_micros(500)] {
            let mut tiny = Idleness::new(timeout, now);
            // Busy: kept, and looked at again a millisecond on at the soonest.
            match tiny.look(now, true) {
                Ok(Some(next)) => assert!(next >= now + MIN_IDLE_STEP, "{timeout:?}: looked again too soon"),
                other => {
                    panic!("{timeout:?}: a busy connection closed or left unwatched: {:?}", other.is_ok())
                }
            }
            tiny.request();
            match tiny.look(now + Duration::from_nanos(1), false) {
                Ok(Some(next)) => assert!(next >= now + MIN_IDLE_STEP, "{timeout:?}: looked again too soon"),
                Ok(None) => panic!("{timeout:?}: left unwatched"),
                Err(Quiet) => assert!(timeout.is_zero(), "{timeout:?}: closed just after a request"),
            }
        }
    }
}
