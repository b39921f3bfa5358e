//! The sticky canary router's policy, with no proxy-wasm dependency: the
//! plugin in `wasm-plugins/canary-router` turns a request into a
//! [`RequestView`], asks [`Config::decide`] where it goes, and applies the
//! [`Decision`] (route header, `Set-Cookie`, metrics).
//!
//! Each user has a stable bucket (0 to 9999) that a signed cookie carries;
//! buckets map to subsets by cumulative weight in configuration order, so
//! ramping the canary (listed last) up only moves users onto it, and a
//! rollback moves exactly the users who no longer fit ([`bucket`]). Rules
//! match headers, the path, query parameters or cookies and win over the
//! weights ([`matching`]). The cookie format and its HMAC-SHA256 signature
//! with key rotation are in [`cookie`]; the configuration, validated once
//! with errors that name the field, in [`config`].

pub mod bucket;
pub mod config;
pub mod cookie;
pub mod decision;
pub mod duration;
pub mod matching;

pub use bucket::{BUCKETS, Split, SplitMix64, identity_bucket, random_bucket};
pub use config::{Config, ConfigError, CookieSettings, EnvLookup, Problem, Subset, WireConfig};
pub use cookie::{CookieCodec, Rejection, SigningKey, Verified};
pub use decision::{BucketSource, Decision, Reason, RequestView};

/// An environment with no variables, for configurations that read none.
pub fn no_env(_name: &str) -> Option<String> {
    None
}

#[cfg(test)]
mod tests;
