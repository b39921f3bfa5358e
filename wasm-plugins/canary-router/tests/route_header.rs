//! The route header is the plugin's alone, and Envoy is asked to route on it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::*;
use proxy_wasm_harness::Request;

#[test]
fn a_client_route_header_is_overwritten() {
    let (mut harness, worker) = start(&config_json(0, ""));
    let exchange = send(
        &mut harness,
        worker,
        Request::get("/")
            .header(ROUTE_HEADER, "v2")
            .header("X-Canary-Subset", "v3"),
    );
    // One value, the plugin's.
    assert_eq!(routed_to(&exchange), "v1");
}

#[test]
fn the_route_cache_is_cleared_for_every_request() {
    let (mut harness, worker) = start(&config_json(50, ""));
    for _ in 0..3 {
        send(&mut harness, worker, Request::get("/"));
    }
    let calls = harness.foreign_calls(worker).unwrap();
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|c| c.name == "clear_route_cache" && c.arguments.is_empty())
    );
}

#[test]
fn a_custom_route_header_is_used() {
    let config = r#"{"subsets": [{"name": "stable", "weight": 100}, {"name": "canary", "weight": 0}],
                     "routeHeader": "X-Version"}"#;
    let (mut harness, worker) = start(config);
    let exchange = harness
        .exchange(
            worker,
            Request::get("/").header("x-version", "canary"),
            |upstream| {
                assert_eq!(upstream.headers.get_all("x-version"), ["stable"]);
                assert_eq!(upstream.header(ROUTE_HEADER), None);
                proxy_wasm_harness::Response::ok()
            },
        )
        .unwrap();
    assert_eq!(exchange.status(), Some(200));
}
