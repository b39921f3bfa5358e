#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Kubernetes' built-in kinds against the installed Kubernetes 1.33 schemas:
//! a good Deployment passes; a misspelt field, a wrong type, a missing
//! required field or an unknown kind fail with the field's path.

mod common;

use common::{SCHEMAS, assert_valid, single_violation, violations};
use istio_manifests::{KUBERNETES_VERSION, ViolationKind};

/// A Deployment as istio/workloads writes them, with `container` lines (the
/// container's fields, indented by 8) in place of the usual ones.
fn deployment_with_container(container: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: cpanel-v1
  namespace: airport
  labels: {{app: cpanel, version: v1}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: cpanel, version: v1}}
  template:
    metadata:
      labels: {{app: cpanel, version: v1}}
    spec:
      containers:
      - {}
",
        container.trim_start()
    )
}

const GOOD_CONTAINER: &str = "
        name: control-panel
        image: ghcr.io/airport-mesh/control-panel:0.1.0
        ports:
        - name: http
          containerPort: 8080
        env:
        - name: SERVICE_VERSION
          value: v1
        readinessProbe:
          httpGet: {path: /readyz, port: http}
        livenessProbe:
          httpGet: {path: /healthz, port: 8080}
          initialDelaySeconds: 5
        resources:
          requests: {cpu: 50m, memory: 32Mi}
          limits: {cpu: 0.5, memory: 128Mi}";

#[test]
fn the_kubernetes_version_is_the_installed_one() {
    assert_eq!(KUBERNETES_VERSION, "1.33");
    let kinds: Vec<String> = SCHEMAS
        .kinds()
        .map(|(group, version, kind)| format!("{group}/{version} {kind}"))
        .collect();
    for expected in [
        "apps/v1 Deployment",
        "/v1 Service",
        "/v1 ConfigMap",
        "/v1 ServiceAccount",
        "/v1 Namespace",
        "autoscaling/v2 HorizontalPodAutoscaler",
        "policy/v1 PodDisruptionBudget",
    ] {
        assert!(kinds.contains(&expected.to_string()), "{expected}");
    }
}

#[test]
fn a_good_deployment_passes() {
    assert_valid(&deployment_with_container(GOOD_CONTAINER));
}

#[test]
fn an_unknown_field_fails_with_its_path() {
    let yaml = deployment_with_container(&format!(
        "{GOOD_CONTAINER}\n        imagePullPolice: Always"
    ));
    let kind = single_violation(&yaml, "spec.template.spec.containers[0].imagePullPolice");
    assert_eq!(kind, ViolationKind::UnknownField);
    // Deep inside a referenced definition too (HTTPGetAction).
    let yaml = deployment_with_container(&GOOD_CONTAINER.replace(
        "httpGet: {path: /readyz, port: http}",
        "httpGet: {paht: /readyz, port: http}",
    ));
    assert_eq!(
        single_violation(
            &yaml,
            "spec.template.spec.containers[0].readinessProbe.httpGet.paht"
        ),
        ViolationKind::UnknownField
    );
}

#[test]
fn a_wrong_type_fails_with_its_path() {
    let yaml = deployment_with_container(GOOD_CONTAINER).replace("replicas: 2", "replicas: two");
    assert_eq!(
        single_violation(&yaml, "spec.replicas"),
        ViolationKind::WrongType {
            expected: "integer".into(),
            got: "string"
        }
    );
    let yaml = deployment_with_container(
        &GOOD_CONTAINER.replace("containerPort: 8080", "containerPort: [8080]"),
    );
    assert_eq!(
        single_violation(
            &yaml,
            "spec.template.spec.containers[0].ports[0].containerPort"
        ),
        ViolationKind::WrongType {
            expected: "integer".into(),
            got: "array"
        }
    );
}

#[test]
fn a_missing_required_field_fails_with_its_path() {
    let yaml = deployment_with_container(&GOOD_CONTAINER.replace("name: control-panel\n", ""));
    assert_eq!(
        single_violation(&yaml, "spec.template.spec.containers[0].name"),
        ViolationKind::MissingRequired
    );
    let no_selector = deployment_with_container(GOOD_CONTAINER).replace(
        "  selector:\n    matchLabels: {app: cpanel, version: v1}\n",
        "",
    );
    assert_eq!(
        single_violation(&no_selector, "spec.selector"),
        ViolationKind::MissingRequired
    );
}

#[test]
fn int_or_string_and_quantities() {
    // `port: http` and `port: 8080` both pass (above); a boolean does not.
    let yaml = deployment_with_container(&GOOD_CONTAINER.replace("port: 8080}", "port: true}"));
    let kind = single_violation(
        &yaml,
        "spec.template.spec.containers[0].livenessProbe.httpGet.port",
    );
    assert!(
        matches!(kind, ViolationKind::OneOfNoneMatched { .. }),
        "{kind:?}"
    );
    let yaml =
        deployment_with_container(&GOOD_CONTAINER.replace("memory: 128Mi", "memory: [128Mi]"));
    let kind = single_violation(
        &yaml,
        "spec.template.spec.containers[0].resources.limits[memory]",
    );
    assert!(
        matches!(kind, ViolationKind::OneOfNoneMatched { .. }),
        "{kind:?}"
    );
}

#[test]
fn duplicate_keys_of_a_list_map() {
    let yaml = deployment_with_container(&GOOD_CONTAINER.replace(
        "        - name: http\n          containerPort: 8080",
        "        - name: http\n          containerPort: 8080\n        - name: again\n          containerPort: 8080",
    ));
    let kind = single_violation(&yaml, "spec.template.spec.containers[0].ports[1]");
    assert!(
        matches!(kind, ViolationKind::Duplicate { first: 0, .. }),
        "{kind:?}"
    );
}

#[test]
fn services_config_maps_and_service_accounts() {
    assert_valid(
        "apiVersion: v1
kind: Service
metadata: {name: cpanel, namespace: airport}
spec:
  selector: {app: cpanel}
  ports:
  - name: http
    port: 8080
    targetPort: http
",
    );
    assert_eq!(
        single_violation(
            "apiVersion: v1
kind: Service
metadata: {name: cpanel}
spec:
  ports:
  - port: '8080'
",
            "spec.ports[0].port"
        ),
        ViolationKind::WrongType {
            expected: "integer".into(),
            got: "string"
        }
    );
    assert_valid(
        "apiVersion: v1
kind: ConfigMap
metadata: {name: cpanel-cameras}
data:
  config.json: '{}'
binaryData:
  fault_injector.wasm: AGFzbQEAAAA=
",
    );
    let kind = single_violation(
        "apiVersion: v1
kind: ConfigMap
metadata: {name: cpanel-cameras}
binaryData:
  fault_injector.wasm: not base64!
",
        "binaryData[fault_injector.wasm]",
    );
    assert!(matches!(kind, ViolationKind::BadFormat { .. }), "{kind:?}");
    assert_valid(
        "apiVersion: v1
kind: ServiceAccount
metadata: {name: collector, namespace: airport}
automountServiceAccountToken: false
",
    );
    assert_eq!(
        single_violation(
            "apiVersion: v1
kind: ServiceAccount
metadata: {name: collector}
automountToken: false
",
            "automountToken"
        ),
        ViolationKind::UnknownField
    );
}

#[test]
fn an_unknown_kind_fails_naming_the_kind() {
    let yaml =
        deployment_with_container(GOOD_CONTAINER).replace("kind: Deployment", "kind: Deploymnet");
    assert_eq!(
        single_violation(&yaml, "kind"),
        ViolationKind::UnknownKind {
            api_version: "apps/v1".into(),
            kind: "Deploymnet".into(),
            served: Vec::new(),
        }
    );
    let message = violations(&yaml)[0].to_string();
    assert_eq!(
        message,
        "kind: no installed schema (Istio or Gateway API CRD, or Kubernetes 1.33) for kind \"Deploymnet\" in \"apps/v1\""
    );
    // A known kind in a version Kubernetes 1.33 does not serve.
    let yaml = deployment_with_container(GOOD_CONTAINER).replace("apps/v1", "apps/v1beta2");
    assert_eq!(
        single_violation(&yaml, "apiVersion"),
        ViolationKind::UnknownKind {
            api_version: "apps/v1beta2".into(),
            kind: "Deployment".into(),
            served: vec!["apps/v1".into()],
        }
    );
    let service = "apiVersion: v2\nkind: Service\nmetadata: {name: cpanel}\n";
    assert_eq!(
        single_violation(service, "apiVersion"),
        ViolationKind::UnknownKind {
            api_version: "v2".into(),
            kind: "Service".into(),
            served: vec!["v1".into()],
        }
    );
}

#[test]
fn metadata_follows_the_same_rules_as_for_istio_kinds() {
    let yaml = deployment_with_container(GOOD_CONTAINER).replace("name: cpanel-v1", "name: CPanel");
    let kind = single_violation(&yaml, "metadata.name");
    assert!(matches!(kind, ViolationKind::Invalid { .. }), "{kind:?}");
}
