//! Normalized views of Envoy configuration, read the same way from istiod's
//! goldens (Go's protojson: camelCase keys, int64 as strings, defaults left
//! out) and from the local mesh's bootstrap (snake_case, every value
//! written): what a route, a cluster and a connection manager do, with
//! Envoy's defaults filled in where a field is absent, so two
//! configurations that behave alike compare equal and the diff printed on a
//! failure names the field.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

/// A field of an object whatever its spelling: protojson's `maxGrpcTimeout`
/// and `consecutive5xx` are Envoy's `max_grpc_timeout` and `consecutive_5xx`.
pub fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    let wanted = squash(name);
    object
        .as_object()?
        .iter()
        .find(|(key, _)| squash(key) == wanted)
        .map(|(_, value)| value)
        .filter(|value| !value.is_null())
}

fn squash(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn text(object: &Value, name: &str) -> Option<String> {
    field(object, name)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// An integer, as a JSON number or (protojson's int64/uint64) a string.
fn number(object: &Value, name: &str) -> Option<u64> {
    match field(object, name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A `google.protobuf.UInt32Value`-style wrapper or a plain number.
fn wrapped(object: &Value, name: &str) -> Option<u64> {
    let value = field(object, name)?;
    match value {
        Value::Object(_) => Some(number(value, "value").unwrap_or(0)),
        _ => number(object, name),
    }
}

fn flag(object: &Value, name: &str) -> Option<bool> {
    match field(object, name)? {
        Value::Bool(b) => Some(*b),
        // BoolValue wrapper.
        Value::Object(o) => Some(o.get("value").and_then(Value::as_bool).unwrap_or(false)),
        _ => None,
    }
}

/// A proto `Duration` in JSON (`"0s"`, `"0.500s"`, `"300s"`,
/// `"2.000000000s"`) as milliseconds (no field compared here is finer).
pub fn millis(value: &Value) -> Option<u64> {
    let text = value.as_str()?.strip_suffix('s')?;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut fraction = fraction.to_string();
    fraction.truncate(3);
    while fraction.len() < 3 {
        fraction.push('0');
    }
    Some(whole.parse::<u64>().ok()? * 1000 + fraction.parse::<u64>().ok()?)
}

fn duration(object: &Value, name: &str) -> Option<u64> {
    field(object, name).and_then(millis)
}

/// A `FractionalPercent` as parts per million (the denominator defaults to
/// HUNDRED, the enum's zero, which protojson leaves out).
fn per_million(percent: &Value) -> u64 {
    let numerator = number(percent, "numerator").unwrap_or(0);
    let scale = match text(percent, "denominator").as_deref() {
        Some("MILLION") => 1,
        Some("TEN_THOUSAND") => 100,
        _ => 10_000,
    };
    numerator * scale
}

/// How the local mesh names the cluster istiod calls `name`: Istio's
/// `outbound|8080|v1|cpanel.airport.svc.cluster.local` is the local mesh's
/// `outbound|cpanel.airport|v1` (see the intended difference
/// `cluster-names`); a name of the local mesh is returned unchanged.
pub fn local_cluster_name(name: &str) -> String {
    let parts: Vec<&str> = name.split('|').collect();
    match parts.as_slice() {
        ["outbound", _port, subset, host] => {
            let service = host.strip_suffix(".svc.cluster.local").unwrap_or(host);
            if subset.is_empty() {
                format!("outbound|{service}")
            } else {
                format!("outbound|{service}|{subset}")
            }
        }
        _ => name.to_string(),
    }
}

/// What a route does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteView {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matcher: MatchView,
    pub action: ActionView,
    pub fault: Option<FaultView>,
    /// Header operations, `name=value (append action)` and `-name`.
    pub request_headers: Vec<String>,
    pub response_headers: Vec<String>,
    /// Fields of the route no view reads ([`ROUTE_FIELDS`]).
    pub unread: Vec<String>,
}

/// The route fields [`route_view`] reads (`metadata` and `decorator` only
/// feed telemetry: set aside by oracle_parity's `route-telemetry`).
pub const ROUTE_FIELDS: &[&str] = &[
    "name",
    "match",
    "route",
    "redirect",
    "direct_response",
    "typed_per_filter_config",
    "request_headers_to_add",
    "request_headers_to_remove",
    "response_headers_to_add",
    "response_headers_to_remove",
    "metadata",
    "decorator",
];

/// The match fields [`match_view`] reads.
pub const MATCH_FIELDS: &[&str] = &[
    "prefix",
    "path",
    "safe_regex",
    "path_separated_prefix",
    "case_sensitive",
    "headers",
    "query_parameters",
];

/// The route action fields [`route_action_view`] reads.
pub const ROUTE_ACTION_FIELDS: &[&str] = &[
    "cluster",
    "weighted_clusters",
    "timeout",
    "max_grpc_timeout",
    "max_stream_duration",
    "prefix_rewrite",
    "regex_rewrite",
    "host_rewrite_literal",
    "retry_policy",
    "request_mirror_policies",
    "hash_policy",
    "cluster_not_found_response_code",
];

/// The retry policy fields [`retry_view`] reads.
pub const RETRY_FIELDS: &[&str] = &[
    "retry_on",
    "num_retries",
    "retriable_status_codes",
    "per_try_timeout",
    "per_try_idle_timeout",
    "retry_host_predicate",
    "host_selection_retry_max_attempts",
    "retry_back_off",
    "retry_priority",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchView {
    /// `prefix /a`, `path /a`, `regex .*`, ...
    pub path: String,
    /// Envoy's default is case sensitive.
    pub case_sensitive: bool,
    pub headers: Vec<String>,
    pub query_parameters: Vec<String>,
    pub unread: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ActionView {
    Route(Box<RouteActionView>),
    Redirect(BTreeMap<String, String>),
    DirectResponse(BTreeMap<String, String>),
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteActionView {
    /// `cluster` alone, or the weighted clusters as `name` → weight.
    pub cluster: Option<String>,
    pub weighted_clusters: Vec<(String, u64)>,
    /// Milliseconds; Envoy's default route timeout is 15 s.
    pub timeout_ms: u64,
    /// Milliseconds; absent means Envoy ignores `grpc-timeout`.
    pub max_grpc_timeout_ms: Option<u64>,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<String>,
    pub host_rewrite_literal: Option<String>,
    pub retry_policy: Option<RetryView>,
    pub request_mirror_policies: Vec<MirrorView>,
    pub hash_policy: Vec<String>,
    /// `max_stream_duration`'s fields, milliseconds: the stream's own
    /// limit, and how far a caller's `grpc-timeout` is honoured (absent:
    /// not at all; 0: without a cap).
    pub max_stream_duration_ms: Option<u64>,
    pub grpc_timeout_header_max_ms: Option<u64>,
    /// What Envoy answers when the cluster does not exist; Envoy's default
    /// is 503.
    pub cluster_not_found_response_code: String,
    pub unread: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryView {
    /// The conditions, as a set (their order means nothing to Envoy).
    pub retry_on: BTreeSet<String>,
    /// Envoy's default is 1.
    pub num_retries: u64,
    pub retriable_status_codes: Vec<u64>,
    pub per_try_timeout_ms: Option<u64>,
    pub per_try_idle_timeout_ms: Option<u64>,
    pub retry_host_predicates: Vec<String>,
    /// Envoy's default is 1.
    pub host_selection_retry_max_attempts: u64,
    pub retry_back_off_base_ms: Option<u64>,
    pub retry_back_off_max_ms: Option<u64>,
    pub retry_priority: Option<String>,
    pub unread: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MirrorView {
    pub cluster: String,
    /// Absent `runtime_fraction` mirrors every request.
    pub per_million: u64,
    pub trace_sampled: Option<bool>,
    /// Whether the copy keeps the original `Host` (no `-shadow` suffix).
    pub disable_shadow_host_suffix_append: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultView {
    pub delay_ms: Option<u64>,
    pub delay_per_million: Option<u64>,
    pub abort_http_status: Option<u64>,
    pub abort_grpc_status: Option<u64>,
    pub abort_per_million: Option<u64>,
    pub max_active_faults: Option<u64>,
}

fn string_matcher(matcher: &Value) -> String {
    let case = if flag(matcher, "ignore_case") == Some(true) {
        " (ignore case)"
    } else {
        ""
    };
    for kind in ["exact", "prefix", "suffix", "contains"] {
        if let Some(value) = text(matcher, kind) {
            return format!("{kind} {value}{case}");
        }
    }
    if let Some(regex) = field(matcher, "safe_regex").and_then(|r| text(r, "regex")) {
        return format!("regex {regex}{case}");
    }
    format!("unknown {matcher}")
}

fn header_matcher(header: &Value) -> String {
    let name = text(header, "name").unwrap_or_default();
    let how = if flag(header, "present_match") == Some(true) {
        "present".to_string()
    } else if let Some(matcher) = field(header, "string_match") {
        string_matcher(matcher)
    } else if let Some(exact) = text(header, "exact_match") {
        format!("exact {exact}")
    } else if let Some(regex) = field(header, "safe_regex_match").and_then(|r| text(r, "regex")) {
        format!("regex {regex}")
    } else {
        format!("unknown {header}")
    };
    let mut out = format!("{name}: {how}");
    if flag(header, "invert_match") == Some(true) {
        out.push_str(" (inverted)");
    }
    if flag(header, "treat_missing_header_as_empty") == Some(true) {
        out.push_str(" (missing is empty)");
    }
    out
}

fn query_matcher(query: &Value) -> String {
    let name = text(query, "name").unwrap_or_default();
    if flag(query, "present_match") == Some(true) {
        format!("{name}: present")
    } else if let Some(matcher) = field(query, "string_match") {
        format!("{name}: {}", string_matcher(matcher))
    } else {
        format!("{name}: unknown {query}")
    }
}

fn match_view(m: &Value) -> MatchView {
    let path = if let Some(prefix) = text(m, "prefix") {
        format!("prefix {prefix}")
    } else if let Some(path) = text(m, "path") {
        format!("path {path}")
    } else if let Some(regex) = field(m, "safe_regex").and_then(|r| text(r, "regex")) {
        format!("regex {regex}")
    } else if let Some(prefix) = text(m, "path_separated_prefix") {
        format!("path-separated prefix {prefix}")
    } else {
        format!("unknown {m}")
    };
    let list = |name: &str, each: fn(&Value) -> String| -> Vec<String> {
        field(m, name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(each)
            .collect()
    };
    MatchView {
        path,
        case_sensitive: flag(m, "case_sensitive").unwrap_or(true),
        headers: list("headers", header_matcher),
        query_parameters: list("query_parameters", query_matcher),
        unread: unread_fields(m, MATCH_FIELDS),
    }
}

fn header_operations(route: &Value, add: &str, remove: &str) -> Vec<String> {
    let mut out: Vec<String> = field(route, add)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|entry| {
            let header = field(entry, "header").cloned().unwrap_or_default();
            format!(
                "{}={} ({})",
                text(&header, "key").unwrap_or_default(),
                text(&header, "value").unwrap_or_default(),
                // Envoy's enum zero, which protojson leaves out.
                text(entry, "append_action").unwrap_or_else(|| "APPEND_IF_EXISTS_OR_ADD".into())
            )
        })
        .collect();
    out.extend(
        field(route, remove)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|name| format!("-{name}")),
    );
    out
}

fn retry_view(policy: &Value) -> RetryView {
    let back_off = field(policy, "retry_back_off");
    RetryView {
        retry_on: text(policy, "retry_on")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
        num_retries: wrapped(policy, "num_retries").unwrap_or(1),
        retriable_status_codes: field(policy, "retriable_status_codes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect(),
        per_try_timeout_ms: duration(policy, "per_try_timeout"),
        per_try_idle_timeout_ms: duration(policy, "per_try_idle_timeout"),
        retry_host_predicates: field(policy, "retry_host_predicate")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| text(p, "name"))
            .collect(),
        host_selection_retry_max_attempts: number(policy, "host_selection_retry_max_attempts")
            .unwrap_or(1),
        retry_back_off_base_ms: back_off.and_then(|b| duration(b, "base_interval")),
        retry_back_off_max_ms: back_off.and_then(|b| duration(b, "max_interval")),
        retry_priority: field(policy, "retry_priority").and_then(|p| text(p, "name")),
        unread: unread_fields(policy, RETRY_FIELDS),
    }
}

fn mirror_view(mirror: &Value) -> MirrorView {
    MirrorView {
        cluster: local_cluster_name(&text(mirror, "cluster").unwrap_or_default()),
        per_million: field(mirror, "runtime_fraction")
            .and_then(|f| field(f, "default_value"))
            .map(per_million)
            .unwrap_or(1_000_000),
        trace_sampled: flag(mirror, "trace_sampled"),
        disable_shadow_host_suffix_append: flag(mirror, "disable_shadow_host_suffix_append")
            .unwrap_or(false),
    }
}

/// A hash policy in one canonical line: its kind and its fields, durations
/// in milliseconds.
fn hash_view(policy: &Value) -> String {
    let terminal = flag(policy, "terminal").unwrap_or(false);
    let mut out = String::new();
    if let Some(header) = field(policy, "header") {
        out = format!("header {}", text(header, "header_name").unwrap_or_default());
    } else if let Some(cookie) = field(policy, "cookie") {
        out = format!(
            "cookie {} ttl={:?} path={:?}",
            text(cookie, "name").unwrap_or_default(),
            duration(cookie, "ttl"),
            text(cookie, "path")
        );
    } else if let Some(connection) = field(policy, "connection_properties") {
        out = format!(
            "source ip {}",
            flag(connection, "source_ip").unwrap_or(false)
        );
    } else if let Some(query) = field(policy, "query_parameter") {
        out = format!(
            "query parameter {}",
            text(query, "name").unwrap_or_default()
        );
    } else if let Some(state) = field(policy, "filter_state") {
        out = format!("filter state {}", text(state, "key").unwrap_or_default());
    }
    if out.is_empty() {
        out = format!("unknown {policy}");
    }
    if terminal {
        out.push_str(" (terminal)");
    }
    out
}

fn route_action_view(action: &Value) -> RouteActionView {
    let weighted_clusters = field(action, "weighted_clusters")
        .and_then(|w| field(w, "clusters"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                local_cluster_name(&text(c, "name").unwrap_or_default()),
                wrapped(c, "weight").unwrap_or(0),
            )
        })
        .collect();
    RouteActionView {
        cluster: text(action, "cluster").map(|c| local_cluster_name(&c)),
        weighted_clusters,
        timeout_ms: duration(action, "timeout").unwrap_or(15_000),
        max_grpc_timeout_ms: duration(action, "max_grpc_timeout"),
        prefix_rewrite: text(action, "prefix_rewrite"),
        regex_rewrite: field(action, "regex_rewrite").map(|r| {
            format!(
                "{} -> {}",
                field(r, "pattern")
                    .and_then(|p| text(p, "regex"))
                    .unwrap_or_default(),
                text(r, "substitution").unwrap_or_default()
            )
        }),
        host_rewrite_literal: text(action, "host_rewrite_literal"),
        retry_policy: field(action, "retry_policy").map(retry_view),
        request_mirror_policies: field(action, "request_mirror_policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(mirror_view)
            .collect(),
        hash_policy: field(action, "hash_policy")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(hash_view)
            .collect(),
        max_stream_duration_ms: field(action, "max_stream_duration")
            .and_then(|d| duration(d, "max_stream_duration")),
        grpc_timeout_header_max_ms: field(action, "max_stream_duration")
            .and_then(|d| duration(d, "grpc_timeout_header_max")),
        cluster_not_found_response_code: text(action, "cluster_not_found_response_code")
            .unwrap_or_else(|| "SERVICE_UNAVAILABLE".into()),
        unread: unread_fields(action, ROUTE_ACTION_FIELDS),
    }
}

fn fault_view(config: &Value) -> FaultView {
    let delay = field(config, "delay");
    let abort = field(config, "abort");
    FaultView {
        delay_ms: delay.and_then(|d| duration(d, "fixed_delay")),
        delay_per_million: delay.and_then(|d| field(d, "percentage")).map(per_million),
        abort_http_status: abort.and_then(|a| number(a, "http_status")),
        abort_grpc_status: abort.and_then(|a| number(a, "grpc_status")),
        abort_per_million: abort.and_then(|a| field(a, "percentage")).map(per_million),
        max_active_faults: wrapped(config, "max_active_faults"),
    }
}

fn simple_map(object: &Value) -> BTreeMap<String, String> {
    object
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (squash(k), v.to_string()))
        .collect()
}

pub fn route_view(route: &Value) -> RouteView {
    let action = if let Some(action) = field(route, "route") {
        ActionView::Route(Box::new(route_action_view(action)))
    } else if let Some(redirect) = field(route, "redirect") {
        ActionView::Redirect(simple_map(redirect))
    } else if let Some(direct) = field(route, "direct_response") {
        ActionView::DirectResponse(simple_map(direct))
    } else {
        ActionView::Other(route.to_string())
    };
    RouteView {
        name: text(route, "name"),
        matcher: match_view(field(route, "match").unwrap_or(&Value::Null)),
        action,
        fault: field(route, "typed_per_filter_config")
            .and_then(|c| c.get("envoy.filters.http.fault"))
            .map(fault_view),
        request_headers: header_operations(
            route,
            "request_headers_to_add",
            "request_headers_to_remove",
        ),
        response_headers: header_operations(
            route,
            "response_headers_to_add",
            "response_headers_to_remove",
        ),
        unread: unread_fields(route, ROUTE_FIELDS),
    }
}

/// A virtual host: its routes in order, and the virtual-host options.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VirtualHostView {
    pub include_request_attempt_count: bool,
    pub include_attempt_count_in_response: bool,
    pub retry_policy: Option<RetryView>,
    pub routes: Vec<RouteView>,
    pub unread: Vec<String>,
}

/// The virtual host fields [`virtual_host_view`] reads (`name` and
/// `domains`: oracle_parity keys virtual hosts by them).
pub const VIRTUAL_HOST_FIELDS: &[&str] = &[
    "name",
    "domains",
    "routes",
    "include_request_attempt_count",
    "include_attempt_count_in_response",
    "retry_policy",
];

pub fn virtual_host_view(host: &Value) -> VirtualHostView {
    VirtualHostView {
        include_request_attempt_count: flag(host, "include_request_attempt_count").unwrap_or(false),
        include_attempt_count_in_response: flag(host, "include_attempt_count_in_response")
            .unwrap_or(false),
        retry_policy: field(host, "retry_policy").map(retry_view),
        routes: field(host, "routes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(route_view)
            .collect(),
        unread: unread_fields(host, VIRTUAL_HOST_FIELDS),
    }
}

/// What a cluster does with its endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterView {
    /// ROUND_ROBIN is Envoy's default (the enum's zero).
    pub lb_policy: String,
    pub ring_hash_minimum_ring_size: Option<u64>,
    pub maglev_table_size: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub circuit_breakers: Vec<ThresholdsView>,
    pub outlier_detection: Option<OutlierView>,
    /// Percent; Envoy's default is 50.
    pub healthy_panic_threshold: f64,
    pub http_idle_timeout_ms: Option<u64>,
    pub max_requests_per_connection: Option<u64>,
    pub max_connection_duration_ms: Option<u64>,
}

/// One circuit-breaker threshold, Envoy's defaults filled in (1024
/// connections, pending requests and requests, 3 retries).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdsView {
    pub priority: String,
    pub max_connections: u64,
    pub max_pending_requests: u64,
    pub max_requests: u64,
    pub max_retries: u64,
    pub retry_budget: Option<String>,
}

/// Outlier detection with Envoy's defaults filled in
/// (envoy/config/cluster/v3/outlier_detection.proto).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutlierView {
    pub consecutive_5xx: u64,
    pub enforcing_consecutive_5xx: u64,
    pub consecutive_gateway_failure: u64,
    pub enforcing_consecutive_gateway_failure: u64,
    pub interval_ms: u64,
    pub base_ejection_time_ms: u64,
    pub max_ejection_percent: u64,
    pub enforcing_success_rate: u64,
    pub split_external_local_origin_errors: bool,
    pub consecutive_local_origin_failure: u64,
    pub enforcing_consecutive_local_origin_failure: u64,
    pub enforcing_local_origin_success_rate: u64,
}

fn outlier_view(o: &Value) -> OutlierView {
    OutlierView {
        consecutive_5xx: wrapped(o, "consecutive_5xx").unwrap_or(5),
        enforcing_consecutive_5xx: wrapped(o, "enforcing_consecutive_5xx").unwrap_or(100),
        consecutive_gateway_failure: wrapped(o, "consecutive_gateway_failure").unwrap_or(5),
        enforcing_consecutive_gateway_failure: wrapped(o, "enforcing_consecutive_gateway_failure")
            .unwrap_or(0),
        interval_ms: duration(o, "interval").unwrap_or(10_000),
        base_ejection_time_ms: duration(o, "base_ejection_time").unwrap_or(30_000),
        max_ejection_percent: wrapped(o, "max_ejection_percent").unwrap_or(10),
        enforcing_success_rate: wrapped(o, "enforcing_success_rate").unwrap_or(100),
        split_external_local_origin_errors: flag(o, "split_external_local_origin_errors")
            .unwrap_or(false),
        consecutive_local_origin_failure: wrapped(o, "consecutive_local_origin_failure")
            .unwrap_or(5),
        enforcing_consecutive_local_origin_failure: wrapped(
            o,
            "enforcing_consecutive_local_origin_failure",
        )
        .unwrap_or(100),
        enforcing_local_origin_success_rate: wrapped(o, "enforcing_local_origin_success_rate")
            .unwrap_or(100),
    }
}

fn thresholds_view(t: &Value) -> ThresholdsView {
    ThresholdsView {
        priority: text(t, "priority").unwrap_or_else(|| "DEFAULT".into()),
        max_connections: wrapped(t, "max_connections").unwrap_or(1024),
        max_pending_requests: wrapped(t, "max_pending_requests").unwrap_or(1024),
        max_requests: wrapped(t, "max_requests").unwrap_or(1024),
        max_retries: wrapped(t, "max_retries").unwrap_or(3),
        retry_budget: field(t, "retry_budget").map(|b| {
            format!(
                "budget {:?}% min concurrency {:?}",
                field(b, "budget_percent").and_then(|p| field(p, "value")),
                wrapped(b, "min_retry_concurrency")
            )
        }),
    }
}

pub fn cluster_view(cluster: &Value) -> ClusterView {
    let common = field(cluster, "typed_extension_protocol_options")
        .and_then(|o| o.get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"))
        .and_then(|o| field(o, "common_http_protocol_options"));
    let panic =
        field(cluster, "common_lb_config").and_then(|c| field(c, "healthy_panic_threshold"));
    ClusterView {
        lb_policy: text(cluster, "lb_policy").unwrap_or_else(|| "ROUND_ROBIN".into()),
        ring_hash_minimum_ring_size: field(cluster, "ring_hash_lb_config")
            .and_then(|c| wrapped(c, "minimum_ring_size")),
        maglev_table_size: field(cluster, "maglev_lb_config")
            .and_then(|c| wrapped(c, "table_size")),
        connect_timeout_ms: duration(cluster, "connect_timeout"),
        circuit_breakers: field(cluster, "circuit_breakers")
            .and_then(|c| field(c, "thresholds"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(thresholds_view)
            .collect(),
        outlier_detection: field(cluster, "outlier_detection").map(outlier_view),
        healthy_panic_threshold: panic
            .map(|p| field(p, "value").and_then(Value::as_f64).unwrap_or(0.0))
            .unwrap_or(50.0),
        http_idle_timeout_ms: common.and_then(|c| duration(c, "idle_timeout")),
        max_requests_per_connection: common.and_then(|c| wrapped(c, "max_requests_per_connection")),
        max_connection_duration_ms: common.and_then(|c| duration(c, "max_connection_duration")),
    }
}

/// The options of an HTTP connection manager that change how requests are
/// handled, Envoy's defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionManagerView {
    /// AUTO is the enum's zero.
    pub codec_type: String,
    pub normalize_path: bool,
    pub merge_slashes: bool,
    /// Envoy's IMPLEMENTATION_SPECIFIC_DEFAULT is KEEP_UNCHANGED.
    pub path_with_escaped_slashes_action: String,
    pub upgrade_types: Vec<String>,
    pub use_remote_address: bool,
    pub xff_num_trusted_hops: u64,
    pub skip_xff_append: bool,
    /// Milliseconds; Envoy's default is 5 minutes.
    pub stream_idle_timeout_ms: u64,
    /// Milliseconds; 0 (none) is Envoy's default.
    pub request_timeout_ms: u64,
    /// The `server` header Envoy writes on responses; `envoy` by default.
    pub server_name: String,
    pub server_header_transformation: String,
    /// Whether `100 Continue` goes to the upstream instead of being
    /// answered by Envoy.
    pub proxy_100_continue: bool,
    pub preserve_external_request_id: bool,
    pub generate_request_id: bool,
    pub max_request_headers_kb: Option<u64>,
    pub http_idle_timeout_ms: Option<u64>,
    pub headers_with_underscores_action: Option<String>,
    pub accept_http_10: bool,
}

pub fn connection_manager_view(hcm: &Value) -> ConnectionManagerView {
    let common = field(hcm, "common_http_protocol_options");
    let http1 = field(hcm, "http_protocol_options");
    ConnectionManagerView {
        codec_type: text(hcm, "codec_type").unwrap_or_else(|| "AUTO".into()),
        normalize_path: flag(hcm, "normalize_path").unwrap_or(false),
        merge_slashes: flag(hcm, "merge_slashes").unwrap_or(false),
        path_with_escaped_slashes_action: match text(hcm, "path_with_escaped_slashes_action") {
            None => "KEEP_UNCHANGED".into(),
            Some(action) if action == "IMPLEMENTATION_SPECIFIC_DEFAULT" => "KEEP_UNCHANGED".into(),
            Some(action) => action,
        },
        upgrade_types: field(hcm, "upgrade_configs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|u| {
                let enabled = flag(u, "enabled").unwrap_or(true);
                format!(
                    "{}{}",
                    text(u, "upgrade_type").unwrap_or_default(),
                    if enabled { "" } else { " (disabled)" }
                )
            })
            .collect(),
        use_remote_address: flag(hcm, "use_remote_address").unwrap_or(false),
        xff_num_trusted_hops: number(hcm, "xff_num_trusted_hops").unwrap_or(0),
        skip_xff_append: flag(hcm, "skip_xff_append").unwrap_or(false),
        stream_idle_timeout_ms: duration(hcm, "stream_idle_timeout").unwrap_or(300_000),
        request_timeout_ms: duration(hcm, "request_timeout").unwrap_or(0),
        server_name: text(hcm, "server_name").unwrap_or_else(|| "envoy".into()),
        server_header_transformation: text(hcm, "server_header_transformation")
            .unwrap_or_else(|| "OVERWRITE".into()),
        proxy_100_continue: flag(hcm, "proxy_100_continue").unwrap_or(false),
        preserve_external_request_id: flag(hcm, "preserve_external_request_id").unwrap_or(false),
        generate_request_id: flag(hcm, "generate_request_id").unwrap_or(true),
        max_request_headers_kb: wrapped(hcm, "max_request_headers_kb"),
        http_idle_timeout_ms: common.and_then(|c| duration(c, "idle_timeout")),
        headers_with_underscores_action: common
            .and_then(|c| text(c, "headers_with_underscores_action")),
        accept_http_10: http1
            .and_then(|h| flag(h, "accept_http_10"))
            .unwrap_or(false),
    }
}

/// A serializable view as `path = value` lines, so two views can be
/// diffed field by field.
pub fn flatten(prefix: &str, value: &impl Serialize) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    flatten_into(prefix, &serde_json::to_value(value).unwrap(), &mut out);
    out
}

fn flatten_into(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                flatten_into(&format!("{prefix}.{key}"), inner, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, inner) in items.iter().enumerate() {
                flatten_into(&format!("{prefix}[{i}]"), inner, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The connection manager fields [`connection_manager_view`] reads, as
/// dotted paths (`a.b`: only `b` of the object `a`).
pub const CONNECTION_MANAGER_FIELDS: &[&str] = &[
    "codec_type",
    "normalize_path",
    "merge_slashes",
    "path_with_escaped_slashes_action",
    "upgrade_configs",
    "use_remote_address",
    "xff_num_trusted_hops",
    "skip_xff_append",
    "stream_idle_timeout",
    "request_timeout",
    "server_name",
    "server_header_transformation",
    "proxy_100_continue",
    "preserve_external_request_id",
    "generate_request_id",
    "max_request_headers_kb",
    "common_http_protocol_options.idle_timeout",
    "common_http_protocol_options.headers_with_underscores_action",
    "http_protocol_options.accept_http_10",
];

/// The fields of `object` (whatever their spelling) that no path of `read`
/// names, as dotted snake_case paths: what a view would silently ignore.
pub fn unread_fields(object: &Value, read: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    for (key, value) in map {
        let name = squash(key);
        if read.iter().any(|r| squash(r) == name) {
            continue;
        }
        let inner: Vec<&str> = read
            .iter()
            .filter_map(|r| r.split_once('.'))
            .filter(|(head, _)| squash(head) == name)
            .map(|(_, tail)| tail)
            .collect();
        if inner.is_empty() {
            out.push(snake(key));
        } else {
            out.extend(
                unread_fields(value, &inner)
                    .into_iter()
                    .map(|f| format!("{}.{f}", snake(key))),
            );
        }
    }
    out
}

/// protojson's `camelCase` as Envoy's `snake_case` (already snake_case
/// names are unchanged).
fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
