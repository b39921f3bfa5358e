//! Every kind of bad image gives its typed error, never a panic, and a
//! forged header is refused before anything is allocated for its pixels.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use airport_vision::{DecodeError, DecodeLimits, decode, decode_with};

/// The error decoding gives; a decoded image fails the test (without
/// printing its pixels).
fn error_of(bytes: &[u8], max_pixels: u64) -> DecodeError {
    match decode(bytes, max_pixels) {
        Ok(image) => panic!(
            "decoded a {}x{} image, expected an error",
            image.width(),
            image.height()
        ),
        Err(e) => e,
    }
}

fn grace_hopper() -> Vec<u8> {
    std::fs::read(support::testdata("grace_hopper_512x512.jpg")).unwrap()
}

fn astronaut() -> Vec<u8> {
    std::fs::read(support::testdata("astronaut.png")).unwrap()
}

/// CRC-32 (ISO-HDLC, as PNG uses) for forging PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let mut chunk = kind.to_vec();
    chunk.extend_from_slice(data);
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    png.extend_from_slice(&chunk);
    png.extend_from_slice(&crc32(&chunk).to_be_bytes());
}

/// A PNG signature and an IHDR chunk claiming `width`x`height` 8-bit RGB,
/// then nothing.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    png
}

/// A well-formed PNG file claiming `width`x`height`, with a few bytes of
/// image data: what a forged upload looks like.
fn forged_png(width: u32, height: u32) -> Vec<u8> {
    let mut png = png_header(width, height);
    // A tiny zlib stream (one empty stored block).
    png_chunk(
        &mut png,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
        ],
    );
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// Position of the JPEG frame header (baseline FF C0 or progressive FF C2).
fn frame_header(jpeg: &[u8]) -> usize {
    jpeg.windows(2)
        .position(|w| w[0] == 0xff && (w[1] == 0xc0 || w[1] == 0xc2))
        .expect("a SOF0 or SOF2 marker")
}

#[test]
fn the_committed_images_decode() {
    let jpeg = decode(&grace_hopper(), 1_000_000).unwrap();
    assert_eq!(jpeg.dimensions(), (512, 512));
    let png = decode(&astronaut(), 512 * 512).unwrap();
    assert_eq!(png.dimensions(), (512, 512));
}

#[test]
fn exif_orientation_is_applied() {
    // A 64x32 JPEG whose EXIF says "rotate 90 degrees clockwise to view".
    let mut plain = Vec::new();
    let image = image::RgbImage::from_fn(64, 32, |x, _| image::Rgb([(x * 4) as u8, 0, 0]));
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 95)
        .encode_image(&image)
        .unwrap();
    assert_eq!(decode(&plain, 1_000_000).unwrap().dimensions(), (64, 32));
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08".to_vec();
    exif.extend_from_slice(&[0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
    let mut rotated = plain[..2].to_vec();
    rotated.extend_from_slice(&[0xff, 0xe1]);
    rotated.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    rotated.extend_from_slice(&exif);
    rotated.extend_from_slice(&plain[2..]);
    let upright = decode(&rotated, 1_000_000).unwrap();
    assert_eq!(upright.dimensions(), (32, 64));
    // The image's left edge (dark) is now its top.
    assert!(upright.get_pixel(16, 0).0[0] < 30 && upright.get_pixel(16, 63).0[0] > 200);
}

#[test]
fn empty_body() {
    assert_eq!(error_of(&[], 1_000_000), DecodeError::Empty);
}

#[test]
fn not_an_image() {
    assert_eq!(
        error_of(b"{\"not\": \"an image\"}", 1_000_000),
        DecodeError::UnsupportedFormat
    );
    // A real image format, but not one the services take.
    assert_eq!(
        error_of(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", 1_000_000),
        DecodeError::UnsupportedFormat
    );
}

#[test]
fn over_the_pixel_limit() {
    let err = error_of(&grace_hopper(), 512 * 512 - 1);
    assert_eq!(
        err,
        DecodeError::TooLarge {
            width: 512,
            height: 512,
            pixels: 512 * 512,
            max_pixels: 512 * 512 - 1
        }
    );
    assert!(matches!(
        error_of(&astronaut(), 1000),
        DecodeError::TooLarge { .. }
    ));
}

#[test]
fn a_forged_png_header_is_refused_before_decoding() {
    // 100000 x 100000 RGB would be 30 GB; the file is 80 bytes.
    let forged = forged_png(100_000, 100_000);
    assert_eq!(
        decode_with(&forged, &DecodeLimits::default()).map(|i| i.dimensions()),
        Err(DecodeError::TooLarge {
            width: 100_000,
            height: 100_000,
            pixels: 10_000_000_000,
            max_pixels: airport_vision::DEFAULT_MAX_PIXELS
        })
    );
}

#[test]
fn a_forged_jpeg_header_is_refused_before_decoding() {
    let mut jpeg = grace_hopper();
    // The frame header: marker (2), length (2), precision (1), height, width.
    let sof = frame_header(&jpeg);
    jpeg[sof + 5..sof + 7].copy_from_slice(&60_000u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&60_000u16.to_be_bytes());
    let err = error_of(&jpeg, 40_000_000);
    assert!(
        matches!(
            err,
            DecodeError::TooLarge {
                width: 60_000,
                height: 60_000,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_header_with_no_pixels_is_refused() {
    let err = error_of(&png_header(0, 10), 1_000_000);
    assert!(
        matches!(err, DecodeError::NoPixels { .. } | DecodeError::Corrupt(_)),
        "{err:?}"
    );
}

#[test]
fn truncated_images() {
    let png = astronaut();
    let err = error_of(&png[..png.len() / 2], 1_000_000);
    assert!(matches!(err, DecodeError::Truncated(_)), "png: {err:?}");
    // Only the header: no image data at all.
    let err = error_of(&png_header(64, 64), 1_000_000);
    assert!(
        matches!(err, DecodeError::Truncated(_)),
        "png header only: {err:?}"
    );
    let jpeg = grace_hopper();
    let err = error_of(&jpeg[..jpeg.len() / 2], 1_000_000);
    assert!(matches!(err, DecodeError::Truncated(_)), "jpeg: {err:?}");
}

#[test]
fn corrupt_images() {
    // PNG: the image data damaged (its checksum no longer matches).
    let mut png = astronaut();
    let idat = png
        .windows(4)
        .position(|w| w == b"IDAT")
        .expect("IDAT chunk");
    for b in &mut png[idat + 100..idat + 200] {
        *b ^= 0x5a;
    }
    let err = error_of(&png, 1_000_000);
    assert!(matches!(err, DecodeError::Corrupt(_)), "png: {err:?}");
    // JPEG: the header intact, the rest replaced by noise.
    let mut jpeg = grace_hopper();
    let sos = jpeg
        .windows(2)
        .position(|w| w == [0xff, 0xda])
        .expect("SOS marker");
    let mut x = 12345u32;
    for b in &mut jpeg[sos + 20..] {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let err = error_of(&jpeg, 1_000_000);
    assert!(
        matches!(err, DecodeError::Corrupt(_) | DecodeError::Truncated(_)),
        "jpeg: {err:?}"
    );
    // A JPEG signature and nothing that follows makes sense.
    let err = error_of(b"\xff\xd8\xff\xe0garbage", 1_000_000);
    assert!(
        matches!(err, DecodeError::Corrupt(_) | DecodeError::Truncated(_)),
        "{err:?}"
    );
}

#[test]
fn every_error_says_what_is_wrong() {
    let cases = [
        (error_of(&[], 10), "empty"),
        (error_of(b"xx", 10), "not a JPEG or PNG"),
        (error_of(&grace_hopper(), 10), "more than the limit of 10"),
    ];
    for (err, words) in cases {
        assert!(err.to_string().contains(words), "{err}");
    }
}
