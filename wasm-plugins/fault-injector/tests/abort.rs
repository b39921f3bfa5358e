//! Aborts: Envoy's answer and body by default, configured body and headers,
//! gRPC aborts, the reporting header and the metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{reached_upstream, send, start};
use proxy_wasm_harness::Request;

#[test]
fn aborts_with_envoys_default_body() {
    let (mut h, w) =
        start(r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#);
    let exchange = send(&mut h, w, Request::get("/flights"));
    assert!(!reached_upstream(&exchange));
    assert_eq!(exchange.status(), Some(503));
    assert_eq!(exchange.response_body(), b"fault filter abort");
    assert_eq!(exchange.response_header("content-type"), Some("text/plain"));
    assert_eq!(
        exchange.response_header("x-fault-injected"),
        Some("abort=503;rule=0")
    );
}

#[test]
fn aborts_with_configured_body_and_headers() {
    let (mut h, w) = start(
        r#"{"rules": [{"name": "teapot", "abort": {"httpStatus": 418, "body": "{\"error\":\"chaos\"}",
            "headers": {"content-type": "application/json", "retry-after": "1"}, "percentage": {"value": 100}}}]}"#,
    );
    let exchange = send(&mut h, w, Request::get("/"));
    assert_eq!(exchange.status(), Some(418));
    assert_eq!(exchange.response_body(), br#"{"error":"chaos"}"#);
    assert_eq!(
        exchange.response_header("content-type"),
        Some("application/json")
    );
    assert_eq!(exchange.response_header("retry-after"), Some("1"));
    assert_eq!(
        exchange.response_header("x-fault-injected"),
        Some("abort=418;rule=teapot")
    );
}

#[test]
fn grpc_aborts_answer_200_with_grpc_status() {
    let (mut h, w) = start(
        r#"{"rules": [{"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 100}}}]}"#,
    );
    let request =
        Request::post("/airport.Alerts/Raise", "msg").header("content-type", "application/grpc");
    let exchange = send(&mut h, w, request);
    assert!(!reached_upstream(&exchange));
    assert_eq!(exchange.status(), Some(200));
    assert_eq!(exchange.response_header("grpc-status"), Some("14"));
    assert_eq!(
        exchange.response_header("grpc-message"),
        Some("fault filter abort")
    );
    assert_eq!(
        exchange.response_header("content-type"),
        Some("application/grpc")
    );
    assert!(
        exchange.response_body().is_empty(),
        "trailers-only response"
    );
    assert_eq!(
        exchange.response_header("x-fault-injected"),
        Some("abort=grpc-14;rule=0")
    );
}

#[test]
fn the_report_header_name_is_configurable() {
    let (mut h, w) = start(
        r#"{"responseHeader": "x-chaos", "rules": [{"name": "r1", "abort": {"httpStatus": 500, "percentage": {"value": 100}}}]}"#,
    );
    let exchange = send(&mut h, w, Request::get("/"));
    assert_eq!(
        exchange.response_header("x-chaos"),
        Some("abort=500;rule=r1")
    );
    assert_eq!(exchange.response_header("x-fault-injected"), None);
}

#[test]
fn aborts_are_counted_in_total_and_per_rule() {
    let (mut h, w) = start(
        r#"{"rules": [
            {"name": "scans", "match": [{"uri": {"prefix": "/scan"}}], "abort": {"httpStatus": 500, "percentage": {"value": 100}}},
            {"abort": {"httpStatus": 503, "percentage": {"value": 100}}}
        ]}"#,
    );
    for _ in 0..3 {
        send(&mut h, w, Request::get("/scan"));
    }
    send(&mut h, w, Request::get("/other"));
    assert_eq!(h.counter("fault_injector.aborts_injected"), Some(4));
    assert_eq!(
        h.counter("fault_injector.rule.scans.aborts_injected"),
        Some(3)
    );
    assert_eq!(h.counter("fault_injector.rule.1.aborts_injected"), Some(1));
    assert_eq!(h.counter("fault_injector.delays_injected"), Some(0));
    assert_eq!(h.counter("fault_injector.faults_overflow"), Some(0));
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(0));
}

#[test]
fn unmatched_requests_pass_untouched() {
    let (mut h, w) = start(
        r#"{"rules": [{"match": [{"uri": {"exact": "/never"}}], "abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#,
    );
    let exchange = send(&mut h, w, Request::post("/", "payload").trailer("x-t", "1"));
    assert!(reached_upstream(&exchange));
    assert_eq!(exchange.upstream_request.as_ref().unwrap().body, b"payload");
    assert_eq!(exchange.status(), Some(200));
    assert_eq!(exchange.response_body(), b"upstream");
    assert_eq!(exchange.response_header("x-fault-injected"), None);
    assert_eq!(h.counter("fault_injector.aborts_injected"), Some(0));
}

#[test]
fn configuration_is_logged_once_at_info() {
    let (h, w) =
        start(r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#);
    let info = h.logs_at(w, proxy_wasm_harness::LogLevel::Info).unwrap();
    assert_eq!(info, vec!["fault-injector: configured 1 rule(s)"]);
}
