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

/// What a decode scope holds: the buffer borrowed bytes come from (to slice
/// them without copies), and where attachments come from.
#[derive(Debug)]
struct Decoding {
    backing: Option<Bytes>,
    source: Source,
}

thread_local! {
    /// Set while rmi encodes: large blobs are collected here instead of
    /// being copied into the message.
    static ENCODING: RefCell<Option<Vec<Bytes>>> = const { RefCell::new(None) };
    /// Set while rmi decodes.
    static DECODING: RefCell<Option<Decoding>> = const { RefCell::new(None) };
}

/// Puts back the enclosing encode scope, also when the encoding unwinds.
struct EncodingGuard(Option<Option<Vec<Bytes>>>);

impl Drop for EncodingGuard {
    fn drop(&mut self) {
        if let Some(outer) = self.0.take() {
            ENCODING.set(outer);
        }
    }
}

/// Puts back the enclosing decode scope, also when the decoding unwinds.
struct DecodingGuard(Option<Option<Decoding>>);

impl Drop for DecodingGuard {
    fn drop(&mut self) {
        if let Some(outer) = self.0.take() {
            DECODING.set(outer);
        }
    }
}

/// Runs `f` (which encodes something) with large blobs collected as
/// attachments; returns its result and the attachments in order.
pub(crate) fn collect_attachments<R>(f: impl FnOnce() -> R) -> (R, Vec<Bytes>) {
    let mut guard = EncodingGuard(Some(ENCODING.replace(Some(Vec::new()))));
    let result = f();
    let outer = guard.0.take().unwrap_or_default();
    let attachments = ENCODING.replace(outer).unwrap_or_default();
    (result, attachments)
}

/// Runs `f` (which decodes something out of `backing`) with attachments
/// taken from `source`; returns its result and what is left of the source.
pub(crate) fn supply_attachments<R>(
    backing: Option<Bytes>,
    source: Source,
    f: impl FnOnce() -> R,
) -> (R, Option<Source>) {
    let mut guard = DecodingGuard(Some(DECODING.replace(Some(Decoding { backing, source }))));
    let result = f();
    let outer = guard.0.take().unwrap_or_default();
    let mine = DECODING.replace(outer);
    (result, mine.map(|d| d.source))
}

/// A zero-copy slice of the decode scope's backing buffer, if `v` lies in it.
fn slice_of_backing(v: &[u8]) -> Option<Bytes> {
    DECODING.with_borrow(|d| {
        let backing = d.as_ref()?.backing.as_ref()?;
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
        // Small blobs never look at the scope: the common case costs a compare.
        let attached = self.0.len() >= ATTACH_THRESHOLD
            && ENCODING.with_borrow_mut(|e| match e {
                Some(attachments) => {
                    attachments.push(self.0.clone());
                    true
                }
                None => false,
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
                let taken = DECODING.with_borrow_mut(|d| match d {
                    Some(decoding) => decoding.source.take(len),
                    None => Err("a blob refers to an attachment outside an rmi message"),
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

/// A string carried without copies: UTF-8 bytes in a [`Bytes`]. Names of
/// objects and methods travel as `Text`, so that a daemon reads them as
/// slices of its receive buffer and a proxy sends them without allocating.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(Bytes);

impl Text {
    /// A text over a static string, without a copy.
    pub const fn from_static(text: &'static str) -> Self {
        Text(Bytes::from_static(text.as_bytes()))
    }

    /// A text over `bytes`, if they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Option<Self> {
        std::str::from_utf8(&bytes).is_ok().then_some(Text(bytes))
    }

    /// The string's bytes (no UTF-8 check: what encoders want).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // Every constructor takes valid UTF-8 (a `str` or a `String`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Bytes::from(s))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Text::from(s.as_str())
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text, E> {
        Ok(slice_of_backing(v.as_bytes()).map_or_else(|| Text::from(v), Text))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text::from(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
        Ok(Text::from(v))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

/// Encodings up to this many bytes are kept inline, without an allocation:
/// most arguments and return values are this small.
const INLINE: usize = 54;

/// The bytes of an encoded value.
#[derive(Clone)]
enum Body {
    /// A small encoding, kept in place.
    Inline { len: u8, buf: [u8; INLINE] },
    /// A larger one, or one received (a slice of the receive buffer).
    Shared(Blob),
}

impl Body {
    fn as_slice(&self) -> &[u8] {
        match self {
            Body::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            Body::Shared(blob) => blob,
        }
    }

    fn backing(&self) -> Option<Bytes> {
        match self {
            Body::Inline { .. } => None,
            Body::Shared(blob) => Some(blob.0.clone()),
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::Inline { len: 0, buf: [0; INLINE] }
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Body {}

/// A value encoded once (postcard), its large blobs kept aside.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    body: Body,
    blobs: Vec<Blob>,
}

impl fmt::Debug for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoded({} bytes + {} blobs)", self.body.as_slice().len(), self.blobs.len())
    }
}

/// On the wire an encoded value is its bytes (as a blob: inline or
/// attached) and its blobs.
impl Serialize for Encoded {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = serializer.serialize_tuple(2)?;
        match &self.body {
            Body::Inline { .. } => tuple.serialize_element(&InlineBlob(self.body.as_slice()))?,
            Body::Shared(blob) => tuple.serialize_element(blob)?,
        }
        tuple.serialize_element(&self.blobs)?;
        tuple.end()
    }
}

/// A small byte string serialized the way an inline [`Blob`] is.
struct InlineBlob<'a>(&'a [u8]);

impl Serialize for InlineBlob<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_variant("Blob", 0, "Inline", &InlineBytes(self.0))
    }
}

impl<'de> Deserialize<'de> for Encoded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (bytes, blobs) = <(Blob, Vec<Blob>)>::deserialize(deserializer)?;
        Ok(Encoded { body: Body::Shared(bytes), blobs })
    }
}

impl Encoded {
    /// Encodes `value`.
    ///
    /// # Errors
    ///
    /// When the value's `Serialize` impl fails.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, CodecError> {
        let mut buf = [0u8; INLINE];
        // Small values fit in place; a larger one is encoded again into a
        // buffer of its own (each attempt collects its own attachments).
        let (inline, blobs) =
            collect_attachments(|| postcard::to_slice(value, &mut buf).map(|used| used.len()));
        let (body, blobs) = match inline {
            Ok(len) => (Body::Inline { len: len as u8, buf }, blobs),
            // Most likely the buffer was too small (postcard says so in more
            // than one way); a real failure fails again below.
            Err(_) => {
                let (bytes, blobs) = collect_attachments(|| postcard::to_allocvec(value));
                (Body::Shared(Blob(Bytes::from(bytes?))), blobs)
            }
        };
        Ok(Encoded { body, blobs: blobs.into_iter().map(Blob).collect() })
    }

    /// Decodes the value, taking its blobs without copying them.
    ///
    /// # Errors
    ///
    /// When the bytes are not a `T`, or bytes or blobs are left over.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, CodecError> {
        let bytes = self.body.as_slice();
        let source = Source::List(self.blobs.clone().into_iter());
        let (result, rest) =
            supply_attachments(self.body.backing(), source, || postcard::take_from_bytes::<T>(bytes));
        let (value, trailing) = result?;
        if !trailing.is_empty() {
            return Err(CodecError::TrailingBytes(trailing.len()));
        }
        if !rest.is_some_and(|r| r.is_exhausted()) {
            return Err(CodecError::Attachments("blobs were left over"));
        }
        Ok(value)
    }

    /// Appends the value as the wire carries it (as postcard writes an
    /// `Encoded`): its bytes as a blob, then its blobs; blobs of at least
    /// [`ATTACH_THRESHOLD`] bytes go to `attachments` instead.
    pub(crate) fn encode_wire(&self, out: &mut Vec<u8>, attachments: &mut Vec<Bytes>) {
        fn blob(out: &mut Vec<u8>, attachments: &mut Vec<Bytes>, bytes: &[u8], shared: Option<&Bytes>) {
            use crate::message::codec::put_varint;
            match shared {
                Some(b) if b.len() >= ATTACH_THRESHOLD => {
                    put_varint(out, 1);
                    put_varint(out, b.len() as u64);
                    attachments.push(b.clone());
                }
                _ => {
                    put_varint(out, 0);
                    put_varint(out, bytes.len() as u64);
                    out.extend_from_slice(bytes);
                }
            }
        }
        match &self.body {
            Body::Inline { .. } => blob(out, attachments, self.body.as_slice(), None),
            Body::Shared(b) => blob(out, attachments, b, Some(&b.0)),
        }
        crate::message::codec::put_varint(out, self.blobs.len() as u64);
        for b in &self.blobs {
            blob(out, attachments, b, Some(&b.0));
        }
    }

    /// Reads a value the way [`Encoded::encode_wire`] writes it: inline
    /// bytes as slices of the frame, attached ones off the front of
    /// `attachments`.
    pub(crate) fn decode_wire(
        r: &mut crate::message::codec::Reader<'_>,
        attachments: &mut Bytes,
    ) -> Result<Self, String> {
        fn blob(r: &mut crate::message::codec::Reader<'_>, attachments: &mut Bytes) -> Result<Blob, String> {
            match r.u32()? {
                0 => {
                    let len = r.u64()?;
                    r.take(len).map(Blob)
                }
                1 => {
                    let len = usize::try_from(r.u64()?).map_err(|_| "an attachment is too large")?;
                    if attachments.len() < len {
                        return Err("an attachment runs past the end of the frame".into());
                    }
                    Ok(Blob(attachments.split_to(len)))
                }
                other => Err(format!("unknown blob kind {other}")),
            }
        }
        let body = blob(r, attachments)?;
        let count = r.u64()?;
        // Each blob takes at least two bytes of the message.
        if count > r.remaining() as u64 / 2 {
            return Err("a list of blobs is longer than the message".into());
        }
        let blobs = (0..count).map(|_| blob(r, attachments)).collect::<Result<Vec<_>, _>>()?;
        Ok(Encoded { body: Body::Shared(body), blobs })
    }

    /// The length of the bytes written inline on the wire (0 when attached).
    pub(crate) fn inline_len(&self) -> usize {
        let len = self.body.as_slice().len();
        if len >= ATTACH_THRESHOLD { 0 } else { len }
    }

    /// How many bytes the value takes on the wire, near enough to check it
    /// against the message size limit before sending.
    pub fn wire_len(&self) -> usize {
        self.body.as_slice().len() + self.blobs.iter().map(|b| b.len() + 10).sum::<usize>() + 10
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
        assert!(encoded.body.as_slice().len() < 100, "the message itself stays small");
        // The attachment is the caller's buffer, not a copy.
        assert_eq!(encoded.blobs[0].as_ptr(), value.big.as_ptr());
        let back: Args = encoded.decode().unwrap();
        assert_eq!(back, value);
        // Decoding hands out the same buffer again.
        assert_eq!(back.big.as_ptr(), value.big.as_ptr());
    }

    #[test]
    fn a_value_too_large_to_be_inline_keeps_its_blobs_once() {
        let value = Args { name: "n".repeat(500), ..args() };
        let encoded = Encoded::encode(&value).unwrap();
        assert!(matches!(encoded.body, Body::Shared(_)));
        assert_eq!(encoded.blobs.len(), 1, "the large blob, attached once");
        assert_eq!(encoded.decode::<Args>().unwrap(), value);
        // Values that overflow the inline buffer inside `collect_str` too.
        let uri: crate::Uri = format!("RMINAME:{}", "n".repeat(80)).parse().unwrap();
        assert_eq!(Encoded::encode(&uri).unwrap().decode::<crate::Uri>().unwrap(), uri);
        let small = Encoded::encode(&(1u64, "x")).unwrap();
        assert!(matches!(small.body, Body::Inline { .. }));
        assert_eq!(small.decode::<(u64, String)>().unwrap(), (1, "x".to_owned()));
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
        e.body = Body::Shared(Blob::from(vec![5u8, 0]));
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
        ENCODING.with_borrow(|e| assert!(e.is_none(), "the scope was put back"));
    }
}
