#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every document under `istio/` (outside `check/`) is valid: Istio and
//! Gateway API kinds against their CRD schemas, Kubernetes' own kinds
//! (Deployments, Services, ConfigMaps...) against the Kubernetes schemas, all
//! as `make crds` installs them. A document of a kind none knows fails.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use istio_manifests::{is_istio, manifests_dir, parse_documents};

/// Manifests this test must have validated, so it can never pass on an empty
/// or misdirected walk.
const SAMPLES: &[&str] = &[
    "app/destination-rules.yaml",
    "scenarios/fault-injection-500.yaml",
    "scenarios/fault-injection-delay10.yaml",
    "workloads/cpanel.yaml",
];

/// Kubernetes kinds this test must have validated.
const KUBERNETES_SAMPLES: &[&str] = &["Deployment", "Service", "ConfigMap", "Namespace"];

fn yaml_files(dir: &Path, root: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let relative = path.strip_prefix(root).expect("under istio/");
        if path.is_dir() {
            if relative != Path::new("check") {
                yaml_files(&path, root, found);
            }
        } else if matches!(
            path.extension().and_then(|extension| extension.to_str()),
            Some("yaml" | "yml")
        ) {
            found.push(relative.to_path_buf());
        }
    }
}

#[test]
fn every_manifest_is_valid() {
    let root = manifests_dir();
    let mut files = Vec::new();
    yaml_files(&root, &root, &mut files);

    let mut failures = Vec::new();
    let mut validated: BTreeMap<String, usize> = BTreeMap::new();
    let mut kubernetes: BTreeMap<String, usize> = BTreeMap::new();
    let mut files_validated = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(root.join(file)).expect("manifest is readable");
        let documents = match parse_documents(&text) {
            Ok(documents) => documents,
            Err(error) => {
                failures.push(format!("istio/{}: {error}", file.display()));
                continue;
            }
        };
        for (index, document) in documents.iter().enumerate() {
            let kind = document
                .get("kind")
                .and_then(|kind| kind.as_str())
                .unwrap_or("<no kind>")
                .to_owned();
            if is_istio(document) {
                *validated.entry(kind.clone()).or_default() += 1;
            } else {
                *kubernetes.entry(kind.clone()).or_default() += 1;
            }
            if let Err(invalid) = common::SCHEMAS.validate(document) {
                let name = document
                    .pointer("/metadata/name")
                    .and_then(|name| name.as_str())
                    .unwrap_or("<no name>");
                for violation in invalid.violations {
                    failures.push(format!(
                        "istio/{} (document {}, {kind}/{name}): {violation}",
                        file.display(),
                        index + 1
                    ));
                }
            }
        }
        if !documents.is_empty() {
            files_validated.push(file.to_string_lossy().into_owned());
        }
    }

    let total: usize = validated.values().sum();
    println!(
        "istio/: {} YAML files; validated {total} Istio documents {validated:?} and {} Kubernetes documents {kubernetes:?}",
        files.len(),
        kubernetes.values().sum::<usize>()
    );
    assert!(
        failures.is_empty(),
        "{} schema violations:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for sample in SAMPLES {
        assert!(
            files_validated.iter().any(|file| file == sample),
            "istio/{sample} was not validated (found: {files_validated:?})"
        );
    }
    for kind in KUBERNETES_SAMPLES {
        assert!(
            kubernetes.contains_key(*kind),
            "no {kind} validated (found: {kubernetes:?})"
        );
    }
    assert!(
        total >= SAMPLES.len(),
        "validated only {total} Istio documents"
    );
}
