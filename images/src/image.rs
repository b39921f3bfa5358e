//! The content of each kind of image: the manifest, config and layers of a
//! plugin (in the two forms of the Wasm OCI image specification that
//! Istio's fetcher accepts) and of a service (a static binary on an empty
//! base).

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{
    Arch, ConfigBuilder, DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder, SCHEMA_VERSION,
};

use crate::definition::{Catalog, Definition, PluginDefinition, ServiceDefinition};
use crate::error::{Error, Result};
use crate::layer::{EPOCH, LayerBuilder, Owner, sha256_digest};
use crate::layout::{ImageBlobs, canonical_json};

/// The file Istio's fetcher looks for in the layer of a *compat* image.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// The manifest annotation a *compat* image with an OCI layer carries.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// The media type of the runtime configuration of the *oci* variant.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
/// The media type of the raw module of the *oci* variant.
pub const WASM_CONTENT_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// Where a service's binary is installed.
pub const BIN_DIR: &str = "/usr/local/bin";
/// `PATH` in every service image: the only folder with programs.
pub const PATH_ENV: &str = "PATH=/usr/local/bin";

/// `created` of every image and history entry (RFC 3339 of [`EPOCH`]).
pub fn created() -> String {
    debug_assert_eq!(EPOCH, 0);
    "1970-01-01T00:00:00Z".to_string()
}

fn digest(bytes: &[u8]) -> Result<oci_spec::image::Digest> {
    sha256_digest(bytes)
        .parse()
        .map_err(|e: oci_spec::OciSpecError| Error::Oci(e.to_string()))
}

fn descriptor(
    media_type: MediaType,
    bytes: &[u8],
    annotations: Option<HashMap<String, String>>,
) -> Result<oci_spec::image::Descriptor> {
    let builder = DescriptorBuilder::default()
        .media_type(media_type)
        .digest(digest(bytes)?)
        .size(bytes.len() as u64);
    Ok(match annotations {
        Some(a) => builder.annotations(a).build()?,
        None => builder.build()?,
    })
}

/// The annotations every image manifest carries.
fn annotations(
    catalog: &Catalog,
    definition: &Definition,
    description: &str,
) -> HashMap<String, String> {
    use oci_spec::image::{
        ANNOTATION_CREATED, ANNOTATION_DESCRIPTION, ANNOTATION_LICENSES, ANNOTATION_SOURCE,
        ANNOTATION_TITLE, ANNOTATION_VERSION,
    };
    [
        (ANNOTATION_TITLE, definition.name.clone()),
        (ANNOTATION_DESCRIPTION, description.to_string()),
        (ANNOTATION_VERSION, catalog.tag.clone()),
        (ANNOTATION_SOURCE, catalog.shared.source.clone()),
        (ANNOTATION_LICENSES, catalog.shared.licenses.clone()),
        (ANNOTATION_CREATED, created()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The *compat* variant: an ordinary image whose one gzip layer holds
/// `plugin.wasm` at the root, with the `module.wasm.image/variant: compat`
/// annotation. Istio pulls it (and Docker-built images of the same shape)
/// and takes `plugin.wasm` out of the last layer.
pub fn plugin_compat(
    catalog: &Catalog,
    definition: &Definition,
    plugin: &PluginDefinition,
    wasm: &[u8],
) -> Result<ImageBlobs> {
    let mut layer = LayerBuilder::new();
    layer.file(&format!("/{PLUGIN_FILE}"), wasm.to_vec(), 0o644)?;
    let layer = layer.finish()?;
    let config = ImageConfigurationBuilder::default()
        .created(created())
        .architecture(Arch::Wasm)
        .os(Os::Other("wasip1".into()))
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.diff_id.clone()])
                .build()?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created(created())
                .created_by(format!(
                    "oci-images: {} ({}, wasm32-wasip1, profile wasm) as /{PLUGIN_FILE}",
                    definition.name, plugin.package
                ))
                .build()?,
        ])
        .build()?;
    let config = canonical_json(&config)?;
    let mut annotations = annotations(catalog, definition, &plugin.description);
    annotations.insert(VARIANT_ANNOTATION.into(), "compat".into());
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, &config, None)?)
        .layers(vec![descriptor(
            MediaType::ImageLayerGzip,
            &layer.gzip,
            None,
        )?])
        .annotations(annotations)
        .build()?;
    Ok(ImageBlobs {
        manifest: canonical_json(&manifest)?,
        blobs: vec![config, layer.gzip],
    })
}

/// The runtime configuration of the *oci* variant (solo-io's Wasm artifact
/// image specification): an Envoy proxy-wasm module.
pub fn runtime_config() -> Result<Vec<u8>> {
    canonical_json(&serde_json::json!({
        "type": "envoy_proxy",
        "abiVersions": ["proxy_abi_version_0_2_1"],
        "config": {}
    }))
}

/// The *oci* (artifact) variant: two layers, the runtime configuration and
/// the raw module, with their own media types, which is the shape Istio's
/// fetcher accepts for it (exactly two layers, one of them the module).
/// The runtime configuration is also the manifest's config, as `oras push
/// --config` makes it.
pub fn plugin_artifact(
    catalog: &Catalog,
    definition: &Definition,
    plugin: &PluginDefinition,
    wasm: &[u8],
) -> Result<ImageBlobs> {
    let config = runtime_config()?;
    let title = |name: &str| {
        Some(
            [(
                oci_spec::image::ANNOTATION_TITLE.to_string(),
                name.to_string(),
            )]
            .into_iter()
            .collect(),
        )
    };
    let config_type = MediaType::Other(WASM_CONFIG_MEDIA_TYPE.into());
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(config_type.clone(), &config, None)?)
        .layers(vec![
            descriptor(config_type, &config, title("runtime-config.json"))?,
            descriptor(
                MediaType::Other(WASM_CONTENT_MEDIA_TYPE.into()),
                wasm,
                title(PLUGIN_FILE),
            )?,
        ])
        .annotations(annotations(catalog, definition, &plugin.description))
        .build()?;
    Ok(ImageBlobs {
        manifest: canonical_json(&manifest)?,
        blobs: vec![config, wasm.to_vec()],
    })
}

/// A file going into a service image: where, what, and its mode.
#[derive(Debug, Clone)]
pub struct ImageFile {
    pub target: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// A service image: one layer with the static binary in `/usr/local/bin`,
/// the extra files, and the working folder owned by the service's user; the
/// config runs the binary as that user (numeric: there is no
/// `/etc/passwd`), with the port exposed and the env defaults.
pub fn service(
    catalog: &Catalog,
    definition: &Definition,
    service: &ServiceDefinition,
    binary: &[u8],
    files: &[ImageFile],
) -> Result<ImageBlobs> {
    let user = catalog.shared.user;
    let entrypoint = format!("{BIN_DIR}/{}", service.binary);
    let mut layer = LayerBuilder::new();
    layer.file(&entrypoint, binary.to_vec(), 0o755)?;
    for file in files {
        layer.file(&file.target, file.bytes.clone(), file.mode)?;
    }
    if let Some(workdir) = &service.workdir {
        layer.dir(workdir, 0o755, Owner::user(user))?;
    }
    let layer = layer.finish()?;
    let env: Vec<String> = std::iter::once(PATH_ENV.to_string())
        .chain(service.env.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    let mut config = ConfigBuilder::default()
        .user(format!("{user}:{user}"))
        .exposed_ports(vec![format!("{}/tcp", service.port)])
        .env(env)
        .entrypoint(vec![entrypoint.clone()])
        .labels(
            [
                (
                    oci_spec::image::ANNOTATION_TITLE.to_string(),
                    definition.name.clone(),
                ),
                (
                    oci_spec::image::ANNOTATION_VERSION.to_string(),
                    catalog.tag.clone(),
                ),
            ]
            .into_iter()
            .collect::<HashMap<_, _>>(),
        );
    if let Some(workdir) = &service.workdir {
        config = config.working_dir(workdir.clone());
    }
    let files_note = if files.is_empty() {
        String::new()
    } else {
        format!(" and {} file(s)", files.len())
    };
    let config = ImageConfigurationBuilder::default()
        .created(created())
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(config.build()?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.diff_id.clone()])
                .build()?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created(created())
                .created_by(format!(
                    "oci-images: {entrypoint} ({}, x86_64-unknown-linux-musl, profile image){files_note}",
                    service.package
                ))
                .build()?,
        ])
        .build()?;
    let config = canonical_json(&config)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, &config, None)?)
        .layers(vec![descriptor(
            MediaType::ImageLayerGzip,
            &layer.gzip,
            None,
        )?])
        .annotations(annotations(catalog, definition, &service.description))
        .build()?;
    Ok(ImageBlobs {
        manifest: canonical_json(&manifest)?,
        blobs: vec![config, layer.gzip],
    })
}

/// `KEY=value` entries of an image config's `Env` as a map.
pub fn env_map(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
