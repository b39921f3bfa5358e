//! One budget per scope: a failing cluster does not use up another's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{answer, counter, open, start};
use proxy_wasm_harness::{Harness, StreamId, WorkerId};

/// ratio 0, floor 1/s over 10 s: ten retries per scope and window.
const TEN: &str = r#""budget": {"retryRatio": 0, "minRetriesPerSecond": 1, "ttl": "10s"},
    "attempts": 2, "retryOn": "5xx""#;

/// A request whose stream has `property` = `value`, left in flight.
fn open_with_property(
    harness: &mut Harness,
    worker: WorkerId,
    property: &[&str],
    value: &str,
) -> (StreamId, u32) {
    let id = harness.new_stream(worker).unwrap();
    harness.set_property(id, property, value).unwrap();
    harness
        .request_headers(id, [(":method", "GET"), (":path", "/")], true)
        .unwrap();
    let granted = harness
        .stream(id)
        .unwrap()
        .request_headers()
        .and_then(|h| h.get("x-envoy-max-retries"))
        .unwrap()
        .parse()
        .unwrap();
    (id, granted)
}

/// Spends a scope's budget with failing requests; returns the retries granted.
fn spend(harness: &mut Harness, workers: &[WorkerId], property: &[&str], value: &str) -> u32 {
    let mut total = 0;
    for i in 0..10 {
        let (id, granted) =
            open_with_property(harness, workers[i % workers.len()], property, value);
        answer(harness, id, 503, Some(granted + 1));
        total += granted;
    }
    total
}

#[test]
fn clusters_have_budgets_of_their_own() {
    let (mut harness, workers) = start(&format!("{{{TEN}}}"), 3);
    assert_eq!(
        spend(&mut harness, &workers, &["xds", "cluster_name"], "payments"),
        10
    );
    assert_eq!(
        spend(&mut harness, &workers, &["xds", "cluster_name"], "payments"),
        0
    );
    // Another cluster still has its whole budget.
    assert_eq!(
        spend(&mut harness, &workers, &["xds", "cluster_name"], "search"),
        10
    );
    assert_eq!(counter(&harness, "payments", "retries_allowed"), 10);
    // Five failures got nothing of their two retries, then ten more.
    assert_eq!(counter(&harness, "payments", "retries_denied"), 30);
    assert_eq!(counter(&harness, "search", "retries_allowed"), 10);
    assert_eq!(counter(&harness, "search", "requests"), 10);
}

#[test]
fn routes_have_budgets_of_their_own() {
    let (mut harness, workers) = start(&format!(r#"{{{TEN}, "scope": "route"}}"#), 2);
    assert_eq!(
        spend(&mut harness, &workers, &["xds", "route_name"], "checkout"),
        10
    );
    assert_eq!(
        spend(&mut harness, &workers, &["xds", "route_name"], "browse"),
        10
    );
    assert_eq!(
        spend(&mut harness, &workers, &["xds", "route_name"], "checkout"),
        0
    );
}

#[test]
fn a_property_path_names_the_scope() {
    let config = format!(r#"{{{TEN}, "scope": {{"property": "xds.virtual_host_name"}}}}"#);
    let (mut harness, workers) = start(&config, 2);
    assert_eq!(
        spend(&mut harness, &workers, &["xds", "virtual_host_name"], "a"),
        10
    );
    assert_eq!(
        spend(&mut harness, &workers, &["xds", "virtual_host_name"], "b"),
        10
    );
}

#[test]
fn a_header_names_the_scope_and_missing_ones_share_other() {
    let config = format!(r#"{{{TEN}, "scope": {{"header": "x-tenant"}}}}"#);
    let (mut harness, workers) = start(&config, 2);
    let by_tenant = |harness: &mut Harness, tenant: Option<&str>| {
        let mut total = 0;
        for i in 0..12 {
            let headers: Vec<(&str, &str)> = tenant.map(|t| ("x-tenant", t)).into_iter().collect();
            let (id, granted) = open(harness, workers[i % 2], &headers);
            answer(harness, id, 503, Some(granted + 1));
            total += granted;
        }
        total
    };
    assert_eq!(by_tenant(&mut harness, Some("acme")), 10);
    assert_eq!(by_tenant(&mut harness, Some("globex")), 10);
    assert_eq!(by_tenant(&mut harness, None), 10);
    assert_eq!(by_tenant(&mut harness, Some("acme")), 0);
    assert_eq!(counter(&harness, "_other", "requests"), 12);
}

#[test]
fn scopes_beyond_the_limit_share_one_budget() {
    let config = format!(r#"{{{TEN}, "scope": {{"header": "x-tenant"}}, "maxScopes": 2}}"#);
    let (mut harness, workers) = start(&config, 3);
    let granted_to = |harness: &mut Harness, tenant: &str, worker: usize| {
        let (id, granted) = open(harness, workers[worker], &[("x-tenant", tenant)]);
        answer(harness, id, 503, Some(granted + 1));
        granted
    };
    // Two tenants get slots; every later one lands in `_other`, on every worker.
    assert_eq!(granted_to(&mut harness, "t1", 0), 2);
    assert_eq!(granted_to(&mut harness, "t2", 1), 2);
    let overflow: u32 = (0..12)
        .map(|i| granted_to(&mut harness, &format!("t{}", 3 + i), i % 3))
        .sum();
    assert_eq!(overflow, 10);
    assert_eq!(granted_to(&mut harness, "t1", 2), 2);
    assert_eq!(counter(&harness, "_other", "requests"), 12);
    assert_eq!(counter(&harness, "t1", "requests"), 2);
    // Shared data holds the registry and maxScopes + 1 budgets, no more.
    let keys: Vec<String> = harness
        .shared_data_entries("")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    let registry = harness.shared_data("", "retry_budget.scopes").unwrap().0;
    assert_eq!(registry, b"t1\nt2");
}

#[test]
fn each_scope_reports_its_remaining_budget() {
    // Ten retries in reserve; the success refunds the two it was granted.
    let config = format!(r#"{{{TEN}, "scope": {{"header": "x-tenant"}}}}"#);
    let (mut harness, workers) = start(&config, 1);
    let (id, granted) = open(&mut harness, workers[0], &[("x-tenant", "acme")]);
    assert_eq!(granted, 2);
    answer(&mut harness, id, 200, Some(1));
    assert_eq!(counter(&harness, "acme", "requests"), 1);
    assert_eq!(
        harness.gauge("retry_budget.acme.budget_remaining").unwrap(),
        10
    );
}
