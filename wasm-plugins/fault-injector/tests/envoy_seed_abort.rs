//! The seed's `fault-injection-500` in the harness and in a real Envoy:
//! half of the requests to image analysis answered with HTTP 500 by the
//! proxy, none of the others. Sampling hashes `x-request-id`, so both hosts
//! (and this test) know in advance exactly which requests abort.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod envoy_common;

use cross_check::{Step, cross_check};
use envoy_common::{Rig, aborts, scenario};
use envoy_rig::client::Request;

/// `istio/scenarios/fault-injection-500.yaml` as plugin configuration: the
/// VirtualService's host becomes a path prefix, since one Envoy stands in
/// for the whole mesh here.
fn seed_config(status: u16, percent: f64) -> String {
    format!(
        r#"{{
            "requestIdHeader": "x-request-id",
            "rules": [{{
                "name": "image-analysis-{status}",
                "match": [{{"uri": {{"prefix": "/image-analysis/"}}}}],
                "abort": {{"httpStatus": {status}, "percentage": {{"value": {percent}}}}}
            }}]
        }}"#
    )
}

/// `requests` steps to image analysis and two to another service, each with
/// its own request id; returns the scenario and how many abort.
fn seed_scenario(status: u16, percent: f64, requests: usize) -> (cross_check::Scenario, u64) {
    let rule = format!("image-analysis-{status}");
    let mut s = scenario(
        &format!("fault-injection-{status}"),
        &seed_config(status, percent),
    );
    let mut aborted = 0;
    for n in 0..requests {
        let id = format!("3f1c8a52-seed-{status}-{n:04}");
        let step =
            Step::get(&format!("/image-analysis/analyze?frame={n}")).header("x-request-id", &id);
        let step = if aborts(&id, percent) {
            aborted += 1;
            step.expect_status(status)
                .expect_upstream(false)
                .expect_body("fault filter abort")
                .expect_response_header(
                    "x-fault-injected",
                    Some(&format!("abort={status};rule={rule}")),
                )
        } else {
            step.expect_status(200)
                .expect_upstream(true)
                // The client's id reaches the plugin (and the upstream) unchanged.
                .expect_upstream_header("x-request-id", Some(&id))
                .expect_response_header("x-fault-injected", None)
        };
        s = s.step(step);
    }
    for n in 0..2 {
        s = s.step(
            Step::get("/collector/frames")
                .header("x-request-id", &format!("other-service-{n}"))
                .expect_status(200)
                .expect_upstream(true)
                .expect_response_header("x-fault-injected", None),
        );
    }
    let s = s
        .expect_metric("fault_injector.aborts_injected", aborted)
        .expect_metric(
            &format!("fault_injector.rule.{rule}.aborts_injected"),
            aborted,
        )
        .expect_metric("fault_injector.delays_injected", 0)
        .expect_metric("fault_injector.faults_overflow", 0);
    (s, aborted)
}

#[test]
fn fault_injection_500_aborts_exactly_the_predicted_half() {
    let (s, aborted) = seed_scenario(500, 50.0, 24);
    // The ids give a real mix, so both outcomes are cross-checked.
    assert!((4..=20).contains(&aborted), "{aborted} of 24");
    cross_check(&s).unwrap();
}

#[test]
fn a_503_variant_at_a_quarter() {
    let (s, aborted) = seed_scenario(503, 25.0, 16);
    assert!((1..=12).contains(&aborted), "{aborted} of 16");
    cross_check(&s).unwrap();
}

#[test]
fn the_same_request_id_gets_the_same_answer_every_time_in_envoy() {
    // What makes the decision the same at every hop of a mesh: Envoy keeps a
    // client's x-request-id, so repeating an id repeats the decision.
    let rig = Rig::start(&seed_config(500, 50.0), 1);
    let hit = (0..)
        .map(|n| format!("hit-{n}"))
        .find(|id| aborts(id, 50.0))
        .unwrap();
    let miss = (0..)
        .map(|n| format!("miss-{n}"))
        .find(|id| !aborts(id, 50.0))
        .unwrap();
    for _ in 0..5 {
        let status = |id: &str| {
            Request::get(rig.url("/image-analysis/analyze"))
                .header("x-request-id", id)
                .send()
                .unwrap()
                .status
        };
        assert_eq!(status(&hit), 500);
        assert_eq!(status(&miss), 200);
    }
    assert_eq!(rig.metric("fault_injector.aborts_injected"), 5);
    // Without an id, Envoy makes one up (a UUID) before the filters run:
    // such requests are sampled by a random id, not repeatably.
    let mut made_up = Vec::new();
    for _attempt in 0..64 {
        if made_up.len() == 2 {
            break;
        }
        if rig.get("/image-analysis/analyze").status == 200 {
            let received = rig.upstream.received();
            made_up.push(
                received
                    .last()
                    .unwrap()
                    .header("x-request-id")
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    assert_eq!(made_up.len(), 2, "half of the requests pass");
    assert_ne!(made_up[0], made_up[1]);
    assert!(
        made_up
            .iter()
            .all(|id| id.len() == 36 && id.matches('-').count() == 4),
        "{made_up:?}"
    );
}
