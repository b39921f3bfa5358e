//! Istio resources to an Envoy bootstrap, with Istio's meaning.
//!
//! The documents are read as `kubectl apply` leaves a cluster (a later
//! document replaces an earlier one of the same kind, namespace and name),
//! checked against the allow-list of supported fields ([`supported`]), read
//! into typed values ([`model`]) and translated the way istiod translates
//! them for a sidecar's outbound side and for the ingress gateway
//! ([`routes`], [`clusters`]). What the local mesh does not implement is
//! refused with the field's path, never dropped.

mod clusters;
mod cors;
mod delegate;
mod gateway_api;
mod gateway_selector;
mod hosts;
mod model;
mod port_level;
mod proxy;
mod routes;
mod service_entry;
mod supported;
mod tcp;
mod values;

use std::collections::{BTreeMap, BTreeSet};

use envoy_rig::{Bootstrap, HttpFilter, Listener, Route, VirtualHost};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use hosts::{DEFAULT_NAMESPACE, ServiceKey};
pub use hosts::{fqdn, resolve};
use model::{
    Destination, DestinationRuleSpec, GatewaySpec, PortSelector, TrafficPolicy, VirtualServiceSpec,
};
pub use proxy::{ListenerClass, inbound_sidecar, istio_connection_manager};

/// A process serving one version of a service on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The Kubernetes Service name (`image-analysis`).
    pub service: String,
    /// The Service's namespace (`airport`).
    pub namespace: String,
    /// The `version` label (`v1`).
    pub version: String,
    pub port: u16,
}

impl Workload {
    /// The key of its Service in [`translate`]'s maps and [`Listeners`]:
    /// `name.namespace` (neither may hold a dot in Kubernetes).
    pub fn service_key(&self) -> String {
        ServiceKey::new(&self.service, &self.namespace).to_string()
    }
}

/// The translator's output: Envoy's bootstrap (`static_resources` with the
/// listeners and clusters, as `envoy -c` reads it), the listeners' names,
/// and warnings about resources that were taken but do nothing (a
/// VirtualService for a host that is no Service), as `kubectl apply` of
/// such a resource would succeed in a cluster and change nothing there.
#[derive(Debug, Clone)]
pub struct Translation {
    pub bootstrap: Value,
    pub listeners: Listeners,
    pub warnings: Vec<String>,
}

impl Translation {
    /// The clusters and the listeners of the bootstrap.
    pub fn resources(&self) -> (Vec<Value>, Vec<Value>) {
        let list = |key: &str| {
            self.bootstrap["static_resources"][key]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        (list("clusters"), list("listeners"))
    }
}

/// What went wrong translating the manifests. Every message starts with the
/// resource (`VirtualService/cpanel`) and, below it, the field's path.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// A field, kind or value the local mesh does not implement.
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
    /// A destination that is no Service of the mesh.
    #[error("{resource}: {path}.host: {host} is no Service of the mesh ({why})")]
    UnknownHost {
        resource: String,
        path: String,
        host: String,
        why: String,
    },
    /// A value that is wrong whatever runs it (a bad duration, a route
    /// without a destination, two rules for one host...).
    #[error("{resource}: {message}")]
    Invalid { resource: String, message: String },
}

/// A value wrong whatever runs it, in `resource` ([`MeshError::Invalid`]);
/// the one constructor every translation module uses.
pub(crate) fn invalid(resource: &str, message: String) -> MeshError {
    MeshError::Invalid {
        resource: resource.to_string(),
        message,
    }
}

/// Something the local mesh does not implement, in `resource`
/// ([`MeshError::Unsupported`]).
pub(crate) fn unsupported(resource: &str, message: String) -> MeshError {
    MeshError::Unsupported {
        resource: resource.to_string(),
        message,
    }
}

/// Listener names of the translated bootstrap: the gateway's and one per
/// service.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    pub gateway: Option<String>,
    /// Service key (`name.namespace`, [`Workload::service_key`]) → listener name.
    pub services: BTreeMap<String, String>,
}

/// The key of the gateway's plugins in [`translate`]'s `plugins`.
pub const GATEWAY: &str = "gateway";

/// The Istio gateway name a VirtualService binds to for sidecars.
const MESH_GATEWAY: &str = "mesh";

fn name_of(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// A resource's `spec` as typed values; a wrong type is reported with its path.
fn spec_of<T: DeserializeOwned + Default>(doc: &Value, resource: &str) -> Result<T, MeshError> {
    let Some(spec) = doc.get("spec").filter(|s| !s.is_null()) else {
        return Ok(T::default());
    };
    serde_path_to_error::deserialize(spec.clone()).map_err(|error| MeshError::Invalid {
        resource: resource.to_string(),
        message: format!("spec.{}: {}", error.path(), error.inner()),
    })
}

/// The labels the local mesh knows a workload by, as its Deployment sets
/// them on its pods.
fn labels_match(labels: &BTreeMap<String, String>, workload: &Workload) -> bool {
    labels.iter().all(|(key, value)| match key.as_str() {
        "app" => *value == workload.service,
        "version" => *value == workload.version,
        _ => false,
    })
}

/// A DestinationRule, read.
struct Rule {
    resource: String,
    spec: DestinationRuleSpec,
}

/// What routes need to know about the mesh: which services exist (by FQDN),
/// their subsets, and how their destination rules hash.
pub(crate) struct Index {
    services: BTreeMap<String, ServiceKey>,
    subsets: BTreeSet<(ServiceKey, String)>,
    /// (service, subset or none) → the route hash policy of its consistent hash.
    hashes: BTreeMap<(ServiceKey, Option<String>), Value>,
    /// Ports of the Kubernetes Services among the documents.
    service_ports: BTreeMap<ServiceKey, Vec<u32>>,
    /// (service, subset or none) → the port of its cluster that
    /// `portLevelSettings` are read for, and the hash policy of a route whose
    /// destination names that port ([`port_level::hash_for`]).
    port_hashes: BTreeMap<(ServiceKey, Option<String>), (u32, Option<Value>)>,
}

impl Index {
    /// The Service `host` stands for in a resource of `namespace`, if any.
    fn service(&self, host: &str, namespace: &str) -> Option<&ServiceKey> {
        self.services.get(&resolve(host, namespace))
    }

    /// The cluster a destination of a resource in `namespace` goes to;
    /// refuses hosts that are no Service of the mesh and subsets no
    /// DestinationRule defines.
    pub(crate) fn cluster_for(
        &self,
        resource: &str,
        namespace: &str,
        path: &str,
        destination: &Destination,
    ) -> Result<String, MeshError> {
        if destination.host.is_empty() {
            return Err(MeshError::Invalid {
                resource: resource.to_string(),
                message: format!("{path}.host is required"),
            });
        }
        let Some(service) = self.service(&destination.host, namespace) else {
            return Err(MeshError::UnknownHost {
                resource: resource.to_string(),
                path: path.to_string(),
                host: destination.host.clone(),
                why: hosts::no_service_hint(&destination.host, namespace),
            });
        };
        if let Some(number) = destination.port.as_ref().and_then(|p| p.number)
            && let Some(ports) = self.service_ports.get(service)
            && !ports.contains(&number)
        {
            return Err(MeshError::Invalid {
                resource: resource.to_string(),
                message: format!(
                    "{path}.port.number: Service {service} has no port {number} (its ports: {ports:?})"
                ),
            });
        }
        match &destination.subset {
            Some(subset) if self.subsets.contains(&(service.clone(), subset.clone())) => {
                Ok(cluster_name(service, Some(subset)))
            }
            Some(subset) => Err(MeshError::UnknownSubset {
                resource: resource.to_string(),
                host: destination.host.clone(),
                subset: subset.clone(),
            }),
            None => Ok(cluster_name(service, None)),
        }
    }

    /// The hash policy of the consistent-hash load balancer the destination's
    /// rule (or its subset) asks for, if any.
    pub(crate) fn hash_policy(&self, destination: &Destination, namespace: &str) -> Option<Value> {
        let service = self.service(&destination.host, namespace)?.clone();
        if let Some(number) = destination.port.as_ref().and_then(|p| p.number)
            && let Some((port, hash)) = self
                .port_hashes
                .get(&(service.clone(), destination.subset.clone()))
            && *port == number
        {
            return hash.clone();
        }
        self.hashes
            .get(&(service.clone(), destination.subset.clone()))
            .or_else(|| self.hashes.get(&(service, None)))
            .cloned()
    }
}

/// `outbound|name.namespace` and `outbound|name.namespace|subset`.
fn cluster_name(service: &ServiceKey, subset: Option<&str>) -> String {
    match subset {
        Some(subset) => format!("outbound|{service}|{subset}"),
        None => format!("outbound|{service}"),
    }
}

/// A gateway host as written in a `Gateway` server (`ns/host`, `*/host`,
/// `./host` or `host`): the namespace it admits VirtualServices from (`None`
/// for any) and the host.
fn server_host<'a>(
    entry: &'a str,
    gateway_namespace: Option<&'a str>,
) -> (Option<&'a str>, &'a str) {
    match entry.split_once('/') {
        Some(("*", host)) => (None, host),
        Some((".", host)) => (gateway_namespace, host),
        Some((namespace, host)) => (Some(namespace), host),
        None => (None, entry),
    }
}

/// Whether host pattern `wide` covers host `name` (Istio's wildcard hosts:
/// `*` covers everything, `*.a.com` covers `b.a.com` and `*.b.a.com`).
fn covers(wide: &str, name: &str) -> bool {
    if wide == "*" || wide == name {
        return true;
    }
    match wide.strip_prefix('*') {
        Some(suffix) => name.ends_with(suffix) && name.len() > suffix.len(),
        None => false,
    }
}

/// The hosts a VirtualService serves on a gateway server: the more specific
/// of each pair where one covers the other, as Istio intersects them.
fn intersect(server_hosts: &[&str], vs_hosts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for server in server_hosts {
        for vs in vs_hosts {
            let chosen = if covers(server, vs) {
                Some(vs.as_str())
            } else if covers(vs, server) {
                Some(*server)
            } else {
                None
            };
            if let Some(host) = chosen.map(str::to_lowercase)
                && !out.contains(&host)
            {
                out.push(host);
            }
        }
    }
    out
}

/// Envoy domains for a gateway host; the port a client puts in `Host` is
/// ignored, as Istio's gateways ignore it.
fn domains(host: &str) -> Vec<String> {
    if host == "*" || host.starts_with('*') {
        vec![host.to_string()]
    } else {
        vec![host.to_string(), format!("{host}:*")]
    }
}

/// Translates `documents` (any mix of kinds; Kubernetes Services declare
/// services, other non-Istio kinds are ignored) for `workloads`.
/// `gateway_port` fixes the gateway listener's port (0 picks a free one);
/// `service_ports` fixes the per-Service listeners' ports (missing ones get
/// a free one); `plugins` (Wasm filters) run before the fault filter and the
/// router on the listener of the Service they are keyed by, or on the
/// gateway's under the key [`GATEWAY`]. Services are keyed `name.namespace`
/// ([`Workload::service_key`]) in `service_ports`, `plugins` and the result.
///
/// Every service with a workload, or with a Kubernetes `Service` among the
/// documents, is part of the mesh: a destination there with no ready
/// workload gets a cluster without endpoints (Envoy answers 503, as a
/// cluster does for a Service with no ready pods). Hosts resolve as istiod
/// resolves them ([`resolve`]), in each resource's namespace.
pub fn translate(
    documents: &[Value],
    workloads: &[Workload],
    gateway_port: u16,
    service_ports: &BTreeMap<String, u16>,
    plugins: &BTreeMap<String, Vec<HttpFilter>>,
) -> Result<Translation, MeshError> {
    // As `kubectl apply` leaves a cluster: a later document with the same
    // kind, namespace and name replaces the earlier one, in its place.
    // The API group is part of the identity: Istio's Gateway and the
    // Gateway API's are different kinds to Kubernetes.
    let key = |d: &Value| {
        (
            d["apiVersion"]
                .as_str()
                .and_then(|v| v.split_once('/'))
                .map(|(group, _)| group.to_string()),
            d["kind"].clone(),
            d["metadata"]["namespace"].clone(),
            d["metadata"]["name"].clone(),
        )
    };
    let mut latest: Vec<&Value> = Vec::new();
    for doc in documents {
        match latest.iter().position(|d| key(d) == key(doc)) {
            Some(index) => latest[index] = doc,
            None => latest.push(doc),
        }
    }

    let mut warnings = Vec::new();
    // Delegate VirtualServices merged into their roots, as istiod does first.
    let expanded = delegate::expand(&latest, &mut warnings)?;
    let latest: Vec<&Value> = expanded.iter().collect();
    let mut rules: Vec<(String, String, DestinationRuleSpec)> = Vec::new();
    let mut virtual_services: Vec<(String, String, VirtualServiceSpec)> = Vec::new();
    let mut gateways: Vec<(String, String, String, GatewaySpec)> = Vec::new();
    let mut declared: BTreeMap<ServiceKey, Vec<u32>> = BTreeMap::new();
    let mut entries: Vec<service_entry::Entry> = Vec::new();
    let mut tcp_services: BTreeSet<ServiceKey> = BTreeSet::new();
    // The `tcp` routes of each VirtualService, in `virtual_services` order.
    let mut tcp_routes: Vec<Vec<tcp::TcpRoute>> = Vec::new();
    let mut selectors: BTreeMap<ServiceKey, BTreeMap<String, String>> = BTreeMap::new();
    let mut gateway_api_documents: Vec<&Value> = Vec::new();
    for doc in &latest {
        let resource = name_of(doc);
        let namespace = doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string();
        if gateway_api::is_gateway_api(doc) {
            gateway_api::check(doc, &resource)?;
            gateway_api_documents.push(doc);
            continue;
        }
        if !istio_manifests::is_istio(doc) {
            if doc["kind"] == "Service" && doc["apiVersion"] == "v1" {
                let name = doc["metadata"]["name"].as_str().unwrap_or_default();
                if let Ok(selector) = serde_json::from_value::<BTreeMap<String, String>>(
                    doc["spec"]["selector"].clone(),
                ) {
                    selectors.insert(ServiceKey::new(name, &namespace), selector);
                }
                let port_list = doc["spec"]["ports"].as_array().cloned().unwrap_or_default();
                match port_list.iter().filter(|p| tcp::is_tcp_port(p)).count() {
                    0 => {}
                    n if n == port_list.len() => {
                        tcp_services.insert(ServiceKey::new(name, &namespace));
                    }
                    _ => {
                        return Err(MeshError::Unsupported {
                            resource,
                            message: "spec.ports: TCP and HTTP ports in one Service; the local mesh gives a Service one listener, so its ports speak one protocol".to_string(),
                        });
                    }
                }
                let ports = doc["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["port"].as_u64())
                    .filter_map(|p| u32::try_from(p).ok())
                    .collect();
                declared.insert(ServiceKey::new(name, &namespace), ports);
            }
            continue;
        }
        supported::check(doc, &resource)?;
        match doc["kind"].as_str() {
            Some("DestinationRule") => {
                let spec: DestinationRuleSpec = spec_of(doc, &resource)?;
                if spec.host.is_empty() {
                    return Err(MeshError::Invalid {
                        resource,
                        message: "spec.host is required".to_string(),
                    });
                }
                rules.push((resource, namespace, spec));
            }
            Some("VirtualService") => {
                let spec: VirtualServiceSpec = spec_of(doc, &resource)?;
                let routes: tcp::TcpRoutes = spec_of(doc, &resource)?;
                tcp_routes.push(routes.tcp);
                virtual_services.push((resource, namespace, spec));
            }
            Some("Gateway") => {
                let spec: GatewaySpec = spec_of(doc, &resource)?;
                let name = doc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                gateways.push((resource, namespace, name, spec));
            }
            Some("ServiceEntry") => {
                let spec: service_entry::ServiceEntrySpec = spec_of(doc, &resource)?;
                entries.extend(service_entry::read(&resource, &namespace, &spec)?);
            }
            // WasmPlugins arrive as `plugins`, built by the caller.
            _ => {}
        }
    }

    let mut services: BTreeSet<ServiceKey> = workloads
        .iter()
        .map(|w| ServiceKey::new(&w.service, &w.namespace))
        .collect();
    services.extend(declared.keys().cloned());
    // Each ServiceEntry host is a service of the mesh too, known by the host.
    let mut entry_of: BTreeMap<ServiceKey, service_entry::Entry> = BTreeMap::new();
    for entry in entries {
        if let Some(other) = services
            .iter()
            .find(|s| s.fqdn() == entry.key.fqdn() || s.to_string() == entry.key.to_string())
        {
            return Err(MeshError::Unsupported {
                resource: entry.resource.clone(),
                message: format!(
                    "spec.hosts: {} is already {} ({other}); the local mesh takes one service per host",
                    entry.key,
                    if other.entry {
                        "the host of another ServiceEntry"
                    } else {
                        "a Service of the mesh"
                    }
                ),
            });
        }
        declared.insert(entry.key.clone(), vec![entry.port]);
        services.insert(entry.key.clone());
        entry_of.insert(entry.key.clone(), entry);
    }
    // Which Istio Gateways apply to the local gateway; the others apply to
    // no proxy, as in a cluster without a gateway of their labels.
    let selection: Vec<(&str, &BTreeMap<String, String>)> = gateways
        .iter()
        .map(|(resource, _, _, spec)| (resource.as_str(), &spec.selector))
        .collect();
    let applies = gateway_selector::applying(&selection, &mut warnings)?;
    // Gateways made from Gateway API resources come later and always apply.
    let applies_to = |g: usize| applies.get(g).copied().unwrap_or(true);
    let by_fqdn: BTreeMap<String, ServiceKey> =
        services.iter().map(|s| (s.fqdn(), s.clone())).collect();

    // Each rule applies to the Service its host resolves to; one for a host
    // that is no Service does nothing, as in a cluster.
    let mut rule_of: BTreeMap<ServiceKey, Rule> = BTreeMap::new();
    for (resource, namespace, spec) in rules {
        let Some(service) = by_fqdn.get(&resolve(&spec.host, &namespace)) else {
            warnings.push(format!(
                "{resource}: spec.host {} is no Service of the mesh ({}): the rule applies to nothing",
                spec.host,
                hosts::no_service_hint(&spec.host, &namespace)
            ));
            continue;
        };
        if let Some(other) = rule_of.get(service) {
            return Err(MeshError::Invalid {
                resource,
                message: format!(
                    "spec.host: {} already has {}; the local mesh takes one DestinationRule per host",
                    spec.host, other.resource
                ),
            });
        }
        rule_of.insert(service.clone(), Rule { resource, spec });
    }

    // Clusters: one per service (all its endpoints) and one per subset.
    let mut bootstrap = Bootstrap::new();
    let mut subsets = BTreeSet::new();
    let mut hashes = BTreeMap::new();
    let mut port_hashes = BTreeMap::new();
    // A Service's endpoints: its workloads, or, for a Service whose selector
    // names a version (`cpanel-v1`: app cpanel, version v1), the workloads
    // with those labels, as Kubernetes selects the pods.
    let workloads_of = |service: &ServiceKey| -> Vec<&Workload> {
        let by_labels = selectors.get(service).filter(|s| {
            s.contains_key("version") && s.keys().all(|k| k == "app" || k == "version")
        });
        workloads
            .iter()
            .filter(|w| {
                w.namespace == service.namespace
                    && match by_labels {
                        Some(selector) => labels_match(selector, w),
                        None => w.service == service.name,
                    }
            })
            .collect()
    };
    for service in &services {
        let ports: Vec<u16> = workloads_of(service).into_iter().map(|w| w.port).collect();
        let rule = rule_of.get(service);
        let (policy, resource) = match rule {
            Some(rule) => (
                rule.spec.traffic_policy.clone().unwrap_or_default(),
                rule.resource.clone(),
            ),
            None => (
                TrafficPolicy::default(),
                format!("Service/{}", service.name),
            ),
        };
        let cluster_port = match rule {
            Some(rule) => port_level::cluster_port(
                &rule.resource,
                &rule.spec,
                declared.get(service).map(Vec::as_slice),
                &mut warnings,
            )?,
            None => None,
        };
        let cluster_policy = port_level::at_port(&policy, cluster_port);
        let mut cluster = clusters::cluster(
            &cluster_name(service, None),
            &ports,
            &cluster_policy,
            &resource,
            "spec.trafficPolicy",
        )?;
        if let Some(entry) = entry_of.get(service) {
            service_entry::set_endpoints(&mut cluster, entry);
        }
        bootstrap = bootstrap.raw_cluster(cluster);
        let port_hash = |subset: Option<&str>| -> Result<Option<(u32, Option<Value>)>, MeshError> {
            let (Some(rule), Some(port)) = (rule, cluster_port) else {
                return Ok(None);
            };
            let hash = port_level::hash_for(&rule.spec, subset, Some(port))
                .map(|hash| clusters::hash_policy(hash, &rule.resource, "spec.trafficPolicy"))
                .transpose()?;
            Ok(Some((port, hash)))
        };
        if let Some(entry) = port_hash(None)? {
            port_hashes.insert((service.clone(), None), entry);
        }
        if let Some(hash) = policy
            .load_balancer
            .as_ref()
            .and_then(|lb| lb.consistent_hash.as_ref())
        {
            hashes.insert(
                (service.clone(), None),
                clusters::hash_policy(
                    hash,
                    &resource,
                    "spec.trafficPolicy.loadBalancer.consistentHash",
                )?,
            );
        }
        let Some(rule) = rule else { continue };
        if entry_of.contains_key(service) && !rule.spec.subsets.is_empty() {
            return Err(MeshError::Unsupported {
                resource: rule.resource.clone(),
                message: format!(
                    "spec.subsets: {} is a ServiceEntry host; subsets of its endpoints (by their labels) are not supported by the local mesh",
                    rule.spec.host
                ),
            });
        }
        for (i, subset) in rule.spec.subsets.iter().enumerate() {
            let path = format!("spec.subsets[{i}]");
            if subset.name.is_empty() {
                return Err(MeshError::Invalid {
                    resource: rule.resource.clone(),
                    message: format!("{path}.name is required"),
                });
            }
            if let Some(key) = subset
                .labels
                .keys()
                .find(|k| !matches!(k.as_str(), "app" | "version"))
            {
                return Err(MeshError::Unsupported {
                    resource: rule.resource.clone(),
                    message: format!(
                        "{path}.labels[{key}]: the local mesh knows a workload by its app and version labels only"
                    ),
                });
            }
            if !subsets.insert((service.clone(), subset.name.clone())) {
                return Err(MeshError::Invalid {
                    resource: rule.resource.clone(),
                    message: format!("{path}.name: subset {} is defined twice", subset.name),
                });
            }
            let ports: Vec<u16> = workloads_of(service)
                .into_iter()
                .filter(|w| labels_match(&subset.labels, w))
                .map(|w| w.port)
                .collect();
            let merged = policy.overridden_by(subset.traffic_policy.as_ref());
            let subset_policy = port_level::subset_at_port(
                &cluster_policy,
                subset.traffic_policy.as_ref(),
                cluster_port,
            );
            if let Some(entry) = port_hash(Some(&subset.name))? {
                port_hashes.insert((service.clone(), Some(subset.name.clone())), entry);
            }
            bootstrap = bootstrap.raw_cluster(clusters::cluster(
                &cluster_name(service, Some(&subset.name)),
                &ports,
                &subset_policy,
                &rule.resource,
                &format!("{path}.trafficPolicy"),
            )?);
            if let Some(hash) = merged
                .load_balancer
                .as_ref()
                .and_then(|lb| lb.consistent_hash.as_ref())
            {
                hashes.insert(
                    (service.clone(), Some(subset.name.clone())),
                    clusters::hash_policy(
                        hash,
                        &rule.resource,
                        &format!("{path}.trafficPolicy.loadBalancer.consistentHash"),
                    )?,
                );
            }
        }
    }
    let index = Index {
        services: by_fqdn,
        subsets,
        hashes,
        service_ports: declared,
        port_hashes,
    };

    // Gateway API resources, as istiod's Gateway controller converts them.
    if !gateway_api_documents.is_empty() {
        let converted = gateway_api::convert(&gateway_api_documents, &index)?;
        if let (Some(istio), Some(kube)) = (gateways.first(), converted.gateways.first()) {
            return Err(MeshError::Unsupported {
                resource: kube.0.clone(),
                message: format!(
                    "the local mesh has one gateway listener, and {} (an Istio Gateway) already configures it; in a cluster the Gateway API Gateway is a proxy of its own (istiod's automated deployment), so apply one of the two",
                    istio.0
                ),
            });
        }
        gateways.extend(converted.gateways);
        virtual_services.extend(converted.virtual_services);
    }

    let with_filters = |listener: Listener, key: &str, with_cors: bool| {
        let mut listener = listener;
        for filter in plugins.get(key).into_iter().flatten() {
            listener = listener.filter(filter.clone());
        }
        // An empty fault filter: routes switch faults on per route.
        listener = listener.filter(HttpFilter::Raw(json!({
            "name": "envoy.filters.http.fault",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}
        })));
        if with_cors {
            listener = listener.filter(HttpFilter::Raw(cors::filter()));
        }
        listener
    };

    // Which gateways each VirtualService is bound to.
    let gateway_of = |reference: &str, vs_namespace: &str| {
        let (namespace, name) = match reference.split_once('/') {
            Some((namespace, name)) => (namespace, name),
            None => (vs_namespace, reference),
        };
        gateways
            .iter()
            .position(|(_, gw_namespace, gw_name, _)| gw_name == name && gw_namespace == namespace)
    };
    // The sidecar VirtualServices of each service.
    let mut mesh_bound: BTreeMap<ServiceKey, Vec<usize>> = BTreeMap::new();
    let mut gateway_bound: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, (resource, namespace, spec)) in virtual_services.iter().enumerate() {
        let mut bound = Vec::new();
        let mut to_mesh = spec.gateways.is_empty();
        for (g, reference) in spec.gateways.iter().enumerate() {
            if reference == MESH_GATEWAY {
                to_mesh = true;
                continue;
            }
            match gateway_of(reference, namespace) {
                Some(gateway) if applies_to(gateway) => bound.push(gateway),
                // A Gateway that applies to no proxy: nothing to bind to.
                Some(_) => {}
                None => {
                    return Err(MeshError::Invalid {
                        resource: resource.clone(),
                        message: format!(
                            "spec.gateways[{g}]: no Gateway {reference} among the manifests"
                        ),
                    });
                }
            }
        }
        if spec.hosts.is_empty() {
            return Err(MeshError::Invalid {
                resource: resource.clone(),
                message: "spec.hosts: at least one host is required".to_string(),
            });
        }
        if to_mesh {
            if let Some(h) = spec.hosts.iter().position(|h| h.contains('*')) {
                return Err(MeshError::Unsupported {
                    resource: resource.clone(),
                    message: format!(
                        "spec.hosts[{h}]: wildcard hosts for sidecars (gateways: mesh) are not supported by the local mesh; name the service"
                    ),
                });
            }
            for (h, host) in spec.hosts.iter().enumerate() {
                match index.service(host, namespace) {
                    Some(service) => {
                        let list = mesh_bound.entry(service.clone()).or_default();
                        if !list.contains(&i) {
                            list.push(i);
                        }
                    }
                    None => warnings.push(format!(
                        "{resource}: spec.hosts[{h}] {host} is no Service of the mesh ({}): inert for sidecars, as in a cluster without a ServiceEntry for it",
                        hosts::no_service_hint(host, namespace)
                    )),
                }
            }
        }
        if !bound.is_empty() {
            gateway_bound.push((i, bound));
        }
    }

    // One listener per service: what its callers' sidecars do for its host.
    let mut listeners = Listeners::default();
    let mut rendered = Vec::new();
    // A TCP Service's listener: its `tcp_proxy` filter, by listener name.
    let mut tcp_filters: BTreeMap<String, Value> = BTreeMap::new();
    let rule_for = |destination: &Destination, namespace: &str| {
        index
            .service(&destination.host, namespace)
            .and_then(|service| rule_of.get(service))
            .map(|rule| &rule.spec)
    };
    for service in &services {
        let bound = mesh_bound.get(service).cloned().unwrap_or_default();
        if bound.len() > 1 {
            let names: Vec<&str> = bound
                .iter()
                .map(|i| virtual_services[*i].0.as_str())
                .collect();
            return Err(MeshError::Invalid {
                resource: names[1].to_string(),
                message: format!(
                    "spec.hosts: {} already has {}; Istio uses only one VirtualService per host for sidecars",
                    service.fqdn(),
                    names[0]
                ),
            });
        }
        if tcp_services.contains(service) {
            // A TCP port: the VirtualService's `tcp` routes, not its `http` ones.
            let key = service.to_string();
            let name = format!("svc-{key}");
            let port = match index.service_ports.get(service).map(Vec::as_slice) {
                Some([only]) => Some(*only),
                _ => None,
            };
            let virtual_service = bound.first().map(|i| {
                let (resource, namespace, _) = &virtual_services[*i];
                let routes = tcp_routes.get(*i).map_or(&[][..], Vec::as_slice);
                (resource.as_str(), namespace.as_str(), routes)
            });
            let filter = tcp::proxy_filter(
                virtual_service,
                port,
                &cluster_name(service, None),
                rule_of.get(service).map(|rule| &rule.spec),
                &index,
                &rule_for,
            )?;
            let mut listener =
                Listener::new(name.clone()).stat_prefix(format!("svc_{}", service.stat_name()));
            if let Some(port) = service_ports.get(&key) {
                listener = listener.port(*port);
            }
            rendered.push((listener, ListenerClass::SidecarOutbound));
            tcp_filters.insert(name.clone(), filter);
            listeners.services.insert(key, name);
            continue;
        }
        let mut host = VirtualHost::new(service.to_string()).domains(["*"]);
        let mut with_cors = false;
        match bound.first() {
            Some(i) => {
                let (resource, namespace, spec) = &virtual_services[*i];
                for route in routes::http_routes(resource, namespace, spec, &index)? {
                    with_cors |= cors::has_policy(&route);
                    host = host.route(Route::raw(route));
                }
            }
            None => {
                // `HashForService`: the default route hashes as the Service's
                // port does.
                let port = index
                    .port_hashes
                    .get(&(service.clone(), None))
                    .map(|(port, _)| PortSelector {
                        number: Some(*port),
                    });
                let hash = index.hash_policy(
                    &Destination {
                        host: service.fqdn(),
                        port,
                        ..Destination::default()
                    },
                    &service.namespace,
                );
                host = host.route(Route::raw(routes::default_route(
                    &cluster_name(service, None),
                    hash,
                )));
            }
        }
        let key = service.to_string();
        let name = format!("svc-{key}");
        let mut listener =
            Listener::new(name.clone()).stat_prefix(format!("svc_{}", service.stat_name()));
        if let Some(port) = service_ports.get(&key) {
            listener = listener.port(*port);
        }
        rendered.push((
            with_filters(listener.virtual_host(host), &key, with_cors),
            ListenerClass::SidecarOutbound,
        ));
        listeners.services.insert(key, name);
    }

    // The ingress gateway: one listener for every Gateway's servers.
    if (0..gateways.len()).any(applies_to) {
        let mut ports = BTreeSet::new();
        let applying = gateways
            .iter()
            .enumerate()
            .filter(|(g, _)| applies_to(*g))
            .map(|(_, gateway)| gateway);
        for (resource, _, _, spec) in applying.clone() {
            for (s, server) in spec.servers.iter().enumerate() {
                if !matches!(
                    server.port.protocol.to_ascii_uppercase().as_str(),
                    "HTTP" | "HTTP2"
                ) {
                    return Err(MeshError::Unsupported {
                        resource: resource.clone(),
                        message: format!(
                            "spec.servers[{s}].port.protocol: {} is not supported by the local mesh (HTTP only)",
                            server.port.protocol
                        ),
                    });
                }
                ports.insert(server.port.number);
            }
        }
        if ports.len() > 1 {
            return Err(MeshError::Unsupported {
                resource: applying
                    .clone()
                    .next()
                    .map(|gateway| gateway.0.clone())
                    .unwrap_or_default(),
                message: format!(
                    "spec.servers: ports {ports:?}; the local mesh's gateway listens on one port"
                ),
            });
        }
        // Virtual hosts by host name, routes in VirtualService order.
        let mut virtual_hosts: Vec<(String, Vec<Value>)> = Vec::new();
        for (i, bound) in &gateway_bound {
            let (resource, vs_namespace, spec) = &virtual_services[*i];
            let mut hosts = Vec::new();
            for g in bound {
                let (_, gw_namespace, _, gateway) = &gateways[*g];
                for server in &gateway.servers {
                    let admitted: Vec<&str> = server
                        .hosts
                        .iter()
                        .map(|entry| server_host(entry, Some(gw_namespace.as_str())))
                        .filter(|(namespace, _)| namespace.is_none_or(|n| n == vs_namespace))
                        .map(|(_, host)| host)
                        .collect();
                    for host in intersect(&admitted, &spec.hosts) {
                        if !hosts.contains(&host) {
                            hosts.push(host);
                        }
                    }
                }
            }
            if hosts.is_empty() {
                return Err(MeshError::Invalid {
                    resource: resource.clone(),
                    message: format!(
                        "spec.hosts: none of {:?} is served by its gateways' servers",
                        spec.hosts
                    ),
                });
            }
            let mut routes = routes::http_routes(resource, vs_namespace, spec, &index)?;
            if spec.gateway_semantics {
                gateway_api::apply_gateway_semantics(&mut routes);
            }
            for host in hosts {
                match virtual_hosts.iter_mut().find(|(h, _)| *h == host) {
                    Some((_, existing)) => existing.extend(routes.iter().cloned()),
                    None => virtual_hosts.push((host, routes.clone())),
                }
            }
        }
        let with_cors = virtual_hosts
            .iter()
            .any(|(_, routes)| routes.iter().any(cors::has_policy));
        let mut listener = Listener::new("gateway")
            .stat_prefix("gateway")
            .port(gateway_port);
        if virtual_hosts.is_empty() {
            // Istio's gateway with nothing bound: 404 for every request.
            listener = listener.virtual_host(VirtualHost::new("blackhole").domains(["*"]));
        }
        for (host, routes) in virtual_hosts {
            // Istio merges the VirtualServices of one host in order and then
            // moves catch-all routes last, keeping their order.
            let (catch_all, specific): (Vec<Value>, Vec<Value>) =
                routes.into_iter().partition(routes::is_catch_all);
            let mut virtual_host = VirtualHost::new(host.clone()).domains(domains(&host));
            for route in specific.into_iter().chain(catch_all) {
                virtual_host = virtual_host.route(Route::raw(route));
            }
            listener = listener.virtual_host(virtual_host);
        }
        rendered.push((
            with_filters(listener, GATEWAY, with_cors),
            ListenerClass::Gateway,
        ));
        listeners.gateway = Some("gateway".to_string());
    }

    // The envoy-rig builder renders the routes and filters; every
    // connection manager then gets an Istio proxy's defaults.
    let mut classes = BTreeMap::new();
    for (listener, class) in rendered {
        classes.insert(listener.name().to_string(), class);
        bootstrap = bootstrap.listener(listener);
    }
    let mut json = bootstrap.to_json();
    if let Some(list) = json["static_resources"]["listeners"].as_array_mut() {
        for listener in list {
            if let Some(filter) = listener["name"]
                .as_str()
                .and_then(|name| tcp_filters.get(name))
            {
                listener["filter_chains"] = json!([{"filters": [filter]}]);
                continue;
            }
            let class = listener["name"]
                .as_str()
                .and_then(|name| classes.get(name))
                .copied()
                .unwrap_or(ListenerClass::SidecarOutbound);
            istio_connection_manager(listener, class);
        }
    }
    Ok(Translation {
        bootstrap: json,
        listeners,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_hosts_intersect_like_istio() {
        assert_eq!(
            intersect(&["*"], &["airport.local".into()]),
            ["airport.local"]
        );
        assert_eq!(
            intersect(&["*.airport.local"], &["*".into()]),
            ["*.airport.local"]
        );
        assert_eq!(
            intersect(&["*.airport.local"], &["test.airport.local".into()]),
            ["test.airport.local"]
        );
        assert!(intersect(&["airport.local"], &["test.airport.local".into()]).is_empty());
        assert!(intersect(&["*.airport.local"], &["airport.local".into()]).is_empty());
    }

    #[test]
    fn server_hosts_carry_a_namespace() {
        assert_eq!(server_host("*/a.b", Some("x")), (None, "a.b"));
        assert_eq!(server_host("./a.b", Some("x")), (Some("x"), "a.b"));
        assert_eq!(server_host("y/a.b", Some("x")), (Some("y"), "a.b"));
        assert_eq!(server_host("a.b", Some("x")), (None, "a.b"));
    }

    #[test]
    fn gateway_domains_ignore_the_port() {
        assert_eq!(domains("*"), ["*"]);
        assert_eq!(
            domains("airport.local"),
            ["airport.local", "airport.local:*"]
        );
    }
}
