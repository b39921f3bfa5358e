//! A proxy-wasm host for tests, on wasmtime.
//!
//! It runs the very `.wasm` a proxy loads (any module built for proxy-wasm
//! ABI 0.2.1 with `wasm32-wasip1`, such as the Rust SDK 0.2.x produces) and
//! implements every hostcall with Envoy's semantics and status codes: header
//! maps, bodies, properties, local responses, a virtual clock with ticks,
//! shared data with Envoy's CAS rules, shared queues, metrics, HTTP and gRPC
//! callouts (calls and streams) answered by the test's servers or timed out
//! on the virtual clock, refused for clusters the test did not declare (as
//! Envoy refuses clusters it does not have), and Envoy 1.40's
//! process model (`Harness::start_workers`: a configuration VM, the main
//! thread's VM, which ticks but serves no streams, and one VM per worker,
//! all sharing one store). `exchange` does what Envoy's connection manager
//! and HTTP/1.1 codec do around the plugin (`x-forwarded-proto`,
//! `x-request-id`, pseudo-header order, a separate end-of-stream body
//! callback); test-harness/ENVOY-FACTS.md lists each rule and its test. A trap in the
//! plugin comes back as [`HarnessError::Trap`] and fails that VM, as in Envoy;
//! it never takes the test down. There is no global mutable state, so tests
//! run in parallel; compiled modules are cached per process.
//!
//! ```no_run
//! use proxy_wasm_harness::{Harness, Plugin, Request, Response};
//!
//! let plugin = Plugin::load("target/wasm-artifacts/wasm32-wasip1/wasm/my_plugin.wasm")?
//!     .plugin_config(r#"{"header": "x-hello"}"#);
//! let mut harness = Harness::new();
//! let worker = harness.start(&plugin)?;
//! let exchange = harness.exchange(worker, Request::get("/"), |upstream| {
//!     assert_eq!(upstream.header("x-hello"), Some("world"));
//!     Response::ok().body("hi")
//! })?;
//! assert_eq!(exchange.status(), Some(200));
//! # Ok::<(), proxy_wasm_harness::HarnessError>(())
//! ```

mod error;
mod exchange;
mod grpc;
mod harness;
mod headers;
mod hostcalls;
mod plugin;
mod state;
mod types;
mod vm;
mod world;

pub use error::HarnessError;
pub use exchange::{Exchange, Request, Response, UpstreamRequest};
pub use grpc::{GrpcCall, GrpcKind, GrpcResponse};
pub use harness::{BodyEnd, Harness, StreamId, WorkerId};
pub use headers::{HeaderMap, deserialize_pairs, serialize_pairs};
pub use plugin::Plugin;
pub use state::{
    CalloutResponse, Flow, ForeignCall, HttpCall, HttpStream, LocalResponse, LogEntry,
};
pub use types::{Action, BufferType, LogLevel, MapType, MetricType, Status, StreamType};
pub use world::Metric;
