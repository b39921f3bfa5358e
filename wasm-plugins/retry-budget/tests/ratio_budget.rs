//! The Linkerd / Finagle budget on the virtual clock, across worker VMs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{BUDGET, advance, answer, counter, open, remaining, send, start};
use proxy_wasm_harness::LogLevel;

#[test]
fn the_budget_holds_for_requests_in_flight_on_every_worker() {
    let (mut harness, workers) = start(BUDGET, 4);
    let mut streams = Vec::new();
    let mut granted = 0;
    for i in 0..100 {
        let (id, g) = open(&mut harness, workers[i % 4], &[]);
        granted += g;
        streams.push(id);
    }
    // 0.2 × 100 requests + 1/s × 10 s, exactly: no worker's update was lost.
    assert_eq!(granted, 30);
    for id in streams {
        answer(&mut harness, id, 503, Some(1));
    }
    assert_eq!(counter(&harness, "_other", "requests"), 100);
}

#[test]
fn retries_used_are_charged_and_the_rest_refunded() {
    let (mut harness, workers) = start(BUDGET, 2);
    // Each failing request used every retry it was granted: 10 + 0.2 per
    // request, until the budget is spent.
    let mut attempts = 0;
    let mut granted = Vec::new();
    for i in 0..50 {
        let (_, g) = send(&mut harness, workers[i % 2], &mut attempts, |_| true);
        granted.push(g);
    }
    let total: u32 = granted.iter().sum();
    assert_eq!(total, 20, "{granted:?}"); // 0.2 × 50 + 10
    assert_eq!(attempts, 50 + 20);
    // Successes deposit 0.2 each and refund what they were granted: from the
    // fifth on, each gets the retry the deposits add up to (without refunds
    // only every fifth would).
    let after: Vec<u32> = (0..10)
        .map(|i| send(&mut harness, workers[i % 2], &mut attempts, |_| false).1)
        .collect();
    assert_eq!(after, [0, 0, 0, 0, 1, 1, 1, 1, 1, 2]);
    assert_eq!(counter(&harness, "_other", "retries_allowed"), 20);
}

#[test]
fn successes_keep_every_retry_available() {
    let (mut harness, workers) = start(BUDGET, 3);
    let mut attempts = 0;
    for i in 0..300 {
        let (_, g) = send(&mut harness, workers[i % 3], &mut attempts, |n| {
            n == 1 && i % 10 == 0
        });
        assert_eq!(g, 3, "request {i}");
    }
    // 10 % failed once and were retried once.
    assert_eq!(attempts, 330);
    assert_eq!(counter(&harness, "_other", "retries_allowed"), 30);
    assert_eq!(counter(&harness, "_other", "retries_denied"), 0);
}

#[test]
fn the_floor_lets_a_quiet_service_retry() {
    let config = r#"{"budget": {"retryRatio": 0, "minRetriesPerSecond": 2, "ttl": "5s"},
        "attempts": 1, "retryOn": "5xx"}"#;
    let (mut harness, workers) = start(config, 2);
    let mut attempts = 0;
    let mut granted = 0;
    for i in 0..15 {
        granted += send(&mut harness, workers[i % 2], &mut attempts, |_| true).1;
        advance(&mut harness, Duration::from_millis(100));
    }
    // 2/s × 5 s = 10 retries in any window, even with no ratio at all.
    assert_eq!(granted, 10);
    assert_eq!(counter(&harness, "_other", "retries_denied"), 5);
}

#[test]
fn the_budget_refills_after_ttl() {
    let (mut harness, workers) = start(BUDGET, 2);
    let mut attempts = 0;
    while send(&mut harness, workers[0], &mut attempts, |_| true).1 > 0 {}
    assert_eq!(remaining(&harness, "_other"), 0);
    advance(&mut harness, Duration::from_secs(5));
    assert_eq!(send(&mut harness, workers[1], &mut attempts, |_| true).1, 0);
    // One ttl after the retries were spent, they have all left the window.
    advance(&mut harness, Duration::from_secs(5));
    let (_, granted) = send(&mut harness, workers[1], &mut attempts, |_| true);
    assert_eq!(granted, 3);
    assert_eq!(remaining(&harness, "_other"), 7);
}

#[test]
fn a_failing_backend_gets_ratio_plus_floor_over_a_long_run() {
    // 20 requests/s for 60 s against an upstream that always fails: every
    // window of 10 s holds at most 0.2 × 200 + 10 = 50 retries.
    let (mut harness, workers) = start(BUDGET, 4);
    let mut attempts = 0;
    let mut per_second = Vec::new();
    for second in 0..60 {
        let before = attempts;
        for i in 0..20 {
            send(&mut harness, workers[i % 4], &mut attempts, |_| true);
            advance(&mut harness, Duration::from_millis(50));
        }
        per_second.push(attempts - before - 20);
        let _ = second;
    }
    for window in per_second.windows(10) {
        let retries: u64 = window.iter().sum();
        assert!(retries <= 50, "{retries} retries in 10 s: {per_second:?}");
    }
    let retries: u64 = per_second.iter().sum();
    let requests = 1200u64;
    // Over the run: about ratio × requests plus the floor per window.
    assert!(retries <= requests / 5 + 60, "{retries}");
    assert!(retries >= requests / 5, "{retries}");
    assert_eq!(counter(&harness, "_other", "retries_allowed"), retries);
    assert_eq!(
        counter(&harness, "_other", "requests"),
        requests,
        "every request counted once"
    );
}

#[test]
fn retries_come_back_within_one_ttl_of_recovery() {
    let (mut harness, workers) = start(BUDGET, 2);
    let mut attempts = 0;
    for i in 0..100 {
        send(&mut harness, workers[i % 2], &mut attempts, |_| true);
    }
    assert_eq!(
        send(&mut harness, workers[0], &mut attempts, |_| false).1,
        0
    );
    // The backend recovers: within one ttl every request may retry again.
    let mut first_full = None;
    for step in 0..=100 {
        let (_, granted) = send(&mut harness, workers[step % 2], &mut attempts, |_| false);
        if granted == 3 && first_full.is_none() {
            first_full = Some(step);
        }
        advance(&mut harness, Duration::from_millis(100));
    }
    let step = first_full.expect("retries came back");
    assert!(step <= 100, "after {step} × 100 ms");
}

#[test]
fn without_attempt_count_a_failure_uses_its_whole_grant() {
    let config = r#"{"budget": {"retryRatio": 0, "minRetriesPerSecond": 1, "ttl": "10s"},
        "attempts": 3, "retryOn": "5xx"}"#;
    let (mut harness, workers) = start(config, 1);
    let (id, granted) = open(&mut harness, workers[0], &[]);
    assert_eq!(granted, 3);
    answer(&mut harness, id, 503, None);
    assert_eq!(remaining(&harness, "_other"), 7);
    // A success without the count is taken to have used none.
    let (id, granted) = open(&mut harness, workers[0], &[]);
    assert_eq!(granted, 3);
    answer(&mut harness, id, 200, None);
    assert_eq!(remaining(&harness, "_other"), 7);
    let warnings: Vec<_> = harness
        .logs_at(workers[0], LogLevel::Warn)
        .unwrap()
        .into_iter()
        .filter(|l| l.contains("x-envoy-attempt-count"))
        .collect();
    assert_eq!(warnings.len(), 1, "warned once per VM: {warnings:?}");
}

#[test]
fn a_stream_that_ends_without_a_response_keeps_its_reservation() {
    let config = r#"{"budget": {"retryRatio": 0, "minRetriesPerSecond": 1, "ttl": "10s"},
        "attempts": 3, "retryOn": "5xx"}"#;
    let (mut harness, workers) = start(config, 1);
    let (id, _) = open(&mut harness, workers[0], &[]);
    harness.finish_stream(id).unwrap();
    assert_eq!(remaining(&harness, "_other"), 7);
    advance(&mut harness, Duration::from_secs(10));
    let (_, granted) = open(&mut harness, workers[0], &[]);
    assert_eq!(granted, 3, "the reservation aged out with its bucket");
}

#[test]
fn metrics_count_allowed_and_denied_retries() {
    let config = r#"{"budget": {"retryRatio": 0, "minRetriesPerSecond": 1, "ttl": "10s"},
        "attempts": 3, "retryOn": "5xx"}"#;
    let (mut harness, workers) = start(config, 2);
    let mut attempts = 0;
    for i in 0..5 {
        send(&mut harness, workers[i % 2], &mut attempts, |_| true);
    }
    // Grants 3, 3, 3, 1, 0: ten retries made, 2 + 3 withheld from failures.
    assert_eq!(counter(&harness, "_other", "retries_allowed"), 10);
    assert_eq!(counter(&harness, "_other", "retries_denied"), 5);
    assert_eq!(counter(&harness, "_other", "requests"), 5);
    assert_eq!(remaining(&harness, "_other"), 0);
}
