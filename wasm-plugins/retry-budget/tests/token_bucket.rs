//! gRPC's retry throttling (gRFC A6) across worker VMs: a failed attempt
//! costs one token, a success gives back `tokenRatio`, and there are no
//! retries at or below half the tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{answer, counter, open, remaining, send, start};
use proxy_wasm_harness::Harness;

const BUCKET: &str = r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.5},
    "attempts": 4, "retryOn": "5xx"}"#;

fn tokens(harness: &Harness) -> i64 {
    harness.gauge("retry_budget._other.tokens_milli").unwrap()
}

#[test]
fn a_full_bucket_allows_retries_while_above_half() {
    let (mut harness, workers) = start(BUCKET, 2);
    let mut attempts = 0;
    // 10 tokens: the request may retry after failures 1..=4 (9..6 tokens
    // left), its fifth failure leaves 5, the half.
    let (exchange, granted) = send(&mut harness, workers[0], &mut attempts, |_| true);
    assert_eq!(granted, 4);
    assert_eq!(exchange.status(), Some(503));
    assert_eq!(attempts, 5);
    assert_eq!(tokens(&harness), 5_000);
    // At half: no retries at all, on any worker.
    assert_eq!(send(&mut harness, workers[1], &mut attempts, |_| true).1, 0);
    assert_eq!(tokens(&harness), 4_000);
    assert_eq!(remaining(&harness, "_other"), 0);
}

#[test]
fn successes_refill_by_the_ratio_up_to_max() {
    let (mut harness, workers) = start(BUCKET, 2);
    let mut attempts = 0;
    send(&mut harness, workers[0], &mut attempts, |_| true);
    send(&mut harness, workers[1], &mut attempts, |_| true);
    assert_eq!(tokens(&harness), 4_000);
    // 4 + 0.5 per success: above half (5) after three successes, but a
    // retry needs tokens - 1 > 5 as well.
    let mut grants = Vec::new();
    for i in 0..8 {
        grants.push(send(&mut harness, workers[i % 2], &mut attempts, |_| false).1);
    }
    assert_eq!(grants, [0, 0, 0, 0, 0, 1, 1, 2]);
    assert_eq!(tokens(&harness), 8_000);
    for i in 0..20 {
        send(&mut harness, workers[i % 2], &mut attempts, |_| false);
    }
    assert_eq!(tokens(&harness), 10_000, "never above maxTokens");
}

#[test]
fn each_failed_attempt_costs_a_token() {
    let (mut harness, workers) = start(BUCKET, 1);
    let mut attempts = 0;
    // Fails twice, then succeeds: two failures, one success.
    let (exchange, granted) = send(&mut harness, workers[0], &mut attempts, |n| n <= 2);
    assert_eq!((granted, exchange.status()), (4, Some(200)));
    assert_eq!(tokens(&harness), 8_500);
    assert_eq!(counter(&harness, "_other", "retries_allowed"), 2);
}

#[test]
fn tokens_never_go_below_zero() {
    let (mut harness, workers) = start(BUCKET, 3);
    let mut attempts = 0;
    for i in 0..30 {
        send(&mut harness, workers[i % 3], &mut attempts, |_| true);
    }
    assert_eq!(tokens(&harness), 0);
    // 4 retries for the first request, 0 after: 30 + 4 attempts.
    assert_eq!(attempts, 34);
}

#[test]
fn requests_in_flight_share_the_tokens_above_half() {
    let (mut harness, workers) = start(BUCKET, 4);
    let mut streams = Vec::new();
    let mut granted = 0;
    for i in 0..20 {
        let (id, g) = open(&mut harness, workers[i % 4], &[]);
        granted += g;
        streams.push(id);
    }
    // Four retries above half, shared out among the requests in flight.
    assert_eq!(granted, 4);
    for id in streams {
        answer(&mut harness, id, 200, Some(1));
    }
    assert_eq!(tokens(&harness), 10_000);
    let (_, g) = open(&mut harness, workers[0], &[]);
    assert_eq!(g, 4, "the reservations were released");
}

/// Spends two tokens (two failed requests), leaving 8.
fn two_failures(harness: &mut Harness, worker: proxy_wasm_harness::WorkerId) {
    for _ in 0..2 {
        let (id, _) = open(harness, worker, &[]);
        // Failed at the first attempt: one token.
        answer(harness, id, 503, Some(1));
    }
}

#[test]
fn only_successes_credit_the_ratio_not_a_404() {
    let (mut harness, workers) = start(BUCKET, 1);
    two_failures(&mut harness, workers[0]);
    assert_eq!(tokens(&harness), 8_000);
    // A 404 is not retried by 5xx, and is no success either (gRPC records
    // nothing for a status it does not retry).
    for _ in 0..4 {
        let (id, _) = open(&mut harness, workers[0], &[]);
        answer(&mut harness, id, 404, Some(1));
    }
    assert_eq!(tokens(&harness), 8_000);
    let (id, _) = open(&mut harness, workers[0], &[]);
    answer(&mut harness, id, 200, Some(1));
    assert_eq!(tokens(&harness), 8_500);
}

/// A gRPC response: headers `200` (and `grpc-status` in them when
/// `trailers_only`), then trailers with `grpc-status: code`.
fn grpc_response(
    harness: &mut Harness,
    worker: proxy_wasm_harness::WorkerId,
    code: &str,
    trailers_only: bool,
) {
    let (id, _) = open(harness, worker, &[("content-type", "application/grpc")]);
    let mut headers = vec![
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("x-envoy-attempt-count", "1"),
    ];
    if trailers_only {
        headers.push(("grpc-status", code));
        harness.response_headers(id, headers, true).unwrap();
    } else {
        harness.response_headers(id, headers, false).unwrap();
        harness.response_body(id, b"\0\0\0\0\0", false).unwrap();
        harness
            .response_trailers(id, [("grpc-status", code)])
            .unwrap();
    }
    harness.finish_stream(id).unwrap();
}

#[test]
fn grpc_credits_only_ok_whether_in_headers_or_trailers() {
    let config = r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.5},
        "attempts": 4, "retryOn": "unavailable"}"#;
    let (mut harness, workers) = start(config, 1);
    let worker = workers[0];
    // UNAVAILABLE, trailers-only: a failure; then in the trailers of a full
    // response (Envoy could not retry it, but the call failed).
    grpc_response(&mut harness, worker, "14", true);
    grpc_response(&mut harness, worker, "14", false);
    assert_eq!(tokens(&harness), 8_000);
    // INVALID_ARGUMENT, either way: neither credit nor charge.
    grpc_response(&mut harness, worker, "3", true);
    grpc_response(&mut harness, worker, "3", false);
    assert_eq!(tokens(&harness), 8_000);
    // OK comes in the trailers: only then is it a success.
    grpc_response(&mut harness, worker, "0", false);
    assert_eq!(tokens(&harness), 8_500);
    grpc_response(&mut harness, worker, "0", true);
    assert_eq!(tokens(&harness), 9_000);
}

#[test]
fn token_ratio_decimals_beyond_three_are_dropped() {
    // 0.5009 is 0.500 to gRPC (rounding would give 0.501).
    let config = r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.5009},
        "attempts": 4, "retryOn": "5xx"}"#;
    let (mut harness, workers) = start(config, 1);
    two_failures(&mut harness, workers[0]);
    let (id, _) = open(&mut harness, workers[0], &[]);
    answer(&mut harness, id, 200, Some(1));
    assert_eq!(tokens(&harness), 8_500);
}
