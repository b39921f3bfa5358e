//! Issue 14: what Envoy 1.40 does for any plugin, pinned in both hosts. Each
//! test runs the harness's test plugin through the harness and a real Envoy
//! (`cross_check`) and fixes the value Envoy gives; the rule is written in
//! test-harness/ENVOY-FACTS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use cross_check::{Scenario, Step, cross_check};

fn scenario(name: &str) -> Scenario {
    Scenario::new(name, wasm_artifacts::HARNESS_TEST_PLUGIN)
        .plugin_name("test-plugin")
        .root_id("test-root")
        .vm_id("test-vm")
}

fn ops(step: Step, ops: &[&str]) -> Step {
    ops.iter().fold(step, |s, o| s.header("x-test-op", o))
}

/// Point 1: a configuration VM, the main thread's VM and the worker's VM
/// each run `on_configure`; the main thread's and the worker's root contexts
/// both tick.
#[test]
fn three_vms_are_configured_and_two_root_contexts_tick() {
    let wait = ops(Step::get("/wait"), &["pause-ms 50"]).expect_upstream(true);
    let count = ops(Step::get("/count"), &["shared-get root-contexts-ticked"])
        .expect_upstream_header("x-shared-get-root-contexts-ticked", Some("2"));
    let s = scenario("vms")
        .plugin_config(r#"{"tickMs": 5}"#)
        .step(wait)
        .step(count)
        .expect_metric("test_plugin.configures", 3);
    cross_check(&s).unwrap();
}

/// Point 2: the connection manager adds `x-forwarded-proto` and a UUID
/// `x-request-id` before the filters; the HTTP/1 codec orders the
/// pseudo-headers `:authority, :path, :method, :scheme`. A client's own
/// request id is kept.
#[test]
fn the_request_a_plugin_sees() {
    let plain = ops(
        Step::get("/seen"),
        &["request-header-names", "request-id-shape"],
    )
    .expect_upstream_header(
        "x-request-header-names",
        Some(":authority,:path,:method,:scheme,x-forwarded-proto,x-request-id,x-test-plugin"),
    )
    .expect_upstream_header("x-request-id-shape", Some("uuid"));
    let own_id = ops(
        Step::get("/own").header("x-request-id", "client-id-7"),
        &["request-id-shape", "copy-property request.id x-id"],
    )
    .expect_upstream_header("x-request-id-shape", Some("other"))
    .expect_upstream_header("x-id", Some("client-id-7"));
    cross_check(&scenario("request headers").step(plain).step(own_id)).unwrap();
}

/// Point 5: over HTTP/1.1 a body ends with a separate, empty callback, in
/// both directions.
#[test]
fn http1_bodies_end_with_an_empty_callback() {
    let post = ops(Step::get("/upload").body("hello world"), &["body-calls"])
        .expect_response_header("x-request-body-calls", Some("11/false,0/true"));
    let read = ops(Step::get("/read"), &["shared-get response-body-calls"]).expect_upstream_header(
        "x-shared-get-response-body-calls",
        Some("data/false,0/true"),
    );
    cross_check(&scenario("bodies").step(post).step(read)).unwrap();
}

/// Point 4: `on_log` runs before `on_done`.
#[test]
fn a_stream_ends_with_log_then_done() {
    let first = ops(Step::get("/first"), &["end-order"]);
    let read = ops(Step::get("/read"), &["shared-get end-order"])
        .expect_upstream_header("x-shared-get-end-order", Some("log,done"));
    cross_check(&scenario("end order").step(first).step(read)).unwrap();
}

/// Point 3: adding a trailer from the last body callback of a stream that has
/// none creates the trailers (Ok), request and response alike.
#[test]
fn a_trailer_added_at_end_of_stream_creates_the_trailers() {
    let post = ops(Step::get("/upload").body("hello"), &["trailer-at-end"])
        .expect_response_header("x-add-request-trailer", Some("Ok"));
    let read = ops(Step::get("/read"), &["shared-get add-response-trailer"])
        .expect_upstream_header("x-shared-get-add-response-trailer", Some("Ok"));
    cross_check(&scenario("trailers").step(post).step(read)).unwrap();
}

/// Point 12: the pairs of a map that does not exist yet are none, not an
/// error.
#[test]
fn a_map_that_does_not_exist_yet_has_no_pairs() {
    let step = ops(Step::get("/maps"), &["response-header-pairs"])
        .expect_status(200)
        .expect_upstream_header("x-response-header-pairs", Some("0"))
        .expect_upstream_header("x-request-trailer-pairs", Some("0"));
    cross_check(&scenario("missing maps").step(step)).unwrap();
}

/// Points 6 and 7: a timeout of 2^31 ms is refused, 0 means none; the callee
/// gets `content-length`; a timed-out callout is answered 504 `upstream
/// request timeout`. A cluster Envoy does not know is refused.
#[test]
fn callout_timeouts_lengths_and_clusters() {
    let too_long = ops(
        Step::get("/too-long"),
        &["callout-body upstream /auth 2147483648 x"],
    )
    .expect_upstream_header("x-callout-error", Some("BadArgument"));
    let no_timeout = ops(
        Step::get("/no-timeout"),
        &["callout-body upstream /auth 0 some body"],
    )
    .expect_upstream_header("x-callout-status", Some("200"))
    .expect_callout("/auth", &[("content-length", Some("9"))]);
    let timed_out = ops(
        Step::get("/timed-out"),
        &["callout-body upstream /slow 100 x"],
    )
    .slow_callout()
    .expect_upstream_header("x-callout-status", Some("504"))
    .expect_upstream_header("x-callout-body", Some("upstream request timeout"));
    let unknown = ops(
        Step::get("/unknown"),
        &["callout-body no-such-cluster /x 100 x"],
    )
    .expect_upstream_header("x-callout-error", Some("BadArgument"));
    let s = scenario("callouts")
        .step(too_long)
        .step(no_timeout)
        .step(timed_out)
        .step(unknown);
    cross_check(&s).unwrap();
}

/// Point 8: `resolve_shared_queue` with an empty VM id finds the caller's
/// own VM's queue.
#[test]
fn an_empty_vm_id_resolves_the_callers_own_queue() {
    let step = ops(Step::get("/enqueue"), &["enqueue-own q item1"])
        .expect_upstream_header("x-enqueue-own", Some("ok"));
    let s = scenario("own queue")
        .plugin_config(r#"{"queue": "q"}"#)
        .step(step)
        .expect_metric("test_plugin.queue_items", 1);
    cross_check(&s).unwrap();
}

/// Point 9: Envoy 1.40 answers the node and the route under `xds.*`, and
/// NotFound for bare `node.*`, `cluster_name`, `route_name`.
#[test]
fn properties_are_answered_as_envoy_1_40_does() {
    let answered = [
        ("xds.node.id", "", "cross-check-node"),
        ("xds.node.cluster", "", "cross-check"),
        ("xds.node.metadata.team", "", "airport"),
        // A Struct is a CEL map: the pairs format.
        (
            "xds.node.metadata",
            "hex",
            "0100000004000000070000007465616d00616972706f727400",
        ),
        ("xds.cluster_name", "", "upstream"),
        ("xds.route_name", "", "cross-check-route"),
        ("xds.virtual_host_name", "", "all"),
        ("xds.listener_direction", "int", "0"),
        ("node.id", "", "missing"),
        ("node.metadata.team", "", "missing"),
        ("node.metadata", "", "missing"),
        ("cluster_name", "", "missing"),
        ("route_name", "", "missing"),
        ("listener_direction", "", "missing"),
        ("request.protocol", "", "HTTP/1.1"),
        ("request.size", "int", "0"),
        ("request.useragent", "", "missing"),
        ("connection.mtls", "hex", "00"),
        ("response.code", "", "missing"),
        ("response.flags", "int", "0"),
        ("response.size", "int", "0"),
        ("plugin_vm_id", "", "test-vm"),
    ];
    let mut step = Step::get("/props");
    for (index, (path, mode, _)) in answered.iter().enumerate() {
        step = step.header(
            "x-test-op",
            &format!("copy-property {path} x-p{index} {mode}"),
        );
    }
    for (index, (_, _, value)) in answered.iter().enumerate() {
        step = step.expect_upstream_header(&format!("x-p{index}"), Some(value));
    }
    let s = scenario("properties")
        .node_metadata("team", "airport")
        .step(step);
    cross_check(&s).unwrap();
}

/// Point 11: a local reply to a gRPC request is a gRPC answer: 200,
/// `grpc-status` mapped from the HTTP status, `grpc-message` the body, no
/// body; the plugin's own response callback already sees the 200.
#[test]
fn a_local_reply_to_a_grpc_request_is_grpc() {
    let grpc = |path: &str, op: &str| {
        ops(
            Step::get(path).header("content-type", "application/grpc"),
            &[op],
        )
        .expect_status(200)
        .expect_upstream(false)
        .expect_body("")
        .expect_response_header("content-type", Some("application/grpc"))
        .expect_response_header("x-test-plugin-saw-status", Some("200"))
    };
    let unavailable = grpc("/a", "local 503 nope")
        .expect_response_header("grpc-status", Some("14"))
        .expect_response_header("grpc-message", Some("nope"));
    let not_found = grpc("/b", "local 404 not here")
        .expect_response_header("grpc-status", Some("12"))
        .expect_response_header("grpc-message", Some("not here"));
    let no_message = grpc("/c", "local 503")
        .expect_response_header("grpc-status", Some("14"))
        .expect_response_header("grpc-message", None);
    cross_check(
        &scenario("grpc local reply")
            .step(unavailable)
            .step(not_found)
            .step(no_message),
    )
    .unwrap();
}
