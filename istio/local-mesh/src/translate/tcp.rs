//! VirtualService `tcp` routes: a Service whose port speaks TCP gets a
//! `tcp_proxy` listener instead of an HTTP connection manager, as istiod
//! builds a sidecar's outbound TCP listener
//! (`pilot/pkg/networking/core/networkfilter.go`, `buildOutboundNetworkFilters`).
//!
//! - A port speaks TCP when its `appProtocol` is `tcp`, or, without one, its
//!   name is `tcp` or starts with `tcp-` (`pkg/config/protocol/instance.go`,
//!   `Parse`; `pkg/config/kube/conversion.go`, `ConvertProtocol`).
//! - The first `tcp` route whose `match` names the Service's port (or has no
//!   `port`, or no match at all) is taken; other routes, and the
//!   VirtualService's `http` routes, do nothing for a TCP port.
//! - One destination: `cluster`, with the cluster's name as `stat_prefix`;
//!   several: `weighted_clusters` of those with a weight above 0, with
//!   `<name>.<namespace>` of the VirtualService as `stat_prefix`.
//! - From the first destination's DestinationRule: `connectionPool.tcp.idleTimeout`
//!   as `idle_timeout` (Envoy's 1 h without one, as istiod leaves it),
//!   `maxConnectionDuration` as `max_downstream_connection_duration`, and a
//!   `consistentHash.useSourceIp` (the subset's load balancer over the
//!   rule's) as the proxy's source-IP `hash_policy` (`maybeSetHashPolicy`).
//! - Without a VirtualService: every endpoint of the Service.
//!
//! `tcp` match fields other than `port` (`destinationSubnets`,
//! `sourceLabels`, `gateways`, `sourceNamespace`) are refused by the
//! allow-list, and so is `tcp` at the gateway (TCP servers are).

use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{Destination, DestinationRuleSpec, RouteDestination};
use super::values::duration;
use super::{Index, MeshError, invalid};

/// A VirtualService's `tcp` routes (read beside its other fields).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TcpRoutes {
    #[serde(default)]
    pub tcp: Vec<TcpRoute>,
}

/// One of a VirtualService's `tcp` routes.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TcpRoute {
    #[serde(default, rename = "match")]
    pub matches: Vec<L4Match>,
    #[serde(default)]
    pub route: Vec<RouteDestination>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct L4Match {
    pub port: Option<u32>,
}

/// Whether a Kubernetes Service port (`spec.ports[]`, JSON) speaks TCP.
pub(crate) fn is_tcp_port(port: &Value) -> bool {
    if let Some(app_protocol) = port["appProtocol"].as_str() {
        return app_protocol.eq_ignore_ascii_case("tcp");
    }
    let name = port["name"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    name == "tcp" || name.starts_with("tcp-")
}

/// The `tcp_proxy` filter for a TCP Service of port `port` (`None`: not
/// known), from the `tcp` routes of VirtualService `resource` of
/// `namespace`, or to `default_cluster` when none of them applies.
/// `rule_for` finds a destination's DestinationRule.
pub(crate) fn proxy_filter<'a>(
    virtual_service: Option<(&str, &str, &[TcpRoute])>,
    port: Option<u32>,
    default_cluster: &str,
    default_rule: Option<&'a DestinationRuleSpec>,
    index: &Index,
    rule_for: &dyn Fn(&Destination, &str) -> Option<&'a DestinationRuleSpec>,
) -> Result<Value, MeshError> {
    let chosen = virtual_service.and_then(|(resource, namespace, routes)| {
        routes
            .iter()
            .enumerate()
            .find(|(_, route)| {
                route.matches.is_empty()
                    || route
                        .matches
                        .iter()
                        .any(|m| m.port.is_none() || m.port == port)
            })
            .map(|(i, route)| (resource, namespace, i, route))
    });
    let mut proxy = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    });
    let (rule, subset) = match chosen {
        None => {
            proxy["stat_prefix"] = json!(default_cluster);
            proxy["cluster"] = json!(default_cluster);
            (default_rule, None)
        }
        Some((resource, namespace, i, route)) => {
            let path = format!("spec.tcp[{i}]");
            let Some(first) = route.route.first() else {
                return Err(invalid(
                    resource,
                    format!("{path}.route: at least one destination is required"),
                ));
            };
            if let [only] = route.route.as_slice() {
                let cluster = index.cluster_for(
                    resource,
                    namespace,
                    &format!("{path}.route[0].destination"),
                    &only.destination,
                )?;
                proxy["stat_prefix"] = json!(cluster);
                proxy["cluster"] = json!(cluster);
            } else {
                let mut clusters = Vec::new();
                for (d, destination) in route.route.iter().enumerate() {
                    let weight = destination.weight.unwrap_or(0);
                    if weight == 0 {
                        continue;
                    }
                    let cluster = index.cluster_for(
                        resource,
                        namespace,
                        &format!("{path}.route[{d}].destination"),
                        &destination.destination,
                    )?;
                    clusters.push(json!({"name": cluster, "weight": weight}));
                }
                if clusters.is_empty() {
                    return Err(invalid(
                        resource,
                        format!(
                            "{path}.route: with several destinations, at least one needs a weight above 0"
                        ),
                    ));
                }
                let name = resource.split_once('/').map_or(resource, |(_, name)| name);
                proxy["stat_prefix"] = json!(format!("{name}.{namespace}"));
                proxy["weighted_clusters"] = json!({"clusters": clusters});
            }
            let subset = (route.route.len() == 1)
                .then(|| first.destination.subset.clone())
                .flatten();
            (rule_for(&first.destination, namespace), subset)
        }
    };
    if let Some(rule) = rule {
        apply_rule(&mut proxy, rule, subset.as_deref())?;
    }
    Ok(json!({"name": "envoy.filters.network.tcp_proxy", "typed_config": proxy}))
}

/// The DestinationRule's part in the proxy: the rule's TCP idle timeout
/// and connection duration, and source-IP hashing (`maybeSetHashPolicy`: a
/// subset's own load balancer decides for it).
fn apply_rule(
    proxy: &mut Value,
    rule: &DestinationRuleSpec,
    subset: Option<&str>,
) -> Result<(), MeshError> {
    let policy = rule.traffic_policy.as_ref();
    let tcp = policy
        .and_then(|p| p.connection_pool.as_ref())
        .and_then(|pool| pool.tcp.as_ref());
    let bad = |field: &str, e: String| MeshError::Invalid {
        resource: format!("DestinationRule/{}", rule.host),
        message: format!("spec.trafficPolicy.connectionPool.tcp.{field}: {e}"),
    };
    if let Some(idle) = tcp.and_then(|t| t.idle_timeout.as_ref()) {
        proxy["idle_timeout"] = json!(duration(idle).map_err(|e| bad("idleTimeout", e))?);
    }
    if let Some(max) = tcp.and_then(|t| t.max_connection_duration.as_ref()) {
        proxy["max_downstream_connection_duration"] =
            json!(duration(max).map_err(|e| bad("maxConnectionDuration", e))?);
    }
    let mut source_ip = policy
        .and_then(|p| p.load_balancer.as_ref())
        .and_then(|lb| lb.consistent_hash.as_ref())
        .and_then(|hash| hash.use_source_ip)
        .unwrap_or(false);
    let subset_balancer = rule
        .subsets
        .iter()
        .find(|s| Some(s.name.as_str()) == subset.or(Some("")))
        .and_then(|s| s.traffic_policy.as_ref())
        .and_then(|p| p.load_balancer.as_ref());
    if let Some(balancer) = subset_balancer {
        source_ip = balancer
            .consistent_hash
            .as_ref()
            .and_then(|hash| hash.use_source_ip)
            .unwrap_or(false);
    }
    if source_ip {
        proxy["hash_policy"] = json!([{"source_ip": {}}]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_ports_by_app_protocol_or_name() {
        assert!(is_tcp_port(&json!({"name": "tcp"})));
        assert!(is_tcp_port(&json!({"name": "tcp-db"})));
        assert!(is_tcp_port(&json!({"name": "TCP-db"})));
        assert!(is_tcp_port(&json!({"name": "http", "appProtocol": "tcp"})));
        assert!(!is_tcp_port(&json!({"name": "tcp", "appProtocol": "http"})));
        assert!(!is_tcp_port(&json!({"name": "tcpdb"})));
        assert!(!is_tcp_port(&json!({"name": "http"})));
    }
}
