//! Shared set-up for the retry budget's real-Envoy tests: Envoys whose
//! route retries on 5xx, with or without the plugin, and a small load
//! generator.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, CircuitBreakers, Cluster, Envoy, EnvoyOptions, Listener, RetryBudget, RetryPolicy,
    Route, RouteAction, RouteMatch, VirtualHost, WasmFilter,
};

/// The cluster every hop forwards to (the plugin's default scope).
pub const CLUSTER: &str = "backend";

/// The plugin with `config`.
pub fn plugin(config: &str) -> WasmFilter {
    WasmFilter::new("retry-budget", wasm_artifacts::RETRY_BUDGET).configuration(config)
}

/// What sits in front of the router.
#[derive(Debug, Clone)]
pub enum Guard {
    /// Nothing: the route's retry policy alone.
    None,
    /// Envoy's `retry_budget` circuit breaker (20 %, 3 concurrent retries).
    Native,
    /// This plugin.
    Plugin(String),
}

/// An Envoy forwarding everything to 127.0.0.1:`port`, retrying 5xx up
/// to `retries` times with a short backoff (1 to 4 ms, so runs stay short;
/// the backoff does not change how many attempts are made), and returning
/// `x-envoy-attempt-count` to its client. Only `guard` limits retries.
pub fn hop(port: u16, retries: u32, guard: &Guard) -> Bootstrap {
    let policy = RetryPolicy::new("5xx", retries)
        .backoff(Duration::from_millis(1), Duration::from_millis(4));
    let route = Route::new(RouteMatch::prefix("/"), RouteAction::cluster(CLUSTER))
        .timeout(Duration::from_secs(60))
        .retry_policy(policy);
    let mut listener = Listener::new("ingress").access_log(false).virtual_host(
        VirtualHost::new("app")
            .include_attempt_count_in_response(true)
            .route(route),
    );
    // Envoy's default circuit breaker allows 3 concurrent retries per
    // cluster, a limit of its own; lifted so that "no budget" means none.
    let unlimited = CircuitBreakers {
        max_retries: Some(1_000_000),
        ..CircuitBreakers::default()
    };
    let mut cluster = Cluster::new(CLUSTER, port);
    match guard {
        Guard::None => cluster = cluster.circuit_breakers(unlimited),
        Guard::Native => {
            cluster = cluster.circuit_breakers(CircuitBreakers {
                retry_budget: Some(RetryBudget {
                    budget_percent: 20.0,
                    min_retry_concurrency: 3,
                }),
                ..CircuitBreakers::default()
            });
        }
        Guard::Plugin(config) => {
            cluster = cluster.circuit_breakers(unlimited);
            listener = listener.filter(plugin(config));
        }
    }
    Bootstrap::new().listener(listener).cluster(cluster)
}

/// Starts `bootstrap` on two workers, so the plugin runs in two VMs that
/// share one budget.
pub fn start(bootstrap: &Bootstrap) -> Envoy {
    Envoy::start_with(bootstrap, &EnvoyOptions::default().concurrency(2)).unwrap()
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub requests: u64,
    pub ok: u64,
    pub statuses: Vec<u16>,
}

impl Outcome {
    /// Share of 2xx responses, in percent.
    pub fn success_percent(&self) -> f64 {
        100.0 * self.ok as f64 / self.requests.max(1) as f64
    }
}

/// Sends `total` GETs to `url` from `threads` clients at once.
pub fn load(url: &str, total: u64, threads: u64) -> Outcome {
    let next = AtomicU64::new(0);
    let statuses = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < total {
                    let status = Request::get(url)
                        .timeout(Duration::from_secs(60))
                        .send()
                        .map(|r| r.status)
                        .unwrap_or(0);
                    statuses.lock().unwrap().push(status);
                }
            });
        }
    });
    let statuses = statuses.into_inner().unwrap();
    Outcome {
        requests: statuses.len() as u64,
        ok: statuses.iter().filter(|s| (200..300).contains(*s)).count() as u64,
        statuses,
    }
}

/// A plugin counter from Envoy's admin stats (`wasmcustom.<name>`).
pub fn plugin_stat(envoy: &Envoy, name: &str) -> u64 {
    envoy
        .stat(&format!("wasmcustom.{name}"))
        .unwrap()
        .unwrap_or(0)
}
