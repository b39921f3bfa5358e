//! Admin stats grow with traffic.

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, Listener, Route, RouteAction, RouteMatch, Upstream, VirtualHost,
};

#[test]
fn request_counters_grow_with_traffic() {
    let v1 = Upstream::start("v1").unwrap();
    let envoy = Envoy::start(
        &Bootstrap::new()
            .listener(
                Listener::new("ingress")
                    .stat_prefix("airport")
                    .virtual_host(VirtualHost::new("app").route(Route::new(
                        RouteMatch::prefix("/"),
                        RouteAction::cluster("v1"),
                    ))),
            )
            .cluster(Cluster::new("v1", v1.port())),
    )
    .unwrap();
    let before = envoy.stats().unwrap();
    assert_eq!(before.get("http.airport.downstream_rq_total"), Some(&0));

    for _ in 0..3 {
        let response = Request::get(format!("{}/x", envoy.url().unwrap()))
            .send()
            .unwrap();
        assert_eq!(response.status, 200);
    }

    assert_eq!(
        envoy.stat("http.airport.downstream_rq_total").unwrap(),
        Some(3)
    );
    // Completion counters may land just after the client has its response.
    let completed = envoy
        .wait_for_stat(
            "cluster.v1.upstream_rq_200",
            3,
            std::time::Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(completed, 3);
    assert_eq!(envoy.stat("cluster.v1.upstream_rq_total").unwrap(), Some(3));
    assert_eq!(envoy.stat("no.such.stat").unwrap(), None);
}
