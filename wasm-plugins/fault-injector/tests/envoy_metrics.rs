//! Metrics: `fault_injector.*` counters in the harness and as
//! `wasmcustom.fault_injector.*` in a real Envoy, totals and per rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod envoy_common;

use cross_check::{Step, cross_check};
use envoy_common::{Rig, scenario};

const CONFIG: &str = r#"{
    "headerControl": {},
    "rules": [
        {"name": "scan-500", "match": [{"uri": {"prefix": "/scan"}}], "abort": {"httpStatus": 500, "percentage": {"value": 100}}},
        {"name": "slow", "match": [{"uri": {"prefix": "/slow"}}], "delay": {"fixedDelay": "5ms", "percentage": {"value": 100}}},
        {"match": [{"uri": {"prefix": "/both"}}],
         "delay": {"fixedDelay": "5ms", "percentage": {"value": 100}}, "abort": {"httpStatus": 503, "percentage": {"value": 100}}}
    ]
}"#;

#[test]
fn counters_per_rule_and_in_total() {
    let mut s = scenario("metrics", CONFIG);
    for _ in 0..3 {
        s = s.step(Step::get("/scan").expect_status(500));
    }
    for _ in 0..2 {
        s = s.step(Step::get("/slow").expect_status(200));
    }
    s = s
        .step(Step::get("/both").expect_status(503))
        .step(Step::get("/other").expect_status(200))
        .step(
            Step::get("/other")
                .header("x-envoy-fault-abort-request", "429")
                .expect_status(429),
        );
    let s = s
        .expect_metric("fault_injector.aborts_injected", 5)
        .expect_metric("fault_injector.delays_injected", 3)
        .expect_metric("fault_injector.faults_overflow", 0)
        .expect_metric("fault_injector.rule.scan-500.aborts_injected", 3)
        .expect_metric("fault_injector.rule.scan-500.delays_injected", 0)
        .expect_metric("fault_injector.rule.slow.delays_injected", 2)
        .expect_metric("fault_injector.rule.slow.aborts_injected", 0)
        .expect_metric("fault_injector.rule.2.delays_injected", 1)
        .expect_metric("fault_injector.rule.2.aborts_injected", 1)
        .expect_metric("fault_injector.rule.header-control.aborts_injected", 1)
        .expect_metric("fault_injector.rule.header-control.delays_injected", 0);
    cross_check(&s).unwrap();
}

#[test]
fn every_metric_is_defined_at_start_and_the_gauge_returns_to_zero() {
    // Defined in on_configure, so dashboards see zeros before any fault.
    let rig = Rig::start(CONFIG, 1);
    let stats = rig.envoy.stats().unwrap();
    for name in [
        "aborts_injected",
        "delays_injected",
        "faults_overflow",
        "active_faults",
        "rule.scan-500.aborts_injected",
        "rule.slow.delays_injected",
        "rule.2.aborts_injected",
        "rule.header-control.delays_injected",
    ] {
        let full = format!("wasmcustom.fault_injector.{name}");
        assert_eq!(stats.get(&full), Some(&0), "{full}");
    }
    assert_eq!(rig.get("/both").status, 503);
    assert_eq!(rig.get("/slow").status, 200);
    rig.wait_until("active_faults back to 0", |r| {
        r.metric("fault_injector.active_faults") == 0
    });
    assert_eq!(rig.metric("fault_injector.aborts_injected"), 1);
    assert_eq!(rig.metric("fault_injector.delays_injected"), 2);
}
