//! Builds the project's OCI images without a Docker engine: each proxy-wasm
//! plugin as a Wasm OCI image (the *compat* variant Istio and Envoy tooling
//! pull, plus the *oci* artifact variant), and each service as a static
//! musl binary on an empty base, run as a non-root user. The images are
//! written as OCI image layouts under `target/images/<name>` for `skopeo`,
//! `oras` or `crane` to push, and are reproducible: the same source,
//! `Cargo.lock` and compilers give the same bytes, whatever the checkout
//! path, so their digests can be committed. The build pins the manifests
//! under `istio/` to those digests (`WasmPlugin` `url`/`sha256`,
//! Deployment `image:`), records them in `images/digests.toml`, and writes
//! the ConfigMap path for clusters without a registry.
//!
//! What goes into each image is declared in `images/{plugins,services}/<name>/image.toml`,
//! beside a `Dockerfile` that builds the same image with Docker.

pub mod compile;
pub mod configmap;
pub mod definition;
pub mod error;
pub mod image;
pub mod layer;
pub mod layout;
pub mod manifests;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use compile::{Compiler, Toolchain};
pub use definition::{Catalog, Definition, Kind};
use error::io;
pub use error::{Error, Result};
use image::ImageFile;
use layout::ImageBlobs;
pub use manifests::{DigestRecord, FileUpdate, Plan};

/// The suffix of a plugin's OCI artifact variant, as a name in
/// `images/digests.toml` and as a layout folder (`target/images/<name>.artifact`).
pub const ARTIFACT_SUFFIX: &str = ".artifact";

/// The repository root this crate belongs to.
pub fn repository_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .map_or_else(|| crate_dir.join(".."), Path::to_path_buf)
}

/// `<target>/images`: where the layouts go by default.
pub fn default_out_dir(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"));
    target.join("images")
}

/// The compiled content of every image.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub toolchain: Toolchain,
    /// Service images whose cargo package is not in the workspace yet (a
    /// service being written): declared, not built.
    pub pending: Vec<String>,
    /// Plugin image name → module.
    pub plugins: BTreeMap<String, Vec<u8>>,
    /// Service image name → binary and extra files.
    pub services: BTreeMap<String, (Vec<u8>, Vec<ImageFile>)>,
}

/// Compiles every plugin and service the catalog names (nested cargo, see
/// [`compile`]) and reads the extra files, checking pinned sha256s.
pub fn compile(catalog: &Catalog) -> Result<Inputs> {
    let compiler = Compiler::new(&catalog.root);
    let toolchain = compiler.toolchain()?;
    let workspace = compiler.workspace_binaries()?;
    let mut plugin_packages = Vec::new();
    let mut binaries = Vec::new();
    let mut pending = Vec::new();
    for definition in &catalog.images {
        match &definition.kind {
            Kind::Plugin(p) => plugin_packages.push(p.package.as_str()),
            Kind::Service(s) => match workspace.get(&s.package) {
                Some(bins) if bins.contains(&s.binary) => {
                    binaries.push((s.package.as_str(), s.binary.as_str()));
                }
                Some(bins) => {
                    return Err(Error::Definition {
                        file: definition.file(),
                        message: format!(
                            "package `{}` has no binary `{}` (it has {bins:?})",
                            s.package, s.binary
                        ),
                    });
                }
                None => {
                    eprintln!(
                        "oci-images: warning: {} not built: its package `{}` is not in the workspace yet",
                        definition.name, s.package
                    );
                    pending.push(definition.name.clone());
                }
            },
        }
    }
    let modules = compiler.plugins(&plugin_packages)?;
    let executables = compiler.services(&binaries)?;
    let read = |path: &Path| fs::read(path).map_err(io(format!("cannot read {}", path.display())));
    let mut plugins = BTreeMap::new();
    let mut services = BTreeMap::new();
    for definition in &catalog.images {
        match &definition.kind {
            Kind::Plugin(p) => {
                let file = modules.get(&p.package).ok_or_else(|| {
                    Error::Tool(format!(
                        "{}: no module built for {}",
                        definition.name, p.package
                    ))
                })?;
                plugins.insert(definition.name.clone(), read(file)?);
            }
            Kind::Service(_) if pending.contains(&definition.name) => {}
            Kind::Service(s) => {
                let file = executables.get(&s.binary).ok_or_else(|| {
                    Error::Tool(format!("{}: no binary {} built", definition.name, s.binary))
                })?;
                let files = image_files(catalog, definition, s)?;
                services.insert(definition.name.clone(), (read(file)?, files));
            }
        }
    }
    Ok(Inputs {
        toolchain,
        pending,
        plugins,
        services,
    })
}

fn image_files(
    catalog: &Catalog,
    definition: &Definition,
    service: &definition::ServiceDefinition,
) -> Result<Vec<ImageFile>> {
    let mut out = Vec::new();
    for file in &service.files {
        let source = catalog.root.join(&file.source);
        let missing = || {
            Error::Input(format!(
                "{}: {} is missing{}",
                definition.file().display(),
                file.source.display(),
                if file.sha256.is_some() {
                    " (pinned by sha256: `make models` installs the model files)"
                } else {
                    ""
                }
            ))
        };
        if source.is_dir() {
            if file.sha256.is_some() {
                return Err(Error::Input(format!(
                    "{}: {} is a folder; sha256 pins single files",
                    definition.file().display(),
                    file.source.display()
                )));
            }
            let mut names: Vec<PathBuf> = fs::read_dir(&source)
                .map_err(io(format!("cannot list {}", source.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            names.sort();
            if names.is_empty() {
                return Err(missing());
            }
            for path in names {
                let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                    Error::Input(format!("{}: a file name is not UTF-8", path.display()))
                })?;
                out.push(ImageFile {
                    target: format!("{}/{name}", file.target),
                    bytes: fs::read(&path)
                        .map_err(io(format!("cannot read {}", path.display())))?,
                    mode: 0o644,
                });
            }
        } else if source.is_file() {
            let bytes =
                fs::read(&source).map_err(io(format!("cannot read {}", source.display())))?;
            if let Some(expected) = &file.sha256 {
                let actual = layer::sha256_hex(&bytes);
                if &actual != expected {
                    return Err(Error::Input(format!(
                        "{}: {} has sha256 {actual}, not the pinned {expected} (`make models` reinstalls the model files)",
                        definition.file().display(),
                        file.source.display()
                    )));
                }
            }
            out.push(ImageFile {
                target: file.target.clone(),
                bytes,
                mode: 0o644,
            });
        } else {
            return Err(missing());
        }
    }
    Ok(out)
}

/// Which form of image a layout holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// A plugin, *compat* variant (the one the manifests pin).
    Plugin,
    /// A plugin, *oci* artifact variant.
    PluginArtifact,
    /// A service.
    Service,
}

/// One image layout written by [`assemble`].
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// As in `images/digests.toml` (`<name>` or `<name>.artifact`).
    pub name: String,
    /// The image definition's name.
    pub image: String,
    pub variant: Variant,
    /// The layout folder.
    pub layout: PathBuf,
    /// `<registry>/<image>:<tag>`.
    pub reference: String,
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
    /// Manifest, config and layers: what a registry stores.
    pub stored_bytes: u64,
}

/// Everything [`assemble`] wrote.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub images: Vec<BuiltImage>,
    pub configmaps: configmap::ConfigMapFiles,
    pub toolchain: Toolchain,
    /// Declared images not built yet (see [`Inputs::pending`]).
    pub pending: Vec<String>,
}

impl Assembled {
    /// Name → digest, as recorded in `images/digests.toml`.
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.images
            .iter()
            .map(|i| (i.name.clone(), i.digest.clone()))
            .collect()
    }

    /// The built image called `name`.
    pub fn get(&self, name: &str) -> Option<&BuiltImage> {
        self.images.iter().find(|i| i.name == name)
    }
}

fn read_wasm_plugin(catalog: &Catalog, file: &Path) -> Result<Value> {
    let path = catalog.root.join(file);
    let text = fs::read_to_string(&path).map_err(io(format!("cannot read {}", path.display())))?;
    let document: Value = serde_norway::from_str(&text).map_err(|e| Error::Manifest {
        file: file.to_path_buf(),
        message: format!("not a single YAML document: {e}"),
    })?;
    Ok(document)
}

/// Writes every image layout into `out` (`<name>`, and `<name>.artifact`
/// for the plugins' artifact variant) and the ConfigMap path into
/// `out/configmaps`. Fails if a plugin is too large for a ConfigMap.
pub fn assemble(catalog: &Catalog, inputs: &Inputs, out: &Path) -> Result<Assembled> {
    let mut images = Vec::new();
    let mut modules = Vec::new();
    let mut write = |name: String,
                     definition: &Definition,
                     variant: Variant,
                     blobs: ImageBlobs|
     -> Result<()> {
        let reference = catalog.reference(&definition.name);
        let dir = out.join(&name);
        layout::write_layout(&dir, &blobs, &catalog.tag, &reference)?;
        images.push(BuiltImage {
            name,
            image: definition.name.clone(),
            variant,
            layout: dir,
            reference,
            digest: blobs.digest(),
            stored_bytes: blobs.stored_size(),
        });
        Ok(())
    };
    for definition in &catalog.images {
        match &definition.kind {
            Kind::Plugin(plugin) => {
                let wasm = inputs
                    .plugins
                    .get(&definition.name)
                    .ok_or_else(|| Error::Tool(format!("{}: not compiled", definition.name)))?;
                let compat = image::plugin_compat(catalog, definition, plugin, wasm)?;
                write(definition.name.clone(), definition, Variant::Plugin, compat)?;
                let artifact = image::plugin_artifact(catalog, definition, plugin, wasm)?;
                write(
                    format!("{}{ARTIFACT_SUFFIX}", definition.name),
                    definition,
                    Variant::PluginArtifact,
                    artifact,
                )?;
                modules.push(configmap::PluginModule {
                    name: definition.name.clone(),
                    wasm_plugin: read_wasm_plugin(catalog, &plugin.wasm_plugin)?,
                    wasm: wasm.clone(),
                });
            }
            Kind::Service(_) if inputs.pending.contains(&definition.name) => {}
            Kind::Service(service) => {
                let (binary, files) = inputs
                    .services
                    .get(&definition.name)
                    .ok_or_else(|| Error::Tool(format!("{}: not compiled", definition.name)))?;
                let blobs = image::service(catalog, definition, service, binary, files)?;
                write(definition.name.clone(), definition, Variant::Service, blobs)?;
            }
        }
    }
    let configmaps = configmap::files(&modules)?;
    let configmap_dir = out.join("configmaps");
    if configmap_dir.exists() {
        fs::remove_dir_all(&configmap_dir)
            .map_err(io(format!("cannot replace {}", configmap_dir.display())))?;
    }
    for (relative, text) in &configmaps.files {
        let path = configmap_dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(io(format!("cannot create {}", parent.display())))?;
        }
        fs::write(&path, text).map_err(io(format!("cannot write {}", path.display())))?;
    }
    Ok(Assembled {
        images,
        configmaps,
        toolchain: inputs.toolchain.clone(),
        pending: inputs.pending.clone(),
    })
}

/// What the manifests under `istio/` and `images/digests.toml` should hold
/// for the images in `assembled`.
pub fn plan(catalog: &Catalog, assembled: &Assembled) -> Result<Plan> {
    let mut wasm_plugins = Vec::new();
    let mut pinned = BTreeMap::new();
    for built in &assembled.images {
        match built.variant {
            Variant::PluginArtifact => {}
            Variant::Service => {
                pinned.insert(built.image.clone(), built.digest.clone());
            }
            Variant::Plugin => {
                pinned.insert(built.image.clone(), built.digest.clone());
                let Some(Kind::Plugin(plugin)) = catalog.get(&built.image).map(|d| &d.kind) else {
                    continue;
                };
                // Istio compares `sha256` with the hex digest of the pulled
                // image's manifest (pkg/wasm: `img.Digest().Hex`).
                let hex = built.digest.trim_start_matches("sha256:").to_string();
                wasm_plugins.push((
                    plugin.wasm_plugin.clone(),
                    format!("oci://{}", built.reference),
                    hex,
                ));
            }
        }
    }
    let record = DigestRecord {
        toolchain: (&assembled.toolchain).into(),
        images: assembled.digests(),
    };
    let mut plan = manifests::plan(
        &catalog.root,
        &catalog.shared.registry,
        &catalog.tag,
        &pinned,
        &wasm_plugins,
        &record,
    )?;
    // An image declared but not built yet (its service is being written)
    // stays as the manifests name it, and is listed apart.
    let (pending, unknown) = plan
        .unknown
        .into_iter()
        .partition(|r| assembled.pending.contains(&r.name));
    plan.unknown = unknown;
    plan.pending = pending;
    Ok(plan)
}

/// Writes the files of `plan` that differ; returns them.
pub fn apply(root: &Path, plan: &Plan) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for update in &plan.updates {
        if !update.is_current() {
            let path = root.join(&update.path);
            fs::write(&path, &update.expected)
                .map_err(io(format!("cannot write {}", path.display())))?;
            written.push(update.path.clone());
        }
    }
    Ok(written)
}
