//! The ConfigMap path: each plugin's ConfigMap holds exactly its module and
//! fits Kubernetes' limit, its `WasmPlugin` variant is a valid WasmPlugin
//! reading the mounted file, and the patches mount the ConfigMap where that
//! file is.

use base64::Engine as _;
use oci_images::Kind;
use oci_images::configmap::{CONFIGMAP_LIMIT, WASM_MOUNT_DIR};
use serde_json::Value;

use crate::support::built;

fn yaml(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut documents = istio_manifests::parse_documents(&text).unwrap();
    assert_eq!(documents.len(), 1, "{}", path.display());
    documents.remove(0)
}

#[test]
fn each_plugin_has_a_configmap_under_the_limit_and_a_file_url_variant() {
    let built = built();
    let dir = built.out.join("configmaps");
    let schemas = istio_manifests::Schemas::load_vendored().unwrap();
    let mut mounts = Vec::new();
    for definition in &built.catalog.images {
        let Kind::Plugin(_) = &definition.kind else {
            continue;
        };
        let name = definition.name.as_str();
        let configmap = yaml(&dir.join(name).join("configmap.yaml"));
        assert_eq!(configmap["kind"], "ConfigMap");
        let file = format!("{name}.wasm");
        let encoded = configmap["binaryData"][&file].as_str().expect("the module");
        let module = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert!(
            module == built.inputs.plugins[name],
            "{name}: the ConfigMap holds another module"
        );
        assert!(
            module.len() <= CONFIGMAP_LIMIT,
            "{name}: {} bytes",
            module.len()
        );
        let size = &built.assembled.configmaps.sizes;
        let size = size.iter().find(|s| s.plugin == name).expect("measured");
        eprintln!(
            "{name}: {} bytes of data ({:.1} % of the limit), ConfigMap {} bytes as YAML",
            size.data_bytes,
            100.0 * size.data_bytes as f64 / CONFIGMAP_LIMIT as f64,
            size.manifest_bytes
        );

        let variant = yaml(&dir.join(name).join("wasmplugin.yaml"));
        schemas
            .validate(&variant)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            variant["spec"]["url"],
            format!("file://{WASM_MOUNT_DIR}/{file}"),
            "{name}"
        );
        assert_eq!(
            variant["metadata"]["namespace"], configmap["metadata"]["namespace"],
            "{name}: the ConfigMap is in the namespace of the proxies that mount it"
        );
        mounts.push((name.to_string(), configmap["metadata"]["name"].clone()));
    }
    assert_eq!(mounts.len(), 3);

    // Every ConfigMap is mounted by a patch at the file its variant reads.
    let mut patched = Vec::new();
    for entry in std::fs::read_dir(dir.join("patches")).unwrap() {
        let patch = yaml(&entry.unwrap().path());
        let template = &patch["spec"]["template"];
        let annotations = &template["metadata"]["annotations"];
        if let Some(volumes) = annotations["sidecar.istio.io/userVolume"].as_str() {
            let volumes: Value = serde_json::from_str(volumes).unwrap();
            let mounts: Value = serde_json::from_str(
                annotations["sidecar.istio.io/userVolumeMount"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            for (volume, spec) in volumes.as_object().unwrap() {
                let path = mounts[volume]["mountPath"].as_str().unwrap().to_string();
                patched.push((spec["configMap"]["name"].clone(), path));
            }
        } else {
            let container = &template["spec"]["containers"][0];
            assert_eq!(container["name"], "istio-proxy");
            for volume in template["spec"]["volumes"].as_array().unwrap() {
                let mount = container["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["name"] == volume["name"])
                    .expect("mounted");
                patched.push((
                    volume["configMap"]["name"].clone(),
                    mount["mountPath"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    patched.sort_by_key(|(n, _)| n.to_string());
    let mut wanted: Vec<(Value, String)> = mounts
        .iter()
        .map(|(name, configmap)| (configmap.clone(), format!("{WASM_MOUNT_DIR}/{name}.wasm")))
        .collect();
    wanted.sort_by_key(|(n, _)| n.to_string());
    assert_eq!(patched, wanted);
}
