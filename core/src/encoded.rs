//! Values encoded once: [`Encoded`] is a value encoded with postcard, its
//! large blobs kept aside (see [`crate::blob`]) and the local objects it
//! passes as references listed (see [`crate::exports`]). Calls carry their
//! arguments, and replies their values, as `Encoded`, so the daemon and the
//! proxy move them around without decoding or copying them.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::blob::{
    ATTACH_THRESHOLD, Blob, CodecError, InlineBytes, MarkedBlob, Source, codec_error, collect_attachments,
    serialize_blob, supply_attachments,
};
use crate::exports::{Exports, collect_exports, note_exports};
use crate::wire::{Reader, put_varint};

/// Encodings up to this many bytes are kept inline, without an allocation:
/// most arguments and return values are this small.
const INLINE: usize = 54;
/// Values up to this size with no blobs decode without a decode scope: a
/// byte string inside them is copied rather than sliced, at no cost worth
/// a scope.
const FAST_DECODE: usize = 256;

/// The wire kind of a body that is JSON text (0–3 are postcard's blobs:
/// inline or attached, with or without references).
const JSON_KIND: u64 = 4;

/// The bytes of an encoded value.
#[derive(Clone)]
enum Body {
    /// A small encoding, kept in place.
    Inline { len: u8, buf: [u8; INLINE] },
    /// A larger one, or one received (a slice of the receive buffer), and
    /// whether it arrived marked as carrying references.
    Shared(Blob, bool),
}

impl Body {
    fn as_slice(&self) -> &[u8] {
        match self {
            Body::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            Body::Shared(blob, _) => blob,
        }
    }

    fn backing(&self) -> Option<Bytes> {
        match self {
            Body::Inline { .. } => None,
            Body::Shared(blob, _) => Some(blob.0.clone()),
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

/// A value encoded once (postcard), its large blobs kept aside, and the
/// local objects it passes as references (exported by the connection it is
/// sent on, see [`crate::peer`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    body: Body,
    /// Blobs and exports, rare both: out of line, so that an encoded value
    /// stays small to move.
    extra: Option<Box<Extra>>,
}

/// What few encoded values have.
#[derive(Clone, Default, PartialEq, Eq)]
struct Extra {
    blobs: Vec<Blob>,
    exports: Exports,
    /// The body is JSON text, not postcard (see [`crate::json`]).
    json: bool,
}

impl Extra {
    /// The extra part, if there is one.
    #[inline]
    fn new(blobs: Vec<Blob>, exports: Exports) -> Option<Box<Extra>> {
        if blobs.is_empty() && exports.is_empty() {
            return None;
        }
        Some(Box::new(Extra { blobs, exports, json: false }))
    }

    /// The extra part of a value just encoded, from what it attached and
    /// exported.
    #[inline(always)]
    fn of(attachments: Vec<Bytes>, exports: Exports) -> Option<Box<Extra>> {
        if attachments.is_empty() && exports.is_empty() {
            return None;
        }
        Self::new(attachments.into_iter().map(Blob).collect(), exports)
    }
}

impl fmt::Debug for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoded({} bytes + {} blobs)", self.body.as_slice().len(), self.blobs().len())
    }
}

/// On the wire an encoded value is its bytes (as a blob: inline or
/// attached) and its blobs.
impl Serialize for Encoded {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        // Encoded inside another value (a batch's calls): its references
        // travel with the outer one.
        note_exports(self.exports());
        let mut tuple = serializer.serialize_tuple(2)?;
        let marked = self.carries_references();
        match &self.body {
            Body::Inline { .. } => tuple.serialize_element(&InlineBlob(self.body.as_slice(), marked))?,
            Body::Shared(blob, _) => tuple.serialize_element(&Marked(blob, marked))?,
        }
        tuple.serialize_element(self.blobs())?;
        tuple.end()
    }
}

/// A small byte string serialized the way an inline [`Blob`] is (marked
/// when the value carries references).
struct InlineBlob<'a>(&'a [u8], bool);

impl Serialize for InlineBlob<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let variant = if self.1 { 2 } else { 0 };
        serializer.serialize_newtype_variant("Blob", variant, "Inline", &InlineBytes(self.0))
    }
}

/// A body blob, marked when the value carries references.
struct Marked<'a>(&'a Blob, bool);

impl Serialize for Marked<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_blob(&self.0.0, self.1, serializer)
    }
}

impl<'de> Deserialize<'de> for Encoded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (MarkedBlob(bytes, marked), blobs) = <(MarkedBlob, Vec<Blob>)>::deserialize(deserializer)?;
        Ok(Encoded { body: Body::Shared(bytes, marked), extra: Extra::new(blobs, Exports::NONE) })
    }
}

impl Encoded {
    /// Encodes `value`.
    ///
    /// # Errors
    ///
    /// When the value's `Serialize` impl fails.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, CodecError> {
        // The common case first, outside any scope: a small value with no
        // references. A blob large enough to be attached cannot fit in the
        // buffer; a reference met outside a scope says so (`take_missed`):
        // such values are encoded again, in the scopes.
        if !crate::blob::in_codec_scope() && !crate::exports::in_export_scope() {
            let mut buf = [0u8; INLINE];
            let attempt = postcard::to_slice(value, &mut buf).map(|used| used.len());
            if !crate::exports::take_missed() {
                return match attempt {
                    Ok(len) => Ok(Encoded { body: Body::Inline { len: len as u8, buf }, extra: None }),
                    // The value's own refusal, said once.
                    Err(e @ postcard::Error::SerdeSerCustom) => Err(codec_error(e)),
                    // Most likely the buffer was too small (postcard says
                    // so in more than one way); a real failure fails again.
                    Err(_) => Self::encode_large(value),
                };
            }
            crate::blob::forget_custom_error();
        }
        Self::encode_scoped(value)
    }

    /// Encodes `value` in the scopes that collect its attachments and
    /// references.
    #[inline(never)]
    fn encode_scoped<T: Serialize + ?Sized>(value: &T) -> Result<Self, CodecError> {
        let mut buf = [0u8; INLINE];
        // Small values fit in place; a larger one is encoded again into a
        // buffer of its own (each attempt collects its own attachments and
        // exports).
        let ((inline, attachments), exports) = collect_exports(|| {
            collect_attachments(|| postcard::to_slice(value, &mut buf).map(|used| used.len()))
        });
        match inline {
            Ok(len) => Ok(Encoded {
                body: Body::Inline { len: len as u8, buf },
                extra: Extra::of(attachments, exports),
            }),
            // Most likely the buffer was too small (postcard says so in more
            // than one way); a real failure fails again there.
            Err(_) => Self::encode_large(value),
        }
    }

    /// Encodes a value too large to be kept in place.
    #[cold]
    fn encode_large<T: Serialize + ?Sized>(value: &T) -> Result<Self, CodecError> {
        let ((bytes, attachments), exports) =
            collect_exports(|| collect_attachments(|| postcard::to_allocvec(value)));
        let body = Body::Shared(Blob(Bytes::from(bytes.map_err(codec_error)?)), false);
        Ok(Encoded { body, extra: Extra::of(attachments, exports) })
    }

    /// Decodes the value, taking its blobs without copying them.
    ///
    /// # Errors
    ///
    /// When the bytes are not a `T`, or bytes or blobs are left over.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, CodecError> {
        let bytes = self.body.as_slice();
        // The common case, outside any scope: a small value with no blobs
        // (its inline bytes, if any, are copied rather than sliced; an
        // attachment it names is refused, as there are none).
        if self.extra.is_none() && bytes.len() <= FAST_DECODE && !crate::blob::in_codec_scope() {
            let (value, trailing) = postcard::take_from_bytes::<T>(bytes).map_err(codec_error)?;
            if !trailing.is_empty() {
                return Err(CodecError::TrailingBytes(trailing.len()));
            }
            return Ok(value);
        }
        if let Some(extra) = &self.extra
            && extra.json
        {
            return serde_json::from_slice(bytes).map_err(|e| CodecError::Json(e.to_string()));
        }
        let source = Source::List(match &self.extra {
            Some(extra) => extra.blobs.clone().into_iter(),
            None => Vec::new().into_iter(),
        });
        let (result, rest) =
            supply_attachments(self.body.backing(), source, || postcard::take_from_bytes::<T>(bytes));
        let (value, trailing) = result.map_err(codec_error)?;
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
        fn blob(
            out: &mut Vec<u8>,
            attachments: &mut Vec<Bytes>,
            bytes: &[u8],
            shared: Option<&Bytes>,
            mark: u64,
        ) {
            match shared {
                Some(b) if b.len() >= ATTACH_THRESHOLD => {
                    put_varint(out, 1 + mark);
                    put_varint(out, b.len() as u64);
                    attachments.push(b.clone());
                }
                _ => {
                    put_varint(out, mark);
                    put_varint(out, bytes.len() as u64);
                    out.extend_from_slice(bytes);
                }
            }
        }
        if self.extra.is_none()
            && let Body::Inline { len, buf } = &self.body
            && let Some(bytes) = buf.get(..usize::from(*len))
        {
            // Nearly every value: inline, marked with nothing (only a
            // received body is marked), no blobs. Its length takes one byte.
            const _: () = assert!(INLINE < 0x80);
            out.reserve(bytes.len() + 3);
            out.extend_from_slice(&[0, bytes.len() as u8]);
            out.extend_from_slice(bytes);
            out.push(0);
            return;
        }
        if self.extra.is_some() && self.is_json() {
            // JSON text (see `crate::json`): kind 4, inline, no blobs.
            let text = self.body.as_slice();
            put_varint(out, JSON_KIND);
            put_varint(out, text.len() as u64);
            out.extend_from_slice(text);
            put_varint(out, 0);
            return;
        }
        let mark = if self.carries_references() { 2 } else { 0 };
        match &self.body {
            Body::Inline { .. } => blob(out, attachments, self.body.as_slice(), None, mark),
            Body::Shared(b, _) => blob(out, attachments, b, Some(&b.0), mark),
        }
        put_varint(out, self.blobs().len() as u64);
        for b in self.blobs() {
            blob(out, attachments, b, Some(&b.0), 0);
        }
    }

    /// Whether the value carries references: it exports local objects (as
    /// sent), or arrived marked as carrying some. Only then does it need its
    /// connection's scope to decode.
    #[inline]
    pub fn carries_references(&self) -> bool {
        matches!(self.body, Body::Shared(_, true)) || !self.exports().is_empty()
    }

    /// Reads a value the way [`Encoded::encode_wire`] writes it: inline
    /// bytes as slices of the frame, attached ones off the front of
    /// `attachments`.
    pub(crate) fn decode_wire(r: &mut Reader<'_>, attachments: &mut Bytes) -> Result<Self, String> {
        /// A blob; `marks` accepts the marked kinds (2, 3) of a body.
        fn blob(r: &mut Reader<'_>, attachments: &mut Bytes, marks: bool) -> Result<(Blob, bool), String> {
            let kind = r.u32()?;
            let marked = marks && (kind == 2 || kind == 3);
            match if marked { kind - 2 } else { kind } {
                0 => {
                    let len = r.u64()?;
                    r.take(len).map(|b| (Blob(b), marked))
                }
                1 => {
                    let len = usize::try_from(r.u64()?).map_err(|_| "an attachment is too large")?;
                    if attachments.len() < len {
                        return Err("an attachment runs past the end of the frame".into());
                    }
                    Ok((Blob(attachments.split_to(len)), marked))
                }
                other => Err(format!("unknown blob kind {other}")),
            }
        }
        if r.peek() == Some(JSON_KIND as u8) {
            r.byte()?;
            let len = r.u64()?;
            let text = r.take(len)?;
            if r.u64()? != 0 {
                return Err("a JSON value carries no blobs".into());
            }
            return Ok(Encoded::from_json(text));
        }
        // The common case: a small body in the frame, marked with nothing,
        // and no blobs: copied in place, which costs less than a slice of
        // the frame (a reference count taken, and given back).
        if r.peek() == Some(0) {
            let mut ahead = r.clone();
            ahead.byte()?;
            let len = ahead.u64()?;
            if len <= INLINE as u64 {
                let bytes = ahead.borrow(len)?;
                let mut buf = [0u8; INLINE];
                if let Some(place) = buf.get_mut(..bytes.len())
                    && ahead.peek() == Some(0)
                {
                    place.copy_from_slice(bytes);
                    ahead.byte()?;
                    *r = ahead;
                    return Ok(Encoded { body: Body::Inline { len: len as u8, buf }, extra: None });
                }
            }
        }
        let (body, marked) = blob(r, attachments, true)?;
        let count = r.u64()?;
        // Each blob takes at least two bytes of the message.
        if count > r.remaining() as u64 / 2 {
            return Err("a list of blobs is longer than the message".into());
        }
        if count == 0 {
            return Ok(Encoded { body: Body::Shared(body, marked), extra: None });
        }
        let blobs =
            (0..count).map(|_| blob(r, attachments, false).map(|(b, _)| b)).collect::<Result<Vec<_>, _>>()?;
        Ok(Encoded { body: Body::Shared(body, marked), extra: Extra::new(blobs, Exports::NONE) })
    }

    /// A value given as JSON text (see [`crate::json`]): it decodes with
    /// serde_json, into whatever type asks.
    pub fn from_json(text: Bytes) -> Self {
        Encoded {
            body: Body::Shared(Blob(text), false),
            extra: Some(Box::new(Extra { blobs: Vec::new(), exports: Exports::NONE, json: true })),
        }
    }

    /// Whether the value is JSON text.
    pub fn is_json(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.json)
    }

    /// The JSON text, when the value is JSON.
    pub fn json_bytes(&self) -> Option<&[u8]> {
        if self.is_json() { Some(self.body.as_slice()) } else { None }
    }

    /// The local objects the value passes as references: the connection it
    /// is sent on exports them (see [`crate::peer::Peer::export`]).
    pub fn exports(&self) -> &Exports {
        static NONE: Exports = Exports::NONE;
        self.extra.as_ref().map_or(&NONE, |e| &e.exports)
    }

    /// The large blobs, kept aside.
    fn blobs(&self) -> &[Blob] {
        self.extra.as_ref().map_or(&[], |e| &e.blobs)
    }

    /// The length of the bytes written inline on the wire (0 when attached).
    pub(crate) fn inline_len(&self) -> usize {
        let len = self.body.as_slice().len();
        if len >= ATTACH_THRESHOLD { 0 } else { len }
    }

    /// How many bytes the value takes on the wire, near enough to check it
    /// against the message size limit before sending.
    pub fn wire_len(&self) -> usize {
        self.body.as_slice().len() + self.blobs().iter().map(|b| b.len() + 10).sum::<usize>() + 10
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

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
        assert_eq!(encoded.blobs().len(), 1, "only the large blob is attached");
        assert!(encoded.body.as_slice().len() < 100, "the message itself stays small");
        // The attachment is the caller's buffer, not a copy.
        assert_eq!(encoded.blobs()[0].as_ptr(), value.big.as_ptr());
        let back: Args = encoded.decode().unwrap();
        assert_eq!(back, value);
        // Decoding hands out the same buffer again.
        assert_eq!(back.big.as_ptr(), value.big.as_ptr());
    }

    #[test]
    fn a_value_too_large_to_be_inline_keeps_its_blobs_once() {
        let value = Args { name: "n".repeat(500), ..args() };
        let encoded = Encoded::encode(&value).unwrap();
        assert!(matches!(encoded.body, Body::Shared(..)));
        assert_eq!(encoded.blobs().len(), 1, "the large blob, attached once");
        assert_eq!(encoded.decode::<Args>().unwrap(), value);
        // Values that overflow the inline buffer inside `collect_str` too.
        let uri: crate::Uri = format!("RMINAME:{}", "n".repeat(80)).parse().unwrap();
        assert_eq!(Encoded::encode(&uri).unwrap().decode::<crate::Uri>().unwrap(), uri);
        let small = Encoded::encode(&(1u64, "x")).unwrap();
        assert!(matches!(small.body, Body::Inline { .. }));
        assert_eq!(small.decode::<(u64, String)>().unwrap(), (1, "x".to_owned()));
    }

    #[test]
    fn outside_rmi_blobs_are_byte_strings() {
        let value = args();
        let bytes = postcard::to_allocvec(&value).unwrap();
        assert!(bytes.len() > 100_000);
        let back: Args = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn mismatched_attachments_are_errors_not_panics() {
        let encoded = Encoded::encode(&args()).unwrap();
        fn blobs(e: &mut Encoded) -> &mut Vec<Blob> {
            &mut e.extra.get_or_insert_with(Default::default).blobs
        }
        let mut missing = encoded.clone();
        blobs(&mut missing).clear();
        assert!(missing.decode::<Args>().is_err());
        let mut extra = encoded.clone();
        blobs(&mut extra).push(Blob::from(vec![0; 10]));
        assert_eq!(extra.decode::<Args>(), Err(CodecError::Attachments("blobs were left over")));
        let mut wrong_len = encoded;
        blobs(&mut wrong_len)[0] = Blob::from(vec![0; 10]);
        assert!(wrong_len.decode::<Args>().is_err());
    }

    /// A local object, as the encoder sees one.
    struct Thing;

    impl crate::exports::Exportable for Thing {
        fn export_id(&self) -> u64 {
            7
        }
        fn into_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync> {
            self
        }
    }

    /// Serializes as a reference: its id, noted as exported.
    struct Reference;

    impl Serialize for Reference {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            crate::exports::note_export(std::sync::Arc::new(Thing));
            serializer.serialize_u64(7)
        }
    }

    /// Serializes as a reference does: refused outside an encode scope.
    struct StrictReference;

    impl Serialize for StrictReference {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            if !crate::exports::note_export(std::sync::Arc::new(Thing)) {
                crate::blob::note_custom_error("outside a scope");
                return Err(serde::ser::Error::custom("outside a scope"));
            }
            serializer.serialize_u64(7)
        }
    }

    #[test]
    fn an_upload_before_a_reference_is_taken_once() {
        // An upload is taken when serialized: the fast attempt (outside the
        // scopes) must not take it and then fail on the reference.
        let value = (crate::stream::Upload::iter(0..3u64), StrictReference);
        let (encoded, upload) = crate::stream::collect_upload(|| Encoded::encode(&value));
        let encoded = encoded.expect("encoded once, in the scopes");
        assert!(upload.is_some(), "the upload was collected");
        assert!(encoded.carries_references());
        // And a plain reference outside any upload scope still takes the
        // scoped path after the fast attempt meets it.
        assert!(Encoded::encode(&(1u64, StrictReference)).unwrap().carries_references());
        assert!(!crate::exports::take_missed(), "the flag was consumed");
    }

    #[test]
    fn a_value_with_references_is_marked_on_the_wire_both_ways() {
        for big in [false, true] {
            let value = (Reference, if big { "x".repeat(200) } else { "x".to_owned() });
            let encoded = Encoded::encode(&value).unwrap();
            assert!(encoded.carries_references());
            let plain = Encoded::encode(&(7u64, "x")).unwrap();
            assert!(!plain.carries_references());
            // The hand codec and postcard write the same marked bytes.
            let mut hand = Vec::new();
            encoded.encode_wire(&mut hand, &mut Vec::new());
            let (post, _) = collect_attachments(|| postcard::to_allocvec(&encoded).unwrap());
            assert_eq!(hand, post);
            assert_eq!(hand[0], 2, "the body's kind says: references");
            // Both decode it marked; a plain one stays unmarked.
            let hand = Bytes::from(hand);
            let back = Encoded::decode_wire(&mut Reader::new(&hand), &mut Bytes::new()).unwrap();
            assert!(back.carries_references());
            let back: Encoded = postcard::from_bytes(&post).unwrap();
            assert!(back.carries_references());
            assert!(!Encoded::encode(&back.decode::<(u64, String)>().unwrap()).unwrap().carries_references());
        }
        // A plain blob never takes a marked kind.
        assert!(postcard::from_bytes::<Blob>(&[2, 1, 5]).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut e = Encoded::encode(&5u8).unwrap();
        e.body = Body::Shared(Blob::from(vec![5u8, 0]), false);
        assert_eq!(e.decode::<u8>(), Err(CodecError::TrailingBytes(1)));
    }
}
