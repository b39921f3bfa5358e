//! HTTP callouts: answered by the test, or timed out on the virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{ops, plugin, start};
use proxy_wasm_harness::{Action, CalloutResponse, Flow, Harness, Response};

#[test]
fn a_callout_is_recorded_and_answered() {
    let (mut harness, worker) = start("");
    harness.declare_clusters(["auth"]);
    let s = harness.new_stream(worker).unwrap();
    let action = harness
        .request_headers(
            s,
            [(":path", "/"), ("x-test-op", "callout auth /check 500")],
            true,
        )
        .unwrap();
    assert_eq!(action, Action::Pause);
    let calls = harness.http_calls(worker).unwrap();
    assert_eq!(calls.len(), 1);
    let call = calls[0].clone();
    assert_eq!(call.upstream, "auth");
    assert_eq!(call.timeout, Duration::from_millis(500));
    assert!(
        call.headers
            .contains(&(":path".to_string(), "/check".to_string()))
    );
    harness
        .respond_http_call(worker, call.token, CalloutResponse::new(204, "allowed"))
        .unwrap();
    let stream = harness.stream(s).unwrap();
    assert_eq!(stream.request_flow(), Flow::Flowing);
    let headers = stream.request_headers().unwrap();
    assert_eq!(headers.get("x-callout-status"), Some("204"));
    assert_eq!(headers.get("x-callout-body"), Some("allowed"));
}

#[test]
fn an_unanswered_callout_times_out_on_the_virtual_clock() {
    let (mut harness, worker) = start("");
    harness.declare_clusters(["auth"]);
    let exchange = harness
        .exchange(worker, ops("/", &["callout auth /check 250"]), |upstream| {
            // Answered as Envoy's async client answers a timeout.
            assert_eq!(upstream.header("x-callout-status"), Some("504"));
            assert_eq!(
                upstream.header("x-callout-body"),
                Some("upstream request timeout")
            );
            Response::ok()
        })
        .unwrap();
    assert_eq!(exchange.status(), Some(200));
    assert!(harness.http_calls(worker).unwrap().is_empty());
}

#[test]
fn a_callout_without_its_pseudo_headers_or_to_an_unknown_cluster_is_refused() {
    let mut harness = Harness::new();
    let worker = harness.start(&plugin().clusters(["known"])).unwrap();
    harness
        .exchange(worker, ops("/", &["callout unknown /x 100"]), |upstream| {
            assert_eq!(upstream.header("x-callout-error"), Some("BadArgument"));
            Response::ok()
        })
        .unwrap();
    // An empty :path is refused as Envoy refuses it.
    harness
        .exchange(worker, ops("/", &["callout known"]), |upstream| {
            assert_eq!(upstream.header("x-callout-error"), Some("BadArgument"));
            Response::ok()
        })
        .unwrap();
    let _ = harness.advance(Duration::from_secs(1));
}

#[test]
fn foreign_function_clear_route_cache_is_recorded() {
    let (mut harness, worker) = start("");
    harness
        .exchange(worker, ops("/", &["clear-route-cache"]), |upstream| {
            assert_eq!(upstream.header("x-clear-route-cache"), Some("ok"));
            Response::ok()
        })
        .unwrap();
    let calls = harness.foreign_calls(worker).unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "clear_route_cache");
}

#[test]
fn a_responder_answers_callouts_as_they_are_made() {
    let (mut harness, worker) = start("");
    harness.declare_clusters(["backend"]);
    harness.answer_callouts_with(|call| {
        Some(CalloutResponse::new(
            200,
            format!("hello {}", call.upstream),
        ))
    });
    harness
        .exchange(
            worker,
            ops("/", &["callout backend /ping 1000"]),
            |upstream| {
                assert_eq!(upstream.header("x-callout-status"), Some("200"));
                assert_eq!(upstream.header("x-callout-body"), Some("hello backend"));
                Response::ok()
            },
        )
        .unwrap();
}
