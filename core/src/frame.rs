//! Frames: bytes with no meaning yet, bounded in size.
//!
//! ```text
//! frame    = length:u32be body                (length = body's size)
//! body     = payload                          without a key
//!          | kind:u8 data-or-seal             with a key
//! data-or-seal
//!          = payload                          kind 0: a data frame
//!          | conn-id:8 seq:u64be tag:32       kind 1: a seal
//! payload  = envelope-length:u32be envelope attachments
//! ```
//!
//! The envelope is a postcard message; attachments are the large blobs it
//! refers to (see [`crate::blob`]), one after another, so they can be written
//! from the caller's buffers and read into slices of the receive buffer
//! without copies.
//!
//! With a key, frames travel in *runs* (module `frame::run`): the data
//! frames queued since the last seal, then a seal frame. The seal's tag is
//! HMAC-SHA256 under the session key over `direction:u8 conn-id:8
//! seq:u64be`, followed by the wire bytes (length prefix, kind byte,
//! payload with its attachments) of every data frame of the run, in order;
//! `seq` counts runs, from 0, in each direction. The sender seals whenever
//! it is about to write what it queued, so frames coalesced into one write
//! share one tag, and before a run's wire bytes, its seal included, would
//! pass the message limit plus 62 bytes (one frame carrying the largest
//! message, and its seal). The receiver holds a run's frames until its seal
//! verifies (see [`crate::auth`] for what it checks) and decodes none of
//! them otherwise; it refuses a run past that bound, and a seal that closes
//! no frames. Without a key there is no kind byte and no seal.
//!
//! The length is checked against the limit as soon as its four bytes arrive,
//! before any memory is reserved for the body, and with a key against what
//! the run may still take. Memory for a body is reserved up front only for
//! small frames, or within a process-wide budget ([`SPECULATIVE_BUDGET`]);
//! otherwise it grows with the bytes that actually arrive, so that peers who
//! announce large frames and send nothing cannot make the process reserve
//! memory.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{AuthError, Opener, Sealer};
use crate::blob::{CodecError, Source, codec_error, collect_attachments, supply_attachments};

pub(crate) mod run;

use run::{KIND_DATA, KIND_LEN, SEAL_BODY_LEN, SEAL_FRAME_LEN, Unsealer, run_limit, seal_frame};

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
    /// TLS failed: a certificate refused (either way), or a broken record.
    #[error("TLS: {0}")]
    Tls(crate::tls::TlsError),
}

impl From<io::Error> for TransportError {
    fn from(e: io::Error) -> Self {
        // rustls's errors reach here wrapped in I/O errors (by tokio-rustls,
        // and by rmi's TLS stream): they are told apart, for a clear error.
        if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return TransportError::Tls(crate::tls::TlsError::Failed(std::sync::Arc::new(tls.clone())));
        }
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
            TransportError::Tls(t) => crate::Error::Tls(t),
        }
    }
}

/// Reads frames out of a byte stream: the receive buffer, the frame being
/// assembled and, with a key, the run being checked.
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
    /// With a key: frames held until their run's seal verifies.
    runs: Option<Unsealer>,
}

impl FrameReader {
    /// A reader that refuses messages over `max_message` bytes, and with an
    /// `opener` (a key) checks runs and hands out only verified frames.
    pub(crate) fn new(max_message: usize, opener: Option<Opener>) -> Self {
        let max_body = match opener {
            Some(_) => max_message.saturating_add(KIND_LEN + ENVELOPE_PREFIX_LEN).max(SEAL_BODY_LEN),
            None => max_message.saturating_add(ENVELOPE_PREFIX_LEN),
        };
        let runs = opener.map(|opener| Unsealer::new(opener, max_message));
        Self { buf: BytesMut::new(), max_body, max_message, pending: None, grant: None, runs }
    }

    /// Takes the next whole frame body out of the buffer, if it is there.
    ///
    /// # Errors
    ///
    /// [`TransportError::FrameTooLarge`] as soon as a length prefix over the
    /// limit is seen; with a key, [`AuthError::RunTooLarge`] as soon as one
    /// would take the run past its bound.
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
                if let Some(runs) = &mut self.runs {
                    runs.announce(len)?;
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

    /// Whether another frame is at least partly here already: released and
    /// waiting, or bytes of it buffered.
    pub(crate) fn has_buffered(&self) -> bool {
        !self.at_boundary() || self.runs.as_ref().is_some_and(Unsealer::has_released)
    }

    /// Polls for the next frame's payload (with a key: the next frame of a
    /// run whose seal verified); `None` at a clean end of stream.
    pub(crate) fn poll_frame<R: AsyncRead + ?Sized>(
        &mut self,
        mut io: Pin<&mut R>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, TransportError>>> {
        loop {
            if let Some(payload) = self.runs.as_mut().and_then(Unsealer::next_released) {
                return Poll::Ready(Some(Ok(payload)));
            }
            // Without a frame's length here nor one announced, there is
            // nothing to decode: straight to reading.
            let nothing_here = self.pending.is_none() && self.buf.len() < LENGTH_PREFIX_LEN;
            match if nothing_here { Ok(None) } else { self.decode() } {
                Ok(Some(body)) => match &mut self.runs {
                    None => return Poll::Ready(Some(Ok(body))),
                    Some(runs) => {
                        if let Err(e) = runs.take(body) {
                            return Poll::Ready(Some(Err(e.into())));
                        }
                        continue;
                    }
                },
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            match ready!(self.poll_fill(io.as_mut(), cx)) {
                Ok(0) if self.at_boundary() => return Poll::Ready(self.end()),
                Ok(0) => return Poll::Ready(Some(Err(TransportError::ClosedMidFrame))),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }

    /// What a clean end of stream means: the end, unless frames were still
    /// waiting for their seal.
    fn end(&self) -> Option<Result<Bytes, TransportError>> {
        let frames = self.runs.as_ref().map_or(0, Unsealer::unsealed_frames);
        (frames > 0).then(|| Err(AuthError::UnsealedAtEnd { frames }.into()))
    }

    /// Bytes read from the stream but not yet handed out.
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// What a message with a hand-written codec writes; the sending half of
/// [`Wire`], on its own so that a message can be sent from borrowed parts
/// (a call from where it lies, not moved into a [`crate::Message`] first).
pub trait Encode {
    /// Appends the message's encoding to `out`, and its large blobs to
    /// `attachments`.
    fn encode(&self, out: &mut Vec<u8>, attachments: &mut Vec<Bytes>);
}

/// A message with a hand-written codec, for the path every call takes (see
/// `message::codec`): it writes the bytes postcard would, without serde's
/// generic machinery.
pub trait Wire: Encode + Sized {
    /// Decodes a message from `envelope`, taking its attached blobs off the
    /// front of `attachments`.
    ///
    /// # Errors
    ///
    /// A description of what is malformed.
    fn decode(envelope: &Bytes, attachments: &mut Bytes) -> Result<Self, String>;

    /// As [`Wire::decode`], into `out`, which holds `None` on an error: a
    /// caller that keeps the message in one place saves moving it there
    /// (for a large message, a copy). By default, decoded and moved.
    ///
    /// # Errors
    ///
    /// As [`Wire::decode`].
    #[inline]
    fn decode_into(envelope: &Bytes, attachments: &mut Bytes, out: &mut Option<Self>) -> Result<(), String> {
        match Self::decode(envelope, attachments) {
            Ok(message) => {
                *out = Some(message);
                Ok(())
            }
            Err(e) => {
                *out = None;
                Err(e)
            }
        }
    }
}

/// Reads a big-endian integer at `at`, or `None` past the end.
fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(raw))
}

/// Splits a frame's payload into the envelope and the attachments after it.
fn split_payload(payload: Bytes) -> Result<(Bytes, Bytes), TransportError> {
    let malformed = |what: &str| TransportError::Malformed(what.to_owned());
    let envelope_len =
        be_u32(&payload, 0).ok_or_else(|| malformed("frame too short for its envelope length"))?;
    let envelope_end = ENVELOPE_PREFIX_LEN
        .checked_add(envelope_len as usize)
        .filter(|&end| end <= payload.len())
        .ok_or_else(|| malformed("envelope length runs past the end of the frame"))?;
    // The envelope is the payload itself, moved on past its length and cut
    // short: no slice, so no reference count taken and given back; only
    // attachments, when there are any, share the buffer with it.
    let mut envelope = payload;
    let attachments =
        if envelope_end < envelope.len() { envelope.split_off(envelope_end) } else { Bytes::new() };
    envelope.advance(ENVELOPE_PREFIX_LEN);
    Ok((envelope, attachments))
}

/// Decodes a frame's payload (as [`FrameReader::poll_frame`] hands it out)
/// with serde, taking attachments as slices of the payload.
///
/// # Errors
///
/// [`TransportError::Malformed`] for a payload that holds no valid message.
pub(crate) fn decode_frame<T: DeserializeOwned>(payload: Bytes) -> Result<T, TransportError> {
    let (envelope, attachments) = split_payload(payload)?;
    let malformed = |what: &str| TransportError::Malformed(what.to_owned());
    let (decoded, rest) = supply_attachments(Some(envelope.clone()), Source::Contiguous(attachments), || {
        postcard::take_from_bytes::<T>(&envelope).map(|(value, trailing)| (value, trailing.len()))
    });
    let (value, trailing) = decoded.map_err(|e| TransportError::Malformed(codec_error(e).to_string()))?;
    if trailing != 0 {
        return Err(TransportError::Malformed(CodecError::TrailingBytes(trailing).to_string()));
    }
    if !rest.is_some_and(|r| r.is_exhausted()) {
        return Err(malformed("bytes after the last attachment"));
    }
    Ok(value)
}

/// As [`decode_frame`], for a message with a hand-written codec.
///
/// # Errors
///
/// As [`decode_frame`].
#[inline]
pub(crate) fn decode_wire_frame<T: Wire>(payload: Bytes) -> Result<T, TransportError> {
    let (envelope, mut attachments) = split_payload(payload)?;
    let value = T::decode(&envelope, &mut attachments).map_err(TransportError::Malformed)?;
    if !attachments.is_empty() {
        return Err(TransportError::Malformed("bytes after the last attachment".into()));
    }
    Ok(value)
}

/// As [`decode_wire_frame`], into `out` (see [`Wire::decode_into`]).
///
/// # Errors
///
/// As [`decode_frame`]; `out` is then `None`.
#[inline]
pub(crate) fn decode_wire_frame_into<T: Wire>(
    payload: Bytes,
    out: &mut Option<T>,
) -> Result<(), TransportError> {
    let (envelope, mut attachments) = match split_payload(payload) {
        Ok(parts) => parts,
        Err(e) => {
            *out = None;
            return Err(e);
        }
    };
    // `decode_into` leaves `None` on its errors.
    T::decode_into(&envelope, &mut attachments, out).map_err(TransportError::Malformed)?;
    if !attachments.is_empty() {
        *out = None;
        return Err(TransportError::Malformed("bytes after the last attachment".into()));
    }
    Ok(())
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
/// writes in order. With a key, it also tags the frames it queues and seals
/// each run (see [`run`]).
#[derive(Debug)]
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
    /// Largest message accepted.
    max_message: usize,
    /// With a key: the session's sending half, which tags the run.
    sealer: Option<Sealer>,
    /// Wire bytes of the data frames queued since the last seal.
    unsealed: usize,
}

impl FrameWriter {
    /// A writer that refuses messages over `max_message` bytes, and with a
    /// `sealer` (a key) sends frames in sealed runs.
    pub(crate) fn new(max_message: usize, sealer: Option<Sealer>) -> Self {
        Self {
            chunks: VecDeque::new(),
            staging: Vec::new(),
            written: 0,
            queued: 0,
            max_message,
            sealer,
            unsealed: 0,
        }
    }

    /// Whether frames are authenticated.
    pub(crate) fn is_sealed(&self) -> bool {
        self.sealer.is_some()
    }

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
    /// attachments) would exceed the message limit;
    /// [`TransportError::Encode`] when it cannot be encoded.
    pub(crate) fn push<T: Serialize + ?Sized>(&mut self, message: &T) -> Result<(), TransportError> {
        self.push_with(|out, attachments| {
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
    #[inline]
    pub(crate) fn push_wire<T: Encode>(&mut self, message: &T) -> Result<(), TransportError> {
        self.push_with(|out, attachments| {
            message.encode(out, attachments);
            Ok(())
        })
    }

    /// Queues one frame whose envelope `encode` writes.
    #[inline]
    fn push_with(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>, &mut Vec<Bytes>) -> Result<(), TransportError>,
    ) -> Result<(), TransportError> {
        let start = self.staging.len();
        let kind_len = if self.sealer.is_some() { KIND_LEN } else { 0 };
        // The header's room, filled in below: of a constant length each
        // way, so that neither a fill nor a copy is a call.
        if kind_len == 0 {
            self.staging.extend_from_slice(&[0; LENGTH_PREFIX_LEN + ENVELOPE_PREFIX_LEN]);
        } else {
            self.staging.extend_from_slice(&[0; LENGTH_PREFIX_LEN + KIND_LEN + ENVELOPE_PREFIX_LEN]);
        }
        let envelope_start = self.staging.len();
        let mut attachments = Vec::new();
        if let Err(e) = encode(&mut self.staging, &mut attachments) {
            self.staging.truncate(start);
            return Err(e);
        }
        let envelope_len = self.staging.len() - envelope_start;
        let attached: usize = attachments.iter().map(Bytes::len).sum();
        let message_len = envelope_len + attached;
        if message_len > self.max_message || message_len > MAX_MESSAGE {
            self.staging.truncate(start);
            return Err(TransportError::FrameTooLarge { len: message_len as u64, max: self.max_message });
        }
        let body_len = kind_len + ENVELOPE_PREFIX_LEN + message_len;
        let frame_len = LENGTH_PREFIX_LEN + body_len;
        let frame = self.staging.get_mut(start..).unwrap_or_default();
        let (prefix, rest) = frame.split_at_mut(LENGTH_PREFIX_LEN);
        prefix.copy_from_slice(&(body_len as u32).to_be_bytes());
        let (kind, rest) = rest.split_at_mut(kind_len);
        if let Some(kind) = kind.first_mut() {
            *kind = KIND_DATA;
        }
        let (envelope_prefix, _) = rest.split_at_mut(ENVELOPE_PREFIX_LEN);
        envelope_prefix.copy_from_slice(&(envelope_len as u32).to_be_bytes());
        // With a key: close the run first if this frame would take it past
        // its bound, then tag the frame (header and envelope as staged, then
        // the attachments where they lie) as part of the run it opens or joins.
        let mut seal_first = None;
        if let Some(sealer) = &mut self.sealer {
            if self.unsealed > 0 && self.unsealed + frame_len + SEAL_FRAME_LEN > run_limit(self.max_message) {
                seal_first = sealer.seal().map(|(id, seq, tag)| seal_frame(&id, seq, &tag));
                self.unsealed = 0;
            }
            sealer.feed(self.staging.get(start..).unwrap_or_default());
            for a in &attachments {
                sealer.feed(a);
            }
            self.unsealed += frame_len;
        }
        if let Some(seal) = seal_first {
            // The seal goes between the frames staged before and this one:
            // split the staging buffer around it, without copying either.
            let mut earlier = Bytes::from(std::mem::take(&mut self.staging));
            let this = earlier.split_off(start);
            earlier.advance(std::mem::take(&mut self.written));
            if !earlier.is_empty() {
                self.chunks.push_back(earlier);
            }
            self.chunks.push_back(Bytes::copy_from_slice(&seal));
            self.chunks.push_back(this);
            self.chunks.extend(attachments.into_iter().filter(|a| !a.is_empty()));
            self.queued += SEAL_FRAME_LEN;
        } else if !attachments.is_empty() {
            let mut frames = Bytes::from(std::mem::take(&mut self.staging));
            frames.advance(std::mem::take(&mut self.written));
            self.chunks.push_back(frames);
            self.chunks.extend(attachments.into_iter().filter(|a| !a.is_empty()));
        }
        self.queued += frame_len;
        Ok(())
    }

    /// Closes the run queued since the last seal, if any, by queuing its seal
    /// frame: called whenever queued frames are about to be written.
    fn seal_run(&mut self) {
        let Some(sealer) = &mut self.sealer else { return };
        let Some((conn_id, seq, tag)) = sealer.seal() else { return };
        self.staging.extend_from_slice(&seal_frame(&conn_id, seq, &tag));
        self.queued += SEAL_FRAME_LEN;
        self.unsealed = 0;
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

    /// Writes everything queued, with vectored writes (with a key, after
    /// sealing the frames queued since the last seal).
    pub(crate) fn poll_flush<W: AsyncWrite + ?Sized>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.seal_run();
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

    /// Writes as much as `write` takes without blocking (with a key, after
    /// sealing the frames queued since the last seal); `Ok(true)` once
    /// nothing is left, `Ok(false)` when the socket is full.
    ///
    /// # Errors
    ///
    /// The socket's error, other than `WouldBlock`.
    #[inline]
    pub(crate) fn try_flush(
        &mut self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<bool> {
        self.seal_run();
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

    /// Drops everything queued: the connection is broken and nothing more
    /// will be written.
    pub(crate) fn discard(&mut self) {
        self.chunks.clear();
        self.staging = Vec::new();
        self.written = 0;
        self.queued = 0;
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

#[cfg(test)]
mod tests;
