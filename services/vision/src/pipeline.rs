//! The two pipelines the services run: [`Analyzer`] (detect, then gender and
//! age of every face) and [`Recognizer`] (detect, then embed every face).
//! Each loads its models once; every method takes `&self`, so one instance
//! behind an `Arc` serves all worker threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airport_common::contract::AnalyzedFace;
use image::RgbImage;

use crate::attributes::{AttributeConfig, AttributeEstimator, FaceAttributes};
use crate::decode::{DecodeLimits, decode_with};
use crate::detect::{DetectedFace, DetectorConfig, FaceDetector};
use crate::embed::{EmbedderConfig, Embedding, FaceEmbedder};
use crate::error::VisionError;

/// File name of the face detector in a model directory.
pub const DETECTOR_FILE: &str = "centerface.onnx";
/// File name of the gender model in a model directory.
pub const GENDER_FILE: &str = "gender-v1.onnx";
/// File name of the age model in a model directory.
pub const AGE_FILE: &str = "age-v1.onnx";
/// File name of the default embedding model in a model directory.
pub const EMBEDDER_FILE: &str = "w600k_mbf.onnx";

/// The model directory: `$MODELS_DIR` if set, else `.models` under
/// `workspace_root` (where `make models` installs them).
pub fn model_dir(workspace_root: &Path) -> PathBuf {
    std::env::var_os("MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join(".models"))
}

/// Milliseconds spent per stage, in the order the stages ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    stages: Vec<(&'static str, Duration)>,
}

impl Timings {
    /// No stages yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `took` to `stage` (a new stage goes last).
    pub fn add(&mut self, stage: &'static str, took: Duration) {
        match self.stages.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, d)) => *d += took,
            None => self.stages.push((stage, took)),
        }
    }

    /// Runs `f` and adds its duration to `stage`.
    pub fn time<T>(&mut self, stage: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.add(stage, start.elapsed());
        out
    }

    /// Time spent in `stage`, if it ran.
    pub fn get(&self, stage: &str) -> Option<Duration> {
        self.stages
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, d)| *d)
    }

    /// The stages and their durations, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Duration)> + '_ {
        self.stages.iter().copied()
    }

    /// The sum of all stages.
    pub fn total(&self) -> Duration {
        self.stages.iter().map(|(_, d)| *d).sum()
    }

    /// Stage name to milliseconds (the contract's `timings_ms`, without
    /// `total`, which only the caller can measure end to end).
    pub fn to_millis(&self) -> BTreeMap<String, f64> {
        self.stages
            .iter()
            .map(|(s, d)| ((*s).to_string(), d.as_secs_f64() * 1000.0))
            .collect()
    }
}

/// Where [`Analyzer`]'s models are and how they run.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzerConfig {
    /// `centerface.onnx`.
    pub detector_model: PathBuf,
    /// `gender-v1.onnx`.
    pub gender_model: PathBuf,
    /// `age-v1.onnx`.
    pub age_model: PathBuf,
    /// Detection settings.
    pub detector: DetectorConfig,
    /// Chip and batching settings.
    pub attributes: AttributeConfig,
}

impl AnalyzerConfig {
    /// The standard file names in `dir`, default settings.
    pub fn from_dir(dir: &Path) -> Self {
        Self {
            detector_model: dir.join(DETECTOR_FILE),
            gender_model: dir.join(GENDER_FILE),
            age_model: dir.join(AGE_FILE),
            detector: DetectorConfig::default(),
            attributes: AttributeConfig::default(),
        }
    }
}

/// One analysed face.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceAnalysis {
    /// Where it is.
    pub face: DetectedFace,
    /// Its gender and age.
    pub attributes: FaceAttributes,
}

impl FaceAnalysis {
    /// As the image analysis contract writes it.
    pub fn to_contract(&self) -> AnalyzedFace {
        AnalyzedFace {
            bbox: self.face.bbox,
            score: self.face.score,
            landmarks: self.face.landmarks.to_vec(),
            gender: self.attributes.gender,
            gender_confidence: self.attributes.gender_confidence,
            age: self.attributes.age,
            age_bracket: self.attributes.age_bracket,
        }
    }
}

/// What [`Analyzer`] found in one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The faces, best detection score first.
    pub faces: Vec<FaceAnalysis>,
    /// `decode` (when decoding was asked for), `detect`, `align`, `gender`,
    /// `age`.
    pub timings: Timings,
}

/// Face detection plus gender and age: the image analysis pipeline.
#[derive(Debug)]
pub struct Analyzer {
    detector: FaceDetector,
    attributes: AttributeEstimator,
}

impl Analyzer {
    /// Loads the models the configuration names.
    pub fn new(config: &AnalyzerConfig) -> Result<Self, VisionError> {
        Ok(Self {
            detector: FaceDetector::load(&config.detector_model, config.detector.clone())?,
            attributes: AttributeEstimator::load(
                &config.gender_model,
                &config.age_model,
                config.attributes.clone(),
            )?,
        })
    }

    /// Loads the models from `dir` with default settings.
    pub fn from_dir(dir: &Path) -> Result<Self, VisionError> {
        Self::new(&AnalyzerConfig::from_dir(dir))
    }

    /// The detector.
    pub fn detector(&self) -> &FaceDetector {
        &self.detector
    }

    /// The gender and age models.
    pub fn attributes(&self) -> &AttributeEstimator {
        &self.attributes
    }

    /// Builds the optimised plans for `width`x`height` frames with up to
    /// `faces` faces now instead of on the first such frame.
    pub fn warm_up(&self, width: u32, height: u32, faces: usize) -> Result<(), VisionError> {
        self.detector.warm_up(width, height)?;
        self.attributes.warm_up(faces)
    }

    /// Analyses a decoded image.
    pub fn analyze(&self, image: &RgbImage) -> Result<Analysis, VisionError> {
        self.analyze_timed(image, Timings::new())
    }

    /// Decodes (within `limits`) and analyses; a bad image is
    /// [`VisionError::Decode`].
    pub fn analyze_bytes(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<Analysis, VisionError> {
        let mut timings = Timings::new();
        let image = timings.time("decode", || decode_with(bytes, limits))?;
        self.analyze_timed(&image, timings)
    }

    fn analyze_timed(
        &self,
        image: &RgbImage,
        mut timings: Timings,
    ) -> Result<Analysis, VisionError> {
        let faces = timings.time("detect", || self.detector.detect(image))?;
        let chips = timings.time("align", || self.attributes.chips(image, &faces));
        let genders = timings.time("gender", || {
            self.attributes.gender_probabilities(&chips.gender)
        })?;
        let ages = timings.time("age", || self.attributes.age_probabilities(&chips.age))?;
        let faces = faces
            .into_iter()
            .zip(genders.iter().zip(&ages))
            .map(|(face, (g, a))| FaceAnalysis {
                face,
                attributes: FaceAttributes::from_probabilities(*g, a),
            })
            .collect();
        Ok(Analysis {
            width: image.width(),
            height: image.height(),
            faces,
            timings,
        })
    }
}

/// Where [`Recognizer`]'s models are and how they run.
#[derive(Debug, Clone, PartialEq)]
pub struct RecognizerConfig {
    /// `centerface.onnx`.
    pub detector_model: PathBuf,
    /// Detection settings.
    pub detector: DetectorConfig,
    /// The embedding model and how to feed it.
    pub embedder: EmbedderConfig,
}

impl RecognizerConfig {
    /// The standard file names in `dir` (`w600k_mbf.onnx` for embeddings),
    /// default settings.
    pub fn from_dir(dir: &Path) -> Self {
        Self {
            detector_model: dir.join(DETECTOR_FILE),
            detector: DetectorConfig::default(),
            embedder: EmbedderConfig::arcface(dir.join(EMBEDDER_FILE)),
        }
    }
}

/// One face and its embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedFace {
    /// Where it is.
    pub face: DetectedFace,
    /// Its unit-length embedding.
    pub embedding: Embedding,
}

/// What [`Recognizer`] found in one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The faces, best detection score first.
    pub faces: Vec<EmbeddedFace>,
    /// `decode` (when decoding was asked for), `detect`, `align`, `embed`.
    pub timings: Timings,
}

/// Face detection plus embeddings: the face recognition pipeline.
#[derive(Debug)]
pub struct Recognizer {
    detector: FaceDetector,
    embedder: FaceEmbedder,
}

impl Recognizer {
    /// Loads the models the configuration names.
    pub fn new(config: &RecognizerConfig) -> Result<Self, VisionError> {
        Ok(Self {
            detector: FaceDetector::load(&config.detector_model, config.detector.clone())?,
            embedder: FaceEmbedder::load(config.embedder.clone())?,
        })
    }

    /// Loads the models from `dir` with default settings.
    pub fn from_dir(dir: &Path) -> Result<Self, VisionError> {
        Self::new(&RecognizerConfig::from_dir(dir))
    }

    /// The detector.
    pub fn detector(&self) -> &FaceDetector {
        &self.detector
    }

    /// The embedding model.
    pub fn embedder(&self) -> &FaceEmbedder {
        &self.embedder
    }

    /// Floats per embedding.
    pub fn embedding_len(&self) -> usize {
        self.embedder.embedding_len()
    }

    /// Builds the optimised plans for `width`x`height` frames with up to
    /// `faces` faces now instead of on the first such frame.
    pub fn warm_up(&self, width: u32, height: u32, faces: usize) -> Result<(), VisionError> {
        self.detector.warm_up(width, height)?;
        self.embedder.warm_up(faces)
    }

    /// Detects and embeds the faces of a decoded image.
    pub fn recognize(&self, image: &RgbImage) -> Result<Recognition, VisionError> {
        self.recognize_timed(image, Timings::new())
    }

    /// Decodes (within `limits`), detects and embeds; a bad image is
    /// [`VisionError::Decode`].
    pub fn recognize_bytes(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<Recognition, VisionError> {
        let mut timings = Timings::new();
        let image = timings.time("decode", || decode_with(bytes, limits))?;
        self.recognize_timed(&image, timings)
    }

    fn recognize_timed(
        &self,
        image: &RgbImage,
        mut timings: Timings,
    ) -> Result<Recognition, VisionError> {
        let faces = timings.time("detect", || self.detector.detect(image))?;
        let size = self.embedder.config().input_size;
        let chips: Vec<RgbImage> = timings.time("align", || {
            faces
                .iter()
                .map(|f| {
                    self.embedder
                        .align(image, &f.landmarks)
                        .unwrap_or_else(|| RgbImage::new(size, size))
                })
                .collect()
        });
        let embeddings = timings.time("embed", || self.embedder.embed_chips(&chips))?;
        let faces = faces
            .into_iter()
            .zip(embeddings)
            .map(|(face, embedding)| EmbeddedFace { face, embedding })
            .collect();
        Ok(Recognition {
            width: image.width(),
            height: image.height(),
            faces,
            timings,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn timings_accumulate_per_stage_in_order() {
        let mut t = Timings::new();
        t.add("detect", Duration::from_millis(5));
        t.add("embed", Duration::from_millis(2));
        t.add("detect", Duration::from_millis(1));
        assert_eq!(t.get("detect"), Some(Duration::from_millis(6)));
        assert_eq!(
            t.iter().map(|(s, _)| s).collect::<Vec<_>>(),
            ["detect", "embed"]
        );
        assert_eq!(t.total(), Duration::from_millis(8));
        assert_eq!(t.to_millis()["embed"], 2.0);
    }

    #[test]
    fn pipelines_are_shareable_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Analyzer>();
        shareable::<Recognizer>();
        shareable::<FaceDetector>();
        shareable::<AttributeEstimator>();
        shareable::<FaceEmbedder>();
    }
}
