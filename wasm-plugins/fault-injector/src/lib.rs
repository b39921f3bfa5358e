//! The fault injector as a proxy-wasm plugin: the thin adapter between the
//! host and `fault-injector-filter`. It reads each request into a plain
//! view, asks the filter crate for a decision, and applies it: an abort is a
//! local response; a delay parks the stream and the root context's tick
//! resumes it on time (then aborts it, when the rule asks for both).
//!
//! What lives here and nowhere else: the clock (only the host's), the tick
//! timer, the list of parked streams, the cluster-wide count of faults in
//! progress (shared data with CAS), metrics, and the per-VM random source.
//! See the README beside this crate for the configuration and the design of
//! the delay timer.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use fault_injector_filter::{
    Config, FaultOrigin, LocalReply, RequestView, SplitMix64, parse_source_address,
};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(FaultRoot::new(context_id))
    });
}}

/// How many times a shared-data update retries after a CAS mismatch before
/// giving up. Each retry means another worker updated the counter between our
/// read and write; Envoy serialises shared-data calls, so a handful suffices.
const CAS_ATTEMPTS: usize = 32;

/// The longest tick period: far-off delays are re-checked at least this often,
/// which keeps the millisecond count well inside the ABI's u32.
const MAX_TICK: Duration = Duration::from_secs(60);

const NANOS_PER_MS: u64 = 1_000_000;

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// The host's wall clock, in nanoseconds since the epoch.
fn now_nanos() -> Option<u64> {
    let now = hostcalls::get_current_time().ok()?;
    let since = now.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_nanos()).ok()
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Metric ids; `None` where the host refused to define one.
#[derive(Debug, Default)]
struct Metrics {
    aborts: Option<u32>,
    delays: Option<u32>,
    overflow: Option<u32>,
    active: Option<u32>,
    /// Per label (rules in order, then header control): (aborts, delays).
    per_label: Vec<(Option<u32>, Option<u32>)>,
}

impl Metrics {
    fn define(config: &Config) -> Self {
        let counter = |name: &str| hostcalls::define_metric(MetricType::Counter, name).ok();
        Self {
            aborts: counter("fault_injector.aborts_injected"),
            delays: counter("fault_injector.delays_injected"),
            overflow: counter("fault_injector.faults_overflow"),
            active: hostcalls::define_metric(MetricType::Gauge, "fault_injector.active_faults")
                .ok(),
            per_label: config
                .labels()
                .iter()
                .map(|label| {
                    (
                        counter(&format!("fault_injector.rule.{label}.aborts_injected")),
                        counter(&format!("fault_injector.rule.{label}.delays_injected")),
                    )
                })
                .collect(),
        }
    }

    fn add(id: Option<u32>, by: i64) {
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, by);
        }
    }

    fn abort_injected(&self, label: usize) {
        Self::add(self.aborts, 1);
        Self::add(self.per_label.get(label).and_then(|m| m.0), 1);
    }

    fn delay_injected(&self, label: usize) {
        Self::add(self.delays, 1);
        Self::add(self.per_label.get(label).and_then(|m| m.1), 1);
    }
}

/// A stream waiting out its delay.
#[derive(Debug)]
struct Parked {
    /// The abort to send when the delay ends (delay then abort), with the
    /// index of the fault's label for metrics; `None` resumes the request.
    abort: Option<(LocalReply, usize)>,
}

/// A slot in the count of faults in progress.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Whether the cluster-wide counter in shared data was incremented.
    counted: bool,
}

/// What the root context shares with its stream contexts (one VM, one
/// thread: `Rc` and `RefCell`).
#[derive(Debug)]
struct Shared {
    root_id: u32,
    config: RefCell<Option<Rc<Config>>>,
    metrics: RefCell<Rc<Metrics>>,
    rng: RefCell<SplitMix64>,
    /// Parked streams by (due time in ns, context id), earliest first.
    parked: RefCell<BTreeMap<(u64, u32), Parked>>,
    /// Context id to due time, to unpark a stream that goes away.
    due_by_context: RefCell<HashMap<u32, u64>>,
    /// When the tick timer fires next (ns), if armed.
    next_wake: Cell<Option<u64>>,
    /// Streams holding a slot in the count of faults in progress.
    slots: RefCell<HashMap<u32, Slot>>,
    /// The shared-data key of the cluster-wide count.
    active_key: RefCell<String>,
}

impl Shared {
    fn new(root_id: u32) -> Self {
        Self {
            root_id,
            config: RefCell::new(None),
            metrics: RefCell::new(Rc::new(Metrics::default())),
            rng: RefCell::new(SplitMix64::new(0)),
            parked: RefCell::new(BTreeMap::new()),
            due_by_context: RefCell::new(HashMap::new()),
            next_wake: Cell::new(None),
            slots: RefCell::new(HashMap::new()),
            active_key: RefCell::new(String::new()),
        }
    }

    fn metrics(&self) -> Rc<Metrics> {
        Rc::clone(&self.metrics.borrow())
    }

    // --- faults in progress -------------------------------------------------

    /// Takes a slot for `context` if the limit allows. Exact across workers:
    /// the count lives in shared data and changes only by compare-and-swap.
    fn acquire(&self, context: u32, limit: Option<u32>) -> bool {
        let counted = match limit {
            None => false,
            Some(max) => {
                let key = self.active_key.borrow().clone();
                match cas_update(&key, |n| (n < u64::from(max)).then_some(n + 1)) {
                    CasOutcome::Updated => true,
                    CasOutcome::Refused => return false,
                    CasOutcome::Failed(why) => {
                        log(
                            LogLevel::Warn,
                            &format!(
                                "fault-injector: cannot count the fault ({why}); not injecting it"
                            ),
                        );
                        return false;
                    }
                }
            }
        };
        self.slots.borrow_mut().insert(context, Slot { counted });
        Metrics::add(self.metrics().active, 1);
        true
    }

    /// Gives back `context`'s slot, if it holds one (idempotent).
    fn release(&self, context: u32) {
        let Some(slot) = self.slots.borrow_mut().remove(&context) else {
            return;
        };
        Metrics::add(self.metrics().active, -1);
        if slot.counted {
            let key = self.active_key.borrow().clone();
            if let CasOutcome::Failed(why) = cas_update(&key, |n| Some(n.saturating_sub(1))) {
                log(
                    LogLevel::Warn,
                    &format!("fault-injector: cannot release a fault slot ({why})"),
                );
            }
        }
    }

    // --- parked streams and the tick ----------------------------------------

    fn park(&self, context: u32, due: u64, now: u64, parked: Parked) {
        self.parked.borrow_mut().insert((due, context), parked);
        self.due_by_context.borrow_mut().insert(context, due);
        // Re-arm only when this delay ends before the timer would fire.
        if self.next_wake.get().is_none_or(|wake| due < wake) {
            self.arm(due, now);
        }
    }

    fn is_parked(&self, context: u32) -> bool {
        self.due_by_context.borrow().contains_key(&context)
    }

    /// Forgets a parked stream (the client went away); nothing is resumed.
    fn unpark(&self, context: u32) {
        let Some(due) = self.due_by_context.borrow_mut().remove(&context) else {
            return;
        };
        self.parked.borrow_mut().remove(&(due, context));
        if self.parked.borrow().is_empty() {
            self.disarm();
        }
    }

    /// Sets the tick to fire when `due` is reached: the whole milliseconds
    /// until then, rounded up (never early), at least 1 ms, at most
    /// [`MAX_TICK`]. Envoy restarts its timer when the period is set.
    fn arm(&self, due: u64, now: u64) {
        let max_ms = duration_nanos(MAX_TICK) / NANOS_PER_MS;
        let wait_ms = due
            .saturating_sub(now)
            .div_ceil(NANOS_PER_MS)
            .clamp(1, max_ms);
        if hostcalls::set_tick_period(Duration::from_millis(wait_ms)).is_ok() {
            self.next_wake
                .set(Some(now.saturating_add(wait_ms * NANOS_PER_MS)));
        }
    }

    fn disarm(&self) {
        if self.next_wake.take().is_some() {
            let _ = hostcalls::set_tick_period(Duration::ZERO);
        }
    }

    /// Resumes (or aborts) every stream whose delay is over, then re-arms
    /// the tick for the next one, or turns it off.
    fn on_tick(&self) {
        let Some(now) = now_nanos() else {
            return;
        };
        let due: Vec<((u64, u32), Parked)> = {
            let mut parked = self.parked.borrow_mut();
            let later = parked.split_off(&(now.saturating_add(1), 0));
            std::mem::replace(&mut *parked, later).into_iter().collect()
        };
        let metrics = self.metrics();
        for ((_, context), parked) in due {
            self.due_by_context.borrow_mut().remove(&context);
            if hostcalls::set_effective_context(context).is_err() {
                // The stream is gone without on_done reaching us: free its slot.
                self.release(context);
                continue;
            }
            match parked.abort {
                None => {
                    let _ = hostcalls::resume_http_request();
                    // The fault is over; the request goes on as any other.
                    self.release(context);
                }
                Some((reply, label)) => {
                    send_reply(&reply);
                    metrics.abort_injected(label);
                }
            }
        }
        let _ = hostcalls::set_effective_context(self.root_id);
        self.next_wake.set(None);
        let earliest = self.parked.borrow().keys().next().map(|(due, _)| *due);
        match earliest {
            Some(due) => self.arm(due, now),
            None => {
                let _ = hostcalls::set_tick_period(Duration::ZERO);
            }
        }
    }
}

enum CasOutcome {
    Updated,
    /// The step declined (the limit is reached).
    Refused,
    Failed(String),
}

/// Applies `step` to the decimal counter at `key` with compare-and-swap,
/// retrying on a mismatch at most [`CAS_ATTEMPTS`] times. A missing or
/// unreadable value counts as 0.
fn cas_update(key: &str, step: impl Fn(u64) -> Option<u64>) -> CasOutcome {
    for _ in 0..CAS_ATTEMPTS {
        let (value, cas) = match hostcalls::get_shared_data(key) {
            Ok(entry) => entry,
            Err(status) => return CasOutcome::Failed(format!("get: {status:?}")),
        };
        let current = value
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0);
        let Some(next) = step(current) else {
            return CasOutcome::Refused;
        };
        match hostcalls::set_shared_data(key, Some(next.to_string().as_bytes()), cas) {
            Ok(()) => return CasOutcome::Updated,
            Err(Status::CasMismatch) => continue,
            Err(status) => return CasOutcome::Failed(format!("set: {status:?}")),
        }
    }
    CasOutcome::Failed(format!("{CAS_ATTEMPTS} CAS mismatches in a row"))
}

fn send_reply(reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let _ = hostcalls::send_http_response(reply.status, headers, reply.body.as_deref());
}

/// The index of a fault's label in [`Config::labels`].
fn label_index(config: &Config, origin: FaultOrigin) -> usize {
    match origin {
        FaultOrigin::Rule(index) => index,
        FaultOrigin::HeaderControl => config.rules().len(),
    }
}

struct FaultRoot {
    shared: Rc<Shared>,
}

impl FaultRoot {
    fn new(context_id: u32) -> Self {
        Self {
            shared: Rc::new(Shared::new(context_id)),
        }
    }
}

impl Context for FaultRoot {}

impl RootContext for FaultRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        // std's RandomState draws its keys from WASI random_get: hashing the
        // host time with it gives each VM its own seed without another crate.
        let seed = RandomState::new().hash_one(now_nanos().unwrap_or(0));
        *self.shared.rng.borrow_mut() = SplitMix64::new(seed);
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let config = match Config::from_json(&raw) {
            Ok(config) => Rc::new(config),
            Err(error) => {
                log(
                    LogLevel::Error,
                    &format!("fault-injector: invalid configuration: {error}"),
                );
                return false;
            }
        };
        let root_id = hostcalls::get_property(vec!["plugin_root_id"])
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let key = format!("fault_injector.active_faults.{root_id}");
        if config.max_active_faults().is_some()
            && matches!(hostcalls::get_shared_data(&key), Ok((None, _)))
        {
            // Create the counter so that every later update can use CAS.
            let _ = hostcalls::set_shared_data(&key, Some(b"0"), None);
        }
        *self.shared.active_key.borrow_mut() = key;
        *self.shared.metrics.borrow_mut() = Rc::new(Metrics::define(&config));
        log(
            LogLevel::Info,
            &format!(
                "fault-injector: configured {} rule(s){}",
                config.rules().len(),
                if config.header_control().is_some() {
                    " and header control"
                } else {
                    ""
                }
            ),
        );
        *self.shared.config.borrow_mut() = Some(config);
        true
    }

    fn on_tick(&mut self) {
        self.shared.on_tick();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(FaultStream {
            context_id,
            config: self.shared.config.borrow().clone(),
            shared: Rc::clone(&self.shared),
            report: None,
            aborted: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct FaultStream {
    context_id: u32,
    shared: Rc<Shared>,
    config: Option<Rc<Config>>,
    /// The response header value to add to the upstream's response (for a
    /// delay that did not end in an abort).
    report: Option<String>,
    /// An abort was (or will be) sent: nothing goes upstream.
    aborted: bool,
}

impl FaultStream {
    fn holding(&self) -> bool {
        self.aborted || self.shared.is_parked(self.context_id)
    }

    fn finish(&self) {
        self.shared.unpark(self.context_id);
        self.shared.release(self.context_id);
    }

    fn property(&self, path: Vec<&str>) -> Option<String> {
        hostcalls::get_property(path)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }
}

impl Context for FaultStream {
    /// The stream ends, maybe while parked (the client went away): nothing
    /// is resumed, and the slot is given back.
    fn on_done(&mut self) -> bool {
        self.finish();
        true
    }
}

impl HttpContext for FaultStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        let headers =
            hostcalls::get_map(proxy_wasm::types::MapType::HttpRequestHeaders).unwrap_or_default();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map_or("", |(_, v)| v.as_str())
        };
        let source_address = config
            .uses_source_address()
            .then(|| self.property(vec!["source", "address"]))
            .flatten()
            .and_then(|text| parse_source_address(&text));
        let route_name = config
            .uses_route_name()
            .then(|| self.property(vec!["xds", "route_name"]))
            .flatten();
        let random = self.shared.rng.borrow_mut().next_u64();
        let view = RequestView {
            method: header(":method"),
            path: header(":path"),
            headers: &headers,
            source_address,
            route_name: route_name.as_deref(),
            random,
        };
        let Some(fault) = config.decide(&view) else {
            return Action::Continue;
        };
        let metrics = self.shared.metrics();
        let Some(now) = now_nanos() else {
            return Action::Continue;
        };
        if !self
            .shared
            .acquire(self.context_id, config.max_active_faults())
        {
            Metrics::add(metrics.overflow, 1);
            return Action::Continue;
        }
        let label = label_index(&config, fault.origin);
        let reply = fault.local_reply(config.response_header());
        self.aborted = reply.is_some();
        if let Some(delay) = fault.delay {
            metrics.delay_injected(label);
            if reply.is_none() {
                self.report = Some(fault.header_value());
            }
            let due = now.saturating_add(duration_nanos(delay));
            let parked = Parked {
                abort: reply.map(|r| (r, label)),
            };
            self.shared.park(self.context_id, due, now, parked);
            return Action::Pause;
        }
        if let Some(reply) = reply {
            send_reply(&reply);
            metrics.abort_injected(label);
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        // Continue here would let the paused headers go on early.
        if self.holding() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.holding() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(value), Some(config)) = (&self.report, &self.config) {
            let _ = hostcalls::add_map_value(
                proxy_wasm::types::MapType::HttpResponseHeaders,
                config.response_header(),
                value,
            );
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        self.finish();
    }
}
