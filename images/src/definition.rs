//! What each image holds: `images/images.toml` (what every image shares) and
//! one `image.toml` per image under `images/plugins/<name>/` and
//! `images/services/<name>/`, each beside the `Dockerfile` that builds the
//! same image with Docker.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The settings every image shares (`images/images.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Shared {
    /// Where the images are pushed, e.g. `ghcr.io/airport-mesh`: an image
    /// `x` is `<registry>/x:<tag>`.
    pub registry: String,
    /// The numeric user (and group) every service runs as.
    pub user: u32,
    /// The source repository, for the `org.opencontainers.image.source`
    /// annotation.
    pub source: String,
    /// The licence, for `org.opencontainers.image.licenses`.
    pub licenses: String,
}

/// A proxy-wasm plugin image (`images/plugins/<name>/image.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginDefinition {
    /// The cargo package, built for `wasm32-wasip1` with the `wasm` profile.
    pub package: String,
    /// One line saying what the plugin does (the image's description).
    pub description: String,
    /// The `WasmPlugin` manifest (from the repository root) whose `url` and
    /// `sha256` the build sets.
    pub wasm_plugin: PathBuf,
}

/// A file or folder copied into a service image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileDefinition {
    /// From the repository root: a file, or a folder whose files (not
    /// subfolders) are copied.
    pub source: PathBuf,
    /// The absolute path in the image.
    pub target: String,
    /// The file's pinned sha256 (hex); the build refuses any other content.
    pub sha256: Option<String>,
}

/// A service image (`images/services/<name>/image.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServiceDefinition {
    /// The cargo package holding the binary.
    pub package: String,
    /// The binary, installed as `/usr/local/bin/<binary>` and run as the
    /// entrypoint.
    pub binary: String,
    /// One line saying what the service does (the image's description).
    pub description: String,
    /// The TCP port the service listens on.
    pub port: u16,
    /// A folder created empty, owned by the service's user, and made the
    /// working directory (for services that write files there).
    pub workdir: Option<String>,
    /// Environment defaults baked into the image config.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Extra files (test frames, model files).
    #[serde(default)]
    pub files: Vec<FileDefinition>,
}

/// What an image is built from.
#[derive(Debug, Clone)]
pub enum Kind {
    Plugin(PluginDefinition),
    Service(ServiceDefinition),
}

/// One image: its name (the folder name, and the repository name in the
/// registry) and what it is built from.
#[derive(Debug, Clone)]
pub struct Definition {
    pub name: String,
    /// The folder holding `image.toml` and the `Dockerfile`.
    pub dir: PathBuf,
    pub kind: Kind,
}

impl Definition {
    /// The `Dockerfile` beside the definition.
    pub fn dockerfile(&self) -> PathBuf {
        self.dir.join("Dockerfile")
    }

    /// The definition file itself.
    pub fn file(&self) -> PathBuf {
        self.dir.join("image.toml")
    }
}

/// Every image definition of the repository, and the shared settings.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The repository root.
    pub root: PathBuf,
    pub shared: Shared,
    /// The tag every image gets: the workspace version.
    pub tag: String,
    /// Sorted by name.
    pub images: Vec<Definition>,
}

impl Catalog {
    /// Reads `images/images.toml`, every `image.toml` under `images/plugins`
    /// and `images/services`, and the workspace version from `Cargo.toml`.
    pub fn load(root: &Path) -> Result<Self> {
        let images_dir = root.join("images");
        let shared: Shared = read_toml(&images_dir.join("images.toml"))?;
        let cargo_toml = root.join("Cargo.toml");
        let workspace: toml::Value = read_toml(&cargo_toml)?;
        let tag = workspace
            .get("workspace")
            .and_then(|w| w.get("package"))
            .and_then(|p| p.get("version"))
            .and_then(toml::Value::as_str)
            .ok_or_else(|| Error::Definition {
                file: cargo_toml.clone(),
                message: "no [workspace.package] version (the image tag)".into(),
            })?
            .to_string();
        let mut images = Vec::new();
        for (folder, is_plugin) in [("plugins", true), ("services", false)] {
            for dir in subfolders(&images_dir.join(folder))? {
                let file = dir.join("image.toml");
                let name = dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string)
                    .ok_or_else(|| Error::Definition {
                        file: file.clone(),
                        message: "the folder name is not UTF-8".into(),
                    })?;
                check_name(&name, &file)?;
                let kind = if is_plugin {
                    Kind::Plugin(read_toml(&file)?)
                } else {
                    let service: ServiceDefinition = read_toml(&file)?;
                    check_service(&service, &file)?;
                    Kind::Service(service)
                };
                images.push(Definition { name, dir, kind });
            }
        }
        images.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in images.windows(2) {
            if let [a, b] = pair
                && a.name == b.name
            {
                return Err(Error::Definition {
                    file: b.file(),
                    message: format!("a second image named `{}` ({})", a.name, a.dir.display()),
                });
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            shared,
            tag,
            images,
        })
    }

    /// `<registry>/<name>:<tag>`.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}:{}", self.shared.registry, self.tag)
    }

    /// The definition named `name`.
    pub fn get(&self, name: &str) -> Option<&Definition> {
        self.images.iter().find(|d| d.name == name)
    }
}

fn read_toml<T: serde::de::DeserializeOwned>(file: &Path) -> Result<T> {
    let text = fs::read_to_string(file).map_err(|source| Error::Io {
        what: format!("cannot read {}", file.display()),
        source,
    })?;
    toml::from_str(&text).map_err(|e| Error::Definition {
        file: file.to_path_buf(),
        message: e.to_string(),
    })
}

fn subfolders(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).map_err(|source| Error::Io {
        what: format!("cannot list {}", dir.display()),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Io {
                what: format!("cannot list {}", dir.display()),
                source,
            })?
            .path();
        if path.join("image.toml").is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// A name usable as a registry repository and a Kubernetes object name.
fn check_name(name: &str, file: &Path) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(Error::Definition {
            file: file.to_path_buf(),
            message: format!(
                "the folder name `{name}` must be 1-63 lowercase letters, digits and inner dashes (it names the image)"
            ),
        })
    }
}

fn check_service(service: &ServiceDefinition, file: &Path) -> Result<()> {
    let fail = |message: String| {
        Err(Error::Definition {
            file: file.to_path_buf(),
            message,
        })
    };
    if service.binary.is_empty() || service.binary.contains('/') {
        return fail(format!(
            "binary `{}` must be a plain file name",
            service.binary
        ));
    }
    if service.port == 0 {
        return fail("port must be 1-65535".into());
    }
    if let Some(workdir) = &service.workdir
        && !is_image_path(workdir)
    {
        return fail(format!(
            "workdir `{workdir}` must be an absolute path without `.`/`..` parts"
        ));
    }
    for (key, value) in &service.env {
        if key.is_empty() || key.contains('=') || value.contains('\0') {
            return fail(format!("env `{key}` is not a valid variable"));
        }
    }
    for f in &service.files {
        if !is_image_path(&f.target) {
            return fail(format!(
                "files: target `{}` must be an absolute path without `.`/`..` parts",
                f.target
            ));
        }
        if f.source.is_absolute()
            || f.source
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return fail(format!(
                "files: source `{}` must be relative to the repository root",
                f.source.display()
            ));
        }
        if let Some(sha) = &f.sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return fail(format!(
                "files: sha256 of `{}` must be 64 hex digits",
                f.source.display()
            ));
        }
    }
    Ok(())
}

/// An absolute path inside an image: `/a/b`, no `.` or `..` parts, no
/// trailing slash.
pub fn is_image_path(path: &str) -> bool {
    path.len() > 1
        && path.starts_with('/')
        && !path.ends_with('/')
        && path[1..]
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_are_absolute_and_plain() {
        assert!(is_image_path("/data"));
        assert!(is_image_path("/models/centerface.onnx"));
        assert!(!is_image_path("/"));
        assert!(!is_image_path("data"));
        assert!(!is_image_path("/data/"));
        assert!(!is_image_path("/a/../b"));
        assert!(!is_image_path("/a//b"));
    }

    #[test]
    fn names_follow_registry_and_kubernetes_rules() {
        let file = Path::new("image.toml");
        assert!(check_name("fault-injector", file).is_ok());
        assert!(check_name("Fault", file).is_err());
        assert!(check_name("-x", file).is_err());
        assert!(check_name("", file).is_err());
    }

    #[test]
    fn a_bad_sha256_is_refused_with_the_file_named() {
        let service: ServiceDefinition = toml::from_str(
            r#"
            package = "p"
            binary = "b"
            description = "d"
            port = 8080
            [[files]]
            source = ".models/m.onnx"
            target = "/models/m.onnx"
            sha256 = "abc"
            "#,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let error = check_service(&service, Path::new("x/image.toml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("x/image.toml"), "{error}");
        assert!(error.contains(".models/m.onnx"), "{error}");
    }
}
