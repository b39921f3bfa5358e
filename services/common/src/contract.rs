//! The HTTP contract of the two vision services, image analysis and face
//! recognition, as Rust types. `services/CONTRACT.md` is the prose version.
//!
//! Both take one image per request as the raw body (`Content-Type: image/jpeg`
//! or `image/png`), with the frame id in the `X-Frame-Id` header when the
//! caller has one, and answer JSON. Errors use [`crate::types::ErrorBody`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::types::{AgeBracket, Gender};

/// `POST` an image here on the image analysis service.
pub const ANALYZE_PATH: &str = "/analyze";
/// `POST` an image here on the face recognition service.
pub const RECOGNIZE_PATH: &str = "/recognize";
/// Watchlist of the face recognition service: `GET` lists it; `POST
/// /watchlist/{name}` (image body) enrols, `DELETE /watchlist/{name}` removes.
pub const WATCHLIST_PATH: &str = "/watchlist";
/// Request header carrying the frame id, echoed in the response body.
pub const FRAME_ID_HEADER: &str = "x-frame-id";

/// A face's box in image pixels, origin top left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundingBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

impl BoundingBox {
    /// Finite, non-negative size.
    pub fn validate(&self, name: &str) -> Result<(), ApiError> {
        let all_finite = [self.x, self.y, self.width, self.height]
            .iter()
            .all(|v| v.is_finite());
        if !all_finite || self.width < 0.0 || self.height < 0.0 {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!("{name} must have finite coordinates and a non-negative size"),
            ));
        }
        Ok(())
    }
}

/// One face found by image analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzedFace {
    /// Where the face is.
    #[serde(rename = "box")]
    pub bbox: BoundingBox,
    /// Detection score, 0 to 1.
    pub score: f32,
    /// Five landmarks (eyes, nose, mouth corners) as `[x, y]` pixels; may be empty.
    #[serde(default)]
    pub landmarks: Vec<[f32; 2]>,
    /// Estimated gender.
    pub gender: Gender,
    /// Its confidence, 0 to 1.
    pub gender_confidence: f32,
    /// Estimated age in years.
    pub age: f32,
    /// The age's bracket.
    pub age_bracket: AgeBracket,
}

/// Image analysis's answer to `POST /analyze`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisResponse {
    /// The `X-Frame-Id` of the request, if it had one.
    #[serde(default)]
    pub frame_id: Option<String>,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// People counted in the frame.
    pub count: u32,
    /// The faces analysed.
    pub faces: Vec<AnalyzedFace>,
    /// Milliseconds per stage (`decode`, `detect`, `gender`, `age`, `total`, ...).
    #[serde(default)]
    pub timings_ms: BTreeMap<String, f64>,
}

/// One watchlist match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceMatch {
    /// The enrolled person's name.
    pub name: String,
    /// Cosine similarity with the enrolled face, at least the threshold.
    pub similarity: f32,
    /// Where the face is.
    #[serde(rename = "box")]
    pub bbox: BoundingBox,
}

/// Face recognition's answer to `POST /recognize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecognitionResponse {
    /// The `X-Frame-Id` of the request, if it had one.
    #[serde(default)]
    pub frame_id: Option<String>,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Faces found in the frame.
    pub faces: u32,
    /// The similarity threshold in force.
    pub threshold: f32,
    /// Persons of interest recognised, best first.
    pub matches: Vec<FaceMatch>,
    /// Milliseconds per stage.
    #[serde(default)]
    pub timings_ms: BTreeMap<String, f64>,
}

/// One watchlist entry (`GET /watchlist` answers `{"entries": [...]}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchlistEntry {
    /// The person's name.
    pub name: String,
    /// When the person was enrolled, RFC 3339.
    pub enrolled_at: String,
}

/// `GET /watchlist`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watchlist {
    /// Every enrolled person.
    pub entries: Vec<WatchlistEntry>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn analysis_response_reads_the_documented_example() {
        let json = r#"{
            "frame_id": "cam1-18c2f-7", "width": 640, "height": 480, "count": 1,
            "faces": [{
                "box": {"x": 212.0, "y": 96.5, "width": 88.0, "height": 110.0},
                "score": 0.97,
                "landmarks": [[240.1,140.2],[275.3,139.8],[258.0,160.4],[244.9,182.0],[272.2,181.6]],
                "gender": "male", "gender_confidence": 0.91,
                "age": 39.4, "age_bracket": "38-43"
            }],
            "timings_ms": {"decode": 2.1, "detect": 41.0, "gender": 1.2, "age": 2.3, "total": 47.0}
        }"#;
        let r: AnalysisResponse = serde_json::from_str(json).unwrap();
        assert_eq!(r.faces[0].age_bracket, AgeBracket::A38To43);
        assert_eq!(r.faces[0].landmarks.len(), 5);
    }

    #[test]
    fn recognition_response_reads_the_documented_example() {
        let json = r#"{
            "frame_id": null, "width": 640, "height": 480, "faces": 3, "threshold": 0.37,
            "matches": [{"name": "PersonX", "similarity": 0.52,
                         "box": {"x": 10, "y": 20, "width": 50, "height": 60}}]
        }"#;
        let r: RecognitionResponse = serde_json::from_str(json).unwrap();
        assert_eq!(r.matches[0].name, "PersonX");
        assert!(r.timings_ms.is_empty());
    }
}
