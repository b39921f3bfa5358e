#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The committed demo frames in `services/testdata/frames` are small, valid
//! JPEGs made by this crate (`sample_jpeg`), so they carry no third-party rights.

use std::path::PathBuf;

use airport_common::imaging::{inspect, sample_jpeg};

fn frames_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/frames")
}

#[test]
fn committed_frames_are_small_jpegs() {
    let mut n = 0;
    for entry in std::fs::read_dir(frames_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() < 32 * 1024, "{} is large", path.display());
        let info = inspect(&bytes, 1_000_000).unwrap();
        assert_eq!(info.content_type(), "image/jpeg");
        n += 1;
    }
    assert!(n >= 2, "expected at least two frames");
}

/// `cargo test -p airport-common --test testdata -- --ignored` rewrites them.
#[test]
#[ignore = "writes the committed test frames"]
fn regenerate_frames() {
    let dir = frames_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (i, seed) in [11u8, 87, 163].into_iter().enumerate() {
        let jpeg = sample_jpeg(160, 120, seed).unwrap();
        std::fs::write(dir.join(format!("frame-{:02}.jpg", i + 1)), jpeg).unwrap();
    }
}
