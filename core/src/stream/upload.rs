//! Streams into a method: an argument of type [`Upload<T>`].
//!
//! The caller makes an `Upload` from any stream or iterator and passes it
//! as an argument (a typed proxy's method whose parameter is an `Upload`,
//! or `Proxy::call_upload`); the argument itself travels as a marker, and
//! the items follow the call as `Items` messages under the same
//! credit-based flow control as a method's results (see the parent
//! module): the method's *reading* grants credit, so a method that reads
//! slowly holds the caller to one window. `ItemsEnd` closes them (with the
//! caller's failure, if its stream failed). In the method, the `Upload` is
//! an async `Stream<Item = Result<T, Error>>`.
//!
//! One upload per call. The method may return before it has read every
//! item: the caller then stops sending.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::encoded::Encoded;
use crate::error::Error;
use crate::idmap::IdMap;
use crate::link::MessageWriter;
use crate::message::Message;
use crate::stream::{Source, Stream, WINDOW};

/// A stream of items passed *to* a method, as one of its arguments.
///
/// The caller builds it ([`Upload::new`], [`Upload::iter`],
/// [`Upload::blocking`]); the method reads it as a
/// `futures::Stream<Item = Result<T, Error>>`.
pub struct Upload<T> {
    side: Side<T>,
}

enum Side<T> {
    /// The caller's: the producer, until the call takes it.
    Sending(Mutex<Option<Source>>),
    /// The method's: what arrives for it.
    Receiving(Receiving<T>),
}

struct Receiving<T> {
    slot: Arc<UploadSlot>,
    items: std::vec::IntoIter<T>,
    chunk_bytes: u64,
    ungranted: u64,
    ended: bool,
}

impl<T> std::fmt::Debug for Upload<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.side {
            Side::Sending(_) => "Upload(to send)",
            Side::Receiving(_) => "Upload(received)",
        })
    }
}

impl<T: Serialize + Send + 'static> Upload<T> {
    /// Sends the items of `stream`, as it produces them.
    pub fn new(stream: impl futures::Stream<Item = T> + Send + 'static) -> Self {
        Self::from(Stream::new(stream))
    }

    /// Sends the items of an iterator that does not block.
    pub fn iter<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::from(Stream::iter(items))
    }

    /// Sends the items of an iterator that may block (reading a file): it
    /// runs on tokio's blocking pool, a few items ahead of the connection.
    pub fn blocking<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T> + Send + 'static,
    {
        Self::from(Stream::blocking(items))
    }
}

impl<T: Serialize + Send + 'static> From<Stream<T>> for Upload<T> {
    /// Sends the items of an `rmi::Stream` (a fallible one's error reaches
    /// the method as the upload's error).
    fn from(stream: Stream<T>) -> Self {
        Upload { side: Side::Sending(Mutex::new(Some(stream.into_source()))) }
    }
}

thread_local! {
    /// The upload of the call whose arguments are being encoded.
    static COLLECTING: std::cell::RefCell<Option<Option<Source>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (which encodes a call's arguments) collecting the upload among
/// them, if any. What a proxy calls for a call that may carry one.
///
/// # Errors
///
/// More than one upload in one call.
pub fn collect_upload<R>(f: impl FnOnce() -> R) -> (R, Option<Source>) {
    let outer = COLLECTING.with(|c| c.replace(Some(None)));
    // An upload is taken when it is serialized: values encoded here are
    // encoded once, in the codec's scopes, never tried without them first.
    let result = crate::blob::upload_scope(f);
    let found = COLLECTING.with(|c| c.replace(outer)).flatten();
    (result, found)
}

impl<T> Serialize for Upload<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Side::Sending(source) = &self.side else {
            return Err(serde::ser::Error::custom("a received upload cannot be sent on"));
        };
        let taken = source.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let Some(taken) = taken else {
            return Err(serde::ser::Error::custom("this upload was sent already"));
        };
        let placed = COLLECTING.with(|c| match &mut *c.borrow_mut() {
            Some(slot @ None) => {
                *slot = Some(taken);
                Ok(())
            }
            Some(Some(_)) => Err("a call carries one upload at most"),
            None => Err("an rmi::Upload travels only as an argument of a call (a typed proxy's method, or Proxy::call_upload)"),
        });
        match placed {
            Ok(()) => serializer.serialize_unit(),
            Err(why) => {
                crate::blob::note_custom_error(why);
                Err(serde::ser::Error::custom(why))
            }
        }
    }
}

impl<'de, T> Deserialize<'de> for Upload<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer)?;
        let Some(slot) = crate::context::take_upload().and_then(|u| u.downcast::<UploadSlot>().ok()) else {
            let why = "an argument is an upload, and the call carries none";
            crate::blob::note_custom_error(why);
            return Err(serde::de::Error::custom(why));
        };
        let receiving =
            Receiving { slot, items: Vec::new().into_iter(), chunk_bytes: 0, ungranted: 0, ended: false };
        Ok(Upload { side: Side::Receiving(receiving) })
    }
}

// Nothing in it is pinned in place.
impl<T> Unpin for Upload<T> {}

impl<T: DeserializeOwned> futures::Stream for Upload<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Side::Receiving(r) = &mut self.get_mut().side else {
            return Poll::Ready(Some(Err(Error::Protocol("an upload to send is not read here".into()))));
        };
        loop {
            if let Some(item) = r.items.next() {
                if r.items.len() == 0 {
                    r.chunk_read();
                }
                return Poll::Ready(Some(Ok(item)));
            }
            if r.ended {
                return Poll::Ready(None);
            }
            let next = {
                let mut state = r.slot.state();
                match state.chunks.pop_front() {
                    Some(chunk) => Ok(chunk),
                    None => match state.end.take() {
                        Some(end) => Err(end),
                        None => {
                            state.waker = Some(cx.waker().clone());
                            return Poll::Pending;
                        }
                    },
                }
            };
            match next {
                Ok(chunk) => match chunk.decode::<Vec<T>>() {
                    Ok(items) => {
                        r.chunk_bytes = chunk.wire_len() as u64;
                        r.items = items.into_iter();
                        if r.items.len() == 0 {
                            r.chunk_read();
                        }
                    }
                    Err(e) => {
                        r.ended = true;
                        return Poll::Ready(Some(Err(Error::Serialization(format!(
                            "the uploaded items do not decode as {}: {e}",
                            std::any::type_name::<T>()
                        )))));
                    }
                },
                Err(end) => {
                    r.ended = true;
                    match end {
                        Ok(()) => return Poll::Ready(None),
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
            }
        }
    }
}

impl<T> Receiving<T> {
    /// Counts the current chunk read, granting credit when enough is.
    fn chunk_read(&mut self) {
        self.ungranted += std::mem::take(&mut self.chunk_bytes);
        if self.ungranted >= WINDOW / 4 {
            let bytes = std::mem::take(&mut self.ungranted);
            self.slot
                .buffered
                .fetch_sub(bytes.min(self.slot.buffered.load(Ordering::Acquire)), Ordering::AcqRel);
            // Best effort: a broken connection ends the call anyway.
            let _ = self.slot.writer.send(&Message::Credit { id: self.slot.id, bytes });
        }
    }
}

/// What arrives for one call's upload, until its method reads it.
pub struct UploadSlot {
    id: u64,
    writer: MessageWriter,
    /// Bytes received and not yet granted back.
    buffered: AtomicU64,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    chunks: VecDeque<Encoded>,
    end: Option<Result<(), Error>>,
    waker: Option<Waker>,
}

impl std::fmt::Debug for UploadSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadSlot").field("id", &self.id).finish()
    }
}

impl UploadSlot {
    fn state(&self) -> MutexGuard<'_, SlotState> {
        // Every change leaves the state whole; a poisoned lock is usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection's uploads in flight, by call id. The map holds them weakly:
/// a call's upload lives as long as its call (its context, then its
/// `Upload` argument), and what arrives for a call that ended is dropped.
#[derive(Debug, Default)]
pub struct Uploads {
    slots: Mutex<IdMap<Weak<UploadSlot>>>,
    /// The uploads of calls read and not started yet (held, say), kept
    /// alive until their call starts and takes them.
    waiting: Mutex<IdMap<Arc<UploadSlot>>>,
}

impl Uploads {
    fn slots(&self) -> MutexGuard<'_, IdMap<Weak<UploadSlot>>> {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Call `id` carries an upload: its slot, credits going back through
    /// `writer`, kept until the call starts ([`Uploads::take`]).
    pub fn open(&self, id: u64, writer: &MessageWriter) -> Arc<UploadSlot> {
        let slot = Arc::new(UploadSlot {
            id,
            writer: writer.clone(),
            buffered: AtomicU64::new(0),
            state: Mutex::new(SlotState::default()),
        });
        self.slots().insert(id, Arc::downgrade(&slot));
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, slot.clone());
        slot
    }

    /// Call `id` starts (or is dropped): its upload, now its call's to
    /// keep.
    pub fn take(&self, id: u64) -> Option<Arc<UploadSlot>> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id)
    }

    /// Items for call `id`'s upload. `false` when the caller sent past its
    /// window (a broken or hostile peer: the connection should close).
    pub fn push(&self, id: u64, items: Encoded) -> bool {
        let slot = self.slots().get(&id).and_then(Weak::upgrade);
        let Some(slot) = slot else {
            // The call ended, or never had an upload: nothing to keep.
            self.slots().remove(&id);
            return true;
        };
        // The caller sends only while less than a window is out unread.
        let buffered = slot.buffered.fetch_add(items.wire_len() as u64, Ordering::AcqRel);
        if buffered > WINDOW {
            return false;
        }
        let waker = {
            let mut state = slot.state();
            state.chunks.push_back(items);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// The end of call `id`'s upload: its caller's failure, if any.
    pub fn end(&self, id: u64, failure: Option<String>) {
        let slot = self.slots().remove(&id).and_then(|w| w.upgrade());
        let Some(slot) = slot else { return };
        let waker = {
            let mut state = slot.state();
            state.end = Some(match failure {
                None => Ok(()),
                Some(why) => Err(Error::Protocol(format!("the caller's upload failed: {why}"))),
            });
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The connection ended: every upload still read ends with `reason`.
    pub fn fail_all(&self, reason: &str) {
        drop(std::mem::take(&mut *self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)));
        let slots: Vec<Arc<UploadSlot>> = self.slots().drain().filter_map(|(_, w)| w.upgrade()).collect();
        for slot in slots {
            let waker = {
                let mut state = slot.state();
                state.end.get_or_insert_with(|| Err(Error::ConnectionLost(reason.to_owned())));
                state.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}
