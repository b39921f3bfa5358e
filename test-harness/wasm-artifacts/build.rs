//! Builds every proxy-wasm plugin of the workspace (and the harness's test
//! plugin) for `wasm32-wasip1` with the `wasm` profile, and writes their
//! paths as constants, so `cargo test` needs no manual pre-build.
//!
//! The nested build uses its own target directory (`<target>/wasm-artifacts`):
//! the outer cargo holds the lock on its own one.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

const TARGET: &str = "wasm32-wasip1";
const PROFILE: &str = "wasm";

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1)
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| fail("cannot find the workspace root"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR is not set")));
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-artifacts");

    let mut packages = vec![(
        "harness-test-plugin".to_string(),
        root.join("test-harness/test-plugin"),
    )];
    packages.extend(plugin_packages(&root.join("wasm-plugins")));

    for (_, dir) in &packages {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    for watched in ["filters", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(&cargo);
    command
        .current_dir(&root)
        .args([
            "build",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
            "--target-dir",
        ])
        .arg(&target_dir);
    for (name, _) in &packages {
        command.args(["-p", name]);
    }
    // Flags meant for the host build must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {cargo}: {e}")));
    if !status.success() {
        fail(&format!(
            "building the plugins for {TARGET} failed (is the target installed? `rustup target add {TARGET}`; `make test` does it)"
        ));
    }

    let mut constants = String::new();
    for (name, _) in &packages {
        let file = target_dir
            .join(TARGET)
            .join(PROFILE)
            .join(format!("{}.wasm", name.replace('-', "_")));
        if !file.exists() {
            fail(&format!("{name} built but {} is missing", file.display()));
        }
        let constant = name.replace('-', "_").to_uppercase();
        let _ = writeln!(
            constants,
            "/// The `{name}` plugin, built for `{TARGET}`.\npub const {constant}: &str = {:?};",
            file.display().to_string()
        );
    }
    let _ = writeln!(
        constants,
        "/// Every plugin built, as (package name, path).\npub const ALL: &[(&str, &str)] = &[{}];",
        packages
            .iter()
            .map(|(name, _)| format!("({name:?}, {})", name.replace('-', "_").to_uppercase()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Err(e) = fs::write(out_dir.join("artifacts.rs"), constants) {
        fail(&format!("cannot write artifacts.rs: {e}"));
    }
}

/// Every package under `wasm-plugins/`: (package name, directory).
fn plugin_packages(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut packages: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter_map(|path| {
            let manifest = fs::read_to_string(path.join("Cargo.toml")).ok()?;
            let name = manifest.lines().find_map(|line| {
                let value = line.trim().strip_prefix("name")?.trim().strip_prefix('=')?;
                Some(value.trim().trim_matches('"').to_string())
            })?;
            Some((name, path))
        })
        .collect();
    packages.sort();
    packages
}
