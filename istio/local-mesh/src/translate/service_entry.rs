//! `ServiceEntry`: hosts outside the Kubernetes registry, as istiod adds
//! them to its service registry (`pilot/pkg/serviceregistry/serviceentry/conversion.go`,
//! `convertServices` and `convertServiceEntryToInstances`).
//!
//! Each host of an entry becomes a service of the mesh known by that host
//! as written (no namespace completion: `httpbin.org` is `httpbin.org`), so
//! VirtualServices and DestinationRules for it take effect, and its callers
//! get a listener as for any Service. Its endpoints:
//! - `resolution: STATIC`: the `endpoints`' IP addresses (istiod sends them
//!   by EDS; the local mesh writes a `STATIC` cluster with the same ones);
//! - `resolution: DNS`: a `STRICT_DNS` cluster over the endpoints'
//!   addresses, or over the host itself when there are none, with
//!   `dns_lookup_family: V4_ONLY` (an IPv4-only proxy) and
//!   `respect_dns_ttl: true` (`pilot/pkg/networking/core/cluster_builder.go`,
//!   `buildCluster`); `DNS_ROUND_ROBIN` likewise as a `LOGICAL_DNS` cluster
//!   (one endpoint only);
//! - an endpoint's port: its `ports[<port name>]`, else the port's
//!   `targetPort`, else the port's `number` (`convertWorkloadInstanceToServiceInstance`).
//!
//! `location` (`MESH_EXTERNAL` or `MESH_INTERNAL`) changes mTLS and telemetry
//! in a cluster, neither of which the local mesh has: both are taken.
//! `resolution: NONE` (pass the caller's original destination through) needs
//! an original destination the local mesh has not got, and is refused, as
//! are entries with more than one port (the local mesh has one listener and
//! one cluster per host) and ports of other protocols than HTTP.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::hosts::ServiceKey;
use super::{MeshError, invalid, unsupported};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServiceEntrySpec {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    pub location: Option<String>,
    pub resolution: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<WorkloadEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServicePort {
    #[serde(default)]
    pub number: u32,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub name: String,
    pub target_port: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct WorkloadEntry {
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub ports: BTreeMap<String, u32>,
    pub weight: Option<u32>,
}

/// How Envoy finds an entry's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    Static,
    Dns,
    DnsRoundRobin,
}

/// One host of a ServiceEntry, ready to become a cluster.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub resource: String,
    pub key: ServiceKey,
    /// The entry's port (callers' `destination.port`).
    pub port: u32,
    resolution: Resolution,
    /// (address, port, weight) of each endpoint.
    endpoints: Vec<(String, u32, Option<u32>)>,
}

/// The hosts of one ServiceEntry of `namespace`, one [`Entry`] each.
pub(crate) fn read(
    resource: &str,
    namespace: &str,
    spec: &ServiceEntrySpec,
) -> Result<Vec<Entry>, MeshError> {
    if spec.hosts.is_empty() {
        return Err(invalid(
            resource,
            "spec.hosts: at least one host is required".to_string(),
        ));
    }
    let resolution = match spec.resolution.as_deref() {
        Some("STATIC") => Resolution::Static,
        Some("DNS") => Resolution::Dns,
        Some("DNS_ROUND_ROBIN") => Resolution::DnsRoundRobin,
        None | Some("NONE") => {
            return Err(unsupported(
                resource,
                "spec.resolution: NONE (the default) passes each request to the address its caller dialled, and the local mesh's callers dial its listeners; set STATIC or DNS with the endpoints".to_string(),
            ));
        }
        Some(other) => {
            return Err(invalid(
                resource,
                format!(
                    "spec.resolution: {other:?} is not one of NONE, STATIC, DNS, DNS_ROUND_ROBIN"
                ),
            ));
        }
    };
    match spec.location.as_deref() {
        None | Some("MESH_EXTERNAL") | Some("MESH_INTERNAL") => {}
        Some(other) => {
            return Err(invalid(
                resource,
                format!("spec.location: {other:?} is not one of MESH_EXTERNAL, MESH_INTERNAL"),
            ));
        }
    }
    let port = match spec.ports.as_slice() {
        [port] => port,
        [] => {
            return Err(invalid(
                resource,
                "spec.ports: at least one port is required".to_string(),
            ));
        }
        _ => {
            return Err(unsupported(
                resource,
                "spec.ports: the local mesh gives a host one listener and one cluster, so a ServiceEntry has one port here".to_string(),
            ));
        }
    };
    if !matches!(
        port.protocol.to_ascii_uppercase().as_str(),
        "HTTP" | "HTTP2"
    ) {
        return Err(unsupported(
            resource,
            format!(
                "spec.ports[0].protocol: {:?} is not supported by the local mesh for a ServiceEntry (HTTP only)",
                port.protocol
            ),
        ));
    }
    if port.number == 0 || port.number > 65535 {
        return Err(invalid(
            resource,
            format!("spec.ports[0].number: {} is no port", port.number),
        ));
    }
    let mut out = Vec::new();
    for (h, host) in spec.hosts.iter().enumerate() {
        let host = host.to_ascii_lowercase();
        if host.contains('*') {
            return Err(unsupported(
                resource,
                format!(
                    "spec.hosts[{h}]: wildcard hosts are not supported by the local mesh; name the host"
                ),
            ));
        }
        let endpoints: Vec<(String, u32, Option<u32>)> = if spec.endpoints.is_empty() {
            if resolution == Resolution::Static {
                return Err(invalid(
                    resource,
                    "spec.endpoints: resolution STATIC needs endpoints with IP addresses"
                        .to_string(),
                ));
            }
            vec![(host.clone(), port.target_port.unwrap_or(port.number), None)]
        } else {
            let mut list = Vec::new();
            for (e, endpoint) in spec.endpoints.iter().enumerate() {
                if resolution == Resolution::Static
                    && endpoint.address.parse::<std::net::IpAddr>().is_err()
                {
                    return Err(invalid(
                        resource,
                        format!(
                            "spec.endpoints[{e}].address: {:?} is no IP address, which resolution STATIC needs (DNS resolves names)",
                            endpoint.address
                        ),
                    ));
                }
                let endpoint_port = endpoint
                    .ports
                    .get(&port.name)
                    .copied()
                    .filter(|p| *p > 0)
                    .or(port.target_port.filter(|p| *p > 0))
                    .unwrap_or(port.number);
                list.push((endpoint.address.clone(), endpoint_port, endpoint.weight));
            }
            list
        };
        if resolution == Resolution::DnsRoundRobin && endpoints.len() > 1 {
            return Err(invalid(
                resource,
                "spec.endpoints: resolution DNS_ROUND_ROBIN takes one endpoint (Envoy's LOGICAL_DNS cluster)".to_string(),
            ));
        }
        out.push(Entry {
            resource: resource.to_string(),
            key: ServiceKey::entry(&host, namespace),
            port: port.number,
            resolution,
            endpoints,
        });
    }
    Ok(out)
}

/// Puts the entry's endpoints into `cluster` (built with the policy of its
/// DestinationRule and no endpoints).
pub(crate) fn set_endpoints(cluster: &mut Value, entry: &Entry) {
    let endpoints: Vec<Value> = entry
        .endpoints
        .iter()
        .map(|(address, port, weight)| {
            let mut endpoint = json!({"endpoint": {"address": {"socket_address": {"address": address, "port_value": port}}}});
            if let Some(weight) = weight.filter(|w| *w > 0) {
                endpoint["load_balancing_weight"] = json!(weight);
            }
            endpoint
        })
        .collect();
    let name = cluster["name"].clone();
    cluster["load_assignment"] =
        json!({"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]});
    match entry.resolution {
        Resolution::Static => cluster["type"] = json!("STATIC"),
        Resolution::Dns | Resolution::DnsRoundRobin => {
            cluster["type"] = json!(if entry.resolution == Resolution::Dns {
                "STRICT_DNS"
            } else {
                "LOGICAL_DNS"
            });
            cluster["dns_lookup_family"] = json!("V4_ONLY");
            cluster["respect_dns_ttl"] = json!(true);
            // meshConfig.dnsRefreshRate's default.
            cluster["dns_refresh_rate"] = json!("60s");
        }
    }
}
