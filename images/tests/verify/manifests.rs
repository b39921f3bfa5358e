//! The committed manifests are what the build produces: each `WasmPlugin`'s
//! `url` and `sha256`, every container image of ours pinned by digest, and
//! `images/digests.toml`. CI builds from a fresh clone at another path, so
//! this is also the proof that the images are reproducible across
//! checkouts.

use oci_images::{DigestRecord, Kind, plan};

use crate::support::built;

#[test]
fn committed_manifests_match_the_build() {
    let built = built();
    let root = &built.catalog.root;
    let committed = DigestRecord::read(root).unwrap_or_else(|e| panic!("{e}; run `make images`"));
    let toolchain: oci_images::manifests::ToolchainRecord = (&built.inputs.toolchain).into();
    assert!(
        committed.toolchain == toolchain,
        "images/digests.toml was made with {:?}, this build uses {:?}: the digests depend on the \
         compilers, so they can only be checked with the same ones. Run `make images` with the \
         toolchain CI uses and commit the result.",
        committed.toolchain,
        toolchain
    );
    let plan = plan(&built.catalog, &built.assembled).expect("a plan");
    let mut stale = Vec::new();
    for update in plan.updates.iter().filter(|u| !u.is_current()) {
        let first_difference = update
            .current
            .lines()
            .zip(update.expected.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}: `{a}`, the build gives `{b}`", i + 1))
            .unwrap_or_else(|| "the line count differs".into());
        stale.push(format!("{}: {first_difference}", update.path.display()));
    }
    assert!(
        stale.is_empty(),
        "the committed manifests differ from what the build produces; run `make images` and \
         commit the result:\n{}",
        stale.join("\n")
    );
    for pending in &plan.pending {
        eprintln!(
            "{}:{} names {}, declared but not built yet: its package is not in the workspace",
            pending.file.display(),
            pending.line,
            pending.name
        );
    }
    let unknown: Vec<String> = plan
        .unknown
        .iter()
        .map(|r| format!("{}:{} names {}", r.file.display(), r.line, r.name))
        .collect();
    assert!(
        unknown.is_empty(),
        "images named in the manifests that no image definition builds (add \
         images/services/<name>/image.toml): {unknown:?}"
    );
}

#[test]
fn every_wasm_plugin_of_ours_names_a_built_image_with_its_digest() {
    let built = built();
    let schemas = istio_manifests::Schemas::load_vendored().expect("the vendored CRDs");
    let registry = format!("oci://{}/", built.catalog.shared.registry);
    let dir = built.catalog.root.join("istio/plugins");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for document in istio_manifests::parse_documents(&text).unwrap() {
            if document["kind"] != "WasmPlugin" {
                continue;
            }
            schemas
                .validate(&document)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let url = document["spec"]["url"].as_str().unwrap_or_default();
            let Some(rest) = url.strip_prefix(&registry) else {
                continue;
            };
            let name = rest.split(':').next().unwrap_or_default();
            let image = built
                .assembled
                .get(name)
                .unwrap_or_else(|| panic!("{}: {url} is no image of ours", path.display()));
            assert_eq!(url, format!("oci://{}", image.reference));
            assert_eq!(
                document["spec"]["sha256"]
                    .as_str()
                    .map(|s| format!("sha256:{s}")),
                Some(image.digest.clone()),
                "{}: sha256 is the image's manifest digest (what Istio compares)",
                path.display()
            );
            seen += 1;
        }
    }
    let plugins = built
        .catalog
        .images
        .iter()
        .filter(|d| matches!(d.kind, Kind::Plugin(_)))
        .count();
    assert_eq!(seen, plugins, "every plugin image has its WasmPlugin");
}
