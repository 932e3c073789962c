//! Bytes that travel without being copied: blobs and texts.
//!
//! A [`Blob`] is a cheaply cloned byte buffer ([`bytes::Bytes`]). When a blob
//! of at least [`ATTACH_THRESHOLD`] bytes is encoded inside rmi (as an
//! argument, a return value, or inside a frame), its bytes are not copied into
//! the message: the message records only its length, and the bytes travel
//! beside it as an *attachment* — a separate slice in the vectored write on
//! the way out, a slice of the receive buffer on the way in. Outside rmi's
//! encoders (say, `serde_json`), a blob is a plain byte string.
//!
//! A [`Text`] is a string carried the same way (names of objects and
//! methods, read as slices of the receive buffer).
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
pub struct Blob(pub(crate) Bytes);

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
    /// A type's own `Serialize` or `Deserialize` refused the value, saying
    /// why.
    #[error("{0}")]
    Custom(String),
    /// A JSON value (see [`crate::json`]) is not of the type asked for.
    #[error("JSON: {0}")]
    Json(String),
}

thread_local! {
    /// The message of the last serde `custom` error raised on this thread
    /// (postcard keeps only that there was one).
    static CUSTOM: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps the message of a serde `custom` error about to be raised, so that
/// rmi's codec reports it instead of postcard's generic one.
pub fn note_custom_error(message: &str) {
    CUSTOM.set(Some(message.to_owned()));
}

/// postcard's error, with the message of a custom one when it was noted.
pub(crate) fn codec_error(e: postcard::Error) -> CodecError {
    match e {
        postcard::Error::SerdeDeCustom | postcard::Error::SerdeSerCustom => {
            CUSTOM.take().map_or(CodecError::Postcard(e), CodecError::Custom)
        }
        other => CodecError::Postcard(other),
    }
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

/// Whether an encode or a decode scope is open on this thread: a value
/// encoded or decoded inside another's scope takes the slow path, so that
/// what it collects or takes is its own.
#[inline]
pub(crate) fn in_codec_scope() -> bool {
    OPEN_SCOPES.get() > 0
}

thread_local! {
    /// How many encode, decode and upload scopes (see [`upload_scope`])
    /// are open on this thread: a plain cell, which costs a load to read,
    /// where the scopes' own cells (with destructors) cost a check of
    /// their state and of their borrow each.
    static OPEN_SCOPES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Counts a scope open until dropped, also when the coding unwinds.
struct OpenScope;

impl OpenScope {
    fn open() -> Self {
        OPEN_SCOPES.set(OPEN_SCOPES.get().saturating_add(1));
        OpenScope
    }
}

impl Drop for OpenScope {
    fn drop(&mut self) {
        OPEN_SCOPES.set(OPEN_SCOPES.get().saturating_sub(1));
    }
}

/// Runs `f` in an upload scope: what it encodes may take an upload, which
/// can be serialized only once, so it is encoded in the codec's scopes
/// rather than tried without them first.
pub(crate) fn upload_scope<R>(f: impl FnOnce() -> R) -> R {
    let _open = OpenScope::open();
    f()
}

/// Forgets the message of a custom error noted on this thread (an attempt
/// that failed, to be made again another way).
#[inline]
pub(crate) fn forget_custom_error() {
    CUSTOM.with_borrow_mut(|c| {
        if c.is_some() {
            *c = None;
        }
    });
}

/// Puts back the enclosing encode scope, also when the encoding unwinds
/// (and counts the scope open meanwhile).
struct EncodingGuard(Option<Option<Vec<Bytes>>>, OpenScope);

impl Drop for EncodingGuard {
    fn drop(&mut self) {
        if let Some(outer) = self.0.take() {
            ENCODING.set(outer);
        }
    }
}

/// Puts back the enclosing decode scope, also when the decoding unwinds
/// (and counts the scope open meanwhile).
struct DecodingGuard(Option<Option<Decoding>>, OpenScope);

impl Drop for DecodingGuard {
    fn drop(&mut self) {
        if let Some(outer) = self.0.take() {
            DECODING.set(outer);
        }
    }
}

/// Runs `f` (which encodes something) with large blobs collected as
/// attachments; returns its result and the attachments in order.
#[inline(always)]
pub(crate) fn collect_attachments<R>(f: impl FnOnce() -> R) -> (R, Vec<Bytes>) {
    let mut guard = EncodingGuard(Some(ENCODING.replace(Some(Vec::new()))), OpenScope::open());
    let result = f();
    let outer = guard.0.take().unwrap_or_default();
    let attachments = ENCODING.replace(outer).unwrap_or_default();
    (result, attachments)
}

/// Runs `f` (which decodes something out of `backing`) with attachments
/// taken from `source`; returns its result and what is left of the source.
#[inline(always)]
pub(crate) fn supply_attachments<R>(
    backing: Option<Bytes>,
    source: Source,
    f: impl FnOnce() -> R,
) -> (R, Option<Source>) {
    let mut guard =
        DecodingGuard(Some(DECODING.replace(Some(Decoding { backing, source }))), OpenScope::open());
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
pub(crate) struct InlineBytes<'a>(pub(crate) &'a [u8]);

impl Serialize for InlineBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_blob(&self.0, false, serializer)
    }
}

/// Serializes `bytes` as a blob: inline, or (large, inside rmi's encoder)
/// as an attachment. `marked` uses the variants an encoded value's body
/// takes when the value carries references (see [`crate::encoded`]).
pub(crate) fn serialize_blob<S: Serializer>(
    bytes: &Bytes,
    marked: bool,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    // Small blobs never look at the scope: the common case costs a compare.
    let attached = bytes.len() >= ATTACH_THRESHOLD
        && ENCODING.with_borrow_mut(|e| match e {
            Some(attachments) => {
                attachments.push(bytes.clone());
                true
            }
            None => false,
        });
    let mark = if marked { 2 } else { 0 };
    if attached {
        serializer.serialize_newtype_variant("Blob", 1 + mark, "Attached", &(bytes.len() as u64))
    } else {
        serializer.serialize_newtype_variant("Blob", mark, "Inline", &InlineBytes(bytes))
    }
}

/// A blob's variants: inline or attached, and (for the body of an encoded
/// value only) the same marked as carrying references.
#[derive(Deserialize)]
#[serde(variant_identifier)]
enum BlobTag {
    Inline,
    Attached,
    InlineMarked,
    AttachedMarked,
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

/// Reads a blob; `marks` says whether the marked variants are accepted
/// (an encoded value's body), and the visitor says whether it was marked.
struct BlobVisitor {
    marks: bool,
}

impl<'de> Visitor<'de> for BlobVisitor {
    type Value = (Blob, bool);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a blob (inline bytes or an attachment)")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(Blob, bool), A::Error> {
        let (tag, v) = data.variant()?;
        let (attached, marked) = match tag {
            BlobTag::Inline => (false, false),
            BlobTag::Attached => (true, false),
            BlobTag::InlineMarked => (false, true),
            BlobTag::AttachedMarked => (true, true),
        };
        if marked && !self.marks {
            return Err(de::Error::custom("a blob marked as an encoded value's body"));
        }
        match attached {
            false => v.newtype_variant_seed(InlineSeed).map(|b| (Blob(b), marked)),
            true => {
                let len: u64 = v.newtype_variant()?;
                let len = usize::try_from(len).map_err(|_| de::Error::custom("attachment too long"))?;
                let taken = DECODING.with_borrow_mut(|d| match d {
                    Some(decoding) => decoding.source.take(len),
                    None => Err("a blob refers to an attachment outside an rmi message"),
                });
                taken.map(|b| (Blob(b), marked)).map_err(de::Error::custom)
            }
        }
    }
}

const BLOB_VARIANTS: &[&str] = &["Inline", "Attached", "InlineMarked", "AttachedMarked"];

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_enum("Blob", BLOB_VARIANTS, BlobVisitor { marks: false }).map(|(b, _)| b)
    }
}

/// The body of an encoded value: a blob, and whether it was marked as
/// carrying references.
pub(crate) struct MarkedBlob(pub(crate) Blob, pub(crate) bool);

impl<'de> Deserialize<'de> for MarkedBlob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (blob, marked) =
            deserializer.deserialize_enum("Blob", BLOB_VARIANTS, BlobVisitor { marks: true })?;
        Ok(MarkedBlob(blob, marked))
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
        // Names are ASCII, and checking that is cheaper than validating.
        (bytes.is_ascii() || std::str::from_utf8(&bytes).is_ok()).then_some(Text(bytes))
    }

    /// A text over `bytes` the caller checked are UTF-8 (were they not,
    /// the text would read as empty).
    pub(crate) fn checked(bytes: Bytes) -> Self {
        Text(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_unwind_with_a_panicking_serializer() {
        struct Bomb;
        impl Serialize for Bomb {
            fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                panic!("boom")
            }
        }
        let caught = std::panic::catch_unwind(|| collect_attachments(|| postcard::to_allocvec(&Bomb)));
        assert!(caught.is_err());
        ENCODING.with_borrow(|e| assert!(e.is_none(), "the scope was put back"));
        assert!(!in_codec_scope(), "the scope was counted closed");
    }

    #[test]
    fn scopes_count_open_while_they_run_nested_or_not() {
        assert!(!in_codec_scope());
        let (inner, _) = collect_attachments(|| {
            let (nested, _) = supply_attachments(None, Source::List(Vec::new().into_iter()), in_codec_scope);
            (in_codec_scope(), nested)
        });
        assert_eq!(inner, (true, true));
        assert!(upload_scope(in_codec_scope));
        let unwound = std::panic::catch_unwind(|| {
            supply_attachments(None, Source::List(Vec::new().into_iter()), || panic!("boom"))
        });
        assert!(unwound.is_err());
        assert!(!in_codec_scope(), "every scope was counted closed");
    }

    #[test]
    fn outside_rmi_a_blob_is_a_byte_string() {
        let blob = Blob::from(vec![7u8; 100_000]);
        let bytes = postcard::to_allocvec(&blob).unwrap();
        assert!(bytes.len() > 100_000);
        assert_eq!(postcard::from_bytes::<Blob>(&bytes).unwrap(), blob);
        // An attached blob met outside any rmi scope.
        let detached = postcard::to_allocvec(&(1u32, 5u64)).unwrap();
        assert!(postcard::from_bytes::<Blob>(&detached[1..]).is_err());
    }
}
