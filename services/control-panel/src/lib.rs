//! The control panel, in two versions for canary demos (`SERVICE_VERSION=v1`
//! or `v2`): a dashboard at `/` and `/index` with `<h1>Dashboard V1</h1>` (or
//! `V2`), the latest statistics of each section (timestamp, then one line per
//! person: `gender: male | age: 38-43 | event: exit`) and the latest alert
//! (timestamp, section, event, `name: <b>PersonX</b>`). v2 also shows the
//! frame's photo with the faces marked. The page refreshes itself.
//!
//! The dashboard pulls from the section and alerts services on each view
//! (so v1 and v2 replicas behind a 50/50 split show the same data), keeps the
//! last good answer when one is down, and also accepts pushes on
//! `POST /analysis` and `POST /alert` as in the seed. `/production?toggle=on|off`
//! starts or stops every camera of its camera list (or one, with `&camera=ID`).

mod html;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airport_common::config::{Lookup, base_url, parse_pairs};
use airport_common::types::{
    Alert, AlertsPage, CameraStart, CameraState, Event, Id, StatsPage, StatsRecord,
};
use airport_common::{
    ApiError, ApiJson, ApiQuery, BoxError, ConfigError, Health, HttpClient, Running, Shutdown,
    health,
};
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Which dashboard this instance serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Text only.
    V1,
    /// Text and the photo with the faces marked.
    V2,
}

/// One camera of the panel's camera list, in the seed's `config.json` shape:
/// `{"id": 1, "description": "exit camera section 1", "url": "http://camera-agent-1:8080", "section": 1, "type": "exit"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraEntry {
    /// Camera id.
    pub id: Id,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The camera agent's base URL.
    pub url: String,
    /// Its section.
    pub section: Id,
    /// Entry or exit.
    #[serde(rename = "type")]
    pub kind: Event,
}

/// The panel's `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelFile {
    /// The cameras `/production` switches.
    #[serde(default)]
    pub cameras: Vec<CameraEntry>,
}

/// The control panel's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR`, default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// `SERVICE_VERSION`: `v1` (default) or `v2`.
    pub variant: Variant,
    /// `CPANEL_CONFIG`: path of the camera list (`config.json`); unset means no cameras.
    pub cameras: Vec<CameraEntry>,
    /// `CPANEL_SECTIONS`, default `1=http://section-1:8080`, in display order.
    pub sections: Vec<(Id, String)>,
    /// `ALERTS_URL`, default `http://alerts:8080`.
    pub alerts_url: String,
    /// `COLLECTOR_URL`, default `http://collector:8080`: the destination given to cameras.
    pub collector_url: String,
    /// `UPSTREAM_TIMEOUT_MS`, default 1000: each call to a section, alerts or a camera.
    pub upstream_timeout: Duration,
    /// `CAMERA_TIMEOUT_MS`, default 15000: a camera's start/stop (stop waits for its frame in flight).
    pub camera_timeout: Duration,
    /// `CPANEL_REFRESH_SECS`, default 2: the page's self-refresh period.
    pub refresh_secs: u32,
    /// `MAX_BODY_BYTES`, default 8 MiB (a pushed analysis may carry a photo).
    pub max_body_bytes: usize,
}

impl Config {
    /// Reads the configuration (and the camera list file, if set).
    pub fn from_lookup(l: &Lookup) -> Result<Self, ConfigError> {
        let version = l.version()?;
        let variant = match version.as_str() {
            "v1" => Variant::V1,
            "v2" => Variant::V2,
            other => {
                return Err(ConfigError::new(
                    "SERVICE_VERSION",
                    other,
                    "the control panel is v1 or v2",
                ));
            }
        };
        let cameras = match l.raw("CPANEL_CONFIG") {
            None => Vec::new(),
            Some(path) => {
                load_panel_file(&PathBuf::from(&path))
                    .map_err(|e| ConfigError::new("CPANEL_CONFIG", &path, e))?
                    .cameras
            }
        };
        for c in &cameras {
            base_url("CPANEL_CONFIG camera url", &c.url)?;
        }
        let sections_raw = l.string("CPANEL_SECTIONS", "1=http://section-1:8080");
        let mut sections = Vec::new();
        for (k, v) in parse_pairs("CPANEL_SECTIONS", &sections_raw)? {
            let id =
                Id::new(k).map_err(|e| ConfigError::new("CPANEL_SECTIONS", &sections_raw, e))?;
            sections.push((id, base_url("CPANEL_SECTIONS", &v)?));
        }
        Ok(Self {
            listen: l.listen_addr()?,
            variant,
            cameras,
            sections,
            alerts_url: base_url("ALERTS_URL", &l.string("ALERTS_URL", "http://alerts:8080"))?,
            collector_url: base_url(
                "COLLECTOR_URL",
                &l.string("COLLECTOR_URL", "http://collector:8080"),
            )?,
            upstream_timeout: l.millis("UPSTREAM_TIMEOUT_MS", 1000)?,
            camera_timeout: l.millis("CAMERA_TIMEOUT_MS", 15_000)?,
            refresh_secs: l.bounded("CPANEL_REFRESH_SECS", 2, 1, 3600)?,
            max_body_bytes: l.bounded("MAX_BODY_BYTES", 8 << 20, 1024, 256 << 20)?,
        })
    }
}

/// Reads a camera list file.
pub fn load_panel_file(path: &std::path::Path) -> Result<PanelFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("bad camera list: {e}"))
}

/// The latest data known, from pulls and pushes; newer frames win.
#[derive(Debug, Default)]
struct Cache {
    stats: HashMap<Id, StatsRecord>,
    alert: Option<Alert>,
}

impl Cache {
    fn offer_stats(&mut self, rec: StatsRecord) {
        let newer = self
            .stats
            .get(&rec.section)
            .is_none_or(|old| rec.timestamp >= old.timestamp);
        if newer {
            self.stats.insert(rec.section.clone(), rec);
        }
    }

    fn offer_alert(&mut self, alert: Alert) {
        if self
            .alert
            .as_ref()
            .is_none_or(|old| alert.timestamp >= old.timestamp)
        {
            self.alert = Some(alert);
        }
    }
}

#[derive(Debug, Clone)]
struct AppState {
    config: Arc<Config>,
    client: HttpClient,
    cache: Arc<Mutex<Cache>>,
}

/// One section as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SectionView {
    /// The section.
    pub section: Id,
    /// Its latest frame, if known.
    pub latest: Option<StatsRecord>,
    /// Set when the section service could not be reached (the last good data is shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /analysis`.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisView {
    /// Every configured section.
    pub sections: Vec<SectionView>,
}

impl AppState {
    async fn refresh(&self) -> (Vec<SectionView>, Option<Alert>) {
        let images = self.config.variant == Variant::V2;
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (id, url)) in self.config.sections.iter().enumerate() {
            let client = self.client.clone();
            let url = format!("{url}/stats?limit=1&images={images}");
            let deadline = self.config.upstream_timeout;
            let id = id.clone();
            tasks.spawn(async move { (i, id, client.get_json::<StatsPage>(&url, deadline).await) });
        }
        let alerts_url = format!("{}/alerts?limit=1", self.config.alerts_url);
        let alert_result = self
            .client
            .get_json::<AlertsPage>(&alerts_url, self.config.upstream_timeout)
            .await;
        let mut errors: HashMap<usize, String> = HashMap::new();
        let mut pulled = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, _, Ok(page))) => pulled.extend(page.latest),
                Ok((i, id, Err(e))) => {
                    tracing::warn!(section = %id, error = %e, "section unavailable");
                    errors.insert(i, e.to_string());
                }
                Err(e) => tracing::warn!(error = %e, "section fetch task failed"),
            }
        }
        let Ok(mut cache) = self.cache.lock() else {
            return (Vec::new(), None);
        };
        for rec in pulled {
            cache.offer_stats(rec);
        }
        match alert_result {
            Ok(page) => {
                if let Some(a) = page.alerts.into_iter().next() {
                    cache.offer_alert(a);
                }
            }
            Err(e) => tracing::warn!(error = %e, "alerts unavailable"),
        }
        let views = self
            .config
            .sections
            .iter()
            .enumerate()
            .map(|(i, (id, _))| SectionView {
                section: id.clone(),
                latest: cache.stats.get(id).cloned(),
                error: errors.remove(&i),
            })
            .collect();
        (views, cache.alert.clone())
    }

    fn section_known(&self, id: &Id) -> bool {
        self.config.sections.iter().any(|(s, _)| s == id)
    }
}

async fn dashboard(State(state): State<AppState>) -> Html<String> {
    let (sections, alert) = state.refresh().await;
    Html(html::dashboard(
        state.config.variant,
        &sections,
        alert.as_ref(),
        state.config.refresh_secs,
    ))
}

async fn get_analysis(State(state): State<AppState>) -> Json<AnalysisView> {
    let (mut sections, _) = state.refresh().await;
    for s in &mut sections {
        if let Some(rec) = &mut s.latest {
            rec.image = None;
        }
    }
    Json(AnalysisView { sections })
}

async fn post_analysis(
    State(state): State<AppState>,
    ApiJson(rec): ApiJson<StatsRecord>,
) -> Result<impl IntoResponse, ApiError> {
    rec.validate()?;
    if !state.section_known(&rec.section) {
        return Err(ApiError::unprocessable(
            "unknown_section",
            format!("unknown section {}", rec.section),
        ));
    }
    let frame_id = rec.frame_id.clone();
    let mut cache = state
        .cache
        .lock()
        .map_err(|_| ApiError::internal("cache poisoned"))?;
    cache.offer_stats(rec);
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "frame_id": frame_id, "accepted": true })),
    ))
}

async fn get_alert(State(state): State<AppState>) -> Json<Option<Alert>> {
    let (_, alert) = state.refresh().await;
    Json(alert)
}

async fn post_alert(
    State(state): State<AppState>,
    ApiJson(alert): ApiJson<Alert>,
) -> Result<impl IntoResponse, ApiError> {
    alert.validate()?;
    if !state.section_known(&alert.section) {
        return Err(ApiError::unprocessable(
            "unknown_section",
            format!("unknown section {}", alert.section),
        ));
    }
    let frame_id = alert.frame_id.clone();
    let mut cache = state
        .cache
        .lock()
        .map_err(|_| ApiError::internal("cache poisoned"))?;
    cache.offer_alert(alert);
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "frame_id": frame_id, "accepted": true })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductionQuery {
    toggle: Option<String>,
    camera: Option<Id>,
}

/// One camera's answer to `/production`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CameraResult {
    /// The camera.
    pub id: Id,
    /// Whether it did what was asked.
    pub ok: bool,
    /// Its state afterwards, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CameraState>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `/production`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductionResult {
    /// `on` or `off`.
    pub toggle: String,
    /// Per camera.
    pub cameras: Vec<CameraResult>,
}

async fn production(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ProductionQuery>,
) -> Result<(StatusCode, Json<ProductionResult>), ApiError> {
    let on = match q.toggle.as_deref() {
        Some("on") => true,
        Some("off") => false,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("toggle must be on or off, got {other:?}"),
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "toggle is required: on or off",
            ));
        }
    };
    let cameras: Vec<CameraEntry> = match &q.camera {
        Some(id) => {
            let found: Vec<_> = state
                .config
                .cameras
                .iter()
                .filter(|c| &c.id == id)
                .cloned()
                .collect();
            if found.is_empty() {
                return Err(ApiError::not_found(
                    "unknown_camera",
                    format!("unknown camera {id}"),
                ));
            }
            found
        }
        None => state.config.cameras.clone(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, cam) in cameras.into_iter().enumerate() {
        let client = state.client.clone();
        let deadline = state.config.camera_timeout;
        let collector = state.config.collector_url.clone();
        tasks.spawn(async move {
            let result = if on {
                let body = CameraStart {
                    section: Some(cam.section.clone()),
                    event: Some(cam.kind),
                    destination: Some(collector),
                    fps: None,
                };
                client
                    .post_json(&format!("{}/start", cam.url), &body, deadline)
                    .await
            } else {
                client
                    .send(
                        axum::http::Method::POST,
                        &format!("{}/stop", cam.url),
                        &[],
                        Default::default(),
                        deadline,
                    )
                    .await
            };
            let r = match result {
                Ok(resp) if resp.status.is_success() => CameraResult {
                    id: cam.id,
                    ok: true,
                    state: resp.json().ok(),
                    error: None,
                },
                Ok(resp) => CameraResult {
                    id: cam.id,
                    ok: false,
                    state: None,
                    error: Some(resp.error_summary()),
                },
                Err(e) => CameraResult {
                    id: cam.id,
                    ok: false,
                    state: None,
                    error: Some(e.to_string()),
                },
            };
            (i, r)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => results.push(r),
            Err(e) => tracing::warn!(error = %e, "camera toggle task failed"),
        }
    }
    results.sort_by_key(|(i, _)| *i);
    let cameras: Vec<CameraResult> = results.into_iter().map(|(_, r)| r).collect();
    let all_ok = cameras.iter().all(|c| c.ok);
    tracing::info!(
        toggle = if on { "on" } else { "off" },
        cameras = cameras.len(),
        all_ok,
        "production toggled"
    );
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Ok((
        status,
        Json(ProductionResult {
            toggle: if on { "on" } else { "off" }.to_string(),
            cameras,
        }),
    ))
}

async fn list_cameras(State(state): State<AppState>) -> Json<PanelFile> {
    Json(PanelFile {
        cameras: state.config.cameras.clone(),
    })
}

async fn camera_state(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CameraState>, ApiError> {
    let cam = state
        .config
        .cameras
        .iter()
        .find(|c| c.id.as_str() == id)
        .ok_or_else(|| ApiError::not_found("unknown_camera", format!("unknown camera {id:?}")))?;
    let url = format!("{}/state", cam.url);
    state
        .client
        .get_json::<CameraState>(&url, state.config.upstream_timeout)
        .await
        .map(Json)
        .map_err(|e| {
            if e.is_timeout() {
                ApiError::gateway_timeout("upstream_timeout", format!("camera {id}: {e}"))
            } else {
                ApiError::bad_gateway("upstream_failed", format!("camera {id}: {e}"))
            }
        })
}

/// Builds the router (with `/status`, `/healthz`, `/readyz`).
pub fn router(config: Config, health: Health) -> Router {
    let version = match config.variant {
        Variant::V1 => "v1",
        Variant::V2 => "v2",
    };
    let status = health::status_line("CPanel", version);
    let limit = config.max_body_bytes;
    let state = AppState {
        config: Arc::new(config),
        client: HttpClient::default(),
        cache: Arc::new(Mutex::new(Cache::default())),
    };
    Router::new()
        .route("/", get(dashboard))
        .route("/index", get(dashboard))
        .route("/analysis", get(get_analysis).post(post_analysis))
        .route("/alert", get(get_alert).post(post_alert))
        .route("/production", get(production).post(production))
        .route("/cameras", get(list_cameras))
        .route("/cameras/{id}/state", get(camera_state))
        .with_state(state)
        .merge(health::routes(status, health))
        .method_not_allowed_fallback(airport_common::error::method_not_allowed_fallback)
        .fallback(airport_common::error::not_found_fallback)
        .layer(DefaultBodyLimit::max(limit))
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
