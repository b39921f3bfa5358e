//! The part of Istio's API the local mesh translates, as typed values.
//!
//! Only fields the allow-list in [`super::supported`] lets through are
//! declared; that walk runs first, so nothing a document says is lost here
//! without an error. Field names follow Istio's JSON names.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VirtualServiceSpec {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub http: Vec<HttpRoute>,
    /// Made by istiod from a Gateway API route (`internal.istio.io/route-semantics:
    /// gateway`), never read from a document: its Envoy routes follow
    /// [`super::gateway_api::apply_gateway_semantics`].
    #[serde(skip)]
    pub gateway_semantics: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpRoute {
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: Vec<MatchRequest>,
    #[serde(default)]
    pub route: Vec<RouteDestination>,
    pub redirect: Option<Redirect>,
    pub direct_response: Option<DirectResponse>,
    pub rewrite: Option<Rewrite>,
    pub timeout: Option<String>,
    pub retries: Option<Retry>,
    pub fault: Option<Fault>,
    pub mirror: Option<Destination>,
    pub mirror_percentage: Option<Percent>,
    pub mirror_percent: Option<u32>,
    #[serde(default)]
    pub mirrors: Vec<MirrorPolicy>,
    pub headers: Option<Headers>,
    pub cors_policy: Option<super::cors::CorsPolicy>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MatchRequest {
    pub name: Option<String>,
    pub uri: Option<StringMatch>,
    pub scheme: Option<StringMatch>,
    pub method: Option<StringMatch>,
    pub authority: Option<StringMatch>,
    #[serde(default)]
    pub headers: BTreeMap<String, Option<StringMatch>>,
    #[serde(default)]
    pub without_headers: BTreeMap<String, Option<StringMatch>>,
    #[serde(default)]
    pub query_params: BTreeMap<String, Option<StringMatch>>,
    #[serde(default)]
    pub ignore_uri_case: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StringMatch {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Destination {
    #[serde(default)]
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<PortSelector>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PortSelector {
    pub number: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RouteDestination {
    #[serde(default)]
    pub destination: Destination,
    pub weight: Option<u32>,
    pub headers: Option<Headers>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Redirect {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub redirect_code: Option<u32>,
    pub scheme: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DirectResponse {
    pub status: u32,
    pub body: Option<Body>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Body {
    pub string: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rewrite {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RegexRewrite {
    #[serde(rename = "match")]
    pub pattern: String,
    pub rewrite: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Retry {
    #[serde(default)]
    pub attempts: i64,
    pub per_try_timeout: Option<String>,
    pub retry_on: Option<String>,
    pub retry_ignore_previous_hosts: Option<bool>,
    pub backoff: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Fault {
    pub delay: Option<Delay>,
    pub abort: Option<Abort>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Delay {
    pub fixed_delay: Option<String>,
    pub percentage: Option<Percent>,
    pub percent: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Abort {
    pub http_status: Option<u32>,
    pub percentage: Option<Percent>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Percent {
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct MirrorPolicy {
    pub destination: Option<Destination>,
    pub percentage: Option<Percent>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Headers {
    pub request: Option<HeaderOperations>,
    pub response: Option<HeaderOperations>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct HeaderOperations {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DestinationRuleSpec {
    #[serde(default)]
    pub host: String,
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(default)]
    pub subsets: Vec<Subset>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subset {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub traffic_policy: Option<TrafficPolicy>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrafficPolicy {
    pub load_balancer: Option<LoadBalancer>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
    pub retry_budget: Option<RetryBudget>,
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

/// One of `trafficPolicy.portLevelSettings` ([`super::port_level`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PortTrafficPolicy {
    pub port: Option<PortSelector>,
    pub load_balancer: Option<LoadBalancer>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
}

impl TrafficPolicy {
    /// A subset's policy over its rule's: each part the subset sets replaces
    /// the rule's part whole, as Istio merges them.
    pub fn overridden_by(&self, subset: Option<&TrafficPolicy>) -> TrafficPolicy {
        let mut merged = self.clone();
        if let Some(own) = subset {
            if own.load_balancer.is_some() {
                merged.load_balancer.clone_from(&own.load_balancer);
            }
            if own.connection_pool.is_some() {
                merged.connection_pool.clone_from(&own.connection_pool);
            }
            if own.outlier_detection.is_some() {
                merged.outlier_detection.clone_from(&own.outlier_detection);
            }
            if own.retry_budget.is_some() {
                merged.retry_budget.clone_from(&own.retry_budget);
            }
        }
        merged
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoadBalancer {
    pub simple: Option<String>,
    pub consistent_hash: Option<ConsistentHash>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsistentHash {
    pub http_header_name: Option<String>,
    pub http_cookie: Option<HttpCookie>,
    pub use_source_ip: Option<bool>,
    pub http_query_parameter_name: Option<String>,
    pub ring_hash: Option<RingHash>,
    pub maglev: Option<Maglev>,
    pub minimum_ring_size: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct HttpCookie {
    #[serde(default)]
    pub name: String,
    pub path: Option<String>,
    pub ttl: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RingHash {
    pub minimum_ring_size: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Maglev {
    pub table_size: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ConnectionPool {
    pub tcp: Option<TcpSettings>,
    pub http: Option<HttpSettings>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TcpSettings {
    pub max_connections: Option<u32>,
    pub connect_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connection_duration: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpSettings {
    pub http1_max_pending_requests: Option<u32>,
    pub http2_max_requests: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    pub max_retries: Option<u32>,
    pub idle_timeout: Option<String>,
    pub h2_upgrade_policy: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutlierDetection {
    #[serde(rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<u32>,
    pub consecutive_gateway_errors: Option<u32>,
    pub consecutive_local_origin_failures: Option<u32>,
    #[serde(default)]
    pub split_external_local_origin_errors: bool,
    pub interval: Option<String>,
    pub base_ejection_time: Option<String>,
    pub max_ejection_percent: Option<u32>,
    pub min_health_percent: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RetryBudget {
    pub percent: Option<f64>,
    pub min_retry_concurrency: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GatewaySpec {
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Server {
    #[serde(default)]
    pub port: ServerPort,
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ServerPort {
    #[serde(default)]
    pub number: u32,
    #[serde(default)]
    pub protocol: String,
}
