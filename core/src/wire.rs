//! The primitives of rmi's hand-written codecs: postcard's varints, and a
//! reader that takes names and bytes as slices of the frame, checking every
//! length against what is left.

use bytes::Bytes;

use crate::blob::Text;

/// Appends `v` as a varint (LEB128, as postcard writes integers).
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// A [`Text`], encoded as postcard encodes a `str`.
#[inline]
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a frame's envelope front to back.
#[derive(Clone)]
pub(crate) struct Reader<'a> {
    envelope: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(envelope: &'a Bytes) -> Self {
        Reader { envelope, at: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.envelope.len().saturating_sub(self.at)
    }

    /// The next byte, not taken.
    #[inline(always)]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.envelope.get(self.at).copied()
    }

    #[inline(always)]
    pub(crate) fn byte(&mut self) -> Result<u8, String> {
        let b = self.envelope.get(self.at).copied().ok_or("the message ends early")?;
        self.at += 1;
        Ok(b)
    }

    /// A varint of at most `bits` bits (postcard's encoding of integers):
    /// at most ceil(bits / 7) bytes, the last one using only the bits left.
    #[inline(always)]
    pub(crate) fn varint(&mut self, bits: u32) -> Result<u64, String> {
        // Most numbers here (ids of young connections, lengths of names,
        // enum variants) take one byte.
        if let Some(&b) = self.envelope.get(self.at)
            && b < 0x80
        {
            self.at += 1;
            return Ok(u64::from(b));
        }
        self.varint_long(bits)
    }

    fn varint_long(&mut self, bits: u32) -> Result<u64, String> {
        let max_bytes = bits.div_ceil(7);
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = self.byte()?;
            let shift = 7 * i;
            let part = u64::from(b & 0x7f);
            if i + 1 == max_bytes && (part >> (bits - shift) != 0 || b & 0x80 != 0) {
                return Err("a number is too long for its type".into());
            }
            value |= part << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a number is too long for its type".into())
    }

    #[inline(always)]
    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        self.varint(64)
    }

    #[inline(always)]
    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        u32::try_from(self.varint(32)?).map_err(|_| "a number is too large for its type".into())
    }

    #[inline(always)]
    pub(crate) fn bool(&mut self) -> Result<bool, String> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("a flag is neither 0 nor 1".into()),
        }
    }

    /// The next `len` bytes, as a slice of the frame.
    #[inline]
    pub(crate) fn take(&mut self, len: u64) -> Result<Bytes, String> {
        let len = usize::try_from(len).map_err(|_| "a length is too large")?;
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.envelope.len())
            .ok_or("a length runs past the end of the message")?;
        let bytes = self.envelope.slice(self.at..end);
        self.at = end;
        Ok(bytes)
    }

    /// The next `len` bytes, borrowed from the frame (for bytes that are
    /// copied, not kept).
    #[inline]
    pub(crate) fn borrow(&mut self, len: u64) -> Result<&'a [u8], String> {
        let envelope: &'a [u8] = self.envelope;
        let bytes = usize::try_from(len)
            .ok()
            .and_then(|len| envelope.get(self.at..)?.get(..len))
            .ok_or("a length runs past the end of the message")?;
        self.at += bytes.len();
        Ok(bytes)
    }

    /// Two names in a row (a call's object and method), checked together:
    /// both and the length between them are ASCII in all but odd cases.
    #[inline]
    pub(crate) fn two_texts(&mut self) -> Result<(Text, Text), String> {
        let start = self.at;
        let len = self.u64()?;
        let first = self.take(len)?;
        let len = self.u64()?;
        let second = self.take(len)?;
        if self.envelope.get(start..self.at).is_some_and(<[u8]>::is_ascii) {
            return Ok((Text::checked(first), Text::checked(second)));
        }
        let not_utf8 = || String::from("a name is not UTF-8");
        Ok((Text::from_utf8(first).ok_or_else(not_utf8)?, Text::from_utf8(second).ok_or_else(not_utf8)?))
    }

    #[inline]
    pub(crate) fn text(&mut self) -> Result<Text, String> {
        let len = self.u64()?;
        let bytes = self.take(len)?;
        Text::from_utf8(bytes).ok_or_else(|| "a name is not UTF-8".into())
    }

    pub(crate) fn string(&mut self) -> Result<String, String> {
        Ok(self.text()?.as_str().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Varints read as postcard reads them, from any bytes: the same
        /// value and length, or an error for both.
        #[test]
        fn varints_read_as_postcard_reads_them(bytes in prop::collection::vec(any::<u8>(), 0..12), long in any::<bool>()) {
            let envelope = Bytes::from(bytes.clone());
            let mut r = Reader::new(&envelope);
            let ours = if long { r.u64() } else { r.u32().map(u64::from) };
            let theirs = if long {
                postcard::take_from_bytes::<u64>(&bytes).map(|(v, rest)| (v, rest.len()))
            } else {
                postcard::take_from_bytes::<u32>(&bytes).map(|(v, rest)| (u64::from(v), rest.len()))
            };
            match (ours, theirs) {
                (Ok(v), Ok((w, rest))) => prop_assert_eq!((v, r.remaining()), (w, rest)),
                (Err(_), Err(_)) => {}
                (ours, theirs) => prop_assert!(false, "{ours:?} against postcard's {theirs:?}"),
            }
        }
    }

    #[test]
    fn a_varint_cut_short_says_so() {
        let envelope = Bytes::from_static(&[0x80, 0x80]);
        assert_eq!(Reader::new(&envelope).u64().unwrap_err(), "the message ends early");
        let envelope = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(Reader::new(&envelope).u32().unwrap_err(), "a number is too long for its type");
        let envelope = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 9]);
        let mut r = Reader::new(&envelope);
        assert_eq!(r.u32(), Ok(u32::MAX));
        assert_eq!(r.remaining(), 1);
    }
}
