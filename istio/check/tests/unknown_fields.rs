#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Unknown fields are refused, as kubectl's strict field validation does,
//! except where the schema keeps them or is a map.

mod common;

use common::{
    assert_valid, single_violation, violations, virtual_service_with_fault, wasm_plugin_with,
};
use istio_manifests::ViolationKind;

#[test]
fn misspelt_field_is_refused_with_its_path() {
    let yaml = virtual_service_with_fault(
        "      abort:
        percentage:
          value: 50
        httpStatuss: 500",
    );
    let kind = single_violation(&yaml, "spec.http[0].fault.abort.httpStatuss");
    assert_eq!(kind, ViolationKind::UnknownField);
    assert_eq!(
        violations(&yaml)[0].to_string(),
        "spec.http[0].fault.abort.httpStatuss: unknown field"
    );
}

#[test]
fn unknown_top_level_and_metadata_fields_are_refused() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: image-analysis
  labelz:
    app: image-analysis
spec:
  host: image-analysis
specs:
  host: image-analysis
";
    let found = violations(yaml);
    let paths: Vec<&str> = found.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, ["metadata.labelz", "specs"], "{found:#?}");
    assert!(found.iter().all(|v| v.kind == ViolationKind::UnknownField));
}

#[test]
fn preserved_fields_and_maps_accept_any_key() {
    // pluginConfig has x-kubernetes-preserve-unknown-fields; headers.set is a
    // map (additionalProperties).
    assert_valid(&wasm_plugin_with(
        "  pluginConfig:
    rules:
    - anything: goes
      nested: {deeply: [1, 2]}",
    ));
    assert_valid(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: image-analysis
spec:
  hosts: [image-analysis]
  http:
  - headers:
      request:
        set:
          x-chaos-test: \"on\"
          x-anything: yes
    route:
    - destination:
        host: image-analysis
",
    );
}

#[test]
fn map_values_are_still_checked() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: image-analysis
spec:
  hosts: [image-analysis]
  http:
  - headers:
      request:
        set:
          x-retries: 3
    route:
    - destination:
        host: image-analysis
";
    let kind = single_violation(yaml, "spec.http[0].headers.request.set[x-retries]");
    assert_eq!(
        kind,
        ViolationKind::WrongType {
            expected: "string".into(),
            got: "integer"
        }
    );
}
