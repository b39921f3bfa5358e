use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// A YAML stream that could not be read as JSON-like documents.
#[derive(Debug, Error)]
pub enum ParseError {
    /// The YAML itself is malformed, or a document holds something JSON cannot
    /// (a non-string map key, for example). `document` counts from 1.
    #[error("YAML document {document}: {source}")]
    Yaml {
        document: usize,
        #[source]
        source: serde_norway::Error,
    },
}

/// The CRDs could not be loaded into a [`Schemas`](crate::Schemas).
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
    /// A `CustomResourceDefinition` lacks something the checker needs
    /// (`spec.group`, `spec.names.kind`, a version's `openAPIV3Schema`...).
    #[error("CRD {crd}: {what}")]
    MalformedCrd { crd: String, what: String },
    /// A `pattern` in a schema is not a regular expression the `regex` crate
    /// (RE2 syntax, like Kubernetes' Go `regexp`) accepts.
    #[error("CRD {crd}: invalid pattern {pattern:?}: {source}")]
    BadPattern {
        crd: String,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    /// Two CRDs serve the same group, version and kind.
    #[error("{group}/{version} {kind} is defined twice")]
    Duplicate {
        group: String,
        version: String,
        kind: String,
    },
    #[error("no CustomResourceDefinition found in {0}")]
    NoCrds(PathBuf),
    /// The schemas `make crds` installs are not there.
    #[error("{} is missing: the CRD and Kubernetes schemas are not installed; run `make crds`", .path.display())]
    NotInstalled { path: PathBuf },
    /// A Kubernetes definitions file that is not what
    /// [`Schemas::add_kubernetes_definitions`](crate::Schemas::add_kubernetes_definitions) reads.
    #[error("{path}: {what}")]
    MalformedDefinitions { path: PathBuf, what: String },
}

/// One place where a document breaks its schema.
///
/// `path` is JSON-path-like, relative to the document: `spec.http[0].fault`,
/// map keys in brackets (`metadata.labels[app]`); empty for the document itself.
#[derive(Debug, Clone, PartialEq, Error)]
pub struct Violation {
    pub path: String,
    pub kind: ViolationKind,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "<document>: {}", self.kind)
        } else {
            write!(f, "{}: {}", self.path, self.kind)
        }
    }
}

/// What is wrong at a [`Violation`]'s path. Values are rendered as JSON
/// (strings keep their quotes) so the message shows exactly what was written.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ViolationKind {
    #[error("expected {expected}, got {got}")]
    WrongType { expected: String, got: &'static str },
    /// A field the schema does not declare, in an object that neither is a map
    /// (`additionalProperties`) nor keeps unknown fields
    /// (`x-kubernetes-preserve-unknown-fields`): kubectl's strict field
    /// validation refuses it, where a lax apply would silently drop it.
    #[error("unknown field")]
    UnknownField,
    #[error("required field is missing")]
    MissingRequired,
    #[error("{value} is not one of {}", .allowed.join(", "))]
    NotInEnum { value: String, allowed: Vec<String> },
    #[error("{value} is not a valid {format}")]
    BadFormat { format: String, value: String },
    #[error("{value} is below the minimum {limit}{}", if *.exclusive { " (exclusive)" } else { "" })]
    BelowMinimum {
        value: String,
        limit: String,
        exclusive: bool,
    },
    #[error("{value} is above the maximum {limit}{}", if *.exclusive { " (exclusive)" } else { "" })]
    AboveMaximum {
        value: String,
        limit: String,
        exclusive: bool,
    },
    #[error("length {length} is below minLength {limit}")]
    TooShort { length: usize, limit: u64 },
    #[error("length {length} is above maxLength {limit}")]
    TooLong { length: usize, limit: u64 },
    #[error("{count} items, below minItems {limit}")]
    TooFewItems { count: usize, limit: u64 },
    #[error("{count} items, above maxItems {limit}")]
    TooManyItems { count: usize, limit: u64 },
    #[error("{count} properties, below minProperties {limit}")]
    TooFewProperties { count: usize, limit: u64 },
    #[error("{count} properties, above maxProperties {limit}")]
    TooManyProperties { count: usize, limit: u64 },
    #[error("{value} does not match the pattern {pattern:?}")]
    PatternMismatch { value: String, pattern: String },
    /// A repeated item in a `x-kubernetes-list-type: set` list (or one with
    /// `uniqueItems`), or a repeated key in a `x-kubernetes-list-type: map` list.
    #[error("duplicate {key}, first at [{first}]")]
    Duplicate { key: String, first: usize },
    #[error("matches none of the oneOf alternatives ({})", .alternatives.join("; "))]
    OneOfNoneMatched { alternatives: Vec<String> },
    #[error("matches {} oneOf alternatives ({}), exactly one is allowed", .matched.len(), .matched.join("; "))]
    OneOfManyMatched { matched: Vec<String> },
    #[error("matches none of the anyOf alternatives ({})", .alternatives.join("; "))]
    AnyOfNoneMatched { alternatives: Vec<String> },
    #[error("must not match {0}")]
    MatchesNot(String),
    /// `metadata` values that Kubernetes itself rejects (names, label syntax).
    #[error("{value} is invalid: {reason}")]
    Invalid { value: String, reason: &'static str },
    /// `apiVersion` + `kind` name no installed schema, neither a CRD nor a
    /// built-in Kubernetes kind (`served` lists the versions known for that
    /// kind, empty when the kind is unknown altogether).
    #[error("no installed schema (Istio or Gateway API CRD, or Kubernetes {}) for kind {kind:?} in {api_version:?}{}", crate::KUBERNETES_VERSION, served_list(.served))]
    UnknownKind {
        api_version: String,
        kind: String,
        served: Vec<String>,
    },
}

fn served_list(served: &[String]) -> String {
    if served.is_empty() {
        String::new()
    } else {
        format!(" (served: {})", served.join(", "))
    }
}

/// Every [`Violation`] of one document; displayed one per line.
#[derive(Debug, Clone, PartialEq, Error)]
pub struct Invalid {
    pub violations: Vec<Violation>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, violation) in self.violations.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{violation}")?;
        }
        Ok(())
    }
}
