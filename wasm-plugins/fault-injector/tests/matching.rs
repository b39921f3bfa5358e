//! Each match kind selects exactly the requests it names; the first
//! matching rule wins.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{plugin, reached_upstream, send, start, start_plugin};
use proxy_wasm_harness::{Harness, Request, WorkerId};

/// A plugin whose only rule aborts with 503 when `matches` holds.
fn abort_when(matches: &str) -> (Harness, WorkerId) {
    start(&format!(
        r#"{{"rules": [{{"match": [{matches}], "abort": {{"httpStatus": 503, "percentage": {{"value": 100}}}}}}]}}"#
    ))
}

fn aborted(harness: &mut Harness, worker: WorkerId, request: Request) -> bool {
    let exchange = send(harness, worker, request);
    match exchange.status() {
        Some(503) => {
            assert!(!reached_upstream(&exchange));
            true
        }
        Some(200) => {
            assert!(reached_upstream(&exchange));
            false
        }
        other => panic!("unexpected status {other:?}"),
    }
}

#[test]
fn uri_exact() {
    let (mut h, w) = abort_when(r#"{"uri": {"exact": "/ratings"}}"#);
    assert!(aborted(&mut h, w, Request::get("/ratings")));
    assert!(aborted(&mut h, w, Request::get("/ratings?user=1")));
    assert!(!aborted(&mut h, w, Request::get("/ratings/1")));
    assert!(!aborted(&mut h, w, Request::get("/")));
}

#[test]
fn uri_prefix() {
    let (mut h, w) = abort_when(r#"{"uri": {"prefix": "/api/"}}"#);
    assert!(aborted(&mut h, w, Request::get("/api/flights")));
    assert!(!aborted(&mut h, w, Request::get("/apis")));
}

#[test]
fn uri_regex_matches_the_whole_path() {
    let (mut h, w) = abort_when(r#"{"uri": {"regex": "/v[0-9]+/gates/[A-Z][0-9]+"}}"#);
    assert!(aborted(&mut h, w, Request::get("/v2/gates/B12")));
    assert!(!aborted(&mut h, w, Request::get("/v2/gates/B12/status")));
    assert!(!aborted(&mut h, w, Request::get("/x/v2/gates/B12")));
}

#[test]
fn method() {
    let (mut h, w) = abort_when(r#"{"method": {"exact": "POST"}}"#);
    assert!(aborted(&mut h, w, Request::post("/scan", "img")));
    assert!(!aborted(&mut h, w, Request::get("/scan")));
}

#[test]
fn header_exact_as_in_the_dark_launch_demo() {
    let (mut h, w) = abort_when(r#"{"headers": {"end-user": {"exact": "tester"}}}"#);
    assert!(aborted(
        &mut h,
        w,
        Request::get("/").header("end-user", "tester")
    ));
    assert!(!aborted(
        &mut h,
        w,
        Request::get("/").header("end-user", "jason")
    ));
    assert!(!aborted(&mut h, w, Request::get("/")));
}

#[test]
fn header_prefix() {
    let (mut h, w) = abort_when(r#"{"headers": {"user-agent": {"prefix": "curl/"}}}"#);
    assert!(aborted(
        &mut h,
        w,
        Request::get("/").header("user-agent", "curl/8.5")
    ));
    assert!(!aborted(
        &mut h,
        w,
        Request::get("/").header("user-agent", "Mozilla/5.0")
    ));
}

#[test]
fn header_regex() {
    let (mut h, w) = abort_when(r#"{"headers": {"x-terminal": {"regex": "T[1-3]"}}}"#);
    assert!(aborted(
        &mut h,
        w,
        Request::get("/").header("x-terminal", "T2")
    ));
    assert!(!aborted(
        &mut h,
        w,
        Request::get("/").header("x-terminal", "T4")
    ));
    assert!(!aborted(
        &mut h,
        w,
        Request::get("/").header("x-terminal", "T22")
    ));
}

#[test]
fn header_present() {
    let (mut h, w) = abort_when(r#"{"headers": {"x-chaos": {}}}"#);
    assert!(aborted(&mut h, w, Request::get("/").header("x-chaos", "")));
    assert!(!aborted(&mut h, w, Request::get("/")));
}

#[test]
fn header_absent() {
    let (mut h, w) = abort_when(r#"{"withoutHeaders": {"x-internal": {}}}"#);
    assert!(aborted(&mut h, w, Request::get("/")));
    assert!(!aborted(
        &mut h,
        w,
        Request::get("/").header("x-internal", "1")
    ));
}

#[test]
fn header_names_are_case_insensitive() {
    let (mut h, w) = abort_when(r#"{"headers": {"End-User": {"exact": "tester"}}}"#);
    assert!(aborted(
        &mut h,
        w,
        Request::get("/").header("end-user", "tester")
    ));
}

#[test]
fn query_params() {
    let (mut h, w) = abort_when(r#"{"queryParams": {"flight": {"prefix": "LH"}, "debug": {}}}"#);
    assert!(aborted(
        &mut h,
        w,
        Request::get("/board?flight=LH400&debug")
    ));
    assert!(!aborted(&mut h, w, Request::get("/board?flight=LH400")));
    assert!(!aborted(
        &mut h,
        w,
        Request::get("/board?flight=AF1&debug=1")
    ));
}

#[test]
fn source_address_ranges() {
    let config = r#"{"rules": [{"match": [{"sourceIpBlocks": ["10.0.0.0/8", "fd00::/8"]}],
                                "abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#;
    for (address, expected) in [
        ("10.20.30.40:5555", true),
        ("[fd00::7]:5555", true),
        ("192.168.1.1:5555", false),
        ("[2001:db8::1]:5555", false),
    ] {
        let (mut h, w) = start_plugin(plugin(config).source_address(address));
        assert_eq!(aborted(&mut h, w, Request::get("/")), expected, "{address}");
    }
}

#[test]
fn route_name() {
    let config = r#"{"rules": [{"match": [{"routeName": "cpanel-v2"}], "abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#;
    let (mut h, w) = start_plugin(plugin(config).property(&["xds", "route_name"], "cpanel-v2"));
    assert!(aborted(&mut h, w, Request::get("/")));
    let (mut h, w) = start_plugin(plugin(config).property(&["xds", "route_name"], "cpanel-v1"));
    assert!(!aborted(&mut h, w, Request::get("/")));
    let (mut h, w) = start_plugin(plugin(config));
    assert!(
        !aborted(&mut h, w, Request::get("/")),
        "no route name known"
    );
}

#[test]
fn all_conditions_of_one_entry_must_hold() {
    let (mut h, w) = abort_when(r#"{"uri": {"prefix": "/api"}, "method": {"exact": "GET"}}"#);
    assert!(aborted(&mut h, w, Request::get("/api")));
    assert!(!aborted(&mut h, w, Request::post("/api", "x")));
    assert!(!aborted(&mut h, w, Request::get("/web")));
}

#[test]
fn any_entry_of_the_list_may_hold() {
    let (mut h, w) = abort_when(r#"{"uri": {"exact": "/a"}}, {"uri": {"exact": "/b"}}"#);
    assert!(aborted(&mut h, w, Request::get("/a")));
    assert!(aborted(&mut h, w, Request::get("/b")));
    assert!(!aborted(&mut h, w, Request::get("/c")));
}

#[test]
fn first_matching_rule_wins() {
    let (mut h, w) = start(
        r#"{"rules": [
            {"name": "testers", "match": [{"headers": {"end-user": {"exact": "tester"}}}],
             "abort": {"httpStatus": 500, "percentage": {"value": 100}}},
            {"name": "everyone", "abort": {"httpStatus": 503, "percentage": {"value": 100}}}
        ]}"#,
    );
    let exchange = send(&mut h, w, Request::get("/").header("end-user", "tester"));
    assert_eq!(exchange.status(), Some(500));
    assert_eq!(
        exchange.response_header("x-fault-injected"),
        Some("abort=500;rule=testers")
    );
    let exchange = send(&mut h, w, Request::get("/"));
    assert_eq!(exchange.status(), Some(503));
    assert_eq!(
        exchange.response_header("x-fault-injected"),
        Some("abort=503;rule=everyone")
    );
}
