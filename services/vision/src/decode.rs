//! Image decoding with limits: the pixel count is checked from the header
//! before any pixel buffer exists, and the decoder's own allocations are
//! capped, so a forged header cannot make us allocate gigabytes. Broken
//! images are errors ([`DecodeError::Truncated`], [`DecodeError::Corrupt`]),
//! never a half-grey picture: JPEGs go through zune-jpeg in strict mode.

use std::io::{Cursor, ErrorKind};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;
use zune_jpeg::errors::DecodeErrors;

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

/// Decodes a JPEG or PNG into 8-bit RGB, refusing images over `max_pixels`
/// (checked from the header, before decoding). EXIF orientation (JPEG) is
/// applied, so the result is upright.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, DecodeError> {
    decode_with(bytes, &DecodeLimits::new(max_pixels))
}

/// [`decode`] with explicit [`DecodeLimits`].
pub fn decode_with(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => decode_jpeg(bytes, limits),
        Ok(ImageFormat::Png) => decode_png(bytes, limits),
        _ => Err(DecodeError::UnsupportedFormat),
    }
}

fn check_size(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), DecodeError> {
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
    Ok(())
}

/// JPEG with zune-jpeg in strict mode. The `image` crate runs the same
/// decoder leniently, like a browser: a truncated file decodes to grey below
/// the cut and corrupt data to noise, without an error. A service must say
/// the image is broken instead of counting faces in it.
fn decode_jpeg(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        // JPEG's own maximum: the pixel limit below is the one that refuses.
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX))
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(classify_jpeg)?;
    let info = decoder
        .info()
        .ok_or_else(|| DecodeError::Corrupt("the JPEG header cannot be read".into()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_size(width, height, limits)?;
    let orientation = decoder
        .exif()
        .and_then(|exif| Orientation::from_exif_chunk(exif))
        .unwrap_or(Orientation::NoTransforms);
    let pixels = decoder.decode().map_err(classify_jpeg)?;
    let image = RgbImage::from_raw(width, height, pixels).ok_or_else(|| {
        DecodeError::Corrupt("the JPEG decoded to fewer pixels than its header says".into())
    })?;
    if orientation == Orientation::NoTransforms {
        return Ok(image);
    }
    let mut image = DynamicImage::ImageRgb8(image);
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

fn classify_jpeg(e: DecodeErrors) -> DecodeError {
    let message = e.to_string();
    let lower = message.to_ascii_lowercase();
    let truncated = matches!(e, DecodeErrors::ExhaustedData)
        || lower.contains("premature end")
        || lower.contains("no more bytes")
        || lower.contains("eof")
        || lower.contains("end of");
    if truncated {
        DecodeError::Truncated(message)
    } else {
        DecodeError::Corrupt(message)
    }
}

/// PNG with the `image` crate (the png decoder reports truncation and bad
/// checksums).
fn decode_png(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png);
    let mut image_limits = Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc());
    reader.limits(image_limits);
    // Reads the chunks before the image data: nothing proportional to the
    // image size yet.
    let decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    let image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    // A no-op move for 8-bit RGB; a conversion for grey, alpha or 16 bits.
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
