//! The seed's scenario files, translated and run by a real Envoy, with echo
//! servers standing in for the services (each named `<service>-<version>`,
//! which it returns in `x-upstream`). Every test applies istio/app and then
//! one scenario file, as `make deploy-istio-default` and the scenario's make
//! target do, and checks what the seed says to observe.
//!
//! Shares are checked against binomial bounds at least 5 standard
//! deviations wide, so a correct translation fails them about never; the
//! deterministic parts (round robin, header routing, retries against an
//! upstream failing every other request) are checked exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use envoy_rig::client::{Request, Response};
use envoy_rig::{Fault, Share, Upstream};
use local_mesh::{Workload, translate};
use serde_json::Value;

mod mesh_envoy;
use mesh_envoy::RunningEnvoy;

/// The services istio/app routes to, one v1 each (cpanel gets its own).
const APP_SERVICES: &[&str] = &[
    "camera-1",
    "camera-2",
    "collector",
    "image-analysis",
    "face-recognition",
    "section-1",
    "alerts",
];

fn manifests(files: &[&str]) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(root.join(f)).unwrap();
            istio_manifests::parse_documents(&text).unwrap()
        })
        .collect()
}

/// A port that was free a moment ago (for a listener another workload must
/// know before Envoy starts).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The app and its echo workloads behind one Envoy.
struct Mesh {
    envoy: RunningEnvoy,
    upstreams: BTreeMap<String, Upstream>,
    gateway: String,
}

impl Mesh {
    /// istio/app plus `scenarios`, with one v1 echo server per app service
    /// and `cpanel` pods as given (`["v1", "v2", "v2"]`: named cpanel-v1,
    /// cpanel-v2, cpanel-v2-2).
    fn start(scenarios: &[&str], cpanel: &[&str]) -> Self {
        Self::start_with(scenarios, &[], cpanel, &[], &BTreeMap::new())
    }

    /// As [`start`](Self::start), plus `documents` after the files, `extra`
    /// workloads pointing at fixed ports (another listener of the same
    /// Envoy, to make a second hop; a service given there gets no echo
    /// server) and fixed ports for some services' listeners.
    fn start_with(
        scenarios: &[&str],
        documents: &[Value],
        cpanel: &[&str],
        extra: &[Workload],
        service_ports: &BTreeMap<String, u16>,
    ) -> Self {
        let mut upstreams = BTreeMap::new();
        let mut workloads = extra.to_vec();
        for service in APP_SERVICES {
            if extra.iter().any(|w| w.service == *service) {
                continue;
            }
            let name = format!("{service}-v1");
            let upstream = Upstream::start(&name).unwrap();
            workloads.push(Workload {
                service: (*service).into(),
                namespace: "airport".into(),
                version: "v1".into(),
                port: upstream.port(),
            });
            upstreams.insert(name, upstream);
        }
        for version in cpanel {
            let mut name = format!("cpanel-{version}");
            let mut n = 2;
            while upstreams.contains_key(&name) {
                name = format!("cpanel-{version}-{n}");
                n += 1;
            }
            let upstream = Upstream::start(&name).unwrap();
            workloads.push(Workload {
                service: "cpanel".into(),
                namespace: "airport".into(),
                version: (*version).into(),
                port: upstream.port(),
            });
            upstreams.insert(name, upstream);
        }
        let mut files = vec![
            "app/gateway.yaml",
            "app/destination-rules.yaml",
            "app/virtual-services.yaml",
        ];
        files.extend(scenarios);
        let mut all = manifests(&files);
        all.extend(documents.iter().cloned());
        let translation = translate(&all, &workloads, 0, service_ports, &BTreeMap::new()).unwrap();
        let envoy = RunningEnvoy::start(&translation);
        let gateway = envoy.listener_url(translation.listeners.gateway.as_deref().unwrap());
        Self {
            envoy,
            upstreams,
            gateway,
        }
    }

    fn upstream(&self, name: &str) -> &Upstream {
        &self.upstreams[name]
    }

    fn get(&self, path: &str) -> Response {
        Request::get(format!("{}{path}", self.gateway))
            .send()
            .unwrap()
    }

    /// Which upstream answered `requests` GETs of `path` (with `headers`).
    fn answered_by(&self, path: &str, headers: &[(&str, &str)], requests: usize) -> Vec<String> {
        (0..requests)
            .map(|_| {
                let mut request = Request::get(format!("{}{path}", self.gateway));
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let response = request.send().unwrap();
                assert_eq!(response.status, 200, "{}", self.envoy.log_tail(20));
                response.header("x-upstream").unwrap().to_string()
            })
            .collect()
    }

    fn stat(&self, name: &str) -> u64 {
        self.envoy.stat(name)
    }
}

fn count(answers: &[String], name: &str) -> usize {
    answers.iter().filter(|a| *a == name).count()
}

#[test]
fn the_default_routes_reach_every_service_with_their_paths() {
    let mesh = Mesh::start(&[], &["v1", "v2"]);
    for (path, upstream, forwarded) in [
        ("/status", "cpanel-v1", "/status"),
        ("/", "cpanel-v1", "/"),
        ("/cameras/1/state", "cpanel-v1", "/cameras/1/state"),
        ("/collector/status", "collector-v1", "/status"),
        ("/alerts/status", "alerts-v1", "/status"),
        ("/sections/1/status", "section-1-v1", "/status"),
        (
            "/production?toggle=on",
            "cpanel-v1",
            "/production?toggle=on",
        ),
    ] {
        let response = mesh.get(path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("x-upstream"), Some(upstream), "{path}");
        assert_eq!(response.json().unwrap()["path"], forwarded, "{path}");
    }
}

#[test]
fn cpanel_50_50_splits_the_dashboard_evenly() {
    let mesh = Mesh::start(&["scenarios/cpanel-50-50.yaml"], &["v1", "v2"]);
    let answers = mesh.answered_by("/", &[], 400);
    // Binomial(400, 1/2): sd 10; 150..=250 is 5 sd either side.
    let v1 = count(&answers, "cpanel-v1");
    assert_eq!(v1 + count(&answers, "cpanel-v2"), 400);
    assert!((150..=250).contains(&v1), "v1 answered {v1} of 400");
}

#[test]
fn cpanel_v2_sends_every_dashboard_request_to_v2() {
    let mesh = Mesh::start(&["scenarios/cpanel-v2.yaml"], &["v1", "v2"]);
    let answers = mesh.answered_by("/status", &[], 50);
    assert_eq!(count(&answers, "cpanel-v2"), 50);
    assert_eq!(mesh.upstream("cpanel-v1").request_count(), 0);
}

#[test]
fn load_balancing_takes_one_v1_and_three_v2_pods_in_turn() {
    // After `make scale_v2_x3`: one v1 pod and three v2 pods.
    let mesh = Mesh::start(
        &["scenarios/load-balancing.yaml"],
        &["v1", "v2", "v2", "v2"],
    );
    let answers = mesh.answered_by("/status", &[], 100);
    // Round robin: every pod once in every 4 requests (one Envoy worker).
    for window in answers.chunks(4) {
        let mut sorted = window.to_vec();
        sorted.sort();
        assert_eq!(
            sorted,
            ["cpanel-v1", "cpanel-v2", "cpanel-v2-2", "cpanel-v2-3"],
            "{answers:?}"
        );
    }
    assert_eq!(count(&answers, "cpanel-v1"), 25);
}

#[test]
fn random_picks_pods_by_chance() {
    let mesh = Mesh::start(&["scenarios/random.yaml"], &["v1", "v2", "v2", "v2"]);
    let answers = mesh.answered_by("/status", &[], 400);
    // Binomial(400, 1/4): sd ~8.7; 56..=144 is 5 sd either side.
    let v1 = count(&answers, "cpanel-v1");
    assert!((56..=144).contains(&v1), "v1 answered {v1} of 400");
    // Not round robin: some window of 4 misses a pod.
    assert!(
        answers.chunks(4).any(|w| {
            let mut w = w.to_vec();
            w.sort();
            w.dedup();
            w.len() < 4
        }),
        "{answers:?}"
    );
}

#[test]
fn dark_launch_shows_v2_to_the_tester_only() {
    let mesh = Mesh::start(&["scenarios/dark-launch.yaml"], &["v1", "v2"]);
    let tester = mesh.answered_by("/", &[("end-user", "tester")], 20);
    let others = mesh.answered_by("/", &[("end-user", "someone")], 20);
    let anonymous = mesh.answered_by("/", &[], 20);
    assert_eq!(count(&tester, "cpanel-v2"), 20);
    assert_eq!(count(&others, "cpanel-v1"), 20);
    assert_eq!(count(&anonymous, "cpanel-v1"), 20);
}

#[test]
fn the_canary_by_user_agent_catches_firefox() {
    let mesh = Mesh::start(&["scenarios/canary-user-agent.yaml"], &["v1", "v2"]);
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:62.0) Gecko/20100101 Firefox/62.0";
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
    assert_eq!(
        count(
            &mesh.answered_by("/", &[("user-agent", firefox)], 10),
            "cpanel-v2"
        ),
        10
    );
    assert_eq!(
        count(
            &mesh.answered_by("/", &[("user-agent", chrome)], 10),
            "cpanel-v1"
        ),
        10
    );
    assert_eq!(
        count(
            &mesh.answered_by("/", &[("user-agent", "curl/8.5.0")], 10),
            "cpanel-v1"
        ),
        10
    );
}

#[test]
fn blue_green_routes_by_host_name_and_switches() {
    let check = |scenario: &str, live: &str, test: &str| {
        let mesh = Mesh::start(&[scenario], &["v1", "v2"]);
        for (host, expected) in [
            ("airport.local", live),
            // A browser sends the gateway's port along: still the same host.
            ("airport.local:31221", live),
            ("test.airport.local", test),
            ("elsewhere.example", "cpanel-v1"),
        ] {
            let answers = mesh.answered_by("/", &[("host", host)], 5);
            assert_eq!(count(&answers, expected), 5, "{scenario}: {host}");
        }
        // The live and test names serve the dashboard only.
        let collector = Request::get(format!("{}/collector/status", mesh.gateway))
            .header("host", "airport.local")
            .send()
            .unwrap();
        assert_eq!(collector.header("x-upstream"), Some(live));
    };
    check("scenarios/blue-green.yaml", "cpanel-v1", "cpanel-v2");
    check("scenarios/blue-green-switch.yaml", "cpanel-v2", "cpanel-v1");
}

#[test]
fn mirroring_copies_every_dashboard_request_to_v2() {
    let mesh = Mesh::start(&["scenarios/mirroring.yaml"], &["v1", "v2"]);
    let answers = mesh.answered_by("/", &[], 30);
    assert_eq!(count(&answers, "cpanel-v1"), 30);
    // The copies are sent on the side; wait for all of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let v2 = mesh.upstream("cpanel-v2");
    while v2.request_count() < 30 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(v2.request_count(), 30);
    let copy = &v2.received()[0];
    let original = &mesh.upstream("cpanel-v1").received()[0];
    assert_eq!(copy.path, "/");
    // Istio 1.30 turns Envoy's `-shadow` suffix off: the copy carries the
    // caller's Host unchanged, as the original does.
    let gateway_host = mesh.gateway.trim_start_matches("http://");
    assert_eq!(
        copy.header("host"),
        Some(gateway_host),
        "{:?}",
        copy.headers
    );
    assert_eq!(original.header("host"), Some(gateway_host));
}

#[test]
fn timeout_answers_upstream_request_timeout_for_the_slow_calls() {
    // The seed's two hops: the gateway's camera route goes to the control
    // panel, which asks camera 1 through the mesh. Here the "control panel"
    // is camera 1's own mesh listener, so the gateway's request takes the
    // same path a real panel's call would.
    let camera_listener = free_port();
    let panel = Workload {
        service: "cpanel".into(),
        namespace: "airport".into(),
        version: "v1".into(),
        port: camera_listener,
    };
    let mesh = Mesh::start_with(
        &["scenarios/timeout.yaml"],
        &[],
        &[],
        &[panel],
        &BTreeMap::from([("camera-1.airport".to_string(), camera_listener)]),
    );
    let total = 24;
    let mut timed_out = 0;
    for _ in 0..total {
        let started = Instant::now();
        let response = mesh.get("/cameras/1/state");
        match response.status {
            504 => {
                assert_eq!(response.text(), "upstream request timeout");
                // The gateway gave up after its 0.5 s, not the delay's 2 s.
                assert!(started.elapsed() < Duration::from_millis(1500));
                timed_out += 1;
            }
            200 => assert_eq!(response.header("x-upstream"), Some("camera-1-v1")),
            other => panic!("status {other}: {}", response.text()),
        }
    }
    // Each slow call is one the mesh delayed: half of them, by the fault.
    let delayed = mesh.stat("http.svc_camera_1_airport.fault.delays_injected");
    assert_eq!(timed_out as u64, delayed);
    // P(all 24 delayed, or none) = 2^-23.
    assert!(timed_out > 0 && timed_out < total, "{timed_out} of {total}");
    assert_eq!(
        mesh.stat("cluster.outbound|cpanel.airport|v1.upstream_rq_timeout"),
        delayed
    );
}

#[test]
fn retries_turn_a_failing_upstream_into_successes() {
    // Without retries of its own the route keeps Istio's default, which
    // since 1.24 retries no status code: an upstream's 503 (or 502) is the
    // answer, every other request fails.
    let mesh = Mesh::start(&[], &["v1"]);
    let section = mesh.upstream("section-1-v1");
    for status in [503, 502] {
        section.inject(
            Fault::Status(status),
            Share::Fraction {
                numerator: 1,
                denominator: 2,
            },
        );
        let failed = (0..20)
            .filter(|_| mesh.get("/sections/1/status").status == status)
            .count();
        assert_eq!(failed, 10, "{status}");
    }
    assert_eq!(section.request_count(), 40, "no request was tried twice");
    assert_eq!(
        mesh.stat("cluster.outbound|section-1.airport.upstream_rq_retry"),
        0
    );

    // With retries.yaml (gateway-error: 502, 503, 504) each failed attempt
    // is tried again, and the next attempt succeeds.
    let mesh = Mesh::start(&["scenarios/retries.yaml"], &["v1"]);
    for (path, name, cluster) in [
        (
            "/sections/1/status",
            "section-1-v1",
            "outbound|section-1.airport",
        ),
        (
            "/collector/status",
            "collector-v1",
            "outbound|collector.airport",
        ),
    ] {
        let upstream = mesh.upstream(name);
        upstream.inject(
            Fault::Status(502),
            Share::Fraction {
                numerator: 1,
                denominator: 2,
            },
        );
        for _ in 0..20 {
            assert_eq!(mesh.get(path).status, 200, "{path}");
        }
        assert_eq!(
            upstream.request_count(),
            40,
            "{path}: one retry per request"
        );
        assert_eq!(
            mesh.stat(&format!("cluster.{cluster}.upstream_rq_retry_success")),
            20
        );
    }
}

#[test]
fn retries_mend_aborts_injected_one_hop_further() {
    // retries.yaml at the gateway, and Istio's abort (503 for half of the
    // requests) one hop after it: section 1's "pod" is the mesh listener of
    // a stand-in service whose VirtualService aborts. The gateway retries
    // what the next proxy aborted; a request fails only when 4 attempts in
    // a row are aborted (1 in 16).
    let hop = free_port();
    let abort = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: section-1-inbound, namespace: airport}
spec:
  hosts: [section-1-inbound]
  http:
  - fault:
      abort: {httpStatus: 503, percentage: {value: 50}}
    route:
    - destination: {host: section-1-inbound}
";
    let inbound = Upstream::start("section-1-inbound").unwrap();
    let workloads = [
        Workload {
            service: "section-1".into(),
            namespace: "airport".into(),
            version: "v1".into(),
            port: hop,
        },
        Workload {
            service: "section-1-inbound".into(),
            namespace: "airport".into(),
            version: "v1".into(),
            port: inbound.port(),
        },
    ];
    let mesh = Mesh::start_with(
        &["scenarios/retries.yaml"],
        &istio_manifests::parse_documents(abort).unwrap(),
        &["v1"],
        &workloads,
        &BTreeMap::from([("section-1-inbound.airport".to_string(), hop)]),
    );
    let total = 40;
    let ok = (0..total)
        .filter(|_| mesh.get("/sections/1/status").status == 200)
        .count();
    let aborted = mesh.stat("http.svc_section_1_inbound_airport.fault.aborts_injected");
    let mended = mesh.stat("cluster.outbound|section-1.airport.upstream_rq_retry_success");
    // Failures: Binomial(40, 1/16), mean 2.5, sd ~1.5; at most 10 is 5 sd.
    assert!(ok >= total - 10, "{ok} of {total} succeeded");
    // Without retries about 20 would have failed; P(no abort at all) = 2^-40.
    assert!(
        aborted > 0 && mended > 0,
        "aborted {aborted}, mended {mended}"
    );
    // One attempt of each successful request reached the service.
    assert_eq!(inbound.request_count(), ok as u64);
}

#[test]
fn a_fault_injected_by_the_same_proxy_is_not_retried() {
    // Istio's abort is the proxy's own reply, made before its router: retries
    // in the same route never see it (the seed's "fault filter abort" in
    // `make health-retries`).
    let fault = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: section-1, namespace: airport}
spec:
  hosts: [section-1]
  http:
  - fault:
      abort: {httpStatus: 503, percentage: {value: 50}}
    retries: {attempts: 3, retryOn: 5xx}
    route:
    - destination: {host: section-1}
";
    let section = Upstream::start("section-1-v1").unwrap();
    let workloads = [Workload {
        service: "section-1".into(),
        namespace: "airport".into(),
        version: "v1".into(),
        port: section.port(),
    }];
    let translation = translate(
        &istio_manifests::parse_documents(fault).unwrap(),
        &workloads,
        0,
        &BTreeMap::new(),
        &BTreeMap::new(),
    )
    .unwrap();
    let envoy = RunningEnvoy::start(&translation);
    let url = envoy.listener_url(&translation.listeners.services["section-1.airport"]);
    let total = 200;
    let aborted = (0..total)
        .filter(|_| {
            let response = Request::get(format!("{url}/status")).send().unwrap();
            response.status == 503 && response.text() == "fault filter abort"
        })
        .count();
    // Binomial(200, 1/2): sd ~7; 65..=135 is 5 sd either side.
    assert!((65..=135).contains(&aborted), "{aborted} of {total}");
    assert_eq!(section.request_count() as usize, total - aborted);
    assert_eq!(
        envoy.stat("cluster.outbound|section-1.airport.upstream_rq_retry"),
        0
    );
}

#[test]
fn the_circuit_breaker_sheds_concurrent_requests_with_503() {
    let mesh = Mesh::start(&["scenarios/circuit-breaker.yaml"], &["v1"]);
    // A slow dashboard: each request holds the one connection for 300 ms.
    mesh.upstream("cpanel-v1")
        .inject(Fault::Delay(Duration::from_millis(300)), Share::All);
    let clients = 10;
    let barrier = Arc::new(Barrier::new(clients));
    let gateway = mesh.gateway.clone();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let url = format!("{gateway}/");
            std::thread::spawn(move || {
                barrier.wait();
                Request::get(url).send().unwrap()
            })
        })
        .collect();
    let responses: Vec<Response> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let shed: Vec<&Response> = responses.iter().filter(|r| r.status == 503).collect();
    let served = responses.iter().filter(|r| r.status == 200).count();
    assert_eq!(shed.len() + served, clients);
    // One request on the connection, one waiting for it; the others arrive
    // within the 300 ms and are refused at once.
    assert!(served >= 1, "nothing served");
    assert!(shed.len() >= 5, "only {} shed", shed.len());
    for response in &shed {
        assert_eq!(response.header("x-envoy-overloaded"), Some("true"));
    }
    assert_eq!(
        mesh.stat("cluster.outbound|cpanel.airport|v1.upstream_rq_pending_overflow"),
        shed.len() as u64
    );
    // The panel never saw the shed requests.
    assert_eq!(mesh.upstream("cpanel-v1").request_count() as usize, served);
}

#[test]
fn outlier_detection_ejects_the_pod_that_keeps_failing() {
    // Two v1 pods of the panel; one answers 500 to everything. The circuit
    // breaker's rule ejects a pod after 7 server errors in a row.
    let mesh = Mesh::start(&["scenarios/circuit-breaker.yaml"], &["v1", "v1"]);
    let bad = mesh.upstream("cpanel-v1-2");
    bad.inject(Fault::Status(500), Share::All);
    // Until the failing pod has answered 7 times (the balancer picks either
    // pod; P(fewer than 7 of 200 picks) is below 1e-40).
    let mut failures = 0;
    for _ in 0..200 {
        if mesh.get("/status").status == 500 {
            failures += 1;
        }
        if bad.request_count() >= 7 {
            break;
        }
    }
    assert_eq!(failures, 7);
    mesh.envoy.wait_for_stat(
        "cluster.outbound|cpanel.airport|v1.outlier_detection.ejections_enforced_consecutive_5xx",
        1,
        Duration::from_secs(5),
    );
    // Ejected: everything now goes to the healthy pod. (The ejection is
    // decided on Envoy's main thread and reaches the worker just after; a
    // request already under way may still have picked the failing pod.)
    let statuses: Vec<u16> = (0..40).map(|_| mesh.get("/status").status).collect();
    assert!(bad.request_count() <= 8, "{statuses:?}");
    assert!(statuses[1..].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        mesh.stat("cluster.outbound|cpanel.airport|v1.outlier_detection.ejections_enforced_total"),
        1
    );
}
