//! The harness's model of Envoy's process and connection manager (issue 14):
//! the parts a cross-check cannot show directly (cross-check's
//! `envoy_behaviours` pins the values against Envoy).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{ops, plugin};
use proxy_wasm_harness::{BodyEnd, Harness, HarnessError, Request, Response};

fn random_of(harness: &mut Harness, worker: proxy_wasm_harness::WorkerId) -> String {
    let mut seen = None;
    harness
        .exchange(worker, ops("/", &["random"]), |upstream| {
            seen = upstream.header("x-random").map(str::to_owned);
            Response::ok()
        })
        .unwrap();
    seen.unwrap()
}

#[test]
fn each_vm_gets_its_own_random_seed_derived_from_the_plugins() {
    let seeded = plugin().random_seed(42);
    let mut harness = Harness::new();
    let workers = harness.start_workers(&seeded, 2).unwrap();
    let first = random_of(&mut harness, workers[0]);
    let second = random_of(&mut harness, workers[1]);
    assert_ne!(first, second, "two workers drew the same randomness");
    // The same test seed gives the same values again.
    let mut again = Harness::new();
    let workers = again.start_workers(&seeded, 2).unwrap();
    assert_eq!(random_of(&mut again, workers[0]), first);
}

#[test]
fn the_main_thread_vm_ticks_but_serves_no_streams() {
    let mut harness = Harness::new();
    let workers = harness
        .start_workers(&plugin().plugin_config(r#"{"tickMs": 10}"#), 1)
        .unwrap();
    let main = harness.main_thread().unwrap();
    assert_ne!(main, workers[0]);
    assert!(matches!(
        harness.new_stream(main),
        Err(HarnessError::MainThreadServesNoStreams(_))
    ));
    harness.advance(Duration::from_millis(100)).unwrap();
    // Ten ticks on each of two root contexts; three VMs were configured.
    assert_eq!(harness.counter("test_plugin.ticks"), Some(20));
    assert_eq!(harness.counter("test_plugin.configures"), Some(3));
    // The old model, for tests that want only workers.
    let mut only = Harness::new();
    only.start_workers_only(&plugin().plugin_config(r#"{"tickMs": 10}"#), 1)
        .unwrap();
    assert_eq!(only.main_thread(), None);
    only.advance(Duration::from_millis(100)).unwrap();
    assert_eq!(only.counter("test_plugin.ticks"), Some(10));
}

#[test]
fn the_one_callback_body_form_is_available() {
    let mut harness = Harness::new();
    let worker = harness.start(&plugin()).unwrap();
    harness.body_end(BodyEnd::WithLastChunk);
    let request = Request::post("/", "hello").header("x-test-op", "body-calls");
    let exchange = harness
        .exchange(worker, request, |_| Response::ok())
        .unwrap();
    assert_eq!(
        exchange.response_header("x-request-body-calls"),
        Some("5/true")
    );
}

#[test]
fn connection_manager_headers_are_seeded_and_can_be_turned_off() {
    let names = |harness: &mut Harness, worker| {
        let mut seen = (None, None);
        harness
            .exchange(worker, ops("/", &["request-header-names"]), |upstream| {
                seen = (
                    upstream.header("x-request-header-names").map(str::to_owned),
                    upstream.header("x-request-id").map(str::to_owned),
                );
                Response::ok()
            })
            .unwrap();
        seen
    };
    let mut harness = Harness::new();
    let worker = harness.start(&plugin()).unwrap();
    let (listed, id) = names(&mut harness, worker);
    assert_eq!(
        listed.as_deref(),
        Some(":authority,:path,:method,:scheme,x-forwarded-proto,x-request-id,x-test-plugin")
    );
    let mut again = Harness::new();
    let worker_again = again.start(&plugin()).unwrap();
    assert_eq!(names(&mut again, worker_again).1, id, "ids are seeded");
    harness.connection_manager_headers(false);
    let (listed, id) = names(&mut harness, worker);
    assert_eq!(
        listed.as_deref(),
        Some(":authority,:path,:method,:scheme,x-test-plugin")
    );
    assert_eq!(id, None);
}

#[test]
fn wasi_stdout_and_stderr_are_logged_as_envoy_logs_them() {
    let mut harness = Harness::new();
    let worker = harness.start(&plugin()).unwrap();
    harness
        .exchange(
            worker,
            ops("/", &["print hello stdout", "eprint hello stderr"]),
            |_| Response::ok(),
        )
        .unwrap();
    use proxy_wasm_harness::LogLevel;
    assert!(
        harness
            .logs_at(worker, LogLevel::Info)
            .unwrap()
            .contains(&"hello stdout")
    );
    assert!(
        harness
            .logs_at(worker, LogLevel::Error)
            .unwrap()
            .contains(&"hello stderr")
    );
    // Still readable as written.
    let (out, err) = harness.stdio(worker).unwrap();
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("hello stdout\n", "hello stderr\n")
    );
}
