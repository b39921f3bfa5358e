//! Header maps, bodies and local responses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{ops, start};
use proxy_wasm_harness::{Request, Response};

#[test]
fn request_header_changes_reach_the_upstream() {
    let (mut harness, worker) = start("");
    let request = ops(
        "/",
        &[
            "add-request-header x-added one",
            "set-request-header x-replaced new",
            "remove-request-header x-gone",
        ],
    )
    .header("x-replaced", "old")
    .header("x-replaced", "older")
    .header("x-gone", "bye");
    let exchange = harness
        .exchange(worker, request, |upstream| {
            assert_eq!(upstream.header("x-added"), Some("one"));
            assert_eq!(upstream.headers.get_all("x-replaced"), vec!["new"]);
            assert_eq!(upstream.header("x-gone"), None);
            assert_eq!(upstream.header("x-test-plugin"), Some("seen"));
            Response::ok()
        })
        .unwrap();
    assert!(exchange.upstream_request.is_some());
    assert_eq!(exchange.status(), Some(200));
}

#[test]
fn response_headers_are_added_on_the_way_back() {
    let (mut harness, worker) = start("");
    let exchange = harness
        .exchange(
            worker,
            ops("/", &["add-response-header x-from-plugin yes"]),
            |_| Response::new(404),
        )
        .unwrap();
    assert_eq!(exchange.response_header("x-from-plugin"), Some("yes"));
    assert_eq!(
        exchange.response_header("x-test-plugin-saw-status"),
        Some("404")
    );
}

#[test]
fn local_response_stops_the_request_and_runs_response_callbacks() {
    let (mut harness, worker) = start("");
    let exchange = harness
        .exchange(worker, ops("/", &["local 418 short and stout"]), |_| {
            panic!("the upstream must not be called")
        })
        .unwrap();
    assert!(exchange.upstream_request.is_none());
    assert_eq!(exchange.status(), Some(418));
    assert_eq!(exchange.response_body(), b"short and stout");
    assert_eq!(exchange.response_header("x-local"), Some("test-plugin"));
    assert_eq!(exchange.response_header("content-type"), Some("text/plain"));
    // Envoy runs the local reply through this plugin's response callbacks.
    assert_eq!(
        exchange.response_header("x-test-plugin-saw-status"),
        Some("418")
    );
    let local = exchange.local_response().unwrap();
    assert_eq!((local.status, local.grpc_status), (418, None));
}

#[test]
fn a_paused_body_is_buffered_and_can_be_replaced() {
    let (mut harness, worker) = start("");
    let s = harness.new_stream(worker).unwrap();
    harness
        .request_headers(
            s,
            [
                (":path", "/"),
                ("x-test-op", "buffer-request-body REPLACED"),
            ],
            false,
        )
        .unwrap();
    let first = harness.request_body(s, b"hello ", false).unwrap();
    assert_eq!(first, proxy_wasm_harness::Action::Pause);
    assert_eq!(harness.stream(s).unwrap().forwarded_request_body(), b"");
    harness.request_body(s, b"world", true).unwrap();
    assert_eq!(
        harness.stream(s).unwrap().forwarded_request_body(),
        b"REPLACED"
    );
    harness
        .response_headers(s, [(":status", "200")], true)
        .unwrap();
    let response = harness
        .stream(s)
        .unwrap()
        .response_headers()
        .unwrap()
        .clone();
    assert_eq!(response.get("x-request-body-length"), Some("11"));
}

#[test]
fn response_body_replacement_reaches_the_client() {
    let (mut harness, worker) = start("");
    let exchange = harness
        .exchange(
            worker,
            ops("/", &["buffer-response-body rewritten"]),
            |_| Response::ok().body("original body"),
        )
        .unwrap();
    assert_eq!(exchange.response_body(), b"rewritten");
    assert_eq!(exchange.response_header("content-length"), None);
}

#[test]
fn a_reset_stream_gets_no_response() {
    let (mut harness, worker) = start("");
    let exchange = harness
        .exchange(worker, ops("/", &["reset"]), |_| {
            panic!("must not reach upstream")
        })
        .unwrap();
    assert!(exchange.was_reset());
    assert_eq!(exchange.status(), None);
}

#[test]
fn trailers_are_delivered() {
    let (mut harness, worker) = start("");
    let request = Request::post("/upload", "data").trailer("x-checksum", "abc");
    let exchange = harness
        .exchange(worker, request, |upstream| {
            assert_eq!(upstream.body, b"data");
            assert_eq!(
                upstream.trailers.as_ref().unwrap().get("x-checksum"),
                Some("abc")
            );
            Response::ok().body("done").trailer("grpc-status", "0")
        })
        .unwrap();
    assert_eq!(
        exchange
            .stream
            .response_trailers()
            .unwrap()
            .get("grpc-status"),
        Some("0")
    );
}

#[test]
fn a_replaced_body_with_a_stale_content_length_is_reported() {
    // The same mistake that makes Envoy answer 504 (the upstream waits for
    // the bytes the old content-length promised) is an error here.
    let (mut harness, worker) = start("");
    let s = harness.new_stream(worker).unwrap();
    harness
        .request_headers(s, [(":path", "/"), ("content-length", "5")], false)
        .unwrap();
    harness.finish_stream(s).unwrap();
    let request = Request::post("/", "hello").header("x-test-op", "add-request-header x-a 1");
    harness
        .exchange(worker, request, |u| {
            assert_eq!(u.header("content-length"), Some("5"));
            Response::ok()
        })
        .unwrap();
    let error = harness
        .exchange(worker, Request::get("/"), |_| {
            Response::ok().header("content-length", "10")
        })
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("response body is 0 bytes but content-length says 10"),
        "{error}"
    );
}

#[test]
fn a_local_response_without_a_body_has_no_content_type() {
    // As Envoy does, even when the plugin asked for one.
    let (mut harness, worker) = start("");
    let exchange = harness
        .exchange(worker, ops("/", &["local 204"]), |_| {
            panic!("must not reach upstream")
        })
        .unwrap();
    assert_eq!(exchange.status(), Some(204));
    assert_eq!(exchange.response_header("content-type"), None);
    assert_eq!(exchange.response_header("x-local"), Some("test-plugin"));
}
