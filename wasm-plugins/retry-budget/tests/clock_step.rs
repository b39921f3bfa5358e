//! A backward step of the host's wall clock frees no retries and no
//! reservations. A second harness, started a window earlier than the first,
//! takes over the first one's shared data: every stamp in it is later than
//! its clock, as after a step back (or a worker whose clock is ahead).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{advance, answer, open, plugin, start};
use proxy_wasm_harness::{Harness, WorkerId};

/// A harness `earlier` before `from`'s clock, holding `from`'s shared data.
fn stepped_back(from: &Harness, earlier: Duration, config: &str) -> (Harness, WorkerId) {
    let mut harness = Harness::new();
    assert_eq!(from.now() - earlier, harness.now());
    for (key, value) in from.shared_data_entries("") {
        harness.set_shared_data("", &key, &value);
    }
    let worker = harness.start(&plugin(config)).unwrap();
    (harness, worker)
}

#[test]
fn spent_retries_stay_spent_when_the_clock_steps_back_a_window() {
    // ratio 0, floor 1/s over 10 s: ten retries.
    let config = r#"{"budget": {"retryRatio": 0, "minRetriesPerSecond": 1, "ttl": "10s"},
        "attempts": 10, "retryOn": "5xx"}"#;
    let (mut harness, workers) = start(config, 1);
    advance(&mut harness, Duration::from_secs(10));
    let (id, granted) = open(&mut harness, workers[0], &[]);
    assert_eq!(granted, 10);
    answer(&mut harness, id, 503, Some(11));
    // Ten seconds back: "now" falls in the ring slot of the spent bucket.
    let (mut back, worker) = stepped_back(&harness, Duration::from_secs(10), config);
    let (id, granted) = open(&mut back, worker, &[]);
    assert_eq!(granted, 0);
    answer(&mut back, id, 503, Some(1));
    // Only when its clock passes the stamp's window do retries come back.
    advance(&mut back, Duration::from_secs(19));
    assert_eq!(open(&mut back, worker, &[]).1, 0);
    advance(&mut back, Duration::from_secs(1));
    assert_eq!(open(&mut back, worker, &[]).1, 10);
}

#[test]
fn token_reservations_stay_reserved_when_the_clock_steps_back() {
    let config = r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.1},
        "attempts": 4, "retryOn": "5xx"}"#;
    let (mut harness, workers) = start(config, 1);
    advance(&mut harness, Duration::from_secs(60));
    // In flight: the four retries above half are reserved.
    let (_in_flight, granted) = open(&mut harness, workers[0], &[]);
    assert_eq!(granted, 4);
    // Two 30 s leases back: "now" falls in the slot of the reserving lease.
    let (mut back, worker) = stepped_back(&harness, Duration::from_secs(60), config);
    // Neither this request nor the next: admitting one does not reset the
    // lease and free its reservation.
    assert_eq!(open(&mut back, worker, &[]).1, 0);
    assert_eq!(open(&mut back, worker, &[]).1, 0);
}
