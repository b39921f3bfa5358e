//! A plugin to load: the compiled module plus what Envoy would pass it
//! (root id, VM id, configurations, environment).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use wasmtime::{Config, Engine, Module};

use crate::error::HarnessError;
use crate::types::LogLevel;

/// The one engine every harness in the process uses, so a compiled module can
/// be shared between tests.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
        // `Config::new` cannot fail with these settings; fall back to the
        // default engine rather than panic if a future version disagrees.
        Engine::new(&config).unwrap_or_default()
    })
}

/// Compiled modules by content hash: a hundred tests of one plugin compile it
/// once per test process. Compiled code is immutable, so sharing it keeps
/// tests independent.
fn module_cache() -> &'static Mutex<HashMap<u64, Module>> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Module>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// Compiles `bytes`, or returns the module compiled earlier from the same bytes.
pub(crate) fn compile_cached(bytes: &[u8]) -> Result<Module, HarnessError> {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    let key = hasher.finish();
    if let Some(module) = module_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        return Ok(module.clone());
    }
    let module = compile_uncached(bytes)?;
    module_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, module.clone());
    Ok(module)
}

pub(crate) fn compile_uncached(bytes: &[u8]) -> Result<Module, HarnessError> {
    Module::new(engine(), bytes).map_err(|e| HarnessError::Compile(format!("{e:#}")))
}

/// What Envoy's `xds.*` properties say about the route a stream took
/// (`xds.cluster_name`, `xds.route_name`, `xds.virtual_host_name`); unset
/// ones are NotFound.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteInfo {
    pub(crate) cluster_name: Option<String>,
    pub(crate) route_name: Option<String>,
    pub(crate) virtual_host_name: Option<String>,
}

/// A plugin as Envoy is told about it: module, names and configurations.
///
/// ```no_run
/// # use proxy_wasm_harness::Plugin;
/// let plugin = Plugin::load("target/wasm32-wasip1/wasm/my_plugin.wasm")?
///     .plugin_config(r#"{"header": "x-hello"}"#)
///     .root_id("my_root");
/// # Ok::<(), proxy_wasm_harness::HarnessError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Plugin {
    pub(crate) module: Module,
    pub(crate) name: String,
    pub(crate) root_id: String,
    pub(crate) vm_id: String,
    pub(crate) vm_config: Vec<u8>,
    pub(crate) plugin_config: Vec<u8>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) log_level: LogLevel,
    pub(crate) node_metadata: BTreeMap<String, String>,
    pub(crate) node_id: String,
    pub(crate) node_cluster: String,
    pub(crate) route: RouteInfo,
    pub(crate) destination_address: String,
    pub(crate) clusters: Vec<String>,
    pub(crate) properties: Vec<(Vec<String>, Vec<u8>)>,
    pub(crate) source_address: String,
    pub(crate) random_seed: u64,
}

impl Plugin {
    /// Loads and compiles (once per process) the module at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, HarnessError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| HarnessError::ReadModule {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Compiles (once per process) a module given as bytes: a binary `.wasm`,
    /// or WebAssembly text, handy for hand-written modules in tests.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HarnessError> {
        Ok(Self::from_module(compile_cached(bytes)?))
    }

    /// Compiles `bytes` without the per-process cache: what every load would
    /// cost without it (for measuring; tests want [`Plugin::from_bytes`]).
    pub fn from_bytes_uncached(bytes: &[u8]) -> Result<Self, HarnessError> {
        Ok(Self::from_module(compile_uncached(bytes)?))
    }

    fn from_module(module: Module) -> Self {
        Self {
            module,
            name: String::new(),
            root_id: String::new(),
            vm_id: String::new(),
            vm_config: Vec::new(),
            plugin_config: Vec::new(),
            env: Vec::new(),
            log_level: LogLevel::Trace,
            node_metadata: BTreeMap::new(),
            node_id: String::new(),
            node_cluster: String::new(),
            route: RouteInfo::default(),
            destination_address: "127.0.0.1:10000".to_string(),
            clusters: Vec::new(),
            properties: Vec::new(),
            source_address: "127.0.0.1:40000".to_string(),
            random_seed: 0x5eed,
        }
    }

    /// The plugin configuration (`proxy_on_configure`), usually JSON.
    pub fn plugin_config(mut self, config: impl Into<Vec<u8>>) -> Self {
        self.plugin_config = config.into();
        self
    }

    /// The VM configuration (`proxy_on_vm_start`).
    pub fn vm_config(mut self, config: impl Into<Vec<u8>>) -> Self {
        self.vm_config = config.into();
        self
    }

    /// The root id (Envoy's `root_id`, Istio's `pluginName`).
    pub fn root_id(mut self, root_id: &str) -> Self {
        self.root_id = root_id.to_string();
        self
    }

    /// The plugin's name (`plugin_name` property).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The VM id: VMs with the same id share shared data and queues.
    pub fn vm_id(mut self, vm_id: &str) -> Self {
        self.vm_id = vm_id.to_string();
        self
    }

    /// An environment variable visible through WASI (Envoy's
    /// `vm_config.environment_variables`, Istio's `vmConfig.env`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Only log lines at or above `level` are kept, as Envoy prints them.
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// A string entry of the node metadata: the property
    /// `xds.node.metadata.<key>` (Envoy 1.40 has no bare `node.*`
    /// properties; they are NotFound there and here).
    pub fn node_metadata(mut self, key: &str, value: &str) -> Self {
        self.node_metadata
            .insert(key.to_string(), value.to_string());
        self
    }

    /// The node id (`xds.node.id`; empty by default, as with no `node` in
    /// Envoy's bootstrap).
    pub fn node_id(mut self, id: &str) -> Self {
        self.node_id = id.to_string();
        self
    }

    /// The node's cluster (`xds.node.cluster`; empty by default).
    pub fn node_cluster(mut self, cluster: &str) -> Self {
        self.node_cluster = cluster.to_string();
        self
    }

    /// The route every stream takes, as Envoy's `xds.cluster_name`,
    /// `xds.route_name` and `xds.virtual_host_name` report it (NotFound
    /// until set).
    pub fn route(mut self, cluster_name: &str, route_name: &str, virtual_host_name: &str) -> Self {
        self.route = RouteInfo {
            cluster_name: Some(cluster_name.to_string()),
            route_name: Some(route_name.to_string()),
            virtual_host_name: Some(virtual_host_name.to_string()),
        };
        self
    }

    /// The listener address every stream arrived on (`destination.address`,
    /// `destination.port`).
    pub fn destination_address(mut self, address: &str) -> Self {
        self.destination_address = address.to_string();
        self
    }

    /// Declares the clusters Envoy would know, for callouts: a harness that
    /// starts this plugin knows them (as does [`Harness::declare_clusters`]).
    /// A callout to any other name is refused as Envoy refuses it (HTTP:
    /// `BadArgument`; gRPC by bare name: `ParseFailure`), so by default
    /// every callout is refused.
    ///
    /// [`Harness::declare_clusters`]: crate::Harness::declare_clusters
    pub fn clusters<I: IntoIterator<Item = S>, S: Into<String>>(mut self, clusters: I) -> Self {
        self.clusters.extend(clusters.into_iter().map(Into::into));
        self
    }

    /// A property visible to every context of the VM.
    pub fn property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> Self {
        self.properties
            .push((path.iter().map(|s| s.to_string()).collect(), value.into()));
        self
    }

    /// The downstream address (`source.address`) of every stream.
    pub fn source_address(mut self, address: &str) -> Self {
        self.source_address = address.to_string();
        self
    }

    /// The test's seed for WASI random sources, so `getrandom` is
    /// repeatable. Each VM started from the plugin gets its own seed derived
    /// from it (as each Envoy VM draws its own randomness), so two workers do
    /// not produce the same sequence.
    pub fn random_seed(mut self, seed: u64) -> Self {
        self.random_seed = seed;
        self
    }
}
