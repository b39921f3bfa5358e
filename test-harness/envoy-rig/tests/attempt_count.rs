//! `x-envoy-attempt-count` on the response when the virtual host asks for it.

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, Fault, Listener, RetryPolicy, Route, RouteAction, RouteMatch, Share,
    Upstream, VirtualHost,
};

fn envoy(upstream: &Upstream, in_response: bool) -> envoy_rig::Result<Envoy> {
    let host = VirtualHost::new("app")
        .include_attempt_count_in_response(in_response)
        .retry_policy(RetryPolicy::new("5xx", 2))
        .route(Route::new(
            RouteMatch::prefix("/"),
            RouteAction::cluster("v1"),
        ));
    Envoy::start(
        &Bootstrap::new()
            .listener(Listener::new("ingress").virtual_host(host))
            .cluster(Cluster::new("v1", upstream.port())),
    )
}

#[test]
fn the_response_carries_the_attempt_count() {
    let v1 = Upstream::start("v1").unwrap();
    v1.inject(Fault::Status(503), Share::FirstN(1));
    let envoy = envoy(&v1, true).unwrap();

    let response = Request::get(envoy.url().unwrap()).send().unwrap();

    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-envoy-attempt-count"), Some("2"));
    // Only the response gets it: the upstream was not asked to see it.
    assert!(
        v1.received()
            .iter()
            .all(|r| r.header("x-envoy-attempt-count").is_none())
    );
}

#[test]
fn without_the_flag_the_response_has_no_attempt_count() {
    let v1 = Upstream::start("v1").unwrap();
    let envoy = envoy(&v1, false).unwrap();

    let response = Request::get(envoy.url().unwrap()).send().unwrap();

    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-envoy-attempt-count"), None);
}
