//! Against Envoy's native fault filter in the real Envoy: a fault without
//! a percentage injects nothing (what pilot's `TranslateFault` gives Envoy
//! for a pasted Istio fault: the percentage unset), and
//! `max_active_faults: 0` overflows every fault.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod envoy_common;

use envoy_common::Rig;
use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, HttpFilter, Listener, Route, RouteAction, RouteMatch, Upstream,
    VirtualHost,
};
use serde_json::{Value, json};

/// Envoy with only its native fault filter, configured with `fault`.
fn native(upstream: &Upstream, fault: Value) -> Envoy {
    let mut typed = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
    });
    typed
        .as_object_mut()
        .unwrap()
        .extend(fault.as_object().unwrap().clone());
    let filter =
        HttpFilter::Raw(json!({"name": "envoy.filters.http.fault", "typed_config": typed}));
    let host = VirtualHost::new("all").route(Route::new(
        RouteMatch::prefix("/"),
        RouteAction::cluster("svc"),
    ));
    Envoy::start(
        &Bootstrap::new()
            .listener(Listener::new("ingress").virtual_host(host).filter(filter))
            .cluster(Cluster::new("svc", upstream.port())),
    )
    .unwrap()
}

fn statuses(url: &str, count: usize) -> Vec<u16> {
    (0..count)
        .map(|_| Request::get(url).send().unwrap().status)
        .collect()
}

#[test]
fn a_fault_without_percentage_is_no_outage_as_in_the_native_filter() {
    let native_upstream = Upstream::start("svc").unwrap();
    // What pilot writes for `fault: {abort: {httpStatus: 418}}`: no percentage.
    let native = native(&native_upstream, json!({"abort": {"http_status": 418}}));
    let rig = Rig::start(r#"{"rules": [{"abort": {"httpStatus": 418}}]}"#, 1);
    let from_native = statuses(&native.url().unwrap(), 10);
    let from_plugin = statuses(&rig.url("/"), 10);
    assert_eq!(from_native, vec![200; 10]);
    assert_eq!(from_plugin, from_native);
    assert_eq!(rig.upstream.request_count(), 10);
    assert_eq!(rig.metric("fault_injector.aborts_injected"), 0);
    assert!(
        rig.envoy
            .log()
            .contains("rules[0].abort.percentage: not given, so this abort never fires"),
        "the omission is logged at configure time"
    );
}

#[test]
fn zero_max_active_faults_overflows_every_fault_as_in_the_native_filter() {
    let native_upstream = Upstream::start("svc").unwrap();
    let native = native(
        &native_upstream,
        json!({
            "abort": {"http_status": 503, "percentage": {"numerator": 100, "denominator": "HUNDRED"}},
            "max_active_faults": 0
        }),
    );
    let rig = Rig::start(
        r#"{"maxActiveFaults": 0, "rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#,
        1,
    );
    let from_native = statuses(&native.url().unwrap(), 5);
    let from_plugin = statuses(&rig.url("/"), 5);
    assert_eq!(from_native, vec![200; 5]);
    assert_eq!(from_plugin, from_native);
    let native_overflow: u64 = native
        .stats()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.ends_with("fault.faults_overflow"))
        .map(|(_, value)| *value)
        .sum();
    assert_eq!(native_overflow, 5);
    assert_eq!(rig.metric("fault_injector.faults_overflow"), 5);
    assert_eq!(rig.metric("fault_injector.aborts_injected"), 0);
}
