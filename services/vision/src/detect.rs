//! Face detection with CenterFace: boxes, scores and five landmarks.
//!
//! The model is fully convolutional: it takes `1x3xHxW` raw RGB (0-255) with
//! H and W multiples of 32 and answers four maps at stride 4 — a face-centre
//! heatmap, the box size (log scale), the centre's sub-cell offset and five
//! landmarks relative to the box. Its file declares a 32x32 input, which is
//! overridden per frame size.
//!
//! The detection resolution dominates the cost of a frame (the network's
//! work grows with H*W), so frames are shrunk until their long side is at
//! most [`DetectorConfig::max_side`] (480 by default) and padded (not
//! stretched) up to a multiple of 32; coordinates are mapped back to the
//! original image.

use std::path::Path;

use airport_common::contract::BoundingBox;
use image::RgbImage;

use crate::error::VisionError;
use crate::geometry::{Point, non_max_suppression};
use crate::model::{ShapedModel, floats, tensor_with};
use crate::warp::resize_into_planes;

/// The network's output stride.
const STRIDE: usize = 4;
/// Input sides must be multiples of this.
const ALIGN: u32 = 32;
/// Heatmap cells above the threshold considered at most (the best ones), so
/// a pathological image cannot make suppression quadratic in the frame size.
const MAX_CANDIDATES: usize = 2000;

/// How the detector runs.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Frames whose long side is larger are shrunk to this before detection
    /// (at least 32). The cost is proportional to the pixel count: a 640x480
    /// frame takes about 0.56 times as long at 480 as at 640. 480 is the
    /// default because it still finds every face in the test photos (the 16
    /// faces of the 1237x800 team photo, 40 to 55 pixels high there, are 16
    /// to 21 pixels high at 480); 320 starts to miss faces that small.
    pub max_side: u32,
    /// Enlarge frames smaller than `max_side` up to it (finds smaller faces
    /// in small frames, at the full cost).
    pub upscale: bool,
    /// Heatmap score a face needs, 0 to 1.
    pub score_threshold: f32,
    /// Boxes overlapping a better one by this IoU or more are duplicates.
    pub nms_iou: f32,
    /// At most this many faces are returned (the best ones).
    pub max_faces: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            max_side: 480,
            upscale: false,
            score_threshold: 0.5,
            nms_iou: 0.3,
            max_faces: 200,
        }
    }
}

impl DetectorConfig {
    fn validate(&self) -> Result<(), VisionError> {
        if self.max_side < ALIGN {
            return Err(VisionError::InvalidConfig(format!(
                "detector max_side {} is below {ALIGN}",
                self.max_side
            )));
        }
        if !(0.0..=1.0).contains(&self.score_threshold) {
            return Err(VisionError::InvalidConfig(format!(
                "detector score_threshold {} is not between 0 and 1",
                self.score_threshold
            )));
        }
        if !(self.nms_iou > 0.0 && self.nms_iou <= 1.0) {
            return Err(VisionError::InvalidConfig(format!(
                "detector nms_iou {} is not in (0, 1]",
                self.nms_iou
            )));
        }
        Ok(())
    }
}

/// One face found in an image, in the image's pixel coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectedFace {
    /// The face's box, clipped to the image.
    pub bbox: BoundingBox,
    /// Detection score, 0 to 1.
    pub score: f32,
    /// Left eye, right eye, nose tip, left and right mouth corners ("left"
    /// as seen in the image).
    pub landmarks: [Point; 5],
}

/// The resolution the detector runs a frame at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionSize {
    /// The frame scaled to this width...
    pub width: u32,
    /// ...and this height,
    pub height: u32,
    /// then padded to this input width (a multiple of 32)...
    pub input_width: u32,
    /// ...and this input height (a multiple of 32).
    pub input_height: u32,
}

/// The CenterFace detector, loaded once and shared by worker threads.
#[derive(Debug)]
pub struct FaceDetector {
    model: ShapedModel,
    config: DetectorConfig,
}

impl FaceDetector {
    /// Loads `centerface.onnx`.
    pub fn load(path: &Path, config: DetectorConfig) -> Result<Self, VisionError> {
        config.validate()?;
        // Landscape and portrait sizes of a few camera formats, at most.
        let model = ShapedModel::load(path, 16)?;
        Ok(Self { model, config })
    }

    /// The configuration in force.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// The resolution a `width`x`height` frame is detected at.
    pub fn detection_size(&self, width: u32, height: u32) -> DetectionSize {
        let long = width.max(height).max(1);
        let scale = if long > self.config.max_side || self.config.upscale {
            f64::from(self.config.max_side) / f64::from(long)
        } else {
            1.0
        };
        let w = ((f64::from(width) * scale).round() as u32).clamp(1, self.config.max_side);
        let h = ((f64::from(height) * scale).round() as u32).clamp(1, self.config.max_side);
        DetectionSize {
            width: w,
            height: h,
            input_width: w.div_ceil(ALIGN) * ALIGN,
            input_height: h.div_ceil(ALIGN) * ALIGN,
        }
    }

    /// Prepares the optimised plan for frames of `width`x`height` now, so the
    /// first such frame is not slow (tract optimises per input size).
    pub fn warm_up(&self, width: u32, height: u32) -> Result<(), VisionError> {
        let size = self.detection_size(width, height);
        self.model
            .plan(&[1, 3, size.input_height as usize, size.input_width as usize])
            .map(|_| ())
    }

    /// Finds the faces in `image`, best score first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<DetectedFace>, VisionError> {
        let size = self.detection_size(image.width(), image.height());
        let (iw, ih) = (size.input_width as usize, size.input_height as usize);
        let input = tensor_with("detector", &[1, 3, ih, iw], |planes| {
            resize_into_planes(
                image,
                size.width as usize,
                size.height as usize,
                planes,
                iw,
                ih,
            );
        })?;
        let outputs = self.model.run("detector", input)?;
        let (gh, gw) = (ih / STRIDE, iw / STRIDE);
        let cells = gh * gw;
        for (i, channels) in [1usize, 2, 2, 10].iter().enumerate() {
            let shape = outputs[i].shape();
            if shape != [1, *channels, gh, gw] {
                return Err(VisionError::inference(
                    "detector",
                    format!("output {i} has shape {shape:?}, expected [1, {channels}, {gh}, {gw}]"),
                ));
            }
        }
        let heatmap = floats("detector", &outputs[0], cells)?;
        let scales = floats("detector", &outputs[1], 2 * cells)?;
        let offsets = floats("detector", &outputs[2], 2 * cells)?;
        let marks = floats("detector", &outputs[3], 10 * cells)?;

        let threshold = self.config.score_threshold;
        let mut candidates: Vec<usize> = (0..cells).filter(|&i| heatmap[i] > threshold).collect();
        if candidates.len() > MAX_CANDIDATES {
            candidates
                .select_nth_unstable_by(MAX_CANDIDATES, |&a, &b| heatmap[b].total_cmp(&heatmap[a]));
            candidates.truncate(MAX_CANDIDATES);
        }

        // From the detector's resolution back to the image's pixels.
        let sx = image.width() as f32 / size.width as f32;
        let sy = image.height() as f32 / size.height as f32;
        let (valid_w, valid_h) = (size.width as f32, size.height as f32);
        let stride = STRIDE as f32;
        let mut boxes = Vec::with_capacity(candidates.len());
        let mut scores = Vec::with_capacity(candidates.len());
        let mut landmarks = Vec::with_capacity(candidates.len());
        for &i in &candidates {
            let (row, col) = ((i / gw) as f32, (i % gw) as f32);
            let box_h = scales[i].exp() * stride;
            let box_w = scales[cells + i].exp() * stride;
            let cy = (row + offsets[i] + 0.5) * stride;
            let cx = (col + offsets[cells + i] + 0.5) * stride;
            let (x1, y1) = (cx - box_w / 2.0, cy - box_h / 2.0);
            let mut points = [[0.0f32; 2]; 5];
            for (j, p) in points.iter_mut().enumerate() {
                let ly = marks[(2 * j) * cells + i] * box_h + y1;
                let lx = marks[(2 * j + 1) * cells + i] * box_w + x1;
                *p = [lx * sx, ly * sy];
            }
            let (left, top) = (x1.clamp(0.0, valid_w), y1.clamp(0.0, valid_h));
            let (right, bottom) = (
                (x1 + box_w).clamp(0.0, valid_w),
                (y1 + box_h).clamp(0.0, valid_h),
            );
            if !(right > left && bottom > top) || points.iter().flatten().any(|v| !v.is_finite()) {
                continue;
            }
            boxes.push(BoundingBox {
                x: left * sx,
                y: top * sy,
                width: (right - left) * sx,
                height: (bottom - top) * sy,
            });
            scores.push(heatmap[i]);
            landmarks.push(points);
        }
        let kept = non_max_suppression(&boxes, &scores, self.config.nms_iou);
        Ok(kept
            .into_iter()
            .take(self.config.max_faces)
            .map(|i| DetectedFace {
                bbox: boxes[i],
                score: scores[i],
                landmarks: landmarks[i],
            })
            .collect())
    }
}
