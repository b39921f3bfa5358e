//! The policy core the three mesh plugins (fault injector, retry budget,
//! canary router) share, with no proxy-wasm dependency: one implementation
//! of each thing they all need, each following a named reference.
//!
//! - [`matching`]: Istio's `StringMatch` and `HTTPMatchRequest` (uri, method,
//!   headers, withoutHeaders, queryParams) evaluated as Envoy evaluates what
//!   Istio translates them to (a repeated header matching on any one value, the first
//!   query parameter, `withoutHeaders` inverted with a missing header counted
//!   as empty). Regexes only with the `regex` feature.
//! - [`duration`]: Go's `time.ParseDuration` grammar and `Duration.String()`
//!   form, in integer nanoseconds.
//! - [`config`]: the two-stage entry point [`config::from_json`] (JSON
//!   object, unknown fields refused, empty = `{}`) and the one
//!   [`ConfigError`], which names the field path.
//! - [`sampling`]: percentages in millionths, FNV-1a 64 and splitmix64 draws.
//! - [`store`]: the [`SharedStore`] trait (proxy-wasm shared data), the
//!   [`cas_update`] loop and an in-memory store with Envoy's CAS rules.
//! - [`retry_on`]: Envoy's retry conditions as Istio's `retryOn` writes them.
//! - `adapter` (feature `adapter`, the only part that uses proxy-wasm): the
//!   host glue the wasm adapters share (configuration, clock, seed, shared
//!   data, properties, logs).
//!
//! See README.md beside this crate for the references each module follows.

#[cfg(feature = "adapter")]
pub mod adapter;
pub mod config;
pub mod duration;
pub mod matching;
pub mod retry_on;
pub mod sampling;
pub mod store;

pub use config::{ConfigError, EnvLookup, PluginConfig, from_json, no_env, parse_wire};
pub use duration::{DurationError, format_duration, parse_duration, parse_go_duration};
pub use matching::{
    HttpMatch, HttpRequest, MatchExtras, NamedMatch, NoExtras, StringMatch,
    UNSUPPORTED_ISTIO_FIELDS, WireHttpMatch, WireMatch, WireStringMatch, first_query_value,
    header_name, header_values, path_without_query,
};
pub use retry_on::{RetryOn, RetryOnError};
pub use sampling::{Percentage, SCALE, SplitMix64, WirePercentage, draw, fnv1a64, splitmix64};
pub use store::{CasError, MemoryStore, SharedStore, StoreError, cas_update};
