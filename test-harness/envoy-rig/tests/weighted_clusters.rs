//! Weighted clusters: a 100/0 split sends everything to one upstream.

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, Listener, Route, RouteAction, RouteMatch, Upstream, VirtualHost,
};

#[test]
fn a_hundred_zero_split_sends_everything_to_the_first() {
    let (v1, v2) = (
        Upstream::start("v1").unwrap(),
        Upstream::start("v2").unwrap(),
    );
    let route = Route::new(
        RouteMatch::prefix("/"),
        RouteAction::weighted([("v1", 100), ("v2", 0)]),
    )
    .name("cpanel-split");
    let envoy = Envoy::start(
        &Bootstrap::new()
            .listener(Listener::new("ingress").virtual_host(VirtualHost::new("app").route(route)))
            .cluster(Cluster::new("v1", v1.port()))
            .cluster(Cluster::new("v2", v2.port())),
    )
    .unwrap();
    let url = envoy.url().unwrap();

    for _ in 0..20 {
        let response = Request::get(format!("{url}/panel")).send().unwrap();
        assert_eq!(response.header("x-upstream"), Some("v1"));
    }

    assert_eq!(v1.request_count(), 20);
    assert_eq!(v2.request_count(), 0);
}
