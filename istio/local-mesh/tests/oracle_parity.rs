//! The local mesh's translation against istiod's own (issue 17, point 3).
//!
//! istio/oracle holds goldens of what istiod 1.30 generates for the
//! project's manifests (`make oracle`; `make oracle-check` fails when a
//! manifest changed and they were not regenerated, so this test takes them
//! as current). For every golden (the default app, each scenario on top of
//! it, each WasmPlugin on top of it) this test translates the same
//! manifests with the local mesh and compares, field by field on what
//! changes behaviour ([`oracle_views`]):
//!
//! - the ingress gateway's virtual hosts (keyed by their domains) and
//!   routes: matches (path, prefix, regex, headers, query parameters, case),
//!   destinations and weights per cluster, rewrites, timeouts,
//!   `max_grpc_timeout`, retry policies (conditions, attempts, status codes,
//!   per-try timeout, host predicates and attempts, back-off), faults (delay,
//!   abort, percentages), mirrors (cluster, fraction, host suffix, trace
//!   sampling), hash policies, header operations, and the virtual hosts'
//!   attempt-count options;
//! - the control panel's sidecar routes (each Service's virtual host), the
//!   same fields, against the local mesh's listener for that Service;
//! - the clusters of the app's Services and subsets: load balancer, ring
//!   hash/maglev sizes, connect timeout, circuit-breaker thresholds,
//!   outlier detection, panic threshold, upstream HTTP options;
//! - the gateway's HTTP connection manager options (path normalization,
//!   slashes, escaped slashes, upgrades, remote address, XFF, timeouts,
//!   server name, 100-continue, request ids, header limits);
//! - the order of the HTTP filters on the gateway's chain and on a sidecar's
//!   outbound chain, WasmPlugins included.
//!
//! What differs on purpose is listed in [`INTENDED`], each with its reason;
//! what differs and should not is listed in [`KNOWN_DIVERGENCES`], exactly:
//! the test fails on a difference in neither list, and on an entry of either
//! list that no golden exercises any more (a fixed divergence must leave the
//! list).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod oracle_views;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use envoy_rig::HttpFilter;
use local_mesh::{GATEWAY, Translation, Workload, translate};
use oracle_views::{
    cluster_view, connection_manager_view, field, flatten, local_cluster_name, virtual_host_view,
};
use serde_json::{Value, json};

/// Differences that are the local mesh's design, not errors. Each id is
/// checked where the difference is set aside, and every id must be used by
/// at least one golden (an entry nothing needs any more fails the test).
const INTENDED: &[(&str, &str)] = &[
    (
        "cluster-names",
        "Istio names a cluster outbound|<port>|<subset>|<fqdn>; the local mesh \
         outbound|<name>.<namespace>|<subset>, one port per Service. Clusters, \
         route destinations, weights and mirrors are compared under the local \
         mesh's name (oracle_views::local_cluster_name).",
    ),
    (
        "cluster-discovery",
        "Istio's clusters are EDS with an ADS config source, alt_stat_name, the \
         istio.metadata_exchange network filter and (left out of the goldens) \
         mTLS transport sockets; the local mesh's are STATIC on loopback \
         without mTLS. track_remaining (on in the local mesh) only adds stats. \
         None of these fields is compared.",
    ),
    (
        "istio-only-http-filters",
        "istio.metadata_exchange and istio.alpn (peer metadata and mTLS ALPN), \
         envoy.filters.http.grpc_stats (telemetry) and envoy.filters.http.cors \
         (no manifest has a corsPolicy: without one the filter passes every \
         request) are left out of the filter order compared.",
    ),
    (
        "route-telemetry",
        "Routes' metadata (Istio's config provenance) and decorator (tracing \
         operation name) only feed telemetry; not compared.",
    ),
    (
        "route-config-options",
        "validate_clusters (istiod's RDS check against CDS; the local mesh's \
         routes and clusters come in one static bootstrap) and \
         max_direct_response_body_size_bytes (no manifest has a \
         directResponse) are not compared.",
    ),
    (
        "gateway-port-in-host",
        "Istio's gateway route configuration sets ignore_port_in_host_matching; \
         the local mesh lists host and host:* as domains instead. Virtual hosts \
         are keyed by their domains without the :* forms.",
    ),
    (
        "sidecar-domains",
        "A sidecar's virtual host for a Service matches its Host names (name, \
         name.namespace, FQDN, with :port); the local mesh has one listener per \
         Service whose virtual host matches *. The golden's virtual host \
         <fqdn>:<port> is compared with the routes of the local mesh's \
         listener svc-<name>.<namespace>.",
    ),
    (
        "allow-any",
        "A sidecar's allow_any virtual host (hosts outside the mesh, to the \
         PassthroughCluster) has no counterpart: the local mesh routes to the \
         mesh's Services only.",
    ),
    (
        "hcm-telemetry-and-discovery",
        "The gateway's connection manager: stat_prefix, tracing, \
         request_id_extension (trace sampling), rds (the local mesh inlines \
         route_config) and forward/set_current_client_cert_details (the XFCC \
         header of mTLS peers) are not compared.",
    ),
    (
        "sidecar-inbound-chains",
        "A sidecar's inbound (virtualInbound) filter chains: the local mesh's \
         inbound listeners are built by its daemon (src/daemon.rs), not by \
         translate(); not compared here.",
    ),
    (
        "plugin-placement",
        "Which listeners a WasmPlugin runs on is decided by the daemon \
         (src/plugins.rs, by selector, mode and the pods' callees); this test \
         gives the translator the plugin on the matching listener and compares \
         where it lands in the chain.",
    ),
];

/// A difference found and not yet fixed: `field` of `place` (as printed by
/// the test) differs in every golden whose name matches `goldens`
/// (`*` for all), with these values. Exact: each entry must match at least
/// one difference, every difference must match an entry.
struct KnownDivergence {
    goldens: &'static str,
    place: &'static str,
    field: &'static str,
    istiod: &'static str,
    ours: &'static str,
}

const KNOWN_DIVERGENCES: &[KnownDivergence] = &[
    // None today. `server_name: istio-envoy` and `proxy_100_continue: true`
    // were the last two (found by this test, fixed in
    // src/translate/proxy.rs, pinned in Envoy by istio_defaults.rs).
];

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Difference {
    golden: String,
    place: String,
    field: String,
    istiod: String,
    ours: String,
}

fn istio_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every golden: `app`, `scenarios/<name>`, `plugins/<name>`.
fn goldens() -> Vec<(String, Value)> {
    let testdata = istio_dir().join("oracle/testdata");
    let mut out = vec![("app".to_string(), testdata.join("app.json"))];
    for folder in ["scenarios", "plugins"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(testdata.join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for file in files {
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((format!("{folder}/{stem}"), file));
        }
    }
    out.into_iter()
        .map(|(name, file)| {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

/// The golden's input manifests (relative to istio/) in the order a
/// cluster gets them: workloads, the app, then the scenario or plugin.
fn inputs(golden: &Value) -> Vec<String> {
    let mut files: Vec<String> = golden["inputs"]
        .as_object()
        .expect("a golden lists its inputs")
        .keys()
        .cloned()
        .collect();
    let rank = |f: &String| match f.split('/').next() {
        Some("workloads") => 0,
        Some("app") => 1,
        _ => 2,
    };
    files.sort_by_key(|f| (rank(f), f.clone()));
    files
}

fn documents(files: &[String]) -> Vec<Value> {
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(istio_dir().join(f)).unwrap();
            istio_manifests::parse_documents(&text).unwrap()
        })
        .collect()
}

/// One workload per Deployment (its pods' `app` and `version` labels), on
/// made-up ports: nothing is started.
fn workloads(documents: &[Value]) -> Vec<Workload> {
    documents
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .enumerate()
        .map(|(i, d)| {
            let labels = &d["spec"]["template"]["metadata"]["labels"];
            Workload {
                service: labels["app"].as_str().unwrap().to_string(),
                namespace: d["metadata"]["namespace"].as_str().unwrap().to_string(),
                version: labels["version"].as_str().unwrap().to_string(),
                port: 20_000 + u16::try_from(i).unwrap(),
            }
        })
        .collect()
}

/// A WasmPlugin as the goldens name its filter
/// (`extensions.istio.io/trafficextension/<ns>.<name>~istio-translated-wasmplugin`),
/// and as this test names the stand-in filter it gives the translator.
fn plugin_label(filter_name: &str) -> Option<String> {
    let rest = filter_name.strip_prefix("extensions.istio.io/trafficextension/")?;
    let rest = rest.strip_suffix("~istio-translated-wasmplugin")?;
    Some(format!("wasm plugin {rest}"))
}

const ISTIO_ONLY_FILTERS: &[&str] = &[
    "istio.metadata_exchange",
    "istio.alpn",
    "envoy.filters.http.grpc_stats",
    "envoy.filters.http.cors",
];

struct Run {
    golden: String,
    differences: Vec<Difference>,
    used: BTreeSet<&'static str>,
}

impl Run {
    fn intended(&mut self, id: &'static str) {
        assert!(
            INTENDED.iter().any(|(known, _)| *known == id),
            "{id} is not in INTENDED"
        );
        self.used.insert(id);
    }

    fn diff(
        &mut self,
        place: &str,
        istiod: &BTreeMap<String, String>,
        ours: &BTreeMap<String, String>,
    ) {
        let keys: BTreeSet<&String> = istiod.keys().chain(ours.keys()).collect();
        for key in keys {
            let (a, b) = (istiod.get(key), ours.get(key));
            if a != b {
                self.differences.push(Difference {
                    golden: self.golden.clone(),
                    place: place.to_string(),
                    field: key.clone(),
                    istiod: a.cloned().unwrap_or_else(|| "(absent)".into()),
                    ours: b.cloned().unwrap_or_else(|| "(absent)".into()),
                });
            }
        }
    }

    fn missing(&mut self, place: &str, what: &str, in_istiod: bool) {
        self.differences.push(Difference {
            golden: self.golden.clone(),
            place: place.to_string(),
            field: what.to_string(),
            istiod: if in_istiod { "present" } else { "(absent)" }.into(),
            ours: if in_istiod { "(absent)" } else { "present" }.into(),
        });
    }
}

fn array(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.and_then(Value::as_array).into_iter().flatten()
}

/// The local mesh's listener `name`, its connection manager's config.
fn our_hcm<'a>(translation: &'a Translation, name: &str) -> &'a Value {
    let listener = translation.bootstrap["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no listener {name}"));
    &listener["filter_chains"][0]["filters"][0]["typed_config"]
}

fn our_filter_names(translation: &Translation, listener: &str) -> Vec<String> {
    array(our_hcm(translation, listener).get("http_filters"))
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

fn translate_with(
    documents: &[Value],
    workloads: &[Workload],
    plugins: &BTreeMap<String, Vec<HttpFilter>>,
) -> Translation {
    translate(documents, workloads, 0, &BTreeMap::new(), plugins)
        .unwrap_or_else(|e| panic!("the local mesh refuses manifests istiod takes: {e}"))
}

fn compare_routes(run: &mut Run, golden: &Value, ours: &Translation) {
    // The gateway: virtual hosts by domains.
    let mut istiod_hosts = BTreeMap::new();
    for config in array(golden.get("gatewayRoutes")) {
        if field(config, "ignore_port_in_host_matching").is_some() {
            run.intended("gateway-port-in-host");
        }
        if field(config, "validate_clusters").is_some()
            || field(config, "max_direct_response_body_size_bytes").is_some()
        {
            run.intended("route-config-options");
        }
        for host in array(field(config, "virtual_hosts")) {
            let domains: BTreeSet<String> = array(field(host, "domains"))
                .map(|d| d.as_str().unwrap().to_string())
                .collect();
            if array(field(host, "routes"))
                .any(|r| field(r, "metadata").is_some() || field(r, "decorator").is_some())
            {
                run.intended("route-telemetry");
            }
            istiod_hosts.insert(domains, virtual_host_view(host));
        }
    }
    let mut our_hosts = BTreeMap::new();
    for host in array(our_hcm(ours, "gateway")["route_config"].get("virtual_hosts")) {
        let domains: BTreeSet<String> = array(host.get("domains"))
            .map(|d| d.as_str().unwrap().to_string())
            .filter(|d| !d.ends_with(":*"))
            .collect();
        our_hosts.insert(domains, virtual_host_view(host));
    }
    let keys: BTreeSet<&BTreeSet<String>> = istiod_hosts.keys().chain(our_hosts.keys()).collect();
    for key in keys {
        let place = format!("gateway virtual host {key:?}");
        match (istiod_hosts.get(key), our_hosts.get(key)) {
            (Some(a), Some(b)) => run.diff(&place, &flatten("", a), &flatten("", b)),
            (a, _) => run.missing(&place, "virtual host", a.is_some()),
        }
    }

    // The control panel's sidecar: a virtual host per Service, against the
    // local mesh's listener for that Service.
    let mut seen = BTreeSet::new();
    for config in array(golden.get("sidecarRoutes")) {
        for host in array(field(config, "virtual_hosts")) {
            let name = field(host, "name").and_then(Value::as_str).unwrap();
            if name == "allow_any" {
                run.intended("allow-any");
                continue;
            }
            let fqdn = name.split(':').next().unwrap();
            let key = fqdn.strip_suffix(".svc.cluster.local").unwrap_or(fqdn);
            run.intended("sidecar-domains");
            let place = format!("sidecar virtual host {name}");
            let Some(listener) = ours.listeners.services.get(key) else {
                run.missing(&place, "listener for the Service", true);
                continue;
            };
            seen.insert(key.to_string());
            let our_hosts: Vec<&Value> =
                array(our_hcm(ours, listener)["route_config"].get("virtual_hosts")).collect();
            assert_eq!(our_hosts.len(), 1, "{listener}: one virtual host");
            run.diff(
                &place,
                &flatten("", &virtual_host_view(host)),
                &flatten("", &virtual_host_view(our_hosts[0])),
            );
        }
    }
    for key in ours.listeners.services.keys() {
        if !seen.contains(key) {
            run.missing(
                &format!("sidecar listener for {key}"),
                "virtual host",
                false,
            );
        }
    }
}

fn compare_clusters(run: &mut Run, golden: &Value, ours: &Translation) {
    let (list, _) = ours.resources();
    let our_clusters: BTreeMap<String, &Value> = list
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c))
        .collect();
    let mut seen = BTreeSet::new();
    for cluster in array(golden.get("gatewayClusters")) {
        let istio_name = field(cluster, "name").and_then(Value::as_str).unwrap();
        let name = local_cluster_name(istio_name);
        if name != istio_name {
            run.intended("cluster-names");
        }
        if field(cluster, "type").and_then(Value::as_str) == Some("EDS") {
            run.intended("cluster-discovery");
        }
        let place = format!("cluster {name}");
        match our_clusters.get(&name) {
            Some(our) => {
                seen.insert(name.clone());
                run.diff(
                    &place,
                    &flatten("", &cluster_view(cluster)),
                    &flatten("", &cluster_view(our)),
                );
            }
            None => run.missing(&place, "cluster", true),
        }
    }
    for name in our_clusters.keys() {
        if !seen.contains(name) {
            run.missing(&format!("cluster {name}"), "cluster", false);
        }
    }
}

fn compare_connection_manager(run: &mut Run, golden: &Value, ours: &Translation) {
    let chains: Vec<&Value> = array(golden.get("gatewayHTTP")).collect();
    assert_eq!(
        chains.len(),
        1,
        "{}: the gateway has one HTTP chain",
        run.golden
    );
    let options = &chains[0]["options"];
    if [
        "tracing",
        "request_id_extension",
        "rds",
        "forward_client_cert_details",
    ]
    .iter()
    .any(|f| field(options, f).is_some())
    {
        run.intended("hcm-telemetry-and-discovery");
    }
    run.diff(
        "gateway connection manager",
        &flatten("", &connection_manager_view(options)),
        &flatten("", &connection_manager_view(our_hcm(ours, "gateway"))),
    );
}

/// The golden's HTTP filter names without Istio's own, WasmPlugins by label.
fn istiod_filter_order(run: &mut Run, names: &Value) -> Vec<String> {
    array(Some(names))
        .map(|n| n.as_str().unwrap())
        .filter(|n| {
            let istio_only = ISTIO_ONLY_FILTERS.contains(n);
            if istio_only {
                run.intended("istio-only-http-filters");
            }
            !istio_only
        })
        .map(|n| plugin_label(n).unwrap_or_else(|| n.to_string()))
        .collect()
}

/// A stand-in for a WasmPlugin's filter: only its place in the chain is
/// compared (the plugin itself is not loaded; nothing runs).
fn stand_in(label: &str) -> HttpFilter {
    HttpFilter::Raw(json!({
        "name": label,
        "typed_config": {"@type": "type.googleapis.com/google.protobuf.Empty"}
    }))
}

fn compare_filter_order(
    run: &mut Run,
    golden: &Value,
    documents: &[Value],
    workloads: &[Workload],
) {
    // The gateway's chain.
    let chains: Vec<&Value> = array(golden.get("gatewayHTTP")).collect();
    let expected = istiod_filter_order(run, &chains[0]["httpFilters"]);
    let plugins: Vec<HttpFilter> = expected
        .iter()
        .filter(|n| n.starts_with("wasm plugin "))
        .map(|n| stand_in(n))
        .collect();
    if !plugins.is_empty() {
        run.intended("plugin-placement");
    }
    let translation = translate_with(
        documents,
        workloads,
        &BTreeMap::from([(GATEWAY.to_string(), plugins)]),
    );
    let ours = our_filter_names(&translation, "gateway");
    run.diff(
        "gateway HTTP filters",
        &flatten("", &expected),
        &flatten("", &ours),
    );

    // Each Deployment's outbound chain, against a Service listener of the
    // local mesh given the same plugins (which listener does not matter to
    // the order: see plugin-placement).
    let service = translation
        .listeners
        .services
        .keys()
        .next()
        .unwrap()
        .clone();
    let outbound: BTreeMap<&String, &Value> = golden["sidecarHTTPFilters"]
        .as_object()
        .unwrap()
        .iter()
        .collect();
    for (deployment, chains) in outbound {
        for chain in array(Some(chains)) {
            if chain["listener"] == "virtualInbound" {
                run.intended("sidecar-inbound-chains");
                continue;
            }
            let expected = istiod_filter_order(run, &chain["httpFilters"]);
            let plugins: Vec<HttpFilter> = expected
                .iter()
                .filter(|n| n.starts_with("wasm plugin "))
                .map(|n| stand_in(n))
                .collect();
            if !plugins.is_empty() {
                run.intended("plugin-placement");
            }
            let translation = translate_with(
                documents,
                workloads,
                &BTreeMap::from([(service.clone(), plugins)]),
            );
            let listener = &translation.listeners.services[&service];
            run.diff(
                &format!("sidecar {deployment} {} HTTP filters", chain["listener"]),
                &flatten("", &expected),
                &flatten("", &our_filter_names(&translation, listener)),
            );
        }
    }
}

fn run_golden(name: &str, golden: &Value) -> Run {
    let mut run = Run {
        golden: name.to_string(),
        differences: Vec::new(),
        used: BTreeSet::new(),
    };
    let documents = documents(&inputs(golden));
    let workloads = workloads(&documents);
    let translation = translate_with(&documents, &workloads, &BTreeMap::new());
    compare_routes(&mut run, golden, &translation);
    compare_clusters(&mut run, golden, &translation);
    compare_connection_manager(&mut run, golden, &translation);
    compare_filter_order(&mut run, golden, &documents, &workloads);
    run
}

fn matches(known: &KnownDivergence, difference: &Difference) -> bool {
    (known.goldens == "*" || known.goldens == difference.golden)
        && difference.place == known.place
        && difference.field == known.field
        && known.istiod == difference.istiod
        && known.ours == difference.ours
}

#[test]
fn the_local_mesh_translates_as_istiod_does() {
    let goldens = goldens();
    assert!(goldens.len() > 15, "goldens: {}", goldens.len());
    let mut differences = Vec::new();
    let mut used = BTreeSet::new();
    for (name, golden) in &goldens {
        let run = run_golden(name, golden);
        differences.extend(run.differences);
        used.extend(run.used);
    }
    let mut report = Vec::new();
    for difference in &differences {
        if !KNOWN_DIVERGENCES.iter().any(|k| matches(k, difference)) {
            report.push(format!(
                "{} | {} | {}: istiod {} | local mesh {}",
                difference.golden,
                difference.place,
                difference.field,
                difference.istiod,
                difference.ours
            ));
        }
    }
    for known in KNOWN_DIVERGENCES {
        let hits: BTreeSet<&str> = differences
            .iter()
            .filter(|d| matches(known, d))
            .map(|d| d.golden.as_str())
            .collect();
        let want: BTreeSet<&str> = if known.goldens == "*" {
            goldens.iter().map(|(n, _)| n.as_str()).collect()
        } else {
            BTreeSet::from([known.goldens])
        };
        if hits != want {
            report.push(format!(
                "KNOWN_DIVERGENCE {} (istiod {}, local mesh {}) is no longer exact: it differs in {hits:?}, listed for {want:?}; fix the list",
                known.field, known.istiod, known.ours
            ));
        }
    }
    for (id, _) in INTENDED {
        if !used.contains(id) {
            report.push(format!(
                "INTENDED {id} is exercised by no golden any more: remove it"
            ));
        }
    }
    assert!(
        report.is_empty(),
        "{} difference(s) between istiod's goldens and the local mesh:\n{}",
        report.len(),
        report.join("\n")
    );
}

/// The views read Go's protojson and Envoy's snake_case JSON alike, fill in
/// Envoy's defaults, and still tell a changed value apart.
#[test]
fn views_read_both_spellings_and_fill_in_envoy_defaults() {
    let protojson = json!({
        "match": {"prefix": "/"},
        "route": {
            "cluster": "outbound|8080|v1|cpanel.airport.svc.cluster.local",
            "timeout": "0.500s",
            "retryPolicy": {"retryOn": "reset,5xx", "numRetries": 2, "hostSelectionRetryMaxAttempts": "5"},
            "requestMirrorPolicies": [{"cluster": "outbound|8080|v2|cpanel.airport.svc.cluster.local"}]
        },
        "typedPerFilterConfig": {"envoy.filters.http.fault": {
            "abort": {"httpStatus": 500, "percentage": {"numerator": 50}}
        }}
    });
    let envoy = json!({
        "match": {"prefix": "/", "case_sensitive": true},
        "route": {
            "cluster": "outbound|cpanel.airport|v1",
            "timeout": "0.500000000s",
            "retry_policy": {"retry_on": "5xx,reset", "num_retries": 2, "host_selection_retry_max_attempts": 5},
            "request_mirror_policies": [{
                "cluster": "outbound|cpanel.airport|v2",
                "runtime_fraction": {"default_value": {"numerator": 1_000_000, "denominator": "MILLION"}}
            }]
        },
        "typed_per_filter_config": {"envoy.filters.http.fault": {
            "abort": {"http_status": 500, "percentage": {"numerator": 500_000, "denominator": "MILLION"}}
        }}
    });
    assert_eq!(
        oracle_views::route_view(&protojson),
        oracle_views::route_view(&envoy)
    );
    let mut changed = envoy.clone();
    changed["route"]["retry_policy"]["num_retries"] = json!(3);
    assert_ne!(
        oracle_views::route_view(&protojson),
        oracle_views::route_view(&changed)
    );
    // An absent outlier field is Envoy's default; a panic threshold of {}
    // is 0 %, an absent one Envoy's 50 %.
    let istiod = json!({"outlierDetection": {"consecutive5xx": 5}, "commonLbConfig": {"healthyPanicThreshold": {}}});
    let ours = json!({"outlier_detection": {"interval": "10s"}, "common_lb_config": {"healthy_panic_threshold": {"value": 0}}});
    assert_eq!(cluster_view(&istiod), cluster_view(&ours));
    assert_eq!(cluster_view(&json!({})).healthy_panic_threshold, 50.0);
}
