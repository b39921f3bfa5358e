//! What the local mesh does not implement is refused with the field's path,
//! never dropped: one test per family of unsupported fields.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod translate_support;

use translate_support::*;

fn cpanel() -> Vec<local_mesh::Workload> {
    workloads(&[("cpanel", "v1", 7001), ("cpanel", "v2", 7002)])
}

/// A VirtualService for cpanel whose `spec` is `spec` (indented by 2).
fn vs(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: x, namespace: airport}}
spec:
{spec}
"
    )
}

/// A DestinationRule for cpanel whose `spec` (after `host`) is `spec`.
fn dr(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: x, namespace: airport}}
spec:
  host: cpanel
{spec}
"
    )
}

/// istio/app's gateway with `server` lines replaced.
fn gateway(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: airport}}
spec:
{spec}
"
    )
}

fn assert_refused(yaml: &str, expected: &str) {
    let message = refusal(yaml, &cpanel());
    assert_eq!(message, expected);
}

const ROUTE: &str = "    route:\n    - destination: {host: cpanel}";

#[test]
fn cors_policy_fields_outside_istios() {
    // corsPolicy is translated (tests/coverage_cors.rs); a field the CRD
    // lacks never reaches the translator through `apply`, and is refused by
    // path when it does.
    assert_refused(
        &vs(&format!(
            "  hosts: [cpanel]\n  http:\n  - corsPolicy: {{allowOrigins: [{{suffix: '.example'}}]}}\n{ROUTE}"
        )),
        "VirtualService/x: spec.http[0].corsPolicy.allowOrigins[0].suffix is not supported by the local mesh",
    );
}

#[test]
fn tls_routes_and_tcp_matches() {
    assert_refused(
        &vs(
            "  hosts: [cpanel]\n  tls:\n  - match: [{sniHosts: [cpanel]}]\n    route: [{destination: {host: cpanel}}]",
        ),
        "VirtualService/x: spec.tls is not supported by the local mesh (the local mesh runs plain HTTP on loopback, without mTLS)",
    );
    // tcp routes are translated (tests/coverage_tcp.rs), not their matches
    // on anything but the port.
    assert_refused(
        &vs(
            "  hosts: [cpanel]\n  tcp:\n  - match: [{destinationSubnets: [10.0.0.0/8]}]\n    route: [{destination: {host: cpanel}}]",
        ),
        "VirtualService/x: spec.tcp[0].match[0].destinationSubnets is not supported by the local mesh",
    );
    assert_refused(
        &vs(
            "  hosts: [cpanel]\n  tcp:\n  - match: [{sourceLabels: {app: x}}]\n    route: [{destination: {host: cpanel}}]",
        ),
        "VirtualService/x: spec.tcp[0].match[0].sourceLabels is not supported by the local mesh (a route's match cannot tell callers apart in the local mesh)",
    );
}

#[test]
fn delegates_of_delegates() {
    // Delegates are merged into their roots (tests/coverage_delegate.rs);
    // Istio has one level of them.
    let yaml = format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: cpanel-routes, namespace: airport}}\nspec:\n  http:\n  - delegate: {{name: deeper}}\n",
        vs("  hosts: [cpanel]\n  http:\n  - delegate: {name: cpanel-routes}")
    );
    assert_refused(
        &yaml,
        "VirtualService/cpanel-routes: spec.http[0].delegate: a delegate VirtualService cannot delegate again (Istio supports one level)",
    );
}

#[test]
fn matches_on_the_caller() {
    for (field, value) in [
        ("sourceLabels", "{app: collector}"),
        ("sourceNamespace", "airport"),
        ("gateways", "[mesh]"),
    ] {
        assert_refused(
            &vs(&format!(
                "  hosts: [cpanel]\n  http:\n  - match:\n    - {field}: {value}\n{ROUTE}"
            )),
            &format!(
                "VirtualService/x: spec.http[0].match[0].{field} is not supported by the local mesh (a route's match cannot tell callers apart in the local mesh)"
            ),
        );
    }
}

#[test]
fn match_port_and_stat_prefix() {
    for (field, value) in [("port", "8080"), ("statPrefix", "panel")] {
        assert_refused(
            &vs(&format!(
                "  hosts: [cpanel]\n  http:\n  - match:\n    - {field}: {value}\n{ROUTE}"
            )),
            &format!(
                "VirtualService/x: spec.http[0].match[0].{field} is not supported by the local mesh"
            ),
        );
    }
}

#[test]
fn export_to_and_workload_selector() {
    assert_refused(
        &vs(&format!(
            "  hosts: [cpanel]\n  exportTo: ['.']\n  http:\n  -{}",
            &ROUTE[3..]
        )),
        "VirtualService/x: spec.exportTo is not supported by the local mesh (every resource is visible in every namespace of the local mesh)",
    );
    assert_refused(
        &dr("  workloadSelector: {matchLabels: {app: collector}}"),
        "DestinationRule/x: spec.workloadSelector is not supported by the local mesh (one Envoy plays every proxy of the local mesh)",
    );
}

#[test]
fn grpc_and_http2_aborts_and_exponential_delays() {
    for (fault, path) in [
        ("abort: {grpcStatus: UNAVAILABLE}", "abort.grpcStatus"),
        ("abort: {http2Error: REFUSED_STREAM}", "abort.http2Error"),
        ("delay: {exponentialDelay: 1s}", "delay.exponentialDelay"),
    ] {
        assert_refused(
            &vs(&format!(
                "  hosts: [cpanel]\n  http:\n  - fault: {{{fault}}}\n{ROUTE}"
            )),
            &format!(
                "VirtualService/x: spec.http[0].fault.{path} is not supported by the local mesh"
            ),
        );
    }
}

#[test]
fn retries_across_localities() {
    assert_refused(
        &vs(&format!(
            "  hosts: [cpanel]\n  http:\n  - retries: {{attempts: 2, retryRemoteLocalities: true}}\n{ROUTE}"
        )),
        "VirtualService/x: spec.http[0].retries.retryRemoteLocalities is not supported by the local mesh",
    );
}

#[test]
fn redirect_ports_and_byte_bodies() {
    assert_refused(
        &vs("  hosts: [cpanel]\n  http:\n  - redirect: {uri: /, port: 8443}"),
        "VirtualService/x: spec.http[0].redirect.port is not supported by the local mesh",
    );
    assert_refused(
        &vs("  hosts: [cpanel]\n  http:\n  - directResponse: {status: 200, body: {bytes: aGk=}}"),
        "VirtualService/x: spec.http[0].directResponse.body.bytes is not supported by the local mesh",
    );
}

#[test]
fn jwt_claim_matches() {
    assert_refused(
        &vs(&format!(
            "  hosts: [cpanel]\n  http:\n  - match:\n    - headers: {{'@request.auth.claims.group': {{exact: admin}}}}\n{ROUTE}"
        )),
        "VirtualService/x: spec.http[0].match[0].headers[@request.auth.claims.group]: JWT claim matches are not supported by the local mesh (it runs no authentication)",
    );
}

#[test]
fn wildcard_hosts_for_sidecars() {
    assert_refused(
        &vs(&format!("  hosts: ['*']\n  http:\n  -{}", &ROUTE[3..])),
        "VirtualService/x: spec.hosts[0]: wildcard hosts for sidecars (gateways: mesh) are not supported by the local mesh; name the service",
    );
}

#[test]
fn client_tls_port_settings_and_tunnels() {
    for (field, value, why) in [
        (
            "tls",
            "{mode: ISTIO_MUTUAL}",
            " (the local mesh runs plain HTTP on loopback, without mTLS)",
        ),
        (
            "tunnel",
            "{protocol: CONNECT, targetHost: x, targetPort: 1}",
            "",
        ),
        ("proxyProtocol", "{version: V1}", ""),
    ] {
        assert_refused(
            &dr(&format!("  trafficPolicy:\n    {field}: {value}")),
            &format!(
                "DestinationRule/x: spec.trafficPolicy.{field} is not supported by the local mesh{why}"
            ),
        );
    }
    // portLevelSettings are translated (tests/coverage_port_level.rs), their
    // client TLS is not.
    assert_refused(
        &dr(
            "  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 8080}\n      tls: {mode: SIMPLE}",
        ),
        "DestinationRule/x: spec.trafficPolicy.portLevelSettings[0].tls is not supported by the local mesh (the local mesh runs plain HTTP on loopback, without mTLS)",
    );
}

#[test]
fn locality_and_warmup_load_balancing() {
    for (field, value) in [
        ("localityLbSetting", "{enabled: false}"),
        ("warmup", "{duration: 60s}"),
        ("warmupDurationSecs", "60s"),
    ] {
        assert_refused(
            &dr(&format!(
                "  trafficPolicy:\n    loadBalancer: {{{field}: {value}}}"
            )),
            &format!(
                "DestinationRule/x: spec.trafficPolicy.loadBalancer.{field} is not supported by the local mesh"
            ),
        );
    }
}

#[test]
fn passthrough_load_balancing() {
    assert_refused(
        &dr("  trafficPolicy:\n    loadBalancer: {simple: PASSTHROUGH}"),
        "DestinationRule/x: spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH is not supported by the local mesh (it has no original destination to pass through to)",
    );
}

#[test]
fn cookie_attributes() {
    assert_refused(
        &dr(
            "  trafficPolicy:\n    loadBalancer:\n      consistentHash: {httpCookie: {name: u, attributes: [{name: SameSite, value: Lax}]}}",
        ),
        "DestinationRule/x: spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes is not supported by the local mesh",
    );
}

#[test]
fn http2_only_and_keepalive_pool_settings() {
    for (section, field, value, why) in [
        (
            "http",
            "maxConcurrentStreams",
            "10",
            " (the local mesh's upstreams speak HTTP/1.1 only)",
        ),
        (
            "http",
            "useClientProtocol",
            "true",
            " (the local mesh's upstreams speak HTTP/1.1 only)",
        ),
        ("tcp", "tcpKeepalive", "{time: 10s}", ""),
    ] {
        assert_refused(
            &dr(&format!(
                "  trafficPolicy:\n    connectionPool:\n      {section}: {{{field}: {value}}}"
            )),
            &format!(
                "DestinationRule/x: spec.trafficPolicy.connectionPool.{section}.{field} is not supported by the local mesh{why}"
            ),
        );
    }
    assert_refused(
        &dr("  trafficPolicy:\n    connectionPool:\n      http: {h2UpgradePolicy: UPGRADE}"),
        "DestinationRule/x: spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: UPGRADE is not supported by the local mesh (its upstreams speak HTTP/1.1 only)",
    );
}

#[test]
fn the_deprecated_consecutive_errors() {
    assert_refused(
        &dr(
            "  subsets:\n  - name: v1\n    labels: {version: v1}\n    trafficPolicy:\n      outlierDetection: {consecutiveErrors: 7}",
        ),
        "DestinationRule/x: spec.subsets[0].trafficPolicy.outlierDetection.consecutiveErrors is not supported by the local mesh (deprecated, and ignored by Istio itself: use consecutive5xxErrors or consecutiveGatewayErrors)",
    );
}

#[test]
fn subsets_by_other_labels() {
    assert_refused(
        &dr("  subsets:\n  - name: gpu\n    labels: {accelerator: gpu}"),
        "DestinationRule/x: spec.subsets[0].labels[accelerator]: the local mesh knows a workload by its app and version labels only",
    );
}

#[test]
fn gateway_tls_bind_and_other_protocols() {
    for (server_field, value) in [
        ("tls", "{mode: SIMPLE, credentialName: airport-cert}"),
        ("bind", "127.0.0.2"),
        ("defaultEndpoint", "127.0.0.1:8080"),
    ] {
        assert_refused(
            &gateway(&format!(
                "  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: 80, name: http, protocol: HTTP}}\n    hosts: ['*']\n    {server_field}: {value}"
            )),
            &format!(
                "Gateway/gw: spec.servers[0].{server_field} is not supported by the local mesh{}",
                if server_field == "tls" {
                    " (the local mesh runs plain HTTP on loopback, without mTLS)"
                } else {
                    ""
                }
            ),
        );
    }
    assert_refused(
        &gateway(
            "  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: ['*']",
        ),
        "Gateway/gw: spec.servers[0].port.protocol: HTTPS is not supported by the local mesh (HTTP only)",
    );
    assert_refused(
        &gateway(
            "  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n    hosts: ['*']",
        ),
        "Gateway/gw: spec.servers[0].port.targetPort is not supported by the local mesh",
    );
}

#[test]
fn gateways_on_other_ports() {
    // A selector of another proxy is no refusal: the Gateway applies to no
    // proxy, with a warning (tests/coverage_gateway_selector.rs).
    assert_refused(
        &gateway(
            "  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n  - port: {number: 8080, name: http-alt, protocol: HTTP}\n    hosts: ['*']",
        ),
        "Gateway/gw: spec.servers: ports {80, 8080}; the local mesh's gateway listens on one port",
    );
}

#[test]
fn other_istio_kinds() {
    for kind in ["EnvoyFilter", "Sidecar", "PeerAuthentication"] {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{}}\n"
        );
        assert_refused(
            &yaml,
            &format!("{kind}/x: kind {kind} is not supported by the local mesh"),
        );
    }
}

#[test]
fn service_entry_fields() {
    let entry = |extra: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: x, namespace: airport}}
spec:
  hosts: [api.example.com]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: DNS
{extra}"
        )
    };
    for (extra, path, why) in [
        (
            "  workloadSelector: {labels: {app: x}}\n",
            "spec.workloadSelector",
            " (one Envoy plays every proxy of the local mesh)",
        ),
        (
            "  exportTo: ['.']\n",
            "spec.exportTo",
            " (every resource is visible in every namespace of the local mesh)",
        ),
        (
            "  subjectAltNames: [spiffe://x]\n",
            "spec.subjectAltNames",
            "",
        ),
        ("  addresses: [10.0.0.1]\n", "spec.addresses", ""),
        (
            "  endpoints:\n  - {address: 127.0.0.1, labels: {version: v1}}\n",
            "spec.endpoints[0].labels",
            "",
        ),
        (
            "  endpoints:\n  - {address: 127.0.0.1, network: n1}\n",
            "spec.endpoints[0].network",
            "",
        ),
    ] {
        assert_refused(
            &entry(extra),
            &format!("ServiceEntry/x: {path} is not supported by the local mesh{why}"),
        );
    }
}

#[test]
fn unknown_top_level_fields() {
    assert_refused(
        &format!(
            "{}status: {{}}\n",
            vs(&format!("  hosts: [cpanel]\n  http:\n  -{}", &ROUTE[3..]))
        ),
        "VirtualService/x: status is not supported by the local mesh",
    );
}
