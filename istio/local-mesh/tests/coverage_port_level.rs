//! DestinationRule `trafficPolicy.portLevelSettings`, as istiod applies
//! them (`util.go`, `GetPortLevelTrafficPolicy`, `MergeSubsetTrafficPolicy`;
//! `route.go`, `HashForHTTPDestination`): the setting for the Service's port
//! replaces the rule's load balancer, connection pool and outlier detection
//! whole (nothing inherited), a subset's port-level setting replaces them
//! again, and routes hash by a port's consistent hash when their
//! destination names the port. Checked in the Envoy JSON and, for the hash,
//! with real requests through Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod coverage_support;

use coverage_support::{Mesh, cluster, refusal, translation};
use envoy_rig::client::Request;
use local_mesh::Workload;

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: api, namespace: web}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 8080}
";

fn api() -> Vec<Workload> {
    ["v1", "v2"]
        .iter()
        .enumerate()
        .map(|(i, version)| Workload {
            service: "api".into(),
            namespace: "web".into(),
            version: (*version).into(),
            port: 7001 + u16::try_from(i).unwrap(),
        })
        .collect()
}

const RULE: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: web}
spec:
  host: api
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 50}
    retryBudget: {percent: 20}
    portLevelSettings:
    - port: {number: 8080}
      loadBalancer: {simple: RANDOM}
      outlierDetection: {consecutive5xxErrors: 3}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool:
        http: {http2MaxRequests: 7}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool:
        http: {http2MaxRequests: 9}
      portLevelSettings:
      - port: {number: 8080}
        loadBalancer: {simple: LEAST_REQUEST}
";

#[test]
fn the_ports_setting_replaces_the_rules_policy_whole() {
    let out = translation(&format!("{SERVICE}---\n{RULE}"), &api());
    let whole = cluster(&out, "outbound|api.web");
    assert_eq!(whole["lb_policy"], "RANDOM");
    assert_eq!(whole["outlier_detection"]["consecutive_5xx"], 3);
    let thresholds = &whole["circuit_breakers"]["thresholds"][0];
    // The rule's connection pool and retry budget are not inherited.
    assert_eq!(thresholds["max_connections"], u32::MAX);
    assert!(thresholds.get("retry_budget").is_none(), "{thresholds}");

    // A subset's plain policy goes over the port's: only its connection pool.
    let v1 = cluster(&out, "outbound|api.web|v1");
    assert_eq!(v1["lb_policy"], "RANDOM");
    assert_eq!(v1["outlier_detection"]["consecutive_5xx"], 3);
    assert_eq!(v1["circuit_breakers"]["thresholds"][0]["max_requests"], 7);

    // A subset's own port-level setting replaces all three again.
    let v2 = cluster(&out, "outbound|api.web|v2");
    assert_eq!(v2["lb_policy"], "LEAST_REQUEST");
    assert!(v2.get("outlier_detection").is_none(), "{v2}");
    assert_eq!(
        v2["circuit_breakers"]["thresholds"][0]["max_requests"],
        u32::MAX
    );
}

#[test]
fn a_setting_for_a_port_the_service_lacks_applies_to_nothing_with_a_warning() {
    let rule = RULE.replace(
        "- port: {number: 8080}\n      loadBalancer: {simple: RANDOM}",
        "- port: {number: 9090}\n      loadBalancer: {simple: RANDOM}",
    );
    let out = translation(&format!("{SERVICE}---\n{rule}"), &api());
    assert_eq!(
        cluster(&out, "outbound|api.web")["lb_policy"],
        "ROUND_ROBIN"
    );
    assert_eq!(
        out.warnings,
        [
            "DestinationRule/api: spec.trafficPolicy.portLevelSettings[0]: Service api has no port 9090 (its port: 8080): the setting applies to nothing"
        ]
    );
}

#[test]
fn settings_the_local_mesh_cannot_keep_to_one_port_are_refused() {
    // No Service document: which port is the workloads' is unknown.
    let message = refusal(RULE, &api());
    assert!(
        message.starts_with("DestinationRule/api: spec.trafficPolicy.portLevelSettings[0]: the local mesh needs the ports of Service api"),
        "{message}"
    );
    // Two ports share one cluster here.
    let two = SERVICE.replace(
        "  - {name: http, port: 8080}\n",
        "  - {name: http, port: 8080}\n  - {name: admin, port: 9090}\n",
    );
    let message = refusal(&format!("{two}---\n{RULE}"), &api());
    assert!(message.contains("has ports [8080, 9090]"), "{message}");
}

#[test]
fn a_routes_destination_on_the_port_hashes_by_the_ports_consistent_hash() {
    // The rule says ROUND_ROBIN; port 8080 hashes by x-user. A route whose
    // destination names port 8080 sends each user to one pod every time.
    let yaml = format!(
        "{SERVICE}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: web}}
spec:
  host: api
  trafficPolicy:
    loadBalancer: {{simple: ROUND_ROBIN}}
    portLevelSettings:
    - port: {{number: 8080}}
      loadBalancer:
        consistentHash: {{httpHeaderName: x-user}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api, namespace: web}}
spec:
  hosts: [api]
  http:
  - route:
    - destination: {{host: api, port: {{number: 8080}}}}
"
    );
    let mesh = Mesh::start(&yaml, &[("api", "web", "v1"), ("api", "web", "v2")]);
    let route = &mesh.translation.bootstrap.to_string();
    assert!(route.contains("\"header_name\":\"x-user\""), "{route}");
    let url = format!("{}/", mesh.service_url("api.web"));
    let mut seen = std::collections::BTreeSet::new();
    for user in 0..20 {
        let mut pods = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let response = Request::get(&url)
                .header("x-user", format!("user-{user}"))
                .send()
                .unwrap();
            assert_eq!(response.status, 200);
            pods.insert(response.header("x-upstream").unwrap().to_string());
        }
        assert_eq!(pods.len(), 1, "user-{user} went to {pods:?}");
        seen.extend(pods);
    }
    // Round robin would have alternated; a hash spreads the users.
    assert_eq!(seen.len(), 2, "{seen:?}");
}
