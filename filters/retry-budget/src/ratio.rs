//! The Linkerd / Finagle retry budget: over a sliding window of `ttl`,
//! retries may not exceed `retryRatio` × requests, plus a reserve of
//! `minRetriesPerSecond` × `ttl` so that quiet services can still retry.
//!
//! The window is [`BUCKETS`] buckets of `ttl / BUCKETS` each, keyed by their
//! epoch (bucket number since the Unix epoch), so the state is a fixed 248
//! bytes however busy the service is, and counts age out on their own: a
//! bucket whose epoch has left the window is reused for the current one.
//!
//! A request's retries are **reserved when granted** (charged to the
//! request's bucket before Envoy makes them) and the unused ones refunded when
//! the response reports how many attempts were made. So the budget holds even
//! when many requests are in flight on several workers at once, and a request
//! whose response is never seen keeps its reservation only until its bucket
//! leaves the window.
//!
//! The window's clock never goes back: when a bucket is stamped later than
//! the host's time (its wall clock stepped back, or another worker's clock is
//! ahead), that bucket is the current one until the host's time catches up.
//! So a backward step keeps every retry charged until then, instead of
//! emptying the slot "now" falls in (which frees its retries).

use std::time::Duration;

use crate::MICRO;

/// Buckets in the window.
pub const BUCKETS: usize = 10;

/// The largest `retryRatio`: 1000 retries per request, the bound Finagle's
/// `RetryBudget` and tower's `TpsBudget` assert (Linkerd takes it as is).
pub const MAX_RETRY_RATIO: f64 = 1000.0;

const NANOS_PER_MILLI: u128 = 1_000_000;

/// A validated Linkerd / Finagle budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatioBudget {
    ratio_micro: u64,
    min_retries_per_second: u64,
    ttl: Duration,
}

/// One bucket: requests admitted and retries charged during it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    pub epoch: u64,
    pub requests: u64,
    pub retries: u64,
}

/// The budget's whole state: the bucket width (so a state written under
/// another `ttl` is recognised and dropped) and the ring of buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatioState {
    width_ns: u64,
    buckets: [Bucket; BUCKETS],
}

/// Bytes of an encoded [`RatioState`].
pub(crate) const RATIO_STATE_LEN: usize = 8 + BUCKETS * 24;

impl RatioBudget {
    /// A budget from already validated values: `retry_ratio` in
    /// 0..=[`MAX_RETRY_RATIO`] (kept to millionths), `ttl` at least
    /// [`BUCKETS`] nanoseconds.
    pub fn new(retry_ratio: f64, min_retries_per_second: u32, ttl: Duration) -> Self {
        let ratio_micro = (retry_ratio.clamp(0.0, MAX_RETRY_RATIO) * MICRO as f64).round() as u64;
        Self {
            ratio_micro,
            min_retries_per_second: u64::from(min_retries_per_second),
            ttl,
        }
    }

    pub fn retry_ratio(&self) -> f64 {
        self.ratio_micro as f64 / MICRO as f64
    }

    pub fn min_retries_per_second(&self) -> u64 {
        self.min_retries_per_second
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The width of one bucket, in nanoseconds (at least 1).
    pub fn bucket_width_ns(&self) -> u64 {
        let ttl = u64::try_from(self.ttl.as_nanos()).unwrap_or(u64::MAX);
        (ttl / BUCKETS as u64).max(1)
    }

    /// The reserve, `minRetriesPerSecond` × `ttl`, in millionths of a retry.
    fn reserve_micro(&self) -> u128 {
        // retries/s × ttl(ms) × 1000 = millionths of a retry.
        u128::from(self.min_retries_per_second) * (self.ttl.as_nanos() / NANOS_PER_MILLI) * 1_000
    }

    /// How many retries the window may hold for `requests` requests, in
    /// millionths: `retryRatio × requests + minRetriesPerSecond × ttl`.
    pub fn capacity_micro(&self, requests: u64) -> u128 {
        u128::from(requests) * u128::from(self.ratio_micro) + self.reserve_micro()
    }

    /// An empty window.
    pub fn fresh(&self) -> RatioState {
        RatioState {
            width_ns: self.bucket_width_ns(),
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    /// Whether `state` was written under this budget's bucket width.
    pub fn fits(&self, state: &RatioState) -> bool {
        state.width_ns == self.bucket_width_ns()
    }

    /// Retries a request could be granted at `now_ns`, before depositing it.
    pub fn available(&self, state: &RatioState, now_ns: u64) -> u64 {
        let current = state.current_epoch(now_ns);
        let (requests, retries) = state.window(current);
        self.headroom(requests, retries)
    }

    fn headroom(&self, requests: u64, retries: u64) -> u64 {
        let spent = u128::from(retries) * u128::from(MICRO);
        let free = self.capacity_micro(requests).saturating_sub(spent) / u128::from(MICRO);
        u64::try_from(free).unwrap_or(u64::MAX)
    }

    /// Admits one request at `now_ns` that would like up to `wanted`
    /// retries: deposits the request, grants what the window allows and
    /// reserves it. Returns the retries granted and the bucket they were
    /// charged to (for [`RatioBudget::settle`]).
    pub fn admit(&self, state: &mut RatioState, now_ns: u64, wanted: u32) -> (u32, u64) {
        let current = state.record(now_ns, 0);
        let (requests, retries) = state.window(current);
        let granted = self.headroom(requests, retries).min(u64::from(wanted));
        let slot = state.slot_mut(current);
        slot.retries = slot.retries.saturating_add(granted);
        (u32::try_from(granted).unwrap_or(wanted), current)
    }

    /// Settles a request admitted in bucket `epoch` with `granted` retries,
    /// of which it `used` some (never more than granted: Envoy obeys the
    /// header, and a count claiming more is not believed): refunds the
    /// unused reservation. Nothing is refunded once the bucket has left the
    /// window.
    pub fn settle(&self, state: &mut RatioState, epoch: u64, granted: u32, used: u32) {
        state.refund(epoch, u64::from(granted.saturating_sub(used)));
    }
}

impl RatioState {
    /// The bucket number of `now_ns`.
    pub fn epoch_of(&self, now_ns: u64) -> u64 {
        now_ns / self.width_ns.max(1)
    }

    /// The current bucket at `now_ns`: the host's, or the latest bucket
    /// stamped when that is later (the clock went back).
    pub fn current_epoch(&self, now_ns: u64) -> u64 {
        self.buckets
            .iter()
            .map(|b| b.epoch)
            .fold(self.epoch_of(now_ns), u64::max)
    }

    /// Counts one request, and `retries` charged for it, in the current
    /// bucket at `now_ns`; returns that bucket. (Also how a configuration
    /// of another `ttl` on the same value records its admissions here.)
    pub fn record(&mut self, now_ns: u64, retries: u64) -> u64 {
        let current = self.current_epoch(now_ns);
        self.rotate(current);
        let slot = self.slot_mut(current);
        slot.requests = slot.requests.saturating_add(1);
        slot.retries = slot.retries.saturating_add(retries);
        current
    }

    /// Puts `requests` and `retries` in the current bucket at `now_ns` (a
    /// new window taking over another's counts).
    pub fn seed(&mut self, now_ns: u64, requests: u64, retries: u64) {
        let current = self.current_epoch(now_ns);
        self.rotate(current);
        let slot = self.slot_mut(current);
        slot.requests = slot.requests.saturating_add(requests);
        slot.retries = slot.retries.saturating_add(retries);
    }

    /// Takes `refund` retries off bucket `epoch`, if the ring still holds it.
    pub fn refund(&mut self, epoch: u64, refund: u64) {
        let bucket = self.slot_mut(epoch);
        if bucket.epoch == epoch {
            bucket.retries = bucket.retries.saturating_sub(refund);
        }
    }

    /// Whether nothing is counted in the window at `now_ns`: the state can
    /// be dropped without losing anything.
    pub fn is_idle(&self, now_ns: u64) -> bool {
        self.window(self.current_epoch(now_ns)) == (0, 0)
    }

    fn slot_mut(&mut self, epoch: u64) -> &mut Bucket {
        // Reduced modulo `BUCKETS`, so always in bounds.
        &mut self.buckets[(epoch % BUCKETS as u64) as usize]
    }

    /// Makes the current bucket's slot hold `current` (emptying what it
    /// held, which is older: `current` comes from [`RatioState::current_epoch`]).
    fn rotate(&mut self, current: u64) {
        let slot = self.slot_mut(current);
        if slot.epoch != current {
            *slot = Bucket {
                epoch: current,
                ..Bucket::default()
            };
        }
    }

    /// Requests and retries in the window ending with bucket `current`
    /// (a bucket stamped later than `current` counted too).
    pub fn window(&self, current: u64) -> (u64, u64) {
        self.buckets
            .iter()
            .filter(|b| b.epoch.saturating_add(BUCKETS as u64) > current)
            .fold((0u64, 0u64), |(requests, retries), b| {
                (
                    requests.saturating_add(b.requests),
                    retries.saturating_add(b.retries),
                )
            })
    }

    /// The buckets, in slot order.
    pub fn buckets(&self) -> &[Bucket; BUCKETS] {
        &self.buckets
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.width_ns.to_le_bytes());
        for bucket in &self.buckets {
            out.extend_from_slice(&bucket.epoch.to_le_bytes());
            out.extend_from_slice(&bucket.requests.to_le_bytes());
            out.extend_from_slice(&bucket.retries.to_le_bytes());
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut words = crate::le_words(bytes, RATIO_STATE_LEN)?;
        let mut next = || words.next();
        let width_ns = next()?;
        if width_ns == 0 {
            return None;
        }
        let mut buckets = [Bucket::default(); BUCKETS];
        for bucket in &mut buckets {
            *bucket = Bucket {
                epoch: next()?,
                requests: next()?,
                retries: next()?,
            };
        }
        Some(Self { width_ns, buckets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;
    /// A start time far from zero, as the host's wall clock is.
    const T0: u64 = 1_767_225_600 * SECOND;

    fn linkerd() -> RatioBudget {
        RatioBudget::new(0.2, 10, Duration::from_secs(10))
    }

    #[test]
    fn the_reserve_is_floor_times_ttl() {
        let budget = RatioBudget::new(0.0, 10, Duration::from_secs(10));
        let mut state = budget.fresh();
        let mut granted = 0;
        for i in 0..200 {
            granted += budget.admit(&mut state, T0 + i * 1000, 3).0;
        }
        assert_eq!(granted, 100);
    }

    #[test]
    fn retries_follow_the_ratio_once_the_reserve_is_spent() {
        let budget = RatioBudget::new(0.2, 0, Duration::from_secs(10));
        let mut state = budget.fresh();
        let granted: u32 = (0..100)
            .map(|i| budget.admit(&mut state, T0 + i, 1).0)
            .sum();
        assert_eq!(granted, 20);
    }

    #[test]
    fn unused_retries_are_refunded() {
        let budget = RatioBudget::new(0.0, 1, Duration::from_secs(10));
        let mut state = budget.fresh();
        let (granted, epoch) = budget.admit(&mut state, T0, 3);
        assert_eq!(granted, 3);
        assert_eq!(budget.available(&state, T0), 7);
        budget.settle(&mut state, epoch, granted, 0);
        assert_eq!(budget.available(&state, T0), 10);
    }

    #[test]
    fn the_window_forgets_after_ttl() {
        let budget = linkerd();
        let mut state = budget.fresh();
        while budget.admit(&mut state, T0, 3).0 > 0 {}
        assert_eq!(budget.available(&state, T0 + 9 * SECOND), 0);
        assert_eq!(budget.available(&state, T0 + 10 * SECOND), 100);
    }

    #[test]
    fn a_late_settlement_does_not_refund_a_new_bucket() {
        let budget = RatioBudget::new(0.0, 1, Duration::from_secs(10));
        let mut state = budget.fresh();
        let (granted, epoch) = budget.admit(&mut state, T0, 3);
        let later = T0 + 10 * SECOND;
        let (again, _) = budget.admit(&mut state, later, 3);
        assert_eq!((granted, again), (3, 3));
        budget.settle(&mut state, epoch, granted, 0);
        assert_eq!(budget.available(&state, later), 7);
    }

    #[test]
    fn a_clock_step_back_does_not_free_retries() {
        let budget = RatioBudget::new(0.0, 1, Duration::from_secs(10));
        let mut state = budget.fresh();
        while budget.admit(&mut state, T0 + 5 * SECOND, 3).0 > 0 {}
        assert_eq!(budget.available(&state, T0), 0);
    }

    #[test]
    fn a_clock_step_back_of_a_whole_window_keeps_what_was_charged() {
        // Spent at T0 + ttl; the clock then steps back by ttl: "now" falls in
        // the slot of the spent bucket, which must not be emptied.
        let budget = RatioBudget::new(0.0, 1, Duration::from_secs(10));
        let mut state = budget.fresh();
        let later = T0 + 10 * SECOND;
        let (granted, epoch) = budget.admit(&mut state, later, 10);
        assert_eq!(granted, 10);
        assert_eq!(budget.admit(&mut state, T0, 3).0, 0);
        assert_eq!(budget.available(&state, T0 + 5 * SECOND), 0);
        // The refund still finds its bucket.
        budget.settle(&mut state, epoch, granted, 4);
        assert_eq!(budget.available(&state, T0), 6);
        // Once the host's clock passes the stamp, the window slides again.
        assert_eq!(budget.available(&state, later + 10 * SECOND), 10);
    }

    #[test]
    fn a_ratio_above_one_grants_several_retries_per_request() {
        // Finagle's and tower's upper bound: 1000 retries per request.
        let budget = RatioBudget::new(MAX_RETRY_RATIO, 0, Duration::from_secs(10));
        let mut state = budget.fresh();
        assert_eq!(budget.admit(&mut state, T0, 10).0, 10);
        assert_eq!(budget.available(&state, T0), 1000 - 10);
        assert_eq!(
            RatioBudget::new(2.5, 0, Duration::from_secs(10)).retry_ratio(),
            2.5
        );
    }

    #[test]
    fn encoding_round_trips() {
        let budget = linkerd();
        let mut state = budget.fresh();
        budget.admit(&mut state, T0, 2);
        let mut bytes = Vec::new();
        state.encode(&mut bytes);
        assert_eq!(bytes.len(), RATIO_STATE_LEN);
        assert_eq!(RatioState::decode(&bytes), Some(state));
        assert_eq!(RatioState::decode(&bytes[1..]), None);
    }
}
