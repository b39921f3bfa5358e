//! In a real Envoy, with 10 % transient failures: the budget lets the
//! retries through, so the success rate stays within 0.5 points of
//! unbounded retries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod rig;

use envoy_rig::{Fault, Share, Upstream};
use rig::{Guard, hop, load, start};

const REQUESTS: u64 = 2000;
const CLIENTS: u64 = 4;

/// Success rate (%) of `REQUESTS` through an Envoy retrying up to
/// `retries` times behind `guard`, when 1 in 10 upstream attempts fails.
fn success_rate(retries: u32, guard: &Guard) -> f64 {
    let upstream = Upstream::start("backend").unwrap();
    upstream.inject(
        Fault::Status(503),
        Share::Fraction {
            numerator: 1,
            denominator: 10,
        },
    );
    let envoy = start(&hop(upstream.port(), retries, guard));
    let outcome = load(&envoy.url().unwrap(), REQUESTS, CLIENTS);
    assert_eq!(outcome.requests, REQUESTS);
    outcome.success_percent()
}

#[test]
fn the_success_rate_stays_within_half_a_point_of_unbounded_retries() {
    // Linkerd's defaults: 20 %, 10/s, 10 s.
    let config = r#"{"budget": {"retryRatio": 0.2, "minRetriesPerSecond": 10, "ttl": "10s"},
        "attempts": 3, "retryOn": "5xx"}"#;
    let with_budget = success_rate(3, &Guard::Plugin(config.into()));
    let unbounded = success_rate(3, &Guard::None);
    let no_retries = success_rate(0, &Guard::None);
    eprintln!(
        "10 % transient failures, {REQUESTS} requests: no retries {no_retries:.2} %, unbounded {unbounded:.2} %, budget {with_budget:.2} %"
    );
    // The test has teeth: without retries, one request in ten fails.
    assert!(no_retries < 91.0, "{no_retries}");
    assert!(
        (unbounded - with_budget).abs() <= 0.5,
        "budget {with_budget} vs unbounded {unbounded}"
    );
}
