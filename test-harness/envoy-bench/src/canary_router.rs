//! `--suite canary-router`: the sticky canary router's benchmark rows, under
//! wrk (the rig's [`envoy_rig::bench::run`]), one Envoy per row, every row
//! answered by the same upstream responder:
//!
//! 1. no filter: one route, one cluster (the baseline);
//! 2. Envoy's native weighted routing, `v1` 90 / `v2` 10 (`weighted_clusters`,
//!    which has no stickiness);
//! 3. the plugin deciding every request, with no cookie: each request is a
//!    new user, so the plugin draws a bucket, signs a cookie and adds a
//!    `Set-Cookie`; the route table sends it to cluster `v1` or `v2` by the
//!    route header;
//! 4. the plugin on the sticky path: every request carries one valid signed
//!    cookie (obtained by one request before the load, sent by wrk with
//!    `-H`), so the plugin verifies it and sets nothing;
//! 5. for reference, the harness's trivial test plugin (one request header,
//!    one response header, one counter) on the default route: what any V8
//!    plugin costs in this Envoy, so the router's own cost is the gap
//!    between it and rows 3 and 4.
//!
//! Clusters `v1` and `v2` are both names for the one upstream, so the rows
//! differ only by the routing and the filter. Before any load,
//! [`check_routing`] proves, with two distinct upstreams, that the plugin's
//! route table and the weighted route reach both versions as configured.

use std::fmt::Write as _;

use envoy_rig::bench::{Config, Measured, Report, RowResult};
use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, EnvoyOptions, Listener, Route, RouteAction, RouteMatch,
    UPSTREAM_HEADER, Upstream, VirtualHost, WasmFilter,
};

/// The environment variable the signing key comes from, as in the Istio
/// manifest (`vmConfig.env`).
pub const KEY_VAR: &str = "CANARY_COOKIE_KEY";

/// The benchmark's signing key (48 bytes, like `openssl rand -base64 48`).
const KEY: &str = "YmVuY2gtb25seS1rZXktMDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u";

/// The header the plugin sets and the routes match.
pub const ROUTE_HEADER: &str = "x-canary-subset";

/// The cookie the plugin sets.
pub const COOKIE: &str = "cpanel-version";

/// The plugin configuration: the `pluginConfig` of
/// `istio/plugins/canary-router.yaml` (v1 90 / v2 10, the `end-user: tester`
/// rule, which wrk's requests never match but every request evaluates, a
/// signed cookie with the key from the environment).
pub const PLUGIN_CONFIG: &str = r#"{
    "subsets": [{"name": "v1", "weight": 90}, {"name": "v2", "weight": 10}],
    "rules": [{"subset": "v2", "match": [{"headers": {"end-user": {"exact": "tester"}}}]}],
    "routeHeader": "x-canary-subset",
    "cookie": {
        "name": "cpanel-version",
        "maxAge": "30d",
        "path": "/",
        "secure": false,
        "httpOnly": true,
        "sameSite": "Lax",
        "signingKey": {"env": "CANARY_COOKIE_KEY"}
    }
}"#;

/// The goals from the issue, against no filter.
const P50_GOAL: f64 = 1.10;
const THROUGHPUT_GOAL: f64 = 0.90;

/// Requests per check; at 10 % the chance that none reaches v2 is 0.9^200,
/// about 7e-10.
const CHECK_REQUESTS: usize = 200;

/// The row names.
pub const NATIVE_ROW: &str = "native weighted routing 90/10 (no stickiness)";
pub const NEW_USER_ROW: &str = "canary router, no cookie: assigns + Set-Cookie (V8)";
pub const STICKY_ROW: &str = "canary router, sticky cookie (V8)";
pub const REFERENCE_ROW: &str = "reference: trivial test plugin (V8)";

fn plugin() -> WasmFilter {
    WasmFilter::new("canary-router", wasm_artifacts::CANARY_ROUTER)
        .configuration(PLUGIN_CONFIG)
        .env(KEY_VAR, KEY)
}

/// The plugin rows' route table: only the route header picks a cluster, so
/// a request the plugin did not decide gets Envoy's 404 (an error in wrk's
/// count and in the probe), never a silent default.
fn header_routes() -> Vec<Route> {
    ["v2", "v1"]
        .into_iter()
        .map(|subset| {
            Route::new(
                RouteMatch::prefix("/").header_exact(ROUTE_HEADER, subset),
                RouteAction::cluster(subset),
            )
        })
        .collect()
}

fn weighted_route() -> Route {
    Route::new(
        RouteMatch::prefix("/"),
        RouteAction::weighted([("v1", 90), ("v2", 10)]),
    )
}

/// A valid cookie for the sticky row: the `name=value` pair the plugin set,
/// and the subset it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyCookie {
    pub pair: String,
    pub subset: String,
}

/// The rows, the baseline first.
pub fn configs(sticky: &StickyCookie) -> Vec<Config> {
    let two_clusters = |config: Config| config.cluster("v1").cluster("v2");
    let header_routed = |config: Config| header_routes().into_iter().fold(config, Config::route);
    vec![
        Config::new("no filter"),
        two_clusters(Config::new(NATIVE_ROW).route(weighted_route())),
        two_clusters(header_routed(Config::new(NEW_USER_ROW).filter(plugin()))),
        two_clusters(header_routed(Config::new(STICKY_ROW).filter(plugin())))
            .request_header("cookie", &sticky.pair)
            .expect_upstream_header(ROUTE_HEADER, &sticky.subset),
        Config::new(REFERENCE_ROW)
            .filter(WasmFilter::new(
                "harness_test_plugin",
                wasm_artifacts::HARNESS_TEST_PLUGIN,
            ))
            .expect_upstream_header("x-test-plugin", "seen"),
    ]
}

/// An Envoy with `routes` over clusters `v1` and `v2` (two distinct
/// upstreams), and `filter` if any.
fn check_envoy(
    filter: Option<WasmFilter>,
    routes: Vec<Route>,
    v1: &Upstream,
    v2: &Upstream,
    options: &EnvoyOptions,
) -> Result<Envoy, String> {
    let host = routes
        .into_iter()
        .fold(VirtualHost::new("all"), VirtualHost::route);
    let mut listener = Listener::new("bench").access_log(false).virtual_host(host);
    if let Some(filter) = filter {
        listener = listener.filter(filter);
    }
    Envoy::start_with(
        &Bootstrap::new()
            .listener(listener)
            .cluster(Cluster::new("v1", v1.port()))
            .cluster(Cluster::new("v2", v2.port())),
        options,
    )
    .map_err(|e| e.to_string())
}

/// What one checking request showed: the version that answered and the
/// plugin's cookie (`name=value`), if it set one.
fn visit(url: &str, headers: &[(&str, &str)]) -> Result<(String, Option<String>), String> {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().map_err(|e| e.to_string())?;
    if response.status != 200 {
        return Err(format!("status {}: {}", response.status, response.text()));
    }
    let version = response
        .header(UPSTREAM_HEADER)
        .ok_or("no upstream answered")?
        .to_owned();
    let cookies: Vec<&str> = response
        .headers
        .iter()
        .filter(|(name, value)| name == "set-cookie" && value.starts_with(&format!("{COOKIE}=")))
        .map(|(_, value)| value.as_str())
        .collect();
    if cookies.len() > 1 {
        return Err(format!("{} Set-Cookie headers: {cookies:?}", cookies.len()));
    }
    let pair = cookies
        .first()
        .map(|c| c.split(';').next().unwrap_or_default().to_owned());
    Ok((version, pair))
}

/// The subset a cookie pair names (`name=c1.<bucket>.<subset>.<issued>.<mac>`).
fn cookie_subset(pair: &str) -> Option<&str> {
    pair.split_once('=')?.1.split('.').nth(2)
}

/// Before any load, with two distinct upstreams (so the version that
/// answered shows): without a cookie the plugin assigns a version, the
/// request reaches it, and the cookie names it, over both versions; with
/// that cookie every request reaches the same version and gets no new
/// cookie; the tester rule sends to v2; the native weighted route reaches
/// both versions and sets no cookie. Returns the cookie of the sticky row:
/// one that a first request got, reused as is.
pub fn check_routing(options: &EnvoyOptions) -> Result<StickyCookie, String> {
    let v1 = Upstream::start("v1").map_err(|e| e.to_string())?;
    let v2 = Upstream::start("v2").map_err(|e| e.to_string())?;

    let envoy = check_envoy(Some(plugin()), header_routes(), &v1, &v2, options)?;
    let url = format!("{}/", envoy.url().map_err(|e| e.to_string())?);
    let mut seen = [0usize; 2];
    let mut sticky = None;
    for n in 0..CHECK_REQUESTS {
        // A client's own route header must not matter.
        let (version, pair) = visit(&url, &[(ROUTE_HEADER, "v2")])?;
        let pair = pair.ok_or_else(|| format!("request {n}: no cookie for a new user"))?;
        if cookie_subset(&pair) != Some(version.as_str()) {
            return Err(format!("request {n}: reached {version} with cookie {pair}"));
        }
        seen[usize::from(version == "v2")] += 1;
        if sticky.is_none() {
            sticky = Some(StickyCookie {
                subset: version,
                pair,
            });
        }
    }
    if seen.contains(&0) {
        return Err(format!(
            "new users reached v1 {} and v2 {} times of {CHECK_REQUESTS}",
            seen[0], seen[1]
        ));
    }
    let sticky = sticky.ok_or("no request made")?;
    let cookie = format!("theme=dark; {}", sticky.pair);
    for _ in 0..20 {
        let (version, pair) = visit(&url, &[("cookie", &cookie)])?;
        if version != sticky.subset || pair.is_some() {
            return Err(format!(
                "the cookie {} for {} reached {version}, new cookie {pair:?}",
                sticky.pair, sticky.subset
            ));
        }
    }
    let (version, pair) = visit(&url, &[("end-user", "tester")])?;
    if version != "v2" || pair.is_some() {
        return Err(format!("the tester reached {version}, cookie {pair:?}"));
    }
    drop(envoy);

    let envoy = check_envoy(None, vec![weighted_route()], &v1, &v2, options)?;
    let url = format!("{}/", envoy.url().map_err(|e| e.to_string())?);
    let mut seen = [0usize; 2];
    for _ in 0..CHECK_REQUESTS {
        let (version, pair) = visit(&url, &[])?;
        if pair.is_some() {
            return Err("the native route set a cookie".into());
        }
        seen[usize::from(version == "v2")] += 1;
    }
    if seen.contains(&0) {
        return Err(format!(
            "native weighted routing reached v1 {} and v2 {} times of {CHECK_REQUESTS}",
            seen[0], seen[1]
        ));
    }
    Ok(sticky)
}

fn figure_of(report: &Report, row: usize, figure: fn(&Measured) -> Option<f64>) -> Option<f64> {
    match &report.rows.get(row)?.result {
        RowResult::Measured(measured) => figure(measured),
        RowResult::Unavailable(_) => None,
    }
}

fn ratio(
    report: &Report,
    row: usize,
    base: usize,
    figure: fn(&Measured) -> Option<f64>,
) -> Option<f64> {
    let value = figure_of(report, row, figure)?;
    let base = figure_of(report, base, figure)?;
    (base > 0.0).then(|| value / base)
}

/// The goals against what was measured, as Markdown: every row against no
/// filter (the goals apply to the canary router's rows), and the plugin rows
/// against native weighted routing and against the trivial plugin.
pub fn goals(report: &Report) -> String {
    let throughput = |m: &Measured| m.throughput().map(|s| s.median);
    let p50 = |m: &Measured| m.p50_ms().map(|s| s.median);
    let p99 = |m: &Measured| m.p99_ms().map(|s| s.median);
    let native = report.rows.iter().position(|r| r.name == NATIVE_ROW);
    let reference = report.rows.iter().position(|r| r.name == REFERENCE_ROW);
    let mut out = String::from(
        "| row | throughput vs no filter (goal ≥ 0.90) | p50 vs no filter (goal ≤ 1.10) | p99 vs no filter | throughput vs native weighted | p50 vs native weighted | throughput vs trivial plugin | p50 vs trivial plugin |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for (index, row) in report.rows.iter().enumerate().skip(1) {
        let is_plugin = row.name == NEW_USER_ROW || row.name == STICKY_ROW;
        let cell = |ratio: Option<f64>, goal: Option<(f64, bool)>| match (ratio, goal) {
            (Some(r), Some((limit, at_least))) if is_plugin => {
                let met = if at_least { r >= limit } else { r <= limit };
                format!("{r:.2} ({})", if met { "met" } else { "missed" })
            }
            (Some(r), _) => format!("{r:.2}"),
            (None, _) => "–".to_owned(),
        };
        let against = |base: Option<usize>, figure| match base {
            Some(base) if is_plugin => cell(ratio(report, index, base, figure), None),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            cell(
                ratio(report, index, 0, throughput),
                Some((THROUGHPUT_GOAL, true))
            ),
            cell(ratio(report, index, 0, p50), Some((P50_GOAL, false))),
            cell(ratio(report, index, 0, p99), None),
            against(native, throughput),
            against(native, p50),
            against(reference, throughput),
            against(reference, p50),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sticky() -> StickyCookie {
        StickyCookie {
            pair: "cpanel-version=c1.42.v1.1767225600.mac".into(),
            subset: "v1".into(),
        }
    }

    #[test]
    fn the_rows() {
        let configs = configs(&sticky());
        let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "no filter",
                NATIVE_ROW,
                NEW_USER_ROW,
                STICKY_ROW,
                REFERENCE_ROW
            ]
        );
        // The baseline: one route, one cluster, no filter.
        assert!(configs[0].filters.is_empty());
        assert!(configs[0].routes.is_empty() && configs[0].clusters.is_empty());
        // Native: weighted clusters over v1 and v2, no filter.
        let native = configs[1].bootstrap(1).to_json();
        let routes = &native["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"];
        assert_eq!(
            routes[0]["route"]["weighted_clusters"]["clusters"][0]["weight"],
            90
        );
        assert!(configs[1].filters.is_empty());
        // The plugin's rows: the plugin, and routes on the header only.
        for config in &configs[2..4] {
            assert_eq!(config.filters.len(), 1);
            assert_eq!(config.routes.len(), 2);
            assert_eq!(config.clusters, ["v1", "v2"]);
        }
        assert!(configs[2].request_headers.is_empty());
        assert_eq!(
            configs[3].request_headers,
            [("cookie".to_owned(), sticky().pair)]
        );
        assert_eq!(
            configs[3].expect_upstream_headers,
            [(ROUTE_HEADER.to_owned(), "v1".to_owned())]
        );
    }

    #[test]
    fn the_plugin_config_is_the_manifests() {
        let config: serde_json::Value = serde_json::from_str(PLUGIN_CONFIG).unwrap();
        assert_eq!(config["subsets"][1]["weight"], 10);
        assert_eq!(
            config["rules"][0]["match"][0]["headers"]["end-user"]["exact"],
            "tester"
        );
        assert_eq!(config["routeHeader"], ROUTE_HEADER);
        assert_eq!(config["cookie"]["name"], COOKIE);
        assert_eq!(config["cookie"]["signingKey"]["env"], KEY_VAR);
        assert!(KEY.len() >= 32);
    }

    #[test]
    fn cookie_subsets() {
        assert_eq!(cookie_subset(&sticky().pair), Some("v1"));
        assert_eq!(cookie_subset("cpanel-version="), None);
        assert_eq!(cookie_subset("junk"), None);
    }
}
