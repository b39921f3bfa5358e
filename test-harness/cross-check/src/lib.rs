//! One scenario, two hosts.
//!
//! A [`Scenario`] names a plugin, its configuration, a list of requests and
//! what each should produce (status, the request headers the upstream saw,
//! response headers, local-response bodies) plus plugin metrics at the end.
//! [`cross_check`] runs it in the wasmtime harness and through a real Envoy
//! (the same `.wasm`, V8 runtime), and fails when either host misses the
//! expectation or the two disagree, printing both side by side. The harness
//! is only trusted where it agrees with the real proxy.
//!
//! Only what a client, an upstream or the admin endpoint can observe is
//! compared, and only the header names a scenario lists: Envoy adds headers
//! of its own (`date`, `x-request-id`, `x-forwarded-proto`, ...) that say
//! nothing about the plugin. Callouts the plugin makes are compared too
//! (method, path, body and the header names a step lists).
//!
//! Both hosts run the same process model: the harness starts the plugin
//! with `Harness::start_workers` (a configuration VM, the main thread's VM
//! and one worker, as Envoy does), Envoy with `--concurrency 1`. Both know
//! the same node (`xds.node.id` [`NODE_ID`], `xds.node.cluster`
//! [`NODE_CLUSTER`], the scenario's metadata) and the same route
//! (`xds.cluster_name` [`UPSTREAM_CLUSTER`], `xds.route_name`
//! [`ROUTE_NAME`], `xds.virtual_host_name` [`VIRTUAL_HOST_NAME`]).

pub mod grpc_upstream;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use envoy_rig::client::Request as ClientRequest;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, EnvoyOptions, Fault, Listener, Route, RouteAction, RouteMatch,
    Share, Upstream, VirtualHost, WasmFilter,
};
use proxy_wasm_harness::{
    CalloutResponse, GrpcCall, GrpcKind, Harness, HttpCall, Plugin, Request as HarnessRequest,
    Response,
};

use grpc_upstream::{GRPC_CLUSTER, GRPC_METHODS, GRPC_SERVICE, GrpcUpstream};

/// The cluster (and upstream) every scenario routes to, and the one plugins
/// may call out to.
pub const UPSTREAM_CLUSTER: &str = "upstream";

/// The body the harness's upstream answers with, standing in for the echo
/// server's JSON (a scenario compares bodies only of local replies).
const UPSTREAM_BODY_STAND_IN: &str = "upstream body";

/// The name of the one route (`xds.route_name`).
pub const ROUTE_NAME: &str = "cross-check-route";

/// The name of the one virtual host (`xds.virtual_host_name`).
pub const VIRTUAL_HOST_NAME: &str = "all";

/// The node id both hosts report (`xds.node.id`).
pub const NODE_ID: &str = "cross-check-node";

/// The node cluster both hosts report (`xds.node.cluster`).
pub const NODE_CLUSTER: &str = "cross-check";

/// What went wrong in a cross-check.
#[derive(Debug, thiserror::Error)]
pub enum CrossCheckError {
    #[error("harness: {0}")]
    Harness(#[from] proxy_wasm_harness::HarnessError),
    #[error("envoy: {0}")]
    Envoy(#[from] envoy_rig::RigError),
    #[error("scenario {scenario:?}: the hosts disagree or miss the expectation\n{report}")]
    Mismatch { scenario: String, report: String },
}

/// A request in a scenario, and what it should produce.
#[derive(Debug, Clone)]
pub struct Step {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The status the upstream answers with.
    pub upstream_status: u16,
    /// Whether the first callout of this step goes unanswered until it
    /// times out (Envoy: the upstream holds it for [`SLOW_CALLOUT`]).
    pub slow_callout: bool,
    pub expect: Expect,
}

/// How long the upstream holds a step's slow callout in Envoy: longer than
/// any timeout a scenario gives a callout it means to time out.
pub const SLOW_CALLOUT: Duration = Duration::from_secs(3);

impl Step {
    pub fn get(path: &str) -> Self {
        Self {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: None,
            upstream_status: 200,
            slow_callout: false,
            expect: Expect::default(),
        }
    }

    /// The step's first callout is not answered in time: it times out.
    pub fn slow_callout(mut self) -> Self {
        self.slow_callout = true;
        self
    }

    /// A callout the plugin must make in this step, in order: its path, and
    /// the callout request headers (`None`: absent) the callee must see.
    pub fn expect_callout(mut self, path: &str, headers: &[(&str, Option<&str>)]) -> Self {
        self.expect.callouts.push(ExpectedCallout {
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.map(str::to_string)))
                .collect(),
        });
        self
    }

    fn callout_header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .expect
            .callouts
            .iter()
            .flat_map(|c| c.headers.iter().map(|(k, _)| k.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn header(mut self, key: &str, value: &str) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.method = "POST".into();
        self.body = Some(body.into());
        self
    }

    pub fn upstream_status(mut self, status: u16) -> Self {
        self.upstream_status = status;
        self
    }

    /// The expected client status.
    pub fn expect_status(mut self, status: u16) -> Self {
        self.expect.status = Some(status);
        self
    }

    /// The request must (or must not) reach the upstream.
    pub fn expect_upstream(mut self, reached: bool) -> Self {
        self.expect.reached_upstream = Some(reached);
        self
    }

    /// A request header the upstream must see with this value (`None`: absent).
    pub fn expect_upstream_header(mut self, key: &str, value: Option<&str>) -> Self {
        self.expect
            .upstream_headers
            .push((key.into(), value.map(Into::into)));
        self
    }

    /// A response header the client must see with this value (`None`: absent).
    pub fn expect_response_header(mut self, key: &str, value: Option<&str>) -> Self {
        self.expect
            .response_headers
            .push((key.into(), value.map(Into::into)));
        self
    }

    /// The body the client must receive (for local responses; an upstream's
    /// body differs between the hosts by design).
    pub fn expect_body(mut self, body: &str) -> Self {
        self.expect.body = Some(body.as_bytes().to_vec());
        self
    }
}

/// Expectations for one step. Unset fields are still compared between the
/// two hosts, just not against a fixed value.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub status: Option<u16>,
    pub reached_upstream: Option<bool>,
    pub upstream_headers: Vec<(String, Option<String>)>,
    pub response_headers: Vec<(String, Option<String>)>,
    pub body: Option<Vec<u8>>,
    pub callouts: Vec<ExpectedCallout>,
}

/// A callout a step must make: the callee sees this path and these headers.
#[derive(Debug, Clone, Default)]
pub struct ExpectedCallout {
    pub path: String,
    pub headers: Vec<(String, Option<String>)>,
}

/// A plugin, its configuration, requests and expected metrics.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub wasm: PathBuf,
    pub plugin_name: String,
    pub root_id: String,
    pub vm_id: String,
    pub plugin_config: String,
    pub vm_config: String,
    pub env: Vec<(String, String)>,
    pub steps: Vec<Step>,
    /// Plugin metrics (names as defined; Envoy shows `wasmcustom.<name>`) and
    /// their expected final values.
    pub metrics: Vec<(String, u64)>,
    /// Upstream headers compared between hosts even without an expectation.
    pub compare_upstream_headers: Vec<String>,
    /// Response headers compared between hosts even without an expectation.
    pub compare_response_headers: Vec<String>,
    /// Node metadata (`xds.node.metadata.<key>`), string values.
    pub node_metadata: Vec<(String, String)>,
    /// Whether both hosts have the gRPC server of [`grpc_upstream`] as
    /// cluster [`GRPC_CLUSTER`].
    pub grpc_upstream: bool,
}

impl Scenario {
    pub fn new(name: &str, wasm: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            wasm: wasm.into(),
            plugin_name: "plugin-under-test".into(),
            root_id: String::new(),
            vm_id: String::new(),
            plugin_config: String::new(),
            vm_config: String::new(),
            env: Vec::new(),
            steps: Vec::new(),
            metrics: Vec::new(),
            compare_upstream_headers: Vec::new(),
            compare_response_headers: Vec::new(),
            node_metadata: Vec::new(),
            grpc_upstream: false,
        }
    }

    /// Gives both hosts the gRPC server of [`grpc_upstream`] (cluster
    /// [`GRPC_CLUSTER`], service [`GRPC_SERVICE`]); the gRPC calls the plugin
    /// makes are compared too.
    pub fn grpc_upstream(mut self) -> Self {
        self.grpc_upstream = true;
        self
    }

    /// A string entry of the node metadata both hosts report.
    pub fn node_metadata(mut self, key: &str, value: &str) -> Self {
        self.node_metadata.push((key.into(), value.into()));
        self
    }

    pub fn plugin_config(mut self, config: &str) -> Self {
        self.plugin_config = config.into();
        self
    }

    pub fn vm_config(mut self, config: &str) -> Self {
        self.vm_config = config.into();
        self
    }

    pub fn root_id(mut self, root_id: &str) -> Self {
        self.root_id = root_id.into();
        self
    }

    pub fn plugin_name(mut self, name: &str) -> Self {
        self.plugin_name = name.into();
        self
    }

    pub fn vm_id(mut self, vm_id: &str) -> Self {
        self.vm_id = vm_id.into();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    pub fn expect_metric(mut self, name: &str, value: u64) -> Self {
        self.metrics.push((name.into(), value));
        self
    }

    pub fn compare_upstream_header(mut self, key: &str) -> Self {
        self.compare_upstream_headers.push(key.into());
        self
    }

    pub fn compare_response_header(mut self, key: &str) -> Self {
        self.compare_response_headers.push(key.into());
        self
    }

    fn upstream_header_names(&self, step: &Step) -> Vec<String> {
        let mut names: Vec<String> = self.compare_upstream_headers.clone();
        names.extend(step.expect.upstream_headers.iter().map(|(k, _)| k.clone()));
        names.sort();
        names.dedup();
        names
    }

    fn response_header_names(&self, step: &Step) -> Vec<String> {
        let mut names: Vec<String> = self.compare_response_headers.clone();
        names.extend(step.expect.response_headers.iter().map(|(k, _)| k.clone()));
        names.sort();
        names.dedup();
        names
    }
}

/// What one host showed for one step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    pub status: u16,
    pub reached_upstream: bool,
    pub upstream_headers: BTreeMap<String, Option<String>>,
    pub response_headers: BTreeMap<String, Option<String>>,
    /// The client's body when the request did not reach the upstream.
    pub local_body: Option<Vec<u8>>,
    /// The callouts the plugin made, in order, as the callee saw them.
    pub callouts: Vec<SeenCallout>,
    /// The gRPC calls the plugin made, in order, as the server saw them.
    pub grpc_calls: Vec<SeenGrpcCall>,
}

/// A gRPC call as its server saw it: path, the first message, the plugin's
/// metadata keys `x-md` and `x-trace-bin`, and `grpc-timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeenGrpcCall {
    pub path: String,
    pub message: String,
    pub x_md: Option<String>,
    pub x_trace_bin: Option<String>,
    pub grpc_timeout: Option<String>,
}

impl fmt::Display for SeenGrpcCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} x-md={:?} x-trace-bin={:?} grpc-timeout={:?}",
            self.path, self.message, self.x_md, self.x_trace_bin, self.grpc_timeout
        )
    }
}

/// The grpc-timeout header Envoy's async client sends for a unary call's
/// timeout (`Grpc::Common::toGrpcTimeout`: milliseconds below 10^8).
fn grpc_timeout_header(call: &GrpcCall) -> Option<String> {
    (call.kind == GrpcKind::Call).then(|| format!("{}m", call.timeout.as_millis()))
}

/// A callout as its callee saw it: method, path, body, and the headers the
/// step compares (by [`Step::expect_callout`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeenCallout {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, Option<String>>,
    pub body: String,
}

/// What one host showed for a whole scenario.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Run {
    pub steps: Vec<Observation>,
    pub metrics: BTreeMap<String, Option<u64>>,
}

/// The plugin as the harness loads it for `scenario`.
pub fn harness_plugin(scenario: &Scenario) -> Result<Plugin, CrossCheckError> {
    let mut plugin = Plugin::load(&scenario.wasm)?
        .name(&scenario.plugin_name)
        .root_id(&scenario.root_id)
        .vm_id(&scenario.vm_id)
        .plugin_config(scenario.plugin_config.as_bytes())
        .vm_config(scenario.vm_config.as_bytes())
        .clusters([UPSTREAM_CLUSTER])
        .node_id(NODE_ID)
        .node_cluster(NODE_CLUSTER)
        .route(UPSTREAM_CLUSTER, ROUTE_NAME, VIRTUAL_HOST_NAME);
    for (k, v) in &scenario.env {
        plugin = plugin.env(k, v);
    }
    for (k, v) in &scenario.node_metadata {
        plugin = plugin.node_metadata(k, v);
    }
    Ok(plugin)
}

/// Runs the scenario in the wasmtime harness, in Envoy's process model
/// (`start_workers` with one worker). The upstream answers with the step's
/// status, `x-upstream: upstream` and a body, like the rig's echo server, and
/// callouts to [`UPSTREAM_CLUSTER`] are answered with a 200, except a slow
/// step's first one, which times out.
pub fn run_in_harness(scenario: &Scenario) -> Result<Run, CrossCheckError> {
    let plugin = harness_plugin(scenario)?;
    let mut harness = Harness::new();
    let made: Rc<RefCell<Vec<HttpCall>>> = Rc::default();
    let hold_next = Rc::new(Cell::new(false));
    {
        let made = Rc::clone(&made);
        let hold_next = Rc::clone(&hold_next);
        harness.answer_callouts_with(move |call| {
            made.borrow_mut().push(call.clone());
            if hold_next.replace(false) {
                return None;
            }
            (call.upstream == UPSTREAM_CLUSTER)
                .then(|| CalloutResponse::new(200, "callout answered"))
        });
    }
    let grpc_made: Rc<RefCell<Vec<GrpcCall>>> = Rc::default();
    if scenario.grpc_upstream {
        for method in GRPC_METHODS {
            let made = Rc::clone(&grpc_made);
            harness.serve_grpc(GRPC_CLUSTER, GRPC_SERVICE, method, move |call| {
                made.borrow_mut().push(call.clone());
                Some(grpc_upstream::answer(method, call.message()))
            });
        }
    }
    let workers = harness.start_workers(&plugin, 1)?;
    let worker = workers
        .first()
        .copied()
        .ok_or_else(|| CrossCheckError::Mismatch {
            scenario: scenario.name.clone(),
            report: "the harness started no worker".into(),
        })?;
    made.borrow_mut().clear();
    let mut run = Run::default();
    for step in &scenario.steps {
        hold_next.set(step.slow_callout);
        let mut request = HarnessRequest::new(&step.method, &step.path);
        for (k, v) in &step.headers {
            request = request.header(k, v);
        }
        if let Some(body) = &step.body {
            request = request.body(body.clone());
        }
        let mut upstream_headers = BTreeMap::new();
        let names = scenario.upstream_header_names(step);
        let exchange = harness.exchange(worker, request, |upstream| {
            for name in &names {
                upstream_headers.insert(name.clone(), upstream.header(name).map(str::to_owned));
            }
            // The echo server always answers with a body (its JSON echo);
            // its bytes differ, its presence must not.
            Response::new(step.upstream_status)
                .header(envoy_rig::UPSTREAM_HEADER, UPSTREAM_CLUSTER)
                .body(UPSTREAM_BODY_STAND_IN)
        })?;
        let reached_upstream = exchange.upstream_request.is_some();
        let response_headers = scenario
            .response_header_names(step)
            .into_iter()
            .map(|name| {
                let value = exchange.response_header(&name).map(str::to_owned);
                (name, value)
            })
            .collect();
        let callout_names = step.callout_header_names();
        let callouts = made
            .borrow_mut()
            .drain(..)
            .map(|call| {
                let header = |name: &str| {
                    call.headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone())
                };
                SeenCallout {
                    method: header(":method").unwrap_or_default(),
                    path: header(":path").unwrap_or_default(),
                    headers: callout_names
                        .iter()
                        .map(|name| (name.clone(), header(name)))
                        .collect(),
                    body: String::from_utf8_lossy(&call.body).into_owned(),
                }
            })
            .collect();
        let grpc_calls = grpc_made
            .borrow_mut()
            .drain(..)
            .map(|call| SeenGrpcCall {
                path: call.path(),
                message: String::from_utf8_lossy(call.message()).into_owned(),
                x_md: call.metadata("x-md").map(str::to_owned),
                x_trace_bin: call.metadata("x-trace-bin").map(str::to_owned),
                grpc_timeout: grpc_timeout_header(&call),
            })
            .collect();
        run.steps.push(Observation {
            status: exchange.status().unwrap_or(0),
            reached_upstream,
            upstream_headers: if reached_upstream {
                upstream_headers
            } else {
                BTreeMap::new()
            },
            response_headers,
            local_body: (!reached_upstream).then(|| exchange.response_body().to_vec()),
            callouts,
            grpc_calls,
        });
    }
    for (name, _) in &scenario.metrics {
        run.metrics.insert(name.clone(), harness.counter(name));
    }
    Ok(run)
}

/// The Envoy set-up for a scenario: one listener, the plugin (V8), the
/// router, one cluster to the echo upstream, the node of [`NODE_ID`]. One
/// worker, like the harness's, so shared data and metrics line up exactly.
pub fn envoy_for(scenario: &Scenario, upstream: &Upstream) -> Result<Envoy, CrossCheckError> {
    envoy_with(scenario, upstream, None)
}

/// [`envoy_for`], with the gRPC server as cluster [`GRPC_CLUSTER`] when given.
pub fn envoy_with(
    scenario: &Scenario,
    upstream: &Upstream,
    grpc: Option<&GrpcUpstream>,
) -> Result<Envoy, CrossCheckError> {
    let mut filter = WasmFilter::new(&scenario.plugin_name, &scenario.wasm)
        .root_id(&scenario.root_id)
        .vm_id(&scenario.vm_id)
        .configuration(&scenario.plugin_config)
        .vm_configuration(&scenario.vm_config);
    for (k, v) in &scenario.env {
        filter = filter.env(k, v);
    }
    let host = VirtualHost::new(VIRTUAL_HOST_NAME).route(
        Route::new(
            RouteMatch::prefix("/"),
            RouteAction::cluster(UPSTREAM_CLUSTER),
        )
        .name(ROUTE_NAME),
    );
    let mut bootstrap = Bootstrap::new()
        .listener(Listener::new("ingress").virtual_host(host).filter(filter))
        .cluster(Cluster::new(UPSTREAM_CLUSTER, upstream.port()));
    if let Some(grpc) = grpc {
        bootstrap = bootstrap.raw_cluster(grpc.cluster());
    }
    let mut options = EnvoyOptions::default().concurrency(1);
    options.extra_args = vec!["--config-yaml".into(), node_yaml(scenario)];
    Ok(Envoy::start_with(&bootstrap, &options)?)
}

/// The rig's bootstrap has no `node`; Envoy merges one in from
/// `--config-yaml` (YAML is a superset of JSON), given on its command line
/// (a launcher script written and executed by a test process that forks
/// elsewhere at the same time can fail with ETXTBSY).
fn node_yaml(scenario: &Scenario) -> String {
    let metadata: serde_json::Map<String, serde_json::Value> = scenario
        .node_metadata
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({
        "node": {"id": NODE_ID, "cluster": NODE_CLUSTER, "metadata": metadata}
    })
    .to_string()
}

/// Runs the scenario through a real Envoy.
pub fn run_in_envoy(scenario: &Scenario) -> Result<Run, CrossCheckError> {
    let upstream = Upstream::start(UPSTREAM_CLUSTER)?;
    let grpc = if scenario.grpc_upstream {
        Some(
            GrpcUpstream::start().map_err(|e| CrossCheckError::Mismatch {
                scenario: scenario.name.clone(),
                report: format!("cannot start the gRPC server: {e}"),
            })?,
        )
    } else {
        None
    };
    let envoy = envoy_with(scenario, &upstream, grpc.as_ref())?;
    let base = envoy.listener_url("ingress")?;
    let mut run = Run::default();
    for step in &scenario.steps {
        if step.slow_callout {
            upstream.inject(Fault::Delay(SLOW_CALLOUT), Share::FirstN(1));
        } else if step.upstream_status == 200 {
            upstream.clear_fault();
        } else {
            upstream.inject(Fault::Status(step.upstream_status), Share::All);
        }
        let before = upstream.request_count();
        let received_before = upstream.received().len();
        let grpc_before = grpc.as_ref().map_or(0, |g| g.seen().len());
        let mut request = ClientRequest::new(&step.method, format!("{base}{}", step.path))
            .timeout(Duration::from_secs(30));
        for (k, v) in &step.headers {
            request = request.header(k, v);
        }
        if let Some(body) = &step.body {
            request = request.body(body.clone());
        }
        let response = request.send()?;
        let received = upstream.received();
        let mut arrived: Vec<_> = received.get(received_before..).unwrap_or(&[]).to_vec();
        // The request itself comes last, after the callouts it waited for.
        let main = arrived
            .iter()
            .rposition(|r| r.method == step.method && r.path == step.path)
            .map(|index| arrived.remove(index));
        let reached_upstream = upstream.request_count() > before && main.is_some();
        let callout_names = step.callout_header_names();
        let callouts = arrived
            .iter()
            .map(|r| SeenCallout {
                method: r.method.clone(),
                path: r.path.clone(),
                headers: callout_names
                    .iter()
                    .map(|name| (name.clone(), r.header(name).map(str::to_owned)))
                    .collect(),
                body: r.body.clone(),
            })
            .collect();
        let upstream_headers = if reached_upstream {
            let last = main.as_ref();
            scenario
                .upstream_header_names(step)
                .into_iter()
                .map(|name| {
                    let value = last.and_then(|r| r.header(&name)).map(str::to_owned);
                    (name, value)
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        let response_headers = scenario
            .response_header_names(step)
            .into_iter()
            .map(|name| {
                let value = response.header(&name).map(str::to_owned);
                (name, value)
            })
            .collect();
        let grpc_calls = grpc
            .as_ref()
            .map(|g| g.seen())
            .unwrap_or_default()
            .get(grpc_before..)
            .unwrap_or(&[])
            .iter()
            .map(|seen| SeenGrpcCall {
                path: seen.path.clone(),
                message: seen
                    .messages
                    .first()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_default(),
                x_md: seen.header("x-md").map(str::to_owned),
                x_trace_bin: seen.header("x-trace-bin").map(str::to_owned),
                grpc_timeout: seen.header("grpc-timeout").map(str::to_owned),
            })
            .collect();
        run.steps.push(Observation {
            status: response.status,
            reached_upstream,
            upstream_headers,
            response_headers,
            local_body: (!reached_upstream).then(|| response.body.clone()),
            callouts,
            grpc_calls,
        });
    }
    for (name, _) in &scenario.metrics {
        let stat = envoy.stat(&format!("wasmcustom.{name}"))?;
        run.metrics.insert(name.clone(), stat);
    }
    Ok(run)
}

/// Both hosts' runs, when they agree with each other and the expectations.
#[derive(Debug, Clone)]
pub struct Agreement {
    pub harness: Run,
    pub envoy: Run,
}

/// Runs the scenario in both hosts; fails on any disagreement.
pub fn cross_check(scenario: &Scenario) -> Result<Agreement, CrossCheckError> {
    let harness = run_in_harness(scenario)?;
    let envoy = run_in_envoy(scenario)?;
    let mut report = Report::default();
    for (index, step) in scenario.steps.iter().enumerate() {
        let (h, e) = (&harness.steps[index], &envoy.steps[index]);
        let label = format!("step {index} ({} {})", step.method, step.path);
        report.compare(
            &label,
            "status",
            Some(format!("{}", h.status)),
            Some(format!("{}", e.status)),
            step.expect.status.map(|s| s.to_string()),
        );
        report.compare(
            &label,
            "reached upstream",
            Some(h.reached_upstream.to_string()),
            Some(e.reached_upstream.to_string()),
            step.expect.reached_upstream.map(|b| b.to_string()),
        );
        for name in scenario.upstream_header_names(step) {
            let expected = step
                .expect
                .upstream_headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| show(v));
            report.compare(
                &label,
                &format!("upstream saw {name}"),
                h.upstream_headers.get(&name).map(show),
                e.upstream_headers.get(&name).map(show),
                expected,
            );
        }
        for name in scenario.response_header_names(step) {
            let expected = step
                .expect
                .response_headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| show(v));
            report.compare(
                &label,
                &format!("response {name}"),
                h.response_headers.get(&name).map(show),
                e.response_headers.get(&name).map(show),
                expected,
            );
        }
        report.compare(
            &label,
            "local body",
            h.local_body
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            e.local_body
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            step.expect
                .body
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        );
        let count = h.callouts.len().max(e.callouts.len());
        report.compare(
            &label,
            "callouts made",
            Some(h.callouts.len().to_string()),
            Some(e.callouts.len().to_string()),
            (!step.expect.callouts.is_empty()).then(|| step.expect.callouts.len().to_string()),
        );
        for index in 0..count {
            let (hc, ec) = (h.callouts.get(index), e.callouts.get(index));
            let expected = step.expect.callouts.get(index);
            let what = format!("callout {index}");
            report.compare(
                &label,
                &format!("{what} request"),
                hc.map(|c| format!("{} {} {:?}", c.method, c.path, c.body)),
                ec.map(|c| format!("{} {} {:?}", c.method, c.path, c.body)),
                None,
            );
            report.compare(
                &label,
                &format!("{what} path"),
                hc.map(|c| c.path.clone()),
                ec.map(|c| c.path.clone()),
                expected.map(|c| c.path.clone()),
            );
            for name in step.callout_header_names() {
                let want = expected.and_then(|c| {
                    c.headers
                        .iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| show(v))
                });
                report.compare(
                    &label,
                    &format!("{what} header {name}"),
                    hc.and_then(|c| c.headers.get(&name)).map(show),
                    ec.and_then(|c| c.headers.get(&name)).map(show),
                    want,
                );
            }
        }
        report.compare(
            &label,
            "gRPC calls made",
            Some(h.grpc_calls.len().to_string()),
            Some(e.grpc_calls.len().to_string()),
            None,
        );
        for index in 0..h.grpc_calls.len().max(e.grpc_calls.len()) {
            report.compare(
                &label,
                &format!("gRPC call {index}"),
                h.grpc_calls.get(index).map(ToString::to_string),
                e.grpc_calls.get(index).map(ToString::to_string),
                None,
            );
        }
    }
    for (name, expected) in &scenario.metrics {
        report.compare(
            "end",
            &format!("metric {name}"),
            Some(show_metric(harness.metrics.get(name))),
            Some(show_metric(envoy.metrics.get(name))),
            Some(expected.to_string()),
        );
    }
    if report.failures.is_empty() {
        Ok(Agreement { harness, envoy })
    } else {
        Err(CrossCheckError::Mismatch {
            scenario: scenario.name.clone(),
            report: report.to_string(),
        })
    }
}

fn show(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "(absent)".to_string())
}

fn show_metric(value: Option<&Option<u64>>) -> String {
    value
        .copied()
        .flatten()
        .map_or_else(|| "(absent)".to_string(), |v| v.to_string())
}

#[derive(Debug, Default)]
struct Report {
    failures: Vec<[String; 5]>,
}

impl Report {
    fn compare(
        &mut self,
        step: &str,
        what: &str,
        harness: Option<String>,
        envoy: Option<String>,
        expected: Option<String>,
    ) {
        let agree = harness == envoy;
        let meets = expected.is_none() || (harness == expected && envoy == expected);
        if !(agree && meets) {
            let cell = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
            self.failures.push([
                step.to_string(),
                what.to_string(),
                cell(harness),
                cell(envoy),
                cell(expected),
            ]);
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "| step | what | harness | envoy | expected |")?;
        writeln!(f, "|---|---|---|---|---|")?;
        for [step, what, harness, envoy, expected] in &self.failures {
            writeln!(
                f,
                "| {step} | {what} | {harness:?} | {envoy:?} | {expected:?} |"
            )?;
        }
        Ok(())
    }
}
