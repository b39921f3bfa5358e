//! Metrics with Envoy's rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{ops, start};
use proxy_wasm_harness::{Metric, Response};

fn metric_result(op: &str, header: &str) -> String {
    let (mut harness, worker) = start("");
    let mut result = String::new();
    harness
        .exchange(worker, ops("/", &[op]), |upstream| {
            result = upstream.header(header).unwrap_or("absent").to_string();
            Response::ok()
        })
        .unwrap();
    result
}

#[test]
fn counters_count_and_refuse_non_positive_increments() {
    assert_eq!(metric_result("metric counter c1 5", "x-metric-c1"), "5");
    assert_eq!(
        metric_result("metric counter c2 0", "x-metric-c2"),
        "update:BadArgument"
    );
    assert_eq!(
        metric_result("metric counter c3 -2", "x-metric-c3"),
        "update:BadArgument"
    );
}

#[test]
fn gauges_go_up_and_down() {
    let (mut harness, worker) = start("");
    harness
        .exchange(
            worker,
            ops("/", &["metric gauge g 7", "metric gauge g -3"]),
            |upstream| {
                assert_eq!(upstream.header("x-metric-g"), Some("4"));
                Response::ok()
            },
        )
        .unwrap();
    assert_eq!(harness.gauge("g"), Some(4));
}

#[test]
fn histograms_record_and_cannot_be_read_back() {
    let (mut harness, worker) = start("");
    harness
        .exchange(worker, ops("/", &["metric histogram h 42"]), |upstream| {
            assert_eq!(upstream.header("x-metric-h"), Some("get:BadArgument"));
            Response::ok()
        })
        .unwrap();
    assert_eq!(harness.metric("h"), Some(Metric::Histogram(vec![42])));
}
