//! The Envoy benchmark: one Envoy per configuration, loaded in turn by `wrk`.
//!
//! A benchmark is a list of [`Config`]s (a name and the HTTP filters in front
//! of the router) run by [`run`]. Each configuration gets its own Envoy,
//! started once and kept for the whole session (an idle Envoy costs nothing),
//! behind the same minimal upstream. Load goes to one Envoy at a time, in
//! alternating order (A, B, C, A, B, C, ...) for [`Options::rounds`] rounds,
//! so drift on the machine spreads over every configuration instead of
//! landing on one. Each configuration first gets one warm-up run whose
//! numbers are discarded.
//!
//! On a machine with two or more CPUs, Envoy (`--concurrency 1`) is pinned to
//! the first and wrk and the upstream to the second. [`run`] pins the calling
//! thread to that second CPU, so call it from a thread (or process) that is
//! there for the benchmark only.
//!
//! Before any load, every configuration is checked with `envoy --mode
//! validate` and one probe request (status 200 and the headers the
//! configuration promises), so a benchmark never measures a misconfigured
//! filter or a wall of 503s.
//!
//! The [`Report`] compares everything against the first configuration (the
//! baseline, normally "no filter") and renders as a Markdown table.
//!
//! ```no_run
//! use envoy_rig::bench::{self, Config, Options};
//! use envoy_rig::FaultFilter;
//!
//! # fn main() -> envoy_rig::Result<()> {
//! let report = bench::run(
//!     &[
//!         Config::new("no filter"),
//!         Config::new("native fault filter at 0 %").filter(FaultFilter::new().abort(503, 0.0)),
//!     ],
//!     &Options::default(),
//! )?;
//! println!("{}", report.to_markdown());
//! # Ok(())
//! # }
//! ```

mod report;
mod upstream;
mod wrk;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use report::{Measured, Memory, Report, Row, RowResult, Spread};
pub use upstream::ECHO_HEADER;
pub use wrk::{WrkResult, parse as parse_wrk};

use crate::affinity;
use crate::bootstrap::{
    Bootstrap, Cluster, HttpFilter, Listener, Route, RouteAction, RouteMatch, VirtualHost,
};
use crate::client::Request;
use crate::envoy::{Envoy, EnvoyOptions};
use crate::error::{Result, RigError};
use upstream::FastUpstream;
use wrk::WrkRun;

/// The listener every benchmarked Envoy has.
const LISTENER: &str = "bench";

/// The cluster every benchmarked Envoy forwards to.
const CLUSTER: &str = "bench_upstream";

/// One row of the benchmark: the HTTP filters in front of the router.
#[derive(Debug, Clone)]
pub struct Config {
    /// The row's name in the report.
    pub name: String,
    /// The filters, in order; the router is appended by the rig.
    pub filters: Vec<HttpFilter>,
    /// Headers sent with every request (wrk `-H`, and the probe).
    pub request_headers: Vec<(String, String)>,
    /// Request headers the upstream must see on the probe request.
    pub expect_upstream_headers: Vec<(String, String)>,
    /// Response headers the probe response must carry.
    pub expect_response_headers: Vec<(String, String)>,
    /// When Envoy rejects the configuration, report the row as unavailable
    /// (with Envoy's reason) instead of failing the whole benchmark; for
    /// features a given Envoy build may lack, such as a Wasm runtime.
    pub optional: bool,
    /// Routes replacing the default one (`/` to the upstream), for rows
    /// whose routing is what is measured (weighted clusters, header matches).
    pub routes: Vec<Route>,
    /// Clusters besides the default one, for `routes` to name: each is
    /// another name for the same upstream.
    pub clusters: Vec<String>,
}

impl Config {
    /// A configuration with no filter but the router.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            filters: Vec::new(),
            request_headers: Vec::new(),
            expect_upstream_headers: Vec::new(),
            expect_response_headers: Vec::new(),
            optional: false,
            routes: Vec::new(),
            clusters: Vec::new(),
        }
    }

    /// Appends an HTTP filter.
    #[must_use]
    pub fn filter(mut self, filter: impl Into<HttpFilter>) -> Self {
        self.filters.push(filter.into());
        self
    }

    /// Sends `name: value` with every request.
    #[must_use]
    pub fn request_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request_headers.push((name.into(), value.into()));
        self
    }

    /// Requires the upstream to see `name: value` on the probe request.
    #[must_use]
    pub fn expect_upstream_header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.expect_upstream_headers
            .push((name.into(), value.into()));
        self
    }

    /// Requires the probe response to carry `name: value`.
    #[must_use]
    pub fn expect_response_header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.expect_response_headers
            .push((name.into(), value.into()));
        self
    }

    /// Reports the row as unavailable when Envoy rejects the configuration.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Appends a route; the first one replaces the default route.
    #[must_use]
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Declares cluster `name`, another name for the same upstream.
    #[must_use]
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.clusters.push(name.into());
        self
    }

    /// The bootstrap of this configuration's Envoy, forwarding to `upstream_port`.
    pub fn bootstrap(&self, upstream_port: u16) -> Bootstrap {
        let routes = if self.routes.is_empty() {
            vec![Route::new(
                RouteMatch::prefix("/"),
                RouteAction::cluster(CLUSTER),
            )]
        } else {
            self.routes.clone()
        };
        let host = routes
            .into_iter()
            .fold(VirtualHost::new("all"), VirtualHost::route);
        let listener = self.filters.iter().cloned().fold(
            Listener::new(LISTENER)
                // One log line per request would be measured too.
                .access_log(false)
                .virtual_host(host),
            Listener::filter,
        );
        self.clusters.iter().fold(
            Bootstrap::new()
                .listener(listener)
                .cluster(Cluster::new(CLUSTER, upstream_port)),
            |bootstrap, name| bootstrap.cluster(Cluster::new(name.clone(), upstream_port)),
        )
    }
}

/// How the benchmark runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Measured runs per configuration (at least 1; 5 or more for a median
    /// worth quoting).
    pub rounds: u32,
    /// Length of each measured run.
    pub duration: Duration,
    /// Length of the one warm-up run per configuration (zero skips it).
    pub warmup: Duration,
    /// wrk connections (`-c`).
    pub connections: u32,
    /// wrk threads (`-t`).
    pub threads: u32,
    /// The request path.
    pub path: String,
    /// The wrk binary.
    pub wrk: PathBuf,
    /// Pin Envoy and the load to separate CPUs when there are two.
    pub pin: bool,
    /// Envoy's options; [`run`] sets the CPU affinity itself.
    pub envoy: EnvoyOptions,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rounds: 5,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            connections: 16,
            threads: 1,
            path: "/".into(),
            wrk: PathBuf::from("wrk"),
            pin: true,
            envoy: EnvoyOptions {
                // Logging per request (the test plugin logs every response
                // at info) would be measured too.
                log_level: "warning".into(),
                component_log_levels: Vec::new(),
                ..EnvoyOptions::default()
            },
            progress: true,
        }
    }
}

impl Options {
    /// Load time a run of `configs` measured configurations will take,
    /// warm-ups included (start-up and checks come on top).
    pub fn planned_load_time(&self, configs: usize) -> Duration {
        let per_config = self.warmup + self.duration * self.rounds;
        per_config * u32::try_from(configs).unwrap_or(u32::MAX)
    }

    fn check(&self) -> Result<()> {
        let invalid = |reason: &str| {
            Err(RigError::io(
                "benchmark options",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, reason.to_owned()),
            ))
        };
        if self.rounds == 0 {
            return invalid("--rounds must be at least 1");
        }
        if self.duration < Duration::from_millis(100) {
            return invalid("--duration must be at least 100ms");
        }
        if self.threads == 0 || self.connections < self.threads {
            return invalid("need at least one thread and at least one connection per thread");
        }
        if !self.path.starts_with('/') {
            return invalid("the path must start with /");
        }
        Ok(())
    }

    fn say(&self, line: impl AsRef<str>) {
        if self.progress {
            eprintln!("[envoy-bench] {}", line.as_ref());
        }
    }
}

/// Where Envoy and the load run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// Envoy on one CPU, wrk and the upstream on another.
    Pinned {
        /// Envoy's CPU.
        envoy: usize,
        /// The CPU of wrk and the upstream.
        load: usize,
    },
    /// Nothing pinned, and why.
    Unpinned(String),
}

impl Topology {
    fn choose(pin: bool) -> Self {
        if !pin {
            return Self::Unpinned("pinning turned off".into());
        }
        match affinity::allowed_cpus() {
            Ok(cpus) if cpus.len() >= 2 => Self::Pinned {
                envoy: cpus[0],
                load: cpus[1],
            },
            Ok(cpus) => Self::Unpinned(format!(
                "only {} CPU available, so Envoy and the load share it",
                cpus.len()
            )),
            Err(e) => Self::Unpinned(format!("cannot read the CPU affinity: {e}")),
        }
    }

    /// A one-line description for the report.
    pub fn describe(&self) -> String {
        match self {
            Self::Pinned { envoy, load } => {
                format!("Envoy pinned to CPU {envoy}; wrk and the upstream pinned to CPU {load}")
            }
            Self::Unpinned(reason) => format!("unpinned ({reason})"),
        }
    }
}

/// Runs every configuration as described in the [module docs](self).
pub fn run(configs: &[Config], options: &Options) -> Result<Report> {
    let started = Instant::now();
    options.check()?;

    let topology = Topology::choose(options.pin);
    let mut envoy_options = options.envoy.clone();
    let mut wrk_cpu = None;
    if let Topology::Pinned { envoy, load } = topology {
        // Everything this thread starts from now on (the upstream's thread,
        // wrk, Envoy until its own pinning) inherits the load CPU.
        affinity::pin_current_thread(&[load])
            .map_err(|e| RigError::io(format!("pinning the benchmark to CPU {load}"), e))?;
        envoy_options.cpu_affinity = Some(vec![envoy]);
        wrk_cpu = Some(load);
    }
    options.say(topology.describe());

    let envoy_version = envoy_version(&envoy_options)?;
    let upstream = FastUpstream::start()?;

    // Start every Envoy first: each stays up, idle, for the whole session.
    let mut slots = Vec::with_capacity(configs.len());
    for config in configs {
        let slot = start_config(
            config,
            upstream.port(),
            &envoy_options,
            &envoy_version,
            options,
        )?;
        slots.push(slot);
    }

    let measured = slots
        .iter()
        .filter(|s| matches!(s, Slot::Up { .. }))
        .count();
    options.say(format!(
        "planned load time: {} s ({measured} configurations x ({} s warm-up + {} x {} s))",
        options.planned_load_time(measured).as_secs_f64(),
        options.warmup.as_secs_f64(),
        options.rounds,
        options.duration.as_secs_f64()
    ));

    let wrk_run = |config: &Config, url: &str, duration: Duration| {
        WrkRun {
            wrk: &options.wrk,
            cpu: wrk_cpu,
            threads: options.threads,
            connections: options.connections,
            duration,
            headers: &config.request_headers,
            url,
        }
        .run()
    };

    if !options.warmup.is_zero() {
        for (config, slot) in configs.iter().zip(&slots) {
            if let Slot::Up { url, .. } = slot {
                let warm = wrk_run(config, url, options.warmup)?;
                options.say(format!(
                    "warm-up {}: {:.0} req/s (discarded)",
                    config.name, warm.requests_per_sec
                ));
            }
        }
    }

    for round in 1..=options.rounds {
        for (config, slot) in configs.iter().zip(&mut slots) {
            let Slot::Up { url, runs, .. } = slot else {
                continue;
            };
            let result = wrk_run(config, url, options.duration)?;
            options.say(format!(
                "round {round}/{}: {}: {:.0} req/s, p50 {:?}, p99 {:?}, {} errors",
                options.rounds,
                config.name,
                result.requests_per_sec,
                result.p50,
                result.p99,
                result.errors()
            ));
            runs.push(result);
        }
    }

    let rows = configs
        .iter()
        .zip(slots)
        .map(|(config, slot)| Row {
            name: config.name.clone(),
            result: match slot {
                Slot::Up { envoy, runs, .. } => RowResult::Measured(Measured {
                    runs,
                    memory: Memory::of(&envoy),
                }),
                Slot::Unavailable(reason) => RowResult::Unavailable(reason),
            },
        })
        .collect();

    let wrk_command = WrkRun {
        wrk: &options.wrk,
        cpu: wrk_cpu,
        threads: options.threads,
        connections: options.connections,
        duration: options.duration,
        headers: &[],
        url: &format!("http://127.0.0.1:<port>{}", options.path),
    }
    .argv()
    .join(" ");

    Ok(Report {
        rows,
        topology,
        envoy_version: envoy_version.full,
        wrk_command,
        options: options.clone(),
        elapsed: started.elapsed(),
    })
}

/// A configuration's place in the session.
#[derive(Debug)]
enum Slot {
    /// Its Envoy is running; the runs so far.
    Up {
        envoy: Envoy,
        url: String,
        runs: Vec<WrkResult>,
    },
    /// Envoy rejected an optional configuration; the reason.
    Unavailable(String),
}

/// Validates `config`, then starts and probes its Envoy.
fn start_config(
    config: &Config,
    upstream_port: u16,
    envoy_options: &EnvoyOptions,
    envoy_version: &EnvoyVersion,
    options: &Options,
) -> Result<Slot> {
    let bootstrap = config.bootstrap(upstream_port);
    match Envoy::validate(&bootstrap, envoy_options) {
        Ok(()) => {}
        Err(RigError::InvalidBootstrap { log_tail }) if config.optional => {
            let reason = format!(
                "Envoy {} rejects it: {}",
                envoy_version.short,
                first_complaint(&log_tail)
            );
            options.say(format!("{}: unavailable: {reason}", config.name));
            return Ok(Slot::Unavailable(reason));
        }
        Err(e) => return Err(e),
    }
    let envoy = Envoy::start_with(&bootstrap, envoy_options)?;
    probe(config, &envoy, options)?;
    let url = format!("{}{}", envoy.url()?, options.path);
    options.say(format!(
        "{}: Envoy pid {} ready at {url}",
        config.name,
        envoy.pid()
    ));
    Ok(Slot::Up {
        envoy,
        url,
        runs: Vec::new(),
    })
}

/// One request through `envoy` proving the configuration does its work.
fn probe(config: &Config, envoy: &Envoy, options: &Options) -> Result<()> {
    let url = format!("{}{}", envoy.url()?, options.path);
    let mut request = Request::get(&url).header(ECHO_HEADER, "1");
    for (name, value) in &config.request_headers {
        request = request.header(name, value);
    }
    let response = request.send()?;
    let context = || format!("probing configuration {:?} at {url}", config.name);
    if response.status != 200 {
        return Err(RigError::http(
            context(),
            format!(
                "status {} (expected 200): {}\nEnvoy log tail:\n{}",
                response.status,
                response.text(),
                envoy.log_tail(20)
            ),
        ));
    }
    for (name, value) in &config.expect_response_headers {
        let got = response.header(name);
        if got != Some(value.as_str()) {
            return Err(RigError::http(
                context(),
                format!("response header {name} is {got:?}, expected {value:?}"),
            ));
        }
    }
    let echoed = response.text();
    for (name, value) in &config.expect_upstream_headers {
        let line = format!("{}: {value}", name.to_ascii_lowercase());
        if !echoed.lines().any(|l| l == line) {
            return Err(RigError::http(
                context(),
                format!("the upstream did not see `{line}`; it saw:\n{echoed}"),
            ));
        }
    }
    Ok(())
}

#[derive(Debug)]
struct EnvoyVersion {
    /// e.g. `1.40.0`.
    short: String,
    /// What `envoy --version` prints after `version: `.
    full: String,
}

fn envoy_version(options: &EnvoyOptions) -> Result<EnvoyVersion> {
    let binary = options.binary()?;
    let output = Command::new(&binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| RigError::io(format!("running {} --version", binary.display()), e))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Ok(parse_envoy_version(&text))
}

fn parse_envoy_version(text: &str) -> EnvoyVersion {
    // `<path>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`
    let full = text
        .split_once("version:")
        .map_or(text, |(_, rest)| rest)
        .trim()
        .to_owned();
    let short = full.split('/').nth(1).unwrap_or(&full).to_owned();
    EnvoyVersion { short, full }
}

/// The first warning, error or critical message in an Envoy log, without the
/// timestamp, thread and source-location prefix.
fn first_complaint(log: &str) -> String {
    let line = log
        .lines()
        .find(|line| {
            ["[warning]", "[error]", "[critical]"]
                .iter()
                .any(|l| line.contains(l))
        })
        .or_else(|| log.lines().rfind(|line| !line.trim().is_empty()))
        .unwrap_or("no reason given");
    // `[ts][tid][level][component] [source/file.cc:12] message`: the message
    // follows the bracket that closes the source location.
    line.split_once("] [")
        .and_then(|(_, rest)| rest.split_once("] "))
        .map_or(line, |(_, message)| message)
        .trim()
        .to_owned()
}

impl Memory {
    /// Reads `VmRSS` from `/proc/<pid>/status` and `allocated` from admin `/memory`.
    pub fn of(envoy: &Envoy) -> Self {
        let vm_rss_bytes = std::fs::read_to_string(format!("/proc/{}/status", envoy.pid()))
            .ok()
            .and_then(|status| parse_vm_rss(&status));
        let allocated_bytes = envoy
            .admin_get("/memory")
            .ok()
            .and_then(|body| parse_allocated(&body));
        Self {
            vm_rss_bytes,
            allocated_bytes,
        }
    }
}

/// The `VmRSS:   41236 kB` line, in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `allocated` from admin `/memory` (a proto uint64, so a JSON string).
fn parse_allocated(body: &str) -> Option<u64> {
    let json: Value = serde_json::from_str(body).ok()?;
    match json.get("allocated")? {
        Value::String(text) => text.parse().ok(),
        value => value.as_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_version_is_read_from_its_banner() {
        let version = parse_envoy_version(
            "\n/x/.venv/envoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL\n",
        );
        assert_eq!(version.short, "1.40.0");
        assert!(version.full.starts_with("9e5580"));
    }

    #[test]
    fn the_first_complaint_loses_its_prefix() {
        let log = "[2026-11-21 19:45:28.222][26019][info][main] [source/server/server.cc:1] starting\n\
            [2026-11-21 19:45:28.222][26019][warning][wasm] [source/extensions/common/wasm/wasm_vm.cc:102] Failed to create Wasm VM using envoy.wasm.runtime.wasmtime runtime. Envoy was compiled without support for it\n\
            [2026-11-21 19:45:28.222][26019][critical][wasm] [source/extensions/common/wasm/wasm.cc:626] Plugin t failed to load";
        assert_eq!(
            first_complaint(log),
            "Failed to create Wasm VM using envoy.wasm.runtime.wasmtime runtime. Envoy was compiled without support for it"
        );
        assert_eq!(first_complaint(""), "no reason given");
    }

    #[test]
    fn memory_figures_are_parsed() {
        let status = "Name:\tenvoy\nVmPeak:\t  99 kB\nVmRSS:\t   41236 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss(status), Some(41236 * 1024));
        assert_eq!(
            parse_allocated(r#"{"allocated":"9437184","heap_size":"1"}"#),
            Some(9_437_184)
        );
        assert_eq!(parse_allocated(r#"{"allocated":12}"#), Some(12));
        assert_eq!(parse_allocated("{}"), None);
    }

    #[test]
    fn options_refuse_nonsense() {
        let zero_rounds = Options {
            rounds: 0,
            ..Options::default()
        };
        assert!(zero_rounds.check().is_err());
        assert!(Options::default().check().is_ok());
        assert_eq!(
            Options::default().planned_load_time(3),
            Duration::from_secs(3 * (1 + 5 * 5))
        );
    }

    #[test]
    fn routes_and_clusters_replace_the_default_route() {
        let config = Config::new("weighted")
            .route(Route::new(
                RouteMatch::prefix("/"),
                RouteAction::weighted([("v1", 90), ("v2", 10)]),
            ))
            .cluster("v1")
            .cluster("v2");
        let json = config.bootstrap(4321).to_json();
        let routes = &json["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["route_config"]["virtual_hosts"][0]["routes"];
        assert_eq!(routes.as_array().map(Vec::len), Some(1));
        assert_eq!(
            routes[0]["route"]["weighted_clusters"]["clusters"][1]["name"],
            "v2"
        );
        let clusters = json["static_resources"]["clusters"].as_array().unwrap();
        let names: Vec<&str> = clusters.iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, [CLUSTER, "v1", "v2"]);
        for cluster in clusters {
            assert_eq!(
                cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                    ["socket_address"]["port_value"],
                4321
            );
        }
    }

    #[test]
    fn the_bootstrap_puts_filters_before_the_router_without_access_log() {
        let config = Config::new("fault").filter(crate::FaultFilter::new().abort(503, 0.0));
        let json = config.bootstrap(4321).to_json();
        let hcm = &json["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm["http_filters"][0]["name"], "envoy.filters.http.fault");
        assert_eq!(hcm["http_filters"][1]["name"], "envoy.filters.http.router");
        assert!(hcm.get("access_log").is_none());
        assert_eq!(
            json["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
                [0]["endpoint"]["address"]["socket_address"]["port_value"],
            4321
        );
    }
}
