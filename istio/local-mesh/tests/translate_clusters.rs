//! DestinationRule traffic policies to Envoy clusters: load balancers,
//! connection pools (circuit breakers), outlier detection, retry budgets,
//! and a subset's policy over its rule's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod translate_support;

use serde_json::{Value, json};
use translate_support::*;

fn cpanel() -> Vec<local_mesh::Workload> {
    workloads(&[("cpanel", "v1", 7001), ("cpanel", "v2", 7002)])
}

/// The clusters of cpanel (whole service, v1, v2) under a rule whose
/// `spec.trafficPolicy` is `policy` (YAML indented by 4).
fn policy_clusters(policy: &str) -> (Value, Value, Value) {
    let b = bootstrap(
        &rule("cpanel", &format!("  trafficPolicy:\n{policy}")),
        &cpanel(),
    );
    (
        cluster(&b, "outbound|cpanel.airport").clone(),
        cluster(&b, "outbound|cpanel.airport|v1").clone(),
        cluster(&b, "outbound|cpanel.airport|v2").clone(),
    )
}

#[test]
fn without_a_policy_clusters_get_istios_defaults() {
    let b = bootstrap(&rule("cpanel", ""), &cpanel());
    for name in [
        "outbound|cpanel.airport",
        "outbound|cpanel.airport|v1",
        "outbound|cpanel.airport|v2",
    ] {
        let c = cluster(&b, name);
        // Least request since Istio 1.14; the mesh's 10 s connect timeout.
        assert_eq!(c["lb_policy"], "LEAST_REQUEST");
        assert_eq!(c["connect_timeout"], "10s");
        assert_eq!(c["type"], "STATIC");
        // No limits: Envoy's own (1024, and 3 concurrent retries) are lifted.
        assert_eq!(
            c["circuit_breakers"],
            json!({"thresholds": [{
                "max_connections": u32::MAX,
                "max_pending_requests": u32::MAX,
                "max_requests": u32::MAX,
                "max_retries": u32::MAX,
                "track_remaining": true,
            }]})
        );
        assert!(c.get("outlier_detection").is_none());
        assert!(c.get("common_lb_config").is_none());
    }
    // A service without any rule gets the same.
    let b = bootstrap("", &cpanel());
    assert_eq!(
        cluster(&b, "outbound|cpanel.airport")["lb_policy"],
        "LEAST_REQUEST"
    );
}

#[test]
fn simple_load_balancers() {
    for (simple, envoy) in [
        ("ROUND_ROBIN", "ROUND_ROBIN"),
        ("RANDOM", "RANDOM"),
        ("LEAST_REQUEST", "LEAST_REQUEST"),
        ("LEAST_CONN", "LEAST_REQUEST"),
    ] {
        let (service, v1, v2) =
            policy_clusters(&format!("    loadBalancer:\n      simple: {simple}"));
        for c in [service, v1, v2] {
            assert_eq!(c["lb_policy"], envoy, "{simple}");
        }
    }
}

#[test]
fn consistent_hash_load_balancers() {
    let (service, ..) =
        policy_clusters("    loadBalancer:\n      consistentHash: {httpHeaderName: end-user}");
    assert_eq!(service["lb_policy"], "RING_HASH");
    assert_eq!(
        service["ring_hash_lb_config"],
        json!({"minimum_ring_size": 1024})
    );

    let (service, ..) = policy_clusters(
        "    loadBalancer:\n      consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 64}}",
    );
    assert_eq!(
        service["ring_hash_lb_config"],
        json!({"minimum_ring_size": 64})
    );

    let (service, ..) = policy_clusters(
        "    loadBalancer:\n      consistentHash: {httpQueryParameterName: user, maglev: {tableSize: 65537}}",
    );
    assert_eq!(service["lb_policy"], "MAGLEV");
    assert_eq!(service["maglev_lb_config"], json!({"table_size": 65537}));
}

#[test]
fn a_connection_pool_becomes_circuit_breaker_thresholds() {
    let (service, v1, _) = policy_clusters(
        "    connectionPool:
      tcp: {maxConnections: 1, connectTimeout: 250ms, maxConnectionDuration: 1h}
      http:
        http1MaxPendingRequests: 2
        http2MaxRequests: 3
        maxRequestsPerConnection: 1
        maxRetries: 4
        idleTimeout: 30s",
    );
    for c in [&service, &v1] {
        assert_eq!(
            c["circuit_breakers"],
            json!({"thresholds": [{
                "max_connections": 1,
                "max_pending_requests": 2,
                "max_requests": 3,
                "max_retries": 4,
                "track_remaining": true,
            }]})
        );
        assert_eq!(c["connect_timeout"], "0.250000000s");
        assert_eq!(
            c["typed_extension_protocol_options"],
            json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "common_http_protocol_options": {
                    "idle_timeout": "30.000000000s",
                    "max_requests_per_connection": 1,
                    "max_connection_duration": "3600.000000000s",
                },
                "explicit_http_config": {"http_protocol_options": {}},
            }})
        );
    }
}

#[test]
fn zero_in_a_connection_pool_means_not_set() {
    // Istio cannot tell 0 from absent there, and reads it as absent.
    let (service, ..) = policy_clusters(
        "    connectionPool:\n      tcp: {maxConnections: 0}\n      http: {http1MaxPendingRequests: 0}",
    );
    assert_eq!(
        service["circuit_breakers"]["thresholds"][0]["max_connections"],
        u32::MAX
    );
    assert_eq!(
        service["circuit_breakers"]["thresholds"][0]["max_pending_requests"],
        u32::MAX
    );
}

#[test]
fn outlier_detection_with_istios_meaning() {
    let (service, ..) = policy_clusters(
        "    outlierDetection:
      consecutive5xxErrors: 7
      consecutiveGatewayErrors: 3
      interval: 5m
      baseEjectionTime: 15m
      maxEjectionPercent: 100",
    );
    assert_eq!(
        service["outlier_detection"],
        json!({
            "enforcing_success_rate": 0,
            "consecutive_5xx": 7,
            "enforcing_consecutive_5xx": 100,
            "consecutive_gateway_failure": 3,
            "enforcing_consecutive_gateway_failure": 100,
            "interval": "300.000000000s",
            "base_ejection_time": "900.000000000s",
            "max_ejection_percent": 100,
        })
    );
    // The panic threshold off, so ejected hosts stay out even if all are.
    assert_eq!(
        service["common_lb_config"],
        json!({"healthy_panic_threshold": {"value": 0}})
    );
}

#[test]
fn outlier_detection_details() {
    let (service, ..) = policy_clusters(
        "    outlierDetection:
      consecutive5xxErrors: 0
      minHealthPercent: 50
      splitExternalLocalOriginErrors: true
      consecutiveLocalOriginFailures: 2",
    );
    let detection = &service["outlier_detection"];
    // 0 turns the 5xx rule off (it is not enforced).
    assert_eq!(detection["consecutive_5xx"], 0);
    assert_eq!(detection["enforcing_consecutive_5xx"], 0);
    assert_eq!(detection["split_external_local_origin_errors"], true);
    assert_eq!(detection["consecutive_local_origin_failure"], 2);
    assert_eq!(detection["enforcing_consecutive_local_origin_failure"], 100);
    assert_eq!(detection["enforcing_local_origin_success_rate"], 0);
    assert_eq!(
        service["common_lb_config"]["healthy_panic_threshold"]["value"],
        50
    );
}

#[test]
fn a_retry_budget_limits_concurrent_retries() {
    let (service, ..) = policy_clusters("    retryBudget: {percent: 20, minRetryConcurrency: 5}");
    assert_eq!(
        service["circuit_breakers"]["thresholds"][0]["retry_budget"],
        json!({"budget_percent": {"value": 20.0}, "min_retry_concurrency": 5})
    );
}

#[test]
fn a_subsets_policy_overrides_its_rules_part_by_part() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cpanel, namespace: airport}
spec:
  host: cpanel
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 10}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool:
        http: {http1MaxPendingRequests: 1}
      outlierDetection: {consecutive5xxErrors: 2}
";
    let b = bootstrap(yaml, &cpanel());
    let thresholds = |name: &str| cluster(&b, name)["circuit_breakers"]["thresholds"][0].clone();
    // v1 has the rule's policy.
    assert_eq!(
        cluster(&b, "outbound|cpanel.airport|v1")["lb_policy"],
        "ROUND_ROBIN"
    );
    assert_eq!(
        thresholds("outbound|cpanel.airport|v1")["max_connections"],
        10
    );
    // v2 keeps the rule's load balancer, but its own connection pool
    // replaces the rule's whole (no maxConnections 10), and adds outlier
    // detection.
    let v2 = cluster(&b, "outbound|cpanel.airport|v2");
    assert_eq!(v2["lb_policy"], "ROUND_ROBIN");
    assert_eq!(
        thresholds("outbound|cpanel.airport|v2")["max_connections"],
        u32::MAX
    );
    assert_eq!(
        thresholds("outbound|cpanel.airport|v2")["max_pending_requests"],
        1
    );
    assert_eq!(v2["outlier_detection"]["consecutive_5xx"], 2);
    // The service as a whole has the rule's policy only.
    assert!(
        cluster(&b, "outbound|cpanel.airport")
            .get("outlier_detection")
            .is_none()
    );
}

#[test]
fn bad_policy_values_are_named() {
    let message = refusal(
        &rule(
            "cpanel",
            "  trafficPolicy:\n    outlierDetection: {interval: often}",
        ),
        &cpanel(),
    );
    assert_eq!(
        message,
        "DestinationRule/cpanel: spec.trafficPolicy.outlierDetection.interval: \"often\" is not a duration (write it as Go does: 300ms, 1.5s, 2h45m)"
    );
    let message = refusal(
        &rule(
            "cpanel",
            "  trafficPolicy:\n    loadBalancer: {simple: FASTEST}",
        ),
        &cpanel(),
    );
    assert!(
        message.starts_with(
            "DestinationRule/cpanel: spec.trafficPolicy.loadBalancer.simple: \"FASTEST\" is not one of"
        ),
        "{message}"
    );
}

#[test]
fn two_rules_for_one_host_are_refused() {
    let first = rule("cpanel", "");
    let second = first.replace("name: cpanel,", "name: cpanel-again,");
    assert_eq!(
        refusal(&format!("{first}---\n{second}"), &cpanel()),
        "DestinationRule/cpanel-again: spec.host: cpanel already has DestinationRule/cpanel; the local mesh takes one DestinationRule per host"
    );
}
