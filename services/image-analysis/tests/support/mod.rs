//! Shared by the image analysis tests: the service in-process on loopback
//! with the real models, and HTTP helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::time::Duration;

use airport_common::config::Lookup;
use airport_common::contract::FRAME_ID_HEADER;
use airport_common::{HttpClient, HttpResponse};
use airport_vision_service::testing;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Method};
use bytes::Bytes;

pub const T: Duration = Duration::from_secs(60);

/// Starts the service with the real models and `env` on an ephemeral port.
pub async fn start(env: &[(&str, &str)]) -> image_analysis::Service {
    let models = testing::models_dir().unwrap_or_else(|e| panic!("{e}"));
    let mut pairs = vec![("MODELS_DIR".to_string(), models.display().to_string())];
    pairs.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = image_analysis::Config::from_lookup(&Lookup::from_pairs(pairs)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    image_analysis::start(config, listener).await.unwrap()
}

/// A committed test image's bytes.
pub fn image(name: &str) -> Vec<u8> {
    let path = testing::testdata(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `POST url` with `body`, the content type if any, and an `X-Frame-Id` if any.
pub async fn post(
    url: &str,
    content_type: Option<&str>,
    frame_id: Option<&str>,
    body: impl Into<Bytes>,
) -> HttpResponse {
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    if let Some(ct) = content_type {
        headers.push((CONTENT_TYPE, HeaderValue::from_str(ct).unwrap()));
    }
    if let Some(f) = frame_id {
        headers.push((
            HeaderName::from_static(FRAME_ID_HEADER),
            HeaderValue::from_str(f).unwrap(),
        ));
    }
    HttpClient::new(16 << 20)
        .send(Method::POST, url, &headers, body.into(), T)
        .await
        .unwrap()
}

pub async fn get(url: &str) -> HttpResponse {
    HttpClient::default().get(url, T).await.unwrap()
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

/// Re-encodes an image as another format.
pub fn reencode(bytes: &[u8], format: image::ImageFormat) -> Vec<u8> {
    let img = image::DynamicImage::ImageRgb8(image::load_from_memory(bytes).unwrap().to_rgb8());
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}
