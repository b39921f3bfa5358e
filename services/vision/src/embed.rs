//! Face embeddings with an ArcFace-style model: the face is aligned on its
//! five landmarks to a fixed template (insightface's `norm_crop`: a
//! least-squares similarity from the landmarks to the template, then a
//! bilinear warp), normalised and embedded; embeddings are compared by
//! cosine similarity.
//!
//! The default is insightface's MobileFaceNet `w600k_mbf.onnx` (112x112 RGB,
//! `(x - 127.5) / 127.5`, 512 floats). Its licence allows non-commercial use
//! only, so the model file, input size, normalisation, channel order and
//! template are all configuration: any ArcFace-style model fits.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::detect::DetectedFace;
use crate::error::VisionError;
use crate::geometry::{Point, Similarity};
use crate::model::{ShapedModel, floats, tensor_with};
use crate::warp::extract_chip;

/// insightface's ArcFace template: where the five landmarks (left eye, right
/// eye, nose tip, left and right mouth corner) go in a 112x112 chip.
pub const ARCFACE_TEMPLATE_112: [Point; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// How the embedding model is fed.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedderConfig {
    /// The ONNX file.
    pub model: PathBuf,
    /// Side of the square input chip in pixels.
    pub input_size: u32,
    /// Subtracted from every channel value (0-255).
    pub mean: f32,
    /// Then divided by this.
    pub std: f32,
    /// Feed BGR instead of RGB (for models trained on OpenCV's order).
    pub bgr: bool,
    /// Where the five landmarks go in the chip, in chip pixels.
    pub template: [Point; 5],
    /// At most this many faces per inference call. 1 by default: with tract
    /// 0.23 MobileFaceNet runs slower batched (6 faces: 265 ms batched
    /// against 191 ms one by one).
    pub max_batch: usize,
}

impl EmbedderConfig {
    /// insightface's ArcFace conventions (112x112 RGB, `(x - 127.5) / 127.5`,
    /// the ArcFace template) for the model at `model`.
    pub fn arcface(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            input_size: 112,
            mean: 127.5,
            std: 127.5,
            bgr: false,
            template: ARCFACE_TEMPLATE_112,
            max_batch: 1,
        }
    }

    /// The ArcFace template scaled to another chip size (insightface scales
    /// it the same way for 128-pixel models and the like).
    pub fn with_input_size(mut self, input_size: u32) -> Self {
        let k = input_size as f32 / 112.0;
        self.template = ARCFACE_TEMPLATE_112.map(|[x, y]| [x * k, y * k]);
        self.input_size = input_size;
        self
    }

    fn validate(&self) -> Result<(), VisionError> {
        if self.input_size == 0 || self.input_size > 1024 {
            return Err(VisionError::InvalidConfig(format!(
                "embedding input_size {} is not between 1 and 1024",
                self.input_size
            )));
        }
        if !(self.std.is_finite() && self.std != 0.0 && self.mean.is_finite()) {
            return Err(VisionError::InvalidConfig(format!(
                "embedding normalisation (x - {}) / {} is not usable",
                self.mean, self.std
            )));
        }
        if self.max_batch == 0 {
            return Err(VisionError::InvalidConfig(
                "embedding max_batch is 0".into(),
            ));
        }
        Ok(())
    }
}

/// A unit-length face embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    /// Normalises `values` to unit length; `None` if they are empty, zero or
    /// not finite.
    pub fn new(mut values: Vec<f32>) -> Option<Embedding> {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return None;
        }
        values.iter_mut().for_each(|v| *v /= norm);
        Some(Embedding(values))
    }

    /// Cosine similarity, -1 to 1 (the dot product of unit vectors); 0 for
    /// embeddings of different lengths.
    pub fn cosine(&self, other: &Embedding) -> f32 {
        if self.0.len() != other.0.len() {
            return 0.0;
        }
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }

    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// The values, owned.
    pub fn into_vec(self) -> Vec<f32> {
        self.0
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for an embedding built by [`Embedding::new`].
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The embedding model, loaded once and shared by worker threads.
#[derive(Debug)]
pub struct FaceEmbedder {
    model: ShapedModel,
    config: EmbedderConfig,
    len: usize,
}

impl FaceEmbedder {
    /// Loads the model and runs it once to learn its embedding length.
    pub fn load(config: EmbedderConfig) -> Result<Self, VisionError> {
        config.validate()?;
        let model = ShapedModel::load(&config.model, config.max_batch.clamp(1, 32))?;
        let mut embedder = Self {
            model,
            config,
            len: 0,
        };
        let size = embedder.config.input_size;
        let probe = embedder.run_raw(&[RgbImage::new(size, size)], None)?;
        if probe.is_empty() {
            return Err(VisionError::ModelLoad {
                path: embedder.config.model.clone(),
                message: "the model gives an empty embedding".into(),
            });
        }
        embedder.len = probe.len();
        Ok(embedder)
    }

    /// The configuration in force.
    pub fn config(&self) -> &EmbedderConfig {
        &self.config
    }

    /// The model file.
    pub fn model_path(&self) -> &Path {
        self.model.path()
    }

    /// Floats per embedding (512 for ArcFace).
    pub fn embedding_len(&self) -> usize {
        self.len
    }

    /// Prepares the plans for batches of 1 to `faces` faces now.
    pub fn warm_up(&self, faces: usize) -> Result<(), VisionError> {
        let s = self.config.input_size as usize;
        for n in 1..=faces.clamp(1, self.config.max_batch) {
            self.model.plan(&[n, 3, s, s])?;
        }
        Ok(())
    }

    /// The aligned chip of a face with these landmarks, as insightface's
    /// `norm_crop` makes it; `None` for degenerate landmarks.
    pub fn align(&self, image: &RgbImage, landmarks: &[Point; 5]) -> Option<RgbImage> {
        // insightface fits image -> chip and warps with its inverse; fitting
        // chip -> image directly would differ slightly when the fit is not
        // exact.
        let to_chip = Similarity::estimate(landmarks, &self.config.template)?;
        let to_image = to_chip.inverse()?;
        Some(extract_chip(
            image,
            &to_image.to_affine(),
            self.config.input_size,
            1,
        ))
    }

    /// Embeddings of aligned chips (each `input_size` square).
    pub fn embed_chips(&self, chips: &[RgbImage]) -> Result<Vec<Embedding>, VisionError> {
        let raw = self.run_raw(chips, Some(self.len))?;
        raw.chunks_exact(self.len.max(1))
            .map(|row| {
                Embedding::new(row.to_vec()).ok_or_else(|| {
                    VisionError::inference(
                        "embedder",
                        "the model gave a zero or non-finite embedding",
                    )
                })
            })
            .collect()
    }

    /// Embeddings of the detected faces of `image`.
    pub fn embed(
        &self,
        image: &RgbImage,
        faces: &[DetectedFace],
    ) -> Result<Vec<Embedding>, VisionError> {
        let size = self.config.input_size;
        let chips: Vec<RgbImage> = faces
            .iter()
            .map(|f| {
                self.align(image, &f.landmarks)
                    .unwrap_or_else(|| RgbImage::new(size, size))
            })
            .collect();
        self.embed_chips(&chips)
    }

    fn run_raw(&self, chips: &[RgbImage], len: Option<usize>) -> Result<Vec<f32>, VisionError> {
        let size = self.config.input_size;
        if let Some(bad) = chips
            .iter()
            .find(|c| c.width() != size || c.height() != size)
        {
            return Err(VisionError::inference(
                "embedder",
                format!(
                    "chip is {}x{}, expected {size}x{size}",
                    bad.width(),
                    bad.height()
                ),
            ));
        }
        let s = size as usize;
        let plane = s * s;
        let (mean, std, bgr) = (self.config.mean, self.config.std, self.config.bgr);
        let mut out = Vec::new();
        for batch in chips.chunks(self.config.max_batch) {
            let input = tensor_with("embedder", &[batch.len(), 3, s, s], |data| {
                for (chip, slot) in batch.iter().zip(data.chunks_exact_mut(3 * plane)) {
                    for (i, px) in chip.as_raw().chunks_exact(3).enumerate() {
                        for c in 0..3 {
                            let source = if bgr { 2 - c } else { c };
                            slot[c * plane + i] = (f32::from(px[source]) - mean) / std;
                        }
                    }
                }
            })?;
            let outputs = self.model.run("embedder", input)?;
            let total = outputs[0].len();
            let expected = match len {
                Some(l) => batch.len() * l,
                None => total,
            };
            if total % batch.len() != 0 {
                return Err(VisionError::inference(
                    "embedder",
                    format!(
                        "output of {total} values does not split into {} faces",
                        batch.len()
                    ),
                ));
            }
            out.extend_from_slice(floats("embedder", &outputs[0], expected)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn embeddings_are_unit_length_and_cosine_is_their_dot_product() {
        let a = Embedding::new(vec![3.0, 4.0]).unwrap();
        assert!((a.as_slice()[0] - 0.6).abs() < 1e-6);
        let b = Embedding::new(vec![4.0, -3.0]).unwrap();
        assert!(a.cosine(&b).abs() < 1e-6);
        assert!((a.cosine(&a) - 1.0).abs() < 1e-6);
        let c = Embedding::new(vec![1.0, 0.0, 0.0]).unwrap();
        assert_eq!(a.cosine(&c), 0.0);
    }

    #[test]
    fn zero_or_non_finite_values_are_no_embedding() {
        assert!(Embedding::new(vec![]).is_none());
        assert!(Embedding::new(vec![0.0, 0.0]).is_none());
        assert!(Embedding::new(vec![f32::NAN, 1.0]).is_none());
    }

    #[test]
    fn the_template_scales_with_the_input_size() {
        let c = EmbedderConfig::arcface("m.onnx").with_input_size(224);
        assert_eq!(c.input_size, 224);
        assert!((c.template[0][0] - 2.0 * 38.2946).abs() < 1e-3);
    }
}
