//! `WasmPlugin` resources as Envoy Wasm filters in the mesh.
//!
//! The module comes from the project's own build
//! (`target/wasm-artifacts/wasm32-wasip1/wasm/`), found by the last segment
//! of the plugin's `url` (`oci://ghcr.io/airport-mesh/canary-router:0.1.0` →
//! `canary_router.wasm`). Where it runs follows the selector and `match.mode`,
//! as in a cluster: `istio: ingressgateway` is the gateway; other labels pick
//! pods, and in `SERVER` mode the plugin runs on those pods' inbound side
//! (each pod's own inbound listener), in `CLIENT` mode on their outbound side.
//! The local mesh has one outbound listener per destination Service for all
//! its callers, so a `CLIENT` plugin runs on the listeners of the Services
//! the selected pods call (known from the URLs in their environment) and also
//! sees those Services' other callers: the summary line says so. Filters are
//! ordered as Istio orders them: by phase (AUTHN, AUTHZ, STATS, then the
//! unspecified phase just before the router), then by descending `priority`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use envoy_rig::{FailurePolicy, HttpFilter, WasmFilter};
use local_mesh::GATEWAY;
use serde_json::Value;

/// What went wrong with a WasmPlugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("WasmPlugin/{name}: {message}")]
    Invalid { name: String, message: String },
    /// One of this project's modules, not built yet.
    #[error("WasmPlugin/{name}: module {module} is not built; run `make wasm`")]
    NotBuilt { name: String, module: String },
    /// A module this repository does not build: the local mesh fetches
    /// nothing from a registry.
    #[error(
        "WasmPlugin/{name}: spec.url {url} is not one of this project's plugins ({known}); the local mesh runs only the modules this repository builds and fetches nothing from a registry"
    )]
    ThirdParty {
        name: String,
        url: String,
        known: String,
    },
}

/// Where the plugins run, each list in Istio's order.
#[derive(Debug, Default)]
pub struct Placement {
    /// Outbound listeners (a Service name, or [`GATEWAY`]) → their filters.
    pub outbound: BTreeMap<String, Vec<HttpFilter>>,
    /// Inbound filters with the pod labels they select.
    pub inbound: Vec<(BTreeMap<String, String>, HttpFilter)>,
    /// A line per plugin, for people.
    pub summary: Vec<String>,
}

impl Placement {
    /// The inbound filters of a pod with `labels`.
    pub fn inbound_for(&self, labels: &BTreeMap<String, String>) -> Vec<HttpFilter> {
        self.inbound
            .iter()
            .filter(|(selector, _)| selects(selector, labels))
            .map(|(_, filter)| filter.clone())
            .collect()
    }
}

/// Whether a selector picks a pod (an empty selector picks every pod).
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// What the plugins need to know about the running app.
#[derive(Debug)]
pub struct Topology<'a> {
    /// Each Deployment's pod labels, and the Services its pods call.
    pub workloads: &'a [(BTreeMap<String, String>, BTreeSet<String>)],
}

/// The modules this repository builds: `wasm-plugins/<name>` crates built
/// as a `cdylib` (`canary_router.wasm`, ...), in name order.
pub fn project_modules(repo: &Path) -> Vec<String> {
    let mut modules: Vec<String> = std::fs::read_dir(repo.join("wasm-plugins"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_to_string(entry.path().join("Cargo.toml"))
                .is_ok_and(|manifest| manifest.contains("cdylib"))
        })
        .map(|entry| {
            format!(
                "{}.wasm",
                entry.file_name().to_string_lossy().replace('-', "_")
            )
        })
        .collect();
    modules.sort();
    modules
}

/// The `.wasm` a plugin `url` names, in `wasm_dir`.
pub fn module_file(url: &str) -> String {
    let without_digest = url.split('@').next().unwrap_or(url);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    if last.ends_with(".wasm") {
        last.to_string()
    } else {
        format!(
            "{}.wasm",
            last.split(':').next().unwrap_or(last).replace('-', "_")
        )
    }
}

fn phase_rank(phase: &str) -> u8 {
    match phase {
        "AUTHN" => 0,
        "AUTHZ" => 1,
        "STATS" => 2,
        _ => 3,
    }
}

/// Places every `WasmPlugin` of `documents`. `secret` gives the value of a
/// `vmConfig.env` entry with `valueFrom: HOST` (in a cluster the proxy's own
/// environment).
pub fn place(
    documents: &[&Value],
    wasm_dir: &Path,
    project: &[String],
    topology: &Topology<'_>,
    secret: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Placement, PluginError> {
    // (phase, -priority, name, where, filter); `where` is an outbound key
    // or, for the inbound side, `None` with the selector beside it.
    type Placed = (
        u8,
        i64,
        String,
        Option<String>,
        BTreeMap<String, String>,
        HttpFilter,
    );
    let mut ordered: Vec<Placed> = Vec::new();
    let mut summary = Vec::new();
    for doc in documents.iter().filter(|d| d["kind"] == "WasmPlugin") {
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let invalid = |message: String| PluginError::Invalid {
            name: name.clone(),
            message,
        };
        let spec = &doc["spec"];
        for refused in ["targetRef", "targetRefs"] {
            if !spec[refused].is_null() {
                return Err(invalid(format!(
                    "spec.{refused} is not supported by the local mesh (use selector.matchLabels)"
                )));
            }
        }
        if spec["type"].as_str().is_some_and(|t| t != "HTTP") {
            return Err(invalid(
                "spec.type: the local mesh runs HTTP plugins only".into(),
            ));
        }
        let url = spec["url"]
            .as_str()
            .ok_or_else(|| invalid("spec.url is missing".into()))?;
        let module = module_file(url);
        if !project.contains(&module) {
            return Err(PluginError::ThirdParty {
                name,
                url: url.to_string(),
                known: project
                    .iter()
                    .map(|m| m.trim_end_matches(".wasm").replace('_', "-"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let wasm = wasm_dir.join(&module);
        if !wasm.is_file() {
            return Err(PluginError::NotBuilt { name, module });
        }
        let mut modes = BTreeSet::new();
        for (index, selector) in spec["match"].as_array().into_iter().flatten().enumerate() {
            if !selector["ports"].is_null() {
                return Err(invalid(format!(
                    "spec.match[{index}].ports is not supported by the local mesh (one port per Service)"
                )));
            }
            modes.insert(
                selector["mode"]
                    .as_str()
                    .unwrap_or("CLIENT_AND_SERVER")
                    .to_string(),
            );
        }
        if modes.is_empty() {
            modes.insert("CLIENT_AND_SERVER".to_string());
        }
        let selector: BTreeMap<String, String> = spec["selector"]["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        let gateway = selector.get("istio").is_some_and(|v| v == "ingressgateway");
        let mut outbound: BTreeSet<String> = BTreeSet::new();
        let mut inbound = false;
        let mut places = Vec::new();
        if gateway {
            outbound.insert(GATEWAY.to_string());
            places.push("the ingress gateway".to_string());
        } else {
            let selected: Vec<&(BTreeMap<String, String>, BTreeSet<String>)> = topology
                .workloads
                .iter()
                .filter(|(labels, _)| selects(&selector, labels))
                .collect();
            let labels = if selector.is_empty() {
                "every pod".to_string()
            } else {
                selector
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            if modes.iter().any(|m| m != "CLIENT") {
                inbound = true;
                places.push(format!("the inbound side of {labels}"));
            }
            if modes.iter().any(|m| m != "SERVER") {
                for (_, calls) in &selected {
                    outbound.extend(calls.iter().cloned());
                }
                if !outbound.is_empty() {
                    places.push(format!(
                        "calls from {labels} to {} (their other callers pass it too)",
                        outbound.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        let config = serde_json::to_string(&spec["pluginConfig"])
            .map_err(|e| invalid(format!("spec.pluginConfig: {e}")))?;
        let root_id = spec["pluginName"].as_str().unwrap_or(&name).to_string();
        let mut filter = WasmFilter::new(&name, &wasm)
            .root_id(&root_id)
            .vm_id(&name)
            .configuration(config);
        filter = filter.failure_policy(match spec["failStrategy"].as_str() {
            Some("FAIL_OPEN") => FailurePolicy::FailOpen,
            Some("FAIL_RELOAD") => FailurePolicy::FailReload,
            _ => FailurePolicy::FailClosed,
        });
        for (index, env) in spec["vmConfig"]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(key) = env["name"].as_str() else {
                return Err(invalid(format!(
                    "spec.vmConfig.env[{index}].name is missing"
                )));
            };
            let value = if env["valueFrom"] == "HOST" {
                secret(key).map_err(invalid)?
            } else {
                env["value"].as_str().unwrap_or_default().to_string()
            };
            filter = filter.env(key, &value);
        }
        let phase = spec["phase"]
            .as_str()
            .unwrap_or("UNSPECIFIED_PHASE")
            .to_string();
        let priority = spec["priority"].as_i64().unwrap_or(0);
        summary.push(format!(
            "{name} ({}) on {}",
            module_file(url),
            if places.is_empty() {
                "nothing running yet".to_string()
            } else {
                places.join(" and ")
            }
        ));
        let rank = phase_rank(&phase);
        for key in outbound {
            ordered.push((
                rank,
                -priority,
                name.clone(),
                Some(key),
                BTreeMap::new(),
                filter.clone().into(),
            ));
        }
        if inbound {
            ordered.push((rank, -priority, name.clone(), None, selector, filter.into()));
        }
    }
    ordered.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    let mut placement = Placement {
        summary,
        ..Placement::default()
    };
    for (_, _, _, key, selector, filter) in ordered {
        match key {
            Some(key) => placement.outbound.entry(key).or_default().push(filter),
            None => placement.inbound.push((selector, filter)),
        }
    }
    Ok(placement)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn module_names_follow_the_url() {
        assert_eq!(
            module_file("oci://ghcr.io/airport-mesh/canary-router:0.1.0"),
            "canary_router.wasm"
        );
        assert_eq!(
            module_file("oci://ghcr.io/airport-mesh/retry-budget:0.1.0@sha256:00ff"),
            "retry_budget.wasm"
        );
        assert_eq!(
            module_file("file:///var/lib/wasm/fault_injector.wasm"),
            "fault_injector.wasm"
        );
    }

    /// The modules the test plugins may name.
    fn project() -> Vec<String> {
        ["test_plugin.wasm".to_string()].to_vec()
    }

    #[test]
    fn this_repositorys_modules_are_its_cdylib_plugins() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        assert_eq!(
            project_modules(&repo),
            [
                "canary_router.wasm",
                "fault_injector.wasm",
                "retry_budget.wasm"
            ]
        );
    }

    #[test]
    fn a_third_party_module_is_refused_without_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut doc = plugin(json!({"app": "x"}), "SERVER", "AUTHN");
        doc["spec"]["url"] = json!("oci://ghcr.io/istio-ecosystem/wasm-extensions/openid:1.0");
        let workloads = no_topology();
        let topology = Topology {
            workloads: &workloads,
        };
        let err = place(
            &[&doc],
            dir.path(),
            &[
                "canary_router.wasm".to_string(),
                "retry_budget.wasm".to_string(),
            ],
            &topology,
            &mut |_| Ok(String::new()),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "WasmPlugin/p-AUTHN: spec.url oci://ghcr.io/istio-ecosystem/wasm-extensions/openid:1.0 \
             is not one of this project's plugins (canary-router, retry-budget); the local mesh \
             runs only the modules this repository builds and fetches nothing from a registry"
        );
        assert!(!err.contains(&dir.path().display().to_string()));
    }

    fn plugin(selector: Value, mode: &str, phase: &str) -> Value {
        json!({"kind": "WasmPlugin", "metadata": {"name": format!("p-{phase}")}, "spec": {
            "url": "oci://x/test-plugin:1", "selector": {"matchLabels": selector},
            "match": [{"mode": mode}], "phase": phase, "pluginConfig": {"a": 1}}})
    }

    fn names(filters: &[HttpFilter]) -> Vec<String> {
        filters
            .iter()
            .map(|f| {
                // The filter's name, from its Debug form (its JSON is private to the rig).
                let text = format!("{f:?}");
                let start = text.find("name: \"").unwrap() + 7;
                text[start..].split('"').next().unwrap().to_string()
            })
            .collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_and_modes_pick_sides_in_phase_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test_plugin.wasm"), b"\0asm").unwrap();
        let workloads = vec![
            (
                labels(&[("app", "collector"), ("version", "v1")]),
                BTreeSet::from(["alerts".to_string(), "section-1".to_string()]),
            ),
            (
                labels(&[("app", "alerts"), ("version", "v1")]),
                BTreeSet::new(),
            ),
        ];
        let topology = Topology {
            workloads: &workloads,
        };
        let docs = [
            plugin(json!({"app": "collector"}), "CLIENT", "UNSPECIFIED_PHASE"),
            plugin(json!({"app": "collector"}), "SERVER", "STATS"),
            plugin(json!({"app": "collector"}), "CLIENT", "AUTHN"),
            plugin(json!({"istio": "ingressgateway"}), "CLIENT", "AUTHZ"),
        ];
        let refs: Vec<&Value> = docs.iter().collect();
        let placed = place(&refs, dir.path(), &project(), &topology, &mut |_| {
            Ok("k".into())
        })
        .unwrap();
        assert_eq!(
            names(&placed.outbound["alerts"]),
            ["p-AUTHN", "p-UNSPECIFIED_PHASE"]
        );
        assert_eq!(
            names(&placed.outbound["section-1"]),
            ["p-AUTHN", "p-UNSPECIFIED_PHASE"]
        );
        assert!(!placed.outbound.contains_key("collector"));
        assert_eq!(names(&placed.outbound[GATEWAY]), ["p-AUTHZ"]);
        // SERVER: on the collector pods' inbound side only.
        assert_eq!(
            names(&placed.inbound_for(&labels(&[("app", "collector"), ("version", "v1")]))),
            ["p-STATS"]
        );
        assert!(placed.inbound_for(&labels(&[("app", "alerts")])).is_empty());
    }

    fn no_topology() -> Vec<(BTreeMap<String, String>, BTreeSet<String>)> {
        Vec::new()
    }

    #[test]
    fn a_missing_module_says_make_wasm() {
        let dir = tempfile::tempdir().unwrap();
        let doc = plugin(json!({"app": "x"}), "SERVER", "STATS");
        let workloads = no_topology();
        let topology = Topology {
            workloads: &workloads,
        };
        let err = place(&[&doc], dir.path(), &project(), &topology, &mut |_| {
            Ok(String::new())
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "WasmPlugin/p-STATS: module test_plugin.wasm is not built; run `make wasm`"
        );
    }

    #[test]
    fn target_refs_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut doc = plugin(json!({"app": "x"}), "SERVER", "STATS");
        doc["spec"]["targetRefs"] = json!([{"kind": "Gateway", "name": "g"}]);
        let workloads = no_topology();
        let topology = Topology {
            workloads: &workloads,
        };
        let err = place(&[&doc], dir.path(), &project(), &topology, &mut |_| {
            Ok(String::new())
        })
        .unwrap_err();
        assert!(err.to_string().contains("spec.targetRefs"), "{err}");
    }
}
