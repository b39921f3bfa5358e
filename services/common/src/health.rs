//! `/status` (the seed's exact strings), `/healthz` (liveness) and `/readyz`
//! (readiness, which turns 503 as soon as shutdown begins so Kubernetes stops
//! sending new traffic while in-flight work finishes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

/// Readiness shared between the server and its probes.
#[derive(Debug, Clone)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Ready from the start.
    pub fn new() -> Self {
        Self {
            ready: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Marks ready or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// The seed's status line: `"{name} {version} : Online"`, e.g. `CPanel v1 : Online`.
pub fn status_line(name: &str, version: &str) -> String {
    format!("{name} {version} : Online")
}

/// Routes `/status`, `/healthz` and `/readyz`. `status` is answered verbatim as
/// `text/plain`, with no trailing newline (as in the seed's `curl` output).
pub fn routes<S>(status: String, health: Health) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let status: Arc<str> = status.into();
    Router::new()
        .route(
            "/status",
            get(move || std::future::ready(status.to_string())),
        )
        .route("/healthz", get(|| std::future::ready("ok")))
        .route(
            "/readyz",
            get(move || {
                let ready = health.is_ready();
                std::future::ready(if ready {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
                })
            }),
        )
}
