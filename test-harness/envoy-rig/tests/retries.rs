//! Envoy's retry policy against upstreams told to fail.

use std::time::Duration;

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, Fault, Listener, RetryPolicy, Route, RouteAction, RouteMatch, Share,
    Upstream, VirtualHost,
};

fn envoy_with_retries(upstream: &Upstream, policy: RetryPolicy) -> envoy_rig::Result<Envoy> {
    let route = Route::new(RouteMatch::prefix("/"), RouteAction::cluster("v1"))
        .timeout(Duration::from_secs(10))
        .retry_policy(policy);
    Envoy::start(
        &Bootstrap::new()
            .listener(
                Listener::new("ingress").virtual_host(
                    VirtualHost::new("app")
                        .include_request_attempt_count(true)
                        .route(route),
                ),
            )
            .cluster(Cluster::new("v1", upstream.port())),
    )
}

#[test]
fn a_failed_first_attempt_is_retried_to_success() {
    let v1 = Upstream::start("v1").unwrap();
    v1.inject(Fault::Status(503), Share::FirstN(1));
    let envoy = envoy_with_retries(&v1, RetryPolicy::new("5xx", 2)).unwrap();

    let response = Request::get(format!("{}/collect", envoy.url().unwrap()))
        .send()
        .unwrap();

    assert_eq!(response.status, 200);
    assert_eq!(v1.request_count(), 2);
    let attempts: Vec<_> = v1
        .received()
        .iter()
        .map(|r| r.header("x-envoy-attempt-count").map(str::to_owned))
        .collect();
    assert_eq!(attempts, [Some("1".into()), Some("2".into())]);
    assert_eq!(envoy.stat("cluster.v1.upstream_rq_retry").unwrap(), Some(1));
}

#[test]
fn a_reset_connection_is_retried_on_reset() {
    let v1 = Upstream::start("v1").unwrap();
    v1.inject(Fault::Reset, Share::FirstN(1));
    let envoy = envoy_with_retries(&v1, RetryPolicy::new("reset", 1)).unwrap();

    let response = Request::get(format!("{}/collect", envoy.url().unwrap()))
        .send()
        .unwrap();

    assert_eq!(response.status, 200);
    assert_eq!(v1.request_count(), 2);
}

#[test]
fn retriable_status_codes_only_retry_the_listed_codes() {
    let v1 = Upstream::start("v1").unwrap();
    v1.inject(Fault::Status(409), Share::All);
    let envoy = envoy_with_retries(
        &v1,
        RetryPolicy::new("retriable-status-codes", 3).retriable_status_codes([503]),
    )
    .unwrap();

    let response = Request::get(format!("{}/collect", envoy.url().unwrap()))
        .send()
        .unwrap();

    assert_eq!(response.status, 409);
    assert_eq!(v1.request_count(), 1);
}

#[test]
fn retries_stop_at_num_retries() {
    let v1 = Upstream::start("v1").unwrap();
    v1.inject(Fault::Status(503), Share::All);
    let envoy = envoy_with_retries(&v1, RetryPolicy::new("5xx", 2)).unwrap();

    let response = Request::get(format!("{}/collect", envoy.url().unwrap()))
        .send()
        .unwrap();

    assert_eq!(response.status, 503);
    assert_eq!(v1.request_count(), 3);
}
