//! What can go wrong while building images, each saying what to do about it.

use std::path::PathBuf;

/// An error of the image build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An image definition (or `images/images.toml`) is wrong.
    #[error("{}: {message}", file.display())]
    Definition { file: PathBuf, message: String },
    /// A tool the build runs (cargo, rustc, musl-gcc) failed or is missing.
    #[error("{0}")]
    Tool(String),
    /// A file copied into an image is missing or not the pinned one.
    #[error("{0}")]
    Input(String),
    /// A manifest under `istio/` cannot be updated as asked.
    #[error("{}: {message}", file.display())]
    Manifest { file: PathBuf, message: String },
    /// A plugin is too large for the ConfigMap path.
    #[error("{0}")]
    TooLarge(String),
    /// An OCI structure could not be built or serialised.
    #[error("OCI {0}")]
    Oci(String),
}

impl From<oci_spec::OciSpecError> for Error {
    fn from(error: oci_spec::OciSpecError) -> Self {
        Self::Oci(error.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::Oci(format!("JSON: {error}"))
    }
}

/// The result of the image build's steps.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an I/O error with what was being done.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
