//! Delegate VirtualServices, merged into their roots as istiod merges them
//! (`virtualservice_controller.go` `mergeVirtualServices`,
//! `virtualservice.go` `mergeHTTPRoute`, `mergeHTTPMatchRequests`,
//! `hasConflict`): a delegate's routes take the root route's place, their
//! matches inside the root's, the root's fields filling in what the
//! delegate's route lacks, a conflicting delegate route dropped. Checked in
//! the Envoy JSON and with real requests through Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod coverage_support;

use coverage_support::{Mesh, connection_manager, translation};
use envoy_rig::client::Request;
use local_mesh::Workload;

const YAML: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: web}
spec:
  host: api
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: web}
spec:
  hosts: [api]
  http:
  - name: items
    match:
    - uri: {prefix: /v1}
    delegate: {name: api-v1, namespace: team}
    timeout: 5s
    headers:
      response:
        set: {x-root: 'yes'}
  - route:
    - destination: {host: api, subset: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-v1, namespace: team}
spec:
  http:
  - name: list
    match:
    - uri: {prefix: /v1/items}
    route:
    - destination: {host: api.web.svc.cluster.local, subset: v2}
  - name: elsewhere
    match:
    - uri: {prefix: /v2}
    route:
    - destination: {host: api.web.svc.cluster.local, subset: v2}
  - route:
    - destination: {host: api.web.svc.cluster.local, subset: v1}
    headers:
      response:
        set: {x-leaf: 'yes'}
";

#[test]
fn the_delegates_routes_take_the_root_routes_place() {
    let workloads: Vec<Workload> = ["v1", "v2"]
        .iter()
        .map(|v| Workload {
            service: "api".into(),
            namespace: "web".into(),
            version: (*v).into(),
            port: 7001,
        })
        .collect();
    let out = translation(YAML, &workloads);
    let routes =
        connection_manager(&out, "svc-api.web")["route_config"]["virtual_hosts"][0]["routes"]
            .as_array()
            .unwrap()
            .clone();
    let summary: Vec<(String, String, String, String)> = routes
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["match"]["prefix"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["route"]["cluster"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["route"]["timeout"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let row = |name: &str, prefix: &str, cluster: &str, timeout: &str| {
        (
            name.to_string(),
            prefix.to_string(),
            cluster.to_string(),
            timeout.to_string(),
        )
    };
    assert_eq!(
        summary,
        [
            // /v1/items fits inside /v1; the root's timeout fills in.
            row(
                "items-list",
                "/v1/items",
                "outbound|api.web|v2",
                "5.000000000s"
            ),
            // /v2 does not fit inside /v1: dropped. A match-less delegate
            // route takes the root's match.
            row("items", "/v1", "outbound|api.web|v1", "5.000000000s"),
            row("", "/", "outbound|api.web|v2", "0s"),
        ]
    );
    // The delegate's own headers win over the root's.
    assert!(routes[1].to_string().contains("x-leaf"), "{}", routes[1]);
    assert!(!routes[1].to_string().contains("x-root"), "{}", routes[1]);
    assert!(routes[0].to_string().contains("x-root"), "{}", routes[0]);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn through_envoy_requests_follow_the_merged_routes() {
    let mesh = Mesh::start(YAML, &[("api", "web", "v1"), ("api", "web", "v2")]);
    let url = mesh.service_url("api.web");
    let get = |path: &str| Request::get(format!("{url}{path}")).send().unwrap();
    let response = get("/v1/items/3");
    assert_eq!(response.header("x-upstream"), Some("api-web-v2"));
    assert_eq!(response.header("x-root"), Some("yes"));
    let response = get("/v1/other");
    assert_eq!(response.header("x-upstream"), Some("api-web-v1"));
    assert_eq!(response.header("x-leaf"), Some("yes"));
    assert_eq!(response.header("x-root"), None);
    let response = get("/v2/items");
    assert_eq!(response.header("x-upstream"), Some("api-web-v2"));
    assert_eq!(response.header("x-leaf"), None);
}

#[test]
fn a_missing_delegate_leaves_the_route_out_with_a_warning() {
    let yaml = YAML.replace("delegate: {name: api-v1,", "delegate: {name: nowhere,");
    let workloads = [Workload {
        service: "api".into(),
        namespace: "web".into(),
        version: "v1".into(),
        port: 7001,
    }];
    let out = translation(&yaml, &workloads);
    assert_eq!(
        out.warnings,
        [
            "VirtualService/api: spec.http[0].delegate: no delegate VirtualService team/nowhere (one without hosts): the route is left out, as istiod leaves it out"
        ]
    );
}
