//! The HTTP plumbing the two vision services share (`image-analysis` and
//! `face-recognition`): an [`InferencePool`] that runs model inference on a
//! fixed set of threads with a bounded queue (503 `overloaded` when full), the
//! [`ImageBody`] extractor that answers every malformed image request with
//! the contract's 4xx code before any model runs, the answer to each
//! `airport-vision` error, the settings both read from the environment, and
//! the `/metrics` page.
//!
//! The models themselves live in `airport-vision`; this crate only serves
//! them.

pub mod body;
pub mod config;
pub mod pool;
pub mod testing;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use airport_common::ApiError;
use airport_vision::{DecodeError, VisionError};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

pub use body::{ImageBody, ImageKind, ImageLimits, bad_image, too_large};
pub use config::ServingConfig;
pub use pool::{InferencePool, PoolError, PoolSnapshot, Ran};

/// The answer to a [`PoolError`]: 503 `overloaded` with `Retry-After` when
/// full, 500 otherwise.
pub fn pool_error(e: PoolError, retry_after_secs: u32) -> ApiError {
    match e {
        PoolError::Full { .. } => ApiError::overloaded(e.to_string(), retry_after_secs),
        PoolError::Stopped => ApiError::overloaded(
            "the service is shutting down; retry elsewhere",
            retry_after_secs,
        ),
        PoolError::Panicked(_) => ApiError::internal(e.to_string()),
    }
}

/// Checks that the model directory exists, with the one line an operator
/// needs if not.
pub fn require_models_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "models not found in {}: run make models",
            dir.display()
        ))
    }
}

/// Milliseconds, rounded to the microsecond (plenty, and short JSON).
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The answer to a vision error: the image's fault is a 4xx with the
/// contract's code (400 `empty_body`, 413 `image_too_large`, 422
/// `bad_image`), anything else is ours (500 `internal`).
pub fn vision_error(e: VisionError) -> ApiError {
    match e {
        VisionError::Decode(DecodeError::Empty) => ApiError::bad_request(
            "empty_body",
            "the body is empty: send one JPEG or PNG image",
        ),
        VisionError::Decode(d @ DecodeError::TooLarge { .. }) => too_large(d.to_string()),
        VisionError::Decode(d) => bad_image(d.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// Requests to the image endpoints, by outcome (a middleware counts them, so
/// requests refused before the handler runs are counted too).
#[derive(Debug, Default)]
pub struct RequestCounters {
    received: AtomicU64,
    answered_ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl RequestCounters {
    /// Requests received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }
}

/// Middleware counting each request and its outcome (2xx, 4xx, 5xx).
pub async fn count_requests(
    State(counters): State<Arc<RequestCounters>>,
    req: Request,
    next: Next,
) -> Response {
    counters.received.fetch_add(1, Ordering::SeqCst);
    let resp = next.run(req).await;
    let status = resp.status();
    let counter = if status.is_client_error() {
        &counters.refused
    } else if status.is_server_error() {
        &counters.failed
    } else {
        &counters.answered_ok
    };
    counter.fetch_add(1, Ordering::SeqCst);
    resp
}

/// A `/metrics` page (Prometheus text) for the request counters and the
/// pool, names prefixed with `prefix` (e.g. `image_analysis`).
pub fn render_metrics(prefix: &str, counters: &RequestCounters, pool: &InferencePool) -> String {
    let s = pool.stats();
    let l = |c: &AtomicU64| c.load(Ordering::SeqCst);
    let rows = [
        ("requests_total", "counter", l(&counters.received)),
        ("requests_ok_total", "counter", l(&counters.answered_ok)),
        ("requests_refused_total", "counter", l(&counters.refused)),
        ("requests_failed_total", "counter", l(&counters.failed)),
        ("pool_workers", "gauge", pool.workers() as u64),
        ("pool_queue_depth", "gauge", pool.queue_depth() as u64),
        ("pool_queued", "gauge", s.queued),
        ("pool_busy", "gauge", s.busy),
        ("jobs_completed_total", "counter", s.completed),
        ("jobs_overloaded_total", "counter", s.rejected),
        ("jobs_abandoned_total", "counter", s.abandoned),
        ("jobs_panicked_total", "counter", s.panicked),
    ];
    let mut out = String::new();
    for (name, kind, v) in rows {
        let _ = writeln!(out, "# TYPE {prefix}_{name} {kind}\n{prefix}_{name} {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn full_is_503_with_retry_after_and_a_panic_is_500() {
        let e = pool_error(
            PoolError::Full {
                workers: 2,
                queued: 8,
            },
            3,
        );
        assert_eq!((e.status().as_u16(), e.code()), (503, "overloaded"));
        let resp = axum::response::IntoResponse::into_response(e);
        assert_eq!(resp.headers()["retry-after"], "3");
        let e = pool_error(PoolError::Panicked("x".into()), 3);
        assert_eq!(e.status().as_u16(), 500);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_middleware_counts_every_outcome_and_metrics_show_them() {
        use axum::http::StatusCode;
        use axum::routing::post;
        let counters = Arc::new(RequestCounters::default());
        let app = axum::Router::new()
            .route("/ok", post(|| async { "fine" }))
            .route("/bad", post(|| async { StatusCode::UNPROCESSABLE_ENTITY }))
            .route("/boom", post(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .route_layer(axum::middleware::from_fn_with_state(
                counters.clone(),
                count_requests,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = airport_common::spawn(
            listener,
            app,
            airport_common::Shutdown::new(),
            airport_common::Health::new(),
        );
        let client = airport_common::HttpClient::default();
        for path in ["/ok", "/ok", "/bad", "/boom"] {
            client
                .send(
                    axum::http::Method::POST,
                    &format!("{}{path}", running.url()),
                    &[],
                    bytes::Bytes::new(),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
        }
        let pool = InferencePool::new("t", 1, 0).unwrap();
        let page = render_metrics("svc", &counters, &pool);
        for line in [
            "svc_requests_total 4",
            "svc_requests_ok_total 2",
            "svc_requests_refused_total 1",
            "svc_requests_failed_total 1",
            "svc_pool_workers 1",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} not in {page}");
        }
        running.stop().await.unwrap();
    }

    #[test]
    fn a_missing_model_dir_is_one_clear_line() {
        let e = require_models_dir(Path::new("/nonexistent/models")).unwrap_err();
        assert_eq!(
            e,
            "models not found in /nonexistent/models: run make models"
        );
    }

    #[test]
    fn the_image_s_faults_are_4xx_and_ours_500() {
        let code = |e: VisionError| {
            let a = vision_error(e);
            (a.status().as_u16(), a.code().to_string())
        };
        assert_eq!(code(DecodeError::Empty.into()), (400, "empty_body".into()));
        let big = DecodeError::TooLarge {
            width: 9,
            height: 9,
            pixels: 81,
            max_pixels: 80,
        };
        assert_eq!(code(big.into()), (413, "image_too_large".into()));
        assert_eq!(
            code(DecodeError::Truncated("eof".into()).into()),
            (422, "bad_image".into())
        );
        let ours = VisionError::Inference {
            model: "detector",
            message: "x".into(),
        };
        assert_eq!(code(ours), (500, "internal".into()));
        assert_eq!(millis(Duration::from_micros(41_500)), 41.5);
    }
}
