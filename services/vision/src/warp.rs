//! Pixel resampling: aligned face chips (an affine warp) and the detector's
//! input (a resize written straight into the model's tensor).

use image::RgbImage;

use crate::geometry::Affine;

/// Bilinear sample of one pixel position (pixel centres at integer
/// coordinates, as OpenCV and dlib use); zero outside the image, blended at
/// the border as OpenCV's constant border does.
#[inline]
fn sample(image: &RgbImage, x: f64, y: f64) -> [f32; 3] {
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    let x0f = x.floor();
    let y0f = y.floor();
    let (fx, fy) = ((x - x0f) as f32, (y - y0f) as f32);
    // Far outside: the cast saturates, and the bounds check below rejects it.
    let (x0, y0) = (x0f as i64, y0f as i64);
    let raw = image.as_raw();
    let px = |xi: i64, yi: i64| -> [f32; 3] {
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            return [0.0; 3];
        }
        let i = ((yi * w + xi) * 3) as usize;
        [
            f32::from(raw[i]),
            f32::from(raw[i + 1]),
            f32::from(raw[i + 2]),
        ]
    };
    let (p00, p10, p01, p11) = (
        px(x0, y0),
        px(x0 + 1, y0),
        px(x0, y0 + 1),
        px(x0 + 1, y0 + 1),
    );
    let mut out = [0.0; 3];
    for c in 0..3 {
        let top = p00[c] + (p10[c] - p00[c]) * fx;
        let bottom = p01[c] + (p11[c] - p01[c]) * fx;
        out[c] = top + (bottom - top) * fy;
    }
    out
}

/// Extracts a `size`x`size` chip: chip pixel `(c, r)` takes the image's
/// colour at `chip_to_image(c, r)`, bilinear, black outside the image.
///
/// `supersample` > 1 averages that many samples per axis inside each chip
/// pixel, an area filter that keeps a large face from aliasing when it is
/// shrunk several times (dlib extracts its chips from an image pyramid for
/// the same reason).
pub fn extract_chip(
    image: &RgbImage,
    chip_to_image: &Affine,
    size: u32,
    supersample: u32,
) -> RgbImage {
    let k = supersample.max(1);
    let offsets: Vec<f64> = (0..k)
        .map(|i| (f64::from(i) + 0.5) / f64::from(k) - 0.5)
        .collect();
    let weight = 1.0 / (k * k) as f32;
    let mut chip = RgbImage::new(size, size);
    for (c, r, pixel) in chip.enumerate_pixels_mut() {
        let mut acc = [0.0f32; 3];
        for dy in &offsets {
            for dx in &offsets {
                let (x, y) = chip_to_image.apply(f64::from(c) + dx, f64::from(r) + dy);
                let s = sample(image, x, y);
                for ch in 0..3 {
                    acc[ch] += s[ch];
                }
            }
        }
        for (out, sum) in pixel.0.iter_mut().zip(acc) {
            *out = (sum * weight).round().clamp(0.0, 255.0) as u8;
        }
    }
    chip
}

/// How many samples per axis [`extract_chip`] needs for a warp that covers
/// `stretch` source pixels per chip pixel: one when enlarging, then one per
/// source pixel, at most 8.
pub fn supersampling_for(stretch: f64) -> u32 {
    if stretch.is_finite() && stretch > 1.0 {
        (stretch.ceil() as u32).min(8)
    } else {
        1
    }
}

/// Writes `image` resized to `width`x`height` (bilinear, OpenCV's half-pixel
/// convention, like `cv2.resize`) into a planar RGB float buffer of
/// `plane_width`x`plane_height` per channel (the detector's padded input;
/// the area outside the image is left as it is, zero). Values stay 0-255.
pub fn resize_into_planes(
    image: &RgbImage,
    width: usize,
    height: usize,
    planes: &mut [f32],
    plane_width: usize,
    plane_height: usize,
) {
    let (sw, sh) = (image.width() as usize, image.height() as usize);
    let plane = plane_width * plane_height;
    if sw == 0 || sh == 0 || width == 0 || height == 0 || planes.len() < 3 * plane {
        return;
    }
    let width = width.min(plane_width);
    let height = height.min(plane_height);
    let raw = image.as_raw();
    if width == sw && height == sh {
        for y in 0..height {
            let row = &raw[y * sw * 3..(y + 1) * sw * 3];
            for (x, px) in row.chunks_exact(3).enumerate() {
                let o = y * plane_width + x;
                planes[o] = f32::from(px[0]);
                planes[plane + o] = f32::from(px[1]);
                planes[2 * plane + o] = f32::from(px[2]);
            }
        }
        return;
    }
    // Source positions and weights per column, computed once.
    let axis = |dst: usize, src: usize| -> Vec<(usize, usize, f32)> {
        let scale = src as f64 / dst as f64;
        (0..dst)
            .map(|d| {
                let s = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(src - 1);
                let i1 = (i0 + 1).min(src - 1);
                (i0, i1, (s - i0 as f64) as f32)
            })
            .collect()
    };
    let xs = axis(width, sw);
    let ys = axis(height, sh);
    for (y, &(y0, y1, fy)) in ys.iter().enumerate() {
        let row0 = &raw[y0 * sw * 3..(y0 + 1) * sw * 3];
        let row1 = &raw[y1 * sw * 3..(y1 + 1) * sw * 3];
        for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
            let o = y * plane_width + x;
            for c in 0..3 {
                let a = f32::from(row0[x0 * 3 + c]);
                let b = f32::from(row0[x1 * 3 + c]);
                let d = f32::from(row1[x0 * 3 + c]);
                let e = f32::from(row1[x1 * 3 + c]);
                let top = a + (b - a) * fx;
                let bottom = d + (e - d) * fx;
                planes[c * plane + o] = top + (bottom - top) * fy;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::geometry::Similarity;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 77]))
    }

    #[test]
    fn identity_chip_copies_pixels() {
        let img = gradient(20, 20);
        let id = Similarity::from_parts(1.0, 0.0, 4.0, 6.0).to_affine();
        let chip = extract_chip(&img, &id, 8, 1);
        for (c, r, p) in chip.enumerate_pixels() {
            assert_eq!(p, img.get_pixel(c + 4, r + 6));
        }
    }

    #[test]
    fn outside_the_image_is_black() {
        let img = gradient(10, 10);
        let far = Similarity::from_parts(1.0, 0.0, 100.0, 100.0).to_affine();
        let chip = extract_chip(&img, &far, 4, 2);
        assert!(chip.pixels().all(|p| p.0 == [0, 0, 0]));
    }

    #[test]
    fn supersampling_averages_a_checkerboard_to_grey() {
        let img = RgbImage::from_fn(64, 64, |x, y| {
            if (x + y) % 2 == 0 {
                image::Rgb([255; 3])
            } else {
                image::Rgb([0; 3])
            }
        });
        // Shrink 4x: plain bilinear hits single pixels, the area filter greys.
        let shrink = Similarity::from_parts(4.0, 0.0, 1.5, 1.5).to_affine();
        let chip = extract_chip(&img, &shrink, 8, supersampling_for(shrink.max_stretch()));
        for p in chip.pixels() {
            assert!((i32::from(p.0[0]) - 128).abs() <= 2, "{p:?}");
        }
    }

    #[test]
    fn resize_copies_when_the_size_is_unchanged_and_pads_with_zero() {
        let img = gradient(5, 3);
        let mut planes = vec![0.0; 3 * 8 * 4];
        resize_into_planes(&img, 5, 3, &mut planes, 8, 4);
        assert_eq!(planes[8 + 2], f32::from(img.get_pixel(2, 1).0[0]));
        assert_eq!(planes[32 + 8 + 2], f32::from(img.get_pixel(2, 1).0[1]));
        assert_eq!(planes[7], 0.0);
        assert_eq!(planes[3 * 8], 0.0);
    }

    #[test]
    fn halving_averages_pixel_pairs() {
        let img = gradient(8, 8);
        let mut planes = vec![0.0; 3 * 4 * 4];
        resize_into_planes(&img, 4, 4, &mut planes, 4, 4);
        // Destination x=1 samples source x=2.5: the mean of columns 2 and 3.
        let want =
            (f32::from(img.get_pixel(2, 0).0[0]) + f32::from(img.get_pixel(3, 0).0[0])) / 2.0;
        assert!((planes[1] - want).abs() < 1e-4);
    }
}
