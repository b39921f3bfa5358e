//! In a real Envoy: the router obeys the plugin's headers, not the client's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod rig;

use std::time::{Duration, Instant};

use envoy_rig::client::Request;
use envoy_rig::{Bootstrap, Envoy, Fault, Share, Upstream};
use rig::{Guard, hop, plugin_stat, start};

fn guarded(upstream: &Upstream, route_retries: u32, config: &str) -> Envoy {
    start(&hop(
        upstream.port(),
        route_retries,
        &Guard::Plugin(config.into()),
    ))
}

#[test]
fn the_router_retries_as_many_times_as_the_plugin_grants() {
    let upstream = Upstream::start("backend").unwrap();
    upstream.inject(Fault::Status(503), Share::FirstN(2));
    // The route says one retry; the plugin's x-envoy-max-retries wins.
    let envoy = guarded(&upstream, 1, r#"{"attempts": 3, "retryOn": "5xx"}"#);
    let response = Request::get(envoy.url().unwrap()).send().unwrap();
    assert_eq!(response.status, 200, "{}", envoy.log_tail(30));
    assert_eq!(upstream.request_count(), 3);
    assert_eq!(response.header("x-envoy-attempt-count"), Some("3"));
}

#[test]
fn a_client_cannot_raise_its_retries() {
    let upstream = Upstream::start("backend").unwrap();
    upstream.inject(Fault::Status(503), Share::All);
    let envoy = guarded(&upstream, 3, r#"{"attempts": 1, "retryOn": "5xx"}"#);
    let response = Request::get(envoy.url().unwrap())
        .header("x-envoy-max-retries", "10")
        .header("x-envoy-retry-on", "5xx")
        .send()
        .unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(upstream.request_count(), 2);
}

#[test]
fn a_spent_budget_turns_the_routes_retries_off() {
    let upstream = Upstream::start("backend").unwrap();
    upstream.inject(Fault::Status(503), Share::All);
    let config = r#"{"budget": {"retryRatio": 0, "minRetriesPerSecond": 0}, "attempts": 3, "retryOn": "5xx"}"#;
    let envoy = guarded(&upstream, 3, config);
    for _ in 0..5 {
        let response = Request::get(envoy.url().unwrap()).send().unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(response.header("x-envoy-attempt-count"), Some("1"));
    }
    assert_eq!(upstream.request_count(), 5);
    assert_eq!(
        plugin_stat(&envoy, "retry_budget.backend.retries_denied"),
        15
    );
}

#[test]
fn the_per_try_timeout_is_honoured() {
    let upstream = Upstream::start("backend").unwrap();
    upstream.inject(Fault::Delay(Duration::from_secs(3)), Share::FirstN(1));
    let config = r#"{"attempts": 1, "retryOn": "5xx", "perTryTimeout": "200ms"}"#;
    let envoy = guarded(&upstream, 0, config);
    let started = Instant::now();
    let response = Request::get(envoy.url().unwrap()).send().unwrap();
    assert_eq!(response.status, 200, "{}", envoy.log_tail(30));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.header("x-envoy-attempt-count"), Some("2"));
}

#[test]
fn the_default_scope_is_envoys_cluster_and_metrics_reach_admin() {
    let upstream = Upstream::start("backend").unwrap();
    upstream.inject(Fault::Status(503), Share::EveryNth(2));
    let envoy = guarded(&upstream, 3, r#"{"attempts": 2, "retryOn": "5xx"}"#);
    for _ in 0..4 {
        let response = Request::get(envoy.url().unwrap()).send().unwrap();
        assert_eq!(response.status, 200);
    }
    assert_eq!(plugin_stat(&envoy, "retry_budget.backend.requests"), 4);
    let retries = envoy.stat("cluster.backend.upstream_rq_retry").unwrap();
    assert_eq!(
        Some(plugin_stat(&envoy, "retry_budget.backend.retries_allowed")),
        retries
    );
    assert!(
        envoy
            .stat("wasmcustom.retry_budget.backend.budget_remaining")
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_failed_response_tells_the_calling_envoy_not_to_retry() {
    let upstream = Upstream::start("backend").unwrap();
    upstream.inject(Fault::Status(503), Share::All);
    // The inner hop has no retries left and says so; the outer hop, which
    // would retry three times, leaves it there.
    let config = r#"{"budget": {"retryRatio": 0, "minRetriesPerSecond": 0},
        "attempts": 3, "retryOn": "5xx", "suppressCallerRetries": true}"#;
    let inner = guarded(&upstream, 3, config);
    let outer = start(&hop(inner.listeners()[0].1.port(), 3, &Guard::None));
    let response = Request::get(outer.url().unwrap()).send().unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.header("x-envoy-ratelimited"), Some("true"));
    assert_eq!(upstream.request_count(), 1);
    assert_eq!(response.header("x-envoy-attempt-count"), Some("1"));
}

#[test]
fn a_bad_configuration_stops_envoy_with_a_line_naming_the_field() {
    let upstream = Upstream::start("backend").unwrap();
    let bootstrap: Bootstrap = hop(
        upstream.port(),
        3,
        &Guard::Plugin(r#"{"budget": {"retryRatio": 1000.5}}"#.into()),
    );
    let error = Envoy::start(&bootstrap).unwrap_err().to_string();
    assert!(
        error.contains(
            "retry-budget: invalid configuration: budget.retryRatio: 1000.5 is not between 0 and 1000"
        ),
        "{error}"
    );
}
