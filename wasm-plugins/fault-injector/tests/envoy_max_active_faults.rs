//! `maxActiveFaults` in a real Envoy with two workers (`--concurrency 2`):
//! each worker runs its own VM, and the limit holds across both through
//! shared data. Requests held open on raw connections keep faults in
//! progress for as long as the test needs, so nothing depends on timing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod envoy_common;

use envoy_common::{HeldRequest, Rig};

const WORKERS: u32 = 2;

/// `/hold` is delayed for a minute (the test lets go long before); `/short`
/// for 50 ms. Both count against the limit of 2.
const CONFIG: &str = r#"{
    "maxActiveFaults": 2,
    "rules": [
        {"name": "short", "match": [{"uri": {"prefix": "/short"}}], "delay": {"fixedDelay": "50ms", "percentage": {"value": 100}}},
        {"name": "hold", "match": [{"uri": {"prefix": "/hold"}}], "delay": {"fixedDelay": "60s", "percentage": {"value": 100}}}
    ]
}"#;

/// Opens held requests until each worker holds exactly one fault; returns
/// them. A request that lands on a worker already holding one is let go
/// (which also shows a disconnect gives its slot back).
fn one_hold_per_worker(rig: &Rig) -> Vec<HeldRequest> {
    let mut held: Vec<Option<HeldRequest>> = (0..WORKERS).map(|_| None).collect();
    for attempt in 1..=64 {
        if held.iter().all(Option::is_some) {
            break;
        }
        let holding = held.iter().filter(|h| h.is_some()).count() as u64;
        let before = rig.active_connections_per_worker(WORKERS);
        let request = HeldRequest::send(rig, "/hold");
        rig.wait_until("the held request is parked", |r| {
            r.metric("fault_injector.delays_injected") == attempt
                && r.active_connections_per_worker(WORKERS).iter().sum::<u64>()
                    == before.iter().sum::<u64>() + 1
        });
        let after = rig.active_connections_per_worker(WORKERS);
        let worker = (0..WORKERS as usize)
            .find(|w| after[*w] > before[*w])
            .expect("one worker took the connection");
        if held[worker].is_none() {
            held[worker] = Some(request);
        } else {
            request.disconnect();
            rig.wait_until("the extra hold gives its slot back and is closed", |r| {
                r.metric("fault_injector.active_faults") == holding
                    && r.active_connections_per_worker(WORKERS).iter().sum::<u64>() == holding
            });
        }
    }
    held.into_iter()
        .map(|h| h.expect("both workers got a connection within 64 tries"))
        .collect()
}

#[test]
fn the_limit_holds_across_two_workers() {
    let rig = Rig::start(CONFIG, WORKERS);
    let held = one_hold_per_worker(&rig);
    // One fault on each worker's VM: 2 in the shared count, the limit.
    assert_eq!(rig.metric("fault_injector.active_faults"), 2);
    let overflow_before = rig.metric("fault_injector.faults_overflow");

    // Concurrent requests, on threads: whichever worker takes them, they
    // find the limit reached and pass untouched.
    let url = rig.url("/short");
    let answers: Vec<_> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| envoy_rig::client::get(&url).unwrap()))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for answer in &answers {
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("x-fault-injected"),
            None,
            "over the limit: no fault"
        );
    }
    assert_eq!(
        rig.metric("fault_injector.faults_overflow"),
        overflow_before + 6
    );
    assert_eq!(rig.metric("fault_injector.active_faults"), 2);

    // Clients that go away during their delay give their slots back.
    for request in held {
        request.disconnect();
    }
    rig.wait_until("both slots are given back", |r| {
        r.metric("fault_injector.active_faults") == 0
    });
    for _ in 0..2 {
        let answer = rig.get("/short");
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("x-fault-injected"),
            Some("delay=50ms;rule=short")
        );
    }
    assert_eq!(
        rig.metric("fault_injector.faults_overflow"),
        overflow_before + 6
    );
    assert_eq!(
        rig.upstream.request_count(),
        8,
        "held requests never reached it"
    );
}
