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
//! with errors that name the field, in [`config`]. What the three mesh
//! plugins share (Istio matching with Envoy's semantics, Go durations, the
//! configuration entry point and its errors, FNV and the sampling
//! generator) comes from `mesh-policy`.

pub mod bucket;
pub mod config;
pub mod cookie;
pub mod decision;
pub mod matching;

pub use bucket::{BUCKETS, Split, identity_bucket, random_bucket};
pub use config::{Config, CookieSettings, Problem, Subset, WireConfig};
pub use cookie::{CookieCodec, Rejection, SigningKey, Verified};
pub use decision::{BucketSource, Decision, Reason, RequestView};
pub use mesh_policy::{ConfigError, EnvLookup, SplitMix64, no_env};

#[cfg(test)]
mod tests;
