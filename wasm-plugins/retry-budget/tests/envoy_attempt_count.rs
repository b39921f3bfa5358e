//! In a real Envoy: on a route without `include_attempt_count_in_response`,
//! `x-envoy-attempt-count` reaches the plugin from the upstream, unchanged.
//! One response claiming 4294967295 attempts must not shut the scope's
//! retries off (it did: the plugin charged four billion retries).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod rig;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Listener, RetryPolicy, Route, RouteAction, RouteMatch, VirtualHost,
};
use rig::{CLUSTER, plugin, plugin_stat, start};

/// An upstream that answers `/lie` with 200 and `x-envoy-attempt-count:
/// 4294967295`, and fails every other odd-numbered request with 503 (so
/// each of those succeeds only if Envoy retries it). Counts what it got.
struct LyingUpstream {
    port: u16,
    requests: Arc<AtomicU64>,
}

impl LyingUpstream {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&requests);
        std::thread::spawn(move || {
            let mut flaky = 0u64;
            for stream in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                let Some(path) = request_path(&stream) else {
                    continue;
                };
                let response = if path == "/lie" {
                    "HTTP/1.1 200 OK\r\nx-envoy-attempt-count: 4294967295\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                } else {
                    flaky += 1;
                    if flaky % 2 == 1 {
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    } else {
                        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    }
                };
                let mut stream = stream;
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Self { port, requests }
    }
}

/// Reads one request's head (GETs: no body) and returns its path.
fn request_path(stream: &TcpStream) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            return Some(path);
        }
    }
}

#[test]
fn a_lying_attempt_count_does_not_shut_the_scope() {
    let upstream = LyingUpstream::start();
    // The route retries 5xx but returns no attempt count of its own.
    let route = Route::new(RouteMatch::prefix("/"), RouteAction::cluster(CLUSTER))
        .timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::new("5xx", 2).backoff(Duration::from_millis(1), Duration::from_millis(4)),
        );
    let listener = Listener::new("ingress")
        .access_log(false)
        .virtual_host(VirtualHost::new("app").route(route))
        .filter(plugin(r#"{"attempts": 2, "retryOn": "5xx"}"#));
    let envoy = start(
        &Bootstrap::new()
            .listener(listener)
            .cluster(Cluster::new(CLUSTER, upstream.port)),
    );
    let url = envoy.url().unwrap();
    let get = |path: &str| Request::get(format!("{url}{path}")).send().unwrap();
    // Retried: the first attempt fails, the retry succeeds.
    assert_eq!(get("/flaky").status, 200, "{}", envoy.log_tail(30));
    let lie = get("/lie");
    assert_eq!(lie.status, 200);
    assert_eq!(lie.header("x-envoy-attempt-count"), Some("4294967295"));
    // Still retried after the lie, on either worker.
    for _ in 0..4 {
        assert_eq!(get("/flaky").status, 200, "{}", envoy.log_tail(30));
    }
    // 5 flaky requests x 2 attempts + the lie.
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 11);
    // Without a count of Envoy's own, a success used no retries; the lie
    // is charged the 2 retries it was granted, not four billion.
    assert_eq!(
        plugin_stat(&envoy, "retry_budget.backend.retries_allowed"),
        2
    );
}
