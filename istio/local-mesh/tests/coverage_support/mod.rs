//! The rig of the `coverage_*` tests: echo servers as workloads, the
//! translation of a manifest for them, and that translation in the pinned
//! Envoy (started as the daemon starts it, `tests/mesh_envoy`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use envoy_rig::Upstream;
use local_mesh::{MeshError, Translation, Workload, translate};

#[path = "../mesh_envoy/mod.rs"]
mod mesh_envoy;
pub use mesh_envoy::RunningEnvoy;

/// The translation of `yaml` for `workloads`.
pub fn try_translation(yaml: &str, workloads: &[Workload]) -> Result<Translation, MeshError> {
    let documents = istio_manifests::parse_documents(yaml).unwrap();
    translate(&documents, workloads, 0, &BTreeMap::new(), &BTreeMap::new())
}

pub fn translation(yaml: &str, workloads: &[Workload]) -> Translation {
    try_translation(yaml, workloads).unwrap_or_else(|e| panic!("{e}"))
}

pub fn refusal(yaml: &str, workloads: &[Workload]) -> String {
    match try_translation(yaml, workloads) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("translated, expected a refusal:\n{yaml}"),
    }
}

/// An echo server per (service, namespace, version), named
/// `service-namespace-version`, and the translation of `yaml` for them in
/// a running Envoy.
pub struct Mesh {
    pub envoy: RunningEnvoy,
    pub translation: Translation,
    pub upstreams: BTreeMap<String, Upstream>,
}

impl Mesh {
    pub fn start(yaml: &str, pods: &[(&str, &str, &str)]) -> Self {
        let mut upstreams = BTreeMap::new();
        let mut workloads = Vec::new();
        for (service, namespace, version) in pods {
            let name = format!("{service}-{namespace}-{version}");
            let upstream = Upstream::start(&name).unwrap();
            workloads.push(Workload {
                service: (*service).into(),
                namespace: (*namespace).into(),
                version: (*version).into(),
                port: upstream.port(),
            });
            upstreams.insert(name, upstream);
        }
        Self::with(yaml, &workloads, upstreams)
    }

    /// The translation of `yaml` for `workloads`, with `upstreams` kept alive.
    pub fn with(yaml: &str, workloads: &[Workload], upstreams: BTreeMap<String, Upstream>) -> Self {
        let translation = translation(yaml, workloads);
        let envoy = RunningEnvoy::start(&translation);
        Self {
            envoy,
            translation,
            upstreams,
        }
    }

    /// The URL of the listener callers of `key` (`name.namespace`, or a
    /// ServiceEntry's host) use.
    pub fn service_url(&self, key: &str) -> String {
        let listener = self
            .translation
            .listeners
            .services
            .get(key)
            .unwrap_or_else(|| panic!("no listener for {key}: {:?}", self.translation.listeners));
        self.envoy.listener_url(listener)
    }

    pub fn gateway_url(&self) -> String {
        self.envoy
            .listener_url(self.translation.listeners.gateway.as_deref().unwrap())
    }

    pub fn upstream(&self, name: &str) -> &Upstream {
        &self.upstreams[name]
    }
}

/// The Envoy JSON of listener `name`'s connection manager.
pub fn connection_manager<'a>(translation: &'a Translation, name: &str) -> &'a serde_json::Value {
    let listener = translation.bootstrap["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no listener {name}"));
    &listener["filter_chains"][0]["filters"][0]["typed_config"]
}

pub fn cluster<'a>(translation: &'a Translation, name: &str) -> &'a serde_json::Value {
    translation.bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}
