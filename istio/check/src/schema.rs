//! The recursive walker: one value against one schema node, with the rules
//! the Kubernetes API server applies: a CRD's `openAPIV3Schema`, or a
//! built-in kind's JSON schema (which adds `$ref`s into its definitions and
//! nullable types written `[<type>, "null"]`).

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::{Violation, ViolationKind};

/// Where the walker is. Unknown fields are a structural matter: Kubernetes
/// decides what to prune (and strict validation what to refuse) from the
/// schema's own `properties`, never from the branches of `oneOf`, `anyOf`,
/// `allOf` or `not`, which only add value checks (mostly `required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Structural,
    Branch,
}

/// Checks values against schema nodes; `patterns` holds every `pattern` of the
/// loaded schemas, compiled once at load time; `definitions` are what `$ref`s
/// point into (the Kubernetes definitions; CRD schemas have no `$ref`).
#[derive(Debug)]
pub(crate) struct Walker<'a> {
    pub(crate) patterns: &'a HashMap<String, Regex>,
    pub(crate) definitions: &'a Map<String, Value>,
}

/// The definition name a `$ref` points at: `#/$defs/<name>`, or the same
/// inside another file (`/api/_definitions.json#/$defs/<name>`).
pub(crate) fn ref_target(reference: &str) -> Option<&str> {
    reference.split_once("#/$defs/").map(|(_, name)| name)
}

impl Walker<'_> {
    /// Every violation of `value` (already pruned of nulls, see
    /// [`prune_nulls`]) against `schema`, with paths under `path`.
    pub(crate) fn check(&self, schema: &Value, value: &Value, path: &str) -> Vec<Violation> {
        let mut out = Vec::new();
        self.walk(schema, value, path, Mode::Structural, &mut out);
        out
    }

    /// `schema`, or what its `$ref` (chain) points at. Load time checks that
    /// every `$ref` resolves; one that does not stays as written and checks
    /// nothing.
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        let mut current = schema;
        for _ in 0..32 {
            let Some(target) = current
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(ref_target)
                .and_then(|name| self.definitions.get(name))
            else {
                break;
            };
            current = target;
        }
        current
    }

    fn walk(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        mode: Mode,
        out: &mut Vec<Violation>,
    ) {
        let schema = self.resolve(schema);
        let mut report = |kind| {
            out.push(Violation {
                path: path.to_owned(),
                kind,
            })
        };
        if value.is_null() {
            let expected = if flag(schema, "x-kubernetes-int-or-string") {
                Some("integer or string".to_owned())
            } else {
                schema.get("type").map(|_| type_name(schema))
            };
            if let Some(expected) =
                expected.filter(|_| !flag(schema, "nullable") && !types(schema).contains(&"null"))
            {
                report(ViolationKind::WrongType {
                    expected,
                    got: "null",
                });
            }
            return;
        }
        if flag(schema, "x-kubernetes-int-or-string") {
            if !(is_integer(value) || value.is_string()) {
                report(ViolationKind::WrongType {
                    expected: "integer or string".to_owned(),
                    got: json_type(value),
                });
                return;
            }
        } else if schema.get("type").is_some()
            && !types(schema)
                .iter()
                .any(|expected| *expected != "null" && has_type(value, expected))
        {
            report(ViolationKind::WrongType {
                expected: type_name(schema),
                got: json_type(value),
            });
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            report(ViolationKind::NotInEnum {
                value: value.to_string(),
                allowed: allowed.iter().map(Value::to_string).collect(),
            });
        }
        match value {
            Value::Number(_) => self.number(schema, value, path, out),
            Value::String(text) => self.string(schema, text, path, out),
            Value::Array(items) => self.array(schema, items, path, mode, out),
            Value::Object(fields) => self.object(schema, fields, path, mode, out),
            Value::Bool(_) | Value::Null => {}
        }
        self.combinators(schema, value, path, out);
    }

    fn number(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
        let mut report = |kind| {
            out.push(Violation {
                path: path.to_owned(),
                kind,
            })
        };
        let Some(number) = value.as_f64() else {
            return;
        };
        let format = schema.get("format").and_then(Value::as_str);
        let in_range = match format {
            Some("int32") => fits(value, i64::from(i32::MIN), i64::from(i32::MAX)),
            Some("int64") => fits(value, i64::MIN, i64::MAX),
            _ => true,
        };
        if !in_range {
            report(ViolationKind::BadFormat {
                format: format.unwrap_or_default().to_owned(),
                value: value.to_string(),
            });
        }
        if let Some(limit) = schema.get("minimum").and_then(Value::as_f64) {
            let exclusive = flag(schema, "exclusiveMinimum");
            if number < limit || (exclusive && number == limit) {
                report(ViolationKind::BelowMinimum {
                    value: value.to_string(),
                    limit: render_number(schema, "minimum"),
                    exclusive,
                });
            }
        }
        if let Some(limit) = schema.get("maximum").and_then(Value::as_f64) {
            let exclusive = flag(schema, "exclusiveMaximum");
            if number > limit || (exclusive && number == limit) {
                report(ViolationKind::AboveMaximum {
                    value: value.to_string(),
                    limit: render_number(schema, "maximum"),
                    exclusive,
                });
            }
        }
    }

    fn string(&self, schema: &Value, text: &str, path: &str, out: &mut Vec<Violation>) {
        let mut report = |kind| {
            out.push(Violation {
                path: path.to_owned(),
                kind,
            })
        };
        let quoted = || Value::from(text).to_string();
        // Kubernetes counts characters (runes), not bytes.
        let length = text.chars().count();
        if let Some(limit) = schema.get("minLength").and_then(Value::as_u64)
            && (length as u64) < limit
        {
            report(ViolationKind::TooShort { length, limit });
        }
        if let Some(limit) = schema.get("maxLength").and_then(Value::as_u64)
            && length as u64 > limit
        {
            report(ViolationKind::TooLong { length, limit });
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            // Load time compiles every pattern; one missing here was never loaded.
            let matched = self
                .patterns
                .get(pattern)
                .is_some_and(|regex| regex.is_match(text));
            if !matched {
                report(ViolationKind::PatternMismatch {
                    value: quoted(),
                    pattern: pattern.to_owned(),
                });
            }
        }
        let well_formed = match schema.get("format").and_then(Value::as_str) {
            Some("byte") => is_base64(text),
            Some("date-time") => is_rfc3339(text),
            _ => true,
        };
        if !well_formed {
            let format = schema
                .get("format")
                .and_then(Value::as_str)
                .unwrap_or_default();
            report(ViolationKind::BadFormat {
                format: format.to_owned(),
                value: quoted(),
            });
        }
    }

    fn array(
        &self,
        schema: &Value,
        items: &[Value],
        path: &str,
        mode: Mode,
        out: &mut Vec<Violation>,
    ) {
        let count = items.len();
        if let Some(limit) = schema.get("minItems").and_then(Value::as_u64)
            && (count as u64) < limit
        {
            out.push(violation(path, ViolationKind::TooFewItems { count, limit }));
        }
        if let Some(limit) = schema.get("maxItems").and_then(Value::as_u64)
            && count as u64 > limit
        {
            out.push(violation(
                path,
                ViolationKind::TooManyItems { count, limit },
            ));
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                self.walk(item_schema, item, &format!("{path}[{index}]"), mode, out);
            }
        }
        let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
        if list_type == Some("map") {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let describe = |item: &Value| {
                let parts: Vec<String> = keys
                    .iter()
                    .map(|key| format!("{key}: {}", item.get(*key).unwrap_or(&Value::Null)))
                    .collect();
                format!("key ({})", parts.join(", "))
            };
            duplicates(items, path, describe, out);
        } else if list_type == Some("set") || flag(schema, "uniqueItems") {
            duplicates(items, path, |item| format!("item {item}"), out);
        }
    }

    fn object(
        &self,
        schema: &Value,
        fields: &Map<String, Value>,
        path: &str,
        mode: Mode,
        out: &mut Vec<Violation>,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let keeps_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields");
        for (name, field) in fields {
            if let Some(property) = properties.and_then(|properties| properties.get(name)) {
                self.walk(property, field, &child(path, name), mode, out);
            } else if let Some(map_value) = additional.filter(|value| value.is_object()) {
                self.walk(map_value, field, &format!("{path}[{name}]"), mode, out);
            } else if additional == Some(&Value::Bool(true)) || keeps_unknown {
                // A free-form map, or a field Kubernetes keeps as written.
            } else if mode == Mode::Structural {
                out.push(violation(&child(path, name), ViolationKind::UnknownField));
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    out.push(violation(
                        &child(path, name),
                        ViolationKind::MissingRequired,
                    ));
                }
            }
        }
        let count = fields.len();
        if let Some(limit) = schema.get("minProperties").and_then(Value::as_u64)
            && (count as u64) < limit
        {
            out.push(violation(
                path,
                ViolationKind::TooFewProperties { count, limit },
            ));
        }
        if let Some(limit) = schema.get("maxProperties").and_then(Value::as_u64)
            && count as u64 > limit
        {
            out.push(violation(
                path,
                ViolationKind::TooManyProperties { count, limit },
            ));
        }
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`, in general: each branch is checked
    /// as a value-only schema at the same path; a branch "matches" when it
    /// reports nothing.
    fn combinators(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
        let matches = |branch: &Value| {
            let mut found = Vec::new();
            self.walk(branch, value, path, Mode::Branch, &mut found);
            found
        };
        if let Some(branches) = schema.get("allOf").and_then(Value::as_array) {
            for branch in branches {
                out.extend(matches(branch));
            }
        }
        if let Some(branches) = schema.get("anyOf").and_then(Value::as_array)
            && !branches.iter().any(|branch| matches(branch).is_empty())
        {
            out.push(violation(
                path,
                ViolationKind::AnyOfNoneMatched {
                    alternatives: branches.iter().map(describe).collect(),
                },
            ));
        }
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
            let matched: Vec<String> = branches
                .iter()
                .filter(|branch| matches(branch).is_empty())
                .map(describe)
                .collect();
            match matched.len() {
                1 => {}
                0 => out.push(violation(
                    path,
                    ViolationKind::OneOfNoneMatched {
                        alternatives: branches.iter().map(describe).collect(),
                    },
                )),
                _ => out.push(violation(path, ViolationKind::OneOfManyMatched { matched })),
            }
        }
        if let Some(branch) = schema.get("not")
            && matches(branch).is_empty()
        {
            out.push(violation(path, ViolationKind::MatchesNot(describe(branch))));
        }
    }
}

/// Drops null-valued fields whose schema is neither `nullable` nor has a
/// `default`, as the API server does before validating a custom resource:
/// `fixedDelay: null` counts as an absent field (and so fails `required`).
pub(crate) fn prune_nulls(schema: Option<&Value>, value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.retain(|name, field| {
                let dropped = field.is_null()
                    && field_schema(schema, name).is_some_and(|field_schema| {
                        !flag(field_schema, "nullable") && field_schema.get("default").is_none()
                    });
                !dropped
            });
            for (name, field) in fields.iter_mut() {
                prune_nulls(field_schema(schema, name), field);
            }
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|schema| schema.get("items"));
            for item in items {
                prune_nulls(item_schema, item);
            }
        }
        _ => {}
    }
}

fn field_schema<'s>(schema: Option<&'s Value>, name: &str) -> Option<&'s Value> {
    let schema = schema?;
    schema
        .get("properties")
        .and_then(|properties| properties.get(name))
        .or_else(|| {
            schema
                .get("additionalProperties")
                .filter(|value| value.is_object())
        })
}

/// Every `$ref` string under a schema node, for checking at load time that
/// each resolves.
pub(crate) fn collect_refs<'s>(schema: &'s Value, found: &mut Vec<&'s str>) {
    match schema {
        Value::Object(node) => {
            for (key, nested) in node {
                match (key.as_str(), nested) {
                    ("$ref", Value::String(reference)) => found.push(reference),
                    ("enum" | "example" | "default", _) => {}
                    _ => collect_refs(nested, found),
                }
            }
        }
        Value::Array(nested) => {
            for item in nested {
                collect_refs(item, found);
            }
        }
        _ => {}
    }
}

/// Every `pattern` string under a schema node, for compiling at load time.
pub(crate) fn collect_patterns<'s>(schema: &'s Value, found: &mut Vec<&'s str>) {
    match schema {
        Value::Object(node) => {
            if let Some(pattern) = node.get("pattern").and_then(Value::as_str) {
                found.push(pattern);
            }
            for (key, nested) in node {
                // `properties` maps field names to schemas: a field called
                // `pattern` is a schema, not a pattern; `enum` and `example`
                // hold data.
                if key != "enum" && key != "example" && key != "default" {
                    collect_patterns(nested, found);
                }
            }
        }
        Value::Array(nested) => {
            for item in nested {
                collect_patterns(item, found);
            }
        }
        _ => {}
    }
}

fn violation(path: &str, kind: ViolationKind) -> Violation {
    Violation {
        path: path.to_owned(),
        kind,
    }
}

pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The types a schema allows: `type` as one name or a list of them.
fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The non-null types a schema allows, for messages: `integer`, or
/// `string or integer`.
fn type_name(schema: &Value) -> String {
    let names: Vec<&str> = types(schema).into_iter().filter(|t| *t != "null").collect();
    if names.is_empty() {
        "a value".to_owned()
    } else {
        names.join(" or ")
    }
}

/// The schema's own number as written (`4294967295`, not `4294967295.0`).
fn render_number(schema: &Value, key: &str) -> String {
    schema.get(key).map(Value::to_string).unwrap_or_default()
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) if is_integer(value) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Integers as Kubernetes sees them: JSON numbers without a fractional part,
/// so `3.0` (which YAML reads as a float) is an integer too.
fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(number) => {
            number.is_i64()
                || number.is_u64()
                || number
                    .as_f64()
                    .is_some_and(|float| float.is_finite() && float.fract() == 0.0)
        }
        _ => false,
    }
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        // Not a structural-schema type; nothing to hold the value to.
        _ => true,
    }
}

fn fits(value: &Value, min: i64, max: i64) -> bool {
    if let Some(integer) = value.as_i64() {
        return (min..=max).contains(&integer);
    }
    if value.is_u64() {
        // Only values above i64::MAX are u64 and not i64.
        return false;
    }
    value
        .as_f64()
        .is_some_and(|float| float >= min as f64 && float <= max as f64)
}

fn duplicates(
    items: &[Value],
    path: &str,
    describe: impl Fn(&Value) -> String,
    out: &mut Vec<Violation>,
) {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let key = describe(item);
        if let Some((_, first)) = seen.iter().find(|(earlier, _)| *earlier == key) {
            out.push(violation(
                &format!("{path}[{index}]"),
                ViolationKind::Duplicate { key, first: *first },
            ));
        } else {
            seen.push((key, index));
        }
    }
}

/// A short reading of a combinator branch for messages, such as
/// `has fixedDelay` or `not (any of (has fixedDelay | has exponentialDelay))`.
fn describe(schema: &Value) -> String {
    let mut parts = Vec::new();
    if schema.get("type").is_some() {
        parts.push(type_name(schema));
    }
    if let Some(target) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(ref_target)
    {
        parts.push(target.rsplit('.').next().unwrap_or(target).to_owned());
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        let names: Vec<&str> = required.iter().filter_map(Value::as_str).collect();
        parts.push(format!("has {}", names.join(" and ")));
    }
    for (key, label) in [
        ("anyOf", "any of"),
        ("oneOf", "one of"),
        ("allOf", "all of"),
    ] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            let inner: Vec<String> = branches.iter().map(describe).collect();
            parts.push(format!("{label} ({})", inner.join(" | ")));
        }
    }
    if let Some(negated) = schema.get("not") {
        parts.push(format!("not ({})", describe(negated)));
    }
    if parts.is_empty() {
        "a schema".to_owned()
    } else {
        parts.join(" and ")
    }
}

/// Standard base64 with padding, as Kubernetes' `byte` format decodes it.
fn is_base64(text: &str) -> bool {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let body = text.trim_end_matches('=');
    bytes.len() - body.len() <= 2
        && body
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/')
}

/// RFC 3339 `date-time`: `2026-07-09T12:00:00Z`, optional fraction, `Z` or an
/// offset. Field ranges are checked loosely (month 01-12, day 01-31...).
fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |from: usize, count: usize| {
        bytes
            .get(from..from + count)
            .is_some_and(|slice| slice.iter().all(u8::is_ascii_digit))
    };
    let number = |from: usize| {
        bytes.get(from..from + 2).map_or(99, |pair| {
            u32::from(pair[0].wrapping_sub(b'0')) * 10 + u32::from(pair[1].wrapping_sub(b'0'))
        })
    };
    let at = |index: usize, expected: &[u8]| {
        bytes.get(index).is_some_and(|byte| expected.contains(byte))
    };
    let date_time = digits(0, 4)
        && at(4, b"-")
        && digits(5, 2)
        && at(7, b"-")
        && digits(8, 2)
        && at(10, b"Tt ")
        && digits(11, 2)
        && at(13, b":")
        && digits(14, 2)
        && at(16, b":")
        && digits(17, 2);
    if !date_time
        || !(1..=12).contains(&number(5))
        || !(1..=31).contains(&number(8))
        || number(11) > 23
        || number(14) > 59
        || number(17) > 60
    {
        return false;
    }
    let mut index = 19;
    if at(index, b".") {
        index += 1;
        let start = index;
        while digits(index, 1) {
            index += 1;
        }
        if index == start {
            return false;
        }
    }
    match bytes.get(index) {
        Some(b'Z' | b'z') => index + 1 == bytes.len(),
        Some(b'+' | b'-') => {
            digits(index + 1, 2)
                && at(index + 3, b":")
                && digits(index + 4, 2)
                && index + 6 == bytes.len()
                && number(index + 1) <= 23
                && number(index + 4) <= 59
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_needs_padding_and_the_standard_alphabet() {
        assert!(is_base64("aGVsbG8="));
        assert!(is_base64(""));
        assert!(!is_base64("aGVsbG8"));
        assert!(!is_base64("aGV-bG8="));
        assert!(!is_base64("a==="));
    }

    #[test]
    fn rfc3339_date_times() {
        assert!(is_rfc3339("2026-07-09T12:00:00Z"));
        assert!(is_rfc3339("2026-07-09T12:00:00.125+02:00"));
        assert!(!is_rfc3339("2026-07-09"));
        assert!(!is_rfc3339("2026-13-09T12:00:00Z"));
        assert!(!is_rfc3339("2026-07-09T12:00:00"));
        assert!(!is_rfc3339("2026-07-09T12:00:00.Z"));
    }

    #[test]
    fn integers_include_whole_floats() {
        assert!(is_integer(&serde_json::json!(3)));
        assert!(is_integer(&serde_json::json!(3.0)));
        assert!(!is_integer(&serde_json::json!(3.5)));
        assert_eq!(json_type(&serde_json::json!("3")), "string");
    }

    #[test]
    fn int32_range() {
        assert!(fits(
            &serde_json::json!(2_147_483_647),
            -2_147_483_648,
            2_147_483_647
        ));
        assert!(!fits(
            &serde_json::json!(2_147_483_648_u64),
            -2_147_483_648,
            2_147_483_647
        ));
        assert!(!fits(&serde_json::json!(u64::MAX), i64::MIN, i64::MAX));
    }

    #[test]
    fn describes_istio_exclusive_field_pattern() {
        let schema = serde_json::json!({
            "not": {"anyOf": [{"required": ["fixedDelay"]}, {"required": ["exponentialDelay"]}]}
        });
        assert_eq!(
            describe(&schema),
            "not (any of (has fixedDelay | has exponentialDelay))"
        );
    }
}
