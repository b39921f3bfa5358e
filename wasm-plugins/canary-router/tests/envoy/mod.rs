//! Shared set-up for the real-Envoy tests: two echo upstreams `v1` and `v2`,
//! routes that pick the cluster by the route header, the shipped plugin in
//! front (V8), and simulated users that keep their cookie.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, Listener, Route, RouteAction, RouteMatch, Upstream, VirtualHost,
    WasmFilter,
};

/// The signing key, fed through the VM's environment as Istio's
/// `vmConfig.env` would.
pub const KEY: &str = "envoy-test-key-0123456789abcdefg";
pub const ROUTE_HEADER: &str = "x-canary-subset";
/// Client threads: Envoy runs one worker, so a few are enough to keep it busy.
pub const THREADS: usize = 4;

/// The plugin configuration at `v2` percent on the canary, `extra` JSON
/// members appended.
pub fn config(v2: u8, extra: &str) -> String {
    format!(
        r#"{{"subsets": [{{"name": "v1", "weight": {}}}, {{"name": "v2", "weight": {v2}}}],
            "routeHeader": "{ROUTE_HEADER}",
            "cookie": {{"name": "canary", "maxAge": "7d", "signingKey": {{"env": "CANARY_KEY"}}}}{extra}}}"#,
        100 - v2
    )
}

/// The two versions, started once per test.
pub struct Versions {
    pub v1: Upstream,
    pub v2: Upstream,
}

impl Versions {
    pub fn start() -> Self {
        Self {
            v1: Upstream::start("v1").unwrap(),
            v2: Upstream::start("v2").unwrap(),
        }
    }

    /// Envoy with the plugin configured by `config`. Only the route header
    /// picks a cluster: a request without it gets Envoy's 404.
    pub fn envoy(&self, config: &str) -> Envoy {
        let filter = WasmFilter::new("canary-router", wasm_artifacts::CANARY_ROUTER)
            .configuration(config)
            .env("CANARY_KEY", KEY);
        let host = VirtualHost::new("cpanel")
            .route(Route::new(
                RouteMatch::prefix("/").header_exact(ROUTE_HEADER, "v2"),
                RouteAction::cluster("v2"),
            ))
            .route(Route::new(
                RouteMatch::prefix("/").header_exact(ROUTE_HEADER, "v1"),
                RouteAction::cluster("v1"),
            ));
        Envoy::start(
            &Bootstrap::new()
                .listener(
                    Listener::new("ingress")
                        .virtual_host(host)
                        .filter(filter)
                        .access_log(false),
                )
                .cluster(Cluster::new("v1", self.v1.port()))
                .cluster(Cluster::new("v2", self.v2.port())),
        )
        .unwrap()
    }
}

/// What one request showed.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The upstream that answered (`x-upstream`).
    pub version: String,
    /// The plugin's `Set-Cookie`, if any.
    pub set_cookie: Option<String>,
    /// The route header the upstream received.
    pub route_header: Option<String>,
}

/// Every value of the route header the echo upstream received, joined with
/// `,` (`None` when it got none).
pub fn route_header_values(echo: &serde_json::Value) -> Option<String> {
    let values: Vec<&str> = echo["headers"]
        .as_array()?
        .iter()
        .filter(|pair| pair[0] == ROUTE_HEADER)
        .filter_map(|pair| pair[1].as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// A simulated browser: keeps the `canary` cookie it is given.
#[derive(Debug, Clone, Default)]
pub struct User {
    pub cookie: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl User {
    pub fn new() -> Self {
        Self::default()
    }

    /// GETs `/panel` through `base`, sending the cookie; stores a new one.
    pub fn visit(&mut self, base: &str) -> Seen {
        let mut request = Request::get(format!("{base}/panel"));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("theme=dark; {cookie}"));
        }
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
        let set_cookie = response
            .headers
            .iter()
            .find(|(k, v)| k == "set-cookie" && v.starts_with("canary="))
            .map(|(_, v)| v.clone());
        if let Some(set_cookie) = &set_cookie {
            self.cookie = Some(set_cookie.split(';').next().unwrap().to_string());
        }
        let echo = response.json().unwrap();
        Seen {
            version: response.header("x-upstream").unwrap().to_string(),
            set_cookie,
            route_header: route_header_values(&echo),
        }
    }

    /// The subset the stored cookie names.
    pub fn cookie_subset(&self) -> Option<&str> {
        self.cookie.as_deref()?.split('.').nth(2)
    }

    /// The bucket the stored cookie carries.
    pub fn cookie_bucket(&self) -> Option<u16> {
        self.cookie.as_deref()?.split('.').nth(1)?.parse().ok()
    }
}

/// Runs `visit` for every user on [`THREADS`] threads; results in user order.
pub fn each_user<T: Send>(
    users: &mut [User],
    visit: impl Fn(usize, &mut User) -> T + Sync,
) -> Vec<T> {
    let chunk = users.len().div_ceil(THREADS).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = users
            .chunks_mut(chunk)
            .enumerate()
            .map(|(c, slice)| {
                let visit = &visit;
                scope.spawn(move || {
                    slice
                        .iter_mut()
                        .enumerate()
                        .map(|(i, user)| visit(c * chunk + i, user))
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// A plugin counter as Envoy shows it (`wasmcustom.<name>`).
pub fn counter(envoy: &Envoy, name: &str) -> u64 {
    envoy
        .stat(&format!("wasmcustom.{name}"))
        .unwrap()
        .unwrap_or(0)
}
