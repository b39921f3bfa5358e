//! Shared set-up for the fault injector's real-Envoy tests (`envoy_*.rs`):
//! cross-check scenarios, a standalone Envoy with the plugin, held-open
//! requests, and polling Envoy's stats with a deadline.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cross_check::{Scenario, UPSTREAM_CLUSTER, envoy_for};
use envoy_rig::client::{Request, Response};
use envoy_rig::{Envoy, EnvoyOptions, Upstream};
use fault_injector_filter::{ABORT_SALT, DELAY_SALT, Percentage, draw, fnv1a64};

/// The plugin's names in every test, so the harness and Envoy agree on them.
pub const PLUGIN: &str = "fault-injector";

/// How long a poll of Envoy's stats may take before the test fails.
pub const POLL_DEADLINE: Duration = Duration::from_secs(20);

/// A cross-check scenario of the shipped plugin with `config`.
pub fn scenario(name: &str, config: &str) -> Scenario {
    Scenario::new(name, wasm_artifacts::FAULT_INJECTOR)
        .plugin_name(PLUGIN)
        .root_id(PLUGIN)
        .vm_id(PLUGIN)
        .plugin_config(config)
}

/// Whether request-id sampling aborts the request with `id` at `percent`.
pub fn aborts(id: &str, percent: f64) -> bool {
    Percentage::from_percent(percent)
        .expect("a percentage")
        .fires(draw(fnv1a64(id.as_bytes()), ABORT_SALT))
}

/// Whether request-id sampling delays the request with `id` at `percent`.
pub fn delays(id: &str, percent: f64) -> bool {
    Percentage::from_percent(percent)
        .expect("a percentage")
        .fires(draw(fnv1a64(id.as_bytes()), DELAY_SALT))
}

/// An Envoy with the plugin (`config`) in front of an echo upstream, set up
/// exactly as the cross-check does, with `workers` worker threads.
pub struct Rig {
    pub envoy: Envoy,
    pub upstream: Upstream,
}

impl Rig {
    pub fn start(config: &str, workers: u32) -> Self {
        let upstream = Upstream::start(UPSTREAM_CLUSTER).expect("upstream starts");
        let envoy = if workers == 1 {
            envoy_for(&scenario("rig", config), &upstream).expect("Envoy starts")
        } else {
            start_with_workers(config, &upstream, workers)
        };
        Self { envoy, upstream }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.envoy.url().expect("a listener"))
    }

    pub fn get(&self, path: &str) -> Response {
        Request::get(self.url(path))
            .send()
            .expect("exchange completes")
    }

    /// A plugin metric as Envoy shows it (`wasmcustom.<name>`), 0 if absent.
    pub fn metric(&self, name: &str) -> u64 {
        self.envoy
            .stat(&format!("wasmcustom.{name}"))
            .expect("admin stats")
            .unwrap_or(0)
    }

    /// Polls until `check` holds on the stats, for at most [`POLL_DEADLINE`].
    pub fn wait_until(&self, what: &str, check: impl Fn(&Rig) -> bool) {
        let deadline = Instant::now() + POLL_DEADLINE;
        while !check(self) {
            assert!(
                Instant::now() < deadline,
                "still not true after {POLL_DEADLINE:?}: {what}\n{}",
                self.envoy.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Open connections per worker (`listener.<addr>.worker_<n>.downstream_cx_active`).
    pub fn active_connections_per_worker(&self, workers: u32) -> Vec<u64> {
        let stats = self.envoy.stats().expect("admin stats");
        (0..workers)
            .map(|worker| {
                let suffix = format!(".worker_{worker}.downstream_cx_active");
                stats
                    .iter()
                    .filter(|(name, _)| name.starts_with("listener.") && name.ends_with(&suffix))
                    .map(|(_, value)| *value)
                    .sum()
            })
            .collect()
    }
}

fn start_with_workers(config: &str, upstream: &Upstream, workers: u32) -> Envoy {
    use envoy_rig::{
        Bootstrap, Cluster, Listener, Route, RouteAction, RouteMatch, VirtualHost, WasmFilter,
    };
    let filter = WasmFilter::new(PLUGIN, wasm_artifacts::FAULT_INJECTOR)
        .root_id(PLUGIN)
        .vm_id(PLUGIN)
        .configuration(config);
    let host = VirtualHost::new("all").route(Route::new(
        RouteMatch::prefix("/"),
        RouteAction::cluster(UPSTREAM_CLUSTER),
    ));
    Envoy::start_with(
        &Bootstrap::new()
            .listener(Listener::new("ingress").virtual_host(host).filter(filter))
            .cluster(Cluster::new(UPSTREAM_CLUSTER, upstream.port())),
        &EnvoyOptions::default().concurrency(workers),
    )
    .expect("Envoy starts")
}

/// A request sent on a raw connection and never read: Envoy holds it (for
/// example in a delay) until the connection is dropped, which is a client
/// going away.
pub struct HeldRequest {
    stream: TcpStream,
}

impl HeldRequest {
    pub fn send(rig: &Rig, path: &str) -> Self {
        let addr = rig.envoy.listener_addr("ingress").expect("a listener");
        let mut stream = TcpStream::connect(addr).expect("connect to Envoy");
        write!(stream, "GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").expect("send the request");
        stream.flush().expect("flush");
        Self { stream }
    }

    /// Goes away without waiting for the answer.
    pub fn disconnect(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Sends `request` and measures how long the whole exchange took.
pub fn timed(request: &Request) -> (Response, Duration) {
    let start = Instant::now();
    let response = request.send().expect("exchange completes");
    (response, start.elapsed())
}
