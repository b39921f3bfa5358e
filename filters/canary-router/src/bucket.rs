//! Buckets and the weighted split.
//!
//! Every user has a bucket in `0..=9999` ([`BUCKETS`] of them), kept for as
//! long as their cookie lives. The split maps buckets to subsets by
//! cumulative weight, in the order the subsets are configured: with weights
//! `w0, w1, ..., wn` (percent, summing to 100), subset `i` owns the buckets
//! `100 * (w0 + ... + w(i-1))` up to, but not including,
//! `100 * (w0 + ... + wi)`. One percent of weight is exactly 100 buckets, so
//! the share of buckets equals the weights exactly.
//!
//! Why ramps are monotonic: the first subset's range always starts at bucket
//! 0 and the last subset's range always ends at bucket 9999. List the stable
//! version first and the canary last (`[v1, v2]`): the canary owns
//! `[10000 - 100 * w_canary, 10000)`, so raising its weight only lowers the
//! start of that range, taking buckets from the subset just before it; no
//! bucket the canary owned before leaves it. Lowering the canary's weight
//! (a rollback) gives back exactly the buckets between the old and the new
//! start, and nobody else moves. Subsets in the middle of a longer list have
//! no such guarantee when their neighbours change: keep the canary last.

use std::ops::Range;

use mesh_policy::fnv1a64;

/// How many buckets there are: `0..=9999`.
pub const BUCKETS: u16 = 10_000;

/// Buckets per percent of weight.
pub const BUCKETS_PER_PERCENT: u16 = BUCKETS / 100;

/// Subsets' bucket ranges, by cumulative weight in configuration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// `ends[i]`: one past subset `i`'s last bucket.
    ends: Vec<u16>,
}

impl Split {
    /// The split for `weights` (percent, in subset order). `None` unless they
    /// sum to exactly 100.
    pub fn new(weights: &[u8]) -> Option<Self> {
        let mut total: u16 = 0;
        let mut ends = Vec::with_capacity(weights.len());
        for &weight in weights {
            total = total.checked_add(u16::from(weight))?;
            ends.push(total.checked_mul(BUCKETS_PER_PERCENT)?);
        }
        (total == 100).then_some(Self { ends })
    }

    /// The index of the subset that owns `bucket`. Buckets past the last
    /// (never produced by [`identity_bucket`] or [`random_bucket`]) belong to
    /// the last subset.
    pub fn subset_of(&self, bucket: u16) -> usize {
        let index = self.ends.partition_point(|&end| end <= bucket);
        index.min(self.ends.len().saturating_sub(1))
    }

    /// The buckets subset `index` owns (empty for a weight of 0).
    pub fn range(&self, index: usize) -> Range<u16> {
        let start = match index.checked_sub(1) {
            Some(previous) => self.ends.get(previous).copied().unwrap_or(BUCKETS),
            None => 0,
        };
        let end = self.ends.get(index).copied().unwrap_or(start);
        start..end
    }

    /// How many subsets the split has.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the split has no subsets (never true for a validated one).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// MurmurHash3's 64-bit finalizer: spreads every input bit over the output,
/// so the low digits that pick a bucket depend on the whole hash.
pub fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// The bucket of a user identity (the `identity` header's value):
/// `fmix64(fnv1a64(utf-8 bytes)) % 10000` (FNV-1a 64 from `mesh-policy`). Stable across versions, proxies
/// and languages, so one user lands in one bucket on every device.
pub fn identity_bucket(identity: &str) -> u16 {
    bucket_of(fmix64(fnv1a64(identity.as_bytes())))
}

/// A bucket from a random 64-bit number.
pub fn random_bucket(random: u64) -> u16 {
    bucket_of(random)
}

fn bucket_of(x: u64) -> u16 {
    // `x % 10000 < 10000 <= u16::MAX`: the conversion never fails.
    u16::try_from(x % u64::from(BUCKETS)).unwrap_or(BUCKETS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ninety_ten_puts_the_canary_at_the_top() {
        let split = Split::new(&[90, 10]).unwrap_or_else(|| unreachable!());
        assert_eq!(split.range(0), 0..9000);
        assert_eq!(split.range(1), 9000..10_000);
        assert_eq!(split.subset_of(0), 0);
        assert_eq!(split.subset_of(8999), 0);
        assert_eq!(split.subset_of(9000), 1);
        assert_eq!(split.subset_of(9999), 1);
    }

    #[test]
    fn a_zero_weight_owns_no_bucket() {
        let split = Split::new(&[100, 0]).unwrap_or_else(|| unreachable!());
        assert!(split.range(1).is_empty());
        assert_eq!(split.subset_of(9999), 0);
        let split = Split::new(&[0, 100]).unwrap_or_else(|| unreachable!());
        assert_eq!(split.subset_of(0), 1);
    }

    #[test]
    fn weights_must_sum_to_100() {
        assert!(Split::new(&[90, 5]).is_none());
        assert!(Split::new(&[90, 20]).is_none());
        assert!(Split::new(&[]).is_none());
        assert!(Split::new(&[255, 255]).is_none());
    }

    #[test]
    fn identity_buckets_are_stable() {
        // Pinned: changing the hash would move every identified user.
        assert_eq!(identity_bucket("alice"), 7236);
        assert_eq!(identity_bucket("bob"), 9952);
        assert_eq!(identity_bucket("user-1"), 5477);
        assert!(identity_bucket("") < BUCKETS);
    }
}
