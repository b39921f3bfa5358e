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
//! nothing about the plugin.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use envoy_rig::client::Request as ClientRequest;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, EnvoyOptions, Fault, Listener, Route, RouteAction, RouteMatch,
    Share, Upstream, VirtualHost, WasmFilter,
};
use proxy_wasm_harness::{CalloutResponse, Harness, Plugin, Request as HarnessRequest, Response};

/// The cluster (and upstream) every scenario routes to, and the one plugins
/// may call out to.
pub const UPSTREAM_CLUSTER: &str = "upstream";

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
    pub expect: Expect,
}

impl Step {
    pub fn get(path: &str) -> Self {
        Self {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: None,
            upstream_status: 200,
            expect: Expect::default(),
        }
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
        }
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
}

/// What one host showed for a whole scenario.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Run {
    pub steps: Vec<Observation>,
    pub metrics: BTreeMap<String, Option<u64>>,
}

/// Runs the scenario in the wasmtime harness. The upstream answers with the
/// step's status and `x-upstream: upstream`, like the rig's echo server, and
/// callouts to [`UPSTREAM_CLUSTER`] are answered with a 200 as it would.
pub fn run_in_harness(scenario: &Scenario) -> Result<Run, CrossCheckError> {
    let mut plugin = Plugin::load(&scenario.wasm)?
        .name(&scenario.plugin_name)
        .root_id(&scenario.root_id)
        .vm_id(&scenario.vm_id)
        .plugin_config(scenario.plugin_config.as_bytes())
        .vm_config(scenario.vm_config.as_bytes())
        .clusters([UPSTREAM_CLUSTER]);
    for (k, v) in &scenario.env {
        plugin = plugin.env(k, v);
    }
    let mut harness = Harness::new();
    harness.answer_callouts_with(|call| {
        (call.upstream == UPSTREAM_CLUSTER).then(|| CalloutResponse::new(200, "callout answered"))
    });
    let worker = harness.start(&plugin)?;
    let mut run = Run::default();
    for step in &scenario.steps {
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
            Response::new(step.upstream_status).header(envoy_rig::UPSTREAM_HEADER, UPSTREAM_CLUSTER)
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
        });
    }
    for (name, _) in &scenario.metrics {
        run.metrics.insert(name.clone(), harness.counter(name));
    }
    Ok(run)
}

/// The Envoy set-up for a scenario: one listener, the plugin (V8), the
/// router, one cluster to the echo upstream. One worker, like the harness's
/// one VM, so shared data and metrics line up exactly.
pub fn envoy_for(scenario: &Scenario, upstream: &Upstream) -> Result<Envoy, CrossCheckError> {
    let mut filter = WasmFilter::new(&scenario.plugin_name, &scenario.wasm)
        .root_id(&scenario.root_id)
        .vm_id(&scenario.vm_id)
        .configuration(&scenario.plugin_config)
        .vm_configuration(&scenario.vm_config);
    for (k, v) in &scenario.env {
        filter = filter.env(k, v);
    }
    let host = VirtualHost::new("all").route(Route::new(
        RouteMatch::prefix("/"),
        RouteAction::cluster(UPSTREAM_CLUSTER),
    ));
    let bootstrap = Bootstrap::new()
        .listener(Listener::new("ingress").virtual_host(host).filter(filter))
        .cluster(Cluster::new(UPSTREAM_CLUSTER, upstream.port()));
    Ok(Envoy::start_with(
        &bootstrap,
        &EnvoyOptions::default().concurrency(1),
    )?)
}

/// Runs the scenario through a real Envoy.
pub fn run_in_envoy(scenario: &Scenario) -> Result<Run, CrossCheckError> {
    let upstream = Upstream::start(UPSTREAM_CLUSTER)?;
    let envoy = envoy_for(scenario, &upstream)?;
    let base = envoy.listener_url("ingress")?;
    let mut run = Run::default();
    for step in &scenario.steps {
        if step.upstream_status == 200 {
            upstream.clear_fault();
        } else {
            upstream.inject(Fault::Status(step.upstream_status), Share::All);
        }
        let before = upstream.request_count();
        let mut request = ClientRequest::new(&step.method, format!("{base}{}", step.path))
            .timeout(Duration::from_secs(30));
        for (k, v) in &step.headers {
            request = request.header(k, v);
        }
        if let Some(body) = &step.body {
            request = request.body(body.clone());
        }
        let response = request.send()?;
        let reached_upstream = upstream.request_count() > before;
        let upstream_headers = if reached_upstream {
            let received = upstream.received();
            let last = received.last();
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
        run.steps.push(Observation {
            status: response.status,
            reached_upstream,
            upstream_headers,
            response_headers,
            local_body: (!reached_upstream).then(|| response.body.clone()),
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
