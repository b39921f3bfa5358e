//! The alerts service: stores the alerts the collector raises when face
//! recognition finds a person of interest (timestamp, section, event, name,
//! confidence), durably in an embedded SQLite database, once per frame id and
//! name however often the frame is retried.
//!
//! `POST /alerts` stores an [`Alert`] (201 stored, 200 already stored);
//! `GET /alerts?limit=N&section=S` answers an [`AlertsPage`], latest first;
//! `GET /status` answers `Alerts v1 : Online`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use airport_common::config::Lookup;
use airport_common::types::{Alert, AlertsPage, Id, StoreOutcome};
use airport_common::{
    ApiError, ApiJson, ApiQuery, BoxError, ConfigError, Health, Running, Shutdown, health,
};
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use rusqlite::{Connection, params};
use serde::Deserialize;
use tokio::net::TcpListener;

/// The alerts service's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR`, default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// `SERVICE_VERSION`, default `v1`.
    pub version: String,
    /// `ALERTS_DB`, default `alerts.db`.
    pub db_path: PathBuf,
    /// `MAX_BODY_BYTES`, default 64 KiB (an alert is small).
    pub max_body_bytes: usize,
    /// `ALERTS_SECTIONS`: comma-separated known sections; empty (default) accepts any.
    pub sections: Vec<Id>,
}

impl Config {
    /// Reads the configuration.
    pub fn from_lookup(l: &Lookup) -> Result<Self, ConfigError> {
        let raw = l.string("ALERTS_SECTIONS", "");
        let sections = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Id::new(s).map_err(|e| ConfigError::new("ALERTS_SECTIONS", &raw, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            listen: l.listen_addr()?,
            version: l.version()?,
            db_path: PathBuf::from(l.string("ALERTS_DB", "alerts.db")),
            max_body_bytes: l.bounded("MAX_BODY_BYTES", 64 << 10, 1024, 16 << 20)?,
            sections,
        })
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored record cannot be read back.
    #[error("corrupt stored alert: {0}")]
    Corrupt(String),
    /// A previous holder of the lock panicked.
    #[error("database lock poisoned")]
    Poisoned,
    /// The blocking task did not finish.
    #[error("storage task failed: {0}")]
    Join(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(format!("storage failed: {e}"))
    }
}

/// The durable store: one row per (frame id, name).
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (or creates) the database, WAL with `synchronous=FULL`.
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS alerts (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                frame_id TEXT NOT NULL,
                name TEXT NOT NULL,
                section TEXT NOT NULL,
                ts_micros INTEGER NOT NULL,
                record TEXT NOT NULL,
                UNIQUE (frame_id, name)
            );
            CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts(ts_micros DESC, seq DESC);",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Stores an alert once; `Ok(false)` if (frame id, name) is already stored.
    pub fn insert(&self, alert: &Alert) -> Result<bool, StoreError> {
        let json = serde_json::to_string(alert).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let n = conn.execute(
            "INSERT INTO alerts (frame_id, name, section, ts_micros, record) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(frame_id, name) DO NOTHING",
            params![
                alert.frame_id.as_str(),
                alert.name,
                alert.section.as_str(),
                alert.timestamp.unix_micros(),
                json
            ],
        )?;
        Ok(n == 1)
    }

    /// The total count (of the section, if given) and the `limit` latest alerts.
    pub fn page(&self, limit: u32, section: Option<&Id>) -> Result<(u64, Vec<Alert>), StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let section = section.map(Id::as_str);
        let total: i64 = conn.query_row(
            "SELECT COUNT(*) FROM alerts WHERE ?1 IS NULL OR section = ?1",
            params![section],
            |r| r.get(0),
        )?;
        let mut stmt = conn.prepare_cached(
            "SELECT record FROM alerts WHERE ?2 IS NULL OR section = ?2
             ORDER BY ts_micros DESC, seq DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit, section], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        Ok((u64::try_from(total).unwrap_or(0), out))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
}

#[derive(Debug, Clone)]
struct AppState {
    config: Arc<Config>,
    store: Store,
}

/// Builds the router (with `/status`, `/healthz`, `/readyz`).
pub fn router(config: Config, store: Store, health: Health) -> Router {
    let status = health::status_line("Alerts", &config.version);
    let limit = config.max_body_bytes;
    let state = AppState {
        config: Arc::new(config),
        store,
    };
    Router::new()
        .route("/alerts", get(get_alerts).post(post_alert))
        .with_state(state)
        .merge(health::routes(status, health))
        .method_not_allowed_fallback(airport_common::error::method_not_allowed_fallback)
        .fallback(airport_common::error::not_found_fallback)
        .layer(DefaultBodyLimit::max(limit))
}

fn check_section(config: &Config, section: &Id) -> Result<(), ApiError> {
    if config.sections.is_empty() || config.sections.contains(section) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "unknown_section",
            format!("unknown section {section}"),
        ))
    }
}

async fn post_alert(
    State(state): State<AppState>,
    ApiJson(alert): ApiJson<Alert>,
) -> Result<impl IntoResponse, ApiError> {
    alert.validate()?;
    check_section(&state.config, &alert.section)?;
    let store = state.store.clone();
    let a2 = alert.clone();
    let stored = blocking(move || store.insert(&a2)).await?;
    if stored {
        tracing::info!(frame_id = %alert.frame_id, name = %alert.name, section = %alert.section, "alert stored");
    } else {
        tracing::info!(frame_id = %alert.frame_id, name = %alert.name, "duplicate alert ignored");
    }
    let status = if stored {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(StoreOutcome {
            frame_id: alert.frame_id,
            stored,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    #[serde(default = "default_limit")]
    limit: u32,
    #[serde(default)]
    section: Option<Id>,
}

fn default_limit() -> u32 {
    20
}

/// Most alerts one `GET /alerts` answers.
pub const MAX_LIMIT: u32 = 500;

async fn get_alerts(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AlertsQuery>,
) -> Result<Json<AlertsPage>, ApiError> {
    if q.limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be at most {MAX_LIMIT}"),
        ));
    }
    if let Some(s) = &q.section {
        check_section(&state.config, s)?;
    }
    let store = state.store.clone();
    let (total, alerts) = blocking(move || store.page(q.limit, q.section.as_ref())).await?;
    Ok(Json(AlertsPage { total, alerts }))
}

/// Opens the store and serves on `listener` in the background.
pub fn start(config: Config, listener: TcpListener) -> Result<Running, BoxError> {
    let store = Store::open(&config.db_path)?;
    let health = Health::new();
    let app = router(config, store, health.clone());
    Ok(airport_common::spawn(
        listener,
        app,
        Shutdown::new(),
        health,
    ))
}

/// Runs until `shutdown` fires.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), BoxError> {
    let store = Store::open(&config.db_path)?;
    tracing::info!(db = %config.db_path.display(), "alerts store open");
    let listener = TcpListener::bind(config.listen).await?;
    let health = Health::new();
    let app = router(config, store, health.clone());
    airport_common::serve(listener, app, shutdown, health).await?;
    Ok(())
}
