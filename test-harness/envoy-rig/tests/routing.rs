//! Routing by path prefix and by header to two echo upstreams.

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, Listener, Route, RouteAction, RouteMatch, Upstream, VirtualHost,
};

fn two_version_envoy(v1: &Upstream, v2: &Upstream) -> envoy_rig::Result<Envoy> {
    let host = VirtualHost::new("app")
        .route(Route::new(
            RouteMatch::prefix("/").header_exact("x-version", "v2"),
            RouteAction::cluster("v2"),
        ))
        .route(Route::new(
            RouteMatch::prefix("/").header_present("x-canary"),
            RouteAction::cluster("v2"),
        ))
        .route(Route::new(
            RouteMatch::prefix("/v2/"),
            RouteAction::cluster("v2"),
        ))
        .route(Route::new(
            RouteMatch::prefix("/"),
            RouteAction::cluster("v1"),
        ));
    Envoy::start(
        &Bootstrap::new()
            .listener(Listener::new("ingress").virtual_host(host))
            .cluster(Cluster::new("v1", v1.port()))
            .cluster(Cluster::new("v2", v2.port())),
    )
}

#[test]
fn prefix_picks_the_upstream() {
    let (v1, v2) = (
        Upstream::start("v1").unwrap(),
        Upstream::start("v2").unwrap(),
    );
    let envoy = two_version_envoy(&v1, &v2).unwrap();
    let url = envoy.listener_url("ingress").unwrap();

    let to_v1 = Request::get(format!("{url}/panel")).send().unwrap();
    let to_v2 = Request::get(format!("{url}/v2/panel")).send().unwrap();

    assert_eq!(to_v1.status, 200);
    assert_eq!(to_v1.header("x-upstream"), Some("v1"));
    assert_eq!(to_v2.header("x-upstream"), Some("v2"));
    let echo = to_v2.json().unwrap();
    assert_eq!(echo["server"], "v2");
    assert_eq!(echo["path"], "/v2/panel");
    assert_eq!(echo["method"], "GET");
}

#[test]
fn exact_header_picks_the_upstream() {
    let (v1, v2) = (
        Upstream::start("v1").unwrap(),
        Upstream::start("v2").unwrap(),
    );
    let envoy = two_version_envoy(&v1, &v2).unwrap();
    let url = envoy.url().unwrap();

    let matching = Request::get(format!("{url}/panel"))
        .header("x-version", "v2")
        .send()
        .unwrap();
    let other_value = Request::get(format!("{url}/panel"))
        .header("x-version", "v3")
        .send()
        .unwrap();

    assert_eq!(matching.header("x-upstream"), Some("v2"));
    assert_eq!(other_value.header("x-upstream"), Some("v1"));
}

#[test]
fn present_header_picks_the_upstream() {
    let (v1, v2) = (
        Upstream::start("v1").unwrap(),
        Upstream::start("v2").unwrap(),
    );
    let envoy = two_version_envoy(&v1, &v2).unwrap();
    let url = envoy.url().unwrap();

    let response = Request::get(format!("{url}/panel"))
        .header("x-canary", "")
        .send()
        .unwrap();

    assert_eq!(response.header("x-upstream"), Some("v2"));
    assert_eq!(v2.request_count(), 1);
    assert_eq!(v1.request_count(), 0);
}

#[test]
fn request_body_and_headers_reach_the_upstream() {
    let (v1, v2) = (
        Upstream::start("v1").unwrap(),
        Upstream::start("v2").unwrap(),
    );
    let envoy = two_version_envoy(&v1, &v2).unwrap();

    let response = Request::post(format!("{}/alerts", envoy.url().unwrap()), "gate 7")
        .header("x-trace", "abc")
        .send()
        .unwrap();

    let echo = response.json().unwrap();
    assert_eq!(echo["body"], "gate 7");
    assert_eq!(echo["method"], "POST");
    let received = v1.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].header("x-trace"), Some("abc"));
}
