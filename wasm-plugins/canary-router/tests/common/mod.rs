//! Shared set-up for the canary router's harness tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use canary_router_filter::{Config, no_env};
use proxy_wasm_harness::{Exchange, Harness, Plugin, Request, Response, WorkerId};

/// A 32-byte signing key.
pub const KEY: &str = "k3y-for-tests-0123456789abcdefgh";
/// Another one, for rotations.
pub const NEW_KEY: &str = "n3w-key-for-tests-0123456789abcd";
/// The route header every test configuration uses.
pub const ROUTE_HEADER: &str = "x-canary-subset";

/// A configuration with subsets v1 and v2 at `v2` percent for the canary,
/// a signed cookie `canary` living a day, and `extra` JSON members.
pub fn config_json(v2: u8, extra: &str) -> String {
    format!(
        r#"{{"subsets": [{{"name": "v1", "weight": {}}}, {{"name": "v2", "weight": {v2}}}],
            "routeHeader": "{ROUTE_HEADER}",
            "cookie": {{"name": "canary", "maxAge": "1d", "signingKey": {{"inline": "{KEY}"}}}}{extra}}}"#,
        100 - v2
    )
}

/// The shipped plugin with `config` as its plugin configuration.
pub fn plugin(config: &str) -> Plugin {
    Plugin::load(wasm_artifacts::CANARY_ROUTER)
        .expect("canary router loads")
        .plugin_config(config)
}

/// One worker running `config`.
pub fn start(config: &str) -> (Harness, WorkerId) {
    start_plugin(&plugin(config))
}

pub fn start_plugin(plugin: &Plugin) -> (Harness, WorkerId) {
    let mut harness = Harness::new();
    let worker = harness.start(plugin).expect("plugin starts");
    (harness, worker)
}

/// Sends `request`; the upstream answers 200 with `x-upstream` set to the
/// route header it saw (`none` when absent).
pub fn send(harness: &mut Harness, worker: WorkerId, request: Request) -> Exchange {
    send_with(harness, worker, request, Response::ok())
}

/// Like [`send`], the upstream answering with `response` plus `x-upstream`.
pub fn send_with(
    harness: &mut Harness,
    worker: WorkerId,
    request: Request,
    response: Response,
) -> Exchange {
    harness
        .exchange(worker, request, |upstream| {
            let seen = upstream.headers.get_all(ROUTE_HEADER).join(",");
            let seen = if seen.is_empty() { "none".into() } else { seen };
            response.header("x-upstream", &seen)
        })
        .expect("exchange completes")
}

/// The subset the upstream saw in the route header.
pub fn routed_to(exchange: &Exchange) -> &str {
    exchange
        .response_header("x-upstream")
        .expect("reached the upstream")
}

/// Every `Set-Cookie` the client got.
pub fn set_cookies(exchange: &Exchange) -> Vec<String> {
    exchange
        .response_headers()
        .map(|h| {
            h.get_all("set-cookie")
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The plugin's `Set-Cookie` for cookie `canary`, if it sent one.
pub fn canary_set_cookie(exchange: &Exchange) -> Option<String> {
    set_cookies(exchange)
        .into_iter()
        .find(|c| c.starts_with("canary="))
}

/// The `name=value` pair of a `Set-Cookie`, ready for a `Cookie` header.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

/// The value of a `Set-Cookie`.
pub fn cookie_value(set_cookie: &str) -> String {
    cookie_pair(set_cookie)
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

/// The bucket a cookie value carries (`c1.<bucket>.<subset>.<issued>.<mac>`).
pub fn cookie_bucket(value: &str) -> u16 {
    value.split('.').nth(1).unwrap().parse().unwrap()
}

/// The subset a cookie value carries.
pub fn cookie_subset(value: &str) -> String {
    value.split('.').nth(2).unwrap().to_string()
}

/// A filter-side configuration, to sign cookies the way the plugin would.
pub fn signer(subsets: &[&str], key: &str) -> Config {
    let weight = |i: usize| if i == 0 { 100 } else { 0 };
    let subsets = subsets
        .iter()
        .enumerate()
        .map(|(i, name)| format!(r#"{{"name": "{name}", "weight": {}}}"#, weight(i)))
        .collect::<Vec<_>>()
        .join(", ");
    let json = format!(
        r#"{{"subsets": [{subsets}], "cookie": {{"name": "canary", "maxAge": "1d", "signingKey": {{"inline": "{key}"}}}}}}"#
    );
    Config::from_json(json.as_bytes(), &no_env).unwrap()
}

/// The harness's wall clock in Unix seconds.
pub fn now_secs(harness: &Harness) -> u64 {
    harness
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
