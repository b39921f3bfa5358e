//! gRPC's retry throttling (gRFC A6): a token bucket per target, starting
//! full at `maxTokens`. Every attempt that fails with a retryable status
//! takes one token, every successful request (gRPC `OK`) gives back
//! `tokenRatio`, any other answer (a 404, `INVALID_ARGUMENT`) neither
//! (grpc-core's `RetryState::ShouldRetry` records nothing for a status that
//! is not retryable); the count stays within 0..=`maxTokens`, and no retry is
//! made while the count is at or below `maxTokens / 2`. Tokens are kept in
//! thousandths, as gRPC keeps `tokenRatio` to three decimals.
//!
//! A bucket written under another `maxTokens` is carried over at the same
//! fill ratio (grpc-core's `RetryThrottler::Create` on a replacement: 3 of 4
//! tokens become 7.5 of 10), so a configuration change neither refills a
//! throttled bucket nor empties a full one.
//!
//! gRPC checks the bucket before each retry; Envoy decides retries itself, so
//! the plugin grants a request at once the retries gRPC would allow it: retry
//! number `i` comes after `i` failures, so it is allowed while
//! `tokens - i > maxTokens / 2`. Grants are reserved (in two leases of
//! [`LEASE`]) until the response settles them, so that requests in flight at
//! the same time share the tokens above half instead of each seeing all of
//! them; a reservation whose response never comes lapses within two leases.
//!
//! The bucket's clock never goes back: a lease stamped later than the host's
//! time (its wall clock stepped back, or another worker's is ahead) is the
//! current one until the host's time catches up, so its reservations are kept
//! instead of being reset.

use std::time::Duration;

use crate::MILLI;

/// How long one lease slot lasts; a lost reservation lapses within two.
pub const LEASE: Duration = Duration::from_secs(30);

/// A validated gRPC token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    max_milli: u64,
    ratio_milli: u64,
}

/// Retries reserved during one lease period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    pub epoch: u64,
    pub reserved: u64,
}

/// The bucket's state: its size (a state written for another size is
/// dropped), the tokens in thousandths, and the reservations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    max_milli: u64,
    tokens_milli: u64,
    leases: [Lease; 2],
}

pub(crate) const TOKEN_STATE_LEN: usize = 16 + 2 * 16;

impl TokenBucket {
    /// A bucket from validated values: `max_tokens` in 1..=1000 and
    /// `tokenRatio` in thousandths (already truncated to three decimals).
    pub fn new(max_tokens: u32, ratio_milli: u64) -> Self {
        Self {
            max_milli: u64::from(max_tokens) * MILLI,
            ratio_milli,
        }
    }

    /// `maxTokens`, in thousandths.
    pub fn max_milli(&self) -> u64 {
        self.max_milli
    }

    /// `tokenRatio`, in thousandths.
    pub fn ratio_milli(&self) -> u64 {
        self.ratio_milli
    }

    fn half_milli(&self) -> u64 {
        self.max_milli / 2
    }

    /// A full bucket with nothing reserved.
    pub fn fresh(&self) -> TokenState {
        TokenState {
            max_milli: self.max_milli,
            tokens_milli: self.max_milli,
            leases: [Lease::default(); 2],
        }
    }

    /// Takes over a bucket written under another `maxTokens` at the same
    /// fill ratio, rounded down as grpc-core does; reservations are kept.
    pub fn adopt(&self, state: &mut TokenState) {
        if state.max_milli != self.max_milli {
            let scaled = u128::from(state.tokens_milli) * u128::from(self.max_milli)
                / u128::from(state.max_milli.max(1));
            state.tokens_milli = u64::try_from(scaled)
                .unwrap_or(self.max_milli)
                .min(self.max_milli);
            state.max_milli = self.max_milli;
        }
    }

    /// Retries gRPC would allow a request now, reservations deducted.
    pub fn available(&self, state: &TokenState, now_ns: u64) -> u64 {
        let current = state.current_lease(now_ns);
        let reserved = state.reserved(current).saturating_mul(MILLI);
        let tokens = state.tokens_milli.saturating_sub(reserved);
        if tokens <= self.half_milli() {
            return 0;
        }
        // Retry i is allowed while tokens - i > half.
        (tokens - self.half_milli() - 1) / MILLI
    }

    /// Grants up to `wanted` retries and reserves them. Returns the grant
    /// and the lease it was reserved in.
    pub fn admit(&self, state: &mut TokenState, now_ns: u64, wanted: u32) -> (u32, u64) {
        let current = state.current_lease(now_ns);
        let granted = self.available(state, now_ns).min(u64::from(wanted));
        let lease = state.lease_mut(current);
        // Never later than `current` (see `current_lease`): an older lease
        // in this slot has lapsed.
        if lease.epoch != current {
            *lease = Lease {
                epoch: current,
                reserved: 0,
            };
        }
        lease.reserved = lease.reserved.saturating_add(granted);
        (u32::try_from(granted).unwrap_or(wanted), current)
    }

    /// Gives back a reservation of `granted` made in lease `epoch`, then
    /// charges `failures` failed attempts and, if the request finally
    /// succeeded (gRPC `OK`, HTTP 2xx), credits `tokenRatio`.
    pub fn settle(
        &self,
        state: &mut TokenState,
        epoch: u64,
        granted: u32,
        failures: u32,
        succeeded: bool,
    ) {
        let lease = state.lease_mut(epoch);
        if lease.epoch == epoch {
            lease.reserved = lease.reserved.saturating_sub(u64::from(granted));
        }
        state.tokens_milli = state
            .tokens_milli
            .saturating_sub(u64::from(failures).saturating_mul(MILLI));
        if succeeded {
            state.tokens_milli = state
                .tokens_milli
                .saturating_add(self.ratio_milli)
                .min(self.max_milli);
        }
    }
}

fn lease_of(now_ns: u64) -> u64 {
    now_ns / u64::try_from(LEASE.as_nanos()).unwrap_or(u64::MAX)
}

impl TokenState {
    /// The lease reservations are made in at `now_ns`: the host's, or the
    /// latest lease stamped when that is later (the clock went back).
    fn current_lease(&self, now_ns: u64) -> u64 {
        self.leases
            .iter()
            .map(|l| l.epoch)
            .fold(lease_of(now_ns), u64::max)
    }

    /// `maxTokens` this state was written under, in thousandths.
    pub fn max_milli(&self) -> u64 {
        self.max_milli
    }

    /// Tokens, in thousandths.
    pub fn tokens_milli(&self) -> u64 {
        self.tokens_milli
    }

    /// Retries reserved in leases still current at lease `current`
    /// (a lease stamped later than `current` included).
    pub fn reserved(&self, current: u64) -> u64 {
        self.leases
            .iter()
            .filter(|l| l.epoch.saturating_add(2) > current)
            .fold(0u64, |sum, l| sum.saturating_add(l.reserved))
    }

    fn lease_mut(&mut self, epoch: u64) -> &mut Lease {
        // Reduced modulo 2, so always in bounds.
        &mut self.leases[(epoch % 2) as usize]
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.max_milli.to_le_bytes());
        out.extend_from_slice(&self.tokens_milli.to_le_bytes());
        for lease in &self.leases {
            out.extend_from_slice(&lease.epoch.to_le_bytes());
            out.extend_from_slice(&lease.reserved.to_le_bytes());
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut words = crate::le_words(bytes, TOKEN_STATE_LEN)?;
        let mut next = || words.next();
        let max_milli = next()?;
        if max_milli == 0 {
            return None;
        }
        let tokens_milli = next()?.min(max_milli);
        let mut leases = [Lease::default(); 2];
        for lease in &mut leases {
            *lease = Lease {
                epoch: next()?,
                reserved: next()?,
            };
        }
        Some(Self {
            max_milli,
            tokens_milli,
            leases,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_225_600 * 1_000_000_000;

    #[test]
    fn a_full_bucket_allows_retries_down_to_half() {
        // 10 tokens, half is 5: failures 1..=4 leave 9..=6 tokens, each
        // still above half, so four retries; the fifth failure leaves 5.
        let bucket = TokenBucket::new(10, 100);
        let state = bucket.fresh();
        assert_eq!(bucket.available(&state, T0), 4);
    }

    #[test]
    fn a_failure_costs_one_token_and_a_success_adds_the_ratio() {
        let bucket = TokenBucket::new(10, 500);
        let mut state = bucket.fresh();
        let (granted, lease) = bucket.admit(&mut state, T0, 2);
        assert_eq!(granted, 2);
        bucket.settle(&mut state, lease, granted, 3, false);
        assert_eq!(state.tokens_milli(), 7_000);
        bucket.settle(&mut state, lease, 0, 0, true);
        assert_eq!(state.tokens_milli(), 7_500);
    }

    #[test]
    fn no_retries_at_or_below_half() {
        let bucket = TokenBucket::new(10, 100);
        let mut state = bucket.fresh();
        bucket.settle(&mut state, 0, 0, 5, false);
        assert_eq!(state.tokens_milli(), 5_000);
        assert_eq!(bucket.admit(&mut state, T0, 3).0, 0);
        bucket.settle(&mut state, 0, 0, 0, true);
        // 5.1 tokens: above half, but retry 1 would leave 4.1.
        assert_eq!(bucket.admit(&mut state, T0, 3).0, 0);
        for _ in 0..10 {
            bucket.settle(&mut state, 0, 0, 0, true);
        }
        assert_eq!(state.tokens_milli(), 6_100);
        assert_eq!(bucket.admit(&mut state, T0, 3).0, 1);
    }

    #[test]
    fn tokens_stay_within_zero_and_max() {
        let bucket = TokenBucket::new(3, 1000);
        let mut state = bucket.fresh();
        bucket.settle(&mut state, 0, 0, 0, true);
        assert_eq!(state.tokens_milli(), 3_000);
        bucket.settle(&mut state, 0, 0, 100, false);
        assert_eq!(state.tokens_milli(), 0);
    }

    #[test]
    fn reservations_share_the_tokens_above_half() {
        let bucket = TokenBucket::new(10, 100);
        let mut state = bucket.fresh();
        // Four retries are above half; the first request reserves three.
        assert_eq!(bucket.admit(&mut state, T0, 3).0, 3);
        assert_eq!(bucket.admit(&mut state, T0, 3).0, 1);
        assert_eq!(bucket.admit(&mut state, T0, 3).0, 0);
        let lease = lease_of(T0);
        bucket.settle(&mut state, lease, 3, 0, true);
        assert_eq!(bucket.admit(&mut state, T0, 3).0, 3);
    }

    #[test]
    fn a_lost_reservation_lapses() {
        let bucket = TokenBucket::new(10, 100);
        let mut state = bucket.fresh();
        bucket.admit(&mut state, T0, 4);
        assert_eq!(bucket.available(&state, T0), 0);
        let later = T0 + 2 * u64::try_from(LEASE.as_nanos()).unwrap();
        assert_eq!(bucket.available(&state, later), 4);
    }

    #[test]
    fn encoding_round_trips() {
        let bucket = TokenBucket::new(10, 100);
        let mut state = bucket.fresh();
        bucket.admit(&mut state, T0, 2);
        let mut bytes = Vec::new();
        state.encode(&mut bytes);
        assert_eq!(TokenState::decode(&bytes), Some(state));
        assert_eq!(TokenState::decode(&[0; 3]), None);
    }

    #[test]
    fn a_new_max_carries_the_fill_ratio_over() {
        // grpc-core's replacement: 3 of 4 tokens become 7.5 of 10.
        let old = TokenBucket::new(4, 100);
        let mut state = old.fresh();
        old.settle(&mut state, 0, 0, 1, false);
        assert_eq!(state.tokens_milli(), 3_000);
        let new = TokenBucket::new(10, 100);
        new.adopt(&mut state);
        assert_eq!((state.tokens_milli(), state.max_milli()), (7_500, 10_000));
        // And back: the ratio again, rounded down.
        let mut back = state.clone();
        TokenBucket::new(3, 100).adopt(&mut back);
        assert_eq!(back.tokens_milli(), 2_250);
    }

    #[test]
    fn a_lease_stamped_later_than_now_is_kept() {
        // Every retry above half reserved, then the host's clock steps back
        // two leases: the slot of "now" holds the later lease.
        let bucket = TokenBucket::new(10, 100);
        let mut state = bucket.fresh();
        let later = T0 + 2 * u64::try_from(LEASE.as_nanos()).unwrap();
        assert_eq!(bucket.admit(&mut state, later, 4).0, 4);
        assert_eq!(bucket.available(&state, T0), 0);
        // Neither this request nor the next: admitting does not reset it.
        assert_eq!(bucket.admit(&mut state, T0, 4).0, 0);
        assert_eq!(bucket.admit(&mut state, T0, 4).0, 0);
        // The reservation is released where it was made.
        let lease = lease_of(later);
        bucket.settle(&mut state, lease, 4, 0, true);
        assert_eq!(bucket.admit(&mut state, T0, 4).0, 4);
    }
}
