//! The configuration in two stages: [`WireConfig`], the JSON as users write
//! it (Istio's field names where Istio has the concept: `match`, `headers`,
//! `uri`, `queryParams`, `exact`/`prefix`/`regex`), then [`Config`],
//! validated and compiled once, through `mesh-policy`'s two-stage entry
//! point ([`mesh_policy::from_json`]: a JSON object, unknown fields refused,
//! an empty configuration read as `{}`). Every refusal is one
//! [`ConfigError`] that starts with the field path, such as
//! `subsets: weights sum to 90, not 100` or
//! `rules[0].match[0].headers.user-agent.regex: bad regex ...`.

use std::collections::{BTreeMap, HashSet};

use mesh_policy::{
    ConfigError, DurationError, EnvLookup, HttpMatch, MatchExtras, NamedMatch, PluginConfig,
    StringMatch, WireStringMatch, parse_duration,
};
use serde::Deserialize;
use serde::de::MapAccess;

use crate::bucket::Split;
use crate::cookie::{
    CookieCodec, MIN_KEY_BYTES, SameSite, SigningKey, render_attributes, valid_subset_name,
};
use crate::matching::{Rule, RuleMatch};

/// The route header unless configured.
pub const DEFAULT_ROUTE_HEADER: &str = "x-canary-subset";
/// The cookie name unless configured.
pub const DEFAULT_COOKIE_NAME: &str = "canary";
/// The cookie lifetime unless configured.
pub const DEFAULT_MAX_AGE: &str = "7d";
/// Browsers cap cookie lifetimes at 400 days; a longer `maxAge` is a mistake.
pub const MAX_MAX_AGE_SECS: u64 = 400 * 86_400;

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
    /// (whole percent) sum to 100. Required (refused when empty, so that
    /// `{}` says what is missing).
    #[serde(default)]
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

/// One `match` entry: Istio's `HTTPMatchRequest` (`mesh-policy`'s wire
/// type, each condition a `WireStringMatch`, which has no `present`: `{}`
/// checks presence, `withoutHeaders` absence; the Istio fields no plugin
/// evaluates refused by name) plus the router's own `cookies`.
pub type WireMatch = mesh_policy::WireMatch<WireCookies>;

/// Not Istio: cookies by name, the first of a name, DQUOTEs removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireCookies {
    pub cookies: BTreeMap<String, WireStringMatch>,
}

impl MatchExtras for WireCookies {
    const FIELDS: &'static [&'static str] = &["cookies"];

    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        _field: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        self.cookies = map.next_value()?;
        Ok(())
    }
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

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
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
    #[error("an empty match (give headers, withoutHeaders, uri, queryParams or cookies)")]
    EmptyMatch,
    #[error("{0:?} is a pseudo-header (Envoy owns it)")]
    PseudoHeader(String),
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
    #[error("cannot parse duration {text:?}: {reason}; whole days may lead (7d, 1d12h)")]
    BadDuration { text: String, reason: DurationError },
    #[error("{0:?} is not whole seconds (Max-Age counts seconds)")]
    FractionalSeconds(String),
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
    #[error(
        "the {prefix} cookie name prefix needs secure: true (RFC 6265bis; browsers drop the cookie otherwise)"
    )]
    PrefixNeedsSecure { prefix: &'static str },
    #[error(
        "the __Host- cookie name prefix needs path \"/\", not {0:?} (RFC 6265bis; browsers drop the cookie otherwise)"
    )]
    HostPrefixNeedsRootPath(String),
    #[error(
        "the __Host- cookie name prefix forbids a domain (RFC 6265bis; browsers drop the cookie otherwise)"
    )]
    HostPrefixForbidsDomain,
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
    /// The `Path` attribute: only requests that path-match it (RFC 6265
    /// §5.1.4) are assigned and get a `Set-Cookie`.
    pub path: String,
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
    /// Where requests outside the cookie's path go: the first subset with a
    /// weight, i.e. the stable version until it is drained.
    pub(crate) default_subset: usize,
}

impl Config {
    /// Parses and validates the plugin configuration
    /// ([`mesh_policy::from_json`]). Keys given by `env` name are read
    /// through `env`.
    pub fn from_json(raw: &[u8], env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        mesh_policy::from_json(raw, env)
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

    /// The subset of requests outside the cookie's path (see
    /// [`Config::decide`]): the first subset with a non-zero weight.
    pub fn default_subset(&self) -> usize {
        self.default_subset
    }

    /// The index of the subset called `name`.
    pub fn subset_index(&self, name: &str) -> Option<usize> {
        self.subsets.iter().position(|s| s.name == name)
    }
}

impl PluginConfig for Config {
    type Wire = WireConfig;

    fn validate(wire: WireConfig, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let (subsets, split) = validate_subsets(&wire.subsets)?;
        let mut rules = Vec::with_capacity(wire.rules.len());
        for (i, rule) in wire.rules.into_iter().enumerate() {
            rules.push(validate_rule(&format!("rules[{i}]"), rule, &subsets)?);
        }
        let route_header = match &wire.route_header {
            Some(name) => header_name("routeHeader", name)?,
            None => DEFAULT_ROUTE_HEADER.to_string(),
        };
        let identity = match &wire.identity {
            Some(name) => {
                let name = header_name("identity", name)?;
                if name == route_header {
                    return Err(ConfigError::new("identity", Problem::IdentityIsRouteHeader));
                }
                Some(name)
            }
            None => None,
        };
        let cookie = validate_cookie(&wire.cookie, env)?;
        let default_subset = subsets.iter().position(|s| s.weight > 0).unwrap_or(0);
        Ok(Config {
            default_subset,
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
        return Err(ConfigError::new("subsets", Problem::NoSubsets));
    }
    let mut seen = HashSet::new();
    let mut subsets = Vec::with_capacity(wire.len());
    let mut total: i64 = 0;
    for (i, subset) in wire.iter().enumerate() {
        if !valid_subset_name(&subset.name) {
            return Err(ConfigError::new(
                format!("subsets[{i}].name"),
                Problem::BadSubsetName(subset.name.clone()),
            ));
        }
        if !seen.insert(subset.name.as_str()) {
            return Err(ConfigError::new(
                format!("subsets[{i}].name"),
                Problem::DuplicateSubset(subset.name.clone()),
            ));
        }
        let weight = u8::try_from(subset.weight)
            .ok()
            .filter(|w| *w <= 100)
            .ok_or_else(|| {
                ConfigError::new(
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
        .ok_or_else(|| ConfigError::new("subsets", Problem::WeightSum(total)))?;
    Ok((subsets, split))
}

fn validate_rule(path: &str, rule: WireRule, subsets: &[Subset]) -> Result<Rule, ConfigError> {
    let subset = subsets
        .iter()
        .position(|s| s.name == rule.subset)
        .ok_or_else(|| {
            ConfigError::new(
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
        return Err(ConfigError::new(
            format!("{path}.match"),
            Problem::NoMatches,
        ));
    }
    let mut matches = Vec::with_capacity(rule.matches.len());
    for (i, m) in rule.matches.into_iter().enumerate() {
        matches.push(validate_match(&format!("{path}.match[{i}]"), m)?);
    }
    Ok(Rule { subset, matches })
}

fn validate_match(path: &str, wire: WireMatch) -> Result<RuleMatch, ConfigError> {
    let WireMatch {
        http: istio,
        extras: WireCookies { cookies },
    } = wire;
    if istio.headers.is_empty()
        && istio.without_headers.is_empty()
        && istio.uri.is_none()
        && istio.method.is_none()
        && istio.query_params.is_empty()
        && cookies.is_empty()
    {
        return Err(ConfigError::new(path, Problem::EmptyMatch));
    }
    let http = HttpMatch::compile(path, istio)?;
    let mut compiled = Vec::with_capacity(cookies.len());
    for (name, m) in cookies {
        let value = StringMatch::compile(&format!("{path}.cookies.{name}"), m)?;
        compiled.push(NamedMatch { name, value });
    }
    Ok(RuleMatch {
        http,
        cookies: compiled,
    })
}

/// A header name the plugin writes or reads an identity from, lower-cased
/// (`mesh-policy`'s header-name rules): not a pseudo-header, not one that
/// Envoy or the framing owns.
fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    let lower = mesh_policy::header_name(path, name)?;
    if lower.starts_with(':') {
        return Err(ConfigError::new(
            path,
            Problem::PseudoHeader(name.to_string()),
        ));
    }
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(ConfigError::new(
            path,
            Problem::ReservedHeader(name.to_string()),
        ));
    }
    Ok(lower)
}

/// An RFC 6265 cookie-name (an RFC 7230 token): visible ASCII without
/// separators.
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
        return Err(ConfigError::new(
            "cookie.name",
            Problem::BadCookieName(name),
        ));
    }
    let max_age_text = wire.max_age.as_deref().unwrap_or(DEFAULT_MAX_AGE);
    let max_age = max_age_seconds(max_age_text)
        .map_err(|problem| ConfigError::new("cookie.maxAge", problem))?;
    if max_age == 0 {
        return Err(ConfigError::new("cookie.maxAge", Problem::MaxAgeTooShort));
    }
    if max_age > MAX_MAX_AGE_SECS {
        return Err(ConfigError::new(
            "cookie.maxAge",
            Problem::MaxAgeTooLong(max_age_text.to_string()),
        ));
    }
    let path = wire.path.as_deref().unwrap_or("/");
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
        return Err(ConfigError::new(
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
            return Err(ConfigError::new(
                "cookie.domain",
                Problem::BadCookieDomain(domain.clone()),
            ));
        }
    }
    validate_name_prefix(&name, path, wire)?;
    let same_site = match wire.same_site.as_deref() {
        None => SameSite::Lax,
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "strict" => SameSite::Strict,
            "lax" => SameSite::Lax,
            "none" => SameSite::None,
            _ => {
                return Err(ConfigError::new(
                    "cookie.sameSite",
                    Problem::BadSameSite(text.to_string()),
                ));
            }
        },
    };
    if same_site == SameSite::None && !wire.secure {
        return Err(ConfigError::new(
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
                return Err(ConfigError::new(
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
        path: path.to_string(),
        attributes,
    })
}

/// RFC 6265bis §4.1.3 cookie name prefixes: a browser stores a `__Secure-`
/// cookie only with `Secure`, and a `__Host-` cookie only with `Secure`,
/// `Path=/` and no `Domain`. It drops any other such cookie without a word,
/// so every request would look like a new user: refused here instead.
/// Browsers compare the prefixes case-insensitively, and so does this.
fn validate_name_prefix(name: &str, path: &str, wire: &WireCookie) -> Result<(), ConfigError> {
    let has_prefix = |prefix: &str| {
        name.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    };
    let prefix = if has_prefix("__Host-") {
        "__Host-"
    } else if has_prefix("__Secure-") {
        "__Secure-"
    } else {
        return Ok(());
    };
    if !wire.secure {
        return Err(ConfigError::new(
            "cookie.secure",
            Problem::PrefixNeedsSecure { prefix },
        ));
    }
    if prefix == "__Host-" {
        if path != "/" {
            return Err(ConfigError::new(
                "cookie.path",
                Problem::HostPrefixNeedsRootPath(path.to_string()),
            ));
        }
        if wire.domain.is_some() {
            return Err(ConfigError::new(
                "cookie.domain",
                Problem::HostPrefixForbidsDomain,
            ));
        }
    }
    Ok(())
}

/// `cookie.maxAge` in seconds: a Go duration (`mesh_policy::parse_duration`:
/// `12h`, `90m`, `1h30m`), optionally led by whole days (`7d`, `1d12h`),
/// since cookie lifetimes are counted in days and Go durations have none.
/// `Max-Age` is whole seconds, so a fraction of a second is refused.
fn max_age_seconds(text: &str) -> Result<u64, Problem> {
    let bad = |reason: DurationError| Problem::BadDuration {
        text: text.to_string(),
        reason,
    };
    let (days, rest) = match text.split_once('d') {
        Some((days, rest)) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => {
            let days: u64 = days
                .parse()
                .map_err(|_| bad(DurationError::Overflow(text.to_string())))?;
            (days, rest)
        }
        _ => (0, text),
    };
    // `7d`: the days were the whole text.
    let rest = if rest.is_empty() && rest.len() < text.len() {
        std::time::Duration::ZERO
    } else {
        parse_duration(rest).map_err(bad)?
    };
    if rest.subsec_nanos() != 0 {
        return Err(Problem::FractionalSeconds(text.to_string()));
    }
    days.checked_mul(86_400)
        .and_then(|secs| secs.checked_add(rest.as_secs()))
        .ok_or_else(|| bad(DurationError::Overflow(text.to_string())))
}

/// Reads a key inline or from the environment. A value read from the
/// environment loses trailing line breaks (secrets written with `echo` keep
/// one); the key is never echoed in an error.
fn signing_key(path: &str, wire: &WireKey, env: EnvLookup<'_>) -> Result<SigningKey, ConfigError> {
    let (bytes, key_path) = match (&wire.inline, &wire.env) {
        (Some(inline), None) => (inline.clone(), format!("{path}.inline")),
        (None, Some(name)) => {
            let value = env(name).ok_or_else(|| {
                ConfigError::new(format!("{path}.env"), Problem::EnvUnset(name.clone()))
            })?;
            (
                value.trim_end_matches(['\r', '\n']).to_string(),
                format!("{path}.env"),
            )
        }
        _ => return Err(ConfigError::new(path, Problem::KeyKinds)),
    };
    SigningKey::new(bytes.as_bytes())
        .ok_or_else(|| ConfigError::new(key_path, Problem::ShortKey(bytes.len())))
}
