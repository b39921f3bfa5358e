//! `--suite fault-injector`: the fault-injector plugin's benchmark rows.
//!
//! 1. Overhead, under wrk (the rig's [`envoy_rig::bench::run`]): Envoy with no filter,
//!    with the plugin in the path and no rule matching (the common case),
//!    with Envoy's native fault filter at 0 %, and, for reference, with the
//!    harness's trivial test plugin (the cost of any V8 plugin).
//! 2. Delay precision: the plugin and the native fault filter with the same
//!    fixed delay at 100 % (10, 100 and 500 ms), each request timed by a
//!    client on one keep-alive connection per Envoy, alternating between the
//!    two; the error of a request is its observed latency minus the
//!    configured delay.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use envoy_rig::bench::{Config, Measured, Options, Report, RowResult, Topology};
use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, EnvoyOptions, FaultFilter, HttpFilter, Listener, Route, RouteAction,
    RouteMatch, Upstream, VirtualHost, WasmFilter,
};

/// The plugin configuration of the overhead row: the Istio manifest's rule
/// (`istio/plugins/fault-injector.yaml`), which wrk's requests never match
/// (they carry no `end-user` header), with request-id sampling and a limit.
pub const NO_MATCH_CONFIG: &str = r#"{
    "rules": [{
        "name": "tester-500",
        "match": [{"headers": {"end-user": {"exact": "tester"}}}],
        "abort": {"httpStatus": 500, "percentage": {"value": 50}}
    }],
    "requestIdHeader": "x-request-id",
    "responseHeader": "x-fault-injected",
    "maxActiveFaults": 50
}"#;

/// The delays whose precision is measured.
pub const DELAYS_MS: [u64; 3] = [10, 100, 500];

/// The goals from the issue.
const P50_GOAL: f64 = 1.10;
const THROUGHPUT_GOAL: f64 = 0.90;
const PRECISION_GOAL: f64 = 1.5;

fn plugin(config: &str) -> WasmFilter {
    WasmFilter::new("fault_injector", wasm_artifacts::FAULT_INJECTOR).configuration(config)
}

/// The overhead rows, the baseline first. The harness's trivial test plugin
/// comes last, for reference: what any V8 plugin in the path costs here, so
/// the fault injector's own share can be told apart.
pub fn configs() -> Vec<Config> {
    vec![
        Config::new("no filter"),
        Config::new("fault injector, no rule matches (V8)").filter(plugin(NO_MATCH_CONFIG)),
        Config::new("native fault filter at 0 %").filter(FaultFilter::new().abort(503, 0.0)),
        Config::new("reference: trivial test plugin (V8)")
            .filter(WasmFilter::new(
                "harness_test_plugin",
                wasm_artifacts::HARNESS_TEST_PLUGIN,
            ))
            .expect_upstream_header("x-test-plugin", "seen"),
    ]
}

/// Before any load: the no-match configuration is live, so the plugin row
/// measures a plugin that would inject faults, not one that failed to load.
/// Requests as `end-user: tester` are aborted for exactly the request ids
/// the hash picks; wrk's requests (no `end-user`) pass untouched.
pub fn check_plugin_is_live(envoy_options: &EnvoyOptions) -> Result<(), String> {
    let upstream = Upstream::start("bench").map_err(|e| e.to_string())?;
    let envoy = start_envoy(plugin(NO_MATCH_CONFIG).into(), &upstream, envoy_options)?;
    let url = envoy.url().map_err(|e| e.to_string())?;
    let mut aborted = 0;
    for n in 0..20 {
        let response = Request::get(format!("{url}/"))
            .header("end-user", "tester")
            .header("x-request-id", format!("bench-probe-{n}"))
            .send()
            .map_err(|e| e.to_string())?;
        match response.status {
            500 if response.header("x-fault-injected") == Some("abort=500;rule=tester-500") => {
                aborted += 1;
            }
            200 => {}
            other => return Err(format!("a tester request got status {other}")),
        }
    }
    let plain = Request::get(format!("{url}/"))
        .send()
        .map_err(|e| e.to_string())?;
    if aborted == 0 || aborted == 20 || plain.status != 200 {
        return Err(format!(
            "the plugin is not live as configured: {aborted} of 20 tester requests aborted, \
             a plain request got {}",
            plain.status
        ));
    }
    Ok(())
}

/// The Envoy options of the precision runs: the benchmark's, with Envoy on
/// the CPU the overhead runs gave it.
pub fn precision_envoy_options(options: &Options, topology: &Topology) -> EnvoyOptions {
    let mut envoy = options.envoy.clone();
    if let Topology::Pinned { envoy: cpu, .. } = topology {
        envoy.cpu_affinity = Some(vec![*cpu]);
    }
    envoy
}

fn start_envoy(
    filter: HttpFilter,
    upstream: &Upstream,
    options: &EnvoyOptions,
) -> Result<Envoy, String> {
    let host = VirtualHost::new("all").route(Route::new(
        RouteMatch::prefix("/"),
        RouteAction::cluster("bench"),
    ));
    Envoy::start_with(
        &Bootstrap::new()
            .listener(
                Listener::new("bench")
                    .access_log(false)
                    .virtual_host(host)
                    .filter(filter),
            )
            .cluster(Cluster::new("bench", upstream.port())),
        options,
    )
    .map_err(|e| e.to_string())
}

/// One filter's timings at one delay.
#[derive(Debug, Clone)]
pub struct Precision {
    /// The configured delay.
    pub delay: Duration,
    /// `plugin` or `native`.
    pub filter: &'static str,
    /// Observed latencies, one per request, in request order.
    pub observed: Vec<Duration>,
}

impl Precision {
    /// Observed minus configured, in milliseconds (negative: early).
    pub fn errors_ms(&self) -> Vec<f64> {
        let delay = self.delay.as_secs_f64() * 1e3;
        self.observed
            .iter()
            .map(|d| d.as_secs_f64() * 1e3 - delay)
            .collect()
    }

    /// The median absolute error, in milliseconds.
    pub fn median_abs_error_ms(&self) -> f64 {
        quantile(self.errors_ms().iter().map(|e| e.abs()).collect(), 0.5)
    }
}

/// The `q` quantile (nearest rank on the sorted values; the middle two
/// averaged for the median of an even count); NaN when empty.
fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if (q - 0.5).abs() < f64::EPSILON && n.is_multiple_of(2) {
        return (values[n / 2 - 1] + values[n / 2]) / 2.0;
    }
    let rank = (q * n as f64).ceil().max(1.0) as usize;
    values[rank.min(n) - 1]
}

/// What [`TimedConnection::get`] saw: status, headers, time taken.
type Timed = (u16, Vec<(String, String)>, Duration);

/// A keep-alive HTTP/1.1 connection that times whole exchanges.
struct TimedConnection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    addr: SocketAddr,
}

impl TimedConnection {
    fn open(addr: SocketAddr, timeout: Duration) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer,
            addr,
        })
    }

    /// One GET: the status, the response headers and the time from writing
    /// the request to reading the last byte of the body.
    fn get(&mut self) -> Result<Timed, String> {
        let request = format!("GET / HTTP/1.1\r\nhost: {}\r\n\r\n", self.addr);
        let start = Instant::now();
        self.writer
            .write_all(request.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| format!("read status: {e}"))?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .map_err(|e| format!("read header: {e}"))?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse().ok())
            .ok_or("the response has no content-length")?;
        let mut body = vec![0; length];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| format!("read body: {e}"))?;
        Ok((status, headers, start.elapsed()))
    }
}

/// Times `samples` requests per delay through the plugin and through the
/// native fault filter, alternating (which goes first alternates too), after
/// three discarded requests each.
pub fn delay_precision(
    samples: usize,
    envoy_options: &EnvoyOptions,
    progress: bool,
) -> Result<Vec<Precision>, String> {
    let upstream = Upstream::start("bench").map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for delay_ms in DELAYS_MS {
        let delay = Duration::from_millis(delay_ms);
        let config = format!(
            r#"{{"rules": [{{"name": "fixed", "delay": {{"fixedDelay": "{delay_ms}ms", "percentage": {{"value": 100}}}}}}]}}"#
        );
        let plugin_envoy = start_envoy(plugin(&config).into(), &upstream, envoy_options)?;
        let native_envoy = start_envoy(
            FaultFilter::new().delay(delay, 100.0).into(),
            &upstream,
            envoy_options,
        )?;
        let timeout = delay + Duration::from_secs(30);
        let address = |envoy: &Envoy| envoy.listener_addr("bench").map_err(|e| e.to_string());
        let mut plugin_conn = TimedConnection::open(address(&plugin_envoy)?, timeout)?;
        let mut native_conn = TimedConnection::open(address(&native_envoy)?, timeout)?;
        let expected_report = format!("delay={delay_ms}ms;rule=fixed");
        let check = |conn: &mut TimedConnection, is_plugin: bool| {
            let (status, headers, elapsed) = conn.get()?;
            if status != 200 {
                return Err(format!("status {status}"));
            }
            let report = headers
                .iter()
                .find(|(n, _)| n == "x-fault-injected")
                .map(|(_, v)| v.as_str());
            if is_plugin && report != Some(expected_report.as_str()) {
                return Err(format!("the plugin reported {report:?}"));
            }
            Ok::<Duration, String>(elapsed)
        };
        for _ in 0..3 {
            check(&mut plugin_conn, true)?;
            check(&mut native_conn, false)?;
        }
        let mut plugin_times = Vec::with_capacity(samples);
        let mut native_times = Vec::with_capacity(samples);
        for n in 0..samples {
            if n % 2 == 0 {
                plugin_times.push(check(&mut plugin_conn, true)?);
                native_times.push(check(&mut native_conn, false)?);
            } else {
                native_times.push(check(&mut native_conn, false)?);
                plugin_times.push(check(&mut plugin_conn, true)?);
            }
        }
        for (filter, observed) in [("plugin", plugin_times), ("native", native_times)] {
            let precision = Precision {
                delay,
                filter,
                observed,
            };
            if progress {
                eprintln!(
                    "[envoy-bench] delay {delay_ms} ms, {filter}: median |error| {:.3} ms",
                    precision.median_abs_error_ms()
                );
            }
            results.push(precision);
        }
    }
    Ok(results)
}

fn ratio_of(report: &Report, row: usize, figure: fn(&Measured) -> Option<f64>) -> Option<f64> {
    let measured = |index: usize| match &report.rows.get(index)?.result {
        RowResult::Measured(m) => Some(m),
        RowResult::Unavailable(_) => None,
    };
    let value = figure(measured(row)?)?;
    let base = figure(measured(0)?)?;
    (base > 0.0).then(|| value / base)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// The goals of the issue against what was measured, as Markdown.
pub fn overhead_goals(report: &Report) -> String {
    let throughput = |m: &Measured| m.throughput().map(|s| s.median);
    let p50 = |m: &Measured| m.p50_ms().map(|s| s.median);
    let p99 = |m: &Measured| m.p99_ms().map(|s| s.median);
    let mut out = String::from(
        "| row | throughput ratio (goal ≥ 0.90) | p50 ratio (goal ≤ 1.10) | p99 ratio |\n|---|--:|--:|--:|\n",
    );
    for row in 1..report.rows.len() {
        let cell = |ratio: Option<f64>, goal: Option<(f64, bool)>| match (ratio, goal) {
            (Some(r), Some((limit, at_least))) => {
                let met = if at_least { r >= limit } else { r <= limit };
                format!("{r:.2} ({})", verdict(met))
            }
            (Some(r), None) => format!("{r:.2}"),
            (None, _) => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            report.rows[row].name,
            cell(
                ratio_of(report, row, throughput),
                Some((THROUGHPUT_GOAL, true))
            ),
            cell(ratio_of(report, row, p50), Some((P50_GOAL, false))),
            cell(ratio_of(report, row, p99), None),
        );
    }
    out
}

/// The precision table, as Markdown.
pub fn precision_table(results: &[Precision], samples: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{samples} timed requests per delay and filter (after 3 discarded), alternating between \
         the plugin's Envoy and the native filter's Envoy, each on its own keep-alive connection; \
         error = observed latency − configured delay (it includes the proxy and upstream round trip). \
         Goal: the plugin's median |error| within {PRECISION_GOAL}x the native filter's.\n"
    );
    out.push_str(
        "| delay | filter | median observed ms | median \\|error\\| ms | p90 \\|error\\| ms | min error ms | max error ms | plugin / native |\n",
    );
    out.push_str("|--:|---|--:|--:|--:|--:|--:|--:|\n");
    for pair in results.chunks(2) {
        let native = pair.iter().find(|p| p.filter == "native");
        for precision in pair {
            let errors = precision.errors_ms();
            let abs: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
            let observed: Vec<f64> = precision
                .observed
                .iter()
                .map(|d| d.as_secs_f64() * 1e3)
                .collect();
            let ratio = match (precision.filter, native) {
                ("plugin", Some(native)) if native.median_abs_error_ms() > 0.0 => {
                    let r = precision.median_abs_error_ms() / native.median_abs_error_ms();
                    format!("{r:.2} ({})", verdict(r <= PRECISION_GOAL))
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {} ms | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {ratio} |",
                precision.delay.as_millis(),
                precision.filter,
                quantile(observed, 0.5),
                quantile(abs.clone(), 0.5),
                quantile(abs, 0.9),
                errors.iter().copied().fold(f64::INFINITY, f64::min),
                errors.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        assert_eq!(quantile(vec![3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(vec![4.0, 1.0, 2.0, 3.0], 0.5), 2.5);
        assert_eq!(quantile((1..=10).map(f64::from).collect(), 0.9), 9.0);
        assert!(quantile(Vec::new(), 0.5).is_nan());
    }

    #[test]
    fn errors_are_observed_minus_configured() {
        let precision = Precision {
            delay: Duration::from_millis(10),
            filter: "plugin",
            observed: vec![
                Duration::from_micros(10_500),
                Duration::from_micros(11_000),
                Duration::from_micros(9_800),
            ],
        };
        let errors = precision.errors_ms();
        assert!((errors[0] - 0.5).abs() < 1e-9);
        assert!((errors[2] + 0.2).abs() < 1e-9);
        assert!((precision.median_abs_error_ms() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn the_baseline_comes_first() {
        let configs = configs();
        assert_eq!(configs[0].name, "no filter");
        assert!(configs[0].filters.is_empty());
        assert_eq!(configs.len(), 4);
    }

    #[test]
    fn the_no_match_config_is_the_manifests_rule() {
        let config: serde_json::Value = serde_json::from_str(NO_MATCH_CONFIG).unwrap();
        assert_eq!(
            config["rules"][0]["match"][0]["headers"]["end-user"]["exact"],
            "tester"
        );
    }
}
