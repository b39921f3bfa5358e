//! gRPC aborts in a real Envoy: what the client sees, against Envoy's
//! native fault filter with the same `grpc_status`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod envoy_common;

use cross_check::{Step, cross_check};
use envoy_common::{Rig, scenario};
use envoy_rig::client::{Request, Response};
use envoy_rig::{
    Bootstrap, Cluster, Envoy, HttpFilter, Listener, Route, RouteAction, RouteMatch, Upstream,
    VirtualHost,
};
use serde_json::json;

const CONFIG: &str = r#"{"rules": [{"name": "alerts-down", "abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 100}}}]}"#;

fn grpc_call(url: &str) -> Response {
    Request::post(format!("{url}/airport.Alerts/Raise"), "\0\0\0\0\0")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .send()
        .unwrap()
}

#[test]
fn a_grpc_request_gets_a_trailers_only_answer() {
    let s = scenario("grpc abort", CONFIG)
        .step(
            Step::get("/airport.Alerts/Raise")
                .body("\0\0\0\0\0")
                .header("content-type", "application/grpc")
                .expect_status(200)
                .expect_upstream(false)
                .expect_body("")
                .expect_response_header("grpc-status", Some("14"))
                .expect_response_header("grpc-message", Some("fault filter abort"))
                .expect_response_header("content-type", Some("application/grpc"))
                .expect_response_header("x-fault-injected", Some("abort=grpc-14;rule=alerts-down")),
        )
        .expect_metric("fault_injector.rule.alerts-down.aborts_injected", 1);
    cross_check(&s).unwrap();
}

/// Envoy's fault filter aborting every request with gRPC status 14.
fn native_grpc_abort(upstream: &Upstream) -> Envoy {
    let fault = HttpFilter::Raw(json!({
        "name": "envoy.filters.http.fault",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "abort": {"grpc_status": 14, "percentage": {"numerator": 100, "denominator": "HUNDRED"}},
        },
    }));
    let host = VirtualHost::new("all").route(Route::new(
        RouteMatch::prefix("/"),
        RouteAction::cluster("svc"),
    ));
    Envoy::start(
        &Bootstrap::new()
            .listener(Listener::new("ingress").virtual_host(host).filter(fault))
            .cluster(Cluster::new("svc", upstream.port())),
    )
    .unwrap()
}

#[test]
fn the_client_sees_what_the_native_fault_filter_sends() {
    let rig = Rig::start(CONFIG, 1);
    let native_upstream = Upstream::start("svc").unwrap();
    let native = native_grpc_abort(&native_upstream);
    let plugin = grpc_call(&rig.url(""));
    let native = grpc_call(&native.url().unwrap());
    let seen = |r: &Response| {
        (
            r.status,
            [
                "content-type",
                "grpc-status",
                "grpc-message",
                "content-length",
                "connection",
            ]
            .map(|name| r.header(name).map(str::to_owned)),
            r.body.clone(),
        )
    };
    assert_eq!(seen(&plugin), seen(&native));
    assert_eq!(
        seen(&plugin),
        (
            200,
            [
                Some("application/grpc".into()),
                Some("14".into()),
                Some("fault filter abort".into()),
                Some("0".into()),
                // Envoy closes an HTTP/1.1 connection after a gRPC local reply.
                Some("close".into()),
            ],
            Vec::new()
        )
    );
    assert_eq!(
        plugin.header("x-fault-injected"),
        Some("abort=grpc-14;rule=alerts-down")
    );
    assert_eq!(rig.upstream.request_count(), 0);
    assert_eq!(native_upstream.request_count(), 0);
}

#[test]
fn a_plain_http_request_gets_grpc_status_without_a_content_type() {
    // The plugin answers 200 with grpc-status whatever the request; Envoy
    // drops the content-type of a local reply without a body, so a plain
    // HTTP client sees no content-type. (Envoy's native filter answers such
    // a request differently: 200 with a text/plain body and no grpc-status.)
    let rig = Rig::start(CONFIG, 1);
    let response = rig.get("/airport.Alerts/Raise");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("grpc-status"), Some("14"));
    assert_eq!(response.header("grpc-message"), Some("fault filter abort"));
    assert_eq!(response.header("content-type"), None);
    assert!(response.body.is_empty());
    let native_upstream = Upstream::start("svc").unwrap();
    let native = native_grpc_abort(&native_upstream);
    let from_native = Request::get(format!("{}/airport.Alerts/Raise", native.url().unwrap()))
        .send()
        .unwrap();
    assert_eq!(from_native.status, 200);
    assert_eq!(from_native.header("grpc-status"), None);
    assert_eq!(from_native.text(), "fault filter abort");
}

#[test]
fn envoy_drops_the_content_type_of_an_empty_local_reply() {
    let rig = Rig::start(
        r#"{"rules": [{"abort": {"httpStatus": 503, "body": "",
            "headers": {"content-type": "application/json", "x-chaos": "yes"}, "percentage": {"value": 100}}}]}"#,
        1,
    );
    let response = rig.get("/");
    assert_eq!(response.status, 503);
    assert_eq!(response.header("x-chaos"), Some("yes"));
    assert_eq!(response.header("content-type"), None);
    assert!(response.body.is_empty());
}
