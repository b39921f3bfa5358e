//! Bad configurations are refused at `on_configure` with one line naming
//! the field; odd traffic never makes the plugin trap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{open, refusal, start};
use proxy_wasm_harness::{Request, Response};

#[test]
fn each_refusal_is_one_line_naming_the_field() {
    let cases = [
        (
            r#"{"budget": {"retryRatio": 1000.5}}"#,
            "budget.retryRatio: 1000.5 is not between 0 and 1000",
        ),
        ("[]", "config: expected a JSON object, got an array"),
        (
            r#"{"budget": [0.2, 10, "10s"]}"#,
            "budget: invalid type: sequence, expected a JSON object",
        ),
        (
            r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.0005}}"#,
            "tokenBucket.tokenRatio: 0.0005 is 0 to three decimals",
        ),
        (r#"{"budget": {"ttl": "forever"}}"#, "budget.ttl: "),
        (
            r#"{"budget": {"minRetriesPerSecond": -3}}"#,
            "budget.minRetriesPerSecond: -3",
        ),
        (
            r#"{"tokenBucket": {"maxTokens": 5000, "tokenRatio": 0.1}}"#,
            "tokenBucket.maxTokens: 5000 is not between 1 and 1000",
        ),
        (
            r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.1}, "attempts": 9}"#,
            "attempts: 9 is not between 0 and 4",
        ),
        (r#"{"attempts": "three"}"#, "attempts: invalid type"),
        (r#"{"retryOn": "5xx,sometimes"}"#, "retryOn: \"sometimes\""),
        (r#"{"perTryTimeout": "-1s"}"#, "perTryTimeout: "),
        (r#"{"scope": {"header": ""}}"#, "scope.header: "),
        (r#"{"maxScopes": 100000}"#, "maxScopes: 100000"),
        (r#"{"retries": 3}"#, "retries: unknown field `retries`"),
        ("not json", "config: "),
    ];
    for (config, expected) in cases {
        let lines = refusal(config);
        assert_eq!(lines.len(), 1, "{config}: {lines:?}");
        let line = &lines[0];
        assert!(
            line.starts_with("retry-budget: invalid configuration: ") && line.contains(expected),
            "{config}: {line}"
        );
    }
}

#[test]
fn garbage_on_the_wire_never_traps() {
    let (mut harness, workers) = start(r#"{"scope": {"header": "x-scope"}}"#, 1);
    let worker = workers[0];
    let long = "z".repeat(5000);
    let scopes = ["", "\u{1F600}", "a\tb", long.as_str(), "_other"];
    let responses: [&[(&str, &str)]; 4] = [
        &[(":status", "abc")],
        &[(":status", "99999"), ("x-envoy-attempt-count", "-1")],
        &[(":status", "503"), ("x-envoy-attempt-count", "4294967296")],
        &[],
    ];
    for (scope, response) in scopes.iter().zip(responses.iter().cycle()) {
        let (id, granted) = open(&mut harness, worker, &[("x-scope", scope)]);
        assert!(granted <= 2);
        harness
            .response_headers(id, response.iter().copied(), true)
            .unwrap();
        harness.finish_stream(id).unwrap();
    }
    // A stream that never gets a response, and one reset before it.
    let (id, _) = open(&mut harness, worker, &[]);
    harness.finish_stream(id).unwrap();
    let exchange = harness
        .exchange(worker, Request::get("/"), |_| {
            Response::new(200).header("x-envoy-attempt-count", "4294967296")
        })
        .unwrap();
    assert_eq!(exchange.status(), Some(200));
    assert_eq!(harness.failure(worker).unwrap(), None);
}

#[test]
fn corrupt_shared_data_starts_afresh() {
    let (mut harness, workers) = start(r#"{"attempts": 3}"#, 1);
    for (key, _) in harness.shared_data_entries("") {
        harness.set_shared_data("", &key, b"\x01\x01garbage");
    }
    let (id, granted) = open(&mut harness, workers[0], &[]);
    assert_eq!(granted, 3);
    common::answer(&mut harness, id, 200, Some(1));
    assert_eq!(harness.failure(workers[0]).unwrap(), None);
}
