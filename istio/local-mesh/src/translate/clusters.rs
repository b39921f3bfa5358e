//! DestinationRule traffic policies to Envoy clusters, as istiod writes them.

use serde_json::{Value, json};

use super::model::{ConsistentHash, TrafficPolicy};
use super::values::duration;
use super::{MeshError, invalid, unsupported};

/// Istio's mesh-wide default connect timeout (`meshConfig.connectTimeout`).
const DEFAULT_CONNECT_TIMEOUT: &str = "10s";

/// Istio's default circuit breaker limits: effectively none. Envoy's own
/// defaults (1024 connections and requests, 3 concurrent retries) would
/// shed load Istio lets through.
const NO_LIMIT: u32 = u32::MAX;

fn parse_duration(resource: &str, path: &str, text: &str) -> Result<String, MeshError> {
    duration(text).map_err(|e| invalid(resource, format!("{path}: {e}")))
}

/// One cluster: `ports` on loopback with `policy` applied. `resource` and
/// `path` locate the policy for error messages (the rule, and
/// `spec.trafficPolicy` or `spec.subsets[i].trafficPolicy`).
pub(crate) fn cluster(
    name: &str,
    ports: &[u16],
    policy: &TrafficPolicy,
    resource: &str,
    path: &str,
) -> Result<Value, MeshError> {
    let endpoints: Vec<Value> = ports
        .iter()
        .map(|port| {
            json!({"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}})
        })
        .collect();
    let mut cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
    });
    apply_load_balancer(&mut cluster, policy, resource, path)?;
    apply_connection_pool(&mut cluster, policy, resource, path)?;
    apply_outlier_detection(&mut cluster, policy, resource, path)?;
    Ok(cluster)
}

fn apply_load_balancer(
    cluster: &mut Value,
    policy: &TrafficPolicy,
    resource: &str,
    path: &str,
) -> Result<(), MeshError> {
    let lb = policy.load_balancer.as_ref();
    // Istio's default has been LEAST_REQUEST since 1.14.
    cluster["lb_policy"] = json!(match lb.and_then(|lb| lb.simple.as_deref()) {
        None | Some("UNSPECIFIED") | Some("LEAST_REQUEST") | Some("LEAST_CONN") => "LEAST_REQUEST",
        Some("ROUND_ROBIN") => "ROUND_ROBIN",
        Some("RANDOM") => "RANDOM",
        Some("PASSTHROUGH") => {
            return Err(unsupported(
                resource,
                format!(
                    "{path}.loadBalancer.simple: PASSTHROUGH is not supported by the local mesh (it has no original destination to pass through to)"
                ),
            ));
        }
        Some(other) => {
            return Err(invalid(
                resource,
                format!(
                    "{path}.loadBalancer.simple: {other:?} is not one of ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, RANDOM, PASSTHROUGH"
                ),
            ));
        }
    });
    if let Some(hash) = lb.and_then(|lb| lb.consistent_hash.as_ref()) {
        if let Some(maglev) = &hash.maglev {
            cluster["lb_policy"] = json!("MAGLEV");
            if let Some(size) = maglev.table_size.filter(|s| *s > 0) {
                cluster["maglev_lb_config"] = json!({"table_size": size});
            }
        } else {
            let size = hash
                .ring_hash
                .as_ref()
                .and_then(|r| r.minimum_ring_size)
                .or(hash.minimum_ring_size)
                .filter(|s| *s > 0)
                .unwrap_or(1024);
            cluster["lb_policy"] = json!("RING_HASH");
            cluster["ring_hash_lb_config"] = json!({"minimum_ring_size": size});
        }
    }
    Ok(())
}

fn apply_connection_pool(
    cluster: &mut Value,
    policy: &TrafficPolicy,
    resource: &str,
    path: &str,
) -> Result<(), MeshError> {
    let mut thresholds = json!({
        "max_connections": NO_LIMIT,
        "max_pending_requests": NO_LIMIT,
        "max_requests": NO_LIMIT,
        "max_retries": NO_LIMIT,
        "track_remaining": true,
    });
    let pool_path = format!("{path}.connectionPool");
    let mut idle_timeout = None;
    let mut max_requests_per_connection = None;
    let mut max_connection_duration = None;
    if let Some(pool) = &policy.connection_pool {
        if let Some(http) = &pool.http {
            // Istio reads 0 as "not set".
            if let Some(n) = http.http2_max_requests.filter(|n| *n > 0) {
                thresholds["max_requests"] = json!(n);
            }
            if let Some(n) = http.http1_max_pending_requests.filter(|n| *n > 0) {
                thresholds["max_pending_requests"] = json!(n);
            }
            if let Some(n) = http.max_retries.filter(|n| *n > 0) {
                thresholds["max_retries"] = json!(n);
            }
            max_requests_per_connection = http.max_requests_per_connection.filter(|n| *n > 0);
            if let Some(idle) = &http.idle_timeout {
                idle_timeout = Some(parse_duration(
                    resource,
                    &format!("{pool_path}.http.idleTimeout"),
                    idle,
                )?);
            }
            match http.h2_upgrade_policy.as_deref() {
                None | Some("DEFAULT") | Some("DO_NOT_UPGRADE") => {}
                Some(other) => {
                    return Err(unsupported(
                        resource,
                        format!(
                            "{pool_path}.http.h2UpgradePolicy: {other} is not supported by the local mesh (its upstreams speak HTTP/1.1 only)"
                        ),
                    ));
                }
            }
        }
        if let Some(tcp) = &pool.tcp {
            if let Some(timeout) = &tcp.connect_timeout {
                cluster["connect_timeout"] = json!(parse_duration(
                    resource,
                    &format!("{pool_path}.tcp.connectTimeout"),
                    timeout
                )?);
            }
            if let Some(n) = tcp.max_connections.filter(|n| *n > 0) {
                thresholds["max_connections"] = json!(n);
            }
            if let Some(d) = &tcp.max_connection_duration {
                max_connection_duration = Some(parse_duration(
                    resource,
                    &format!("{pool_path}.tcp.maxConnectionDuration"),
                    d,
                )?);
            }
            if idle_timeout.is_none()
                && let Some(idle) = &tcp.idle_timeout
            {
                idle_timeout = Some(parse_duration(
                    resource,
                    &format!("{pool_path}.tcp.idleTimeout"),
                    idle,
                )?);
            }
        }
    }
    if let Some(budget) = &policy.retry_budget {
        let mut retry_budget = json!({});
        if let Some(percent) = budget.percent {
            retry_budget["budget_percent"] = json!({"value": percent});
        }
        if let Some(min) = budget.min_retry_concurrency {
            retry_budget["min_retry_concurrency"] = json!(min);
        }
        thresholds["retry_budget"] = retry_budget;
    }
    cluster["circuit_breakers"] = json!({"thresholds": [thresholds]});
    if idle_timeout.is_some()
        || max_requests_per_connection.is_some()
        || max_connection_duration.is_some()
    {
        let mut common = json!({});
        if let Some(idle) = idle_timeout {
            common["idle_timeout"] = json!(idle);
        }
        if let Some(n) = max_requests_per_connection {
            common["max_requests_per_connection"] = json!(n);
        }
        if let Some(d) = max_connection_duration {
            common["max_connection_duration"] = json!(d);
        }
        cluster["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "common_http_protocol_options": common,
                "explicit_http_config": {"http_protocol_options": {}}
            }
        });
    }
    Ok(())
}

fn apply_outlier_detection(
    cluster: &mut Value,
    policy: &TrafficPolicy,
    resource: &str,
    path: &str,
) -> Result<(), MeshError> {
    let Some(outlier) = &policy.outlier_detection else {
        return Ok(());
    };
    let outlier_path = format!("{path}.outlierDetection");
    // Success-rate ejection off, as Istio has it; Envoy's other defaults
    // (5 consecutive 5xx, enforced) stay unless the rule says otherwise.
    let mut detection = json!({"enforcing_success_rate": 0});
    if let Some(n) = outlier.consecutive_5xx_errors {
        detection["consecutive_5xx"] = json!(n);
        detection["enforcing_consecutive_5xx"] = json!(if n > 0 { 100 } else { 0 });
    }
    if let Some(n) = outlier.consecutive_gateway_errors {
        detection["consecutive_gateway_failure"] = json!(n);
        detection["enforcing_consecutive_gateway_failure"] = json!(if n > 0 { 100 } else { 0 });
    }
    if let Some(interval) = &outlier.interval {
        detection["interval"] = json!(parse_duration(
            resource,
            &format!("{outlier_path}.interval"),
            interval
        )?);
    }
    if let Some(base) = &outlier.base_ejection_time {
        detection["base_ejection_time"] = json!(parse_duration(
            resource,
            &format!("{outlier_path}.baseEjectionTime"),
            base
        )?);
    }
    if let Some(n) = outlier.max_ejection_percent.filter(|n| *n > 0) {
        detection["max_ejection_percent"] = json!(n);
    }
    if outlier.split_external_local_origin_errors {
        detection["split_external_local_origin_errors"] = json!(true);
        if let Some(n) = outlier.consecutive_local_origin_failures.filter(|n| *n > 0) {
            detection["consecutive_local_origin_failure"] = json!(n);
            detection["enforcing_consecutive_local_origin_failure"] = json!(100);
        }
        detection["enforcing_local_origin_success_rate"] = json!(0);
    } else if outlier.consecutive_local_origin_failures.is_some() {
        return Err(invalid(
            resource,
            format!(
                "{outlier_path}.consecutiveLocalOriginFailures: takes effect only with splitExternalLocalOriginErrors: true"
            ),
        ));
    }
    cluster["outlier_detection"] = detection;
    // Istio turns Envoy's panic threshold (50 %) down to minHealthPercent,
    // 0 unless set: with few endpoints per service, a panicking load
    // balancer would send traffic to the very hosts it ejected.
    cluster["common_lb_config"] = json!({
        "healthy_panic_threshold": {"value": outlier.min_health_percent.unwrap_or(0)}
    });
    Ok(())
}

/// The route hash policy of a consistent-hash load balancer, as Istio puts
/// it on the routes to that destination.
pub(crate) fn hash_policy(
    hash: &ConsistentHash,
    resource: &str,
    path: &str,
) -> Result<Value, MeshError> {
    if let Some(header) = &hash.http_header_name {
        return Ok(json!({"header": {"header_name": header}}));
    }
    if let Some(cookie) = &hash.http_cookie {
        let mut policy = json!({"name": cookie.name});
        if let Some(ttl) = &cookie.ttl {
            policy["ttl"] = json!(parse_duration(
                resource,
                &format!("{path}.httpCookie.ttl"),
                ttl
            )?);
        }
        if let Some(cookie_path) = &cookie.path {
            policy["path"] = json!(cookie_path);
        }
        return Ok(json!({"cookie": policy}));
    }
    if hash.use_source_ip == Some(true) {
        return Ok(json!({"connection_properties": {"source_ip": true}}));
    }
    if let Some(name) = &hash.http_query_parameter_name {
        return Ok(json!({"query_parameter": {"name": name}}));
    }
    Err(invalid(
        resource,
        format!(
            "{path}: names no hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName)"
        ),
    ))
}
