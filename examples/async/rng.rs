//! A small seedable pseudo-random generator (SplitMix64), so the async
//! recipes need no `rand` dependency and a seed replays a run exactly.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit state, a Weyl
/// sequence, and a mixing function. Good enough to pick transitions and
/// delays; not for cryptography.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator that starts from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A seed from the clock, for runs that need not be replayed.
    pub(crate) fn clock_seed() -> u64 {
        // A clock before 1970 still gives a seed, a fixed one.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0 or 1, as Python's `randint(0, 1)`: the top bit of the next number.
    pub(crate) fn bit(&mut self) -> u8 {
        (self.next_u64() >> 63) as u8
    }

    /// A duration between `low` and `high`, uniformly (to the nanosecond).
    pub(crate) fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_nanos() as u64;
        let offset = if span == 0 { 0 } else { self.next_u64() % (span + 1) };
        low + Duration::from_nanos(offset)
    }
}
