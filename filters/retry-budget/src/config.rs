//! The configuration in mesh-policy's two stages: [`WireConfig`], the JSON
//! as users write it (field names after Istio's `HTTPRetry`, Linkerd's
//! budget and gRPC's `retryThrottling`), then [`Config`], validated once at
//! `on_configure` ([`PluginConfig`]). Every refusal is a [`ConfigError`]
//! naming the field path, such as
//! `budget.retryRatio: 1500 is not between 0 and 1000`.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use mesh_policy::{
    ConfigError, DurationError, EnvLookup, PluginConfig, RetryOn, RetryOnError, format_duration,
    parse_duration,
};
use serde::de::value::MapAccessDeserializer;
use serde::{Deserialize, Deserializer};

use crate::budget::Budget;
use crate::ratio::{MAX_RETRY_RATIO, RatioBudget};
use crate::tokens::TokenBucket;

/// Istio's default: two retries.
pub const DEFAULT_ATTEMPTS: u32 = 2;
/// The most retries a request may be given.
pub const MAX_ATTEMPTS: u32 = 10;
/// gRPC allows at most five attempts: four retries in token-bucket mode.
pub const MAX_GRPC_ATTEMPTS: u32 = 4;
/// Distinct scopes with a budget of their own; later ones share `_other`.
pub const DEFAULT_MAX_SCOPES: u32 = 32;
const MAX_MAX_SCOPES: i64 = 1024;

const DEFAULT_RETRY_RATIO: f64 = 0.2;
const DEFAULT_MIN_RETRIES_PER_SECOND: i64 = 10;
const DEFAULT_TTL: &str = "10s";
const MIN_TTL: Duration = Duration::from_secs(1);
const MAX_TTL: Duration = Duration::from_secs(60);
const MAX_MIN_RETRIES_PER_SECOND: i64 = 100_000;
const MAX_TOKENS: i64 = 1000;
const MIN_PER_TRY_TIMEOUT: Duration = Duration::from_millis(1);
const MAX_PER_TRY_TIMEOUT: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

/// The plugin configuration as written (JSON). An empty configuration is
/// Linkerd's default budget with Istio's default retries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireConfig {
    /// The Linkerd / Finagle budget (the default mode).
    #[serde(default, deserialize_with = "object")]
    pub budget: Option<WireBudget>,
    /// gRPC's token bucket instead of `budget`.
    #[serde(default, deserialize_with = "object")]
    pub token_bucket: Option<WireTokenBucket>,
    /// Retries a request may have when the budget allows (Istio's `attempts`).
    #[serde(default)]
    pub attempts: Option<i64>,
    /// Envoy's retry conditions, comma-separated (Istio's `retryOn`).
    #[serde(default)]
    pub retry_on: Option<String>,
    /// A timeout per attempt (Istio's `perTryTimeout`), e.g. `2s`.
    #[serde(default)]
    pub per_try_timeout: Option<String>,
    /// What a budget is kept per: `"cluster"` (default), `"route"`,
    /// `{"header": "x-name"}` or `{"property": "a.b"}`.
    #[serde(default)]
    pub scope: Option<WireScope>,
    /// Distinct scopes with a budget of their own (default 32).
    #[serde(default)]
    pub max_scopes: Option<i64>,
    /// Mark failed responses with `x-envoy-ratelimited: true`, so the
    /// calling Envoy does not retry them: retries happen at one layer.
    #[serde(default)]
    pub suppress_caller_retries: bool,
}

/// Linkerd's and Finagle's budget parameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireBudget {
    /// Retries as a share of requests (0 to 1000; default 0.2).
    #[serde(default)]
    pub retry_ratio: Option<f64>,
    /// Retries per second always allowed (default 10).
    #[serde(default)]
    pub min_retries_per_second: Option<i64>,
    /// The window requests and retries are counted over (1s to 60s; default 10s).
    #[serde(default)]
    pub ttl: Option<String>,
}

/// gRPC's `retryThrottling` parameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireTokenBucket {
    /// The bucket's size (1 to 1000).
    pub max_tokens: i64,
    /// Tokens a success gives back (0.001 to `maxTokens`, three decimals).
    pub token_ratio: f64,
}

/// What a budget is kept per.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WireScope {
    Cluster,
    Route,
    Header(String),
    Property(String),
}

// ---------------------------------------------------------------------------
// Validated configuration
// ---------------------------------------------------------------------------

/// What a budget is kept per, as the adapter reads it from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The upstream cluster (property `xds.cluster_name`, which Envoy
    /// fills in before the plugin sees the request headers).
    Cluster,
    /// The route's name (property `xds.route_name`).
    Route,
    /// A request header's value.
    Header(String),
    /// A property path, e.g. `["xds", "route_name"]`.
    Property(Vec<String>),
}

impl Scope {
    /// The property path to read, for the property-based scopes.
    pub fn property_path(&self) -> Option<Vec<&str>> {
        match self {
            Self::Cluster => Some(vec!["xds", "cluster_name"]),
            Self::Route => Some(vec!["xds", "route_name"]),
            Self::Property(path) => Some(path.iter().map(String::as_str).collect()),
            Self::Header(_) => None,
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub budget: Budget,
    /// Retries a request may have when the budget allows.
    pub attempts: u32,
    pub retry_on: RetryOn,
    pub per_try_timeout: Option<Duration>,
    pub scope: Scope,
    pub max_scopes: u32,
    pub suppress_caller_retries: bool,
}

impl Default for Config {
    /// Linkerd's default budget with Istio's default retries: what an empty
    /// configuration means.
    fn default() -> Self {
        Self {
            budget: Budget::Ratio(RatioBudget::new(
                DEFAULT_RETRY_RATIO,
                DEFAULT_MIN_RETRIES_PER_SECOND as u32,
                Duration::from_secs(10),
            )),
            attempts: DEFAULT_ATTEMPTS,
            retry_on: RetryOn::istio_default(),
            per_try_timeout: None,
            scope: Scope::Cluster,
            max_scopes: DEFAULT_MAX_SCOPES,
            suppress_caller_retries: false,
        }
    }
}

/// What is wrong with a field (becomes a [`ConfigError`] with its path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{value} is not between {min} and {max}")]
    OutOfRange {
        value: String,
        min: String,
        max: String,
    },
    #[error("{0}")]
    Duration(DurationError),
    #[error("{0}")]
    RetryOn(RetryOnError),
    #[error("{0}")]
    Invalid(String),
}

fn error(field: &str, problem: Problem) -> ConfigError {
    ConfigError::new(field, problem)
}

/// Reads a struct field only from a JSON object. serde reads a struct from
/// an array too (its fields by position), so `"budget": [0.5]` would be a
/// budget; mesh-policy refuses an array only as the whole document.
fn object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOnly<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }

    deserializer
        .deserialize_map(ObjectOnly(PhantomData))
        .map(Some)
}

fn range<T: PartialOrd + fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value >= min && value <= max {
        Ok(value)
    } else {
        Err(error(
            field,
            Problem::OutOfRange {
                value: value.to_string(),
                min: min.to_string(),
                max: max.to_string(),
            },
        ))
    }
}

fn duration_in(
    field: &str,
    text: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let value = parse_duration(text).map_err(|e| error(field, Problem::Duration(e)))?;
    if value < min || value > max {
        return Err(error(
            field,
            Problem::OutOfRange {
                value: text.to_string(),
                min: format_duration(min),
                max: format_duration(max),
            },
        ));
    }
    Ok(value)
}

impl Config {
    /// Parses and validates the plugin configuration (JSON; empty means
    /// `{}`, the defaults): mesh-policy's entry point, no environment.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        mesh_policy::from_json(bytes, &mesh_policy::no_env)
    }

    /// The value of `x-envoy-upstream-rq-per-try-timeout-ms`, if configured.
    pub fn per_try_timeout_ms(&self) -> Option<u64> {
        self.per_try_timeout
            .map(|t| u64::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
    }
}

impl PluginConfig for Config {
    type Wire = WireConfig;

    fn validate(wire: WireConfig, _env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let budget = match (wire.budget, wire.token_bucket) {
            (Some(_), Some(_)) => {
                return Err(error(
                    "tokenBucket",
                    Problem::Invalid("set either budget or tokenBucket, not both".into()),
                ));
            }
            (budget, None) => Budget::Ratio(ratio_budget(budget.unwrap_or_default())?),
            (None, Some(bucket)) => Budget::Tokens(token_bucket(&bucket)?),
        };
        let max_attempts = match budget {
            Budget::Ratio(_) => MAX_ATTEMPTS,
            Budget::Tokens(_) => MAX_GRPC_ATTEMPTS,
        };
        let attempts = match wire.attempts {
            None => DEFAULT_ATTEMPTS.min(max_attempts),
            Some(n) => {
                let n = range("attempts", n, 0, i64::from(max_attempts)).map_err(|e| {
                    if matches!(budget, Budget::Tokens(_)) {
                        error(
                            "attempts",
                            Problem::Invalid(format!(
                                "{n} is not between 0 and {MAX_GRPC_ATTEMPTS} (gRPC allows at most 5 attempts)"
                            )),
                        )
                    } else {
                        e
                    }
                })?;
                u32::try_from(n).unwrap_or(max_attempts)
            }
        };
        let retry_on = match wire.retry_on.as_deref() {
            None => RetryOn::istio_default(),
            Some(list) => {
                RetryOn::parse(list).map_err(|e| error("retryOn", Problem::RetryOn(e)))?
            }
        };
        let per_try_timeout = wire
            .per_try_timeout
            .as_deref()
            .map(|t| duration_in("perTryTimeout", t, MIN_PER_TRY_TIMEOUT, MAX_PER_TRY_TIMEOUT))
            .transpose()?;
        let scope = match wire.scope.unwrap_or(WireScope::Cluster) {
            WireScope::Cluster => Scope::Cluster,
            WireScope::Route => Scope::Route,
            WireScope::Header(name) => Scope::Header(header_name(&name)?),
            WireScope::Property(path) => Scope::Property(property_path(&path)?),
        };
        let max_scopes = match wire.max_scopes {
            None => DEFAULT_MAX_SCOPES,
            Some(n) => u32::try_from(range("maxScopes", n, 1, MAX_MAX_SCOPES)?)
                .unwrap_or(DEFAULT_MAX_SCOPES),
        };
        Ok(Self {
            budget,
            attempts,
            retry_on,
            per_try_timeout,
            scope,
            max_scopes,
            suppress_caller_retries: wire.suppress_caller_retries,
        })
    }
}

fn ratio_budget(wire: WireBudget) -> Result<RatioBudget, ConfigError> {
    let ratio = range(
        "budget.retryRatio",
        wire.retry_ratio.unwrap_or(DEFAULT_RETRY_RATIO),
        0.0,
        MAX_RETRY_RATIO,
    )?;
    let floor = range(
        "budget.minRetriesPerSecond",
        wire.min_retries_per_second
            .unwrap_or(DEFAULT_MIN_RETRIES_PER_SECOND),
        0,
        MAX_MIN_RETRIES_PER_SECOND,
    )?;
    let ttl = duration_in(
        "budget.ttl",
        wire.ttl.as_deref().unwrap_or(DEFAULT_TTL),
        MIN_TTL,
        MAX_TTL,
    )?;
    Ok(RatioBudget::new(
        ratio,
        u32::try_from(floor).unwrap_or(0),
        ttl,
    ))
}

fn token_bucket(wire: &WireTokenBucket) -> Result<TokenBucket, ConfigError> {
    let max = range("tokenBucket.maxTokens", wire.max_tokens, 1, MAX_TOKENS)?;
    let field = "tokenBucket.tokenRatio";
    range(field, wire.token_ratio, 0.0, max as f64)?;
    // gRPC keeps three decimals and drops the rest (gRFC A6; grpc-core
    // parses the number's text): 0.0019 is 0.001. A ratio that comes to 0
    // would never refill the bucket.
    let ratio_milli = truncated_milli(wire.token_ratio);
    if ratio_milli == 0 {
        return Err(error(
            field,
            Problem::Invalid(format!(
                "{} is 0 to three decimals (gRPC ignores further decimals): write at least 0.001",
                wire.token_ratio
            )),
        ));
    }
    Ok(TokenBucket::new(
        u32::try_from(max).unwrap_or(1),
        ratio_milli,
    ))
}

/// A non-negative number in thousandths, further decimals dropped. Read from
/// its shortest decimal form (what the user wrote, for any number JSON
/// gives with at most 17 significant digits), so that 1.005 is 1005, not the
/// 1004 that `1.005 * 1000` gives in binary floating point.
fn truncated_milli(value: f64) -> u64 {
    let text = value.to_string();
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let whole: u64 = whole.parse().unwrap_or(0);
    let milli = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .map(|digit| char::from(digit).to_digit(10).map_or(0, u64::from))
        .fold(0, |milli, digit| milli * 10 + digit);
    whole.saturating_mul(1000).saturating_add(milli)
}

fn header_name(name: &str) -> Result<String, ConfigError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(name.to_string())
    } else {
        Err(error(
            "scope.header",
            Problem::Invalid(format!(
                "{name:?} is not a lower-case header name (letters, digits, '-', '_')"
            )),
        ))
    }
}

fn property_path(path: &str) -> Result<Vec<String>, ConfigError> {
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    if path.is_empty() || parts.iter().any(String::is_empty) {
        return Err(error(
            "scope.property",
            Problem::Invalid(format!(
                "{path:?} is not a property path (dot-separated names, e.g. xds.route_name)"
            )),
        ));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(json: &str) -> String {
        match Config::parse(json.as_bytes()) {
            Ok(config) => format!("accepted: {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_means_linkerd_and_istio_defaults() {
        let config = Config::parse(b"").unwrap();
        assert_eq!(config, Config::parse(b"{}").unwrap());
        assert_eq!(config, Config::default());
        let Budget::Ratio(budget) = config.budget else {
            panic!("ratio mode by default")
        };
        assert_eq!(budget.retry_ratio(), 0.2);
        assert_eq!(budget.min_retries_per_second(), 10);
        assert_eq!(budget.ttl(), Duration::from_secs(10));
        assert_eq!(config.attempts, 2);
        assert_eq!(config.scope, Scope::Cluster);
        assert_eq!(
            config.retry_on.retry_on_header().as_deref(),
            Some("connect-failure,refused-stream,retriable-status-codes")
        );
        // Istio 1.30's default policy lists no retriable status code.
        assert_eq!(config.retry_on.retriable_status_codes_header(), None);
        assert_eq!(
            config.retry_on,
            RetryOn::parse(mesh_policy::retry_on::ISTIO_DEFAULT_RETRY_ON).unwrap()
        );
    }

    #[test]
    fn a_full_configuration() {
        let config = Config::parse(
            br#"{
                "budget": {"retryRatio": 0.1, "minRetriesPerSecond": 1, "ttl": "30s"},
                "attempts": 3,
                "retryOn": "5xx,reset",
                "perTryTimeout": "250ms",
                "scope": {"header": "x-tenant"},
                "maxScopes": 8,
                "suppressCallerRetries": true
            }"#,
        )
        .unwrap();
        assert_eq!(config.attempts, 3);
        assert_eq!(config.per_try_timeout_ms(), Some(250));
        assert_eq!(config.scope, Scope::Header("x-tenant".into()));
        assert_eq!(config.max_scopes, 8);
        assert!(config.suppress_caller_retries);
    }

    #[test]
    fn token_bucket_mode() {
        let config = Config::parse(
            br#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.1}, "attempts": 4}"#,
        )
        .unwrap();
        assert_eq!(config.budget, Budget::Tokens(TokenBucket::new(10, 100)));
    }

    #[test]
    fn token_ratio_decimals_beyond_three_are_dropped() {
        // gRFC A6 keeps three decimals; grpc-core truncates the text.
        let milli = |ratio: &str| {
            let json = format!(r#"{{"tokenBucket": {{"maxTokens": 10, "tokenRatio": {ratio}}}}}"#);
            match Config::parse(json.as_bytes()).map(|c| c.budget) {
                Ok(Budget::Tokens(bucket)) => bucket.ratio_milli(),
                other => panic!("{ratio}: {other:?}"),
            }
        };
        assert_eq!(milli("0.0019"), 1);
        assert_eq!(milli("0.1239"), 123);
        assert_eq!(milli("1.005"), 1005);
        assert_eq!(milli("0.57"), 570);
        assert_eq!(milli("2"), 2000);
        assert_eq!(milli("1e-1"), 100);
    }

    #[test]
    fn retry_ratio_up_to_a_thousand() {
        // Finagle's RetryBudget and tower's TpsBudget accept 0..=1000.
        for ratio in ["1.5", "10", "1000"] {
            let json = format!(r#"{{"budget": {{"retryRatio": {ratio}}}}}"#);
            let config = Config::parse(json.as_bytes());
            let Ok(Config {
                budget: Budget::Ratio(budget),
                ..
            }) = config
            else {
                panic!("{ratio}: {config:?}")
            };
            assert_eq!(budget.retry_ratio().to_string(), ratio);
        }
    }

    #[test]
    fn scopes() {
        let scope = |json: &str| Config::parse(json.as_bytes()).map(|c| c.scope);
        assert_eq!(scope(r#"{"scope": "route"}"#), Ok(Scope::Route));
        assert_eq!(
            scope(r#"{"scope": {"property": "node.metadata.ZONE"}}"#),
            Ok(Scope::Property(vec![
                "node".into(),
                "metadata".into(),
                "ZONE".into()
            ]))
        );
        assert_eq!(
            Scope::Cluster.property_path(),
            Some(vec!["xds", "cluster_name"])
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                r#"{"budget": {"retryRatio": 1000.5}}"#,
                "budget.retryRatio: 1000.5 is not between 0 and 1000",
            ),
            (
                r#"{"budget": {"retryRatio": -0.1}}"#,
                "budget.retryRatio: -0.1 is not between 0 and 1000",
            ),
            ("[]", "config: expected a JSON object, got an array"),
            (
                r#"[{"attempts": 2}]"#,
                "config: expected a JSON object, got an array",
            ),
            (
                r#"{"budget": [0.5, 1, "10s"]}"#,
                "budget: invalid type: sequence, expected a JSON object at line 1 column 11",
            ),
            (
                r#"{"tokenBucket": []}"#,
                "tokenBucket: invalid type: sequence, expected a JSON object at line 1 column 16",
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.0009}}"#,
                "tokenBucket.tokenRatio: 0.0009 is 0 to three decimals (gRPC ignores further decimals): write at least 0.001",
            ),
            (
                r#"{"budget": {"minRetriesPerSecond": -1}}"#,
                "budget.minRetriesPerSecond: -1 is not between 0 and 100000",
            ),
            (
                r#"{"budget": {"ttl": "500ms"}}"#,
                "budget.ttl: 500ms is not between 1s and 1m0s",
            ),
            (
                r#"{"budget": {"ttl": "10"}}"#,
                "budget.ttl: \"10\" has a number without a unit (use ns, us, ms, s, m or h)",
            ),
            (
                r#"{"budget": {"retryRatoi": 0.2}}"#,
                "budget.retryRatoi: unknown field `retryRatoi`, expected one of `retryRatio`, `minRetriesPerSecond`, `ttl` at line 1 column 24",
            ),
            (
                r#"{"budget": {"retryRatio": "high"}}"#,
                "budget.retryRatio: invalid type: string \"high\", expected f64 at line 1 column 32",
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 0, "tokenRatio": 0.1}}"#,
                "tokenBucket.maxTokens: 0 is not between 1 and 1000",
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0}}"#,
                "tokenBucket.tokenRatio: 0 is 0 to three decimals (gRPC ignores further decimals): write at least 0.001",
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 10.5}}"#,
                "tokenBucket.tokenRatio: 10.5 is not between 0 and 10",
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 10}}"#,
                "tokenBucket: missing field `tokenRatio` at line 1 column 33",
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.1}, "attempts": 5}"#,
                "attempts: 5 is not between 0 and 4 (gRPC allows at most 5 attempts)",
            ),
            (
                r#"{"budget": {}, "tokenBucket": {"maxTokens": 10, "tokenRatio": 0.1}}"#,
                "tokenBucket: set either budget or tokenBucket, not both",
            ),
            (
                r#"{"attempts": 11}"#,
                "attempts: 11 is not between 0 and 10",
            ),
            (
                r#"{"attempts": -1}"#,
                "attempts: -1 is not between 0 and 10",
            ),
            (
                r#"{"retryOn": "5xx,teapot"}"#,
                "retryOn: \"teapot\" is not an Envoy retry condition (5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, ..., a gRPC condition such as unavailable, or a status code)",
            ),
            (
                r#"{"retryOn": "5xx,999"}"#,
                "retryOn: 999 is not an HTTP status code (100-599)",
            ),
            (r#"{"retryOn": ""}"#, "retryOn: is empty"),
            (
                r#"{"perTryTimeout": "0s"}"#,
                "perTryTimeout: 0s is not between 1ms and 1h0m0s",
            ),
            (
                r#"{"scope": "tenant"}"#,
                "scope: unknown variant `tenant`, expected one of `cluster`, `route`, `header`, `property` at line 1 column 18",
            ),
            (
                r#"{"scope": {"header": "X-Tenant"}}"#,
                "scope.header: \"X-Tenant\" is not a lower-case header name (letters, digits, '-', '_')",
            ),
            (
                r#"{"scope": {"property": "xds..route"}}"#,
                "scope.property: \"xds..route\" is not a property path (dot-separated names, e.g. xds.route_name)",
            ),
            (
                r#"{"maxScopes": 0}"#,
                "maxScopes: 0 is not between 1 and 1024",
            ),
            (
                r#"{"ratio": 0.2}"#,
                "ratio: unknown field `ratio`, expected one of `budget`, `tokenBucket`, `attempts`, `retryOn`, `perTryTimeout`, `scope`, `maxScopes`, `suppressCallerRetries` at line 1 column 8",
            ),
            (
                "{",
                "config: EOF while parsing an object at line 1 column 1",
            ),
            (r#"{} {}"#, "config: trailing characters at line 1 column 4"),
        ];
        for (json, expected) in cases {
            assert_eq!(refused(json), expected, "{json}");
        }
    }
}
