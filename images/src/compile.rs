//! Compiling what goes into the images, reproducibly: the plugins for
//! `wasm32-wasip1` (profile `wasm`) and the services as static musl
//! binaries (profile `image`), in a target folder of their own
//! (`<target>/images-build`), with the checkout, cargo home and target
//! paths remapped so a clone at another path gives the same bytes.

use std::collections::BTreeMap;
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The target of the service binaries.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
/// The target of the plugins.
pub const WASM_TARGET: &str = "wasm32-wasip1";
/// The profile of the service binaries (root `Cargo.toml`).
pub const SERVICE_PROFILE: &str = "image";
/// The profile of the plugins (root `Cargo.toml`), the one the tests use.
pub const WASM_PROFILE: &str = "wasm";
/// The C compiler for the musl target (bundled SQLite), from Debian's
/// `musl-tools` (`scripts/install-musl.sh`).
pub const MUSL_CC: &str = "musl-gcc";

/// What the paths of the build machine become in the binaries (panic
/// locations, file names in the C code's `__FILE__`).
const REMAPPED_ROOT: &str = "/airport-mesh";
const REMAPPED_CARGO_HOME: &str = "/cargo";
const REMAPPED_TARGET: &str = "/airport-mesh/target";

/// The compilers a build used: the image digests are a function of these
/// and of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// `rustc <version> (<commit> <date>)`.
    pub rustc: String,
    /// The first line of `musl-gcc --version`.
    pub musl_cc: String,
}

/// Runs cargo for the images' binaries.
#[derive(Debug, Clone)]
pub struct Compiler {
    root: PathBuf,
    target_dir: PathBuf,
    cargo: String,
}

fn target_dir_of(root: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"))
}

fn cargo_home() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

/// `path` and, if it differs, its canonical form (a checkout reached
/// through a symbolic link is compiled under the resolved path).
fn both_forms(path: &Path) -> Vec<PathBuf> {
    let mut forms = vec![path.to_path_buf()];
    if let Ok(canonical) = path.canonicalize()
        && canonical != path
    {
        forms.push(canonical);
    }
    forms
}

impl Compiler {
    /// A compiler for the checkout at `root`, building into
    /// `<target>/images-build` (`<target>` is `$CARGO_TARGET_DIR` or
    /// `<root>/target`).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            target_dir: target_dir_of(root).join("images-build"),
            cargo: env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        }
    }

    /// Where the binaries are built.
    pub fn target_dir(&self) -> &Path {
        &self.target_dir
    }

    /// (from, to) pairs, most general first: rustc and gcc apply the last
    /// one that matches, and the target folder is usually inside the
    /// checkout.
    fn remaps(&self) -> Vec<(PathBuf, &'static str)> {
        let mut remaps = Vec::new();
        if let Some(home) = cargo_home() {
            for form in both_forms(&home) {
                remaps.push((form, REMAPPED_CARGO_HOME));
            }
        }
        for form in both_forms(&self.root) {
            remaps.push((form, REMAPPED_ROOT));
        }
        for form in both_forms(&target_dir_of(&self.root)) {
            remaps.push((form, REMAPPED_TARGET));
        }
        remaps
    }

    fn command(&self, target: &str, profile: &str) -> Command {
        let mut command = Command::new(&self.cargo);
        command
            .current_dir(&self.root)
            .args(["build", "--target", target, "--profile", profile])
            .arg("--target-dir")
            .arg(&self.target_dir);
        // Whatever the caller's environment says about flags, targets,
        // profiles or incremental builds must not reach this build: the
        // bytes would change.
        for (key, _) in env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            let unwanted = matches!(
                key,
                "RUSTFLAGS"
                    | "CARGO_ENCODED_RUSTFLAGS"
                    | "CARGO_BUILD_RUSTFLAGS"
                    | "CARGO_TARGET_DIR"
                    | "CARGO_BUILD_TARGET"
                    | "CARGO_BUILD_TARGET_DIR"
                    | "CARGO_INCREMENTAL"
                    | "CARGO_BUILD_INCREMENTAL"
                    | "CFLAGS"
                    | "TARGET_CFLAGS"
            ) || key.starts_with("CARGO_PROFILE_")
                || (key.starts_with("CARGO_TARGET_") && key.ends_with("_RUSTFLAGS"));
            if unwanted {
                command.env_remove(key);
            }
        }
        let remaps = self.remaps();
        let rustflags: Vec<String> = remaps
            .iter()
            .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
            .collect();
        command.env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\u{1f}"));
        if target == MUSL_TARGET {
            let cflags: Vec<String> = remaps
                .iter()
                .map(|(from, to)| format!("-ffile-prefix-map={}={to}", from.display()))
                .collect();
            let var = MUSL_TARGET.replace('-', "_");
            command
                .env(format!("CC_{var}"), MUSL_CC)
                .env(format!("CFLAGS_{var}"), cflags.join(" "));
        }
        command
    }

    fn run(&self, mut command: Command, what: &str, hint: &str) -> Result<()> {
        eprintln!("oci-images: building {what}");
        let status = command
            .status()
            .map_err(|e| Error::Tool(format!("cannot run {}: {e}", self.cargo)))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Tool(format!(
                "building {what} failed ({status}); {hint}"
            )))
        }
    }

    /// Builds the plugin `packages` for `wasm32-wasip1`; returns each
    /// package's `.wasm` file.
    pub fn plugins(&self, packages: &[&str]) -> Result<BTreeMap<String, PathBuf>> {
        if packages.is_empty() {
            return Ok(BTreeMap::new());
        }
        // One cargo run per package: built together, packages share one
        // feature resolution, and a module's bytes would depend on which
        // other images are built beside it.
        for package in packages {
            let mut command = self.command(WASM_TARGET, WASM_PROFILE);
            command.args(["-p", package]);
            self.run(
                command,
                &format!("{package} for {WASM_TARGET}"),
                &format!(
                    "is the target installed? `rustup target add {WASM_TARGET}` (`make images` does it)"
                ),
            )?;
        }
        let out = self.target_dir.join(WASM_TARGET).join(WASM_PROFILE);
        packages
            .iter()
            .map(|package| {
                let file = out.join(format!("{}.wasm", package.replace('-', "_")));
                if file.is_file() {
                    Ok((package.to_string(), file))
                } else {
                    Err(Error::Tool(format!(
                        "{package} built but {} is missing (is it a cdylib?)",
                        file.display()
                    )))
                }
            })
            .collect()
    }

    /// Builds the services' `(package, binary)` pairs as static musl
    /// binaries; returns each binary's file.
    pub fn services(&self, binaries: &[(&str, &str)]) -> Result<BTreeMap<String, PathBuf>> {
        if binaries.is_empty() {
            return Ok(BTreeMap::new());
        }
        // One cargo run per binary, as its Dockerfile builds it: built
        // together, the services share one feature resolution, and a
        // binary's bytes would depend on which other images are built.
        for (package, binary) in binaries {
            let mut command = self.command(MUSL_TARGET, SERVICE_PROFILE);
            command.args(["-p", package, "--bin", binary]);
            self.run(
                command,
                &format!("{binary} ({package}) for {MUSL_TARGET}"),
                "the musl target and musl-gcc are needed: `scripts/install-musl.sh` (`make images` runs it)",
            )?;
        }
        let out = self.target_dir.join(MUSL_TARGET).join(SERVICE_PROFILE);
        binaries
            .iter()
            .map(|(_, binary)| {
                let file = out.join(binary);
                if file.is_file() {
                    Ok((binary.to_string(), file))
                } else {
                    Err(Error::Tool(format!(
                        "{binary} built but {} is missing",
                        file.display()
                    )))
                }
            })
            .collect()
    }

    /// The binaries of every package in the workspace (`cargo metadata`),
    /// by package name.
    pub fn workspace_binaries(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let output = Command::new(&self.cargo)
            .current_dir(&self.root)
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .output()
            .map_err(|e| Error::Tool(format!("cannot run {} metadata: {e}", self.cargo)))?;
        if !output.status.success() {
            return Err(Error::Tool(format!(
                "cargo metadata failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| Error::Tool(format!("cargo metadata printed no JSON: {e}")))?;
        let mut packages = BTreeMap::new();
        for package in metadata["packages"].as_array().into_iter().flatten() {
            let Some(name) = package["name"].as_str() else {
                continue;
            };
            let binaries = package["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bin"))
                })
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect();
            packages.insert(name.to_string(), binaries);
        }
        Ok(packages)
    }

    /// The compilers this build uses.
    pub fn toolchain(&self) -> Result<Toolchain> {
        let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let rustc = first_line(
            Command::new(&rustc).arg("-V").current_dir(&self.root),
            &rustc,
        )?;
        let musl_cc = first_line(Command::new(MUSL_CC).arg("--version"), MUSL_CC)?;
        Ok(Toolchain { rustc, musl_cc })
    }
}

fn first_line(command: &mut Command, name: &str) -> Result<String> {
    let output = command.output().map_err(|e| {
        Error::Tool(format!(
            "cannot run {name}: {e} (`scripts/install-musl.sh` installs musl-gcc)"
        ))
    })?;
    if !output.status.success() {
        return Err(Error::Tool(format!(
            "{name} --version failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string())
}
