//! The response header that reports an injected fault, in the harness and
//! in a real Envoy: on local replies (aborts), on the upstream's response
//! (delays), after a delay then an abort, under a configured name, and never
//! on untouched requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod envoy_common;

use cross_check::{Step, cross_check};
use envoy_common::scenario;

fn config(response_header: Option<&str>) -> String {
    let header = response_header.map_or(String::new(), |name| {
        format!(r#""responseHeader": "{name}","#)
    });
    format!(
        r#"{{{header}
            "rules": [
                {{"name": "both", "match": [{{"uri": {{"prefix": "/both"}}}}],
                  "delay": {{"fixedDelay": "20ms", "percentage": {{"value": 100}}}}, "abort": {{"httpStatus": 504, "percentage": {{"value": 100}}}}}},
                {{"name": "slow", "match": [{{"uri": {{"prefix": "/slow"}}}}],
                  "delay": {{"fixedDelay": "10ms", "percentage": {{"value": 100}}}}}},
                {{"match": [{{"uri": {{"prefix": "/teapot"}}}}],
                  "abort": {{"httpStatus": 418, "body": "{{}}",
                             "headers": {{"content-type": "application/json", "retry-after": "1"}}, "percentage": {{"value": 100}}}}}}
            ]
        }}"#
    )
}

fn steps(name: &str) -> Vec<Step> {
    vec![
        Step::get("/both")
            .expect_status(504)
            .expect_upstream(false)
            .expect_body("fault filter abort")
            .expect_response_header(name, Some("delay=20ms,abort=504;rule=both")),
        Step::get("/slow")
            .expect_status(200)
            .expect_upstream(true)
            .expect_response_header(name, Some("delay=10ms;rule=slow")),
        // The upstream's own error still carries the report of the delay.
        Step::get("/slow/broken")
            .upstream_status(502)
            .expect_status(502)
            .expect_response_header(name, Some("delay=10ms;rule=slow")),
        Step::get("/teapot")
            .expect_status(418)
            .expect_upstream(false)
            .expect_body("{}")
            .expect_response_header("content-type", Some("application/json"))
            .expect_response_header("retry-after", Some("1"))
            .expect_response_header(name, Some("abort=418;rule=2")),
        Step::get("/other")
            .expect_status(200)
            .expect_response_header(name, None),
    ]
}

#[test]
fn x_fault_injected_reports_every_fault() {
    let s = steps("x-fault-injected")
        .into_iter()
        .fold(scenario("x-fault-injected", &config(None)), |s, step| {
            s.step(step)
        });
    cross_check(&s).unwrap();
}

#[test]
fn the_header_name_is_configurable() {
    let s = steps("x-chaos")
        .into_iter()
        .map(|step| step.expect_response_header("x-fault-injected", None))
        .fold(
            scenario("responseHeader: x-chaos", &config(Some("x-chaos"))),
            |s, step| s.step(step),
        );
    cross_check(&s).unwrap();
}
