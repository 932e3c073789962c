//! One client connection: its handshake, its reading loop, and its calls.
//!
//! The loop reads requests and hands each call to a worker of the
//! connection (see `workers`): calls run concurrently, so a slow call holds
//! up nothing, and a method may call another daemon that calls back into
//! this one. Each call writes its own reply through the shared writer. A
//! `Cancel` aborts its call; a client that goes away takes its calls in
//! flight with it (oneway calls run on).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::{AbortHandle, Abortable};
use rmi_core::handshake::server_handshake;
use rmi_core::idmap::IdMap;
use rmi_core::link::{self, MessageWriter};
use rmi_core::message::deadline_from;
use rmi_core::net::Connection;
use rmi_core::object::{Exposed, ReplyFuture, with_deadline};
use rmi_core::{Call, RemoteError, RemoteErrorKind, Reply, Request, Response, Text, TransportError};
use tokio_util::task::TaskTracker;

use crate::daemon::Inner;
use crate::invoke::{Started, finish, run, start};
use crate::registry::Registry;
use crate::workers::Pool;

/// A call handed to a worker.
struct Job {
    id: u64,
    work: Work,
    deadline: Option<Instant>,
}

/// What a worker has to do for a call.
enum Work {
    /// Start it, then finish it.
    Call(Arc<dyn Exposed>, Call),
    /// Finish it: it was started on the reading task and is awaiting
    /// something.
    Started(Text, ReplyFuture),
}

/// What a connection's workers share.
struct Shared {
    writer: MessageWriter,
    /// Calls that are awaiting something, by id, to cancel them. (A
    /// synchronous method runs to its end in one go; there is nothing to
    /// cancel, so it is not registered.)
    calls: Mutex<IdMap<AbortHandle>>,
    /// Calls received and not yet answered.
    in_flight: AtomicUsize,
    /// The most calls in flight before the reader waits.
    max_in_flight: usize,
    /// Woken when a call finishes while the connection is at its limit.
    finished: tokio::sync::Notify,
    pool: Pool<Job>,
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

    async fn run_job(&self, job: Job) {
        let Job { id, work, deadline } = job;
        let (method, started) = match work {
            Work::Call(object, call) => {
                let started = start(object, &call.method, call.args, deadline);
                (call.method, started)
            }
            Work::Started(method, future) => (method, Started::Running(future)),
        };
        let reply = match started {
            Started::Done(reply) => reply,
            Started::Running(future) => {
                let (abort, registration) = AbortHandle::new_pair();
                self.calls().insert(id, abort);
                let finished =
                    Abortable::new(with_deadline(deadline, finish(&method, future)), registration).await;
                self.calls().remove(&id);
                match finished {
                    Ok(reply) => reply,
                    // Cancelled: the caller gave up and reads no reply.
                    Err(_) => {
                        self.done();
                        return;
                    }
                }
            }
        };
        // With other calls in flight, more replies follow: let the flusher
        // write them together.
        let others = self.done() > 1;
        send_reply(&self.writer, id, reply, others);
    }

    /// Counts a call as finished; returns how many were in flight before.
    fn done(&self) -> usize {
        let before = self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if before >= self.max_in_flight {
            self.finished.notify_one();
        }
        before
    }

    /// Waits while the connection has as many calls in flight as it may.
    async fn room(&self) {
        while self.in_flight.load(Ordering::Relaxed) >= self.max_in_flight {
            let finished = self.finished.notified();
            if self.in_flight.load(Ordering::Relaxed) < self.max_in_flight {
                return;
            }
            finished.await;
        }
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
    let shared = Arc::new(Shared {
        writer,
        calls: Mutex::default(),
        in_flight: AtomicUsize::new(0),
        max_in_flight: options.max_calls_per_connection,
        finished: tokio::sync::Notify::new(),
        pool: Pool::new(),
    });
    let abort_calls = AbortOnDrop(shared.clone());
    let workers = TaskTracker::new();
    let mut last = LastObject::default();
    // On one thread, handing a call to another task buys no parallelism:
    // calls start on this task, and only those that await go to a worker.
    let start_here =
        tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread;
    let idle_timeout = options.idle_timeout;
    let mut last_request = Instant::now();
    let mut idle = std::pin::pin!(tokio::time::sleep(idle_timeout.unwrap_or(Duration::MAX / 4)));
    let shut_down = loop {
        // At the limit of calls in flight, read nothing more until one ends:
        // the client waits, TCP carries the backpressure.
        tokio::select! {
            () = shared.room() => {}
            () = daemon.shutdown.cancelled() => break true,
        }
        let request = tokio::select! {
            request = reader.recv::<Request>() => request,
            () = daemon.shutdown.cancelled() => break true,
            () = &mut idle, if idle_timeout.is_some() => {
                // The timer is re-armed lazily, from the last request, rather
                // than reset on every request.
                let timeout = idle_timeout.unwrap_or_default();
                let quiet = last_request.elapsed() >= timeout;
                if quiet && shared.in_flight.load(Ordering::Relaxed) == 0 {
                    tracing::debug!(%peer, "closing a connection idle for {timeout:?}");
                    break false;
                }
                let from = if quiet { Instant::now() } else { last_request };
                idle.as_mut().reset((from + timeout).into());
                continue;
            }
        };
        let now = Instant::now();
        last_request = now;
        match request {
            Some(Ok(Request::Call { id, remaining, call })) => {
                let deadline = deadline_from(now, remaining);
                let Some(object) = last.get(&daemon.registry, &call.object) else {
                    if call.oneway {
                        tracing::debug!(%peer, object = %call.object, "oneway call to an unknown object dropped");
                    } else {
                        send_reply(&shared.writer, id, Err(daemon.registry.not_found(&call.object)), false);
                    }
                    continue;
                };
                if call.oneway {
                    // Oneway calls belong to the daemon, not the connection:
                    // they run on after the client is gone.
                    let method = call.method;
                    daemon.calls.spawn(async move {
                        if let Err(e) = run(object, &method, call.args, deadline).await {
                            tracing::info!(%method, "oneway call failed: {e}");
                        }
                    });
                    continue;
                }
                let work = if start_here {
                    match start(object, &call.method, call.args, deadline) {
                        Started::Done(reply) => {
                            // More requests already here: their replies
                            // go out together with this one.
                            let more = reader.has_buffered() || shared.in_flight.load(Ordering::Relaxed) > 0;
                            send_reply(&shared.writer, id, reply, more);
                            continue;
                        }
                        Started::Running(future) => Work::Started(call.method, future),
                    }
                } else {
                    Work::Call(object, call)
                };
                shared.in_flight.fetch_add(1, Ordering::Relaxed);
                let job = Job { id, work, deadline };
                if let Some(job) = shared.pool.offer(job) {
                    workers.spawn(worker(shared.clone(), job));
                }
            }
            Some(Ok(Request::Cancel { id })) => {
                if let Some(call) = shared.calls().remove(&id) {
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
    shared.pool.close();
    workers.close();
    workers.wait().await;
    shared.writer.close();
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
