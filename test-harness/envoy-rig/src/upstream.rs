//! Echo upstreams: small HTTP/1.1 servers that stand in for the services behind Envoy.
//!
//! Each server answers every request with what it received, as JSON, plus an
//! `x-upstream: <name>` header, so a test sees both what Envoy forwarded and
//! which upstream Envoy chose. Faults (a status, a delay, a connection reset)
//! are switched on at run time through the handle and hit a deterministic
//! share of requests (the first N, every Nth, or an exact fraction realised by
//! a counter), so tests that depend on them repeat exactly.
//!
//! Each server owns a one-worker tokio runtime, so tests stay plain blocking
//! functions; dropping the handle stops the server.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

use crate::error::{Result, RigError};

/// The response header naming the upstream that answered.
pub const UPSTREAM_HEADER: &str = "x-upstream";

/// How many received requests a server remembers (the count has no limit).
const RECEIVED_LIMIT: usize = 10_000;

/// What a faulty request gets instead of a plain echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (the body is still the echo).
    Status(u16),
    /// Wait this long, then echo normally.
    Delay(Duration),
    /// Reset the TCP connection (RST) without answering.
    Reset,
}

/// Which requests a fault hits, counted from when the fault was injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Every request.
    All,
    /// The first `n` requests, then none.
    FirstN(u64),
    /// Requests number n, 2n, 3n, ... (1-based); `EveryNth(0)` hits none.
    EveryNth(u64),
    /// Exactly `numerator` of every `denominator` consecutive requests, spread
    /// evenly, starting with the first.
    Fraction {
        /// Faulty requests per window.
        numerator: u64,
        /// Window length.
        denominator: u64,
    },
}

impl Share {
    /// Whether the request with 0-based `index` (since injection) is hit.
    pub fn hits(self, index: u64) -> bool {
        match self {
            Self::All => true,
            Self::FirstN(n) => index < n,
            Self::EveryNth(0) => false,
            Self::EveryNth(n) => index.wrapping_add(1).is_multiple_of(n),
            Self::Fraction { denominator: 0, .. } => false,
            // `index * numerator mod denominator` walks the window evenly, and
            // lands below `numerator` exactly `numerator` times per window.
            Self::Fraction {
                numerator,
                denominator,
            } => index.wrapping_mul(numerator) % denominator < numerator,
        }
    }
}

/// One request as the upstream saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (invalid UTF-8 replaced).
    pub body: String,
}

impl Received {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Rule {
    fault: Fault,
    share: Share,
    seen: u64,
}

#[derive(Debug)]
struct State {
    name: String,
    count: AtomicU64,
    rule: Mutex<Option<Rule>>,
    received: Mutex<Vec<Received>>,
}

impl State {
    /// Decides this request's fault and advances the rule's own counter.
    fn next_fault(&self) -> Option<Fault> {
        // A poisoned lock only means a test thread panicked mid-update; the
        // data is still usable, and the server must keep answering.
        let mut rule = self.rule.lock().unwrap_or_else(PoisonError::into_inner);
        let rule = rule.as_mut()?;
        let index = rule.seen;
        rule.seen = rule.seen.saturating_add(1);
        rule.share.hits(index).then_some(rule.fault)
    }

    fn record(&self, received: Received) {
        let mut log = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        if log.len() >= RECEIVED_LIMIT {
            log.remove(0);
        }
        log.push(received);
    }
}

/// A running echo server on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Upstream {
    /// Starts a server named `name` on an ephemeral loopback port.
    pub fn start(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("upstream-{name}"))
            .enable_all()
            .build()
            .map_err(|e| RigError::io(format!("starting the runtime of upstream {name}"), e))?;
        let listener = runtime
            .block_on(TcpListener::bind(("127.0.0.1", 0)))
            .map_err(|e| RigError::io(format!("binding upstream {name}"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| RigError::io(format!("address of upstream {name}"), e))?;
        let state = Arc::new(State {
            name,
            count: AtomicU64::new(0),
            rule: Mutex::new(None),
            received: Mutex::new(Vec::new()),
        });
        let (shutdown, stop) = oneshot::channel();
        runtime.spawn(accept_loop(listener, Arc::clone(&state), stop));
        Ok(Self {
            addr,
            state,
            shutdown: Some(shutdown),
            runtime: Some(runtime),
        })
    }

    /// The server's name, as sent in `x-upstream` and the echo's `server`.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port (what a [`Cluster`](crate::Cluster) needs).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far, faulty ones included.
    pub fn request_count(&self) -> u64 {
        self.state.count.load(Ordering::SeqCst)
    }

    /// The requests received so far (the last 10 000), oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.state
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Applies `fault` to `share` of the requests from now on, replacing any
    /// earlier fault; the share's counter starts at this call.
    pub fn inject(&self, fault: Fault, share: Share) {
        *self
            .state
            .rule
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Rule {
            fault,
            share,
            seen: 0,
        });
    }

    /// Answers every request normally again.
    pub fn clear_fault(&self) {
        *self
            .state
            .rule
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // `shutdown_background` never blocks, so dropping the handle is safe
        // even from async code; it cancels every connection task.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stop: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                // A failed accept (e.g. the peer gave up) concerns that peer only.
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(serve_connection(stream, Arc::clone(&state)));
                }
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    // A second descriptor for the same socket, so that after hyper has dropped
    // its own we can still set a zero linger and close: that sends an RST, the
    // "connection reset" a real crashing backend produces.
    let reset_handle = stream.as_fd().try_clone_to_owned().ok();
    let reset = Arc::new(Notify::new());
    let service = {
        let reset = Arc::clone(&reset);
        service_fn(move |request| handle(request, Arc::clone(&state), Arc::clone(&reset)))
    };
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let reset_requested = tokio::select! {
        _ = connection => false,
        () = reset.notified() => true,
    };
    if reset_requested
        && let Some(fd) = reset_handle
        && let Ok(socket) = TcpStream::from_std(std::net::TcpStream::from(fd))
    {
        let _ = socket.set_zero_linger();
    }
}

async fn handle(
    request: hyper::Request<Incoming>,
    state: Arc<State>,
    reset: Arc<Notify>,
) -> std::result::Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    state.count.fetch_add(1, Ordering::SeqCst);
    let fault = state.next_fault();

    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let received = Received {
        method: parts.method.as_str().to_owned(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    state.record(received.clone());

    let mut status = 200;
    match fault {
        Some(Fault::Reset) => {
            reset.notify_one();
            // The connection task drops this future together with the socket.
            std::future::pending::<()>().await;
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Status(code)) => status = code,
        None => {}
    }

    let echo = json!({
        "server": state.name,
        "method": received.method,
        "path": received.path,
        "headers": received.headers,
        "body": received.body,
    });
    let mut response = hyper::Response::new(Full::new(Bytes::from(echo.to_string())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Ok(name) = hyper::header::HeaderValue::from_str(&state.name) {
        headers.insert(UPSTREAM_HEADER, name);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(share: Share, n: u64) -> Vec<u64> {
        (0..n).filter(|i| share.hits(*i)).collect()
    }

    #[test]
    fn first_n_hits_only_the_first() {
        assert_eq!(hits(Share::FirstN(2), 6), vec![0, 1]);
    }

    #[test]
    fn every_nth_hits_multiples() {
        assert_eq!(hits(Share::EveryNth(3), 9), vec![2, 5, 8]);
        assert!(hits(Share::EveryNth(0), 9).is_empty());
    }

    #[test]
    fn fraction_hits_exactly_its_share_per_window() {
        let share = Share::Fraction {
            numerator: 2,
            denominator: 5,
        };
        for window in 0..4 {
            let count = (window * 5..window * 5 + 5)
                .filter(|i| share.hits(*i))
                .count();
            assert_eq!(count, 2);
        }
        assert!(share.hits(0));
    }
}
