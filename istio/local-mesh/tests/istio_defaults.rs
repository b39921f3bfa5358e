//! What an Istio 1.30 proxy does without being asked, checked with real
//! requests through the translator's output in the pinned Envoy: host
//! names resolved as istiod resolves them (namespaces side by side), the
//! default retry policy, the connection manager's defaults (websockets,
//! path normalization, the remote address at the gateway, the attempt
//! count, the gRPC timeout header) and mirrors keeping their Host.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use envoy_rig::client::Request;
use envoy_rig::{Fault, Share, Upstream};
use local_mesh::{Translation, Workload, translate};

mod mesh_envoy;
use mesh_envoy::RunningEnvoy;

/// An echo server per (service, namespace, version), named
/// `service-namespace-version`, and the translation of `yaml` for them.
struct Mesh {
    envoy: RunningEnvoy,
    translation: Translation,
    upstreams: BTreeMap<String, Upstream>,
}

impl Mesh {
    fn start(yaml: &str, pods: &[(&str, &str, &str)]) -> Self {
        Self::start_with(yaml, pods, &[])
    }

    /// As [`start`](Self::start), with `extra` workloads on fixed ports.
    fn start_with(yaml: &str, pods: &[(&str, &str, &str)], extra: &[Workload]) -> Self {
        let mut upstreams = BTreeMap::new();
        let mut workloads = extra.to_vec();
        for (service, namespace, version) in pods {
            let name = format!("{service}-{namespace}-{version}");
            let upstream = Upstream::start(&name).unwrap();
            workloads.push(Workload {
                service: (*service).into(),
                namespace: (*namespace).into(),
                version: (*version).into(),
                port: upstream.port(),
            });
            upstreams.insert(name, upstream);
        }
        let documents = istio_manifests::parse_documents(yaml).unwrap();
        let translation = translate(
            &documents,
            &workloads,
            0,
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .unwrap();
        let envoy = RunningEnvoy::start(&translation);
        Self {
            envoy,
            translation,
            upstreams,
        }
    }

    /// The URL of the listener callers of Service `name.namespace` use.
    fn service_url(&self, key: &str) -> String {
        self.envoy
            .listener_url(&self.translation.listeners.services[key])
    }

    fn gateway_url(&self) -> String {
        self.envoy
            .listener_url(self.translation.listeners.gateway.as_deref().unwrap())
    }

    fn upstream(&self, name: &str) -> &Upstream {
        &self.upstreams[name]
    }
}

const GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: airport}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
";

// ---- 1. Host names ----

#[test]
fn an_external_host_does_not_capture_the_in_mesh_service() {
    // A VirtualService for httpbin.org (an egress rule without its
    // ServiceEntry) is no rule for the in-mesh httpbin: the first label
    // decides nothing. It would abort every request if it were applied.
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin-org, namespace: airport}
spec:
  hosts: [httpbin.org]
  http:
  - fault:
      abort: {httpStatus: 503, percentage: {value: 100}}
    route:
    - destination: {host: httpbin.org}
";
    let mesh = Mesh::start(yaml, &[("httpbin", "airport", "v1")]);
    let url = mesh.service_url("httpbin.airport");
    for _ in 0..5 {
        let response = Request::get(format!("{url}/get")).send().unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.header("x-upstream"), Some("httpbin-airport-v1"));
    }
    assert_eq!(mesh.upstream("httpbin-airport-v1").request_count(), 5);
    // Taken, as a cluster takes it, and reported as doing nothing here.
    assert_eq!(
        mesh.translation.warnings,
        [
            "VirtualService/httpbin-org: spec.hosts[0] httpbin.org is no Service of the mesh \
          (Istio takes a name with a dot as written, so a Service is `name` or \
          `name.namespace.svc.cluster.local`; other hosts need a ServiceEntry): inert for sidecars, as in a cluster without a ServiceEntry for it"
        ]
    );
}

#[test]
fn short_names_resolve_in_the_resources_namespace() {
    // reviews runs in prod and in staging. The staging VirtualService names
    // `reviews`: staging's. A prod VirtualService names staging's Service by
    // its FQDN and routes to `reviews`, which in prod means prod's.
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: staging}
spec:
  hosts: [reviews]
  http:
  - headers:
      response:
        set: {x-rule: staging-reviews}
    route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings-to-prod, namespace: prod}
spec:
  hosts: [ratings.staging.svc.cluster.local]
  http:
  - headers:
      response:
        set: {x-rule: ratings-to-prod}
    route:
    - destination: {host: ratings}
";
    let mesh = Mesh::start(
        yaml,
        &[
            ("reviews", "prod", "v1"),
            ("reviews", "staging", "v1"),
            ("ratings", "prod", "v1"),
            ("ratings", "staging", "v1"),
        ],
    );
    let get = |key: &str| {
        let response = Request::get(format!("{}/", mesh.service_url(key)))
            .send()
            .unwrap();
        assert_eq!(response.status, 200, "{key}: {}", response.text());
        (
            response.header("x-upstream").unwrap().to_string(),
            response.header("x-rule").map(str::to_string),
        )
    };
    assert_eq!(
        get("reviews.staging"),
        ("reviews-staging-v1".into(), Some("staging-reviews".into()))
    );
    // prod's reviews has no VirtualService: Istio's default route.
    assert_eq!(get("reviews.prod"), ("reviews-prod-v1".into(), None));
    // Callers of staging's ratings go to prod's (the rule's namespace).
    assert_eq!(
        get("ratings.staging"),
        ("ratings-prod-v1".into(), Some("ratings-to-prod".into()))
    );
    assert_eq!(get("ratings.prod"), ("ratings-prod-v1".into(), None));
    assert_eq!(mesh.upstream("ratings-staging-v1").request_count(), 0);
    assert!(mesh.translation.warnings.is_empty());
}

#[test]
fn a_name_with_a_namespace_but_no_domain_is_no_service_for_istio() {
    // istiod completes only names without a dot: `reviews.prod` as a
    // VirtualService host is not Service reviews of prod. It is reported,
    // and prod's reviews keeps its default route.
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-prod, namespace: staging}
spec:
  hosts: [reviews.prod]
  http:
  - fault:
      abort: {httpStatus: 503, percentage: {value: 100}}
    route:
    - destination: {host: reviews.prod.svc.cluster.local}
";
    let mesh = Mesh::start(yaml, &[("reviews", "prod", "v1")]);
    let response = Request::get(format!("{}/", mesh.service_url("reviews.prod")))
        .send()
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(mesh.translation.warnings.len(), 1);
    assert!(
        mesh.translation.warnings[0]
            .starts_with("VirtualService/reviews-prod: spec.hosts[0] reviews.prod is no Service"),
        "{:?}",
        mesh.translation.warnings
    );
}

// ---- 2. Default retries ----

/// A service whose only pod answers 503 to every other request.
fn flaky(retries: &str) -> Mesh {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: section, namespace: airport}}
spec:
  hosts: [section]
  http:
  - route:
    - destination: {{host: section}}{retries}
"
    );
    let mesh = Mesh::start(&yaml, &[("section", "airport", "v1")]);
    mesh.upstream("section-airport-v1").inject(
        Fault::Status(503),
        Share::Fraction {
            numerator: 1,
            denominator: 2,
        },
    );
    mesh
}

fn statuses(mesh: &Mesh, requests: usize) -> Vec<u16> {
    let url = mesh.service_url("section.airport");
    (0..requests)
        .map(|_| Request::get(format!("{url}/")).send().unwrap().status)
        .collect()
}

#[test]
fn istios_default_retries_answer_an_upstream_503_once() {
    for retries in ["", "\n    retries: {attempts: 3}"] {
        let mesh = flaky(retries);
        let answers = statuses(&mesh, 20);
        assert_eq!(
            answers.iter().filter(|s| **s == 503).count(),
            10,
            "{retries:?}: {answers:?}"
        );
        assert_eq!(mesh.upstream("section-airport-v1").request_count(), 20);
        assert_eq!(
            mesh.envoy
                .stat("cluster.outbound|section.airport.upstream_rq_retry"),
            0,
            "{retries:?}"
        );
    }
}

#[test]
fn a_status_code_in_retry_on_is_retried_and_attempts_are_counted_upstream() {
    let mesh = flaky("\n    retries: {attempts: 2, retryOn: '503'}");
    assert_eq!(statuses(&mesh, 10), [200; 10]);
    let upstream = mesh.upstream("section-airport-v1");
    assert_eq!(upstream.request_count(), 20);
    // `x-envoy-attempt-count` reaches the upstream: 1, then 2 for the retry.
    let counts: Vec<String> = upstream
        .received()
        .iter()
        .map(|r| {
            r.header("x-envoy-attempt-count")
                .unwrap_or("none")
                .to_string()
        })
        .collect();
    assert_eq!(counts, ["1", "2"].repeat(10), "{counts:?}");
    assert_eq!(
        mesh.envoy
            .stat("cluster.outbound|section.airport.upstream_rq_retry_success"),
        10
    );
}

// ---- 3. The connection manager ----

/// The head of an HTTP/1.1 message (start line and headers, through the
/// blank line) from `reader`.
fn read_head(reader: &mut impl BufRead) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            return head;
        }
    }
}

/// A websocket-speaking upstream, as far as a proxy can tell: it answers
/// the upgrade with 101 and then echoes every byte. Returns its port and
/// the request head it received.
fn websocket_upstream() -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let head = read_head(&mut reader);
        let mut writer = stream;
        writer
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            )
            .unwrap();
        let mut buffer = [0u8; 64];
        let n = reader.read(&mut buffer).unwrap();
        writer.write_all(&buffer[..n]).unwrap();
        head
    });
    (port, handle)
}

#[test]
fn websocket_upgrades_are_allowed() {
    let (port, upstream) = websocket_upstream();
    let chat = Workload {
        service: "chat".into(),
        namespace: "airport".into(),
        version: "v1".into(),
        port,
    };
    let mesh = Mesh::start_with("", &[], &[chat]);
    let address = mesh
        .service_url("chat.airport")
        .trim_start_matches("http://")
        .to_string();
    let (mut stream, mut reader, status) = upgrade(&address);
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    read_head(&mut reader); // the rest of the 101's headers
    stream.write_all(b"ping through the tunnel").unwrap();
    let mut echoed = [0u8; 23];
    reader.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping through the tunnel");
    let head = upstream.join().unwrap().to_ascii_lowercase();
    assert!(head.contains("upgrade: websocket"), "{head}");

    // The same listener without Istio's `upgrade_configs`: Envoy's own
    // default refuses the upgrade, which is what the fix is for.
    let mut bare = mesh.translation.clone();
    for listener in bare.bootstrap["static_resources"]["listeners"]
        .as_array_mut()
        .unwrap()
    {
        let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
        hcm.as_object_mut().unwrap().remove("upgrade_configs");
    }
    let envoy = RunningEnvoy::start(&bare);
    let url = envoy.listener_url(&bare.listeners.services["chat.airport"]);
    let (_, _, status) = upgrade(url.trim_start_matches("http://"));
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
}

/// Sends a websocket upgrade request to `address`; the stream, a reader on
/// it and the status line of the answer.
fn upgrade(address: &str) -> (TcpStream, BufReader<TcpStream>, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: chat\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    (stream, reader, status)
}

#[test]
fn paths_are_normalized_before_routes_match_but_slashes_are_not_merged() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: productpage, namespace: airport}
spec:
  host: productpage
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: airport}
spec:
  hosts: [productpage]
  http:
  - match:
    - uri: {exact: /productpage}
    route:
    - destination: {host: productpage, subset: v2}
  - route:
    - destination: {host: productpage, subset: v1}
";
    let mesh = Mesh::start(
        yaml,
        &[
            ("productpage", "airport", "v1"),
            ("productpage", "airport", "v2"),
        ],
    );
    let url = mesh.service_url("productpage.airport");
    for (path, upstream, forwarded) in [
        ("/productpage", "productpage-airport-v2", "/productpage"),
        // `pathNormalization: BASE`: dot segments resolved (RFC 3986)...
        (
            "/static/../productpage",
            "productpage-airport-v2",
            "/productpage",
        ),
        ("/./productpage", "productpage-airport-v2", "/productpage"),
        // ...but slashes are not merged, and an escaped slash is kept.
        ("//productpage", "productpage-airport-v1", "//productpage"),
        (
            "/static%2F..%2Fproductpage",
            "productpage-airport-v1",
            "/static%2F..%2Fproductpage",
        ),
    ] {
        let response = Request::get(format!("{url}{path}")).send().unwrap();
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("x-upstream"), Some(upstream), "{path}");
        assert_eq!(response.json().unwrap()["path"], forwarded, "{path}");
    }

    // Without Istio's `normalize_path` (Envoy's default), the same request
    // misses the exact match and reaches v1 with its dot segments.
    let mut bare = mesh.translation.clone();
    for listener in bare.bootstrap["static_resources"]["listeners"]
        .as_array_mut()
        .unwrap()
    {
        let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
        hcm.as_object_mut().unwrap().remove("normalize_path");
    }
    let envoy = RunningEnvoy::start(&bare);
    let url = envoy.listener_url(&bare.listeners.services["productpage.airport"]);
    let response = Request::get(format!("{url}/static/../productpage"))
        .send()
        .unwrap();
    assert_eq!(
        response.header("x-upstream"),
        Some("productpage-airport-v1")
    );
    assert_eq!(response.json().unwrap()["path"], "/static/../productpage");
}

/// An upstream that records the head of one request and answers 200 at
/// once (without reading a body): what it received tells whether the proxy
/// passed an `Expect: 100-continue` on or answered it itself.
fn recording_upstream() -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let head = read_head(&mut reader);
        let mut writer = stream;
        writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nserver: upstream\r\n\r\nok")
            .unwrap();
        head
    });
    (port, handle)
}

/// Sends a POST with `Expect: 100-continue` (and no body yet) to `address`;
/// the head of the first answer, lowercased.
fn expect_continue(address: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: files\r\nExpect: 100-continue\r\ncontent-length: 4\r\n\r\n",
        )
        .unwrap();
    let mut reader = BufReader::new(stream);
    read_head(&mut reader).to_ascii_lowercase()
}

#[test]
fn callers_see_their_own_sidecar_as_envoy_and_the_upstream_answers_expect_continue() {
    let (port, upstream) = recording_upstream();
    let files = Workload {
        service: "files".into(),
        namespace: "airport".into(),
        version: "v1".into(),
        port,
    };
    let mesh = Mesh::start_with("", &[], std::slice::from_ref(&files));
    let address = mesh
        .service_url("files.airport")
        .trim_start_matches("http://")
        .to_string();
    let answer = expect_continue(&address);
    // The upstream's 200 is the first answer: the proxy did not say
    // `100 Continue` itself. The caller's own sidecar names itself as
    // istiod leaves it there, Envoy's `envoy` (proxy_headers.go sets
    // `istio-envoy` only on the gateway and the inbound side), overwriting
    // the upstream's `server: upstream`.
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("server: envoy"), "{answer}");
    let head = upstream.join().unwrap().to_ascii_lowercase();
    assert!(head.contains("expect: 100-continue"), "{head}");

    // The same listener with Envoy's own defaults answers the expectation
    // itself: what `proxy_100_continue` changes.
    let (port, upstream) = recording_upstream();
    let mesh = Mesh::start_with("", &[], &[Workload { port, ..files }]);
    let mut bare = mesh.translation.clone();
    for listener in bare.bootstrap["static_resources"]["listeners"]
        .as_array_mut()
        .unwrap()
    {
        let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
        let hcm = hcm.as_object_mut().unwrap();
        hcm.remove("server_name");
        hcm.remove("proxy_100_continue");
    }
    drop(mesh);
    let envoy = RunningEnvoy::start(&bare);
    let url = envoy.listener_url(&bare.listeners.services["files.airport"]);
    let answer = expect_continue(url.trim_start_matches("http://"));
    assert!(answer.starts_with("http/1.1 100"), "{answer}");
    drop(envoy);
    drop(upstream);
}

#[test]
fn the_gateway_appends_the_caller_to_x_forwarded_for_and_sidecars_do_not() {
    let yaml = format!(
        "{GATEWAY}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: airport}}
spec:
  hosts: ['*']
  gateways: [gw]
  http:
  - route:
    - destination: {{host: web}}
"
    );
    let mesh = Mesh::start(&yaml, &[("web", "airport", "v1")]);
    let web = mesh.upstream("web-airport-v1");
    Request::get(format!("{}/", mesh.gateway_url()))
        .send()
        .unwrap();
    Request::get(format!("{}/", mesh.service_url("web.airport")))
        .send()
        .unwrap();
    let received = web.received();
    assert_eq!(received.len(), 2);
    // `use_remote_address` at the gateway: Envoy trusts the peer, reports it
    // as `x-envoy-external-address` and appends to `x-forwarded-for` (for a
    // loopback peer it appends its own address instead:
    // `conn_manager_utility.cc`). A sidecar leaves both alone.
    let gateway = &received[0];
    assert_eq!(
        gateway.header("x-envoy-external-address"),
        Some("127.0.0.1"),
        "{:?}",
        gateway.headers
    );
    assert!(
        gateway
            .header("x-forwarded-for")
            .is_some_and(|v| !v.is_empty()),
        "{:?}",
        gateway.headers
    );
    let sidecar = &received[1];
    assert_eq!(
        sidecar.header("x-forwarded-for"),
        None,
        "{:?}",
        sidecar.headers
    );
    assert_eq!(sidecar.header("x-envoy-external-address"), None);
    // Both send the attempt count.
    for request in &received {
        assert_eq!(request.header("x-envoy-attempt-count"), Some("1"));
    }
}

#[test]
fn a_grpc_timeout_header_is_honoured_up_to_the_route_timeout() {
    // No timeout on the route: Istio's `max_grpc_timeout: 0s` lets the
    // caller's `grpc-timeout` bound the call (Envoy alone ignores it).
    let mesh = Mesh::start("", &[("grpc", "airport", "v1")]);
    let upstream = mesh.upstream("grpc-airport-v1");
    upstream.inject(Fault::Delay(Duration::from_secs(5)), Share::All);
    let response = Request::post(
        format!("{}/pkg.Service/Method", mesh.service_url("grpc.airport")),
        Vec::new(),
    )
    .header("content-type", "application/grpc")
    .header("grpc-timeout", "200m")
    .timeout(Duration::from_secs(20))
    .send()
    .unwrap();
    // Envoy's local reply to a gRPC caller for a timed-out upstream: status
    // 200 with grpc-status 14 (UNAVAILABLE, Envoy's mapping of 504) and the
    // reason, given when the header's 200 ms ran out, long before the
    // upstream's 5 s answer.
    assert_eq!(response.status, 200, "{:?}", response.headers);
    assert_eq!(
        response.header("grpc-status"),
        Some("14"),
        "{:?}",
        response.headers
    );
    assert_eq!(
        response.header("grpc-message"),
        Some("upstream request timeout")
    );
    assert_eq!(
        mesh.envoy
            .stat("cluster.outbound|grpc.airport.upstream_rq_timeout"),
        1
    );
}

#[test]
fn envoy_runs_every_listener_with_istios_connection_manager() {
    // The parts a request cannot show in a test's time (a stream idle
    // timeout of Envoy's 5 minutes) read back from the running Envoy.
    let mesh = Mesh::start(GATEWAY, &[("web", "airport", "v1")]);
    let dump = mesh.envoy.config_dump();
    let listeners: Vec<&serde_json::Value> = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.ListenersConfigDump")
        .flat_map(|c| c["dynamic_listeners"].as_array().unwrap())
        .collect();
    assert_eq!(listeners.len(), 2);
    for listener in listeners {
        let name = listener["name"].as_str().unwrap();
        let hcm =
            &listener["active_state"]["listener"]["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm["stream_idle_timeout"], "0s", "{name}");
        assert_eq!(hcm["normalize_path"], true, "{name}");
        assert_eq!(hcm["upgrade_configs"][0]["upgrade_type"], "websocket");
        assert_eq!(
            hcm["use_remote_address"],
            name == "gateway",
            "{name}: {hcm:#}"
        );
    }
}

/// A pod's sidecar, inbound side, as the daemon builds it (src/daemon.rs,
/// `render`): one listener in front of the app on `app_port`, every path to
/// it with no route timeout, Istio's inbound connection manager defaults.
fn inbound_side(app_port: u16) -> Translation {
    let cluster = "inbound|files-0";
    let listener = envoy_rig::Listener::new("inbound-files-0")
        .stat_prefix("inbound_files_0")
        .virtual_host(
            envoy_rig::VirtualHost::new("inbound").domains(["*"]).route(
                envoy_rig::Route::new(
                    envoy_rig::RouteMatch::prefix("/"),
                    envoy_rig::RouteAction::cluster(cluster),
                )
                .timeout(Duration::ZERO),
            ),
        );
    let mut bootstrap = envoy_rig::Bootstrap::new()
        .listener(listener)
        .cluster(envoy_rig::Cluster::new(cluster, app_port))
        .to_json();
    for listener in bootstrap["static_resources"]["listeners"]
        .as_array_mut()
        .unwrap()
    {
        local_mesh::istio_connection_manager(listener, local_mesh::ListenerClass::SidecarInbound);
    }
    Translation {
        bootstrap,
        listeners: local_mesh::Listeners::default(),
        warnings: Vec::new(),
    }
}

#[test]
fn a_pods_inbound_side_says_istio_envoy_and_the_app_answers_expect_continue() {
    // istiod's inbound chains (listener_inbound.go): `server_name:
    // istio-envoy` and `proxy_100_continue: true`, as istio/oracle's
    // goldens show for every sidecar.
    let (port, app) = recording_upstream();
    let envoy = RunningEnvoy::start(&inbound_side(port));
    let url = envoy.listener_url("inbound-files-0");
    let answer = expect_continue(url.trim_start_matches("http://"));
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("server: istio-envoy"), "{answer}");
    let head = app.join().unwrap().to_ascii_lowercase();
    assert!(head.contains("expect: 100-continue"), "{head}");
    drop(envoy);

    // Envoy's own defaults on the same listener (what the inbound side had
    // before): Envoy answers the expectation itself.
    let (port, app) = recording_upstream();
    let mut bare = inbound_side(port);
    for listener in bare.bootstrap["static_resources"]["listeners"]
        .as_array_mut()
        .unwrap()
    {
        let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
        let hcm = hcm.as_object_mut().unwrap();
        hcm.remove("server_name");
        hcm.remove("proxy_100_continue");
    }
    let envoy = RunningEnvoy::start(&bare);
    let url = envoy.listener_url("inbound-files-0");
    let answer = expect_continue(url.trim_start_matches("http://"));
    assert!(answer.starts_with("http/1.1 100"), "{answer}");
    drop(envoy);
    drop(app);
}
