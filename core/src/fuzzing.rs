//! Entry points for the fuzz targets in `fuzz/` (and their regression
//! tests): each runs the real decoding code over arbitrary bytes. Not part
//! of the API.

// A broken invariant here is a fuzzing finding: asserting it is the point.
#![allow(clippy::panic)]

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::auth::{Key, Role, Session};
use crate::frame::{FrameReader, Wire};
use crate::message::{Request, Response};

/// Feeds `data` to a frame reader as a byte stream (in pieces of
/// `chunk` bytes) and opens every frame it yields as a request, with a
/// session when `keyed`. Returns how many frames decoded into requests.
pub fn frames(data: &[u8], chunk: usize, max_message: usize, keyed: bool) -> usize {
    let overhead = crate::frame::ENVELOPE_PREFIX_LEN + if keyed { crate::auth::AUTH_HEADER_LEN } else { 0 };
    let mut reader = FrameReader::new(max_message, overhead);
    let mut opener = keyed.then(|| {
        let (_, opener) = Session::new(&Key::from("fuzz"), Role::Server, &[1; 32], &[2; 32]).split();
        opener
    });
    let mut io = Pieces { data, chunk: chunk.max(1) };
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut decoded = 0;
    // Each poll consumes input or ends: bounded by the input's length.
    for _ in 0..=data.len() + 1 {
        match reader.poll_frame(Pin::new(&mut io), &mut cx) {
            Poll::Ready(Some(Ok(body))) => {
                if crate::frame::open_wire_frame::<Request>(body, opener.as_mut()).is_ok() {
                    decoded += 1;
                }
            }
            Poll::Ready(Some(Err(_)) | None) | Poll::Pending => break,
        }
    }
    decoded
}

/// Decodes `envelope` (with `attachments` after it) as a request and as a
/// response, with the hand-written codec and with serde, and checks that a
/// message that decodes encodes back to the same bytes.
pub fn messages(envelope: &[u8], attachments: &[u8]) {
    let envelope = Bytes::copy_from_slice(envelope);
    let mut rest = Bytes::copy_from_slice(attachments);
    if let Ok(request) = Request::decode(&envelope, &mut rest.clone()) {
        let mut out = Vec::new();
        let mut attached = Vec::new();
        request.encode(&mut out, &mut attached);
        assert!(Request::decode(&Bytes::from(out), &mut Bytes::from(attached.concat())).is_ok());
    }
    let _ = Response::decode(&envelope, &mut rest);
    let _ = postcard::from_bytes::<Request>(&envelope);
    let _ = postcard::from_bytes::<Response>(&envelope);
    let _ = crate::blob::Encoded::decode_wire(
        &mut crate::message::codec::Reader::new(&envelope),
        &mut Bytes::new(),
    )
    .map(|e| e.decode::<(u64, String, crate::blob::Blob, Vec<u8>)>());
}

/// Runs the server's and the client's handshake against `data` as what
/// the peer sends, with and without a key.
pub fn handshakes(data: &[u8]) {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(_) => return,
    };
    let key = Key::from("fuzz");
    runtime.block_on(async {
        for key in [None, Some(&key)] {
            let mut io = Pieces { data, chunk: 7 };
            let _ = crate::handshake::server_handshake(&mut io, key).await;
            let mut io = Pieces { data, chunk: 7 };
            let _ = crate::handshake::client_handshake(&mut io, key).await;
        }
    });
}

/// Parses `text` as every kind of URI, and checks that what parses prints
/// back to text that parses to the same URI.
pub fn uris(text: &str) {
    if let Ok(uri) = text.parse::<crate::uri::Uri>() {
        let again: crate::uri::Uri =
            uri.to_string().parse().unwrap_or_else(|e| panic!("{uri} does not parse again: {e}"));
        assert_eq!(again, uri);
    }
    let _ = crate::uri::parse_bind_address(text);
    let _ = text.parse::<crate::uri::Host>();
}

/// A byte stream that yields `data` a few bytes at a time and swallows
/// writes.
struct Pieces<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (head, tail) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = tail;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Pieces<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
