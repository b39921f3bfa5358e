//! Shared by the face recognition tests: the service in-process on loopback
//! with the real models and a watchlist in a temporary folder, test images,
//! and HTTP helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::Path;
use std::time::Duration;

use airport_common::config::Lookup;
use airport_common::{HttpClient, HttpResponse};
use airport_vision_service::testing;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Method};
use bytes::Bytes;

pub const T: Duration = Duration::from_secs(60);

/// Starts the service with the real models, the watchlist at `db` and `env`.
pub async fn start(db: &Path, env: &[(&str, &str)]) -> face_recognition::Service {
    let models = testing::models_dir().unwrap_or_else(|e| panic!("{e}"));
    let mut pairs = vec![
        ("MODELS_DIR".to_string(), models.display().to_string()),
        ("WATCHLIST_DB".to_string(), db.display().to_string()),
    ];
    pairs.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = face_recognition::Config::from_lookup(&Lookup::from_pairs(pairs)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    face_recognition::start(config, listener).await.unwrap()
}

/// A committed test image's bytes.
pub fn image(name: &str) -> Vec<u8> {
    let path = testing::testdata(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A photo `make models` extracted from the packages (`<models>/images/<name>`).
pub fn package_image(name: &str) -> Vec<u8> {
    let models = testing::models_dir().unwrap_or_else(|e| panic!("{e}"));
    let path = models.join("images").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}: run make models", path.display()))
}

pub fn hopper() -> Vec<u8> {
    image("grace_hopper_512x512.jpg")
}

pub fn astronaut() -> Vec<u8> {
    image("astronaut.png")
}

/// The two portraits side by side (Grace Hopper left, the astronaut right)
/// as one 1024x512 JPEG: a frame with two people.
pub fn both_portraits() -> Vec<u8> {
    let left = image::load_from_memory(&hopper()).unwrap().to_rgb8();
    let right = image::load_from_memory(&astronaut()).unwrap().to_rgb8();
    let mut frame = image::RgbImage::new(
        left.width() + right.width(),
        left.height().max(right.height()),
    );
    image::imageops::replace(&mut frame, &left, 0, 0);
    image::imageops::replace(&mut frame, &right, i64::from(left.width()), 0);
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(frame)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// `POST url` with `body` as `content_type`.
pub async fn post(url: &str, content_type: Option<&str>, body: impl Into<Bytes>) -> HttpResponse {
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    if let Some(ct) = content_type {
        headers.push((CONTENT_TYPE, HeaderValue::from_str(ct).unwrap()));
    }
    HttpClient::new(16 << 20)
        .send(Method::POST, url, &headers, body.into(), T)
        .await
        .unwrap()
}

pub async fn delete(url: &str) -> HttpResponse {
    HttpClient::default()
        .send(Method::DELETE, url, &[], Bytes::new(), T)
        .await
        .unwrap()
}

pub async fn get(url: &str) -> HttpResponse {
    HttpClient::default().get(url, T).await.unwrap()
}

/// The content type of a test image by its bytes.
pub fn content_type(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/jpeg"
    }
}

/// Enrols `name` (percent-encoded here) with `photo`; panics unless 201.
pub async fn enrol(
    base: &str,
    name: &str,
    photo: Vec<u8>,
) -> airport_common::contract::WatchlistEntry {
    let ct = content_type(&photo);
    let r = post(
        &format!("{base}/watchlist/{}", encode(name)),
        Some(ct),
        photo,
    )
    .await;
    assert_eq!(r.status, 201, "enrolling {name}: {}", r.text());
    r.json().unwrap()
}

/// `POST /recognize`; panics unless 200.
pub async fn recognize(
    base: &str,
    photo: Vec<u8>,
) -> airport_common::contract::RecognitionResponse {
    let ct = content_type(&photo);
    let r = post(&format!("{base}/recognize"), Some(ct), photo).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().unwrap()
}

/// Percent-encodes a path segment.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A metric's value from a Prometheus text page.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
}

/// Asserts a JSON error with this status and code whose message mentions `mentions`.
pub fn assert_error(r: &HttpResponse, status: u16, code: &str, mentions: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    let body: airport_common::types::ErrorBody = r
        .json()
        .unwrap_or_else(|e| panic!("not a JSON error: {e}: {}", r.text()));
    assert_eq!(body.error, code, "{}", body.message);
    assert!(
        body.message.contains(mentions),
        "message {:?} should mention {mentions:?}",
        body.message
    );
}
