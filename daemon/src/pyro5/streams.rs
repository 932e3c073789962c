//! rmi's streams as Pyro5 iterators: a method that returns an
//! `rmi::Stream` answers a Pyro5 client with a stream id (the `STRM`
//! annotation), and the client pulls the items one by one through Pyro5's
//! daemon object (`get_next_stream_item`, `close_stream`), as Pyro5's own
//! daemons serve generators.
//!
//! The producer is polled only when the client asks for an item, so a slow
//! client holds the producer back; the items of at most one chunk wait here.
//! A connection holds at most [`MAX_STREAMS`] open streams; they end with it.

use std::collections::{HashMap, VecDeque};

use rmi_core::json::JsonReplies;
use rmi_core::pyro5::body;
use rmi_core::stream::Source;
use serde_json::Value;

/// Open streams per connection, at most.
pub(crate) const MAX_STREAMS: usize = 64;

/// One stream, as far as the client has read it.
struct Open {
    source: Source,
    /// Items of the last chunk not read yet.
    ready: VecDeque<Value>,
}

/// The open streams of one Pyro5 connection.
#[derive(Default)]
pub(crate) struct Streams {
    open: HashMap<String, Open>,
}

/// A fresh stream id, in a uuid's text form (as Pyro5 makes them).
fn stream_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    let group = |range: std::ops::Range<usize>| -> String {
        bytes.get(range).unwrap_or_default().iter().map(|b| format!("{b:02x}")).collect()
    };
    Some(format!("{}-{}-{}-{}-{}", group(0..4), group(4..6), group(6..8), group(8..10), group(10..16)))
}

impl Streams {
    /// Keeps `source` open; its id, or the exception that says why not.
    pub(crate) fn open(&mut self, source: Source) -> Result<String, Value> {
        if self.open.len() >= MAX_STREAMS {
            return Err(body::exception(
                "Pyro5.errors.PyroError",
                &format!("this connection has {MAX_STREAMS} streams open already: read or close one first"),
                &[],
            ));
        }
        let id = stream_id()
            .ok_or_else(|| body::exception("Pyro5.errors.PyroError", "no randomness for a stream id", &[]))?;
        self.open.insert(id.clone(), Open { source, ready: VecDeque::new() });
        Ok(id)
    }

    /// The next item of stream `id`: `StopIteration` at its end (the stream
    /// is closed then), its failure as the exception.
    pub(crate) async fn next(&mut self, id: &str) -> Result<Value, Value> {
        let Some(open) = self.open.get_mut(id) else {
            return Err(body::exception("Pyro5.errors.PyroError", "item stream terminated", &[]));
        };
        loop {
            if let Some(item) = open.ready.pop_front() {
                return Ok(item);
            }
            let source = &mut open.source;
            let chunk = JsonReplies(std::future::poll_fn(|cx| source.poll_chunk(cx))).await;
            match chunk {
                Some(Ok(chunk)) => {
                    let items =
                        chunk.json_bytes().and_then(|text| serde_json::from_slice::<Vec<Value>>(text).ok());
                    match items {
                        Some(items) => open.ready.extend(items),
                        None => {
                            self.open.remove(id);
                            return Err(body::exception(
                                "Pyro5.errors.PyroError",
                                "a streamed item was not encoded as JSON",
                                &[],
                            ));
                        }
                    }
                }
                Some(Err(e)) => {
                    self.open.remove(id);
                    return Err(body::remote_exception(&e, "the stream"));
                }
                None => {
                    self.open.remove(id);
                    return Err(body::exception("builtins.StopIteration", "", &[]));
                }
            }
        }
    }

    /// Closes stream `id` (the client stopped reading it).
    pub(crate) fn close(&mut self, id: &str) {
        self.open.remove(id);
    }
}
