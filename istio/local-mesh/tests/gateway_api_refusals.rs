//! What the local mesh does not translate of the Gateway API is refused with
//! the resource and the field's path, one test per unsupported field family;
//! and what it translates comes out as istiod writes it (path-separated
//! prefixes, the prefix-stripping regex, 500 for a missing cluster).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;

use local_mesh::{Workload, translate};
use serde_json::Value;

const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: airport}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP}
";

fn workloads() -> Vec<Workload> {
    ["cpanel", "collector"]
        .iter()
        .enumerate()
        .map(|(i, service)| Workload {
            service: (*service).into(),
            namespace: "airport".into(),
            version: "v1".into(),
            port: 20000 + u16::try_from(i).unwrap(),
        })
        .collect()
}

fn translated(yaml: &str) -> Result<local_mesh::Translation, String> {
    let documents = istio_manifests::parse_documents(yaml).unwrap();
    translate(
        &documents,
        &workloads(),
        0,
        &BTreeMap::new(),
        &BTreeMap::new(),
    )
    .map_err(|e| e.to_string())
}

fn refusal(yaml: &str) -> String {
    match translated(yaml) {
        Err(message) => message,
        Ok(_) => panic!("accepted:\n{yaml}"),
    }
}

fn route(spec: &str) -> String {
    format!(
        "{GATEWAY}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: airport}}
spec:
{spec}"
    )
}

const PARENT: &str = "  parentRefs: [{name: gw}]\n";

fn rule(body: &str) -> String {
    route(&format!("{PARENT}  rules:\n  - {body}\n"))
}

#[test]
fn an_https_or_lower_case_listener_is_refused_with_its_path() {
    let message = refusal(&GATEWAY.replace("protocol: HTTP", "protocol: HTTPS"));
    assert!(
        message.starts_with("Gateway/gw: spec.listeners[0].protocol: \"HTTPS\""),
        "{message}"
    );
    let message = refusal(&GATEWAY.replace("protocol: HTTP", "protocol: http"));
    assert!(message.contains("upper-case"), "{message}");
}

#[test]
fn listener_tls_and_namespace_selectors_are_refused() {
    let message =
        refusal(&GATEWAY.replace("protocol: HTTP}", "protocol: HTTP, tls: {mode: Terminate}}"));
    assert!(
        message.contains("spec.listeners[0].tls is not supported by the local mesh"),
        "{message}"
    );
    let message = refusal(&GATEWAY.replace(
        "protocol: HTTP}",
        "protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {a: b}}}}}",
    ));
    assert!(
        message.contains("spec.listeners[0].allowedRoutes.namespaces.selector is not supported"),
        "{message}"
    );
    let message =
        refusal(&GATEWAY.replace("listeners:", "addresses: [{value: 1.2.3.4}]\n  listeners:"));
    assert!(
        message.contains("spec.addresses is not supported"),
        "{message}"
    );
}

#[test]
fn another_gateway_class_is_refused() {
    let message = refusal(&GATEWAY.replace("gatewayClassName: istio", "gatewayClassName: envoy"));
    assert!(
        message.starts_with("Gateway/gw: spec.gatewayClassName: \"envoy\""),
        "{message}"
    );
}

#[test]
fn a_service_parent_is_a_mesh_route_and_refused() {
    let message = refusal(&route(
        "  parentRefs: [{group: '', kind: Service, name: cpanel}]\n  rules:\n  - backendRefs: [{name: cpanel, port: 8080}]\n",
    ));
    assert!(
        message.starts_with(
            "HTTPRoute/r: spec.parentRefs[0]: Service: a Service parent is a mesh (GAMMA) route"
        ),
        "{message}"
    );
}

#[test]
fn a_parent_that_does_not_exist_or_does_not_accept_is_named() {
    let message = refusal(&route(
        "  parentRefs: [{name: nope}]\n  rules:\n  - backendRefs: [{name: cpanel, port: 8080}]\n",
    ));
    assert!(
        message.contains("spec.parentRefs[0]: no Gateway airport/nope among the manifests"),
        "{message}"
    );
    let message = refusal(&route(
        "  parentRefs: [{name: gw, sectionName: https}]\n  rules:\n  - backendRefs: [{name: cpanel, port: 8080}]\n",
    ));
    assert!(
        message.contains(
            "not accepted by Gateway airport/gw (listener http: sectionName \"https\" not found)"
        ),
        "{message}"
    );
    let message = refusal(&route(
        "  parentRefs: [{name: gw, port: 8080}]\n  rules:\n  - backendRefs: [{name: cpanel, port: 8080}]\n",
    ));
    assert!(message.contains("port 8080 not found"), "{message}");
    // A route from another namespace: Same admits the Gateway's own only.
    let message = refusal(
        &route(
            "  parentRefs: [{name: gw, namespace: airport}]\n  rules:\n  - backendRefs: [{name: cpanel, port: 8080, namespace: airport}]\n",
        )
        .replace("{name: r, namespace: airport}", "{name: r, namespace: other}"),
    );
    assert!(
        message.contains("namespace \"other\" is not allowed by the parent"),
        "{message}"
    );
}

#[test]
fn cors_and_extension_ref_filters_are_refused_by_type() {
    let message = refusal(&rule(
        "filters: [{type: CORS, cors: {allowOrigins: ['*']}}]\n    backendRefs: [{name: cpanel, port: 8080}]",
    ));
    assert!(
        message.contains("spec.rules[0].filters[0].cors is not supported by the local mesh"),
        "{message}"
    );
    let message = refusal(&rule(
        "filters: [{type: ExtensionRef}]\n    backendRefs: [{name: cpanel, port: 8080}]",
    ));
    assert!(
        message.contains("spec.rules[0].filters[0].type: \"ExtensionRef\" is not supported"),
        "{message}"
    );
}

#[test]
fn session_persistence_and_unknown_rule_fields_are_refused() {
    let message = refusal(&rule(
        "sessionPersistence: {sessionName: s}\n    backendRefs: [{name: cpanel, port: 8080}]",
    ));
    assert!(
        message.contains("spec.rules[0].sessionPersistence is not supported"),
        "{message}"
    );
}

#[test]
fn backends_other_than_local_services_with_a_port_are_refused() {
    let message = refusal(&rule(
        "backendRefs: [{group: networking.istio.io, kind: Hostname, name: a.b, port: 80}]",
    ));
    assert!(
        message.contains(
            "spec.rules[0].backendRefs[0]: backend group \"networking.istio.io\" kind \"Hostname\""
        ),
        "{message}"
    );
    let message = refusal(&rule("backendRefs: [{name: cpanel}]"));
    assert!(
        message.contains("spec.rules[0].backendRefs[0].port is required"),
        "{message}"
    );
    let message = refusal(&rule(
        "backendRefs: [{name: cpanel.airport.svc.cluster.local, port: 8080}]",
    ));
    assert!(message.contains("not the hostname"), "{message}");
    let message = refusal(&rule(
        "backendRefs: [{name: cpanel, namespace: other, port: 8080}]",
    ));
    assert!(message.contains("needs a ReferenceGrant"), "{message}");
    let message = refusal(&rule("backendRefs: [{name: nothing, port: 8080}]"));
    assert!(
        message.contains("spec.rules[0].backendRefs[0]") && message.contains("nothing"),
        "{message}"
    );
}

#[test]
fn a_redirect_to_another_port_is_refused() {
    let message = refusal(&rule(
        "filters: [{type: RequestRedirect, requestRedirect: {port: 8443, scheme: https}}]",
    ));
    assert!(
        message.contains("spec.rules[0].filters[0].requestRedirect.port: 8443 is not supported"),
        "{message}"
    );
    // The scheme's default port is what Istio leaves out: accepted.
    translated(&rule(
        "filters: [{type: RequestRedirect, requestRedirect: {port: 443, scheme: https}}]",
    ))
    .unwrap();
}

#[test]
fn other_gateway_api_kinds_are_refused() {
    let message = refusal(&format!(
        "{GATEWAY}---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: g, namespace: airport}}
spec: {{}}
"
    ));
    assert!(
        message.starts_with(
            "GRPCRoute/g: kind GRPCRoute (gateway.networking.k8s.io) is not supported by the local mesh: its upstreams speak HTTP/1.1 only"
        ),
        "{message}"
    );
    let message = refusal(&format!(
        "{GATEWAY}---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: g, namespace: airport}}
spec: {{}}
"
    ));
    assert!(
        message.starts_with(
            "ReferenceGrant/g: kind ReferenceGrant (gateway.networking.k8s.io) is not supported"
        ),
        "{message}"
    );
}

#[test]
fn an_istio_gateway_and_a_gateway_api_gateway_are_refused_together() {
    let message = refusal(&format!(
        "{GATEWAY}---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: airport}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ['*']
"
    ));
    assert!(
        message.contains("the local mesh has one gateway listener, and Gateway/gw (an Istio Gateway) already configures it"),
        "{message}"
    );
}

fn gateway_routes(translation: &local_mesh::Translation) -> Vec<Value> {
    let (_, listeners) = translation.resources();
    let gateway = listeners
        .iter()
        .find(|l| l["name"] == "gateway")
        .expect("a gateway listener");
    let text = serde_json::to_string(gateway).unwrap();
    // The routes, wherever the rig nests the route configuration.
    fn find_routes(value: &Value, out: &mut Vec<Value>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(routes)) = map.get("routes") {
                    out.extend(routes.iter().cloned());
                }
                for child in map.values() {
                    find_routes(child, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| find_routes(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    find_routes(&serde_json::from_str(&text).unwrap(), &mut out);
    out
}

#[test]
fn routes_come_out_as_istiod_writes_gateway_semantics() {
    let translation = translated(&rule(
        "matches: [{path: {type: PathPrefix, value: /collector/}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]
    backendRefs: [{name: collector, port: 8080}]",
    ))
    .unwrap();
    let routes = gateway_routes(&translation);
    assert_eq!(routes.len(), 1, "{routes:?}");
    let route = &routes[0];
    assert_eq!(route["match"]["path_separated_prefix"], "/collector");
    assert_eq!(route["name"], "airport.r.0");
    assert_eq!(
        route["route"]["regex_rewrite"]["pattern"]["regex"],
        "^/collector(/?)(.*)"
    );
    assert_eq!(route["route"]["regex_rewrite"]["substitution"], "/\\2");
    assert_eq!(
        route["route"]["cluster_not_found_response_code"],
        "INTERNAL_SERVER_ERROR"
    );
    assert_eq!(route["route"]["cluster"], "outbound|collector.airport");
}
