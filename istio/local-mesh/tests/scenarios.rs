//! The seed scenarios, translated from their manifests and run by a real
//! Envoy in front of echo workloads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::path::Path;

use envoy_rig::Upstream;
use envoy_rig::client::Request;
use local_mesh::{Workload, translate};
use serde_json::Value;

mod mesh_envoy;
use mesh_envoy::RunningEnvoy;

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

fn workload(upstream: &Upstream, service: &str, version: &str) -> Workload {
    Workload {
        service: service.into(),
        namespace: "airport".into(),
        version: version.into(),
        port: upstream.port(),
    }
}

/// Envoy with `files` translated for `workloads`, and each service's
/// listener URL by service name (all are in namespace `airport`).
fn mesh(files: &[&str], workloads: &[Workload]) -> (RunningEnvoy, BTreeMap<String, String>) {
    let translation = translate(
        &manifests(files),
        workloads,
        0,
        &BTreeMap::new(),
        &BTreeMap::new(),
    )
    .unwrap();
    let envoy = RunningEnvoy::start(&translation);
    let urls = translation
        .listeners
        .services
        .iter()
        .map(|(key, listener)| {
            let service = key.strip_suffix(".airport").unwrap_or(key);
            (service.to_string(), envoy.listener_url(listener))
        })
        .collect();
    (envoy, urls)
}

#[test]
fn fault_injection_500_aborts_about_half() {
    let v1 = Upstream::start("image-analysis-v1").unwrap();
    let (envoy, urls) = mesh(
        &[
            "scenarios/fault-injection-500.yaml",
            "app/destination-rules.yaml",
        ],
        &[workload(&v1, "image-analysis", "v1")],
    );
    let url = &urls["image-analysis"];
    let total = 400;
    let aborted = (0..total)
        .filter(|_| {
            Request::get(format!("{url}/analyze"))
                .send()
                .unwrap()
                .status
                == 500
        })
        .count();
    // 50 % of 400: the binomial standard deviation is 10; allow 4 of them.
    assert!(
        (160..=240).contains(&aborted),
        "{aborted} of {total} aborted\n{}",
        envoy.log_tail(20)
    );
    assert_eq!(v1.request_count() as usize, total - aborted);
    let injected = envoy.stat("http.svc_image_analysis_airport.fault.aborts_injected");
    assert_eq!(injected, aborted as u64);
}

#[test]
fn fault_injection_delay_holds_every_request() {
    let v1 = Upstream::start("image-analysis-v1").unwrap();
    let (envoy, urls) = mesh(
        &[
            "scenarios/fault-injection-delay10.yaml",
            "app/destination-rules.yaml",
        ],
        &[workload(&v1, "image-analysis", "v1")],
    );
    // The scenario's 10 s delay, observed through Envoy's own counter rather
    // than a clock: the request is held (not answered) while delayed.
    let url = urls["image-analysis"].clone();
    let request = std::thread::spawn(move || {
        Request::get(format!("{url}/analyze"))
            .send()
            .unwrap()
            .status
    });
    envoy.wait_for_stat(
        "http.svc_image_analysis_airport.fault.delays_injected",
        1,
        std::time::Duration::from_secs(5),
    );
    assert_eq!(
        envoy.stat("http.svc_image_analysis_airport.fault.active_faults"),
        1
    );
    assert_eq!(
        v1.request_count(),
        0,
        "the upstream is not reached during the delay"
    );
    assert_eq!(request.join().unwrap(), 200);
    assert_eq!(v1.request_count(), 1);
}

#[test]
fn a_service_with_no_virtual_service_reaches_every_version() {
    let v1 = Upstream::start("alerts-v1").unwrap();
    let v2 = Upstream::start("alerts-v2").unwrap();
    let (_envoy, urls) = mesh(
        &[],
        &[workload(&v1, "alerts", "v1"), workload(&v2, "alerts", "v2")],
    );
    let total = 200;
    for _ in 0..total {
        Request::get(format!("{}/alerts", urls["alerts"]))
            .send()
            .unwrap();
    }
    // Istio's default load balancer (least request) over both versions; one
    // request at a time, it picks either. Binomial(200, 1/2): sd ~7, so
    // 60..=140 is more than 5 sd either side.
    let (a, b) = (v1.request_count(), v2.request_count());
    assert_eq!(a + b, total);
    assert!((60..=140).contains(&a), "v1 {a}, v2 {b}");
}

#[test]
fn every_manifest_in_istio_translates_to_a_bootstrap_envoy_accepts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["app", "scenarios"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(format!(
                    "{dir}/{}",
                    path.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(!files.is_empty());
    files.sort();
    // Workloads (v1 and v2) for every host the manifests name.
    let documents = manifests(&files.iter().map(String::as_str).collect::<Vec<_>>());
    let mut workloads = Vec::new();
    let mut port = 20000;
    for doc in &documents {
        let host = doc["spec"]["host"]
            .as_str()
            .or_else(|| doc["spec"]["hosts"][0].as_str());
        if let Some(host) = host.filter(|h| *h != "*") {
            for version in ["v1", "v2"] {
                workloads.push(Workload {
                    service: host.split('.').next().unwrap().to_string(),
                    namespace: "airport".to_string(),
                    version: version.to_string(),
                    port,
                });
                port += 1;
            }
        }
    }
    // Each scenario applied on top of the whole app, as `kubectl apply` of
    // that one file after `make deploy-istio-default` leaves the cluster.
    let app: Vec<&str> = files
        .iter()
        .filter(|f| f.starts_with("app/"))
        .map(String::as_str)
        .collect();
    for file in files.iter().filter(|f| f.starts_with("scenarios/")) {
        let mut with_app = app.clone();
        with_app.push(file.as_str());
        let docs = manifests(&with_app);
        let translation = translate(&docs, &workloads, 0, &BTreeMap::new(), &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(translation.warnings, Vec::<String>::new(), "{file}");
        // Envoy takes the listeners and clusters, or says why not.
        RunningEnvoy::try_start(&translation).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn a_scenario_replaces_the_apps_virtual_service_of_the_same_name() {
    // cpanel-canary-sticky redefines VirtualService `cpanel`: as after
    // `kubectl apply`, only its routes are in force, so the route header
    // the canary plugin sets reaches cpanel v2.
    let hosts = [
        "camera-1",
        "camera-2",
        "collector",
        "alerts",
        "section-1",
        "image-analysis",
    ];
    let upstreams: Vec<Upstream> = hosts.iter().map(|h| Upstream::start(*h).unwrap()).collect();
    let (v1, v2) = (
        Upstream::start("cpanel-v1").unwrap(),
        Upstream::start("cpanel-v2").unwrap(),
    );
    let mut workloads: Vec<Workload> = hosts
        .iter()
        .zip(&upstreams)
        .map(|(h, u)| workload(u, h, "v1"))
        .collect();
    workloads.push(workload(&v1, "cpanel", "v1"));
    workloads.push(workload(&v2, "cpanel", "v2"));
    let files = [
        "app/gateway.yaml",
        "app/virtual-services.yaml",
        "app/destination-rules.yaml",
        "scenarios/cpanel-canary-sticky.yaml",
    ];
    let translation = translate(
        &manifests(&files),
        &workloads,
        0,
        &BTreeMap::new(),
        &BTreeMap::new(),
    )
    .unwrap();
    let envoy = RunningEnvoy::start(&translation);
    let url = envoy.listener_url(translation.listeners.gateway.as_deref().unwrap());
    let canary = Request::get(format!("{url}/"))
        .header("x-canary-subset", "v2")
        .send()
        .unwrap();
    let stable = Request::get(format!("{url}/")).send().unwrap();
    assert_eq!(canary.header("x-upstream"), Some("cpanel-v2"));
    assert_eq!(stable.header("x-upstream"), Some("cpanel-v1"));
}
