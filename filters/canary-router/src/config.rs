//! The configuration in two stages: [`WireConfig`], the JSON as users write
//! it (Istio's field names where Istio has the concept: `match`, `headers`,
//! `uri`, `queryParams`, `exact`/`prefix`/`regex`), then [`Config`],
//! validated and compiled once. Every refusal starts with the field path,
//! such as `subsets: weights sum to 90, not 100` or
//! `rules[0].match[0].headers.user-agent.regex: invalid regex ...`.

use std::collections::{BTreeMap, HashSet};

use regex::RegexBuilder;
use serde::Deserialize;

use crate::bucket::Split;
use crate::cookie::{
    CookieCodec, MIN_KEY_BYTES, SameSite, SigningKey, render_attributes, valid_subset_name,
};
use crate::duration::{DurationError, parse_seconds};
use crate::matching::{Match, Rule, StringMatcher};

/// The route header unless configured.
pub const DEFAULT_ROUTE_HEADER: &str = "x-canary-subset";
/// The cookie name unless configured.
pub const DEFAULT_COOKIE_NAME: &str = "canary";
/// The cookie lifetime unless configured.
pub const DEFAULT_MAX_AGE: &str = "7d";
/// Browsers cap cookie lifetimes at 400 days; a longer `maxAge` is a mistake.
pub const MAX_MAX_AGE_SECS: u64 = 400 * 86_400;
/// A compiled regex may take at most this much memory: a plugin VM is small.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Request headers that cannot carry the route decision or the identity:
/// Envoy or the HTTP framing own them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "set-cookie",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "upgrade",
    "expect",
    "proxy-connection",
];

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

/// The plugin configuration as written (JSON).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireConfig {
    /// In a fixed order, stable version first and canary last; weights
    /// (whole percent) sum to 100.
    pub subsets: Vec<WireSubset>,
    /// Explicit assignments; the first rule that matches wins over the
    /// cookie and the weights.
    #[serde(default)]
    pub rules: Vec<WireRule>,
    #[serde(default)]
    pub cookie: WireCookie,
    /// The request header set to the chosen subset (`x-canary-subset`).
    #[serde(default)]
    pub route_header: Option<String>,
    /// A request header identifying the user (`x-user-id`): its hash gives
    /// the bucket of a user without a cookie.
    #[serde(default)]
    pub identity: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireSubset {
    pub name: String,
    pub weight: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireRule {
    /// The subset matching requests go to (any subset, even at weight 0).
    pub subset: String,
    /// Any one entry must hold; all conditions within an entry must hold.
    #[serde(rename = "match")]
    pub matches: Vec<WireMatch>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireMatch {
    #[serde(default)]
    pub headers: BTreeMap<String, WireStringMatch>,
    /// The path, query string excluded.
    #[serde(default)]
    pub uri: Option<WireStringMatch>,
    /// Query parameters as sent (not percent-decoded).
    #[serde(default)]
    pub query_params: BTreeMap<String, WireStringMatch>,
    #[serde(default)]
    pub cookies: BTreeMap<String, WireStringMatch>,
}

/// Istio's `StringMatch` plus `present`. One of them; `{}` (Istio's way of
/// saying "the header is there") is `present: true`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireStringMatch {
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    /// RE2-style, matched against the whole value.
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub present: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireCookie {
    /// `canary` unless given.
    #[serde(default)]
    pub name: Option<String>,
    /// `7d` unless given; units `s`, `m`, `h`, `d`.
    #[serde(default)]
    pub max_age: Option<String>,
    /// `/` unless given.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub secure: bool,
    /// True unless given.
    #[serde(default)]
    pub http_only: Option<bool>,
    /// `Strict`, `Lax` (default) or `None`.
    #[serde(default)]
    pub same_site: Option<String>,
    /// Signs cookies with HMAC-SHA256; without it they are unsigned.
    #[serde(default)]
    pub signing_key: Option<WireKey>,
    /// The key being rotated out: cookies it signed are still accepted (and
    /// re-signed with `signingKey`).
    #[serde(default)]
    pub previous_signing_key: Option<WireKey>,
}

/// A key, inline or from an environment variable of the VM (Envoy's
/// `vm_config.environment_variables`, Istio's `vmConfig.env`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireKey {
    #[serde(default)]
    pub inline: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A refused configuration. The message starts with the field path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The JSON itself: syntax, unknown field, wrong type, missing field.
    #[error("{path}: {message}")]
    Json { path: String, message: String },
    /// A value that parsed but cannot be used.
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: Problem },
}

impl ConfigError {
    /// The field path the error is about (`subsets[1].name`).
    pub fn path(&self) -> &str {
        match self {
            ConfigError::Json { path, .. } | ConfigError::Invalid { path, .. } => path,
        }
    }

    fn invalid(path: impl Into<String>, problem: Problem) -> Self {
        ConfigError::Invalid {
            path: path.into(),
            problem,
        }
    }
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("empty configuration (give at least subsets)")]
    Empty,
    #[error("no subsets (give at least one, with weights summing to 100)")]
    NoSubsets,
    #[error("{0:?} is not a subset name (1 to 63 letters, digits, '-' or '_')")]
    BadSubsetName(String),
    #[error("duplicate subset name {0:?}")]
    DuplicateSubset(String),
    #[error("{0} is not a weight (0 to 100)")]
    BadWeight(i64),
    #[error("weights sum to {0}, not 100")]
    WeightSum(i64),
    #[error("{name:?} is not one of the subsets ({known})")]
    UnknownSubset { name: String, known: String },
    #[error("a rule needs at least one match")]
    NoMatches,
    #[error("an empty match (give headers, uri, queryParams or cookies)")]
    EmptyMatch,
    #[error("give one of exact, prefix, regex or present")]
    MatchKinds,
    #[error("present does not apply to the path")]
    PresentOnUri,
    #[error("invalid regex: {0}")]
    BadRegex(String),
    #[error("{0:?} is not a header name")]
    BadHeaderName(String),
    #[error("{0:?} cannot be used here (Envoy or HTTP framing owns it)")]
    ReservedHeader(String),
    #[error("must differ from routeHeader")]
    IdentityIsRouteHeader,
    #[error("{0:?} is not a cookie name")]
    BadCookieName(String),
    #[error("{0:?} must start with '/' and hold no spaces, ';' or control characters")]
    BadCookiePath(String),
    #[error("{0:?} is not a domain")]
    BadCookieDomain(String),
    #[error("cannot parse duration {text:?}: {reason}")]
    BadDuration { text: String, reason: DurationError },
    #[error("must be at least 1s")]
    MaxAgeTooShort,
    #[error("{0} is longer than 400d (browsers cap cookie lifetimes there)")]
    MaxAgeTooLong(String),
    #[error("{0:?} is not Strict, Lax or None")]
    BadSameSite(String),
    #[error("SameSite=None needs secure: true (browsers drop the cookie otherwise)")]
    SameSiteNoneNeedsSecure,
    #[error("give one of inline or env")]
    KeyKinds,
    #[error("environment variable {0:?} is not set")]
    EnvUnset(String),
    #[error("the key is {0} bytes; at least {MIN_KEY_BYTES} are needed")]
    ShortKey(usize),
    #[error("needs signingKey (the current key) as well")]
    PreviousWithoutCurrent,
}

// ---------------------------------------------------------------------------
// Validated configuration
// ---------------------------------------------------------------------------

/// A subset: a name the route configuration knows, and its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subset {
    pub name: String,
    /// Whole percent.
    pub weight: u8,
}

/// The cookie: codec (name, keys) and what `Set-Cookie` carries.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    pub codec: CookieCodec,
    pub max_age: u64,
    /// `; Max-Age=...; Path=...` rendered once.
    pub attributes: String,
}

impl CookieSettings {
    /// The whole `Set-Cookie` header value for `value`.
    pub fn set_cookie(&self, value: &str) -> String {
        format!("{}={value}{}", self.codec.name(), self.attributes)
    }
}

/// A validated, compiled configuration, shared by every request.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) subsets: Vec<Subset>,
    pub(crate) split: Split,
    pub(crate) rules: Vec<Rule>,
    pub(crate) cookie: CookieSettings,
    pub(crate) route_header: String,
    pub(crate) identity: Option<String>,
}

/// Looks up an environment variable of the VM.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Config {
    /// Parses and validates the plugin configuration. Keys given by `env`
    /// name are read through `env`.
    pub fn from_json(raw: &[u8], env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError::invalid("config", Problem::Empty));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(raw);
        let wire: WireConfig = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| json_error(e.path().to_string(), e.inner()))?;
        deserializer
            .end()
            .map_err(|e| json_error(String::new(), &e))?;
        Config::try_from((wire, env))
    }

    pub fn subsets(&self) -> &[Subset] {
        &self.subsets
    }

    pub fn split(&self) -> &Split {
        &self.split
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn cookie(&self) -> &CookieSettings {
        &self.cookie
    }

    /// The request header carrying the decision, lower-case.
    pub fn route_header(&self) -> &str {
        &self.route_header
    }

    /// The identity header, lower-case.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// The index of the subset called `name`.
    pub fn subset_index(&self, name: &str) -> Option<usize> {
        self.subsets.iter().position(|s| s.name == name)
    }
}

fn json_error(path: String, error: &serde_json::Error) -> ConfigError {
    let path = if path.is_empty() || path == "." {
        "config".to_string()
    } else {
        path
    };
    ConfigError::Json {
        path,
        message: error.to_string(),
    }
}

impl TryFrom<(WireConfig, EnvLookup<'_>)> for Config {
    type Error = ConfigError;

    fn try_from((wire, env): (WireConfig, EnvLookup<'_>)) -> Result<Self, ConfigError> {
        let (subsets, split) = validate_subsets(&wire.subsets)?;
        let rules = wire
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| validate_rule(&format!("rules[{i}]"), rule, &subsets))
            .collect::<Result<Vec<_>, _>>()?;
        let route_header = match &wire.route_header {
            Some(name) => header_name("routeHeader", name)?,
            None => DEFAULT_ROUTE_HEADER.to_string(),
        };
        let identity = match &wire.identity {
            Some(name) => {
                let name = header_name("identity", name)?;
                if name == route_header {
                    return Err(ConfigError::invalid(
                        "identity",
                        Problem::IdentityIsRouteHeader,
                    ));
                }
                Some(name)
            }
            None => None,
        };
        let cookie = validate_cookie(&wire.cookie, env)?;
        Ok(Config {
            subsets,
            split,
            rules,
            cookie,
            route_header,
            identity,
        })
    }
}

fn validate_subsets(wire: &[WireSubset]) -> Result<(Vec<Subset>, Split), ConfigError> {
    if wire.is_empty() {
        return Err(ConfigError::invalid("subsets", Problem::NoSubsets));
    }
    let mut seen = HashSet::new();
    let mut subsets = Vec::with_capacity(wire.len());
    let mut total: i64 = 0;
    for (i, subset) in wire.iter().enumerate() {
        if !valid_subset_name(&subset.name) {
            return Err(ConfigError::invalid(
                format!("subsets[{i}].name"),
                Problem::BadSubsetName(subset.name.clone()),
            ));
        }
        if !seen.insert(subset.name.as_str()) {
            return Err(ConfigError::invalid(
                format!("subsets[{i}].name"),
                Problem::DuplicateSubset(subset.name.clone()),
            ));
        }
        let weight = u8::try_from(subset.weight)
            .ok()
            .filter(|w| *w <= 100)
            .ok_or_else(|| {
                ConfigError::invalid(
                    format!("subsets[{i}].weight"),
                    Problem::BadWeight(subset.weight),
                )
            })?;
        total += i64::from(weight);
        subsets.push(Subset {
            name: subset.name.clone(),
            weight,
        });
    }
    let weights: Vec<u8> = subsets.iter().map(|s| s.weight).collect();
    let split = Split::new(&weights)
        .ok_or_else(|| ConfigError::invalid("subsets", Problem::WeightSum(total)))?;
    Ok((subsets, split))
}

fn validate_rule(path: &str, rule: &WireRule, subsets: &[Subset]) -> Result<Rule, ConfigError> {
    let subset = subsets
        .iter()
        .position(|s| s.name == rule.subset)
        .ok_or_else(|| {
            ConfigError::invalid(
                format!("{path}.subset"),
                Problem::UnknownSubset {
                    name: rule.subset.clone(),
                    known: subsets
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                },
            )
        })?;
    if rule.matches.is_empty() {
        return Err(ConfigError::invalid(
            format!("{path}.match"),
            Problem::NoMatches,
        ));
    }
    let matches = rule
        .matches
        .iter()
        .enumerate()
        .map(|(i, m)| validate_match(&format!("{path}.match[{i}]"), m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rule { subset, matches })
}

fn validate_match(path: &str, wire: &WireMatch) -> Result<Match, ConfigError> {
    if wire.headers.is_empty()
        && wire.uri.is_none()
        && wire.query_params.is_empty()
        && wire.cookies.is_empty()
    {
        return Err(ConfigError::invalid(path, Problem::EmptyMatch));
    }
    let mut headers = Vec::with_capacity(wire.headers.len());
    for (name, m) in &wire.headers {
        let name = header_name(&format!("{path}.headers"), name)?;
        let matcher = string_matcher(&format!("{path}.headers.{name}"), m)?;
        headers.push((name, matcher));
    }
    let uri = match &wire.uri {
        Some(m) => {
            let uri_path = format!("{path}.uri");
            if m.present.is_some() {
                return Err(ConfigError::invalid(uri_path, Problem::PresentOnUri));
            }
            Some(string_matcher(&uri_path, m)?)
        }
        None => None,
    };
    let named = |section: &str,
                 items: &BTreeMap<String, WireStringMatch>|
     -> Result<Vec<(String, StringMatcher)>, ConfigError> {
        items
            .iter()
            .map(|(name, m)| {
                Ok((
                    name.clone(),
                    string_matcher(&format!("{path}.{section}.{name}"), m)?,
                ))
            })
            .collect()
    };
    Ok(Match {
        headers,
        uri,
        query_params: named("queryParams", &wire.query_params)?,
        cookies: named("cookies", &wire.cookies)?,
    })
}

fn string_matcher(path: &str, wire: &WireStringMatch) -> Result<StringMatcher, ConfigError> {
    let given = usize::from(wire.exact.is_some())
        + usize::from(wire.prefix.is_some())
        + usize::from(wire.regex.is_some())
        + usize::from(wire.present.is_some());
    if given > 1 {
        return Err(ConfigError::invalid(path, Problem::MatchKinds));
    }
    if let Some(exact) = &wire.exact {
        return Ok(StringMatcher::Exact(exact.clone()));
    }
    if let Some(prefix) = &wire.prefix {
        return Ok(StringMatcher::Prefix(prefix.clone()));
    }
    if let Some(pattern) = &wire.regex {
        let build = |pattern: &str| {
            RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    ConfigError::invalid(
                        format!("{path}.regex"),
                        Problem::BadRegex(one_line(&e.to_string())),
                    )
                })
        };
        // The pattern alone first, so an error quotes what the user wrote.
        build(pattern)?;
        return Ok(StringMatcher::Regex(build(&format!("^(?:{pattern})$"))?));
    }
    Ok(StringMatcher::Present(wire.present.unwrap_or(true)))
}

/// Regex errors span several lines (with a caret under the problem); the
/// configuration error must stay on one.
fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.chars().all(|c| c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A header name, lower-cased: an HTTP token, not a pseudo-header, not one
/// that Envoy or the framing owns.
fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    let lower = name.to_ascii_lowercase();
    if !is_token(&lower) {
        return Err(ConfigError::invalid(
            path,
            Problem::BadHeaderName(name.to_string()),
        ));
    }
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(ConfigError::invalid(
            path,
            Problem::ReservedHeader(name.to_string()),
        ));
    }
    Ok(lower)
}

/// An RFC 7230 / 6265 token: visible ASCII without separators.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn validate_cookie(wire: &WireCookie, env: EnvLookup<'_>) -> Result<CookieSettings, ConfigError> {
    let name = wire
        .name
        .clone()
        .unwrap_or_else(|| DEFAULT_COOKIE_NAME.to_string());
    if !is_token(&name) {
        return Err(ConfigError::invalid(
            "cookie.name",
            Problem::BadCookieName(name),
        ));
    }
    let max_age_text = wire.max_age.as_deref().unwrap_or(DEFAULT_MAX_AGE);
    let max_age = parse_seconds(max_age_text).map_err(|reason| {
        ConfigError::invalid(
            "cookie.maxAge",
            Problem::BadDuration {
                text: max_age_text.to_string(),
                reason,
            },
        )
    })?;
    if max_age == 0 {
        return Err(ConfigError::invalid(
            "cookie.maxAge",
            Problem::MaxAgeTooShort,
        ));
    }
    if max_age > MAX_MAX_AGE_SECS {
        return Err(ConfigError::invalid(
            "cookie.maxAge",
            Problem::MaxAgeTooLong(max_age_text.to_string()),
        ));
    }
    let path = wire.path.as_deref().unwrap_or("/");
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
        return Err(ConfigError::invalid(
            "cookie.path",
            Problem::BadCookiePath(path.to_string()),
        ));
    }
    if let Some(domain) = &wire.domain {
        let bare = domain.strip_prefix('.').unwrap_or(domain);
        let valid = !bare.is_empty()
            && bare.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(ConfigError::invalid(
                "cookie.domain",
                Problem::BadCookieDomain(domain.clone()),
            ));
        }
    }
    let same_site = match wire.same_site.as_deref() {
        None => SameSite::Lax,
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "strict" => SameSite::Strict,
            "lax" => SameSite::Lax,
            "none" => SameSite::None,
            _ => {
                return Err(ConfigError::invalid(
                    "cookie.sameSite",
                    Problem::BadSameSite(text.to_string()),
                ));
            }
        },
    };
    if same_site == SameSite::None && !wire.secure {
        return Err(ConfigError::invalid(
            "cookie.sameSite",
            Problem::SameSiteNoneNeedsSecure,
        ));
    }
    let current = match &wire.signing_key {
        Some(key) => Some(signing_key("cookie.signingKey", key, env)?),
        None => None,
    };
    let previous = match &wire.previous_signing_key {
        Some(key) => {
            if current.is_none() {
                return Err(ConfigError::invalid(
                    "cookie.previousSigningKey",
                    Problem::PreviousWithoutCurrent,
                ));
            }
            Some(signing_key("cookie.previousSigningKey", key, env)?)
        }
        None => None,
    };
    let attributes = render_attributes(
        max_age,
        path,
        wire.domain.as_deref(),
        wire.secure,
        wire.http_only.unwrap_or(true),
        Some(same_site),
    );
    Ok(CookieSettings {
        codec: CookieCodec::new(name, current, previous),
        max_age,
        attributes,
    })
}

/// Reads a key inline or from the environment. A value read from the
/// environment loses trailing line breaks (secrets written with `echo` keep
/// one); the key is never echoed in an error.
fn signing_key(path: &str, wire: &WireKey, env: EnvLookup<'_>) -> Result<SigningKey, ConfigError> {
    let (bytes, key_path) = match (&wire.inline, &wire.env) {
        (Some(inline), None) => (inline.clone(), format!("{path}.inline")),
        (None, Some(name)) => {
            let value = env(name).ok_or_else(|| {
                ConfigError::invalid(format!("{path}.env"), Problem::EnvUnset(name.clone()))
            })?;
            (
                value.trim_end_matches(['\r', '\n']).to_string(),
                format!("{path}.env"),
            )
        }
        _ => return Err(ConfigError::invalid(path, Problem::KeyKinds)),
    };
    SigningKey::new(bytes.as_bytes())
        .ok_or_else(|| ConfigError::invalid(key_path, Problem::ShortKey(bytes.len())))
}
