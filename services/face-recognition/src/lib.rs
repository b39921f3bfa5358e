//! The face recognition service: compares every face in a frame with a
//! watchlist of persons of interest and reports who is there.
//!
//! - `POST /recognize` a JPEG or PNG frame: the number of faces found and
//!   the watchlist matches (name, cosine similarity, box) at or above the
//!   threshold (`RECOGNITION_THRESHOLD`), best first.
//! - `GET /watchlist` lists the persons enrolled; `POST /watchlist/{name}`
//!   with a photo showing exactly one face enrols that person (201);
//!   `DELETE /watchlist/{name}` removes them (204, 404 if unknown). The
//!   watchlist is kept in SQLite (`WATCHLIST_DB`) and survives restarts.
//! - `GET /status` answers `Face Recognition v1 : Online`.
//!
//! Faces are found by CenterFace, aligned on their five landmarks and
//! embedded by an ArcFace-style model (`EMBEDDING_MODEL`, by default
//! insightface's MobileFaceNet `w600k_mbf.onnx`, whose licence is
//! non-commercial); any model taking a 112x112 aligned face and returning
//! one embedding can replace it. Models load once at start from
//! `MODELS_DIR`; inference runs on a bounded worker pool (503 `overloaded`
//! with `Retry-After` when full), never on the async runtime.

pub mod watchlist;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use airport_common::config::Lookup;
use airport_common::contract::{
    BoundingBox, RECOGNIZE_PATH, RecognitionResponse, WATCHLIST_PATH, Watchlist as WatchlistPage,
    WatchlistEntry,
};
use airport_common::{ApiError, BoxError, ConfigError, Health, Running, Shutdown, health};
use airport_vision::{DecodeLimits, EmbedderConfig, Recognition, Recognizer, RecognizerConfig};
use airport_vision_service::{
    ImageBody, ImageLimits, InferencePool, RequestCounters, ServingConfig, count_requests, millis,
    pool_error, render_metrics, require_models_dir, vision_error,
};
use axum::Json;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::watchlist::{Watchlist, WatchlistError, find_matches, normalize, validate_name};

/// The default similarity threshold: for `w600k_mbf`, photos of one person
/// score well above it and photos of two people well below (see the tests).
pub const DEFAULT_THRESHOLD: f32 = 0.37;

/// The face recognition service's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared with image analysis: `LISTEN_ADDR`, `SERVICE_VERSION`,
    /// `MODELS_DIR`, `VISION_WORKERS`, `VISION_QUEUE_DEPTH`,
    /// `VISION_RETRY_AFTER_SECS`, `MAX_BODY_BYTES`, `MAX_IMAGE_PIXELS`.
    pub serving: ServingConfig,
    /// `RECOGNITION_THRESHOLD`, default 0.37: the least cosine similarity
    /// reported as a match.
    pub threshold: f32,
    /// `WATCHLIST_DB`, default `watchlist.db`: the SQLite file.
    pub watchlist_db: PathBuf,
    /// `EMBEDDING_MODEL`, default `w600k_mbf.onnx`: the embedding model's
    /// file in `MODELS_DIR`.
    pub embedding_model: String,
    /// `WATCHLIST_ENROL_DIR`, unset by default: a folder of photos
    /// (`<name>.jpg` or `.png`, one face each) enrolled at start unless that
    /// name is already on the watchlist.
    pub enrol_dir: Option<PathBuf>,
}

impl Config {
    /// Reads the configuration.
    pub fn from_lookup(l: &Lookup) -> Result<Self, ConfigError> {
        let threshold: f32 = l.parse("RECOGNITION_THRESHOLD", DEFAULT_THRESHOLD)?;
        if !(threshold.is_finite() && (-1.0..=1.0).contains(&threshold)) {
            return Err(ConfigError::new(
                "RECOGNITION_THRESHOLD",
                &threshold.to_string(),
                "must be a cosine similarity from -1 to 1",
            ));
        }
        let embedding_model = l.string("EMBEDDING_MODEL", "w600k_mbf.onnx");
        if embedding_model.contains('/') || embedding_model.starts_with('.') {
            return Err(ConfigError::new(
                "EMBEDDING_MODEL",
                &embedding_model,
                "expected a file name inside MODELS_DIR",
            ));
        }
        Ok(Self {
            serving: ServingConfig::from_lookup(l)?,
            threshold,
            watchlist_db: PathBuf::from(l.string("WATCHLIST_DB", "watchlist.db")),
            embedding_model,
            enrol_dir: l.raw("WATCHLIST_ENROL_DIR").map(PathBuf::from),
        })
    }
}

/// The loaded models, shared by every worker.
#[derive(Debug)]
pub struct Models {
    recognizer: Recognizer,
    /// Identifies the embedding model in the watchlist (file name and size).
    model_id: String,
}

impl Models {
    /// Loads the detection and embedding models from `MODELS_DIR` (seconds
    /// of CPU: call off the async runtime) and prepares them for the usual
    /// camera frame size.
    pub fn load(config: &Config) -> Result<Self, BoxError> {
        let serving = &config.serving;
        require_models_dir(&serving.models_dir)?;
        let mut vision = RecognizerConfig::from_dir(&serving.models_dir);
        vision.detector.max_side = serving.detection_max_side;
        vision.detector.score_threshold = serving.detection_threshold;
        vision.embedder = EmbedderConfig::arcface(serving.models_dir.join(&config.embedding_model));
        let recognizer = Recognizer::new(&vision)?;
        // tract optimises a plan per input shape on first use: do the
        // common one (640x480, one face) now, not on the first frame.
        recognizer.warm_up(640, 480, 1)?;
        let model_id = format!("{}/{}", config.embedding_model, recognizer.embedding_len());
        Ok(Self {
            recognizer,
            model_id,
        })
    }

    /// Floats per embedding.
    pub fn embedding_len(&self) -> usize {
        self.recognizer.embedding_len()
    }
}

/// One face: its box and its unit-length embedding.
type EmbeddedFace = (BoundingBox, Vec<f32>);

/// Decodes `bytes` and embeds every face found (on a worker).
fn embed_faces(
    models: &Models,
    bytes: &[u8],
    limits: ImageLimits,
) -> Result<(Recognition, Vec<EmbeddedFace>), ApiError> {
    let mut recognition = models
        .recognizer
        .recognize_bytes(bytes, &DecodeLimits::new(limits.max_image_pixels))
        .map_err(vision_error)?;
    let faces = std::mem::take(&mut recognition.faces)
        .into_iter()
        .map(|f| {
            let mut embedding = f.embedding.into_vec();
            normalize(&mut embedding);
            (f.face.bbox, embedding)
        })
        .collect();
    Ok((recognition, faces))
}

#[derive(Debug, Clone)]
struct AppState {
    models: Arc<Models>,
    watchlist: Arc<Watchlist>,
    pool: InferencePool,
    counters: Arc<RequestCounters>,
    limits: ImageLimits,
    threshold: f32,
    retry_after_secs: u32,
}

impl FromRef<AppState> for ImageLimits {
    fn from_ref(s: &AppState) -> Self {
        s.limits
    }
}

/// Builds the router (`POST /recognize`, the watchlist, `/metrics`,
/// `/status`, `/healthz`, `/readyz`).
pub fn router(
    config: &Config,
    models: Arc<Models>,
    watchlist: Arc<Watchlist>,
    pool: InferencePool,
    health: Health,
) -> Router {
    let status = health::status_line("Face Recognition", &config.serving.version);
    let counters = Arc::new(RequestCounters::default());
    let state = AppState {
        models,
        watchlist,
        pool,
        counters: counters.clone(),
        limits: config.serving.limits,
        threshold: config.threshold,
        retry_after_secs: config.serving.retry_after_secs,
    };
    Router::new()
        .route(RECOGNIZE_PATH, post(recognize))
        .route(WATCHLIST_PATH, get(list_watchlist))
        .route(
            &format!("{WATCHLIST_PATH}/{{name}}"),
            post(enrol).delete(remove),
        )
        .route_layer(middleware::from_fn_with_state(counters, count_requests))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(health::routes(status, health))
        .method_not_allowed_fallback(airport_common::error::method_not_allowed_fallback)
        .fallback(airport_common::error::not_found_fallback)
}

async fn metrics(State(state): State<AppState>) -> String {
    let mut page = render_metrics("face_recognition", &state.counters, &state.pool);
    let enrolled = state.watchlist.entries().map_or(0, |e| e.len());
    page.push_str(&format!(
        "# TYPE face_recognition_watchlist_entries gauge\nface_recognition_watchlist_entries {enrolled}\n"
    ));
    page
}

fn store_error(e: WatchlistError) -> ApiError {
    match e {
        WatchlistError::Duplicate(name) => ApiError::conflict(
            "already_enrolled",
            WatchlistError::Duplicate(name).to_string(),
        ),
        other => ApiError::internal(format!("watchlist storage failed: {other}")),
    }
}

async fn recognize(
    State(state): State<AppState>,
    body: ImageBody,
) -> Result<Json<RecognitionResponse>, ApiError> {
    let started = Instant::now();
    let models = state.models.clone();
    let watchlist = state.watchlist.entries().map_err(store_error)?;
    let (limits, threshold) = (state.limits, state.threshold);
    let bytes = body.bytes.clone();
    let ran = state
        .pool
        .run(move || {
            let (mut recognition, faces) = embed_faces(&models, &bytes, limits)?;
            let matches = recognition
                .timings
                .time("match", || find_matches(&faces, &watchlist, threshold));
            Ok::<_, ApiError>((recognition, faces.len(), matches))
        })
        .await
        .map_err(|e| pool_error(e, state.retry_after_secs))?;
    let (recognition, faces, matches) = ran.value?;
    let mut timings = recognition.timings.to_millis();
    timings.insert("queue".into(), millis(ran.queued_for));
    timings.insert("total".into(), millis(started.elapsed()));
    tracing::info!(
        frame_id = body.frame_id.as_ref().map(|f| f.as_str()),
        faces,
        matches = matches.len(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "recognised"
    );
    Ok(Json(RecognitionResponse {
        frame_id: body.frame_id.map(|f| f.as_str().to_string()),
        width: recognition.width,
        height: recognition.height,
        faces: u32::try_from(faces).unwrap_or(u32::MAX),
        threshold,
        matches,
        timings_ms: timings,
    }))
}

async fn list_watchlist(State(state): State<AppState>) -> Result<Json<WatchlistPage>, ApiError> {
    let entries = state.watchlist.list().map_err(store_error)?;
    Ok(Json(WatchlistPage { entries }))
}

fn invalid_name(reason: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable("invalid_name", format!("watchlist name: {reason}"))
}

/// The `{name}` of the path, checked.
fn name_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(name) = path.map_err(|e| invalid_name(e.body_text()))?;
    validate_name(&name).map_err(invalid_name)?;
    Ok(name)
}

/// The one face of an enrolment photo, or the 422 saying why not.
fn single_face(mut faces: Vec<EmbeddedFace>) -> Result<Vec<f32>, ApiError> {
    match faces.len() {
        0 => Err(ApiError::unprocessable(
            "no_face",
            "no face found in the photo: enrol with a photo showing the person's face",
        )),
        1 => Ok(faces.remove(0).1),
        n => Err(ApiError::unprocessable(
            "several_faces",
            format!("{n} faces found in the photo: enrol with a photo showing only this person"),
        )),
    }
}

async fn enrol(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: ImageBody,
) -> Result<impl IntoResponse, ApiError> {
    let name = name_of(path)?;
    // Checked before inference too, so a duplicate costs no model run.
    if state.watchlist.contains(&name).map_err(store_error)? {
        return Err(store_error(WatchlistError::Duplicate(name)));
    }
    let models = state.models.clone();
    let limits = state.limits;
    let bytes = body.bytes.clone();
    let ran = state
        .pool
        .run(move || embed_faces(&models, &bytes, limits).map(|(_, faces)| faces))
        .await
        .map_err(|e| pool_error(e, state.retry_after_secs))?;
    let embedding = single_face(ran.value?)?;
    let watchlist = state.watchlist.clone();
    let who = name.clone();
    let entry = tokio::task::spawn_blocking(move || watchlist.enrol(&who, &embedding))
        .await
        .map_err(|e| ApiError::internal(format!("watchlist task failed: {e}")))?
        .map_err(store_error)?;
    tracing::info!(name = %name, "enrolled");
    Ok((StatusCode::CREATED, Json(entry)))
}

async fn remove(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let name = name_of(path)?;
    let watchlist = state.watchlist.clone();
    let who = name.clone();
    let removed = tokio::task::spawn_blocking(move || watchlist.remove(&who))
        .await
        .map_err(|e| ApiError::internal(format!("watchlist task failed: {e}")))?
        .map_err(store_error)?;
    if removed {
        tracing::info!(name = %name, "removed from the watchlist");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "not_found",
            format!("{name:?} is not on the watchlist"),
        ))
    }
}

/// Enrols every photo of `dir` whose name (file stem) is not enrolled yet.
/// A photo that cannot be enrolled stops the start: the operator asked for it.
fn enrol_folder(
    models: &Models,
    watchlist: &Watchlist,
    dir: &std::path::Path,
    limits: ImageLimits,
) -> Result<Vec<WatchlistEntry>, BoxError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("WATCHLIST_ENROL_DIR {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| ["jpg", "jpeg", "png"].contains(&x.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    let mut enrolled = Vec::new();
    for path in files {
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let fail = |why: String| format!("cannot enrol {}: {why}", path.display());
        validate_name(&name).map_err(fail)?;
        if watchlist.contains(&name)? {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| fail(e.to_string()))?;
        let (_, faces) =
            embed_faces(models, &bytes, limits).map_err(|e| fail(e.message().to_string()))?;
        let embedding = single_face(faces).map_err(|e| fail(e.message().to_string()))?;
        enrolled.push(watchlist.enrol(&name, &embedding)?);
    }
    Ok(enrolled)
}

/// A running service, its inference pool and its watchlist.
#[derive(Debug)]
pub struct Service {
    /// The server.
    pub running: Running,
    /// Its inference pool.
    pub pool: InferencePool,
}

async fn prepare(
    config: &Config,
) -> Result<(Arc<Models>, Arc<Watchlist>, InferencePool), BoxError> {
    let cfg = config.clone();
    let loading = Instant::now();
    let (models, watchlist) = tokio::task::spawn_blocking(move || -> Result<_, BoxError> {
        let models = Models::load(&cfg)?;
        let watchlist =
            Watchlist::open(&cfg.watchlist_db, &models.model_id, models.embedding_len())
                .map_err(|e| format!("watchlist {}: {e}", cfg.watchlist_db.display()))?;
        if let Some(dir) = &cfg.enrol_dir {
            for entry in enrol_folder(&models, &watchlist, dir, cfg.serving.limits)? {
                tracing::info!(name = %entry.name, dir = %dir.display(), "enrolled from folder");
            }
        }
        Ok((models, watchlist))
    })
    .await??;
    tracing::info!(
        models = %config.serving.models_dir.display(),
        embedding = %models.model_id,
        watchlist = %config.watchlist_db.display(),
        enrolled = watchlist.entries().map_or(0, |e| e.len()),
        threshold = config.threshold,
        ms = loading.elapsed().as_millis() as u64,
        workers = config.serving.workers,
        queue = config.serving.queue_depth,
        "models and watchlist loaded"
    );
    let pool = InferencePool::new(
        "recognition",
        config.serving.workers,
        config.serving.queue_depth,
    )?;
    Ok((Arc::new(models), Arc::new(watchlist), pool))
}

/// Loads the models and the watchlist and serves on `listener` in the background.
pub async fn start(config: Config, listener: TcpListener) -> Result<Service, BoxError> {
    let (models, watchlist, pool) = prepare(&config).await?;
    let health = Health::new();
    let app = router(&config, models, watchlist, pool.clone(), health.clone());
    let running = airport_common::spawn(listener, app, Shutdown::new(), health);
    Ok(Service { running, pool })
}

/// Loads the models and the watchlist, then serves until `shutdown` fires.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), BoxError> {
    let (models, watchlist, pool) = prepare(&config).await?;
    let listener = TcpListener::bind(config.serving.listen).await?;
    let health = Health::new();
    let app = router(&config, models, watchlist, pool, health.clone());
    airport_common::serve(listener, app, shutdown, health).await?;
    Ok(())
}
