//! The collector: receives frames from the camera agents (`POST /frames`),
//! sends each to image analysis and face recognition at the same time, then
//! forwards the statistics to the frame's section and every match to alerts.
//!
//! - **Backpressure**: at most `COLLECTOR_MAX_IN_FLIGHT` frames are processed
//!   at once; one more is refused at once with `503` and `Retry-After`, never
//!   queued.
//! - **Timeouts**: every downstream call has its own deadline; a slow, failing
//!   or missing service makes that frame answer `504`/`502`, is counted in
//!   `/metrics` and logged, and the collector keeps serving.
//! - **Idempotency**: the camera's frame id goes with every call. Frames
//!   processed recently are answered `duplicate` without calling anything;
//!   the section and alerts stores are idempotent by frame id too, so a retry
//!   after a collector restart is still never counted twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airport_common::config::{Lookup, base_url, parse_pairs};
use airport_common::contract::{
    ANALYZE_PATH, AnalysisResponse, FRAME_ID_HEADER, RECOGNIZE_PATH, RecognitionResponse,
};
use airport_common::imaging::{self, ImageInfo};
use airport_common::types::{
    Alert, Frame, FrameId, FrameImage, FrameOutcome, FrameStatus, Id, Person, StatsRecord,
};
use airport_common::{
    ApiError, ApiJson, BoxError, ClientError, ConfigError, Health, HttpClient, Running, Shutdown,
    health,
};
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The collector's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR`, default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// `SERVICE_VERSION`, default `v1`.
    pub version: String,
    /// `IMAGE_ANALYSIS_URL`, default `http://image-analysis:8080`.
    pub image_analysis_url: String,
    /// `FACE_RECOGNITION_URL`, default `http://face-recognition:8080`.
    pub face_recognition_url: String,
    /// `ALERTS_URL`, default `http://alerts:8080`.
    pub alerts_url: String,
    /// `COLLECTOR_SECTIONS`, default `1=http://section-1:8080`: section id → section service.
    pub sections: HashMap<Id, String>,
    /// `COLLECTOR_CAMERAS`: comma-separated camera ids accepted; empty (default) accepts any.
    pub cameras: HashSet<Id>,
    /// `COLLECTOR_MAX_IN_FLIGHT`, default 8: frames processed at once.
    pub max_in_flight: usize,
    /// `COLLECTOR_RETRY_AFTER_SECS`, default 1: the `Retry-After` of a 503.
    pub retry_after_secs: u32,
    /// `ANALYSIS_TIMEOUT_MS`, default 5000.
    pub analysis_timeout: Duration,
    /// `RECOGNITION_TIMEOUT_MS`, default 5000.
    pub recognition_timeout: Duration,
    /// `STORE_TIMEOUT_MS`, default 2000: section and alerts calls.
    pub store_timeout: Duration,
    /// `MAX_BODY_BYTES`, default 8 MiB: the largest frame accepted.
    pub max_body_bytes: usize,
    /// `MAX_IMAGE_PIXELS`, default 16 Mpx.
    pub max_image_pixels: u64,
    /// `COLLECTOR_FORWARD_IMAGES`, default `true`: send the photo with the statistics (dashboard v2).
    pub forward_images: bool,
    /// `COLLECTOR_DEDUP_CAPACITY`, default 10000: recent frame ids remembered.
    pub dedup_capacity: usize,
}

fn id_list(l: &Lookup, name: &str) -> Result<HashSet<Id>, ConfigError> {
    let raw = l.string(name, "");
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Id::new(s).map_err(|e| ConfigError::new(name, &raw, e)))
        .collect()
}

impl Config {
    /// Reads the configuration.
    pub fn from_lookup(l: &Lookup) -> Result<Self, ConfigError> {
        let url = |name: &str, default: &str| base_url(name, &l.string(name, default));
        let sections_raw = l.string("COLLECTOR_SECTIONS", "1=http://section-1:8080");
        let mut sections = HashMap::new();
        for (k, v) in parse_pairs("COLLECTOR_SECTIONS", &sections_raw)? {
            let id =
                Id::new(k).map_err(|e| ConfigError::new("COLLECTOR_SECTIONS", &sections_raw, e))?;
            sections.insert(id, base_url("COLLECTOR_SECTIONS", &v)?);
        }
        Ok(Self {
            listen: l.listen_addr()?,
            version: l.version()?,
            image_analysis_url: url("IMAGE_ANALYSIS_URL", "http://image-analysis:8080")?,
            face_recognition_url: url("FACE_RECOGNITION_URL", "http://face-recognition:8080")?,
            alerts_url: url("ALERTS_URL", "http://alerts:8080")?,
            sections,
            cameras: id_list(l, "COLLECTOR_CAMERAS")?,
            max_in_flight: l.bounded("COLLECTOR_MAX_IN_FLIGHT", 8, 1, 10_000)?,
            retry_after_secs: l.bounded("COLLECTOR_RETRY_AFTER_SECS", 1, 1, 3600)?,
            analysis_timeout: l.millis("ANALYSIS_TIMEOUT_MS", 5000)?,
            recognition_timeout: l.millis("RECOGNITION_TIMEOUT_MS", 5000)?,
            store_timeout: l.millis("STORE_TIMEOUT_MS", 2000)?,
            max_body_bytes: l.bounded("MAX_BODY_BYTES", 8 << 20, 1024, 256 << 20)?,
            max_image_pixels: l.bounded("MAX_IMAGE_PIXELS", 16_000_000, 1, 400_000_000)?,
            forward_images: l.parse("COLLECTOR_FORWARD_IMAGES", true)?,
            dedup_capacity: l.bounded("COLLECTOR_DEDUP_CAPACITY", 10_000, 1, 10_000_000)?,
        })
    }
}

/// Counters exposed at `/metrics` (Prometheus text format).
#[derive(Debug, Default)]
pub struct Metrics {
    received: AtomicU64,
    processed: AtomicU64,
    duplicates: AtomicU64,
    overloaded: AtomicU64,
    bad_requests: AtomicU64,
    alerts_raised: AtomicU64,
    in_flight: AtomicU64,
    analysis_failures: AtomicU64,
    analysis_timeouts: AtomicU64,
    recognition_failures: AtomicU64,
    recognition_timeouts: AtomicU64,
    section_failures: AtomicU64,
    alerts_failures: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    fn render(&self) -> String {
        let rows: [(&str, &str, &AtomicU64); 13] = [
            ("collector_frames_received_total", "counter", &self.received),
            (
                "collector_frames_processed_total",
                "counter",
                &self.processed,
            ),
            (
                "collector_frames_duplicate_total",
                "counter",
                &self.duplicates,
            ),
            (
                "collector_frames_overloaded_total",
                "counter",
                &self.overloaded,
            ),
            (
                "collector_bad_requests_total",
                "counter",
                &self.bad_requests,
            ),
            (
                "collector_alerts_raised_total",
                "counter",
                &self.alerts_raised,
            ),
            ("collector_frames_in_flight", "gauge", &self.in_flight),
            (
                "collector_analysis_failures_total",
                "counter",
                &self.analysis_failures,
            ),
            (
                "collector_analysis_timeouts_total",
                "counter",
                &self.analysis_timeouts,
            ),
            (
                "collector_recognition_failures_total",
                "counter",
                &self.recognition_failures,
            ),
            (
                "collector_recognition_timeouts_total",
                "counter",
                &self.recognition_timeouts,
            ),
            (
                "collector_section_failures_total",
                "counter",
                &self.section_failures,
            ),
            (
                "collector_alerts_failures_total",
                "counter",
                &self.alerts_failures,
            ),
        ];
        let mut out = String::new();
        for (name, kind, v) in rows {
            let _ = writeln!(
                out,
                "# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// Recently seen frame ids: those being processed and those done.
#[derive(Debug)]
struct Dedup {
    in_flight: HashSet<FrameId>,
    done: HashSet<FrameId>,
    order: VecDeque<FrameId>,
    capacity: usize,
}

enum Begin {
    Started,
    InFlight,
    Done,
}

impl Dedup {
    fn begin(&mut self, id: &FrameId) -> Begin {
        if self.done.contains(id) {
            Begin::Done
        } else if !self.in_flight.insert(id.clone()) {
            Begin::InFlight
        } else {
            Begin::Started
        }
    }

    fn finish(&mut self, id: &FrameId, completed: bool) {
        self.in_flight.remove(id);
        if completed && self.done.insert(id.clone()) {
            self.order.push_back(id.clone());
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.done.remove(&old);
                }
            }
        }
    }
}

/// Removes the frame from the in-flight set however the handler ends.
struct InFlightGuard {
    dedup: Arc<Mutex<Dedup>>,
    id: FrameId,
    completed: bool,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut d) = self.dedup.lock() {
            d.finish(&self.id, self.completed);
        }
    }
}

#[derive(Debug, Clone)]
struct AppState {
    config: Arc<Config>,
    client: HttpClient,
    permits: Arc<Semaphore>,
    dedup: Arc<Mutex<Dedup>>,
    metrics: Arc<Metrics>,
}

/// Builds the router (with `/status`, `/healthz`, `/readyz`, `/metrics`).
pub fn router(config: Config, health: Health) -> Router {
    let status = health::status_line("Collector", &config.version);
    let limit = config.max_body_bytes;
    let state = AppState {
        permits: Arc::new(Semaphore::new(config.max_in_flight)),
        dedup: Arc::new(Mutex::new(Dedup {
            in_flight: HashSet::new(),
            done: HashSet::new(),
            order: VecDeque::new(),
            capacity: config.dedup_capacity,
        })),
        config: Arc::new(config),
        client: HttpClient::default(),
        metrics: Arc::new(Metrics::default()),
    };
    Router::new()
        .route("/frames", post(post_frame))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(health::routes(status, health))
        .method_not_allowed_fallback(airport_common::error::method_not_allowed_fallback)
        .fallback(airport_common::error::not_found_fallback)
        .layer(DefaultBodyLimit::max(limit))
}

async fn metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
}

fn validate(config: &Config, frame: &Frame) -> Result<(Bytes, ImageInfo), ApiError> {
    if !config.cameras.is_empty() && !config.cameras.contains(&frame.camera_id) {
        return Err(ApiError::unprocessable(
            "unknown_camera",
            format!("unknown camera {}", frame.camera_id),
        ));
    }
    if !config.sections.contains_key(&frame.section) {
        return Err(ApiError::unprocessable(
            "unknown_section",
            format!("unknown section {}", frame.section),
        ));
    }
    let bytes = B64
        .decode(frame.image.as_bytes())
        .map_err(|e| ApiError::unprocessable("bad_image", format!("image is not base64: {e}")))?;
    let info = imaging::inspect(&bytes, config.max_image_pixels)
        .map_err(|e| ApiError::unprocessable("bad_image", e.to_string()))?;
    Ok((Bytes::from(bytes), info))
}

async fn post_frame(
    State(state): State<AppState>,
    payload: Result<ApiJson<Frame>, ApiError>,
) -> Result<Json<FrameOutcome>, ApiError> {
    let m = &state.metrics;
    inc(&m.received);
    let frame = match payload {
        Ok(ApiJson(f)) => f,
        Err(e) => {
            inc(&m.bad_requests);
            return Err(e);
        }
    };
    let (image, info) = validate(&state.config, &frame).inspect_err(|_| inc(&m.bad_requests))?;

    let begin = match state.dedup.lock() {
        Ok(mut d) => d.begin(&frame.frame_id),
        Err(_) => return Err(ApiError::internal("dedup state poisoned")),
    };
    match begin {
        Begin::Done => {
            inc(&m.duplicates);
            tracing::info!(frame_id = %frame.frame_id, "duplicate frame: already processed");
            return Ok(Json(FrameOutcome {
                frame_id: frame.frame_id,
                status: FrameStatus::Duplicate,
                people: 0,
                matches: 0,
            }));
        }
        Begin::InFlight => {
            inc(&m.duplicates);
            return Err(ApiError::conflict(
                "in_flight",
                format!("frame {} is being processed", frame.frame_id),
            )
            .with_retry_after(state.config.retry_after_secs));
        }
        Begin::Started => {}
    }
    let mut guard = InFlightGuard {
        dedup: state.dedup.clone(),
        id: frame.frame_id.clone(),
        completed: false,
    };
    let Ok(_permit) = state.permits.clone().try_acquire_owned() else {
        inc(&m.overloaded);
        tracing::warn!(frame_id = %frame.frame_id, "overloaded: frame refused");
        return Err(ApiError::overloaded(
            format!(
                "collector is processing {} frames, its limit; retry later",
                state.config.max_in_flight
            ),
            state.config.retry_after_secs,
        ));
    };
    m.in_flight.fetch_add(1, Ordering::Relaxed);
    let result = process(&state, &frame, image, info).await;
    m.in_flight.fetch_sub(1, Ordering::Relaxed);
    let outcome = result?;
    guard.completed = true;
    inc(&m.processed);
    Ok(Json(outcome))
}

/// One failed downstream step.
struct Failure {
    what: &'static str,
    timeout: bool,
    message: String,
}

enum CallError {
    /// The vision service refused the image (4xx): the frame's fault.
    Refused(String),
    /// Slow, failing or gone.
    Failed(Failure),
}

async fn call_vision<T: serde::de::DeserializeOwned>(
    state: &AppState,
    what: &'static str,
    url: String,
    frame_id: &FrameId,
    image: Bytes,
    info: ImageInfo,
    deadline: Duration,
) -> Result<T, CallError> {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(info.content_type())),
        (
            HeaderName::from_static(FRAME_ID_HEADER),
            HeaderValue::from_str(frame_id.as_str())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
        ),
    ];
    let failed = |timeout: bool, message: String| {
        CallError::Failed(Failure {
            what,
            timeout,
            message,
        })
    };
    match state
        .client
        .send(Method::POST, &url, &headers, image, deadline)
        .await
    {
        Ok(resp) if resp.status.is_success() => {
            resp.json::<T>().map_err(|e| failed(false, e.to_string()))
        }
        Ok(resp) if resp.status.is_client_error() && resp.status.as_u16() != 429 => {
            Err(CallError::Refused(resp.error_summary()))
        }
        Ok(resp) => Err(failed(false, resp.error_summary())),
        Err(e) => Err(failed(e.is_timeout(), e.to_string())),
    }
}

fn store_failure(
    what: &'static str,
    r: Result<airport_common::HttpResponse, ClientError>,
) -> Option<Failure> {
    match r {
        Ok(resp) if resp.status.is_success() => None,
        Ok(resp) => Some(Failure {
            what,
            timeout: false,
            message: resp.error_summary(),
        }),
        Err(e) => Some(Failure {
            what,
            timeout: e.is_timeout(),
            message: e.to_string(),
        }),
    }
}

async fn process(
    state: &AppState,
    frame: &Frame,
    image: Bytes,
    info: ImageInfo,
) -> Result<FrameOutcome, ApiError> {
    let cfg = &state.config;
    let m = &state.metrics;
    let (analysis, recognition) = tokio::join!(
        call_vision::<AnalysisResponse>(
            state,
            "image analysis",
            format!("{}{ANALYZE_PATH}", cfg.image_analysis_url),
            &frame.frame_id,
            image.clone(),
            info,
            cfg.analysis_timeout,
        ),
        call_vision::<RecognitionResponse>(
            state,
            "face recognition",
            format!("{}{RECOGNIZE_PATH}", cfg.face_recognition_url),
            &frame.frame_id,
            image,
            info,
            cfg.recognition_timeout,
        ),
    );

    let mut failures: Vec<Failure> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let mut people = 0;
    let mut matches = 0;

    let stats_call = async {
        let analysis = match analysis {
            Ok(a) => a,
            Err(e) => return Err(e),
        };
        let record = StatsRecord {
            frame_id: frame.frame_id.clone(),
            camera_id: frame.camera_id.clone(),
            section: frame.section.clone(),
            event: frame.event,
            timestamp: frame.timestamp,
            count: analysis
                .count
                .max(u32::try_from(analysis.faces.len()).unwrap_or(u32::MAX)),
            people: analysis
                .faces
                .iter()
                .map(|f| Person {
                    gender: f.gender,
                    gender_confidence: f.gender_confidence,
                    age: f.age,
                    age_bracket: f.age_bracket,
                    bbox: Some(f.bbox),
                })
                .collect(),
            image: cfg.forward_images.then(|| FrameImage {
                content_type: info.content_type().to_string(),
                width: info.width,
                height: info.height,
                data: frame.image.clone(),
            }),
        };
        let section_url = cfg
            .sections
            .get(&frame.section)
            .map(|u| format!("{u}/stats"))
            .unwrap_or_default();
        let r = state
            .client
            .post_json(&section_url, &record, cfg.store_timeout)
            .await;
        Ok((record.count, store_failure("section", r)))
    };

    let alerts_call = async {
        let recognition = match recognition {
            Ok(r) => r,
            Err(e) => return Err(e),
        };
        let mut failed = Vec::new();
        let url = format!("{}/alerts", cfg.alerts_url);
        for hit in &recognition.matches {
            let alert = Alert {
                frame_id: frame.frame_id.clone(),
                camera_id: frame.camera_id.clone(),
                section: frame.section.clone(),
                event: frame.event,
                timestamp: frame.timestamp,
                name: hit.name.clone(),
                confidence: hit.similarity.clamp(0.0, 1.0),
                bbox: Some(hit.bbox),
            };
            let r = state
                .client
                .post_json(&url, &alert, cfg.store_timeout)
                .await;
            if let Some(f) = store_failure("alerts", r) {
                failed.push(f);
            }
        }
        let n = u32::try_from(recognition.matches.len()).unwrap_or(u32::MAX);
        Ok((n, failed))
    };

    let (stats_result, alerts_result) = tokio::join!(stats_call, alerts_call);
    match stats_result {
        Ok((count, failure)) => {
            people = count;
            if let Some(f) = failure {
                inc(&m.section_failures);
                failures.push(f);
            }
        }
        Err(CallError::Refused(msg)) => {
            refused.push(format!("image analysis refused the image: {msg}"))
        }
        Err(CallError::Failed(f)) => {
            inc(if f.timeout {
                &m.analysis_timeouts
            } else {
                &m.analysis_failures
            });
            failures.push(f);
        }
    }
    match alerts_result {
        Ok((n, failed)) => {
            matches = n;
            for f in failed {
                inc(&m.alerts_failures);
                failures.push(f);
            }
            if matches > 0 && failures.iter().all(|f| f.what != "alerts") {
                m.alerts_raised
                    .fetch_add(u64::from(matches), Ordering::Relaxed);
            }
        }
        Err(CallError::Refused(msg)) => {
            refused.push(format!("face recognition refused the image: {msg}"))
        }
        Err(CallError::Failed(f)) => {
            inc(if f.timeout {
                &m.recognition_timeouts
            } else {
                &m.recognition_failures
            });
            failures.push(f);
        }
    }

    if !refused.is_empty() && failures.is_empty() {
        inc(&m.bad_requests);
        return Err(ApiError::unprocessable("bad_image", refused.join("; ")));
    }
    if !failures.is_empty() {
        let message = failures
            .iter()
            .map(|f| format!("{}: {}", f.what, f.message))
            .chain(refused)
            .collect::<Vec<_>>()
            .join("; ");
        tracing::warn!(frame_id = %frame.frame_id, %message, "frame not fully processed");
        return Err(if failures.iter().all(|f| f.timeout) {
            ApiError::gateway_timeout("downstream_timeout", message)
        } else {
            ApiError::bad_gateway("downstream_failed", message)
        });
    }
    tracing::info!(frame_id = %frame.frame_id, section = %frame.section, people, matches, "frame processed");
    Ok(FrameOutcome {
        frame_id: frame.frame_id.clone(),
        status: FrameStatus::Processed,
        people,
        matches,
    })
}

/// Serves on `listener` in the background.
pub fn start(config: Config, listener: TcpListener) -> Running {
    let health = Health::new();
    let app = router(config, health.clone());
    airport_common::spawn(listener, app, Shutdown::new(), health)
}

/// Runs until `shutdown` fires.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), BoxError> {
    let listener = TcpListener::bind(config.listen).await?;
    let health = Health::new();
    let app = router(config, health.clone());
    airport_common::serve(listener, app, shutdown, health).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn id(s: &str) -> FrameId {
        FrameId::new(s).unwrap()
    }

    #[test]
    fn dedup_tracks_in_flight_and_done_frames() {
        let mut d = Dedup {
            in_flight: HashSet::new(),
            done: HashSet::new(),
            order: VecDeque::new(),
            capacity: 2,
        };
        assert!(matches!(d.begin(&id("a")), Begin::Started));
        assert!(matches!(d.begin(&id("a")), Begin::InFlight));
        d.finish(&id("a"), false);
        assert!(
            matches!(d.begin(&id("a")), Begin::Started),
            "a failed frame may be retried"
        );
        d.finish(&id("a"), true);
        assert!(matches!(d.begin(&id("a")), Begin::Done));
        for f in ["b", "c"] {
            assert!(matches!(d.begin(&id(f)), Begin::Started));
            d.finish(&id(f), true);
        }
        assert!(
            matches!(d.begin(&id("a")), Begin::Started),
            "the oldest is forgotten past capacity"
        );
        assert!(matches!(d.begin(&id("c")), Begin::Done));
    }

    #[test]
    fn metrics_render_in_prometheus_text() {
        let m = Metrics::default();
        inc(&m.received);
        let text = m.render();
        assert!(text.contains(
            "# TYPE collector_frames_received_total counter\ncollector_frames_received_total 1\n"
        ));
        assert!(text.contains("collector_frames_in_flight 0\n"));
    }
}
