//! A fixture plugin that touches every proxy-wasm hostcall, so the harness
//! can be tested against it and cross-checked against a real Envoy.
//!
//! Behaviour is driven by the request: each `x-test-op` header value is one
//! operation, `verb arg...`, run in order in `on_http_request_headers`. Every
//! result is made observable (a request header the upstream sees, a response
//! header, a local response, a metric, a log line) so a test can compare the
//! harness and Envoy on what they expose, never on internals.
//!
//! The plugin configuration (JSON) sets up the root context:
//! `{"tickMs": 10, "queue": "name", "failConfigure": false}`.
//!
//! The gRPC ops (`grpc-call`, `grpc-stream`, `grpc-raw`, `grpc-last-status`)
//! call the ABI directly and record what each gRPC callback saw in request
//! headers (`x-grpc-status`, `x-grpc-body`, `x-grpc-message`, `x-grpc-events`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(TestRoot::default()) });
}}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestConfig {
    #[serde(default)]
    tick_ms: u64,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    fail_configure: bool,
}

/// A stream parked by `pause-ms`, resumed by the tick once due.
#[derive(Debug)]
struct Parked {
    context_id: u32,
    due: SystemTime,
}

#[derive(Debug, Default)]
struct Shared {
    parked: Vec<Parked>,
    requests_metric: Option<u32>,
}

#[derive(Default)]
struct TestRoot {
    shared: Rc<RefCell<Shared>>,
    ticks_metric: Option<u32>,
    queue_metric: Option<u32>,
    /// Whether this root context has counted itself in the shared-data key
    /// `root-contexts-ticked` (once, at its first tick): how a test sees how
    /// many root contexts tick in a host.
    counted_tick: bool,
}

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

impl Context for TestRoot {}

impl RootContext for TestRoot {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        let config = self.get_vm_configuration().unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        log(LogLevel::Info, &format!("vm_start configuration={text}"));
        text != "fail"
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        let config: TestConfig = if raw.is_empty() {
            TestConfig::default()
        } else {
            match serde_json::from_slice(&raw) {
                Ok(config) => config,
                Err(e) => {
                    log(
                        LogLevel::Error,
                        &format!("invalid plugin configuration: {e}"),
                    );
                    return false;
                }
            }
        };
        if config.fail_configure {
            log(
                LogLevel::Error,
                "failConfigure is set: refusing the configuration",
            );
            return false;
        }
        if config.tick_ms > 0 {
            self.set_tick_period(Duration::from_millis(config.tick_ms));
        }
        if let Some(queue) = &config.queue {
            let token = self.register_shared_queue(queue);
            log(
                LogLevel::Info,
                &format!("registered queue {queue} token={token}"),
            );
        }
        self.ticks_metric = hostcalls::define_metric(MetricType::Counter, "test_plugin.ticks").ok();
        self.queue_metric =
            hostcalls::define_metric(MetricType::Counter, "test_plugin.queue_items").ok();
        self.shared.borrow_mut().requests_metric =
            hostcalls::define_metric(MetricType::Counter, "test_plugin.requests").ok();
        // Every VM that runs `on_configure` counts itself, so a test sees
        // how many VMs the host configures.
        if let Ok(id) = hostcalls::define_metric(MetricType::Counter, "test_plugin.configures") {
            let _ = hostcalls::increment_metric(id, 1);
        }
        log(LogLevel::Info, "configured");
        true
    }

    fn on_tick(&mut self) {
        if let Some(id) = self.ticks_metric {
            let _ = hostcalls::increment_metric(id, 1);
        }
        if !self.counted_tick {
            self.counted_tick = true;
            increment_shared("root-contexts-ticked");
        }
        let now = self.get_current_time();
        let due: Vec<u32> = {
            let mut shared = self.shared.borrow_mut();
            let (due, waiting): (Vec<Parked>, Vec<Parked>) =
                shared.parked.drain(..).partition(|p| p.due <= now);
            shared.parked = waiting;
            due.into_iter().map(|p| p.context_id).collect()
        };
        for context_id in due {
            if hostcalls::set_effective_context(context_id).is_ok() {
                let _ = hostcalls::resume_http_request();
            }
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(item)) = self.dequeue_shared_queue(queue_id) {
            log(
                LogLevel::Info,
                &format!("queue item: {}", String::from_utf8_lossy(&item)),
            );
            if let Some(id) = self.queue_metric {
                let _ = hostcalls::increment_metric(id, 1);
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(TestStream {
            context_id,
            shared: Rc::clone(&self.shared),
            response_headers: Vec::new(),
            buffer_request_body: false,
            buffer_response_body: None,
            replace_request_body: None,
            record_body_calls: false,
            request_body_calls: Vec::new(),
            response_body_calls: Vec::new(),
            trailer_at_end: false,
            record_end_order: false,
            grpc_events: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct TestStream {
    context_id: u32,
    shared: Rc<RefCell<Shared>>,
    response_headers: Vec<(String, String)>,
    buffer_request_body: bool,
    replace_request_body: Option<String>,
    buffer_response_body: Option<String>,
    /// `body-calls`: record each body callback as `size/end_of_stream`.
    record_body_calls: bool,
    request_body_calls: Vec<String>,
    response_body_calls: Vec<String>,
    /// `trailer-at-end`: add a trailer from the last body callback of each
    /// direction and record the result.
    trailer_at_end: bool,
    /// `end-order`: append each end-of-stream callback's name to the
    /// shared-data key `end-order`.
    record_end_order: bool,
    /// What the gRPC stream callbacks saw, in order (`grpc-stream`).
    grpc_events: Vec<String>,
}

impl Context for TestStream {
    fn on_done(&mut self) -> bool {
        if self.record_end_order {
            append_shared("end-order", "done");
        }
        true
    }

    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_else(|| "none".to_string());
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        self.set_http_request_header("x-callout-status", Some(&status));
        self.set_http_request_header("x-callout-body", Some(&String::from_utf8_lossy(&body)));
        self.resume_http_request();
    }

    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        let body = hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.set_http_request_header("x-grpc-status", Some(&status_code.to_string()));
        self.set_http_request_header("x-grpc-body", Some(&String::from_utf8_lossy(&body)));
        self.set_http_request_header("x-grpc-message", Some(&grpc_status_message()));
        self.set_http_request_header("x-grpc-token-kind", Some(&(token_id % 4).to_string()));
        self.resume_http_request();
    }

    fn on_grpc_stream_initial_metadata(&mut self, _token_id: u32, num_elements: u32) {
        let (keys, num_elements) = map_keys(MapType::GrpcReceiveInitialMetadata, num_elements);
        let value = map_value(MapType::GrpcReceiveInitialMetadata, "x-server-md");
        self.grpc_events
            .push(format!("im:{num_elements}:{keys}:{value}"));
    }

    fn on_grpc_stream_message(&mut self, _token_id: u32, message_size: usize) {
        let message = hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, message_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.grpc_events
            .push(format!("msg:{}", String::from_utf8_lossy(&message)));
    }

    fn on_grpc_stream_trailing_metadata(&mut self, _token_id: u32, num_elements: u32) {
        let (keys, num_elements) = map_keys(MapType::GrpcReceiveTrailingMetadata, num_elements);
        let value = map_value(MapType::GrpcReceiveTrailingMetadata, "x-server-trailer");
        self.grpc_events
            .push(format!("tm:{num_elements}:{keys}:{value}"));
    }

    fn on_grpc_stream_close(&mut self, token_id: u32, status_code: u32) {
        self.grpc_events
            .push(format!("close:{status_code}:{}", grpc_status_message()));
        let events = self.grpc_events.join(",");
        self.set_http_request_header("x-grpc-events", Some(&events));
        self.set_http_request_header("x-grpc-token-kind", Some(&(token_id % 4).to_string()));
        self.resume_http_request();
    }
}

/// The message `proxy_get_status` reports, `none` when there is none.
fn grpc_status_message() -> String {
    match hostcalls::get_grpc_status() {
        Ok((_, Some(message))) => message,
        Ok((_, None)) => "none".to_string(),
        Err(status) => format!("{status:?}"),
    }
}

/// The keys of a map, joined with `+` (pseudo-headers included), and the
/// callback's element count, both without the HTTP/1.1 framing headers
/// (`transfer-encoding`, `content-length`): the cross-check's gRPC server
/// speaks HTTP/1.1, a real one HTTP/2, where they do not exist.
fn map_keys(map: MapType, count: u32) -> (String, u32) {
    const FRAMING: [&str; 2] = ["transfer-encoding", "content-length"];
    match hostcalls::get_map_bytes(map) {
        Ok(pairs) => {
            let framing = pairs
                .iter()
                .filter(|(k, _)| FRAMING.contains(&k.as_str()))
                .count();
            let keys = pairs
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| !FRAMING.contains(&k.as_str()))
                .collect::<Vec<_>>()
                .join("+");
            (keys, count.saturating_sub(framing as u32))
        }
        Err(status) => (format!("{status:?}"), count),
    }
}

/// One value of a map, `missing` when absent.
fn map_value(map: MapType, key: &str) -> String {
    match hostcalls::get_map_value_bytes(map, key) {
        Ok(Some(value)) => String::from_utf8_lossy(&value).into_owned(),
        Ok(None) => "missing".to_string(),
        Err(status) => format!("{status:?}"),
    }
}

/// The upstream argument of the gRPC ops: `proto:<cluster>` is a serialized
/// `GrpcService { envoy_grpc { cluster_name } }` (as the C++ SDK sends it),
/// anything else the bare cluster name (as the Rust SDK sends it). The SDK
/// takes the upstream as `&str`: the proto of a short name is ASCII.
fn grpc_upstream(arg: &str) -> String {
    match arg.strip_prefix("proto:") {
        Some(cluster) if cluster.len() < 100 => {
            let mut envoy_grpc = vec![0x0a, cluster.len() as u8];
            envoy_grpc.extend_from_slice(cluster.as_bytes());
            let mut service = vec![0x0a, envoy_grpc.len() as u8];
            service.extend_from_slice(&envoy_grpc);
            String::from_utf8(service).unwrap_or_default()
        }
        _ => arg.to_string(),
    }
}

/// The SDK's send, cancel and close helpers panic on statuses they do not
/// expect (`BadArgument`); the fixture calls the ABI itself so that every
/// status comes back as a value. (Calls and streams are opened through the
/// SDK, which must register their tokens to dispatch the answers.)
#[allow(unsafe_code)] // Calling the host's imports directly is unsafe.
mod raw_grpc {
    use proxy_wasm::types::Status;

    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        fn proxy_grpc_send(
            token: u32,
            message_ptr: *const u8,
            message_len: usize,
            end_stream: bool,
        ) -> Status;
        fn proxy_grpc_cancel(token_id: u32) -> Status;
        fn proxy_grpc_close(token_id: u32) -> Status;
    }

    pub(super) fn send(token: u32, message: &[u8], end_stream: bool) -> Status {
        // SAFETY: the message slice is live for the call.
        unsafe { proxy_grpc_send(token, message.as_ptr(), message.len(), end_stream) }
    }

    pub(super) fn cancel(token: u32) -> Status {
        // SAFETY: no pointers.
        unsafe { proxy_grpc_cancel(token) }
    }

    pub(super) fn close(token: u32) -> Status {
        // SAFETY: no pointers.
        unsafe { proxy_grpc_close(token) }
    }
}

/// The initial metadata every gRPC op sends: a text key and a `-bin` key
/// with bytes that are not text.
fn grpc_metadata() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("x-md", b"from-plugin"),
        ("x-trace-bin", &[0xff, 0x00, 0x41]),
    ]
}

/// What an operation asks of the stream after it ran.
enum Outcome {
    Continue,
    Pause,
}

impl TestStream {
    fn run(&mut self, op: &str) -> Outcome {
        let mut words = op.split_whitespace();
        let verb = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let arg = |i: usize| args.get(i).copied().unwrap_or("");
        let rest = |i: usize| args.get(i..).map(|a| a.join(" ")).unwrap_or_default();
        match verb {
            "add-request-header" => self.add_http_request_header(arg(0), &rest(1)),
            "set-request-header" => self.set_http_request_header(arg(0), Some(&rest(1))),
            "remove-request-header" => self.remove_http_request_header(arg(0)),
            "add-response-header" => self.response_headers.push((arg(0).to_string(), rest(1))),
            "copy-property" => {
                let path: Vec<&str> = arg(0).split('.').collect();
                let value = match self.get_property(path) {
                    Some(bytes) if arg(2) == "int" => bytes
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map(|b: [u8; 8]| i64::from_le_bytes(b).to_string())
                        .unwrap_or_else(|| "bad-int".to_string()),
                    Some(bytes) if arg(2) == "hex" => {
                        bytes.iter().map(|b| format!("{b:02x}")).collect()
                    }
                    Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    None => "missing".to_string(),
                };
                self.set_http_request_header(arg(1), Some(&value));
            }
            "set-property" => {
                let path: Vec<&str> = arg(0).split('.').collect();
                self.set_property(path, Some(rest(1).as_bytes()));
            }
            "local" => {
                let status = arg(0).parse().unwrap_or(500);
                let body = rest(1);
                self.send_http_response(
                    status,
                    vec![("x-local", "test-plugin")],
                    Some(body.as_bytes()),
                );
                return Outcome::Pause;
            }
            "pause-ms" => {
                let ms = arg(0).parse().unwrap_or(0);
                let due = self.get_current_time() + Duration::from_millis(ms);
                self.shared.borrow_mut().parked.push(Parked {
                    context_id: self.context_id,
                    due,
                });
                return Outcome::Pause;
            }
            "shared-incr" => {
                let value = increment_shared(arg(0));
                self.set_http_request_header(&format!("x-shared-{}", arg(0)), Some(&value));
            }
            "callout" => {
                let headers = vec![
                    (":method", "GET"),
                    (":path", arg(1)),
                    (":authority", arg(0)),
                ];
                let timeout = Duration::from_millis(arg(2).parse().unwrap_or(1000));
                return match self.dispatch_http_call(arg(0), headers, None, vec![], timeout) {
                    Ok(_) => Outcome::Pause,
                    Err(status) => {
                        self.set_http_request_header(
                            "x-callout-error",
                            Some(&format!("{status:?}")),
                        );
                        Outcome::Continue
                    }
                };
            }
            "trap" => trap(),
            "clear-route-cache" => {
                let result = match hostcalls::call_foreign_function("clear_route_cache", None) {
                    Ok(_) => "ok".to_string(),
                    Err(status) => format!("{status:?}"),
                };
                self.set_http_request_header("x-clear-route-cache", Some(&result));
            }
            "enqueue" => {
                let vm_id = self
                    .get_property(vec!["plugin_vm_id"])
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let result = match self.resolve_shared_queue(&vm_id, arg(0)) {
                    Some(token) => match self.enqueue_shared_queue(token, Some(rest(1).as_bytes()))
                    {
                        Ok(()) => "ok".to_string(),
                        Err(status) => format!("{status:?}"),
                    },
                    None => "no-queue".to_string(),
                };
                self.set_http_request_header("x-enqueue", Some(&result));
            }
            "metric" => {
                let result = metric(arg(0), arg(1), arg(2));
                self.set_http_request_header(&format!("x-metric-{}", arg(1)), Some(&result));
            }
            "log" => {
                let level = match arg(0) {
                    "trace" => LogLevel::Trace,
                    "debug" => LogLevel::Debug,
                    "warn" => LogLevel::Warn,
                    "error" => LogLevel::Error,
                    "critical" => LogLevel::Critical,
                    _ => LogLevel::Info,
                };
                log(level, &rest(1));
            }
            "buffer-request-body" => {
                self.buffer_request_body = true;
                self.replace_request_body = args.first().map(|_| rest(0));
                // A replaced body has a new length: the old content-length
                // would leave the upstream waiting for bytes that never come.
                if self.replace_request_body.is_some() {
                    self.remove_http_request_header("content-length");
                }
            }
            "buffer-response-body" => self.buffer_response_body = Some(rest(0)),
            "reset" => self.reset_http_request(),
            "time" => {
                let nanos = self
                    .get_current_time()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                self.set_http_request_header("x-time-nanos", Some(&nanos.to_string()));
            }
            "shared-get" => {
                let value = match hostcalls::get_shared_data(arg(0)) {
                    Ok((Some(bytes), _)) => String::from_utf8_lossy(&bytes).into_owned(),
                    Ok((None, _)) => "missing".to_string(),
                    Err(status) => format!("{status:?}"),
                };
                self.set_http_request_header(&format!("x-shared-get-{}", arg(0)), Some(&value));
            }
            "response-header-pairs" => {
                // Asked during the request: the response map does not exist yet.
                let result = match hostcalls::get_map(MapType::HttpResponseHeaders) {
                    Ok(pairs) => pairs.len().to_string(),
                    Err(status) => format!("{status:?}"),
                };
                self.set_http_request_header("x-response-header-pairs", Some(&result));
                let result = match hostcalls::get_map(MapType::HttpRequestTrailers) {
                    Ok(pairs) => pairs.len().to_string(),
                    Err(status) => format!("{status:?}"),
                };
                self.set_http_request_header("x-request-trailer-pairs", Some(&result));
            }
            "request-header-names" => {
                let names: Vec<String> = self
                    .get_http_request_headers()
                    .into_iter()
                    .map(|(k, _)| k)
                    .filter(|k| k != "x-test-op")
                    .collect();
                self.set_http_request_header("x-request-header-names", Some(&names.join(",")));
            }
            "request-id-shape" => {
                // A UUID's shape: 36 characters, dashes at 8, 13, 18 and 23.
                let shape = match self.get_http_request_header("x-request-id") {
                    Some(id) => {
                        let dashes: Vec<usize> = id
                            .char_indices()
                            .filter(|(_, c)| *c == '-')
                            .map(|(i, _)| i)
                            .collect();
                        let uuid = id.len() == 36 && dashes == [8, 13, 18, 23];
                        if uuid { "uuid" } else { "other" }.to_string()
                    }
                    None => "missing".to_string(),
                };
                self.set_http_request_header("x-request-id-shape", Some(&shape));
            }
            "body-calls" => self.record_body_calls = true,
            "trailer-at-end" => self.trailer_at_end = true,
            "end-order" => self.record_end_order = true,
            "enqueue-own" => {
                // An empty VM id names the caller's own VM.
                let result = match self.resolve_shared_queue("", arg(0)) {
                    Some(token) => match self.enqueue_shared_queue(token, Some(rest(1).as_bytes()))
                    {
                        Ok(()) => "ok".to_string(),
                        Err(status) => format!("{status:?}"),
                    },
                    None => "no-queue".to_string(),
                };
                self.set_http_request_header("x-enqueue-own", Some(&result));
            }
            "callout-body" => {
                // `callout-body <cluster> <path> <timeout ms> <body...>`: a
                // POST with a body; the timeout is passed as given.
                let headers = vec![
                    (":method", "POST"),
                    (":path", arg(1)),
                    (":authority", arg(0)),
                ];
                let timeout = Duration::from_millis(arg(2).parse().unwrap_or(1000));
                let body = rest(3);
                return match self.dispatch_http_call(
                    arg(0),
                    headers,
                    Some(body.as_bytes()),
                    vec![],
                    timeout,
                ) {
                    Ok(_) => Outcome::Pause,
                    Err(status) => {
                        self.set_http_request_header(
                            "x-callout-error",
                            Some(&format!("{status:?}")),
                        );
                        Outcome::Continue
                    }
                };
            }
            "random" => {
                // std seeds its hash keys from WASI `random_get`.
                use std::hash::{BuildHasher, Hasher};
                let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
                hasher.write_u8(0);
                self.set_http_request_header(
                    "x-random",
                    Some(&format!("{:016x}", hasher.finish())),
                );
            }
            "grpc-call" => {
                // `grpc-call <upstream> <service> <method> <timeout ms> <message...>`
                let timeout = Duration::from_millis(arg(3).parse().unwrap_or(1000));
                let upstream = grpc_upstream(arg(0));
                let message = rest(4);
                let result = hostcalls::dispatch_grpc_call(
                    &upstream,
                    arg(1),
                    arg(2),
                    grpc_metadata(),
                    Some(message.as_bytes()),
                    timeout,
                );
                return match result {
                    Ok(_) => Outcome::Pause,
                    Err(status) => {
                        self.set_http_request_header("x-grpc-error", Some(&format!("{status:?}")));
                        Outcome::Continue
                    }
                };
            }
            "grpc-stream" => {
                // `grpc-stream <upstream> <service> <method> <end|close> <message...>`:
                // one message, then half-close with `end_stream` or `proxy_grpc_close`.
                let opened = hostcalls::open_grpc_stream(
                    &grpc_upstream(arg(0)),
                    arg(1),
                    arg(2),
                    grpc_metadata(),
                );
                let token = match opened {
                    Ok(token) => token,
                    Err(status) => {
                        self.set_http_request_header("x-grpc-error", Some(&format!("{status:?}")));
                        return Outcome::Continue;
                    }
                };
                let end = arg(3) == "end";
                let sent = raw_grpc::send(token, rest(4).as_bytes(), end);
                let closed = if end {
                    Status::Ok
                } else {
                    raw_grpc::close(token)
                };
                self.set_http_request_header("x-grpc-send", Some(&format!("{sent:?}/{closed:?}")));
                return Outcome::Pause;
            }
            "grpc-raw" => {
                // `grpc-raw <cancel|close|send> <token>`: the status Envoy answers.
                let token = arg(1).parse().unwrap_or(0);
                let status = match arg(0) {
                    "cancel" => raw_grpc::cancel(token),
                    "close" => raw_grpc::close(token),
                    _ => raw_grpc::send(token, b"x", false),
                };
                self.set_http_request_header(
                    &format!("x-grpc-{}-{}", arg(0), arg(1)),
                    Some(&format!("{status:?}")),
                );
            }
            "grpc-last-status" => {
                let value = match hostcalls::get_grpc_status() {
                    Ok((code, message)) => format!("{code}:{}", message.unwrap_or_default()),
                    Err(status) => format!("{status:?}"),
                };
                self.set_http_request_header("x-grpc-last-status", Some(&value));
            }
            "print" => println!("{}", rest(0)),
            "eprint" => eprintln!("{}", rest(0)),
            other => log(LogLevel::Warn, &format!("unknown op {other:?}")),
        }
        Outcome::Continue
    }
}

#[allow(clippy::panic)] // The fixture traps on request, to test trap handling.
fn trap() -> ! {
    panic!("test plugin asked to trap")
}

/// Increments a counter kept in shared data with a CAS loop, as a plugin
/// running on several workers must.
fn increment_shared(key: &str) -> String {
    for _ in 0..16 {
        let (value, cas) = hostcalls::get_shared_data(key).unwrap_or((None, None));
        let current: u64 = value
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let next = (current + 1).to_string();
        match hostcalls::set_shared_data(key, Some(next.as_bytes()), cas) {
            Ok(()) => return next,
            Err(Status::CasMismatch) => continue,
            Err(status) => return format!("{status:?}"),
        }
    }
    "cas-exhausted".to_string()
}

/// Appends `item` to a comma-separated list kept in shared data.
fn append_shared(key: &str, item: &str) {
    for _ in 0..16 {
        let (value, cas) = hostcalls::get_shared_data(key).unwrap_or((None, None));
        let mut list = value
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        if !list.is_empty() {
            list.push(',');
        }
        list.push_str(item);
        if hostcalls::set_shared_data(key, Some(list.as_bytes()), cas) != Err(Status::CasMismatch) {
            return;
        }
    }
}

/// `metric <counter|gauge|histogram> <name> <value>`: define, update, and
/// report what `get_metric` then reads (or the status of the failed step).
fn metric(kind: &str, name: &str, value: &str) -> String {
    let kind = match kind {
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        _ => MetricType::Counter,
    };
    let id = match hostcalls::define_metric(kind, name) {
        Ok(id) => id,
        Err(status) => return format!("define:{status:?}"),
    };
    let updated = match kind {
        MetricType::Histogram => hostcalls::record_metric(id, value.parse().unwrap_or(0)),
        _ => hostcalls::increment_metric(id, value.parse().unwrap_or(0)),
    };
    if let Err(status) = updated {
        return format!("update:{status:?}");
    }
    match hostcalls::get_metric(id) {
        Ok(v) => v.to_string(),
        Err(status) => format!("get:{status:?}"),
    }
}

impl HttpContext for TestStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(id) = self.shared.borrow().requests_metric {
            let _ = hostcalls::increment_metric(id, 1);
        }
        self.add_http_request_header("x-test-plugin", "seen");
        let ops: Vec<String> = self
            .get_http_request_headers()
            .into_iter()
            .filter(|(k, _)| k == "x-test-op")
            .map(|(_, v)| v)
            .collect();
        for op in ops {
            if let Outcome::Pause = self.run(&op) {
                return Action::Pause;
            }
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.record_body_calls {
            self.request_body_calls
                .push(format!("{body_size}/{end_of_stream}"));
        }
        if end_of_stream && self.trailer_at_end {
            let result = match hostcalls::add_map_value(
                MapType::HttpRequestTrailers,
                "x-trailer",
                "added",
            ) {
                Ok(()) => "Ok".to_string(),
                Err(status) => format!("{status:?}"),
            };
            self.response_headers
                .push(("x-add-request-trailer".to_string(), result));
        }
        if !self.buffer_request_body {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.response_headers
            .push(("x-request-body-length".to_string(), body.len().to_string()));
        if let Some(replacement) = &self.replace_request_body {
            self.set_http_request_body(0, body_size, replacement.as_bytes());
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if !self.request_body_calls.is_empty() {
            let calls = self.request_body_calls.join(",");
            self.add_http_response_header("x-request-body-calls", &calls);
        }
        for (k, v) in &self.response_headers {
            self.add_http_response_header(k, v);
        }
        let status = self
            .get_http_response_header(":status")
            .unwrap_or_else(|| "none".to_string());
        self.add_http_response_header("x-test-plugin-saw-status", &status);
        if self.buffer_response_body.is_some() {
            self.set_http_response_header("content-length", None);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        // The response's headers are gone by now: what the body callbacks
        // saw goes to shared data, for the next request to read.
        if self.record_body_calls {
            // An upstream's body size is its own business: data or none.
            let size = if body_size > 0 { "data" } else { "0" };
            self.response_body_calls
                .push(format!("{size}/{end_of_stream}"));
            let calls = self.response_body_calls.join(",");
            let _ = hostcalls::set_shared_data("response-body-calls", Some(calls.as_bytes()), None);
        }
        if end_of_stream && self.trailer_at_end {
            let result =
                match hostcalls::add_map_value(MapType::HttpResponseTrailers, "x-trailer", "added")
                {
                    Ok(()) => "Ok".to_string(),
                    Err(status) => format!("{status:?}"),
                };
            let _ =
                hostcalls::set_shared_data("add-response-trailer", Some(result.as_bytes()), None);
        }
        let Some(replacement) = self.buffer_response_body.clone() else {
            return Action::Continue;
        };
        if !end_of_stream {
            return Action::Pause;
        }
        self.set_http_response_body(0, body_size, replacement.as_bytes());
        Action::Continue
    }

    fn on_log(&mut self) {
        let status = self
            .get_property(vec!["response", "code"])
            .and_then(|b| b.get(..8).and_then(|b| b.try_into().ok()))
            .map(|b: [u8; 8]| i64::from_le_bytes(b).to_string())
            .unwrap_or_else(|| "none".to_string());
        log(LogLevel::Info, &format!("on_log response.code={status}"));
        if self.record_end_order {
            append_shared("end-order", "log");
        }
    }
}
