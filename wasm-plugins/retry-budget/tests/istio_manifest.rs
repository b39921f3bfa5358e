//! The `WasmPlugin` in `istio/plugins/retry-budget.yaml` configures the
//! plugin: its `pluginConfig`, read from the YAML as Istio passes it (JSON),
//! starts the plugin, and the plugin then asks Envoy's router for what the
//! manifest says (3 retries on the configured conditions, 2 s per try).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::start;
use istio_manifests::{Schemas, manifests_dir, parse_documents};
use proxy_wasm_harness::{Request, Response};
use serde_json::Value;

fn wasm_plugin() -> Value {
    let text = std::fs::read_to_string(manifests_dir().join("plugins/retry-budget.yaml")).unwrap();
    let mut documents = parse_documents(&text).unwrap();
    assert_eq!(documents.len(), 1);
    documents.remove(0)
}

#[test]
fn the_manifest_is_a_valid_wasm_plugin() {
    let plugin = wasm_plugin();
    Schemas::load_vendored().unwrap().validate(&plugin).unwrap();
    assert_eq!(
        plugin["spec"]["selector"]["matchLabels"]["app"],
        "collector"
    );
}

#[test]
fn the_plugin_config_configures_the_plugin() {
    let config = wasm_plugin()["spec"]["pluginConfig"].to_string();
    let (mut harness, workers) = start(&config, 1);
    harness
        .exchange(
            workers[0],
            Request::get("/frames").header("x-envoy-max-retries", "50"),
            |upstream| {
                assert_eq!(upstream.header("x-envoy-max-retries"), Some("3"));
                assert_eq!(
                    upstream.header("x-envoy-retry-on"),
                    Some("gateway-error,connect-failure,refused-stream,reset")
                );
                assert_eq!(
                    upstream.header("x-envoy-upstream-rq-per-try-timeout-ms"),
                    Some("2000")
                );
                Response::ok().header("x-envoy-attempt-count", "1")
            },
        )
        .unwrap();
}
