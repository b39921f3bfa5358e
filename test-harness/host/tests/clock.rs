//! The virtual clock: ticks, parked streams, time seen by the plugin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{ops, start};
use proxy_wasm_harness::{Action, Flow, Response};

#[test]
fn ticks_fire_as_virtual_time_advances() {
    let (mut harness, worker) = start(r#"{"tickMs": 100}"#);
    assert_eq!(
        harness.tick_period(worker).unwrap(),
        Duration::from_millis(100)
    );
    harness.advance(Duration::from_millis(99)).unwrap();
    assert_eq!(harness.counter("test_plugin.ticks"), Some(0));
    harness.advance(Duration::from_millis(1)).unwrap();
    assert_eq!(harness.counter("test_plugin.ticks"), Some(1));
    harness.advance(Duration::from_millis(1000)).unwrap();
    assert_eq!(harness.counter("test_plugin.ticks"), Some(11));
}

#[test]
fn a_paused_stream_resumes_from_the_tick() {
    let (mut harness, worker) = start(r#"{"tickMs": 10}"#);
    let s = harness.new_stream(worker).unwrap();
    let action = harness
        .request_headers(s, [(":path", "/"), ("x-test-op", "pause-ms 50")], true)
        .unwrap();
    assert_eq!(action, Action::Pause);
    harness.advance(Duration::from_millis(40)).unwrap();
    assert_eq!(harness.stream(s).unwrap().request_flow(), Flow::Paused);
    harness.advance(Duration::from_millis(10)).unwrap();
    let stream = harness.stream(s).unwrap();
    assert_eq!(stream.request_flow(), Flow::Flowing);
    assert_eq!(stream.request_resumes(), 1);
}

#[test]
fn exchange_waits_out_a_pause_on_the_virtual_clock() {
    let (mut harness, worker) = start(r#"{"tickMs": 5}"#);
    let before = harness.now();
    let exchange = harness
        .exchange(worker, ops("/", &["pause-ms 2000"]), |_| Response::ok())
        .unwrap();
    assert_eq!(exchange.status(), Some(200));
    let waited = harness.now().duration_since(before).unwrap();
    assert!(
        waited >= Duration::from_millis(2000) && waited < Duration::from_millis(2010),
        "{waited:?}"
    );
}

#[test]
fn a_pause_nobody_resumes_is_reported_as_stalled() {
    let (mut harness, worker) = start(""); // no tick: nothing will resume it
    let error = harness
        .exchange(worker, ops("/", &["pause-ms 10"]), |_| Response::ok())
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("stayed paused in request headers"),
        "{error}"
    );
}

#[test]
fn the_plugin_reads_the_virtual_time() {
    let (mut harness, worker) = start("");
    harness.advance(Duration::from_secs(3)).unwrap();
    let expected = harness
        .now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    harness
        .exchange(worker, ops("/", &["time"]), |upstream| {
            assert_eq!(upstream.header("x-time-nanos"), Some(expected.as_str()));
            Response::ok()
        })
        .unwrap();
}
