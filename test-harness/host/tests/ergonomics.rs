//! Issue 14's ergonomics: a tick and a queue notification fired by the test
//! itself, where it says so; `exchange` with per-request properties and a
//! body that arrives in pieces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::start;
use proxy_wasm_harness::{LogLevel, Request, Response};

#[test]
fn tick_fires_now_and_rearms_a_full_period_later() {
    let (mut harness, worker) = start(r#"{"tickMs": 100}"#);
    harness.advance(Duration::from_millis(60)).unwrap();
    assert_eq!(harness.counter("test_plugin.ticks"), Some(0));
    let before = harness.now();
    harness.tick(worker).unwrap();
    assert_eq!(harness.now(), before, "the clock does not move");
    assert_eq!(harness.counter("test_plugin.ticks"), Some(1));
    // The old deadline (100 ms) is gone: the next tick is 100 ms after this one.
    harness.advance(Duration::from_millis(99)).unwrap();
    assert_eq!(harness.counter("test_plugin.ticks"), Some(1));
    harness.advance(Duration::from_millis(1)).unwrap();
    assert_eq!(harness.counter("test_plugin.ticks"), Some(2));
}

#[test]
fn queue_ready_runs_the_plugins_queue_handler_on_demand() {
    let (mut harness, worker) = start(r#"{"queue": "q"}"#);
    // Nothing enqueued: the handler finds the queue empty and counts nothing.
    let token = harness
        .logs_at(worker, LogLevel::Info)
        .unwrap()
        .iter()
        .find_map(|l| l.strip_prefix("registered queue q token="))
        .and_then(|t| t.parse::<u32>().ok())
        .unwrap();
    harness.queue_ready(worker, token).unwrap();
    assert_eq!(harness.counter("test_plugin.queue_items"), Some(0));
    assert!(
        harness
            .queue_ready(proxy_wasm_harness::WorkerId(9), token)
            .is_err()
    );
}

#[test]
fn a_body_in_pieces_is_one_callback_per_piece_then_the_end() {
    let (mut harness, worker) = start("");
    let request = Request::post("/", "")
        .body_chunks(["hel", "lo"])
        .header("x-test-op", "body-calls");
    let exchange = harness
        .exchange(worker, request, |upstream| {
            assert_eq!(upstream.body, b"hello");
            assert_eq!(upstream.header("content-length"), Some("5"));
            Response::ok()
        })
        .unwrap();
    assert_eq!(
        exchange.response_header("x-request-body-calls"),
        Some("3/false,2/false,0/true")
    );
}

#[test]
fn a_property_given_with_the_request_is_seen_by_that_request_only() {
    let (mut harness, worker) = start("");
    let with = Request::get("/")
        .property(&["my", "tenant"], "blue")
        .header("x-test-op", "copy-property my.tenant x-tenant");
    let without = Request::get("/").header("x-test-op", "copy-property my.tenant x-tenant");
    for (request, expected) in [(with, "blue"), (without, "missing")] {
        harness
            .exchange(worker, request, |upstream| {
                assert_eq!(upstream.header("x-tenant"), Some(expected));
                Response::ok()
            })
            .unwrap();
    }
}
