//! Istio's percentages in the harness: an abort or delay without
//! `percentage` injects nothing (Istio's proto; pilot's `TranslateFault`
//! leaves Envoy's percentage unset), said once at configure time; a delay's
//! deprecated integer `percent` is honoured as pilot translates it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{reached_upstream, send, start};
use proxy_wasm_harness::{LogLevel, Request};

/// A fault pasted from an Istio VirtualService without `percentage`.
const NO_PERCENTAGE: &str = r#"{"rules": [{"name": "pasted", "abort": {"httpStatus": 418}, "delay": {"fixedDelay": "2s"}}]}"#;

#[test]
fn a_fault_without_percentage_injects_nothing() {
    let (mut h, w) = start(NO_PERCENTAGE);
    for _ in 0..10 {
        let exchange = send(&mut h, w, Request::get("/"));
        assert_eq!(exchange.status(), Some(200));
        assert!(reached_upstream(&exchange));
        assert_eq!(exchange.response_header("x-fault-injected"), None);
    }
    assert_eq!(h.counter("fault_injector.aborts_injected").unwrap_or(0), 0);
    assert_eq!(h.counter("fault_injector.delays_injected").unwrap_or(0), 0);
}

#[test]
fn the_omission_is_logged_once_at_configure_time() {
    let (mut h, w) = start(NO_PERCENTAGE);
    for _ in 0..5 {
        send(&mut h, w, Request::get("/"));
    }
    let warnings = h.logs_at(w, LogLevel::Warn).unwrap();
    let about = |field: &str| warnings.iter().filter(|l| l.contains(field)).count();
    assert_eq!(
        about("rules[0].abort.percentage: not given"),
        1,
        "{warnings:?}"
    );
    assert_eq!(
        about("rules[0].delay.percentage: not given"),
        1,
        "{warnings:?}"
    );
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(h.logs_at(w, LogLevel::Error).unwrap().is_empty());
}

#[test]
fn a_fault_with_percentage_says_nothing() {
    let (h, w) =
        start(r#"{"rules": [{"abort": {"httpStatus": 418, "percentage": {"value": 100}}}]}"#);
    assert!(h.logs_at(w, LogLevel::Warn).unwrap().is_empty());
}

#[test]
fn the_deprecated_integer_delay_percent_is_honoured() {
    let (mut h, w) = start(
        r#"{"rules": [
            {"name": "all", "match": [{"uri": {"prefix": "/all"}}], "delay": {"fixedDelay": "100ms", "percent": 100}},
            {"name": "none", "delay": {"fixedDelay": "100ms", "percent": 0}}
        ]}"#,
    );
    let all = send(&mut h, w, Request::get("/all"));
    assert_eq!(
        all.response_header("x-fault-injected"),
        Some("delay=100ms;rule=all")
    );
    let none = send(&mut h, w, Request::get("/other"));
    assert_eq!(none.response_header("x-fault-injected"), None);
    assert!(h.logs_at(w, LogLevel::Warn).unwrap().is_empty());
}
