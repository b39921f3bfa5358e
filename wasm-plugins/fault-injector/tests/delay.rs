//! Delays: the request is parked and resumed on time by the root context's
//! tick, measured on the harness's virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{reached_upstream, send, since, start};
use proxy_wasm_harness::{Action, Flow, Request};

#[test]
fn a_delay_holds_the_request_for_exactly_its_duration() {
    let (mut h, w) = start(
        r#"{"rules": [{"name": "slow", "delay": {"fixedDelay": "2.5s", "percentage": {"value": 100}}}]}"#,
    );
    let before = h.now();
    let exchange = send(&mut h, w, Request::get("/"));
    assert_eq!(since(&h, before), Duration::from_millis(2500));
    assert!(reached_upstream(&exchange));
    assert_eq!(exchange.status(), Some(200));
    assert_eq!(exchange.response_body(), b"upstream");
    assert_eq!(
        exchange.response_header("x-fault-injected"),
        Some("delay=2500ms;rule=slow")
    );
    assert_eq!(h.counter("fault_injector.delays_injected"), Some(1));
    assert_eq!(
        h.counter("fault_injector.rule.slow.delays_injected"),
        Some(1)
    );
    assert_eq!(h.counter("fault_injector.aborts_injected"), Some(0));
}

#[test]
fn istio_duration_forms_are_honoured() {
    for (text, expected) in [
        ("10ms", Duration::from_millis(10)),
        ("1m", Duration::from_secs(60)),
        ("1.5s", Duration::from_millis(1500)),
        ("1s250ms", Duration::from_millis(1250)),
    ] {
        let (mut h, w) = start(&format!(
            r#"{{"rules": [{{"delay": {{"fixedDelay": "{text}", "percentage": {{"value": 100}}}}}}]}}"#
        ));
        let before = h.now();
        send(&mut h, w, Request::get("/"));
        assert_eq!(since(&h, before), expected, "{text}");
    }
}

#[test]
fn a_sub_millisecond_remainder_is_rounded_up_never_down() {
    let (mut h, w) =
        start(r#"{"rules": [{"delay": {"fixedDelay": "1500us", "percentage": {"value": 100}}}]}"#);
    let before = h.now();
    send(&mut h, w, Request::get("/"));
    assert_eq!(since(&h, before), Duration::from_millis(2));
}

#[test]
fn the_tick_is_armed_only_while_a_delay_is_pending() {
    let (mut h, w) =
        start(r#"{"rules": [{"delay": {"fixedDelay": "100ms", "percentage": {"value": 100}}}]}"#);
    assert_eq!(h.tick_period(w).unwrap(), Duration::ZERO);
    let s = h.new_stream(w).unwrap();
    let action = h
        .request_headers(s, [(":method", "GET"), (":path", "/")], true)
        .unwrap();
    assert_eq!(action, Action::Pause);
    assert_eq!(h.tick_period(w).unwrap(), Duration::from_millis(100));
    h.advance(Duration::from_millis(99)).unwrap();
    assert_eq!(h.stream(s).unwrap().request_flow(), Flow::Paused);
    h.advance(Duration::from_millis(1)).unwrap();
    let stream = h.stream(s).unwrap();
    assert_eq!(stream.request_flow(), Flow::Flowing);
    assert_eq!(stream.request_resumes(), 1);
    assert_eq!(h.tick_period(w).unwrap(), Duration::ZERO);
}

#[test]
fn concurrent_delays_each_resume_on_time() {
    let (mut h, w) = start(
        r#"{"rules": [
            {"match": [{"uri": {"exact": "/500"}}], "delay": {"fixedDelay": "500ms", "percentage": {"value": 100}}},
            {"match": [{"uri": {"exact": "/100"}}], "delay": {"fixedDelay": "100ms", "percentage": {"value": 100}}},
            {"match": [{"uri": {"exact": "/10"}}], "delay": {"fixedDelay": "10ms", "percentage": {"value": 100}}}
        ]}"#,
    );
    let start = h.now();
    let mut streams = Vec::new();
    // The longest first: each shorter delay must re-arm the timer earlier.
    for (path, offset_ms) in [("/500", 0u64), ("/100", 3), ("/10", 5)] {
        h.advance(Duration::from_millis(offset_ms) - since(&h, start))
            .unwrap();
        let s = h.new_stream(w).unwrap();
        h.request_headers(s, [(":method", "GET"), (":path", path)], true)
            .unwrap();
        streams.push((s, offset_ms + path[1..].parse::<u64>().unwrap()));
    }
    let mut resumed_at = Vec::new();
    while h.advance_to_next_event().unwrap() {
        for (s, _) in &streams {
            if h.stream(*s).unwrap().request_flow() == Flow::Flowing
                && !resumed_at.iter().any(|(id, _)| id == s)
            {
                resumed_at.push((*s, since(&h, start)));
            }
        }
    }
    assert_eq!(resumed_at.len(), 3);
    for (s, due_ms) in &streams {
        let (_, at) = resumed_at.iter().find(|(id, _)| id == s).unwrap();
        assert_eq!(*at, Duration::from_millis(*due_ms), "stream {s:?}");
    }
    assert_eq!(h.tick_period(w).unwrap(), Duration::ZERO);
}

#[test]
fn many_delays_take_few_ticks() {
    // Adaptive tick: one wake-up per distinct due time, not one per ms.
    let (mut h, w) =
        start(r#"{"rules": [{"delay": {"fixedDelay": "1s", "percentage": {"value": 100}}}]}"#);
    let mut streams = Vec::new();
    for _ in 0..50 {
        let s = h.new_stream(w).unwrap();
        h.request_headers(s, [(":method", "GET"), (":path", "/")], true)
            .unwrap();
        streams.push(s);
    }
    let mut wakeups = 0;
    while h.advance_to_next_event().unwrap() {
        wakeups += 1;
    }
    assert_eq!(wakeups, 1);
    for s in streams {
        assert_eq!(h.stream(s).unwrap().request_resumes(), 1);
    }
}

#[test]
fn the_body_waits_with_the_headers() {
    let (mut h, w) =
        start(r#"{"rules": [{"delay": {"fixedDelay": "50ms", "percentage": {"value": 100}}}]}"#);
    let s = h.new_stream(w).unwrap();
    let action = h
        .request_headers(s, [(":method", "POST"), (":path", "/")], false)
        .unwrap();
    assert_eq!(action, Action::Pause);
    // A body arriving during the delay must not let the request go on.
    let action = h.request_body(s, b"bag-scan", true).unwrap();
    assert_eq!(action, Action::Pause);
    assert_eq!(h.stream(s).unwrap().request_flow(), Flow::Paused);
    h.advance(Duration::from_millis(50)).unwrap();
    let stream = h.stream(s).unwrap();
    assert_eq!(stream.request_flow(), Flow::Flowing);
    assert_eq!(stream.forwarded_request_body(), b"bag-scan");
}

#[test]
fn a_delayed_post_reaches_the_upstream_whole() {
    let (mut h, w) =
        start(r#"{"rules": [{"delay": {"fixedDelay": "20ms", "percentage": {"value": 100}}}]}"#);
    let before = h.now();
    let exchange = send(&mut h, w, Request::post("/upload", "image-bytes"));
    assert_eq!(since(&h, before), Duration::from_millis(20));
    assert_eq!(
        exchange.upstream_request.as_ref().unwrap().body,
        b"image-bytes"
    );
}

#[test]
fn a_delay_holds_a_slot_only_while_it_lasts() {
    let (mut h, w) =
        start(r#"{"rules": [{"delay": {"fixedDelay": "30ms", "percentage": {"value": 100}}}]}"#);
    let s = h.new_stream(w).unwrap();
    h.request_headers(s, [(":method", "GET"), (":path", "/")], true)
        .unwrap();
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(1));
    h.advance(Duration::from_millis(30)).unwrap();
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(0));
}
