//! One instantiated plugin VM: the wasmtime store and instance, and typed
//! calls into the plugin's exported callbacks.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::SeedableRng;
use wasmtime::{Instance, Linker, Store, WasmParams, WasmResults};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::error::HarnessError;
use crate::plugin::{Plugin, engine};
use crate::state::{ConfigPhase, HostState, VmState};
use crate::types::LogLevel;
use crate::world::World;

/// How much a plugin may print to stdout/stderr before writes fail.
const STDIO_CAPACITY: usize = 1 << 20;

/// What a VM is for, as Envoy runs a plugin (see `Harness::start_workers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VmRole {
    Worker,
    MainThread,
}

pub(crate) struct Vm {
    pub(crate) store: Store<HostState>,
    instance: Instance,
    pub(crate) failed: Option<String>,
    /// What Envoy uses this VM for: a worker serves streams; the main
    /// thread's VM only ticks and takes queue notifications.
    pub(crate) role: VmRole,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
    /// How much of stdout and stderr is already in the logs.
    stdio_logged: (usize, usize),
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("vm", &self.store.data().vm)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

fn linker() -> Result<&'static Linker<HostState>, HarnessError> {
    static LINKER: std::sync::OnceLock<Result<Linker<HostState>, String>> =
        std::sync::OnceLock::new();
    LINKER
        .get_or_init(|| {
            let mut linker = Linker::new(engine());
            wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut HostState| {
                &mut state.wasi
            })
            .map_err(|e| format!("{e:#}"))?;
            crate::hostcalls::add_to_linker(&mut linker).map_err(|e| format!("{e:#}"))?;
            Ok(linker)
        })
        .as_ref()
        .map_err(|e| HarnessError::Setup(e.clone()))
}

impl Vm {
    /// Instantiates `plugin` as worker `worker` and runs its WASI start-up
    /// (`_initialize`), but no proxy-wasm callback yet.
    pub(crate) fn instantiate(
        plugin: &Plugin,
        world: &World,
        worker: usize,
        random_seed: u64,
    ) -> Result<Self, HarnessError> {
        let stdout = MemoryOutputPipe::new(STDIO_CAPACITY);
        let stderr = MemoryOutputPipe::new(STDIO_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .envs(&plugin.env)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(world.clock.clone())
            .monotonic_clock(world.clock.clone())
            .secure_random(rand::rngs::StdRng::seed_from_u64(random_seed))
            .insecure_random(rand::rngs::StdRng::seed_from_u64(random_seed ^ 1))
            .insecure_random_seed(u128::from(random_seed))
            .build_p1();
        let vm = VmState {
            worker,
            vm_id: plugin.vm_id.clone(),
            root_id: plugin.root_id.clone(),
            plugin_name: plugin.name.clone(),
            vm_config: plugin.vm_config.clone(),
            plugin_config: plugin.plugin_config.clone(),
            config_phase: ConfigPhase::None,
            root_context: 1,
            next_context: 2,
            effective_context: 1,
            streams: BTreeMap::new(),
            logs: Vec::new(),
            log_level: plugin.log_level,
            tick_period: Duration::ZERO,
            next_tick: None,
            metric_ids: HashMap::new(),
            next_metric_id: 1,
            http_calls: BTreeMap::new(),
            last_http_token: 0,
            last_grpc_call_token: 1,
            last_grpc_stream_token: 2,
            delivering_callout: None,
            grpc_calls: BTreeMap::new(),
            delivering_grpc: Default::default(),
            stray_grpc_closes: Vec::new(),
            foreign_calls: Vec::new(),
            vm_properties: plugin.properties.iter().cloned().collect(),
            node_metadata: plugin.node_metadata.clone(),
            node_id: plugin.node_id.clone(),
            node_cluster: plugin.node_cluster.clone(),
            route: plugin.route.clone(),
            destination_address: plugin.destination_address.clone(),
            root_done: false,
            last_status: (0, String::new()),
            source_address: plugin.source_address.clone(),
            body_end_of_stream: None,
        };
        let state = HostState {
            wasi,
            world: world.clone(),
            vm,
            memory: None,
            allocate: None,
        };
        let mut store = Store::new(engine(), state);
        let instance = linker()?
            .instantiate(&mut store, &plugin.module)
            .map_err(|e| HarnessError::Instantiate(format!("{e:#}")))?;
        if instance
            .get_func(&mut store, "proxy_abi_version_0_2_1")
            .is_none()
            && instance
                .get_func(&mut store, "proxy_abi_version_0_2_0")
                .is_none()
        {
            return Err(HarnessError::UnsupportedAbi);
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or(HarnessError::MissingExport("memory"))?;
        let allocate = ["proxy_on_memory_allocate", "malloc"]
            .iter()
            .find_map(|name| instance.get_typed_func::<u32, u32>(&mut store, name).ok())
            .ok_or(HarnessError::MissingExport("proxy_on_memory_allocate"))?;
        store.data_mut().memory = Some(memory);
        store.data_mut().allocate = Some(allocate);
        let mut vm = Vm {
            store,
            instance,
            failed: None,
            role: VmRole::Worker,
            stdout,
            stderr,
            stdio_logged: (0, 0),
        };
        // WASI reactors export `_initialize`; older SDKs export `_start`.
        if vm.instance.get_func(&mut vm.store, "_initialize").is_some() {
            vm.call::<(), ()>("_initialize", (), ())?;
        } else if vm.instance.get_func(&mut vm.store, "_start").is_some() {
            vm.call::<(), ()>("_start", (), ())?;
        }
        Ok(vm)
    }

    pub(crate) fn state(&self) -> &VmState {
        &self.store.data().vm
    }

    pub(crate) fn state_mut(&mut self) -> &mut VmState {
        &mut self.store.data_mut().vm
    }

    /// Calls the export `name`. A callback the module does not export is
    /// skipped with `default`, as Envoy skips it. A trap fails the VM.
    pub(crate) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &str,
        params: P,
        default: R,
    ) -> Result<R, HarnessError> {
        if let Some(reason) = &self.failed {
            return Err(HarnessError::VmFailed(reason.clone()));
        }
        let Some(func) = self.instance.get_func(&mut self.store, name) else {
            return Ok(default);
        };
        let typed = func
            .typed::<P, R>(&self.store)
            .map_err(|e| HarnessError::BadExport {
                name: name.to_string(),
                message: format!("{e:#}"),
            })?;
        let outcome = typed.call(&mut self.store, params);
        self.log_stdio();
        match outcome {
            Ok(result) => Ok(result),
            Err(error) => {
                let message = format!("{error:?}");
                self.failed = Some(format!("trap in {name}"));
                let logs = self.state().logs.clone();
                crate::hostcalls::log_host(
                    self.store.data_mut(),
                    LogLevel::Critical,
                    format!("plugin trapped in {name}"),
                );
                Err(HarnessError::Trap {
                    callback: name.to_string(),
                    message,
                    logs,
                })
            }
        }
    }

    /// Puts what the plugin wrote to stdout and stderr during the last call
    /// into its logs, as Envoy logs WASI writes: stdout at info, stderr at
    /// error, without the trailing newline (source/extensions/common/wasm/
    /// context.cc). Lines land after the `proxy_log` lines of the same call:
    /// the harness sees the pipes only between calls.
    fn log_stdio(&mut self) {
        let streams = [
            (self.stdout.contents(), LogLevel::Info),
            (self.stderr.contents(), LogLevel::Error),
        ];
        let mut logged = [self.stdio_logged.0, self.stdio_logged.1];
        for (index, (bytes, level)) in streams.into_iter().enumerate() {
            let new = bytes.get(logged[index]..).unwrap_or_default();
            logged[index] = bytes.len();
            if new.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(new);
            for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
                crate::hostcalls::log_host(self.store.data_mut(), level, line.to_string());
            }
        }
        self.stdio_logged = (logged[0], logged[1]);
    }

    /// Calls a callback on behalf of `context`: the effective context is set
    /// to it first, as Envoy does before every callback.
    pub(crate) fn callback<P: WasmParams, R: WasmResults>(
        &mut self,
        context: u32,
        name: &str,
        params: P,
        default: R,
    ) -> Result<R, HarnessError> {
        self.state_mut().effective_context = context;
        self.call(name, params, default)
    }
}
