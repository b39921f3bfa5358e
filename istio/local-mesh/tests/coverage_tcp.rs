//! VirtualService `tcp` routes, as istiod builds a sidecar's outbound TCP
//! listener (`networkfilter.go`, `buildOutboundNetworkFilters`): a Service
//! whose port is `tcp`/`tcp-*` (or `appProtocol: tcp`) gets a `tcp_proxy`
//! to the first route matching its port, weighted when it has several
//! destinations; the DestinationRule's TCP idle timeout on the proxy.
//! Checked in the Envoy JSON and with real TCP connections through Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod coverage_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use coverage_support::{Mesh, RunningEnvoy, translation};
use local_mesh::Workload;
use serde_json::json;

/// A TCP server that greets each connection with its name, then echoes.
fn tcp_pod(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.write_all(format!("{name}\n").as_bytes());
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let _ = stream.write_all(line.as_bytes());
                    line.clear();
                }
            });
        }
    });
    port
}

fn echo_pods() -> Vec<Workload> {
    [("v1", tcp_pod("echo-v1")), ("v2", tcp_pod("echo-v2"))]
        .into_iter()
        .map(|(version, port)| Workload {
            service: "echo".into(),
            namespace: "web".into(),
            version: version.into(),
            port,
        })
        .collect()
}

/// Connects to `url`'s address and returns the greeting and the echo of a line.
fn exchange(url: &str) -> (String, String) {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    stream.write_all(b"ping\n").unwrap();
    let mut echo = String::new();
    reader.read_line(&mut echo).unwrap();
    (greeting.trim().to_string(), echo.trim().to_string())
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: echo, namespace: web}
spec:
  selector: {app: echo}
  ports:
  - {name: tcp-echo, port: 9000}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: web}
spec:
  host: echo
  trafficPolicy:
    connectionPool:
      tcp: {idleTimeout: 30s}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";

fn with_routes(routes: &str) -> String {
    format!(
        "{SERVICE}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: web}}
spec:
  hosts: [echo]
  http:
  - fault:
      abort: {{httpStatus: 500, percentage: {{value: 100}}}}
    route:
    - destination: {{host: echo}}
  tcp:
{routes}"
    )
}

fn tcp_proxy(translation: &local_mesh::Translation) -> serde_json::Value {
    let listener = translation.bootstrap["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "svc-echo.web")
        .unwrap()
        .clone();
    listener["filter_chains"][0]["filters"][0].clone()
}

#[test]
fn weighted_tcp_routes_become_a_tcp_proxy_as_istiod_writes_it() {
    let yaml = with_routes(
        "  - match:
    - port: 9000
    route:
    - destination: {host: echo, subset: v1}
      weight: 80
    - destination: {host: echo, subset: v2}
      weight: 20
",
    );
    let out = translation(&yaml, &echo_pods());
    let filter = tcp_proxy(&out);
    assert_eq!(filter["name"], "envoy.filters.network.tcp_proxy");
    assert_eq!(
        filter["typed_config"],
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "echo.web",
            "weighted_clusters": {"clusters": [
                {"name": "outbound|echo.web|v1", "weight": 80},
                {"name": "outbound|echo.web|v2", "weight": 20},
            ]},
            "idle_timeout": "30.000000000s",
        })
    );
    // Without a VirtualService: every endpoint, the cluster as stat prefix.
    let out = translation(SERVICE, &echo_pods());
    assert_eq!(
        tcp_proxy(&out)["typed_config"]["cluster"],
        "outbound|echo.web"
    );
    assert_eq!(
        tcp_proxy(&out)["typed_config"]["stat_prefix"],
        "outbound|echo.web"
    );
}

#[test]
fn through_envoy_the_first_route_matching_the_port_takes_the_connection() {
    // The first route is for another port; the second one (v2) applies.
    // The VirtualService's http routes (an abort) do nothing on a TCP port.
    let yaml = with_routes(
        "  - match:
    - port: 9999
    route:
    - destination: {host: echo, subset: v1}
  - route:
    - destination: {host: echo, subset: v2}
      weight: 100
    - destination: {host: echo, subset: v1}
      weight: 0
",
    );
    let mesh = Mesh::with(&yaml, &echo_pods(), BTreeMap::new());
    let url = mesh.service_url("echo.web");
    for _ in 0..5 {
        assert_eq!(exchange(&url), ("echo-v2".to_string(), "ping".to_string()));
    }
}

#[test]
fn through_envoy_without_a_virtual_service_every_pod_is_reached() {
    let translation = translation(SERVICE, &echo_pods());
    let envoy = RunningEnvoy::start(&translation);
    let url = envoy.listener_url("svc-echo.web");
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        seen.insert(exchange(&url).0);
    }
    assert_eq!(
        seen,
        BTreeSet::from(["echo-v1".to_string(), "echo-v2".to_string()])
    );
}

#[test]
fn a_service_with_tcp_and_http_ports_is_refused() {
    let yaml = SERVICE.replace(
        "  - {name: tcp-echo, port: 9000}\n",
        "  - {name: tcp-echo, port: 9000}\n  - {name: http, port: 8080}\n",
    );
    let message = coverage_support::refusal(&yaml, &echo_pods());
    assert!(
        message.starts_with("Service/echo: spec.ports: TCP and HTTP ports in one Service"),
        "{message}"
    );
}
