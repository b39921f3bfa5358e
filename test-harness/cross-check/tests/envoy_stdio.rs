//! Issue 14, point 13: Envoy logs a plugin's WASI stdout at info and its
//! stderr at error, one line per write without the newline. The harness's
//! side is `proxy-wasm-harness`'s
//! `envoy_model::wasi_stdout_and_stderr_are_logged_as_envoy_logs_them`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use cross_check::{Scenario, UPSTREAM_CLUSTER, envoy_for};
use envoy_rig::Upstream;
use envoy_rig::client::Request;

#[test]
fn envoy_logs_stdout_at_info_and_stderr_at_error() {
    let scenario = Scenario::new("stdio", wasm_artifacts::HARNESS_TEST_PLUGIN)
        .plugin_name("test-plugin")
        .root_id("test-root")
        .vm_id("test-vm");
    let upstream = Upstream::start(UPSTREAM_CLUSTER).unwrap();
    let envoy = envoy_for(&scenario, &upstream).unwrap();
    let url = format!("{}/print", envoy.listener_url("ingress").unwrap());
    let response = Request::get(url)
        .header("x-test-op", "print hello stdout")
        .header("x-test-op", "eprint hello stderr")
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap();
    assert_eq!(response.status, 200);
    let log = envoy.log();
    let line = |text: &str| {
        log.lines()
            .find(|l| l.ends_with(&format!("test-plugin test-root test-vm: {text}")))
            .unwrap_or_else(|| panic!("no log line for {text:?}"))
            .to_string()
    };
    assert!(line("hello stdout").contains("[info][wasm]"));
    assert!(line("hello stderr").contains("[error][wasm]"));
}
