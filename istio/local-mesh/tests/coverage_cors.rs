//! VirtualService `corsPolicy`, as istiod writes it (`route.go`,
//! `TranslateCORSPolicy`; the CORS filter after the fault filter,
//! `listener_builder.go`), and what the pinned Envoy does with it: preflights
//! answered by the proxy for an allowed origin, the CORS headers on the
//! answer of an allowed origin's request, unmatched preflights forwarded
//! upstream unless `unmatchedPreflights: IGNORE`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod coverage_support;

use coverage_support::{Mesh, connection_manager, translation};
use envoy_rig::client::{Request, Response};
use local_mesh::Workload;
use serde_json::json;

const CORS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: web}
spec:
  hosts: [api]
  http:
  - match:
    - uri: {prefix: /strict}
    corsPolicy:
      allowOrigins:
      - exact: https://app.example
      allowMethods: [GET]
      unmatchedPreflights: IGNORE
    route:
    - destination: {host: api}
  - corsPolicy:
      allowOrigins:
      - exact: https://app.example
      - regex: 'https://[a-z]+\\.partner\\.example'
      allowMethods: [GET, POST]
      allowHeaders: [x-token, content-type]
      exposeHeaders: [x-trace]
      maxAge: 24h
      allowCredentials: true
    route:
    - destination: {host: api}
";

fn preflight(url: &str, origin: &str) -> Response {
    Request::new("OPTIONS", url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-token")
        .send()
        .unwrap()
}

#[test]
fn the_route_gets_istiods_cors_policy_and_the_listener_the_filter() {
    let workloads = [Workload {
        service: "api".into(),
        namespace: "web".into(),
        version: "v1".into(),
        port: 7001,
    }];
    let out = translation(CORS, &workloads);
    let hcm = connection_manager(&out, "svc-api.web");
    let routes = &hcm["route_config"]["virtual_hosts"][0]["routes"];
    assert_eq!(
        routes[1]["typed_per_filter_config"]["envoy.filters.http.cors"],
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
            "allow_origin_string_match": [
                {"exact": "https://app.example"},
                {"safe_regex": {"regex": "https://[a-z]+\\.partner\\.example"}}
            ],
            "allow_methods": "GET,POST",
            "allow_headers": "x-token,content-type",
            "expose_headers": "x-trace",
            "max_age": "86400",
            "allow_credentials": true,
            "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "forward_not_matching_preflights": true,
        })
    );
    assert_eq!(
        routes[0]["typed_per_filter_config"]["envoy.filters.http.cors"]["forward_not_matching_preflights"],
        false
    );
    let filters: Vec<&str> = hcm["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        filters,
        [
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.router"
        ]
    );
}

#[test]
fn a_listener_without_a_cors_policy_has_no_cors_filter() {
    let workloads = [Workload {
        service: "api".into(),
        namespace: "web".into(),
        version: "v1".into(),
        port: 7001,
    }];
    let out = translation(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: web}
spec:
  hosts: [api]
  http:
  - route:
    - destination: {host: api}
",
        &workloads,
    );
    let hcm = connection_manager(&out, "svc-api.web");
    assert!(
        !hcm["http_filters"].to_string().contains("cors"),
        "{}",
        hcm["http_filters"]
    );
}

#[test]
fn an_allowed_origins_preflight_is_answered_by_the_proxy() {
    let mesh = Mesh::start(CORS, &[("api", "web", "v1")]);
    let url = format!("{}/items", mesh.service_url("api.web"));
    for origin in ["https://app.example", "https://shop.partner.example"] {
        let response = preflight(&url, origin);
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.header("access-control-allow-origin"), Some(origin));
        assert_eq!(
            response.header("access-control-allow-methods"),
            Some("GET,POST")
        );
        assert_eq!(
            response.header("access-control-allow-headers"),
            Some("x-token,content-type")
        );
        assert_eq!(response.header("access-control-max-age"), Some("86400"));
        assert_eq!(
            response.header("access-control-allow-credentials"),
            Some("true")
        );
    }
    assert_eq!(mesh.upstream("api-web-v1").request_count(), 0);
}

#[test]
fn an_allowed_origins_request_gets_the_cors_headers_on_the_upstreams_answer() {
    let mesh = Mesh::start(CORS, &[("api", "web", "v1")]);
    let url = format!("{}/items", mesh.service_url("api.web"));
    let response = Request::get(&url)
        .header("origin", "https://app.example")
        .send()
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-upstream"), Some("api-web-v1"));
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        response.header("access-control-expose-headers"),
        Some("x-trace")
    );
    // Another origin's request is answered too, without the headers that
    // would let its page read the answer.
    let response = Request::get(&url)
        .header("origin", "https://evil.example")
        .send()
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("access-control-allow-origin"), None);
    assert_eq!(mesh.upstream("api-web-v1").request_count(), 2);
}

#[test]
fn an_unmatched_preflight_goes_upstream_unless_the_policy_ignores_it() {
    let mesh = Mesh::start(CORS, &[("api", "web", "v1")]);
    let base = mesh.service_url("api.web");
    // FORWARD (unset): the upstream sees the preflight of another origin.
    let response = preflight(&format!("{base}/items"), "https://evil.example");
    assert_eq!(response.header("x-upstream"), Some("api-web-v1"));
    assert_eq!(response.header("access-control-allow-origin"), None);
    assert_eq!(mesh.upstream("api-web-v1").request_count(), 1);
    // IGNORE: the proxy answers it, the upstream sees nothing.
    let response = preflight(&format!("{base}/strict"), "https://evil.example");
    assert_eq!(response.header("x-upstream"), None, "{}", response.text());
    assert_eq!(response.header("access-control-allow-origin"), None);
    assert_eq!(mesh.upstream("api-web-v1").request_count(), 1);
}
