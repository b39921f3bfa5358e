//! Delegate VirtualServices, merged into their roots as istiod merges them
//! before translating anything (`pilot/pkg/model/virtualservice_controller.go`,
//! `mergeVirtualServices`; `pilot/pkg/model/virtualservice.go`,
//! `MergeHTTPRoutes`, `mergeHTTPRoute`, `mergeHTTPMatchRequests`,
//! `hasConflict`, `stringMatchConflict`).
//!
//! - A VirtualService without `hosts` is a delegate: it applies only through
//!   a root's `http[].delegate` (`name`, `namespace` defaulting to the
//!   root's), never on its own. Its destination hosts are resolved in its
//!   own namespace (`ResolveVirtualServiceShortnames`).
//! - A root route with `delegate` becomes the delegate's routes, in order,
//!   each with its matches merged with the root route's: every delegate
//!   match must fit inside some root match (an exact or prefix inside the
//!   root's prefix, the same exact, no regex on either side of a field both
//!   set, the same `ignoreUriCase`...), else that delegate route is dropped;
//!   a merged match takes the root's fields the delegate's lacks and both
//!   header / query maps. The delegate route's own `rewrite`, `timeout`,
//!   `retries`, `fault`, mirrors, `corsPolicy`, `headers` and
//!   `directResponse` win; the root route's fill in the absent ones.
//! - A delegate that is not there drops the root route, with a warning.

use serde_json::{Map, Value, json};

use super::hosts::{DEFAULT_NAMESPACE, resolve};
use super::{MeshError, name_of, supported};

/// Route fields the root passes down when the delegate route has none
/// (`mergeHTTPRoute`).
const INHERITED: &[&str] = &[
    "rewrite",
    "directResponse",
    "timeout",
    "retries",
    "fault",
    "mirror",
    "mirrorPercent",
    "mirror_percent",
    "mirrorPercentage",
    "corsPolicy",
    "mirrors",
    "headers",
];

fn is_virtual_service(doc: &Value) -> bool {
    doc["kind"] == "VirtualService" && istio_manifests::is_istio(doc)
}

fn namespace_of(doc: &Value) -> &str {
    doc["metadata"]["namespace"]
        .as_str()
        .unwrap_or(DEFAULT_NAMESPACE)
}

fn is_delegate(doc: &Value) -> bool {
    is_virtual_service(doc) && doc["spec"]["hosts"].as_array().is_none_or(Vec::is_empty)
}

/// The documents with every root VirtualService's delegated routes merged in
/// and the delegates themselves left out.
pub(crate) fn expand(
    documents: &[&Value],
    warnings: &mut Vec<String>,
) -> Result<Vec<Value>, MeshError> {
    let delegates: Vec<&Value> = documents
        .iter()
        .copied()
        .filter(|d| is_delegate(d))
        .collect();
    for delegate in &delegates {
        let resource = name_of(delegate);
        supported::check(delegate, &resource)?;
        for (i, route) in delegate["spec"]["http"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if route.get("delegate").is_some() {
                return Err(MeshError::Unsupported {
                    resource,
                    message: format!(
                        "spec.http[{i}].delegate: a delegate VirtualService cannot delegate again (Istio supports one level)"
                    ),
                });
            }
        }
    }
    let mut out = Vec::new();
    for doc in documents {
        if is_delegate(doc) {
            continue;
        }
        let routes = doc["spec"]["http"].as_array();
        if !is_virtual_service(doc)
            || !routes
                .into_iter()
                .flatten()
                .any(|r| r.get("delegate").is_some())
        {
            out.push((*doc).clone());
            continue;
        }
        let resource = name_of(doc);
        let root_namespace = namespace_of(doc);
        let mut merged = Vec::new();
        for (i, route) in routes.into_iter().flatten().enumerate() {
            let Some(reference) = route.get("delegate") else {
                merged.push(route.clone());
                continue;
            };
            let name = reference["name"].as_str().unwrap_or_default();
            let namespace = reference["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(root_namespace);
            let found = delegates.iter().find(|d| {
                d["metadata"]["name"].as_str() == Some(name) && namespace_of(d) == namespace
            });
            let Some(delegate) = found else {
                warnings.push(format!(
                    "{resource}: spec.http[{i}].delegate: no delegate VirtualService {namespace}/{name} (one without hosts): the route is left out, as istiod leaves it out"
                ));
                continue;
            };
            let Some(root) = route.as_object() else {
                continue;
            };
            for sub in delegate["spec"]["http"].as_array().into_iter().flatten() {
                let Some(sub) = sub.as_object() else { continue };
                let sub = resolved(sub, namespace);
                if let Some(route) = merge_route(root, &sub) {
                    merged.push(Value::Object(route));
                }
            }
        }
        let mut doc = (*doc).clone();
        doc["spec"]["http"] = Value::Array(merged);
        out.push(doc);
    }
    Ok(out)
}

/// A delegate route with its destination and mirror hosts resolved in the
/// delegate's namespace.
fn resolved(route: &Map<String, Value>, namespace: &str) -> Map<String, Value> {
    let mut route = route.clone();
    let fix = |destination: &mut Value| {
        if let Some(host) = destination["host"].as_str() {
            destination["host"] = json!(resolve(host, namespace));
        }
    };
    if let Some(list) = route.get_mut("route").and_then(Value::as_array_mut) {
        for destination in list {
            fix(&mut destination["destination"]);
        }
    }
    if let Some(mirror) = route.get_mut("mirror") {
        fix(mirror);
    }
    if let Some(list) = route.get_mut("mirrors").and_then(Value::as_array_mut) {
        for mirror in list {
            fix(&mut mirror["destination"]);
        }
    }
    route
}

/// `mergeHTTPRoute`: `None` when the delegate route's matches conflict.
fn merge_route(
    root: &Map<String, Value>,
    delegate: &Map<String, Value>,
) -> Option<Map<String, Value>> {
    let empty = Vec::new();
    let root_matches = root
        .get("match")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let sub_matches = delegate
        .get("match")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let matches = merge_matches(root_matches, sub_matches)?;
    let mut out = delegate.clone();
    if matches.is_empty() {
        out.remove("match");
    } else {
        out.insert("match".into(), Value::Array(matches));
    }
    join_names(&mut out, root);
    for field in INHERITED {
        if !out.contains_key(*field)
            && let Some(value) = root.get(*field)
        {
            out.insert((*field).to_string(), value.clone());
        }
    }
    Some(out)
}

/// A delegate's name under the root's: `root-delegate`, or whichever is set.
fn join_names(out: &mut Map<String, Value>, root: &Map<String, Value>) {
    let root_name = root.get("name").and_then(Value::as_str).unwrap_or_default();
    let own = out.get("name").and_then(Value::as_str).unwrap_or_default();
    let name = match (root_name, own) {
        ("", "") => return,
        (root_name, "") => root_name.to_string(),
        ("", own) => own.to_string(),
        (root_name, own) => format!("{root_name}-{own}"),
    };
    out.insert("name".into(), json!(name));
}

/// `mergeHTTPMatchRequests`: each delegate match merged with every root match
/// it fits; `None` when one fits none.
fn merge_matches(root: &[Value], delegate: &[Value]) -> Option<Vec<Value>> {
    if root.is_empty() {
        return Some(delegate.to_vec());
    }
    if delegate.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for sub in delegate {
        let before = out.len();
        for parent in root {
            if !has_conflict(parent, sub) {
                out.push(merge_match(parent, sub));
            }
        }
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

/// `mergeHTTPMatchRequest`.
fn merge_match(root: &Value, delegate: &Value) -> Value {
    let mut out = delegate.as_object().cloned().unwrap_or_default();
    let mut name_holder = Map::new();
    if let Some(name) = root.get("name") {
        name_holder.insert("name".into(), name.clone());
    }
    join_names(&mut out, &name_holder);
    for field in [
        "uri",
        "scheme",
        "method",
        "authority",
        "port",
        "sourceNamespace",
        "gateways",
        "statPrefix",
    ] {
        if !out.contains_key(field)
            && let Some(value) = root.get(field)
        {
            out.insert(field.to_string(), value.clone());
        }
    }
    for field in ["headers", "withoutHeaders", "queryParams", "sourceLabels"] {
        let mut map = root[field].as_object().cloned().unwrap_or_default();
        if let Some(own) = delegate[field].as_object() {
            map.extend(own.clone());
        }
        if !map.is_empty() {
            out.insert(field.to_string(), Value::Object(map));
        }
    }
    Value::Object(out)
}

/// `hasConflict`: whether the delegate match `leaf` cannot fit inside `root`.
fn has_conflict(root: &Value, leaf: &Value) -> bool {
    for field in ["uri", "scheme", "method", "authority"] {
        if string_match_conflict(root.get(field), leaf.get(field)) {
            return true;
        }
    }
    for field in ["headers", "withoutHeaders", "queryParams"] {
        for (key, value) in leaf[field].as_object().into_iter().flatten() {
            if string_match_conflict(root[field].get(key), Some(value)) {
                return true;
            }
        }
    }
    let flag = |m: &Value| m["ignoreUriCase"].as_bool().unwrap_or(false);
    if flag(root) != flag(leaf) {
        return true;
    }
    let port = |m: &Value| m["port"].as_u64().unwrap_or(0);
    if port(root) > 0 && port(leaf) > 0 && port(root) != port(leaf) {
        return true;
    }
    if let Some(namespace) = root["sourceNamespace"].as_str().filter(|n| !n.is_empty())
        && leaf["sourceNamespace"].as_str() != Some(namespace)
    {
        return true;
    }
    for (key, value) in leaf["sourceLabels"].as_object().into_iter().flatten() {
        if let Some(own) = root["sourceLabels"].get(key)
            && own != value
        {
            return true;
        }
    }
    let gateways = |m: &Value| -> Vec<String> {
        m["gateways"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect()
    };
    let (root_gateways, leaf_gateways) = (gateways(root), gateways(leaf));
    if !root_gateways.is_empty()
        && !leaf_gateways.is_empty()
        && leaf_gateways.iter().any(|g| !root_gateways.contains(g))
    {
        return true;
    }
    false
}

/// `stringMatchConflict`: no conflict when either is unset; a regex on one
/// side conflicts with anything on the other; an exact root takes only the
/// same exact; a prefix root takes a prefix or exact under it.
fn string_match_conflict(root: Option<&Value>, leaf: Option<&Value>) -> bool {
    let (Some(root), Some(leaf)) = (root.filter(|v| !v.is_null()), leaf.filter(|v| !v.is_null()))
    else {
        return false;
    };
    let get = |m: &Value, key: &str| m[key].as_str().unwrap_or_default().to_string();
    let (root_exact, root_prefix, root_regex) =
        (get(root, "exact"), get(root, "prefix"), get(root, "regex"));
    let (leaf_exact, leaf_prefix, leaf_regex) =
        (get(leaf, "exact"), get(leaf, "prefix"), get(leaf, "regex"));
    let leaf_any = !(leaf_regex.is_empty() && leaf_prefix.is_empty() && leaf_exact.is_empty());
    let root_any = !(root_regex.is_empty() && root_prefix.is_empty() && root_exact.is_empty());
    if (!root_regex.is_empty() && leaf_any) || (!leaf_regex.is_empty() && root_any) {
        return true;
    }
    if !root_exact.is_empty() {
        return !leaf_prefix.is_empty() || leaf_exact != root_exact;
    }
    if !root_prefix.is_empty() {
        if !leaf_prefix.is_empty() {
            return !leaf_prefix.starts_with(&root_prefix);
        }
        if !leaf_exact.is_empty() {
            return !leaf_exact.starts_with(&root_prefix);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_matches_fit_as_istiod_says() {
        let conflict = |root: Value, leaf: Value| string_match_conflict(Some(&root), Some(&leaf));
        assert!(!conflict(
            json!({"prefix": "/api"}),
            json!({"prefix": "/api/v1"})
        ));
        assert!(conflict(
            json!({"prefix": "/api/v1"}),
            json!({"prefix": "/api"})
        ));
        assert!(!conflict(
            json!({"prefix": "/api"}),
            json!({"exact": "/api/x"})
        ));
        assert!(conflict(json!({"exact": "/a"}), json!({"exact": "/b"})));
        assert!(conflict(json!({"regex": "/a.*"}), json!({"prefix": "/a"})));
        assert!(!string_match_conflict(None, Some(&json!({"exact": "/b"}))));
    }
}
