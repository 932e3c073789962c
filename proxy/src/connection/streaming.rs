//! Calls whose results stream (see `rmi_core::stream`): the call's slot
//! gathers the chunks of items the daemon sends and then its end, and the
//! consumer takes them one chunk at a time, reading the connection for
//! everyone (as a waiting caller does) when nobody else is.
//!
//! The consumer grants credit as its code takes the items, never as they
//! arrive, so the daemon's producer can be at most one window ahead of the
//! consumer's reading; dropping the stream before its end cancels the call.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use rmi_core::stream::WINDOW;
use rmi_core::{Call, Encoded, Error, Message, Reply};

use super::{CallFailure, ClientConnection, Leading, Pending, Slot, park, send_error};

/// A streaming call's slot: what arrived for it and was not taken yet.
#[derive(Debug, Default)]
pub(crate) struct StreamSlot {
    chunks: VecDeque<Encoded>,
    end: Option<Result<Reply, Error>>,
    /// The consumer's, while it waits for a chunk.
    waker: Option<Waker>,
}

impl StreamSlot {
    /// The stream's end arrived (the first one counts), after its last
    /// chunk.
    pub(super) fn end(&mut self, outcome: Result<Reply, Error>) -> Option<Waker> {
        if self.end.is_none() {
            self.end = Some(outcome);
        }
        self.waker.take()
    }

    /// The consumer's waker, if it is waiting (to take over reading).
    pub(super) fn waiting(&self) -> Option<Waker> {
        self.waker.clone()
    }
}

/// What a stream's consumer gets next.
enum Turn<'a> {
    Chunk(Encoded),
    End(Result<Reply, Error>),
    /// Nothing yet, and nobody reads: read for everyone.
    Read(futures::lock::MutexGuard<'a, rmi_core::link::MessageReader>),
}

impl Pending {
    /// Whether stream `id` has something for its consumer.
    fn stream_ready(&self, id: u64) -> bool {
        match self.slots.get(&id) {
            Some(Slot::Stream(s)) => !s.chunks.is_empty() || s.end.is_some(),
            _ => true,
        }
    }
}

impl ClientConnection {
    /// Sends `call`, whose results stream, and returns its id (what the
    /// stream is read by). The daemon is given no deadline: a stream lasts
    /// as long as its consumer reads.
    pub(crate) fn open_stream(&self, call: Call) -> Result<u64, CallFailure> {
        let (id, _) = self.open_slot(Slot::Stream(Box::default()))?;
        self.export(call.args.exports());
        if let Err(e) = self.writer.send(&Message::Call { id, remaining: None, call }) {
            self.pending().slots.remove(&id);
            return Err(CallFailure::NotSent(send_error(e)));
        }
        Ok(id)
    }

    /// Leaves a chunk of items for stream `id`, waking its consumer. A
    /// chunk for a stream that is gone (dropped, its cancel on the way) is
    /// dropped.
    pub(super) fn push_items(&self, id: u64, items: Encoded) {
        let waker = match self.pending().slots.get_mut(&id) {
            Some(Slot::Stream(stream)) => {
                stream.chunks.push_back(items);
                stream.waker.take()
            }
            _ => None,
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next chunk of stream `id` (`None` at its end), waiting at most
    /// `timeout` for it.
    pub(crate) async fn next_chunk(
        &self,
        id: u64,
        timeout: Option<Duration>,
    ) -> Result<Option<Encoded>, Error> {
        let next = self.next_turn(id);
        let turn = match timeout.and_then(|t| Instant::now().checked_add(t)) {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), next)
                .await
                .map_err(|_| Error::Timeout(timeout.unwrap_or_default()))?,
            None => next.await,
        };
        match turn {
            Ok(chunk) => Ok(Some(chunk)),
            Err(end) => match end? {
                Ok(_) => Ok(None),
                Err(remote) => Err(remote.into()),
            },
        }
    }

    /// The next chunk, or (as `Err`) the stream's end.
    async fn next_turn(&self, id: u64) -> Result<Encoded, Result<Reply, Error>> {
        loop {
            let guard = match poll_fn(|cx| self.poll_stream(id, cx)).await {
                Turn::Chunk(chunk) => return Ok(chunk),
                Turn::End(end) => return Err(end),
                Turn::Read(guard) => guard,
            };
            let mut leading = Leading { guard: Some(guard), connection: self, answered: None };
            while !self.pending().stream_ready(id) {
                let Some(reader) = leading.guard.as_mut() else { break };
                if self.read_one(reader).await.is_err() {
                    // Every slot, ours too, has the reason now.
                    break;
                }
            }
        }
    }

    fn poll_stream(&self, id: u64, cx: &mut std::task::Context<'_>) -> Poll<Turn<'_>> {
        let mut pending = self.pending();
        if !matches!(pending.slots.get(&id), Some(Slot::Stream(_))) {
            return Poll::Ready(Turn::End(Err(pending.reason())));
        }
        let Some(Slot::Stream(stream)) = pending.slots.get_mut(&id) else {
            return Poll::Ready(Turn::End(Err(pending.reason())));
        };
        if let Some(chunk) = stream.chunks.pop_front() {
            stream.waker = None;
            return Poll::Ready(Turn::Chunk(chunk));
        }
        if let Some(end) = stream.end.take() {
            stream.waker = None;
            // Taken once: a poll after the end finds the slot gone.
            pending.slots.remove(&id);
            return Poll::Ready(Turn::End(end));
        }
        park(&mut stream.waker, cx);
        match self.reader.try_lock() {
            Some(guard) => {
                stream.waker = None;
                Poll::Ready(Turn::Read(guard))
            }
            None => Poll::Pending,
        }
    }

    /// The consumer of stream `id` has read `bytes` of its items.
    pub(crate) fn credit(&self, id: u64, bytes: u64) {
        // Best effort: a broken connection ends the stream anyway.
        let _ = self.writer.send(&Message::Credit { id, bytes });
    }

    /// The consumer dropped stream `id`: forget it, and cancel the call if
    /// it had not ended.
    pub(crate) fn close_stream(&self, id: u64) {
        let open = matches!(self.pending().slots.remove(&id), Some(Slot::Stream(_)));
        if open {
            // Best effort: the connection may be gone already.
            let _ = self.writer.send(&Message::Cancel { id });
        }
        // The consumer may have been the one woken to take over reading.
        if self.reader.try_lock().is_some() {
            self.hand_off(None);
        }
    }
}

impl ClientConnection {
    /// Sends `call`, whose items follow it from `source` (an upload), and
    /// waits for its reply until `deadline`: the items go out as the daemon
    /// grants credit, while the reply is awaited (a method that returns
    /// before reading everything stops the sending).
    pub(crate) async fn send_upload(
        &self,
        call: Call,
        source: rmi_core::stream::Source,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<Reply, CallFailure> {
        let (id, _) = self.open_slot(Slot::Waiting(None, None))?;
        let mut guard = super::InFlight { connection: self, id, sent: false, done: false };
        self.export(call.args.exports());
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if let Err(e) = self.writer.send(&Message::Call { id, remaining, call }) {
            return Err(CallFailure::NotSent(send_error(e)));
        }
        guard.sent = true;
        let export = |exports: &rmi_core::exports::Exports| {
            self.peer.export(exports);
        };
        let pump = async {
            let end = self
                .upload_credits
                .produce(id, source, &self.writer, &export, super::MAX_QUEUED_REQUESTS)
                .await;
            let failure = end.err().map(|e| rmi_core::Text::from(e.message()));
            let _ = self.writer.send(&Message::ItemsEnd { id, failure });
            // Sent: the reply decides.
            std::future::pending::<()>().await;
        };
        let waiting = async {
            tokio::select! {
                biased;
                reply = self.wait(id) => reply,
                () = pump => Err(Error::Protocol("an upload's sending ended the call".into())),
            }
        };
        let outcome = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), waiting).await {
                Ok(outcome) => outcome,
                Err(_) => return Err(CallFailure::Failed(Error::Timeout(timeout.unwrap_or_default()))),
            },
            None => waiting.await,
        };
        guard.done = true;
        outcome.map_err(CallFailure::Failed)
    }
}

/// When to grant credit: once the consumer has read this much since the
/// last grant (a quarter of the window, so that the producer rarely waits).
pub(crate) const CREDIT_EVERY: u64 = WINDOW / 4;
