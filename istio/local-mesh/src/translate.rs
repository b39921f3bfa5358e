//! Istio resources to an Envoy bootstrap.

use std::collections::{BTreeMap, BTreeSet};

use envoy_rig::{Bootstrap, HttpFilter, Listener, Route, VirtualHost};
use serde_json::{Value, json};

/// A process serving one version of a service on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The Kubernetes Service name (`image-analysis`).
    pub service: String,
    /// The `version` label (`v1`).
    pub version: String,
    pub port: u16,
}

/// What went wrong translating the manifests.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("{resource}: {message}")]
    Unsupported { resource: String, message: String },
    #[error(
        "{resource}: destination {host} subset {subset} has no DestinationRule subset of that name"
    )]
    UnknownSubset {
        resource: String,
        host: String,
        subset: String,
    },
    #[error("{resource}: destination {host} has no running workload")]
    NoWorkload { resource: String, host: String },
}

/// Listener names of the translated bootstrap: the gateway's and one per
/// service host.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    pub gateway: Option<String>,
    /// Service host → listener name.
    pub services: BTreeMap<String, String>,
}

/// The key of the gateway's plugins in [`translate`]'s `plugins`.
pub const GATEWAY: &str = "gateway";

/// Istio's default retry policy for a route with no `retries` of its own.
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// The short service name of a host: `image-analysis.airport.svc.cluster.local` → `image-analysis`.
fn short_host(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

fn name_of(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Translates `documents` (any mix of kinds; non-Istio ones are ignored) for
/// `workloads`. `gateway_port` fixes the gateway listener's port (0 picks a
/// free one); `service_ports` fixes the per-host listeners' ports (missing
/// hosts get a free one); `plugins` (Wasm filters) run before the fault
/// filter and the router on the listener of the service they are keyed by,
/// or on the gateway's under the key [`GATEWAY`].
pub fn translate(
    documents: &[Value],
    workloads: &[Workload],
    gateway_port: u16,
    service_ports: &BTreeMap<String, u16>,
    plugins: &BTreeMap<String, Vec<HttpFilter>>,
) -> Result<(Bootstrap, Listeners), MeshError> {
    // As `kubectl apply` leaves a cluster: a later document with the same
    // kind, namespace and name replaces the earlier one.
    let mut latest: Vec<&Value> = Vec::new();
    for doc in documents {
        let key = |d: &Value| {
            (
                d["kind"].clone(),
                d["metadata"]["namespace"].clone(),
                d["metadata"]["name"].clone(),
            )
        };
        match latest.iter().position(|d| key(d) == key(doc)) {
            Some(index) => latest[index] = doc,
            None => latest.push(doc),
        }
    }
    let of_kind = move |kind: &'static str| {
        latest
            .clone()
            .into_iter()
            .filter(move |d| d["kind"] == kind)
    };
    let mut bootstrap = Bootstrap::new();
    let mut listeners = Listeners::default();

    // Clusters: one per service (all versions) and one per DestinationRule subset.
    let mut subsets: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut policies: BTreeMap<String, Value> = BTreeMap::new();
    for rule in of_kind("DestinationRule") {
        let host = short_host(rule["spec"]["host"].as_str().unwrap_or_default()).to_string();
        policies.insert(host.clone(), rule["spec"]["trafficPolicy"].clone());
        for subset in rule["spec"]["subsets"].as_array().into_iter().flatten() {
            let name = subset["name"].as_str().unwrap_or_default().to_string();
            subsets.insert((host.clone(), name), subset.clone());
        }
    }
    let services: BTreeSet<&str> = workloads.iter().map(|w| w.service.as_str()).collect();
    for service in &services {
        let endpoints: Vec<u16> = workloads
            .iter()
            .filter(|w| w.service == *service)
            .map(|w| w.port)
            .collect();
        let policy = policies.get(*service).cloned().unwrap_or(Value::Null);
        bootstrap = bootstrap.raw_cluster(cluster_json(
            &cluster_name(service, None),
            &endpoints,
            &policy,
        ));
    }
    for ((host, subset), spec) in &subsets {
        let version = spec["labels"]["version"].as_str();
        let endpoints: Vec<u16> = workloads
            .iter()
            .filter(|w| w.service == *host && Some(w.version.as_str()) == version)
            .map(|w| w.port)
            .collect();
        // A subset's own trafficPolicy overrides the rule's.
        let mut policy = policies.get(host).cloned().unwrap_or(Value::Null);
        if let Some(own) = spec["trafficPolicy"].as_object() {
            for (k, v) in own {
                policy[k] = v.clone();
            }
        }
        bootstrap = bootstrap.raw_cluster(cluster_json(
            &cluster_name(host, Some(subset)),
            &endpoints,
            &policy,
        ));
    }

    let filters = |listener: Listener, key: &str| {
        let mut listener = listener;
        for filter in plugins.get(key).into_iter().flatten() {
            listener = listener.filter(filter.clone());
        }
        // An empty fault filter: routes switch faults on per route.
        listener.filter(json!({
            "name": "envoy.filters.http.fault",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}
        }))
    };

    // One listener per service host: the mesh-internal VirtualServices.
    for service in &services {
        let bound: Vec<&Value> = of_kind("VirtualService")
            .filter(|vs| gateways(vs).is_empty() || gateways(vs).contains(&"mesh".to_string()))
            .filter(|vs| hosts(vs).iter().any(|h| short_host(h) == *service))
            .collect();
        let mut host = VirtualHost::new(*service).domains(["*"]);
        if bound.is_empty() {
            host = host.route(Route::raw(default_route(service)));
        }
        for vs in &bound {
            for route in http_routes(vs, &subsets, &services)? {
                host = host.route(Route::raw(route));
            }
        }
        let name = format!("svc-{service}");
        let mut listener =
            Listener::new(name.clone()).stat_prefix(format!("svc_{}", service.replace('-', "_")));
        if let Some(port) = service_ports.get(*service) {
            listener = listener.port(*port);
        }
        bootstrap = bootstrap.listener(filters(listener.virtual_host(host), service));
        listeners.services.insert(service.to_string(), name);
    }

    // The ingress gateway: VirtualServices bound to a Gateway.
    let gateway_names: Vec<String> = of_kind("Gateway")
        .filter_map(|g| g["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let at_gateway: Vec<&Value> = of_kind("VirtualService")
        .filter(|vs| {
            gateways(vs)
                .iter()
                .any(|g| gateway_names.iter().any(|n| g.ends_with(n.as_str())))
        })
        .collect();
    if !at_gateway.is_empty() {
        let mut host = VirtualHost::new("gateway").domains(["*"]);
        for vs in &at_gateway {
            for route in http_routes(vs, &subsets, &services)? {
                host = host.route(Route::raw(route));
            }
        }
        let listener = Listener::new("gateway")
            .stat_prefix("gateway")
            .port(gateway_port)
            .virtual_host(host);
        bootstrap = bootstrap.listener(filters(listener, GATEWAY));
        listeners.gateway = Some("gateway".to_string());
    }
    Ok((bootstrap, listeners))
}

fn gateways(vs: &Value) -> Vec<String> {
    strings(&vs["spec"]["gateways"])
}

fn hosts(vs: &Value) -> Vec<String> {
    strings(&vs["spec"]["hosts"])
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn cluster_name(service: &str, subset: Option<&str>) -> String {
    match subset {
        Some(subset) => format!("outbound|{service}|{subset}"),
        None => format!("outbound|{service}"),
    }
}

fn default_route(service: &str) -> Value {
    json!({
        "match": {"prefix": "/"},
        "route": {
            "cluster": cluster_name(service, None),
            "timeout": "0s",
            "retry_policy": {"retry_on": DEFAULT_RETRY_ON, "num_retries": 2, "retriable_status_codes": [503]}
        }
    })
}

/// Istio's duration strings (`10s`, `0.5s`, `250ms`) as Envoy's (`10s`, `0.250s`).
fn duration(value: &Value) -> Option<String> {
    let text = value.as_str()?;
    let seconds = if let Some(ms) = text.strip_suffix("ms") {
        ms.parse::<f64>().ok()? / 1000.0
    } else if let Some(s) = text.strip_suffix('s') {
        s.parse::<f64>().ok()?
    } else if let Some(m) = text.strip_suffix('m') {
        m.parse::<f64>().ok()? * 60.0
    } else if let Some(h) = text.strip_suffix('h') {
        h.parse::<f64>().ok()? * 3600.0
    } else {
        return None;
    };
    Some(format!("{seconds:.3}s"))
}

fn percent(value: &Value) -> Value {
    // Istio: `percentage.value` (a double, 0-100); absent means 100.
    let pct = value["percentage"]["value"].as_f64().unwrap_or(100.0);
    json!({"numerator": (pct * 10_000.0).round() as u64, "denominator": "MILLION"})
}

fn string_match(value: &Value) -> Option<Value> {
    if let Some(exact) = value["exact"].as_str() {
        return Some(json!({"exact": exact}));
    }
    if let Some(prefix) = value["prefix"].as_str() {
        return Some(json!({"prefix": prefix}));
    }
    if let Some(regex) = value["regex"].as_str() {
        return Some(json!({"safe_regex": {"regex": regex}}));
    }
    None
}

/// One Envoy route per (Istio route × match), in order, as Istio expands them.
fn http_routes(
    vs: &Value,
    subsets: &BTreeMap<(String, String), Value>,
    services: &BTreeSet<&str>,
) -> Result<Vec<Value>, MeshError> {
    let resource = name_of(vs);
    let mut out = Vec::new();
    for (index, http) in vs["spec"]["http"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let action = route_action(&resource, http, subsets, services)?;
        let matches: Vec<Value> = match http["match"].as_array() {
            Some(list) if !list.is_empty() => list.clone(),
            _ => vec![json!({})],
        };
        for m in &matches {
            let mut route = json!({
                "name": http["name"].as_str().map_or_else(|| format!("{resource}#{index}"), str::to_string),
                "match": route_match(&resource, m)?,
            });
            match &action {
                Action::Forward(forward) => route["route"] = forward.clone(),
                Action::Direct(direct) => route["direct_response"] = direct.clone(),
            }
            if let Some(fault) = fault(&http["fault"]) {
                route["typed_per_filter_config"] = json!({"envoy.filters.http.fault": fault});
            }
            if let Some(headers) = http["headers"]["request"]["set"].as_object() {
                route["request_headers_to_add"] = json!(headers
                    .iter()
                    .map(|(k, v)| json!({"header": {"key": k, "value": v.as_str().unwrap_or_default()}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}))
                    .collect::<Vec<_>>());
            }
            out.push(route);
        }
    }
    Ok(out)
}

enum Action {
    Forward(Value),
    Direct(Value),
}

fn route_match(resource: &str, m: &Value) -> Result<Value, MeshError> {
    let mut out = json!({});
    match m.get("uri") {
        Some(uri) if uri["exact"].is_string() => out["path"] = uri["exact"].clone(),
        Some(uri) if uri["prefix"].is_string() => out["prefix"] = uri["prefix"].clone(),
        Some(uri) if uri["regex"].is_string() => out["safe_regex"] = json!({"regex": uri["regex"]}),
        Some(other) => {
            return Err(MeshError::Unsupported {
                resource: resource.to_string(),
                message: format!("uri match {other}"),
            });
        }
        None => out["prefix"] = json!("/"),
    }
    let mut headers = Vec::new();
    for (name, value) in m["headers"].as_object().into_iter().flatten() {
        match string_match(value) {
            Some(matcher) => headers.push(json!({"name": name, "string_match": matcher})),
            None => headers.push(json!({"name": name, "present_match": true})),
        }
    }
    for (name, value) in m["withoutHeaders"].as_object().into_iter().flatten() {
        let mut header = match string_match(value) {
            Some(matcher) => json!({"name": name, "string_match": matcher}),
            None => json!({"name": name, "present_match": true}),
        };
        header["invert_match"] = json!(true);
        headers.push(header);
    }
    if let Some(authority) = m.get("authority").and_then(string_match) {
        headers.push(json!({"name": ":authority", "string_match": authority}));
    }
    if !headers.is_empty() {
        out["headers"] = json!(headers);
    }
    let mut query = Vec::new();
    for (name, value) in m["queryParams"].as_object().into_iter().flatten() {
        if let Some(matcher) = string_match(value) {
            query.push(json!({"name": name, "string_match": matcher}));
        }
    }
    if !query.is_empty() {
        out["query_parameters"] = json!(query);
    }
    Ok(out)
}

fn destination_cluster(
    resource: &str,
    destination: &Value,
    subsets: &BTreeMap<(String, String), Value>,
    services: &BTreeSet<&str>,
) -> Result<String, MeshError> {
    let host = short_host(destination["host"].as_str().unwrap_or_default());
    if !services.contains(host) {
        return Err(MeshError::NoWorkload {
            resource: resource.to_string(),
            host: host.to_string(),
        });
    }
    match destination["subset"].as_str() {
        Some(subset) if subsets.contains_key(&(host.to_string(), subset.to_string())) => {
            Ok(cluster_name(host, Some(subset)))
        }
        Some(subset) => Err(MeshError::UnknownSubset {
            resource: resource.to_string(),
            host: host.to_string(),
            subset: subset.to_string(),
        }),
        None => Ok(cluster_name(host, None)),
    }
}

fn route_action(
    resource: &str,
    http: &Value,
    subsets: &BTreeMap<(String, String), Value>,
    services: &BTreeSet<&str>,
) -> Result<Action, MeshError> {
    if let Some(direct) = http.get("directResponse") {
        let mut out = json!({"status": direct["status"]});
        if let Some(body) = direct["body"]["string"].as_str() {
            out["body"] = json!({"inline_string": body});
        }
        return Ok(Action::Direct(out));
    }
    let destinations = http["route"].as_array().cloned().unwrap_or_default();
    if destinations.is_empty() {
        return Err(MeshError::Unsupported {
            resource: resource.to_string(),
            message: "an http route without route, redirect or directResponse".to_string(),
        });
    }
    let mut action = if destinations.len() == 1 {
        json!({"cluster": destination_cluster(resource, &destinations[0]["destination"], subsets, services)?})
    } else {
        let mut clusters = Vec::new();
        for d in &destinations {
            let weight = d["weight"].as_u64().unwrap_or(0);
            if weight > 0 {
                clusters.push(json!({
                    "name": destination_cluster(resource, &d["destination"], subsets, services)?,
                    "weight": weight
                }));
            }
        }
        json!({"weighted_clusters": {"clusters": clusters}})
    };
    // Istio sets no timeout unless asked (Envoy's default is 15 s).
    action["timeout"] = json!(
        http.get("timeout")
            .and_then(duration)
            .unwrap_or_else(|| "0s".to_string())
    );
    let retries = &http["retries"];
    let attempts = retries["attempts"].as_u64().unwrap_or(2);
    if attempts > 0 {
        let mut policy = json!({
            "retry_on": retries["retryOn"].as_str().unwrap_or(DEFAULT_RETRY_ON),
            "num_retries": attempts,
            "retriable_status_codes": [503],
        });
        if let Some(per_try) = retries.get("perTryTimeout").and_then(duration) {
            policy["per_try_timeout"] = json!(per_try);
        }
        action["retry_policy"] = policy;
    }
    if let Some(mirror) = http.get("mirror") {
        let cluster = destination_cluster(resource, mirror, subsets, services)?;
        let mut policy = json!({"cluster": cluster});
        if let Some(pct) = http["mirrorPercentage"]["value"].as_f64() {
            policy["runtime_fraction"] = json!({"default_value": {"numerator": (pct * 10_000.0).round() as u64, "denominator": "MILLION"}});
        }
        action["request_mirror_policies"] = json!([policy]);
    }
    if let Some(prefix) = http["rewrite"]["uri"].as_str() {
        action["prefix_rewrite"] = json!(prefix);
    }
    Ok(Action::Forward(action))
}

fn fault(fault: &Value) -> Option<Value> {
    if !fault.is_object() {
        return None;
    }
    let mut out =
        json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"});
    if let Some(abort) = fault.get("abort") {
        out["abort"] = json!({"http_status": abort["httpStatus"], "percentage": percent(abort)});
    }
    if let Some(delay) = fault.get("delay")
        && let Some(fixed) = delay.get("fixedDelay").and_then(duration)
    {
        out["delay"] = json!({"fixed_delay": fixed, "percentage": percent(delay)});
    }
    Some(out)
}

fn cluster_json(name: &str, ports: &[u16], policy: &Value) -> Value {
    let endpoints: Vec<Value> = ports
        .iter()
        .map(|port| json!({"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}))
        .collect();
    let lb_policy = match policy["loadBalancer"]["simple"].as_str() {
        Some("RANDOM") => "RANDOM",
        Some("LEAST_REQUEST") | Some("LEAST_CONN") => "LEAST_REQUEST",
        _ => "ROUND_ROBIN",
    };
    let mut cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": lb_policy,
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
    });
    let pool = &policy["connectionPool"];
    if pool.is_object() {
        let mut thresholds = json!({});
        if let Some(n) = pool["tcp"]["maxConnections"].as_u64() {
            thresholds["max_connections"] = json!(n);
        }
        if let Some(n) = pool["http"]["http1MaxPendingRequests"].as_u64() {
            thresholds["max_pending_requests"] = json!(n);
        }
        if let Some(n) = pool["http"]["http2MaxRequests"].as_u64() {
            thresholds["max_requests"] = json!(n);
        }
        if let Some(n) = pool["http"]["maxRetries"].as_u64() {
            thresholds["max_retries"] = json!(n);
        }
        cluster["circuit_breakers"] = json!({"thresholds": [thresholds]});
        if let Some(n) = pool["http"]["maxRequestsPerConnection"].as_u64() {
            cluster["typed_extension_protocol_options"] = json!({
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "common_http_protocol_options": {"max_requests_per_connection": n},
                    "explicit_http_config": {"http_protocol_options": {}}
                }
            });
        }
    }
    let outlier = &policy["outlierDetection"];
    if outlier.is_object() {
        // Istio turns success-rate ejection off and the panic threshold down.
        let mut detection = json!({"enforcing_success_rate": 0});
        if let Some(n) = outlier["consecutive5xxErrors"].as_u64() {
            detection["consecutive_5xx"] = json!(n);
        }
        if let Some(n) = outlier["consecutiveGatewayErrors"].as_u64() {
            detection["consecutive_gateway_failure"] = json!(n);
        }
        if let Some(d) = outlier.get("interval").and_then(duration) {
            detection["interval"] = json!(d);
        }
        if let Some(d) = outlier.get("baseEjectionTime").and_then(duration) {
            detection["base_ejection_time"] = json!(d);
        }
        if let Some(n) = outlier["maxEjectionPercent"].as_u64() {
            detection["max_ejection_percent"] = json!(n);
        }
        cluster["outlier_detection"] = detection;
        cluster["common_lb_config"] = json!({"healthy_panic_threshold": {"value": 0}});
    }
    cluster
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_envoy_syntax() {
        assert_eq!(duration(&json!("10s")).unwrap(), "10.000s");
        assert_eq!(duration(&json!("250ms")).unwrap(), "0.250s");
        assert_eq!(duration(&json!("1m")).unwrap(), "60.000s");
        assert_eq!(duration(&json!("soon")), None);
    }

    #[test]
    fn percentages_are_millionths_and_default_to_all() {
        assert_eq!(
            percent(&json!({"percentage": {"value": 50}})),
            json!({"numerator": 500_000, "denominator": "MILLION"})
        );
        assert_eq!(
            percent(&json!({})),
            json!({"numerator": 1_000_000, "denominator": "MILLION"})
        );
    }

    #[test]
    fn hosts_shorten_to_the_service_name() {
        assert_eq!(
            short_host("image-analysis.airport.svc.cluster.local"),
            "image-analysis"
        );
    }
}
