//! Each plugin image gives back, the way Istio's fetcher reads it, the
//! module that was built; that module, configured with its `WasmPlugin`'s
//! `pluginConfig` (and `vmConfig.env`), starts and does its job in the
//! harness and in a real Envoy.

use std::path::Path;

use envoy_rig::client::{Request as EnvoyRequest, Response as EnvoyResponse};
use envoy_rig::{
    Bootstrap, Cluster, Envoy, Fault, Listener, Route, RouteAction, RouteMatch, Share, Upstream,
    VirtualHost, WasmFilter,
};
use oci_images::{ARTIFACT_SUFFIX, Kind};
use proxy_wasm_harness::{Harness, Plugin, Request, Response};
use serde_json::Value;

use crate::support::{Layout, built, gunzip};

/// A key of the length a real one has, for plugins that read one from the
/// proxy's environment (`vmConfig.env` with `valueFrom: HOST`).
const HOST_SECRET: &str = "Zm9yLXRlc3RzLW9ubHktMDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY";

/// The module of a *compat* image, found as Istio's `extractWasmPluginBinary`
/// finds it: the last layer must be an OCI gzip layer, and the module is
/// the entry whose base name is `plugin.wasm`.
fn compat_module(layout: &Layout) -> Result<Vec<u8>, String> {
    let layer = layout.manifest.layers().last().ok_or("no layer")?;
    let media_type = layer.media_type().to_string();
    if media_type != "application/vnd.oci.image.layer.v1.tar+gzip" {
        return Err(format!("invalid media type {media_type}"));
    }
    let tar_bytes = gunzip(layout.layers.last().ok_or("no layer blob")?);
    for entry in crate::support::tar_entries(&tar_bytes) {
        if Path::new(&entry.path)
            .file_name()
            .is_some_and(|n| n == "plugin.wasm")
        {
            return Ok(entry.bytes);
        }
    }
    Err("plugin.wasm not found in the archive".into())
}

/// The module of an *oci* variant image, as Istio's
/// `extractOCIArtifactImage` finds it: exactly two layers, the one of type
/// `application/vnd.module.wasm.content.layer.v1+wasm` is the raw module.
fn artifact_module(layout: &Layout) -> Result<Vec<u8>, String> {
    if layout.layers.len() != 2 {
        return Err(format!(
            "number of layers must be 2 but got {}",
            layout.layers.len()
        ));
    }
    layout
        .manifest
        .layers()
        .iter()
        .zip(&layout.layers)
        .find(|(d, _)| {
            d.media_type().to_string() == "application/vnd.module.wasm.content.layer.v1+wasm"
        })
        .map(|(_, bytes)| bytes.clone())
        .ok_or_else(|| "no layer of type application/vnd.module.wasm.content.layer.v1+wasm".into())
}

struct PluginUnderTest {
    name: String,
    wasm: Vec<u8>,
    manifest: Value,
}

impl PluginUnderTest {
    /// `spec.pluginConfig` as JSON, which is how Istio passes it.
    fn config(&self) -> String {
        self.manifest["spec"]["pluginConfig"].to_string()
    }

    /// The `vmConfig.env` entries, with a value for each `HOST` one.
    fn env(&self) -> Vec<(String, String)> {
        self.manifest["spec"]["vmConfig"]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let name = e["name"].as_str()?.to_string();
                let value = if e["valueFrom"] == "HOST" {
                    HOST_SECRET.to_string()
                } else {
                    e["value"].as_str().unwrap_or_default().to_string()
                };
                Some((name, value))
            })
            .collect()
    }
}

/// Every plugin image's module, taken out of its image both ways.
fn plugins() -> Vec<PluginUnderTest> {
    let built = built();
    let mut out = Vec::new();
    for definition in &built.catalog.images {
        let Kind::Plugin(plugin) = &definition.kind else {
            continue;
        };
        let compat = built.assembled.get(&definition.name).expect("built");
        let artifact = built
            .assembled
            .get(&format!("{}{ARTIFACT_SUFFIX}", definition.name))
            .expect("built");
        let from_compat = compat_module(&Layout::open(&compat.layout).expect("a layout"))
            .unwrap_or_else(|e| panic!("{}: as Istio reads a compat image: {e}", definition.name));
        let from_artifact = artifact_module(&Layout::open(&artifact.layout).expect("a layout"))
            .unwrap_or_else(|e| panic!("{}: as Istio reads an oci image: {e}", definition.name));
        assert!(
            from_compat == from_artifact,
            "{}: the two variants differ",
            definition.name
        );
        assert!(
            from_compat == built.inputs.plugins[&definition.name],
            "{}: the image holds another module than the one built",
            definition.name
        );
        let text = std::fs::read_to_string(built.catalog.root.join(&plugin.wasm_plugin)).unwrap();
        let mut manifest = istio_manifests::parse_documents(&text).unwrap();
        assert_eq!(manifest.len(), 1, "{}", plugin.wasm_plugin.display());
        out.push(PluginUnderTest {
            name: definition.name.clone(),
            wasm: from_compat,
            manifest: manifest.remove(0),
        });
    }
    assert_eq!(out.len(), 3, "the three plugins");
    out
}

#[test]
fn each_plugin_image_configures_and_serves_in_the_harness() {
    for plugin in plugins() {
        let name = plugin.name.as_str();
        let mut loaded = Plugin::from_bytes(&plugin.wasm)
            .unwrap_or_else(|e| panic!("{name}: the module does not load: {e}"))
            .name(name)
            .root_id(name)
            .vm_id(name)
            .plugin_config(plugin.config());
        for (key, value) in plugin.env() {
            loaded = loaded.env(&key, &value);
        }
        let mut harness = Harness::new();
        let worker = harness
            .start(&loaded)
            .unwrap_or_else(|e| panic!("{name}: does not start with its manifest's config: {e}"));
        let mut send = |request: Request| {
            let mut seen = None;
            let exchange = harness
                .exchange(worker, request, |upstream| {
                    seen = Some(
                        ["x-canary-subset", "x-envoy-max-retries"]
                            .map(|h| upstream.header(h).map(str::to_string)),
                    );
                    Response::ok()
                })
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (exchange, seen)
        };
        match name {
            "fault-injector" => {
                let (mut aborted, mut passed) = (0, 0);
                for n in 0..20 {
                    let (exchange, _) = send(
                        Request::get("/analyze")
                            .header("end-user", "tester")
                            .header("x-request-id", &format!("image-{n}")),
                    );
                    match exchange.status() {
                        Some(500) => {
                            assert!(exchange.response_header("x-fault-injected").is_some());
                            aborted += 1;
                        }
                        Some(200) => passed += 1,
                        other => panic!("{name}: status {other:?}"),
                    }
                }
                assert!(
                    aborted > 0 && passed > 0,
                    "{name}: {aborted} aborted, {passed} passed"
                );
                let (other, _) = send(Request::get("/analyze").header("end-user", "jason"));
                assert_eq!(other.status(), Some(200), "{name}");
            }
            "canary-router" => {
                let (exchange, seen) = send(Request::get("/"));
                assert_eq!(exchange.status(), Some(200), "{name}");
                let subset = seen.and_then(|s| s[0].clone());
                assert!(
                    matches!(subset.as_deref(), Some("v1" | "v2")),
                    "{name}: {subset:?}"
                );
                let cookie = exchange.response_header("set-cookie").unwrap_or_default();
                assert!(cookie.starts_with("cpanel-version="), "{name}: {cookie}");
                let (_, tester) = send(Request::get("/").header("end-user", "tester"));
                assert_eq!(tester.and_then(|s| s[0].clone()).as_deref(), Some("v2"));
            }
            "retry-budget" => {
                let (exchange, seen) = send(Request::get("/frames"));
                assert_eq!(exchange.status(), Some(200), "{name}");
                assert_eq!(
                    seen.and_then(|s| s[1].clone()).as_deref(),
                    Some("3"),
                    "{name}"
                );
            }
            other => panic!("{other}: add what its manifest's configuration does to this test"),
        }
    }
}

fn envoy_with(plugin: &PluginUnderTest, module: &Path, upstream: &Upstream) -> Envoy {
    let mut filter = WasmFilter::new(&plugin.name, module)
        .root_id(&plugin.name)
        .vm_id(&plugin.name)
        .configuration(plugin.config());
    for (key, value) in plugin.env() {
        filter = filter.env(key, value);
    }
    let host = VirtualHost::new("all")
        .include_attempt_count_in_response(true)
        .route(Route::new(
            RouteMatch::prefix("/"),
            RouteAction::cluster("upstream"),
        ));
    Envoy::start(
        &Bootstrap::new()
            .listener(Listener::new("ingress").virtual_host(host).filter(filter))
            .cluster(Cluster::new("upstream", upstream.port())),
    )
    .unwrap_or_else(|e| panic!("{}: Envoy does not start with the module: {e}", plugin.name))
}

#[test]
fn each_plugin_image_configures_and_serves_in_envoy() {
    let scratch = tempfile::tempdir().unwrap();
    for plugin in plugins() {
        let name = plugin.name.as_str();
        // The module as the proxy gets it from the image.
        let module = scratch.path().join(format!("{name}.wasm"));
        std::fs::write(&module, &plugin.wasm).unwrap();
        let upstream = Upstream::start("upstream").unwrap();
        let envoy = envoy_with(&plugin, &module, &upstream);
        let url = |path: &str| format!("{}{path}", envoy.url().unwrap());
        let send = |request: EnvoyRequest| -> EnvoyResponse {
            request
                .send()
                .unwrap_or_else(|e| panic!("{name}: {e}\n{}", envoy.log_tail(20)))
        };
        match name {
            "fault-injector" => {
                let (mut aborted, mut passed) = (0, 0);
                for n in 0..20 {
                    let response = send(
                        EnvoyRequest::get(url("/analyze"))
                            .header("end-user", "tester")
                            .header("x-request-id", format!("image-{n}")),
                    );
                    match response.status {
                        500 => {
                            assert!(response.header("x-fault-injected").is_some());
                            aborted += 1;
                        }
                        200 => passed += 1,
                        other => panic!("{name}: status {other}"),
                    }
                }
                assert!(
                    aborted > 0 && passed > 0,
                    "{name}: {aborted} aborted, {passed} passed"
                );
            }
            "canary-router" => {
                let response = send(EnvoyRequest::get(url("/")).header("end-user", "tester"));
                assert_eq!(response.status, 200, "{name}");
                let received = upstream.received();
                let last = received.last().expect("the upstream was reached");
                assert_eq!(last.header("x-canary-subset"), Some("v2"), "{name}");
                assert!(
                    response
                        .header("set-cookie")
                        .is_none_or(|c| c.starts_with("cpanel-version=")),
                    "{name}"
                );
            }
            "retry-budget" => {
                // Only the plugin asks for retries here (the route has no
                // retry policy): the first attempt fails, the second passes.
                upstream.inject(Fault::Status(503), Share::FirstN(1));
                let response = send(EnvoyRequest::get(url("/frames")));
                assert_eq!(response.status, 200, "{name}: {}", envoy.log_tail(20));
                assert_eq!(
                    response.header("x-envoy-attempt-count"),
                    Some("2"),
                    "{name}"
                );
            }
            other => panic!("{other}: add what its manifest's configuration does to this test"),
        }
    }
}
