//! One interface over both budgets, on encoded state: what the adapter reads
//! from shared data goes in as bytes, and what it writes back comes out as
//! bytes. A missing, foreign or corrupt state (another mode, another `ttl`
//! or `maxTokens`) starts afresh instead of failing.

use crate::ratio::{RATIO_STATE_LEN, RatioBudget, RatioState};
use crate::tokens::{TOKEN_STATE_LEN, TokenBucket, TokenState};

const VERSION: u8 = 1;
const KIND_RATIO: u8 = 1;
const KIND_TOKENS: u8 = 2;

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
}

/// How a request ended, as far as the plugin could see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The response headers arrived.
    Answered {
        /// `x-envoy-attempt-count`, when Envoy reported it.
        attempts: Option<u32>,
        /// Whether the final response is a failure under `retryOn`.
        failed: bool,
    },
    /// The stream ended without response headers (client gone, reset).
    Unknown,
}

impl Outcome {
    /// Retries Envoy made for a request granted `granted`. Without an attempt
    /// count a failure is taken to have used every retry granted (Envoy gives
    /// up only then) and a success none.
    pub fn retries_used(&self, granted: u32) -> u32 {
        match *self {
            Self::Answered {
                attempts: Some(attempts),
                ..
            } => attempts.saturating_sub(1),
            Self::Answered {
                attempts: None,
                failed,
            } => {
                if failed {
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
    /// The state to write back.
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

enum State {
    Ratio(RatioState),
    Tokens(TokenState),
}

impl Budget {
    /// The encoded state of a scope nobody has used yet.
    pub fn fresh_state(&self) -> Vec<u8> {
        self.encode(&self.fresh())
    }

    /// Admits a request at `now_ns` (nanoseconds of the host's clock) that
    /// the route would retry up to `wanted` times.
    pub fn admit(&self, state: Option<&[u8]>, now_ns: u64, wanted: u32) -> Admission {
        let mut state = self.decode(state);
        let (granted, epoch) = match (self, &mut state) {
            (Self::Ratio(b), State::Ratio(s)) => b.admit(s, now_ns, wanted),
            (Self::Tokens(b), State::Tokens(s)) => b.admit(s, now_ns, wanted),
            _ => (0, 0),
        };
        Admission {
            ticket: Ticket { granted, epoch },
            remaining: self.available(&state, now_ns),
            state: self.encode(&state),
        }
    }

    /// Settles the request that got `ticket`.
    pub fn settle(
        &self,
        state: Option<&[u8]>,
        now_ns: u64,
        ticket: Ticket,
        outcome: Outcome,
    ) -> Settlement {
        let mut state = self.decode(state);
        let used = outcome.retries_used(ticket.granted);
        match (self, &mut state) {
            (Self::Ratio(b), State::Ratio(s)) => {
                b.settle(s, now_ns, ticket.epoch, ticket.granted, used);
            }
            (Self::Tokens(b), State::Tokens(s)) => match outcome {
                Outcome::Answered { failed, .. } => {
                    let failures = used.saturating_add(u32::from(failed));
                    b.settle(s, ticket.epoch, ticket.granted, failures, !failed);
                }
                // Nothing is known of the attempts: only the reservation goes.
                Outcome::Unknown => b.settle(s, ticket.epoch, ticket.granted, 0, false),
            },
            _ => {}
        }
        Settlement {
            remaining: self.available(&state, now_ns),
            state: self.encode(&state),
            retries_used: used,
        }
    }

    /// Retries a request could be granted at `now_ns`.
    pub fn remaining(&self, state: Option<&[u8]>, now_ns: u64) -> u64 {
        self.available(&self.decode(state), now_ns)
    }

    /// Tokens in thousandths (token-bucket mode), for the gauge.
    pub fn tokens_milli(&self, state: Option<&[u8]>) -> Option<u64> {
        match self.decode(state) {
            State::Tokens(s) => Some(s.tokens_milli()),
            State::Ratio(_) => None,
        }
    }

    /// Decodes a ratio-budget state (for tests and tools).
    pub fn decode_ratio(&self, state: Option<&[u8]>) -> Option<RatioState> {
        match self.decode(state) {
            State::Ratio(s) => Some(s),
            State::Tokens(_) => None,
        }
    }

    /// Decodes a token-bucket state (for tests and tools).
    pub fn decode_tokens(&self, state: Option<&[u8]>) -> Option<TokenState> {
        match self.decode(state) {
            State::Tokens(s) => Some(s),
            State::Ratio(_) => None,
        }
    }

    fn available(&self, state: &State, now_ns: u64) -> u64 {
        match (self, state) {
            (Self::Ratio(b), State::Ratio(s)) => b.available(s, now_ns),
            (Self::Tokens(b), State::Tokens(s)) => b.available(s, now_ns),
            _ => 0,
        }
    }

    fn fresh(&self) -> State {
        match self {
            Self::Ratio(b) => State::Ratio(b.fresh()),
            Self::Tokens(b) => State::Tokens(b.fresh()),
        }
    }

    fn decode(&self, bytes: Option<&[u8]>) -> State {
        let decoded = bytes.and_then(|bytes| match (self, bytes) {
            (Self::Ratio(b), [VERSION, KIND_RATIO, body @ ..]) => RatioState::decode(body)
                .filter(|s| b.fits(s))
                .map(State::Ratio),
            (Self::Tokens(b), [VERSION, KIND_TOKENS, body @ ..]) => TokenState::decode(body)
                .filter(|s| b.fits(s))
                .map(State::Tokens),
            _ => None,
        });
        decoded.unwrap_or_else(|| self.fresh())
    }

    fn encode(&self, state: &State) -> Vec<u8> {
        match state {
            State::Ratio(s) => {
                let mut out = Vec::with_capacity(2 + RATIO_STATE_LEN);
                out.extend_from_slice(&[VERSION, KIND_RATIO]);
                s.encode(&mut out);
                out
            }
            State::Tokens(s) => {
                let mut out = Vec::with_capacity(2 + TOKEN_STATE_LEN);
                out.extend_from_slice(&[VERSION, KIND_TOKENS]);
                s.encode(&mut out);
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    const SECOND: u64 = 1_000_000_000;
    const T0: u64 = 1_767_225_600 * SECOND;

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
    fn a_state_of_another_mode_or_ttl_starts_fresh() {
        let tokens = Budget::Tokens(TokenBucket::new(10, 0.1));
        let spent = ratio(0.0, 1, 10).admit(None, T0, 10).state;
        assert_eq!(ratio(0.0, 1, 10).remaining(Some(&spent), T0), 0);
        assert_eq!(ratio(0.0, 1, 20).remaining(Some(&spent), T0), 20);
        assert_eq!(tokens.remaining(Some(&spent), T0), 4);
        assert_eq!(tokens.remaining(Some(b"garbage"), T0), 4);
    }

    #[test]
    fn without_attempt_count_failures_use_the_grant() {
        let failed = Outcome::Answered {
            attempts: None,
            failed: true,
        };
        let ok = Outcome::Answered {
            attempts: None,
            failed: false,
        };
        assert_eq!(failed.retries_used(2), 2);
        assert_eq!(ok.retries_used(2), 0);
        assert_eq!(Outcome::Unknown.retries_used(2), 2);
    }

    #[test]
    fn settling_a_token_request_charges_each_failed_attempt() {
        let budget = Budget::Tokens(TokenBucket::new(10, 0.1));
        let admission = budget.admit(None, T0, 3);
        let settled = budget.settle(
            Some(&admission.state),
            T0,
            admission.ticket,
            Outcome::Answered {
                attempts: Some(4),
                failed: true,
            },
        );
        assert_eq!(settled.retries_used, 3);
        assert_eq!(budget.tokens_milli(Some(&settled.state)), Some(6_000));
    }

    #[test]
    fn an_unknown_token_outcome_only_releases() {
        let budget = Budget::Tokens(TokenBucket::new(10, 0.1));
        let admission = budget.admit(None, T0, 3);
        let settled = budget.settle(
            Some(&admission.state),
            T0,
            admission.ticket,
            Outcome::Unknown,
        );
        assert_eq!(budget.tokens_milli(Some(&settled.state)), Some(10_000));
        assert_eq!(settled.remaining, 4);
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
                            Outcome::Answered { attempts: Some(used + 1), failed }
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
            let inner = TokenBucket::new(max, ratio_milli as f64 / 1000.0);
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
                            Outcome::Answered { attempts: Some(used.min(ticket.granted) + 1), failed }
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
            let tokens = Budget::Tokens(TokenBucket::new(10, 0.1));
            prop_assert!(tokens.admit(Some(&bytes), T0, 3).ticket.granted <= 3);
        }

        /// Encoding then decoding a state changes nothing.
        #[test]
        fn encoding_round_trips(admits in prop::collection::vec(0u64..20_000, 0..50)) {
            let budget = ratio(0.2, 10, 10);
            let mut state = budget.fresh_state();
            for (i, ms) in admits.iter().enumerate() {
                state = budget.admit(Some(&state), T0 + ms * 1_000_000 + i as u64, 2).state;
            }
            let decoded = budget.decode_ratio(Some(&state));
            prop_assert!(decoded.is_some());
            if let Some(decoded) = decoded {
                let mut again = Vec::new();
                again.extend_from_slice(&[VERSION, KIND_RATIO]);
                decoded.encode(&mut again);
                prop_assert_eq!(again, state);
            }
        }
    }
}
