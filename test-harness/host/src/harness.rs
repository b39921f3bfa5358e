//! The emulator: workers (VMs), streams, the virtual clock and callouts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::HarnessError;
use crate::exchange::{Exchange, Request, Response, UpstreamRequest};
use crate::headers::HeaderMap;
use crate::plugin::Plugin;
use crate::state::{
    CalloutResponse, ConfigPhase, DeliveredCallout, Direction, Flow, ForeignCall, HttpCall,
    HttpStream, LogEntry,
};
use crate::types::{Action, LogLevel};
use crate::vm::{Vm, VmRole};
use crate::world::{Metric, World};

mod grpc_callouts;

use grpc_callouts::GrpcResponders;

/// 2026-01-01T00:00:00Z: the virtual wall clock's starting point, fixed so
/// that runs are repeatable.
const START_OF_TIME: Duration = Duration::from_secs(1_767_225_600);

/// How long `exchange` lets a paused stream wait, in virtual time, before it
/// reports the stream as stalled.
const STALL_LIMIT: Duration = Duration::from_secs(3600);

/// How many callbacks may trigger each other (queue notifications, local
/// replies) before the harness calls it a runaway.
const CHAIN_LIMIT: usize = 10_000;

fn check_length(
    direction: &'static str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), HarnessError> {
    let Some(declared) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return Ok(());
    };
    if declared == body.len() {
        return Ok(());
    }
    Err(HarnessError::BodyLengthMismatch {
        direction,
        declared,
        actual: body.len(),
    })
}

/// A worker: one VM of a plugin, as Envoy runs one per worker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub usize);

/// An HTTP stream (a plugin context) on one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub worker: WorkerId,
    pub context: u32,
}

/// A proxy-wasm host for tests: load a plugin into one or more workers, send
/// it requests, advance its virtual clock, answer its callouts, and look at
/// what it did. Each harness is independent, so tests run in parallel.
pub struct Harness {
    world: World,
    /// Every VM: the workers, and in the Envoy process model the main
    /// thread's VM (`Vm::role`), indexed by `WorkerId`.
    workers: Vec<Vm>,
    callout_responder: Option<CalloutResponder>,
    /// The test's gRPC servers, by (cluster, service, method).
    grpc_responders: GrpcResponders,
    /// VMs instantiated so far, configuration VMs included: each gets its
    /// own random seed derived from the plugin's.
    vms_started: u64,
    /// Where `exchange` takes `x-request-id` from when a request has none.
    request_ids: StdRng,
    /// Whether `exchange` adds what Envoy's connection manager adds to a
    /// request before the filters (`x-forwarded-proto`, `x-request-id`).
    connection_manager_headers: bool,
    /// How `exchange` ends a body (see [`BodyEnd`]).
    body_end: BodyEnd,
}

/// How `exchange` delivers the end of a body, as Envoy's codecs do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyEnd {
    /// HTTP/1.1 (the default): the data with `end_of_stream = false`, then
    /// a separate empty body callback with `end_of_stream = true`. This is
    /// what Envoy 1.40 does for a `content-length` body from an HTTP/1.1
    /// client or upstream.
    #[default]
    SeparateEmptyCallback,
    /// The last chunk carries `end_of_stream = true` (an HTTP/2 DATA frame
    /// with END_STREAM): one callback.
    WithLastChunk,
}

/// The gRPC status Envoy gives a local reply to a gRPC request for an HTTP
/// status (`Grpc::Utility::httpToGrpcStatus`, source/common/grpc/status.cc,
/// after gRPC's "HTTP to gRPC Status Code Mapping").
fn grpc_status_for_http(status: u32) -> i32 {
    match status {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// gRPC's `grpc-message` encoding: printable ASCII except `%` as is,
/// every other byte as `%XX`.
fn grpc_percent_encode(message: &[u8]) -> String {
    let mut out = String::with_capacity(message.len());
    for &byte in message {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The message body Envoy's async client answers a timed-out callout with.
const CALLOUT_TIMEOUT_BODY: &str = "upstream request timeout";

/// A v4 UUID from `rng`, as Envoy generates `x-request-id`.
fn uuid_v4(rng: &mut StdRng) -> String {
    let mut bytes: [u8; 16] = rng.random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The seed of the `ordinal`-th VM started from a plugin seeded `seed`
/// (splitmix64: distinct, well-spread seeds from consecutive ordinals).
fn vm_seed(seed: u64, ordinal: u64) -> u64 {
    let mut z = seed.wrapping_add(ordinal.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Answers callouts as they are made, like an upstream that is always there.
type CalloutResponder = Box<dyn FnMut(&HttpCall) -> Option<CalloutResponse>>;

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("workers", &self.workers)
            .field("callout_responder", &self.callout_responder.is_some())
            .finish()
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

enum Event {
    Tick(usize),
    CalloutTimeout(usize, u32),
    GrpcTimeout(usize, u32),
    /// A delayed gRPC answer (its index in the delayed list).
    GrpcAnswer(usize),
}

impl Harness {
    pub fn new() -> Self {
        Self {
            world: World::new(START_OF_TIME),
            workers: Vec::new(),
            callout_responder: None,
            grpc_responders: GrpcResponders::default(),
            vms_started: 0,
            request_ids: StdRng::seed_from_u64(0x5eed),
            connection_manager_headers: true,
            body_end: BodyEnd::default(),
        }
    }

    /// Seeds the `x-request-id`s `exchange` generates, so a test that
    /// samples on them is repeatable (they are seeded by default too).
    pub fn request_id_seed(&mut self, seed: u64) -> &mut Self {
        self.request_ids = StdRng::seed_from_u64(seed);
        self
    }

    /// Whether `exchange` adds what Envoy's connection manager adds to every
    /// request before the filters: `x-forwarded-proto` (the `:scheme`) and
    /// an `x-request-id` UUID, each only when absent. On by default; off
    /// gives the plugin exactly the `Request`'s headers.
    pub fn connection_manager_headers(&mut self, add: bool) -> &mut Self {
        self.connection_manager_headers = add;
        self
    }

    /// How `exchange` ends request and response bodies (default: HTTP/1.1's
    /// separate empty callback).
    pub fn body_end(&mut self, body_end: BodyEnd) -> &mut Self {
        self.body_end = body_end;
        self
    }

    /// Answers every callout with `responder` as soon as the callback that
    /// made it returns (Envoy delivers responses asynchronously too).
    /// Returning `None` leaves a callout pending: answer it with
    /// [`Harness::respond_http_call`] or let it time out.
    pub fn answer_callouts_with(
        &mut self,
        responder: impl FnMut(&HttpCall) -> Option<CalloutResponse> + 'static,
    ) {
        self.callout_responder = Some(Box::new(responder));
    }

    /// Starts one VM of `plugin` and returns it as a worker: instantiate,
    /// `proxy_on_vm_start` with the VM configuration, `proxy_on_configure`
    /// with the plugin configuration. A `false` from either is an error
    /// carrying the logs.
    ///
    /// This is a lone VM, the smallest set-up for a test. Envoy runs more
    /// VMs than its workers (see [`Harness::start_workers`]); a plugin that
    /// counts from `on_tick` or `on_configure` should be tested with that.
    pub fn start(&mut self, plugin: &Plugin) -> Result<WorkerId, HarnessError> {
        let vm = self.boot(plugin)?;
        self.add_vm(vm)
    }

    /// Starts `plugin` as Envoy 1.40 does with `--concurrency count`: a
    /// short-lived configuration VM (`on_vm_start`, `on_configure`, then
    /// dropped), the main thread's VM, and one VM per worker, each started
    /// with `on_vm_start` and `on_configure`. The main thread's root context
    /// ticks and receives queue notifications like the workers' but serves
    /// no streams, so a plugin with N workers sees N+1 ticking root contexts.
    /// Returns the workers (the main thread's VM is [`Harness::main_thread`]).
    /// All share shared data, queues and metrics.
    pub fn start_workers(
        &mut self,
        plugin: &Plugin,
        count: usize,
    ) -> Result<Vec<WorkerId>, HarnessError> {
        // The configuration VM: Envoy checks the configuration in a VM of
        // its own before the per-thread VMs exist.
        drop(self.boot(plugin)?);
        let mut main = self.boot(plugin)?;
        main.role = VmRole::MainThread;
        self.add_vm(main)?;
        (0..count)
            .map(|_| {
                let vm = self.boot(plugin)?;
                self.add_vm(vm)
            })
            .collect()
    }

    /// Starts `count` workers of the same plugin and nothing else (no
    /// configuration VM, no main-thread VM): the harness's model before it
    /// followed Envoy's, for tests written against it.
    pub fn start_workers_only(
        &mut self,
        plugin: &Plugin,
        count: usize,
    ) -> Result<Vec<WorkerId>, HarnessError> {
        (0..count).map(|_| self.start(plugin)).collect()
    }

    /// The main thread's VM, once [`Harness::start_workers`] made one: it
    /// ticks and takes queue notifications; opening a stream on it is an
    /// error. Use its id for `logs`, `tick_period`, `failure`, ...
    pub fn main_thread(&self) -> Option<WorkerId> {
        self.workers
            .iter()
            .position(|vm| vm.role == VmRole::MainThread)
            .map(WorkerId)
    }

    /// Instantiates a VM of `plugin` and runs `on_vm_start` and
    /// `on_configure`, without adding it to the harness.
    fn boot(&mut self, plugin: &Plugin) -> Result<Vm, HarnessError> {
        let index = self.workers.len();
        for cluster in &plugin.clusters {
            self.world.declare_cluster(cluster);
        }
        let seed = vm_seed(plugin.random_seed, self.vms_started);
        self.vms_started += 1;
        let mut vm = Vm::instantiate(plugin, &self.world, index, seed)?;
        let root = vm.state().root_context;
        vm.callback(root, "proxy_on_context_create", (root, 0u32), ())?;
        let vm_config_len = vm.state().vm_config.len() as u32;
        vm.state_mut().config_phase = ConfigPhase::VmStart;
        let started = vm.callback(root, "proxy_on_vm_start", (root, vm_config_len), 1u32);
        vm.state_mut().config_phase = ConfigPhase::None;
        if started? == 0 {
            return Err(HarnessError::VmStartFailed {
                logs: vm.state().logs.clone(),
            });
        }
        let plugin_config_len = vm.state().plugin_config.len() as u32;
        vm.state_mut().config_phase = ConfigPhase::Configure;
        let configured = vm.callback(root, "proxy_on_configure", (root, plugin_config_len), 1u32);
        vm.state_mut().config_phase = ConfigPhase::None;
        if configured? == 0 {
            return Err(HarnessError::ConfigureFailed {
                logs: vm.state().logs.clone(),
            });
        }
        Ok(vm)
    }

    fn add_vm(&mut self, vm: Vm) -> Result<WorkerId, HarnessError> {
        let index = self.workers.len();
        self.workers.push(vm);
        self.settle()?;
        Ok(WorkerId(index))
    }

    fn vm(&self, worker: WorkerId) -> Result<&Vm, HarnessError> {
        self.workers
            .get(worker.0)
            .ok_or(HarnessError::UnknownWorker(worker.0))
    }

    fn vm_mut(&mut self, worker: WorkerId) -> Result<&mut Vm, HarnessError> {
        self.workers
            .get_mut(worker.0)
            .ok_or(HarnessError::UnknownWorker(worker.0))
    }

    fn stream_mut(&mut self, id: StreamId) -> Result<&mut HttpStream, HarnessError> {
        self.vm_mut(id.worker)?
            .state_mut()
            .streams
            .get_mut(&id.context)
            .ok_or(HarnessError::UnknownStream {
                worker: id.worker.0,
                context: id.context,
            })
    }

    /// The state of a stream: headers as the plugin left them, flow, local response.
    pub fn stream(&self, id: StreamId) -> Result<&HttpStream, HarnessError> {
        self.vm(id.worker)?
            .state()
            .streams
            .get(&id.context)
            .ok_or(HarnessError::UnknownStream {
                worker: id.worker.0,
                context: id.context,
            })
    }

    /// Opens a new HTTP stream: `proxy_on_context_create` for a new context.
    pub fn new_stream(&mut self, worker: WorkerId) -> Result<StreamId, HarnessError> {
        let started_nanos = i64::try_from(self.world.clock.wall().as_nanos()).unwrap_or(i64::MAX);
        let vm = self.vm_mut(worker)?;
        if vm.role == VmRole::MainThread {
            return Err(HarnessError::MainThreadServesNoStreams(worker.0));
        }
        let state = vm.state_mut();
        let context = state.next_context;
        state.next_context += 1;
        let root = state.root_context;
        let stream = HttpStream {
            connection_id: u64::from(context),
            started_nanos,
            ..HttpStream::default()
        };
        state.streams.insert(context, stream);
        vm.callback(context, "proxy_on_context_create", (context, root), ())?;
        Ok(StreamId { worker, context })
    }

    /// Sets a property on one stream (`request.*`, `source.address`, anything).
    pub fn set_property(
        &mut self,
        id: StreamId,
        path: &[&str],
        value: impl Into<Vec<u8>>,
    ) -> Result<(), HarnessError> {
        let path = path.iter().map(|s| s.to_string()).collect();
        self.stream_mut(id)?.properties.insert(path, value.into());
        Ok(())
    }

    /// Delivers request headers (`proxy_on_request_headers`).
    pub fn request_headers<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        id: StreamId,
        headers: impl IntoIterator<Item = (K, V)>,
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.deliver_headers(
            id,
            Direction::Request,
            headers.into_iter().collect(),
            end_of_stream,
        )
    }

    /// Delivers a request body chunk (`proxy_on_request_body`). When the
    /// previous body callback paused, the plugin sees everything buffered so far.
    pub fn request_body(
        &mut self,
        id: StreamId,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.deliver_body(id, Direction::Request, chunk, end_of_stream)
    }

    /// Delivers request trailers (`proxy_on_request_trailers`).
    pub fn request_trailers<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        id: StreamId,
        trailers: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Action, HarnessError> {
        self.deliver_trailers(id, Direction::Request, trailers.into_iter().collect())
    }

    /// Delivers response headers (`proxy_on_response_headers`).
    pub fn response_headers<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        id: StreamId,
        headers: impl IntoIterator<Item = (K, V)>,
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.deliver_headers(
            id,
            Direction::Response,
            headers.into_iter().collect(),
            end_of_stream,
        )
    }

    /// Delivers a response body chunk (`proxy_on_response_body`).
    pub fn response_body(
        &mut self,
        id: StreamId,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.deliver_body(id, Direction::Response, chunk, end_of_stream)
    }

    /// Delivers response trailers (`proxy_on_response_trailers`).
    pub fn response_trailers<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        id: StreamId,
        trailers: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Action, HarnessError> {
        self.deliver_trailers(id, Direction::Response, trailers.into_iter().collect())
    }

    fn deliver_headers(
        &mut self,
        id: StreamId,
        direction: Direction,
        map: HeaderMap,
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        let count = map.len() as u32;
        self.stream_mut(id)?.side_mut(direction).headers = Some(map);
        let code = self.vm_mut(id.worker)?.callback(
            id.context,
            direction.headers_callback(),
            (id.context, count, u32::from(end_of_stream)),
            0u32,
        )?;
        self.after_step(id, direction, code)
    }

    fn deliver_body(
        &mut self,
        id: StreamId,
        direction: Direction,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        let side = self.stream_mut(id)?.side_mut(direction);
        let buffering = side.buffering_body;
        let body = side.body.get_or_insert_with(Vec::new);
        if !buffering {
            body.clear();
        }
        body.extend_from_slice(chunk);
        let size = body.len() as u32;
        let vm = self.vm_mut(id.worker)?;
        vm.state_mut().body_end_of_stream = end_of_stream.then_some(direction);
        let code = vm.callback(
            id.context,
            direction.body_callback(),
            (id.context, size, u32::from(end_of_stream)),
            0u32,
        );
        vm.state_mut().body_end_of_stream = None;
        let code = code?;
        let side = self.stream_mut(id)?.side_mut(direction);
        if Action::from_abi(code) == Action::Pause {
            // Envoy's StopIterationAndBuffer: the next call sees it all.
            side.buffering_body = true;
        } else {
            side.forward_body();
        }
        self.after_step(id, direction, code)
    }

    fn deliver_trailers(
        &mut self,
        id: StreamId,
        direction: Direction,
        map: HeaderMap,
    ) -> Result<Action, HarnessError> {
        let count = map.len() as u32;
        self.stream_mut(id)?.side_mut(direction).trailers = Some(map);
        let code = self.vm_mut(id.worker)?.callback(
            id.context,
            direction.trailers_callback(),
            (id.context, count),
            0u32,
        )?;
        self.after_step(id, direction, code)
    }

    fn after_step(
        &mut self,
        id: StreamId,
        direction: Direction,
        code: u32,
    ) -> Result<Action, HarnessError> {
        let action = Action::from_abi(code);
        self.stream_mut(id)?.side_mut(direction).flow = if action == Action::Continue {
            Flow::Flowing
        } else {
            Flow::Paused
        };
        self.settle()?;
        Ok(action)
    }

    /// Ends a stream as Envoy 1.40 does: `proxy_on_log` (the access-log
    /// phase), then `proxy_on_done`, then `proxy_on_delete`. Returns the
    /// stream's final state.
    pub fn finish_stream(&mut self, id: StreamId) -> Result<HttpStream, HarnessError> {
        self.stream(id)?;
        let vm = self.vm_mut(id.worker)?;
        let logged = vm.callback(id.context, "proxy_on_log", (id.context,), ());
        let done = vm.callback(id.context, "proxy_on_done", (id.context,), 1u32);
        let deleted = vm.callback(id.context, "proxy_on_delete", (id.context,), ());
        let mut stream =
            vm.state_mut()
                .streams
                .remove(&id.context)
                .ok_or(HarnessError::UnknownStream {
                    worker: id.worker.0,
                    context: id.context,
                })?;
        logged?;
        done?;
        deleted?;
        stream.finished = true;
        self.settle()?;
        Ok(stream)
    }

    /// Applies what plugins asked for during callbacks, in Envoy's order:
    /// deferred resumes and local replies, then queue notifications.
    fn settle(&mut self) -> Result<(), HarnessError> {
        for _ in 0..CHAIN_LIMIT {
            let mut progressed = false;
            for index in 0..self.workers.len() {
                progressed |= self.settle_streams(WorkerId(index))?;
            }
            progressed |= self.answer_new_callouts()?;
            progressed |= self.deliver_stray_grpc_closes()?;
            progressed |= self.answer_new_grpc()?;
            let pending = self.world.shared().pending_queue_ready.pop_front();
            if let Some((worker, root, token)) = pending {
                progressed = true;
                if let Some(vm) = self.workers.get_mut(worker)
                    && vm.failed.is_none()
                {
                    vm.callback(root, "proxy_on_queue_ready", (root, token), ())?;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
        Err(HarnessError::Runaway(CHAIN_LIMIT))
    }

    fn answer_new_callouts(&mut self) -> Result<bool, HarnessError> {
        let Some(mut responder) = self.callout_responder.take() else {
            return Ok(false);
        };
        let mut answers = Vec::new();
        for (index, vm) in self.workers.iter_mut().enumerate() {
            for call in vm.state_mut().http_calls.values_mut() {
                if !std::mem::replace(&mut call.offered, true)
                    && let Some(response) = responder(call)
                {
                    answers.push((WorkerId(index), call.token, response));
                }
            }
        }
        self.callout_responder = Some(responder);
        let answered = !answers.is_empty();
        for (worker, token, response) in answers {
            self.respond_http_call(worker, token, response)?;
        }
        Ok(answered)
    }

    fn settle_streams(&mut self, worker: WorkerId) -> Result<bool, HarnessError> {
        let mut progressed = false;
        let contexts: Vec<u32> = self.vm(worker)?.state().streams.keys().copied().collect();
        for context in contexts {
            let id = StreamId { worker, context };
            let stream = self.stream_mut(id)?;
            stream.request.apply_resume();
            stream.response.apply_resume();
            if stream.local_response.is_some() && !stream.local_response_delivered {
                stream.local_response_delivered = true;
                progressed = true;
                self.deliver_local_response(id)?;
            }
        }
        Ok(progressed)
    }

    /// Envoy runs a local reply through the encoder filters, this plugin's
    /// response callbacks included: `:status`, the plugin's headers,
    /// `content-length` and `content-type: text/plain` when there is a body,
    /// and no `content-type` at all when there is none. To a gRPC request
    /// (`content-type: application/grpc...`) the reply is gRPC instead
    /// (`Utility::sendLocalReply`, source/common/http/utility.cc): `:status`
    /// 200, `content-type: application/grpc`, `grpc-status` (the plugin's
    /// header if it set one, else its gRPC status argument, else mapped from
    /// the HTTP status), `grpc-message` the body, and no body.
    fn deliver_local_response(&mut self, id: StreamId) -> Result<(), HarnessError> {
        let Some(mut local) = self.stream(id)?.local_response.clone() else {
            return Ok(());
        };
        let grpc_request = self
            .stream(id)?
            .request_headers()
            .and_then(|h| h.get("content-type"))
            .is_some_and(|t| t.starts_with("application/grpc"));
        let mut headers = HeaderMap::new();
        let status = if grpc_request { 200 } else { local.status };
        headers.add(":status", &status.to_string());
        for (k, v) in &local.headers {
            headers.add(k, v);
        }
        if grpc_request {
            headers.replace("content-type", "application/grpc");
            if headers.get("grpc-status").is_none() {
                let code = local
                    .grpc_status
                    .filter(|code| *code >= 0)
                    .unwrap_or_else(|| grpc_status_for_http(local.status));
                headers.add("grpc-status", &code.to_string());
            }
            if !local.body.is_empty() {
                let message = grpc_percent_encode(&local.body);
                headers.replace("grpc-message", &message);
            }
            local.body.clear();
        } else if local.body.is_empty() {
            // Envoy drops the content type of a reply with no body, even one
            // the plugin asked for (test-harness/ENVOY-FACTS.md).
            headers.remove("content-type");
        } else {
            headers.replace("content-length", &local.body.len().to_string());
            if headers.get("content-type").is_none() {
                headers.add("content-type", "text/plain");
            }
        }
        let stream = self.stream_mut(id)?;
        // The request stops here: nothing goes upstream.
        stream.request.flow = Flow::Paused;
        stream.response.buffering_body = false;
        let has_body = !local.body.is_empty();
        self.deliver_headers(id, Direction::Response, headers, !has_body)?;
        if has_body {
            self.response_body(id, &local.body, true)?;
        }
        Ok(())
    }

    /// The current virtual wall-clock time.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + self.world.clock.wall()
    }

    fn next_event(&self) -> Option<(Duration, Event)> {
        let mut best: Option<(Duration, Event)> = None;
        for (index, vm) in self.workers.iter().enumerate() {
            if vm.failed.is_some() {
                continue;
            }
            let state = vm.state();
            if let Some(at) = state.next_tick
                && best.as_ref().is_none_or(|(t, _)| at < *t)
            {
                best = Some((at, Event::Tick(index)));
            }
            for call in state.http_calls.values() {
                let Some(deadline) = call.deadline else {
                    continue;
                };
                if best.as_ref().is_none_or(|(t, _)| deadline < *t) {
                    best = Some((deadline, Event::CalloutTimeout(index, call.token)));
                }
            }
            for call in state.grpc_calls.values() {
                let Some(deadline) = call.deadline else {
                    continue;
                };
                if best.as_ref().is_none_or(|(t, _)| deadline < *t) {
                    best = Some((deadline, Event::GrpcTimeout(index, call.token)));
                }
            }
        }
        // At equal times, ticks and timeouts go first: a fixed order, so
        // runs repeat (Envoy's own order for a tie is not modelled).
        if let Some((due, index)) = self.next_delayed_grpc()
            && best.as_ref().is_none_or(|(t, _)| due < *t)
        {
            best = Some((due, Event::GrpcAnswer(index)));
        }
        best
    }

    /// Moves the virtual clock forward by `by`, firing every tick and callout
    /// timeout that falls due, in time order, on every worker.
    pub fn advance(&mut self, by: Duration) -> Result<(), HarnessError> {
        let target = self.world.clock.monotonic() + by;
        while let Some((at, event)) = self.next_event() {
            if at > target {
                break;
            }
            self.fire(at, event)?;
        }
        let now = self.world.clock.monotonic();
        self.world.clock.advance(target.saturating_sub(now));
        Ok(())
    }

    /// Moves the clock to the next tick or callout deadline and fires it.
    /// Returns false when nothing is scheduled.
    pub fn advance_to_next_event(&mut self) -> Result<bool, HarnessError> {
        match self.next_event() {
            Some((at, event)) => {
                self.fire(at, event)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn fire(&mut self, at: Duration, event: Event) -> Result<(), HarnessError> {
        let now = self.world.clock.monotonic();
        self.world.clock.advance(at.saturating_sub(now));
        match event {
            Event::Tick(index) => self.run_tick(WorkerId(index), at)?,
            Event::CalloutTimeout(index, token) => {
                let vm = self.vm_mut(WorkerId(index))?;
                let Some(call) = vm.state_mut().http_calls.remove(&token) else {
                    return Ok(());
                };
                // Envoy's async client answers a timeout itself, as a
                // response: 504, `upstream request timeout`.
                vm.state_mut().last_status = (0, String::new());
                let body = CALLOUT_TIMEOUT_BODY.as_bytes().to_vec();
                let headers = [
                    (":status", "504".to_string()),
                    ("content-length", body.len().to_string()),
                    ("content-type", "text/plain".to_string()),
                ]
                .into_iter()
                .collect();
                let timed_out = DeliveredCallout {
                    headers,
                    body,
                    trailers: HeaderMap::new(),
                };
                self.deliver_callout(WorkerId(index), call, timed_out)?;
            }
            Event::GrpcTimeout(index, token) => self.grpc_timeout(WorkerId(index), token)?,
            Event::GrpcAnswer(index) => self.deliver_delayed_grpc(index)?,
        }
        self.settle()
    }

    /// `proxy_on_tick` on `worker`'s root context, as its timer fires at
    /// `at`: Envoy re-arms after the callback returns, unless the plugin
    /// set a new period (or turned the timer off) inside it.
    fn run_tick(&mut self, worker: WorkerId, at: Duration) -> Result<(), HarnessError> {
        let vm = self.vm_mut(worker)?;
        let root = vm.state().root_context;
        vm.state_mut().next_tick = None;
        let result = vm.callback(root, "proxy_on_tick", (root,), ());
        let state = vm.state_mut();
        if state.next_tick.is_none() && !state.tick_period.is_zero() {
            state.next_tick = Some(at + state.tick_period);
        }
        result
    }

    /// Fires `worker`'s tick now, without moving the clock, as if its timer
    /// fell due this instant: `proxy_on_tick`, then the timer re-armed a
    /// full period from now. For a test that wants one tick exactly where
    /// it says so; `advance` fires ticks as they fall due.
    pub fn tick(&mut self, worker: WorkerId) -> Result<(), HarnessError> {
        let now = self.world.clock.monotonic();
        self.run_tick(worker, now)?;
        self.settle()
    }

    /// Calls `proxy_on_queue_ready` for queue `token` on `worker`'s root
    /// context now (Envoy posts one per enqueue to the queue's owner; the
    /// harness delivers those itself after each callback). For a test that
    /// drives a plugin's queue handling by hand.
    pub fn queue_ready(&mut self, worker: WorkerId, token: u32) -> Result<(), HarnessError> {
        let vm = self.vm_mut(worker)?;
        let root = vm.state().root_context;
        vm.callback(root, "proxy_on_queue_ready", (root, token), ())?;
        self.settle()
    }

    /// Callouts waiting for an answer on `worker`, oldest first.
    pub fn http_calls(&self, worker: WorkerId) -> Result<Vec<&HttpCall>, HarnessError> {
        Ok(self.vm(worker)?.state().http_calls.values().collect())
    }

    /// Answers a callout: `proxy_on_http_call_response` with the response's
    /// headers, body and trailers readable during the call.
    pub fn respond_http_call(
        &mut self,
        worker: WorkerId,
        token: u32,
        response: CalloutResponse,
    ) -> Result<(), HarnessError> {
        let vm = self.vm_mut(worker)?;
        let call = vm
            .state_mut()
            .http_calls
            .remove(&token)
            .ok_or(HarnessError::UnknownCallout(token))?;
        vm.state_mut().last_status = (0, String::new());
        let delivered = DeliveredCallout {
            headers: response.headers.into_iter().collect(),
            body: response.body,
            trailers: response.trailers.into_iter().collect(),
        };
        self.deliver_callout(worker, call, delivered)?;
        self.settle()
    }

    fn deliver_callout(
        &mut self,
        worker: WorkerId,
        call: HttpCall,
        delivered: DeliveredCallout,
    ) -> Result<(), HarnessError> {
        let counts = (
            delivered.headers.len() as u32,
            delivered.body.len() as u32,
            delivered.trailers.len() as u32,
        );
        let vm = self.vm_mut(worker)?;
        vm.state_mut().delivering_callout = Some(delivered);
        // Envoy makes every callout on the root context and answers it
        // there (`http_call` in proxy-wasm-cpp-host's exports.cc takes
        // `root_context()`); the SDK finds the stream by the token.
        let root = vm.state().root_context;
        let result = vm.callback(
            root,
            "proxy_on_http_call_response",
            (root, call.token, counts.0, counts.1, counts.2),
            (),
        );
        vm.state_mut().delivering_callout = None;
        result
    }

    /// Calls `proxy_on_done` on the root context, as Envoy does when the
    /// plugin is removed. Returns whether the plugin finished at once (true)
    /// or asked to finish later with `proxy_done`.
    pub fn shutdown(&mut self, worker: WorkerId) -> Result<bool, HarnessError> {
        let vm = self.vm_mut(worker)?;
        let root = vm.state().root_context;
        let done = vm.callback(root, "proxy_on_done", (root,), 1u32)? != 0;
        Ok(done || vm.state().root_done)
    }

    /// Every log line `worker` kept, in order.
    pub fn logs(&self, worker: WorkerId) -> Result<&[LogEntry], HarnessError> {
        Ok(&self.vm(worker)?.state().logs)
    }

    /// The messages logged at exactly `level`.
    pub fn logs_at(&self, worker: WorkerId, level: LogLevel) -> Result<Vec<&str>, HarnessError> {
        Ok(self
            .logs(worker)?
            .iter()
            .filter(|l| l.level == level)
            .map(|l| l.message.as_str())
            .collect())
    }

    /// What the plugin wrote to stdout and stderr through WASI.
    pub fn stdio(&self, worker: WorkerId) -> Result<(String, String), HarnessError> {
        let vm = self.vm(worker)?;
        Ok((
            String::from_utf8_lossy(&vm.stdout.contents()).into_owned(),
            String::from_utf8_lossy(&vm.stderr.contents()).into_owned(),
        ))
    }

    /// Calls the plugin made to foreign functions (`clear_route_cache`, ...).
    pub fn foreign_calls(&self, worker: WorkerId) -> Result<&[ForeignCall], HarnessError> {
        Ok(&self.vm(worker)?.state().foreign_calls)
    }

    /// Why a worker failed (a trap), if it did.
    pub fn failure(&self, worker: WorkerId) -> Result<Option<&str>, HarnessError> {
        Ok(self.vm(worker)?.failed.as_deref())
    }

    /// A metric by the name the plugin defined it with (Envoy shows it with a
    /// `wasmcustom.` prefix).
    pub fn metric(&self, name: &str) -> Option<Metric> {
        self.world.stats().metrics.get(name).cloned()
    }

    /// A counter's value, or `None` if no counter has that name.
    pub fn counter(&self, name: &str) -> Option<u64> {
        match self.metric(name)? {
            Metric::Counter(value) => Some(value),
            _ => None,
        }
    }

    /// A gauge's value, or `None` if no gauge has that name.
    pub fn gauge(&self, name: &str) -> Option<i64> {
        match self.metric(name)? {
            Metric::Gauge(value) => Some(value),
            _ => None,
        }
    }

    /// Every metric, by name.
    pub fn metrics(&self) -> Vec<(String, Metric)> {
        self.world
            .stats()
            .metrics
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A shared-data entry of VM id `vm_id`: value and CAS.
    pub fn shared_data(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        self.world.shared().get(vm_id, key).ok()
    }

    /// Writes a shared-data entry as another VM would (CAS 0: unconditionally).
    pub fn set_shared_data(&self, vm_id: &str, key: &str, value: &[u8]) {
        // CAS 0 never mismatches.
        let _ = self.world.shared().set(vm_id, key, value, 0);
    }

    /// Every shared-data entry of VM id `vm_id`.
    pub fn shared_data_entries(&self, vm_id: &str) -> Vec<(String, Vec<u8>)> {
        self.world
            .shared()
            .snapshot(vm_id)
            .into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect()
    }

    /// The tick period the plugin set on `worker` (zero when off).
    pub fn tick_period(&self, worker: WorkerId) -> Result<Duration, HarnessError> {
        Ok(self.vm(worker)?.state().tick_period)
    }

    /// One whole exchange: the request goes through the plugin; if it gets
    /// past, `upstream` answers it and the response comes back through the
    /// plugin. Pauses are waited out on the virtual clock (ticks and callout
    /// timeouts fire); a stream still paused after an hour of virtual time is
    /// an error.
    pub fn exchange(
        &mut self,
        worker: WorkerId,
        request: Request,
        upstream: impl FnOnce(&UpstreamRequest) -> Response,
    ) -> Result<Exchange, HarnessError> {
        let id = self.new_stream(worker)?;
        let Request {
            mut headers,
            body,
            trailers,
            properties,
            chunks,
        } = request;
        for (path, value) in properties {
            self.stream_mut(id)?.properties.insert(path, value);
        }
        if self.connection_manager_headers {
            self.add_connection_manager_headers(&mut headers);
        }
        let headers_end = body.is_none() && trailers.is_none();
        self.request_headers(id, headers.pairs().iter().cloned(), headers_end)?;
        self.wait_request(id, "request headers")?;
        if let Some(body) = &body {
            self.exchange_body(id, Direction::Request, body, &chunks, trailers.is_none())?;
        }
        if let Some(trailers) = &trailers
            && !self.is_over(id)?
        {
            self.request_trailers(id, trailers.pairs().iter().cloned())?;
            self.wait_request(id, "request trailers")?;
        }
        let mut upstream_request = None;
        if !self.is_over(id)? {
            let stream = self.stream(id)?;
            let seen = UpstreamRequest {
                headers: stream.request.headers.clone().unwrap_or_default(),
                body: stream.request.forwarded_body.clone(),
                trailers: stream.request.trailers.clone(),
            };
            check_length("request", &seen.headers, &seen.body)?;
            let response = upstream(&seen);
            upstream_request = Some(seen);
            let Response {
                headers,
                body,
                trailers,
            } = response;
            let end = body.is_empty() && trailers.is_none();
            self.deliver_headers(id, Direction::Response, headers, end)?;
            self.wait_response(id, "response headers")?;
            if !body.is_empty() {
                self.exchange_body(id, Direction::Response, &body, &[], trailers.is_none())?;
            }
            if let Some(trailers) = trailers
                && !self.stream(id)?.closed()
            {
                self.response_trailers(id, trailers.pairs().iter().cloned())?;
                self.wait_response(id, "response trailers")?;
            }
        } else if self.stream(id)?.local_response.is_some() {
            self.wait_response(id, "local response")?;
        }
        let stream = self.finish_stream(id)?;
        if !stream.closed()
            && let Some(headers) = stream.response_headers()
        {
            check_length("response", headers, stream.forwarded_response_body())?;
        }
        Ok(Exchange::new(stream, upstream_request))
    }

    /// What Envoy's connection manager adds to a request before the filter
    /// chain (`ConnectionManagerUtility::mutateRequestHeaders`,
    /// source/common/http/conn_manager_utility.cc), each only when absent:
    /// `x-forwarded-proto` from the scheme and a UUID `x-request-id`.
    fn add_connection_manager_headers(&mut self, headers: &mut HeaderMap) {
        if headers.get("x-forwarded-proto").is_none() {
            let scheme = headers.get(":scheme").unwrap_or("http").to_string();
            headers.add("x-forwarded-proto", &scheme);
        }
        if headers.get("x-request-id").is_none() {
            let id = uuid_v4(&mut self.request_ids);
            headers.add("x-request-id", &id);
        }
    }

    /// Delivers a whole body in `exchange`, ended as [`BodyEnd`] says, and
    /// waits out the plugin's pauses after each callback.
    fn exchange_body(
        &mut self,
        id: StreamId,
        direction: Direction,
        body: &[u8],
        split: &[usize],
        last: bool,
    ) -> Result<(), HarnessError> {
        let mut chunks: Vec<(&[u8], bool)> = Vec::new();
        // The pieces before the last one never end the stream.
        let mut rest = body;
        if let Some((_, leading)) = split.split_last() {
            for &len in leading {
                let (piece, tail) = rest.split_at(len.min(rest.len()));
                chunks.push((piece, false));
                rest = tail;
            }
        }
        if last && self.body_end == BodyEnd::SeparateEmptyCallback {
            chunks.push((rest, false));
            chunks.push((&[], true));
        } else {
            chunks.push((rest, last));
        }
        let count = chunks.len();
        for (index, (chunk, end_of_stream)) in chunks.into_iter().enumerate() {
            // A pause on data that is not the last only buffers it: Envoy
            // keeps reading and delivers the next chunk. Only the last
            // callback's pause holds the stream.
            let last_chunk = index + 1 == count;
            match direction {
                Direction::Request => {
                    if self.is_over(id)? {
                        return Ok(());
                    }
                    self.request_body(id, chunk, end_of_stream)?;
                    if last_chunk {
                        self.wait_request(id, "request body")?;
                    }
                }
                Direction::Response => {
                    if self.stream(id)?.closed() {
                        return Ok(());
                    }
                    self.response_body(id, chunk, end_of_stream)?;
                    if last_chunk {
                        self.wait_response(id, "response body")?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the request will go no further: answered locally or reset.
    fn is_over(&self, id: StreamId) -> Result<bool, HarnessError> {
        let stream = self.stream(id)?;
        Ok(stream.local_response.is_some() || stream.closed())
    }

    fn wait_request(&mut self, id: StreamId, phase: &'static str) -> Result<(), HarnessError> {
        self.wait(id, phase, |s| {
            s.request.flow != Flow::Paused || s.local_response.is_some() || s.closed()
        })
    }

    fn wait_response(&mut self, id: StreamId, phase: &'static str) -> Result<(), HarnessError> {
        self.wait(id, phase, |s| s.response.flow != Flow::Paused || s.closed())
    }

    fn wait(
        &mut self,
        id: StreamId,
        phase: &'static str,
        ready: impl Fn(&HttpStream) -> bool,
    ) -> Result<(), HarnessError> {
        let started = self.world.clock.monotonic();
        while !ready(self.stream(id)?) {
            let waited = self.world.clock.monotonic() - started;
            let next = self.next_event().map(|(at, _)| at);
            match next {
                Some(at) if at - started <= STALL_LIMIT => {
                    self.advance_to_next_event()?;
                }
                _ => return Err(HarnessError::Stalled { phase, waited }),
            }
        }
        Ok(())
    }
}
