//! Which Gateways the local mesh's ingress gateway takes, as istiod decides
//! it (`push_context.go`, `mergeGateways`: a Gateway applies to the gateway
//! proxies whose labels include its selector, to all without a selector):
//! the selectors of `istioctl install` (`istio: ingressgateway`) and of the
//! Helm chart (`istio: ingress`) pick it, one that picks no proxy leaves
//! the Gateway applying nowhere, with a warning instead of a refusal or a
//! silent take-over. Real requests through Envoy show both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod coverage_support;

use coverage_support::{Mesh, refusal, translation};
use envoy_rig::client::Request;
use local_mesh::Workload;

fn gateway(name: &str, selector: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: web}}
spec:
  {selector}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ['{host}']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}-routes, namespace: web}}
spec:
  hosts: ['{host}']
  gateways: [{name}]
  http:
  - route:
    - destination: {{host: api}}
"
    )
}

fn api() -> Vec<Workload> {
    vec![Workload {
        service: "api".into(),
        namespace: "web".into(),
        version: "v1".into(),
        port: 7001,
    }]
}

fn gateway_domains(yaml: &str) -> Vec<String> {
    let out = translation(yaml, &api());
    let listener = out.bootstrap["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "gateway")
        .unwrap()
        .clone();
    listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_helm_charts_selector_and_no_selector_pick_the_local_gateway() {
    for selector in [
        "selector: {istio: ingress}",
        "selector: {app: istio-ingress, istio: ingress}",
        "selector: {istio: ingressgateway}",
        "selector: {}",
        "",
    ] {
        assert_eq!(
            gateway_domains(&gateway("gw", selector, "api.example")),
            ["api.example"],
            "{selector}"
        );
    }
}

#[test]
fn a_selector_of_no_gateway_applies_to_no_proxy_with_a_warning() {
    let yaml = gateway("egress", "selector: {istio: egressgateway}", "api.example");
    let out = translation(&yaml, &api());
    assert_eq!(out.listeners.gateway, None);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(
        out.warnings[0].starts_with(
            "Gateway/egress: spec.selector {istio: egressgateway} selects no gateway of the local mesh"
        ),
        "{}",
        out.warnings[0]
    );
}

#[test]
fn gateways_of_both_installs_at_once_are_refused() {
    let yaml = format!(
        "{}---\n{}",
        gateway("a", "selector: {istio: ingressgateway}", "a.example"),
        gateway("b", "selector: {istio: ingress}", "b.example")
    );
    let message = refusal(&yaml, &api());
    assert!(
        message.starts_with(
            "Gateway/b: spec.selector picks the gateway of the istio/gateway Helm chart"
        ),
        "{message}"
    );
}

#[test]
fn through_envoy_only_the_selected_gateways_hosts_are_served() {
    let yaml = format!(
        "{}---\n{}",
        gateway("ingress", "selector: {istio: ingress}", "a.example"),
        gateway("egress", "selector: {istio: egressgateway}", "b.example")
    );
    let mesh = Mesh::start(&yaml, &[("api", "web", "v1")]);
    let url = format!("{}/", mesh.gateway_url());
    let response = Request::get(&url)
        .header("host", "a.example")
        .send()
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("x-upstream"), Some("api-web-v1"));
    // b.example's Gateway applies to no proxy: nothing serves it here.
    let response = Request::get(&url)
        .header("host", "b.example")
        .send()
        .unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(mesh.upstream("api-web-v1").request_count(), 1);
    assert_eq!(mesh.translation.warnings.len(), 1);
}
