//! Pinning the manifests under `istio/` to what the build produced: the
//! `url` and `sha256` of each plugin's `WasmPlugin`, and every container
//! `image:` of ours (`<registry>/<name>:<tag>@sha256:<digest>`), plus the
//! record of all digests and the compilers that made them
//! (`images/digests.toml`). Only those lines change; the rest of each file
//! (comments included) is left as it is, and each edit is checked by
//! parsing the YAML before and after.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compile::Toolchain;
use crate::error::{Error, Result, io};

/// The record of the build, from the repository root.
pub const DIGESTS_FILE: &str = "images/digests.toml";

/// A file the build wants to be a certain way.
#[derive(Debug, Clone)]
pub struct FileUpdate {
    /// From the repository root.
    pub path: PathBuf,
    /// What the file holds now (empty if it does not exist).
    pub current: String,
    /// What the build wants it to hold.
    pub expected: String,
}

impl FileUpdate {
    /// Whether the file already holds what the build wants.
    pub fn is_current(&self) -> bool {
        self.current == self.expected
    }
}

/// A container image of ours named in a manifest under `istio/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// From the repository root.
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// The image name (the repository after the registry).
    pub name: String,
}

/// What `images/digests.toml` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DigestRecord {
    pub toolchain: ToolchainRecord,
    /// Image name (the artifact variants as `<name>.artifact`) → digest.
    pub images: BTreeMap<String, String>,
}

/// The compilers of a build, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolchainRecord {
    pub rustc: String,
    pub musl_cc: String,
}

impl From<&Toolchain> for ToolchainRecord {
    fn from(toolchain: &Toolchain) -> Self {
        Self {
            rustc: toolchain.rustc.clone(),
            musl_cc: toolchain.musl_cc.clone(),
        }
    }
}

const DIGESTS_HEADER: &str = "\
# Written by `make images` (crate oci-images): the manifest digest of every
# image layout it builds (target/images/<name>; the plugins' OCI artifact
# variants as <name>.artifact), and the compilers that built them. A digest
# is a function of the source, Cargo.lock and these compilers: the test
# `committed_manifests_match_the_build` (cargo test -p oci-images) rebuilds
# the images and fails when this file or the manifests under istio/ differ.
";

impl DigestRecord {
    /// The file's text.
    pub fn to_toml(&self) -> Result<String> {
        let body = toml::to_string(self)
            .map_err(|e| Error::Oci(format!("cannot write {DIGESTS_FILE}: {e}")))?;
        Ok(format!("{DIGESTS_HEADER}\n{body}"))
    }

    /// Reads the committed record.
    pub fn read(root: &Path) -> Result<Self> {
        let path = root.join(DIGESTS_FILE);
        let text =
            fs::read_to_string(&path).map_err(io(format!("cannot read {}", path.display())))?;
        toml::from_str(&text).map_err(|e| Error::Manifest {
            file: path,
            message: e.to_string(),
        })
    }
}

fn parse_yaml(text: &str, file: &Path) -> Result<Vec<Value>> {
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| Error::Manifest {
            file: file.to_path_buf(),
            message: format!("not valid YAML: {e}"),
        })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// `text` (a `WasmPlugin` manifest) with `spec.url` set to `url` and
/// `spec.sha256` to `sha256`; nothing else changes.
pub fn pin_wasm_plugin(text: &str, file: &Path, url: &str, sha256: &str) -> Result<String> {
    let fail = |message: String| Error::Manifest {
        file: file.to_path_buf(),
        message,
    };
    let before = parse_yaml(text, file)?;
    let [plugin] = before.as_slice() else {
        return Err(fail(format!(
            "expected one document (a WasmPlugin), found {}",
            before.len()
        )));
    };
    if plugin["kind"] != "WasmPlugin" {
        return Err(fail(format!(
            "expected a WasmPlugin, found {}",
            plugin["kind"]
        )));
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let indent = spec_indent(&lines)
        .ok_or_else(|| fail("no top-level `spec:` block with fields under it".into()))?;
    let url_prefix = format!("{indent}url:");
    let url_lines: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.starts_with(&url_prefix))
        .map(|(i, _)| i)
        .collect();
    let [url_index] = url_lines.as_slice() else {
        return Err(fail(format!(
            "expected exactly one `url:` line under spec, found {}",
            url_lines.len()
        )));
    };
    let sha_prefix = format!("{indent}sha256:");
    let sha_lines: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.starts_with(&sha_prefix))
        .map(|(i, _)| i)
        .collect();
    if sha_lines.len() > 1 {
        return Err(fail("more than one `sha256:` line".into()));
    }
    let mut out = String::with_capacity(text.len() + 80);
    for (i, line) in lines.iter().enumerate() {
        if i == *url_index {
            out.push_str(&format!("{indent}url: {url}\n"));
            if sha_lines.is_empty() {
                out.push_str(&format!("{indent}sha256: {sha256}\n"));
            }
        } else if sha_lines.contains(&i) {
            out.push_str(&format!("{indent}sha256: {sha256}\n"));
        } else {
            out.push_str(line);
        }
    }
    // The edit must have changed these two fields of the spec, and nothing else.
    let after = parse_yaml(&out, file)?;
    let strip = |documents: &[Value]| -> Vec<Value> {
        documents
            .iter()
            .cloned()
            .map(|mut d| {
                if let Some(spec) = d.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("url");
                    spec.remove("sha256");
                }
                d
            })
            .collect()
    };
    let pinned = after
        .first()
        .map(|d| (&d["spec"]["url"], &d["spec"]["sha256"]));
    if strip(&before) != strip(&after) || pinned != Some((&Value::from(url), &Value::from(sha256)))
    {
        return Err(fail(
            "the `url:`/`sha256:` lines are not spec.url and spec.sha256 (nested or multi-line?); set them by hand once".into(),
        ));
    }
    Ok(out)
}

/// The indentation of the fields of the top-level `spec:` block.
fn spec_indent(lines: &[&str]) -> Option<String> {
    let start = lines.iter().position(|line| line.trim_end() == "spec:")?;
    lines[start + 1..]
        .iter()
        .map(|line| line.trim_end_matches(['\n', '\r']))
        .find(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|line| line[..line.len() - line.trim_start_matches(' ').len()].to_string())
        .filter(|indent| !indent.is_empty())
}

/// `text` with every `image: <registry>/<name>:<tag>[@sha256:...]` line
/// pinned to `<registry>/<name>:<tag>@<digest>` from `digests`, and the
/// images of ours it names. A name without a digest is left as it is (and
/// reported by the caller).
pub fn pin_images(
    text: &str,
    file: &Path,
    registry: &str,
    tag: &str,
    digests: &BTreeMap<String, String>,
) -> Result<(String, Vec<ImageRef>)> {
    let pattern = format!(
        r#"^(?P<prefix>\s*(?:-\s+)?image:\s*)(?P<quote>["']?){}/(?P<name>[a-z0-9][a-z0-9._-]*):[A-Za-z0-9_.-]+(?:@sha256:[0-9a-f]{{64}})?["']?(?P<rest>\s*(?:#.*)?)$"#,
        regex::escape(registry)
    );
    let image_line = Regex::new(&pattern).map_err(|e| Error::Oci(e.to_string()))?;
    let mut out = String::with_capacity(text.len());
    let mut found = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        match image_line.captures(body) {
            Some(c) => {
                let name = c.name("name").map_or("", |m| m.as_str()).to_string();
                found.push(ImageRef {
                    file: file.to_path_buf(),
                    line: i + 1,
                    name: name.clone(),
                });
                match digests.get(&name) {
                    Some(digest) => {
                        let quote = c.name("quote").map_or("", |m| m.as_str());
                        out.push_str(&format!(
                            "{}{quote}{registry}/{name}:{tag}@{digest}{quote}{}{ending}",
                            c.name("prefix").map_or("", |m| m.as_str()),
                            c.name("rest").map_or("", |m| m.as_str()),
                        ));
                    }
                    None => out.push_str(line),
                }
            }
            None => out.push_str(line),
        }
    }
    let (before, after) = (parse_yaml(text, file)?, parse_yaml(&out, file)?);
    if before.len() != after.len() {
        return Err(Error::Manifest {
            file: file.to_path_buf(),
            message: "pinning the image lines changed the document count".into(),
        });
    }
    Ok((out, found))
}

/// `text` with the `sha256:` of every other reference to one of our plugin
/// images set to that image's pin: a manifest outside `istio/plugins` (the
/// Gateway API forms attach the same modules by `targetRefs`, as
/// WasmPlugins and TrafficExtensions) names a module by a `url:` line, and
/// its `sha256:` must be the line right after it, at the same indent, so
/// the pair cannot be read apart. `pins` maps each plugin's `url` to its
/// sha256. Returns the text and how many references it pinned.
pub fn pin_plugin_references(
    text: &str,
    file: &Path,
    pins: &BTreeMap<String, String>,
) -> Result<(String, usize)> {
    let fail = |line: usize, message: String| Error::Manifest {
        file: file.to_path_buf(),
        message: format!("line {line}: {message}"),
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len());
    let mut pinned = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        out.push_str(line);
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = &body[..body.len() - body.trim_start().len()];
        let value = body
            .trim_start()
            .strip_prefix("url:")
            .map(|v| v.trim().trim_matches(['"', '\'']));
        if let Some(sha256) = value.and_then(|url| pins.get(url)) {
            let next = lines
                .get(i + 1)
                .map(|l| l.trim_end_matches(['\n', '\r']))
                .filter(|l| l.starts_with(&format!("{indent}sha256:")));
            let Some(next_line) = next else {
                return Err(fail(
                    i + 1,
                    format!(
                        "{} has no `sha256:` on the next line: a module reference must be pinned",
                        value.unwrap_or_default()
                    ),
                ));
            };
            let ending = &lines[i + 1][next_line.len()..];
            out.push_str(&format!("{indent}sha256: {sha256}{ending}"));
            pinned += 1;
            i += 2;
            continue;
        }
        i += 1;
    }
    let (before, after) = (parse_yaml(text, file)?, parse_yaml(&out, file)?);
    if before.len() != after.len() {
        return Err(Error::Manifest {
            file: file.to_path_buf(),
            message: "pinning the plugin references changed the document count".into(),
        });
    }
    Ok((out, pinned))
}

/// Every `*.yaml`/`*.yml` under `istio/`, but the vendored CRDs and the
/// crates' own folders, from the repository root, sorted.
pub fn manifest_files(root: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, root: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
        let entries = fs::read_dir(dir).map_err(io(format!("cannot list {}", dir.display())))?;
        for entry in entries {
            let path = entry
                .map_err(io(format!("cannot list {}", dir.display())))?
                .path();
            if path.is_dir() {
                // Crates (with a Cargo.toml) hold test data, not manifests.
                let skip = path.join("Cargo.toml").exists()
                    || path.file_name().is_some_and(|n| n == "crds");
                if !skip {
                    walk(&path, root, found)?;
                }
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) && let Ok(relative) = path.strip_prefix(root)
            {
                found.push(relative.to_path_buf());
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(&root.join("istio"), root, &mut found)?;
    found.sort();
    Ok(found)
}

/// What the build wants the manifests to be.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every file the build owns lines of, with its wanted content.
    pub updates: Vec<FileUpdate>,
    /// Every image of ours the manifests name.
    pub refs: Vec<ImageRef>,
    /// The names among `refs` that no image definition builds.
    pub unknown: Vec<ImageRef>,
    /// The names among `refs` whose image is declared but not built yet.
    pub pending: Vec<ImageRef>,
}

/// The manifests pinned to `digests` (image name → digest; the plugins'
/// `WasmPlugin` files given as (file, url, sha256 hex)), and the digest
/// record.
pub fn plan(
    root: &Path,
    registry: &str,
    tag: &str,
    digests: &BTreeMap<String, String>,
    wasm_plugins: &[(PathBuf, String, String)],
    record: &DigestRecord,
) -> Result<Plan> {
    let read = |relative: &Path| -> Result<String> {
        let path = root.join(relative);
        if !path.exists() {
            return Ok(String::new());
        }
        fs::read_to_string(&path).map_err(io(format!("cannot read {}", path.display())))
    };
    let mut updates: BTreeMap<PathBuf, FileUpdate> = BTreeMap::new();
    for (file, url, sha256) in wasm_plugins {
        let current = read(file)?;
        if current.is_empty() {
            return Err(Error::Manifest {
                file: file.clone(),
                message: "missing (named by the plugin's image.toml)".into(),
            });
        }
        let expected = pin_wasm_plugin(&current, file, url, sha256)?;
        updates.insert(
            file.clone(),
            FileUpdate {
                path: file.clone(),
                current,
                expected,
            },
        );
    }
    let plugin_pins: BTreeMap<String, String> = wasm_plugins
        .iter()
        .map(|(_, url, sha256)| (url.clone(), sha256.clone()))
        .collect();
    let mut refs = Vec::new();
    for file in manifest_files(root)? {
        let (current, text) = match updates.get(&file) {
            Some(update) => (update.current.clone(), update.expected.clone()),
            None => {
                let text = read(&file)?;
                (text.clone(), text)
            }
        };
        let (expected, found) = pin_images(&text, &file, registry, tag, digests)?;
        let (expected, references) = if updates.contains_key(&file) {
            (expected, 0)
        } else {
            pin_plugin_references(&expected, &file, &plugin_pins)?
        };
        if !found.is_empty() || references > 0 || updates.contains_key(&file) {
            updates.insert(
                file.clone(),
                FileUpdate {
                    path: file.clone(),
                    current,
                    expected,
                },
            );
        }
        refs.extend(found);
    }
    let digests_path = PathBuf::from(DIGESTS_FILE);
    updates.insert(
        digests_path.clone(),
        FileUpdate {
            path: digests_path.clone(),
            current: read(&digests_path)?,
            expected: record.to_toml()?,
        },
    );
    let unknown = refs
        .iter()
        .filter(|r| !digests.contains_key(&r.name))
        .cloned()
        .collect();
    Ok(Plan {
        updates: updates.into_values().collect(),
        refs,
        unknown,
        pending: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_references_elsewhere_get_the_plugins_pin() {
        let sha = "a".repeat(64);
        let pins = BTreeMap::from([("oci://r/p:0.1.0".to_string(), sha.clone())]);
        let text = "kind: WasmPlugin\nspec:\n  url: oci://r/p:0.1.0\n  sha256: 00\n---\nkind: TrafficExtension\nspec:\n  wasm:\n    url: \"oci://r/p:0.1.0\"\n    sha256: 11 # pinned\n  other: oci://r/p:0.1.0\n";
        let (out, pinned) = pin_plugin_references(text, Path::new("x.yaml"), &pins).unwrap();
        assert_eq!(pinned, 2);
        assert_eq!(out.matches(&format!("sha256: {sha}")).count(), 2);
        assert!(out.contains("  other: oci://r/p:0.1.0\n"));
        // Another image's reference is left alone.
        let other = "spec:\n  url: oci://r/q:0.1.0\n  sha256: 00\n";
        let (out, pinned) = pin_plugin_references(other, Path::new("x.yaml"), &pins).unwrap();
        assert_eq!((out.as_str(), pinned), (other, 0));
        // A reference without its sha256 next to it is refused, by line.
        let unpinned = "spec:\n  url: oci://r/p:0.1.0\n  phase: AUTHN\n";
        let error = pin_plugin_references(unpinned, Path::new("x.yaml"), &pins)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 2") && error.contains("sha256"),
            "{error}"
        );
    }

    const PLUGIN: &str = "\
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: p
spec:
  selector:
    matchLabels:
      app: x
  # where it comes from
  url: oci://ghcr.io/o/p:0.1.0
  imagePullPolicy: IfNotPresent
  pluginConfig:
    url: not-this-one
";

    #[test]
    fn a_wasm_plugin_gets_its_sha256_after_the_url_and_nothing_else_changes() {
        let sha = "ab".repeat(32);
        let out =
            pin_wasm_plugin(PLUGIN, Path::new("p.yaml"), "oci://ghcr.io/o/p:0.1.0", &sha).unwrap();
        assert_eq!(
            out,
            PLUGIN.replace(
                "  url: oci://ghcr.io/o/p:0.1.0\n",
                &format!("  url: oci://ghcr.io/o/p:0.1.0\n  sha256: {sha}\n")
            )
        );
        // Pinning again replaces the line in place.
        let again = pin_wasm_plugin(
            &out,
            Path::new("p.yaml"),
            "oci://ghcr.io/o/p:0.2.0",
            &"cd".repeat(32),
        )
        .unwrap();
        assert!(again.contains("  url: oci://ghcr.io/o/p:0.2.0\n  sha256: cdcd"));
        assert_eq!(again.lines().count(), out.lines().count());
    }

    #[test]
    fn a_wasm_plugin_without_a_url_line_is_refused_with_the_file_named() {
        let text = PLUGIN.replace("  url: oci://ghcr.io/o/p:0.1.0\n", "");
        let error = pin_wasm_plugin(&text, Path::new("istio/plugins/p.yaml"), "u", "s")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("istio/plugins/p.yaml: "), "{error}");
        assert!(error.contains("one `url:` line"), "{error}");
    }

    #[test]
    fn image_lines_of_our_registry_are_pinned_and_others_left_alone() {
        let text = "\
spec:
  containers:
  - name: a
    image: ghcr.io/o/collector:0.0.9  # the collector
  - image: \"ghcr.io/o/section:0.1.0@sha256:{old}\"
    name: b
  - image: docker.io/library/busybox:1.36
  - image: ghcr.io/o/unknown:0.1.0
"
        .replace("{old}", &"0".repeat(64));
        let digests: BTreeMap<String, String> = [
            (
                "collector".to_string(),
                format!("sha256:{}", "1".repeat(64)),
            ),
            ("section".to_string(), format!("sha256:{}", "2".repeat(64))),
        ]
        .into_iter()
        .collect();
        let (out, refs) =
            pin_images(&text, Path::new("w.yaml"), "ghcr.io/o", "0.1.0", &digests).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[3],
            format!(
                "    image: ghcr.io/o/collector:0.1.0@sha256:{}  # the collector",
                "1".repeat(64)
            )
        );
        assert_eq!(
            lines[4],
            format!(
                "  - image: \"ghcr.io/o/section:0.1.0@sha256:{}\"",
                "2".repeat(64)
            )
        );
        assert_eq!(lines[6], "  - image: docker.io/library/busybox:1.36");
        assert_eq!(lines[7], "  - image: ghcr.io/o/unknown:0.1.0");
        let names: Vec<(usize, &str)> = refs.iter().map(|r| (r.line, r.name.as_str())).collect();
        assert_eq!(
            names,
            vec![(4, "collector"), (5, "section"), (8, "unknown")]
        );
    }
}
