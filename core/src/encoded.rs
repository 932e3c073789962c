//! Values encoded once: [`Encoded`] is a value encoded with postcard, its
//! large blobs kept aside (see [`crate::blob`]) and the local objects it
//! passes as references listed (see [`crate::exports`]). Calls carry their
//! arguments, and replies their values, as `Encoded`, so the daemon and the
//! proxy move them around without decoding or copying them.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::blob::{
    ATTACH_THRESHOLD, Blob, CodecError, InlineBytes, Source, codec_error, collect_attachments,
    supply_attachments,
};
use crate::exports::{Exports, collect_exports, note_exports};
use crate::wire::{Reader, put_varint};

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

/// A value encoded once (postcard), its large blobs kept aside, and the
/// local objects it passes as references (exported by the connection it is
/// sent on, see [`crate::peer`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    body: Body,
    blobs: Vec<Blob>,
    exports: Exports,
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
        // Encoded inside another value (a batch's calls): its references
        // travel with the outer one.
        note_exports(&self.exports);
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
        Ok(Encoded { body: Body::Shared(bytes), blobs, exports: Exports::default() })
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
        // buffer of its own (each attempt collects its own attachments and
        // exports).
        let ((inline, blobs), exports) = collect_exports(|| {
            collect_attachments(|| postcard::to_slice(value, &mut buf).map(|used| used.len()))
        });
        let (body, blobs, exports) = match inline {
            Ok(len) => (Body::Inline { len: len as u8, buf }, blobs, exports),
            // Most likely the buffer was too small (postcard says so in more
            // than one way); a real failure fails again below.
            Err(_) => {
                let ((bytes, blobs), exports) =
                    collect_exports(|| collect_attachments(|| postcard::to_allocvec(value)));
                (Body::Shared(Blob(Bytes::from(bytes.map_err(codec_error)?))), blobs, exports)
            }
        };
        Ok(Encoded { body, blobs: blobs.into_iter().map(Blob).collect(), exports })
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
        fn blob(out: &mut Vec<u8>, attachments: &mut Vec<Bytes>, bytes: &[u8], shared: Option<&Bytes>) {
            use put_varint;
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
        put_varint(out, self.blobs.len() as u64);
        for b in &self.blobs {
            blob(out, attachments, b, Some(&b.0));
        }
    }

    /// Reads a value the way [`Encoded::encode_wire`] writes it: inline
    /// bytes as slices of the frame, attached ones off the front of
    /// `attachments`.
    pub(crate) fn decode_wire(r: &mut Reader<'_>, attachments: &mut Bytes) -> Result<Self, String> {
        fn blob(r: &mut Reader<'_>, attachments: &mut Bytes) -> Result<Blob, String> {
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
        Ok(Encoded { body: Body::Shared(body), blobs, exports: Exports::default() })
    }

    /// The local objects the value passes as references: the connection it
    /// is sent on exports them (see [`crate::peer::Peer::export`]).
    pub fn exports(&self) -> &Exports {
        &self.exports
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
        let mut missing = encoded.clone();
        missing.blobs.clear();
        assert!(missing.decode::<Args>().is_err());
        let mut extra = encoded.clone();
        extra.blobs.push(Blob::from(vec![0; 10]));
        assert_eq!(extra.decode::<Args>(), Err(CodecError::Attachments("blobs were left over")));
        let mut wrong_len = encoded;
        wrong_len.blobs[0] = Blob::from(vec![0; 10]);
        assert!(wrong_len.decode::<Args>().is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut e = Encoded::encode(&5u8).unwrap();
        e.body = Body::Shared(Blob::from(vec![5u8, 0]));
        assert_eq!(e.decode::<u8>(), Err(CodecError::TrailingBytes(1)));
    }
}
