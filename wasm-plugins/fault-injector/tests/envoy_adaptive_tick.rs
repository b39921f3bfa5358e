//! The adaptive tick in a real Envoy: setting a new tick period restarts
//! Envoy's timer from now. A 200 ms delay that arrives while the tick is
//! armed for 60 s (the longest period, for a far-off delay) ends after about
//! 200 ms, not at the next 60 s tick.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod envoy_common;

use std::time::Duration;

use envoy_common::{HeldRequest, Rig, timed};
use envoy_rig::client::Request;

const CONFIG: &str = r#"{
    "rules": [
        {"name": "far", "match": [{"uri": {"prefix": "/far"}}], "delay": {"fixedDelay": "5m", "percentage": {"value": 100}}},
        {"name": "near", "match": [{"uri": {"prefix": "/near"}}], "delay": {"fixedDelay": "200ms", "percentage": {"value": 100}}}
    ]
}"#;

const NEAR: Duration = Duration::from_millis(200);

/// The tick's longest period (the plugin's `MAX_TICK`).
const MAX_TICK: Duration = Duration::from_secs(60);

#[test]
fn a_short_delay_restarts_a_long_tick() {
    let rig = Rig::start(CONFIG, 1);
    // Arms the tick for 60 s.
    let far = HeldRequest::send(&rig, "/far");
    rig.wait_until("the far delay is parked", |r| {
        r.metric("fault_injector.rule.far.delays_injected") == 1
    });
    // Twice: the second comes after the tick was re-armed for the far delay.
    for _ in 0..2 {
        let request = Request::get(rig.url("/near")).timeout(MAX_TICK + Duration::from_secs(15));
        let (response, elapsed) = timed(&request);
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("x-fault-injected"),
            Some("delay=200ms;rule=near")
        );
        assert!(elapsed >= NEAR, "{elapsed:?}");
        // Not a speed check: anything short of the 60 s tick shows the timer
        // was restarted; half of it leaves room for any machine load.
        assert!(
            elapsed < MAX_TICK / 2,
            "waited for the old tick: {elapsed:?}"
        );
    }
    assert_eq!(
        rig.metric("fault_injector.active_faults"),
        1,
        "far is still parked"
    );
    far.disconnect();
    rig.wait_until("the far delay is released", |r| {
        r.metric("fault_injector.active_faults") == 0
    });
}
