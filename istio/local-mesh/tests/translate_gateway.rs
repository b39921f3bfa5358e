//! The ingress gateway: Gateways and the VirtualServices bound to them, as
//! istiod builds a gateway's route table (a virtual host per host name,
//! VirtualServices of one host merged, catch-all routes last).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod translate_support;

use serde_json::json;
use translate_support::*;

fn cpanel() -> Vec<local_mesh::Workload> {
    workloads(&[
        ("cpanel", "v1", 7001),
        ("cpanel", "v2", 7002),
        ("alerts", "v1", 7100),
    ])
}

/// A VirtualService `name` for `hosts` on the gateway `gw`, with `http`
/// routes (YAML indented by 2, list items).
fn gateway_vs(name: &str, hosts: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: airport}}
spec:
  hosts: {hosts}
  gateways: [gw]
  http:
{http}
"
    )
}

fn manifests(parts: &[&str]) -> String {
    let mut all = vec![GATEWAY_YAML.to_string(), rule("cpanel", "")];
    all.extend(parts.iter().map(|p| p.to_string()));
    all.join("---\n")
}

#[test]
fn each_host_name_gets_its_own_virtual_host() {
    // Blue/green: live and test names, and the catch-all host.
    let yaml = manifests(&[
        &gateway_vs(
            "live",
            "[airport.local]",
            "  - route:\n    - destination: {host: cpanel, subset: v1}",
        ),
        &gateway_vs(
            "test",
            "[test.airport.local]",
            "  - route:\n    - destination: {host: cpanel, subset: v2}",
        ),
        &gateway_vs(
            "any",
            "['*']",
            "  - route:\n    - destination: {host: alerts}",
        ),
    ]);
    let b = bootstrap(&yaml, &cpanel());
    let hosts = virtual_hosts(&b, "gateway");
    let domains: Vec<_> = hosts.iter().map(|h| h["domains"].clone()).collect();
    // A port in the Host header is ignored, as on Istio's gateways.
    assert_eq!(
        domains,
        [
            json!(["airport.local", "airport.local:*"]),
            json!(["test.airport.local", "test.airport.local:*"]),
            json!(["*"]),
        ]
    );
    assert_eq!(
        gateway_routes(&b, "airport.local")[0]["route"]["cluster"],
        "outbound|cpanel.airport|v1"
    );
    assert_eq!(
        gateway_routes(&b, "test.airport.local")[0]["route"]["cluster"],
        "outbound|cpanel.airport|v2"
    );
    assert_eq!(
        gateway_routes(&b, "*")[0]["route"]["cluster"],
        "outbound|alerts.airport"
    );
}

#[test]
fn virtual_services_of_one_host_merge_with_catch_alls_last() {
    // The dashboard's catch-all comes first in the documents, but the
    // alerts route still gets its requests.
    let yaml = manifests(&[
        &gateway_vs(
            "cpanel",
            "['*']",
            "  - name: dashboard\n    route:\n    - destination: {host: cpanel, subset: v1}",
        ),
        &gateway_vs(
            "airport",
            "['*']",
            "  - name: alerts\n    match:\n    - uri: {prefix: /alerts/}\n    rewrite: {uri: /}\n    route:\n    - destination: {host: alerts}
  - name: tester\n    match:\n    - headers: {end-user: {exact: tester}}\n    route:\n    - destination: {host: cpanel, subset: v2}",
        ),
    ]);
    let b = bootstrap(&yaml, &cpanel());
    let names: Vec<_> = gateway_routes(&b, "*")
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["alerts", "tester", "dashboard"]);
}

#[test]
fn a_virtual_service_for_the_mesh_and_the_gateway_is_in_both() {
    let yaml = manifests(&["apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cpanel, namespace: airport}
spec:
  hosts: [cpanel]
  gateways: [gw, mesh]
  http:
  - timeout: 3s
    route:
    - destination: {host: cpanel}
"]);
    let b = bootstrap(&yaml, &cpanel());
    assert_eq!(
        service_routes(&b, "cpanel")[0]["route"]["timeout"],
        "3.000000000s"
    );
    // At the gateway the host `cpanel` is a host name like any other.
    assert_eq!(
        gateway_routes(&b, "cpanel")[0]["route"]["timeout"],
        "3.000000000s"
    );
    // A VirtualService bound to the gateway only does not touch the mesh.
    let gateway_only = yaml.replace("[gw, mesh]", "[gw]");
    let b = bootstrap(&gateway_only, &cpanel());
    assert_eq!(service_routes(&b, "cpanel")[0]["name"], "default");
}

#[test]
fn server_hosts_limit_the_hosts_served() {
    let gateway = GATEWAY_YAML.replace(
        "hosts: ['*']",
        "hosts: ['*.airport.local', 'other/admin.local']",
    );
    let live = gateway_vs(
        "live",
        "[airport.local, test.airport.local, admin.local]",
        "  - route:\n    - destination: {host: cpanel}",
    );
    let yaml = [gateway.as_str(), &live].join("---\n");
    let b = bootstrap(&yaml, &cpanel());
    let domains: Vec<_> = virtual_hosts(&b, "gateway")
        .iter()
        .map(|h| h["domains"][0].as_str().unwrap().to_string())
        .collect();
    // `*.airport.local` does not cover `airport.local` itself, and
    // `admin.local` is admitted for namespace `other` only.
    assert_eq!(domains, ["test.airport.local"]);

    let none = gateway_vs(
        "nothing",
        "[airport.local]",
        "  - route:\n    - destination: {host: cpanel}",
    );
    let message = refusal(&[gateway.as_str(), &none].join("---\n"), &cpanel());
    assert_eq!(
        message,
        "VirtualService/nothing: spec.hosts: none of [\"airport.local\"] is served by its gateways' servers"
    );
}

#[test]
fn a_gateway_nothing_is_bound_to_answers_404() {
    let b = bootstrap(GATEWAY_YAML, &cpanel());
    let hosts = virtual_hosts(&b, "gateway");
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0]["domains"], json!(["*"]));
    assert_eq!(hosts[0]["routes"], json!([]));
}

#[test]
fn no_gateway_no_gateway_listener() {
    let listeners =
        local_mesh::translate(&[], &cpanel(), 0, &Default::default(), &Default::default())
            .unwrap()
            .listeners;
    assert_eq!(listeners.gateway, None);
    assert_eq!(listeners.services.len(), 2);
}

#[test]
fn an_unknown_gateway_is_named() {
    let yaml = manifests(&[&gateway_vs(
        "x",
        "['*']",
        "  - route:\n    - destination: {host: cpanel}",
    )
    .replace("[gw]", "[gw, airport/gateway-typo]")]);
    assert_eq!(
        refusal(&yaml, &cpanel()),
        "VirtualService/x: spec.gateways[1]: no Gateway airport/gateway-typo among the manifests"
    );
}

#[test]
fn the_gateway_port_is_the_one_given() {
    let b = local_mesh::translate(
        &documents(GATEWAY_YAML),
        &cpanel(),
        31221,
        &Default::default(),
        &Default::default(),
    )
    .unwrap()
    .bootstrap;
    assert_eq!(
        listener(&b, "gateway")["address"]["socket_address"]["port_value"],
        31221
    );
}
