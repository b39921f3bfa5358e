#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The schemas come from `make crds`, never from the repository: without
//! them loading fails, naming the missing file and the command that installs
//! it, so no check can pass on an empty schema set.

use istio_manifests::{LoadError, Schemas, manifests_dir, schemas_dir};

#[test]
fn missing_schemas_say_run_make_crds() {
    let nowhere = manifests_dir().join("no-schemas-here");
    let error = Schemas::load_from(&nowhere).unwrap_err();
    assert!(
        matches!(&error, LoadError::NotInstalled { path } if path.starts_with(&nowhere)),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("run `make crds`"), "{message}");
    assert!(message.contains("no-schemas-here"), "{message}");
}

#[test]
fn the_installed_schemas_are_outside_the_manifests() {
    // The cache is never a folder of istio/, whose files are all manifests.
    assert!(!schemas_dir().starts_with(manifests_dir()));
    Schemas::load_installed().unwrap_or_else(|error| panic!("{error}"));
}
