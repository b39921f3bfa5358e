//! A fault aimed by a request header, as in the classic dark-launch demo:
//! only `end-user: tester` is hit, in the harness and in a real Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod envoy_common;

use cross_check::{Step, cross_check};
use envoy_common::scenario;

const CONFIG: &str = r#"{
    "rules": [
        {
            "name": "tester-500",
            "match": [{"uri": {"prefix": "/image-analysis/"}, "headers": {"end-user": {"exact": "tester"}}}],
            "abort": {"httpStatus": 500, "percentage": {"value": 100}}
        },
        {
            "name": "tester-slow",
            "match": [{"uri": {"prefix": "/collector/"}, "headers": {"end-user": {"exact": "tester"}}}],
            "delay": {"fixedDelay": "30ms", "percentage": {"value": 100}}
        }
    ]
}"#;

#[test]
fn only_the_tester_is_hit() {
    let as_user = |path: &str, user: &str| Step::get(path).header("end-user", user);
    let untouched = |step: Step| {
        step.expect_status(200)
            .expect_upstream(true)
            .expect_response_header("x-fault-injected", None)
    };
    let s = scenario("end-user: tester", CONFIG)
        .step(
            as_user("/image-analysis/analyze", "tester")
                .expect_status(500)
                .expect_upstream(false)
                .expect_body("fault filter abort")
                .expect_response_header("x-fault-injected", Some("abort=500;rule=tester-500")),
        )
        .step(untouched(as_user("/image-analysis/analyze", "jason")))
        .step(untouched(Step::get("/image-analysis/analyze")))
        // Values are case-sensitive; `exact` is not a prefix.
        .step(untouched(as_user("/image-analysis/analyze", "Tester")))
        .step(untouched(as_user("/image-analysis/analyze", "tester2")))
        .step(
            as_user("/collector/frames", "tester")
                .expect_status(200)
                .expect_upstream(true)
                .expect_response_header("x-fault-injected", Some("delay=30ms;rule=tester-slow")),
        )
        .step(untouched(as_user("/collector/frames", "jason")))
        .expect_metric("fault_injector.rule.tester-500.aborts_injected", 1)
        .expect_metric("fault_injector.rule.tester-slow.delays_injected", 1);
    cross_check(&s).unwrap();
}
