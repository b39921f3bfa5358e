//! Test support for the airport services: the end-to-end tests run the real
//! vision services (`image-analysis`, `face-recognition`, real models); this
//! library holds the one thing they cannot do, a **vision test double**
//! (not a detector) that speaks the contract in `airport_common::contract`
//! and either answers fixed results at once or fails every call with 500.
//! It serves three purposes only: the pipeline benchmark, which measures the
//! collector's own overhead and so needs vision calls that cost nothing, the
//! test of how the collector reports a vision service answering 500, and the
//! local mesh's development-only `--vision-stub` (`airport-stack vision-stub`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use airport_common::contract::{
    ANALYZE_PATH, AnalysisResponse, AnalyzedFace, BoundingBox, FRAME_ID_HEADER, FaceMatch,
    RECOGNIZE_PATH, RecognitionResponse,
};
use airport_common::types::{AgeBracket, Gender};
use airport_common::{ApiError, Health, Running, Shutdown, health, imaging};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use bytes::Bytes;
use tokio::net::TcpListener;

/// How the double answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// The fixed results.
    Normal = 0,
    /// 500 for every call.
    Fail = 1,
}

#[derive(Debug)]
struct Inner {
    analysis_calls: AtomicU64,
    recognition_calls: AtomicU64,
    mode: AtomicU8,
    with_match: AtomicBool,
}

/// Controls a running double.
#[derive(Debug, Clone)]
pub struct VisionControl {
    inner: Arc<Inner>,
}

impl Default for VisionControl {
    fn default() -> Self {
        Self::new()
    }
}

impl VisionControl {
    /// Answering fixed results at once, with a watchlist match.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                analysis_calls: AtomicU64::new(0),
                recognition_calls: AtomicU64::new(0),
                mode: AtomicU8::new(Mode::Normal as u8),
                with_match: AtomicBool::new(true),
            }),
        }
    }

    /// Switches the answers.
    pub fn set_mode(&self, mode: Mode) {
        self.inner.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Whether face recognition reports the watchlist match `PersonX`.
    pub fn set_match(&self, on: bool) {
        self.inner.with_match.store(on, Ordering::SeqCst);
    }

    /// `/analyze` calls received.
    pub fn analysis_calls(&self) -> u64 {
        self.inner.analysis_calls.load(Ordering::SeqCst)
    }

    /// `/recognize` calls received.
    pub fn recognition_calls(&self) -> u64 {
        self.inner.recognition_calls.load(Ordering::SeqCst)
    }

    fn mode(&self) -> Mode {
        if self.inner.mode.load(Ordering::SeqCst) == Mode::Fail as u8 {
            Mode::Fail
        } else {
            Mode::Normal
        }
    }
}

/// Checks the request as the real services will: an image body of the right
/// content type. Returns the frame id header and the image size.
fn check_request(headers: &HeaderMap, body: &[u8]) -> Result<(Option<String>, u32, u32), ApiError> {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct != "image/jpeg" && ct != "image/png" {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected image/jpeg or image/png, got {ct:?}"),
        ));
    }
    let info = imaging::inspect(body, 50_000_000)
        .map_err(|e| ApiError::unprocessable("bad_image", e.to_string()))?;
    if info.content_type() != ct {
        return Err(ApiError::unprocessable(
            "bad_image",
            "content type does not match the image",
        ));
    }
    let frame_id = headers
        .get(FRAME_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((frame_id, info.width, info.height))
}

fn bbox(x: f32, y: f32) -> BoundingBox {
    BoundingBox {
        x,
        y,
        width: 30.0,
        height: 36.0,
    }
}

async fn analyze(
    State(ctl): State<VisionControl>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<AnalysisResponse>, ApiError> {
    ctl.inner.analysis_calls.fetch_add(1, Ordering::SeqCst);
    let (frame_id, width, height) = check_request(&headers, &body)?;
    if ctl.mode() == Mode::Fail {
        return Err(ApiError::internal("test double told to fail"));
    }
    let faces = vec![
        AnalyzedFace {
            bbox: bbox(20.0, 30.0),
            score: 0.97,
            landmarks: vec![
                [28.0, 42.0],
                [42.0, 42.0],
                [35.0, 50.0],
                [29.0, 58.0],
                [41.0, 58.0],
            ],
            gender: Gender::Male,
            gender_confidence: 0.91,
            age: 39.4,
            age_bracket: AgeBracket::from_age(39.4),
        },
        AnalyzedFace {
            bbox: bbox(100.0, 40.0),
            score: 0.93,
            landmarks: Vec::new(),
            gender: Gender::Female,
            gender_confidence: 0.88,
            age: 27.0,
            age_bracket: AgeBracket::from_age(27.0),
        },
    ];
    Ok(Json(AnalysisResponse {
        frame_id,
        width,
        height,
        count: 2,
        faces,
        timings_ms: BTreeMap::from([("total".to_string(), 0.0)]),
    }))
}

async fn recognize(
    State(ctl): State<VisionControl>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RecognitionResponse>, ApiError> {
    ctl.inner.recognition_calls.fetch_add(1, Ordering::SeqCst);
    let (frame_id, width, height) = check_request(&headers, &body)?;
    if ctl.mode() == Mode::Fail {
        return Err(ApiError::internal("test double told to fail"));
    }
    let matches = if ctl.inner.with_match.load(Ordering::SeqCst) {
        vec![FaceMatch {
            name: "PersonX".to_string(),
            similarity: 0.52,
            bbox: bbox(20.0, 30.0),
        }]
    } else {
        Vec::new()
    };
    Ok(Json(RecognitionResponse {
        frame_id,
        width,
        height,
        faces: 2,
        threshold: 0.37,
        matches,
        timings_ms: BTreeMap::new(),
    }))
}

/// The double's router: `POST /analyze`, `POST /recognize`, `/status`.
pub fn vision_double_router(ctl: VisionControl) -> Router {
    Router::new()
        .route(ANALYZE_PATH, post(analyze))
        .route(RECOGNIZE_PATH, post(recognize))
        .with_state(ctl)
        .merge(health::routes(
            health::status_line("Vision Test Double", "v1"),
            Health::new(),
        ))
}

/// Serves the double, controlled by `ctl`, on `listener` in the background
/// (the same `ctl` may serve image analysis and face recognition both).
pub fn serve_vision_double(listener: TcpListener, ctl: VisionControl) -> Running {
    airport_common::spawn(
        listener,
        vision_double_router(ctl),
        Shutdown::new(),
        Health::new(),
    )
}
