//! Issue 14, point 10: gRPC callouts in both hosts. The harness test plugin
//! calls the gRPC server of `cross_check::grpc_upstream` (the same answers in
//! both hosts) and records what each callback saw; the harness's own tests of
//! the same paths are `proxy-wasm-harness`'s tests/grpc.rs. The rules are in
//! test-harness/ENVOY-FACTS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use cross_check::{Scenario, Step, cross_check};

fn scenario(name: &str) -> Scenario {
    Scenario::new(name, wasm_artifacts::HARNESS_TEST_PLUGIN)
        .plugin_name("test-plugin")
        .root_id("test-root")
        .vm_id("test-vm")
        .grpc_upstream()
}

fn op(path: &str, op: &str) -> Step {
    Step::get(path).header("x-test-op", op)
}

/// What the plugin's `on_grpc_call_response` saw: status argument, body and
/// the message `proxy_get_status` reported.
fn unary(step: Step, status: &str, body: &str, message: &str) -> Step {
    step.expect_upstream_header("x-grpc-status", Some(status))
        .expect_upstream_header("x-grpc-body", Some(body))
        .expect_upstream_header("x-grpc-message", Some(message))
        .expect_upstream_header("x-grpc-token-kind", Some("1"))
}

#[test]
fn unary_calls_statuses_timeouts_and_unknown_clusters() {
    let ok = unary(
        op("/ok", "grpc-call grpc-upstream test.Echo Echo 1000 hello"),
        "0",
        "echo hello",
        "none",
    );
    let twice = unary(
        op("/twice", "grpc-call grpc-upstream test.Echo Twice 1000 hi"),
        "0",
        "second hi",
        "none",
    );
    let denied = unary(
        op("/deny", "grpc-call grpc-upstream test.Echo Deny 1000 x"),
        "7",
        "",
        "denied{via_upstream}",
    );
    let empty = unary(
        op("/empty", "grpc-call grpc-upstream test.Echo Empty 1000 x"),
        "13",
        "",
        "none",
    );
    let timed_out = unary(
        op("/slow", "grpc-call grpc-upstream test.Echo Slow 200 x"),
        "14",
        "",
        "upstream request timeout{response_timeout}",
    );
    let no_timeout = unary(
        op("/wait", "grpc-call grpc-upstream test.Echo Wait 0 w"),
        "0",
        "echo w",
        "none",
    );
    let http_503 = unary(
        op("/http", "grpc-call grpc-upstream test.Echo Http503 1000 x"),
        "14",
        "",
        "via_upstream",
    );
    let via_proto = unary(
        op(
            "/proto",
            "grpc-call proto:grpc-upstream test.Echo Echo 1000 p",
        ),
        "0",
        "echo p",
        "none",
    );
    let bare_unknown = op("/unknown", "grpc-call no-such-cluster test.Echo Echo 100 x")
        .header("x-test-op", "grpc-last-status")
        .expect_upstream_header("x-grpc-error", Some("ParseFailure"));
    let proto_unknown = op(
        "/proto-unknown",
        "grpc-call proto:no-such-cluster test.Echo Echo 100 x",
    )
    .expect_upstream_header("x-grpc-error", Some("InternalFailure"));
    // Envoy closed the stillborn call after that callback: the status stays.
    let after =
        op("/after", "grpc-last-status").expect_upstream_header("x-grpc-last-status", Some("14:"));
    let s = scenario("grpc unary")
        .step(ok)
        .step(twice)
        .step(denied)
        .step(empty)
        .step(timed_out)
        .step(no_timeout)
        .step(http_503)
        .step(via_proto)
        .step(bare_unknown)
        .step(proto_unknown)
        .step(after);
    cross_check(&s).unwrap();
}

#[test]
fn streams_deliver_metadata_messages_trailers_and_close() {
    let events = |path: &str, op_text: &str, expected: &str| {
        op(path, op_text)
            .expect_upstream_header("x-grpc-events", Some(expected))
            .expect_upstream_header("x-grpc-token-kind", Some("2"))
    };
    let end = events(
        "/end",
        "grpc-stream grpc-upstream test.Echo Echo end hi",
        "im:4::status+content-type+x-server-md+x-envoy-upstream-service-time:srv,msg:echo hi,\
         tm:2:grpc-status+x-server-trailer:bye,close:0:via_upstream",
    )
    .expect_upstream_header("x-grpc-send", Some("Ok/Ok"));
    let close = events(
        "/close",
        "grpc-stream grpc-upstream test.Echo Twice close yo",
        "im:3::status+content-type+x-envoy-upstream-service-time:missing,msg:first,msg:second yo,\
         tm:1:grpc-status:missing,close:0:via_upstream",
    );
    let trailers_only = events(
        "/deny",
        "grpc-stream grpc-upstream test.Echo Deny end x",
        "im:0::missing,tm:5::status+content-type+grpc-status+grpc-message+x-envoy-upstream-service-time:missing,\
         close:7:denied{via_upstream}",
    );
    let http_503 = events(
        "/http",
        "grpc-stream grpc-upstream test.Echo Http503 end x",
        "im:0::missing,tm:0::missing,close:14:via_upstream",
    );
    let unknown = op(
        "/unknown",
        "grpc-stream no-such-cluster test.Echo Echo end x",
    )
    .expect_upstream_header("x-grpc-error", Some("ParseFailure"));
    let raw = ["cancel 3", "cancel 5", "close 6", "send 5", "send 6"]
        .iter()
        .fold(Step::get("/raw"), |step, o| {
            step.header("x-test-op", &format!("grpc-raw {o}"))
        })
        .expect_upstream_header("x-grpc-cancel-3", Some("BadArgument"))
        .expect_upstream_header("x-grpc-cancel-5", Some("NotFound"))
        .expect_upstream_header("x-grpc-close-6", Some("NotFound"))
        .expect_upstream_header("x-grpc-send-5", Some("BadArgument"))
        .expect_upstream_header("x-grpc-send-6", Some("NotFound"));
    let s = scenario("grpc streams")
        .step(raw)
        .step(end)
        .step(close)
        .step(trailers_only)
        .step(http_503)
        .step(unknown);
    cross_check(&s).unwrap();
}
