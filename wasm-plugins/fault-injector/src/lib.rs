//! The fault injector as a proxy-wasm plugin: the thin adapter between the
//! host and `fault-injector-filter`. It reads each request into a plain
//! view, asks the filter crate for a decision, and applies it: an abort is a
//! local response; a delay parks the stream in the filter crate's
//! [`DelayScheduler`] and the root context's tick resumes it on time (then
//! aborts it, when the rule asks for both).
//!
//! What lives here and nowhere else: the host calls (the clock, the tick
//! timer, shared data, local replies, resuming a stream), metrics, and the
//! per-VM random source. The schedule of parked streams and the count of
//! faults in progress are policy, in the filter crate, tested natively; the
//! host glue the plugins share is `mesh_policy::adapter`. See the README
//! beside this crate for the configuration and the design of the timer.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fault_injector_filter::{
    ActiveFaults, Admission, Config, DelayScheduler, FaultOrigin, LocalReply, RequestView,
    SplitMix64, parse_source_address,
};
use mesh_policy::adapter::{self, HostStore};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(FaultRoot::new(context_id))
    });
}}

const PLUGIN: &str = "fault-injector";

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

/// A stream waiting out its delay: the abort to send when the delay ends
/// (delay then abort), with the index of the fault's label for metrics;
/// `None` resumes the request.
type Parked = Option<(LocalReply, usize)>;

/// What the root context shares with its stream contexts (one VM, one
/// thread: `Rc` and `RefCell`).
#[derive(Debug)]
struct Shared {
    root_id: u32,
    config: RefCell<Option<Rc<Config>>>,
    metrics: RefCell<Rc<Metrics>>,
    rng: RefCell<SplitMix64>,
    scheduler: RefCell<DelayScheduler<Parked>>,
    active: RefCell<ActiveFaults>,
}

impl Shared {
    fn new(root_id: u32) -> Self {
        Self {
            root_id,
            config: RefCell::new(None),
            metrics: RefCell::new(Rc::new(Metrics::default())),
            rng: RefCell::new(SplitMix64::new(0)),
            scheduler: RefCell::new(DelayScheduler::new()),
            active: RefCell::new(ActiveFaults::default()),
        }
    }

    fn metrics(&self) -> Rc<Metrics> {
        Rc::clone(&self.metrics.borrow())
    }

    /// Takes a slot in the count of faults in progress for `context`.
    fn acquire(&self, context: u32, limit: Option<u32>) -> bool {
        let admission = self
            .active
            .borrow_mut()
            .acquire(&mut HostStore, context, limit);
        match admission {
            Admission::Granted => {
                Metrics::add(self.metrics().active, 1);
                true
            }
            Admission::Overflow => {
                Metrics::add(self.metrics().overflow, 1);
                false
            }
            Admission::Failed(why) => {
                adapter::log(
                    LogLevel::Warn,
                    &format!("{PLUGIN}: cannot count the fault ({why}); not injecting it"),
                );
                false
            }
        }
    }

    /// Gives back `context`'s slot, if it holds one (idempotent).
    fn release(&self, context: u32) {
        match self.active.borrow_mut().release(&mut HostStore, context) {
            Ok(false) => {}
            Ok(true) => Metrics::add(self.metrics().active, -1),
            Err(why) => {
                Metrics::add(self.metrics().active, -1);
                adapter::log(
                    LogLevel::Warn,
                    &format!("{PLUGIN}: cannot release a fault slot ({why})"),
                );
            }
        }
    }

    /// Sets the tick period; the scheduler learns of it only if the host
    /// accepts (else the next park tries again).
    fn set_timer(&self, now: u64, period: Option<Duration>) {
        let period_or_off = period.unwrap_or(Duration::ZERO);
        if hostcalls::set_tick_period(period_or_off).is_ok()
            && let Some(period) = period
        {
            self.scheduler.borrow_mut().armed(now, period);
        }
    }

    fn park(&self, context: u32, due: u64, now: u64, parked: Parked) {
        let rearm = self.scheduler.borrow_mut().park(context, due, now, parked);
        if rearm.is_some() {
            self.set_timer(now, rearm);
        }
    }

    /// Forgets a parked stream (the client went away); nothing is resumed.
    fn unpark(&self, context: u32) {
        if self.scheduler.borrow_mut().unpark(context) {
            let _ = hostcalls::set_tick_period(Duration::ZERO);
        }
    }

    /// Resumes (or aborts) every stream whose delay is over, then re-arms
    /// the tick for the next one, or turns it off.
    fn on_tick(&self) {
        let Some(now) = adapter::now_nanos() else {
            return;
        };
        let tick = self.scheduler.borrow_mut().on_tick(now);
        let metrics = self.metrics();
        for (context, parked) in tick.due {
            if hostcalls::set_effective_context(context).is_err() {
                // The stream is gone without on_done reaching us: free its slot.
                self.release(context);
                continue;
            }
            match parked {
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
        self.set_timer(now, tick.next);
    }
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
        *self.shared.rng.borrow_mut() = SplitMix64::new(adapter::random_seed());
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let Some(config) = adapter::configure::<Config>(PLUGIN, &mesh_policy::no_env) else {
            return false;
        };
        let config = Rc::new(config);
        let root_id = adapter::property(vec!["plugin_root_id"]).unwrap_or_default();
        let active = ActiveFaults::new(format!("fault_injector.active_faults.{root_id}"));
        if config.max_active_faults().is_some() {
            active.create_count(&mut HostStore);
        }
        *self.shared.active.borrow_mut() = active;
        *self.shared.metrics.borrow_mut() = Rc::new(Metrics::define(&config));
        adapter::log(
            LogLevel::Info,
            &format!(
                "{PLUGIN}: configured {} rule(s){}",
                config.rules().len(),
                if config.header_control().is_some() {
                    " and header control"
                } else {
                    ""
                }
            ),
        );
        for notice in config.notices() {
            adapter::log(LogLevel::Warn, &format!("{PLUGIN}: {notice}"));
        }
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
        self.aborted || self.shared.scheduler.borrow().is_parked(self.context_id)
    }

    fn finish(&self) {
        self.shared.unpark(self.context_id);
        self.shared.release(self.context_id);
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
        let headers = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map_or("", |(_, v)| v.as_str())
        };
        let source_address = config
            .uses_source_address()
            .then(|| adapter::property(vec!["source", "address"]))
            .flatten()
            .and_then(|text| parse_source_address(&text));
        let route_name = config
            .uses_route_name()
            .then(|| adapter::property(vec!["xds", "route_name"]))
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
        let Some(now) = adapter::now_nanos() else {
            return Action::Continue;
        };
        if !self
            .shared
            .acquire(self.context_id, config.max_active_faults())
        {
            return Action::Continue;
        }
        let metrics = self.shared.metrics();
        let label = label_index(&config, fault.origin);
        let reply = fault.local_reply(config.response_header());
        self.aborted = reply.is_some();
        if let Some(delay) = fault.delay {
            metrics.delay_injected(label);
            if reply.is_none() {
                self.report = Some(fault.header_value());
            }
            let due = now.saturating_add(duration_nanos(delay));
            self.shared
                .park(self.context_id, due, now, reply.map(|r| (r, label)));
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
                MapType::HttpResponseHeaders,
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
