//! In a real Envoy, against an upstream that fails every request: the
//! upstream receives at most (1 + retryRatio) × requests + the floor.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod rig;

use envoy_rig::{Fault, Share, Upstream};
use rig::{Guard, hop, load, plugin_stat, start};

const REQUESTS: u64 = 600;
const CLIENTS: u64 = 4;

#[test]
fn a_failing_upstream_gets_ratio_plus_floor_and_no_more() {
    let upstream = Upstream::start("backend").unwrap();
    upstream.inject(Fault::Status(503), Share::All);
    // Route: three retries. Budget: 20 %, plus 1/s over a 30 s window (the
    // run is a few seconds, so the whole run is one window).
    let config = r#"{"budget": {"retryRatio": 0.2, "minRetriesPerSecond": 1, "ttl": "30s"},
        "attempts": 3, "retryOn": "5xx"}"#;
    let envoy = start(&hop(upstream.port(), 3, &Guard::Plugin(config.into())));
    let outcome = load(&envoy.url().unwrap(), REQUESTS, CLIENTS);
    assert_eq!(outcome.requests, REQUESTS);
    assert_eq!(outcome.ok, 0);
    let attempts = upstream.request_count();
    let bound = REQUESTS + REQUESTS / 5 + 30;
    eprintln!(
        "100 % failure, plugin: {attempts} upstream attempts for {REQUESTS} requests ({:.3}x; bound {bound})",
        attempts as f64 / REQUESTS as f64
    );
    assert!(attempts <= bound, "{attempts} > {bound}");
    // And the budget is used, not just refused: every retry it allowed was made.
    assert!(attempts >= REQUESTS + REQUESTS / 5, "{attempts}");
    assert_eq!(
        plugin_stat(&envoy, "retry_budget.backend.retries_allowed"),
        attempts - REQUESTS
    );
    assert_eq!(
        envoy.stat("cluster.backend.upstream_rq_retry").unwrap(),
        Some(attempts - REQUESTS)
    );
}

#[test]
fn without_the_plugin_every_request_is_tried_four_times() {
    let upstream = Upstream::start("backend").unwrap();
    upstream.inject(Fault::Status(503), Share::All);
    let envoy = start(&hop(upstream.port(), 3, &Guard::None));
    let requests = REQUESTS / 4;
    let outcome = load(&envoy.url().unwrap(), requests, CLIENTS);
    assert_eq!(outcome.ok, 0);
    eprintln!(
        "100 % failure, no budget: {} upstream attempts for {requests} requests",
        upstream.request_count()
    );
    assert_eq!(upstream.request_count(), 4 * requests);
}
