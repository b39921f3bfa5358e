//! Shared data and queues across worker VMs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{ops, plugin};
use proxy_wasm_harness::{Harness, LogLevel, Response};

#[test]
fn shared_counter_is_exact_across_workers() {
    let mut harness = Harness::new();
    let workers = harness
        .start_workers(&plugin().vm_id("shared-vm"), 4)
        .unwrap();
    let mut seen = Vec::new();
    for round in 0..5 {
        for worker in &workers {
            harness
                .exchange(*worker, ops("/", &["shared-incr hits"]), |upstream| {
                    seen.push(upstream.header("x-shared-hits").unwrap().to_string());
                    Response::ok()
                })
                .unwrap();
        }
        let _ = round;
    }
    let expected: Vec<String> = (1..=20).map(|n| n.to_string()).collect();
    assert_eq!(seen, expected);
    assert_eq!(harness.shared_data("shared-vm", "hits").unwrap().0, b"20");
    // Another VM id sees nothing.
    assert_eq!(harness.shared_data("other", "hits"), None);
}

#[test]
fn enqueue_on_one_worker_notifies_the_owner() {
    let mut harness = Harness::new();
    let config = r#"{"queue": "events"}"#;
    let owner = harness
        .start(&plugin().vm_id("q").plugin_config(config))
        .unwrap();
    let other = harness.start(&plugin().vm_id("q")).unwrap();
    harness
        .exchange(
            other,
            ops("/", &["enqueue events first", "enqueue events second"]),
            |upstream| {
                assert_eq!(upstream.header("x-enqueue"), Some("ok"));
                Response::ok()
            },
        )
        .unwrap();
    let items: Vec<_> = harness
        .logs_at(owner, LogLevel::Info)
        .unwrap()
        .into_iter()
        .filter(|l| l.starts_with("queue item"))
        .collect();
    assert_eq!(items, vec!["queue item: first", "queue item: second"]);
    assert_eq!(harness.counter("test_plugin.queue_items"), Some(2));
}

#[test]
fn resolving_an_unknown_queue_finds_nothing() {
    let mut harness = Harness::new();
    let worker = harness.start(&plugin()).unwrap();
    harness
        .exchange(worker, ops("/", &["enqueue nowhere x"]), |upstream| {
            assert_eq!(upstream.header("x-enqueue"), Some("no-queue"));
            Response::ok()
        })
        .unwrap();
}
