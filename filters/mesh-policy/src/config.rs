//! Configuration in two stages, the same way in every plugin:
//!
//! 1. [`parse_wire`]: the raw bytes into the plugin's wire struct (the JSON
//!    as users write it, Istio's field names). The document must be a JSON
//!    object; the wire structs carry `#[serde(deny_unknown_fields)]`, so a
//!    misspelt field is refused by name, never ignored. An empty (or
//!    whitespace-only) configuration is read as `{}`: each plugin's
//!    validation then says what `{}` means for it (refused when a field is
//!    required, defaults when none is), so "no configuration" and `{}` can
//!    never behave differently.
//! 2. [`PluginConfig::validate`]: the wire struct into the compiled
//!    configuration (regexes, ranges, durations), with values from the VM's
//!    environment where the configuration names one.
//!
//! Every refusal is one [`ConfigError`]: the field path
//! (`rules[1].abort.httpStatus`, from `serde_path_to_error` in stage 1 and
//! from the validator in stage 2) and a message on one line.

use std::fmt;

use serde::de::DeserializeOwned;

/// A refused configuration: which field, and what is wrong with it.
/// Displayed as `path: message`, on one line (it goes to one log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    path: String,
    message: String,
}

impl ConfigError {
    /// `path` is the field path (`config` for the document itself);
    /// `problem` says what is wrong, in words a user can act on.
    pub fn new(path: impl Into<String>, problem: impl fmt::Display) -> Self {
        // Generic only at the surface: one copy of the rest in a `.wasm`.
        Self::from_parts(path.into(), problem.to_string())
    }

    fn from_parts(path: String, message: String) -> Self {
        // A log line must stay one line, whatever a dependency's message says.
        let message = if message.contains('\n') {
            let mut joined = String::with_capacity(message.len());
            for line in message.split('\n').map(str::trim) {
                if !line.is_empty() {
                    if !joined.is_empty() {
                        joined.push(' ');
                    }
                    joined.push_str(line);
                }
            }
            joined
        } else {
            message
        };
        Self { path, message }
    }

    /// The field path the error is about (`rules[1].abort.httpStatus`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, without the path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Looks up an environment variable of the VM (for secrets a configuration
/// names instead of inlining).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// An environment with no variables: for plugins and tests that read none.
pub fn no_env(_name: &str) -> Option<String> {
    None
}

/// A plugin's compiled configuration, built from its wire struct.
pub trait PluginConfig: Sized {
    /// The JSON as written; should deny unknown fields.
    type Wire: DeserializeOwned;

    /// Stage 2: validates and compiles. Errors name the field path.
    fn validate(wire: Self::Wire, env: EnvLookup<'_>) -> Result<Self, ConfigError>;
}

/// Both stages: [`parse_wire`] then [`PluginConfig::validate`].
pub fn from_json<C: PluginConfig>(raw: &[u8], env: EnvLookup<'_>) -> Result<C, ConfigError> {
    C::validate(parse_wire(raw)?, env)
}

/// The path of the document itself in errors.
const ROOT: &str = "config";

/// Stage 1: the bytes into the wire struct `W`. Refuses anything but a JSON
/// object (naming what it got), trailing characters, and whatever `W`'s
/// serde rules refuse (unknown fields, wrong types, missing fields), with
/// the path of the offending field. Empty or whitespace-only input is `{}`.
pub fn parse_wire<W: DeserializeOwned>(raw: &[u8]) -> Result<W, ConfigError> {
    let first = raw.iter().find(|b| !b.is_ascii_whitespace());
    let raw: &[u8] = match first {
        None => b"{}",
        Some(b'{') => raw,
        Some(other) => {
            let got = match other {
                b'[' => "an array",
                b'"' => "a string",
                b't' | b'f' => "a boolean",
                b'n' => "null",
                b'-' | b'0'..=b'9' => "a number",
                _ => "something that is not JSON",
            };
            return Err(ConfigError::new(
                ROOT,
                format!("expected a JSON object, got {got}"),
            ));
        }
    };
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let wire = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let path = if path.is_empty() || path == "." || path == "?" {
            ROOT.to_string()
        } else {
            path
        };
        ConfigError::new(path, e.into_inner())
    })?;
    deserializer.end().map_err(|e| ConfigError::new(ROOT, e))?;
    Ok(wire)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Wire {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        items: Vec<Item>,
        #[serde(default)]
        labels: BTreeMap<String, u8>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Item {
        count: u8,
    }

    #[derive(Debug)]
    struct Compiled {
        name: String,
    }

    impl PluginConfig for Compiled {
        type Wire = Wire;

        fn validate(wire: Wire, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
            let name = match wire.name {
                Some(name) => name,
                None => env("NAME").ok_or_else(|| ConfigError::new("name", "is required"))?,
            };
            Ok(Self { name })
        }
    }

    fn error(raw: &str) -> String {
        match parse_wire::<Wire>(raw.as_bytes()) {
            Ok(wire) => format!("accepted: {wire:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_is_the_empty_object() {
        assert_eq!(parse_wire::<Wire>(b""), Ok(Wire::default()));
        assert_eq!(parse_wire::<Wire>(b" \n\t"), Ok(Wire::default()));
        assert_eq!(parse_wire::<Wire>(b"{}"), Ok(Wire::default()));
    }

    #[test]
    fn only_an_object_is_a_configuration() {
        assert_eq!(error("[1]"), "config: expected a JSON object, got an array");
        assert_eq!(
            error("\"x\""),
            "config: expected a JSON object, got a string"
        );
        assert_eq!(error("null"), "config: expected a JSON object, got null");
        assert_eq!(error(" 12"), "config: expected a JSON object, got a number");
        assert_eq!(
            error("true"),
            "config: expected a JSON object, got a boolean"
        );
    }

    #[test]
    fn errors_name_the_field_path() {
        assert!(error(r#"{"nmae": "x"}"#).starts_with("nmae: unknown field `nmae`"));
        assert!(
            error(r#"{"items": [{"count": 1}, {"count": 300}]}"#)
                .starts_with("items[1].count: invalid value: integer `300`")
        );
        assert!(error(r#"{"items": [{}]}"#).starts_with("items[0]: missing field `count`"));
        assert!(error(r#"{"labels": {"a b": "x"}}"#).starts_with("labels.a b: invalid type"));
        assert!(error(r#"{} x"#).starts_with("config: trailing characters"));
        assert!(error(r#"{"items": [}"#).starts_with("items[0]: expected value"));
    }

    #[test]
    fn from_json_runs_both_stages_with_the_environment() {
        let env = |name: &str| (name == "NAME").then(|| "from-env".to_string());
        let compiled: Compiled = from_json(b"", &env).unwrap();
        assert_eq!(compiled.name, "from-env");
        let compiled: Compiled = from_json(br#"{"name": "inline"}"#, &no_env).unwrap();
        assert_eq!(compiled.name, "inline");
        let refused = from_json::<Compiled>(b"{}", &no_env).unwrap_err();
        assert_eq!(refused.to_string(), "name: is required");
        assert_eq!(refused.path(), "name");
    }

    #[test]
    fn messages_stay_on_one_line() {
        let e = ConfigError::new("a.b", "first\n   second\n\n");
        assert_eq!(e.to_string(), "a.b: first second");
    }
}
