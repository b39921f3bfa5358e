//! `ServiceEntry`, as istiod adds it to its registry (`serviceentry/conversion.go`)
//! and builds its cluster (`cluster_builder.go`, `buildCluster`): a host
//! outside the mesh becomes a service of its own, so a VirtualService for it
//! takes effect (without the entry it is inert, with a warning), with
//! `STATIC` endpoints or `DNS` ones; the endpoints here are on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod coverage_support;

use std::collections::BTreeMap;

use coverage_support::{Mesh, cluster, refusal, translation};
use envoy_rig::Upstream;
use envoy_rig::client::Request;
use serde_json::json;

/// A ServiceEntry for `httpbin.example` on port 80 whose one endpoint is
/// `address` with the named port `http` at `port`.
fn entry(resolution: &str, address: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: httpbin-ext, namespace: web}}
spec:
  hosts: [httpbin.example]
  location: MESH_EXTERNAL
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  resolution: {resolution}
  endpoints:
  - address: {address}
    ports: {{http: {port}}}
"
    )
}

/// A VirtualService for the external host that marks its answers and
/// aborts `/teapot` with 418.
const ROUTES: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin-ext, namespace: web}
spec:
  hosts: [httpbin.example]
  http:
  - match:
    - uri: {prefix: /teapot}
    fault:
      abort: {httpStatus: 418, percentage: {value: 100}}
    route:
    - destination: {host: httpbin.example}
  - route:
    - destination: {host: httpbin.example, port: {number: 80}}
    headers:
      response:
        set: {x-routed-by: httpbin-ext}
";

fn external() -> (Upstream, BTreeMap<String, Upstream>) {
    let upstream = Upstream::start("httpbin-example").unwrap();
    let keep = BTreeMap::new();
    (upstream, keep)
}

#[test]
fn static_and_dns_entries_become_clusters_as_istiod_writes_them() {
    let out = translation(&entry("STATIC", "127.0.0.1", 8000), &[]);
    let static_cluster = cluster(&out, "outbound|httpbin.example");
    assert_eq!(static_cluster["type"], "STATIC");
    assert_eq!(
        static_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
        json!({"socket_address": {"address": "127.0.0.1", "port_value": 8000}})
    );
    assert_eq!(
        out.listeners.services["httpbin.example"],
        "svc-httpbin.example"
    );

    let out = translation(&entry("DNS", "localhost", 8000), &[]);
    let dns = cluster(&out, "outbound|httpbin.example");
    assert_eq!(dns["type"], "STRICT_DNS");
    assert_eq!(dns["dns_lookup_family"], "V4_ONLY");
    assert_eq!(dns["respect_dns_ttl"], true);

    // DNS without endpoints resolves the host itself, on the port's number.
    let yaml = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: web}
spec:
  hosts: [api.example.com]
  ports:
  - {number: 8443, name: http, protocol: HTTP}
  resolution: DNS
";
    let out = translation(yaml, &[]);
    assert_eq!(
        cluster(&out, "outbound|api.example.com")["load_assignment"]["endpoints"][0]["lb_endpoints"]
            [0]["endpoint"]["address"],
        json!({"socket_address": {"address": "api.example.com", "port_value": 8443}})
    );
}

#[test]
fn a_virtual_service_for_the_entrys_host_is_active_not_inert() {
    let yaml = format!("{}---\n{ROUTES}", entry("STATIC", "127.0.0.1", 8000));
    let out = translation(&yaml, &[]);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    // Without the entry, the same VirtualService does nothing, as in a cluster.
    let out = translation(ROUTES, &[]);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
}

#[test]
fn through_envoy_a_static_entry_reaches_its_endpoint_with_the_virtual_services_routes() {
    let (upstream, keep) = external();
    let yaml = format!(
        "{}---\n{ROUTES}",
        entry("STATIC", "127.0.0.1", upstream.port())
    );
    let mesh = Mesh::with(&yaml, &[], keep);
    let url = mesh.service_url("httpbin.example");
    let response = Request::get(format!("{url}/get"))
        .header("host", "httpbin.example")
        .send()
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("x-upstream"), Some("httpbin-example"));
    assert_eq!(response.header("x-routed-by"), Some("httpbin-ext"));
    let response = Request::get(format!("{url}/teapot")).send().unwrap();
    assert_eq!(response.status, 418);
    assert_eq!(upstream.request_count(), 1);
}

#[test]
fn through_envoy_a_dns_entry_resolves_its_endpoint() {
    let (upstream, keep) = external();
    let yaml = format!(
        "{}---\n{ROUTES}",
        entry("DNS", "localhost", upstream.port())
    );
    let mesh = Mesh::with(&yaml, &[], keep);
    let url = mesh.service_url("httpbin.example");
    // STRICT_DNS: the first resolution happens after Envoy starts; poll.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let response = Request::get(format!("{url}/get")).send().unwrap();
        if response.status == 200 {
            assert_eq!(response.header("x-upstream"), Some("httpbin-example"));
            assert_eq!(response.header("x-routed-by"), Some("httpbin-ext"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {} after 20 s: {}",
            response.status,
            response.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn entries_the_local_mesh_cannot_run_are_refused_by_field() {
    let none = entry("NONE", "127.0.0.1", 8000);
    assert!(
        refusal(&none, &[]).starts_with("ServiceEntry/httpbin-ext: spec.resolution: NONE"),
        "{}",
        refusal(&none, &[])
    );
    let tcp = entry("STATIC", "127.0.0.1", 8000).replace("protocol: HTTP", "protocol: TCP");
    assert!(
        refusal(&tcp, &[]).starts_with("ServiceEntry/httpbin-ext: spec.ports[0].protocol: \"TCP\""),
        "{}",
        refusal(&tcp, &[])
    );
    let named = entry("STATIC", "localhost", 8000);
    assert!(
        refusal(&named, &[]).contains("spec.endpoints[0].address: \"localhost\" is no IP address"),
        "{}",
        refusal(&named, &[])
    );
    let selector = format!(
        "{}  workloadSelector: {{labels: {{app: x}}}}\n",
        entry("STATIC", "127.0.0.1", 8000)
    );
    assert!(
        refusal(&selector, &[])
            .contains("spec.workloadSelector is not supported by the local mesh"),
        "{}",
        refusal(&selector, &[])
    );
}
