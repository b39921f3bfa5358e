//! `oci-images`: builds every image layout (`make images`), pins the
//! manifests under `istio/` to the digests, and prints what it built.
//!
//! ```text
//! oci-images [--out DIR] [--check]
//! ```
//!
//! `--out` moves the layouts (default `<target>/images`); `--check` writes
//! no manifest and fails if a committed one differs from the build.

use std::path::PathBuf;
use std::process::ExitCode;

use oci_images::{Catalog, Variant, apply, assemble, compile, default_out_dir, plan};

struct Args {
    out: Option<PathBuf>,
    check: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: None,
        check: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => {
                args.out = Some(PathBuf::from(it.next().ok_or("--out needs a folder")?));
            }
            "--check" => args.check = true,
            "-h" | "--help" => {
                return Err("usage: oci-images [--out DIR] [--check]".into());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(args)
}

fn root() -> PathBuf {
    // Run from the repository (make images): the current folder, so a copy
    // of the checkout builds its own images; else the checkout this binary
    // was built from.
    match std::env::current_dir() {
        Ok(dir) if dir.join("images/images.toml").is_file() => dir,
        _ => oci_images::repository_root(),
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let root = root();
    let catalog = Catalog::load(&root).map_err(|e| e.to_string())?;
    let out = args.out.unwrap_or_else(|| default_out_dir(&root));
    let inputs = compile(&catalog).map_err(|e| e.to_string())?;
    let assembled = assemble(&catalog, &inputs, &out).map_err(|e| e.to_string())?;
    let plan = plan(&catalog, &assembled).map_err(|e| e.to_string())?;

    println!("| image | kind | stored (manifest + config + layers) | digest |");
    println!("|---|---|---:|---|");
    for image in &assembled.images {
        let kind = match image.variant {
            Variant::Plugin => "plugin (compat)",
            Variant::PluginArtifact => "plugin (oci artifact)",
            Variant::Service => "service",
        };
        println!(
            "| {} | {kind} | {} | {} |",
            image.name, image.stored_bytes, image.digest
        );
    }
    println!();
    for size in &assembled.configmaps.sizes {
        println!(
            "ConfigMap {}: {} bytes of data (limit {}), {} bytes as YAML",
            size.plugin,
            size.data_bytes,
            oci_images::configmap::CONFIGMAP_LIMIT,
            size.manifest_bytes
        );
    }
    println!("layouts in {}", out.display());
    for pending in &plan.pending {
        eprintln!(
            "warning: {}:{} names {}/{}, declared but not built yet (its package is not in the workspace): left unpinned",
            pending.file.display(),
            pending.line,
            catalog.shared.registry,
            pending.name
        );
    }
    for unknown in &plan.unknown {
        eprintln!(
            "warning: {}:{} names {}/{}, which no image definition builds (images/services/<name>/image.toml)",
            unknown.file.display(),
            unknown.line,
            catalog.shared.registry,
            unknown.name
        );
    }

    let stale: Vec<_> = plan.updates.iter().filter(|u| !u.is_current()).collect();
    if args.check {
        if stale.is_empty() {
            println!("the committed manifests match the build");
            return Ok(());
        }
        let files: Vec<String> = stale.iter().map(|u| u.path.display().to_string()).collect();
        return Err(format!(
            "these files differ from what the build gives: {}; run `make images` and commit them",
            files.join(", ")
        ));
    }
    let written = apply(&root, &plan).map_err(|e| e.to_string())?;
    if written.is_empty() {
        println!("manifests already pinned to these digests");
    }
    for file in written {
        println!("updated {}", file.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
