//! [`Streaming`]: the caller's side of a method that streams its results.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rmi_core::peer::Scope;
use rmi_core::{Encoded, Error};
use serde::de::DeserializeOwned;

use crate::connection::{CREDIT_EVERY, ClientConnection};

type NextChunk = Pin<Box<dyn Future<Output = Result<Option<Encoded>, Error>> + Send>>;

/// The results of a streaming call, as they come: an async
/// [`Stream`](futures::Stream) of `Result<T, Error>`.
///
/// Three outcomes end it, each its own: the method's stream ended (the
/// stream yields `None`), it failed (one `Err` with the method's error,
/// then `None`), or the call was cut off (one `Err`: the connection broke,
/// [`Error::ConnectionLost`]; no chunk came within the proxy's timeout,
/// [`Error::Timeout`]; the daemon shut down). Dropping it before its end
/// cancels the call: the producer is dropped on the daemon within one
/// round trip.
///
/// Items are read ahead at most one window (1 MiB of items) of what your
/// code has taken: a consumer that stops reading stops the producer. A
/// stream does not survive a reconnect: after [`Error::ConnectionLost`],
/// call again.
#[must_use = "a stream does nothing unless polled"]
pub struct Streaming<T> {
    connection: Arc<ClientConnection>,
    id: u64,
    timeout: Option<Duration>,
    scope: Scope,
    method: rmi_core::Text,
    /// The items of the chunk being read.
    items: std::vec::IntoIter<T>,
    /// The size of that chunk, granted back once its last item is taken.
    chunk_bytes: u64,
    /// Bytes read and not yet granted back.
    ungranted: u64,
    next: Option<NextChunk>,
    ended: bool,
}

impl<T> std::fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("method", &self.method)
            .field("address", &self.connection.address())
            .field("ended", &self.ended)
            .finish()
    }
}

impl<T> Streaming<T> {
    pub(crate) fn new(
        connection: Arc<ClientConnection>,
        id: u64,
        method: rmi_core::Text,
        timeout: Option<Duration>,
    ) -> Self {
        let scope = connection.scope();
        Streaming {
            connection,
            id,
            timeout,
            scope,
            method,
            items: Vec::new().into_iter(),
            chunk_bytes: 0,
            ungranted: 0,
            next: None,
            ended: false,
        }
    }

    /// Counts the current chunk read, granting credit when enough is.
    fn chunk_read(&mut self) {
        self.ungranted += std::mem::take(&mut self.chunk_bytes);
        if self.ungranted >= CREDIT_EVERY {
            self.connection.credit(self.id, std::mem::take(&mut self.ungranted));
        }
    }
}

// Nothing in it is pinned in place: its items are moved out whole.
impl<T> Unpin for Streaming<T> {}

impl<T: DeserializeOwned> futures::Stream for Streaming<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.items.next() {
                if this.items.len() == 0 {
                    this.chunk_read();
                }
                return Poll::Ready(Some(Ok(item)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let next = this.next.get_or_insert_with(|| {
                let (connection, id, timeout) = (this.connection.clone(), this.id, this.timeout);
                Box::pin(async move { connection.next_chunk(id, timeout).await })
            });
            let outcome = match next.as_mut().poll(cx) {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => return Poll::Pending,
            };
            this.next = None;
            match outcome {
                Ok(Some(chunk)) => {
                    let decoded = if chunk.carries_references() {
                        this.scope.enter(|| chunk.decode::<Vec<T>>())
                    } else {
                        chunk.decode::<Vec<T>>()
                    };
                    match decoded {
                        Ok(items) => {
                            this.chunk_bytes = chunk.wire_len() as u64;
                            this.items = items.into_iter();
                            if this.items.len() == 0 {
                                this.chunk_read();
                            }
                        }
                        Err(e) => {
                            this.ended = true;
                            this.connection.close_stream(this.id);
                            return Poll::Ready(Some(Err(Error::Serialization(format!(
                                "the items of {:?} do not decode as {}: {e}",
                                this.method,
                                std::any::type_name::<T>()
                            )))));
                        }
                    }
                }
                Ok(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Err(e) => {
                    this.ended = true;
                    this.connection.close_stream(this.id);
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.items.len(), if self.ended { Some(self.items.len()) } else { None })
    }
}

impl<T> Drop for Streaming<T> {
    fn drop(&mut self) {
        // Drop the pending read first: it may hold the connection's reader.
        self.next = None;
        self.connection.close_stream(self.id);
    }
}
