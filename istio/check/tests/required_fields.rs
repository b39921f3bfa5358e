#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Required fields, in the schema and in the object envelope.

mod common;

use common::{assert_valid, single_violation, violations, wasm_plugin_with};
use istio_manifests::ViolationKind;

#[test]
fn wasm_plugin_without_url() {
    let yaml = "apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: fault-injector
spec:
  phase: AUTHN
";
    assert_eq!(
        single_violation(yaml, "spec.url"),
        ViolationKind::MissingRequired
    );
    assert_eq!(
        violations(yaml)[0].to_string(),
        "spec.url: required field is missing"
    );
    assert_valid(&wasm_plugin_with("  phase: AUTHN"));
}

#[test]
fn null_for_a_required_field_is_missing() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: image-analysis
spec:
  host: null
";
    assert_eq!(
        single_violation(yaml, "spec.host"),
        ViolationKind::MissingRequired
    );
}

#[test]
fn required_inside_list_items() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: image-analysis
spec:
  host: image-analysis
  subsets:
  - name: v1
    labels: {version: v1}
  - labels: {version: v2}
";
    assert_eq!(
        single_violation(yaml, "spec.subsets[1].name"),
        ViolationKind::MissingRequired
    );
}

#[test]
fn whole_spec_is_required_where_the_crd_says_so() {
    let yaml = "apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: fault-injector
";
    assert_eq!(
        single_violation(yaml, "spec"),
        ViolationKind::MissingRequired
    );
}

#[test]
fn metadata_needs_a_name() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  namespace: airport
spec:
  host: image-analysis
";
    assert_eq!(
        single_violation(yaml, "metadata.name"),
        ViolationKind::MissingRequired
    );
    let no_metadata = "apiVersion: networking.istio.io/v1
kind: DestinationRule
spec:
  host: image-analysis
";
    assert_eq!(
        single_violation(no_metadata, "metadata"),
        ViolationKind::MissingRequired
    );
}
