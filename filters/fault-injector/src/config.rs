//! The configuration in two stages: [`WireConfig`], the JSON as users write
//! it (field names after Istio's `HTTPFaultInjection` and `HTTPMatchRequest`),
//! then [`Config`], validated and compiled once (regexes, ranges,
//! percentages), through `mesh-policy`'s two-stage entry point: an object
//! is required, unknown fields are refused, and an empty configuration is
//! `{}`, which has no rules and is refused. Every refusal names the field
//! path, such as `rules[1].abort.httpStatus: 99 is not an HTTP status
//! (200-599)`.
//!
//! Percentages follow Istio's proto and pilot's `TranslateFault`: an abort
//! or delay without `percentage` injects nothing (Envoy's percentage is left
//! unset, which is 0), noted once at configure time ([`Config::notices`]);
//! a delay's deprecated integer `percent` is used when `percentage` is not
//! given, as pilot translates it.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use mesh_policy::{
    ConfigError, EnvLookup, HttpMatch, MatchExtras, Percentage, PluginConfig, WirePercentage,
    header_name, no_env, parse_duration,
};
use serde::Deserialize;
use serde::de::MapAccess;

use crate::rule_match::{IpBlock, Match};

/// Envoy's fault filter body for aborts.
pub const DEFAULT_ABORT_BODY: &str = "fault filter abort";
/// The response header that reports an injected fault, unless configured.
pub const DEFAULT_RESPONSE_HEADER: &str = "x-fault-injected";
/// The longest delay header control grants, unless configured.
pub const DEFAULT_MAX_HEADER_DELAY: Duration = Duration::from_secs(5);
/// Istio's minimum for `fixedDelay`.
pub const MIN_DELAY: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

/// The plugin configuration as written (JSON).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireConfig {
    /// Evaluated in order; the first rule whose `match` holds decides.
    #[serde(default)]
    pub rules: Vec<WireRule>,
    /// Faults in progress at once across every worker; absent = no limit.
    #[serde(default)]
    pub max_active_faults: Option<i64>,
    /// Decide from a hash of this request header (usually `x-request-id`)
    /// instead of at random, when the request carries it.
    #[serde(default)]
    pub request_id_header: Option<String>,
    /// The header that reports an injected fault (`x-fault-injected`).
    #[serde(default)]
    pub response_header: Option<String>,
    /// Faults asked for by request headers (`x-envoy-fault-*`); off when absent.
    #[serde(default)]
    pub header_control: Option<WireHeaderControl>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireRule {
    /// Names the rule in the response header and metrics; defaults to its index.
    #[serde(default)]
    pub name: Option<String>,
    /// Any one entry must hold (Istio's `match` list); empty = every request.
    #[serde(default, rename = "match")]
    pub matches: Vec<WireMatch>,
    #[serde(default)]
    pub abort: Option<WireAbort>,
    #[serde(default)]
    pub delay: Option<WireDelay>,
}

/// One `match` entry: Istio's `HTTPMatchRequest` (`mesh-policy`'s wire
/// type: its fields, its refusals) plus the fault injector's own
/// conditions, [`WireMatchExtras`].
pub type WireMatch = mesh_policy::WireMatch<WireMatchExtras>;

/// The fault injector's conditions beside Istio's in a `match` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireMatchExtras {
    /// Downstream address ranges, CIDR (`10.0.0.0/8`) or single addresses.
    pub source_ip_blocks: Vec<String>,
    /// Envoy's route name (`xds.route_name`), compared exactly.
    pub route_name: Option<String>,
}

impl MatchExtras for WireMatchExtras {
    const FIELDS: &'static [&'static str] = &["sourceIpBlocks", "routeName"];

    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        field: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        if field == "sourceIpBlocks" {
            self.source_ip_blocks = map.next_value()?;
        } else {
            self.route_name = map.next_value()?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireAbort {
    #[serde(default)]
    pub http_status: Option<i64>,
    /// A gRPC status name (`UNAVAILABLE`) or code (`14`), as Istio takes it.
    #[serde(default)]
    pub grpc_status: Option<String>,
    /// Absent = no request is aborted (Istio's proto).
    #[serde(default)]
    pub percentage: Option<WirePercentage>,
    /// Response body (for gRPC: the `grpc-message`); Envoy's by default.
    #[serde(default)]
    pub body: Option<String>,
    /// Extra response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireDelay {
    /// An Istio duration: `2.5s`, `10ms`, `1m`; at least 1ms.
    pub fixed_delay: String,
    /// Absent = `percent`, else no request is delayed (Istio's proto).
    #[serde(default)]
    pub percentage: Option<WirePercentage>,
    /// Istio's deprecated whole-number percentage (0-100), used only when
    /// `percentage` is absent, as pilot's `TranslateFault` does.
    #[serde(default)]
    pub percent: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireHeaderControl {
    /// Honour `x-envoy-fault-abort-request` / `-abort-grpc-request` (default true).
    #[serde(default)]
    pub abort: Option<bool>,
    /// Honour `x-envoy-fault-delay-request` (default true).
    #[serde(default)]
    pub delay: Option<bool>,
    /// Longer requested delays are cut to this (default 5s).
    #[serde(default)]
    pub max_delay: Option<String>,
    /// The share used when a request gives no percentage header, and the
    /// cap on the ones it gives (default 100).
    #[serde(default)]
    pub max_percentage: Option<WirePercentage>,
    /// Only requests matching one of these may ask; empty = any request.
    #[serde(default, rename = "match")]
    pub matches: Vec<WireMatch>,
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("no rules (give at least one rule, or headerControl)")]
    NoRules,
    #[error("a rule needs an abort, a delay, or both")]
    NoFault,
    #[error("{0} is not an HTTP status (200-599)")]
    HttpStatus(i64),
    #[error("{0:?} is not a gRPC status: use a name such as UNAVAILABLE, or a code 1-16")]
    GrpcStatus(String),
    #[error("give httpStatus or grpcStatus, not both")]
    BothStatuses,
    #[error("give httpStatus or grpcStatus")]
    NoStatus,
    #[error("{0} is not a percentage (0-100)")]
    Percentage(f64),
    #[error("cannot parse duration {text:?}: {reason}")]
    Duration { text: String, reason: String },
    #[error("{0:?} is shorter than 1ms")]
    DelayTooShort(String),
    #[error("{0:?} is not an IP address or CIDR range")]
    IpBlock(String),
    #[error("{0:?} may not be set here")]
    ReservedHeader(String),
    #[error("header value {0:?} has control characters")]
    HeaderValue(String),
    #[error(
        "{0} is not allowed: give 0 (every fault overflows) or more, or leave the field out for no limit"
    )]
    NegativeLimit(i64),
    #[error("{0} is not a whole percentage (0-100)")]
    IntegerPercent(i64),
    #[error("{0:?} is not a valid rule name (letters, digits, - and _)")]
    RuleName(String),
    #[error("{0:?} names an earlier rule too")]
    DuplicateRuleName(String),
    #[error("empty route name")]
    EmptyRouteName,
    #[error("abort and delay are both off: remove headerControl instead")]
    HeaderControlOff,
}

// ---------------------------------------------------------------------------
// Validated configuration
// ---------------------------------------------------------------------------

/// What an abort answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortStatus {
    /// An HTTP status, 200-599.
    Http(u16),
    /// A gRPC status code, 1-16; sent as HTTP 200 with `grpc-status`, as
    /// Envoy's fault filter does.
    Grpc(u8),
}

#[derive(Debug, Clone)]
pub struct AbortSpec {
    pub status: AbortStatus,
    pub percentage: Percentage,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy)]
pub struct DelaySpec {
    pub fixed_delay: Duration,
    pub percentage: Percentage,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name, or its index when it has none.
    pub label: String,
    pub matches: Vec<Match>,
    pub abort: Option<AbortSpec>,
    pub delay: Option<DelaySpec>,
}

#[derive(Debug, Clone)]
pub struct HeaderControl {
    pub abort: bool,
    pub delay: bool,
    pub max_delay: Duration,
    pub max_percentage: Percentage,
    pub matches: Vec<Match>,
}

/// A validated, compiled configuration: build it once per `on_configure`
/// and share it with every request.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) rules: Vec<Rule>,
    pub(crate) max_active_faults: Option<u32>,
    pub(crate) request_id_header: Option<String>,
    pub(crate) response_header: String,
    pub(crate) header_control: Option<HeaderControl>,
    uses_source_address: bool,
    uses_route_name: bool,
    notices: Vec<String>,
}

impl PluginConfig for Config {
    type Wire = WireConfig;

    fn validate(wire: WireConfig, _env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        Self::try_from(wire)
    }
}

impl Config {
    /// Parses and validates the plugin configuration JSON
    /// (`mesh_policy::from_json`; the fault injector reads no environment).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        mesh_policy::from_json(bytes, &no_env)
    }

    /// What the configuration does that a user may not expect, one line
    /// each, naming the field: for the adapter to log once at configure
    /// time (an abort or delay without `percentage` never fires; a `percent`
    /// that `percentage` overrides).
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The cluster-wide limit on faults in progress, if any.
    pub fn max_active_faults(&self) -> Option<u32> {
        self.max_active_faults
    }

    pub fn request_id_header(&self) -> Option<&str> {
        self.request_id_header.as_deref()
    }

    /// The header that reports an injected fault.
    pub fn response_header(&self) -> &str {
        &self.response_header
    }

    pub fn header_control(&self) -> Option<&HeaderControl> {
        self.header_control.as_ref()
    }

    /// Whether any match looks at the source address (so the adapter only
    /// fetches it when needed).
    pub fn uses_source_address(&self) -> bool {
        self.uses_source_address
    }

    /// Whether any match looks at the route name.
    pub fn uses_route_name(&self) -> bool {
        self.uses_route_name
    }

    /// Every label a fault can carry: the rules' labels, then
    /// [`HEADER_CONTROL_LABEL`](crate::HEADER_CONTROL_LABEL) when header
    /// control is on. For per-rule metrics.
    pub fn labels(&self) -> Vec<&str> {
        let mut labels: Vec<&str> = self.rules.iter().map(|r| r.label.as_str()).collect();
        if self.header_control.is_some() {
            labels.push(crate::HEADER_CONTROL_LABEL);
        }
        labels
    }
}

impl TryFrom<WireConfig> for Config {
    type Error = ConfigError;

    fn try_from(wire: WireConfig) -> Result<Self, ConfigError> {
        if wire.rules.is_empty() && wire.header_control.is_none() {
            return Err(ConfigError::new("rules", Problem::NoRules));
        }
        let mut names = HashSet::new();
        let mut notices = Vec::new();
        let mut rules = Vec::with_capacity(wire.rules.len());
        for (index, rule) in wire.rules.into_iter().enumerate() {
            let path = format!("rules[{index}]");
            let rule = rule_from_wire(&path, index, rule, &mut notices)?;
            if !names.insert(rule.label.clone()) {
                return Err(ConfigError::new(
                    format!("{path}.name"),
                    Problem::DuplicateRuleName(rule.label),
                ));
            }
            rules.push(rule);
        }
        // 0 is Envoy's kill switch: every fault overflows, none is injected.
        let max_active_faults = match wire.max_active_faults {
            None => None,
            Some(n) if n >= 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            Some(n) => {
                return Err(ConfigError::new(
                    "maxActiveFaults",
                    Problem::NegativeLimit(n),
                ));
            }
        };
        let request_id_header = wire
            .request_id_header
            .map(|name| header_name("requestIdHeader", &name))
            .transpose()?;
        let response_header = match wire.response_header {
            Some(name) => header_name("responseHeader", &name)?,
            None => DEFAULT_RESPONSE_HEADER.to_string(),
        };
        if response_header.starts_with(':') {
            return Err(ConfigError::new(
                "responseHeader",
                Problem::ReservedHeader(response_header),
            ));
        }
        let header_control = wire
            .header_control
            .map(|hc| header_control_from_wire("headerControl", hc))
            .transpose()?;
        let all_matches = || {
            rules
                .iter()
                .flat_map(|r| r.matches.iter())
                .chain(header_control.iter().flat_map(|hc| hc.matches.iter()))
        };
        let uses_source_address = all_matches().any(Match::uses_source_address);
        let uses_route_name = all_matches().any(Match::uses_route_name);
        Ok(Config {
            rules,
            max_active_faults,
            request_id_header,
            response_header,
            header_control,
            uses_source_address,
            uses_route_name,
            notices,
        })
    }
}

fn rule_from_wire(
    path: &str,
    index: usize,
    wire: WireRule,
    notices: &mut Vec<String>,
) -> Result<Rule, ConfigError> {
    let label = match wire.name {
        Some(name) => {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(ConfigError::new(
                    format!("{path}.name"),
                    Problem::RuleName(name),
                ));
            }
            name
        }
        None => index.to_string(),
    };
    if wire.abort.is_none() && wire.delay.is_none() {
        return Err(ConfigError::new(path, Problem::NoFault));
    }
    let matches = matches_from_wire(&format!("{path}.match"), wire.matches)?;
    let abort = wire
        .abort
        .map(|a| abort_from_wire(&format!("{path}.abort"), a, notices))
        .transpose()?;
    let delay = wire
        .delay
        .map(|d| delay_from_wire(&format!("{path}.delay"), d, notices))
        .transpose()?;
    Ok(Rule {
        label,
        matches,
        abort,
        delay,
    })
}

// Loops rather than `collect::<Result<Vec<_>, _>>()`: the same code,
// smaller in the .wasm.
fn matches_from_wire(path: &str, wire: Vec<WireMatch>) -> Result<Vec<Match>, ConfigError> {
    let mut matches = Vec::with_capacity(wire.len());
    for (i, m) in wire.into_iter().enumerate() {
        matches.push(match_from_wire(&format!("{path}[{i}]"), m)?);
    }
    Ok(matches)
}

fn match_from_wire(path: &str, wire: WireMatch) -> Result<Match, ConfigError> {
    let http = HttpMatch::compile(path, wire.http)?;
    let WireMatchExtras {
        source_ip_blocks,
        route_name,
    } = wire.extras;
    let mut blocks = Vec::with_capacity(source_ip_blocks.len());
    for (i, text) in source_ip_blocks.into_iter().enumerate() {
        let Some(block) = IpBlock::parse(&text) else {
            return Err(ConfigError::new(
                format!("{path}.sourceIpBlocks[{i}]"),
                Problem::IpBlock(text),
            ));
        };
        blocks.push(block);
    }
    if route_name.as_deref() == Some("") {
        return Err(ConfigError::new(
            format!("{path}.routeName"),
            Problem::EmptyRouteName,
        ));
    }
    Ok(Match {
        http,
        source_ip_blocks: blocks,
        route_name,
    })
}

fn abort_from_wire(
    path: &str,
    wire: WireAbort,
    notices: &mut Vec<String>,
) -> Result<AbortSpec, ConfigError> {
    let status = match (wire.http_status, wire.grpc_status) {
        (Some(_), Some(_)) => return Err(ConfigError::new(path, Problem::BothStatuses)),
        (None, None) => return Err(ConfigError::new(path, Problem::NoStatus)),
        (Some(code), None) => match u16::try_from(code) {
            Ok(code @ 200..=599) => AbortStatus::Http(code),
            _ => {
                return Err(ConfigError::new(
                    format!("{path}.httpStatus"),
                    Problem::HttpStatus(code),
                ));
            }
        },
        (None, Some(name)) => AbortStatus::Grpc(grpc_code(&name).ok_or_else(|| {
            ConfigError::new(format!("{path}.grpcStatus"), Problem::GrpcStatus(name))
        })?),
    };
    let percentage = match wire.percentage {
        Some(given) => percentage(&format!("{path}.percentage"), given)?,
        None => {
            notices.push(format!(
                "{path}.percentage: not given, so this abort never fires (Istio: \"If not specified, no request will be aborted\"); give {{\"value\": 100}} to abort every matched request"
            ));
            Percentage::NEVER
        }
    };
    let body = wire.body.unwrap_or_else(|| DEFAULT_ABORT_BODY.to_string());
    if matches!(status, AbortStatus::Grpc(_)) && body.chars().any(char::is_control) {
        return Err(ConfigError::new(
            format!("{path}.body"),
            Problem::HeaderValue(body),
        ));
    }
    let mut headers = Vec::with_capacity(wire.headers.len());
    for (name, value) in wire.headers {
        let header_path = format!("{path}.headers.{name}");
        let name = header_name(&header_path, &name)?;
        if name.starts_with(':')
            || matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "grpc-status"
            )
        {
            return Err(ConfigError::new(header_path, Problem::ReservedHeader(name)));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ConfigError::new(header_path, Problem::HeaderValue(value)));
        }
        headers.push((name, value));
    }
    Ok(AbortSpec {
        status,
        percentage,
        body,
        headers,
    })
}

fn delay_from_wire(
    path: &str,
    wire: WireDelay,
    notices: &mut Vec<String>,
) -> Result<DelaySpec, ConfigError> {
    let fixed_delay = delay_duration(&format!("{path}.fixedDelay"), &wire.fixed_delay)?;
    // pilot's TranslateFault: `percentage` when given, else the integer
    // `percent` (FractionalPercent over HUNDRED; unset is 0).
    let percentage = match (wire.percentage, wire.percent) {
        (Some(given), percent) => {
            if percent.is_some() {
                notices.push(format!(
                    "{path}.percent: ignored, as Istio ignores it when percentage is given"
                ));
            }
            percentage(&format!("{path}.percentage"), given)?
        }
        (None, Some(percent)) => match u32::try_from(percent) {
            Ok(whole @ 0..=100) => Percentage::from_parts_per_million(whole * 10_000),
            _ => {
                return Err(ConfigError::new(
                    format!("{path}.percent"),
                    Problem::IntegerPercent(percent),
                ));
            }
        },
        (None, None) => {
            notices.push(format!(
                "{path}.percentage: not given, so this delay never fires (Istio: \"If left unspecified, no request will be delayed\"); give {{\"value\": 100}} to delay every matched request"
            ));
            Percentage::NEVER
        }
    };
    Ok(DelaySpec {
        fixed_delay,
        percentage,
    })
}

fn header_control_from_wire(
    path: &str,
    wire: WireHeaderControl,
) -> Result<HeaderControl, ConfigError> {
    let abort = wire.abort.unwrap_or(true);
    let delay = wire.delay.unwrap_or(true);
    if !abort && !delay {
        return Err(ConfigError::new(path, Problem::HeaderControlOff));
    }
    let max_delay = match wire.max_delay {
        Some(text) => delay_duration(&format!("{path}.maxDelay"), &text)?,
        None => DEFAULT_MAX_HEADER_DELAY,
    };
    // The plugin's own field, not Istio's: absent is 100 %, as documented.
    let max_percentage = match wire.max_percentage {
        Some(given) => percentage(&format!("{path}.maxPercentage"), given)?,
        None => Percentage::ALWAYS,
    };
    let matches = matches_from_wire(&format!("{path}.match"), wire.matches)?;
    Ok(HeaderControl {
        abort,
        delay,
        max_delay,
        max_percentage,
        matches,
    })
}

fn delay_duration(path: &str, text: &str) -> Result<Duration, ConfigError> {
    let duration = parse_duration(text).map_err(|e| {
        ConfigError::new(
            path,
            Problem::Duration {
                text: text.to_string(),
                reason: e.to_string(),
            },
        )
    })?;
    if duration < MIN_DELAY {
        return Err(ConfigError::new(
            path,
            Problem::DelayTooShort(text.to_string()),
        ));
    }
    Ok(duration)
}

/// Istio's `Percent`, 0-100.
fn percentage(path: &str, wire: WirePercentage) -> Result<Percentage, ConfigError> {
    Percentage::from_percent(wire.value)
        .ok_or_else(|| ConfigError::new(format!("{path}.value"), Problem::Percentage(wire.value)))
}

const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A gRPC status name or number, 1-16: `OK` is no fault.
fn grpc_code(text: &str) -> Option<u8> {
    let text = text.trim();
    let code = match text.parse::<u8>() {
        Ok(code) => code,
        Err(_) => GRPC_CODES
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
            .and_then(|i| u8::try_from(i).ok())?,
    };
    (1..=16).contains(&code).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, ConfigError> {
        Config::from_json(json.as_bytes())
    }

    fn error(json: &str) -> String {
        match parse(json) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => e.to_string(),
        }
    }

    /// One bad configuration per test: the error names the field path
    /// and says what is wrong.
    macro_rules! refuses {
        ($($name:ident: $json:expr => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                let message = error($json);
                assert!(
                    message.starts_with($expected),
                    "expected a message starting with {:?}, got {:?}",
                    $expected,
                    message
                );
                assert!(!message.contains('\n'), "one line: {message:?}");
            }
        )*};
    }

    refuses! {
        refuses_empty_config: "" => "rules: no rules";
        refuses_whitespace_config: "  \n" => "rules: no rules";
        refuses_empty_rule_list: r#"{"rules": []}"# => "rules: no rules";
        refuses_a_list: "[1, 2]" => "config: expected a JSON object, got an array";
        refuses_a_bare_string: r#""rules""# => "config: expected a JSON object";
        refuses_malformed_json: r#"{"rules": [}"# => "rules[0]: expected value";
        refuses_trailing_garbage: r#"{"rules": [{"abort": {"httpStatus": 503}}]} x"# => "config: trailing characters";
        refuses_unknown_top_level_field: r#"{"rulez": []}"# => "rulez: unknown field `rulez`";
        refuses_unknown_rule_field: r#"{"rules": [{"abort": {"httpStatus": 503}, "fault": {}}]}"# => "rules[0].fault: unknown field `fault`";
        refuses_unknown_abort_field: r#"{"rules": [{"abort": {"httpStatus": 503, "http2Error": "x"}}]}"# => "rules[0].abort.http2Error: unknown field";
        refuses_unknown_match_field: r#"{"rules": [{"match": [{"sourceIp": "10.0.0.1"}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].sourceIp: unknown field `sourceIp`, expected one of `name`, `uri`, `method`, `headers`, `withoutHeaders`, `queryParams`, `sourceIpBlocks`, `routeName`";
        refuses_an_istio_match_field_by_name: r#"{"rules": [{"match": [{"ignoreUriCase": true}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].ignoreUriCase: Istio's ignoreUriCase is not supported by this plugin";
        refuses_a_header_control_match_field_by_name: r#"{"headerControl": {"match": [{"port": 8080}]}}"# => "headerControl.match[0].port: Istio's port is not supported by this plugin";
        refuses_a_repeated_match_field: r#"{"rules": [{"match": [{"routeName": "a", "routeName": "b"}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0]: duplicate field `routeName`";
        refuses_an_abort_integer_percent: r#"{"rules": [{"abort": {"httpStatus": 503, "percent": 5}}]}"# => "rules[0].abort.percent: unknown field";
        refuses_a_delay_percent_over_100: r#"{"rules": [{"delay": {"fixedDelay": "1s", "percent": 101}}]}"# => "rules[0].delay.percent: 101 is not a whole percentage (0-100)";
        refuses_a_negative_delay_percent: r#"{"rules": [{"delay": {"fixedDelay": "1s", "percent": -1}}]}"# => "rules[0].delay.percent: -1 is not a whole percentage";
        refuses_a_fractional_delay_percent: r#"{"rules": [{"delay": {"fixedDelay": "1s", "percent": 2.5}}]}"# => "rules[0].delay.percent: invalid type: floating point";
        refuses_a_string_status: r#"{"rules": [{"abort": {"httpStatus": "503"}}]}"# => "rules[0].abort.httpStatus: invalid type: string";
        refuses_a_rule_without_fault: r#"{"rules": [{"name": "x"}]}"# => "rules[0]: a rule needs an abort, a delay, or both";
        refuses_status_99: r#"{"rules": [{"abort": {"httpStatus": 200}}, {"abort": {"httpStatus": 99}}]}"# => "rules[1].abort.httpStatus: 99 is not an HTTP status (200-599)";
        refuses_status_600: r#"{"rules": [{"abort": {"httpStatus": 600}}]}"# => "rules[0].abort.httpStatus: 600 is not an HTTP status";
        refuses_negative_status: r#"{"rules": [{"abort": {"httpStatus": -1}}]}"# => "rules[0].abort.httpStatus: -1 is not an HTTP status";
        refuses_both_statuses: r#"{"rules": [{"abort": {"httpStatus": 503, "grpcStatus": "UNAVAILABLE"}}]}"# => "rules[0].abort: give httpStatus or grpcStatus, not both";
        refuses_no_status: r#"{"rules": [{"abort": {"percentage": {"value": 5}}}]}"# => "rules[0].abort: give httpStatus or grpcStatus";
        refuses_unknown_grpc_name: r#"{"rules": [{"abort": {"grpcStatus": "BROKEN"}}]}"# => "rules[0].abort.grpcStatus: \"BROKEN\" is not a gRPC status";
        refuses_grpc_ok: r#"{"rules": [{"abort": {"grpcStatus": "OK"}}]}"# => "rules[0].abort.grpcStatus: \"OK\" is not a gRPC status";
        refuses_grpc_code_17: r#"{"rules": [{"abort": {"grpcStatus": "17"}}]}"# => "rules[0].abort.grpcStatus: \"17\" is not a gRPC status";
        refuses_percentage_over_100: r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 100.5}}}]}"# => "rules[0].abort.percentage.value: 100.5 is not a percentage (0-100)";
        refuses_negative_percentage: r#"{"rules": [{"delay": {"fixedDelay": "1s", "percentage": {"value": -1}}}]}"# => "rules[0].delay.percentage.value: -1 is not a percentage";
        refuses_percentage_without_value: r#"{"rules": [{"delay": {"fixedDelay": "1s", "percentage": {}}}]}"# => "rules[0].delay.percentage: missing field `value`";
        refuses_delay_without_fixed_delay: r#"{"rules": [{"delay": {"percentage": {"value": 1}}}]}"# => "rules[0].delay: missing field `fixedDelay`";
        refuses_unparseable_duration: r#"{"rules": [{"delay": {"fixedDelay": "soon"}}]}"# => "rules[0].delay.fixedDelay: cannot parse duration \"soon\"";
        refuses_duration_without_unit: r#"{"rules": [{"delay": {"fixedDelay": "10"}}]}"# => "rules[0].delay.fixedDelay: cannot parse duration \"10\": \"10\" has a number without a unit";
        refuses_duration_with_unknown_unit: r#"{"rules": [{"delay": {"fixedDelay": "2d"}}]}"# => "rules[0].delay.fixedDelay: cannot parse duration \"2d\": unknown unit";
        refuses_negative_duration: r#"{"rules": [{"delay": {"fixedDelay": "-1s"}}]}"# => "rules[0].delay.fixedDelay: cannot parse duration \"-1s\": \"-1s\" is negative";
        refuses_sub_millisecond_delay: r#"{"rules": [{"delay": {"fixedDelay": "500us"}}]}"# => "rules[0].delay.fixedDelay: \"500us\" is shorter than 1ms";
        refuses_zero_delay: r#"{"rules": [{"delay": {"fixedDelay": "0s"}}]}"# => "rules[0].delay.fixedDelay: \"0s\" is shorter than 1ms";
        refuses_bad_uri_regex: r#"{"rules": [{"match": [{"uri": {"regex": "(unclosed"}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].uri.regex: bad regex:";
        refuses_bad_header_regex: r#"{"rules": [{"match": [{}, {"headers": {"end-user": {"regex": "[z-a]"}}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[1].headers.end-user.regex: bad regex:";
        refuses_bad_query_regex: r#"{"rules": [{"match": [{"queryParams": {"q": {"regex": "a{99999}"}}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].queryParams.q.regex: bad regex:";
        refuses_two_match_kinds: r#"{"rules": [{"match": [{"uri": {"exact": "/a", "prefix": "/"}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].uri: give exactly one of exact, prefix, regex";
        refuses_empty_uri_match: r#"{"rules": [{"match": [{"uri": {}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].uri: empty match";
        refuses_empty_method_match: r#"{"rules": [{"match": [{"method": {}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].method: empty match";
        refuses_bad_ip_block: r#"{"rules": [{"match": [{"sourceIpBlocks": ["10.0.0.0/8", "10.0.0.0/40"]}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].sourceIpBlocks[1]: \"10.0.0.0/40\" is not an IP address or CIDR range";
        refuses_a_hostname_as_ip_block: r#"{"rules": [{"match": [{"sourceIpBlocks": ["localhost"]}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].sourceIpBlocks[0]: \"localhost\" is not an IP address";
        refuses_bad_match_header_name: r#"{"rules": [{"match": [{"headers": {"end user": {"exact": "x"}}}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].headers.end user: \"end user\" is not a valid header name";
        refuses_empty_route_name: r#"{"rules": [{"match": [{"routeName": ""}], "abort": {"httpStatus": 503}}]}"# => "rules[0].match[0].routeName: empty route name";
        refuses_bad_abort_header_name: r#"{"rules": [{"abort": {"httpStatus": 503, "headers": {"x y": "1"}}}]}"# => "rules[0].abort.headers.x y: \"x y\" is not a valid header name";
        refuses_pseudo_abort_header: r#"{"rules": [{"abort": {"httpStatus": 503, "headers": {":status": "200"}}}]}"# => "rules[0].abort.headers.:status: \":status\" may not be set here";
        refuses_content_length_abort_header: r#"{"rules": [{"abort": {"httpStatus": 503, "headers": {"content-length": "1"}}}]}"# => "rules[0].abort.headers.content-length: \"content-length\" may not be set here";
        refuses_control_chars_in_abort_header: r#"{"rules": [{"abort": {"httpStatus": 503, "headers": {"x-a": "a\r\nb"}}}]}"# => "rules[0].abort.headers.x-a: header value";
        refuses_control_chars_in_grpc_message: r#"{"rules": [{"abort": {"grpcStatus": "UNAVAILABLE", "body": "a\nb"}}]}"# => "rules[0].abort.body: header value";
        refuses_bad_response_header: r#"{"responseHeader": "x fault", "rules": [{"abort": {"httpStatus": 503}}]}"# => "responseHeader: \"x fault\" is not a valid header name";
        refuses_pseudo_response_header: r#"{"responseHeader": ":status", "rules": [{"abort": {"httpStatus": 503}}]}"# => "responseHeader: \":status\" may not be set here";
        refuses_empty_request_id_header: r#"{"requestIdHeader": "", "rules": [{"abort": {"httpStatus": 503}}]}"# => "requestIdHeader: \"\" is not a valid header name";
        refuses_negative_max_active_faults: r#"{"maxActiveFaults": -3, "rules": [{"abort": {"httpStatus": 503}}]}"# => "maxActiveFaults: -3 is not allowed";
        refuses_bad_rule_name: r#"{"rules": [{"name": "a.b", "abort": {"httpStatus": 503}}]}"# => "rules[0].name: \"a.b\" is not a valid rule name";
        refuses_empty_rule_name: r#"{"rules": [{"name": "", "abort": {"httpStatus": 503}}]}"# => "rules[0].name: \"\" is not a valid rule name";
        refuses_duplicate_rule_names: r#"{"rules": [{"name": "a", "abort": {"httpStatus": 503}}, {"name": "a", "abort": {"httpStatus": 500}}]}"# => "rules[1].name: \"a\" names an earlier rule too";
        refuses_an_index_name_clash: r#"{"rules": [{"abort": {"httpStatus": 503}}, {"name": "0", "abort": {"httpStatus": 500}}]}"# => "rules[1].name: \"0\" names an earlier rule too";
        refuses_header_control_all_off: r#"{"headerControl": {"abort": false, "delay": false}}"# => "headerControl: abort and delay are both off";
        refuses_bad_header_control_max_delay: r#"{"headerControl": {"maxDelay": "forever"}}"# => "headerControl.maxDelay: cannot parse duration";
        refuses_bad_header_control_percentage: r#"{"headerControl": {"maxPercentage": {"value": 101}}}"# => "headerControl.maxPercentage.value: 101 is not a percentage";
        refuses_bad_header_control_match: r#"{"headerControl": {"match": [{"uri": {"regex": "("}}]}}"# => "headerControl.match[0].uri.regex: bad regex";
        refuses_unknown_header_control_field: r#"{"headerControl": {"maxDelays": "1s"}}"# => "headerControl.maxDelays: unknown field";
    }

    #[test]
    fn percentages_are_truncated_to_millionths_as_istiod_translates_them() {
        let abort_ppm = |value: &str| {
            let config = parse(&format!(
                r#"{{"rules": [{{"abort": {{"httpStatus": 503, "percentage": {{"value": {value}}}}}}}]}}"#
            ))
            .unwrap();
            config.rules()[0]
                .abort
                .as_ref()
                .unwrap()
                .percentage
                .parts_per_million()
        };
        assert_eq!(abort_ppm("12.34567"), 123_456);
        assert_eq!(abort_ppm("0.00005"), 0);
        assert_eq!(abort_ppm("99.99999"), 999_999);
        assert_eq!(abort_ppm("100"), 1_000_000);
    }

    #[test]
    fn a_full_config_compiles() {
        let config = parse(
            r#"{
                "rules": [
                    {
                        "name": "ratings-500",
                        "match": [{"uri": {"prefix": "/ratings"}, "method": {"exact": "GET"},
                                   "headers": {"End-User": {"exact": "tester"}},
                                   "sourceIpBlocks": ["10.0.0.0/8"], "routeName": "ratings"}],
                        "abort": {"httpStatus": 500, "percentage": {"value": 12.3456},
                                  "body": "boom", "headers": {"X-Chaos": "yes"}},
                        "delay": {"fixedDelay": "2.5s", "percentage": {"value": 0.0001}}
                    },
                    {"abort": {"grpcStatus": "unavailable", "percentage": {"value": 100}}}
                ],
                "maxActiveFaults": 10,
                "requestIdHeader": "X-Request-Id",
                "responseHeader": "x-chaos",
                "headerControl": {"maxDelay": "1s"}
            }"#,
        )
        .unwrap();
        assert_eq!(config.rules().len(), 2);
        let rule = &config.rules()[0];
        assert_eq!(rule.label, "ratings-500");
        let abort = rule.abort.as_ref().unwrap();
        assert_eq!(abort.status, AbortStatus::Http(500));
        // istiod's uint32(12.3456 * 10000): the float64 product is just
        // under 123456.
        assert_eq!(abort.percentage.parts_per_million(), 123_455);
        assert_eq!(abort.body, "boom");
        assert_eq!(abort.headers, vec![("x-chaos".into(), "yes".into())]);
        let delay = rule.delay.unwrap();
        assert_eq!(delay.fixed_delay, Duration::from_millis(2500));
        assert_eq!(delay.percentage.parts_per_million(), 1);
        assert_eq!(rule.matches[0].http.headers[0].name, "end-user");
        let second = &config.rules()[1];
        assert_eq!(second.label, "1");
        assert_eq!(second.abort.as_ref().unwrap().status, AbortStatus::Grpc(14));
        assert_eq!(second.abort.as_ref().unwrap().body, DEFAULT_ABORT_BODY);
        assert_eq!(config.max_active_faults(), Some(10));
        assert_eq!(config.request_id_header(), Some("x-request-id"));
        assert_eq!(config.response_header(), "x-chaos");
        let hc = config.header_control().unwrap();
        assert!(hc.abort && hc.delay);
        assert_eq!(hc.max_delay, Duration::from_secs(1));
        assert_eq!(hc.max_percentage, Percentage::ALWAYS);
        assert!(config.uses_source_address());
        assert!(config.uses_route_name());
        assert_eq!(config.labels(), vec!["ratings-500", "1", "header-control"]);
    }

    #[test]
    fn defaults_are_envoy_like() {
        let config =
            parse(r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#)
                .unwrap();
        let abort = config.rules()[0].abort.as_ref().unwrap();
        assert_eq!(abort.percentage, Percentage::ALWAYS);
        assert_eq!(abort.body, "fault filter abort");
        assert_eq!(config.response_header(), "x-fault-injected");
        assert_eq!(config.max_active_faults(), None);
        assert_eq!(config.request_id_header(), None);
        assert!(config.header_control().is_none());
        assert!(!config.uses_source_address());
        assert!(!config.uses_route_name());
        assert!(config.notices().is_empty());
    }

    /// Istio's proto: "If not specified, no request will be aborted" /
    /// "If left unspecified, no request will be delayed"; pilot's
    /// TranslateFault leaves Envoy's percentage unset (0).
    #[test]
    fn a_fault_without_percentage_never_fires_and_says_so() {
        let config =
            parse(r#"{"rules": [{"abort": {"httpStatus": 503}, "delay": {"fixedDelay": "1s"}}]}"#)
                .unwrap();
        let rule = &config.rules()[0];
        assert_eq!(rule.abort.as_ref().unwrap().percentage, Percentage::NEVER);
        assert_eq!(rule.delay.unwrap().percentage, Percentage::NEVER);
        assert_eq!(config.notices().len(), 2);
        assert!(
            config.notices()[0]
                .starts_with("rules[0].abort.percentage: not given, so this abort never fires"),
            "{:?}",
            config.notices()
        );
        assert!(
            config.notices()[1]
                .starts_with("rules[0].delay.percentage: not given, so this delay never fires"),
            "{:?}",
            config.notices()
        );
    }

    /// pilot's TranslateFault: without `percentage`, a delay's integer
    /// `percent` is the share (FractionalPercent over HUNDRED); with both,
    /// `percentage` wins.
    #[test]
    fn the_deprecated_integer_delay_percent_is_read_as_istio_reads_it() {
        let config = parse(
            r#"{"rules": [
                {"delay": {"fixedDelay": "1s", "percent": 25}},
                {"delay": {"fixedDelay": "1s", "percent": 0}},
                {"delay": {"fixedDelay": "1s", "percent": 100, "percentage": {"value": 0.5}}}
            ]}"#,
        )
        .unwrap();
        let share = |i: usize| {
            config.rules()[i]
                .delay
                .unwrap()
                .percentage
                .parts_per_million()
        };
        assert_eq!(share(0), 250_000);
        assert_eq!(share(1), 0);
        assert_eq!(share(2), 5_000);
        assert_eq!(
            config.notices(),
            ["rules[2].delay.percent: ignored, as Istio ignores it when percentage is given"]
        );
    }

    /// Envoy's fault filter: `max_active_faults: 0` makes every fault
    /// overflow (a kill switch), so it is accepted.
    #[test]
    fn zero_max_active_faults_is_accepted() {
        let config = parse(
            r#"{"maxActiveFaults": 0, "rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#,
        )
        .unwrap();
        assert_eq!(config.max_active_faults(), Some(0));
    }

    #[test]
    fn header_control_alone_is_enough() {
        let config = parse(r#"{"headerControl": {}}"#).unwrap();
        assert!(config.rules().is_empty());
        assert_eq!(
            config.header_control().unwrap().max_delay,
            DEFAULT_MAX_HEADER_DELAY
        );
    }

    #[test]
    fn an_empty_configuration_is_the_empty_object() {
        assert_eq!(error(""), error("{}"));
    }

    #[test]
    fn grpc_status_by_number_and_name() {
        assert_eq!(grpc_code("14"), Some(14));
        assert_eq!(grpc_code("UNAVAILABLE"), Some(14));
        assert_eq!(grpc_code("deadline_exceeded"), Some(4));
        assert_eq!(grpc_code("UNAUTHENTICATED"), Some(16));
        assert_eq!(grpc_code("0"), None);
        assert_eq!(grpc_code(""), None);
    }

    #[test]
    fn regex_errors_quote_the_pattern_as_written() {
        let message = error(
            r#"{"rules": [{"match": [{"uri": {"regex": "(tester"}}], "abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#,
        );
        assert!(
            message.contains("(tester error: unclosed group"),
            "{message}"
        );
        assert!(!message.contains("^(?:"), "{message}");
    }

    #[test]
    fn error_paths_are_exposed() {
        let e = parse(r#"{"rules": [{"abort": {"httpStatus": 1, "percentage": {"value": 100}}}]}"#)
            .unwrap_err();
        assert_eq!(e.path(), "rules[0].abort.httpStatus");
    }
}
