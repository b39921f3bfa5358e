//! A rule with both: the delay first, then the abort, as Envoy does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{reached_upstream, send, since, start};
use proxy_wasm_harness::{Action, Flow, Request};

const BOTH: &str = r#"{"rules": [{"name": "both", "delay": {"fixedDelay": "300ms", "percentage": {"value": 100}},
                                   "abort": {"httpStatus": 504, "percentage": {"value": 100}}}]}"#;

#[test]
fn the_abort_comes_after_the_delay() {
    let (mut h, w) = start(BOTH);
    let before = h.now();
    let exchange = send(&mut h, w, Request::get("/"));
    assert_eq!(since(&h, before), Duration::from_millis(300));
    assert!(!reached_upstream(&exchange));
    assert_eq!(exchange.status(), Some(504));
    assert_eq!(exchange.response_body(), b"fault filter abort");
    assert_eq!(
        exchange.response_header("x-fault-injected"),
        Some("delay=300ms,abort=504;rule=both")
    );
    assert_eq!(h.counter("fault_injector.delays_injected"), Some(1));
    assert_eq!(h.counter("fault_injector.aborts_injected"), Some(1));
    assert_eq!(
        h.counter("fault_injector.rule.both.aborts_injected"),
        Some(1)
    );
}

#[test]
fn nothing_is_sent_before_the_delay_ends() {
    let (mut h, w) = start(BOTH);
    let s = h.new_stream(w).unwrap();
    let action = h
        .request_headers(s, [(":method", "GET"), (":path", "/")], true)
        .unwrap();
    assert_eq!(action, Action::Pause);
    h.advance(Duration::from_millis(299)).unwrap();
    assert!(h.stream(s).unwrap().local_response().is_none());
    assert_eq!(h.counter("fault_injector.aborts_injected"), Some(0));
    h.advance(Duration::from_millis(1)).unwrap();
    let stream = h.stream(s).unwrap();
    assert_eq!(stream.local_response().unwrap().status, 504);
    assert_eq!(stream.request_flow(), Flow::Paused, "never goes upstream");
    assert_eq!(stream.request_resumes(), 0);
}

#[test]
fn the_abort_keeps_its_slot_until_the_stream_ends() {
    let (mut h, w) = start(BOTH);
    let s = h.new_stream(w).unwrap();
    h.request_headers(s, [(":method", "GET"), (":path", "/")], true)
        .unwrap();
    h.advance(Duration::from_millis(300)).unwrap();
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(1));
    h.finish_stream(s).unwrap();
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(0));
}
