//! Writing an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`)
//! holding one image manifest, which is what `skopeo copy oci:...`,
//! `oras cp --from-oci-layout` and `crane push` read.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    DescriptorBuilder, ImageIndexBuilder, MediaType, OciLayoutBuilder, SCHEMA_VERSION,
};
use serde::Serialize;

use crate::error::{Error, Result, io};
use crate::layer::{sha256_digest, sha256_hex};

/// The annotation containerd's `ctr image import` (and kind, k3s) read to
/// name an imported image.
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// A value as JSON with every object's keys sorted and no white space: the
/// OCI types keep maps in `HashMap`s, whose order changes from run to run.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut value = serde_json::to_value(value)?;
    value.sort_all_objects();
    Ok(serde_json::to_vec(&value)?)
}

/// An image ready to be written: its manifest and every blob it refers to.
#[derive(Debug, Clone)]
pub struct ImageBlobs {
    /// The image manifest (canonical JSON).
    pub manifest: Vec<u8>,
    /// The config and the layers (and anything else the manifest names).
    pub blobs: Vec<Vec<u8>>,
}

impl ImageBlobs {
    /// `sha256:<hex>` of the manifest: the image's digest.
    pub fn digest(&self) -> String {
        sha256_digest(&self.manifest)
    }

    /// Manifest, config and layers: what a registry stores for the image.
    pub fn stored_size(&self) -> u64 {
        (self.manifest.len() + self.blobs.iter().map(Vec::len).sum::<usize>()) as u64
    }
}

/// Writes `image` as an OCI image layout at `dir` (replacing what was
/// there), tagged `tag` and named `reference` for containerd. Written beside
/// and renamed into place, so a reader never sees half a layout.
pub fn write_layout(dir: &Path, image: &ImageBlobs, tag: &str, reference: &str) -> Result<()> {
    let parent = dir
        .parent()
        .ok_or_else(|| Error::Oci(format!("{} has no parent folder", dir.display())))?;
    fs::create_dir_all(parent).map_err(io(format!("cannot create {}", parent.display())))?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Oci(format!("{} is not a folder name", dir.display())))?;
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io(format!("cannot remove {}", staging.display())))?;
    }
    let blobs_dir = staging.join("blobs").join("sha256");
    fs::create_dir_all(&blobs_dir).map_err(io(format!("cannot create {}", blobs_dir.display())))?;
    for blob in image.blobs.iter().chain(std::iter::once(&image.manifest)) {
        let path = blobs_dir.join(sha256_hex(blob));
        fs::write(&path, blob).map_err(io(format!("cannot write {}", path.display())))?;
    }
    let layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()?;
    write(&staging.join("oci-layout"), &canonical_json(&layout)?)?;
    let manifest = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(
            image
                .digest()
                .parse::<oci_spec::image::Digest>()
                .map_err(|e| Error::Oci(e.to_string()))?,
        )
        .size(image.manifest.len() as u64)
        .annotations(
            [
                (
                    oci_spec::image::ANNOTATION_REF_NAME.to_string(),
                    tag.to_string(),
                ),
                (CONTAINERD_IMAGE_NAME.to_string(), reference.to_string()),
            ]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()?;
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest])
        .build()?;
    write(&staging.join("index.json"), &canonical_json(&index)?)?;
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io(format!("cannot replace {}", dir.display())))?;
    }
    fs::rename(&staging, dir).map_err(io(format!(
        "cannot move {} to {}",
        staging.display(),
        dir.display()
    )))?;
    Ok(())
}

fn write(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(io(format!("cannot write {}", path.display())))
}
