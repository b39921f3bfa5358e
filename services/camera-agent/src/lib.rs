//! The camera agent: one per camera. While streaming it sends the images of
//! a folder (the demo's frames), one after the other in a loop, to its
//! destination (the collector's `POST /frames`) at a set rate. Each frame
//! gets a unique id that its retries keep, so the pipeline never counts a
//! frame twice.
//!
//! - `POST /start` (optional JSON [`CameraStart`]: section, event, destination,
//!   fps; unset fields fall back to the agent's config) starts or restarts
//!   streaming; `POST /stop` stops it and returns once the frame being sent is done.
//! - `GET /state` answers exactly the seed's shape:
//!   `{"streaming":true,"cycle":7,"fps":0,"section":"1","destination":"http://...","event":"exit"}`
//!   where `cycle` counts frames the destination accepted and `fps` is measured.
//! - Backpressure: a `503` from the collector is retried after its
//!   `Retry-After` (capped), other 5xx and transport errors after a short
//!   backoff, up to `CAMERA_MAX_RETRIES`; a 4xx is not retried.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airport_common::config::{Lookup, base_url};
use airport_common::types::{CameraStart, CameraState, Event, Frame, FrameId, Id};
use airport_common::{
    ApiError, BoxError, ConfigError, Health, HttpClient, Running, Shutdown, Timestamp, health,
    imaging,
};
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

/// The camera agent's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR`, default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// `SERVICE_VERSION`, default `v1`.
    pub version: String,
    /// `CAMERA_ID`, default `1`.
    pub camera_id: Id,
    /// `CAMERA_SECTION`: default section when `/start` names none (unset by default).
    pub section: Option<Id>,
    /// `CAMERA_EVENT` (`entry`|`exit`): default event (unset by default).
    pub event: Option<Event>,
    /// `CAMERA_DESTINATION`: default collector base URL (unset by default).
    pub destination: Option<String>,
    /// `CAMERA_FPS`, default 1: frames per second to send.
    pub fps: f64,
    /// `CAMERA_FRAMES_DIR`, default `frames`: the JPEG/PNG files to stream, in name order.
    pub frames_dir: PathBuf,
    /// `CAMERA_AUTOSTART`, default `false`: start streaming at boot with the defaults above.
    pub autostart: bool,
    /// `CAMERA_TIMEOUT_MS`, default 10000: deadline of one frame's `POST`.
    pub timeout: Duration,
    /// `CAMERA_MAX_RETRIES`, default 3: retries of one frame.
    pub max_retries: u32,
    /// `CAMERA_MAX_RETRY_WAIT_MS`, default 5000: cap on one wait before a retry.
    pub max_retry_wait: Duration,
    /// `MAX_IMAGE_PIXELS`, default 16 Mpx: larger files in the folder are skipped.
    pub max_image_pixels: u64,
}

impl Config {
    /// Reads the configuration.
    pub fn from_lookup(l: &Lookup) -> Result<Self, ConfigError> {
        let id_raw = l.string("CAMERA_ID", "1");
        let camera_id =
            Id::new(id_raw.clone()).map_err(|e| ConfigError::new("CAMERA_ID", &id_raw, e))?;
        let section = l
            .raw("CAMERA_SECTION")
            .map(|s| Id::new(s.clone()).map_err(|e| ConfigError::new("CAMERA_SECTION", &s, e)))
            .transpose()?;
        let event = l
            .raw("CAMERA_EVENT")
            .map(|s| {
                s.parse::<Event>()
                    .map_err(|e| ConfigError::new("CAMERA_EVENT", &s, e))
            })
            .transpose()?;
        let destination = l
            .raw("CAMERA_DESTINATION")
            .map(|s| base_url("CAMERA_DESTINATION", &s))
            .transpose()?;
        let fps: f64 = l.parse("CAMERA_FPS", 1.0)?;
        if !(MIN_FPS..=MAX_FPS).contains(&fps) {
            return Err(ConfigError::new(
                "CAMERA_FPS",
                &fps.to_string(),
                format!("must be from {MIN_FPS} to {MAX_FPS}"),
            ));
        }
        Ok(Self {
            listen: l.listen_addr()?,
            version: l.version()?,
            camera_id,
            section,
            event,
            destination,
            fps,
            frames_dir: PathBuf::from(l.string("CAMERA_FRAMES_DIR", "frames")),
            autostart: l.parse("CAMERA_AUTOSTART", false)?,
            timeout: l.millis("CAMERA_TIMEOUT_MS", 10_000)?,
            max_retries: l.bounded("CAMERA_MAX_RETRIES", 3, 0, 100)?,
            max_retry_wait: l.millis("CAMERA_MAX_RETRY_WAIT_MS", 5000)?,
            max_image_pixels: l.bounded("MAX_IMAGE_PIXELS", 16_000_000, 1, 400_000_000)?,
        })
    }
}

const MIN_FPS: f64 = 0.1;
const MAX_FPS: f64 = 100.0;
const FPS_WINDOW: Duration = Duration::from_secs(5);

/// Loads the JPEG and PNG files of `dir`, in name order, base64-encoded.
/// Files that are not images are skipped with a warning.
pub fn load_frames(dir: &Path, max_pixels: u64) -> Result<Vec<Arc<str>>, ApiError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ApiError::conflict(
            "no_frames",
            format!("cannot read frames folder {}: {e}", dir.display()),
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    paths.sort();
    let mut frames = Vec::new();
    for p in paths {
        match std::fs::read(&p) {
            Ok(bytes) => match imaging::inspect(&bytes, max_pixels) {
                Ok(_) => frames.push(Arc::from(B64.encode(&bytes))),
                Err(e) => tracing::warn!(file = %p.display(), error = %e, "skipping file"),
            },
            Err(e) => tracing::warn!(file = %p.display(), error = %e, "cannot read file"),
        }
    }
    if frames.is_empty() {
        return Err(ApiError::conflict(
            "no_frames",
            format!("no JPEG or PNG frames in {}", dir.display()),
        ));
    }
    Ok(frames)
}

/// What a running stream was started with.
#[derive(Debug, Clone)]
struct Active {
    section: Id,
    event: Event,
    destination: String,
    fps: f64,
}

#[derive(Debug, Default)]
struct Counters {
    cycle: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
}

#[derive(Debug)]
struct Stream {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Control {
    active: Option<Active>,
    stream: Option<Stream>,
}

/// The agent's shared state.
#[derive(Debug, Clone)]
pub struct Agent {
    config: Arc<Config>,
    client: HttpClient,
    counters: Arc<Counters>,
    accepted_at: Arc<std::sync::Mutex<VecDeque<Instant>>>,
    control: Arc<Mutex<Control>>,
    /// Distinguishes this process's frame ids from an earlier run's.
    boot: u64,
    seq: Arc<AtomicU64>,
}

impl Agent {
    /// A stopped agent.
    pub fn new(config: Config) -> Self {
        let boot = u64::try_from(Timestamp::now().unix_micros()).unwrap_or(0);
        Self {
            config: Arc::new(config),
            client: HttpClient::new(1 << 20),
            counters: Arc::new(Counters::default()),
            accepted_at: Arc::new(std::sync::Mutex::new(VecDeque::new())),
            control: Arc::new(Mutex::new(Control::default())),
            boot,
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The seed-shaped state.
    pub async fn state(&self) -> CameraState {
        let control = self.control.lock().await;
        let streaming = control.stream.is_some();
        CameraState {
            streaming,
            cycle: self.counters.cycle.load(Ordering::Relaxed),
            fps: if streaming { self.measured_fps() } else { 0 },
            section: control.active.as_ref().map(|a| a.section.clone()),
            destination: control.active.as_ref().map(|a| a.destination.clone()),
            event: control.active.as_ref().map(|a| a.event),
        }
    }

    fn measured_fps(&self) -> u32 {
        let Ok(mut times) = self.accepted_at.lock() else {
            return 0;
        };
        let now = Instant::now();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > FPS_WINDOW)
        {
            times.pop_front();
        }
        let n = times.len() as f64;
        (n / FPS_WINDOW.as_secs_f64()).round() as u32
    }

    fn resolve(&self, req: CameraStart) -> Result<Active, ApiError> {
        let section = req
            .section
            .or_else(|| self.config.section.clone())
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "missing_field",
                    "section: not given and CAMERA_SECTION is unset",
                )
            })?;
        let event = req.event.or(self.config.event).ok_or_else(|| {
            ApiError::unprocessable(
                "missing_field",
                "event: not given and CAMERA_EVENT is unset",
            )
        })?;
        let destination = match req.destination {
            Some(d) => base_url("destination", &d)
                .map_err(|e| ApiError::unprocessable("invalid_field", e.to_string()))?,
            None => self.config.destination.clone().ok_or_else(|| {
                ApiError::unprocessable(
                    "missing_field",
                    "destination: not given and CAMERA_DESTINATION is unset",
                )
            })?,
        };
        let fps = req.fps.unwrap_or(self.config.fps);
        if !(MIN_FPS..=MAX_FPS).contains(&fps) {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!("fps must be from {MIN_FPS} to {MAX_FPS}, got {fps}"),
            ));
        }
        Ok(Active {
            section,
            event,
            destination,
            fps,
        })
    }

    /// Starts (or restarts with new settings) streaming.
    pub async fn start(&self, req: CameraStart) -> Result<CameraState, ApiError> {
        let active = self.resolve(req)?;
        let frames = {
            let dir = self.config.frames_dir.clone();
            let max = self.config.max_image_pixels;
            tokio::task::spawn_blocking(move || load_frames(&dir, max))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??
        };
        let mut control = self.control.lock().await;
        if let Some(old) = control.stream.take() {
            stop_stream(old).await;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(self.clone().stream(active.clone(), frames, stop_rx));
        tracing::info!(
            camera = %self.config.camera_id,
            section = %active.section,
            event = %active.event,
            destination = %active.destination,
            fps = active.fps,
            "streaming started"
        );
        control.active = Some(active);
        control.stream = Some(Stream {
            stop: stop_tx,
            task,
        });
        drop(control);
        Ok(self.state().await)
    }

    /// Stops streaming; returns once the frame being sent is done.
    pub async fn stop(&self) -> CameraState {
        let mut control = self.control.lock().await;
        if let Some(old) = control.stream.take() {
            stop_stream(old).await;
            tracing::info!(camera = %self.config.camera_id, "streaming stopped");
        }
        drop(control);
        self.state().await
    }

    async fn stream(self, active: Active, frames: Vec<Arc<str>>, mut stop: watch::Receiver<bool>) {
        let period = Duration::from_secs_f64(1.0 / active.fps);
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let url = format!("{}/frames", active.destination);
        let mut index = 0usize;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = ticker.tick() => {}
            }
            let Some(image) = frames.get(index % frames.len()) else {
                return;
            };
            index = index.wrapping_add(1);
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let frame_id = match FrameId::new(format!(
                "cam{}-{:x}-{seq}",
                self.config.camera_id, self.boot
            )) {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build a frame id");
                    return;
                }
            };
            let frame = Frame {
                frame_id,
                camera_id: self.config.camera_id.clone(),
                section: active.section.clone(),
                event: active.event,
                timestamp: Timestamp::now(),
                image: image.to_string(),
            };
            let body = match serde_json::to_vec(&frame) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode a frame");
                    return;
                }
            };
            if !self.send(&url, &frame.frame_id, body, &mut stop).await {
                return;
            }
        }
    }

    /// Sends one frame with retries; `false` if stopping.
    async fn send(
        &self,
        url: &str,
        frame_id: &FrameId,
        body: Bytes,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let headers = [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )];
        let mut attempt = 0u32;
        loop {
            let result = self
                .client
                .send(
                    axum::http::Method::POST,
                    url,
                    &headers,
                    body.clone(),
                    self.config.timeout,
                )
                .await;
            let wait = match result {
                Ok(resp) if resp.status.is_success() => {
                    self.counters.cycle.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut t) = self.accepted_at.lock() {
                        t.push_back(Instant::now());
                        if t.len() > 10_000 {
                            t.pop_front();
                        }
                    }
                    return true;
                }
                Ok(resp)
                    if resp.status.is_client_error()
                        && resp.status.as_u16() != 409
                        && resp.status.as_u16() != 429 =>
                {
                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%frame_id, error = %resp.error_summary(), "frame rejected");
                    return true;
                }
                Ok(resp) => {
                    let wait = resp
                        .retry_after_secs()
                        .map_or(Duration::from_millis(200), Duration::from_secs);
                    tracing::info!(%frame_id, attempt, error = %resp.error_summary(), "frame not accepted; will retry");
                    wait
                }
                Err(e) => {
                    tracing::info!(%frame_id, attempt, error = %e, "frame not sent; will retry");
                    Duration::from_millis(200)
                }
            };
            if attempt >= self.config.max_retries {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%frame_id, "frame dropped after retries");
                return true;
            }
            attempt += 1;
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            let wait = wait.min(self.config.max_retry_wait);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return false,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn metrics(&self) -> String {
        let c = &self.counters;
        format!(
            "# TYPE camera_frames_accepted_total counter\ncamera_frames_accepted_total {}\n\
             # TYPE camera_frame_retries_total counter\ncamera_frame_retries_total {}\n\
             # TYPE camera_frames_dropped_total counter\ncamera_frames_dropped_total {}\n\
             # TYPE camera_frames_rejected_total counter\ncamera_frames_rejected_total {}\n",
            c.cycle.load(Ordering::Relaxed),
            c.retries.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
            c.rejected.load(Ordering::Relaxed),
        )
    }
}

async fn stop_stream(stream: Stream) {
    stream.stop.send_replace(true);
    if let Err(e) = stream.task.await {
        tracing::warn!(error = %e, "stream task ended abnormally");
    }
}

fn parse_start(body: &[u8]) -> Result<CameraStart, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CameraStart::default());
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::unprocessable("invalid_field", e.to_string())
        }
        _ => ApiError::bad_request("invalid_json", e.to_string()),
    })
}

async fn start_handler(
    State(agent): State<Agent>,
    body: Bytes,
) -> Result<Json<CameraState>, ApiError> {
    let req = parse_start(&body)?;
    Ok(Json(agent.start(req).await?))
}

async fn stop_handler(State(agent): State<Agent>) -> Json<CameraState> {
    Json(agent.stop().await)
}

async fn state_handler(State(agent): State<Agent>) -> Json<CameraState> {
    Json(agent.state().await)
}

async fn metrics_handler(State(agent): State<Agent>) -> String {
    agent.metrics()
}

/// Builds the router (with `/status`, `/healthz`, `/readyz`).
pub fn router(agent: Agent, health: Health) -> Router {
    let status = health::status_line(
        &format!("Camera Agent {}", agent.config.camera_id),
        &agent.config.version,
    );
    Router::new()
        .route("/state", get(state_handler))
        .route("/start", post(start_handler))
        .route("/stop", post(stop_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(agent)
        .merge(health::routes(status, health))
        .method_not_allowed_fallback(airport_common::error::method_not_allowed_fallback)
        .fallback(airport_common::error::not_found_fallback)
        .layer(DefaultBodyLimit::max(64 << 10))
}

async fn autostart(agent: &Agent) {
    if agent.config.autostart
        && let Err(e) = agent.start(CameraStart::default()).await
    {
        tracing::error!(error = %e, "autostart failed; waiting for POST /start");
    }
}

/// Serves on `listener` in the background; streaming stops on shutdown.
pub async fn start(config: Config, listener: TcpListener) -> (Running, Agent) {
    let agent = Agent::new(config);
    autostart(&agent).await;
    let health = Health::new();
    let running = airport_common::spawn(
        listener,
        router(agent.clone(), health.clone()),
        Shutdown::new(),
        health,
    );
    let a = agent.clone();
    let sd = running.shutdown.clone();
    tokio::spawn(async move {
        sd.wait().await;
        a.stop().await;
    });
    (running, agent)
}

/// Runs until `shutdown` fires, then stops streaming (finishing the frame in flight).
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), BoxError> {
    let listener = TcpListener::bind(config.listen).await?;
    let agent = Agent::new(config);
    autostart(&agent).await;
    let health = Health::new();
    let app = router(agent.clone(), health.clone());
    let sd = shutdown.clone();
    let a = agent.clone();
    let stopper = tokio::spawn(async move {
        sd.wait().await;
        a.stop().await;
    });
    airport_common::serve(listener, app, shutdown, health).await?;
    if let Err(e) = stopper.await {
        tracing::warn!(error = %e, "stopping the stream failed");
    }
    Ok(())
}
