//! What one side (tract or onnxruntime) measured and found, in one shape for
//! both, so the report and the parity check treat them alike.

use std::collections::BTreeMap;

/// Stage times of repeated runs of one pipeline on one image.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Stage name → milliseconds, one value per iteration.
    pub stages: BTreeMap<String, Vec<f64>>,
    /// Whole-frame milliseconds (decode included), one per iteration.
    pub frame_ms: Vec<f64>,
}

/// One face as a pipeline reported it.
#[derive(Debug, Clone, Default)]
pub struct Face {
    /// x, y, width, height in image pixels.
    pub bbox: [f32; 4],
    /// Detection score.
    pub score: f32,
    /// The five landmarks in image pixels.
    pub landmarks: [[f32; 2]; 5],
    /// Probability of male (analysis only).
    pub male_probability: Option<f32>,
    /// Estimated age (analysis only).
    pub age: Option<f32>,
    /// Unit-length embedding (recognition only).
    pub embedding: Option<Vec<f32>>,
}

/// Both pipelines on one image.
#[derive(Debug, Clone, Default)]
pub struct ImageRun {
    /// Decoded width.
    pub width: u32,
    /// Decoded height.
    pub height: u32,
    /// Image analysis timings.
    pub analysis: Samples,
    /// Face recognition timings.
    pub recognition: Samples,
    /// The analysis's faces (last iteration).
    pub analysis_faces: Vec<Face>,
    /// The recognition's faces (last iteration).
    pub recognition_faces: Vec<Face>,
}

/// Frames per second of one configuration on one image.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// Frames completed.
    pub frames: usize,
    /// Wall time from the common start to the last worker's end.
    pub seconds: f64,
    /// Per-frame latency of every frame.
    pub latencies_ms: Vec<f64>,
}

impl Throughput {
    /// Frames per second.
    pub fn fps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.frames as f64 / self.seconds
        } else {
            f64::NAN
        }
    }
}
