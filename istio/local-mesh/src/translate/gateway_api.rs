//! Gateway API (`gateway.networking.k8s.io/v1`) resources with Istio's meaning.
//!
//! istiod never programs Envoy from a `Gateway` or an `HTTPRoute` directly:
//! its Gateway controller (`pilot/pkg/config/kube/gateway/`, Istio 1.30)
//! turns each listener of an Istio-class `Gateway` into an internal Istio
//! Gateway, and each route, per parent listener and hostname, into an
//! internal VirtualService marked with "gateway semantics"; the ordinary
//! VirtualService translation then runs, with a few branches for those
//! semantics. This module does the same with the translator's own model
//! ([`super::model`]): [`convert`] yields Gateways and VirtualServices that
//! the rest of [`super::translate`] handles like written ones, and
//! [`apply_gateway_semantics`] makes the gateway-semantics changes to their
//! Envoy routes. What it does not implement is refused with its field path
//! (the [`super::supported`] allow-list, with this module's shapes). The
//! facts, each with the istiod file it comes from, are in ISTIO-SUPPORT.md
//! ("Gateway API").

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::hosts::{DEFAULT_NAMESPACE, fqdn};
use super::model::{
    Destination, DirectResponse, GatewaySpec, HeaderOperations, Headers, HttpRoute, MatchRequest,
    MirrorPolicy, Percent, PortSelector, Redirect, RegexRewrite, Retry, Rewrite, RouteDestination,
    Server, ServerPort, StringMatch, VirtualServiceSpec,
};
use super::supported::Shape::{self, Leaf, List, Object};
use super::{Index, MeshError, covers, invalid, spec_of, unsupported};

/// The API group of the Gateway API.
const GROUP: &str = "gateway.networking.k8s.io";

/// The GatewayClass whose Gateways istiod programs (its built-in class).
const ISTIO_CLASS: &str = "istio";

/// Whether `doc` is a Gateway API resource (any version of the group).
pub(crate) fn is_gateway_api(doc: &Value) -> bool {
    doc["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .is_some_and(|(group, _)| group == GROUP)
}

const HEADER_LIST: Shape = List(&Object(&[("name", Leaf), ("value", Leaf)]));

const HEADER_FILTER: Shape = Object(&[
    ("set", HEADER_LIST),
    ("add", HEADER_LIST),
    ("remove", List(&Leaf)),
]);

const PATH_MODIFIER: Shape = Object(&[
    ("type", Leaf),
    ("replaceFullPath", Leaf),
    ("replacePrefixMatch", Leaf),
]);

const BACKEND_OBJECT: Shape = Object(&[
    ("group", Leaf),
    ("kind", Leaf),
    ("name", Leaf),
    ("namespace", Leaf),
    ("port", Leaf),
]);

const RULE_FILTER: Shape = Object(&[
    ("type", Leaf),
    ("requestHeaderModifier", HEADER_FILTER),
    ("responseHeaderModifier", HEADER_FILTER),
    (
        "requestRedirect",
        Object(&[
            ("scheme", Leaf),
            ("hostname", Leaf),
            ("path", PATH_MODIFIER),
            ("port", Leaf),
            ("statusCode", Leaf),
        ]),
    ),
    (
        "urlRewrite",
        Object(&[("hostname", Leaf), ("path", PATH_MODIFIER)]),
    ),
    (
        "requestMirror",
        Object(&[
            ("backendRef", BACKEND_OBJECT),
            ("percent", Leaf),
            (
                "fraction",
                Object(&[("numerator", Leaf), ("denominator", Leaf)]),
            ),
        ]),
    ),
]);

/// Istio takes only header modifiers on a backend (`buildHTTPDestination`).
const BACKEND_FILTER: Shape = Object(&[
    ("type", Leaf),
    ("requestHeaderModifier", HEADER_FILTER),
    ("responseHeaderModifier", HEADER_FILTER),
]);

const NAME_MATCH: Shape = List(&Object(&[("type", Leaf), ("name", Leaf), ("value", Leaf)]));

const HTTP_ROUTE: Shape = Object(&[
    (
        "parentRefs",
        List(&Object(&[
            ("group", Leaf),
            ("kind", Leaf),
            ("namespace", Leaf),
            ("name", Leaf),
            ("sectionName", Leaf),
            ("port", Leaf),
        ])),
    ),
    ("hostnames", List(&Leaf)),
    (
        "rules",
        List(&Object(&[
            ("name", Leaf),
            (
                "matches",
                List(&Object(&[
                    ("path", Object(&[("type", Leaf), ("value", Leaf)])),
                    ("headers", NAME_MATCH),
                    ("queryParams", NAME_MATCH),
                    ("method", Leaf),
                ])),
            ),
            ("filters", List(&RULE_FILTER)),
            (
                "backendRefs",
                List(&Object(&[
                    ("group", Leaf),
                    ("kind", Leaf),
                    ("name", Leaf),
                    ("namespace", Leaf),
                    ("port", Leaf),
                    ("weight", Leaf),
                    ("filters", List(&BACKEND_FILTER)),
                ])),
            ),
            (
                "timeouts",
                Object(&[("request", Leaf), ("backendRequest", Leaf)]),
            ),
            (
                "retry",
                Object(&[
                    ("attempts", Leaf),
                    ("backoff", Leaf),
                    ("codes", List(&Leaf)),
                ]),
            ),
        ])),
    ),
]);

const GATEWAY: Shape = Object(&[
    ("gatewayClassName", Leaf),
    (
        "listeners",
        List(&Object(&[
            ("name", Leaf),
            ("hostname", Leaf),
            ("port", Leaf),
            ("protocol", Leaf),
            (
                "allowedRoutes",
                Object(&[("namespaces", Object(&[("from", Leaf)]))]),
            ),
        ])),
    ),
]);

/// Refuses the first field of a Gateway API document that the local mesh
/// does not translate, and kinds other than `Gateway` and `HTTPRoute`.
pub(crate) fn check(doc: &Value, resource: &str) -> Result<(), MeshError> {
    let shape = match doc["kind"].as_str() {
        Some("Gateway") => &GATEWAY,
        Some("HTTPRoute") => &HTTP_ROUTE,
        Some("GRPCRoute") => {
            return Err(MeshError::Unsupported {
                resource: resource.to_string(),
                message: format!(
                    "kind GRPCRoute ({GROUP}) is not supported by the local mesh: its upstreams speak HTTP/1.1 only, so a gRPC backend could not answer (istiod converts a GRPCRoute like an HTTPRoute, methods as /service/method paths: ISTIO-SUPPORT.md)"
                ),
            });
        }
        other => {
            return Err(MeshError::Unsupported {
                resource: resource.to_string(),
                message: format!(
                    "kind {} ({GROUP}) is not supported by the local mesh (Gateway and HTTPRoute are)",
                    other.unwrap_or("?")
                ),
            });
        }
    };
    super::supported::check_spec(doc, shape, resource)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KubeGateway {
    #[serde(default)]
    gateway_class_name: String,
    #[serde(default)]
    listeners: Vec<Listener>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listener {
    #[serde(default)]
    name: String,
    hostname: Option<String>,
    #[serde(default)]
    port: u32,
    #[serde(default)]
    protocol: String,
    allowed_routes: Option<AllowedRoutes>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct AllowedRoutes {
    namespaces: Option<RouteNamespaces>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RouteNamespaces {
    from: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpRouteSpec {
    #[serde(default)]
    parent_refs: Vec<ParentRef>,
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParentRef {
    group: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    name: String,
    section_name: Option<String>,
    port: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    name: Option<String>,
    matches: Option<Vec<RouteMatch>>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    backend_refs: Vec<BackendRef>,
    timeouts: Option<Timeouts>,
    retry: Option<RouteRetry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteMatch {
    path: Option<PathMatch>,
    #[serde(default)]
    headers: Vec<NameMatch>,
    #[serde(default)]
    query_params: Vec<NameMatch>,
    method: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct PathMatch {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct NameMatch {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(rename = "type", default)]
    kind: String,
    request_header_modifier: Option<HeaderFilter>,
    response_header_modifier: Option<HeaderFilter>,
    request_redirect: Option<RedirectFilter>,
    url_rewrite: Option<UrlRewrite>,
    request_mirror: Option<MirrorFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct HeaderFilter {
    #[serde(default)]
    set: Vec<NameValue>,
    #[serde(default)]
    add: Vec<NameValue>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct NameValue {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedirectFilter {
    scheme: Option<String>,
    hostname: Option<String>,
    path: Option<PathModifier>,
    port: Option<u32>,
    status_code: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PathModifier {
    #[serde(rename = "type", default)]
    kind: String,
    replace_full_path: Option<String>,
    replace_prefix_match: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct UrlRewrite {
    hostname: Option<String>,
    path: Option<PathModifier>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MirrorFilter {
    #[serde(default)]
    backend_ref: BackendObject,
    percent: Option<u32>,
    fraction: Option<Fraction>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Fraction {
    #[serde(default)]
    numerator: u32,
    denominator: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct BackendObject {
    group: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    name: String,
    namespace: Option<String>,
    port: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct BackendRef {
    #[serde(flatten)]
    object: BackendObject,
    weight: Option<u32>,
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Timeouts {
    request: Option<String>,
    backend_request: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RouteRetry {
    attempts: Option<i64>,
    backoff: Option<String>,
    #[serde(default)]
    codes: Vec<u32>,
}

/// What [`convert`] yields: internal Istio Gateways (resource, namespace,
/// name, spec) and VirtualServices (resource, namespace, spec), in the
/// shapes [`super::translate`] keeps written ones in.
#[derive(Debug, Default)]
pub(crate) struct Converted {
    pub gateways: Vec<(String, String, String, GatewaySpec)>,
    pub virtual_services: Vec<(String, String, VirtualServiceSpec)>,
}

/// What istiod merges the VirtualServices of routes by: the internal
/// gateway's namespace and name, and the host.
type VsKey = (String, String, String);

/// One listener of an Istio-class Gateway, as a route parent.
struct Parent {
    gateway: String,
    namespace: String,
    /// `<gateway>-istio-autogenerated-k8s-gateway-<listener>`: the internal
    /// Istio Gateway istiod names after the listener (`InternalGatewayName`).
    internal: String,
    listener: Listener,
    /// Hostnames of the Gateway's other listeners on the same port and
    /// protocol (`bannedHostnames` in `extractParentReferenceInfo`).
    banned: Vec<String>,
}

/// Converts the Gateway API documents (already through [`check`]) the way
/// istiod's Gateway controller does, resolving backends against `index`.
pub(crate) fn convert(documents: &[&Value], index: &Index) -> Result<Converted, MeshError> {
    let mut out = Converted::default();
    let mut parents: Vec<Parent> = Vec::new();
    let namespace_of = |doc: &Value| {
        doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string()
    };
    for doc in documents.iter().filter(|d| d["kind"] == "Gateway") {
        let resource = super::name_of(doc);
        let namespace = namespace_of(doc);
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        let gateway: KubeGateway = spec_of(doc, &resource)?;
        if gateway.gateway_class_name != ISTIO_CLASS {
            return Err(unsupported(
                &resource,
                format!(
                    "spec.gatewayClassName: {:?}; the local mesh plays Istio's own class, \"istio\" (another class is some other controller's, which istiod leaves alone)",
                    gateway.gateway_class_name
                ),
            ));
        }
        let mut servers = Vec::new();
        for (l, listener) in gateway.listeners.iter().enumerate() {
            let path = format!("spec.listeners[{l}]");
            if listener.protocol != "HTTP" {
                let hint = if listener.protocol.eq_ignore_ascii_case("http") {
                    " (Istio takes the upper-case \"HTTP\" only)"
                } else {
                    " (the local mesh runs plain HTTP only)"
                };
                return Err(unsupported(
                    &resource,
                    format!(
                        "{path}.protocol: {:?} is not supported{hint}",
                        listener.protocol
                    ),
                ));
            }
            let from = listener
                .allowed_routes
                .as_ref()
                .and_then(|a| a.namespaces.as_ref())
                .and_then(|n| n.from.as_deref())
                .unwrap_or("Same");
            let admitted = match from {
                "Same" => namespace.clone(),
                "All" => "*".to_string(),
                other => {
                    return Err(unsupported(
                        &resource,
                        format!(
                            "{path}.allowedRoutes.namespaces.from: {other:?} is not supported by the local mesh (Same or All)"
                        ),
                    ));
                }
            };
            let hostname = listener.hostname.clone().unwrap_or_else(|| "*".to_string());
            let internal = format!("{name}-istio-autogenerated-k8s-gateway-{}", listener.name);
            out.gateways.push((
                resource.clone(),
                namespace.clone(),
                internal.clone(),
                GatewaySpec {
                    // The local mesh's one gateway listener plays the
                    // Gateway's automated deployment.
                    selector: BTreeMap::from([("istio".to_string(), "ingressgateway".to_string())]),
                    servers: Vec::new(),
                },
            ));
            servers.push(Server {
                port: ServerPort {
                    number: listener.port,
                    protocol: "HTTP".to_string(),
                },
                hosts: vec![format!("{admitted}/{hostname}")],
            });
            let banned = gateway
                .listeners
                .iter()
                .enumerate()
                .filter(|(other, o)| {
                    *other != l && o.port == listener.port && o.protocol == listener.protocol
                })
                .map(|(_, o)| o.hostname.clone().unwrap_or_default())
                .filter(|h| *h != listener.hostname.clone().unwrap_or_default())
                .collect();
            parents.push(Parent {
                gateway: name.to_string(),
                namespace: namespace.clone(),
                internal,
                listener: listener.clone(),
                banned,
            });
        }
        // One server per internal gateway, as istiod writes them.
        let first = out.gateways.len() - servers.len();
        for (entry, server) in out.gateways[first..].iter_mut().zip(servers) {
            entry.3.servers.push(server);
        }
    }

    // (internal gateway, host) → the VirtualService's resource names and
    // routes, in route order (istiod merges by this key).
    // With the namespace of the oldest route, which the merged
    // VirtualService takes (`mergeHTTPRoutes` keeps the first one's meta).
    let mut merged: Vec<(VsKey, Vec<String>, String, Vec<HttpRoute>)> = Vec::new();
    for doc in documents.iter().filter(|d| d["kind"] == "HTTPRoute") {
        let resource = super::name_of(doc);
        let namespace = namespace_of(doc);
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        let spec: HttpRouteSpec = spec_of(doc, &resource)?;
        let hostnames: Vec<String> = if spec.hostnames.is_empty() {
            vec!["*".to_string()]
        } else {
            spec.hostnames
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect()
        };
        // The (internal gateway, host) keys this route attaches to.
        let mut keys: Vec<VsKey> = Vec::new();
        for (p, reference) in spec.parent_refs.iter().enumerate() {
            let mut attached = false;
            let path = format!("spec.parentRefs[{p}]");
            let group = reference.group.as_deref().unwrap_or(GROUP);
            let kind = reference.kind.as_deref().unwrap_or("Gateway");
            if group != GROUP || kind != "Gateway" {
                let why = if kind == "Service" {
                    "a Service parent is a mesh (GAMMA) route, which the local mesh does not translate; route the Service's callers with a VirtualService"
                } else {
                    "the local mesh attaches routes to Gateways only"
                };
                let named = if group.is_empty() {
                    kind.to_string()
                } else {
                    format!("{kind}.{group}")
                };
                return Err(unsupported(&resource, format!("{path}: {named}: {why}")));
            }
            let parent_namespace = reference.namespace.clone().unwrap_or(namespace.clone());
            let listeners: Vec<&Parent> = parents
                .iter()
                .filter(|l| l.gateway == reference.name && l.namespace == parent_namespace)
                .collect();
            if listeners.is_empty() {
                return Err(invalid(
                    &resource,
                    format!(
                        "{path}: no Gateway {parent_namespace}/{} among the manifests",
                        reference.name
                    ),
                ));
            }
            let mut refused = Vec::new();
            for parent in listeners {
                if let Some(why) = not_allowed(parent, reference, &hostnames, &namespace) {
                    refused.push(format!("listener {}: {why}", parent.listener.name));
                    continue;
                }
                attached = true;
                for host in &hostnames {
                    if !allowed_by_isolation(parent, host) {
                        continue;
                    }
                    let key = (
                        parent.namespace.clone(),
                        parent.internal.clone(),
                        host.clone(),
                    );
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
            }
            if !attached {
                return Err(invalid(
                    &resource,
                    format!(
                        "{path}: not accepted by Gateway {parent_namespace}/{} ({})",
                        reference.name,
                        refused.join("; ")
                    ),
                ));
            }
        }
        // Rules are read once the route is attached somewhere, as istiod
        // reports a route's backends only where it is accepted.
        let routes = convert_rules(&resource, &namespace, name, &spec, index)?;
        for key in keys {
            match merged.iter_mut().find(|(k, _, _, _)| *k == key) {
                Some((_, names, _, existing)) => {
                    if !names.contains(&resource) {
                        names.push(resource.clone());
                    }
                    existing.extend(routes.iter().cloned());
                }
                None => merged.push((
                    key,
                    vec![resource.clone()],
                    namespace.clone(),
                    routes.clone(),
                )),
            }
        }
    }
    // The model's other fields (routes of other protocols) stay empty:
    // an HTTPRoute says HTTP only.
    #[allow(clippy::needless_update)]
    for ((gateway_namespace, internal, host), names, route_namespace, mut routes) in merged {
        sort_routes(&mut routes);
        out.virtual_services.push((
            names.join(","),
            // The VirtualService lives in the route's namespace: the
            // server's `ns/host` admits it from there.
            route_namespace,
            VirtualServiceSpec {
                hosts: vec![host],
                gateways: vec![format!("{gateway_namespace}/{internal}")],
                http: routes,
                gateway_semantics: true,
                ..VirtualServiceSpec::default()
            },
        ));
    }
    Ok(out)
}

/// Why a listener does not take the route (`referenceAllowed`), if it does not.
fn not_allowed(
    parent: &Parent,
    reference: &ParentRef,
    hostnames: &[String],
    route_namespace: &str,
) -> Option<String> {
    if let Some(port) = reference.port
        && port != parent.listener.port
    {
        return Some(format!("port {port} not found"));
    }
    if let Some(section) = &reference.section_name
        && *section != parent.listener.name
    {
        return Some(format!("sectionName {section:?} not found"));
    }
    let admits_namespace = match parent
        .listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref())
        .and_then(|n| n.from.as_deref())
        .unwrap_or("Same")
    {
        "All" => true,
        _ => route_namespace == parent.namespace,
    };
    let listener_host = parent.listener.hostname.as_deref().unwrap_or("*");
    let host_matches = hostnames.iter().any(|h| host_matches(listener_host, h));
    if !host_matches {
        return Some(format!(
            "no hostnames matched parent hostname {listener_host:?}"
        ));
    }
    if !admits_namespace {
        return Some(format!(
            "namespace {route_namespace:?} is not allowed by the parent"
        ));
    }
    None
}

/// Istio's `host.Name.Matches`: whether two host names overlap, either
/// covering the other.
fn host_matches(a: &str, b: &str) -> bool {
    covers(a, b) || covers(b, a)
}

/// Istio's `host.Name.SubsetOf`: whether every name `a` stands for is one
/// `b` stands for.
fn host_subset_of(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(a_rest), Some(b_rest)) => a.len() >= b.len() && a_rest.ends_with(b_rest),
        (Some(_), None) => false,
        (None, Some(b_rest)) => a.ends_with(b_rest),
        (None, None) => a == b,
    }
}

/// `hostnameAllowedByIsolation`: a route on a wildcard listener does not
/// take the hostnames a more specific listener of the same port covers.
fn allowed_by_isolation(parent: &Parent, route_host: &str) -> bool {
    let ours = parent.listener.hostname.as_deref().unwrap_or("");
    if !ours.is_empty() && !ours.starts_with('*') {
        return true;
    }
    if !ours.is_empty() && !host_matches(route_host, ours) {
        return false;
    }
    !parent
        .banned
        .iter()
        .filter(|other| ours.len() <= other.len())
        .any(|other| host_subset_of(route_host, other))
}

/// The route's rules as Istio routes, one per match (`convertHTTPRoute`).
fn convert_rules(
    resource: &str,
    namespace: &str,
    name: &str,
    spec: &HttpRouteSpec,
    index: &Index,
) -> Result<Vec<HttpRoute>, MeshError> {
    let mut out = Vec::new();
    for (r, rule) in spec.rules.iter().enumerate() {
        let path = format!("spec.rules[{r}]");
        let mut route = HttpRoute {
            name: Some(
                rule.name
                    .clone()
                    .unwrap_or_else(|| format!("{namespace}.{name}.{r}")),
            ),
            ..HttpRoute::default()
        };
        for (f, filter) in rule.filters.iter().enumerate() {
            let path = format!("{path}.filters[{f}]");
            match filter.kind.as_str() {
                "RequestHeaderModifier" => {
                    if let Some(h) = &filter.request_header_modifier {
                        route.headers.get_or_insert_with(Headers::default).request =
                            Some(header_operations(resource, &path, h)?);
                    }
                }
                "ResponseHeaderModifier" => {
                    if let Some(h) = &filter.response_header_modifier {
                        route.headers.get_or_insert_with(Headers::default).response =
                            Some(header_operations(resource, &path, h)?);
                    }
                }
                "RequestRedirect" => {
                    if let Some(redirect) = &filter.request_redirect {
                        route.redirect = Some(redirect_of(resource, &path, redirect)?);
                    }
                }
                "URLRewrite" => {
                    if let Some(rewrite) = &filter.url_rewrite {
                        route.rewrite = rewrite_of(rewrite);
                    }
                }
                "RequestMirror" => {
                    if let Some(mirror) = &filter.request_mirror {
                        let destination = destination_of(
                            resource,
                            namespace,
                            &format!("{path}.requestMirror.backendRef"),
                            &mirror.backend_ref,
                            index,
                        )?;
                        let percentage = match (&mirror.fraction, mirror.percent) {
                            (Some(fraction), _) => Some(Percent {
                                value: Some(
                                    100.0 * f64::from(fraction.numerator)
                                        / f64::from(fraction.denominator.unwrap_or(100).max(1)),
                                ),
                            }),
                            (None, Some(percent)) => Some(Percent {
                                value: Some(f64::from(percent)),
                            }),
                            (None, None) => None,
                        };
                        route.mirrors.push(MirrorPolicy {
                            destination: Some(destination),
                            percentage,
                        });
                    }
                }
                other => {
                    return Err(unsupported(
                        resource,
                        format!(
                            "{path}.type: {other:?} is not supported by the local mesh (RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror are)"
                        ),
                    ));
                }
            }
        }

        if let Some(retry) = &rule.retry {
            // "Implementations SHOULD retry on connection errors": Istio's
            // conditions, then the codes; 2 attempts when unset.
            let attempts = retry.attempts.unwrap_or(2);
            let mut conditions = vec![
                "connect-failure".to_string(),
                "refused-stream".to_string(),
                "unavailable".to_string(),
                "cancelled".to_string(),
            ];
            conditions.extend(retry.codes.iter().map(u32::to_string));
            route.retries = Some(Retry {
                attempts,
                retry_on: (attempts != 0).then(|| conditions.join(",")),
                backoff: retry.backoff.clone(),
                ..Retry::default()
            });
        }
        if let Some(timeouts) = &rule.timeouts {
            let nonzero =
                |field: &str, value: &Option<String>| -> Result<Option<String>, MeshError> {
                    let Some(text) = value else { return Ok(None) };
                    let nanos = super::values::parse_go_duration(text)
                        .map_err(|e| invalid(resource, format!("{path}.timeouts.{field}: {e}")))?;
                    Ok((nanos != 0).then(|| text.clone()))
                };
            if let Some(request) = nonzero("request", &timeouts.request)? {
                route.timeout = Some(request);
            }
            if let Some(backend) = nonzero("backendRequest", &timeouts.backend_request)? {
                match &mut route.retries {
                    Some(retries) => retries.per_try_timeout = Some(backend),
                    None => route.timeout = Some(backend),
                }
            }
        }

        let weight_sum: u32 = rule
            .backend_refs
            .iter()
            .map(|b| b.weight.unwrap_or(1))
            .sum();
        if route.redirect.is_some() {
            if !rule.backend_refs.is_empty() {
                return Err(invalid(
                    resource,
                    format!(
                        "{path}: a RequestRedirect filter and backendRefs cannot be set together"
                    ),
                ));
            }
        } else if weight_sum == 0 {
            // Gateway API: no backend is a 404, backends all at weight 0 a 500.
            route.direct_response = Some(DirectResponse {
                status: if rule.backend_refs.is_empty() {
                    404
                } else {
                    500
                },
                body: None,
            });
        } else {
            let kept: Vec<(usize, &BackendRef)> = rule
                .backend_refs
                .iter()
                .enumerate()
                .filter(|(_, b)| b.weight.unwrap_or(1) != 0)
                .collect();
            let single = kept.len() == 1;
            for (b, backend) in kept {
                let path = format!("{path}.backendRefs[{b}]");
                let mut destination = RouteDestination {
                    destination: destination_of(
                        resource,
                        namespace,
                        &path,
                        &backend.object,
                        index,
                    )?,
                    weight: Some(if single {
                        0
                    } else {
                        backend.weight.unwrap_or(1)
                    }),
                    headers: None,
                };
                for (f, filter) in backend.filters.iter().enumerate() {
                    let path = format!("{path}.filters[{f}]");
                    match filter.kind.as_str() {
                        "RequestHeaderModifier" => {
                            if let Some(h) = &filter.request_header_modifier {
                                destination
                                    .headers
                                    .get_or_insert_with(Headers::default)
                                    .request = Some(header_operations(resource, &path, h)?);
                            }
                        }
                        "ResponseHeaderModifier" => {
                            if let Some(h) = &filter.response_header_modifier {
                                destination
                                    .headers
                                    .get_or_insert_with(Headers::default)
                                    .response = Some(header_operations(resource, &path, h)?);
                            }
                        }
                        other => {
                            return Err(unsupported(
                                resource,
                                format!(
                                    "{path}.type: {other:?} on a backend is not supported (Istio takes RequestHeaderModifier and ResponseHeaderModifier there)"
                                ),
                            ));
                        }
                    }
                }
                route.route.push(destination);
            }
        }

        // The CRD's default: one match, PathPrefix "/".
        let matches = rule
            .matches
            .clone()
            .unwrap_or_else(|| vec![RouteMatch::default()]);
        if matches.is_empty() {
            out.push(route);
            continue;
        }
        for (m, matched) in matches.iter().enumerate() {
            let path = format!("{path}.matches[{m}]");
            let mut one = route.clone();
            one.matches = vec![match_of(resource, &path, matched)?];
            out.push(one);
        }
    }
    Ok(out)
}

fn match_of(resource: &str, path: &str, m: &RouteMatch) -> Result<MatchRequest, MeshError> {
    let (kind, value) = match &m.path {
        Some(p) => (
            p.kind.as_deref().unwrap_or("PathPrefix"),
            p.value.clone().unwrap_or_else(|| "/".to_string()),
        ),
        None => ("PathPrefix", "/".to_string()),
    };
    let uri = match kind {
        // "When specified, a trailing `/` is ignored."
        "PathPrefix" => StringMatch {
            prefix: Some(if value == "/" {
                value
            } else {
                value.strip_suffix('/').unwrap_or(&value).to_string()
            }),
            ..StringMatch::default()
        },
        "Exact" => StringMatch {
            exact: Some(value),
            ..StringMatch::default()
        },
        "RegularExpression" => StringMatch {
            regex: Some(value),
            ..StringMatch::default()
        },
        other => {
            return Err(invalid(
                resource,
                format!("{path}.path.type: {other:?} is not a path match type"),
            ));
        }
    };
    let by_name = |field: &str, list: &[NameMatch]| {
        let mut out = BTreeMap::new();
        for (i, entry) in list.iter().enumerate() {
            let matcher = match entry.kind.as_deref().unwrap_or("Exact") {
                "Exact" => StringMatch {
                    exact: Some(entry.value.clone()),
                    ..StringMatch::default()
                },
                "RegularExpression" => StringMatch {
                    regex: Some(entry.value.clone()),
                    ..StringMatch::default()
                },
                other => {
                    return Err(invalid(
                        resource,
                        format!("{path}.{field}[{i}].type: {other:?} is not a match type"),
                    ));
                }
            };
            out.insert(entry.name.clone(), Some(matcher));
        }
        Ok(out)
    };
    Ok(MatchRequest {
        uri: Some(uri),
        headers: by_name("headers", &m.headers)?,
        query_params: by_name("queryParams", &m.query_params)?,
        method: m.method.as_ref().map(|method| StringMatch {
            exact: Some(method.clone()),
            ..StringMatch::default()
        }),
        ..MatchRequest::default()
    })
}

/// `createHeadersFilter`: names lower-cased, a repeated name ignored after
/// its first entry, no control characters in values.
fn header_operations(
    resource: &str,
    path: &str,
    filter: &HeaderFilter,
) -> Result<HeaderOperations, MeshError> {
    let to_map = |list: &[NameValue]| {
        let mut out = BTreeMap::new();
        for entry in list {
            out.entry(entry.name.to_ascii_lowercase())
                .or_insert_with(|| entry.value.clone());
        }
        out
    };
    for entry in filter.set.iter().chain(&filter.add) {
        if entry
            .value
            .bytes()
            .any(|c| !(c == 0x09 || (c >= 0x20 && c != 0x7f)))
        {
            return Err(invalid(
                resource,
                format!(
                    "{path}: header {:?} value contains invalid characters",
                    entry.name
                ),
            ));
        }
    }
    Ok(HeaderOperations {
        set: to_map(&filter.set),
        add: to_map(&filter.add),
        remove: filter.remove.clone(),
    })
}

/// `createRedirectFilter`, for what the local mesh's gateway can say: its
/// listener is the Gateway's port 80 role, so a redirect without `port`
/// keeps the scheme's default port, as Istio leaves `:80`/`:443` out.
fn redirect_of(resource: &str, path: &str, filter: &RedirectFilter) -> Result<Redirect, MeshError> {
    let scheme = filter.scheme.as_deref().unwrap_or("http");
    if let Some(port) = filter.port {
        let default = if scheme == "https" { 443 } else { 80 };
        if port != default {
            return Err(unsupported(
                resource,
                format!(
                    "{path}.requestRedirect.port: {port} is not supported by the local mesh (only the scheme's default port, which Istio leaves out)"
                ),
            ));
        }
    }
    let uri = match &filter.path {
        Some(p) => match p.kind.as_str() {
            "ReplaceFullPath" => p.replace_full_path.clone(),
            // Istio's marker: the redirect rewrites the matched prefix.
            "ReplacePrefixMatch" => p
                .replace_prefix_match
                .as_ref()
                .map(|prefix| format!("{PREFIX_MARKER}{prefix}")),
            other => {
                return Err(invalid(
                    resource,
                    format!("{path}.requestRedirect.path.type: {other:?} is not a path modifier"),
                ));
            }
        },
        None => None,
    };
    Ok(Redirect {
        uri,
        authority: filter.hostname.clone(),
        redirect_code: filter.status_code,
        scheme: filter.scheme.clone(),
    })
}

/// The `%PREFIX()%` marker `createRedirectFilter` puts before a prefix
/// replacement, which `ApplyRedirect` turns into a `prefix_rewrite`.
const PREFIX_MARKER: &str = "%PREFIX()%";

/// `createRewriteFilter`.
fn rewrite_of(filter: &UrlRewrite) -> Option<Rewrite> {
    let mut rewrite = Rewrite::default();
    if let Some(p) = &filter.path {
        match p.kind.as_str() {
            "ReplacePrefixMatch" => {
                let prefix = p.replace_prefix_match.clone().unwrap_or_default();
                let trimmed = prefix.strip_suffix('/').unwrap_or(&prefix);
                // `/` means removing the prefix.
                rewrite.uri = Some(if trimmed.is_empty() {
                    "/".to_string()
                } else {
                    trimmed.to_string()
                });
            }
            "ReplaceFullPath" => {
                rewrite.uri_regex_rewrite = Some(RegexRewrite {
                    pattern: "/.*".to_string(),
                    rewrite: p.replace_full_path.clone().unwrap_or_default(),
                });
            }
            _ => {}
        }
    }
    rewrite.authority = filter.hostname.clone();
    if rewrite.uri.is_none() && rewrite.uri_regex_rewrite.is_none() && rewrite.authority.is_none() {
        return None;
    }
    Some(rewrite)
}

/// `buildDestination` for a Service backend: its FQDN and port; refuses
/// what Istio would not route (a hostname for a name, no port, another kind)
/// and what it would answer with a 500 (a Service that does not exist, or
/// one in another namespace without a ReferenceGrant).
fn destination_of(
    resource: &str,
    namespace: &str,
    path: &str,
    backend: &BackendObject,
    index: &Index,
) -> Result<Destination, MeshError> {
    let group = backend.group.as_deref().unwrap_or("");
    let kind = backend.kind.as_deref().unwrap_or("Service");
    if !(group.is_empty() || group == "core") || kind != "Service" {
        return Err(unsupported(
            resource,
            format!(
                "{path}: backend group {group:?} kind {kind:?} is not supported by the local mesh (Services only)"
            ),
        ));
    }
    if backend.name.contains('.') {
        return Err(invalid(
            resource,
            format!(
                "{path}.name: {:?}: the name of the Service must be used, not the hostname",
                backend.name
            ),
        ));
    }
    let target = backend.namespace.clone().unwrap_or(namespace.to_string());
    if target != namespace {
        return Err(unsupported(
            resource,
            format!(
                "{path}.namespace: a Service in another namespace ({target}) needs a ReferenceGrant, which the local mesh does not support; without one Istio answers 500"
            ),
        ));
    }
    let Some(port) = backend.port else {
        return Err(invalid(
            resource,
            format!("{path}.port is required for a Service backend"),
        ));
    };
    let host = fqdn(&backend.name, &target);
    if index.service(&host, &target).is_none() {
        return Err(MeshError::UnknownHost {
            resource: resource.to_string(),
            path: path.to_string(),
            host: backend.name.clone(),
            why: format!(
                "no Service {} in namespace {target}; Istio would answer 500 for its share",
                backend.name
            ),
        });
    }
    Ok(Destination {
        host,
        subset: None,
        port: Some(PortSelector { number: Some(port) }),
    })
}

/// `sortHTTPRoutes`: a stable sort, routes without a match last, then by
/// path match type (Exact, PathPrefix, RegularExpression), path length,
/// method match, number of header and of query matches.
fn sort_routes(routes: &mut [HttpRoute]) {
    fn rank(m: &MatchRequest) -> (i32, usize) {
        match &m.uri {
            Some(StringMatch { exact: Some(p), .. }) => (3, p.len()),
            Some(StringMatch {
                prefix: Some(p), ..
            }) => (2, p.len()),
            Some(StringMatch { regex: Some(p), .. }) => (1, p.len()),
            _ => (-1, 0),
        }
    }
    fn before(a: &HttpRoute, b: &HttpRoute) -> bool {
        let (Some(m1), Some(m2)) = (a.matches.first(), b.matches.first()) else {
            return !a.matches.is_empty() && b.matches.is_empty();
        };
        let ((r1, l1), (r2, l2)) = (rank(m1), rank(m2));
        if r1 != r2 {
            return r1 > r2;
        }
        if l1 != l2 {
            return l1 > l2;
        }
        if m1.method.is_some() != m2.method.is_some() {
            return m1.method.is_some();
        }
        if m1.headers.len() != m2.headers.len() {
            return m1.headers.len() > m2.headers.len();
        }
        m1.query_params.len() > m2.query_params.len()
    }
    routes.sort_by(|a, b| {
        if before(a, b) {
            Ordering::Less
        } else if before(b, a) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
}

/// Go's `regexp.QuoteMeta`.
fn quote_meta(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What `route.go` does differently for gateway-semantics VirtualServices,
/// applied to the Envoy routes built from one: a `PathPrefix` other than
/// `/` is a `path_separated_prefix` (`translateRouteMatch`); a prefix
/// rewrite to `/` removes the prefix with a regex that keeps one `/`
/// (`applyHTTPRouteDestination`); a missing backend cluster answers 500;
/// a redirect's prefix marker is a `prefix_rewrite` (`ApplyRedirect`).
pub(crate) fn apply_gateway_semantics(routes: &mut [Value]) {
    for route in routes {
        let matched = &mut route["match"];
        if let Some(prefix) = matched
            .get("prefix")
            .and_then(Value::as_str)
            .map(str::to_string)
            && prefix != "/"
            && let Some(fields) = matched.as_object_mut()
        {
            fields.remove("prefix");
            fields.insert(
                "path_separated_prefix".to_string(),
                json!(prefix.strip_suffix('/').unwrap_or(&prefix)),
            );
        }
        let separated = route["match"]["path_separated_prefix"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(action) = route.get_mut("route").and_then(Value::as_object_mut) {
            if action.get("prefix_rewrite").and_then(Value::as_str) == Some("/") {
                action.remove("prefix_rewrite");
                action.insert(
                    "regex_rewrite".to_string(),
                    json!({
                        "pattern": {"regex": format!("^{}(/?)(.*)", quote_meta(&separated))},
                        "substitution": "/\\2",
                    }),
                );
            }
            action.insert(
                "cluster_not_found_response_code".to_string(),
                json!("INTERNAL_SERVER_ERROR"),
            );
        }
        if let Some(redirect) = route.get_mut("redirect").and_then(Value::as_object_mut)
            && let Some(rest) = redirect
                .get("path_redirect")
                .and_then(Value::as_str)
                .and_then(|p| p.strip_prefix(PREFIX_MARKER))
                .map(str::to_string)
        {
            redirect.remove("path_redirect");
            redirect.insert("prefix_rewrite".to_string(), json!(rest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_overlap_and_nest_as_istio_says() {
        assert!(host_matches("*", "airport.local"));
        assert!(host_matches("*.airport.local", "test.airport.local"));
        assert!(!host_matches("airport.local", "test.airport.local"));
        assert!(host_subset_of("test.airport.local", "*.airport.local"));
        assert!(!host_subset_of("*.airport.local", "test.airport.local"));
        assert!(host_subset_of("*.a.airport.local", "*.airport.local"));
        assert!(!host_subset_of("*", "*.airport.local"));
    }

    #[test]
    fn quote_meta_escapes_regex_syntax() {
        assert_eq!(quote_meta("/a.b(c)"), r"/a\.b\(c\)");
    }

    fn with_uri(m: StringMatch) -> HttpRoute {
        HttpRoute {
            matches: vec![MatchRequest {
                uri: Some(m),
                ..MatchRequest::default()
            }],
            ..HttpRoute::default()
        }
    }

    #[test]
    fn routes_sort_exact_then_longer_prefix_then_regex_and_no_match_last() {
        let prefix = |p: &str| {
            with_uri(StringMatch {
                prefix: Some(p.into()),
                ..StringMatch::default()
            })
        };
        let mut routes = vec![
            HttpRoute::default(),
            with_uri(StringMatch {
                regex: Some("/.*x".into()),
                ..StringMatch::default()
            }),
            prefix("/"),
            prefix("/collector"),
            with_uri(StringMatch {
                exact: Some("/a".into()),
                ..StringMatch::default()
            }),
        ];
        sort_routes(&mut routes);
        let order: Vec<String> = routes
            .iter()
            .map(|r| match r.matches.first().and_then(|m| m.uri.as_ref()) {
                Some(StringMatch { exact: Some(p), .. }) => format!("exact {p}"),
                Some(StringMatch {
                    prefix: Some(p), ..
                }) => format!("prefix {p}"),
                Some(StringMatch { regex: Some(p), .. }) => format!("regex {p}"),
                _ => "none".to_string(),
            })
            .collect();
        assert_eq!(
            order,
            [
                "exact /a",
                "prefix /collector",
                "prefix /",
                "regex /.*x",
                "none"
            ]
        );
    }

    #[test]
    fn gateway_semantics_separate_prefixes_and_strip_them() {
        let mut routes = vec![json!({
            "match": {"prefix": "/collector"},
            "route": {"cluster": "c", "prefix_rewrite": "/"}
        })];
        apply_gateway_semantics(&mut routes);
        assert_eq!(
            routes[0]["match"],
            json!({"path_separated_prefix": "/collector"})
        );
        assert_eq!(
            routes[0]["route"]["regex_rewrite"],
            json!({"pattern": {"regex": "^/collector(/?)(.*)"}, "substitution": "/\\2"})
        );
        assert_eq!(
            routes[0]["route"]["cluster_not_found_response_code"],
            "INTERNAL_SERVER_ERROR"
        );
    }
}
