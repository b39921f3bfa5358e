#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! String limits (`pattern`, `minLength`) and list rules (`maxItems`,
//! `x-kubernetes-list-type: map` keys), on WasmPlugin fields.

mod common;

use common::{assert_valid, single_violation, wasm_plugin_with};
use istio_manifests::ViolationKind;

#[test]
fn sha256_must_match_its_pattern() {
    let yaml = wasm_plugin_with("  sha256: ABC");
    assert_eq!(
        single_violation(&yaml, "spec.sha256"),
        ViolationKind::PatternMismatch {
            value: "\"ABC\"".into(),
            pattern: "(^$|^[a-f0-9]{64}$)".into()
        }
    );
    assert_valid(&wasm_plugin_with(&format!("  sha256: {}", "ab".repeat(32))));
}

#[test]
fn plugin_name_cannot_be_empty() {
    let yaml = wasm_plugin_with("  pluginName: \"\"");
    assert_eq!(
        single_violation(&yaml, "spec.pluginName"),
        ViolationKind::TooShort {
            length: 0,
            limit: 1
        }
    );
}

#[test]
fn list_map_keys_must_be_unique() {
    let yaml = wasm_plugin_with(
        "  vmConfig:
    env:
    - name: RULES
      value: a
    - name: MODE
      value: b
    - name: RULES
      value: c",
    );
    assert_eq!(
        single_violation(&yaml, "spec.vmConfig.env[2]"),
        ViolationKind::Duplicate {
            key: "key (name: \"RULES\")".into(),
            first: 0
        }
    );
}

#[test]
fn max_items() {
    let refs: String = (0..17)
        .map(|index| format!("\n  - kind: Service\n    name: svc-{index}"))
        .collect();
    let yaml = wasm_plugin_with(&format!("  targetRefs:{refs}"));
    assert_eq!(
        single_violation(&yaml, "spec.targetRefs"),
        ViolationKind::TooManyItems {
            count: 17,
            limit: 16
        }
    );
}
