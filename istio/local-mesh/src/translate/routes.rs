//! VirtualService HTTP routes to Envoy routes, as istiod writes them.

use serde_json::{Value, json};

use super::model::{
    Fault, HeaderOperations, Headers, HttpRoute, MatchRequest, Retry, StringMatch,
    VirtualServiceSpec,
};
use super::values::{Matcher, duration, per_hundred, per_million, string_match};
use super::{Index, MeshError, cors, invalid};

/// Istio's retry policy for a route without `retries` of its own.
/// (Istio 1.30, `pilot/pkg/networking/core/route/retry/retry.go`: no status
/// code listed, so an upstream 503 is not retried), as mesh-policy holds it
/// for the plugins too.
pub(crate) const DEFAULT_RETRY_ON: &str = mesh_policy::retry_on::ISTIO_DEFAULT_RETRY_ON;

/// What Envoy's router accepts in `retry_on`: its HTTP and gRPC conditions.
fn retry_conditions() -> impl Iterator<Item = &'static str> {
    use mesh_policy::retry_on::{GRPC_CONDITIONS, HTTP_CONDITIONS};
    HTTP_CONDITIONS
        .iter()
        .copied()
        .chain(GRPC_CONDITIONS.iter().map(|(name, _)| *name))
}

/// The Envoy routes of one VirtualService, in order: one per (HTTP route ×
/// match). As istiod does, nothing after the first catch-all (a route that
/// matches every request) is kept: it could never be reached in this
/// VirtualService, and would become reachable once routes of several
/// VirtualServices are merged on a gateway and catch-alls moved last.
pub(crate) fn http_routes(
    resource: &str,
    namespace: &str,
    spec: &VirtualServiceSpec,
    index: &Index,
) -> Result<Vec<Value>, MeshError> {
    let mut out = Vec::new();
    for (position, http) in spec.http.iter().enumerate() {
        let path = format!("spec.http[{position}]");
        let matches: Vec<Option<&MatchRequest>> = if http.matches.is_empty() {
            vec![None]
        } else {
            http.matches.iter().map(Some).collect()
        };
        let mut caught_all = false;
        for (match_index, m) in matches.into_iter().enumerate() {
            let match_path = format!("{path}.match[{match_index}]");
            let route = route(resource, namespace, &path, &match_path, http, m, index)?;
            caught_all = is_catch_all(&route);
            out.push(route);
            if caught_all {
                break;
            }
        }
        if caught_all {
            break;
        }
    }
    Ok(out)
}

/// Whether an Envoy route takes every request (Istio's `IsCatchAllRoute`).
pub(crate) fn is_catch_all(route: &Value) -> bool {
    let m = &route["match"];
    let path_all = m["prefix"] == "/" || m["safe_regex"]["regex"] == ".*";
    path_all && m.get("headers").is_none() && m.get("query_parameters").is_none()
}

fn route(
    resource: &str,
    namespace: &str,
    path: &str,
    match_path: &str,
    http: &HttpRoute,
    m: Option<&MatchRequest>,
    index: &Index,
) -> Result<Value, MeshError> {
    let mut route = json!({"match": route_match(resource, match_path, m)?});
    let name = match (http.name.as_deref(), m.and_then(|m| m.name.as_deref())) {
        (Some(route_name), Some(match_name)) => Some(format!("{route_name}.{match_name}")),
        (None, Some(match_name)) => Some(format!(".{match_name}")),
        (Some(route_name), None) => Some(route_name.to_string()),
        (None, None) => None,
    };
    if let Some(name) = name {
        route["name"] = json!(name);
    }
    let mut authority = None;
    if let Some(headers) = &http.headers {
        authority = apply_headers(&mut route, headers);
    }

    let actions = [
        !http.route.is_empty(),
        http.redirect.is_some(),
        http.direct_response.is_some(),
    ];
    if actions.iter().filter(|set| **set).count() != 1 {
        return Err(invalid(
            resource,
            format!("{path}: exactly one of route, redirect and directResponse must be set"),
        ));
    }
    if let Some(redirect) = &http.redirect {
        let code = match redirect.redirect_code.unwrap_or(301) {
            301 => "MOVED_PERMANENTLY",
            302 => "FOUND",
            303 => "SEE_OTHER",
            307 => "TEMPORARY_REDIRECT",
            308 => "PERMANENT_REDIRECT",
            other => {
                return Err(invalid(
                    resource,
                    format!(
                        "{path}.redirect.redirectCode: {other} is not a redirect code Envoy supports (301, 302, 303, 307, 308)"
                    ),
                ));
            }
        };
        let mut action = json!({"response_code": code});
        if let Some(uri) = &redirect.uri {
            action["path_redirect"] = json!(uri);
        }
        if let Some(authority) = &redirect.authority {
            action["host_redirect"] = json!(authority);
        }
        if let Some(scheme) = &redirect.scheme {
            action["scheme_redirect"] = json!(scheme);
        }
        route["redirect"] = action;
    } else if let Some(direct) = &http.direct_response {
        let mut action = json!({"status": direct.status});
        if let Some(body) = direct.body.as_ref().and_then(|b| b.string.as_ref()) {
            action["body"] = json!({"inline_string": body});
        }
        route["direct_response"] = action;
    } else {
        route["route"] = route_action(
            resource, namespace, path, http, authority, &mut route, index,
        )?;
    }

    if let Some(fault) = &http.fault
        && let Some(config) = fault_config(resource, &format!("{path}.fault"), fault)?
    {
        route["typed_per_filter_config"] = json!({"envoy.filters.http.fault": config});
    }
    if let Some(policy) = &http.cors_policy {
        route["typed_per_filter_config"][cors::FILTER] =
            cors::policy(resource, &format!("{path}.corsPolicy"), policy)?;
    }
    Ok(route)
}

fn route_match(resource: &str, path: &str, m: Option<&MatchRequest>) -> Result<Value, MeshError> {
    let mut out = json!({"prefix": "/"});
    let Some(m) = m else {
        return Ok(out);
    };
    let mut headers = Vec::new();
    for (name, value) in &m.headers {
        headers.push(header_matcher(resource, path, name, value.as_ref(), false)?);
    }
    for (name, value) in &m.without_headers {
        headers.push(header_matcher(resource, path, name, value.as_ref(), true)?);
    }
    // Istio sorts header matchers by name; `headers` and `withoutHeaders`
    // are maps already, so only their interleaving needs it.
    headers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    if let Some(uri) = &m.uri {
        out = match (&uri.exact, &uri.prefix, &uri.regex) {
            (Some(exact), _, _) => json!({"path": exact}),
            (None, Some(prefix), _) => json!({"prefix": prefix}),
            (None, None, Some(regex)) => json!({"safe_regex": {"regex": regex}}),
            (None, None, None) => json!({"prefix": "/"}),
        };
    }
    out["case_sensitive"] = json!(!m.ignore_uri_case);
    for (pseudo, value) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        if let Some(value) = value {
            headers.push(header_matcher(resource, path, pseudo, Some(value), false)?);
        }
    }
    if !headers.is_empty() {
        out["headers"] = json!(headers);
    }
    let query: Vec<Value> = m
        .query_params
        .iter()
        .map(|(name, value)| match string_match(value.as_ref()) {
            Matcher::Present => json!({"name": name, "present_match": true}),
            Matcher::String(matcher) => json!({"name": name, "string_match": matcher}),
        })
        .collect();
    if !query.is_empty() {
        out["query_parameters"] = json!(query);
    }
    Ok(out)
}

fn header_matcher(
    resource: &str,
    path: &str,
    name: &str,
    value: Option<&StringMatch>,
    inverted: bool,
) -> Result<Value, MeshError> {
    if name.starts_with("@request.auth.claims") {
        return Err(MeshError::Unsupported {
            resource: resource.to_string(),
            message: format!(
                "{path}.headers[{name}]: JWT claim matches are not supported by the local mesh (it runs no authentication)"
            ),
        });
    }
    let mut out = match string_match(value) {
        Matcher::Present => json!({"name": name, "present_match": true}),
        Matcher::String(matcher) => {
            let mut header = json!({"name": name, "string_match": matcher});
            if inverted {
                // A request without the header does not match the value,
                // so `withoutHeaders` lets it through.
                header["treat_missing_header_as_empty"] = json!(true);
            }
            header
        }
    };
    if inverted {
        out["invert_match"] = json!(true);
    }
    Ok(out)
}

/// Istio's header operations: `set` overwrites, `add` appends, `remove`
/// drops; pseudo-headers and `host` are never touched directly, but a
/// `:authority`/`host` value becomes the route's host rewrite. Returns that
/// authority.
fn apply_headers(target: &mut Value, headers: &Headers) -> Option<String> {
    let mut authority = None;
    let mut operations = |ops: &HeaderOperations, request: bool| {
        let mut add = Vec::new();
        for (map, action) in [
            (&ops.set, "OVERWRITE_IF_EXISTS_OR_ADD"),
            (&ops.add, "APPEND_IF_EXISTS_OR_ADD"),
        ] {
            for (key, value) in map {
                let is_authority =
                    key.eq_ignore_ascii_case(":authority") || key.eq_ignore_ascii_case("host");
                if is_authority
                    && request
                    && (action.starts_with("OVERWRITE") || authority.is_none())
                {
                    authority = Some(value.clone());
                }
                if key.starts_with(':') || key.eq_ignore_ascii_case("host") {
                    continue;
                }
                add.push(json!({"header": {"key": key, "value": value}, "append_action": action}));
            }
        }
        let remove: Vec<Value> = ops
            .remove
            .iter()
            .filter(|k| !(k.starts_with(':') || k.eq_ignore_ascii_case("host")))
            .map(|k| json!(k))
            .collect();
        (add, remove)
    };
    for (ops, request) in [(&headers.request, true), (&headers.response, false)] {
        let Some(ops) = ops else { continue };
        let (add, remove) = operations(ops, request);
        let (add_key, remove_key) = if request {
            ("request_headers_to_add", "request_headers_to_remove")
        } else {
            ("response_headers_to_add", "response_headers_to_remove")
        };
        extend(target, add_key, add);
        extend(
            target,
            remove_key,
            remove.into_iter().map(|k| json!(k)).collect(),
        );
    }
    authority
}

fn extend(target: &mut Value, key: &str, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    match target.get_mut(key).and_then(Value::as_array_mut) {
        Some(existing) => existing.extend(items),
        None => target[key] = json!(items),
    }
}

fn route_action(
    resource: &str,
    namespace: &str,
    path: &str,
    http: &HttpRoute,
    header_authority: Option<String>,
    route: &mut Value,
    index: &Index,
) -> Result<Value, MeshError> {
    let timeout = match &http.timeout {
        Some(text) => {
            duration(text).map_err(|e| invalid(resource, format!("{path}.timeout: {e}")))?
        }
        None => "0s".to_string(),
    };
    // `route.go`'s `setTimeout`: gRPC's `grpc-timeout` header is capped at
    // the route's timeout, and with no timeout (0s) it is not capped at all;
    // without `max_grpc_timeout` Envoy would ignore the header.
    let mut action = json!({"timeout": timeout, "max_grpc_timeout": timeout});

    let mut authority = header_authority;
    if let Some(rewrite) = &http.rewrite {
        if let Some(regex) = &rewrite.uri_regex_rewrite {
            action["regex_rewrite"] = json!({
                "pattern": {"regex": regex.pattern},
                "substitution": regex.rewrite,
            });
        } else if let Some(uri) = rewrite.uri.as_deref().filter(|u| !u.is_empty()) {
            action["prefix_rewrite"] = json!(uri);
        }
        if let Some(rewritten) = rewrite.authority.as_deref().filter(|a| !a.is_empty()) {
            authority = Some(rewritten.to_string());
        }
    }
    if let Some(authority) = &authority {
        action["host_rewrite_literal"] = json!(authority);
    }

    let mut mirrors = Vec::new();
    if let Some(mirror) = &http.mirror {
        let fraction = match (&http.mirror_percentage, http.mirror_percent) {
            (Some(percentage), _) => {
                (percentage.value.unwrap_or(0.0) > 0.0).then(|| per_million(percentage))
            }
            (None, Some(percent)) => (percent > 0).then(|| per_hundred(percent)),
            (None, None) => Some(per_hundred(100)),
        };
        if let Some(fraction) = fraction {
            let cluster =
                index.cluster_for(resource, namespace, &format!("{path}.mirror"), mirror)?;
            mirrors.push(mirror_policy(&cluster, fraction));
        }
    }
    for (i, mirror) in http.mirrors.iter().enumerate() {
        let Some(destination) = &mirror.destination else {
            continue;
        };
        let fraction = match &mirror.percentage {
            Some(percentage) => {
                (percentage.value.unwrap_or(0.0) > 0.0).then(|| per_million(percentage))
            }
            None => Some(per_hundred(100)),
        };
        if let Some(fraction) = fraction {
            let cluster = index.cluster_for(
                resource,
                namespace,
                &format!("{path}.mirrors[{i}].destination"),
                destination,
            )?;
            mirrors.push(mirror_policy(&cluster, fraction));
        }
    }
    if !mirrors.is_empty() {
        action["request_mirror_policies"] = json!(mirrors);
    }

    let mut hash_policies = Vec::new();
    if http.route.len() == 1 {
        let only = &http.route[0];
        let destination_path = format!("{path}.route[0].destination");
        action["cluster"] =
            json!(index.cluster_for(resource, namespace, &destination_path, &only.destination)?);
        if let Some(headers) = &only.headers {
            let destination_authority = apply_headers(route, headers);
            if let Some(destination_authority) = destination_authority
                && action.get("host_rewrite_literal").is_none()
            {
                action["host_rewrite_literal"] = json!(destination_authority);
            }
        }
        hash_policies.extend(index.hash_policy(&only.destination, namespace));
    } else {
        let mut clusters = Vec::new();
        for (i, destination) in http.route.iter().enumerate() {
            let weight = destination.weight.unwrap_or(0);
            if weight == 0 {
                // Istio leaves out a zero weight when there are others.
                continue;
            }
            let destination_path = format!("{path}.route[{i}].destination");
            let mut cluster = json!({
                "name": index.cluster_for(resource, namespace, &destination_path, &destination.destination)?,
                "weight": weight,
            });
            if let Some(headers) = &destination.headers
                && let Some(destination_authority) = apply_headers(&mut cluster, headers)
            {
                cluster["host_rewrite_literal"] = json!(destination_authority);
            }
            hash_policies.extend(index.hash_policy(&destination.destination, namespace));
            clusters.push(cluster);
        }
        if clusters.is_empty() {
            return Err(invalid(
                resource,
                format!(
                    "{path}.route: with several destinations, at least one needs a weight above 0"
                ),
            ));
        }
        action["weighted_clusters"] = json!({"clusters": clusters});
    }
    // Istio keeps retries on the hashed host only for a single destination.
    let consistent_hash = http.route.len() == 1 && !hash_policies.is_empty();
    if !hash_policies.is_empty() {
        action["hash_policy"] = json!(hash_policies);
    }
    if let Some(policy) = retry_policy(
        resource,
        &format!("{path}.retries"),
        http.retries.as_ref(),
        consistent_hash,
    )? {
        action["retry_policy"] = policy;
    }
    Ok(action)
}

/// A mirror as `route.go`'s `TranslateRequestMirrorPolicy` writes it: the
/// copy keeps the original `Host` (`DISABLE_SHADOW_HOST_SUFFIX` is on by
/// default in Istio 1.30, so Envoy does not append `-shadow`).
fn mirror_policy(cluster: &str, fraction: Value) -> Value {
    json!({
        "cluster": cluster,
        "runtime_fraction": {"default_value": fraction},
        "trace_sampled": false,
        "disable_shadow_host_suffix_append": true,
    })
}

fn previous_hosts() -> Value {
    json!([{
        "name": "envoy.retry_host_predicates.previous_hosts",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
        }
    }])
}

/// Istio's default retry policy (`retry.go`'s `DefaultPolicy`): 2 retries
/// on connection failures, refused streams and gRPC `unavailable`/
/// `cancelled`, on another host than the ones tried (unless the route hashes
/// to one host). `retriable-status-codes` is among the conditions but, since
/// Istio 1.24, no code is listed: an upstream's 503 is answered as it is
/// (only a caller's `x-envoy-retriable-status-codes` header would name one).
pub(crate) fn default_retry_policy(consistent_hash: bool) -> Value {
    let mut policy = json!({
        "retry_on": DEFAULT_RETRY_ON,
        "num_retries": 2,
        "host_selection_retry_max_attempts": 5,
    });
    if !consistent_hash {
        policy["retry_host_predicate"] = previous_hosts();
    }
    policy
}

/// A route's `retries` as Istio converts them (`retry.go`'s
/// `ConvertPolicy`): absent means the default policy, `attempts: 0` (or
/// less) means none; otherwise the default with the given fields replacing
/// its own, so `{attempts: N}` alone keeps the default conditions and no
/// status code. Status codes in `retryOn` become `retriable_status_codes`
/// (with `retriable-status-codes` added).
pub(crate) fn retry_policy(
    resource: &str,
    path: &str,
    retries: Option<&Retry>,
    consistent_hash: bool,
) -> Result<Option<Value>, MeshError> {
    let Some(retries) = retries else {
        return Ok(Some(default_retry_policy(consistent_hash)));
    };
    if retries.attempts <= 0 {
        return Ok(None);
    }
    let mut policy = default_retry_policy(consistent_hash);
    policy["num_retries"] = json!(retries.attempts);
    if let Some(retry_on) = retries.retry_on.as_deref().filter(|r| !r.trim().is_empty()) {
        let mut conditions = Vec::new();
        let mut codes = Vec::new();
        for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<u32>() {
                Ok(code) if (100..=599).contains(&code) => codes.push(code),
                _ if retry_conditions().any(|c| c == part) => conditions.push(part),
                _ => {
                    return Err(invalid(
                        resource,
                        format!(
                            "{path}.retryOn: {part:?} is neither a retry condition ({}) nor an HTTP status code",
                            retry_conditions().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        if !codes.is_empty() && !conditions.contains(&"retriable-status-codes") {
            conditions.push("retriable-status-codes");
        }
        policy["retry_on"] = json!(conditions.join(","));
        if !codes.is_empty() {
            policy["retriable_status_codes"] = json!(codes);
        }
    }
    if let Some(per_try) = &retries.per_try_timeout {
        policy["per_try_timeout"] = json!(
            duration(per_try)
                .map_err(|e| invalid(resource, format!("{path}.perTryTimeout: {e}")))?
        );
    }
    match retries.retry_ignore_previous_hosts {
        Some(true) => policy["retry_host_predicate"] = previous_hosts(),
        Some(false) => {
            if let Some(fields) = policy.as_object_mut() {
                fields.remove("retry_host_predicate");
            }
        }
        None => {}
    }
    if let Some(backoff) = &retries.backoff {
        policy["retry_back_off"] = json!({
            "base_interval": duration(backoff)
                .map_err(|e| invalid(resource, format!("{path}.backoff: {e}")))?
        });
    }
    Ok(Some(policy))
}

/// Istio's fault injection as the fault filter's per-route config: the
/// percentages as Istio passes them (an absent `percentage` means none for
/// an abort and `percent`, 0 if absent too, for a delay).
fn fault_config(resource: &str, path: &str, fault: &Fault) -> Result<Option<Value>, MeshError> {
    let mut out =
        json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"});
    let mut any = false;
    if let Some(delay) = &fault.delay {
        let Some(fixed) = &delay.fixed_delay else {
            return Err(invalid(
                resource,
                format!(
                    "{path}.delay: fixedDelay is required (the local mesh has no exponentialDelay)"
                ),
            ));
        };
        let fixed = duration(fixed)
            .map_err(|e| invalid(resource, format!("{path}.delay.fixedDelay: {e}")))?;
        let percentage = match &delay.percentage {
            Some(percentage) => per_million(percentage),
            None => per_hundred(delay.percent.unwrap_or(0)),
        };
        out["delay"] = json!({"fixed_delay": fixed, "percentage": percentage});
        any = true;
    }
    if let Some(abort) = &fault.abort {
        let Some(status) = abort.http_status else {
            return Err(invalid(
                resource,
                format!(
                    "{path}.abort: httpStatus is required (the local mesh has no gRPC or HTTP/2 aborts)"
                ),
            ));
        };
        if !(200..600).contains(&status) {
            return Err(invalid(
                resource,
                format!("{path}.abort.httpStatus: {status} is not an HTTP status from 200 to 599"),
            ));
        }
        let mut abort_config = json!({"http_status": status});
        if let Some(percentage) = &abort.percentage {
            abort_config["percentage"] = per_million(percentage);
        }
        out["abort"] = abort_config;
        any = true;
    }
    Ok(any.then_some(out))
}

/// The default route Istio gives a service without a VirtualService.
pub(crate) fn default_route(cluster: &str, hash_policy: Option<Value>) -> Value {
    let mut route = json!({
        "name": "default",
        "match": {"prefix": "/"},
        "route": {
            "cluster": cluster,
            "timeout": "0s",
            "max_grpc_timeout": "0s",
            "retry_policy": default_retry_policy(hash_policy.is_some()),
        }
    });
    if let Some(hash) = hash_policy {
        route["route"]["hash_policy"] = json!([hash]);
    }
    route
}
