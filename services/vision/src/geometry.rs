//! Plane geometry for faces: least-squares similarity transforms (for
//! aligning five landmarks onto a template), affine maps, box overlap and
//! non-maximum suppression.

use airport_common::contract::BoundingBox;

/// A point `[x, y]` in pixels.
pub type Point = [f32; 2];

/// A similarity transform (uniform scale, rotation, translation; no
/// reflection): `x' = a*x - b*y + tx`, `y' = b*x + a*y + ty`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// `scale * cos(angle)`.
    pub a: f64,
    /// `scale * sin(angle)`.
    pub b: f64,
    /// Translation along x.
    pub tx: f64,
    /// Translation along y.
    pub ty: f64,
}

impl Similarity {
    /// The similarity that maps `from` onto `to` with the least squared
    /// error (Umeyama's method restricted to rotations, which in 2-D has this
    /// closed form). `None` if fewer than two points are given, the lengths
    /// differ, or the `from` points all coincide.
    pub fn estimate(from: &[Point], to: &[Point]) -> Option<Similarity> {
        if from.len() != to.len() || from.len() < 2 {
            return None;
        }
        let n = from.len() as f64;
        let mean = |pts: &[Point]| {
            let (sx, sy) = pts.iter().fold((0.0, 0.0), |(sx, sy), p| {
                (sx + f64::from(p[0]), sy + f64::from(p[1]))
            });
            (sx / n, sy / n)
        };
        let (fx, fy) = mean(from);
        let (gx, gy) = mean(to);
        let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
        for (p, q) in from.iter().zip(to) {
            let (x, y) = (f64::from(p[0]) - fx, f64::from(p[1]) - fy);
            let (u, v) = (f64::from(q[0]) - gx, f64::from(q[1]) - gy);
            dot += x * u + y * v;
            cross += x * v - y * u;
            norm += x * x + y * y;
        }
        if norm <= f64::EPSILON {
            return None;
        }
        let a = dot / norm;
        let b = cross / norm;
        Some(Similarity {
            a,
            b,
            tx: gx - (a * fx - b * fy),
            ty: gy - (b * fx + a * fy),
        })
    }

    /// A transform from its scale, rotation (radians, counter-clockwise in
    /// a y-up frame, i.e. clockwise on screen) and translation.
    pub fn from_parts(scale: f64, angle: f64, tx: f64, ty: f64) -> Similarity {
        Similarity {
            a: scale * angle.cos(),
            b: scale * angle.sin(),
            tx,
            ty,
        }
    }

    /// Where `p` goes.
    pub fn apply(&self, p: Point) -> Point {
        let (x, y) = (f64::from(p[0]), f64::from(p[1]));
        [
            (self.a * x - self.b * y + self.tx) as f32,
            (self.b * x + self.a * y + self.ty) as f32,
        ]
    }

    /// The scale factor.
    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }

    /// The rotation angle in radians.
    pub fn angle(&self) -> f64 {
        self.b.atan2(self.a)
    }

    /// The inverse transform; `None` for a zero scale.
    pub fn inverse(&self) -> Option<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if d <= f64::EPSILON * f64::EPSILON {
            return None;
        }
        let (a, b) = (self.a / d, -self.b / d);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    /// The same map as a general affine transform.
    pub fn to_affine(&self) -> Affine {
        Affine {
            m: [[self.a, -self.b, self.tx], [self.b, self.a, self.ty]],
        }
    }
}

/// A general 2-D affine map `[x', y'] = M * [x, y, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Rows of the 2x3 matrix.
    pub m: [[f64; 3]; 2],
}

impl Affine {
    /// Where `(x, y)` goes.
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let [r0, r1] = self.m;
        (r0[0] * x + r0[1] * y + r0[2], r1[0] * x + r1[1] * y + r1[2])
    }

    /// How many source pixels one step along x or y covers (the larger of
    /// the two column norms): the downsampling factor of a warp.
    pub fn max_stretch(&self) -> f64 {
        let [r0, r1] = self.m;
        r0[0].hypot(r1[0]).max(r0[1].hypot(r1[1]))
    }
}

/// Intersection over union of two boxes; 0 when either is empty.
pub fn iou(a: &BoundingBox, b: &BoundingBox) -> f32 {
    let ix = (a.x + a.width).min(b.x + b.width) - a.x.max(b.x);
    let iy = (a.y + a.height).min(b.y + b.height) - a.y.max(b.y);
    if ix <= 0.0 || iy <= 0.0 {
        return 0.0;
    }
    let inter = ix * iy;
    let union = a.width * a.height + b.width * b.height - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Greedy non-maximum suppression: visits the boxes from the highest score
/// down and keeps a box unless it overlaps an already kept one with an IoU of
/// at least `iou_threshold`. Returns the indices kept, best first. Scores
/// that are NaN sort last.
pub fn non_max_suppression(
    boxes: &[BoundingBox],
    scores: &[f32],
    iou_threshold: f32,
) -> Vec<usize> {
    let n = boxes.len().min(scores.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]).then(i.cmp(&j)));
    order.retain(|&i| !scores[i].is_nan());
    let mut kept: Vec<usize> = Vec::new();
    for i in order {
        if kept
            .iter()
            .all(|&k| iou(&boxes[k], &boxes[i]) < iou_threshold)
        {
            kept.push(i);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn bx(x: f32, y: f32, w: f32, h: f32) -> BoundingBox {
        BoundingBox {
            x,
            y,
            width: w,
            height: h,
        }
    }

    #[test]
    fn a_known_similarity_is_recovered_exactly() {
        let truth = Similarity::from_parts(1.7, 0.4, 12.5, -3.0);
        let from: Vec<Point> = vec![
            [10.0, 20.0],
            [50.0, 22.0],
            [30.0, 40.0],
            [15.0, 60.0],
            [45.0, 61.0],
        ];
        let to: Vec<Point> = from.iter().map(|p| truth.apply(*p)).collect();
        let est = Similarity::estimate(&from, &to).unwrap();
        assert!((est.scale() - 1.7).abs() < 1e-5, "{est:?}");
        assert!((est.angle() - 0.4).abs() < 1e-5, "{est:?}");
        assert!(
            (est.tx - 12.5).abs() < 1e-3 && (est.ty + 3.0).abs() < 1e-3,
            "{est:?}"
        );
    }

    #[test]
    fn the_estimate_is_least_squares_under_noise() {
        let truth = Similarity::from_parts(0.5, -0.2, 3.0, 4.0);
        let from: Vec<Point> = vec![
            [0.0, 0.0],
            [100.0, 0.0],
            [50.0, 50.0],
            [10.0, 90.0],
            [90.0, 95.0],
        ];
        let noise = [
            [0.8, -0.5],
            [-0.3, 0.6],
            [0.2, 0.1],
            [-0.7, -0.4],
            [0.5, 0.2],
        ];
        let to: Vec<Point> = from
            .iter()
            .zip(noise)
            .map(|(p, n)| {
                let q = truth.apply(*p);
                [q[0] + n[0], q[1] + n[1]]
            })
            .collect();
        let est = Similarity::estimate(&from, &to).unwrap();
        let err = |t: &Similarity| -> f64 {
            from.iter()
                .zip(&to)
                .map(|(p, q)| {
                    let r = t.apply(*p);
                    f64::from(r[0] - q[0]).powi(2) + f64::from(r[1] - q[1]).powi(2)
                })
                .sum()
        };
        let best = err(&est);
        assert!(best <= err(&truth) + 1e-6);
        // Any perturbation of the estimate fits worse.
        for (da, db) in [(1e-3, 0.0), (-1e-3, 0.0), (0.0, 1e-3), (0.0, -1e-3)] {
            let moved = Similarity {
                a: est.a + da,
                b: est.b + db,
                ..est
            };
            assert!(err(&moved) > best);
        }
    }

    #[test]
    fn inverse_undoes_the_transform() {
        let t = Similarity::from_parts(2.5, 1.1, -7.0, 9.0);
        let inv = t.inverse().unwrap();
        let p = [13.0, -4.0];
        let back = inv.apply(t.apply(p));
        assert!((back[0] - p[0]).abs() < 1e-4 && (back[1] - p[1]).abs() < 1e-4);
    }

    #[test]
    fn degenerate_inputs_give_no_transform() {
        assert!(Similarity::estimate(&[[1.0, 1.0]], &[[2.0, 2.0]]).is_none());
        assert!(
            Similarity::estimate(&[[1.0, 1.0], [1.0, 1.0]], &[[0.0, 0.0], [3.0, 3.0]]).is_none()
        );
        assert!(Similarity::estimate(&[[0.0, 0.0], [1.0, 1.0]], &[[0.0, 0.0]]).is_none());
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(
            iou(&bx(0.0, 0.0, 10.0, 10.0), &bx(0.0, 0.0, 10.0, 10.0)),
            1.0
        );
        assert_eq!(
            iou(&bx(0.0, 0.0, 10.0, 10.0), &bx(10.0, 0.0, 10.0, 10.0)),
            0.0
        );
        let half = iou(&bx(0.0, 0.0, 10.0, 10.0), &bx(5.0, 0.0, 10.0, 10.0));
        assert!((half - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(iou(&bx(0.0, 0.0, 0.0, 0.0), &bx(0.0, 0.0, 0.0, 0.0)), 0.0);
    }

    #[test]
    fn nms_keeps_the_best_of_each_cluster() {
        let boxes = [
            bx(0.0, 0.0, 10.0, 10.0),
            bx(1.0, 1.0, 10.0, 10.0),
            bx(100.0, 100.0, 20.0, 20.0),
            bx(102.0, 101.0, 20.0, 20.0),
            bx(50.0, 0.0, 10.0, 10.0),
        ];
        let scores = [0.8, 0.9, 0.6, 0.7, 0.3];
        assert_eq!(non_max_suppression(&boxes, &scores, 0.3), vec![1, 3, 4]);
    }

    #[test]
    fn nms_threshold_decides_what_overlap_is_a_duplicate() {
        let boxes = [bx(0.0, 0.0, 10.0, 10.0), bx(5.0, 0.0, 10.0, 10.0)];
        let scores = [0.9, 0.8];
        // IoU is 1/3: suppressed at 0.3, kept at 0.5.
        assert_eq!(non_max_suppression(&boxes, &scores, 0.3), vec![0]);
        assert_eq!(non_max_suppression(&boxes, &scores, 0.5), vec![0, 1]);
    }

    #[test]
    fn nms_ignores_nan_scores_and_handles_empty_input() {
        assert!(non_max_suppression(&[], &[], 0.3).is_empty());
        let boxes = [bx(0.0, 0.0, 1.0, 1.0), bx(5.0, 5.0, 1.0, 1.0)];
        assert_eq!(non_max_suppression(&boxes, &[f32::NAN, 0.5], 0.3), vec![1]);
    }
}
