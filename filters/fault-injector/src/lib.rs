//! The fault injector's policy, apart from any proxy: its configuration
//! (Istio's `HTTPFaultInjection` field names, validated into [`Config`] with
//! errors that name the field), request matching, and the decision of which
//! fault to inject into a request ([`Config::decide`]). The proxy-wasm plugin
//! in `wasm-plugins/fault-injector` reads the request from the host into a
//! [`RequestView`] and applies the [`Fault`] it gets back; nothing here
//! touches a host, so everything is tested natively.

mod config;
mod decision;
mod duration;
mod matching;
mod sampling;

pub use config::{
    AbortSpec, AbortStatus, Config, ConfigError, DEFAULT_ABORT_BODY, DEFAULT_MAX_HEADER_DELAY,
    DEFAULT_RESPONSE_HEADER, DelaySpec, HeaderControl, MIN_DELAY, Problem, Rule, WireAbort,
    WireConfig, WireDelay, WireHeaderControl, WireMatch, WirePercentage, WireRule, WireStringMatch,
};
pub use decision::{
    ABORT_GRPC_HEADER, ABORT_HEADER, ABORT_PERCENTAGE_HEADER, Abort, DELAY_HEADER,
    DELAY_PERCENTAGE_HEADER, Fault, FaultOrigin, HEADER_CONTROL_LABEL, LocalReply, RequestView,
};
pub use duration::{DurationError, format_duration, parse_duration};
pub use matching::{IpBlock, Match, NamedMatcher, StringMatcher, parse_source_address};
pub use sampling::{
    ABORT_SALT, DELAY_SALT, Percentage, SCALE, SplitMix64, draw, fnv1a64, splitmix64,
};
