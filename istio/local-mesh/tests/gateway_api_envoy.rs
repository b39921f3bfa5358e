//! The Gateway API forms (istio/gateway-api/) translated with Istio's
//! meaning and run by a real Envoy, with echo servers for the services
//! (each named `<service>-<version>`, returned in `x-upstream`). Each test
//! applies the Gateway, the per-version Services and the default routes,
//! then a scenario file or a route written here, and sends real requests to
//! the gateway listener. The facts checked are istiod's
//! (ISTIO-SUPPORT.md, "Gateway API"); shares are checked against binomial
//! bounds 5 standard deviations wide, the rest exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use envoy_rig::client::{Request, Response};
use envoy_rig::{Fault, Share, Upstream};
use local_mesh::{Workload, translate};
use serde_json::Value;

mod mesh_envoy;
use mesh_envoy::RunningEnvoy;

const APP_SERVICES: &[&str] = &["collector", "section-1", "alerts", "camera-1"];

/// The Gateway API app: the Gateway, the Services per version, the default
/// HTTPRoutes and the app's DestinationRules (no Istio Gateway).
const APP: &[&str] = &[
    "gateway-api/gateway.yaml",
    "gateway-api/services.yaml",
    "gateway-api/routes.yaml",
    "app/destination-rules.yaml",
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

struct Mesh {
    envoy: RunningEnvoy,
    upstreams: BTreeMap<String, Upstream>,
    gateway: String,
}

impl Mesh {
    /// The app, then `files`, then `yaml`, with one v1 echo server per app
    /// service and the control panel's pods as given (`["v1", "v2", "v2"]`:
    /// cpanel-v1, cpanel-v2, cpanel-v2-2).
    fn start(files: &[&str], yaml: &str, cpanel: &[&str]) -> Self {
        Self::start_with(files, yaml, cpanel, &[])
    }

    /// As [`start`](Self::start), plus a v1 pod of each (service,
    /// namespace) in `others`, named `<service>-<namespace>-v1`.
    fn start_with(files: &[&str], yaml: &str, cpanel: &[&str], others: &[(&str, &str)]) -> Self {
        let mut upstreams = BTreeMap::new();
        let mut workloads = Vec::new();
        for (service, namespace) in others {
            let name = format!("{service}-{namespace}-v1");
            let upstream = Upstream::start(&name).unwrap();
            workloads.push(Workload {
                service: (*service).into(),
                namespace: (*namespace).into(),
                version: "v1".into(),
                port: upstream.port(),
            });
            upstreams.insert(name, upstream);
        }
        let pods = APP_SERVICES
            .iter()
            .map(|s| (*s, "v1"))
            .chain(cpanel.iter().map(|v| ("cpanel", *v)));
        for (service, version) in pods {
            let mut name = format!("{service}-{version}");
            let mut n = 2;
            while upstreams.contains_key(&name) {
                name = format!("{service}-{version}-{n}");
                n += 1;
            }
            let upstream = Upstream::start(&name).unwrap();
            workloads.push(Workload {
                service: service.into(),
                namespace: "airport".into(),
                version: version.into(),
                port: upstream.port(),
            });
            upstreams.insert(name, upstream);
        }
        let mut all: Vec<&str> = APP.to_vec();
        all.extend(files);
        let mut documents = manifests(&all);
        documents.extend(istio_manifests::parse_documents(yaml).unwrap());
        let translation = translate(
            &documents,
            &workloads,
            0,
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .unwrap();
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

    fn send(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::get(format!("{}{path}", self.gateway));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().unwrap()
    }

    fn get(&self, path: &str) -> Response {
        self.send(path, &[])
    }

    /// Which upstream answered each of `requests` GETs of `path`.
    fn answered_by(&self, path: &str, headers: &[(&str, &str)], requests: usize) -> Vec<String> {
        (0..requests)
            .map(|_| {
                let response = self.send(path, headers);
                assert_eq!(response.status, 200, "{}", self.envoy.log_tail(20));
                response.header("x-upstream").unwrap().to_string()
            })
            .collect()
    }
}

fn count(answers: &[String], name: &str) -> usize {
    answers.iter().filter(|a| *a == name).count()
}

/// An HTTPRoute `name` on the Gateway airport-ingress with `rules` (YAML
/// list items, indented for `spec.rules`).
fn route(name: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: airport}}
spec:
  parentRefs:
  - name: airport-ingress
  rules:
{rules}"
    )
}

#[test]
fn the_default_routes_reach_every_service_with_prefixes_stripped_segment_wise() {
    let mesh = Mesh::start(&[], "", &["v1", "v2"]);
    for (path, upstream, forwarded) in [
        ("/", "cpanel-v1", "/"),
        ("/status", "cpanel-v1", "/status"),
        ("/cameras/1/state", "cpanel-v1", "/cameras/1/state"),
        ("/collector/status", "collector-v1", "/status"),
        ("/alerts/status", "alerts-v1", "/status"),
        ("/sections/1/status", "section-1-v1", "/status"),
        // A PathPrefix matches whole segments: the prefix alone is taken
        // and becomes `/`, a longer segment is not.
        ("/collector", "collector-v1", "/"),
        ("/collectors/x", "cpanel-v1", "/collectors/x"),
        ("/sections/10/status", "cpanel-v1", "/sections/10/status"),
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
fn cpanel_50_50_splits_over_the_version_services() {
    let mesh = Mesh::start(
        &["gateway-api/scenarios/cpanel-50-50.yaml"],
        "",
        &["v1", "v2"],
    );
    let answers = mesh.answered_by("/", &[], 400);
    // Binomial(400, 1/2): sd 10; 150..=250 is 5 sd either side.
    let v1 = count(&answers, "cpanel-v1");
    assert_eq!(v1 + count(&answers, "cpanel-v2"), 400);
    assert!((150..=250).contains(&v1), "v1 answered {v1} of 400");
    // The camera route keeps v1.
    assert_eq!(
        count(&mesh.answered_by("/cameras/1/state", &[], 20), "cpanel-v1"),
        20
    );
}

#[test]
fn cpanel_v2_sends_every_dashboard_request_to_v2() {
    let mesh = Mesh::start(&["gateway-api/scenarios/cpanel-v2.yaml"], "", &["v1", "v2"]);
    assert_eq!(count(&mesh.answered_by("/", &[], 50), "cpanel-v2"), 50);
}

#[test]
fn dark_launch_and_the_user_agent_canary_route_on_headers() {
    let mesh = Mesh::start(
        &["gateway-api/scenarios/dark-launch.yaml"],
        "",
        &["v1", "v2"],
    );
    assert_eq!(
        mesh.answered_by("/", &[("end-user", "tester")], 5),
        ["cpanel-v2"; 5]
    );
    assert_eq!(
        mesh.answered_by("/", &[("end-user", "testers")], 5),
        ["cpanel-v1"; 5]
    );
    assert_eq!(mesh.answered_by("/", &[], 5), ["cpanel-v1"; 5]);

    let mesh = Mesh::start(
        &["gateway-api/scenarios/canary-user-agent.yaml"],
        "",
        &["v1", "v2"],
    );
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:62.0) Gecko/20100101 Firefox/62.0";
    assert_eq!(
        mesh.answered_by("/", &[("user-agent", firefox)], 5),
        ["cpanel-v2"; 5]
    );
    assert_eq!(
        mesh.answered_by("/", &[("user-agent", "curl/8.5.0")], 5),
        ["cpanel-v1"; 5]
    );
}

#[test]
fn mirroring_copies_every_dashboard_request_to_v2() {
    let mesh = Mesh::start(&["gateway-api/scenarios/mirroring.yaml"], "", &["v1", "v2"]);
    assert_eq!(mesh.answered_by("/", &[], 20), ["cpanel-v1"; 20]);
    // Mirrored copies are sent without waiting: poll for them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mesh.upstream("cpanel-v2").request_count() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mesh.upstream("cpanel-v2").request_count(), 20);
    // Istio keeps the copy's Host (no `-shadow` suffix).
    let copy = &mesh.upstream("cpanel-v2").received()[0];
    assert!(
        !copy.header("host").unwrap().ends_with("-shadow"),
        "{:?}",
        copy.header("host")
    );
}

#[test]
fn blue_green_routes_on_host_names_and_switches() {
    let mesh = Mesh::start(
        &["gateway-api/scenarios/blue-green.yaml"],
        "",
        &["v1", "v2"],
    );
    assert_eq!(
        mesh.answered_by("/", &[("host", "airport.local")], 3),
        ["cpanel-v1"; 3]
    );
    assert_eq!(
        mesh.answered_by("/", &[("host", "test.airport.local")], 3),
        ["cpanel-v2"; 3]
    );
    let mesh = Mesh::start(
        &[
            "gateway-api/scenarios/blue-green.yaml",
            "gateway-api/scenarios/blue-green-switch.yaml",
        ],
        "",
        &["v1", "v2"],
    );
    assert_eq!(
        mesh.answered_by("/", &[("host", "airport.local:31221")], 3),
        ["cpanel-v2"; 3]
    );
    assert_eq!(
        mesh.answered_by("/", &[("host", "test.airport.local")], 3),
        ["cpanel-v1"; 3]
    );
    // Any other name: the default routes.
    assert_eq!(
        mesh.answered_by("/", &[("host", "other.local")], 3),
        ["cpanel-v1"; 3]
    );
}

#[test]
fn load_balancing_takes_every_cpanel_pod_in_turn() {
    let mesh = Mesh::start(
        &["gateway-api/scenarios/load-balancing.yaml"],
        "",
        &["v1", "v2", "v2", "v2"],
    );
    let answers = mesh.answered_by("/", &[], 8);
    for window in answers.chunks(4) {
        assert_eq!(count(window, "cpanel-v1"), 1, "{answers:?}");
    }
}

#[test]
fn the_camera_route_times_out_after_half_a_second() {
    let mesh = Mesh::start(&["gateway-api/scenarios/timeout.yaml"], "", &["v1", "v2"]);
    mesh.upstream("cpanel-v1")
        .inject(Fault::Delay(Duration::from_secs(3)), Share::All);
    let started = Instant::now();
    let response = mesh.get("/cameras/1/state");
    let took = started.elapsed();
    assert_eq!(response.status, 504);
    assert_eq!(response.text(), "upstream request timeout");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The dashboard route has no timeout: it waits for the slow upstream.
    mesh.upstream("cpanel-v1")
        .inject(Fault::Delay(Duration::from_millis(800)), Share::All);
    assert_eq!(mesh.get("/").status, 200);
}

#[test]
fn the_sticky_canary_route_sends_the_plugins_header_to_v2() {
    let mesh = Mesh::start(
        &["gateway-api/scenarios/cpanel-canary-sticky.yaml"],
        "",
        &["v1", "v2"],
    );
    assert_eq!(
        mesh.answered_by("/", &[("x-canary-subset", "v2")], 3),
        ["cpanel-v2"; 3]
    );
    assert_eq!(
        mesh.answered_by("/", &[("x-canary-subset", "v1")], 3),
        ["cpanel-v1"; 3]
    );
}

#[test]
fn header_modifiers_change_the_request_and_the_response() {
    let rules = "  - matches:
    - path: {type: Exact, value: /headers}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: one}]
        add: [{name: x-added, value: two}]
        remove: [x-drop]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: x-answer, value: three}]
    backendRefs:
    - name: cpanel-v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set: [{name: x-backend, value: v1}]
";
    let mesh = Mesh::start(&[], &route("headers", rules), &["v1"]);
    let response = mesh.send("/headers", &[("x-drop", "gone"), ("x-set", "zero")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-answer"), Some("three"));
    let seen = mesh.upstream("cpanel-v1").received().pop().unwrap();
    assert_eq!(seen.header("x-set"), Some("one"));
    assert_eq!(seen.header("x-added"), Some("two"));
    assert_eq!(seen.header("x-backend"), Some("v1"));
    assert_eq!(seen.header("x-drop"), None);
}

#[test]
fn exact_regex_query_and_method_matches_sort_as_istio_sorts_them() {
    // Written in the order Istio must not keep: the regex and the plain
    // prefix first. Exact sorts first, then the longer prefix; the method
    // and query matches win over the same path without them.
    let rules = "  - matches:
    - path: {type: RegularExpression, value: '/re/[0-9]+'}
    backendRefs: [{name: collector, port: 8080}]
  - matches:
    - path: {type: PathPrefix, value: /m}
    backendRefs: [{name: alerts, port: 8080}]
  - matches:
    - path: {type: PathPrefix, value: /m}
      method: POST
    backendRefs: [{name: camera-1, port: 8080}]
  - matches:
    - path: {type: PathPrefix, value: /m}
      queryParams: [{name: v, value: '2'}]
    backendRefs: [{name: cpanel-v2, port: 8080}]
  - matches:
    - path: {type: Exact, value: /m/exact}
    backendRefs: [{name: section-1, port: 8080}]
";
    let mesh = Mesh::start(&[], &route("matches", rules), &["v1", "v2"]);
    let by = |path: &str| {
        mesh.get(path)
            .header("x-upstream")
            .map(str::to_string)
            .unwrap_or_default()
    };
    assert_eq!(by("/m/exact"), "section-1-v1");
    assert_eq!(by("/m/other"), "alerts-v1");
    assert_eq!(by("/m/other?v=2"), "cpanel-v2");
    let post = Request::new("POST", format!("{}/m/x", mesh.gateway))
        .send()
        .unwrap();
    assert_eq!(post.header("x-upstream"), Some("camera-1-v1"));
    // A regex path sorts after every prefix, and the default routes' `/`
    // (a catch-all) comes before it on the merged host: the regex rule
    // never matches, as in Istio.
    assert_eq!(by("/re/12"), "cpanel-v1");
}

#[test]
fn redirects_and_full_path_rewrites() {
    let rules = "  - matches:
    - path: {type: PathPrefix, value: /old}
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: new.airport.local
        statusCode: 302
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
  - matches:
    - path: {type: PathPrefix, value: /full}
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: rewritten.local
        path: {type: ReplaceFullPath, replaceFullPath: /status}
    backendRefs: [{name: alerts, port: 8080}]
";
    let mesh = Mesh::start(&[], &route("moves", rules), &["v1"]);
    let response = mesh.get("/old/page?x=1");
    assert_eq!(response.status, 302);
    assert_eq!(
        response.header("location"),
        Some("http://new.airport.local/new/page?x=1")
    );
    let response = mesh.get("/full/any/thing");
    assert_eq!(response.header("x-upstream"), Some("alerts-v1"));
    let echo = response.json().unwrap();
    assert_eq!(echo["path"], "/status");
    let seen = mesh.upstream("alerts-v1").received().pop().unwrap();
    assert_eq!(seen.header("host"), Some("rewritten.local"));
}

#[test]
fn no_backend_is_404_and_backends_all_at_weight_zero_are_500() {
    let rules = "  - matches:
    - path: {type: Exact, value: /nothing}
  - matches:
    - path: {type: Exact, value: /zero}
    backendRefs:
    - {name: cpanel-v1, port: 8080, weight: 0}
";
    let mesh = Mesh::start(&[], &route("empty", rules), &["v1"]);
    assert_eq!(mesh.get("/nothing").status, 404);
    assert_eq!(mesh.get("/zero").status, 500);
    assert_eq!(mesh.upstream("cpanel-v1").request_count(), 0);
}

#[test]
fn retry_codes_and_the_backend_request_timeout_mend_a_flaky_upstream() {
    // `retry` is in the Gateway API's experimental channel; Istio 1.30
    // reads it (conversion.go), so the local mesh does too.
    let rules = "  - matches:
    - path: {type: PathPrefix, value: /sections/1/}
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /}
    retry:
      attempts: 3
      codes: [502]
    timeouts:
      backendRequest: 2s
    backendRefs: [{name: section-1, port: 8080}]
";
    let mesh = Mesh::start(&[], &route("airport", rules), &["v1"]);
    mesh.upstream("section-1-v1")
        .inject(Fault::Status(502), Share::EveryNth(2));
    for _ in 0..10 {
        assert_eq!(mesh.get("/sections/1/status").status, 200);
    }
    // Every second attempt fails: the first request passes at once, each
    // later one fails once and passes on its retry.
    assert_eq!(mesh.upstream("section-1-v1").request_count(), 19);
    assert_eq!(
        mesh.envoy
            .stat("cluster.outbound|section-1.airport.upstream_rq_retry_success"),
        9
    );

    // Without the code, a 502 is answered as it is (Istio's retryOn for
    // `retry` has no gateway-error).
    let rules = rules.replace("codes: [502]", "codes: [503]");
    let mesh = Mesh::start(&[], &route("airport", &rules), &["v1"]);
    mesh.upstream("section-1-v1")
        .inject(Fault::Status(502), Share::All);
    assert_eq!(mesh.get("/sections/1/status").status, 502);
    assert_eq!(mesh.upstream("section-1-v1").request_count(), 1);
}

#[test]
fn a_mirror_fraction_copies_that_share() {
    let rules = "  - matches:
    - path: {type: Exact, value: /half}
    filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {name: cpanel-v2, port: 8080}
        fraction: {numerator: 1, denominator: 2}
    backendRefs: [{name: cpanel-v1, port: 8080}]
";
    let mesh = Mesh::start(&[], &route("half", rules), &["v1", "v2"]);
    assert_eq!(mesh.answered_by("/half", &[], 400), ["cpanel-v1"; 400]);
    // The copies go out without waiting: give them a moment to arrive, then
    // count. Binomial(400, 1/2): 150..=250 is 5 sd either side.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = u64::MAX;
    while Instant::now() < deadline {
        let now = mesh.upstream("cpanel-v2").request_count();
        if now == last && now >= 150 {
            break;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(200));
    }
    let copies = mesh.upstream("cpanel-v2").request_count();
    assert!((150..=250).contains(&copies), "{copies} copies of 400");
}

#[test]
fn listener_hostnames_section_names_and_ports_pick_where_a_route_attaches() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: airport-ingress, namespace: airport}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: test, port: 80, protocol: HTTP, hostname: '*.test.local'}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tests, namespace: airport}
spec:
  parentRefs:
  - {name: airport-ingress, sectionName: test, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /only-test}
    backendRefs: [{name: cpanel-v2, port: 8080}]
";
    let mesh = Mesh::start(&[], yaml, &["v1", "v2"]);
    // Attached to the `test` listener only: its `*.test.local` names get
    // the route, any other name falls through to the default routes.
    assert_eq!(
        mesh.answered_by("/only-test", &[("host", "a.test.local")], 3),
        ["cpanel-v2"; 3]
    );
    assert_eq!(
        mesh.answered_by("/only-test", &[("host", "airport.local")], 3),
        ["cpanel-v1"; 3]
    );
    // The default routes attach to both listeners (no sectionName).
    assert_eq!(
        mesh.answered_by("/collector/status", &[("host", "a.test.local")], 1),
        ["collector-v1"]
    );
}

#[test]
fn random_spreads_the_dashboard_over_every_pod() {
    let mesh = Mesh::start(
        &["gateway-api/scenarios/random.yaml"],
        "",
        &["v1", "v2", "v2", "v2"],
    );
    let answers = mesh.answered_by("/", &[], 400);
    // Binomial(400, 1/4): sd 8.7; 57..=143 is 5 sd either side.
    let v1 = count(&answers, "cpanel-v1");
    assert!((57..=143).contains(&v1), "v1 answered {v1} of 400");
}

#[test]
fn a_listener_open_to_all_namespaces_takes_routes_from_another() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: airport-ingress, namespace: airport}
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes: {namespaces: {from: All}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: team, namespace: team}
spec:
  parentRefs:
  - {name: airport-ingress, namespace: airport}
  hostnames: [team.local]
  rules:
  - backendRefs: [{name: board, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: board, namespace: team}
spec:
  selector: {app: board}
  ports: [{name: http, port: 8080}]
";
    let mesh = Mesh::start_with(&[], yaml, &["v1"], &[("board", "team")]);
    assert_eq!(
        mesh.answered_by("/", &[("host", "team.local")], 3),
        ["board-team-v1"; 3]
    );
    assert_eq!(
        mesh.answered_by("/", &[("host", "airport.local")], 3),
        ["cpanel-v1"; 3]
    );
}
