//! Header control: off by default; when configured, `x-envoy-fault-*`
//! request headers ask for aborts and delays within the configured maxima.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{reached_upstream, send, since, start};
use proxy_wasm_harness::Request;

#[test]
fn fault_headers_are_ignored_by_default() {
    let (mut h, w) = start(
        r#"{"rules": [{"match": [{"uri": {"exact": "/never"}}], "abort": {"httpStatus": 500, "percentage": {"value": 100}}}]}"#,
    );
    let before = h.now();
    let exchange = send(
        &mut h,
        w,
        Request::get("/")
            .header("x-envoy-fault-abort-request", "503")
            .header("x-envoy-fault-delay-request", "1000"),
    );
    assert_eq!(exchange.status(), Some(200));
    assert!(reached_upstream(&exchange));
    assert_eq!(since(&h, before), Duration::ZERO);
}

#[test]
fn a_header_asks_for_an_abort() {
    let (mut h, w) = start(r#"{"headerControl": {}}"#);
    let exchange = send(
        &mut h,
        w,
        Request::get("/").header("x-envoy-fault-abort-request", "429"),
    );
    assert_eq!(exchange.status(), Some(429));
    assert_eq!(exchange.response_body(), b"fault filter abort");
    assert_eq!(
        exchange.response_header("x-fault-injected"),
        Some("abort=429;rule=header-control")
    );
    assert_eq!(
        h.counter("fault_injector.rule.header-control.aborts_injected"),
        Some(1)
    );
    let exchange = send(&mut h, w, Request::get("/"));
    assert_eq!(exchange.status(), Some(200), "no header, no fault");
}

#[test]
fn a_header_asks_for_a_grpc_abort() {
    let (mut h, w) = start(r#"{"headerControl": {}}"#);
    let exchange = send(
        &mut h,
        w,
        Request::get("/").header("x-envoy-fault-abort-grpc-request", "4"),
    );
    assert_eq!(exchange.status(), Some(200));
    assert_eq!(exchange.response_header("grpc-status"), Some("4"));
}

#[test]
fn a_header_asks_for_a_delay_up_to_the_maximum() {
    let (mut h, w) = start(r#"{"headerControl": {"maxDelay": "2s"}}"#);
    let before = h.now();
    let exchange = send(
        &mut h,
        w,
        Request::get("/").header("x-envoy-fault-delay-request", "150"),
    );
    assert_eq!(since(&h, before), Duration::from_millis(150));
    assert!(reached_upstream(&exchange));
    assert_eq!(
        exchange.response_header("x-fault-injected"),
        Some("delay=150ms;rule=header-control")
    );
    let before = h.now();
    send(
        &mut h,
        w,
        Request::get("/").header("x-envoy-fault-delay-request", "3600000"),
    );
    assert_eq!(since(&h, before), Duration::from_secs(2), "cut to maxDelay");
}

#[test]
fn delay_then_abort_by_headers() {
    let (mut h, w) = start(r#"{"headerControl": {}}"#);
    let before = h.now();
    let exchange = send(
        &mut h,
        w,
        Request::get("/")
            .header("x-envoy-fault-delay-request", "40")
            .header("x-envoy-fault-abort-request", "503"),
    );
    assert_eq!(since(&h, before), Duration::from_millis(40));
    assert_eq!(exchange.status(), Some(503));
    assert_eq!(
        exchange.response_header("x-fault-injected"),
        Some("delay=40ms,abort=503;rule=header-control")
    );
}

#[test]
fn percentage_headers_are_capped_by_the_maximum() {
    let (mut h, w) = start(r#"{"headerControl": {"maxPercentage": {"value": 0}}}"#);
    for _ in 0..50 {
        let exchange = send(
            &mut h,
            w,
            Request::get("/")
                .header("x-envoy-fault-abort-request", "503")
                .header("x-envoy-fault-abort-request-percentage", "100"),
        );
        assert_eq!(exchange.status(), Some(200));
    }
    let (mut h, w) = start(r#"{"headerControl": {}}"#);
    for _ in 0..50 {
        let exchange = send(
            &mut h,
            w,
            Request::get("/")
                .header("x-envoy-fault-abort-request", "503")
                .header("x-envoy-fault-abort-request-percentage", "0"),
        );
        assert_eq!(exchange.status(), Some(200));
    }
}

#[test]
fn switches_and_match_limit_who_may_ask() {
    let (mut h, w) = start(
        r#"{"headerControl": {"delay": false, "match": [{"headers": {"end-user": {"exact": "tester"}}}]}}"#,
    );
    let ask = |user: &str| {
        Request::get("/")
            .header("end-user", user)
            .header("x-envoy-fault-abort-request", "500")
    };
    assert_eq!(send(&mut h, w, ask("tester")).status(), Some(500));
    assert_eq!(send(&mut h, w, ask("jason")).status(), Some(200));
    let before = h.now();
    send(
        &mut h,
        w,
        Request::get("/")
            .header("end-user", "tester")
            .header("x-envoy-fault-delay-request", "100"),
    );
    assert_eq!(since(&h, before), Duration::ZERO, "delays are switched off");
}

#[test]
fn header_control_comes_before_the_rules() {
    let (mut h, w) = start(
        r#"{"headerControl": {}, "rules": [{"name": "all", "abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#,
    );
    let asked = send(
        &mut h,
        w,
        Request::get("/").header("x-envoy-fault-abort-request", "502"),
    );
    assert_eq!(asked.status(), Some(502));
    assert_eq!(send(&mut h, w, Request::get("/")).status(), Some(503));
}
