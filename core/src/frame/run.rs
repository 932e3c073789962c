//! Runs: with a key, frames travel in runs that one seal authenticates.
//!
//! The sender feeds each data frame's wire bytes to its session's running
//! tag as it queues the frame, and closes the run with a seal frame just
//! before the queued frames are written, or before the run would grow past
//! [`run_limit`]. The receiver ([`Unsealer`]) feeds each data frame to its
//! own running tag as it arrives and holds it, as a slice of the receive
//! buffer; when the seal verifies, it releases the run's frames in order.
//! Nothing of a run is decoded before its seal verifies.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use super::{ENVELOPE_PREFIX_LEN, LENGTH_PREFIX_LEN};
use crate::auth::{AuthError, CONN_ID_LEN, Opener, SEAL_LEN, TAG_LEN};

/// Kind byte of a data frame: a payload follows.
pub(crate) const KIND_DATA: u8 = 0;
/// Kind byte of a seal frame: the seal's fields follow.
pub(crate) const KIND_SEAL: u8 = 1;
/// Bytes of the kind byte.
pub(crate) const KIND_LEN: usize = 1;
/// Bytes of a seal frame's body: its kind byte and its fields.
pub(crate) const SEAL_BODY_LEN: usize = KIND_LEN + SEAL_LEN;
/// Bytes of a seal frame on the wire.
pub(crate) const SEAL_FRAME_LEN: usize = LENGTH_PREFIX_LEN + SEAL_BODY_LEN;

/// Most wire bytes a run may take, its seal included: one data frame
/// carrying a message of `max_message` bytes, and the seal after it. A
/// sender seals before a run would pass it, so one frame of any size the
/// limit allows always fits; a receiver refuses a run that passes it, so it
/// never holds more than about one largest message waiting for a seal.
pub(crate) fn run_limit(max_message: usize) -> usize {
    max_message.saturating_add(LENGTH_PREFIX_LEN + KIND_LEN + ENVELOPE_PREFIX_LEN + SEAL_FRAME_LEN)
}

/// The wire bytes of the seal frame that closes a run.
pub(crate) fn seal_frame(conn_id: &[u8; CONN_ID_LEN], seq: u64, tag: &[u8; TAG_LEN]) -> [u8; SEAL_FRAME_LEN] {
    let mut frame = [0; SEAL_FRAME_LEN];
    let pieces: [&[u8]; 5] =
        [&(SEAL_BODY_LEN as u32).to_be_bytes(), &[KIND_SEAL], conn_id, &seq.to_be_bytes(), tag];
    let mut rest = frame.as_mut_slice();
    for piece in pieces {
        let (field, tail) = rest.split_at_mut(piece.len());
        field.copy_from_slice(piece);
        rest = tail;
    }
    frame
}

/// Feeds a data frame's wire bytes to a tag: its length prefix (rebuilt from
/// the body's length, which the prefix announced) and its body.
fn feed_frame(body: &[u8], mut feed: impl FnMut(&[u8])) {
    feed(&(body.len() as u32).to_be_bytes());
    feed(body);
}

/// Splits a seal's fields: connection id, sequence number, tag; `None`
/// unless they have exactly a seal's size.
fn seal_fields(fields: &[u8]) -> Option<(&[u8; CONN_ID_LEN], u64, &[u8; TAG_LEN])> {
    let (conn_id, rest) = fields.split_first_chunk::<CONN_ID_LEN>()?;
    let (seq, tag) = rest.split_first_chunk::<8>()?;
    Some((conn_id, u64::from_be_bytes(*seq), tag.try_into().ok()?))
}

/// The receiving side of runs: checks each seal and holds every data frame
/// until the seal after it verifies.
#[derive(Debug)]
pub(crate) struct Unsealer {
    opener: Opener,
    /// Bodies (kind byte first) of the run being received.
    held: VecDeque<Bytes>,
    /// Bodies of verified runs, not yet handed out.
    released: VecDeque<Bytes>,
    /// Wire bytes announced since the last seal, that seal's frame included.
    unsealed: usize,
    /// The most `unsealed` may reach: [`run_limit`].
    limit: usize,
}

impl Unsealer {
    /// Checks the runs `opener`'s peer sends, refusing runs over
    /// [`run_limit`] of `max_message`.
    pub(crate) fn new(opener: Opener, max_message: usize) -> Self {
        Self {
            opener,
            held: VecDeque::new(),
            released: VecDeque::new(),
            unsealed: 0,
            limit: run_limit(max_message),
        }
    }

    /// Counts a frame whose prefix announced `body_len` bytes against the
    /// run's bound, before any memory is reserved for it.
    ///
    /// # Errors
    ///
    /// [`AuthError::RunTooLarge`] when the run would pass its bound.
    pub(crate) fn announce(&mut self, body_len: usize) -> Result<(), AuthError> {
        let total = self.unsealed.saturating_add(LENGTH_PREFIX_LEN + body_len);
        if total > self.limit {
            return Err(AuthError::RunTooLarge { len: total as u64, max: self.limit });
        }
        self.unsealed = total;
        Ok(())
    }

    /// Takes the next frame body: a data frame is fed to the tag and held, a
    /// seal is checked and releases the frames held before it.
    ///
    /// # Errors
    ///
    /// The seal's [`AuthError`] (see [`Opener::open`]), or
    /// [`AuthError::EmptyFrame`], [`AuthError::UnknownKind`],
    /// [`AuthError::BadSeal`], [`AuthError::EmptyRun`] for a frame that is
    /// neither a data frame nor a well-formed seal closing one.
    pub(crate) fn take(&mut self, body: Bytes) -> Result<(), AuthError> {
        let Some((&kind, fields)) = body.split_first() else { return Err(AuthError::EmptyFrame) };
        match kind {
            KIND_DATA => {
                feed_frame(&body, |piece| self.opener.feed(piece));
                self.held.push_back(body);
                Ok(())
            }
            KIND_SEAL => {
                let Some((conn_id, seq, tag)) = seal_fields(fields) else {
                    return Err(AuthError::BadSeal { len: fields.len() });
                };
                if self.held.is_empty() {
                    return Err(AuthError::EmptyRun { seq });
                }
                let held = &self.held;
                self.opener.open(conn_id, seq, tag, |tagger| {
                    for body in held {
                        feed_frame(body, |piece| tagger.update(piece));
                    }
                })?;
                self.released.append(&mut self.held);
                self.unsealed = 0;
                Ok(())
            }
            kind => Err(AuthError::UnknownKind { kind }),
        }
    }

    /// The payload of the next frame of a verified run, if one is waiting.
    pub(crate) fn next_released(&mut self) -> Option<Bytes> {
        let mut body = self.released.pop_front()?;
        // Advancing, not slicing: no reference count to touch.
        body.advance(KIND_LEN);
        Some(body)
    }

    /// Whether frames of a verified run wait to be taken.
    pub(crate) fn has_released(&self) -> bool {
        !self.released.is_empty()
    }

    /// Data frames held, waiting for their seal.
    pub(crate) fn unsealed_frames(&self) -> usize {
        self.held.len()
    }
}
