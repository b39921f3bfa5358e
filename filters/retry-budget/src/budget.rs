//! One interface over both budgets, on encoded state: what the adapter reads
//! from shared data goes in as bytes, and what it writes back comes out as
//! bytes.
//!
//! One shared-data value holds the states of every configuration using it,
//! so that two configurations on one key (the old and the new one during a
//! rollout, or a canary of the plugin's configuration) never reset each
//! other's state. Compatible configurations share one state: ratio budgets
//! with the same bucket width (`ttl`) decide on the same counts with their
//! own `retryRatio` and floor, and every token bucket shares one, carried over
//! to its own `maxTokens` at the same fill ratio (grpc-core's replacement).
//! Ratio budgets of another `ttl` get a window each, and every window records
//! every configuration's admissions and refunds, so each bound holds over
//! all of the value's traffic. At most [`MAX_STATES`] states per value: a ratio state
//! with nothing left in its window is dropped when another needs the room,
//! and a configuration that finds no room grants no retries until one lapses
//! (at most one `ttl`). So a value never exceeds
//! [`MAX_STATE_BYTES`], whatever the configuration churn. A missing or
//! corrupt value starts afresh instead of failing.

use crate::ratio::{RATIO_STATE_LEN, RatioBudget, RatioState};
use crate::tokens::{TOKEN_STATE_LEN, TokenBucket, TokenState};
use mesh_policy::RetryOn;

/// The encoding's version: 2 holds several states (version 1, one state,
/// lives under other keys, see the adapter).
const VERSION: u8 = 2;
const KIND_RATIO: u8 = 1;
const KIND_TOKENS: u8 = 2;

/// The most states one shared-data value holds: one token bucket and three
/// ratio windows of different `ttl`s, or four windows.
pub const MAX_STATES: usize = 4;

/// The largest encoded value: the header and [`MAX_STATES`] states.
pub const MAX_STATE_BYTES: usize = 2 + MAX_STATES * (1 + RATIO_STATE_LEN);

/// Which budget a scope uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Linkerd / Finagle: `retryRatio`, `minRetriesPerSecond`, `ttl`.
    Ratio(RatioBudget),
    /// gRPC retry throttling: `maxTokens`, `tokenRatio`.
    Tokens(TokenBucket),
}

/// What a request was granted; kept by the stream until its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Retries granted (the `x-envoy-max-retries` sent to Envoy).
    pub granted: u32,
    /// The bucket or lease the grant was reserved in.
    pub epoch: u64,
    /// When it was admitted (the host's clock, in nanoseconds): where the
    /// grant was recorded in the windows of other `ttl`s on the value.
    pub admitted_ns: u64,
}

/// What the final response was, for the budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// gRPC `OK`, or an HTTP 2xx without a `grpc-status`: credits `tokenRatio`.
    Success,
    /// A failure `retryOn` would have retried.
    Failure,
    /// Anything else (a 404, gRPC `INVALID_ARGUMENT`): neither a success nor
    /// a failure the budget counts, as grpc-core records nothing for a
    /// status that is not retryable.
    Other,
}

impl Verdict {
    /// The verdict on a final response: `status`, and the `grpc-status` of
    /// its headers (a trailers-only response) or trailers, if any. A failure
    /// is what `retryOn` retries; a success is gRPC `OK`, or an HTTP 2xx
    /// that is not gRPC; anything else is neither.
    pub fn of(retry_on: &RetryOn, status: u16, grpc_status: Option<u32>) -> Self {
        if retry_on.is_failure(status, grpc_status) {
            Self::Failure
        } else if (200..300).contains(&status) && grpc_status.is_none_or(|code| code == 0) {
            Self::Success
        } else {
            Self::Other
        }
    }
}

/// How a request ended, as far as the plugin could see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The response arrived.
    Answered {
        /// `x-envoy-attempt-count`, when the response carried one.
        attempts: Option<u32>,
        verdict: Verdict,
    },
    /// The stream ended without response headers (client gone, reset).
    Unknown,
}

impl Outcome {
    /// Retries Envoy made for a request granted `granted`: the attempt count
    /// less one, never more than granted (Envoy obeys `x-envoy-max-retries`;
    /// a count beyond it comes from elsewhere, such as an upstream's own
    /// header on a route without `include_attempt_count_in_response`, and
    /// is not believed). Without a count a failure is taken to have used
    /// every retry granted (Envoy gives up only then) and anything else none.
    pub fn retries_used(&self, granted: u32) -> u32 {
        match *self {
            Self::Answered {
                attempts: Some(attempts),
                ..
            } => attempts.saturating_sub(1).min(granted),
            Self::Answered {
                attempts: None,
                verdict,
            } => {
                if verdict == Verdict::Failure {
                    granted
                } else {
                    0
                }
            }
            Self::Unknown => granted,
        }
    }
}

/// The result of admitting a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub ticket: Ticket,
    /// The value to write back.
    pub state: Vec<u8>,
    /// Retries the next request could be granted (the gauge).
    pub remaining: u64,
}

/// The result of settling a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub state: Vec<u8>,
    pub remaining: u64,
    /// Retries Envoy made for the request.
    pub retries_used: u32,
}

/// One configuration's state in a value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Ratio(RatioState),
    Tokens(TokenState),
}

impl State {
    fn kind(&self) -> u8 {
        match self {
            Self::Ratio(_) => KIND_RATIO,
            Self::Tokens(_) => KIND_TOKENS,
        }
    }
}

/// A decoded value: the states of the configurations using it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct States(Vec<State>);

impl States {
    fn decode(bytes: Option<&[u8]>) -> Self {
        let Some([VERSION, count, body @ ..]) = bytes else {
            return Self::default();
        };
        let mut rest: &[u8] = body;
        let mut states = Vec::with_capacity(usize::from(*count));
        for _ in 0..*count {
            let decoded = match rest {
                [KIND_RATIO, body @ ..] if body.len() >= RATIO_STATE_LEN => {
                    let (state, tail) = body.split_at(RATIO_STATE_LEN);
                    rest = tail;
                    RatioState::decode(state).map(State::Ratio)
                }
                [KIND_TOKENS, body @ ..] if body.len() >= TOKEN_STATE_LEN => {
                    let (state, tail) = body.split_at(TOKEN_STATE_LEN);
                    rest = tail;
                    TokenState::decode(state).map(State::Tokens)
                }
                _ => None,
            };
            match decoded {
                Some(state) if states.len() < MAX_STATES => states.push(state),
                _ => return Self::default(),
            }
        }
        if rest.is_empty() {
            Self(states)
        } else {
            Self::default()
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.0.len() * (1 + RATIO_STATE_LEN));
        // At most MAX_STATES states, so the count fits a byte.
        out.extend_from_slice(&[VERSION, self.0.len() as u8]);
        for state in &self.0 {
            out.push(state.kind());
            match state {
                State::Ratio(s) => s.encode(&mut out),
                State::Tokens(s) => s.encode(&mut out),
            }
        }
        out
    }
}

impl States {
    /// The ratio windows other than the one at `own`.
    fn other_windows(
        &mut self,
        own: Option<usize>,
    ) -> impl Iterator<Item = (usize, &mut RatioState)> {
        self.0
            .iter_mut()
            .enumerate()
            .filter(move |(index, _)| Some(*index) != own)
            .filter_map(|(index, state)| match state {
                State::Ratio(s) => Some((index, s)),
                State::Tokens(_) => None,
            })
    }
}

impl Budget {
    /// The encoded value of a scope nobody has used yet.
    pub fn fresh_state(&self) -> Vec<u8> {
        States::default().encode()
    }

    /// Admits a request at `now_ns` (nanoseconds of the host's clock) that
    /// the route would retry up to `wanted` times.
    pub fn admit(&self, value: Option<&[u8]>, now_ns: u64, wanted: u32) -> Admission {
        let mut states = States::decode(value);
        let (granted, epoch, remaining, own) = match self.own(&mut states, now_ns, true) {
            Some((index, state)) => {
                let (granted, epoch) = match (self, &mut *state) {
                    (Self::Ratio(b), State::Ratio(s)) => b.admit(s, now_ns, wanted),
                    (Self::Tokens(b), State::Tokens(s)) => b.admit(s, now_ns, wanted),
                    _ => (0, 0),
                };
                (granted, epoch, self.available(state, now_ns), Some(index))
            }
            // No room for this configuration's state: no retries.
            None => (0, 0, 0, None),
        };
        if let Self::Ratio(_) = self {
            // The windows of other ttls count this request and its grant
            // too, so each ratio configuration's bound holds over all of
            // the value's traffic, not only its own.
            for (_, other) in states.other_windows(own) {
                other.record(now_ns, u64::from(granted));
            }
        }
        Admission {
            ticket: Ticket {
                granted,
                epoch,
                admitted_ns: now_ns,
            },
            remaining,
            state: states.encode(),
        }
    }

    /// Settles the request that got `ticket`.
    pub fn settle(
        &self,
        value: Option<&[u8]>,
        now_ns: u64,
        ticket: Ticket,
        outcome: Outcome,
    ) -> Settlement {
        let mut states = States::decode(value);
        let used = outcome.retries_used(ticket.granted);
        let own = self.own(&mut states, now_ns, false);
        let own_index = own.as_ref().map(|(index, _)| *index);
        let remaining = match own {
            Some((_, state)) => {
                match (self, &mut *state) {
                    (Self::Ratio(b), State::Ratio(s)) => {
                        b.settle(s, ticket.epoch, ticket.granted, used);
                    }
                    (Self::Tokens(b), State::Tokens(s)) => match outcome {
                        Outcome::Answered { verdict, .. } => {
                            let failed = verdict == Verdict::Failure;
                            let failures = used.saturating_add(u32::from(failed));
                            let succeeded = verdict == Verdict::Success;
                            b.settle(s, ticket.epoch, ticket.granted, failures, succeeded);
                        }
                        // Nothing is known of the attempts: only the reservation goes.
                        Outcome::Unknown => b.settle(s, ticket.epoch, ticket.granted, 0, false),
                    },
                    _ => {}
                }
                self.available(state, now_ns)
            }
            None => 0,
        };
        if let Self::Ratio(_) = self {
            let refund = u64::from(ticket.granted.saturating_sub(used));
            for (_, other) in states.other_windows(own_index) {
                // Recorded in the bucket of the admission time (or a later
                // one after a clock step, where the refund then misses and
                // the charge stays: the safe side).
                let epoch = other.epoch_of(ticket.admitted_ns);
                other.refund(epoch, refund);
            }
        }
        Settlement {
            remaining,
            state: states.encode(),
            retries_used: used,
        }
    }

    /// Retries a request could be granted at `now_ns`.
    pub fn remaining(&self, value: Option<&[u8]>, now_ns: u64) -> u64 {
        let mut states = States::decode(value);
        self.own(&mut states, now_ns, true)
            .map_or(0, |(_, state)| self.available(state, now_ns))
    }

    /// Tokens in thousandths (token-bucket mode), for the gauge.
    pub fn tokens_milli(&self, value: Option<&[u8]>) -> Option<u64> {
        self.decode_tokens(value).map(|s| s.tokens_milli())
    }

    /// This configuration's ratio state in a value (for tests and tools).
    pub fn decode_ratio(&self, value: Option<&[u8]>) -> Option<RatioState> {
        let mut states = States::decode(value);
        match self.own(&mut states, 0, true)?.1 {
            State::Ratio(s) => Some(s.clone()),
            State::Tokens(_) => None,
        }
    }

    /// This configuration's token state in a value (for tests and tools).
    pub fn decode_tokens(&self, value: Option<&[u8]>) -> Option<TokenState> {
        let mut states = States::decode(value);
        match self.own(&mut states, 0, true)?.1 {
            State::Tokens(s) => Some(s.clone()),
            State::Ratio(_) => None,
        }
    }

    /// How many configurations' states a value holds (for tests and tools).
    pub fn states_in(value: Option<&[u8]>) -> usize {
        States::decode(value).0.len()
    }

    fn available(&self, state: &State, now_ns: u64) -> u64 {
        match (self, state) {
            (Self::Ratio(b), State::Ratio(s)) => b.available(s, now_ns),
            (Self::Tokens(b), State::Tokens(s)) => b.available(s, now_ns),
            _ => 0,
        }
    }

    /// This configuration's state in `states`: the compatible one (a token
    /// bucket taken over at this `maxTokens`), else, when `create`, a fresh
    /// one where there is room (dropping an idle ratio window if need be).
    fn own<'a>(
        &self,
        states: &'a mut States,
        now_ns: u64,
        create: bool,
    ) -> Option<(usize, &'a mut State)> {
        let found = states.0.iter().position(|state| match (self, state) {
            (Self::Ratio(b), State::Ratio(s)) => b.fits(s),
            (Self::Tokens(_), State::Tokens(_)) => true,
            _ => false,
        });
        let index = match found {
            Some(index) => index,
            None if !create => return None,
            None => {
                if states.0.len() >= MAX_STATES {
                    let idle = states.0.iter().position(|state| match state {
                        State::Ratio(s) => s.is_idle(now_ns),
                        // The only token bucket: it refills by successes,
                        // not by time, so it is never idle.
                        State::Tokens(_) => false,
                    })?;
                    states.0.remove(idle);
                }
                let fresh = match self {
                    Self::Ratio(b) => {
                        // A window of a new ttl starts from what the busiest
                        // window on the value counts now, so that it does
                        // not add a whole reserve of its own on top of it.
                        let mut fresh = b.fresh();
                        let busiest = states
                            .other_windows(None)
                            .map(|(_, s)| s.window(s.current_epoch(now_ns)))
                            .max_by_key(|(_, retries)| *retries);
                        if let Some((requests, retries)) = busiest {
                            fresh.seed(now_ns, requests, retries);
                        }
                        State::Ratio(fresh)
                    }
                    Self::Tokens(b) => State::Tokens(b.fresh()),
                };
                states.0.push(fresh);
                states.0.len() - 1
            }
        };
        let state = states.0.get_mut(index)?;
        if let (Self::Tokens(b), State::Tokens(s)) = (self, &mut *state) {
            b.adopt(s);
        }
        Some((index, state))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    const SECOND: u64 = 1_000_000_000;
    const T0: u64 = 1_767_225_600 * SECOND;

    fn answered(attempts: Option<u32>, verdict: Verdict) -> Outcome {
        Outcome::Answered { attempts, verdict }
    }

    /// Admits one request at T0 that wants `wanted` retries, and settles it
    /// at once with `outcome`.
    fn round_trip(
        budget: &Budget,
        value: Option<&[u8]>,
        wanted: u32,
        outcome: Outcome,
    ) -> Settlement {
        let admission = budget.admit(value, T0, wanted);
        budget.settle(Some(&admission.state), T0, admission.ticket, outcome)
    }

    fn ratio(r: f64, floor: u32, ttl_s: u64) -> Budget {
        Budget::Ratio(RatioBudget::new(r, floor, Duration::from_secs(ttl_s)))
    }

    #[test]
    fn a_missing_state_starts_fresh() {
        let budget = ratio(0.2, 10, 10);
        let admission = budget.admit(None, T0, 3);
        assert_eq!(admission.ticket.granted, 3);
        assert_eq!(admission.remaining, 97);
    }

    #[test]
    fn another_ttl_starts_from_what_the_value_counts_another_mode_afresh() {
        let tokens = Budget::Tokens(TokenBucket::new(10, 100));
        let spent = ratio(0.0, 1, 10).admit(None, T0, 10).state;
        assert_eq!(ratio(0.0, 1, 10).remaining(Some(&spent), T0), 0);
        // Its own window of 20 s, seeded with the 10 retries charged.
        assert_eq!(ratio(0.0, 1, 20).remaining(Some(&spent), T0), 10);
        assert_eq!(tokens.remaining(Some(&spent), T0), 4);
        assert_eq!(tokens.remaining(Some(b"garbage"), T0), 4);
    }

    #[test]
    fn two_configurations_on_one_value_never_reset_each_other() {
        // The old and the new configuration of a rollout (another ttl, the
        // same bound), admitting requests in turn on one value: each window
        // counts both configurations' requests and grants, so together they
        // stay within the bound (separately they granted 2 x 100).
        let old = ratio(0.2, 1, 10);
        let new = ratio(0.2, 2, 5);
        let mut value = old.fresh_state();
        let (mut by_old, mut by_new) = (0, 0);
        for i in 0..100 {
            let budget = if i % 2 == 0 { &old } else { &new };
            let admission = budget.admit(Some(&value), T0, 2);
            value = admission.state;
            if i % 2 == 0 {
                by_old += admission.ticket.granted;
            } else {
                by_new += admission.ticket.granted;
            }
        }
        // 0.2 x 100 + 1/s x 10 s = 0.2 x 100 + 2/s x 5 s = 30, in all.
        assert_eq!((by_old, by_new), (15, 15));
        assert_eq!(Budget::states_in(Some(&value)), 2);
    }

    #[test]
    fn refunds_reach_the_other_windows() {
        // A grant recorded in the other window is refunded there as well.
        let old = ratio(0.0, 1, 10);
        let new = ratio(0.0, 2, 5);
        let value = old.admit(None, T0, 0).state;
        let admission = new.admit(Some(&value), T0, 3);
        assert_eq!(admission.ticket.granted, 3);
        assert_eq!(old.remaining(Some(&admission.state), T0), 7);
        let settled = new.settle(
            Some(&admission.state),
            T0,
            admission.ticket,
            answered(Some(2), Verdict::Failure),
        );
        // One retry used: 10 - 1 in the old window, 10 - 1 in the new.
        assert_eq!(old.remaining(Some(&settled.state), T0), 9);
        assert_eq!(settled.remaining, 9);
    }

    #[test]
    fn compatible_configurations_share_one_state() {
        // Same ttl, another ratio: one window, each deciding with its ratio.
        let strict = ratio(0.0, 1, 10);
        let loose = ratio(0.5, 1, 10);
        let spent = strict.admit(None, T0, 10).state;
        assert_eq!(Budget::states_in(Some(&spent)), 1);
        // One request, ten retries charged: 0.5 x 2 + 10 - 10 after this one.
        let admission = loose.admit(Some(&spent), T0, 3);
        assert_eq!(admission.ticket.granted, 1);
        assert_eq!(Budget::states_in(Some(&admission.state)), 1);
    }

    #[test]
    fn a_token_bucket_carries_its_fill_ratio_to_a_new_max() {
        let four = Budget::Tokens(TokenBucket::new(4, 100));
        let settled = round_trip(&four, None, 0, answered(Some(1), Verdict::Failure));
        assert_eq!(four.tokens_milli(Some(&settled.state)), Some(3_000));
        let ten = Budget::Tokens(TokenBucket::new(10, 100));
        assert_eq!(ten.tokens_milli(Some(&settled.state)), Some(7_500));
        assert_eq!(Budget::states_in(Some(&settled.state)), 1);
    }

    #[test]
    fn the_value_stays_bounded_whatever_the_churn() {
        // Configurations of ever new ttls: at most MAX_STATES states; a
        // newcomer takes the room of an idle window, or grants nothing.
        let mut value = ratio(0.2, 1, 1).fresh_state();
        for ttl in 1..=60 {
            let admission = ratio(0.0, 1, ttl).admit(Some(&value), T0, 1);
            value = admission.state;
            assert!(value.len() <= MAX_STATE_BYTES);
            assert!(Budget::states_in(Some(&value)) <= MAX_STATES);
            // Beyond four, the windows in the value are all still live.
            let expected = u32::from(ttl <= MAX_STATES as u64);
            assert_eq!(admission.ticket.granted, expected, "ttl {ttl}");
        }
        // Once a window has slid past, a new configuration finds room.
        let later = T0 + 2 * SECOND;
        let admission = ratio(0.0, 1, 7).admit(Some(&value), later, 1);
        assert_eq!(admission.ticket.granted, 1);
        assert_eq!(Budget::states_in(Some(&admission.state)), MAX_STATES);
    }

    #[test]
    fn an_attempt_count_beyond_the_grant_is_not_believed() {
        // A response claiming 4294967295 attempts (an upstream's own header
        // on a route without include_attempt_count_in_response).
        let lie = |verdict| answered(Some(u32::MAX), verdict);
        assert_eq!(lie(Verdict::Success).retries_used(3), 3);
        let budget = ratio(0.2, 1, 10);
        let settled = round_trip(&budget, None, 3, lie(Verdict::Success));
        assert_eq!(settled.retries_used, 3);
        // 0.2 + 10 - 3: the scope keeps its budget.
        assert_eq!(settled.remaining, 7);
        let tokens = Budget::Tokens(TokenBucket::new(10, 100));
        let settled = round_trip(&tokens, None, 4, lie(Verdict::Failure));
        // Four retries and the last attempt failed: five tokens.
        assert_eq!(tokens.tokens_milli(Some(&settled.state)), Some(5_000));
    }

    #[test]
    fn only_a_success_credits_the_token_ratio() {
        let budget = Budget::Tokens(TokenBucket::new(10, 500));
        let mut value = budget.fresh_state();
        // Two failures: 8 tokens.
        for _ in 0..2 {
            value = round_trip(
                &budget,
                Some(&value),
                0,
                answered(Some(1), Verdict::Failure),
            )
            .state;
        }
        let after = |verdict| {
            let state = round_trip(&budget, Some(&value), 0, answered(Some(1), verdict)).state;
            budget.tokens_milli(Some(&state))
        };
        // A 404 or INVALID_ARGUMENT: neither credit nor charge.
        assert_eq!(after(Verdict::Other), Some(8_000));
        assert_eq!(after(Verdict::Success), Some(8_500));
    }

    #[test]
    fn verdicts_follow_grpc() {
        let on = RetryOn::parse("5xx,unavailable").unwrap();
        assert_eq!(Verdict::of(&on, 200, None), Verdict::Success);
        assert_eq!(Verdict::of(&on, 204, Some(0)), Verdict::Success);
        assert_eq!(Verdict::of(&on, 503, None), Verdict::Failure);
        assert_eq!(Verdict::of(&on, 200, Some(14)), Verdict::Failure);
        // Neither: not retried, and not OK.
        assert_eq!(Verdict::of(&on, 404, None), Verdict::Other);
        assert_eq!(Verdict::of(&on, 200, Some(3)), Verdict::Other);
        assert_eq!(Verdict::of(&on, 302, None), Verdict::Other);
    }

    #[test]
    fn without_attempt_count_failures_use_the_grant() {
        let answered = |verdict| answered(None, verdict);
        assert_eq!(answered(Verdict::Failure).retries_used(2), 2);
        assert_eq!(answered(Verdict::Success).retries_used(2), 0);
        assert_eq!(answered(Verdict::Other).retries_used(2), 0);
        assert_eq!(Outcome::Unknown.retries_used(2), 2);
    }

    #[test]
    fn settling_a_token_request_charges_each_failed_attempt() {
        let budget = Budget::Tokens(TokenBucket::new(10, 100));
        let settled = round_trip(&budget, None, 3, answered(Some(4), Verdict::Failure));
        assert_eq!(settled.retries_used, 3);
        assert_eq!(budget.tokens_milli(Some(&settled.state)), Some(6_000));
    }

    #[test]
    fn an_unknown_token_outcome_only_releases() {
        let budget = Budget::Tokens(TokenBucket::new(10, 100));
        let settled = round_trip(&budget, None, 3, Outcome::Unknown);
        assert_eq!(budget.tokens_milli(Some(&settled.state)), Some(10_000));
        assert_eq!(settled.remaining, 4);
    }

    fn verdict(failed: bool) -> Verdict {
        if failed {
            Verdict::Failure
        } else {
            Verdict::Success
        }
    }

    /// One step a proxy could take against a budget.
    #[derive(Debug, Clone)]
    enum Step {
        /// Admit a request after `advance_ms`.
        Admit { advance_ms: u64 },
        /// Settle the in-flight request at `index` (mod count).
        Settle {
            index: usize,
            used: u32,
            failed: bool,
            known: bool,
        },
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            prop_oneof![
                3 => (0u64..1500).prop_map(|advance_ms| Step::Admit { advance_ms }),
                2 => (any::<usize>(), 0u32..5, any::<bool>(), any::<bool>()).prop_map(
                    |(index, used, failed, known)| Step::Settle { index, used, failed, known }
                ),
            ],
            1..400,
        )
    }

    proptest! {
        /// Whenever retries are granted, the retries charged in the window
        /// of `ttl` ending then (its buckets up to the current one, this
        /// grant included) stay within `retryRatio × requests + floor × ttl`,
        /// whatever the order of requests and responses; the ring holds
        /// exactly that window; and Envoy never gets more than `attempts`.
        #[test]
        fn retries_charged_stay_within_ratio_and_floor(
            ratio_micro in 0u64..=1_000_000,
            floor in 0u32..20,
            ttl_s in 1u64..=60,
            attempts in 0u32..6,
            plan in steps(),
        ) {
            let r = ratio_micro as f64 / 1e6;
            let inner = RatioBudget::new(r, floor, Duration::from_secs(ttl_s));
            let budget = Budget::Ratio(inner);
            let width = inner.bucket_width_ns();
            let mut state = budget.fresh_state();
            let mut now = T0;
            let mut in_flight: Vec<Ticket> = Vec::new();
            // Independent ledger: (bucket epoch, requests, retries charged).
            let mut ledger: Vec<(u64, u64, i64)> = Vec::new();
            for step in plan {
                match step {
                    Step::Admit { advance_ms } => {
                        now += advance_ms * 1_000_000;
                        let admission = budget.admit(Some(&state), now, attempts);
                        prop_assert!(admission.ticket.granted <= attempts);
                        state = admission.state;
                        let epoch = now / width;
                        ledger.push((epoch, 1, i64::from(admission.ticket.granted)));
                        in_flight.push(admission.ticket);
                        let (requests, retries) = ledger
                            .iter()
                            .filter(|(e, _, _)| e + crate::BUCKETS as u64 > epoch)
                            .fold((0u64, 0i64), |(q, t), (_, dq, dt)| (q + dq, t + dt));
                        // The ring holds exactly the ledger's window.
                        let ring = budget.decode_ratio(Some(&state)).map(|s| s.window(epoch));
                        prop_assert_eq!(ring, Some((requests, retries.max(0) as u64)));
                        // A grant never takes the window past the bound. (Old
                        // requests leaving the window later can make an earlier
                        // grant exceed the ratio of what remains; no new grant
                        // is then made until it fits again.)
                        if admission.ticket.granted > 0 {
                            let capacity = inner.capacity_micro(requests);
                            prop_assert!(
                                (retries.max(0) as u128) * 1_000_000 <= capacity,
                                "{retries} retries for {requests} requests"
                            );
                        }
                    }
                    Step::Settle { index, used, failed, known } if !in_flight.is_empty() => {
                        let ticket = in_flight.remove(index % in_flight.len());
                        let used = used.min(ticket.granted);
                        let outcome = if known {
                            answered(Some(used + 1), verdict(failed))
                        } else {
                            Outcome::Unknown
                        };
                        let settled = budget.settle(Some(&state), now, ticket, outcome);
                        state = settled.state;
                        // The refund lands only while the bucket is in the window.
                        if ticket.epoch + crate::BUCKETS as u64 > now / width {
                            let refund = ticket.granted - settled.retries_used;
                            ledger.push((ticket.epoch, 0, -i64::from(refund)));
                        }
                    }
                    Step::Settle { .. } => {}
                }
            }
        }

        /// The token bucket never goes below 0 or above `maxTokens`, and
        /// grants nothing at or below half.
        #[test]
        fn tokens_stay_in_bounds(
            max in 1u32..=1000,
            ratio_milli in 1u64..=5000,
            attempts in 0u32..5,
            plan in steps(),
        ) {
            let inner = TokenBucket::new(max, ratio_milli);
            let budget = Budget::Tokens(inner);
            let mut state = budget.fresh_state();
            let mut now = T0;
            let mut in_flight = Vec::new();
            for step in plan {
                match step {
                    Step::Admit { advance_ms } => {
                        now += advance_ms * 1_000_000;
                        let before = budget.decode_tokens(Some(&state)).map(|s| s.tokens_milli());
                        let admission = budget.admit(Some(&state), now, attempts);
                        if before.is_some_and(|t| t <= inner.max_milli() / 2) {
                            prop_assert_eq!(admission.ticket.granted, 0);
                        }
                        prop_assert!(admission.ticket.granted <= attempts);
                        state = admission.state;
                        in_flight.push(admission.ticket);
                    }
                    Step::Settle { index, used, failed, known } if !in_flight.is_empty() => {
                        let ticket = in_flight.remove(index % in_flight.len());
                        let outcome = if known {
                            answered(Some(used.min(ticket.granted) + 1), verdict(failed))
                        } else {
                            Outcome::Unknown
                        };
                        state = budget.settle(Some(&state), now, ticket, outcome).state;
                    }
                    Step::Settle { .. } => {}
                }
                let tokens = budget.decode_tokens(Some(&state)).map(|s| s.tokens_milli());
                prop_assert!(tokens.is_some_and(|t| t <= inner.max_milli()));
            }
        }

        /// Whatever bytes shared data holds, decoding never panics and
        /// yields a usable state.
        #[test]
        fn any_bytes_decode_to_some_state(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let budget = ratio(0.2, 10, 10);
            let admission = budget.admit(Some(&bytes), T0, 3);
            prop_assert!(admission.ticket.granted <= 3);
            let tokens = Budget::Tokens(TokenBucket::new(10, 100));
            prop_assert!(tokens.admit(Some(&bytes), T0, 3).ticket.granted <= 3);
        }

        /// Encoding then decoding a value changes nothing.
        #[test]
        fn encoding_round_trips(admits in prop::collection::vec(0u64..20_000, 0..50)) {
            let budgets = [ratio(0.2, 10, 10), ratio(0.2, 10, 20), Budget::Tokens(TokenBucket::new(10, 100))];
            let mut value = budgets[0].fresh_state();
            for (i, ms) in admits.iter().enumerate() {
                value = budgets[i % 3].admit(Some(&value), T0 + ms * 1_000_000 + i as u64, 2).state;
            }
            prop_assert_eq!(States::decode(Some(&value)).encode(), value);
        }
    }
}
