//! istio/gateway-api/ stays whole: every seed scenario of istio/scenarios/
//! has a Gateway API form there or a row of its README saying why not, and
//! every Gateway API scenario file translates with the Gateway API app.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use local_mesh::{Workload, translate};
use serde_json::Value;

fn istio() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_names(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(istio().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

fn documents(relative: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(istio().join(relative)).unwrap();
    istio_manifests::parse_documents(&text).unwrap()
}

#[test]
fn every_seed_scenario_has_a_gateway_api_form_or_a_reason() {
    let readme = std::fs::read_to_string(istio().join("gateway-api/README.md")).unwrap();
    let forms = yaml_names("gateway-api/scenarios");
    let mut missing = Vec::new();
    for name in yaml_names("scenarios") {
        if forms.contains(&name) {
            continue;
        }
        // The README's row for it names the VirtualService form and says
        // what the Gateway API form is instead.
        let stem = name.trim_end_matches(".yaml");
        let row = readme
            .lines()
            .find(|l| l.starts_with('|') && l.contains(&format!("scenarios/{stem}")));
        if row.is_none() {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "no Gateway API form and no README row: {missing:?}"
    );
    // And no Gateway API scenario without its seed scenario.
    let seeds = yaml_names("scenarios");
    let strays: Vec<&String> = forms.iter().filter(|f| !seeds.contains(f)).collect();
    assert!(strays.is_empty(), "{strays:?}");
}

#[test]
fn every_gateway_api_scenario_translates_with_the_gateway_api_app() {
    let workloads: Vec<Workload> = [
        ("cpanel", "v1"),
        ("cpanel", "v2"),
        ("collector", "v1"),
        ("alerts", "v1"),
        ("section-1", "v1"),
        ("camera-1", "v1"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (service, version))| Workload {
        service: (*service).into(),
        namespace: "airport".into(),
        version: (*version).into(),
        port: 21000 + u16::try_from(i).unwrap(),
    })
    .collect();
    let mut translated = 0;
    for name in yaml_names("gateway-api/scenarios") {
        let mut all = Vec::new();
        for file in [
            "gateway-api/gateway.yaml",
            "gateway-api/services.yaml",
            "gateway-api/routes.yaml",
            "app/destination-rules.yaml",
        ] {
            all.extend(documents(file));
        }
        all.extend(documents(&format!("gateway-api/scenarios/{name}")));
        let translation = translate(&all, &workloads, 0, &BTreeMap::new(), &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(translation.listeners.gateway.is_some(), "{name}");
        translated += 1;
    }
    assert!(translated >= 10, "only {translated} scenario files");
}
