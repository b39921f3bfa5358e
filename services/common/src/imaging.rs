//! Cheap image checks: is this a JPEG or PNG, and how big. Only the header is
//! read; decoding the pixels is the vision services' job (they answer 422 for
//! an image that is corrupt past its header).

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// JPEG or PNG.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl ImageInfo {
    /// `image/jpeg` or `image/png`.
    pub fn content_type(&self) -> &'static str {
        match self.format {
            ImageFormat::Png => "image/png",
            _ => "image/jpeg",
        }
    }
}

/// Why bytes are not an acceptable image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// No bytes.
    #[error("the image is empty")]
    Empty,
    /// Neither JPEG nor PNG.
    #[error("the image is not a JPEG or PNG")]
    NotAnImage,
    /// The header cannot be read.
    #[error("the image header cannot be read: {0}")]
    Corrupt(String),
    /// Zero-sized or more pixels than allowed.
    #[error("the image is {width}x{height}: {reason}")]
    BadSize {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Why refused.
        reason: String,
    },
}

/// Checks that `bytes` is a JPEG or PNG of at most `max_pixels` pixels.
pub fn inspect(bytes: &[u8], max_pixels: u64) -> Result<ImageInfo, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => f,
        _ => return Err(ImageError::NotAnImage),
    };
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    if width == 0 || height == 0 {
        return Err(ImageError::BadSize {
            width,
            height,
            reason: "empty".into(),
        });
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(ImageError::BadSize {
            width,
            height,
            reason: format!("more than {max_pixels} pixels"),
        });
    }
    Ok(ImageInfo {
        format,
        width,
        height,
    })
}

/// A small JPEG for tests and demos: a gradient with a light oval, `w`x`h`.
pub fn sample_jpeg(w: u32, h: u32, seed: u8) -> Result<Vec<u8>, image::ImageError> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let cx = f64::from(x) / f64::from(w.max(1)) - 0.5;
        let cy = f64::from(y) / f64::from(h.max(1)) - 0.5;
        let inside = cx * cx * 4.0 + cy * cy * 2.5 < 0.25;
        let base = [
            (x * 255 / w.max(1)) as u8 ^ seed,
            (y * 255 / h.max(1)) as u8,
            seed.wrapping_mul(3),
        ];
        if inside {
            image::Rgb([230, 200, 170])
        } else {
            image::Rgb(base)
        }
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, ImageFormat::Jpeg)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn reads_jpeg_size() {
        let jpeg = sample_jpeg(40, 30, 1).unwrap();
        let info = inspect(&jpeg, 10_000).unwrap();
        assert_eq!((info.width, info.height), (40, 30));
        assert_eq!(info.content_type(), "image/jpeg");
    }

    #[test]
    fn refuses_text_empty_and_huge() {
        assert_eq!(inspect(b"", 100), Err(ImageError::Empty));
        assert_eq!(
            inspect(b"hello, I am not a picture", 100),
            Err(ImageError::NotAnImage)
        );
        let jpeg = sample_jpeg(40, 30, 1).unwrap();
        assert!(matches!(
            inspect(&jpeg, 100),
            Err(ImageError::BadSize { .. })
        ));
    }

    #[test]
    fn refuses_a_truncated_header() {
        let jpeg = sample_jpeg(40, 30, 1).unwrap();
        assert!(inspect(&jpeg[..8], 10_000).is_err());
    }
}
