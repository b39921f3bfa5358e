//! The retry-storm experiment (issue 6): a chain of three Envoy hops, each
//! retrying 5xx three times, in front of a service that fails every request.
//! For each guard (none, Envoy's native `retry_budget` circuit breaker, the
//! retry-budget plugin at every hop, with and without
//! `suppressCallerRetries`, and in gRPC token-bucket mode) it reports the
//! attempts reaching the service per client request, then switches the
//! service to 10 % transient failures and reports how the success rate
//! recovers, slice by slice. `--overhead` also measures the plugin in the
//! healthy case under wrk against no filter (the rig's benchmark).
//!
//! `cargo run --release -p envoy-bench --bin retry_storm -- --help`

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use envoy_rig::bench::{self, Config, Options};
use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, CircuitBreakers, Cluster, Envoy, EnvoyOptions, Fault, Listener, RetryBudget,
    RetryPolicy, Route, RouteAction, RouteMatch, Share, Upstream, VirtualHost, WasmFilter,
};

const USAGE: &str = "\
usage: retry_storm [options]

Three Envoy hops (two workers each), each retrying 5xx 3 times, in front of a
service failing 100 %: attempts reaching the service per client request, for
each guard; then the service fails 10 % of attempts and the success rate is
reported per slice of requests. Markdown on stdout, progress on stderr.

options:
  --requests N     client requests during the outage (default 400)
  --clients N      concurrent clients (default 4)
  --slices N       recovery slices (default 10)
  --slice N        requests per recovery slice (default 100)
  --overhead       also benchmark the plugin in the healthy case under wrk
  --rounds N       overhead: measured runs per configuration (default 5)
  --duration D     overhead: length of each run, in seconds (default 5)
  -h, --help       this text";

/// The plugin's budget in every plugin row: 20 %, 1 retry/s over 10 s.
const BUDGET: &str = r#""budget": {"retryRatio": 0.2, "minRetriesPerSecond": 1, "ttl": "10s"},
    "attempts": 3, "retryOn": "5xx""#;

#[derive(Debug, Clone)]
enum Guard {
    None,
    Native,
    Plugin(String),
}

#[derive(Debug, Clone)]
struct Args {
    requests: u64,
    clients: u64,
    slices: u64,
    slice: u64,
    overhead: bool,
    rounds: u32,
    duration: Duration,
}

fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        requests: 400,
        clients: 4,
        slices: 10,
        slice: 100,
        overhead: false,
        rounds: 5,
        duration: Duration::from_secs(5),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--requests" => parsed.requests = number("--requests")?,
            "--clients" => parsed.clients = number("--clients")?,
            "--slices" => parsed.slices = number("--slices")?,
            "--slice" => parsed.slice = number("--slice")?,
            "--rounds" => {
                parsed.rounds = u32::try_from(number("--rounds")?).map_err(|e| e.to_string())?;
            }
            "--duration" => parsed.duration = Duration::from_secs(number("--duration")?),
            "--overhead" => parsed.overhead = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Some(parsed))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match parse_args(&args) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("retry_storm: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&parsed, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("retry_storm: {e}");
            ExitCode::FAILURE
        }
    }
}

fn plugin(config: &str) -> WasmFilter {
    WasmFilter::new("retry-budget", wasm_artifacts::RETRY_BUDGET).configuration(config)
}

/// One hop: forwards to 127.0.0.1:`port`, retries 5xx 3 times (backoff 1 to
/// 4 ms: shorter runs, same attempt counts), returns the attempt count.
fn hop(port: u16, guard: &Guard) -> Bootstrap {
    let route = Route::new(RouteMatch::prefix("/"), RouteAction::cluster("next"))
        .timeout(Duration::from_secs(120))
        .retry_policy(
            RetryPolicy::new("5xx", 3).backoff(Duration::from_millis(1), Duration::from_millis(4)),
        );
    let mut listener = Listener::new("ingress").access_log(false).virtual_host(
        VirtualHost::new("app")
            .include_attempt_count_in_response(true)
            .route(route),
    );
    // Envoy's default breaker allows 3 concurrent retries: a limit of its
    // own, lifted except where the native budget replaces it.
    let breakers = match guard {
        Guard::Native => CircuitBreakers {
            retry_budget: Some(RetryBudget {
                budget_percent: 20.0,
                min_retry_concurrency: 3,
            }),
            ..CircuitBreakers::default()
        },
        Guard::None | Guard::Plugin(_) => CircuitBreakers {
            max_retries: Some(1_000_000),
            ..CircuitBreakers::default()
        },
    };
    if let Guard::Plugin(config) = guard {
        listener = listener.filter(plugin(config));
    }
    Bootstrap::new()
        .listener(listener)
        .cluster(Cluster::new("next", port).circuit_breakers(breakers))
}

/// Sends `total` GETs to `url` from `clients` threads; returns the 2xx count.
fn load(url: &str, total: u64, clients: u64) -> u64 {
    let next = AtomicU64::new(0);
    let ok = Mutex::new(0u64);
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < total {
                    let success = Request::get(url)
                        .timeout(Duration::from_secs(120))
                        .send()
                        .is_ok_and(|r| (200..300).contains(&r.status));
                    if success {
                        *ok.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    }
                }
            });
        }
    });
    ok.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// What one guard did.
struct Storm {
    name: String,
    attempts: u64,
    elapsed: Duration,
    recovery: Vec<f64>,
}

fn storm(name: &str, guard: &Guard, args: &Args) -> Result<Storm, String> {
    let service = Upstream::start("service").map_err(|e| e.to_string())?;
    service.inject(Fault::Status(503), Share::All);
    let options = EnvoyOptions::default()
        .concurrency(2)
        .log_level("warning")
        .component_log_level("wasm", "warning");
    let mut hops: Vec<Envoy> = Vec::new();
    for _ in 0..3 {
        let port = match hops.last() {
            Some(previous) => previous
                .listeners()
                .first()
                .map(|(_, addr)| addr.port())
                .ok_or("a hop has no listener")?,
            None => service.port(),
        };
        hops.push(Envoy::start_with(&hop(port, guard), &options).map_err(|e| e.to_string())?);
    }
    let url = hops
        .last()
        .ok_or("no hops")?
        .url()
        .map_err(|e| e.to_string())?;
    eprintln!(
        "[retry_storm] {name}: {} requests, service failing",
        args.requests
    );
    let started = Instant::now();
    let ok = load(&url, args.requests, args.clients);
    let elapsed = started.elapsed();
    if ok != 0 {
        return Err(format!(
            "{name}: {ok} requests succeeded against a failing service"
        ));
    }
    let attempts = service.request_count();
    service.inject(
        Fault::Status(503),
        Share::Fraction {
            numerator: 1,
            denominator: 10,
        },
    );
    eprintln!("[retry_storm] {name}: recovery, service failing 10 %");
    let recovery = (0..args.slices)
        .map(|_| 100.0 * load(&url, args.slice, args.clients) as f64 / args.slice as f64)
        .collect();
    Ok(Storm {
        name: name.into(),
        attempts,
        elapsed,
        recovery,
    })
}

fn run(args: &Args, argv: &[String]) -> Result<(), String> {
    let guards = [
        ("no budget", Guard::None),
        (
            "Envoy's native retry_budget (20 %, min 3 concurrent)",
            Guard::Native,
        ),
        (
            "plugin at every hop (20 %, 1/s, 10 s)",
            Guard::Plugin(format!("{{{BUDGET}}}")),
        ),
        (
            "plugin at every hop + suppressCallerRetries",
            Guard::Plugin(format!(r#"{{{BUDGET}, "suppressCallerRetries": true}}"#)),
        ),
        (
            "plugin, gRPC token bucket (10 tokens, ratio 0.1)",
            Guard::Plugin(
                r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.1}, "attempts": 3, "retryOn": "5xx"}"#
                    .into(),
            ),
        ),
    ];
    let mut storms = Vec::new();
    for (name, guard) in &guards {
        storms.push(storm(name, guard, args)?);
    }
    println!("## Retry storm: three Envoy hops in front of a failing service\n");
    println!(
        "Command: `cargo run --release -p envoy-bench --bin retry_storm --{}`\n",
        argv.iter().map(|a| format!(" {a}")).collect::<String>()
    );
    println!(
        "Each hop: Envoy 2 workers, route retry policy `5xx` × 3 (backoff 1–4 ms), {} concurrent clients. Outage: the service fails 100 %; recovery: it fails 10 % of attempts, success rate per slice of {} client requests.\n",
        args.clients, args.slice
    );
    println!(
        "| guard | client requests | attempts at the service | per client request | outage run s | recovery: first slice % | worst slice % | all slices % |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|");
    for s in &storms {
        let worst = s.recovery.iter().copied().fold(f64::INFINITY, f64::min);
        let all = s.recovery.iter().sum::<f64>() / s.recovery.len().max(1) as f64;
        println!(
            "| {} | {} | {} | {:.3}x | {:.1} | {:.1} | {:.1} | {:.2} |",
            s.name,
            args.requests,
            s.attempts,
            s.attempts as f64 / args.requests as f64,
            s.elapsed.as_secs_f64(),
            s.recovery.first().copied().unwrap_or(0.0),
            worst,
            all
        );
    }
    if args.overhead {
        overhead(args)?;
    }
    Ok(())
}

/// The healthy case under wrk: the plugin (default budget, every request
/// admitted and settled) against no filter.
fn overhead(args: &Args) -> Result<(), String> {
    let options = Options {
        rounds: args.rounds,
        duration: args.duration,
        ..Options::default()
    };
    let configs = [
        Config::new("no filter"),
        Config::new("retry budget (V8)").filter(plugin(&format!("{{{BUDGET}}}"))),
    ];
    let report = bench::run(&configs, &options).map_err(|e| e.to_string())?;
    println!("\n## Healthy case: retry budget against no filter\n");
    print!("{}", report.to_markdown());
    Ok(())
}
