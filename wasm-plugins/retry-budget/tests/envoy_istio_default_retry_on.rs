//! In a real Envoy, on a route with no retry policy of its own: the
//! plugin's default `retryOn` is Istio 1.30's (pilot's `defaultRetryOn`,
//! with no `retriable_status_codes`), so a refused connection is retried
//! and an upstream 503 is answered as it came. Istio before 1.24 listed 503
//! and retried it; that list, given explicitly, still does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod rig;

use std::net::TcpListener;
use std::time::Duration;

use envoy_rig::client::Request;
use envoy_rig::{Bootstrap, Cluster, Envoy, Fault, Listener, Route, RouteAction, RouteMatch};
use envoy_rig::{Share, Upstream, VirtualHost};
use rig::{CLUSTER, plugin, start};

/// The plugin with `config` in front of a route to 127.0.0.1:`port` that
/// retries nothing itself: only the plugin's headers ask for retries.
fn guarded(port: u16, config: &str) -> Envoy {
    let route = Route::new(RouteMatch::prefix("/"), RouteAction::cluster(CLUSTER))
        .timeout(Duration::from_secs(30));
    let listener = Listener::new("ingress")
        .access_log(false)
        .virtual_host(
            VirtualHost::new("app")
                .include_attempt_count_in_response(true)
                .route(route),
        )
        .filter(plugin(config));
    start(
        &Bootstrap::new()
            .listener(listener)
            .cluster(Cluster::new(CLUSTER, port)),
    )
}

/// Istio 1.24 and older: 503 among the default conditions.
const PRE_1_24_DEFAULT: &str =
    r#"{"retryOn": "connect-failure,refused-stream,unavailable,cancelled,503"}"#;

#[test]
fn an_upstream_503_is_answered_not_retried_by_default() {
    let upstream = Upstream::start("backend").unwrap();
    upstream.inject(Fault::Status(503), Share::All);
    let envoy = guarded(upstream.port(), "{}");
    let response = Request::get(envoy.url().unwrap()).send().unwrap();
    assert_eq!(response.status, 503, "{}", envoy.log_tail(30));
    assert_eq!(response.header("x-envoy-attempt-count"), Some("1"));
    assert_eq!(upstream.request_count(), 1);
}

#[test]
fn the_pre_1_24_list_retries_an_upstream_503() {
    // The control: the same rig retries a 503 when the list names it.
    let upstream = Upstream::start("backend").unwrap();
    upstream.inject(Fault::Status(503), Share::FirstN(2));
    let envoy = guarded(upstream.port(), PRE_1_24_DEFAULT);
    let response = Request::get(envoy.url().unwrap()).send().unwrap();
    assert_eq!(response.status, 200, "{}", envoy.log_tail(30));
    assert_eq!(response.header("x-envoy-attempt-count"), Some("3"));
    assert_eq!(upstream.request_count(), 3);
}

#[test]
fn a_refused_connection_is_retried_by_default() {
    // A port nobody listens on: every attempt is a connect failure.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let envoy = guarded(port, "{}");
    let response = Request::get(envoy.url().unwrap()).send().unwrap();
    assert_eq!(response.status, 503, "{}", envoy.log_tail(30));
    // Istio's two retries, both made.
    let retries = envoy
        .wait_for_stat(
            "cluster.backend.upstream_rq_retry",
            2,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(retries, 2);
}
