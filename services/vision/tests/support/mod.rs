//! Shared by the model tests: where the models, fixtures and images are.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use airport_vision::{Analyzer, DecodeLimits, Recognizer, RgbImage};

/// The repository root (this crate is `services/vision`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The installed models: `$MODELS_DIR` or `<repo>/.models`. Fails (never
/// skips) when they are missing, saying how to install them.
pub fn model_dir() -> PathBuf {
    let dir = airport_vision::model_dir(&workspace_root());
    let probe = dir.join(airport_vision::DETECTOR_FILE);
    assert!(
        probe.is_file(),
        "the vision models are not installed ({} is missing): run `make models` \
         (or scripts/install-models.sh; MODELS_DIR overrides the directory)",
        probe.display()
    );
    dir
}

/// A file installed by `make models` (`images/t1.jpg`, `fixtures/...`).
pub fn installed(relative: &str) -> PathBuf {
    let path = model_dir().join(relative);
    assert!(
        path.is_file(),
        "{} is missing: run `make models`",
        path.display()
    );
    path
}

/// A committed test image: `services/testdata/vision/<name>`.
pub fn testdata(name: &str) -> PathBuf {
    workspace_root().join("services/testdata/vision").join(name)
}

/// Decodes an image file.
pub fn load(path: &Path) -> RgbImage {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    airport_vision::decode_with(&bytes, &DecodeLimits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One analyzer per test binary, shared by its tests.
pub fn analyzer() -> &'static Analyzer {
    static ANALYZER: OnceLock<Analyzer> = OnceLock::new();
    ANALYZER.get_or_init(|| Analyzer::from_dir(&model_dir()).unwrap())
}

/// One recognizer per test binary, shared by its tests.
pub fn recognizer() -> &'static Recognizer {
    static RECOGNIZER: OnceLock<Recognizer> = OnceLock::new();
    RECOGNIZER.get_or_init(|| Recognizer::from_dir(&model_dir()).unwrap())
}
