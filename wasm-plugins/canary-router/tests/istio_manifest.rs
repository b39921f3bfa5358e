//! The `WasmPlugin` manifest in `istio/plugins/canary-router.yaml`
//! configures the plugin: its `pluginConfig`, read from the YAML as Istio
//! would pass it (JSON), starts the plugin in the harness (the signing key in
//! the VM's environment, where the manifest's `vmConfig.env` puts it) and in
//! a real Envoy, and routes as the manifest's comments say. The route table
//! in `istio/scenarios/cpanel-canary-sticky.yaml` matches what the plugin
//! sets, on the gateway the plugin runs on, and is otherwise the app's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use canary_router_filter::Config;
use common::{cookie_pair, routed_to, send, set_cookies, start_plugin};
use cross_check::{Scenario, Step, cross_check};
use istio_manifests::{Schemas, manifests_dir, parse_documents};
use proxy_wasm_harness::{Harness, HarnessError, LogLevel, Plugin, Request};
use serde_json::Value;

const MANIFEST: &str = "plugins/canary-router.yaml";
const SCENARIO: &str = "scenarios/cpanel-canary-sticky.yaml";
const APP_VIRTUAL_SERVICES: &str = "app/virtual-services.yaml";
const GATEWAY: &str = "app/gateway.yaml";
/// The gateway's dashboard VirtualService, which the scenario reconfigures.
const APP_VS: &str = "cpanel";

/// The variable `vmConfig.env` declares, and a key of the length a real one
/// would have (`openssl rand -base64 48`).
const KEY_VAR: &str = "CANARY_COOKIE_KEY";
const KEY: &str = "Zm9yLXRlc3RzLW9ubHktMDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY";

fn documents(file: &str) -> Vec<Value> {
    let path = manifests_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    parse_documents(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn of_kind<'a>(documents: &'a [Value], kind: &str, name: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn wasm_plugin() -> Value {
    let mut documents = documents(MANIFEST);
    assert_eq!(documents.len(), 1, "{MANIFEST}");
    documents.remove(0)
}

/// The plugin configuration Istio hands the plugin: `spec.pluginConfig` as JSON.
fn plugin_config() -> String {
    wasm_plugin()
        .pointer("/spec/pluginConfig")
        .expect("spec.pluginConfig")
        .to_string()
}

/// The shipped plugin with the manifest's configuration and, when `key` is
/// given, the signing key in the VM's environment.
fn manifest_plugin(key: Option<&str>) -> Plugin {
    let plugin = common::plugin(&plugin_config());
    match key {
        Some(key) => plugin.env(KEY_VAR, key),
        None => plugin,
    }
}

/// The filter-side configuration of the manifest, to check the plugin's
/// cookies with the same key.
fn filter_config() -> Config {
    let env = |name: &str| (name == KEY_VAR).then(|| KEY.to_string());
    Config::from_json(plugin_config().as_bytes(), &env).unwrap()
}

#[test]
fn the_manifest_is_a_valid_wasm_plugin_for_the_ingress_gateway() {
    let plugin = wasm_plugin();
    Schemas::load_vendored().unwrap().validate(&plugin).unwrap();
    assert_eq!(plugin["kind"], "WasmPlugin");
    assert_eq!(plugin["metadata"]["namespace"], "istio-system");
    assert_eq!(
        plugin["spec"]["selector"]["matchLabels"]["istio"],
        "ingressgateway"
    );
    assert_eq!(
        plugin["spec"]["url"],
        "oci://ghcr.io/airport-mesh/canary-router:0.1.0"
    );
    assert_eq!(plugin["spec"]["phase"], "AUTHN");
    // The key comes from the gateway's own environment, never inline, and
    // the variable the pluginConfig reads is the one vmConfig.env passes on.
    let env = plugin["spec"]["vmConfig"]["env"].as_array().unwrap();
    assert_eq!(env.len(), 1, "{env:?}");
    assert_eq!(env[0]["name"], KEY_VAR);
    assert_eq!(env[0]["valueFrom"], "HOST");
    assert!(env[0].get("value").is_none());
    assert_eq!(
        plugin["spec"]["pluginConfig"]["cookie"]["signingKey"],
        serde_json::json!({"env": KEY_VAR})
    );
}

#[test]
fn the_route_table_routes_on_the_plugins_header_to_cpanels_subsets() {
    let config = filter_config();
    let scenario = documents(SCENARIO);
    assert_eq!(scenario.len(), 1, "{SCENARIO}");
    let schemas = Schemas::load_vendored().unwrap();
    schemas.validate(&scenario[0]).unwrap();
    // The gateway's own VirtualService, reconfigured (same name).
    let vs = of_kind(&scenario, "VirtualService", APP_VS);
    let app = documents(APP_VIRTUAL_SERVICES);
    let app_vs = of_kind(&app, "VirtualService", APP_VS);
    assert_eq!(vs["metadata"], app_vs["metadata"]);
    assert_eq!(vs["spec"]["hosts"], serde_json::json!(["*"]));
    assert_eq!(vs["spec"]["hosts"], app_vs["spec"]["hosts"]);
    assert_eq!(vs["spec"]["gateways"], app_vs["spec"]["gateways"]);
    let gateway_name = vs["spec"]["gateways"][0].as_str().unwrap();
    let gateways = documents(GATEWAY);
    let gateway = of_kind(&gateways, "Gateway", gateway_name);
    assert_eq!(
        gateway["spec"]["selector"],
        wasm_plugin()["spec"]["selector"]["matchLabels"],
        "the plugin runs on the gateway this route table is bound to"
    );

    // The last two routes: the canary on the plugin's header, then everyone
    // else on v1. Every other route is the app's, unchanged.
    let http = vs["spec"]["http"].as_array().unwrap();
    let app_http = app_vs["spec"]["http"].as_array().unwrap();
    let n = http.len();
    let (v2, v1) = (&http[n - 2], &http[n - 1]);
    let header = &v2["match"][0]["headers"][config.route_header()];
    assert_eq!(header, &serde_json::json!({"exact": "v2"}));
    assert_eq!(v2["match"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        v2["route"],
        serde_json::json!([{"destination": {"host": "cpanel", "subset": "v2"}}])
    );
    assert!(v1.get("match").is_none());
    let app_cpanel = app_http.last().unwrap();
    assert_eq!(v1, app_cpanel, "the default is the app's cpanel route");
    assert_eq!(&http[..n - 2], &app_http[..app_http.len() - 1]);

    // Every subset the plugin can pick is one of cpanel's.
    let defined: Vec<String> = std::fs::read_dir(manifests_dir().join("app"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .flat_map(|path| parse_documents(&std::fs::read_to_string(path).unwrap()).unwrap())
        .filter(|d| d["kind"] == "DestinationRule" && d["spec"]["host"] == "cpanel")
        .flat_map(|d| {
            d["spec"]["subsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let picked: Vec<&str> = config.subsets().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(picked, ["v1", "v2"]);
    for subset in picked {
        assert!(defined.iter().any(|d| d == subset), "{subset}: {defined:?}");
    }
}

#[test]
fn the_plugin_config_configures_the_plugin() {
    let (mut harness, worker) = start_plugin(&manifest_plugin(Some(KEY)));
    let info = harness.logs_at(worker, LogLevel::Info).unwrap();
    assert_eq!(
        info,
        vec![
            "canary-router: configured subsets v1=90, v2=10, 1 rule(s), route header \
             x-canary-subset, cookie cpanel-version (signed)"
        ]
    );
    let config = filter_config();

    // The seed's tester always sees v2, whatever the header they send, and
    // gets no cookie.
    let tester = send(
        &mut harness,
        worker,
        Request::get("/")
            .header("end-user", "tester")
            .header("x-canary-subset", "v1"),
    );
    assert_eq!(routed_to(&tester), "v2");
    assert!(set_cookies(&tester).is_empty());

    // New users: a signed cookie with the manifest's attributes, whose
    // bucket alone decides (v2 owns 9000..=9999 at 10 %); each then sticks.
    for n in 0..50 {
        let first = send(
            &mut harness,
            worker,
            Request::get("/").header("x-canary-subset", "v2"),
        );
        let cookies = set_cookies(&first);
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        let set_cookie = &cookies[0];
        assert!(set_cookie.starts_with("cpanel-version=c1."), "{set_cookie}");
        assert!(
            set_cookie.ends_with("; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax"),
            "{set_cookie}"
        );
        let pair = cookie_pair(set_cookie);
        let value = pair.split_once('=').unwrap().1;
        let (cookie, _) = config.cookie().codec.decode(value).unwrap();
        let expected = if cookie.bucket >= 9_000 { "v2" } else { "v1" };
        assert_eq!(routed_to(&first), expected, "user {n}");
        assert_eq!(cookie.subset, expected);
        let again = send(
            &mut harness,
            worker,
            Request::get("/").header("cookie", &format!("theme=dark; {pair}")),
        );
        assert_eq!(routed_to(&again), expected);
        assert!(set_cookies(&again).is_empty());
    }
    assert_eq!(harness.counter("canary_router.sticky_hits"), Some(50));
    assert_eq!(harness.counter("canary_router.rejected_cookies"), Some(0));
}

#[test]
fn without_the_key_in_the_environment_the_plugin_refuses_to_start() {
    // What the gateway does when its pod lacks the Secret-fed variable.
    match Harness::new().start(&manifest_plugin(None)) {
        Err(HarnessError::ConfigureFailed { logs }) => {
            let errors: Vec<&str> = logs
                .iter()
                .filter(|l| l.level >= LogLevel::Error)
                .map(|l| l.message.as_str())
                .collect();
            assert_eq!(errors.len(), 1, "{logs:?}");
            assert!(
                errors[0]
                    .starts_with("canary-router: invalid configuration: cookie.signingKey.env"),
                "{errors:?}"
            );
        }
        Err(other) => panic!("expected ConfigureFailed, got {other}"),
        Ok(_) => panic!("started without a signing key"),
    }
}

#[test]
fn the_plugin_config_works_in_envoy_too() {
    let s = Scenario::new(
        "istio/plugins/canary-router.yaml",
        wasm_artifacts::CANARY_ROUTER,
    )
    .plugin_name("canary-router")
    .plugin_config(&plugin_config())
    .env(KEY_VAR, KEY)
    .step(
        Step::get("/")
            .header("end-user", "tester")
            .expect_status(200)
            .expect_upstream_header("x-canary-subset", Some("v2"))
            .expect_response_header("set-cookie", None),
    )
    .step(
        Step::get("/")
            .header("end-user", "tester")
            .header("x-canary-subset", "v1")
            .expect_status(200)
            .expect_upstream_header("x-canary-subset", Some("v2")),
    )
    .expect_metric("canary_router.rule_matches", 2)
    .expect_metric("canary_router.routed.v2", 2)
    .expect_metric("canary_router.rejected_cookies", 0);
    cross_check(&s).unwrap();
}
