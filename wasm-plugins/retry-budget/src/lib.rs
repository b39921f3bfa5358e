//! The adaptive retry budget as a proxy-wasm plugin: the thin adapter
//! between Envoy and `retry-budget-filter`.
//!
//! On each request it finds the request's scope (cluster, route, a header or
//! a property), admits the request against that scope's budget in shared
//! data (read, decide, compare-and-swap, so every worker VM shares one
//! budget and no update is lost), and tells Envoy's router how many retries
//! it may make with `x-envoy-max-retries` (0 stops them) and on what with
//! `x-envoy-retry-on`, overwriting whatever the client sent. It never retries
//! by itself. On the response it reads `x-envoy-attempt-count` and the
//! status, and settles the request: unused retries are refunded, failures
//! charged. Time comes only from the host's clock.
//!
//! What lives here and nowhere else: headers, metrics, the scope-to-slot
//! cache and per-stream tickets; reading the configuration, the clock,
//! shared data (`HostStore`, `cas_update`) and logs are mesh-policy's
//! adapter glue.
//! See the README beside this crate for the configuration and the algorithm.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use mesh_policy::adapter::{HostStore, configure, log, now_nanos, property};
use mesh_policy::{SharedStore, cas_update, no_env};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use retry_budget_filter::{
    Budget, Config, OVERFLOW_SCOPE, Outcome, Registry, Scope, Ticket, Verdict, sanitize_scope,
};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(RetryBudgetRoot { shared: Rc::new(Shared::default()) })
    });
}}

/// Reads and writes after a CAS mismatch before giving up. A mismatch means
/// another worker updated the same budget between our read and write; Envoy
/// serialises shared-data calls, so a handful of rounds is plenty.
const CAS_ATTEMPTS: usize = 32;

const MAX_RETRIES: &str = "x-envoy-max-retries";
const RETRY_ON: &str = "x-envoy-retry-on";
const RETRY_GRPC_ON: &str = "x-envoy-retry-grpc-on";
const RETRIABLE_STATUS_CODES: &str = "x-envoy-retriable-status-codes";
const PER_TRY_TIMEOUT: &str = "x-envoy-upstream-rq-per-try-timeout-ms";
/// A client could use hedging to multiply attempts too.
const HEDGE_ON_PER_TRY_TIMEOUT: &str = "x-envoy-hedge-on-per-try-timeout";
const ATTEMPT_COUNT: &str = "x-envoy-attempt-count";
/// An upstream response with this header is never retried by Envoy (unless
/// the caller retries on `envoy-ratelimited`).
const RATELIMITED: &str = "x-envoy-ratelimited";

fn define(kind: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(kind, name).ok()
}

fn add(id: Option<u32>, by: u64) {
    if let (Some(id), Ok(by)) = (id, i64::try_from(by))
        && by > 0
    {
        let _ = hostcalls::increment_metric(id, by);
    }
}

fn set_gauge(id: Option<u32>, value: u64) {
    if let Some(id) = id {
        let _ = hostcalls::record_metric(id, value);
    }
}

/// One scope's metrics (`retry_budget.<scope>.*`); `None` where the host
/// refused to define one.
#[derive(Debug)]
struct ScopeMetrics {
    requests: Option<u32>,
    retries_allowed: Option<u32>,
    retries_denied: Option<u32>,
    budget_remaining: Option<u32>,
    tokens_milli: Option<u32>,
}

impl ScopeMetrics {
    fn define(scope: &str, budget: &Budget) -> Self {
        let name = |metric: &str| format!("retry_budget.{scope}.{metric}");
        Self {
            requests: define(MetricType::Counter, &name("requests")),
            retries_allowed: define(MetricType::Counter, &name("retries_allowed")),
            retries_denied: define(MetricType::Counter, &name("retries_denied")),
            budget_remaining: define(MetricType::Gauge, &name("budget_remaining")),
            tokens_milli: match budget {
                Budget::Tokens(_) => define(MetricType::Gauge, &name("tokens_milli")),
                Budget::Ratio(_) => None,
            },
        }
    }

    fn remaining(&self, budget: &Budget, state: &[u8], remaining: u64) {
        set_gauge(self.budget_remaining, remaining);
        if let Some(tokens) = budget.tokens_milli(Some(state)) {
            set_gauge(self.tokens_milli, tokens);
        }
    }
}

/// What the root context shares with its streams (one VM, one thread).
#[derive(Debug, Default)]
struct Shared {
    config: RefCell<Rc<Config>>,
    /// Prefix of every shared-data key: `retry_budget.<root id>.`.
    prefix: RefCell<String>,
    /// Scope name to slot, as registered (a VM-local cache of the registry).
    slots: RefCell<HashMap<String, usize>>,
    /// Metrics by slot, defined on first use.
    metrics: RefCell<HashMap<usize, Rc<ScopeMetrics>>>,
    shared_data_errors: Cell<Option<u32>>,
    warned_no_attempt_count: Cell<bool>,
    warned_no_clock: Cell<bool>,
}

impl Shared {
    fn config(&self) -> Rc<Config> {
        Rc::clone(&self.config.borrow())
    }

    fn registry_key(&self) -> String {
        format!("{}scopes", self.prefix.borrow())
    }

    /// A slot's budgets. `state.` and not the `slot.` of the earlier,
    /// one-state encoding: during an upgrade the two builds keep their
    /// budgets apart instead of resetting each other's.
    fn slot_key(&self, slot: usize) -> String {
        format!("{}state.{slot}", self.prefix.borrow())
    }

    /// The host's clock; `None` (logged once per VM) when the host fails:
    /// a budget cannot be decided without it, so the request gets no
    /// retries, the safe side.
    fn now(&self) -> Option<u64> {
        let now = now_nanos();
        if now.is_none() && !self.warned_no_clock.replace(true) {
            log(
                LogLevel::Warn,
                "retry-budget: the host clock is unavailable; requests get no retries while it is",
            );
        }
        now
    }

    /// Counts a shared-data failure and logs it; the request goes on
    /// without retries, the safe side when the budget cannot be read.
    fn shared_data_failed(&self, what: &str, error: &dyn std::fmt::Display) {
        add(self.shared_data_errors.get(), 1);
        log(
            LogLevel::Warn,
            &format!("retry-budget: cannot {what}: {error}; no retries for this request"),
        );
    }

    /// The slot of a scope name: the VM's cache, else the shared registry
    /// (registering the name while there is room, else the overflow slot).
    fn slot(&self, name: Option<String>, config: &Config) -> usize {
        let Some(name) = name.map(|n| sanitize_scope(&n)) else {
            return 0;
        };
        if let Some(slot) = self.slots.borrow().get(&name) {
            return *slot;
        }
        let max = usize::try_from(config.max_scopes).unwrap_or(usize::MAX);
        let resolved = cas_update(
            &mut HostStore,
            &self.registry_key(),
            CAS_ATTEMPTS,
            |value| {
                let (slot, grown) = Registry::decode(value).resolve(&name, max);
                (slot, grown.map(|r| r.encode()))
            },
        );
        match resolved {
            Ok(slot) => {
                // Names beyond `maxScopes` are not cached: they may come from
                // clients without bound, so each costs a registry read.
                if slot != 0 {
                    self.slots.borrow_mut().insert(name, slot);
                }
                slot
            }
            Err(e) => {
                self.shared_data_failed("register the scope", &e);
                0
            }
        }
    }

    fn metrics(&self, slot: usize, config: &Config) -> Rc<ScopeMetrics> {
        if let Some(metrics) = self.metrics.borrow().get(&slot) {
            return Rc::clone(metrics);
        }
        let name = if slot == 0 {
            OVERFLOW_SCOPE.to_string()
        } else {
            self.slots
                .borrow()
                .iter()
                .find(|(_, s)| **s == slot)
                .map(|(n, _)| n.clone())
                .unwrap_or_else(|| format!("slot{slot}"))
        };
        let metrics = Rc::new(ScopeMetrics::define(&name, &config.budget));
        self.metrics.borrow_mut().insert(slot, Rc::clone(&metrics));
        metrics
    }

    /// Creates the registry and every slot's state when missing, so that
    /// requests only ever update existing entries by CAS. (Shared data has
    /// no create-if-absent: two first writes would race.)
    fn create_entries(&self, config: &Config) {
        let slots = usize::try_from(config.max_scopes).unwrap_or(0);
        let fresh = config.budget.fresh_state();
        let mut keys = vec![(self.registry_key(), Vec::new())];
        keys.extend((0..=slots).map(|slot| (self.slot_key(slot), fresh.clone())));
        for (key, value) in keys {
            if let Ok((None, _)) = HostStore.get(&key)
                && let Err(e) = HostStore.set(&key, &value, None)
            {
                self.shared_data_failed("create the budgets", &e);
                return;
            }
        }
    }
}

struct RetryBudgetRoot {
    shared: Rc<Shared>,
}

impl Context for RetryBudgetRoot {}

impl RootContext for RetryBudgetRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = configure::<Config>("retry-budget", &no_env) else {
            return false;
        };
        let root_id = property(vec!["plugin_root_id"])
            .map(|id| sanitize_scope(&id))
            .filter(|id| id != OVERFLOW_SCOPE)
            .map(|id| format!("{id}."))
            .unwrap_or_default();
        *self.shared.prefix.borrow_mut() = format!("retry_budget.{root_id}");
        self.shared.slots.borrow_mut().clear();
        self.shared.metrics.borrow_mut().clear();
        self.shared.shared_data_errors.set(define(
            MetricType::Counter,
            "retry_budget.shared_data_errors",
        ));
        self.shared.create_entries(&config);
        *self.shared.config.borrow_mut() = Rc::new(config);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RetryBudgetStream {
            shared: Rc::clone(&self.shared),
            pending: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// A request admitted against a budget, waiting for its response.
#[derive(Debug, Clone, Copy)]
struct Pending {
    slot: usize,
    ticket: Ticket,
    /// A gRPC response whose status comes in the trailers: the attempt
    /// count and status of its headers, until then.
    awaiting_trailers: Option<(Option<u32>, u16)>,
}

struct RetryBudgetStream {
    shared: Rc<Shared>,
    pending: Option<Pending>,
}

impl Context for RetryBudgetStream {}

impl RetryBudgetStream {
    fn scope_name(&self, scope: &Scope) -> Option<String> {
        let raw = match scope {
            Scope::Header(name) => self.get_http_request_header(name)?,
            property => {
                let bytes = self.get_property(property.property_path()?)?;
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        (!raw.is_empty()).then_some(raw)
    }

    /// Tells Envoy's router what this request may do, replacing anything the
    /// client (or an earlier filter) asked for.
    fn set_retry_headers(&self, config: &Config, granted: u32) {
        self.set_http_request_header(MAX_RETRIES, Some(&granted.to_string()));
        let retry_on = &config.retry_on;
        self.set_http_request_header(RETRY_ON, retry_on.retry_on_header().as_deref());
        self.set_http_request_header(RETRY_GRPC_ON, retry_on.retry_grpc_on_header().as_deref());
        self.set_http_request_header(
            RETRIABLE_STATUS_CODES,
            retry_on.retriable_status_codes_header().as_deref(),
        );
        if let Some(ms) = config.per_try_timeout_ms() {
            self.set_http_request_header(PER_TRY_TIMEOUT, Some(&ms.to_string()));
        }
        self.set_http_request_header(HEDGE_ON_PER_TRY_TIMEOUT, None);
    }

    /// Settles the pending request on its final response: counts the
    /// retries Envoy made and, with `suppressCallerRetries`, marks a failure
    /// so the calling Envoy does not retry it (only while the response
    /// headers can still change: `in_headers`).
    fn answered(
        &mut self,
        attempts: Option<u32>,
        status: u16,
        grpc_status: Option<u32>,
        in_headers: bool,
    ) {
        let config = self.shared.config();
        let verdict = Verdict::of(&config.retry_on, status, grpc_status);
        let failed = verdict == Verdict::Failure;
        if let Some((pending, used)) = self.settle(Outcome::Answered { attempts, verdict }) {
            let metrics = self.shared.metrics(pending.slot, &config);
            add(metrics.retries_allowed, u64::from(used));
            // Envoy stopped because the budget ran out, not the route's limit.
            if failed && used >= pending.ticket.granted && pending.ticket.granted < config.attempts
            {
                add(
                    metrics.retries_denied,
                    u64::from(config.attempts - pending.ticket.granted),
                );
            }
        }
        if failed && in_headers && config.suppress_caller_retries {
            self.set_http_response_header(RATELIMITED, Some("true"));
        }
    }

    /// Settles the pending request, if any, with `outcome`. Returns the
    /// retries Envoy made, when the settlement was written.
    fn settle(&mut self, outcome: Outcome) -> Option<(Pending, u32)> {
        let pending = self.pending.take()?;
        let config = self.shared.config();
        // Without a clock the reservation stays until it ages out.
        let now = self.shared.now()?;
        let key = self.shared.slot_key(pending.slot);
        let settled = cas_update(&mut HostStore, &key, CAS_ATTEMPTS, |state| {
            let settled = config.budget.settle(state, now, pending.ticket, outcome);
            // Nothing refunded or charged (no retries granted, a full
            // bucket): no write, so no contention with other workers.
            let write = (state != Some(settled.state.as_slice())).then(|| settled.state.clone());
            (
                (settled.retries_used, settled.remaining, settled.state),
                write,
            )
        });
        match settled {
            Ok((used, remaining, state)) => {
                self.shared.metrics(pending.slot, &config).remaining(
                    &config.budget,
                    &state,
                    remaining,
                );
                Some((pending, used))
            }
            Err(e) => {
                self.shared.shared_data_failed("settle the budget", &e);
                None
            }
        }
    }
}

impl HttpContext for RetryBudgetStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let config = self.shared.config();
        let slot = self.shared.slot(self.scope_name(&config.scope), &config);
        let metrics = self.shared.metrics(slot, &config);
        let Some(now) = self.shared.now() else {
            add(metrics.requests, 1);
            self.set_retry_headers(&config, 0);
            return Action::Continue;
        };
        let key = self.shared.slot_key(slot);
        let admitted = cas_update(&mut HostStore, &key, CAS_ATTEMPTS, |state| {
            let admission = config.budget.admit(state, now, config.attempts);
            (
                (
                    admission.ticket,
                    admission.remaining,
                    admission.state.clone(),
                ),
                Some(admission.state),
            )
        });
        let granted = match admitted {
            Ok((ticket, remaining, state)) => {
                metrics.remaining(&config.budget, &state, remaining);
                self.pending = Some(Pending {
                    slot,
                    ticket,
                    awaiting_trailers: None,
                });
                ticket.granted
            }
            Err(e) => {
                self.shared.shared_data_failed("read the budget", &e);
                0
            }
        };
        add(metrics.requests, 1);
        self.set_retry_headers(&config, granted);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.pending.is_none() {
            return Action::Continue;
        }
        let header = |name: &str| self.get_http_response_header(name);
        let status = header(":status")
            .and_then(|s| s.trim().parse::<u16>().ok())
            .unwrap_or(0);
        let grpc_status = header("grpc-status").and_then(|s| s.trim().parse::<u32>().ok());
        let attempts = header(ATTEMPT_COUNT).and_then(|s| s.trim().parse::<u32>().ok());
        let grpc = header("content-type").is_some_and(|t| t.starts_with("application/grpc"));
        if attempts.is_none() && !self.shared.warned_no_attempt_count.replace(true) {
            log(
                LogLevel::Warn,
                "retry-budget: responses carry no x-envoy-attempt-count: set include_attempt_count_in_response on the route's virtual host; until then a failed request counts as having used every retry granted",
            );
        }
        if grpc && grpc_status.is_none() {
            // Envoy retried on these headers alone (a gRPC status it would
            // retry comes in a trailers-only response), but whether the call
            // succeeded is in the trailers: settle there.
            if let Some(pending) = &mut self.pending {
                pending.awaiting_trailers = Some((attempts, status));
            }
            return Action::Continue;
        }
        self.answered(attempts, status, grpc_status, true);
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if let Some((attempts, status)) = self.pending.and_then(|p| p.awaiting_trailers) {
            let grpc_status = self
                .get_http_response_trailer("grpc-status")
                .and_then(|s| s.trim().parse::<u32>().ok());
            self.answered(attempts, status, grpc_status, false);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        match self.pending.and_then(|p| p.awaiting_trailers) {
            // A gRPC response that ended without trailers: its status is
            // unknown, neither a success nor a counted failure.
            Some((attempts, _)) => {
                self.settle(Outcome::Answered {
                    attempts,
                    verdict: Verdict::Other,
                });
            }
            // The stream ended without response headers: keep what was
            // charged (ratio mode) or release the reservation (token mode).
            None => {
                self.settle(Outcome::Unknown);
            }
        }
    }
}
