//! Streams of items from a method to its caller.
//!
//! A method that returns a [`Stream<T>`] answers its call with items as it
//! produces them, then an end: the call's [`crate::Message::Reply`], `Ok`
//! for the end of the items, `Err` for a failure. Items travel in chunks
//! ([`crate::Message::Items`]): whatever the producer has ready when the
//! connection may send, up to [`CHUNK_BYTES`], so that a fast producer of
//! small items pays one frame per many items and a slow one sends each item
//! at once.
//!
//! Flow control is credit-based and driven by the consumer's *reading*: the
//! producer may have at most [`WINDOW`] bytes of chunks sent that the
//! consumer has not yet read; the consumer grants them back
//! ([`crate::Message::Credit`]) as its code takes the items, not as bytes
//! arrive. A consumer that stops reading stops the producer after one
//! window, and neither side holds more than that.
//!
//! The caller cancels a stream by dropping it ([`crate::Message::Cancel`]
//! with the call's id): the producer is dropped at once, so its `Drop`
//! runs. A closed connection drops every producer on it. Streams do not
//! survive a reconnect: the consumer sees [`crate::Error::ConnectionLost`]
//! and may call again.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::Serialize;

use crate::encoded::Encoded;
use crate::error::{RemoteError, RemoteErrorKind};

mod credit;
mod upload;

pub use credit::Streams;
pub use upload::{Upload, UploadSlot, Uploads, collect_upload};

/// Bytes of items (as [`Encoded::wire_len`] counts them) a producer may
/// have sent beyond what its consumer has read.
pub const WINDOW: u64 = 1024 * 1024;

/// About how many bytes one chunk of items carries at most; a single
/// larger item travels alone.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Most items in one chunk.
const MAX_CHUNK_ITEMS: usize = 4096;

/// Items in the first chunk of a stream: one, as its items' size is not yet
/// known (each later chunk is sized from the one before).
const FIRST_CHUNK_ITEMS: usize = 1;

type Items<T> = Pin<Box<dyn futures::Stream<Item = Result<T, RemoteError>> + Send + 'static>>;

/// What an exposed method returns to stream its results: the caller gets
/// the items one by one as they are produced (`rmi::Streaming<T>` on its
/// side), under flow control (see the module's documentation).
///
/// ```
/// # use rmi_core::stream::Stream;
/// // Any stream, iterator or fallible stream of values that can travel:
/// let numbers = Stream::iter(0..1_000_000u64);
/// let words = Stream::new(futures::stream::iter(["a".to_owned(), "b".to_owned()]));
/// ```
#[must_use = "a stream does nothing unless returned to a caller"]
pub struct Stream<T> {
    items: Items<T>,
}

impl<T> std::fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stream")
    }
}

impl<T: Serialize + Send + 'static> Stream<T> {
    /// Streams the items of `stream`; it is polled on the runtime, so it
    /// must not block (see [`Stream::blocking`]).
    pub fn new(stream: impl futures::Stream<Item = T> + Send + 'static) -> Self {
        use futures::StreamExt;
        Stream { items: Box::pin(stream.map(Ok)) }
    }

    /// Streams the items of a fallible stream: its first error ends the
    /// stream, and reaches the caller as an application error with its
    /// message and source chain.
    pub fn try_new<E>(stream: impl futures::Stream<Item = Result<T, E>> + Send + 'static) -> Self
    where
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        use futures::StreamExt;
        Stream {
            items: Box::pin(stream.map(|item| {
                item.map_err(|e| {
                    let e: Box<dyn std::error::Error + Send + Sync + 'static> = e.into();
                    RemoteError::from_error(RemoteErrorKind::Application, &*e)
                })
            })),
        }
    }

    /// Streams the items of an iterator that does not block.
    pub fn iter<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::new(futures::stream::iter(items))
    }

    /// Streams the items of an iterator that may block (reading a file, a
    /// database cursor): it runs on tokio's blocking pool, a few items
    /// ahead of the connection, and stops when the caller stops reading or
    /// drops the stream.
    pub fn blocking<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T> + Send + 'static,
    {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<T>(64);
        // The iterator runs in the context of the call that made it.
        let context = crate::context::context().unwrap_or_default();
        let mut started = Some(move || {
            context.sync_scope(|| {
                for item in items {
                    if tx.blocking_send(item).is_err() {
                        // The stream was dropped: stop producing.
                        return;
                    }
                }
            });
        });
        let stream = futures::stream::poll_fn(move |cx| {
            if let Some(produce) = started.take() {
                drop(tokio::task::spawn_blocking(produce));
            }
            rx.poll_recv(cx).map(|item| item.map(Ok))
        });
        Stream { items: Box::pin(stream) }
    }

    /// A stream that fails at once with `error` (an application error).
    pub fn error(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        let error: Box<dyn std::error::Error + Send + Sync + 'static> = error.into();
        let error = RemoteError::from_error(RemoteErrorKind::Application, &*error);
        Stream { items: Box::pin(futures::stream::once(async move { Err(error) })) }
    }

    /// The stream as its producer: what a daemon polls for chunks.
    pub fn into_source(self) -> Source {
        Source(Box::pin(Producer { state: State::Running(self.items), ..Producer::new() }))
    }
}

/// A stream's producer, its item type erased: it yields chunks of encoded
/// items. What `#[expose]`'s generated dispatch hands the daemon.
pub struct Source(Pin<Box<dyn Produce>>);

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Source")
    }
}

impl Source {
    /// The producer of the stream `future` yields (an `async` method
    /// returning a stream): the future runs first, as the stream's start.
    pub fn after<T, F>(future: F) -> Source
    where
        T: Serialize + Send + 'static,
        F: Future<Output = Stream<T>> + Send + 'static,
    {
        Source(Box::pin(Producer::<T> { state: State::Starting(Box::pin(future)), ..Producer::new() }))
    }

    /// The producer of the stream a synchronous method returns, the method
    /// run on tokio's blocking pool (it may block).
    pub fn blocking<T, F>(method: F) -> Source
    where
        T: Serialize + Send + 'static,
        F: FnOnce() -> Stream<T> + Send + 'static,
    {
        // The method runs in its call's context, on the pool's thread too.
        let context = crate::context::context().unwrap_or_default();
        Source::after(async move {
            match tokio::task::spawn_blocking(move || context.sync_scope(method)).await {
                Ok(stream) => stream,
                Err(e) if e.is_panic() => Stream {
                    items: Box::pin(futures::stream::once(async move {
                        Err(crate::error::panicked("the stream's method", e.into_panic()))
                    })),
                },
                Err(_) => Stream {
                    items: Box::pin(futures::stream::once(async {
                        Err(RemoteError::new(RemoteErrorKind::ShuttingDown, "the runtime is shutting down"))
                    })),
                },
            }
        })
    }

    /// The next chunk of items (as an encoded `Vec` of them), the stream's
    /// failure, or `None` at its end. A panic in the producer is its
    /// failure.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Encoded, RemoteError>>> {
        self.0.as_mut().poll_chunk(cx)
    }

    /// As [`Source::poll_chunk`], awaited.
    pub async fn next_chunk(&mut self) -> Option<Result<Encoded, RemoteError>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }
}

/// A producer of chunks, its item type erased.
trait Produce: Send {
    fn poll_chunk(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Encoded, RemoteError>>>;
}

enum State<T> {
    /// The method is still making its stream.
    Starting(Pin<Box<dyn Future<Output = Stream<T>> + Send + 'static>>),
    Running(Items<T>),
    /// The end or the failure was seen (after the items before it went).
    Ending(Option<RemoteError>),
    Done,
}

struct Producer<T> {
    state: State<T>,
    /// The chunk being gathered; its allocation is reused.
    chunk: Vec<T>,
    /// How many items the next chunk may take, from the size of the last.
    cap: usize,
}

impl<T> Producer<T> {
    fn new() -> Self {
        Producer { state: State::Done, chunk: Vec::new(), cap: FIRST_CHUNK_ITEMS }
    }
}

// The producer is never moved out of once pinned: nothing in it is
// self-referential (the boxed futures and streams are pinned on their own).
impl<T> Unpin for Producer<T> {}

impl<T: Serialize + Send + 'static> Producer<T> {
    /// Gathers the items ready now, up to the chunk's cap.
    fn gather(&mut self, cx: &mut Context<'_>) -> Result<(), RemoteError> {
        loop {
            match &mut self.state {
                State::Starting(future) => match future.as_mut().poll(cx) {
                    Poll::Ready(stream) => self.state = State::Running(stream.items),
                    Poll::Pending => return Ok(()),
                },
                State::Running(items) => {
                    while self.chunk.len() < self.cap {
                        match items.as_mut().poll_next(cx) {
                            Poll::Ready(Some(Ok(item))) => self.chunk.push(item),
                            Poll::Ready(Some(Err(e))) => {
                                self.state = State::Ending(Some(e));
                                return Ok(());
                            }
                            Poll::Ready(None) => {
                                self.state = State::Ending(None);
                                return Ok(());
                            }
                            Poll::Pending => return Ok(()),
                        }
                    }
                    return Ok(());
                }
                State::Ending(_) | State::Done => return Ok(()),
            }
        }
    }

    /// Encodes the gathered items as one chunk, and sizes the next one.
    fn encode(&mut self) -> Result<Encoded, RemoteError> {
        let encoded = if crate::json::replying_in_json() {
            // Read by a front door that speaks JSON (Pyro5's iterators).
            serde_json::to_vec(&self.chunk).map(|text| Encoded::from_json(text.into())).map_err(|e| {
                RemoteError::new(
                    RemoteErrorKind::Internal,
                    format!("a streamed item cannot be written as JSON: {e}"),
                )
            })
        } else {
            Encoded::encode(&self.chunk).map_err(|e| {
                RemoteError::new(
                    RemoteErrorKind::Internal,
                    format!("a streamed item could not be encoded: {e}"),
                )
            })
        };
        if let Ok(encoded) = &encoded {
            let each = (encoded.wire_len() / self.chunk.len().max(1)).max(1);
            self.cap = (CHUNK_BYTES / each).clamp(1, MAX_CHUNK_ITEMS);
        }
        self.chunk.clear();
        encoded
    }
}

impl<T: Serialize + Send + 'static> Produce for Producer<T> {
    fn poll_chunk(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Encoded, RemoteError>>> {
        let this = self.get_mut();
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| this.gather(cx))) {
            this.chunk.clear();
            this.state = State::Ending(Some(crate::error::panicked("the stream", panic)));
        }
        if !this.chunk.is_empty() {
            return Poll::Ready(Some(this.encode()));
        }
        match std::mem::replace(&mut this.state, State::Done) {
            State::Ending(None) | State::Done => Poll::Ready(None),
            State::Ending(Some(e)) => Poll::Ready(Some(Err(e))),
            running => {
                this.state = running;
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(mut source: Source) -> Vec<Result<Vec<u64>, RemoteError>> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut out = Vec::new();
            while let Some(chunk) = source.next_chunk().await {
                out.push(chunk.map(|c| c.decode::<Vec<u64>>().unwrap()));
            }
            out
        })
    }

    #[test]
    fn ready_items_travel_together_and_chunks_grow_to_their_size() {
        let got = chunks(Stream::iter(0..10_000u64).into_source());
        let items: Vec<u64> = got.iter().flat_map(|c| c.clone().unwrap()).collect();
        assert_eq!(items, (0..10_000).collect::<Vec<_>>());
        assert_eq!(got[0].as_ref().unwrap().len(), FIRST_CHUNK_ITEMS);
        assert!(got[1].as_ref().unwrap().len() > FIRST_CHUNK_ITEMS, "{}", got.len());
        assert!(got.len() < 10, "{} chunks", got.len());
    }

    #[test]
    fn an_error_ends_the_stream_after_the_items_before_it() {
        let items = futures::stream::iter(vec![Ok(1u64), Ok(2), Err("broken"), Ok(3)]);
        let mut got = chunks(Stream::try_new(items).into_source());
        let e = got.pop().unwrap().unwrap_err();
        let items: Vec<u64> = got.into_iter().flat_map(Result::unwrap).collect();
        assert_eq!(items, [1, 2]);
        assert_eq!(e.kind(), RemoteErrorKind::Application);
        assert!(e.message().contains("broken"), "{e}");
    }

    #[test]
    fn a_panic_in_the_producer_is_its_failure() {
        use futures::StreamExt;
        let items = futures::stream::iter(0..5u64).map(|i| if i == 3 { panic!("three") } else { i });
        let got = chunks(Stream::new(items).into_source());
        let e = got.last().unwrap().as_ref().unwrap_err();
        assert_eq!(e.kind(), RemoteErrorKind::Panic);
        assert!(e.message().contains("three"), "{e}");
    }

    #[test]
    fn a_blocking_iterator_and_an_async_start_stream_too() {
        let got = chunks(Stream::blocking(0..300u64).into_source());
        let items: Vec<u64> = got.into_iter().flat_map(Result::unwrap).collect();
        assert_eq!(items, (0..300).collect::<Vec<_>>());
        let got = chunks(Source::after(async { Stream::iter([7u64]) }));
        assert_eq!(got.len(), 1);
        let got = chunks(Source::blocking(|| Stream::iter([8u64, 9])));
        let items: Vec<u64> = got.into_iter().flat_map(Result::unwrap).collect();
        assert_eq!(items, [8, 9]);
    }
}
