//! Helpers for the translator's tests: manifests from YAML text, a
//! translation for given workloads, and lookups in the Envoy JSON.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use local_mesh::{MeshError, Workload, translate};
use serde_json::Value;

/// The gateway of istio/app, for tests that bind VirtualServices to it.
pub const GATEWAY_YAML: &str = "
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: airport}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
";

/// Workloads in namespace `airport` on made-up ports: `("cpanel", "v1", 7001)`.
pub fn workloads(list: &[(&str, &str, u16)]) -> Vec<Workload> {
    list.iter()
        .map(|(service, version, port)| Workload {
            service: (*service).into(),
            namespace: "airport".into(),
            version: (*version).into(),
            port: *port,
        })
        .collect()
}

pub fn documents(yaml: &str) -> Vec<Value> {
    istio_manifests::parse_documents(yaml).unwrap()
}

/// The translation of `yaml`, or the translator's error.
pub fn try_translate(yaml: &str, workloads: &[Workload]) -> Result<Value, MeshError> {
    let translation = translate(
        &documents(yaml),
        workloads,
        0,
        &BTreeMap::new(),
        &BTreeMap::new(),
    )?;
    Ok(translation.bootstrap)
}

/// The bootstrap JSON of `yaml`; panics with the error otherwise.
pub fn bootstrap(yaml: &str, workloads: &[Workload]) -> Value {
    try_translate(yaml, workloads).unwrap_or_else(|e| panic!("{e}"))
}

/// The error message of a translation that must fail.
pub fn refusal(yaml: &str, workloads: &[Workload]) -> String {
    match try_translate(yaml, workloads) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("translated, expected a refusal:\n{yaml}"),
    }
}

pub fn cluster<'a>(bootstrap: &'a Value, name: &str) -> &'a Value {
    bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name} in {bootstrap:#}"))
}

pub fn listener<'a>(bootstrap: &'a Value, name: &str) -> &'a Value {
    bootstrap["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no listener {name}"))
}

/// The virtual hosts of a listener.
pub fn virtual_hosts(bootstrap: &Value, listener_name: &str) -> Vec<Value> {
    listener(bootstrap, listener_name)["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"]["virtual_hosts"]
        .as_array()
        .unwrap()
        .clone()
}

/// The routes of the (only) virtual host of service `service`'s listener.
pub fn service_routes(bootstrap: &Value, service: &str) -> Vec<Value> {
    let hosts = virtual_hosts(bootstrap, &format!("svc-{service}.airport"));
    assert_eq!(hosts.len(), 1);
    hosts[0]["routes"].as_array().unwrap().clone()
}

/// The routes of the gateway's virtual host with domain `domain`.
pub fn gateway_routes(bootstrap: &Value, domain: &str) -> Vec<Value> {
    virtual_hosts(bootstrap, "gateway")
        .into_iter()
        .find(|h| h["domains"][0] == domain)
        .unwrap_or_else(|| panic!("no gateway virtual host {domain}"))["routes"]
        .as_array()
        .unwrap()
        .clone()
}

/// The HTTP filters of a listener, by name.
pub fn filter_names(bootstrap: &Value, listener_name: &str) -> Vec<String> {
    listener(bootstrap, listener_name)["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

/// A mesh VirtualService for `host` whose single HTTP route is `http` (YAML
/// indented by 4, the fields of the route).
pub fn mesh_vs(host: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {host}, namespace: airport}}
spec:
  hosts: [{host}]
  http:
  - {}
",
        http.trim_start()
    )
}

/// A DestinationRule for `host` with subsets v1 and v2 and `extra` lines
/// under `spec:` (indented by 2).
pub fn rule(host: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {host}, namespace: airport}}
spec:
  host: {host}
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
{extra}
"
    )
}
