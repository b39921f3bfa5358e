//! VirtualServices to Envoy routes, one feature at a time: each test
//! translates a small set of manifests and checks the Envoy JSON istiod
//! would have written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod translate_support;

use std::collections::BTreeMap;

use envoy_rig::HttpFilter;
use local_mesh::{GATEWAY, translate};
use serde_json::json;
use translate_support::*;

fn cpanel() -> Vec<local_mesh::Workload> {
    workloads(&[("cpanel", "v1", 7001), ("cpanel", "v2", 7002)])
}

fn only_route(yaml: &str) -> serde_json::Value {
    let routes = service_routes(&bootstrap(yaml, &cpanel()), "cpanel");
    assert_eq!(routes.len(), 1, "{routes:#?}");
    routes[0].clone()
}

fn with_rule(vs: &str) -> String {
    format!("{}---\n{vs}", rule("cpanel", ""))
}

#[test]
fn a_subset_is_the_workloads_with_its_version_label() {
    let w = workloads(&[
        ("cpanel", "v1", 7001),
        ("cpanel", "v2", 7002),
        ("cpanel", "v2", 7003),
    ]);
    let b = bootstrap(&rule("cpanel", ""), &w);
    let ports = |name: &str| -> Vec<u64> {
        cluster(&b, name)["load_assignment"]["endpoints"][0]["lb_endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["endpoint"]["address"]["socket_address"]["port_value"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(ports("outbound|cpanel.airport|v1"), [7001]);
    assert_eq!(ports("outbound|cpanel.airport|v2"), [7002, 7003]);
    assert_eq!(ports("outbound|cpanel.airport"), [7001, 7002, 7003]);
}

#[test]
fn subset_labels_may_name_the_app_too() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cpanel, namespace: airport}
spec:
  host: cpanel
  subsets:
  - name: mine
    labels: {app: cpanel, version: v2}
  - name: other-app
    labels: {app: alerts}
";
    let b = bootstrap(yaml, &cpanel());
    let count = |name: &str| {
        cluster(&b, name)["load_assignment"]["endpoints"][0]["lb_endpoints"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count("outbound|cpanel.airport|mine"), 1);
    // A subset that selects no pod is an empty cluster (Envoy answers 503).
    assert_eq!(count("outbound|cpanel.airport|other-app"), 0);
}

#[test]
fn weights_split_between_subsets() {
    let route = only_route(&with_rule(&mesh_vs(
        "cpanel",
        "
    route:
    - destination: {host: cpanel, subset: v1}
      weight: 30
    - destination: {host: cpanel, subset: v2}
      weight: 70",
    )));
    assert_eq!(
        route["route"]["weighted_clusters"],
        json!({"clusters": [
            {"name": "outbound|cpanel.airport|v1", "weight": 30},
            {"name": "outbound|cpanel.airport|v2", "weight": 70},
        ]})
    );
    assert!(route["route"].get("cluster").is_none());
}

#[test]
fn a_zero_weight_is_left_out_and_a_single_destination_ignores_weight() {
    let route = only_route(&with_rule(&mesh_vs(
        "cpanel",
        "
    route:
    - destination: {host: cpanel, subset: v1}
      weight: 0
    - destination: {host: cpanel, subset: v2}
      weight: 100",
    )));
    assert_eq!(
        route["route"]["weighted_clusters"]["clusters"],
        json!([{"name": "outbound|cpanel.airport|v2", "weight": 100}])
    );
    let single = only_route(&with_rule(&mesh_vs(
        "cpanel",
        "
    route:
    - destination: {host: cpanel.airport.svc.cluster.local, subset: v2}
      weight: 10",
    )));
    assert_eq!(single["route"]["cluster"], "outbound|cpanel.airport|v2");
}

#[test]
fn several_destinations_all_weighing_zero_are_refused() {
    let message = refusal(
        &with_rule(&mesh_vs(
            "cpanel",
            "
    route:
    - destination: {host: cpanel, subset: v1}
    - destination: {host: cpanel, subset: v2}",
        )),
        &cpanel(),
    );
    assert_eq!(
        message,
        "VirtualService/cpanel: spec.http[0].route: with several destinations, at least one needs a weight above 0"
    );
}

#[test]
fn header_matches_exact_prefix_regex_and_presence() {
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    match:
    - headers:
        end-user: {exact: tester}
        x-group: {prefix: beta-}
        user-agent: {regex: '.*Firefox.*'}
        x-debug: {}
    route:
    - destination: {host: cpanel}",
    ));
    // Sorted by name, as Istio writes them.
    assert_eq!(
        route["match"]["headers"],
        json!([
            {"name": "end-user", "string_match": {"exact": "tester"}},
            {"name": "user-agent", "string_match": {"safe_regex": {"regex": ".*Firefox.*"}}},
            {"name": "x-debug", "present_match": true},
            {"name": "x-group", "string_match": {"prefix": "beta-"}},
        ])
    );
    assert_eq!(route["match"]["prefix"], "/");
    assert_eq!(route["match"]["case_sensitive"], true);
}

#[test]
fn without_headers_invert_and_count_a_missing_header_as_empty() {
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    match:
    - withoutHeaders:
        end-user: {exact: tester}
        x-debug: {}
    route:
    - destination: {host: cpanel}",
    ));
    assert_eq!(
        route["match"]["headers"],
        json!([
            {"name": "end-user", "string_match": {"exact": "tester"}, "treat_missing_header_as_empty": true, "invert_match": true},
            {"name": "x-debug", "present_match": true, "invert_match": true},
        ])
    );
}

#[test]
fn uri_matches_exact_prefix_regex_and_case() {
    let b = bootstrap(
        &mesh_vs(
            "cpanel",
            "
    match:
    - uri: {exact: /status}
    - uri: {prefix: /cameras/}
      ignoreUriCase: true
    - uri: {regex: '/sections/[0-9]+/status'}
    route:
    - destination: {host: cpanel}",
        ),
        &cpanel(),
    );
    let routes = service_routes(&b, "cpanel");
    let matches: Vec<_> = routes.iter().map(|r| r["match"].clone()).collect();
    assert_eq!(
        matches,
        [
            json!({"path": "/status", "case_sensitive": true}),
            json!({"prefix": "/cameras/", "case_sensitive": false}),
            json!({"safe_regex": {"regex": "/sections/[0-9]+/status"}, "case_sensitive": true}),
        ]
    );
    // One Envoy route per match, each with the same action.
    assert!(
        routes
            .iter()
            .all(|r| r["route"]["cluster"] == "outbound|cpanel.airport")
    );
}

#[test]
fn method_authority_scheme_and_query_matches() {
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    match:
    - method: {exact: POST}
      authority: {prefix: cpanel}
      scheme: {exact: http}
      queryParams:
        toggle: {exact: 'on'}
        camera: {}
    route:
    - destination: {host: cpanel}",
    ));
    assert_eq!(
        route["match"]["headers"],
        json!([
            {"name": ":method", "string_match": {"exact": "POST"}},
            {"name": ":authority", "string_match": {"prefix": "cpanel"}},
            {"name": ":scheme", "string_match": {"exact": "http"}},
        ])
    );
    assert_eq!(
        route["match"]["query_parameters"],
        json!([
            {"name": "camera", "present_match": true},
            {"name": "toggle", "string_match": {"exact": "on"}},
        ])
    );
}

#[test]
fn rewrites_of_the_uri_and_the_authority() {
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    match:
    - uri: {prefix: /collector/}
    rewrite:
      uri: /
      authority: collector.internal
    route:
    - destination: {host: cpanel}",
    ));
    assert_eq!(route["route"]["prefix_rewrite"], "/");
    assert_eq!(route["route"]["host_rewrite_literal"], "collector.internal");

    let regex = only_route(&mesh_vs(
        "cpanel",
        "
    rewrite:
      uriRegexRewrite: {match: '^/v1/(.*)$', rewrite: '/\\1'}
    route:
    - destination: {host: cpanel}",
    ));
    assert_eq!(
        regex["route"]["regex_rewrite"],
        json!({"pattern": {"regex": "^/v1/(.*)$"}, "substitution": "/\\1"})
    );
    assert!(regex["route"].get("prefix_rewrite").is_none());
}

#[test]
fn header_operations_on_the_route_and_on_each_destination() {
    let route = only_route(&with_rule(&mesh_vs(
        "cpanel",
        "
    headers:
      request:
        set: {x-mesh: local, ':authority': panel.local}
        add: {x-trace: one}
        remove: [x-secret, host]
      response:
        set: {cache-control: no-store}
        remove: [server]
    route:
    - destination: {host: cpanel, subset: v1}
      weight: 50
      headers:
        request:
          set: {x-version: v1}
    - destination: {host: cpanel, subset: v2}
      weight: 50",
    )));
    assert_eq!(
        route["request_headers_to_add"],
        json!([
            {"header": {"key": "x-mesh", "value": "local"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
            {"header": {"key": "x-trace", "value": "one"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"},
        ])
    );
    assert_eq!(route["request_headers_to_remove"], json!(["x-secret"]));
    assert_eq!(
        route["response_headers_to_add"],
        json!([{"header": {"key": "cache-control", "value": "no-store"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}])
    );
    assert_eq!(route["response_headers_to_remove"], json!(["server"]));
    // `:authority` is no header to add but the route's host rewrite.
    assert_eq!(route["route"]["host_rewrite_literal"], "panel.local");
    let clusters = &route["route"]["weighted_clusters"]["clusters"];
    assert_eq!(
        clusters[0]["request_headers_to_add"],
        json!([{"header": {"key": "x-version", "value": "v1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}])
    );
    assert!(clusters[1].get("request_headers_to_add").is_none());
}

#[test]
fn an_abort_fault_keeps_istios_percentage() {
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    fault:
      abort: {httpStatus: 500, percentage: {value: 12.5}}
    route:
    - destination: {host: cpanel}",
    ));
    assert_eq!(
        route["typed_per_filter_config"]["envoy.filters.http.fault"],
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "abort": {"http_status": 500, "percentage": {"numerator": 125_000, "denominator": "MILLION"}}
        })
    );
}

#[test]
fn an_abort_without_percentage_aborts_nothing() {
    // Istio passes no percentage, and Envoy's default share is 0.
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    fault:
      abort: {httpStatus: 503}
    route:
    - destination: {host: cpanel}",
    ));
    let abort = &route["typed_per_filter_config"]["envoy.filters.http.fault"]["abort"];
    assert_eq!(abort, &json!({"http_status": 503}));
}

#[test]
fn a_delay_fault_with_percentage_percent_or_neither() {
    let delay = |fault: &str| {
        only_route(&mesh_vs(
            "cpanel",
            &format!(
                "
    fault:
      delay: {fault}
    route:
    - destination: {{host: cpanel}}"
            ),
        ))["typed_per_filter_config"]["envoy.filters.http.fault"]["delay"]
            .clone()
    };
    assert_eq!(
        delay("{fixedDelay: 10s, percentage: {value: 100}}"),
        json!({"fixed_delay": "10.000000000s", "percentage": {"numerator": 1_000_000, "denominator": "MILLION"}})
    );
    // The deprecated integer `percent`, per hundred, as Istio passes it.
    assert_eq!(
        delay("{fixedDelay: 2s, percent: 75}")["percentage"],
        json!({"numerator": 75, "denominator": "HUNDRED"})
    );
    // Neither: Istio writes a zero percent; no request is delayed.
    assert_eq!(
        delay("{fixedDelay: 2s}")["percentage"],
        json!({"numerator": 0, "denominator": "HUNDRED"})
    );
}

#[test]
fn istios_default_retries_apply_when_a_route_has_none() {
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    route:
    - destination: {host: cpanel}",
    ));
    assert_eq!(
        route["route"]["retry_policy"],
        json!({
            "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
            "num_retries": 2,
            "host_selection_retry_max_attempts": 5,
            "retry_host_predicate": [{
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}
            }],
        })
    );
    // And no timeout: Envoy's 15 s default is turned off.
    assert_eq!(route["route"]["timeout"], "0s");
}

#[test]
fn zero_attempts_turn_retries_off() {
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    retries: {attempts: 0}
    route:
    - destination: {host: cpanel}",
    ));
    assert!(route["route"].get("retry_policy").is_none(), "{route:#}");
}

#[test]
fn retries_replace_the_defaults_they_name() {
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: gateway-error,connect-failure,refused-stream,reset
    route:
    - destination: {host: cpanel}",
    ));
    let policy = &route["route"]["retry_policy"];
    assert_eq!(policy["num_retries"], 3);
    assert_eq!(policy["per_try_timeout"], "2.000000000s");
    assert_eq!(
        policy["retry_on"],
        "gateway-error,connect-failure,refused-stream,reset"
    );
    // No status code in retryOn: none is retriable by code.
    assert!(policy.get("retriable_status_codes").is_none(), "{policy:#}");
    assert!(policy.get("retry_host_predicate").is_some());
}

#[test]
fn attempts_alone_keep_the_default_conditions_and_no_status_code() {
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    retries: {attempts: 5}
    route:
    - destination: {host: cpanel}",
    ));
    let policy = &route["route"]["retry_policy"];
    assert_eq!(policy["num_retries"], 5);
    assert_eq!(
        policy["retry_on"],
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    );
    assert!(policy.get("retriable_status_codes").is_none(), "{policy:#}");
}

#[test]
fn the_grpc_timeout_header_is_capped_at_the_route_timeout() {
    let timeout = |extra: &str| {
        only_route(&mesh_vs(
            "cpanel",
            &format!(
                "
    route:
    - destination: {{host: cpanel}}{extra}"
            ),
        ))["route"]
            .clone()
    };
    let with = timeout("\n    timeout: 3s");
    assert_eq!(with["max_grpc_timeout"], "3.000000000s");
    assert_eq!(with["timeout"], "3.000000000s");
    // No timeout: the header is honoured uncapped (0s), not ignored.
    assert_eq!(timeout("")["max_grpc_timeout"], "0s");
}

#[test]
fn status_codes_in_retry_on_become_retriable_codes() {
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    retries:
      attempts: 2
      retryOn: 5xx,500, 502
      retryIgnorePreviousHosts: false
      backoff: 25ms
    route:
    - destination: {host: cpanel}",
    ));
    let policy = &route["route"]["retry_policy"];
    assert_eq!(policy["retry_on"], "5xx,retriable-status-codes");
    assert_eq!(policy["retriable_status_codes"], json!([500, 502]));
    assert!(policy.get("retry_host_predicate").is_none());
    assert_eq!(
        policy["retry_back_off"],
        json!({"base_interval": "0.025000000s"})
    );
}

#[test]
fn an_unknown_retry_condition_is_refused() {
    let message = refusal(
        &mesh_vs(
            "cpanel",
            "
    retries: {attempts: 2, retryOn: '5xx,sometimes'}
    route:
    - destination: {host: cpanel}",
        ),
        &cpanel(),
    );
    assert!(
        message.starts_with(
            "VirtualService/cpanel: spec.http[0].retries.retryOn: \"sometimes\" is neither a retry condition"
        ),
        "{message}"
    );
}

#[test]
fn timeouts_are_go_durations() {
    let route = only_route(&mesh_vs(
        "cpanel",
        "
    timeout: 1m30s
    route:
    - destination: {host: cpanel}",
    ));
    assert_eq!(route["route"]["timeout"], "90.000000000s");
    let message = refusal(
        &mesh_vs(
            "cpanel",
            "
    timeout: soon
    route:
    - destination: {host: cpanel}",
        ),
        &cpanel(),
    );
    assert_eq!(
        message,
        "VirtualService/cpanel: spec.http[0].timeout: \"soon\" is not a duration (write it as Go does: 300ms, 1.5s, 2h45m)"
    );
}

#[test]
fn mirroring_with_a_percentage() {
    let mirror = |extra: &str| {
        only_route(&with_rule(&mesh_vs(
            "cpanel",
            &format!(
                "
    route:
    - destination: {{host: cpanel, subset: v1}}
    mirror: {{host: cpanel, subset: v2}}{extra}"
            ),
        )))["route"]
            .get("request_mirror_policies")
            .cloned()
    };
    assert_eq!(
        mirror("\n    mirrorPercentage: {value: 25}"),
        Some(json!([{
            "cluster": "outbound|cpanel.airport|v2",
            "runtime_fraction": {"default_value": {"numerator": 250_000, "denominator": "MILLION"}},
            "trace_sampled": false,
            "disable_shadow_host_suffix_append": true,
        }]))
    );
    // No percentage: everything is mirrored; an explicit 0: nothing.
    assert_eq!(
        mirror("").unwrap()[0]["runtime_fraction"]["default_value"],
        json!({"numerator": 100, "denominator": "HUNDRED"})
    );
    assert_eq!(mirror("\n    mirrorPercentage: {value: 0}"), None);
    assert_eq!(
        mirror("\n    mirrorPercent: 10").unwrap()[0]["runtime_fraction"]["default_value"],
        json!({"numerator": 10, "denominator": "HUNDRED"})
    );
}

#[test]
fn several_mirrors() {
    let w = workloads(&[
        ("cpanel", "v1", 7001),
        ("cpanel", "v2", 7002),
        ("alerts", "v1", 7100),
    ]);
    let b = bootstrap(
        &with_rule(&mesh_vs(
            "cpanel",
            "
    route:
    - destination: {host: cpanel, subset: v1}
    mirrors:
    - destination: {host: cpanel, subset: v2}
      percentage: {value: 50}
    - destination: {host: alerts}",
        )),
        &w,
    );
    let policies = &service_routes(&b, "cpanel")[0]["route"]["request_mirror_policies"];
    assert_eq!(policies[0]["cluster"], "outbound|cpanel.airport|v2");
    assert_eq!(
        policies[0]["runtime_fraction"]["default_value"]["numerator"],
        500_000
    );
    assert_eq!(policies[1]["cluster"], "outbound|alerts.airport");
}

#[test]
fn redirects_and_direct_responses() {
    let b = bootstrap(
        &mesh_vs(
            "cpanel",
            "
    match:
    - uri: {exact: /old}
    redirect: {uri: /new, authority: panel.local, redirectCode: 302}
  - match:
    - uri: {exact: /teapot}
    directResponse: {status: 418, body: {string: short and stout}}",
        ),
        &cpanel(),
    );
    let routes = service_routes(&b, "cpanel");
    assert_eq!(
        routes[0]["redirect"],
        json!({"response_code": "FOUND", "path_redirect": "/new", "host_redirect": "panel.local"})
    );
    assert_eq!(
        routes[1]["direct_response"],
        json!({"status": 418, "body": {"inline_string": "short and stout"}})
    );
}

#[test]
fn route_names_join_the_routes_and_the_matchs() {
    let b = bootstrap(
        &mesh_vs(
            "cpanel",
            "
    name: panel
    match:
    - name: status
      uri: {exact: /status}
    - uri: {exact: /}
    route:
    - destination: {host: cpanel}",
        ),
        &cpanel(),
    );
    let routes = service_routes(&b, "cpanel");
    assert_eq!(routes[0]["name"], "panel.status");
    assert_eq!(routes[1]["name"], "panel");
}

#[test]
fn nothing_after_a_catch_all_is_kept() {
    let b = bootstrap(
        &mesh_vs(
            "cpanel",
            "
    route:
    - destination: {host: cpanel}
  - match:
    - uri: {prefix: /never}
    route:
    - destination: {host: cpanel}",
        ),
        &cpanel(),
    );
    assert_eq!(service_routes(&b, "cpanel").len(), 1);
}

#[test]
fn a_service_without_virtual_service_gets_istios_default_route() {
    let b = bootstrap("", &cpanel());
    let routes = service_routes(&b, "cpanel");
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0]["name"], "default");
    assert_eq!(routes[0]["match"], json!({"prefix": "/"}));
    assert_eq!(routes[0]["route"]["cluster"], "outbound|cpanel.airport");
    assert_eq!(routes[0]["route"]["timeout"], "0s");
    assert_eq!(routes[0]["route"]["retry_policy"]["num_retries"], 2);
}

#[test]
fn a_later_document_replaces_one_of_the_same_kind_and_name() {
    let first = mesh_vs(
        "cpanel",
        "
    timeout: 1s
    route:
    - destination: {host: cpanel}",
    );
    let second = mesh_vs(
        "cpanel",
        "
    timeout: 2s
    route:
    - destination: {host: cpanel}",
    );
    let route = only_route(&format!("{first}---\n{second}"));
    assert_eq!(route["route"]["timeout"], "2.000000000s");
}

#[test]
fn two_virtual_services_for_one_service_are_refused() {
    let first = mesh_vs(
        "cpanel",
        "
    route:
    - destination: {host: cpanel}",
    );
    let second = first.replace("name: cpanel,", "name: panel-again,");
    let message = refusal(&format!("{first}---\n{second}"), &cpanel());
    assert_eq!(
        message,
        "VirtualService/panel-again: spec.hosts: cpanel.airport.svc.cluster.local already has VirtualService/cpanel; Istio uses only one VirtualService per host for sidecars"
    );
}

#[test]
fn a_consistent_hash_puts_a_hash_policy_on_the_routes() {
    let yaml = format!(
        "{}---\n{}",
        rule(
            "cpanel",
            "  trafficPolicy:\n    loadBalancer:\n      consistentHash: {httpHeaderName: end-user}"
        ),
        mesh_vs(
            "cpanel",
            "
    route:
    - destination: {host: cpanel, subset: v2}"
        )
    );
    let route = only_route(&yaml);
    assert_eq!(
        route["route"]["hash_policy"],
        json!([{"header": {"header_name": "end-user"}}])
    );
    // Retries stay on the hashed host: no previous-hosts predicate.
    assert!(
        route["route"]["retry_policy"]
            .get("retry_host_predicate")
            .is_none()
    );
    // The default route of a service without VirtualService hashes too.
    let b = bootstrap(
        &rule(
            "cpanel",
            "  trafficPolicy:\n    loadBalancer:\n      consistentHash: {httpCookie: {name: user, ttl: 1h}}",
        ),
        &cpanel(),
    );
    assert_eq!(
        service_routes(&b, "cpanel")[0]["route"]["hash_policy"],
        json!([{"cookie": {"name": "user", "ttl": "3600.000000000s"}}])
    );
}

#[test]
fn unknown_subsets_and_services_are_named() {
    let message = refusal(
        &with_rule(&mesh_vs(
            "cpanel",
            "
    route:
    - destination: {host: cpanel, subset: v3}",
        )),
        &cpanel(),
    );
    assert_eq!(
        message,
        "VirtualService/cpanel: destination cpanel subset v3 has no DestinationRule subset of that name"
    );
    let message = refusal(
        &mesh_vs(
            "cpanel",
            "
    route:
    - destination: {host: cpanle}",
        ),
        &cpanel(),
    );
    assert_eq!(
        message,
        "VirtualService/cpanel: spec.http[0].route[0].destination.host: cpanle is no Service of the mesh (no Service cpanle in namespace airport, the resource's own)"
    );
}

#[test]
fn a_kubernetes_service_without_ready_pods_is_an_empty_cluster() {
    let yaml = format!(
        "apiVersion: v1
kind: Service
metadata: {{name: alerts, namespace: airport}}
spec:
  selector: {{app: alerts}}
  ports: [{{port: 8080}}]
---
{}",
        mesh_vs(
            "cpanel",
            "
    route:
    - destination: {host: alerts, port: {number: 8080}}",
        )
    );
    let b = bootstrap(&yaml, &cpanel());
    assert_eq!(
        cluster(&b, "outbound|alerts.airport")["load_assignment"]["endpoints"][0]["lb_endpoints"],
        json!([])
    );
    let wrong_port = yaml.replace("number: 8080", "number: 9090");
    assert_eq!(
        refusal(&wrong_port, &cpanel()),
        "VirtualService/cpanel: spec.http[0].route[0].destination.port.number: Service alerts.airport has no port 9090 (its ports: [8080])"
    );
}

#[test]
fn wrong_types_are_reported_with_their_path() {
    let message = refusal(
        &mesh_vs(
            "cpanel",
            "
    route:
    - destination: {host: cpanel}
      weight: heavy",
        ),
        &cpanel(),
    );
    assert!(
        message.starts_with("VirtualService/cpanel: spec.http[0].route[0].weight: invalid type"),
        "{message}"
    );
}

#[test]
fn plugins_run_before_the_fault_filter_and_the_router() {
    let plugin = HttpFilter::Raw(json!({
        "name": "test.plugin",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"}
    }));
    let plugins = BTreeMap::from([
        ("cpanel.airport".to_string(), vec![plugin.clone()]),
        (GATEWAY.to_string(), vec![plugin]),
    ]);
    let translation = translate(
        &documents(GATEWAY_YAML),
        &cpanel(),
        0,
        &BTreeMap::new(),
        &plugins,
    )
    .unwrap();
    let (b, listeners) = (translation.bootstrap, translation.listeners);
    let expected = [
        "test.plugin",
        "envoy.filters.http.fault",
        "envoy.filters.http.router",
    ];
    assert_eq!(filter_names(&b, "svc-cpanel.airport"), expected);
    assert_eq!(filter_names(&b, "gateway"), expected);
    assert_eq!(listeners.gateway.as_deref(), Some("gateway"));
    assert_eq!(listeners.services["cpanel.airport"], "svc-cpanel.airport");
}
