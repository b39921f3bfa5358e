//! The section service: one per airport section. It stores the statistics of
//! each frame (people, gender, age, event) that the collector forwards, durably
//! in an embedded SQLite database, once per frame id however often the frame
//! is retried, and serves the latest and recent frames to the control panel.
//!
//! `POST /stats` stores a [`StatsRecord`] (201 stored, 200 already stored);
//! `GET /stats?limit=N&images=true|false` answers a [`StatsPage`], latest
//! first; `GET /status` answers `Section 1 v1 : Online`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use airport_common::config::Lookup;
use airport_common::types::{FrameImage, Id, StatsPage, StatsRecord, StoreOutcome};
use airport_common::{
    ApiError, ApiJson, ApiQuery, BoxError, ConfigError, Health, Running, Shutdown, health, imaging,
};
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use tokio::net::TcpListener;

/// The section service's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR`, default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// `SERVICE_VERSION`, default `v1`.
    pub version: String,
    /// `SECTION_ID`, default `1`: the only section this instance accepts.
    pub section: Id,
    /// `SECTION_DB`, default `section-<id>.db`: the SQLite file.
    pub db_path: PathBuf,
    /// `MAX_BODY_BYTES`, default 8 MiB.
    pub max_body_bytes: usize,
    /// `MAX_IMAGE_PIXELS`, default 16 Mpx.
    pub max_image_pixels: u64,
    /// `SECTION_KEEP_IMAGES`, default 20: photos kept (the newest frames'); older
    /// frames keep their statistics only.
    pub keep_images: u32,
}

impl Config {
    /// Reads the configuration.
    pub fn from_lookup(l: &Lookup) -> Result<Self, ConfigError> {
        let section_raw = l.string("SECTION_ID", "1");
        let section = Id::new(section_raw.clone())
            .map_err(|e| ConfigError::new("SECTION_ID", &section_raw, e))?;
        let db_path = PathBuf::from(l.string("SECTION_DB", &format!("section-{section}.db")));
        Ok(Self {
            listen: l.listen_addr()?,
            version: l.version()?,
            section,
            db_path,
            max_body_bytes: l.bounded("MAX_BODY_BYTES", 8 << 20, 1024, 256 << 20)?,
            max_image_pixels: l.bounded("MAX_IMAGE_PIXELS", 16_000_000, 1, 400_000_000)?,
            keep_images: l.bounded("SECTION_KEEP_IMAGES", 20, 0, 100_000)?,
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
    #[error("corrupt stored record: {0}")]
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

/// The durable store: one SQLite file, one row per frame id.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

/// A decoded image ready to store.
#[derive(Debug, Clone)]
pub struct StoredImage {
    content_type: String,
    width: u32,
    height: u32,
    bytes: Vec<u8>,
}

impl Store {
    /// Opens (or creates) the database. `synchronous=FULL` in WAL mode: a
    /// stored frame survives a crash or power loss once `POST` has answered.
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS stats (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                frame_id TEXT NOT NULL UNIQUE,
                ts_micros INTEGER NOT NULL,
                record TEXT NOT NULL,
                image_type TEXT,
                image_width INTEGER,
                image_height INTEGER,
                image BLOB
            );
            CREATE INDEX IF NOT EXISTS stats_by_time ON stats(ts_micros DESC, seq DESC);",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&mut guard)
    }

    /// Stores a record once; `Ok(false)` if its frame id is already stored.
    /// The record and its photo are written in one transaction.
    pub fn insert(
        &self,
        rec: &StatsRecord,
        image: Option<&StoredImage>,
        keep_images: u32,
    ) -> Result<bool, StoreError> {
        let mut without_image = rec.clone();
        without_image.image = None;
        let json = serde_json::to_string(&without_image)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with_conn(|conn| {
            let tx = conn.transaction()?;
            let inserted = tx.execute(
                "INSERT INTO stats (frame_id, ts_micros, record, image_type, image_width, image_height, image)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(frame_id) DO NOTHING",
                params![
                    rec.frame_id.as_str(),
                    rec.timestamp.unix_micros(),
                    json,
                    image.map(|i| i.content_type.as_str()),
                    image.map(|i| i.width),
                    image.map(|i| i.height),
                    image.map(|i| i.bytes.as_slice()),
                ],
            )? == 1;
            if inserted && image.is_some() {
                // Keep only the newest photos; statistics stay forever.
                let cutoff: Option<i64> = tx
                    .query_row(
                        "SELECT seq FROM stats WHERE image IS NOT NULL ORDER BY seq DESC LIMIT 1 OFFSET ?1",
                        params![keep_images],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(cutoff) = cutoff {
                    tx.execute(
                        "UPDATE stats SET image = NULL, image_type = NULL, image_width = NULL, image_height = NULL
                         WHERE image IS NOT NULL AND seq <= ?1",
                        params![cutoff],
                    )?;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
    }

    /// How many frames are stored, and the `limit` latest (by frame time).
    pub fn page(
        &self,
        limit: u32,
        with_images: bool,
    ) -> Result<(u64, Vec<StatsRecord>), StoreError> {
        self.with_conn(|conn| {
            let total: i64 = conn.query_row("SELECT COUNT(*) FROM stats", [], |r| r.get(0))?;
            let mut stmt = conn.prepare_cached(
                "SELECT record, image_type, image_width, image_height,
                        CASE WHEN ?2 THEN image ELSE NULL END
                 FROM stats ORDER BY ts_micros DESC, seq DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit, with_images], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<u32>>(2)?,
                    r.get::<_, Option<u32>>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (json, ct, w, h, img) = row?;
                let mut rec: StatsRecord =
                    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if let (Some(content_type), Some(width), Some(height), Some(bytes)) =
                    (ct, w, h, img)
                {
                    rec.image = Some(FrameImage {
                        content_type,
                        width,
                        height,
                        data: B64.encode(bytes),
                    });
                }
                out.push(rec);
            }
            Ok((u64::try_from(total).unwrap_or(0), out))
        })
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
    let status = health::status_line(&format!("Section {}", config.section), &config.version);
    let limit = config.max_body_bytes;
    let state = AppState {
        config: Arc::new(config),
        store,
    };
    Router::new()
        .route("/stats", get(get_stats).post(post_stats))
        .with_state(state)
        .merge(health::routes(status, health))
        .method_not_allowed_fallback(airport_common::error::method_not_allowed_fallback)
        .fallback(airport_common::error::not_found_fallback)
        .layer(DefaultBodyLimit::max(limit))
}

fn decode_image(img: &FrameImage, max_pixels: u64) -> Result<StoredImage, ApiError> {
    let bytes = B64.decode(img.data.as_bytes()).map_err(|e| {
        ApiError::unprocessable("bad_image", format!("image.data is not base64: {e}"))
    })?;
    let info = imaging::inspect(&bytes, max_pixels)
        .map_err(|e| ApiError::unprocessable("bad_image", format!("image.data: {e}")))?;
    if info.content_type() != img.content_type {
        return Err(ApiError::unprocessable(
            "bad_image",
            format!(
                "image.content_type says {} but the data is {}",
                img.content_type,
                info.content_type()
            ),
        ));
    }
    Ok(StoredImage {
        content_type: img.content_type.clone(),
        width: info.width,
        height: info.height,
        bytes,
    })
}

async fn post_stats(
    State(state): State<AppState>,
    ApiJson(rec): ApiJson<StatsRecord>,
) -> Result<impl IntoResponse, ApiError> {
    rec.validate()?;
    if rec.section != state.config.section {
        return Err(ApiError::unprocessable(
            "unknown_section",
            format!(
                "this is section {}; the record is for section {}",
                state.config.section, rec.section
            ),
        ));
    }
    let image = rec
        .image
        .as_ref()
        .map(|img| decode_image(img, state.config.max_image_pixels))
        .transpose()?;
    let keep = state.config.keep_images;
    let store = state.store.clone();
    let rec2 = rec.clone();
    let stored = blocking(move || store.insert(&rec2, image.as_ref(), keep)).await?;
    if stored {
        tracing::info!(frame_id = %rec.frame_id, people = rec.count, "stored");
    } else {
        tracing::info!(frame_id = %rec.frame_id, "duplicate ignored");
    }
    let status = if stored {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(StoreOutcome {
            frame_id: rec.frame_id,
            stored,
        }),
    ))
}

/// Query of `GET /stats`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    #[serde(default = "default_limit")]
    limit: u32,
    #[serde(default)]
    images: bool,
}

fn default_limit() -> u32 {
    10
}

/// Most records one `GET /stats` answers.
pub const MAX_LIMIT: u32 = 500;

async fn get_stats(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<StatsPage>, ApiError> {
    if q.limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be at most {MAX_LIMIT}"),
        ));
    }
    let store = state.store.clone();
    let (total, recent) = blocking(move || store.page(q.limit.max(1), q.images)).await?;
    let latest = recent.first().cloned();
    let recent = if q.limit == 0 { Vec::new() } else { recent };
    Ok(Json(StatsPage {
        section: state.config.section.clone(),
        total,
        latest,
        recent,
    }))
}

/// Opens the store and serves on `listener` in the background.
pub fn start(config: Config, listener: TcpListener) -> Result<Running, BoxError> {
    let store = Store::open(&config.db_path)?;
    let health = Health::new();
    tracing::info!(section = %config.section, db = %config.db_path.display(), "section store open");
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
    tracing::info!(section = %config.section, db = %config.db_path.display(), "section store open");
    let listener = TcpListener::bind(config.listen).await?;
    let health = Health::new();
    let app = router(config, store, health.clone());
    airport_common::serve(listener, app, shutdown, health).await?;
    Ok(())
}
