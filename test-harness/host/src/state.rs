//! Per-VM host state: contexts, HTTP streams, timers, callouts and logs.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use wasmtime::{Memory, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::grpc::GrpcCall;
use crate::headers::HeaderMap;
use crate::types::{LogLevel, Status};
use crate::world::World;

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub level: LogLevel,
    pub message: String,
}

/// A response the plugin sent with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    /// The extra headers the plugin asked for, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Envoy's response code details (`proxy_send_local_response`'s details argument).
    pub details: String,
    /// The gRPC status, when the plugin gave one (`-1` in the ABI means none).
    pub grpc_status: Option<i32>,
}

/// How a stream direction stands after the plugin's last word on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flow {
    /// Nothing has been delivered in this direction yet.
    #[default]
    NotStarted,
    /// The last callback returned `Continue`, or the plugin resumed it.
    Flowing,
    /// The last callback returned `Pause` and the plugin has not resumed it.
    Paused,
}

/// A call the plugin made with `proxy_call_foreign_function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignCall {
    pub name: String,
    pub arguments: Vec<u8>,
    /// The context the call was made for.
    pub context_id: u32,
}

/// An HTTP callout made with `proxy_http_call`, waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub token: u32,
    pub upstream: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// The timeout the plugin asked for; zero means none (Envoy's
    /// `Context::httpCall` sets no timeout for 0).
    pub timeout: Duration,
    /// The context the SDK will resume with the answer.
    pub context_id: u32,
    /// When the callout times out on the virtual clock; `None`: never.
    pub(crate) deadline: Option<Duration>,
    /// Whether the harness's callout responder has seen it.
    pub(crate) offered: bool,
}

/// The answer a test gives to a callout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CalloutResponse {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl CalloutResponse {
    /// A response with a `:status` and a body.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            headers: vec![(":status".into(), status.to_string())],
            body: body.into(),
            trailers: Vec::new(),
        }
    }

    pub fn header(mut self, key: &str, value: &str) -> Self {
        self.headers.push((key.to_string(), value.to_string()));
        self
    }
}

/// One direction of a stream: the request (Envoy's decoding path) or the
/// response (encoding).
#[derive(Debug, Clone, Default)]
pub(crate) struct Side {
    pub(crate) headers: Option<HeaderMap>,
    pub(crate) trailers: Option<HeaderMap>,
    /// The body the plugin sees: the current chunk, or everything buffered
    /// so far when the previous body callback paused.
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) buffering_body: bool,
    pub(crate) flow: Flow,
    /// What has gone past the plugin (upstream for the request, to the
    /// client for the response).
    pub(crate) forwarded_body: Vec<u8>,
    pub(crate) closed: bool,
    /// A `proxy_continue_stream` made during the current callback; Envoy
    /// applies it once the callback returns.
    pub(crate) pending_resume: bool,
    pub(crate) resumes: u32,
}

impl Side {
    /// Sends what the plugin holds onwards, as Envoy does on `Continue`.
    pub(crate) fn forward_body(&mut self) {
        self.buffering_body = false;
        if let Some(body) = self.body.take() {
            self.forwarded_body.extend_from_slice(&body);
        }
    }

    /// Applies a deferred continue: a paused direction flows again and
    /// releases what it buffered.
    pub(crate) fn apply_resume(&mut self) {
        if std::mem::take(&mut self.pending_resume) && self.flow == Flow::Paused {
            self.flow = Flow::Flowing;
            self.resumes += 1;
            if self.buffering_body {
                self.forward_body();
            }
        }
    }
}

/// Which side of a stream a callback or hostcall is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

impl Direction {
    pub(crate) fn headers_callback(self) -> &'static str {
        match self {
            Direction::Request => "proxy_on_request_headers",
            Direction::Response => "proxy_on_response_headers",
        }
    }

    pub(crate) fn body_callback(self) -> &'static str {
        match self {
            Direction::Request => "proxy_on_request_body",
            Direction::Response => "proxy_on_response_body",
        }
    }

    pub(crate) fn trailers_callback(self) -> &'static str {
        match self {
            Direction::Request => "proxy_on_request_trailers",
            Direction::Response => "proxy_on_response_trailers",
        }
    }
}

/// Everything the host knows about one HTTP stream (one plugin context).
#[derive(Debug, Clone, Default)]
pub struct HttpStream {
    pub(crate) request: Side,
    pub(crate) response: Side,
    pub(crate) local_response: Option<LocalResponse>,
    pub(crate) local_response_delivered: bool,
    pub(crate) properties: HashMap<Vec<String>, Vec<u8>>,
    pub(crate) finished: bool,
    /// The downstream connection's id (`connection_id`, `connection.id`):
    /// each stream comes on a connection of its own.
    pub(crate) connection_id: u64,
    /// The virtual wall-clock time the stream started (`request.time`), in
    /// nanoseconds since the epoch.
    pub(crate) started_nanos: i64,
}

impl HttpStream {
    pub(crate) fn side_mut(&mut self, direction: Direction) -> &mut Side {
        match direction {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        }
    }

    /// The request headers as they stand now (after the plugin's changes).
    pub fn request_headers(&self) -> Option<&HeaderMap> {
        self.request.headers.as_ref()
    }
    pub fn request_trailers(&self) -> Option<&HeaderMap> {
        self.request.trailers.as_ref()
    }
    pub fn response_headers(&self) -> Option<&HeaderMap> {
        self.response.headers.as_ref()
    }
    pub fn response_trailers(&self) -> Option<&HeaderMap> {
        self.response.trailers.as_ref()
    }
    /// The request body buffer as the plugin last left it.
    pub fn request_body(&self) -> Option<&[u8]> {
        self.request.body.as_deref()
    }
    pub fn response_body(&self) -> Option<&[u8]> {
        self.response.body.as_deref()
    }
    /// The local response the plugin sent, if any.
    pub fn local_response(&self) -> Option<&LocalResponse> {
        self.local_response.as_ref()
    }
    pub fn request_flow(&self) -> Flow {
        self.request.flow
    }
    pub fn response_flow(&self) -> Flow {
        self.response.flow
    }
    /// How many times the plugin resumed the request (`proxy_continue_stream`).
    pub fn request_resumes(&self) -> u32 {
        self.request.resumes
    }
    pub fn response_resumes(&self) -> u32 {
        self.response.resumes
    }
    /// The request body that went past the plugin, upstream.
    pub fn forwarded_request_body(&self) -> &[u8] {
        &self.request.forwarded_body
    }
    /// The response body that went past the plugin, to the client.
    pub fn forwarded_response_body(&self) -> &[u8] {
        &self.response.forwarded_body
    }
    /// Whether the plugin closed (reset) the stream.
    pub fn closed(&self) -> bool {
        self.request.closed || self.response.closed
    }
}

/// The callout answer being delivered, visible through the
/// `HttpCallResponse*` maps and buffer during `proxy_on_http_call_response`.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeliveredCallout {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: HeaderMap,
}

/// The gRPC metadata and message readable during a gRPC callback
/// (`GrpcReceiveInitialMetadata`, `GrpcReceiveTrailingMetadata`,
/// `GrpcReceiveBuffer`).
#[derive(Debug, Clone, Default)]
pub(crate) struct DeliveredGrpc {
    pub(crate) initial_metadata: Option<HeaderMap>,
    pub(crate) trailing_metadata: Option<HeaderMap>,
    pub(crate) message: Option<Vec<u8>>,
}

/// Which configuration buffer is readable right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ConfigPhase {
    #[default]
    None,
    VmStart,
    Configure,
}

/// Host state for one VM (one Envoy worker's copy of the plugin).
#[derive(Debug)]
pub(crate) struct VmState {
    pub(crate) worker: usize,
    pub(crate) vm_id: String,
    pub(crate) root_id: String,
    pub(crate) plugin_name: String,
    pub(crate) vm_config: Vec<u8>,
    pub(crate) plugin_config: Vec<u8>,
    pub(crate) config_phase: ConfigPhase,
    pub(crate) root_context: u32,
    pub(crate) next_context: u32,
    pub(crate) effective_context: u32,
    pub(crate) streams: BTreeMap<u32, HttpStream>,
    pub(crate) logs: Vec<LogEntry>,
    pub(crate) log_level: LogLevel,
    pub(crate) tick_period: Duration,
    pub(crate) next_tick: Option<Duration>,
    pub(crate) metric_ids: HashMap<u32, String>,
    pub(crate) next_metric_id: u32,
    pub(crate) http_calls: BTreeMap<u32, HttpCall>,
    /// The last callout token of each kind: Envoy numbers HTTP callouts
    /// `0 mod 4`, gRPC calls `1 mod 4`, gRPC streams `2 mod 4`, counting up
    /// by 4 per VM (`WasmBase::nextHttpCallId` and friends).
    pub(crate) last_http_token: u32,
    pub(crate) last_grpc_call_token: u32,
    pub(crate) last_grpc_stream_token: u32,
    pub(crate) delivering_callout: Option<DeliveredCallout>,
    /// Open gRPC calls and streams, by token.
    pub(crate) grpc_calls: BTreeMap<u32, GrpcCall>,
    /// What the gRPC callback running now may read.
    pub(crate) delivering_grpc: DeliveredGrpc,
    /// `proxy_on_grpc_close` calls Envoy owes for tokens it never handed
    /// out (token, status, message): see `hostcalls::grpc`.
    pub(crate) stray_grpc_closes: Vec<(u32, u32, String)>,
    pub(crate) foreign_calls: Vec<ForeignCall>,
    pub(crate) vm_properties: HashMap<Vec<String>, Vec<u8>>,
    pub(crate) node_metadata: BTreeMap<String, String>,
    pub(crate) node_id: String,
    pub(crate) node_cluster: String,
    pub(crate) route: crate::plugin::RouteInfo,
    pub(crate) destination_address: String,
    pub(crate) root_done: bool,
    /// What `proxy_get_status` reports: set when a callout fails.
    pub(crate) last_status: (u32, String),
    pub(crate) source_address: String,
    /// The direction whose body callback with `end_of_stream` is running:
    /// while it is, changing that direction's missing trailers creates them.
    pub(crate) body_end_of_stream: Option<Direction>,
}

impl VmState {
    pub(crate) fn stream_mut(&mut self, context: u32) -> Option<&mut HttpStream> {
        self.streams.get_mut(&context)
    }

    pub(crate) fn effective_stream_mut(&mut self) -> Result<&mut HttpStream, Status> {
        let context = self.effective_context;
        self.streams.get_mut(&context).ok_or(Status::BadArgument)
    }

    pub(crate) fn effective_stream(&self) -> Result<&HttpStream, Status> {
        self.streams
            .get(&self.effective_context)
            .ok_or(Status::BadArgument)
    }

    pub(crate) fn context_exists(&self, context: u32) -> bool {
        context == self.root_context || self.streams.contains_key(&context)
    }
}

/// The `T` of the wasmtime `Store`: WASI, the shared world and this VM.
pub(crate) struct HostState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) world: World,
    pub(crate) vm: VmState,
    pub(crate) memory: Option<Memory>,
    pub(crate) allocate: Option<TypedFunc<u32, u32>>,
}
