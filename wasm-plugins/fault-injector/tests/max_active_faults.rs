//! `maxActiveFaults`: an exact limit on faults in progress across every
//! worker VM, kept in shared data with compare-and-swap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{plugin, send};
use proxy_wasm_harness::{Action, Flow, Harness, StreamId, WorkerId};

const VM_ID: &str = "fault-vm";
const KEY: &str = "fault_injector.active_faults.";

const DELAY_LIMIT_2: &str = r#"{"maxActiveFaults": 2, "rules": [{"delay": {"fixedDelay": "1s", "percentage": {"value": 100}}}]}"#;

fn workers(config: &str, count: usize) -> (Harness, Vec<WorkerId>) {
    let mut h = Harness::new();
    let workers = h
        .start_workers(&plugin(config).vm_id(VM_ID), count)
        .unwrap();
    (h, workers)
}

fn open(h: &mut Harness, worker: WorkerId) -> (StreamId, Action) {
    let s = h.new_stream(worker).unwrap();
    let action = h
        .request_headers(s, [(":method", "GET"), (":path", "/")], true)
        .unwrap();
    (s, action)
}

fn active_in_shared_data(h: &Harness) -> String {
    String::from_utf8(h.shared_data(VM_ID, KEY).unwrap().0).unwrap()
}

#[test]
fn the_limit_holds_across_workers() {
    let (mut h, w) = workers(DELAY_LIMIT_2, 3);
    assert_eq!(open(&mut h, w[0]).1, Action::Pause);
    assert_eq!(open(&mut h, w[1]).1, Action::Pause);
    let (third, action) = open(&mut h, w[2]);
    assert_eq!(action, Action::Continue, "over the limit: no fault");
    assert_eq!(h.stream(third).unwrap().request_flow(), Flow::Flowing);
    assert_eq!(active_in_shared_data(&h), "2");
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(2));
    assert_eq!(h.counter("fault_injector.faults_overflow"), Some(1));
    assert_eq!(h.counter("fault_injector.delays_injected"), Some(2));
}

#[test]
fn slots_come_back_when_delays_end() {
    let (mut h, w) = workers(DELAY_LIMIT_2, 2);
    open(&mut h, w[0]);
    open(&mut h, w[1]);
    h.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(active_in_shared_data(&h), "0");
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(0));
    assert_eq!(open(&mut h, w[0]).1, Action::Pause);
    assert_eq!(open(&mut h, w[1]).1, Action::Pause);
    assert_eq!(open(&mut h, w[1]).1, Action::Continue);
    assert_eq!(h.counter("fault_injector.faults_overflow"), Some(1));
}

#[test]
fn the_limit_is_exact_under_interleaving() {
    // Four workers take turns; at most 3 faults are ever in progress.
    let (mut h, w) = workers(
        r#"{"maxActiveFaults": 3, "rules": [{"delay": {"fixedDelay": "10ms", "percentage": {"value": 100}}}]}"#,
        4,
    );
    let mut injected = 0;
    for round in 0..40u64 {
        let worker = w[(round % 4) as usize];
        if open(&mut h, worker).1 == Action::Pause {
            injected += 1;
        }
        let active: u64 = active_in_shared_data(&h).parse().unwrap();
        assert!(active <= 3, "round {round}: {active}");
        h.advance(Duration::from_millis(3)).unwrap();
    }
    assert_eq!(h.counter("fault_injector.delays_injected"), Some(injected));
    assert_eq!(
        h.counter("fault_injector.faults_overflow"),
        Some(40 - injected)
    );
    h.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(active_in_shared_data(&h), "0");
}

#[test]
fn aborts_release_their_slot_when_the_stream_ends() {
    let (mut h, w) = workers(
        r#"{"maxActiveFaults": 1, "rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#,
        2,
    );
    for n in 0..10 {
        let exchange = send(&mut h, w[n % 2], proxy_wasm_harness::Request::get("/"));
        assert_eq!(exchange.status(), Some(503));
    }
    assert_eq!(active_in_shared_data(&h), "0");
    assert_eq!(h.counter("fault_injector.faults_overflow"), Some(0));
}

#[test]
fn slots_taken_by_another_proxy_count() {
    let (mut h, w) = workers(DELAY_LIMIT_2, 1);
    // Another VM of the same vm_id already holds both slots.
    h.set_shared_data(VM_ID, KEY, b"2");
    assert_eq!(open(&mut h, w[0]).1, Action::Continue);
    assert_eq!(h.counter("fault_injector.faults_overflow"), Some(1));
}

#[test]
fn without_a_limit_nothing_is_written_to_shared_data() {
    let (mut h, w) = workers(
        r#"{"rules": [{"delay": {"fixedDelay": "1s", "percentage": {"value": 100}}}]}"#,
        2,
    );
    for _ in 0..5 {
        assert_eq!(open(&mut h, w[0]).1, Action::Pause);
    }
    assert_eq!(h.shared_data(VM_ID, KEY), None);
    assert_eq!(h.gauge("fault_injector.active_faults"), Some(5));
}

/// Envoy's fault filter overflows every fault at `max_active_faults: 0`
/// (`active_faults >= max`): the kill switch.
#[test]
fn zero_max_active_faults_overflows_every_fault() {
    let (mut h, w) = workers(
        r#"{"maxActiveFaults": 0, "rules": [{"delay": {"fixedDelay": "1s", "percentage": {"value": 100}}}]}"#,
        2,
    );
    for worker in [w[0], w[1], w[0]] {
        let (stream, action) = open(&mut h, worker);
        assert_eq!(action, Action::Continue);
        assert_eq!(h.stream(stream).unwrap().request_flow(), Flow::Flowing);
    }
    assert_eq!(h.counter("fault_injector.faults_overflow"), Some(3));
    assert_eq!(h.counter("fault_injector.delays_injected").unwrap_or(0), 0);
    assert_eq!(active_in_shared_data(&h), "0");
}
