//! The Kubernetes side of the manifests, as the local mesh reads it: what
//! `kubectl apply` stores, and the Deployments, Services and ConfigMaps that
//! say what runs.
//!
//! Only the fields that change what a process does are read. A field the
//! local mesh cannot honour (a second container, a Secret, a `command`, a
//! volume other than `emptyDir` or `configMap`) is refused with its path;
//! fields that only matter to a cluster's scheduler (resources, security
//! context, liveness and startup probes, strategy) are accepted and left to
//! the cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// What went wrong reading a manifest.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{0}: {1}")]
    Read(String, String),
    #[error("{resource}: {field}: {message}")]
    Field {
        resource: String,
        field: String,
        message: String,
    },
}

/// One document of a manifest file, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub source: String,
    pub value: Value,
}

/// `kind`, `namespace`, `name`: what `kubectl apply` keys a resource by.
pub type Key = (String, String, String);

/// The namespace of a document without one (the manifests all say `airport`).
pub const DEFAULT_NAMESPACE: &str = "default";

pub fn key_of(doc: &Value) -> Key {
    (
        doc["kind"].as_str().unwrap_or_default().to_string(),
        doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string(),
        doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// `deployment.apps/cpanel-v2`, as kubectl names resources in its output.
pub fn display_name(key: &Key) -> String {
    let group = match key.0.as_str() {
        "Deployment" => "deployment.apps".to_string(),
        "Service" | "ConfigMap" | "Namespace" => key.0.to_lowercase(),
        "Gateway" | "VirtualService" | "DestinationRule" | "ServiceEntry" | "Sidecar" => {
            format!("{}.networking.istio.io", key.0.to_lowercase())
        }
        "WasmPlugin" => "wasmplugin.extensions.istio.io".to_string(),
        other => other.to_lowercase(),
    };
    format!("{group}/{}", key.2)
}

/// The YAML files of `path`: the file itself, or a directory's `*.yaml` and
/// `*.yml` in name order (as `kubectl apply -f DIR` takes them).
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, KubeError> {
    let read_error = |e: std::io::Error| KubeError::Read(path.display().to_string(), e.to_string());
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_error)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(KubeError::Read(
                path.display().to_string(),
                "no .yaml files in this directory".into(),
            ));
        }
        Ok(files)
    } else if path.is_file() {
        Ok(vec![path.to_path_buf()])
    } else {
        Err(KubeError::Read(
            path.display().to_string(),
            "no such file or directory".into(),
        ))
    }
}

/// Parses one file's documents; each must have `kind` and `metadata.name`.
pub fn parse_file(source: &str, text: &str) -> Result<Vec<Document>, KubeError> {
    let values = istio_manifests::parse_documents(text)
        .map_err(|e| KubeError::Read(source.to_string(), e.to_string()))?;
    let mut out = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        if value.is_null() {
            continue;
        }
        if !value["kind"].is_string() || !value["metadata"]["name"].is_string() {
            return Err(KubeError::Read(
                source.to_string(),
                format!("document {} has no kind or metadata.name", index + 1),
            ));
        }
        out.push(Document {
            source: source.to_string(),
            value,
        });
    }
    Ok(out)
}

/// One container: which program, with which environment and files.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// `args`, passed to the program.
    pub args: Vec<String>,
    /// `env`, in order, values resolved (`configMapKeyRef` included).
    pub env: Vec<(String, String)>,
    /// The port the readiness probe and the Service's `targetPort` name.
    pub port: u16,
    pub port_name: Option<String>,
    /// `readinessProbe.httpGet.path`, if any.
    pub readiness_path: Option<String>,
    /// `mountPath` → volume name.
    pub mounts: Vec<(String, String)>,
}

impl Container {
    /// The program the image holds: the last path segment of the image
    /// reference, without tag or digest
    /// (`ghcr.io/airport-mesh/camera-agent:0.1.0@sha256:…` → `camera-agent`).
    pub fn program(&self) -> &str {
        let without_digest = self.image.split('@').next().unwrap_or(&self.image);
        let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
        last.split(':').next().unwrap_or(last)
    }
}

/// A volume of the pod template.
#[derive(Debug, Clone, PartialEq)]
pub enum Volume {
    EmptyDir,
    /// A ConfigMap's keys as files (all keys, or the listed `items`: key → path).
    ConfigMap {
        name: String,
        items: Option<Vec<(String, String)>>,
    },
}

/// A Deployment, as far as running it locally goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub name: String,
    pub namespace: String,
    pub replicas: u32,
    /// `Recreate` stops the old pods before starting new ones.
    pub recreate: bool,
    /// The pod template's labels (`app`, `version`).
    pub labels: BTreeMap<String, String>,
    pub container: Container,
    pub volumes: BTreeMap<String, Volume>,
    /// A hash of the pod template: a pod runs one template, and a new
    /// template replaces the pods (a rollout).
    pub template_hash: String,
}

impl Deployment {
    /// `name.namespace`: two namespaces may hold Deployments of one name.
    pub fn key(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

/// A Service: which pods it selects and on which ports.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub namespace: String,
    pub selector: BTreeMap<String, String>,
    /// (`port`, `targetPort` as a number or a name).
    pub ports: Vec<(u16, Value)>,
}

impl Service {
    /// `name.namespace`: how the translator keys a Service.
    pub fn key(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }

    /// Whether the Service selects a pod with `labels`.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.selector.is_empty() && self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

fn field(resource: &str, field: &str, message: impl Into<String>) -> KubeError {
    KubeError::Field {
        resource: resource.to_string(),
        field: field.to_string(),
        message: message.into(),
    }
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect()
}

/// Fields of a container the local mesh cannot honour.
const REFUSED_CONTAINER_FIELDS: &[&str] = &["command", "envFrom", "workingDir", "lifecycle"];

/// Reads a Deployment; `config_maps` resolves `configMapKeyRef`.
pub fn deployment(
    doc: &Value,
    config_maps: &BTreeMap<(String, String), BTreeMap<String, String>>,
) -> Result<Deployment, KubeError> {
    let key = key_of(doc);
    let resource = format!("Deployment/{}", key.2);
    let spec = &doc["spec"];
    let replicas = match &spec["replicas"] {
        Value::Null => 1,
        value => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| field(&resource, "spec.replicas", "not a count"))?,
    };
    let recreate = spec["strategy"]["type"] == "Recreate";
    let template = &spec["template"];
    let labels = string_map(&template["metadata"]["labels"]);
    let selector = string_map(&spec["selector"]["matchLabels"]);
    if selector.is_empty() {
        return Err(field(
            &resource,
            "spec.selector.matchLabels",
            "the local mesh needs matchLabels",
        ));
    }
    for (k, v) in &selector {
        if labels.get(k) != Some(v) {
            return Err(field(
                &resource,
                "spec.selector.matchLabels",
                format!("{k}: {v} does not match the template's labels"),
            ));
        }
    }
    let pod = &template["spec"];
    for refused in ["initContainers", "hostNetwork"] {
        if !pod[refused].is_null() {
            return Err(field(
                &resource,
                &format!("spec.template.spec.{refused}"),
                "not supported by the local mesh",
            ));
        }
    }
    let containers = pod["containers"].as_array().cloned().unwrap_or_default();
    let [container] = containers.as_slice() else {
        return Err(field(
            &resource,
            "spec.template.spec.containers",
            format!(
                "the local mesh runs one container per pod, this template has {}",
                containers.len()
            ),
        ));
    };
    let container = read_container(&resource, &key.1, container, config_maps)?;

    let mut volumes = BTreeMap::new();
    for (index, volume) in pod["volumes"].as_array().into_iter().flatten().enumerate() {
        let path = format!("spec.template.spec.volumes[{index}]");
        let name = volume["name"]
            .as_str()
            .ok_or_else(|| field(&resource, &format!("{path}.name"), "missing"))?;
        let parsed = if volume.get("emptyDir").is_some() {
            Volume::EmptyDir
        } else if let Some(map) = volume.get("configMap") {
            let items = map["items"].as_array().map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        Some((
                            i["key"].as_str()?.to_string(),
                            i["path"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            });
            Volume::ConfigMap {
                name: map["name"]
                    .as_str()
                    .ok_or_else(|| field(&resource, &format!("{path}.configMap.name"), "missing"))?
                    .to_string(),
                items,
            }
        } else {
            let kind = volume
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
                .unwrap_or_default();
            return Err(field(
                &resource,
                &format!("{path}.{kind}"),
                "the local mesh supports emptyDir and configMap volumes",
            ));
        };
        volumes.insert(name.to_string(), parsed);
    }
    for (mount, volume) in &container.mounts {
        if !volumes.contains_key(volume) {
            return Err(field(
                &resource,
                "volumeMounts",
                format!("{mount} mounts volume {volume}, which the pod does not declare"),
            ));
        }
    }
    let template_hash = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        template.to_string().hash(&mut hasher);
        format!("{:08x}", hasher.finish() as u32)
    };
    Ok(Deployment {
        name: key.2,
        namespace: key.1,
        replicas,
        recreate,
        labels,
        container,
        volumes,
        template_hash,
    })
}

fn read_container(
    resource: &str,
    namespace: &str,
    container: &Value,
    config_maps: &BTreeMap<(String, String), BTreeMap<String, String>>,
) -> Result<Container, KubeError> {
    let path = "spec.template.spec.containers[0]";
    for refused in REFUSED_CONTAINER_FIELDS {
        if !container[*refused].is_null() {
            return Err(field(
                resource,
                &format!("{path}.{refused}"),
                "not supported by the local mesh (it runs the image's program)",
            ));
        }
    }
    let name = container["name"]
        .as_str()
        .ok_or_else(|| field(resource, &format!("{path}.name"), "missing"))?
        .to_string();
    let image = container["image"]
        .as_str()
        .ok_or_else(|| field(resource, &format!("{path}.image"), "missing"))?
        .to_string();
    let args = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| field(resource, &format!("{path}.args"), "not a list of strings"))?;
    let mut env = Vec::new();
    for (index, var) in container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{path}.env[{index}]");
        let var_name = var["name"]
            .as_str()
            .ok_or_else(|| field(resource, &format!("{at}.name"), "missing"))?;
        let value = if let Some(value) = var.get("value") {
            value
                .as_str()
                .ok_or_else(|| field(resource, &format!("{at}.value"), "not a string"))?
                .to_string()
        } else if let Some(from) = var.get("valueFrom") {
            if let Some(reference) = from.get("configMapKeyRef") {
                let map = reference["name"].as_str().unwrap_or_default();
                let key = reference["key"].as_str().unwrap_or_default();
                let found = config_maps
                    .get(&(namespace.to_string(), map.to_string()))
                    .and_then(|data| data.get(key));
                match found {
                    Some(value) => value.clone(),
                    None if reference["optional"] == true => continue,
                    None => {
                        return Err(field(
                            resource,
                            &format!("{at}.valueFrom.configMapKeyRef"),
                            format!("ConfigMap {map} has no key {key} (apply the ConfigMap first)"),
                        ));
                    }
                }
            } else {
                let kind = from
                    .as_object()
                    .and_then(|o| o.keys().next().cloned())
                    .unwrap_or_default();
                return Err(field(
                    resource,
                    &format!("{at}.valueFrom.{kind}"),
                    "the local mesh supports value and valueFrom.configMapKeyRef",
                ));
            }
        } else {
            String::new()
        };
        env.push((var_name.to_string(), value));
    }
    let ports = container["ports"].as_array().cloned().unwrap_or_default();
    let (port, port_name) = match ports.as_slice() {
        [] => (8080, None),
        [only] => (
            only["containerPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| {
                    field(
                        resource,
                        &format!("{path}.ports[0].containerPort"),
                        "not a port",
                    )
                })?,
            only["name"].as_str().map(str::to_string),
        ),
        _ => {
            return Err(field(
                resource,
                &format!("{path}.ports"),
                "the local mesh gives each pod one port (LISTEN_ADDR); this container declares several",
            ));
        }
    };
    let probe = &container["readinessProbe"];
    let readiness_path = if probe.is_null() {
        None
    } else if let Some(path) = probe["httpGet"]["path"].as_str() {
        Some(path.to_string())
    } else {
        return Err(field(
            resource,
            &format!("{path}.readinessProbe"),
            "the local mesh runs httpGet readiness probes only",
        ));
    };
    let mounts = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some((
                m["mountPath"].as_str()?.to_string(),
                m["name"].as_str()?.to_string(),
            ))
        })
        .collect();
    Ok(Container {
        name,
        image,
        args,
        env,
        port,
        port_name,
        readiness_path,
        mounts,
    })
}

/// Reads a Service.
pub fn service(doc: &Value) -> Result<Service, KubeError> {
    let key = key_of(doc);
    let resource = format!("Service/{}", key.2);
    let selector = string_map(&doc["spec"]["selector"]);
    if selector.is_empty() {
        return Err(field(
            &resource,
            "spec.selector",
            "the local mesh needs a selector (it has no manual Endpoints)",
        ));
    }
    let mut ports = Vec::new();
    for (index, port) in doc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let number = port["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| {
                field(
                    &resource,
                    &format!("spec.ports[{index}].port"),
                    "not a port",
                )
            })?;
        let target = match &port["targetPort"] {
            Value::Null => Value::from(number),
            other => other.clone(),
        };
        ports.push((number, target));
    }
    if ports.is_empty() {
        return Err(field(&resource, "spec.ports", "no ports"));
    }
    Ok(Service {
        name: key.2,
        namespace: key.1,
        selector,
        ports,
    })
}

/// A ConfigMap's `data`. `binaryData` is refused by name: its files would
/// reach the pods as text, so a pod would silently get broken or no files.
pub fn config_map(doc: &Value) -> Result<BTreeMap<String, String>, KubeError> {
    let resource = format!("ConfigMap/{}", key_of(doc).2);
    if doc["binaryData"].as_object().is_some_and(|m| !m.is_empty()) {
        return Err(field(
            &resource,
            "binaryData",
            "not supported by the local mesh (only data); a folder ConfigMap such as demo-frames or watchlist-photos needs no apply here, the mesh mounts its committed folder",
        ));
    }
    Ok(string_map(&doc["data"]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn one(yaml: &str) -> Value {
        parse_file("test.yaml", yaml).unwrap().remove(0).value
    }

    #[test]
    fn a_config_map_with_binary_data_is_refused_by_name() {
        let doc = one(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo-frames, namespace: airport}\nbinaryData: {a.jpg: /9j/4AAQ}\n",
        );
        let message = config_map(&doc).unwrap_err().to_string();
        assert!(
            message.contains("ConfigMap/demo-frames") && message.contains("binaryData"),
            "{message}"
        );
        let text = one(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: airport}\ndata: {fps: \"3\"}\n",
        );
        assert_eq!(config_map(&text).unwrap()["fps"], "3");
    }

    const CAMERA: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: camera-1, namespace: airport}
spec:
  replicas: 2
  selector: {matchLabels: {app: camera-1}}
  template:
    metadata: {labels: {app: camera-1, version: v1}}
    spec:
      containers:
      - name: camera-agent
        image: ghcr.io/airport-mesh/camera-agent:0.1.0@sha256:abcd
        ports: [{name: http, containerPort: 8080}]
        env:
        - {name: CAMERA_ID, value: "1"}
        - name: FROM_MAP
          valueFrom: {configMapKeyRef: {name: settings, key: fps}}
        readinessProbe: {httpGet: {path: /readyz, port: http}}
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, emptyDir: {}}]
"#;

    fn maps() -> BTreeMap<(String, String), BTreeMap<String, String>> {
        BTreeMap::from([(
            ("airport".to_string(), "settings".to_string()),
            BTreeMap::from([("fps".to_string(), "2".to_string())]),
        )])
    }

    #[test]
    fn a_deployment_says_what_runs() {
        let d = deployment(&one(CAMERA), &maps()).unwrap();
        assert_eq!(d.replicas, 2);
        assert_eq!(d.container.program(), "camera-agent");
        assert_eq!(
            d.container.env,
            vec![
                ("CAMERA_ID".to_string(), "1".to_string()),
                ("FROM_MAP".to_string(), "2".to_string())
            ]
        );
        assert_eq!(d.container.readiness_path.as_deref(), Some("/readyz"));
        assert_eq!(d.labels["version"], "v1");
        assert_eq!(d.volumes["data"], Volume::EmptyDir);
    }

    #[test]
    fn a_changed_template_changes_the_hash_and_replicas_do_not() {
        let a = deployment(&one(CAMERA), &maps()).unwrap();
        let b = deployment(&one(&CAMERA.replace("replicas: 2", "replicas: 3")), &maps()).unwrap();
        let c = deployment(
            &one(&CAMERA.replace("value: \"1\"", "value: \"7\"")),
            &maps(),
        )
        .unwrap();
        assert_eq!(a.template_hash, b.template_hash);
        assert_ne!(a.template_hash, c.template_hash);
    }

    #[test]
    fn refusals_name_the_field() {
        let secret = CAMERA.replace(
            "valueFrom: {configMapKeyRef: {name: settings, key: fps}}",
            "valueFrom: {secretKeyRef: {name: s, key: k}}",
        );
        let err = deployment(&one(&secret), &maps()).unwrap_err().to_string();
        assert!(err.contains("env[1].valueFrom.secretKeyRef"), "{err}");

        let command = CAMERA.replace("image:", "command: [sh]\n        image:");
        let err = deployment(&one(&command), &maps()).unwrap_err().to_string();
        assert!(err.contains("containers[0].command"), "{err}");

        let host_path = CAMERA.replace("emptyDir: {}", "hostPath: {path: /x}");
        let err = deployment(&one(&host_path), &maps())
            .unwrap_err()
            .to_string();
        assert!(err.contains("volumes[0].hostPath"), "{err}");

        let missing = deployment(&one(CAMERA), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("ConfigMap settings has no key fps"),
            "{missing}"
        );
    }

    #[test]
    fn services_select_by_labels() {
        let s = service(&one(
            "kind: Service\nmetadata: {name: cpanel}\nspec:\n  selector: {app: cpanel}\n  ports: [{name: http, port: 8080, targetPort: http}]\n",
        ))
        .unwrap();
        assert_eq!(s.ports, vec![(8080, json!("http"))]);
        let v2 = BTreeMap::from([
            ("app".to_string(), "cpanel".to_string()),
            ("version".to_string(), "v2".to_string()),
        ]);
        assert!(s.selects(&v2));
        assert!(!s.selects(&BTreeMap::new()));
    }

    #[test]
    fn kubectl_names() {
        assert_eq!(
            display_name(&key_of(
                &json!({"kind": "VirtualService", "metadata": {"name": "cpanel"}})
            )),
            "virtualservice.networking.istio.io/cpanel"
        );
        assert_eq!(
            display_name(&key_of(
                &json!({"kind": "Deployment", "metadata": {"name": "cpanel-v2"}})
            )),
            "deployment.apps/cpanel-v2"
        );
    }
}
