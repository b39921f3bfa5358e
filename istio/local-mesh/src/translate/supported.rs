//! The allow-list: every field the local mesh translates, and nothing else.
//!
//! Istio's API is large; the local mesh implements the part the seed's demo
//! steps and their close relatives use. A field outside that part is refused
//! with its path before anything is translated, so a manifest never means
//! less on one machine than it would in a cluster without anyone noticing.
//! Fields that are listed but accept only some values (a load balancer
//! policy, a gateway protocol) are checked where they are translated.

use serde_json::Value;

use super::MeshError;

/// What a part of a document may hold.
#[derive(Debug)]
pub(crate) enum Shape {
    /// A scalar (or anything): the CRD schema checks its type.
    Leaf,
    /// An object with these fields only.
    Object(&'static [(&'static str, Shape)]),
    /// A list whose items have this shape.
    List(&'static Shape),
    /// A map with free keys whose values have this shape.
    Map(&'static Shape),
}

use Shape::{Leaf, List, Map, Object};

const STRING_MATCH: Shape = Object(&[("exact", Leaf), ("prefix", Leaf), ("regex", Leaf)]);

const PERCENT: Shape = Object(&[("value", Leaf)]);

const DESTINATION: Shape = Object(&[
    ("host", Leaf),
    ("subset", Leaf),
    ("port", Object(&[("number", Leaf)])),
]);

const HEADER_OPERATIONS: Shape = Object(&[
    ("set", Map(&Leaf)),
    ("add", Map(&Leaf)),
    ("remove", List(&Leaf)),
]);

const HEADERS: Shape = Object(&[
    ("request", HEADER_OPERATIONS),
    ("response", HEADER_OPERATIONS),
]);

const MATCH_REQUEST: Shape = Object(&[
    ("name", Leaf),
    ("uri", STRING_MATCH),
    ("scheme", STRING_MATCH),
    ("method", STRING_MATCH),
    ("authority", STRING_MATCH),
    ("headers", Map(&STRING_MATCH)),
    ("withoutHeaders", Map(&STRING_MATCH)),
    ("queryParams", Map(&STRING_MATCH)),
    ("ignoreUriCase", Leaf),
]);

const HTTP_ROUTE: Shape = Object(&[
    ("name", Leaf),
    ("match", List(&MATCH_REQUEST)),
    (
        "route",
        List(&Object(&[
            ("destination", DESTINATION),
            ("weight", Leaf),
            ("headers", HEADERS),
        ])),
    ),
    (
        "redirect",
        Object(&[
            ("uri", Leaf),
            ("authority", Leaf),
            ("redirectCode", Leaf),
            ("scheme", Leaf),
        ]),
    ),
    (
        "directResponse",
        Object(&[("status", Leaf), ("body", Object(&[("string", Leaf)]))]),
    ),
    (
        "rewrite",
        Object(&[
            ("uri", Leaf),
            ("authority", Leaf),
            (
                "uriRegexRewrite",
                Object(&[("match", Leaf), ("rewrite", Leaf)]),
            ),
        ]),
    ),
    ("timeout", Leaf),
    (
        "retries",
        Object(&[
            ("attempts", Leaf),
            ("perTryTimeout", Leaf),
            ("retryOn", Leaf),
            ("retryIgnorePreviousHosts", Leaf),
            ("backoff", Leaf),
        ]),
    ),
    (
        "fault",
        Object(&[
            (
                "delay",
                Object(&[
                    ("fixedDelay", Leaf),
                    ("percentage", PERCENT),
                    ("percent", Leaf),
                ]),
            ),
            (
                "abort",
                Object(&[("httpStatus", Leaf), ("percentage", PERCENT)]),
            ),
        ]),
    ),
    ("mirror", DESTINATION),
    ("mirrorPercentage", PERCENT),
    ("mirrorPercent", Leaf),
    (
        "mirrors",
        List(&Object(&[
            ("destination", DESTINATION),
            ("percentage", PERCENT),
        ])),
    ),
    ("headers", HEADERS),
    ("delegate", Object(&[("name", Leaf), ("namespace", Leaf)])),
    (
        "corsPolicy",
        Object(&[
            ("allowOrigins", List(&STRING_MATCH)),
            ("allowOrigin", List(&Leaf)),
            ("allowMethods", List(&Leaf)),
            ("allowHeaders", List(&Leaf)),
            ("exposeHeaders", List(&Leaf)),
            ("maxAge", Leaf),
            ("allowCredentials", Leaf),
            ("unmatchedPreflights", Leaf),
        ]),
    ),
]);

/// `tcp[]`: routes by port to weighted destinations ([`super::tcp`]).
const TCP_ROUTE: Shape = Object(&[
    ("match", List(&Object(&[("port", Leaf)]))),
    (
        "route",
        List(&Object(&[("destination", DESTINATION), ("weight", Leaf)])),
    ),
]);

const VIRTUAL_SERVICE: Shape = Object(&[
    ("hosts", List(&Leaf)),
    ("gateways", List(&Leaf)),
    ("http", List(&HTTP_ROUTE)),
    ("tcp", List(&TCP_ROUTE)),
]);

const LOAD_BALANCER: Shape = Object(&[
    ("simple", Leaf),
    (
        "consistentHash",
        Object(&[
            ("httpHeaderName", Leaf),
            (
                "httpCookie",
                Object(&[("name", Leaf), ("path", Leaf), ("ttl", Leaf)]),
            ),
            ("useSourceIp", Leaf),
            ("httpQueryParameterName", Leaf),
            ("ringHash", Object(&[("minimumRingSize", Leaf)])),
            ("maglev", Object(&[("tableSize", Leaf)])),
            ("minimumRingSize", Leaf),
        ]),
    ),
]);

const CONNECTION_POOL: Shape = Object(&[
    (
        "tcp",
        Object(&[
            ("maxConnections", Leaf),
            ("connectTimeout", Leaf),
            ("idleTimeout", Leaf),
            ("maxConnectionDuration", Leaf),
        ]),
    ),
    (
        "http",
        Object(&[
            ("http1MaxPendingRequests", Leaf),
            ("http2MaxRequests", Leaf),
            ("maxRequestsPerConnection", Leaf),
            ("maxRetries", Leaf),
            ("idleTimeout", Leaf),
            ("h2UpgradePolicy", Leaf),
        ]),
    ),
]);

const OUTLIER_DETECTION: Shape = Object(&[
    ("consecutive5xxErrors", Leaf),
    ("consecutiveGatewayErrors", Leaf),
    ("consecutiveLocalOriginFailures", Leaf),
    ("splitExternalLocalOriginErrors", Leaf),
    ("interval", Leaf),
    ("baseEjectionTime", Leaf),
    ("maxEjectionPercent", Leaf),
    ("minHealthPercent", Leaf),
]);

/// `portLevelSettings[]`: a port and the parts it replaces (`tls` refused).
const PORT_TRAFFIC_POLICY: Shape = Object(&[
    ("port", Object(&[("number", Leaf)])),
    ("loadBalancer", LOAD_BALANCER),
    ("connectionPool", CONNECTION_POOL),
    ("outlierDetection", OUTLIER_DETECTION),
]);

const TRAFFIC_POLICY: Shape = Object(&[
    ("loadBalancer", LOAD_BALANCER),
    ("connectionPool", CONNECTION_POOL),
    ("outlierDetection", OUTLIER_DETECTION),
    (
        "retryBudget",
        Object(&[("percent", Leaf), ("minRetryConcurrency", Leaf)]),
    ),
    ("portLevelSettings", List(&PORT_TRAFFIC_POLICY)),
]);

const DESTINATION_RULE: Shape = Object(&[
    ("host", Leaf),
    ("trafficPolicy", TRAFFIC_POLICY),
    (
        "subsets",
        List(&Object(&[
            ("name", Leaf),
            ("labels", Map(&Leaf)),
            ("trafficPolicy", TRAFFIC_POLICY),
        ])),
    ),
]);

const GATEWAY: Shape = Object(&[
    ("selector", Map(&Leaf)),
    (
        "servers",
        List(&Object(&[
            ("name", Leaf),
            (
                "port",
                Object(&[("number", Leaf), ("name", Leaf), ("protocol", Leaf)]),
            ),
            ("hosts", List(&Leaf)),
        ])),
    ),
]);

const SERVICE_ENTRY: Shape = Object(&[
    ("hosts", List(&Leaf)),
    (
        "ports",
        List(&Object(&[
            ("number", Leaf),
            ("protocol", Leaf),
            ("name", Leaf),
            ("targetPort", Leaf),
        ])),
    ),
    ("location", Leaf),
    ("resolution", Leaf),
    (
        "endpoints",
        List(&Object(&[
            ("address", Leaf),
            ("ports", Map(&Leaf)),
            ("weight", Leaf),
        ])),
    ),
]);

/// Why a whole field is left out, where a plain "not supported" would leave
/// the reader guessing; keyed by the field's last name.
fn reason(field: &str) -> Option<&'static str> {
    Some(match field {
        "consecutiveErrors" => {
            "(deprecated, and ignored by Istio itself: use consecutive5xxErrors or consecutiveGatewayErrors)"
        }
        "maxConcurrentStreams" | "useClientProtocol" => {
            "(the local mesh's upstreams speak HTTP/1.1 only)"
        }
        "tls" => "(the local mesh runs plain HTTP on loopback, without mTLS)",
        "sourceLabels" | "sourceNamespace" | "gateways" => {
            "(a route's match cannot tell callers apart in the local mesh)"
        }
        "exportTo" => "(every resource is visible in every namespace of the local mesh)",
        "workloadSelector" => "(one Envoy plays every proxy of the local mesh)",
        _ => return None,
    })
}

/// Refuses the first field of `document` (an Istio resource) that the local
/// mesh does not translate.
pub(crate) fn check(document: &Value, resource: &str) -> Result<(), MeshError> {
    let kind = document["kind"].as_str().unwrap_or_default();
    let shape = match kind {
        "VirtualService" => &VIRTUAL_SERVICE,
        "DestinationRule" => &DESTINATION_RULE,
        "Gateway" => &GATEWAY,
        "ServiceEntry" => &SERVICE_ENTRY,
        // Plugins reach the translator already built (see `translate`).
        "WasmPlugin" => return Ok(()),
        other => {
            return Err(MeshError::Unsupported {
                resource: resource.to_string(),
                message: format!("kind {other} is not supported by the local mesh"),
            });
        }
    };
    check_spec(document, shape, resource)
}

/// Refuses a top-level field besides `apiVersion`, `kind`, `metadata` and
/// `spec`, and the first field of `spec` outside `shape` (also for the
/// Gateway API's kinds, whose shapes are in `gateway_api`).
pub(crate) fn check_spec(document: &Value, shape: &Shape, resource: &str) -> Result<(), MeshError> {
    if let Some(fields) = document.as_object() {
        for name in fields.keys() {
            if !matches!(name.as_str(), "apiVersion" | "kind" | "metadata" | "spec") {
                return Err(unsupported(resource, name, name));
            }
        }
    }
    match document.get("spec") {
        Some(spec) => walk(spec, shape, "spec", resource),
        None => Ok(()),
    }
}

fn unsupported(resource: &str, path: &str, field: &str) -> MeshError {
    let mut message = format!("{path} is not supported by the local mesh");
    if let Some(why) = reason(field) {
        message.push(' ');
        message.push_str(why);
    }
    MeshError::Unsupported {
        resource: resource.to_string(),
        message,
    }
}

fn walk(value: &Value, shape: &Shape, path: &str, resource: &str) -> Result<(), MeshError> {
    match (shape, value) {
        (Object(fields), Value::Object(map)) => {
            for (name, child) in map {
                let child_path = format!("{path}.{name}");
                match fields.iter().find(|(allowed, _)| allowed == name) {
                    Some((_, child_shape)) => walk(child, child_shape, &child_path, resource)?,
                    None => return Err(unsupported(resource, &child_path, name)),
                }
            }
            Ok(())
        }
        (List(item), Value::Array(items)) => {
            for (index, child) in items.iter().enumerate() {
                walk(child, item, &format!("{path}[{index}]"), resource)?;
            }
            Ok(())
        }
        (Map(item), Value::Object(map)) => {
            for (key, child) in map {
                walk(child, item, &format!("{path}[{key}]"), resource)?;
            }
            Ok(())
        }
        // Nulls, scalars, and values of the wrong type: the typed reading
        // that follows reports wrong types with their paths.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(document: Value) -> String {
        match check(&document, "VirtualService/x") {
            Err(error) => error.to_string(),
            Ok(()) => panic!("accepted: {document}"),
        }
    }

    #[test]
    fn a_field_outside_the_list_is_refused_with_its_path() {
        let message = refusal(json!({
            "kind": "VirtualService",
            "spec": {"hosts": ["a"], "http": [{"route": []}, {"mirror_percent": 5}]}
        }));
        assert_eq!(
            message,
            "VirtualService/x: spec.http[1].mirror_percent is not supported by the local mesh"
        );
    }

    #[test]
    fn map_keys_appear_in_brackets() {
        let message = refusal(json!({
            "kind": "VirtualService",
            "spec": {"http": [{"match": [{"headers": {"end-user": {"suffix": "x"}}}]}]}
        }));
        assert!(
            message.contains("spec.http[0].match[0].headers[end-user].suffix is not supported"),
            "{message}"
        );
    }

    #[test]
    fn listed_fields_pass() {
        let document = json!({
            "kind": "DestinationRule",
            "metadata": {"name": "x", "labels": {"anything": "goes"}},
            "spec": {"host": "a", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}
        });
        assert!(check(&document, "DestinationRule/x").is_ok());
    }
}
