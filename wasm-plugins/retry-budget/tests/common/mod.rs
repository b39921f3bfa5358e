//! Shared set-up for the retry budget's harness tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use proxy_wasm_harness::{
    Exchange, Harness, LogLevel, Plugin, Request, Response, StreamId, UpstreamRequest, WorkerId,
};

/// ratio 0.2, floor 1/s over 10 s: ten retries in reserve; 3 retries on 5xx.
pub const BUDGET: &str = r#"{"budget": {"retryRatio": 0.2, "minRetriesPerSecond": 1, "ttl": "10s"},
    "attempts": 3, "retryOn": "5xx"}"#;

/// The shipped plugin with `config` as its plugin configuration.
pub fn plugin(config: &str) -> Plugin {
    Plugin::load(wasm_artifacts::RETRY_BUDGET)
        .expect("retry budget loads")
        .plugin_config(config)
}

/// `workers` VMs of the plugin sharing shared data, as Envoy's workers do.
pub fn start(config: &str, workers: usize) -> (Harness, Vec<WorkerId>) {
    let mut harness = Harness::new();
    let ids = harness
        .start_workers(&plugin(config), workers)
        .expect("plugin starts");
    (harness, ids)
}

/// What Envoy's router does with the plugin's headers: retries while the
/// attempt fails and `x-envoy-max-retries` allows, then answers with the
/// last attempt's status and `x-envoy-attempt-count` (the route has
/// `include_attempt_count_in_response`). `fails(n)` says whether attempt
/// `n` (1-based) fails; `attempts` counts what reached the upstream.
pub fn router(
    upstream: &UpstreamRequest,
    attempts: &mut u64,
    mut fails: impl FnMut(u32) -> bool,
) -> Response {
    let max: u32 = upstream
        .header("x-envoy-max-retries")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut attempt = 1;
    loop {
        *attempts += 1;
        let failed = fails(attempt);
        if !failed || attempt > max {
            let status = if failed { 503 } else { 200 };
            return Response::new(status).header("x-envoy-attempt-count", &attempt.to_string());
        }
        attempt += 1;
    }
}

/// One request through the plugin and the emulated router; returns the
/// exchange and the retries the plugin granted.
pub fn send(
    harness: &mut Harness,
    worker: WorkerId,
    attempts: &mut u64,
    fails: impl FnMut(u32) -> bool,
) -> (Exchange, u32) {
    let mut granted = 0;
    let exchange = harness
        .exchange(worker, Request::get("/"), |upstream| {
            granted = max_retries(upstream);
            router(upstream, attempts, fails)
        })
        .expect("exchange completes");
    (exchange, granted)
}

/// The `x-envoy-max-retries` the plugin set.
pub fn max_retries(upstream: &UpstreamRequest) -> u32 {
    upstream
        .header("x-envoy-max-retries")
        .expect("the plugin always sets x-envoy-max-retries")
        .parse()
        .expect("a number")
}

/// Opens a stream and delivers request headers, leaving it in flight.
/// Returns the stream and the retries granted.
pub fn open(harness: &mut Harness, worker: WorkerId, headers: &[(&str, &str)]) -> (StreamId, u32) {
    let id = harness.new_stream(worker).unwrap();
    let mut all = vec![
        (":method", "GET"),
        (":path", "/"),
        (":authority", "example.com"),
    ];
    all.extend_from_slice(headers);
    harness.request_headers(id, all, true).unwrap();
    let granted = harness
        .stream(id)
        .unwrap()
        .request_headers()
        .and_then(|h| h.get("x-envoy-max-retries"))
        .expect("x-envoy-max-retries is set")
        .parse()
        .unwrap();
    (id, granted)
}

/// Answers an in-flight stream: `status` after `attempts` attempts
/// (`None`: no `x-envoy-attempt-count`), then ends the stream.
pub fn answer(harness: &mut Harness, id: StreamId, status: u16, attempts: Option<u32>) {
    let status = status.to_string();
    let count = attempts.map(|a| a.to_string());
    let mut headers = vec![(":status", status.as_str())];
    if let Some(count) = &count {
        headers.push(("x-envoy-attempt-count", count.as_str()));
    }
    harness.response_headers(id, headers, true).unwrap();
    harness.finish_stream(id).unwrap();
}

pub fn advance(harness: &mut Harness, by: Duration) {
    harness.advance(by).unwrap();
}

/// The error lines a refused configuration left.
pub fn refusal(config: &str) -> Vec<String> {
    let mut harness = Harness::new();
    match harness.start(&plugin(config)) {
        Ok(_) => panic!("configuration {config} was accepted"),
        Err(proxy_wasm_harness::HarnessError::ConfigureFailed { logs }) => logs
            .iter()
            .filter(|l| l.level >= LogLevel::Error)
            .map(|l| l.message.clone())
            .collect(),
        Err(other) => panic!("configuration {config}: {other}"),
    }
}

/// A counter of scope `scope` (0 when never incremented or not defined).
pub fn counter(harness: &Harness, scope: &str, name: &str) -> u64 {
    harness
        .counter(&format!("retry_budget.{scope}.{name}"))
        .unwrap_or(0)
}

/// The `budget_remaining` gauge of scope `scope`.
pub fn remaining(harness: &Harness, scope: &str) -> i64 {
    harness
        .gauge(&format!("retry_budget.{scope}.budget_remaining"))
        .expect("the gauge is defined")
}
