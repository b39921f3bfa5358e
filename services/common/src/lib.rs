//! Shared code of the airport security services: the types that travel between
//! them (frames, statistics, alerts, camera state), the HTTP contract of the two
//! vision services (image analysis, face recognition) as Rust types, validated
//! identifiers and timestamps, configuration from environment variables, the
//! JSON error type every service answers bad input with, the `/status`,
//! `/healthz` and `/readyz` endpoints, a small HTTP client with per-call
//! timeouts, tracing setup, and graceful shutdown on SIGTERM or ctrl-c.
//!
//! The wire formats are written down in `services/CONTRACT.md`; this crate is
//! their single Rust definition.

pub mod client;
pub mod config;
pub mod contract;
pub mod error;
pub mod extract;
pub mod health;
pub mod imaging;
pub mod server;
pub mod telemetry;
pub mod testing;
pub mod time;
pub mod types;

pub use client::{ClientError, HttpClient, HttpResponse};
pub use config::{ConfigError, Lookup};
pub use error::ApiError;
pub use extract::{ApiJson, ApiQuery};
pub use health::Health;
pub use server::{BoxError, Running, Shutdown, run_main, serve, spawn};
pub use time::Timestamp;
