//! Every bad configuration is refused at `on_configure` with one error line
//! that names the field; the plugin never traps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::plugin;
use proxy_wasm_harness::{Harness, HarnessError, LogLevel};

/// Starts the plugin with `config` and returns its one error line.
fn refusal(config: &str) -> String {
    let mut harness = Harness::new();
    match harness.start(&plugin(config)) {
        Err(HarnessError::ConfigureFailed { logs }) => {
            let errors: Vec<_> = logs.iter().filter(|l| l.level >= LogLevel::Error).collect();
            assert_eq!(errors.len(), 1, "exactly one error line: {logs:?}");
            let message = errors[0].message.clone();
            assert!(!message.contains('\n'), "{message:?}");
            message
                .strip_prefix("fault-injector: invalid configuration: ")
                .unwrap_or_else(|| panic!("{message:?}"))
                .to_string()
        }
        Err(other) => panic!("expected ConfigureFailed, got {other}"),
        Ok(_) => panic!("accepted: {config}"),
    }
}

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
    empty_configuration: "" => "rules: no rules";
    empty_rule_list: r#"{"rules": []}"# => "rules: no rules";
    malformed_json: r#"{"rules": "# => "rules: EOF while parsing";
    trailing_garbage: r#"{"rules": [{"abort": {"httpStatus": 503}}]}}"# => "config: trailing characters";
    unknown_top_level_field: r#"{"rules": [{"abort": {"httpStatus": 503}}], "maxFaults": 1}"# => "maxFaults: unknown field `maxFaults`";
    unknown_nested_field: r#"{"rules": [{"delay": {"fixedDelay": "1s", "exponentialDelay": "1s"}}]}"# => "rules[0].delay.exponentialDelay: unknown field";
    wrong_type: r#"{"rules": [{"abort": {"httpStatus": "503"}}]}"# => "rules[0].abort.httpStatus: invalid type";
    rule_without_fault: r#"{"rules": [{"match": [{"uri": {"prefix": "/"}}]}]}"# => "rules[0]: a rule needs an abort, a delay, or both";
    http_status_too_low: r#"{"rules": [{"abort": {"httpStatus": 503}}, {"abort": {"httpStatus": 99}}]}"# => "rules[1].abort.httpStatus: 99 is not an HTTP status (200-599)";
    http_status_too_high: r#"{"rules": [{"abort": {"httpStatus": 600}}]}"# => "rules[0].abort.httpStatus: 600 is not an HTTP status";
    both_statuses: r#"{"rules": [{"abort": {"httpStatus": 503, "grpcStatus": "INTERNAL"}}]}"# => "rules[0].abort: give httpStatus or grpcStatus, not both";
    no_status: r#"{"rules": [{"abort": {}}]}"# => "rules[0].abort: give httpStatus or grpcStatus";
    bad_grpc_status: r#"{"rules": [{"abort": {"grpcStatus": "OOPS"}}]}"# => "rules[0].abort.grpcStatus: \"OOPS\" is not a gRPC status";
    grpc_ok_is_no_fault: r#"{"rules": [{"abort": {"grpcStatus": "OK"}}]}"# => "rules[0].abort.grpcStatus: \"OK\" is not a gRPC status";
    percentage_over_100: r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 150}}}]}"# => "rules[0].abort.percentage.value: 150 is not a percentage (0-100)";
    percentage_below_0: r#"{"rules": [{"delay": {"fixedDelay": "1s", "percentage": {"value": -0.5}}}]}"# => "rules[0].delay.percentage.value: -0.5 is not a percentage";
    percentage_without_value: r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {}}}]}"# => "rules[0].abort.percentage: missing field `value`";
    missing_fixed_delay: r#"{"rules": [{"delay": {}}]}"# => "rules[0].delay: missing field `fixedDelay`";
    unparseable_duration: r#"{"rules": [{"delay": {"fixedDelay": "ten seconds"}}]}"# => "rules[0].delay.fixedDelay: cannot parse duration \"ten seconds\"";
    duration_without_unit: r#"{"rules": [{"delay": {"fixedDelay": "100"}}]}"# => "rules[0].delay.fixedDelay: cannot parse duration \"100\": \"100\" has a number without a unit";
    duration_with_unknown_unit: r#"{"rules": [{"delay": {"fixedDelay": "1w"}}]}"# => "rules[0].delay.fixedDelay: cannot parse duration \"1w\": unknown unit \"w\"";
    negative_duration: r#"{"rules": [{"delay": {"fixedDelay": "-5s"}}]}"# => "rules[0].delay.fixedDelay: cannot parse duration \"-5s\": \"-5s\" is negative";
    delay_under_a_millisecond: r#"{"rules": [{"delay": {"fixedDelay": "0.5ms"}}]}"# => "rules[0].delay.fixedDelay: \"0.5ms\" is shorter than 1ms";
    bad_uri_regex: r#"{"rules": [{"match": [{"uri": {"regex": "/flights/(["}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].uri.regex: bad regex:";
    bad_header_regex: r#"{"rules": [{"match": [{"headers": {"end-user": {"regex": "*tester"}}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].headers.end-user.regex: bad regex:";
    bad_query_regex: r#"{"rules": [{"match": [{"queryParams": {"id": {"regex": "\\p{Nope}"}}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].queryParams.id.regex: bad regex:";
    two_match_kinds: r#"{"rules": [{"match": [{"method": {"exact": "GET", "regex": "G.*"}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].method: give exactly one of exact, prefix, regex";
    empty_uri_match: r#"{"rules": [{"match": [{"uri": {}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].uri: empty match";
    bad_ip_block: r#"{"rules": [{"match": [{"sourceIpBlocks": ["10.0.0.0/99"]}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].sourceIpBlocks[0]: \"10.0.0.0/99\" is not an IP address or CIDR range";
    empty_route_name: r#"{"rules": [{"match": [{"routeName": ""}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].routeName: empty route name";
    bad_match_header_name: r#"{"rules": [{"match": [{"withoutHeaders": {"x(y)": {}}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].withoutHeaders.x(y): \"x(y)\" is not a valid header name";
    bad_abort_header_name: r#"{"rules": [{"abort": {"httpStatus": 503, "headers": {"bad header": "1"}}}]}"# => "rules[0].abort.headers.bad header: \"bad header\" is not a valid header name";
    reserved_abort_header: r#"{"rules": [{"abort": {"httpStatus": 503, "headers": {":status": "200"}}}]}"# => "rules[0].abort.headers.:status: \":status\" may not be set here";
    control_characters_in_abort_header: r#"{"rules": [{"abort": {"httpStatus": 503, "headers": {"x-a": "1\r\nx-b: 2"}}}]}"# => "rules[0].abort.headers.x-a: header value";
    control_characters_in_grpc_message: r#"{"rules": [{"abort": {"grpcStatus": "INTERNAL", "body": "a\r\nb"}}]}"# => "rules[0].abort.body: header value";
    bad_response_header: r#"{"responseHeader": "x fault", "rules": [{"abort": {"httpStatus": 503}}]}"# => "responseHeader: \"x fault\" is not a valid header name";
    pseudo_response_header: r#"{"responseHeader": ":path", "rules": [{"abort": {"httpStatus": 503}}]}"# => "responseHeader: \":path\" may not be set here";
    bad_request_id_header: r#"{"requestIdHeader": "x request id", "rules": [{"abort": {"httpStatus": 503}}]}"# => "requestIdHeader: \"x request id\" is not a valid header name";
    negative_max_active_faults: r#"{"maxActiveFaults": -1, "rules": [{"abort": {"httpStatus": 503}}]}"# => "maxActiveFaults: -1 is not allowed";
    fractional_max_active_faults: r#"{"maxActiveFaults": 1.5, "rules": [{"abort": {"httpStatus": 503}}]}"# => "maxActiveFaults: invalid type: floating point";
    bad_rule_name: r#"{"rules": [{"name": "checkin.v2", "abort": {"httpStatus": 503}}]}"# => "rules[0].name: \"checkin.v2\" is not a valid rule name";
    duplicate_rule_name: r#"{"rules": [{"name": "x", "abort": {"httpStatus": 503}}, {"name": "x", "delay": {"fixedDelay": "1s"}}]}"# => "rules[1].name: \"x\" names an earlier rule too";
    header_control_all_off: r#"{"headerControl": {"abort": false, "delay": false}}"# => "headerControl: abort and delay are both off";
    header_control_bad_max_delay: r#"{"headerControl": {"maxDelay": "5"}}"# => "headerControl.maxDelay: cannot parse duration \"5\"";
    header_control_bad_max_percentage: r#"{"headerControl": {"maxPercentage": {"value": 200}}}"# => "headerControl.maxPercentage.value: 200 is not a percentage";
    integer_delay_percent_over_100: r#"{"rules": [{"delay": {"fixedDelay": "1s", "percent": 150}}]}"# => "rules[0].delay.percent: 150 is not a whole percentage (0-100)";
    abort_integer_percent_is_reserved: r#"{"rules": [{"abort": {"httpStatus": 503, "percent": 50}}]}"# => "rules[0].abort.percent: unknown field";
    header_control_bad_match: r#"{"headerControl": {"match": [{"uri": {"regex": "+"}}]}}"# => "headerControl.match[0].uri.regex: bad regex";
}

#[test]
fn a_good_configuration_logs_no_error() {
    let mut harness = Harness::new();
    let worker = harness
        .start(&plugin(
            r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#,
        ))
        .unwrap();
    assert!(harness.logs_at(worker, LogLevel::Error).unwrap().is_empty());
}

#[test]
fn a_configuration_that_is_not_an_object_is_refused() {
    assert_eq!(
        refusal("[1, 2]"),
        "config: expected a JSON object, got an array"
    );
}
