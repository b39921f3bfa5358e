//! The schema check `local-mesh apply` runs on every document first, as the
//! Kubernetes API server does with kubectl's strict field validation: a typo
//! in a field name (`timout:`) is refused with the schema's error and path
//! before the translator sees the document, instead of being taken for a
//! field the local mesh does not know.
//!
//! The schemas are the ones `istio/check` checks the repository's manifests
//! against (Istio's and the Gateway API's CRDs, Kubernetes' built-in kinds),
//! installed by `make crds`, and found the same way: `$CRDS_DIR` when set,
//! else `.crds/` at the root of the repository the mesh runs for. The root
//! is the daemon's (found at run time, like everything else it reads), not
//! the one a shared target directory was built from.

use std::path::{Path, PathBuf};

use istio_manifests::{LoadError, Schemas};
use serde_json::Value;

/// Why the schemas could not be loaded; no path of the machine in the
/// message, only what to do.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the Istio, Gateway API and Kubernetes schemas that `apply` checks every document against are not installed (.crds/ at the repository's root, or $CRDS_DIR): run `make crds`"
    )]
    NotInstalled,
    #[error(
        "the installed schemas (.crds/ or $CRDS_DIR) cannot be read: {0}; run `make crds` again"
    )]
    Unreadable(String),
}

/// Where the schemas are for the repository at `repo`: `$CRDS_DIR` when set
/// and not empty (as for `scripts/install-crds.sh` and `istio/check`), else
/// `<repo>/.crds`.
pub fn schemas_dir(repo: &Path) -> PathBuf {
    match std::env::var_os("CRDS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo.join(".crds"),
    }
}

/// The installed schemas, loaded once and used for every `apply`.
#[derive(Debug, Clone)]
pub struct SchemaCheck {
    schemas: Schemas,
}

impl SchemaCheck {
    /// Loads the schemas of [`schemas_dir`]`(repo)`.
    pub fn load(repo: &Path) -> Result<Self, SchemaError> {
        Self::load_from(&schemas_dir(repo))
    }

    /// Loads the schemas from `dir`, laid out as `make crds` lays out `.crds/`.
    pub fn load_from(dir: &Path) -> Result<Self, SchemaError> {
        match Schemas::load_from(dir) {
            Ok(schemas) => Ok(Self { schemas }),
            Err(LoadError::NotInstalled { .. }) => Err(SchemaError::NotInstalled),
            Err(other) => Err(SchemaError::Unreadable(strip_dir(&other.to_string(), dir))),
        }
    }

    /// Checks one document; the refusal names the resource and every
    /// violation with its path (`VirtualService/x: spec.http[0].timout:
    /// unknown field`), one per line.
    pub fn check(&self, document: &Value) -> Result<(), String> {
        self.schemas.validate(document).map_err(|invalid| {
            let resource = format!(
                "{}/{}",
                document["kind"].as_str().unwrap_or("?"),
                document["metadata"]["name"].as_str().unwrap_or("?")
            );
            invalid
                .violations
                .iter()
                .map(|violation| format!("{resource}: {violation}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
    }
}

/// `message` without the schemas folder's absolute path in it.
fn strip_dir(message: &str, dir: &Path) -> String {
    message.replace(&format!("{}/", dir.display()), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_says_run_make_crds() {
        let dir = std::env::temp_dir().join("local-mesh-no-crds-here");
        let error = SchemaCheck::load_from(&dir).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("run `make crds`"), "{message}");
        assert!(!message.contains(&*dir.to_string_lossy()), "{message}");
    }
}
