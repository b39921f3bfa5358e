//! The configuration both vision services share, from environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use airport_common::ConfigError;
use airport_common::config::Lookup;
use airport_vision::DetectorConfig;

use crate::body::ImageLimits;

/// Settings common to image analysis and face recognition.
#[derive(Debug, Clone)]
pub struct ServingConfig {
    /// `LISTEN_ADDR`, default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// `SERVICE_VERSION`, default `v1`.
    pub version: String,
    /// `MODELS_DIR`, default `.models` (where `make models` installs them).
    pub models_dir: PathBuf,
    /// `VISION_WORKERS`, default one per core: frames analysed at once.
    pub workers: usize,
    /// `VISION_QUEUE_DEPTH`, default 8: frames waiting for a worker before
    /// more are refused with 503.
    pub queue_depth: usize,
    /// `VISION_RETRY_AFTER_SECS`, default 1: the `Retry-After` of a 503.
    pub retry_after_secs: u32,
    /// `MAX_BODY_BYTES` (default 8 MiB) and `MAX_IMAGE_PIXELS` (default 16 Mpx).
    pub limits: ImageLimits,
    /// `DETECTION_MAX_SIDE`, default airport-vision's (480): frames are
    /// shrunk until their long side is at most this before face detection
    /// (the detector's cost grows with the pixel count; lower misses small
    /// faces).
    pub detection_max_side: u32,
    /// `DETECTION_THRESHOLD`, default airport-vision's (0.5): the detector
    /// score a face needs.
    pub detection_threshold: f32,
}

/// Cores available to this process (at least 1).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl ServingConfig {
    /// Reads the shared settings.
    pub fn from_lookup(l: &Lookup) -> Result<Self, ConfigError> {
        // The detector's defaults are airport-vision's measured choices.
        let detector = DetectorConfig::default();
        Ok(Self {
            listen: l.listen_addr()?,
            version: l.version()?,
            models_dir: PathBuf::from(l.string("MODELS_DIR", ".models")),
            workers: l.bounded("VISION_WORKERS", cores(), 1, 256)?,
            queue_depth: l.bounded("VISION_QUEUE_DEPTH", 8, 0, 10_000)?,
            retry_after_secs: l.bounded("VISION_RETRY_AFTER_SECS", 1, 1, 3600)?,
            limits: ImageLimits {
                max_body_bytes: l.bounded("MAX_BODY_BYTES", 8 << 20, 1024, 256 << 20)?,
                max_image_pixels: l.bounded("MAX_IMAGE_PIXELS", 16_000_000, 1, 400_000_000)?,
            },
            detection_max_side: l.bounded("DETECTION_MAX_SIDE", detector.max_side, 32, 8192)?,
            detection_threshold: l.bounded(
                "DETECTION_THRESHOLD",
                detector.score_threshold,
                0.01,
                1.0,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn defaults_and_bad_values() {
        let c = ServingConfig::from_lookup(&Lookup::from_pairs([("MODELS_DIR", "/m")])).unwrap();
        assert_eq!(c.models_dir, PathBuf::from("/m"));
        assert_eq!(c.workers, cores());
        assert_eq!(c.queue_depth, 8);
        assert_eq!(c.limits.max_body_bytes, 8 << 20);
        assert_eq!(c.detection_max_side, DetectorConfig::default().max_side);
        let e =
            ServingConfig::from_lookup(&Lookup::from_pairs([("VISION_WORKERS", "0")])).unwrap_err();
        assert_eq!(e.name, "VISION_WORKERS");
    }
}
