#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `x-kubernetes-int-or-string`: an integer or a string, nothing else. Istio's
//! CRDs use it only in `status`, which is checked like `spec`; a small CRD
//! shows it in a spec too.

mod common;

use common::{assert_valid, single_violation};
use istio_manifests::{Schemas, ViolationKind, parse_documents};
use serde_json::json;

fn destination_rule_with_status(observed_generation: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: image-analysis
spec:
  host: image-analysis
status:
  observedGeneration: {observed_generation}
  conditions:
  - type: Reconciled
    observedGeneration: {observed_generation}
"
    )
}

#[test]
fn integers_and_strings_pass() {
    assert_valid(&destination_rule_with_status("3"));
    assert_valid(&destination_rule_with_status("\"3\""));
}

#[test]
fn other_types_are_refused_with_their_path() {
    let yaml = destination_rule_with_status("true").replacen(
        "  observedGeneration: true\n  conditions",
        "  observedGeneration: 2\n  conditions",
        1,
    );
    assert_eq!(
        single_violation(&yaml, "status.conditions[0].observedGeneration"),
        ViolationKind::WrongType {
            expected: "integer or string".into(),
            got: "boolean"
        }
    );
    let yaml = destination_rule_with_status("1.5").replacen(
        "    observedGeneration: 1.5\n",
        "    observedGeneration: 1\n",
        1,
    );
    assert_eq!(
        single_violation(&yaml, "status.observedGeneration"),
        ViolationKind::WrongType {
            expected: "integer or string".into(),
            got: "number"
        }
    );
}

#[test]
fn int_or_string_in_a_spec_field() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "probes.example.test"},
        "spec": {
            "group": "example.test",
            "names": {"kind": "Probe"},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {"port": {"x-kubernetes-int-or-string": true}}
                    }}
                }}
            }]
        }
    });
    let mut schemas = Schemas::default();
    schemas.add_crd(&crd).unwrap();
    let probe = |port: &str| {
        let yaml = format!(
            "apiVersion: example.test/v1\nkind: Probe\nmetadata: {{name: p}}\nspec: {{port: {port}}}\n"
        );
        schemas.validate(&parse_documents(&yaml).unwrap()[0])
    };
    assert!(probe("8080").is_ok());
    assert!(probe("http").is_ok());
    let invalid = probe("[8080]").unwrap_err();
    assert_eq!(
        invalid.to_string(),
        "spec.port: expected integer or string, got array"
    );
}
