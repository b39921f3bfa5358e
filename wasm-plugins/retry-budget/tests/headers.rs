//! The headers the plugin gives Envoy's router, whatever the client sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{plugin, start};
use proxy_wasm_harness::{Harness, Request, Response};

/// Sends `request` and returns the request headers the upstream saw.
fn seen(config: &str, request: Request) -> Vec<(String, String)> {
    let (mut harness, workers) = start(config, 1);
    let exchange = harness
        .exchange(workers[0], request, |_| Response::ok())
        .unwrap();
    exchange.upstream_request.unwrap().headers.pairs().to_vec()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn defaults_follow_istio() {
    let headers = seen("", Request::get("/"));
    assert_eq!(header(&headers, "x-envoy-max-retries"), ["2"]);
    assert_eq!(
        header(&headers, "x-envoy-retry-on"),
        ["connect-failure,refused-stream,retriable-status-codes"]
    );
    assert_eq!(
        header(&headers, "x-envoy-retry-grpc-on"),
        ["unavailable,cancelled"]
    );
    // Istio 1.30 lists no status code (an upstream 503 is not retried).
    assert!(header(&headers, "x-envoy-retriable-status-codes").is_empty());
    assert!(header(&headers, "x-envoy-upstream-rq-per-try-timeout-ms").is_empty());
}

#[test]
fn configured_conditions_and_per_try_timeout() {
    let headers = seen(
        r#"{"attempts": 3, "retryOn": "5xx,reset", "perTryTimeout": "1.5s"}"#,
        Request::get("/"),
    );
    assert_eq!(header(&headers, "x-envoy-max-retries"), ["3"]);
    assert_eq!(header(&headers, "x-envoy-retry-on"), ["5xx,reset"]);
    assert!(header(&headers, "x-envoy-retry-grpc-on").is_empty());
    assert!(header(&headers, "x-envoy-retriable-status-codes").is_empty());
    assert_eq!(
        header(&headers, "x-envoy-upstream-rq-per-try-timeout-ms"),
        ["1500"]
    );
}

#[test]
fn client_retry_headers_are_overwritten() {
    let request = Request::get("/")
        .header("x-envoy-max-retries", "100")
        .header("x-envoy-max-retries", "50")
        .header("x-envoy-retry-on", "5xx,retriable-4xx")
        .header("x-envoy-retry-grpc-on", "internal")
        .header("x-envoy-retriable-status-codes", "404")
        .header("x-envoy-hedge-on-per-try-timeout", "true")
        .header("x-envoy-upstream-rq-per-try-timeout-ms", "60000");
    let headers = seen(
        r#"{"attempts": 1, "retryOn": "gateway-error", "perTryTimeout": "200ms"}"#,
        request,
    );
    assert_eq!(header(&headers, "x-envoy-max-retries"), ["1"]);
    assert_eq!(header(&headers, "x-envoy-retry-on"), ["gateway-error"]);
    assert!(header(&headers, "x-envoy-retry-grpc-on").is_empty());
    assert!(header(&headers, "x-envoy-retriable-status-codes").is_empty());
    assert!(header(&headers, "x-envoy-hedge-on-per-try-timeout").is_empty());
    assert_eq!(
        header(&headers, "x-envoy-upstream-rq-per-try-timeout-ms"),
        ["200"]
    );
}

#[test]
fn a_spent_budget_sends_zero_retries() {
    let config = r#"{"budget": {"retryRatio": 0, "minRetriesPerSecond": 0}, "attempts": 3}"#;
    let headers = seen(config, Request::get("/").header("x-envoy-max-retries", "3"));
    assert_eq!(header(&headers, "x-envoy-max-retries"), ["0"]);
    // The conditions still go: Envoy needs them to know retries are off
    // for a reason, and a route policy's own count is overridden by the 0.
    assert_eq!(
        header(&headers, "x-envoy-retry-on"),
        ["connect-failure,refused-stream,retriable-status-codes"]
    );
}

#[test]
fn responses_pass_unchanged_unless_asked() {
    let (mut harness, workers) = start(r#"{"retryOn": "5xx"}"#, 1);
    let exchange = harness
        .exchange(workers[0], Request::get("/"), |_| {
            Response::new(503).header("x-envoy-attempt-count", "3")
        })
        .unwrap();
    assert_eq!(exchange.status(), Some(503));
    assert_eq!(exchange.response_header("x-envoy-ratelimited"), None);
    assert_eq!(exchange.response_header("x-envoy-attempt-count"), Some("3"));
}

#[test]
fn suppress_caller_retries_marks_failed_responses_only() {
    let mut harness = Harness::new();
    let worker = harness
        .start(&plugin(
            r#"{"retryOn": "5xx", "suppressCallerRetries": true}"#,
        ))
        .unwrap();
    let failed = harness
        .exchange(worker, Request::get("/"), |_| {
            Response::new(502).header("x-envoy-attempt-count", "3")
        })
        .unwrap();
    assert_eq!(failed.response_header("x-envoy-ratelimited"), Some("true"));
    let ok = harness
        .exchange(worker, Request::get("/"), |_| {
            Response::ok().header("x-envoy-attempt-count", "1")
        })
        .unwrap();
    assert_eq!(ok.response_header("x-envoy-ratelimited"), None);
    let not_retried = harness
        .exchange(worker, Request::get("/"), |_| Response::new(404))
        .unwrap();
    assert_eq!(not_retried.response_header("x-envoy-ratelimited"), None);
}
