//! gRPC callouts: served by the test per (cluster, service, method), timed
//! out on the virtual clock, refused for clusters Envoy would not know, and
//! delivered to the plugin in Envoy 1.40's order. The same paths run in the
//! real Envoy in cross-check/tests/envoy_grpc.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{ops, plugin};
use proxy_wasm_harness::{GrpcCall, GrpcKind, GrpcResponse, Harness, Response, WorkerId};

const CLUSTER: &str = "grpc-upstream";

fn started() -> (Harness, WorkerId) {
    let mut harness = Harness::new();
    let worker = harness.start(&plugin()).unwrap();
    (harness, worker)
}

/// Runs one request with `ops` and returns the upstream's view of the
/// headers the plugin set.
fn upstream_headers(
    harness: &mut Harness,
    worker: WorkerId,
    op: &[&str],
    names: &[&str],
) -> Vec<Option<String>> {
    let mut seen = Vec::new();
    harness
        .exchange(worker, ops("/grpc", op), |upstream| {
            seen = names
                .iter()
                .map(|n| upstream.header(n).map(str::to_owned))
                .collect();
            Response::ok()
        })
        .unwrap();
    seen
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_unary_call_is_answered_by_its_server_with_the_message() {
    let (mut harness, worker) = started();
    let seen: Rc<RefCell<Vec<GrpcCall>>> = Rc::default();
    let record = Rc::clone(&seen);
    harness.serve_grpc(CLUSTER, "test.Echo", "Echo", move |call| {
        record.borrow_mut().push(call.clone());
        Some(GrpcResponse::ok(format!("echo {}", text(call.message()))))
    });
    let got = upstream_headers(
        &mut harness,
        worker,
        &["grpc-call grpc-upstream test.Echo Echo 1000 hello"],
        &[
            "x-grpc-status",
            "x-grpc-body",
            "x-grpc-message",
            "x-grpc-token-kind",
        ],
    );
    assert_eq!(
        got,
        [Some("0"), Some("echo hello"), Some("none"), Some("1")].map(|v| v.map(str::to_owned))
    );
    let calls = seen.borrow();
    let call = &calls[0];
    assert_eq!(call.kind, GrpcKind::Call);
    assert_eq!(call.cluster, CLUSTER);
    assert_eq!(call.path(), "/test.Echo/Echo");
    assert_eq!(call.timeout, Duration::from_millis(1000));
    assert_eq!(call.metadata("x-md"), Some("from-plugin"));
    // A `-bin` value reaches the server base64-encoded.
    assert_eq!(call.metadata("x-trace-bin"), Some("/wBB"));
    assert!(harness.grpc_calls(worker).unwrap().is_empty());
}

#[test]
fn a_failed_call_closes_with_the_status_and_envoys_message() {
    let (mut harness, worker) = started();
    harness.serve_grpc(CLUSTER, "test.Echo", "Deny", |_| {
        Some(GrpcResponse::status(7, "denied"))
    });
    harness.serve_grpc(CLUSTER, "test.Echo", "Empty", |_| {
        Some(GrpcResponse::default())
    });
    let names = ["x-grpc-status", "x-grpc-body", "x-grpc-message"];
    let denied = upstream_headers(
        &mut harness,
        worker,
        &["grpc-call grpc-upstream test.Echo Deny 1000 x"],
        &names,
    );
    assert_eq!(
        denied,
        [Some("7"), Some(""), Some("denied{via_upstream}")].map(|v| v.map(str::to_owned))
    );
    // OK without a message is INTERNAL, without a message of its own.
    let empty = upstream_headers(
        &mut harness,
        worker,
        &["grpc-call grpc-upstream test.Echo Empty 1000 x"],
        &names,
    );
    assert_eq!(
        empty,
        [Some("13"), Some(""), Some("none")].map(|v| v.map(str::to_owned))
    );
}

#[test]
fn an_unanswered_call_times_out_on_the_virtual_clock_as_unavailable() {
    let (mut harness, worker) = started();
    harness.declare_clusters([CLUSTER]);
    let before = harness.now();
    let got = upstream_headers(
        &mut harness,
        worker,
        &["grpc-call grpc-upstream test.Echo Slow 250 x"],
        &["x-grpc-status", "x-grpc-message"],
    );
    assert_eq!(
        got,
        [
            Some("14"),
            Some("upstream request timeout{response_timeout}")
        ]
        .map(|v| v.map(str::to_owned))
    );
    assert_eq!(
        harness.now().duration_since(before).unwrap(),
        Duration::from_millis(250)
    );
}

#[test]
fn a_call_to_a_cluster_envoy_does_not_know_is_refused() {
    let (mut harness, worker) = started();
    // A bare name Envoy does not know: ParseFailure, no token taken.
    let bare = upstream_headers(
        &mut harness,
        worker,
        &[
            "grpc-call no-such-cluster test.Echo Echo 100 x",
            "grpc-last-status",
        ],
        &["x-grpc-error", "x-grpc-last-status"],
    );
    assert_eq!(
        bare,
        [Some("ParseFailure"), Some("0:")].map(|v| v.map(str::to_owned))
    );
    // The same name in a GrpcService proto: InternalFailure, and Envoy's
    // async client closes the stillborn call UNAVAILABLE after the callback.
    let proto = upstream_headers(
        &mut harness,
        worker,
        &["grpc-call proto:no-such-cluster test.Echo Echo 100 x"],
        &["x-grpc-error"],
    );
    assert_eq!(proto, [Some("InternalFailure".to_string())]);
    let after = upstream_headers(
        &mut harness,
        worker,
        &["grpc-last-status"],
        &["x-grpc-last-status"],
    );
    assert_eq!(after, [Some("14:".to_string())]);
}

#[test]
fn a_proto_naming_a_known_cluster_is_served() {
    let (mut harness, worker) = started();
    harness.serve_grpc(CLUSTER, "test.Echo", "Echo", |call| {
        Some(GrpcResponse::ok(call.message().to_vec()))
    });
    let got = upstream_headers(
        &mut harness,
        worker,
        &["grpc-call proto:grpc-upstream test.Echo Echo 100 via-proto"],
        &["x-grpc-status", "x-grpc-body"],
    );
    assert_eq!(
        got,
        [Some("0"), Some("via-proto")].map(|v| v.map(str::to_owned))
    );
}

#[test]
fn a_stream_sees_metadata_messages_trailers_and_close_in_order() {
    for half_close in ["end", "close"] {
        let (mut harness, worker) = started();
        harness.serve_grpc(CLUSTER, "test.Echo", "Chat", |call| {
            assert_eq!(call.kind, GrpcKind::Stream);
            assert!(call.half_closed);
            Some(
                GrpcResponse::ok(format!("re {}", text(call.message())))
                    .message("second")
                    .initial_metadata("x-server-md", "srv")
                    .trailing_metadata("x-server-trailer", "bye"),
            )
        });
        let op = format!("grpc-stream grpc-upstream test.Echo Chat {half_close} hi");
        let got = upstream_headers(
            &mut harness,
            worker,
            &[op.as_str()],
            &["x-grpc-send", "x-grpc-events", "x-grpc-token-kind"],
        );
        assert_eq!(got[0].as_deref(), Some("Ok/Ok"));
        assert_eq!(
            got[1].as_deref(),
            Some(
                "im:4::status+content-type+x-server-md+x-envoy-upstream-service-time:srv,msg:re hi,msg:second,\
                 tm:2:grpc-status+x-server-trailer:bye,close:0:via_upstream"
            ),
            "half-closed with {half_close}"
        );
        assert_eq!(got[2].as_deref(), Some("2"));
    }
}

#[test]
fn a_stream_answered_with_a_status_alone_gets_trailers_only() {
    let (mut harness, worker) = started();
    harness.serve_grpc(CLUSTER, "test.Echo", "Chat", |_| {
        Some(GrpcResponse::status(5, "nope"))
    });
    let got = upstream_headers(
        &mut harness,
        worker,
        &["grpc-stream grpc-upstream test.Echo Chat end hi"],
        &["x-grpc-events"],
    );
    assert_eq!(
        got[0].as_deref(),
        Some(
            "im:0::missing,tm:5::status+content-type+grpc-status+grpc-message+x-envoy-upstream-service-time:missing,\
             close:5:nope{via_upstream}"
        )
    );
}

#[test]
fn a_stream_can_be_answered_step_by_step() {
    let (mut harness, worker) = started();
    harness.declare_clusters([CLUSTER]);
    let s = harness.new_stream(worker).unwrap();
    harness
        .request_headers(
            s,
            [
                (":path", "/"),
                (
                    "x-test-op",
                    "grpc-stream grpc-upstream test.Echo Watch end hi",
                ),
            ],
            true,
        )
        .unwrap();
    let calls = harness.grpc_calls(worker).unwrap();
    assert_eq!(calls.len(), 1);
    let token = calls[0].token;
    assert_eq!(token % 4, 2);
    harness
        .grpc_stream_initial_metadata(worker, token, &[("x-server-md", "early")])
        .unwrap();
    harness.grpc_stream_message(worker, token, "one").unwrap();
    harness
        .respond_grpc(worker, token, GrpcResponse::ok("two"))
        .unwrap();
    let headers = harness
        .stream(s)
        .unwrap()
        .request_headers()
        .unwrap()
        .clone();
    assert_eq!(
        headers.get("x-grpc-events"),
        Some(
            "im:4::status+content-type+x-server-md+x-envoy-upstream-service-time:early,msg:one,msg:two,\
             tm:1:grpc-status:missing,close:0:via_upstream"
        )
    );
    // Closed on both sides: gone.
    assert!(harness.grpc_calls(worker).unwrap().is_empty());
    assert!(
        harness
            .respond_grpc(worker, token, GrpcResponse::ok("late"))
            .is_err()
    );
}

#[test]
fn cancel_close_and_send_answer_envoys_statuses() {
    let (mut harness, worker) = started();
    let got = upstream_headers(
        &mut harness,
        worker,
        &[
            "grpc-raw cancel 3",
            "grpc-raw cancel 5",
            "grpc-raw close 6",
            "grpc-raw send 5",
            "grpc-raw send 6",
        ],
        &[
            "x-grpc-cancel-3",
            "x-grpc-cancel-5",
            "x-grpc-close-6",
            "x-grpc-send-5",
            "x-grpc-send-6",
        ],
    );
    assert_eq!(
        got,
        [
            Some("BadArgument"),
            Some("NotFound"),
            Some("NotFound"),
            Some("BadArgument"),
            Some("NotFound")
        ]
        .map(|v| v.map(str::to_owned))
    );
}

#[test]
fn a_cancelled_call_is_never_answered() {
    let (mut harness, worker) = started();
    harness.declare_clusters([CLUSTER]);
    let s = harness.new_stream(worker).unwrap();
    harness
        .request_headers(
            s,
            [
                (":path", "/"),
                ("x-test-op", "grpc-call grpc-upstream test.Echo Echo 100 x"),
            ],
            true,
        )
        .unwrap();
    let token = harness.grpc_calls(worker).unwrap()[0].token;
    assert_eq!(token, 5, "Envoy's first gRPC call token");
    let s2 = harness.new_stream(worker).unwrap();
    harness
        .request_headers(
            s2,
            [
                (":path", "/"),
                ("x-test-op", &format!("grpc-raw cancel {token}")),
            ],
            true,
        )
        .unwrap();
    assert_eq!(
        harness
            .stream(s2)
            .unwrap()
            .request_headers()
            .unwrap()
            .get("x-grpc-cancel-5"),
        Some("Ok")
    );
    harness.advance(Duration::from_secs(1)).unwrap();
    let first = harness
        .stream(s)
        .unwrap()
        .request_headers()
        .unwrap()
        .clone();
    assert_eq!(first.get("x-grpc-status"), None);
}

#[test]
fn http_callouts_are_refused_unless_the_cluster_is_declared_and_numbered_as_envoy_numbers_them() {
    let (mut harness, worker) = started();
    let refused = upstream_headers(
        &mut harness,
        worker,
        &["callout auth /check 100"],
        &["x-callout-error"],
    );
    assert_eq!(refused, [Some("BadArgument".to_string())]);
    harness.declare_clusters(["auth"]);
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let s = harness.new_stream(worker).unwrap();
        harness
            .request_headers(
                s,
                [(":path", "/"), ("x-test-op", "callout auth /check 100")],
                true,
            )
            .unwrap();
        tokens.extend(harness.http_calls(worker).unwrap().iter().map(|c| c.token));
        harness.advance(Duration::from_millis(100)).unwrap();
    }
    assert_eq!(tokens, [4, 8]);
}
