//! The harness's test plugin, run in the harness and in a real Envoy: the two
//! must agree on everything a client, an upstream and the stats can see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use cross_check::{Scenario, Step, cross_check};

fn scenario(name: &str) -> Scenario {
    Scenario::new(name, wasm_artifacts::HARNESS_TEST_PLUGIN)
        .plugin_name("test-plugin")
        .root_id("test-root")
        .vm_id("test-vm")
}

fn op(step: Step, op: &str) -> Step {
    step.header("x-test-op", op)
}

#[test]
fn request_and_response_headers() {
    let step = Step::get("/headers")
        .header("x-replaced", "old")
        .header("x-gone", "bye");
    let step = op(
        op(
            op(
                op(step, "add-request-header x-added one"),
                "set-request-header x-replaced new",
            ),
            "remove-request-header x-gone",
        ),
        "add-response-header x-from-plugin yes",
    )
    .expect_status(200)
    .expect_upstream(true)
    .expect_upstream_header("x-test-plugin", Some("seen"))
    .expect_upstream_header("x-added", Some("one"))
    .expect_upstream_header("x-replaced", Some("new"))
    .expect_upstream_header("x-gone", None)
    .expect_response_header("x-from-plugin", Some("yes"))
    .expect_response_header("x-test-plugin-saw-status", Some("200"))
    .expect_response_header("x-upstream", Some("upstream"));
    let upstream_error = op(
        Step::get("/missing"),
        "add-response-header x-seen-error yes",
    )
    .upstream_status(503)
    .expect_status(503)
    .expect_response_header("x-test-plugin-saw-status", Some("503"))
    .expect_response_header("x-seen-error", Some("yes"));
    cross_check(&scenario("headers").step(step).step(upstream_error)).unwrap();
}

#[test]
fn local_response_runs_the_plugins_own_response_callbacks() {
    let step = op(Step::get("/teapot"), "local 418 short and stout")
        .expect_status(418)
        .expect_upstream(false)
        .expect_body("short and stout")
        .expect_response_header("x-local", Some("test-plugin"))
        .expect_response_header("content-type", Some("text/plain"))
        .expect_response_header("content-length", Some("15"))
        .expect_response_header("x-test-plugin-saw-status", Some("418"));
    cross_check(&scenario("local response").step(step)).unwrap();
}

#[test]
fn properties() {
    let step = [
        "copy-property request.path x-path",
        "copy-property request.method x-method",
        "copy-property request.url_path x-url-path",
        "copy-property request.query x-query",
        "copy-property plugin_name x-plugin-name",
        "copy-property plugin_root_id x-root-id",
        "copy-property plugin_vm_id x-vm-id",
        "copy-property no.such.property x-missing",
        "set-property my_flag on",
        "copy-property my_flag x-flag",
    ]
    .iter()
    .fold(Step::get("/items?id=7"), |s, o| op(s, o))
    .expect_upstream_header("x-path", Some("/items?id=7"))
    .expect_upstream_header("x-method", Some("GET"))
    .expect_upstream_header("x-url-path", Some("/items"))
    .expect_upstream_header("x-query", Some("id=7"))
    .expect_upstream_header("x-plugin-name", Some("test-plugin"))
    .expect_upstream_header("x-root-id", Some("test-root"))
    .expect_upstream_header("x-vm-id", Some("test-vm"))
    .expect_upstream_header("x-missing", Some("missing"))
    .expect_upstream_header("x-flag", Some("on"));
    cross_check(&scenario("properties").step(step)).unwrap();
}

#[test]
fn shared_data_and_metrics() {
    let mut s = scenario("shared data and metrics").expect_metric("test_plugin.requests", 4);
    for n in 1..=3 {
        let n = n.to_string();
        s = s.step(
            op(Step::get("/count"), "shared-incr hits")
                .expect_upstream_header("x-shared-hits", Some(&n)),
        );
    }
    let metrics = [
        "metric counter c_zero 0",
        "metric counter c_five 5",
        "metric gauge g_down -3",
        "metric histogram h_one 42",
    ]
    .iter()
    .fold(Step::get("/metrics"), |st, o| op(st, o))
    .expect_upstream_header("x-metric-c_zero", Some("update:BadArgument"))
    .expect_upstream_header("x-metric-c_five", Some("5"))
    .expect_upstream_header("x-metric-h_one", Some("get:BadArgument"));
    // A gauge taken below zero: whatever `get_metric` reads back, the hosts
    // must agree on it.
    s = s
        .step(metrics)
        .expect_metric("c_five", 5)
        .compare_upstream_header("x-metric-g_down");
    cross_check(&s).unwrap();
}

#[test]
fn ticks_resume_a_paused_request() {
    let step = op(Step::get("/slow"), "pause-ms 30")
        .expect_status(200)
        .expect_upstream(true)
        .expect_upstream_header("x-test-plugin", Some("seen"));
    cross_check(
        &scenario("tick resume")
            .plugin_config(r#"{"tickMs": 5}"#)
            .step(step),
    )
    .unwrap();
}

#[test]
fn callouts_and_foreign_functions() {
    // `callout` pauses the stream, so it goes last.
    let step = op(
        op(Step::get("/callout"), "clear-route-cache"),
        "callout upstream /auth 5000",
    )
    .expect_status(200)
    .expect_upstream_header("x-callout-status", Some("200"))
    .expect_upstream_header("x-clear-route-cache", Some("ok"));
    cross_check(&scenario("callout").step(step)).unwrap();
}

#[test]
fn request_body_is_buffered_and_replaced() {
    let step = op(
        Step::get("/upload").body("hello world"),
        "buffer-request-body REPLACED",
    )
    .expect_status(200)
    .expect_response_header("x-request-body-length", Some("11"));
    cross_check(&scenario("request body").step(step)).unwrap();
}
