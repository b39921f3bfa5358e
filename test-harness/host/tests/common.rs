//! Shared set-up for the harness tests: the test plugin, started once per test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use proxy_wasm_harness::{Harness, Plugin, Request, WorkerId};

pub fn plugin() -> Plugin {
    Plugin::load(wasm_artifacts::HARNESS_TEST_PLUGIN).expect("test plugin loads")
}

pub fn start(config: &str) -> (Harness, WorkerId) {
    let mut harness = Harness::new();
    let worker = harness
        .start(&plugin().plugin_config(config))
        .expect("plugin starts");
    (harness, worker)
}

/// A GET with one `x-test-op` header per operation.
pub fn ops(path: &str, ops: &[&str]) -> Request {
    ops.iter()
        .fold(Request::get(path), |r, op| r.header("x-test-op", op))
}
