//! Do the two pipelines agree? Same number of faces on every image, and for
//! each face (paired by box overlap) the box and landmarks within a couple of
//! pixels, gender and age close, embeddings nearly parallel. Without this the
//! speed comparison would not be honest: a pipeline that finds fewer faces
//! or makes smaller chips does less work.
//!
//! The two sides cannot agree bit for bit: the JPEG decoders differ (the
//! `image` crate against libjpeg-turbo in OpenCV), OpenCV's uint8 resize and
//! warp use fixed-point weights and 1/32-pixel positions where the crate
//! computes in floating point, and the runtimes sum in different orders.

use crate::results::Face;

/// How far apart the two sides may be.
#[derive(Debug, Clone, Copy)]
pub struct Tolerances {
    /// Box edges and landmarks, in image pixels, for faces up to 200 pixels
    /// high; larger faces (detected on a frame shrunk to 640) get this much
    /// per 200 pixels of height.
    pub pixels: f32,
    /// |Δ probability of male|.
    pub male_probability: f32,
    /// |Δ age| in years.
    pub age: f32,
    /// |Δ detection score|.
    pub score: f32,
    /// Smallest cosine between the two embeddings of a face.
    pub cosine: f32,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            pixels: 2.0,
            male_probability: 0.05,
            age: 2.0,
            score: 0.05,
            cosine: 0.98,
        }
    }
}

/// The largest differences seen on one image and pipeline.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Faces found by tract.
    pub tract_faces: usize,
    /// Faces found by onnxruntime.
    pub ort_faces: usize,
    /// Largest box-edge difference, pixels.
    pub box_px: f32,
    /// Largest landmark difference (per coordinate), pixels.
    pub landmark_px: f32,
    /// Largest pixel difference relative to what the face's size allows
    /// (1.0 = at the tolerance).
    pub pixel_ratio: f32,
    /// Largest |Δ detection score|.
    pub score: f32,
    /// Largest |Δ male probability|.
    pub male_probability: f32,
    /// Largest |Δ age|.
    pub age: f32,
    /// Smallest embedding cosine (1.0 when there are no embeddings).
    pub min_cosine: f32,
    /// What failed, if anything.
    pub failures: Vec<String>,
}

impl Comparison {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let iy = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if ix <= 0.0 || iy <= 0.0 {
        return 0.0;
    }
    let inter = ix * iy;
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// Compares the faces the two sides found in one image by one pipeline.
pub fn compare(tract: &[Face], ort: &[Face], tol: &Tolerances) -> Comparison {
    let mut c = Comparison {
        tract_faces: tract.len(),
        ort_faces: ort.len(),
        min_cosine: 1.0,
        ..Comparison::default()
    };
    if tract.len() != ort.len() {
        c.failures.push(format!(
            "tract found {} faces, onnxruntime {}",
            tract.len(),
            ort.len()
        ));
    }
    let mut taken = vec![false; ort.len()];
    for (i, t) in tract.iter().enumerate() {
        let best = ort
            .iter()
            .enumerate()
            .filter(|(j, _)| !taken[*j])
            .map(|(j, o)| (j, iou(&t.bbox, &o.bbox)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((j, _)) = best.filter(|(_, overlap)| *overlap > 0.5) else {
            c.failures.push(format!(
                "tract's face {i} has no counterpart in onnxruntime's"
            ));
            continue;
        };
        taken[j] = true;
        let o = &ort[j];
        let score = (t.score - o.score).abs();
        c.score = c.score.max(score);
        if score > tol.score {
            c.failures.push(format!(
                "face {i}: detection score {:.3} against {:.3}",
                t.score, o.score
            ));
        }
        let allowed = tol.pixels * (t.bbox[3] / 200.0).max(1.0);
        let edges = |b: &[f32; 4]| [b[0], b[1], b[0] + b[2], b[1] + b[3]];
        let box_px = edges(&t.bbox)
            .iter()
            .zip(edges(&o.bbox))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let landmark_px = t
            .landmarks
            .iter()
            .flatten()
            .zip(o.landmarks.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        c.box_px = c.box_px.max(box_px);
        c.landmark_px = c.landmark_px.max(landmark_px);
        let ratio = box_px.max(landmark_px) / allowed;
        c.pixel_ratio = c.pixel_ratio.max(ratio);
        if ratio > 1.0 {
            c.failures.push(format!(
                "face {i}: box {box_px:.2} px, landmarks {landmark_px:.2} px apart (allowed {allowed:.1})"
            ));
        }
        if let (Some(a), Some(b)) = (t.male_probability, o.male_probability) {
            let d = (a - b).abs();
            c.male_probability = c.male_probability.max(d);
            if d > tol.male_probability {
                c.failures
                    .push(format!("face {i}: male probability {a:.3} against {b:.3}"));
            }
        }
        if let (Some(a), Some(b)) = (t.age, o.age) {
            let d = (a - b).abs();
            c.age = c.age.max(d);
            if d > tol.age {
                c.failures
                    .push(format!("face {i}: age {a:.1} against {b:.1}"));
            }
        }
        if let (Some(a), Some(b)) = (&t.embedding, &o.embedding) {
            let cos = if a.len() == b.len() {
                cosine(a, b)
            } else {
                f32::NAN
            };
            c.min_cosine = c.min_cosine.min(cos);
            if cos.is_nan() || cos < tol.cosine {
                c.failures
                    .push(format!("face {i}: embeddings' cosine {cos:.4}"));
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn face(x: f32, male: f32, age: f32, embedding: Vec<f32>) -> Face {
        Face {
            bbox: [x, 10.0, 50.0, 60.0],
            score: 0.9,
            landmarks: [[x + 10.0, 30.0]; 5],
            male_probability: Some(male),
            age: Some(age),
            embedding: Some(embedding),
        }
    }

    #[test]
    fn close_results_pass_in_any_order() {
        let tract = [
            face(0.0, 0.9, 30.0, vec![1.0, 0.0]),
            face(200.0, 0.1, 50.0, vec![0.0, 1.0]),
        ];
        let ort = [
            face(200.5, 0.11, 50.5, vec![0.01, 1.0]),
            face(0.3, 0.92, 30.2, vec![1.0, 0.02]),
        ];
        let c = compare(&tract, &ort, &Tolerances::default());
        assert!(c.ok(), "{:?}", c.failures);
        assert!((c.box_px - 0.5).abs() < 1e-4);
        assert!(c.min_cosine > 0.999);
    }

    #[test]
    fn each_kind_of_disagreement_fails() {
        let tol = Tolerances::default();
        let base = [face(0.0, 0.9, 30.0, vec![1.0, 0.0])];
        assert!(!compare(&base, &[], &tol).ok());
        assert!(!compare(&base, &[face(3.0, 0.9, 30.0, vec![1.0, 0.0])], &tol).ok());
        assert!(!compare(&base, &[face(0.0, 0.8, 30.0, vec![1.0, 0.0])], &tol).ok());
        assert!(!compare(&base, &[face(0.0, 0.9, 33.0, vec![1.0, 0.0])], &tol).ok());
        assert!(!compare(&base, &[face(0.0, 0.9, 30.0, vec![0.8, 0.6])], &tol).ok());
        assert!(!compare(&base, &[face(100.0, 0.9, 30.0, vec![1.0, 0.0])], &tol).ok());
    }
}
