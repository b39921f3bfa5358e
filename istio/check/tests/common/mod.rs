//! Helpers shared by the integration tests: the installed schemas, loaded once
//! per test binary, and one-document validation that returns every violation.
#![allow(dead_code)]

use std::sync::LazyLock;

use istio_manifests::{Schemas, Violation, ViolationKind, parse_documents};

pub static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| {
    Schemas::load_installed().unwrap_or_else(|error| panic!("the installed schemas load: {error}"))
});

/// The violations of the single document in `yaml` (empty when it is valid).
pub fn violations(yaml: &str) -> Vec<Violation> {
    let documents = parse_documents(yaml).expect("test YAML parses");
    assert_eq!(documents.len(), 1, "one document per test manifest");
    match SCHEMAS.validate(&documents[0]) {
        Ok(()) => Vec::new(),
        Err(invalid) => invalid.violations,
    }
}

/// Asserts that `yaml` has exactly one violation, at `path`, and returns its kind.
pub fn single_violation(yaml: &str, path: &str) -> ViolationKind {
    let found = violations(yaml);
    assert_eq!(
        found.len(),
        1,
        "expected one violation at {path}, got: {found:#?}"
    );
    assert_eq!(found[0].path, path, "{found:#?}");
    found[0].kind.clone()
}

/// Asserts that `yaml` is valid, printing the violations if not.
pub fn assert_valid(yaml: &str) {
    let found = violations(yaml);
    assert!(found.is_empty(), "expected no violation, got: {found:#?}");
}

/// A VirtualService for image-analysis whose only HTTP route carries `fault`
/// (YAML indented for its place under `- fault:`).
pub fn virtual_service_with_fault(fault: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: image-analysis
  namespace: airport
spec:
  hosts:
  - image-analysis
  http:
  - fault:
{fault}
    route:
    - destination:
        host: image-analysis
        subset: v1
"
    )
}

/// A minimal valid WasmPlugin plus `extra` lines under `spec:` (indented by 2).
pub fn wasm_plugin_with(extra: &str) -> String {
    format!(
        "apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: fault-injector
  namespace: airport
spec:
  url: file:///etc/istio/extensions/fault_injector.wasm
{extra}
"
    )
}
