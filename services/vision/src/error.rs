//! Typed errors: what was wrong with the image (the client's fault, a 4xx)
//! apart from what went wrong with the models (ours, a 5xx).

use std::path::PathBuf;

/// Why bytes could not be turned into an image. Every variant is the
/// client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("the image is empty (0 bytes)")]
    Empty,
    /// The bytes are neither a JPEG nor a PNG.
    #[error("the image is not a JPEG or PNG")]
    UnsupportedFormat,
    /// The header says the image has more pixels than allowed; nothing was
    /// decoded.
    #[error("the image is {width}x{height} = {pixels} pixels, more than the limit of {max_pixels}")]
    TooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// `width * height`.
        pixels: u64,
        /// The limit in force.
        max_pixels: u64,
    },
    /// The header declares a zero width or height.
    #[error("the image is {width}x{height}: it has no pixels")]
    NoPixels {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// The data ends before the image does.
    #[error("the image is truncated: {0}")]
    Truncated(String),
    /// The data is not a valid image of its format.
    #[error("the image is corrupt: {0}")]
    Corrupt(String),
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// The image could not be decoded (the client's fault).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A model file is not where the configuration says.
    #[error("model file {path} not found: run `make models` (or set MODELS_DIR)")]
    ModelMissing {
        /// The expected path.
        path: PathBuf,
    },
    /// A model file exists but cannot be loaded or prepared for inference.
    #[error("cannot load model {path}: {message}")]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// tract's explanation.
        message: String,
    },
    /// The configuration is not usable (for example a zero input size).
    #[error("invalid vision configuration: {0}")]
    InvalidConfig(String),
    /// Inference failed at run time (a bug or an unexpected model, never the
    /// client's fault).
    #[error("{model} inference failed: {message}")]
    Inference {
        /// Which model (`detector`, `gender`, `age`, `embedder`).
        model: &'static str,
        /// tract's explanation.
        message: String,
    },
}

impl VisionError {
    /// The image was at fault (a 4xx), not the service.
    pub fn is_client_error(&self) -> bool {
        matches!(self, VisionError::Decode(_))
    }

    pub(crate) fn inference(model: &'static str, e: impl std::fmt::Display) -> Self {
        VisionError::Inference {
            model,
            message: format!("{e:#}"),
        }
    }
}
