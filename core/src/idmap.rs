//! Maps keyed by call id, with a cheap hash.
//!
//! Call ids are numbers one peer chooses for its own calls on its own
//! connection, and the calls in flight on a connection are bounded, so a
//! peer that chose colliding ids would only slow its own connection's
//! lookups among a bounded few; SipHash's protection is not worth its cost
//! on every call.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from call ids.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Hashes one `u64` by a multiply and shift (Fibonacci hashing).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_spread() {
        let mut map: IdMap<u64> = IdMap::default();
        for id in 0..10_000u64 {
            map.insert(id, id * 2);
        }
        assert!((0..10_000u64).all(|id| map.get(&id) == Some(&(id * 2))));
        assert_eq!(map.remove(&77), Some(154));
        assert_eq!(map.len(), 9_999);
    }
}
