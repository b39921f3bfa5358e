//! The HTTP connection manager of an Istio proxy.
//!
//! istiod builds every HTTP listener's connection manager the same way
//! (`pilot/pkg/networking/core/listener_builder.go`,
//! `buildHTTPConnectionManager`), whatever the routes say; Envoy's own
//! defaults differ on each of these points, so a listener built without
//! them would answer differently from a sidecar or a gateway.

use envoy_rig::{Bootstrap, Cluster, HttpFilter, Listener, Route, VirtualHost};
use serde_json::{Value, json};

const HCM: &str = "envoy.filters.network.http_connection_manager";

/// Which proxy a listener plays (istiod's `ListenerClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerClass {
    /// The ingress gateway.
    Gateway,
    /// A sidecar's outbound side: what callers of a Service go through.
    SidecarOutbound,
    /// A sidecar's inbound side, in front of its pod.
    SidecarInbound,
}

/// Sets Istio's connection manager defaults on every HTTP connection manager
/// of `listener` (Envoy JSON), a listener of `class`:
///
/// - the gateway trusts the remote address (`gateway.go` passes
///   `useRemoteAddress: true`; sidecars keep the `USE_REMOTE_ADDRESS`
///   feature's default, false): it appends the caller to
///   `x-forwarded-for`;
///
/// - websocket upgrades allowed (`upgrade_configs`), Envoy refuses them with
///   403 otherwise;
/// - paths normalized as `meshConfig.pathNormalization` `DEFAULT`/`BASE`
///   (`normalize_path` on: `/a/../b` is `/b` before routes match; slashes
///   not merged; escaped slashes kept unchanged);
/// - no stream idle timeout (Envoy's default would reset a stream idle for
///   5 minutes);
/// - `server: istio-envoy` on responses of the gateway and the pods'
///   inbound side, Envoy's own `envoy` on a sidecar's outbound side (as
///   istiod leaves it), and `Expect: 100-continue` passed to the upstream,
///   on every listener;
/// - `x-envoy-attempt-count` sent upstream on every virtual host
///   (`proxy_headers.go`: `IncludeRequestAttemptCount` is on unless
///   `proxyHeaders.attemptCount.disabled`; `httproute.go` and `gateway.go`
///   put it on the outbound and gateway virtual hosts, not inbound ones).
pub fn istio_connection_manager(listener: &mut Value, class: ListenerClass) {
    let Some(chains) = listener["filter_chains"].as_array_mut() else {
        return;
    };
    for chain in chains {
        let Some(filters) = chain["filters"].as_array_mut() else {
            continue;
        };
        for filter in filters.iter_mut().filter(|f| f["name"] == HCM) {
            let config = &mut filter["typed_config"];
            config["codec_type"] = json!("AUTO");
            config["normalize_path"] = json!(true);
            config["merge_slashes"] = json!(false);
            config["path_with_escaped_slashes_action"] = json!("KEEP_UNCHANGED");
            config["use_remote_address"] = json!(class == ListenerClass::Gateway);
            config["upgrade_configs"] = json!([{"upgrade_type": "websocket"}]);
            config["stream_idle_timeout"] = json!("0s");
            // What a caller of an Istio proxy sees: `server: istio-envoy`
            // (pilot/pkg/networking/util/proxy_headers.go, used by
            // gateway.go and listener_inbound.go), and an `Expect:
            // 100-continue` answered by the upstream, not by the proxy
            // (features.Enable100ContinueHeaders, on by default, on every
            // class). Shown by istio/oracle's goldens (tests/oracle_parity.rs).
            // istiod leaves a sidecar's outbound side at Envoy's own name,
            // `envoy` ("likely due to a mistake", proxy_headers.go), so a
            // caller in the mesh sees `server: envoy` (its own sidecar
            // overwrites the callee's `istio-envoy`).
            if class == ListenerClass::SidecarOutbound {
                if let Some(config) = config.as_object_mut() {
                    config.remove("server_name");
                }
            } else {
                config["server_name"] = json!("istio-envoy");
            }
            config["proxy_100_continue"] = json!(true);
            if class == ListenerClass::SidecarInbound {
                continue;
            }
            if let Some(hosts) = config["route_config"]["virtual_hosts"].as_array_mut() {
                for host in hosts {
                    host["include_request_attempt_count"] = json!(true);
                }
            }
        }
    }
}

/// A pod's sidecar, inbound side: one listener on `listen_port` in front of
/// the process on `app_port`, carrying the pod's SERVER-mode plugins, with
/// Istio's inbound connection manager and istiod's default inbound route
/// (`route.BuildDefaultHTTPInboundRoute`, used by listener_inbound.go):
/// every path to the app, no timeout, a caller's `grpc-timeout` honoured
/// without a cap (`max_stream_duration` 0 with `grpc_timeout_header_max`
/// 0), and a request retried twice when the connection to the app reset
/// before it was sent (`reset-before-request`). Returns the cluster and the
/// listener, as Envoy's `static_resources` hold them.
pub fn inbound_sidecar(
    pod: &str,
    listen_port: u16,
    app_port: u16,
    plugins: impl IntoIterator<Item = HttpFilter>,
) -> (Value, Value) {
    let cluster = format!("inbound|{pod}");
    let route = json!({
        "name": "default",
        "match": {"prefix": "/"},
        "route": {
            "cluster": cluster,
            "timeout": "0s",
            "max_stream_duration": {
                "max_stream_duration": "0s",
                "grpc_timeout_header_max": "0s",
            },
            "retry_policy": {
                "retry_on": "reset-before-request",
                "num_retries": 2,
            },
        },
    });
    let mut listener = Listener::new(format!("inbound-{pod}"))
        .port(listen_port)
        .stat_prefix(format!("inbound_{}", pod.replace('-', "_")))
        .virtual_host(
            VirtualHost::new("inbound")
                .domains(["*"])
                .route(Route::raw(route)),
        );
    for filter in plugins {
        listener = listener.filter(filter);
    }
    let bootstrap = Bootstrap::new()
        .listener(listener)
        .cluster(Cluster::new(cluster, app_port))
        .to_json();
    let resources = &bootstrap["static_resources"];
    let mut listener = resources["listeners"][0].clone();
    istio_connection_manager(&mut listener, ListenerClass::SidecarInbound);
    (resources["clusters"][0].clone(), listener)
}
