//! Every layout is a valid OCI image layout (marker, index, manifest,
//! config and layer digests, sizes and media types), each kind of image has
//! the shape it must have, and building again gives the same bytes.

use std::collections::BTreeSet;

use oci_images::{ARTIFACT_SUFFIX, Kind, Variant, assemble};
use oci_spec::image::Arch;

use crate::support::{Layout, built, digest_of, gunzip, tar_entries, test_out_dir, tree};

const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

#[test]
fn every_definition_has_its_layouts() {
    let built = built();
    let mut expected = BTreeSet::new();
    for definition in &built.catalog.images {
        if built.assembled.pending.contains(&definition.name) {
            eprintln!(
                "{}: declared, not built yet (its package is not in the workspace)",
                definition.name
            );
            continue;
        }
        expected.insert(definition.name.clone());
        if matches!(definition.kind, Kind::Plugin(_)) {
            expected.insert(format!("{}{ARTIFACT_SUFFIX}", definition.name));
        }
    }
    let names: BTreeSet<String> = built
        .assembled
        .images
        .iter()
        .map(|i| i.name.clone())
        .collect();
    assert_eq!(names, expected);
    assert!(
        expected.len() >= 3 * 2 + 5,
        "the three plugins (two variants each) and at least five services: {expected:?}"
    );
}

#[test]
fn every_layout_checks_out_against_the_oci_image_spec() {
    let built = built();
    for image in &built.assembled.images {
        let layout = Layout::open(&image.layout)
            .unwrap_or_else(|e| panic!("{}: {e}", image.layout.display()));
        assert_eq!(
            layout.manifest_descriptor.digest().to_string(),
            image.digest,
            "{}: the index names the manifest the build reported",
            image.name
        );
        assert_eq!(digest_of(&layout.manifest_bytes), image.digest);
        assert_eq!(
            layout
                .index_annotation("org.opencontainers.image.ref.name")
                .as_deref(),
            Some(built.catalog.tag.as_str())
        );
        assert_eq!(
            layout
                .index_annotation("io.containerd.image.name")
                .as_deref(),
            Some(image.reference.as_str())
        );
        assert_eq!(
            layout
                .annotation("org.opencontainers.image.title")
                .as_deref(),
            Some(image.image.as_str())
        );
        // Canonical JSON: keys sorted, no white space, so the bytes (and the
        // digest) do not depend on a map's iteration order.
        for (what, bytes) in [
            ("manifest", &layout.manifest_bytes),
            ("config", &layout.config_bytes),
        ] {
            let mut value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            value.sort_all_objects();
            assert_eq!(
                &serde_json::to_vec(&value).unwrap(),
                bytes,
                "{}: {what}",
                image.name
            );
        }
        let index_bytes = std::fs::read(image.layout.join("index.json")).unwrap();
        assert!(!index_bytes.is_empty() && layout.index.manifests().len() == 1);
        match image.variant {
            Variant::Plugin => check_compat(&layout, &image.name),
            Variant::PluginArtifact => check_artifact(&layout, &image.name),
            Variant::Service => check_service(&layout, &image.name),
        }
    }
}

/// The layer's uncompressed digest is the config's diff_id, and every entry
/// has the fixed time stamp.
fn check_diff_ids(layout: &Layout, name: &str) -> Vec<crate::support::TarEntry> {
    let config = layout.config();
    let tars: Vec<Vec<u8>> = layout.layers.iter().map(|l| gunzip(l)).collect();
    let diff_ids: Vec<String> = tars.iter().map(|t| digest_of(t)).collect();
    assert_eq!(
        config.rootfs().diff_ids(),
        &diff_ids,
        "{name}: rootfs.diff_ids"
    );
    assert_eq!(config.rootfs().typ(), "layers");
    assert_eq!(config.created().as_deref(), Some("1970-01-01T00:00:00Z"));
    let entries: Vec<_> = tars.iter().flat_map(|t| tar_entries(t)).collect();
    for entry in &entries {
        assert_eq!(entry.mtime, 0, "{name}: {} has a time stamp", entry.path);
    }
    entries
}

fn check_compat(layout: &Layout, name: &str) {
    assert_eq!(
        layout.manifest.config().media_type().to_string(),
        IMAGE_CONFIG
    );
    let [layer] = layout.manifest.layers().as_slice() else {
        panic!("{name}: a compat image has one layer");
    };
    assert_eq!(layer.media_type().to_string(), GZIP_LAYER);
    assert_eq!(
        layout.annotation("module.wasm.image/variant").as_deref(),
        Some("compat")
    );
    let config = layout.config();
    assert_eq!(config.architecture(), &Arch::Wasm);
    assert_eq!(config.os().to_string(), "wasip1");
    let entries = check_diff_ids(layout, name);
    let [entry] = entries.as_slice() else {
        panic!("{name}: the layer holds {entries:?}, not plugin.wasm alone");
    };
    assert_eq!(entry.path, "plugin.wasm");
    assert_eq!(entry.kind, tar::EntryType::Regular);
    assert_eq!(&entry.bytes[..4], b"\0asm", "{name}: a Wasm module");
}

fn check_artifact(layout: &Layout, name: &str) {
    let config_type = "application/vnd.module.wasm.config.v1+json";
    assert_eq!(
        layout.manifest.config().media_type().to_string(),
        config_type
    );
    let config: serde_json::Value = serde_json::from_slice(&layout.config_bytes).unwrap();
    assert_eq!(config["type"], "envoy_proxy", "{name}");
    let types: Vec<String> = layout
        .manifest
        .layers()
        .iter()
        .map(|l| l.media_type().to_string())
        .collect();
    assert_eq!(
        types,
        vec![
            config_type.to_string(),
            "application/vnd.module.wasm.content.layer.v1+wasm".to_string()
        ],
        "{name}: Istio's fetcher wants exactly these two layers"
    );
    assert_eq!(layout.layers[0], layout.config_bytes);
    assert_eq!(
        &layout.layers[1][..4],
        b"\0asm",
        "{name}: a raw Wasm module"
    );
}

fn check_service(layout: &Layout, name: &str) {
    let built = built();
    let definition = built.catalog.get(name).expect("a definition");
    let Kind::Service(service) = &definition.kind else {
        panic!("{name} is not a service");
    };
    assert_eq!(
        layout.manifest.config().media_type().to_string(),
        IMAGE_CONFIG
    );
    let [layer] = layout.manifest.layers().as_slice() else {
        panic!("{name}: one layer on an empty base");
    };
    assert_eq!(layer.media_type().to_string(), GZIP_LAYER);
    let config = layout.config();
    assert_eq!(config.architecture(), &Arch::Amd64);
    assert_eq!(config.os().to_string(), "linux");
    let run = config.config().as_ref().expect("a run config");

    // Not root: a numeric user and group, both non-zero.
    let user = run.user().as_deref().expect("a user");
    let (uid, gid) = user.split_once(':').expect("user:group");
    let (uid, gid): (u32, u32) = (uid.parse().expect("numeric"), gid.parse().expect("numeric"));
    assert!(uid != 0 && gid != 0, "{name}: runs as {user}");
    assert_eq!(uid, built.catalog.shared.user);

    let entrypoint = format!("/usr/local/bin/{}", service.binary);
    assert_eq!(run.entrypoint().as_deref(), Some(&[entrypoint.clone()][..]));
    assert_eq!(run.cmd(), &None);
    assert_eq!(
        run.exposed_ports().as_deref(),
        Some(&[format!("{}/tcp", service.port)][..])
    );
    assert_eq!(run.working_dir(), &service.workdir);
    let env = oci_images::image::env_map(run.env().as_deref().unwrap_or_default());
    for (key, value) in &service.env {
        assert_eq!(env.get(key), Some(value), "{name}: env {key}");
    }

    // Only what the definition asks for: the binary, its files, the
    // working folder, and their parent folders.
    let entries = check_diff_ids(layout, name);
    let mut expected: BTreeSet<String> = BTreeSet::new();
    let mut add_with_parents = |path: &str, is_dir: bool| {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for i in 1..parts.len() {
            expected.insert(format!("{}/", parts[..i].join("/")));
        }
        expected.insert(format!(
            "{}{}",
            parts.join("/"),
            if is_dir { "/" } else { "" }
        ));
    };
    add_with_parents(&entrypoint, false);
    for file in &built.inputs.services[name].1 {
        add_with_parents(&file.target, false);
    }
    if let Some(workdir) = &service.workdir {
        add_with_parents(workdir, true);
    }
    let paths: BTreeSet<String> = entries.iter().map(|e| e.path.clone()).collect();
    assert_eq!(paths, expected, "{name}: the layer holds exactly these");
    let sorted: Vec<&String> = entries.iter().map(|e| &e.path).collect();
    let mut resorted = sorted.clone();
    resorted.sort();
    assert_eq!(sorted, resorted, "{name}: entries sorted by path");
    for entry in &entries {
        assert!(
            matches!(
                entry.kind,
                tar::EntryType::Regular | tar::EntryType::Directory
            ),
            "{name}: {} is a {:?}",
            entry.path,
            entry.kind
        );
        let owned_by_user = service
            .workdir
            .as_deref()
            .is_some_and(|w| entry.path == format!("{}/", w.trim_start_matches('/')));
        let (want_uid, want_gid) = if owned_by_user {
            (u64::from(uid), u64::from(gid))
        } else {
            (0, 0)
        };
        assert_eq!(
            (entry.uid, entry.gid),
            (want_uid, want_gid),
            "{name}: {}",
            entry.path
        );
    }
    let binary = entries
        .iter()
        .find(|e| e.path == entrypoint.trim_start_matches('/'))
        .expect("the binary");
    assert_eq!(binary.mode, 0o755);
    assert_eq!(&binary.bytes[..4], b"\x7fELF");
}

#[test]
fn building_again_gives_the_same_bytes() {
    let built = built();
    let again_dir = test_out_dir("images-test-again");
    let again = assemble(&built.catalog, &built.inputs, &again_dir).expect("assembles");
    assert_eq!(again.digests(), built.assembled.digests());
    let (one, two) = (tree(&built.out), tree(&again_dir));
    let names: Vec<_> = one.keys().collect();
    assert_eq!(names, two.keys().collect::<Vec<_>>());
    for (path, bytes) in &one {
        assert!(
            &two[path] == bytes,
            "{} differs between two builds",
            path.display()
        );
    }
    std::fs::remove_dir_all(&again_dir).ok();
}
