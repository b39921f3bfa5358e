//! Shared set-up for the fault injector's harness tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, SystemTime};

use proxy_wasm_harness::{Exchange, Harness, Plugin, Request, Response, WorkerId};

/// The shipped plugin with `config` as its plugin configuration.
pub fn plugin(config: &str) -> Plugin {
    Plugin::load(wasm_artifacts::FAULT_INJECTOR)
        .expect("fault injector loads")
        .plugin_config(config)
}

/// One worker running `config`.
pub fn start(config: &str) -> (Harness, WorkerId) {
    start_plugin(plugin(config))
}

pub fn start_plugin(plugin: Plugin) -> (Harness, WorkerId) {
    let mut harness = Harness::new();
    let worker = harness.start(&plugin).expect("plugin starts");
    (harness, worker)
}

/// Sends `request`; the upstream answers 200 `upstream`.
pub fn send(harness: &mut Harness, worker: WorkerId, request: Request) -> Exchange {
    harness
        .exchange(worker, request, |_| Response::ok().body("upstream"))
        .expect("exchange completes")
}

/// Whether the request reached the upstream.
pub fn reached_upstream(exchange: &Exchange) -> bool {
    exchange.upstream_request.is_some()
}

/// Virtual time elapsed since `before`.
pub fn since(harness: &Harness, before: SystemTime) -> Duration {
    harness
        .now()
        .duration_since(before)
        .expect("clock moves forward")
}
