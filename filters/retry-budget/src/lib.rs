//! The adaptive retry budget's policy, apart from any proxy.
//!
//! Envoy retries; this crate decides how many retries one request may have so
//! that retries stay a small, bounded share of traffic. Its parts:
//! [`Config`] (the plugin's JSON, validated through `mesh_policy::from_json`,
//! every refusal a `mesh_policy::ConfigError` naming the field),
//! [`Verdict`] (what a final response counts as, on top of
//! `mesh_policy::RetryOn`, Envoy's retry conditions), the two
//! budgets — [`RatioBudget`] (Linkerd and Finagle: `retryRatio`,
//! `minRetriesPerSecond`, `ttl`) and [`TokenBucket`] (gRPC's retry
//! throttling, gRFC A6) — whose state is a few little-endian `u64`s, kept
//! per configuration in one value ([`Budget`]), [`Registry`] (scope names to
//! shared-data slots, bounded). Durations, retry conditions, the config
//! entry point and the shared-data CAS loop are `mesh-policy`'s.
//!
//! Every decision is a pure function of (configuration, state, time), so the
//! proxy-wasm adapter in `wasm-plugins/retry-budget` keeps the state in shared
//! data, shared by all worker VMs, and updates it by compare-and-swap.

mod budget;
mod config;
mod ratio;
mod registry;
mod tokens;

pub use budget::{
    Admission, Budget, MAX_STATE_BYTES, MAX_STATES, Outcome, Settlement, Ticket, Verdict,
};
pub use config::{
    Config, DEFAULT_ATTEMPTS, DEFAULT_MAX_SCOPES, MAX_ATTEMPTS, MAX_GRPC_ATTEMPTS, Problem, Scope,
    WireBudget, WireConfig, WireScope, WireTokenBucket,
};
pub use ratio::{BUCKETS, MAX_RETRY_RATIO, RatioBudget, RatioState};
pub use registry::{OVERFLOW_SCOPE, Registry, sanitize_scope};
pub use tokens::{LEASE, TokenBucket, TokenState};

/// Fixed-point scale: ratios and tokens are kept in millionths and
/// thousandths so that the state is integers and decisions are exact.
pub const MICRO: u64 = 1_000_000;
/// Tokens are counted in thousandths, as gRPC keeps `tokenRatio` to three decimals.
pub const MILLI: u64 = 1_000;

/// The little-endian `u64`s of an encoded state, in order; `None` unless
/// it is exactly `len` bytes.
pub(crate) fn le_words(bytes: &[u8], len: usize) -> Option<impl Iterator<Item = u64> + '_> {
    (bytes.len() == len).then(|| {
        bytes
            .chunks_exact(8)
            .filter_map(|chunk| chunk.try_into().ok().map(u64::from_le_bytes))
    })
}
