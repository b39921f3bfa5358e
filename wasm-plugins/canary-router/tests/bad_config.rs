//! Every bad configuration is refused at `on_configure` with one error line
//! that names the field; the plugin never traps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{KEY, plugin};
use proxy_wasm_harness::{Harness, HarnessError, LogLevel, Plugin};

/// Starts `plugin` and returns its one error line, without the prefix.
fn refusal_of(plugin: &Plugin) -> String {
    let mut harness = Harness::new();
    match harness.start(plugin) {
        Err(HarnessError::ConfigureFailed { logs }) => {
            let errors: Vec<_> = logs.iter().filter(|l| l.level >= LogLevel::Error).collect();
            assert_eq!(errors.len(), 1, "exactly one error line: {logs:?}");
            let message = errors[0].message.clone();
            assert!(!message.contains('\n'), "{message:?}");
            message
                .strip_prefix("canary-router: invalid configuration: ")
                .unwrap_or_else(|| panic!("{message:?}"))
                .to_string()
        }
        Err(other) => panic!("expected ConfigureFailed, got {other}"),
        Ok(_) => panic!("accepted"),
    }
}

fn refusal(config: &str) -> String {
    refusal_of(&plugin(config))
}

const TWO: &str = r#""subsets": [{"name": "v1", "weight": 90}, {"name": "v2", "weight": 10}]"#;

macro_rules! refuses {
    ($($name:ident: $config:expr => $expected:expr;)*) => {$(
        #[test]
        fn $name() {
            let message = refusal($config);
            assert!(message.starts_with($expected), "{message:?} should start with {:?}", $expected);
        }
    )*};
}

refuses! {
    empty_configuration: "" => "subsets: no subsets (give at least one, with weights summing to 100)";
    not_json: "subsets: v1" => "config: expected a JSON object";
    an_array: "[]" => "config: expected a JSON object, got an array";
    unknown_field: &format!(r#"{{{TWO}, "stickiness": true}}"#) => "stickiness: unknown field `stickiness`";
    weights_not_summing_to_100: r#"{"subsets": [{"name": "v1", "weight": 80}, {"name": "v2", "weight": 10}]}"# => "subsets: weights sum to 90, not 100";
    duplicate_subset_names: r#"{"subsets": [{"name": "v1", "weight": 50}, {"name": "v1", "weight": 50}]}"# => "subsets[1].name: duplicate subset name \"v1\"";
    weight_out_of_range: r#"{"subsets": [{"name": "v1", "weight": 101}]}"# => "subsets[0].weight: 101 is not a weight (0 to 100)";
    bad_regex: &format!(r#"{{{TWO}, "rules": [{{"subset": "v2", "match": [{{"headers": {{"user-agent": {{"regex": "(62"}}}}}}]}}]}}"#) => "rules[0].match[0].headers.user-agent.regex: bad regex";
    rule_for_unknown_subset: &format!(r#"{{{TWO}, "rules": [{{"subset": "v9", "match": [{{"headers": {{"end-user": {{"exact": "tester"}}}}}}]}}]}}"#) => "rules[0].subset: \"v9\" is not one of the subsets (v1, v2)";
    bad_duration: &format!(r#"{{{TWO}, "cookie": {{"maxAge": "one day"}}}}"#) => "cookie.maxAge: cannot parse duration \"one day\"";
    short_signing_key: &format!(r#"{{{TWO}, "cookie": {{"signingKey": {{"inline": "short"}}}}}}"#) => "cookie.signingKey.inline: the key is 5 bytes; at least 32 are needed";
    reserved_route_header: &format!(r#"{{{TWO}, "routeHeader": "cookie"}}"#) => "routeHeader: \"cookie\" cannot be used here";
    host_prefix_without_secure: &format!(r#"{{{TWO}, "cookie": {{"name": "__Host-cpanel"}}}}"#) => "cookie.secure: the __Host- cookie name prefix needs secure: true (RFC 6265bis; browsers drop the cookie otherwise)";
    host_prefix_under_a_path: &format!(r#"{{{TWO}, "cookie": {{"name": "__Host-cpanel", "secure": true, "path": "/panel"}}}}"#) => "cookie.path: the __Host- cookie name prefix needs path \"/\", not \"/panel\"";
    host_prefix_with_a_domain: &format!(r#"{{{TWO}, "cookie": {{"name": "__Host-cpanel", "secure": true, "domain": "airport.example"}}}}"#) => "cookie.domain: the __Host- cookie name prefix forbids a domain";
    secure_prefix_without_secure: &format!(r#"{{{TWO}, "cookie": {{"name": "__Secure-cpanel"}}}}"#) => "cookie.secure: the __Secure- cookie name prefix needs secure: true";
    present_is_not_istio: &format!(r#"{{{TWO}, "rules": [{{"subset": "v2", "match": [{{"headers": {{"x-beta": {{"present": true}}}}}}]}}]}}"#) => "rules[0].match[0].headers.x-beta.present: unknown field `present`, expected one of `exact`, `prefix`, `regex`";
    istio_authority_is_refused_by_name: &format!(r#"{{{TWO}, "rules": [{{"subset": "v2", "match": [{{"authority": {{"exact": "a"}}}}]}}]}}"#) => "rules[0].match[0].authority: Istio's authority is not supported by this plugin (the plugin runs per listener; match the host in the route instead)";
}

#[test]
fn a_missing_environment_variable_is_named() {
    let config = format!(r#"{{{TWO}, "cookie": {{"signingKey": {{"env": "CANARY_KEY"}}}}}}"#);
    assert_eq!(
        refusal(&config),
        "cookie.signingKey.env: environment variable \"CANARY_KEY\" is not set"
    );
}

#[test]
fn a_short_key_from_the_environment_is_refused_without_showing_it() {
    let config = format!(r#"{{{TWO}, "cookie": {{"signingKey": {{"env": "CANARY_KEY"}}}}}}"#);
    let message = refusal_of(&plugin(&config).env("CANARY_KEY", "hunter2"));
    assert_eq!(
        message,
        "cookie.signingKey.env: the key is 7 bytes; at least 32 are needed"
    );
}

#[test]
fn a_good_configuration_logs_one_summary_line() {
    let config = format!(r#"{{{TWO}, "cookie": {{"signingKey": {{"inline": "{KEY}"}}}}}}"#);
    let mut harness = Harness::new();
    let worker = harness.start(&plugin(&config)).unwrap();
    assert_eq!(
        harness.logs_at(worker, LogLevel::Info).unwrap(),
        [
            "canary-router: configured subsets v1=90, v2=10, 0 rule(s), route header x-canary-subset, cookie canary (signed)"
        ]
    );
}
