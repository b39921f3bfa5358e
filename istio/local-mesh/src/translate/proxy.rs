//! The HTTP connection manager of an Istio proxy.
//!
//! istiod builds every HTTP listener's connection manager the same way
//! (`pilot/pkg/networking/core/listener_builder.go`,
//! `buildHTTPConnectionManager`), whatever the routes say; Envoy's own
//! defaults differ on each of these points, so a listener built without
//! them would answer differently from a sidecar or a gateway.

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
