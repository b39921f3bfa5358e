//! Envoy's native fault filter, the baseline the fault-injector plugin is compared with.

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, FaultFilter, Listener, Route, RouteAction, RouteMatch, Upstream,
    VirtualHost,
};

fn envoy_with_fault(fault: FaultFilter, upstream: &Upstream) -> envoy_rig::Result<Envoy> {
    Envoy::start(
        &Bootstrap::new()
            .listener(Listener::new("ingress").filter(fault).virtual_host(
                VirtualHost::new("app").route(Route::new(
                    RouteMatch::prefix("/"),
                    RouteAction::cluster("v1"),
                )),
            ))
            .cluster(Cluster::new("v1", upstream.port())),
    )
}

#[test]
fn abort_at_full_percentage_answers_every_request_with_the_status() {
    let v1 = Upstream::start("v1").unwrap();
    let envoy = envoy_with_fault(FaultFilter::new().abort(503, 100.0), &v1).unwrap();

    for _ in 0..5 {
        let response = Request::get(format!("{}/scan", envoy.url().unwrap()))
            .send()
            .unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(response.text(), "fault filter abort");
    }

    assert_eq!(v1.request_count(), 0);
    assert_eq!(
        envoy.stat("http.ingress.fault.aborts_injected").unwrap(),
        Some(5)
    );
}

#[test]
fn header_controlled_abort_follows_the_request_header() {
    let v1 = Upstream::start("v1").unwrap();
    let envoy = envoy_with_fault(FaultFilter::new().abort_from_header(100.0), &v1).unwrap();
    let url = format!("{}/scan", envoy.url().unwrap());

    let aborted = Request::get(&url)
        .header("x-envoy-fault-abort-request", "418")
        .send()
        .unwrap();
    let passed = Request::get(&url).send().unwrap();

    assert_eq!(aborted.status, 418);
    assert_eq!(passed.status, 200);
    assert_eq!(v1.request_count(), 1);
}
