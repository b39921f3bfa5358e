//! Image decoding with limits: the pixel count is checked from the header
//! before any pixel buffer exists, and the decoder's own allocations are
//! capped, so a forged header cannot make us allocate gigabytes.

use std::io::{Cursor, ErrorKind};

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::DecodeError;

/// The default pixel limit: 40 megapixels (a 7680x5120 photo); camera frames
/// are far smaller.
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// What [`decode_with`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most pixels (`width * height`) an image may have.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

impl DecodeLimits {
    /// Limits allowing at most `max_pixels` pixels.
    pub fn new(max_pixels: u64) -> Self {
        Self { max_pixels }
    }

    /// The decoder's allocation cap: the RGBA 16-bit output buffer (8 bytes a
    /// pixel, the widest a PNG decodes to) plus room for its working state.
    fn max_alloc(&self) -> u64 {
        self.max_pixels.saturating_mul(8).saturating_add(64 << 20)
    }
}

/// Decodes a JPEG or PNG into 8-bit RGB, refusing images over `max_pixels`.
/// EXIF orientation (JPEG) is applied, so the result is upright.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, DecodeError> {
    decode_with(bytes, &DecodeLimits::new(max_pixels))
}

/// [`decode`] with explicit [`DecodeLimits`].
pub fn decode_with(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    if !matches!(reader.format(), Some(ImageFormat::Jpeg | ImageFormat::Png)) {
        return Err(DecodeError::UnsupportedFormat);
    }
    let mut image_limits = Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc());
    reader.limits(image_limits);
    // Reading the header only: nothing proportional to the image size yet.
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(DecodeError::NoPixels { width, height });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            pixels,
            max_pixels: limits.max_pixels,
        });
    }
    // A missing or unreadable orientation tag is no reason to refuse a photo.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    image.apply_orientation(orientation);
    // A no-op move for the usual 8-bit RGB JPEG; a conversion otherwise.
    Ok(image.into_rgb8())
}

/// Sorts the decoder's error into truncated or corrupt.
fn classify(e: ImageError) -> DecodeError {
    match &e {
        ImageError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => {
            DecodeError::Truncated(e.to_string())
        }
        ImageError::Limits(_) => DecodeError::Corrupt(format!(
            "decoding would need more memory than the image's size allows: {e}"
        )),
        _ => {
            let message = e.to_string();
            let lower = message.to_ascii_lowercase();
            if lower.contains("eof") || lower.contains("end of") || lower.contains("truncat") {
                DecodeError::Truncated(message)
            } else {
                DecodeError::Corrupt(message)
            }
        }
    }
}
