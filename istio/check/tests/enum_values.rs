#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Enumerated string fields accept only their listed values.

mod common;

use common::{assert_valid, single_violation, violations, wasm_plugin_with};
use istio_manifests::ViolationKind;

#[test]
fn wasm_plugin_phase_must_be_a_known_phase() {
    let yaml = wasm_plugin_with("  phase: BEFORE_AUTHN");
    let kind = single_violation(&yaml, "spec.phase");
    assert_eq!(
        kind,
        ViolationKind::NotInEnum {
            value: "\"BEFORE_AUTHN\"".into(),
            allowed: ["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"]
                .map(|phase| format!("\"{phase}\""))
                .to_vec(),
        }
    );
    assert_eq!(
        violations(&yaml)[0].to_string(),
        "spec.phase: \"BEFORE_AUTHN\" is not one of \"UNSPECIFIED_PHASE\", \"AUTHN\", \"AUTHZ\", \"STATS\""
    );
    assert_valid(&wasm_plugin_with("  phase: AUTHN"));
}

#[test]
fn enum_values_are_case_sensitive() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: image-analysis
spec:
  host: image-analysis
  trafficPolicy:
    loadBalancer:
      simple: random
";
    let kind = single_violation(yaml, "spec.trafficPolicy.loadBalancer.simple");
    assert!(
        matches!(&kind, ViolationKind::NotInEnum { value, .. } if value == "\"random\""),
        "{kind:?}"
    );
    assert_valid(&yaml.replace("random", "RANDOM"));
}
