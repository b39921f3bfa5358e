//! The sticky canary router as a proxy-wasm plugin: the thin adapter between
//! the host and `canary-router-filter`. It reads each request into a plain
//! view, asks the filter crate which subset it goes to, sets the route
//! header (overwriting whatever the client sent) so that Envoy's route
//! configuration picks the subset's cluster, asks Envoy to recompute the
//! route, and adds the assignment cookie to the response when it is new or
//! changed.
//!
//! The host glue the mesh plugins share comes from `mesh_policy::adapter`:
//! reading and refusing the configuration (one line naming the field), the
//! host clock (an `Option`: without it the filter decides without cookies),
//! the per-VM random seed and the VM's environment (signing keys from
//! `vmConfig.env`). What lives here and nowhere else is the metrics. See the
//! README beside this crate for the configuration, the cookie and the
//! metrics.

use std::cell::RefCell;
use std::rc::Rc;

use canary_router_filter::{Config, Decision, Reason, RequestView, SplitMix64};
use mesh_policy::adapter::{configure, env_var, log, now, random_seed};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(CanaryRoot::default())
    });
}}

/// Every log line starts with this, so the plugin's lines stand out in
/// Envoy's log.
const LOG_PREFIX: &str = "canary-router";

/// Metric ids; `None` where the host refused to define one.
#[derive(Debug, Default)]
struct Metrics {
    /// Per subset, in configuration order: requests routed there.
    routed: Vec<Option<u32>>,
    /// Per subset: new users assigned there (a first cookie).
    assigned: Vec<Option<u32>>,
    sticky_hits: Option<u32>,
    reassignments: Option<u32>,
    rejected_cookies: Option<u32>,
    rule_matches: Option<u32>,
    outside_cookie_path: Option<u32>,
}

impl Metrics {
    fn define(config: &Config) -> Self {
        let counter = |name: &str| hostcalls::define_metric(MetricType::Counter, name).ok();
        let per_subset = |what: &str| {
            config
                .subsets()
                .iter()
                .map(|s| counter(&format!("canary_router.{what}.{}", s.name)))
                .collect()
        };
        Self {
            routed: per_subset("routed"),
            assigned: per_subset("assigned"),
            sticky_hits: counter("canary_router.sticky_hits"),
            reassignments: counter("canary_router.reassignments"),
            rejected_cookies: counter("canary_router.rejected_cookies"),
            rule_matches: counter("canary_router.rule_matches"),
            outside_cookie_path: counter("canary_router.outside_cookie_path"),
        }
    }

    fn increment(id: Option<u32>) {
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn record(&self, decision: &Decision<'_>) {
        Self::increment(self.routed.get(decision.subset).copied().flatten());
        match decision.reason {
            Reason::Rule { .. } => Self::increment(self.rule_matches),
            Reason::Sticky => Self::increment(self.sticky_hits),
            Reason::Reassigned { .. } => Self::increment(self.reassignments),
            Reason::Assigned { .. } => {
                Self::increment(self.assigned.get(decision.subset).copied().flatten());
            }
            Reason::OutsideCookiePath => Self::increment(self.outside_cookie_path),
            // Counted by `routed` alone; logged by the stream.
            Reason::NoClock => {}
        }
        if decision.rejected.is_some() {
            Self::increment(self.rejected_cookies);
        }
    }
}

/// What the root context shares with its stream contexts (one VM, one
/// thread: `Rc` and `RefCell`).
#[derive(Debug)]
struct Shared {
    config: RefCell<Option<Rc<Config>>>,
    metrics: RefCell<Rc<Metrics>>,
    rng: RefCell<SplitMix64>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            config: RefCell::new(None),
            metrics: RefCell::new(Rc::new(Metrics::default())),
            rng: RefCell::new(SplitMix64::new(0)),
        }
    }
}

#[derive(Debug, Default)]
struct CanaryRoot {
    shared: Rc<Shared>,
}

impl Context for CanaryRoot {}

impl RootContext for CanaryRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        *self.shared.rng.borrow_mut() = SplitMix64::new(random_seed());
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let Some(config) = configure::<Config>(LOG_PREFIX, &env_var) else {
            return false;
        };
        let config = Rc::new(config);
        *self.shared.metrics.borrow_mut() = Rc::new(Metrics::define(&config));
        let subsets = config
            .subsets()
            .iter()
            .map(|s| format!("{}={}", s.name, s.weight))
            .collect::<Vec<_>>()
            .join(", ");
        log(
            LogLevel::Info,
            &format!(
                "{LOG_PREFIX}: configured subsets {subsets}, {} rule(s), route header {}, cookie {} ({})",
                config.rules().len(),
                config.route_header(),
                config.cookie().codec.name(),
                if config.cookie().codec.signed() {
                    "signed"
                } else {
                    "unsigned"
                },
            ),
        );
        *self.shared.config.borrow_mut() = Some(config);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(CanaryStream {
            config: self.shared.config.borrow().clone(),
            shared: Rc::clone(&self.shared),
            set_cookie: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct CanaryStream {
    config: Option<Rc<Config>>,
    shared: Rc<Shared>,
    /// The `Set-Cookie` value to add to the response.
    set_cookie: Option<String>,
}

impl Context for CanaryStream {}

impl HttpContext for CanaryStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        let headers = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        let path = headers
            .iter()
            .find(|(name, _)| name == ":path")
            .map_or("/", |(_, value)| value.as_str());
        let random = self.shared.rng.borrow_mut().next_u64();
        let view = RequestView {
            headers: &headers,
            path,
            now: now().map(|since| since.as_secs()),
            random,
        };
        let decision = config.decide(&view);
        // Replacing drops every value the client sent: it cannot pick its
        // own subset.
        let _ = hostcalls::set_map_value(
            MapType::HttpRequestHeaders,
            config.route_header(),
            Some(decision.subset_name),
        );
        // Envoy chose a route before this filter ran. Envoy 1.40 clears the
        // route cache itself after an ABI 0.2.1 plugin changes headers, but
        // newer ABIs need this call; hosts without it answer NotFound.
        let _ = hostcalls::call_foreign_function("clear_route_cache", None);
        self.shared.metrics.borrow().record(&decision);
        if decision.reason == Reason::NoClock {
            log(
                LogLevel::Warn,
                &format!("{LOG_PREFIX}: the host clock failed: default subset, no cookie"),
            );
        }
        if let Some(why) = decision.rejected {
            log(
                LogLevel::Debug,
                &format!(
                    "{LOG_PREFIX}: ignored the {} cookie: {why}",
                    config.cookie().codec.name()
                ),
            );
        }
        self.set_cookie = decision.set_cookie;
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (Some(set_cookie), Some(config)) = (self.set_cookie.take(), &self.config) else {
            return Action::Continue;
        };
        // Added beside the application's own cookies, never replacing them;
        // if the application sets this very cookie itself, its word stands.
        let name = config.cookie().codec.name();
        let app_sets_it = hostcalls::get_map(MapType::HttpResponseHeaders)
            .unwrap_or_default()
            .iter()
            .any(|(key, value)| {
                key.eq_ignore_ascii_case("set-cookie")
                    && value
                        .trim_start()
                        .strip_prefix(name)
                        .is_some_and(|rest| rest.trim_start().starts_with('='))
            });
        if !app_sets_it {
            let _ =
                hostcalls::add_map_value(MapType::HttpResponseHeaders, "set-cookie", &set_cookie);
        }
        Action::Continue
    }
}
