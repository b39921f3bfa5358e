//! The fault injector's policy, apart from any proxy: its configuration
//! (Istio's `HTTPFaultInjection` field names, validated into [`Config`] with
//! errors that name the field), request matching, the decision of which
//! fault to inject into a request ([`Config::decide`]), the schedule of
//! delayed streams ([`DelayScheduler`]) and the cluster-wide count of faults
//! in progress ([`ActiveFaults`], over any [`mesh_policy::SharedStore`]).
//! The proxy-wasm plugin in `wasm-plugins/fault-injector` reads the request
//! from the host into a [`RequestView`], applies the [`Fault`] it gets back
//! and forwards the host's clock, timer and shared data; nothing here
//! touches a host, so everything is tested natively.
//!
//! Matching, durations, sampling, the configuration entry point and its
//! error type come from `mesh-policy`, shared with the other plugins.

mod active;
mod config;
mod decision;
mod rule_match;
mod scheduler;

pub use active::{ACTIVE_FAULTS_CAS_ATTEMPTS, ActiveFaults, Admission};
pub use config::{
    AbortSpec, AbortStatus, Config, DEFAULT_ABORT_BODY, DEFAULT_MAX_HEADER_DELAY,
    DEFAULT_RESPONSE_HEADER, DelaySpec, HeaderControl, MIN_DELAY, Problem, Rule, WireAbort,
    WireConfig, WireDelay, WireHeaderControl, WireMatch, WireMatchExtras, WireRule,
};
pub use decision::{
    ABORT_GRPC_HEADER, ABORT_HEADER, ABORT_PERCENTAGE_HEADER, ABORT_SALT, Abort, DELAY_HEADER,
    DELAY_PERCENTAGE_HEADER, DELAY_SALT, Fault, FaultOrigin, HEADER_CONTROL_LABEL, LocalReply,
    RequestView,
};
pub use mesh_policy::{ConfigError, Percentage, SCALE, SplitMix64, draw, fnv1a64};
pub use rule_match::{IpBlock, Match, parse_source_address};
pub use scheduler::{DelayScheduler, MAX_TICK, Tick};
