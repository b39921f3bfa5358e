#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The object envelope: `apiVersion` and `kind` must name a served version of an
//! installed CRD, and `metadata` must be valid `ObjectMeta`.

mod common;

use common::{SCHEMAS, single_violation};
use istio_manifests::ViolationKind;

#[test]
fn every_installed_kind_is_served() {
    let kinds: Vec<String> = SCHEMAS
        .kinds()
        .map(|(group, version, kind)| format!("{group}/{version} {kind}"))
        .collect();
    for expected in [
        "extensions.istio.io/v1alpha1 WasmPlugin",
        "networking.istio.io/v1 VirtualService",
        "networking.istio.io/v1beta1 VirtualService",
        "networking.istio.io/v1alpha3 VirtualService",
        "networking.istio.io/v1 DestinationRule",
        "networking.istio.io/v1 Gateway",
        "gateway.networking.k8s.io/v1 Gateway",
        "gateway.networking.k8s.io/v1 HTTPRoute",
    ] {
        assert!(
            kinds.iter().any(|kind| kind == expected),
            "{expected} missing from {kinds:?}"
        );
    }
}

#[test]
fn unknown_kind_and_unserved_version() {
    let unknown_kind = "apiVersion: networking.istio.io/v1
kind: VirtualServices
metadata:
  name: image-analysis
spec: {}
";
    assert_eq!(
        single_violation(unknown_kind, "kind"),
        ViolationKind::UnknownKind {
            api_version: "networking.istio.io/v1".into(),
            kind: "VirtualServices".into(),
            served: Vec::new(),
        }
    );
    let unknown_version = unknown_kind
        .replace("VirtualServices", "VirtualService")
        .replace("/v1\n", "/v2\n");
    let kind = single_violation(&unknown_version, "apiVersion");
    assert!(
        matches!(&kind, ViolationKind::UnknownKind { served, .. } if served.len() == 3),
        "{kind:?}"
    );
}

#[test]
fn metadata_names_and_labels_follow_kubernetes_rules() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: Image_Analysis
  namespace: airport
spec:
  host: image-analysis
";
    assert!(matches!(
        single_violation(yaml, "metadata.name"),
        ViolationKind::Invalid { .. }
    ));
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: image-analysis
  labels:
    version: 1
spec:
  host: image-analysis
";
    assert_eq!(
        single_violation(yaml, "metadata.labels[version]"),
        ViolationKind::WrongType {
            expected: "string".into(),
            got: "integer"
        }
    );
}
