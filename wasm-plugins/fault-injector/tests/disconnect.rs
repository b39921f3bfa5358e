//! A client that goes away during a delay: the stream is forgotten, nothing
//! is resumed or sent, and its slot is given back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::plugin;
use proxy_wasm_harness::{Action, Flow, Harness, StreamId, WorkerId};

const VM_ID: &str = "fault-vm";
const KEY: &str = "fault_injector.active_faults.";

fn start(config: &str) -> (Harness, WorkerId) {
    let mut h = Harness::new();
    let w = h.start(&plugin(config).vm_id(VM_ID)).unwrap();
    (h, w)
}

fn open(h: &mut Harness, w: WorkerId, path: &str) -> StreamId {
    let s = h.new_stream(w).unwrap();
    let action = h
        .request_headers(s, [(":method", "GET"), (":path", path)], true)
        .unwrap();
    assert_eq!(action, Action::Pause);
    s
}

#[test]
fn a_disconnect_during_a_delay_frees_everything() {
    let (mut h, w) = start(
        r#"{"maxActiveFaults": 5, "rules": [{"delay": {"fixedDelay": "10s", "percentage": {"value": 100}}}]}"#,
    );
    let s = open(&mut h, w, "/");
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(1));
    assert_eq!(h.shared_data(VM_ID, KEY).unwrap().0, b"1");
    h.advance(Duration::from_secs(2)).unwrap();
    let stream = h.finish_stream(s).unwrap();
    assert_eq!(stream.request_resumes(), 0);
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(0));
    assert_eq!(h.shared_data(VM_ID, KEY).unwrap().0, b"0");
    assert_eq!(
        h.tick_period(w).unwrap(),
        Duration::ZERO,
        "nothing left to wake for"
    );
    h.advance(Duration::from_secs(20)).unwrap();
    assert_eq!(h.failure(w).unwrap(), None);
}

#[test]
fn a_disconnect_before_delay_then_abort_sends_nothing() {
    let (mut h, w) = start(
        r#"{"rules": [{"delay": {"fixedDelay": "1s", "percentage": {"value": 100}}, "abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#,
    );
    let s = open(&mut h, w, "/");
    let stream = h.finish_stream(s).unwrap();
    assert!(stream.local_response().is_none());
    h.advance(Duration::from_secs(2)).unwrap();
    assert_eq!(h.counter("fault_injector.aborts_injected"), Some(0));
    assert_eq!(h.counter("fault_injector.delays_injected"), Some(1));
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(0));
    assert_eq!(h.failure(w).unwrap(), None);
}

#[test]
fn other_parked_streams_still_resume_on_time() {
    let (mut h, w) = start(
        r#"{"rules": [
            {"match": [{"uri": {"exact": "/short"}}], "delay": {"fixedDelay": "100ms", "percentage": {"value": 100}}},
            {"delay": {"fixedDelay": "300ms", "percentage": {"value": 100}}}
        ]}"#,
    );
    let short = open(&mut h, w, "/short");
    let long = open(&mut h, w, "/long");
    h.finish_stream(short).unwrap();
    assert_eq!(h.tick_period(w).unwrap(), Duration::from_millis(100));
    h.advance(Duration::from_millis(299)).unwrap();
    assert_eq!(h.stream(long).unwrap().request_flow(), Flow::Paused);
    h.advance(Duration::from_millis(1)).unwrap();
    assert_eq!(h.stream(long).unwrap().request_flow(), Flow::Flowing);
    assert_eq!(h.tick_period(w).unwrap(), Duration::ZERO);
}

#[test]
fn finishing_a_resumed_stream_releases_nothing_twice() {
    let (mut h, w) = start(
        r#"{"maxActiveFaults": 1, "rules": [{"delay": {"fixedDelay": "5ms", "percentage": {"value": 100}}}]}"#,
    );
    let first = open(&mut h, w, "/");
    h.advance(Duration::from_millis(5)).unwrap();
    let second = open(&mut h, w, "/");
    h.finish_stream(first).unwrap();
    assert_eq!(
        h.shared_data(VM_ID, KEY).unwrap().0,
        b"1",
        "second still holds its slot"
    );
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(1));
    h.finish_stream(second).unwrap();
    assert_eq!(h.shared_data(VM_ID, KEY).unwrap().0, b"0");
}
