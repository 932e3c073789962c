//! HMAC-SHA256 (RFC 2104) for the tags of runs of frames, built on `sha2`'s
//! compression function with the key's inner and outer states computed once
//! per session.
//!
//! Tags are the hot path of an authenticated connection: each run of frames
//! is tagged by its sender and checked by its receiver, and a call alone on
//! its connection is a run each way. The generic `hmac` crate clones and
//! clears its buffered hasher for every tag; here a tag is the compressions
//! of the bytes it covers plus one for the outer hash, fed piece by piece
//! from the frames where they lie. The output is exactly
//! HMAC-SHA256: a test checks it against the `hmac` crate for keys and
//! messages of every shape.

use sha2::Digest;
use sha2::Sha256;
use sha2::block_api::compress256;

const BLOCK_LEN: usize = 64;
/// Where a final block's bit length goes.
const LENGTH_AT: usize = BLOCK_LEN - 8;

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const IV: [u32; 8] =
    [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19];

/// A key, reduced to the SHA-256 states after its inner and outer pad.
#[derive(Clone)]
pub(super) struct FrameKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl FrameKey {
    pub(super) fn new(key: &[u8]) -> Self {
        let mut block = [0u8; BLOCK_LEN];
        if key.len() > BLOCK_LEN {
            let digest: [u8; 32] = Sha256::digest(key).into();
            copy_into(&mut block, 0, &digest);
        } else {
            copy_into(&mut block, 0, key);
        }
        let padded = |byte: u8| {
            let mut pad = block;
            for b in &mut pad {
                *b ^= byte;
            }
            let mut state = IV;
            compress256(&mut state, &[pad]);
            state
        };
        FrameKey { inner: padded(0x36), outer: padded(0x5c) }
    }

    /// A tag computation under this key.
    pub(super) fn start(&self) -> FrameTag {
        FrameTag {
            state: self.inner,
            outer: self.outer,
            buf: [0; BLOCK_LEN],
            filled: 0,
            hashed: BLOCK_LEN as u64,
        }
    }
}

/// A run's tag, computed incrementally over the pieces of its frames.
#[derive(Clone)]
pub(crate) struct FrameTag {
    state: [u32; 8],
    outer: [u32; 8],
    buf: [u8; BLOCK_LEN],
    filled: usize,
    /// Bytes through the inner hash so far, the key block included.
    hashed: u64,
}

impl FrameTag {
    /// Feeds the next piece of the message.
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.hashed = self.hashed.wrapping_add(data.len() as u64);
        if self.filled > 0 {
            let take = data.len().min(BLOCK_LEN - self.filled);
            let (head, rest) = data.split_at(take);
            copy_into(&mut self.buf, self.filled, head);
            self.filled += take;
            data = rest;
            if self.filled < BLOCK_LEN {
                return;
            }
            compress256(&mut self.state, &[self.buf]);
            self.filled = 0;
        }
        let (blocks, tail) = data.as_chunks::<BLOCK_LEN>();
        if !blocks.is_empty() {
            compress256(&mut self.state, blocks);
        }
        copy_into(&mut self.buf, 0, tail);
        self.filled = tail.len();
    }

    /// The tag.
    pub(crate) fn finish(self) -> [u8; 32] {
        let inner = finish(self.state, self.buf, self.filled, self.hashed);
        let mut block = [0u8; BLOCK_LEN];
        copy_into(&mut block, 0, &inner);
        finish(self.outer, block, inner.len(), (BLOCK_LEN + inner.len()) as u64)
    }

    /// Whether `claimed` is the tag, comparing every byte whatever the
    /// first difference (no early exit to time).
    pub(super) fn verify(self, claimed: &[u8]) -> bool {
        let tag = self.finish();
        if claimed.len() != tag.len() {
            return false;
        }
        let diff = tag.iter().zip(claimed).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

/// Pads the last partial block (`filled` bytes of `buf`), compresses, and
/// returns the digest; `hashed` is the message length in bytes.
fn finish(mut state: [u32; 8], mut buf: [u8; BLOCK_LEN], filled: usize, hashed: u64) -> [u8; 32] {
    if let Some(rest) = buf.get_mut(filled..) {
        rest.fill(0);
    }
    copy_into(&mut buf, filled, &[0x80]);
    if filled >= LENGTH_AT {
        compress256(&mut state, &[buf]);
        buf = [0; BLOCK_LEN];
    }
    copy_into(&mut buf, LENGTH_AT, &hashed.wrapping_mul(8).to_be_bytes());
    compress256(&mut state, &[buf]);
    let mut digest = [0u8; 32];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// Copies `src` into `dst` at `at`; the callers keep it in bounds.
fn copy_into(dst: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = dst.get_mut(at..at + src.len()) {
        d.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, KeyInit, Mac};
    use proptest::prelude::*;

    use super::*;

    fn reference(key: &[u8], pieces: &[Vec<u8>]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        for p in pieces {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    fn ours(key: &[u8], pieces: &[Vec<u8>]) -> [u8; 32] {
        let mut tagger = FrameKey::new(key).start();
        for p in pieces {
            tagger.update(p);
        }
        tagger.finish()
    }

    #[test]
    fn matches_rfc_4231_case_2() {
        let tag = ours(b"Jefe", &[b"what do ya want ".to_vec(), b"for nothing?".to_vec()]);
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn every_length_around_the_block_edges_matches_hmac() {
        for key_len in [0, 1, 32, 63, 64, 65, 200] {
            let key = vec![0xa5; key_len];
            for len in 0..=200 {
                let msg = [(0..len).map(|i| i as u8).collect::<Vec<u8>>()];
                assert_eq!(ours(&key, &msg), reference(&key, &msg), "key {key_len}, message {len}");
            }
        }
    }

    #[test]
    fn verify_takes_only_the_tag() {
        let key = FrameKey::new(b"k");
        let mut t = key.start();
        t.update(b"payload");
        let tag = t.finish();
        let check = |claimed: &[u8]| {
            let mut t = key.start();
            t.update(b"payload");
            t.verify(claimed)
        };
        assert!(check(&tag));
        let mut bad = tag;
        bad[31] ^= 1;
        assert!(!check(&bad));
        assert!(!check(&tag[..31]));
        assert!(!check(&[]));
    }

    proptest! {
        #[test]
        fn any_split_of_any_message_matches_hmac(
            key in proptest::collection::vec(any::<u8>(), 0..150),
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..150), 0..6),
        ) {
            prop_assert_eq!(ours(&key, &pieces), reference(&key, &pieces));
        }
    }
}
