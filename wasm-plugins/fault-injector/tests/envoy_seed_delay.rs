//! The seed's `fault-injection-delay10` (every request to image analysis
//! held for 10 s), scaled down to 200 ms, in the harness and in a real Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod envoy_common;

use std::time::Duration;

use cross_check::{Step, cross_check};
use envoy_common::{Rig, scenario, timed};
use envoy_rig::client::Request;

const DELAY: Duration = Duration::from_millis(200);

/// `istio/scenarios/fault-injection-delay10.yaml` as plugin configuration,
/// with 200 ms for 10 s.
const CONFIG: &str = r#"{
    "rules": [{
        "name": "image-analysis-delay",
        "match": [{"uri": {"prefix": "/image-analysis/"}}],
        "delay": {"fixedDelay": "200ms", "percentage": {"value": 100}}
    }]
}"#;

const REPORT: &str = "delay=200ms;rule=image-analysis-delay";

#[test]
fn fault_injection_delay10_scaled_down() {
    let delayed = |path: &str| {
        Step::get(path)
            .expect_status(200)
            .expect_upstream(true)
            .expect_response_header("x-fault-injected", Some(REPORT))
            .expect_response_header("x-upstream", Some("upstream"))
    };
    let s = scenario("fault-injection-delay10 (200 ms)", CONFIG)
        .step(delayed("/image-analysis/analyze?frame=1"))
        .step(delayed("/image-analysis/analyze?frame=2").body("frame bytes"))
        .step(
            delayed("/image-analysis/health")
                .upstream_status(503)
                .expect_status(503),
        )
        .step(
            Step::get("/collector/frames")
                .expect_status(200)
                .expect_response_header("x-fault-injected", None),
        )
        .expect_metric("fault_injector.delays_injected", 3)
        .expect_metric(
            "fault_injector.rule.image-analysis-delay.delays_injected",
            3,
        )
        .expect_metric("fault_injector.aborts_injected", 0);
    cross_check(&s).unwrap();
}

#[test]
fn the_request_succeeds_after_the_delay_never_before_it() {
    // Elapsed time is only bounded below: a delay cannot end early, however
    // busy the machine is.
    let rig = Rig::start(CONFIG, 1);
    for n in 0..3 {
        let request = Request::post(
            rig.url(&format!("/image-analysis/analyze?frame={n}")),
            "frame bytes",
        );
        let (response, elapsed) = timed(&request);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-fault-injected"), Some(REPORT));
        assert!(
            elapsed >= DELAY,
            "request {n} took {elapsed:?}, less than {DELAY:?}"
        );
        // The body was held during the delay and then delivered whole.
        let received = rig.upstream.received();
        assert_eq!(received.last().unwrap().body, "frame bytes");
    }
    assert_eq!(rig.upstream.request_count(), 3);
    assert_eq!(rig.metric("fault_injector.delays_injected"), 3);
    rig.wait_until("no fault is active once the delays are over", |r| {
        r.metric("fault_injector.active_faults") == 0
    });
}
