//! Checks the project's manifests (everything under `istio/`) against the
//! real schemas, as the Kubernetes API server would with kubectl's strict
//! field validation, so a wrong field fails `cargo test` with its path
//! instead of failing `kubectl apply` on a cluster, or being silently dropped.
//!
//! Istio kinds are checked against the `openAPIV3Schema`s of Istio's own
//! CustomResourceDefinitions, Gateway API kinds against the Gateway API's
//! standard-channel CRDs, and Kubernetes' built-in kinds (Deployment,
//! Service, ConfigMap, ServiceAccount...) against the Kubernetes
//! [`KUBERNETES_VERSION`] definitions. None of them is in the repository:
//! `make crds` (`scripts/install-crds.sh`, which names the pinned registry
//! packages and their sha256) installs them into [`schemas_dir`], and
//! [`Schemas::load_installed`] refuses to run without them, saying so.
//! Each is found by `apiVersion` (group and version, served versions only)
//! and `kind`; a kind none knows is refused. Beside this schema check, the
//! test `tests/istioctl_analyze.rs` runs Istio's own `istioctl analyze`
//! (built by `make istioctl`) over the same manifests. [`Schemas::validate`] is a
//! plain recursive walker over [`serde_json::Value`]s; a generic JSON-Schema
//! crate would not do, since none implements Kubernetes' unknown-field
//! rejection or int-or-string.
//!
//! Enforced, with Kubernetes' structural-schema meaning:
//! - `type` (`object`, `array`, `string`, `integer`, `number`, `boolean`;
//!   whole floats such as `3.0` count as integers), `nullable`, and the API
//!   server's pruning of nulls: a `null` in a non-nullable field without a
//!   `default` counts as absent;
//! - `properties`, with unknown fields rejected unless the object has
//!   `x-kubernetes-preserve-unknown-fields: true` or is a map
//!   (`additionalProperties`); `required`; `minProperties`/`maxProperties`;
//! - `items`, `minItems`/`maxItems`, `uniqueItems`, and duplicates in
//!   `x-kubernetes-list-type: set` and `map` (by `x-kubernetes-list-map-keys`)
//!   lists;
//! - `enum`; `minimum`/`maximum` (with `exclusiveMinimum`/`exclusiveMaximum`);
//!   `minLength`/`maxLength` (in characters); `pattern` (RE2 syntax, unanchored,
//!   as in Go); `format` `int32`/`int64` (ranges), `byte` (padded standard
//!   base64) and `date-time` (RFC 3339); other formats (`double`...) are not
//!   checked;
//! - `allOf`, `anyOf`, `oneOf` and `not`, in general: branches are value-only
//!   schemas, so they never make a field unknown (Istio writes mutually
//!   exclusive fields as `oneOf: [{not: {anyOf: [{required: [a]}, {required:
//!   [b]}]}}, {required: [a]}, {required: [b]}]`);
//! - `x-kubernetes-int-or-string`;
//! - for built-in kinds, `$ref`s into the definitions (resolved at each use;
//!   load time checks they all resolve) and `type` lists such as
//!   `["string", "null"]`;
//! - the object envelope: `apiVersion` and `kind` must name a served version
//!   of an installed CRD or built-in kind; `metadata` must be an object with a
//!   `name` (an RFC 1123 subdomain), an optional `namespace` (an RFC 1123
//!   label), `labels` and `annotations` as string maps with valid keys (and
//!   label values), and no field that `ObjectMeta` lacks.
//!
//! Skipped: `x-kubernetes-validations` (CEL rules, such as WasmPlugin's "only
//! one of targetRefs or selector" or durations of at least 1ms),
//! `default` (no defaulting is applied), `multipleOf`, the deeper rules of the
//! other `metadata` fields (`ownerReferences`, `finalizers`...), Istio's own
//! semantic validation in istiod's webhook, and for built-in kinds what the
//! API server checks beyond the OpenAPI document (which has no value enums:
//! `imagePullPolicy: Sometimes` passes here).
//!
//! YAML is read with `serde_norway` (YAML 1.2: `yes`/`no`/`on`/`off` are
//! strings, where Kubernetes' YAML 1.1 reader would make them booleans).

mod error;
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use error::{Invalid, LoadError, ParseError, Violation, ViolationKind};

use schema::{Walker, child, json_type, prune_nulls};

/// The project's `istio/` folder, where the manifests live.
pub fn manifests_dir() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .map_or_else(|| crate_dir.join(".."), Path::to_path_buf)
}

/// Where `make crds` installs the schemas: `$CRDS_DIR` when set (as for the
/// install script), else `.crds/` at the root of the repository.
pub fn schemas_dir() -> PathBuf {
    match std::env::var_os("CRDS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => manifests_dir()
            .parent()
            .map_or_else(|| manifests_dir().join(".."), Path::to_path_buf)
            .join(".crds"),
    }
}

/// Under [`schemas_dir`]: Istio's CRD bundle (`customresourcedefinitions.gen.yaml`
/// of the Go module `istio.io/api`).
pub const ISTIO_CRDS: &str = "istio";

/// Under [`schemas_dir`]: the Gateway API's standard-channel CRDs
/// (`config/crd/standard` of the Go module `sigs.k8s.io/gateway-api`). The
/// experimental channel is installed beside it (`gateway-api/experimental`)
/// but not loaded: it redefines the same kinds, and a cluster runs one channel.
pub const GATEWAY_API_CRDS: &str = "gateway-api/standard";

/// The Kubernetes version whose built-in kinds [`Schemas::load_installed`]
/// checks manifests against.
pub const KUBERNETES_VERSION: &str = "1.33";

/// Under [`schemas_dir`]: the Kubernetes [`KUBERNETES_VERSION`] definitions
/// (from the PyPI package `kubernetes-validate`).
pub fn kubernetes_definitions() -> PathBuf {
    Path::new("kubernetes")
        .join(format!("v{KUBERNETES_VERSION}"))
        .join("_definitions.json")
}

/// Every document of a (multi-document) YAML stream, as JSON values; empty
/// documents (a stray `---`) are left out.
pub fn parse_documents(yaml: &str) -> Result<Vec<Value>, ParseError> {
    let mut documents = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(yaml).enumerate() {
        let value = Value::deserialize(document).map_err(|source| ParseError::Yaml {
            document: index + 1,
            source,
        })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Splits an `apiVersion` into group and version; the core group is `""`.
pub fn group_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// Whether a document belongs to one of Istio's API groups (`*.istio.io`, such
/// as `networking.istio.io` and `extensions.istio.io`), going by `apiVersion`.
pub fn is_istio(document: &Value) -> bool {
    document
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|api_version| group_version(api_version).0.ends_with(".istio.io"))
}

/// The schemas of every served version of a set of CRDs and of Kubernetes'
/// built-in kinds, keyed by group, version and kind.
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    served: BTreeMap<(String, String, String), Value>,
    patterns: HashMap<String, Regex>,
    /// What the built-in kinds' `$ref`s point into.
    definitions: Arc<Map<String, Value>>,
}

impl Schemas {
    /// Istio's CRDs, the Gateway API's standard CRDs and the Kubernetes
    /// [`KUBERNETES_VERSION`] definitions, from [`schemas_dir`].
    pub fn load_installed() -> Result<Self, LoadError> {
        Self::load_from(&schemas_dir())
    }

    /// The schemas of [`Schemas::load_installed`] from another folder laid
    /// out as `make crds` lays out [`schemas_dir`]. Fails with
    /// [`LoadError::NotInstalled`] ("run `make crds`") when any is missing:
    /// a check with no schemas must not pass.
    pub fn load_from(dir: &Path) -> Result<Self, LoadError> {
        let istio = dir.join(ISTIO_CRDS);
        let gateway_api = dir.join(GATEWAY_API_CRDS);
        let kubernetes = dir.join(kubernetes_definitions());
        for required in [&istio, &gateway_api, &kubernetes] {
            if !required.exists() {
                return Err(LoadError::NotInstalled {
                    path: required.clone(),
                });
            }
        }
        let mut schemas = Self::load_dir(&istio)?;
        schemas.add_dir(&gateway_api)?;
        schemas.add_kubernetes_definitions(&kubernetes)?;
        Ok(schemas)
    }

    /// The same as [`Schemas::load_installed`]; the name predates `make crds`,
    /// when the schemas were copied into the repository, and is kept for the
    /// crates that call it.
    pub fn load_vendored() -> Result<Self, LoadError> {
        Self::load_installed()
    }

    /// The built-in kinds of a Kubernetes definitions file in JSON Schema form
    /// (as the `kubernetes-validate` package ships them: every OpenAPI
    /// definition under `$defs`, top-level kinds marked with
    /// `x-kubernetes-group-version-kind`). Every `$ref` in it must resolve.
    pub fn add_kubernetes_definitions(&mut self, path: &Path) -> Result<(), LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let malformed = |what: String| LoadError::MalformedDefinitions {
            path: path.to_path_buf(),
            what,
        };
        let file: Value = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        let Some(definitions) = file.get("$defs").and_then(Value::as_object) else {
            return Err(malformed("no $defs object".to_owned()));
        };
        let mut references = Vec::new();
        schema::collect_refs(&file, &mut references);
        if let Some(missing) = references.iter().find(|reference| {
            schema::ref_target(reference).is_none_or(|name| !definitions.contains_key(name))
        }) {
            return Err(malformed(format!(
                "$ref {missing:?} points at no definition"
            )));
        }
        let mut patterns = Vec::new();
        schema::collect_patterns(&file, &mut patterns);
        for pattern in patterns {
            if !self.patterns.contains_key(pattern) {
                let regex = Regex::new(pattern).map_err(|source| LoadError::BadPattern {
                    crd: path.display().to_string(),
                    pattern: pattern.to_owned(),
                    source,
                })?;
                self.patterns.insert(pattern.to_owned(), regex);
            }
        }
        for definition in definitions.values() {
            let kinds = definition
                .get("x-kubernetes-group-version-kind")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            for gvk in kinds {
                let text = |key: &str| gvk.get(key).and_then(Value::as_str).unwrap_or_default();
                let key = (
                    text("group").to_owned(),
                    text("version").to_owned(),
                    text("kind").to_owned(),
                );
                if key.2.is_empty() {
                    continue;
                }
                // Option types such as DeleteOptions list every group; the
                // first definition of a (group, version, kind) is the kind's.
                self.served.entry(key).or_insert_with(|| definition.clone());
            }
        }
        let mut merged = (*self.definitions).clone();
        merged.extend(definitions.clone());
        self.definitions = Arc::new(merged);
        Ok(())
    }

    /// Every `CustomResourceDefinition` in the `*.yaml` / `*.yml` files of
    /// `dir` (not recursive); other documents there are ignored.
    pub fn load_dir(dir: &Path) -> Result<Self, LoadError> {
        let mut schemas = Self::default();
        schemas.add_dir(dir)?;
        Ok(schemas)
    }

    /// Adds every `CustomResourceDefinition` of `dir`, as [`Schemas::load_dir`]
    /// reads them; `dir` must hold at least one.
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), LoadError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LoadError::Io { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
            let path = entry.map_err(io_error(dir))?.path();
            if has_yaml_extension(&path) {
                files.push(path);
            }
        }
        files.sort();
        let mut found = false;
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
            let documents =
                parse_documents(&text).map_err(|source| LoadError::Parse { path, source })?;
            for document in &documents {
                if document.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
                {
                    self.add_crd(document)?;
                    found = true;
                }
            }
        }
        if !found {
            return Err(LoadError::NoCrds(dir.to_path_buf()));
        }
        Ok(())
    }

    /// Adds the served versions of one `CustomResourceDefinition` (as parsed
    /// by [`parse_documents`]).
    pub fn add_crd(&mut self, crd: &Value) -> Result<(), LoadError> {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_owned();
        let malformed = |what: &str| LoadError::MalformedCrd {
            crd: name.clone(),
            what: what.to_owned(),
        };
        let text = |pointer: &str| {
            crd.pointer(pointer)
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(&format!("no {pointer}")))
        };
        let group = text("/spec/group")?;
        let kind = text("/spec/names/kind")?;
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("no /spec/versions"))?;
        for version in versions {
            if !version
                .get("served")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                continue;
            }
            let version_name = version
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("a version without a name"))?;
            let schema = version.pointer("/schema/openAPIV3Schema").ok_or_else(|| {
                malformed(&format!("version {version_name} has no openAPIV3Schema"))
            })?;
            let mut patterns = Vec::new();
            schema::collect_patterns(schema, &mut patterns);
            for pattern in patterns {
                if !self.patterns.contains_key(pattern) {
                    let regex = Regex::new(pattern).map_err(|source| LoadError::BadPattern {
                        crd: name.clone(),
                        pattern: pattern.to_owned(),
                        source,
                    })?;
                    self.patterns.insert(pattern.to_owned(), regex);
                }
            }
            let key = (group.to_owned(), version_name.to_owned(), kind.to_owned());
            if self.served.contains_key(&key) {
                return Err(LoadError::Duplicate {
                    group: key.0,
                    version: key.1,
                    kind: key.2,
                });
            }
            self.served.insert(key, schema.clone());
        }
        Ok(())
    }

    /// Every served `(group, version, kind)`, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.served
            .keys()
            .map(|(group, version, kind)| (group.as_str(), version.as_str(), kind.as_str()))
    }

    /// The schema for `apiVersion` + `kind`: a CRD's `openAPIV3Schema` or a
    /// built-in kind's definition.
    pub fn schema(&self, api_version: &str, kind: &str) -> Option<&Value> {
        let (group, version) = group_version(api_version);
        self.served
            .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))
    }

    /// Checks one document (an object with `apiVersion`, `kind`, `metadata`
    /// and the rest) and returns every violation found, not just the first.
    pub fn validate(&self, document: &Value) -> Result<(), Invalid> {
        let violations = self.violations(document);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Invalid { violations })
        }
    }

    fn violations(&self, document: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        let Some(fields) = document.as_object() else {
            out.push(violation(
                "",
                ViolationKind::WrongType {
                    expected: "object".to_owned(),
                    got: json_type(document),
                },
            ));
            return out;
        };
        let api_version = required_string(fields, "", "apiVersion", &mut out);
        let kind = required_string(fields, "", "kind", &mut out);
        check_metadata(fields.get("metadata"), &mut out);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            return out;
        };
        let Some(schema) = self.schema(api_version, kind) else {
            let (group, _) = group_version(api_version);
            let served: Vec<String> = self
                .kinds()
                .filter(|(known_group, _, known_kind)| *known_group == group && *known_kind == kind)
                .map(|(known_group, version, _)| {
                    if known_group.is_empty() {
                        version.to_owned()
                    } else {
                        format!("{known_group}/{version}")
                    }
                })
                .collect();
            let path = if served.is_empty() {
                "kind"
            } else {
                "apiVersion"
            };
            out.push(violation(
                path,
                ViolationKind::UnknownKind {
                    api_version: api_version.to_owned(),
                    kind: kind.to_owned(),
                    served,
                },
            ));
            return out;
        };
        // The envelope is the API server's business, not the kind's schema's.
        let mut body = Value::Object(
            fields
                .iter()
                .filter(|(name, _)| !matches!(name.as_str(), "apiVersion" | "kind" | "metadata"))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        );
        prune_nulls(Some(schema), &mut body);
        let walker = Walker {
            patterns: &self.patterns,
            definitions: &self.definitions,
        };
        out.extend(walker.check(schema, &body, ""));
        out
    }
}

fn has_yaml_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| extension == "yaml" || extension == "yml")
}

fn violation(path: &str, kind: ViolationKind) -> Violation {
    Violation {
        path: path.to_owned(),
        kind,
    }
}

fn wrong_type(path: &str, expected: &str, value: &Value) -> Violation {
    violation(
        path,
        ViolationKind::WrongType {
            expected: expected.to_owned(),
            got: json_type(value),
        },
    )
}

fn required_string<'a>(
    fields: &'a Map<String, Value>,
    parent: &str,
    name: &str,
    out: &mut Vec<Violation>,
) -> Option<&'a str> {
    let path = child(parent, name);
    match fields.get(name) {
        None | Some(Value::Null) => {
            out.push(violation(&path, ViolationKind::MissingRequired));
            None
        }
        Some(Value::String(text)) => Some(text),
        Some(other) => {
            out.push(wrong_type(&path, "string", other));
            None
        }
    }
}

/// The `ObjectMeta` fields a manifest may carry.
const METADATA_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
];

fn check_metadata(metadata: Option<&Value>, out: &mut Vec<Violation>) {
    let fields = match metadata {
        None | Some(Value::Null) => {
            out.push(violation("metadata", ViolationKind::MissingRequired));
            return;
        }
        Some(Value::Object(fields)) => fields,
        Some(other) => {
            out.push(wrong_type("metadata", "object", other));
            return;
        }
    };
    let invalid = |path: &str, value: &str, reason| {
        violation(
            path,
            ViolationKind::Invalid {
                value: Value::from(value).to_string(),
                reason,
            },
        )
    };
    if let Some(name) = required_string(fields, "metadata", "name", out)
        && !is_dns_subdomain(name)
    {
        out.push(invalid(
            "metadata.name",
            name,
            "must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.'; at most 253 characters)",
        ));
    }
    for (name, value) in fields {
        let path = child("metadata", name);
        match (name.as_str(), value) {
            ("namespace", Value::String(namespace)) => {
                if !is_dns_label(namespace) {
                    out.push(invalid(
                        &path,
                        namespace,
                        "must be a lowercase RFC 1123 label (a-z, 0-9, '-'; at most 63 characters)",
                    ));
                }
            }
            ("namespace" | "generateName", other) if !other.is_string() => {
                out.push(wrong_type(&path, "string", other));
            }
            ("labels" | "annotations", Value::Object(entries)) => {
                for (key, entry) in entries {
                    let entry_path = format!("{path}[{key}]");
                    if !is_qualified_name(key) {
                        out.push(invalid(
                            &entry_path,
                            key,
                            "keys are [prefix/]name: an optional RFC 1123 subdomain, then at most 63 of a-z, A-Z, 0-9, '-', '_', '.', starting and ending alphanumeric",
                        ));
                    }
                    match entry {
                        Value::String(text) if name == "labels" && !is_label_value(text) => {
                            out.push(invalid(
                                &entry_path,
                                text,
                                "label values are at most 63 of a-z, A-Z, 0-9, '-', '_', '.', starting and ending alphanumeric",
                            ));
                        }
                        Value::String(_) => {}
                        other => out.push(wrong_type(&entry_path, "string", other)),
                    }
                }
            }
            ("labels" | "annotations", other) => out.push(wrong_type(&path, "object", other)),
            (known, _) if METADATA_FIELDS.contains(&known) => {}
            _ => out.push(violation(&path, ViolationKind::UnknownField)),
        }
    }
}

fn is_dns_label(text: &str) -> bool {
    text.len() <= 63
        && is_label_like(text, |byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit()
        })
}

fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|part| {
            is_label_like(part, |byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit()
            })
        })
}

/// Non-empty, starts and ends with an `edge` byte, and has only edge bytes or
/// `-` inside.
fn is_label_like(text: &str, edge: impl Fn(u8) -> bool) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            edge(first) && edge(last) && bytes.iter().all(|&byte| edge(byte) || byte == b'-')
        }
        _ => false,
    }
}

fn is_label_value(text: &str) -> bool {
    text.is_empty() || is_name_part(text)
}

fn is_name_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    let alphanumeric = |byte: &u8| byte.is_ascii_alphanumeric();
    text.len() <= 63
        && bytes.first().is_some_and(alphanumeric)
        && bytes.last().is_some_and(alphanumeric)
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

fn is_qualified_name(text: &str) -> bool {
    match text.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_name_part(name),
        None => is_name_part(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rfc_1123() {
        assert!(is_dns_subdomain("image-analysis.v1"));
        assert!(!is_dns_subdomain("Image-analysis"));
        assert!(!is_dns_subdomain("image-analysis-"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(is_dns_label("airport"));
        assert!(!is_dns_label("air.port"));
    }

    #[test]
    fn label_keys_and_values() {
        assert!(is_qualified_name("app"));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(!is_qualified_name("/name"));
        assert!(!is_qualified_name("app_"));
        assert!(is_label_value(""));
        assert!(is_label_value("v1"));
        assert!(!is_label_value("v1 "));
    }

    #[test]
    fn core_group_is_empty() {
        assert_eq!(group_version("v1"), ("", "v1"));
        assert_eq!(
            group_version("networking.istio.io/v1"),
            ("networking.istio.io", "v1")
        );
    }

    #[test]
    fn empty_documents_are_left_out() {
        let documents = parse_documents("---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(documents.len(), 2);
    }
}
