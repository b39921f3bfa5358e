//! Harness benchmark: full request/response exchanges per second through the
//! trivial test plugin (single thread), and module load + instantiation time,
//! cold (compile) and cached. Prints one Markdown table; run with
//! `cargo bench -p proxy-wasm-harness --bench harness` (or `make bench`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code

use std::time::{Duration, Instant};

use proxy_wasm_harness::{Harness, Plugin, Request, Response};

const EXCHANGES: usize = 20_000;
const LOADS: usize = 20;
const ROUNDS: usize = 5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `envoy_model`: the plugin started as `start_workers(plugin, 1)` (a
/// configuration VM, the main thread's VM and one worker) instead of one
/// lone VM (`start`), to show what the extra VM costs a test that does not
/// tick.
fn exchanges_per_second(plugin: &Plugin, envoy_model: bool) -> f64 {
    let mut harness = Harness::new();
    let worker = if envoy_model {
        harness.start_workers(plugin, 1).unwrap()[0]
    } else {
        harness.start(plugin).unwrap()
    };
    let started = Instant::now();
    for _ in 0..EXCHANGES {
        let exchange = harness
            .exchange(worker, Request::get("/bench"), |_| Response::ok())
            .unwrap();
        assert_eq!(exchange.status(), Some(200));
    }
    EXCHANGES as f64 / started.elapsed().as_secs_f64()
}

fn load_and_start(bytes: &[u8], cached: bool) -> Duration {
    let started = Instant::now();
    let plugin = if cached {
        Plugin::from_bytes(bytes).unwrap()
    } else {
        Plugin::from_bytes_uncached(bytes).unwrap()
    };
    let mut harness = Harness::new();
    harness.start(&plugin).unwrap();
    started.elapsed()
}

fn main() {
    let bytes = std::fs::read(wasm_artifacts::HARNESS_TEST_PLUGIN).unwrap();
    let plugin = Plugin::from_bytes(&bytes).unwrap();
    // Alternate the measurements round by round so drift hits both alike.
    let mut rates = Vec::new();
    let mut model_rates = Vec::new();
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..ROUNDS {
        rates.push(exchanges_per_second(&plugin, false));
        model_rates.push(exchanges_per_second(&plugin, true));
        cold.extend((0..LOADS / ROUNDS).map(|_| load_and_start(&bytes, false)));
        cached.extend((0..LOADS / ROUNDS).map(|_| load_and_start(&bytes, true)));
    }
    rates.sort_by(f64::total_cmp);
    let rate = rates[rates.len() / 2];
    let (cold, cached) = (median(cold), median(cached));
    println!("| measurement | median of {ROUNDS} rounds |");
    println!("|---|---|");
    println!(
        "| exchanges/s through `harness_test_plugin` ({} B), 1 thread | {rate:.0} (min {:.0}, max {:.0}) |",
        bytes.len(),
        rates[0],
        rates[rates.len() - 1]
    );
    println!("| per exchange | {:.1} µs |", 1e6 / rate);
    model_rates.sort_by(f64::total_cmp);
    let model_rate = model_rates[model_rates.len() / 2];
    println!(
        "| exchanges/s, `start_workers(plugin, 1)` (configuration, main-thread and worker VMs) | {model_rate:.0} (min {:.0}, max {:.0}); {:.2}x the lone VM |",
        model_rates[0],
        model_rates[model_rates.len() - 1],
        model_rate / rate
    );
    println!(
        "| load + instantiate + start, cold (compile) | {:.1} ms |",
        cold.as_secs_f64() * 1e3
    );
    println!(
        "| load + instantiate + start, cached module | {:.3} ms |",
        cached.as_secs_f64() * 1e3
    );
    println!(
        "| cold / cached | {:.0}x |",
        cold.as_secs_f64() / cached.as_secs_f64()
    );
}
