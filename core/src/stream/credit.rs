//! Producing a stream over a connection: chunk by chunk, while the reader
//! on the other end has granted room for them (see [`crate::stream`]): at
//! most [`WINDOW`] bytes of items out that it has not read, and the
//! connection's writer no more than its bound. A daemon produces the
//! streams its methods return this way, and a client the uploads it sends.
//!
//! On a daemon a stream is a call in flight until its end: a `Cancel` from
//! the caller (it dropped its stream) aborts it like any call, dropping the
//! producer, and so does the connection's end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{RemoteError, RemoteErrorKind};
use crate::exports::Exports;
use crate::frame::TransportError;
use crate::idmap::IdMap;
use crate::link::MessageWriter;
use crate::message::Message;
use crate::stream::{Source, WINDOW};
use tokio::sync::Notify;

/// What the caller of one stream has granted.
#[derive(Default)]
struct Credit {
    /// Bytes of items read by the caller, in all.
    granted: AtomicU64,
    /// Woken by each grant.
    more: Notify,
}

/// A connection's streams in flight, by call id: where their credits go.
#[derive(Default)]
pub struct Streams {
    credits: Mutex<IdMap<Arc<Credit>>>,
}

/// Forgets a stream's credit when its producer ends (or is aborted).
struct Registered<'a> {
    streams: &'a Streams,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.streams.credits().remove(&self.id);
    }
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams").field("in_flight", &self.credits().len()).finish()
    }
}

impl Streams {
    fn credits(&self) -> MutexGuard<'_, IdMap<Arc<Credit>>> {
        // Insertions and removals leave the map whole; a poisoned lock is usable.
        self.credits.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The caller of stream `id` read `bytes` more of it. A credit for a
    /// stream that ended (or never was) is ignored.
    pub fn grant(&self, id: u64, bytes: u64) {
        let credit = self.credits().get(&id).cloned();
        if let Some(credit) = credit {
            credit.granted.fetch_add(bytes, Ordering::AcqRel);
            credit.more.notify_one();
        }
    }

    /// The ids of the streams in flight.
    pub fn ids(&self) -> Vec<u64> {
        self.credits().keys().copied().collect()
    }

    /// Produces stream `id` from `source` to its end, sending its items
    /// through `writer` as credit allows (`export` exports the references
    /// a chunk passes, before it is sent); returns how it ended (`Ok` at the
    /// end of the items, the producer's failure, or the connection's).
    /// `max_queued` bounds what may wait in the writer.
    pub async fn produce(
        &self,
        id: u64,
        mut source: Source,
        writer: &MessageWriter,
        export: &(dyn Fn(&Exports) + Sync),
        max_queued: usize,
    ) -> Result<(), RemoteError> {
        let credit = Arc::new(Credit::default());
        self.credits().insert(id, credit.clone());
        let _registered = Registered { streams: self, id };
        let mut sent: u64 = 0;
        loop {
            // Room in the caller's window.
            loop {
                let more = credit.more.notified();
                if sent.saturating_sub(credit.granted.load(Ordering::Acquire)) < WINDOW {
                    break;
                }
                more.await;
            }
            if writer.queued() > max_queued {
                writer.wait_below(max_queued).await;
            }
            let items = match source.next_chunk().await {
                Some(Ok(items)) => items,
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            };
            sent = sent.saturating_add(items.wire_len() as u64);
            export(items.exports());
            match writer.send(&Message::Items { id, items }) {
                Ok(()) => {}
                Err(TransportError::FrameTooLarge { len, max }) => {
                    return Err(RemoteError::new(
                        RemoteErrorKind::Internal,
                        format!(
                            "a streamed item of {len} bytes exceeds the limit of {max} bytes (RMI_MAX_MESSAGE_SIZE)"
                        ),
                    ));
                }
                Err(e) => {
                    return Err(RemoteError::new(
                        RemoteErrorKind::Internal,
                        format!("the stream broke off: {e}"),
                    ));
                }
            }
        }
    }
}
