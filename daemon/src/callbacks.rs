//! The daemon's calls to its clients' objects: a client that passed a
//! local object as a reference is called back over the connection it
//! opened.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use rmi_core::alarm::{self, Alarm, Ring};
use rmi_core::idmap::IdMap;
use rmi_core::link::MessageWriter;
use rmi_core::peer::{CallFuture, Link, Peer};
use rmi_core::{Call, Error, Message, Reply, TransportError};
use tokio::sync::oneshot;

/// A call waiting for the client's reply: where it goes, and when the call
/// gives up (alarm ticks).
type Waiting = (oneshot::Sender<Result<Reply, Error>>, Option<u64>);

/// One connection's calls from the daemon to the client: ids of the
/// daemon's own (the client's calls have theirs), each waiting for its
/// reply, which the connection's reader delivers, or for its deadline,
/// which an alarm keeps (no tokio timer per call).
pub(crate) struct Callbacks {
    writer: MessageWriter,
    peer: Arc<Peer>,
    pending: Mutex<IdMap<Waiting>>,
    next_id: AtomicU64,
    client: String,
    alarm: Alarm,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks").field("client", &self.client).finish_non_exhaustive()
    }
}

impl Callbacks {
    pub(crate) fn new(writer: MessageWriter, peer: Arc<Peer>, client: String) -> Arc<Self> {
        Arc::new_cyclic(|me: &Weak<Callbacks>| Callbacks {
            writer,
            peer,
            pending: Mutex::default(),
            next_id: AtomicU64::new(0),
            client,
            alarm: Alarm::new(me.clone() as Weak<dyn Ring>),
        })
    }

    fn pending(&self) -> MutexGuard<'_, IdMap<Waiting>> {
        // Insertions and removals leave the map whole; a poisoned lock is usable.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands the client's reply to the call waiting for it (none: it gave
    /// up, and the reply is dropped).
    pub(crate) fn deliver(&self, id: u64, reply: Reply) {
        if let Some((waiting, _)) = self.pending().remove(&id) {
            let _ = waiting.send(Ok(reply));
        }
    }

    /// Whether calls to the client wait for replies (the reader must read
    /// on to find them).
    pub(crate) fn waiting(&self) -> bool {
        !self.pending().is_empty()
    }

    /// The connection ended: every call waiting fails at once.
    pub(crate) fn fail_all(&self) {
        self.pending().drain().for_each(drop);
    }
}

/// Removes a call given up on, and tells the client to cancel it.
struct InFlight<'a> {
    callbacks: &'a Callbacks,
    id: u64,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done && self.callbacks.pending().remove(&self.id).is_some() {
            let _ = self.callbacks.writer.send_batched(&Message::Cancel { id: self.id });
        }
    }
}

fn sent(e: TransportError) -> Error {
    match e {
        TransportError::FrameTooLarge { len, max } => {
            Error::MessageTooLarge { size: usize::try_from(len).unwrap_or(usize::MAX), max }
        }
        other => Error::ConnectionLost(format!("the client's connection: {other}")),
    }
}

impl Ring for Callbacks {
    /// Ends the calls whose deadline passed (each tells the client to
    /// cancel), and sets the alarm for the next.
    fn ring(&self) {
        let now = alarm::ticks(Instant::now());
        let (due, next): (Vec<oneshot::Sender<Result<Reply, Error>>>, _) = {
            let mut pending = self.pending();
            let (ids, next) = alarm::due(pending.iter().map(|(id, (_, deadline))| (*id, *deadline)), now);
            (ids.iter().filter_map(|id| pending.remove(id)).map(|(tx, _)| tx).collect(), next)
        };
        if let Some(next) = next {
            self.alarm.ring_by_ticks(next);
        }
        for tx in due {
            let _ = tx.send(Err(Error::Timeout(Duration::ZERO)));
        }
    }
}

impl Link for Callbacks {
    fn call(self: Arc<Self>, call: Call, deadline: Option<Instant>, timeout: Option<Duration>) -> CallFuture {
        Box::pin(async move {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            let ticks = deadline.map(alarm::ticks);
            self.pending().insert(id, (tx, ticks));
            if let Some(ticks) = ticks {
                self.alarm.ring_by_ticks(ticks);
            }
            let mut guard = InFlight { callbacks: &self, id, done: false };
            self.peer.export(call.args.exports());
            self.writer.send(&Message::call(id, deadline, call)).map_err(sent)?;
            let reply = rx.await;
            guard.done = true;
            match reply {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(_)) => {
                    // The alarm ended the wait: the client is told to cancel.
                    let _ = self.writer.send_batched(&Message::Cancel { id });
                    let waited = timeout.unwrap_or_else(|| {
                        deadline.map(|d| d.saturating_duration_since(Instant::now())).unwrap_or_default()
                    });
                    Err(Error::Timeout(waited))
                }
                Err(_) => Err(Error::ConnectionLost("the client's connection closed".into())),
            }
        })
    }

    fn call_oneway(self: Arc<Self>, call: Call) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send>> {
        Box::pin(async move {
            self.peer.export(call.args.exports());
            self.writer.send_batched(&Message::call(0, None, call.oneway())).map_err(sent)
        })
    }

    fn release(&self, export: u64, count: u32) {
        let _ = self.writer.send_batched(&Message::Release { export, count });
    }

    fn describe(&self) -> String {
        format!("the client at {}", self.client)
    }

    fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }
}
