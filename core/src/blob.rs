//! Bytes that travel without being copied, and values encoded once.
//!
//! A [`Blob`] is a cheaply cloned byte buffer ([`bytes::Bytes`]). When a blob
//! of at least [`ATTACH_THRESHOLD`] bytes is encoded inside rmi (as an
//! argument, a return value, or inside a frame), its bytes are not copied into
//! the message: the message records only its length, and the bytes travel
//! beside it as an *attachment* — a separate slice in the vectored write on
//! the way out, a slice of the receive buffer on the way in. Outside rmi's
//! encoders (say, `serde_json`), a blob is a plain byte string.
//!
//! [`Encoded`] is a value encoded once with postcard, with its large blobs
//! kept aside. Calls carry their arguments, and replies their values, as
//! `Encoded`, so the daemon and the proxy move them around without decoding
//! or copying them.
//!
//! The attachment bookkeeping lives in a thread-local *scope* that is active
//! only while rmi encodes or decodes a value; serde has no other way to hand
//! context to a type's `Serialize` impl.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, EnumAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Blobs of at least this many bytes travel as attachments; smaller ones are
/// copied inline, where a copy costs less than an extra slice to write.
pub const ATTACH_THRESHOLD: usize = 4096;

/// A byte buffer that rmi carries without copying. Use it for large binary
/// arguments and return values; `Vec<u8>` works too but is copied on both
/// sides (and a plain `Vec<u8>` without `serde_bytes` is encoded byte by
/// byte).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Blob(Bytes);

impl Blob {
    /// A blob over these bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Blob(bytes.into())
    }

    /// The bytes, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The bytes as a slice.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Bytes> for Blob {
    fn from(b: Bytes) -> Self {
        Blob(b)
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Blob(Bytes::from(v))
    }
}

impl From<&'static [u8]> for Blob {
    fn from(s: &'static [u8]) -> Self {
        Blob(Bytes::from_static(s))
    }
}

impl From<Blob> for Bytes {
    fn from(b: Blob) -> Self {
        b.0
    }
}

/// Failures of encoding or decoding a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// postcard could not encode or decode the value.
    #[error("{0}")]
    Postcard(#[from] postcard::Error),
    /// Bytes were left over after the value.
    #[error("{0} bytes left over after the value")]
    TrailingBytes(usize),
    /// An attachment was announced and not found, or found and not used.
    #[error("attachments do not match the value: {0}")]
    Attachments(&'static str),
}

/// Where blobs come from while a value is decoded.
#[derive(Debug)]
pub(crate) enum Source {
    /// The rest of a frame: attachments follow one another.
    Contiguous(Bytes),
    /// An [`Encoded`] value's list of blobs, in order.
    List(std::vec::IntoIter<Blob>),
}

impl Source {
    fn take(&mut self, len: usize) -> Result<Bytes, &'static str> {
        match self {
            Source::Contiguous(rest) => {
                if rest.len() < len {
                    return Err("an attachment runs past the end of the frame");
                }
                Ok(rest.split_to(len))
            }
            Source::List(blobs) => match blobs.next() {
                Some(b) if b.len() == len => Ok(b.0),
                Some(_) => Err("an attachment's length differs from the one announced"),
                None => Err("a blob refers to an attachment that is missing"),
            },
        }
    }

    /// Whether every attachment was used.
    pub(crate) fn is_exhausted(&self) -> bool {
        match self {
            Source::Contiguous(rest) => rest.is_empty(),
            Source::List(blobs) => blobs.len() == 0,
        }
    }
}

enum Scope {
    Encode(Vec<Bytes>),
    Decode { backing: Bytes, source: Source },
}

thread_local! {
    static SCOPES: RefCell<Vec<Scope>> = const { RefCell::new(Vec::new()) };
}

/// Pops the scope it pushed, also when the closure unwinds.
struct ScopeGuard;

impl ScopeGuard {
    fn push(scope: Scope) -> Self {
        SCOPES.with(|s| s.borrow_mut().push(scope));
        ScopeGuard
    }

    fn pop(self) -> Option<Scope> {
        let scope = SCOPES.with(|s| s.borrow_mut().pop());
        std::mem::forget(self);
        scope
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        SCOPES.with(|s| s.borrow_mut().pop());
    }
}

/// Runs `f` (which encodes something) with blobs collected as attachments;
/// returns its result and the attachments in order.
pub(crate) fn collect_attachments<R>(f: impl FnOnce() -> R) -> (R, Vec<Bytes>) {
    let guard = ScopeGuard::push(Scope::Encode(Vec::new()));
    let result = f();
    match guard.pop() {
        Some(Scope::Encode(attachments)) => (result, attachments),
        _ => (result, Vec::new()),
    }
}

/// Runs `f` (which decodes something out of `backing`) with attachments
/// taken from `source`; returns its result and what is left of the source.
pub(crate) fn supply_attachments<R>(
    backing: Bytes,
    source: Source,
    f: impl FnOnce() -> R,
) -> (R, Option<Source>) {
    let guard = ScopeGuard::push(Scope::Decode { backing, source });
    let result = f();
    match guard.pop() {
        Some(Scope::Decode { source, .. }) => (result, Some(source)),
        _ => (result, None),
    }
}

/// A zero-copy slice of the decode scope's backing buffer, if `v` lies in it.
fn slice_of_backing(v: &[u8]) -> Option<Bytes> {
    SCOPES.with(|s| {
        let s = s.borrow();
        let Some(Scope::Decode { backing, .. }) = s.last() else { return None };
        let base = backing.as_ptr() as usize;
        let start = (v.as_ptr() as usize).checked_sub(base)?;
        let end = start.checked_add(v.len())?;
        (end <= backing.len()).then(|| backing.slice(start..end))
    })
}

/// The serialized form of a blob: inline bytes, or the length of an
/// attachment.
struct InlineBytes<'a>(&'a [u8]);

impl Serialize for InlineBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let attached = self.0.len() >= ATTACH_THRESHOLD
            && SCOPES.with(|s| match s.borrow_mut().last_mut() {
                Some(Scope::Encode(attachments)) => {
                    attachments.push(self.0.clone());
                    true
                }
                _ => false,
            });
        if attached {
            serializer.serialize_newtype_variant("Blob", 1, "Attached", &(self.0.len() as u64))
        } else {
            serializer.serialize_newtype_variant("Blob", 0, "Inline", &InlineBytes(&self.0))
        }
    }
}

#[derive(Deserialize)]
#[serde(variant_identifier)]
enum BlobTag {
    Inline,
    Attached,
}

struct InlineSeed;

impl<'de> DeserializeSeed<'de> for InlineSeed {
    type Value = Bytes;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Bytes, D::Error> {
        deserializer.deserialize_bytes(InlineVisitor)
    }
}

struct InlineVisitor;

impl<'de> Visitor<'de> for InlineVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Bytes, E> {
        Ok(slice_of_backing(v).unwrap_or_else(|| Bytes::copy_from_slice(v)))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes::copy_from_slice(v))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes::from(v))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(Bytes::from(out))
    }
}

struct BlobVisitor;

impl<'de> Visitor<'de> for BlobVisitor {
    type Value = Blob;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a blob (inline bytes or an attachment)")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Blob, A::Error> {
        match data.variant()? {
            (BlobTag::Inline, v) => v.newtype_variant_seed(InlineSeed).map(Blob),
            (BlobTag::Attached, v) => {
                let len: u64 = v.newtype_variant()?;
                let len = usize::try_from(len).map_err(|_| de::Error::custom("attachment too long"))?;
                let taken = SCOPES.with(|s| match s.borrow_mut().last_mut() {
                    Some(Scope::Decode { source, .. }) => source.take(len),
                    _ => Err("a blob refers to an attachment outside an rmi message"),
                });
                taken.map(Blob).map_err(de::Error::custom)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_enum("Blob", &["Inline", "Attached"], BlobVisitor)
    }
}

/// A value encoded once (postcard), its large blobs kept aside.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoded {
    bytes: Blob,
    blobs: Vec<Blob>,
}

impl fmt::Debug for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoded({} bytes + {} blobs)", self.bytes.len(), self.blobs.len())
    }
}

impl Encoded {
    /// Encodes `value`.
    ///
    /// # Errors
    ///
    /// When the value's `Serialize` impl fails.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, CodecError> {
        let (bytes, blobs) = collect_attachments(|| postcard::to_allocvec(value));
        Ok(Encoded { bytes: Blob(Bytes::from(bytes?)), blobs: blobs.into_iter().map(Blob).collect() })
    }

    /// Decodes the value, taking its blobs without copying them.
    ///
    /// # Errors
    ///
    /// When the bytes are not a `T`, or bytes or blobs are left over.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, CodecError> {
        let source = Source::List(self.blobs.clone().into_iter());
        let (result, rest) =
            supply_attachments(self.bytes.0.clone(), source, || postcard::take_from_bytes::<T>(&self.bytes));
        let (value, trailing) = result?;
        if !trailing.is_empty() {
            return Err(CodecError::TrailingBytes(trailing.len()));
        }
        if !rest.is_some_and(|r| r.is_exhausted()) {
            return Err(CodecError::Attachments("blobs were left over"));
        }
        Ok(value)
    }

    /// How many bytes the value takes on the wire, near enough to check it
    /// against the message size limit before sending.
    pub fn wire_len(&self) -> usize {
        self.bytes.len() + self.blobs.iter().map(|b| b.len() + 10).sum::<usize>() + 10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Args {
        name: String,
        big: Blob,
        small: Blob,
        #[serde(with = "serde_bytes")]
        buf: Vec<u8>,
    }

    fn args() -> Args {
        Args {
            name: "x".into(),
            big: Blob::from(vec![7u8; 100_000]),
            small: Blob::from(&b"tiny"[..]),
            buf: vec![1, 2, 3],
        }
    }

    #[test]
    fn round_trip_keeps_large_blobs_aside_without_copying() {
        let value = args();
        let encoded = Encoded::encode(&value).unwrap();
        assert_eq!(encoded.blobs.len(), 1, "only the large blob is attached");
        assert!(encoded.bytes.len() < 100, "the message itself stays small");
        // The attachment is the caller's buffer, not a copy.
        assert_eq!(encoded.blobs[0].as_ptr(), value.big.as_ptr());
        let back: Args = encoded.decode().unwrap();
        assert_eq!(back, value);
        // Decoding hands out the same buffer again.
        assert_eq!(back.big.as_ptr(), value.big.as_ptr());
    }

    #[test]
    fn outside_rmi_a_blob_is_a_byte_string() {
        let value = args();
        let bytes = postcard::to_allocvec(&value).unwrap();
        assert!(bytes.len() > 100_000);
        let back: Args = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn mismatched_attachments_are_errors_not_panics() {
        let encoded = Encoded::encode(&args()).unwrap();
        let mut missing = encoded.clone();
        missing.blobs.clear();
        assert!(missing.decode::<Args>().is_err());
        let mut extra = encoded.clone();
        extra.blobs.push(Blob::from(vec![0; 10]));
        assert_eq!(extra.decode::<Args>(), Err(CodecError::Attachments("blobs were left over")));
        let mut wrong_len = encoded;
        wrong_len.blobs[0] = Blob::from(vec![0; 10]);
        assert!(wrong_len.decode::<Args>().is_err());
        // An attached blob met outside any rmi scope.
        let detached = postcard::to_allocvec(&(1u32, 5u64)).unwrap();
        assert!(postcard::from_bytes::<Blob>(&detached[1..]).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut e = Encoded::encode(&5u8).unwrap();
        e.bytes = Blob::from(vec![5u8, 0]);
        assert_eq!(e.decode::<u8>(), Err(CodecError::TrailingBytes(1)));
    }

    #[test]
    fn scopes_unwind_with_a_panicking_serializer() {
        struct Bomb;
        impl Serialize for Bomb {
            fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                panic!("boom")
            }
        }
        let caught = std::panic::catch_unwind(|| Encoded::encode(&Bomb));
        assert!(caught.is_err());
        SCOPES.with(|s| assert!(s.borrow().is_empty(), "the scope was popped"));
    }
}
