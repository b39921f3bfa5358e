//! The request both vision services take: one JPEG or PNG as the raw body,
//! `Content-Type: image/jpeg` or `image/png`, the frame id in `X-Frame-Id`.
//!
//! [`ImageBody`] checks everything that needs no decoding, in the order a
//! client would fix it, each with the contract's code: the content type
//! (415 `unsupported_media_type`), the frame id header (422
//! `invalid_field`), the body's size (413 `image_too_large`), an empty body
//! (400 `empty_body`), the header of the image (422 `bad_image`: not a JPEG
//! or PNG, unreadable, or not what the content type says) and its pixel
//! count (413 `image_too_large`). A body that passes can still be corrupt
//! past its header; the decoder reports that (422 `bad_image`) on a worker.

use airport_common::ApiError;
use airport_common::contract::FRAME_ID_HEADER;
use airport_common::imaging::{self, ImageError};
use airport_common::types::FrameId;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

/// Size limits on one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest body, in bytes.
    pub max_body_bytes: usize,
    /// Most pixels (width × height).
    pub max_image_pixels: u64,
}

/// The two formats accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// `image/jpeg`.
    Jpeg,
    /// `image/png`.
    Png,
}

impl ImageKind {
    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
        }
    }

    /// `JPEG` or `PNG`.
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "JPEG",
            ImageKind::Png => "PNG",
        }
    }

    fn from_content_type(value: &str) -> Option<Self> {
        let essence = value.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("image/jpeg") {
            Some(ImageKind::Jpeg)
        } else if essence.eq_ignore_ascii_case("image/png") {
            Some(ImageKind::Png)
        } else {
            None
        }
    }
}

/// An image request that passed every check short of decoding the pixels.
#[derive(Debug, Clone)]
pub struct ImageBody {
    /// The encoded image.
    pub bytes: Bytes,
    /// Its format (the content type and the bytes agree).
    pub kind: ImageKind,
    /// Width from the image header.
    pub width: u32,
    /// Height from the image header.
    pub height: u32,
    /// The `X-Frame-Id` header, if sent.
    pub frame_id: Option<FrameId>,
}

/// 413 `image_too_large`.
pub fn too_large(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "image_too_large", message)
}

/// 422 `bad_image`.
pub fn bad_image(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("bad_image", message)
}

fn kind_of(headers: &HeaderMap) -> Result<ImageKind, ApiError> {
    let unsupported = |what: String| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{what}: send the image as the body with Content-Type image/jpeg or image/png"),
        )
    };
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(unsupported("no Content-Type".to_string()));
    };
    let text = value
        .to_str()
        .map_err(|_| unsupported("Content-Type is not text".to_string()))?;
    ImageKind::from_content_type(text)
        .ok_or_else(|| unsupported(format!("Content-Type {text:?} is not accepted")))
}

fn frame_id_of(headers: &HeaderMap) -> Result<Option<FrameId>, ApiError> {
    let Some(value) = headers.get(FRAME_ID_HEADER) else {
        return Ok(None);
    };
    let invalid =
        |reason: String| ApiError::unprocessable("invalid_field", format!("X-Frame-Id: {reason}"));
    let text = value
        .to_str()
        .map_err(|_| invalid("not ASCII text".to_string()))?;
    FrameId::new(text).map(Some).map_err(invalid)
}

/// Checks an image body against `limits` and the content type it came with.
pub fn check_image(
    kind: ImageKind,
    bytes: &[u8],
    limits: ImageLimits,
) -> Result<(u32, u32), ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "the body is empty: send one JPEG or PNG image",
        ));
    }
    if bytes.len() > limits.max_body_bytes {
        return Err(too_large(format!(
            "the body is {} bytes, more than the limit of {} bytes",
            bytes.len(),
            limits.max_body_bytes
        )));
    }
    let info = imaging::inspect(bytes, u64::MAX).map_err(|e| match e {
        ImageError::NotAnImage => bad_image(format!(
            "the body is not a JPEG or PNG image (Content-Type said {})",
            kind.content_type()
        )),
        other => bad_image(other.to_string()),
    })?;
    let found = match info.content_type() {
        "image/png" => ImageKind::Png,
        _ => ImageKind::Jpeg,
    };
    if found != kind {
        return Err(bad_image(format!(
            "Content-Type says {} but the body is a {}",
            kind.content_type(),
            found.name()
        )));
    }
    let pixels = u64::from(info.width) * u64::from(info.height);
    if pixels > limits.max_image_pixels {
        return Err(too_large(format!(
            "the image is {}x{} ({pixels} pixels), more than the limit of {} pixels",
            info.width, info.height, limits.max_image_pixels
        )));
    }
    Ok((info.width, info.height))
}

impl<S> FromRequest<S> for ImageBody
where
    S: Send + Sync,
    ImageLimits: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limits = ImageLimits::from_ref(state);
        let (parts, body) = req.into_parts();
        let kind = kind_of(&parts.headers)?;
        let frame_id = frame_id_of(&parts.headers)?;
        let bytes = axum::body::to_bytes(body, limits.max_body_bytes)
            .await
            .map_err(|e| {
                if is_length_limit(&e) {
                    too_large(format!(
                        "the body is more than the limit of {} bytes",
                        limits.max_body_bytes
                    ))
                } else {
                    ApiError::bad_request("bad_body", format!("the body could not be read: {e}"))
                }
            })?;
        let (width, height) = check_image(kind, &bytes, limits)?;
        Ok(ImageBody {
            bytes,
            kind,
            width,
            height,
            frame_id,
        })
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use axum::body::Body;

    const LIMITS: ImageLimits = ImageLimits {
        max_body_bytes: 100_000,
        max_image_pixels: 10_000,
    };

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        imaging::sample_jpeg(w, h, 3).unwrap()
    }

    async fn extract(
        ct: Option<&str>,
        frame: Option<&str>,
        body: Vec<u8>,
    ) -> Result<ImageBody, ApiError> {
        let mut b = Request::builder().method("POST").uri("/analyze");
        if let Some(ct) = ct {
            b = b.header(CONTENT_TYPE, ct);
        }
        if let Some(f) = frame {
            b = b.header(FRAME_ID_HEADER, f);
        }
        let req = b.body(Body::from(body)).unwrap();
        ImageBody::from_request(req, &LIMITS).await
    }

    #[tokio::test]
    async fn accepts_a_jpeg_with_its_frame_id() {
        let ok = extract(Some("image/jpeg; q=1"), Some("cam1-7"), jpeg(40, 30))
            .await
            .unwrap();
        assert_eq!((ok.width, ok.height, ok.kind), (40, 30, ImageKind::Jpeg));
        assert_eq!(ok.frame_id.unwrap().as_str(), "cam1-7");
    }

    #[tokio::test]
    async fn each_bad_request_gets_its_code() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Vec<u8>, u16, &'a str);
        let cases: Vec<Case> = vec![
            (None, None, jpeg(10, 10), 415, "unsupported_media_type"),
            (
                Some("application/json"),
                None,
                jpeg(10, 10),
                415,
                "unsupported_media_type",
            ),
            (
                Some("image/jpeg"),
                Some("bad id!"),
                jpeg(10, 10),
                422,
                "invalid_field",
            ),
            (Some("image/jpeg"), None, Vec::new(), 400, "empty_body"),
            (
                Some("image/jpeg"),
                None,
                b"not an image at all".to_vec(),
                422,
                "bad_image",
            ),
            (Some("image/png"), None, jpeg(10, 10), 422, "bad_image"),
            (
                Some("image/jpeg"),
                None,
                jpeg(10, 10)[..10].to_vec(),
                422,
                "bad_image",
            ),
            (
                Some("image/jpeg"),
                None,
                jpeg(200, 100),
                413,
                "image_too_large",
            ),
            (
                Some("image/jpeg"),
                None,
                vec![0xFF; 100_001],
                413,
                "image_too_large",
            ),
        ];
        for (ct, frame, body, status, code) in cases {
            let e = extract(ct, frame, body).await.unwrap_err();
            assert_eq!(
                (e.status().as_u16(), e.code()),
                (status, code),
                "{ct:?} {frame:?}: {e}"
            );
        }
    }
}
