//! Header control in a real Envoy. Envoy's connection manager removes some
//! `x-envoy-*` request headers from clients it does not trust (the retry and
//! timeout ones: see `test-harness/ENVOY-FACTS.md`), but not the
//! `x-envoy-fault-*` ones: they reach the plugin, so header control works
//! with Envoy's own header names. These tests pin that.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod envoy_common;

use std::time::Duration;

use cross_check::{Step, cross_check};
use envoy_common::{Rig, scenario, timed};
use envoy_rig::client::Request;

#[test]
fn fault_headers_from_a_client_reach_the_plugin() {
    let s = scenario("header control", r#"{"headerControl": {"maxDelay": "1s"}}"#)
        .step(
            Step::get("/")
                .header("x-envoy-fault-abort-request", "503")
                .expect_status(503)
                .expect_upstream(false)
                .expect_body("fault filter abort")
                .expect_response_header("x-fault-injected", Some("abort=503;rule=header-control")),
        )
        .step(
            Step::get("/")
                .header("x-envoy-fault-delay-request", "40")
                .expect_status(200)
                .expect_upstream(true)
                .expect_response_header("x-fault-injected", Some("delay=40ms;rule=header-control")),
        )
        .step(
            Step::get("/")
                .header("x-envoy-fault-delay-request", "20")
                .header("x-envoy-fault-abort-request", "429")
                .expect_status(429)
                .expect_response_header(
                    "x-fault-injected",
                    Some("delay=20ms,abort=429;rule=header-control"),
                ),
        )
        .step(
            Step::get("/")
                .header("x-envoy-fault-abort-request", "503")
                .header("x-envoy-fault-abort-request-percentage", "0")
                .expect_status(200)
                .expect_response_header("x-fault-injected", None),
        )
        .step(
            Step::get("/")
                .expect_status(200)
                .expect_response_header("x-fault-injected", None),
        )
        .expect_metric("fault_injector.rule.header-control.aborts_injected", 2)
        .expect_metric("fault_injector.rule.header-control.delays_injected", 2);
    cross_check(&s).unwrap();
}

#[test]
fn without_header_control_the_headers_do_nothing() {
    let s = scenario(
        "header control off",
        r#"{"rules": [{"match": [{"uri": {"exact": "/never"}}], "abort": {"httpStatus": 500, "percentage": {"value": 100}}}]}"#,
    )
    .step(
        Step::get("/")
            .header("x-envoy-fault-abort-request", "503")
            .header("x-envoy-fault-delay-request", "1000")
            .expect_status(200)
            .expect_upstream(true)
            .expect_response_header("x-fault-injected", None),
    )
    .expect_metric("fault_injector.aborts_injected", 0)
    .expect_metric("fault_injector.delays_injected", 0);
    cross_check(&s).unwrap();
}

#[test]
fn a_requested_delay_is_cut_to_max_delay_in_envoy() {
    let rig = Rig::start(
        r#"{"headerControl": {"maxDelay": "150ms", "abort": false}}"#,
        1,
    );
    let request = Request::get(rig.url("/"))
        .header("x-envoy-fault-delay-request", "3600000")
        .header("x-envoy-fault-abort-request", "503");
    let (response, elapsed) = timed(&request);
    assert_eq!(response.status, 200, "aborts are switched off");
    assert_eq!(
        response.header("x-fault-injected"),
        Some("delay=150ms;rule=header-control")
    );
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
}

#[test]
fn only_matching_requests_may_ask() {
    let s = scenario(
        "header control for x-chaos-team",
        r#"{"headerControl": {"match": [{"headers": {"x-chaos-team": {}}}]}}"#,
    )
    .step(
        Step::get("/")
            .header("x-envoy-fault-abort-request", "503")
            .expect_status(200),
    )
    .step(
        Step::get("/")
            .header("x-chaos-team", "sre")
            .header("x-envoy-fault-abort-request", "503")
            .expect_status(503),
    );
    cross_check(&s).unwrap();
}
