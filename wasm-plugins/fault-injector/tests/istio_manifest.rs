//! The `WasmPlugin` manifest in `istio/plugins/fault-injector.yaml`
//! configures the plugin: its `pluginConfig`, read from the YAML as Istio
//! would pass it (JSON), starts the plugin in the harness and in a real
//! Envoy, and does what the manifest's comments say.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
mod envoy_common;

use common::{send, start};
use cross_check::{Step, cross_check};
use envoy_common::{aborts, scenario};
use istio_manifests::{Schemas, manifests_dir, parse_documents};
use proxy_wasm_harness::Request;
use serde_json::Value;

const MANIFEST: &str = "plugins/fault-injector.yaml";

fn wasm_plugin() -> Value {
    let path = manifests_dir().join(MANIFEST);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut documents = parse_documents(&text).unwrap();
    assert_eq!(documents.len(), 1, "{}", path.display());
    documents.remove(0)
}

/// The plugin configuration Istio hands the plugin: `spec.pluginConfig` as JSON.
fn plugin_config() -> String {
    wasm_plugin()
        .pointer("/spec/pluginConfig")
        .expect("spec.pluginConfig")
        .to_string()
}

#[test]
fn the_manifest_is_a_valid_wasm_plugin_for_image_analysis() {
    let plugin = wasm_plugin();
    Schemas::load_vendored().unwrap().validate(&plugin).unwrap();
    assert_eq!(plugin["kind"], "WasmPlugin");
    assert_eq!(plugin["metadata"]["namespace"], "airport");
    assert_eq!(
        plugin["spec"]["selector"]["matchLabels"]["app"],
        "image-analysis"
    );
    assert_eq!(plugin["spec"]["failStrategy"], "FAIL_OPEN");
}

#[test]
fn the_plugin_config_configures_the_plugin() {
    let (mut h, w) = start(&plugin_config());
    let info = h.logs_at(w, proxy_wasm_harness::LogLevel::Info).unwrap();
    assert_eq!(info, vec!["fault-injector: configured 1 rule(s)"]);
    let mut aborted = 0;
    for n in 0..40 {
        let id = format!("manifest-{n}");
        let tester = send(
            &mut h,
            w,
            Request::get("/analyze")
                .header("end-user", "tester")
                .header("x-request-id", &id),
        );
        if aborts(&id, 50.0) {
            aborted += 1;
            assert_eq!(tester.status(), Some(500), "{id}");
            assert_eq!(
                tester.response_header("x-fault-injected"),
                Some("abort=500;rule=tester-500")
            );
        } else {
            assert_eq!(tester.status(), Some(200), "{id}");
        }
        let other = send(
            &mut h,
            w,
            Request::get("/analyze")
                .header("end-user", "jason")
                .header("x-request-id", &id),
        );
        assert_eq!(other.status(), Some(200), "only the tester is hit");
        assert_eq!(other.response_header("x-fault-injected"), None);
    }
    assert!((10..=30).contains(&aborted), "{aborted} of 40");
    assert_eq!(
        h.counter("fault_injector.rule.tester-500.aborts_injected"),
        Some(aborted)
    );
}

#[test]
fn the_plugin_config_works_in_envoy_too() {
    let mut s = scenario("istio/plugins/fault-injector.yaml", &plugin_config());
    let hit = (0..)
        .map(|n| format!("hit-{n}"))
        .find(|id| aborts(id, 50.0))
        .unwrap();
    let miss = (0..)
        .map(|n| format!("miss-{n}"))
        .find(|id| !aborts(id, 50.0))
        .unwrap();
    s = s
        .step(
            Step::get("/analyze")
                .header("end-user", "tester")
                .header("x-request-id", &hit)
                .expect_status(500)
                .expect_response_header("x-fault-injected", Some("abort=500;rule=tester-500")),
        )
        .step(
            Step::get("/analyze")
                .header("end-user", "tester")
                .header("x-request-id", &miss)
                .expect_status(200),
        )
        .step(
            Step::get("/analyze")
                .header("end-user", "jason")
                .header("x-request-id", &hit)
                .expect_status(200)
                .expect_response_header("x-fault-injected", None),
        )
        .expect_metric("fault_injector.aborts_injected", 1);
    cross_check(&s).unwrap();
}
