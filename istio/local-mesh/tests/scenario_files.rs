//! The scenario files as a set: one per step of the seed's walk-through,
//! each saying what it is and what to observe, and each undone by
//! re-applying istio/app (`make all-reset`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn istio() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(istio().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    istio_manifests::parse_documents(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn key(document: &Value) -> (String, String) {
    (
        document["kind"].as_str().unwrap().to_string(),
        document["metadata"]["name"].as_str().unwrap().to_string(),
    )
}

/// The seed's steps (make targets) and the other demos of the seed
/// documents, by file.
const SCENARIOS: &[&str] = &[
    "blue-green-switch",
    "blue-green",
    "canary-user-agent",
    "circuit-breaker",
    "cpanel-50-50",
    "cpanel-canary-sticky",
    "cpanel-v2",
    "dark-launch",
    "fault-injection-500",
    "fault-injection-delay10",
    "load-balancing",
    "mirroring",
    "random",
    "retries",
    "timeout",
];

#[test]
fn there_is_one_file_per_scenario_and_each_says_what_to_observe() {
    let mut names: Vec<String> = yaml_files("scenarios")
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = SCENARIOS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for path in yaml_files("scenarios") {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# "),
            "{}: no header comment",
            path.display()
        );
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
            .to_lowercase();
        assert!(
            header.contains("seed") && header.contains("observe"),
            "{}: the header should name the seed step and what to observe:\n{header}",
            path.display()
        );
    }
}

#[test]
fn re_applying_the_app_undoes_every_scenario() {
    let app: BTreeSet<(String, String)> = yaml_files("app")
        .iter()
        .flat_map(|p| documents(p))
        .map(|d| key(&d))
        .collect();
    // Blue/green adds host names of its own; kubectl apply never deletes, so
    // those stay until deleted (their file says so).
    let own_names = [
        ("VirtualService".to_string(), "cpanel-live".to_string()),
        ("VirtualService".to_string(), "cpanel-test".to_string()),
    ];
    for path in yaml_files("scenarios") {
        for document in documents(&path) {
            let key = key(&document);
            assert!(
                app.contains(&key) || own_names.contains(&key),
                "{}: {key:?} is not one of istio/app's resources, so `make all-reset` would leave it",
                path.display()
            );
        }
    }
}
