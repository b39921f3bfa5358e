//! Istio's request matching, evaluated the way Envoy evaluates what Istio
//! translates it to (pilot's `TranslateRouteMatch` / `translateHeaderMatch`,
//! Envoy's `HeaderUtility::matchHeaders` and route query-parameter
//! matching):
//!
//! - `StringMatch` is exact, prefix or regex; a regex must match the whole
//!   value (Envoy's `safe_regex`). `{}` (no kind) checks presence only.
//!   Regexes need the crate's `regex` feature; without it a regex is refused
//!   at configure time, by field.
//! - A header given several times matches when any one of its values
//!   matches, each value compared on its own (not joined with `,`, and a
//!   single value `a,b` is not split): what Envoy 1.40 does, pinned in a
//!   real Envoy by `wasm-plugins/canary-router/tests/envoy_cookie_scope.rs`
//!   (`envoy_matches_a_repeated_header_on_any_of_its_values`). Names compare
//!   case-insensitively.
//! - `withoutHeaders` is the inverted match with a missing header counted as
//!   the empty value (Istio sets `treat_missing_header_as_empty`): a request
//!   is excluded when any value of the header matches, and a request without
//!   the header is excluded only if the value matcher matches "";
//!   `withoutHeaders: {x: {}}` excludes exactly the requests that have `x`.
//! - `queryParams` look at the first parameter of that name, compared as
//!   sent (not percent-decoded); `{}` checks presence.
//! - `uri` looks at the path without its query string or fragment.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::config::ConfigError;

/// Istio's `StringMatch` as written: one of `exact`, `prefix`, `regex`, or
/// none of them (a presence check where the field allows one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireStringMatch {
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
}

/// Istio's `HTTPMatchRequest` as written: the fields this crate evaluates
/// (`uri`, `method`, `headers`, `withoutHeaders`, `queryParams`) and the
/// label `name` (it changes no decision). The Istio fields no plugin
/// evaluates ([`UNSUPPORTED_ISTIO_FIELDS`]) are refused while reading, by
/// path and with what to do instead (dropping one would make the entry
/// match more requests than in Istio); a plugin's own conditions come
/// beside it in [`WireMatch`]; any other field is refused as unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireHttpMatch {
    /// Istio's label for the match (access logs).
    pub name: Option<String>,
    pub uri: Option<WireStringMatch>,
    pub method: Option<WireStringMatch>,
    /// `{}` checks that the header is present.
    pub headers: BTreeMap<String, WireStringMatch>,
    /// The request must not have a matching header (`{}`: must not have it).
    pub without_headers: BTreeMap<String, WireStringMatch>,
    /// `{}` checks that the parameter is present.
    pub query_params: BTreeMap<String, WireStringMatch>,
}

/// Istio `HTTPMatchRequest` fields that are no request property a plugin
/// sees, with what to do instead: refused by name when read. (Refused at
/// the key, their values are never parsed: no code to skip a value.)
pub const UNSUPPORTED_ISTIO_FIELDS: &[(&str, &str)] = &[
    (
        "authority",
        "the plugin runs per listener; match the host in the route instead",
    ),
    ("scheme", "match the scheme in the route instead"),
    (
        "ignoreUriCase",
        "uri matches are case-sensitive here; write the case you expect or a (?i) regex",
    ),
    (
        "port",
        "a selector of the listener, not a request property the plugin sees",
    ),
    (
        "sourceLabels",
        "a workload selector, not a request property the plugin sees",
    ),
    (
        "sourceNamespace",
        "a workload selector, not a request property the plugin sees",
    ),
    (
        "gateways",
        "a gateway selector; bind the WasmPlugin with its selector instead",
    ),
    (
        "statPrefix",
        "route statistics are Envoy's, not the plugin's",
    ),
];

/// The `HTTPMatchRequest` fields [`WireHttpMatch`] reads as values.
const ISTIO_FIELDS: &[(&str, IstioField)] = &[
    ("name", IstioField::Name),
    ("uri", IstioField::Uri),
    ("method", IstioField::Method),
    ("headers", IstioField::Headers),
    ("withoutHeaders", IstioField::WithoutHeaders),
    ("queryParams", IstioField::QueryParams),
];

#[derive(Clone, Copy)]
enum IstioField {
    Name,
    Uri,
    Method,
    Headers,
    WithoutHeaders,
    QueryParams,
}

/// A plugin's own conditions in a `match` entry, beside Istio's (the fault
/// injector's `sourceIpBlocks` and `routeName`, the canary router's
/// `cookies`). serde cannot flatten into a struct that refuses unknown
/// fields, so [`WireMatch`] reads every key itself and hands these to the
/// plugin: one wire type, and every field not Istio's nor the plugin's
/// refused by path.
pub trait MatchExtras: Default {
    /// The field names as written (camelCase), none of them Istio's.
    const FIELDS: &'static [&'static str];

    /// Reads the value of `field` (one of [`Self::FIELDS`]) with
    /// `map.next_value()`.
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        field: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error>;
}

/// No conditions beyond Istio's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoExtras;

impl MatchExtras for NoExtras {
    const FIELDS: &'static [&'static str] = &[];

    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        _field: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        map.next_value::<IgnoredAny>().map(drop)
    }
}

/// One `match` entry as written: Istio's fields and the plugin's `X`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireMatch<X = NoExtras> {
    pub http: WireHttpMatch,
    pub extras: X,
}

impl<'de> Deserialize<'de> for WireHttpMatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WireMatch::<NoExtras>::deserialize(deserializer).map(|m| m.http)
    }
}

impl<'de, X: MatchExtras> Deserialize<'de> for WireMatch<X> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MatchVisitor(PhantomData))
    }
}

/// Which field a key names, with the name as written.
#[derive(Clone, Copy)]
enum MatchField {
    Istio(&'static str, IstioField),
    Extra(&'static str),
}

impl MatchField {
    fn name(self) -> &'static str {
        match self {
            MatchField::Istio(name, _) | MatchField::Extra(name) => name,
        }
    }
}

/// Reads a key into a [`MatchField`], refusing an unknown or unsupported
/// one while the key is read (so that the error's path ends in the key,
/// as serde's derive does for unknown fields).
struct MatchFieldSeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for MatchFieldSeed {
    type Value = MatchField;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<MatchField, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for MatchFieldSeed {
    type Value = MatchField;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<MatchField, E> {
        if let Some((name, field)) = ISTIO_FIELDS.iter().find(|(f, _)| *f == key) {
            return Ok(MatchField::Istio(name, *field));
        }
        if let Some((_, reason)) = UNSUPPORTED_ISTIO_FIELDS.iter().find(|(f, _)| *f == key) {
            return Err(E::custom(format_args!(
                "Istio's {key} is not supported by this plugin ({reason})"
            )));
        }
        if let Some(name) = self.0.iter().find(|f| **f == key) {
            return Ok(MatchField::Extra(name));
        }
        let expected = ISTIO_FIELDS
            .iter()
            .map(|(f, _)| f)
            .chain(self.0)
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Err(E::custom(format_args!(
            "unknown field `{key}`, expected one of {expected}"
        )))
    }
}

struct MatchVisitor<X>(PhantomData<X>);

impl<'de, X: MatchExtras> Visitor<'de> for MatchVisitor<X> {
    type Value = WireMatch<X>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an Istio HTTPMatchRequest object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireMatch<X>, A::Error> {
        let mut out = WireMatch::<X>::default();
        let mut seen: Vec<&'static str> = Vec::new();
        while let Some(field) = map.next_key_seed(MatchFieldSeed(X::FIELDS))? {
            let name = field.name();
            if seen.contains(&name) {
                return Err(de::Error::duplicate_field(name));
            }
            seen.push(name);
            let http = &mut out.http;
            match field {
                MatchField::Istio(_, IstioField::Name) => http.name = map.next_value()?,
                MatchField::Istio(_, IstioField::Uri) => http.uri = map.next_value()?,
                MatchField::Istio(_, IstioField::Method) => http.method = map.next_value()?,
                MatchField::Istio(_, IstioField::Headers) => http.headers = map.next_value()?,
                MatchField::Istio(_, IstioField::WithoutHeaders) => {
                    http.without_headers = map.next_value()?;
                }
                MatchField::Istio(_, IstioField::QueryParams) => {
                    http.query_params = map.next_value()?;
                }
                MatchField::Extra(name) => out.extras.read_field(name, &mut map)?,
            }
        }
        Ok(out)
    }
}

/// A compiled `StringMatch` (never a presence check: that is the absence of
/// one, see [`NamedMatch`]).
#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    /// Anchored at both ends: the whole value must match.
    #[cfg(feature = "regex")]
    Regex(regex::Regex),
}

/// A compiled regex may take at most this much memory: a plugin VM is small.
#[cfg(feature = "regex")]
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl StringMatch {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(expected) => value == expected,
            StringMatch::Prefix(prefix) => value.starts_with(prefix.as_str()),
            #[cfg(feature = "regex")]
            StringMatch::Regex(regex) => regex.is_match(value),
        }
    }

    /// Compiles `wire` found at `path`; `Ok(None)` when it names no kind
    /// (`{}`). Two kinds at once are refused.
    pub fn compile(path: &str, wire: WireStringMatch) -> Result<Option<Self>, ConfigError> {
        match (wire.exact, wire.prefix, wire.regex) {
            (None, None, None) => Ok(None),
            (Some(exact), None, None) => Ok(Some(StringMatch::Exact(exact))),
            (None, Some(prefix), None) => Ok(Some(StringMatch::Prefix(prefix))),
            (None, None, Some(pattern)) => compile_regex(&format!("{path}.regex"), &pattern),
            _ => Err(ConfigError::new(
                path,
                "give exactly one of exact, prefix, regex",
            )),
        }
    }

    /// As [`compile`](Self::compile), for a field where `{}` means nothing
    /// (`uri`, `method`): refused.
    pub fn compile_required(path: &str, wire: WireStringMatch) -> Result<Self, ConfigError> {
        Self::compile(path, wire)?
            .ok_or_else(|| ConfigError::new(path, "empty match: give exact, prefix or regex"))
    }
}

#[cfg(feature = "regex")]
fn compile_regex(path: &str, pattern: &str) -> Result<Option<StringMatch>, ConfigError> {
    let compile = |text: &str| {
        regex::RegexBuilder::new(text)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| ConfigError::new(path, format!("bad regex: {}", regex_error(&e))))
    };
    // The pattern as written first, so that an error quotes it as written;
    // then anchored, as the whole value must match.
    compile(pattern)?;
    compile(&format!("^(?:{pattern})$")).map(|regex| Some(StringMatch::Regex(regex)))
}

#[cfg(not(feature = "regex"))]
fn compile_regex(path: &str, _pattern: &str) -> Result<Option<StringMatch>, ConfigError> {
    Err(ConfigError::new(
        path,
        "this plugin is built without regex matching: use exact or prefix",
    ))
}

/// The regex crate's message on one line, without its caret lines.
#[cfg(feature = "regex")]
fn regex_error(error: &regex::Error) -> String {
    error
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.chars().all(|c| c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A header or query parameter condition. `value: None` checks presence.
#[derive(Debug, Clone)]
pub struct NamedMatch {
    /// Header names lowercase; query parameter names as written.
    pub name: String,
    pub value: Option<StringMatch>,
}

/// What matching looks at, as plain values the adapter reads from the host.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The `:path` header, query string included.
    pub path: &'a str,
    /// Every request header in order (names in any case).
    pub headers: &'a [(String, String)],
}

/// One compiled `HTTPMatchRequest`: every condition given must hold; an
/// empty one matches every request.
#[derive(Debug, Clone, Default)]
pub struct HttpMatch {
    pub uri: Option<StringMatch>,
    pub method: Option<StringMatch>,
    pub headers: Vec<NamedMatch>,
    pub without_headers: Vec<NamedMatch>,
    pub query_params: Vec<NamedMatch>,
}

impl HttpMatch {
    /// Compiles `wire`, found at `path` (`rules[0].match[1]`); errors name
    /// the field below it (`rules[0].match[1].headers.end-user.regex`).
    pub fn compile(path: &str, wire: WireHttpMatch) -> Result<Self, ConfigError> {
        let uri = wire
            .uri
            .map(|m| StringMatch::compile_required(&format!("{path}.uri"), m))
            .transpose()?;
        let method = wire
            .method
            .map(|m| StringMatch::compile_required(&format!("{path}.method"), m))
            .transpose()?;
        Ok(Self {
            uri,
            method,
            headers: named(path, "headers", wire.headers, true)?,
            without_headers: named(path, "withoutHeaders", wire.without_headers, true)?,
            query_params: named(path, "queryParams", wire.query_params, false)?,
        })
    }

    pub fn matches(&self, request: &HttpRequest<'_>) -> bool {
        self.uri
            .as_ref()
            .is_none_or(|uri| uri.matches(path_without_query(request.path)))
            && self
                .method
                .as_ref()
                .is_none_or(|method| method.matches(request.method))
            && self
                .headers
                .iter()
                .all(|m| header_matches(request.headers, m))
            && !self
                .without_headers
                .iter()
                .any(|m| header_excludes(request.headers, m))
            && self
                .query_params
                .iter()
                .all(|m| query_matches(request.path, m))
    }
}

fn named(
    path: &str,
    field: &str,
    map: BTreeMap<String, WireStringMatch>,
    headers: bool,
) -> Result<Vec<NamedMatch>, ConfigError> {
    // A loop, not `collect::<Result<Vec<_>, _>>()`: the same code, smaller
    // in the .wasm.
    let mut named = Vec::with_capacity(map.len());
    for (name, wire) in map {
        let path = format!("{path}.{field}.{name}");
        let name = if headers {
            header_name(&path, &name)?
        } else {
            name
        };
        named.push(NamedMatch {
            name,
            value: StringMatch::compile(&path, wire)?,
        });
    }
    Ok(named)
}

/// A header name as HTTP/2 and Envoy keep it: lowercase token characters
/// (a leading `:` for pseudo-headers). Uppercase is folded; anything else is
/// refused at `path`.
pub fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    let lower = name.to_ascii_lowercase();
    let body = lower.strip_prefix(':').unwrap_or(&lower);
    let valid = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if valid {
        Ok(lower)
    } else {
        Err(ConfigError::new(
            path,
            format!(
                "{name:?} is not a valid header name (lowercase letters, digits and -_.!#$%&'*+^`|~)"
            ),
        ))
    }
}

/// The path without its query string or fragment: what Envoy's path
/// matching looks at.
pub fn path_without_query(path: &str) -> &str {
    // A byte search: `?` and `#` are ASCII, so the cut is a char boundary.
    let end = path
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

/// Every value of header `name`, in order (names compared
/// case-insensitively): what a header condition is evaluated against, one
/// value at a time.
pub fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// The value of the first query parameter called `name` (`""` for `?name`
/// or `?name=`), as sent.
pub fn first_query_value<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let path = path.split_once('#').map_or(path, |(before, _)| before);
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn header_matches(headers: &[(String, String)], matcher: &NamedMatch) -> bool {
    let mut values = header_values(headers, &matcher.name).peekable();
    match &matcher.value {
        None => values.peek().is_some(),
        Some(m) => values.any(|value| m.matches(value)),
    }
}

/// Whether a `withoutHeaders` entry excludes the request: Envoy's inverted
/// header match, a missing header counted as "" for a value matcher, any
/// matching value excluding.
fn header_excludes(headers: &[(String, String)], matcher: &NamedMatch) -> bool {
    let mut values = header_values(headers, &matcher.name).peekable();
    match &matcher.value {
        None => values.peek().is_some(),
        Some(m) if values.peek().is_none() => m.matches(""),
        Some(m) => values.any(|value| m.matches(value)),
    }
}

fn query_matches(path: &str, matcher: &NamedMatch) -> bool {
    let Some(value) = first_query_value(path, &matcher.name) else {
        return false;
    };
    matcher.value.as_ref().is_none_or(|m| m.matches(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn request<'a>(path: &'a str, headers: &'a [(String, String)]) -> HttpRequest<'a> {
        HttpRequest {
            method: "GET",
            path,
            headers,
        }
    }

    fn compile(json: &str) -> Result<HttpMatch, ConfigError> {
        let wire: WireHttpMatch = crate::config::parse_wire(json.as_bytes())?;
        HttpMatch::compile("match[0]", wire)
    }

    fn matcher(json: &str) -> HttpMatch {
        compile(json).unwrap()
    }

    #[test]
    fn string_matches() {
        assert!(StringMatch::Exact("/a".into()).matches("/a"));
        assert!(!StringMatch::Exact("/a".into()).matches("/ab"));
        assert!(StringMatch::Prefix("/a".into()).matches("/ab"));
        assert!(!StringMatch::Prefix("/a".into()).matches("/b"));
    }

    #[test]
    fn uri_ignores_query_and_fragment() {
        let m = matcher(r#"{"uri": {"exact": "/items"}}"#);
        assert!(m.matches(&request("/items?id=7", &[])));
        assert!(m.matches(&request("/items#top", &[])));
        assert!(!m.matches(&request("/items/7", &[])));
    }

    #[test]
    fn method_is_exact() {
        let m = matcher(r#"{"method": {"exact": "POST"}}"#);
        assert!(!m.matches(&request("/", &[])));
        let post = HttpRequest {
            method: "POST",
            ..request("/", &[])
        };
        assert!(m.matches(&post));
    }

    #[test]
    fn a_repeated_header_matches_on_any_one_of_its_values() {
        let headers = pairs(&[("x-a", "1"), ("X-A", "2"), ("x-b", "3,4")]);
        assert_eq!(
            header_values(&headers, "x-a").collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(header_values(&headers, "x-c").count(), 0);
        let r = request("/", &headers);
        assert!(matcher(r#"{"headers": {"x-a": {"exact": "2"}}}"#).matches(&r));
        assert!(matcher(r#"{"headers": {"x-a": {"exact": "1"}}}"#).matches(&r));
        // Not joined, and one value is not split at its commas (Envoy 1.40).
        assert!(!matcher(r#"{"headers": {"x-a": {"exact": "1,2"}}}"#).matches(&r));
        assert!(!matcher(r#"{"headers": {"x-b": {"exact": "3"}}}"#).matches(&r));
        assert!(matcher(r#"{"headers": {"x-b": {"exact": "3,4"}}}"#).matches(&r));
        assert!(matcher(r#"{"headers": {"X-A": {}}}"#).matches(&r));
        assert!(!matcher(r#"{"headers": {"x-c": {}}}"#).matches(&r));
        // Inverted: any matching value excludes the request.
        assert!(!matcher(r#"{"withoutHeaders": {"x-a": {"exact": "2"}}}"#).matches(&r));
        assert!(matcher(r#"{"withoutHeaders": {"x-a": {"exact": "3"}}}"#).matches(&r));
    }

    #[test]
    fn without_headers_is_envoys_inverted_match() {
        let absent = matcher(r#"{"withoutHeaders": {"x-canary": {}}}"#);
        assert!(absent.matches(&request("/", &[])));
        assert!(!absent.matches(&request("/", &pairs(&[("x-canary", "")]))));
        let not_yes = matcher(r#"{"withoutHeaders": {"x-canary": {"exact": "yes"}}}"#);
        assert!(not_yes.matches(&request("/", &[])));
        assert!(not_yes.matches(&request("/", &pairs(&[("x-canary", "no")]))));
        assert!(!not_yes.matches(&request("/", &pairs(&[("x-canary", "yes")]))));
        // A missing header counts as "" (treat_missing_header_as_empty).
        let not_empty = matcher(r#"{"withoutHeaders": {"x-canary": {"exact": ""}}}"#);
        assert!(!not_empty.matches(&request("/", &[])));
        assert!(not_empty.matches(&request("/", &pairs(&[("x-canary", "1")]))));
    }

    #[test]
    fn query_params_use_the_first_occurrence() {
        let present = matcher(r#"{"queryParams": {"debug": {}}}"#);
        assert!(present.matches(&request("/x?a=1&debug", &[])));
        assert!(!present.matches(&request("/x?a=1", &[])));
        assert!(!present.matches(&request("/x", &[])));
        assert!(!present.matches(&request("/x#?debug", &[])));
        let exact = matcher(r#"{"queryParams": {"debug": {"exact": "1"}}}"#);
        assert!(exact.matches(&request("/x?debug=1&debug=2", &[])));
        assert!(!exact.matches(&request("/x?debug=2&debug=1", &[])));
        assert!(!exact.matches(&request("/x?debugger=1", &[])));
        assert_eq!(first_query_value("/x?a=%20", "a"), Some("%20"));
    }

    #[test]
    fn an_empty_match_matches_everything() {
        assert!(HttpMatch::default().matches(&request("/anything?x", &[])));
    }

    #[test]
    fn refusals_name_the_field() {
        let error = |json: &str| compile(json).unwrap_err().to_string();
        assert_eq!(
            error(r#"{"uri": {"exact": "/a", "prefix": "/"}}"#),
            "match[0].uri: give exactly one of exact, prefix, regex"
        );
        assert_eq!(
            error(r#"{"uri": {}}"#),
            "match[0].uri: empty match: give exact, prefix or regex"
        );
        assert_eq!(
            error(r#"{"method": {}}"#),
            "match[0].method: empty match: give exact, prefix or regex"
        );
        assert!(
            error(r#"{"headers": {"end user": {"exact": "x"}}}"#)
                .starts_with("match[0].headers.end user: \"end user\" is not a valid header name")
        );
        assert_eq!(
            error(r#"{"ignoreUriCase": true}"#),
            "ignoreUriCase: Istio's ignoreUriCase is not supported by this plugin (uri matches are case-sensitive here; write the case you expect or a (?i) regex) at line 1 column 16"
        );
        assert!(
            error(r#"{"uri": {"prefix": "/"}, "port": 80, "authority": {"exact": "a"}}"#)
                .starts_with("port: Istio's port is not supported")
        );
        assert!(
            error(r#"{"headers": {"x": {"suffix": "a"}}}"#)
                .starts_with("headers.x.suffix: unknown field")
        );
    }

    #[test]
    fn unknown_and_repeated_fields_are_refused_while_reading() {
        let error = |json: &str| compile(json).unwrap_err().to_string();
        assert!(
            error(r#"{"url": {"exact": "/"}}"#).starts_with(
                "url: unknown field `url`, expected one of `name`, `uri`, `method`, `headers`, `withoutHeaders`, `queryParams`"
            ),
            "{}",
            error(r#"{"url": {"exact": "/"}}"#)
        );
        assert!(
            error(r#"{"uri": {"exact": "/"}, "uri": {"prefix": "/"}}"#)
                .starts_with("config: duplicate field `uri`")
        );
        let array = serde_json::from_str::<WireHttpMatch>(r#"[{"exact": "/"}]"#).unwrap_err();
        assert!(
            array
                .to_string()
                .contains("expected an Istio HTTPMatchRequest object"),
            "{array}"
        );
        // Istio's label is read and changes nothing.
        let named = matcher(r#"{"name": "beta-users", "headers": {"x-beta": {}}}"#);
        assert!(named.matches(&request("/", &pairs(&[("x-beta", "1")]))));
        assert!(!named.matches(&request("/", &[])));
    }

    /// A plugin's own condition beside Istio's.
    #[derive(Debug, Default, PartialEq)]
    struct Tenant {
        tenant: Option<String>,
    }

    impl MatchExtras for Tenant {
        const FIELDS: &'static [&'static str] = &["tenant"];

        fn read_field<'de, A: MapAccess<'de>>(
            &mut self,
            _field: &'static str,
            map: &mut A,
        ) -> Result<(), A::Error> {
            self.tenant = map.next_value()?;
            Ok(())
        }
    }

    #[test]
    fn a_plugins_own_fields_come_beside_istios() {
        let read = |json: &str| crate::config::parse_wire::<WireMatch<Tenant>>(json.as_bytes());
        let wire = read(r#"{"tenant": "a", "uri": {"prefix": "/x"}}"#).unwrap();
        assert_eq!(wire.extras.tenant.as_deref(), Some("a"));
        assert_eq!(wire.http.uri.and_then(|u| u.prefix).as_deref(), Some("/x"));
        let refused = read(r#"{"tenant": 7}"#).unwrap_err();
        assert_eq!(refused.path(), "tenant");
        let unknown = read(r#"{"tenants": "a"}"#).unwrap_err().to_string();
        assert!(
            unknown.contains("`queryParams`, `tenant` at line"),
            "{unknown}"
        );
        // Without extras the plugin's field is unknown.
        let plain = crate::config::parse_wire::<WireHttpMatch>(br#"{"tenant": "a"}"#).unwrap_err();
        assert_eq!(plain.path(), "tenant");
    }

    #[cfg(feature = "regex")]
    #[test]
    fn regexes_match_the_whole_value() {
        let m = matcher(r#"{"uri": {"regex": "/v[0-9]+/.*"}}"#);
        assert!(m.matches(&request("/v2/items", &[])));
        assert!(!matcher(r#"{"uri": {"regex": "v[0-9]"}}"#).matches(&request("/v2", &[])));
        let error = compile(r#"{"headers": {"x": {"regex": "(tester"}}}"#).unwrap_err();
        assert_eq!(error.path(), "match[0].headers.x.regex");
        assert!(error.message().contains("(tester"), "{error}");
        assert!(!error.message().contains("^(?:"), "{error}");
        assert!(!error.message().contains('\n'), "{error}");
    }

    #[cfg(not(feature = "regex"))]
    #[test]
    fn without_the_feature_a_regex_is_refused_by_field() {
        let error = compile(r#"{"uri": {"regex": "/a.*"}}"#).unwrap_err();
        assert_eq!(error.path(), "match[0].uri.regex");
        assert!(error.message().contains("without regex"), "{error}");
    }
}
