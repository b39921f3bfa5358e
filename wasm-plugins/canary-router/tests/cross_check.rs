//! The same scenarios in the harness and in a real Envoy: the two hosts
//! must agree on what the upstream saw and on the plugin's metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use canary_router_filter::identity_bucket;
use cross_check::{Scenario, Step, cross_check};

const KEY: &str = "cross-check-key-0123456789abcdef";
const ROUTE_HEADER: &str = "x-canary-subset";

fn scenario(name: &str, v2: u8, extra: &str) -> Scenario {
    let config = format!(
        r#"{{"subsets": [{{"name": "v1", "weight": {}}}, {{"name": "v2", "weight": {v2}}}],
            "routeHeader": "{ROUTE_HEADER}",
            "cookie": {{"signingKey": {{"inline": "{KEY}"}}}}{extra}}}"#,
        100 - v2
    );
    Scenario::new(name, wasm_artifacts::CANARY_ROUTER)
        .plugin_name("canary-router")
        .plugin_config(&config)
}

#[test]
fn rules_route_the_tester_to_v2_and_overwrite_the_client_header() {
    let rules = r#", "rules": [
        {"subset": "v2", "match": [{"headers": {"end-user": {"exact": "tester"}}}]},
        {"subset": "v2", "match": [{"queryParams": {"preview": {}}}]}
    ]"#;
    let s = scenario("tester rule", 0, rules)
        .step(
            Step::get("/panel")
                .header("end-user", "tester")
                .expect_status(200)
                .expect_upstream_header(ROUTE_HEADER, Some("v2"))
                .expect_response_header("set-cookie", None),
        )
        .step(
            Step::get("/panel?preview")
                .header(ROUTE_HEADER, "v1")
                .expect_upstream_header(ROUTE_HEADER, Some("v2")),
        )
        .step(
            Step::get("/panel")
                .header(ROUTE_HEADER, "v2")
                .header("end-user", "someone")
                .expect_status(200)
                .expect_upstream_header(ROUTE_HEADER, Some("v1")),
        )
        .expect_metric("canary_router.rule_matches", 2)
        .expect_metric("canary_router.routed.v2", 2)
        .expect_metric("canary_router.routed.v1", 1)
        .expect_metric("canary_router.assigned.v1", 1);
    cross_check(&s).unwrap();
}

#[test]
fn identity_hashing_agrees() {
    let users = [
        "alice", "bob", "carol", "dave", "erin", "frank", "user-1", "user-2",
    ];
    let mut s = scenario("identity", 50, r#", "identity": "x-user-id""#);
    let mut on_v2 = 0;
    for user in users {
        let expected = if identity_bucket(user) >= 5_000 {
            on_v2 += 1;
            "v2"
        } else {
            "v1"
        };
        s = s.step(
            Step::get("/")
                .header("x-user-id", user)
                .expect_upstream_header(ROUTE_HEADER, Some(expected)),
        );
    }
    assert!(
        0 < on_v2 && on_v2 < users.len(),
        "both subsets are exercised"
    );
    let s = s
        .expect_metric("canary_router.assigned.v2", on_v2 as u64)
        .expect_metric("canary_router.assigned.v1", (users.len() - on_v2) as u64);
    cross_check(&s).unwrap();
}

#[test]
fn forged_and_malformed_cookies_are_counted_alike() {
    let forged = "canary=c1.9999.v2.1767225600.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let s = scenario("rejected cookies", 0, "")
        .step(
            Step::get("/")
                .header("cookie", forged)
                .expect_upstream_header(ROUTE_HEADER, Some("v1")),
        )
        .step(
            Step::get("/")
                .header("cookie", "canary=%%%; other=1")
                .expect_upstream_header(ROUTE_HEADER, Some("v1")),
        )
        .expect_metric("canary_router.rejected_cookies", 2)
        .expect_metric("canary_router.assigned.v1", 2);
    cross_check(&s).unwrap();
}
