//! One build of every image for all the tests of this binary: compiled
//! (nested cargo into `<target>/images-build`, shared with `make images`,
//! so after `make images` nothing is recompiled) and assembled into
//! `<target>/images-test/` (never the layouts `make images` wrote), and
//! reading layouts back the way a registry client would.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_images::{Assembled, Catalog, Inputs, assemble, compile, default_out_dir};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};

/// The images built once for this test binary.
pub struct Built {
    pub catalog: Catalog,
    pub inputs: Inputs,
    pub assembled: Assembled,
    pub out: PathBuf,
}

static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();

/// Every image, built on first use.
pub fn built() -> &'static Built {
    let built = BUILT.get_or_init(|| {
        let root = oci_images::repository_root();
        let catalog = Catalog::load(&root).map_err(|e| e.to_string())?;
        let inputs = compile(&catalog).map_err(|e| e.to_string())?;
        let out = test_out_dir("images-test");
        let assembled = assemble(&catalog, &inputs, &out).map_err(|e| e.to_string())?;
        Ok(Built {
            catalog,
            inputs,
            assembled,
            out,
        })
    });
    match built {
        Ok(built) => built,
        Err(error) => panic!("building the images failed: {error}"),
    }
}

/// `<target>/<name>`, emptied.
pub fn test_out_dir(name: &str) -> PathBuf {
    let root = oci_images::repository_root();
    let dir = default_out_dir(&root)
        .parent()
        // One folder per test process: two runs sharing a target dir (two
        // clones, CI beside a developer) must not empty each other's output.
        .map(|target| target.join(format!("{name}-{}", std::process::id())))
        .expect("the images folder has a parent");
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("cannot empty {}: {e}", dir.display()));
    }
    // Folders of earlier runs whose process is gone.
    if let Some(target) = dir.parent() {
        for entry in fs::read_dir(target).into_iter().flatten().flatten() {
            let file_name = entry.file_name();
            let stale = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&format!("{name}-")))
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if stale {
                fs::remove_dir_all(entry.path()).ok();
            }
        }
    }
    dir
}

/// `sha256:<hex>` of `bytes`, computed here (not by the crate under test).
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// An image layout read back and checked blob by blob.
pub struct Layout {
    pub dir: PathBuf,
    pub index: ImageIndex,
    pub manifest_descriptor: Descriptor,
    pub manifest_bytes: Vec<u8>,
    pub manifest: ImageManifest,
    pub config_bytes: Vec<u8>,
    /// Layer blobs, in manifest order.
    pub layers: Vec<Vec<u8>>,
}

impl Layout {
    /// Opens `dir`, checking the layout marker, that the index names one
    /// image manifest, and that every blob the manifest names is present
    /// under its digest with its size.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let marker: serde_json::Value = serde_json::from_slice(
            &fs::read(dir.join("oci-layout")).map_err(|e| format!("oci-layout: {e}"))?,
        )
        .map_err(|e| format!("oci-layout: {e}"))?;
        if marker != serde_json::json!({"imageLayoutVersion": "1.0.0"}) {
            return Err(format!("oci-layout is {marker}"));
        }
        let index_bytes =
            fs::read(dir.join("index.json")).map_err(|e| format!("index.json: {e}"))?;
        let index = ImageIndex::from_reader(index_bytes.as_slice())
            .map_err(|e| format!("index.json: {e}"))?;
        if index.schema_version() != 2 {
            return Err(format!(
                "index.json: schemaVersion {}",
                index.schema_version()
            ));
        }
        let raw_index: serde_json::Value =
            serde_json::from_slice(&index_bytes).map_err(|e| e.to_string())?;
        if raw_index["mediaType"] != "application/vnd.oci.image.index.v1+json" {
            return Err(format!("index.json: mediaType {}", raw_index["mediaType"]));
        }
        let [manifest_descriptor] = index.manifests().as_slice() else {
            return Err(format!(
                "index.json names {} manifests, not 1",
                index.manifests().len()
            ));
        };
        let manifest_descriptor = manifest_descriptor.clone();
        if manifest_descriptor.media_type().to_string()
            != "application/vnd.oci.image.manifest.v1+json"
        {
            return Err(format!(
                "index.json: manifest mediaType {}",
                manifest_descriptor.media_type()
            ));
        }
        let manifest_bytes = blob(dir, &manifest_descriptor)?;
        let manifest = ImageManifest::from_reader(manifest_bytes.as_slice())
            .map_err(|e| format!("manifest: {e}"))?;
        if manifest.schema_version() != 2 {
            return Err(format!(
                "manifest: schemaVersion {}",
                manifest.schema_version()
            ));
        }
        if manifest.media_type().as_ref().map(ToString::to_string)
            != Some("application/vnd.oci.image.manifest.v1+json".into())
        {
            return Err(format!("manifest: mediaType {:?}", manifest.media_type()));
        }
        let config_bytes = blob(dir, manifest.config())?;
        let layers = manifest
            .layers()
            .iter()
            .map(|layer| blob(dir, layer))
            .collect::<Result<Vec<_>, _>>()?;
        // Nothing else in the layout: every blob is one the manifest names.
        let mut named: Vec<String> = std::iter::once(manifest_descriptor.digest().to_string())
            .chain(std::iter::once(manifest.config().digest().to_string()))
            .chain(manifest.layers().iter().map(|l| l.digest().to_string()))
            .map(|d| d.trim_start_matches("sha256:").to_string())
            .collect();
        named.sort();
        named.dedup();
        let mut present: Vec<String> = fs::read_dir(dir.join("blobs/sha256"))
            .map_err(|e| format!("blobs/sha256: {e}"))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        present.sort();
        if named != present {
            return Err(format!(
                "blobs/sha256 holds {present:?}, the manifest names {named:?}"
            ));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            manifest_descriptor,
            manifest_bytes,
            manifest,
            config_bytes,
            layers,
        })
    }

    /// The image config (for images whose config is one).
    pub fn config(&self) -> ImageConfiguration {
        ImageConfiguration::from_reader(self.config_bytes.as_slice())
            .unwrap_or_else(|e| panic!("{}: config: {e}", self.dir.display()))
    }

    /// The manifest's annotation `key`.
    pub fn annotation(&self, key: &str) -> Option<String> {
        self.manifest.annotations().as_ref()?.get(key).cloned()
    }

    /// An index annotation of the manifest descriptor.
    pub fn index_annotation(&self, key: &str) -> Option<String> {
        self.manifest_descriptor
            .annotations()
            .as_ref()?
            .get(key)
            .cloned()
    }
}

/// The blob `descriptor` names, checked against its digest and size.
fn blob(dir: &Path, descriptor: &Descriptor) -> Result<Vec<u8>, String> {
    let digest = descriptor.digest().to_string();
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("{digest}: not a sha256 digest"))?;
    let bytes =
        fs::read(dir.join("blobs/sha256").join(hex)).map_err(|e| format!("blob {digest}: {e}"))?;
    if digest_of(&bytes) != digest {
        return Err(format!(
            "blob {digest} holds content of digest {}",
            digest_of(&bytes)
        ));
    }
    if bytes.len() as u64 != descriptor.size() {
        return Err(format!(
            "blob {digest} is {} bytes, its descriptor says {}",
            bytes.len(),
            descriptor.size()
        ));
    }
    Ok(bytes)
}

/// The tar archive in a gzip layer.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("the layer is a gzip stream");
    out
}

/// One entry of a layer's tar archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub bytes: Vec<u8>,
}

/// Every entry of a tar archive, in archive order.
pub fn tar_entries(tar_bytes: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .expect("a tar archive")
        .map(|entry| {
            let mut entry = entry.expect("a tar entry");
            let header = entry.header().clone();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("entry content");
            TarEntry {
                path: entry.path().expect("a path").display().to_string(),
                kind: header.entry_type(),
                mode: header.mode().expect("mode"),
                uid: header.uid().expect("uid"),
                gid: header.gid().expect("gid"),
                mtime: header.mtime().expect("mtime"),
                bytes,
            }
        })
        .collect()
}

/// Every file under `dir`, relative path → content.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).expect("a folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let relative = path.strip_prefix(base).expect("under base").to_path_buf();
                out.insert(relative, fs::read(&path).expect("readable"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}
