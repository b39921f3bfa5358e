//! Rules win over cookies and weights, first match first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::*;
use proxy_wasm_harness::Request;

const RULES: &str = r#", "rules": [
    {"subset": "v2", "match": [{"headers": {"end-user": {"exact": "tester"}}}]},
    {"subset": "v1", "match": [{"uri": {"prefix": "/legacy/"}}, {"queryParams": {"version": {"exact": "1"}}}]},
    {"subset": "v2", "match": [{"headers": {"user-agent": {"regex": ".*62.*"}}}]},
    {"subset": "v2", "match": [{"cookies": {"beta": {"exact": "yes"}}}]},
    {"subset": "v2", "match": [{"headers": {"x-preview": {}}, "uri": {"exact": "/panel"}}]}
]"#;

#[test]
fn a_rule_sends_a_user_to_a_subset_at_zero_weight() {
    let (mut harness, worker) = start(&config_json(0, RULES));
    for _ in 0..5 {
        let exchange = send(
            &mut harness,
            worker,
            Request::get("/").header("end-user", "tester"),
        );
        assert_eq!(routed_to(&exchange), "v2");
        // A rule is an override, not an assignment: no cookie.
        assert_eq!(canary_set_cookie(&exchange), None);
    }
    assert_eq!(harness.counter("canary_router.rule_matches"), Some(5));
    assert_eq!(harness.counter("canary_router.routed.v2"), Some(5));
    let other = send(
        &mut harness,
        worker,
        Request::get("/").header("end-user", "someone"),
    );
    assert_eq!(routed_to(&other), "v1");
}

#[test]
fn a_rule_wins_over_the_cookie_and_leaves_it_alone() {
    let (mut harness, worker) = start(&config_json(0, RULES));
    let first = send(&mut harness, worker, Request::get("/"));
    let cookie = cookie_pair(&canary_set_cookie(&first).unwrap());
    assert_eq!(routed_to(&first), "v1");
    let tester = send(
        &mut harness,
        worker,
        Request::get("/")
            .header("end-user", "tester")
            .header("cookie", &cookie),
    );
    assert_eq!(routed_to(&tester), "v2");
    assert_eq!(canary_set_cookie(&tester), None);
    // Without the rule, the cookie still holds.
    let back = send(
        &mut harness,
        worker,
        Request::get("/").header("cookie", &cookie),
    );
    assert_eq!(routed_to(&back), "v1");
    assert_eq!(harness.counter("canary_router.sticky_hits"), Some(1));
}

#[test]
fn each_kind_of_condition_matches() {
    let (mut harness, worker) = start(&config_json(0, RULES));
    let cases = [
        (
            Request::get("/x").header("user-agent", "Mozilla/5.0 Chrome/62.0"),
            "v2",
        ),
        (
            Request::get("/x").header("user-agent", "Mozilla/5.0 Chrome/61.0"),
            "v1",
        ),
        (Request::get("/x").header("cookie", "a=1; beta=yes"), "v2"),
        (Request::get("/x").header("cookie", "beta=no"), "v1"),
        (Request::get("/panel").header("x-preview", "1"), "v2"),
        (Request::get("/panel?tab=2").header("x-preview", ""), "v2"),
        (Request::get("/panel/more").header("x-preview", "1"), "v1"),
    ];
    for (request, expected) in cases {
        let label = format!("{request:?}");
        let exchange = send(&mut harness, worker, request);
        assert_eq!(routed_to(&exchange), expected, "{label}");
    }
}

#[test]
fn the_first_matching_rule_wins() {
    // At 100 % v2, rule 1 (path or query parameter) pins v1, before rule 2
    // (user agent) could pick v2.
    let (mut harness, worker) = start(&config_json(100, RULES));
    let both = send(
        &mut harness,
        worker,
        Request::get("/legacy/panel").header("user-agent", "Chrome/62"),
    );
    assert_eq!(routed_to(&both), "v1");
    let query = send(&mut harness, worker, Request::get("/panel?version=1"));
    assert_eq!(routed_to(&query), "v1");
    let tester = send(
        &mut harness,
        worker,
        Request::get("/legacy/panel").header("end-user", "tester"),
    );
    assert_eq!(routed_to(&tester), "v2");
}

#[test]
fn a_pasted_istio_match_means_what_it_means_in_envoy() {
    // A repeated header matches on any one value, the first query
    // parameter of a name counts, `{}` checks presence,
    // `withoutHeaders` inverts (Envoy's evaluation of what istiod writes;
    // tests/envoy_cookie_scope.rs compares with Envoy's own routes).
    let rules = r#", "rules": [
        {"subset": "v2", "match": [{"headers": {"x-group": {"exact": "beta"}}}]},
        {"subset": "v2", "match": [{"queryParams": {"track": {"exact": "beta"}}}]},
        {"subset": "v2", "match": [{"headers": {"x-preview": {}}, "withoutHeaders": {"x-opt-out": {}}}]}
    ]"#;
    let (mut harness, worker) = start(&config_json(0, rules));
    let cases = [
        (Request::get("/").header("x-group", "beta"), "v2"),
        (Request::get("/").header("x-group", "alpha,beta"), "v1"),
        (
            Request::get("/")
                .header("x-group", "alpha")
                .header("x-group", "beta"),
            "v2",
        ),
        (Request::get("/?track=beta&track=alpha"), "v2"),
        (Request::get("/?track=alpha&track=beta"), "v1"),
        (Request::get("/").header("x-preview", ""), "v2"),
        (
            Request::get("/")
                .header("x-preview", "1")
                .header("x-opt-out", "1"),
            "v1",
        ),
    ];
    for (request, expected) in cases {
        let label = format!("{request:?}");
        let exchange = send(&mut harness, worker, request);
        assert_eq!(routed_to(&exchange), expected, "{label}");
    }
    assert_eq!(harness.counter("canary_router.rule_matches"), Some(4));
}
