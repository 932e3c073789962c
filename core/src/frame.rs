//! Frames: bytes with no meaning yet, bounded in size.
//!
//! ```text
//! frame    = length:u32be body                      (length = body's size)
//! body     = [conn-id:8 seq:u64be tag:32] payload   (bracket: with a key only)
//! payload  = envelope-length:u32be envelope attachments
//! ```
//!
//! The envelope is a postcard message; attachments are the large blobs it
//! refers to (see [`crate::blob`]), one after another, so they can be written
//! from the caller's buffers and read into slices of the receive buffer
//! without copies.
//!
//! The length is checked against the limit as soon as its four bytes arrive,
//! before any memory is reserved for the body. Memory for a body is reserved
//! up front only for small frames, or within a process-wide budget
//! ([`SPECULATIVE_BUDGET`]); otherwise it grows with the bytes that actually
//! arrive, so that peers who announce large frames and send nothing cannot
//! make the process reserve memory.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{AUTH_HEADER_LEN, AuthError, CONN_ID_LEN, Opener, Sealer, TAG_LEN};
use crate::blob::{CodecError, Source, collect_attachments, supply_attachments};

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;
/// Bytes of the envelope length inside the payload.
pub(crate) const ENVELOPE_PREFIX_LEN: usize = 4;
/// Largest message any frame can carry: the 32-bit length covers the
/// message and up to 64 bytes of framing.
const MAX_MESSAGE: usize = u32::MAX as usize - 64;
/// Frames announcing at most this many bytes get their whole buffer at once:
/// cheap, and an attacker gains little from it.
const EAGER_RESERVE: usize = 64 * 1024;
/// How much all connections of the process together may reserve for frames
/// that were announced but have not arrived. Beyond it, buffers grow only as
/// fast as data arrives (doubling), which costs copies but no exposure.
pub const SPECULATIVE_BUDGET: usize = 256 * 1024 * 1024;
/// Bytes read at a time when no frame is pending.
const READ_CHUNK: usize = 16 * 1024;
/// Most slices handed to one vectored write (Linux's IOV_MAX is 1024).
const MAX_IO_SLICES: usize = 64;

static SPECULATIVE_IN_USE: AtomicUsize = AtomicUsize::new(0);

/// A share of [`SPECULATIVE_BUDGET`], returned when dropped.
#[derive(Debug)]
struct Grant(usize);

impl Grant {
    fn try_take(amount: usize) -> Option<Grant> {
        SPECULATIVE_IN_USE
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(amount).filter(|&total| total <= SPECULATIVE_BUDGET)
            })
            .ok()
            .map(|_| Grant(amount))
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        SPECULATIVE_IN_USE.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// Why a connection's frames could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[source] std::sync::Arc<io::Error>),
    /// The peer closed the connection in the middle of a frame.
    #[error("the peer closed the connection in the middle of a frame")]
    ClosedMidFrame,
    /// A frame announced (or would have) more bytes than the limit allows.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes (RMI_MAX_MESSAGE_SIZE)")]
    FrameTooLarge {
        /// The announced or encoded size.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The handshake or a frame's tag failed.
    #[error("authentication failed: {0}")]
    Auth(#[from] AuthError),
    /// A frame arrived intact but does not hold a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

impl From<io::Error> for TransportError {
    fn from(e: io::Error) -> Self {
        TransportError::Io(std::sync::Arc::new(e))
    }
}

impl From<TransportError> for crate::Error {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Io(_) | TransportError::ClosedMidFrame => {
                crate::Error::ConnectionLost(e.to_string())
            }
            TransportError::Auth(a) => crate::Error::Auth(a),
            TransportError::FrameTooLarge { .. } | TransportError::Malformed(_) => {
                crate::Error::Protocol(e.to_string())
            }
            TransportError::Encode(m) => crate::Error::Serialization(m),
        }
    }
}

/// Reads frames out of a byte stream: the receive buffer and the frame
/// being assembled.
#[derive(Debug)]
pub(crate) struct FrameReader {
    buf: BytesMut,
    /// Largest body accepted: the message limit plus the framing around it.
    max_body: usize,
    /// The message limit, as configured, for error reports.
    max_message: usize,
    /// Body length of the frame being assembled, once its prefix arrived.
    pending: Option<usize>,
    /// Budget held while a large frame is being assembled.
    grant: Option<Grant>,
}

impl FrameReader {
    /// A reader that refuses messages over `max_message` bytes; frames
    /// carry `overhead` bytes around the message.
    pub(crate) fn new(max_message: usize, overhead: usize) -> Self {
        let max_body = max_message.saturating_add(overhead);
        Self { buf: BytesMut::new(), max_body, max_message, pending: None, grant: None }
    }

    /// Takes the next whole frame body out of the buffer, if it is there.
    ///
    /// # Errors
    ///
    /// [`TransportError::FrameTooLarge`] as soon as a length prefix over the
    /// limit is seen.
    pub(crate) fn decode(&mut self) -> Result<Option<Bytes>, TransportError> {
        let len = match self.pending {
            Some(len) => len,
            None => {
                let Some(prefix) = self.buf.get(..LENGTH_PREFIX_LEN) else { return Ok(None) };
                let mut raw = [0; LENGTH_PREFIX_LEN];
                raw.copy_from_slice(prefix);
                let len = u32::from_be_bytes(raw) as usize;
                if len > self.max_body {
                    return Err(TransportError::FrameTooLarge { len: len as u64, max: self.max_message });
                }
                self.buf.advance(LENGTH_PREFIX_LEN);
                self.pending = Some(len);
                len
            }
        };
        if self.buf.len() >= len {
            self.pending = None;
            self.grant = None;
            return Ok(Some(self.buf.split_to(len).freeze()));
        }
        self.make_room(len);
        Ok(None)
    }

    /// Reserves room for the rest of a `len`-byte body, as the policy in the
    /// module documentation allows.
    fn make_room(&mut self, len: usize) {
        let missing = len.saturating_sub(self.buf.len());
        let spare = self.buf.capacity() - self.buf.len();
        if spare >= missing {
            return;
        }
        if len <= EAGER_RESERVE || self.grant.is_some() {
            self.buf.reserve(missing);
            return;
        }
        if let Some(grant) = Grant::try_take(len) {
            self.grant = Some(grant);
            self.buf.reserve(missing);
            return;
        }
        if spare == 0 {
            // Double what arrived so far, at least a read chunk.
            self.buf.reserve(self.buf.len().max(EAGER_RESERVE).min(missing));
        }
    }

    /// Reads more bytes from `io`; `Ok(0)` at end of stream.
    pub(crate) fn poll_fill<R: AsyncRead + ?Sized>(
        &mut self,
        io: Pin<&mut R>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if self.buf.capacity() == self.buf.len() {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(io, cx, &mut self.buf)
    }

    /// Whether the stream ended cleanly: between frames, with nothing buffered.
    pub(crate) fn at_boundary(&self) -> bool {
        self.pending.is_none() && self.buf.is_empty()
    }

    /// Polls for the next frame body; `None` at a clean end of stream.
    pub(crate) fn poll_frame<R: AsyncRead + ?Sized>(
        &mut self,
        mut io: Pin<&mut R>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, TransportError>>> {
        loop {
            match self.decode() {
                Ok(Some(body)) => return Poll::Ready(Some(Ok(body))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            match ready!(self.poll_fill(io.as_mut(), cx)) {
                Ok(0) if self.at_boundary() => return Poll::Ready(None),
                Ok(0) => return Poll::Ready(Some(Err(TransportError::ClosedMidFrame))),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }

    /// Bytes read from the stream but not yet handed out.
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// A message with a hand-written codec, for the path every call takes (see
/// `message::codec`): it writes the bytes postcard would, without serde's
/// generic machinery.
pub trait Wire: Sized {
    /// Appends the message's encoding to `out`, and its large blobs to
    /// `attachments`.
    fn encode(&self, out: &mut Vec<u8>, attachments: &mut Vec<Bytes>);

    /// Decodes a message from `envelope`, taking its attached blobs off the
    /// front of `attachments`.
    ///
    /// # Errors
    ///
    /// A description of what is malformed.
    fn decode(envelope: &Bytes, attachments: &mut Bytes) -> Result<Self, String>;
}

/// Reads a big-endian integer at `at`, or `None` past the end.
fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(raw))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(raw))
}

/// Checks a frame body's authentication (with a session) and splits its
/// payload into the envelope and the attachments after it.
fn open_payload(body: Bytes, session: Option<&mut Opener>) -> Result<(Bytes, Bytes), TransportError> {
    let payload = match session {
        Some(session) => {
            let header: [u8; AUTH_HEADER_LEN] = body
                .get(..AUTH_HEADER_LEN)
                .and_then(|h| h.try_into().ok())
                .ok_or(AuthError::ShortFrame { len: body.len() })?;
            let conn_id = header.get(..CONN_ID_LEN).unwrap_or_default();
            let seq = be_u64(&header, CONN_ID_LEN).unwrap_or_default();
            let tag = header.get(CONN_ID_LEN + 8..).unwrap_or_default();
            // Advancing, not slicing: no reference count to touch.
            let mut payload = body;
            payload.advance(AUTH_HEADER_LEN);
            session.open(conn_id, seq, tag, &[&payload])?;
            payload
        }
        None => body,
    };
    let malformed = |what: &str| TransportError::Malformed(what.to_owned());
    let envelope_len =
        be_u32(&payload, 0).ok_or_else(|| malformed("frame too short for its envelope length"))?;
    let envelope_end = ENVELOPE_PREFIX_LEN
        .checked_add(envelope_len as usize)
        .filter(|&end| end <= payload.len())
        .ok_or_else(|| malformed("envelope length runs past the end of the frame"))?;
    Ok((payload.slice(ENVELOPE_PREFIX_LEN..envelope_end), payload.slice(envelope_end..)))
}

/// Checks a frame body's authentication (with a session) and decodes its
/// message with serde, taking attachments as slices of the body.
///
/// # Errors
///
/// [`TransportError::Auth`] for a frame that fails authentication,
/// [`TransportError::Malformed`] for one that holds no valid message.
pub(crate) fn open_frame<T: DeserializeOwned>(
    body: Bytes,
    session: Option<&mut Opener>,
) -> Result<T, TransportError> {
    let (envelope, attachments) = open_payload(body, session)?;
    let malformed = |what: &str| TransportError::Malformed(what.to_owned());
    let (decoded, rest) = supply_attachments(Some(envelope.clone()), Source::Contiguous(attachments), || {
        postcard::take_from_bytes::<T>(&envelope).map(|(value, trailing)| (value, trailing.len()))
    });
    let (value, trailing) =
        decoded.map_err(|e| TransportError::Malformed(CodecError::from(e).to_string()))?;
    if trailing != 0 {
        return Err(TransportError::Malformed(CodecError::TrailingBytes(trailing).to_string()));
    }
    if !rest.is_some_and(|r| r.is_exhausted()) {
        return Err(malformed("bytes after the last attachment"));
    }
    Ok(value)
}

/// As [`open_frame`], for a message with a hand-written codec.
///
/// # Errors
///
/// As [`open_frame`].
pub(crate) fn open_wire_frame<T: Wire>(
    body: Bytes,
    session: Option<&mut Opener>,
) -> Result<T, TransportError> {
    let (envelope, mut attachments) = open_payload(body, session)?;
    let value = T::decode(&envelope, &mut attachments).map_err(TransportError::Malformed)?;
    if !attachments.is_empty() {
        return Err(TransportError::Malformed("bytes after the last attachment".into()));
    }
    Ok(value)
}

/// Writes postcard output straight into the staging buffer.
struct StagingFlavor<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for StagingFlavor<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Frames waiting to be written: small frames coalesced in one staging
/// buffer, large attachments as their own chunks, all written with vectored
/// writes in order.
#[derive(Debug, Default)]
pub(crate) struct FrameWriter {
    /// Chunks that go out before `staging`.
    chunks: VecDeque<Bytes>,
    /// Small frames, one after another (a plain vector: postcard writes
    /// into it a byte or a few at a time).
    staging: Vec<u8>,
    /// Bytes at the front of `staging` already written.
    written: usize,
    /// Bytes queued in `chunks` and `staging` together.
    queued: usize,
}

impl FrameWriter {
    /// Bytes waiting to be written.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Encodes `message` as one frame and queues it. Nothing is queued if it
    /// fails.
    ///
    /// # Errors
    ///
    /// [`TransportError::FrameTooLarge`] when the message (envelope and
    /// attachments) would exceed `max_message` bytes;
    /// [`TransportError::Encode`] when it cannot be encoded.
    pub(crate) fn push<T: Serialize + ?Sized>(
        &mut self,
        message: &T,
        session: Option<&mut Sealer>,
        max_message: usize,
    ) -> Result<(), TransportError> {
        self.push_with(session, max_message, |out, attachments| {
            let (encoded, attached) = collect_attachments(|| {
                postcard::serialize_with_flavor::<T, _, ()>(message, StagingFlavor(out))
            });
            attachments.extend(attached);
            encoded.map_err(|e| TransportError::Encode(e.to_string()))
        })
    }

    /// As [`FrameWriter::push`], for a message with a hand-written codec.
    ///
    /// # Errors
    ///
    /// [`TransportError::FrameTooLarge`], as [`FrameWriter::push`].
    pub(crate) fn push_wire<T: Wire>(
        &mut self,
        message: &T,
        session: Option<&mut Sealer>,
        max_message: usize,
    ) -> Result<(), TransportError> {
        self.push_with(session, max_message, |out, attachments| {
            message.encode(out, attachments);
            Ok(())
        })
    }

    /// Queues one frame whose envelope `encode` writes.
    fn push_with(
        &mut self,
        session: Option<&mut Sealer>,
        max_message: usize,
        encode: impl FnOnce(&mut Vec<u8>, &mut Vec<Bytes>) -> Result<(), TransportError>,
    ) -> Result<(), TransportError> {
        let start = self.staging.len();
        let auth_len = if session.is_some() { AUTH_HEADER_LEN } else { 0 };
        let header_len = LENGTH_PREFIX_LEN + auth_len + ENVELOPE_PREFIX_LEN;
        self.staging.resize(start + header_len, 0);
        let envelope_start = self.staging.len();
        let mut attachments = Vec::new();
        if let Err(e) = encode(&mut self.staging, &mut attachments) {
            self.staging.truncate(start);
            return Err(e);
        }
        let envelope_len = self.staging.len() - envelope_start;
        let attached: usize = attachments.iter().map(Bytes::len).sum();
        let message_len = envelope_len + attached;
        if message_len > max_message || message_len > MAX_MESSAGE {
            self.staging.truncate(start);
            return Err(TransportError::FrameTooLarge { len: message_len as u64, max: max_message });
        }
        let body_len = auth_len + ENVELOPE_PREFIX_LEN + message_len;
        let frame = self.staging.get_mut(start..).unwrap_or_default();
        let (prefix, rest) = frame.split_at_mut(LENGTH_PREFIX_LEN);
        prefix.copy_from_slice(&(body_len as u32).to_be_bytes());
        let (auth, rest) = rest.split_at_mut(auth_len);
        let (envelope_prefix, envelope) = rest.split_at_mut(ENVELOPE_PREFIX_LEN);
        envelope_prefix.copy_from_slice(&(envelope_len as u32).to_be_bytes());
        if let Some(session) = session {
            let (conn_id, seq, mut tag) = session.seal();
            tag.update(envelope_prefix);
            tag.update(envelope);
            for a in &attachments {
                tag.update(a);
            }
            let (id_field, rest) = auth.split_at_mut(CONN_ID_LEN);
            let (seq_field, tag_field) = rest.split_at_mut(8);
            id_field.copy_from_slice(&conn_id);
            seq_field.copy_from_slice(&seq.to_be_bytes());
            let tag: [u8; TAG_LEN] = tag.finish();
            tag_field.copy_from_slice(&tag);
        }
        if !attachments.is_empty() {
            let mut frames = Bytes::from(std::mem::take(&mut self.staging));
            frames.advance(std::mem::take(&mut self.written));
            self.chunks.push_back(frames);
            self.chunks.extend(attachments.into_iter().filter(|a| !a.is_empty()));
        }
        self.queued += LENGTH_PREFIX_LEN + body_len;
        Ok(())
    }

    /// Points `slots` at the queued pieces, in the order they go out; returns
    /// how many it filled.
    fn gather<'a>(&'a self, slots: &mut [IoSlice<'a>]) -> usize {
        let staged = self.staging.get(self.written..).unwrap_or_default();
        let pieces = self.chunks.iter().map(Bytes::as_ref).chain(std::iter::once(staged));
        let mut count = 0;
        for (slot, piece) in slots.iter_mut().zip(pieces.filter(|p| !p.is_empty())) {
            *slot = IoSlice::new(piece);
            count += 1;
        }
        count
    }

    /// Writes everything queued, with vectored writes.
    pub(crate) fn poll_flush<W: AsyncWrite + ?Sized>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.queued > 0 {
            let n = {
                let mut slots = [IoSlice::new(&[]); MAX_IO_SLICES];
                let count = self.gather(&mut slots);
                ready!(io.as_mut().poll_write_vectored(cx, slots.get(..count).unwrap_or_default()))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.consume(n);
        }
        io.poll_flush(cx)
    }

    /// Writes as much as `write` takes without blocking; `Ok(true)` once
    /// nothing is left, `Ok(false)` when the socket is full.
    ///
    /// # Errors
    ///
    /// The socket's error, other than `WouldBlock`.
    pub(crate) fn try_flush(
        &mut self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<bool> {
        while self.queued > 0 {
            let result = if self.chunks.is_empty() {
                // The common case, small frames only: one slice.
                write(&[IoSlice::new(self.staging.get(self.written..).unwrap_or_default())])
            } else {
                let mut slots = [IoSlice::new(&[]); MAX_IO_SLICES];
                let count = self.gather(&mut slots);
                write(slots.get(..count).unwrap_or_default())
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Drops `n` written bytes from the front of the queue.
    fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            match self.chunks.front_mut() {
                Some(chunk) if chunk.len() <= n => {
                    n -= chunk.len();
                    self.chunks.pop_front();
                }
                Some(chunk) => {
                    chunk.advance(n);
                    n = 0;
                }
                None => {
                    self.written += n;
                    n = 0;
                }
            }
        }
        if self.written >= self.staging.len() {
            // Keep the allocation for the next frames.
            self.staging.clear();
            self.written = 0;
        }
    }
}
