//! A local Istio mesh: the same manifests a cluster gets, run by one real
//! Envoy on loopback.
//!
//! [`translate`] reads the project's Istio resources (Gateway,
//! VirtualService, DestinationRule) and a list of running workloads
//! (service, version, loopback port), and produces an Envoy bootstrap that
//! plays every sidecar and the ingress gateway at once: one listener per
//! service host (what a sidecar's outbound side does for callers of that
//! host) and one for the gateway. Routes follow Istio's translation:
//! matches, weighted subsets, faults (Envoy's fault filter, per route),
//! timeouts, retries, mirroring, rewrites; subsets become one cluster each,
//! with the DestinationRule's load balancer, connection pool and outlier
//! detection. A host with no VirtualService gets Istio's default: every
//! endpoint of the service, round robin, and Istio's default retries.

//!
//! [`xds::MeshEnvoy`] runs that configuration in one real Envoy fed from
//! files, as the daemon does; the tests run the translator's output the
//! same way.

pub mod process;
pub mod schemas;
mod translate;
pub mod xds;

pub use translate::{
    GATEWAY, ListenerClass, Listeners, MeshError, Translation, Workload, fqdn, inbound_sidecar,
    istio_connection_manager, resolve, translate,
};
