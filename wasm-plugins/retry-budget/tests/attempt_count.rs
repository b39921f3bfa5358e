//! `x-envoy-attempt-count` is believed only up to the retries granted: on a
//! route without `include_attempt_count_in_response` the header comes from
//! the upstream (or anyone before it), and a count of 4294967295 must not
//! charge the scope four billion retries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{BUDGET, answer, counter, open, remaining, start};
use proxy_wasm_harness::Harness;

#[test]
fn a_response_claiming_four_billion_attempts_keeps_the_scope_open() {
    let (mut harness, workers) = start(BUDGET, 2);
    let (id, granted) = open(&mut harness, workers[0], &[]);
    assert_eq!(granted, 3);
    answer(&mut harness, id, 200, Some(u32::MAX));
    // Charged the three retries it was granted, no more: 0.2 + 10 - 3.
    assert_eq!(counter(&harness, "_other", "retries_allowed"), 3);
    assert_eq!(remaining(&harness, "_other"), 7);
    // The next request, on the other worker, still gets its retries.
    let (id, granted) = open(&mut harness, workers[1], &[]);
    assert_eq!(granted, 3);
    answer(&mut harness, id, 503, Some(4));
    let (_, granted) = open(&mut harness, workers[0], &[]);
    assert_eq!(granted, 3);
}

fn tokens(harness: &Harness) -> i64 {
    harness.gauge("retry_budget._other.tokens_milli").unwrap()
}

#[test]
fn in_token_mode_a_lie_costs_at_most_the_attempts_granted() {
    let config = r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.5},
        "attempts": 4, "retryOn": "5xx"}"#;
    let (mut harness, workers) = start(config, 1);
    let (id, granted) = open(&mut harness, workers[0], &[]);
    assert_eq!(granted, 4);
    answer(&mut harness, id, 503, Some(u32::MAX));
    // Five failed attempts at most: 10 - 5 tokens, not 0.
    assert_eq!(tokens(&harness), 5_000);
}
