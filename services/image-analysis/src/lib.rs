//! The image analysis service: `POST /analyze` a JPEG or PNG frame and get
//! back every face found (box, five landmarks, score), each one's estimated
//! gender (with its confidence) and age (with its bracket), the number of
//! people counted, and the time each stage took. `GET /status` answers
//! `Image Analysis v1 : Online`.
//!
//! The models (CenterFace detection, the age and gender classifiers) are
//! loaded once at start from `MODELS_DIR` by `airport-vision`; a missing
//! model directory stops the service with one line saying to run
//! `make models`. Frames are analysed on a bounded pool of worker threads
//! (one per core by default) so that `/status`, the probes and the checks on
//! incoming requests never wait behind a slow frame; when every worker is
//! busy and the queue is full, a frame is refused with `503 overloaded` and
//! `Retry-After`. Every malformed request is answered with the contract's
//! 4xx code before any model runs (see `airport_vision_service::body`).

use std::sync::Arc;
use std::time::Instant;

use airport_common::config::Lookup;
use airport_common::contract::{ANALYZE_PATH, AnalysisResponse, AnalyzedFace};
use airport_common::{ApiError, BoxError, ConfigError, Health, Running, Shutdown, health};
use airport_vision::{Analysis, Analyzer, AnalyzerConfig, DecodeLimits};
use airport_vision_service::{
    ImageBody, ImageLimits, InferencePool, RequestCounters, ServingConfig, count_requests, millis,
    pool_error, render_metrics, require_models_dir, vision_error,
};
use axum::Json;
use axum::Router;
use axum::extract::{FromRef, State};
use axum::middleware;
use axum::routing::{get, post};
use tokio::net::TcpListener;

/// The image analysis service's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared with face recognition: `LISTEN_ADDR`, `SERVICE_VERSION`,
    /// `MODELS_DIR`, `VISION_WORKERS`, `VISION_QUEUE_DEPTH`,
    /// `VISION_RETRY_AFTER_SECS`, `MAX_BODY_BYTES`, `MAX_IMAGE_PIXELS`.
    pub serving: ServingConfig,
}

impl Config {
    /// Reads the configuration.
    pub fn from_lookup(l: &Lookup) -> Result<Self, ConfigError> {
        Ok(Self {
            serving: ServingConfig::from_lookup(l)?,
        })
    }
}

/// The loaded models, shared by every worker.
#[derive(Debug)]
pub struct Models {
    analyzer: Analyzer,
}

impl Models {
    /// Loads the detection, gender and age models from `MODELS_DIR` (seconds
    /// of CPU: call off the async runtime) and prepares them for the usual
    /// camera frame size.
    pub fn load(config: &Config) -> Result<Self, BoxError> {
        let serving = &config.serving;
        require_models_dir(&serving.models_dir)?;
        let mut vision = AnalyzerConfig::from_dir(&serving.models_dir);
        vision.detector.max_side = serving.detection_max_side;
        vision.detector.score_threshold = serving.detection_threshold;
        let analyzer = Analyzer::new(&vision)?;
        // tract optimises a plan per input shape on first use: do the
        // common one (640x480, one face) now, not on the first frame.
        analyzer.warm_up(640, 480, 1)?;
        Ok(Self { analyzer })
    }
}

#[derive(Debug, Clone)]
struct AppState {
    models: Arc<Models>,
    pool: InferencePool,
    counters: Arc<RequestCounters>,
    limits: ImageLimits,
    retry_after_secs: u32,
}

impl FromRef<AppState> for ImageLimits {
    fn from_ref(s: &AppState) -> Self {
        s.limits
    }
}

/// Builds the router (`POST /analyze`, `/metrics`, `/status`, `/healthz`,
/// `/readyz`).
pub fn router(config: &Config, models: Arc<Models>, pool: InferencePool, health: Health) -> Router {
    let status = health::status_line("Image Analysis", &config.serving.version);
    let counters = Arc::new(RequestCounters::default());
    let state = AppState {
        models,
        pool,
        counters: counters.clone(),
        limits: config.serving.limits,
        retry_after_secs: config.serving.retry_after_secs,
    };
    Router::new()
        .route(ANALYZE_PATH, post(analyze))
        .route_layer(middleware::from_fn_with_state(counters, count_requests))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(health::routes(status, health))
        .method_not_allowed_fallback(airport_common::error::method_not_allowed_fallback)
        .fallback(airport_common::error::not_found_fallback)
}

async fn metrics(State(state): State<AppState>) -> String {
    render_metrics("image_analysis", &state.counters, &state.pool)
}

/// Decodes and analyses one frame (on a worker).
fn analyse_frame(models: &Models, bytes: &[u8], limits: ImageLimits) -> Result<Analysis, ApiError> {
    let limits = DecodeLimits::new(limits.max_image_pixels);
    models
        .analyzer
        .analyze_bytes(bytes, &limits)
        .map_err(vision_error)
}

async fn analyze(
    State(state): State<AppState>,
    body: ImageBody,
) -> Result<Json<AnalysisResponse>, ApiError> {
    let started = Instant::now();
    let models = state.models.clone();
    let limits = state.limits;
    let bytes = body.bytes.clone();
    let ran = state
        .pool
        .run(move || analyse_frame(&models, &bytes, limits))
        .await
        .map_err(|e| pool_error(e, state.retry_after_secs))?;
    let analysis = ran.value?;
    let mut timings = analysis.timings.to_millis();
    timings.insert("queue".into(), millis(ran.queued_for));
    timings.insert("total".into(), millis(started.elapsed()));
    let faces: Vec<AnalyzedFace> = analysis.faces.iter().map(|f| f.to_contract()).collect();
    let count = u32::try_from(faces.len()).unwrap_or(u32::MAX);
    tracing::info!(
        frame_id = body.frame_id.as_ref().map(|f| f.as_str()),
        faces = count,
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "analysed"
    );
    Ok(Json(AnalysisResponse {
        frame_id: body.frame_id.map(|f| f.as_str().to_string()),
        width: analysis.width,
        height: analysis.height,
        count,
        faces,
        timings_ms: timings,
    }))
}

/// A running service and its inference pool (tests occupy the pool's
/// workers to prove the probes never wait for them).
#[derive(Debug)]
pub struct Service {
    /// The server.
    pub running: Running,
    /// Its inference pool.
    pub pool: InferencePool,
}

async fn prepare(config: &Config) -> Result<(Arc<Models>, InferencePool), BoxError> {
    let cfg = config.clone();
    let loading = Instant::now();
    let models = tokio::task::spawn_blocking(move || Models::load(&cfg)).await??;
    tracing::info!(
        models = %config.serving.models_dir.display(),
        ms = loading.elapsed().as_millis() as u64,
        workers = config.serving.workers,
        queue = config.serving.queue_depth,
        "models loaded"
    );
    let pool = InferencePool::new(
        "analysis",
        config.serving.workers,
        config.serving.queue_depth,
    )?;
    Ok((Arc::new(models), pool))
}

/// Loads the models and serves on `listener` in the background.
pub async fn start(config: Config, listener: TcpListener) -> Result<Service, BoxError> {
    let (models, pool) = prepare(&config).await?;
    let health = Health::new();
    let app = router(&config, models, pool.clone(), health.clone());
    let running = airport_common::spawn(listener, app, Shutdown::new(), health);
    Ok(Service { running, pool })
}

/// Loads the models, then serves until `shutdown` fires.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), BoxError> {
    let (models, pool) = prepare(&config).await?;
    let listener = TcpListener::bind(config.serving.listen).await?;
    let health = Health::new();
    let app = router(&config, models, pool, health.clone());
    airport_common::serve(listener, app, shutdown, health).await?;
    Ok(())
}
