//! Percentages and the draws that decide whether a share of requests is
//! picked.
//!
//! A percentage is kept in millionths of all requests (100 % = 1 000 000, as
//! Envoy's `FractionalPercent` with denominator `MILLION`), converted from
//! Istio's `Percent` exactly as istiod converts it
//! (`translatePercentToFractionalPercent` in
//! `pilot/pkg/networking/core/route/route.go`, Istio 1.30:
//! `uint32(value * 10000)` over `MILLION`, the product in float64 and
//! truncated): digits past the fourth decimal are dropped, and a value whose
//! product falls just below a whole number loses one more millionth
//! (`12.3456` is 123 455, as in Envoy behind istiod). A share picks a
//! request when a draw in `0..1_000_000` is below it.
//!
//! A draw comes from 64 bits of entropy (a random number, or the FNV-1a 64
//! hash of a request id) and a salt, so that several decisions about one
//! request are independent:
//!
//! ```text
//! draw(entropy, salt) = splitmix64(entropy XOR salt) mod 1_000_000
//! ```
//!
//! FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3) and the
//! splitmix64 finaliser are fixed functions, so the same request id gets the
//! same decision on every hop, every build and every platform.

use serde::Deserialize;

/// Istio's `Percent` as written: `{"value": 12.5}`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WirePercentage {
    pub value: f64,
}

/// Draws are in `0..SCALE`; a percentage of 100 is `SCALE` millionths.
pub const SCALE: u32 = 1_000_000;

/// A share of requests, in millionths (100 % = [`SCALE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percentage(u32);

impl Percentage {
    pub const NEVER: Self = Self(0);
    pub const ALWAYS: Self = Self(SCALE);

    /// From Istio's `Percent` value in `0..=100`, as istiod translates it
    /// to Envoy's `FractionalPercent`: `uint32(value * 10000)` millionths,
    /// the product in float64, truncated toward zero (`12.34567` is
    /// 123 456, `0.00005` is 0, `99.99999` is 999 999). `None` when out of
    /// range or not a number (Istio's validation refuses those).
    pub fn from_percent(value: f64) -> Option<Self> {
        if !(0.0..=100.0).contains(&value) {
            return None;
        }
        // In range, so the product is in 0..=1e6; `as` truncates toward
        // zero, as Go's float-to-integer conversion does.
        Some(Self((value * 10_000.0) as u32))
    }

    /// From millionths of all requests, capped at 100 %.
    pub fn from_parts_per_million(ppm: u32) -> Self {
        Self(ppm.min(SCALE))
    }

    pub fn parts_per_million(self) -> u32 {
        self.0
    }

    /// Whether a draw in `0..SCALE` falls inside this share.
    pub fn fires(self, draw: u32) -> bool {
        draw < self.0
    }
}

/// FNV-1a, 64-bit: a stable hash of a request id.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The splitmix64 finaliser: spreads every input bit over the output.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A draw in `0..SCALE` from `entropy`, independent per `salt`.
pub fn draw(entropy: u64, salt: u64) -> u32 {
    // The modulo bias is below 1e-13: far under what any test can see.
    (splitmix64(entropy ^ salt) % u64::from(SCALE)) as u32
}

/// A small, fast random generator (splitmix64 sequence): good enough for
/// sampling, not for secrets. A plugin seeds it once per VM.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        // The finaliser adds the increment again; subtract it so the output
        // is the standard splitmix64 sequence.
        splitmix64(self.state.wrapping_sub(0x9e37_79b9_7f4a_7c15))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ppm(value: f64) -> Option<u32> {
        Percentage::from_percent(value).map(Percentage::parts_per_million)
    }

    #[test]
    fn percent_is_truncated_to_millionths_as_istiod_does() {
        // istiod: uint32(value * 10000) over MILLION (the figures are what
        // Go computes for uint32(v*10000) with v a float64 variable).
        assert_eq!(ppm(12.34567), Some(123_456));
        assert_eq!(ppm(0.00005), Some(0));
        assert_eq!(ppm(99.99999), Some(999_999));
        assert_eq!(ppm(0.0001), Some(1));
        // The float64 product falls just below the whole number: one less.
        assert_eq!(ppm(12.3456), Some(123_455));
        assert_eq!(ppm(0.57), Some(5_699));
        assert_eq!(ppm(0.0003), Some(2));
        assert_eq!(ppm(50.0), Some(500_000));
        assert_eq!(Percentage::from_percent(100.0), Some(Percentage::ALWAYS));
        assert_eq!(Percentage::from_percent(0.0), Some(Percentage::NEVER));
    }

    #[test]
    fn out_of_range_is_refused() {
        assert_eq!(Percentage::from_percent(-0.0001), None);
        assert_eq!(Percentage::from_percent(100.0001), None);
        assert_eq!(Percentage::from_percent(f64::NAN), None);
        assert_eq!(Percentage::from_percent(f64::INFINITY), None);
    }

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn splitmix64_sequence_matches_the_reference() {
        // The reference generator seeded with 1234567.
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn draws_with_different_salts_differ() {
        let entropy = fnv1a64(b"3f6c2a9e-request");
        assert_ne!(draw(entropy, 1), draw(entropy, 2));
    }

    #[test]
    fn draws_are_uniform_enough() {
        let mut rng = SplitMix64::new(7);
        let below_quarter = (0..100_000)
            .filter(|_| draw(rng.next_u64(), 0x64_65_6c_61_79) < SCALE / 4)
            .count();
        assert!((24_000..26_000).contains(&below_quarter), "{below_quarter}");
    }

    proptest! {
        #[test]
        fn always_fires_and_never_does_not(draw_value in 0u32..SCALE) {
            prop_assert!(Percentage::ALWAYS.fires(draw_value));
            prop_assert!(!Percentage::NEVER.fires(draw_value));
        }

        #[test]
        fn a_larger_share_fires_whenever_a_smaller_one_does(
            a in 0u32..=SCALE, b in 0u32..=SCALE, entropy in any::<u64>(), salt in any::<u64>()
        ) {
            let (small, large) = (a.min(b), a.max(b));
            let d = draw(entropy, salt);
            if Percentage::from_parts_per_million(small).fires(d) {
                prop_assert!(Percentage::from_parts_per_million(large).fires(d));
            }
        }

        #[test]
        fn draws_stay_in_range(entropy in any::<u64>(), salt in any::<u64>()) {
            prop_assert!(draw(entropy, salt) < SCALE);
        }
    }
}
