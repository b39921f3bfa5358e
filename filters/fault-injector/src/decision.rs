//! The decision: given a plain view of a request, which fault (if any) to
//! inject, and what the abort response looks like.

use std::net::IpAddr;
use std::time::Duration;

use mesh_policy::{HttpRequest, Percentage, draw, fnv1a64};

use crate::config::{AbortStatus, Config, DEFAULT_ABORT_BODY, HeaderControl, Rule};
use crate::rule_match::any_matches;

/// Salt for the delay draw (ASCII `delay`): the delay and the abort of one
/// request are drawn independently from the same entropy.
pub const DELAY_SALT: u64 = 0x64_65_6c_61_79;
/// Salt for the abort draw (ASCII `abort`).
pub const ABORT_SALT: u64 = 0x61_62_6f_72_74;

/// Asks for an HTTP abort with this status (200-599), as Envoy's header.
pub const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
/// Asks for a gRPC abort with this status code (1-16).
pub const ABORT_GRPC_HEADER: &str = "x-envoy-fault-abort-grpc-request";
/// The percentage of such requests to abort (capped by `maxPercentage`).
pub const ABORT_PERCENTAGE_HEADER: &str = "x-envoy-fault-abort-request-percentage";
/// Asks for a delay of this many milliseconds (cut to `maxDelay`).
pub const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
/// The percentage of such requests to delay (capped by `maxPercentage`).
pub const DELAY_PERCENTAGE_HEADER: &str = "x-envoy-fault-delay-request-percentage";
/// The label of faults that request headers asked for.
pub const HEADER_CONTROL_LABEL: &str = "header-control";

/// What the decision looks at, as plain values (the adapter reads them from
/// the host).
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    /// The `:path` header, query string included.
    pub path: &'a str,
    /// Every request header, names lowercase, in order.
    pub headers: &'a [(String, String)],
    /// The downstream address, when known and when the config needs it.
    pub source_address: Option<IpAddr>,
    /// Envoy's route name (`xds.route_name`), when known.
    pub route_name: Option<&'a str>,
    /// A fresh random number: the draw when request-id sampling is off or
    /// the request has no id.
    pub random: u64,
}

impl<'a> RequestView<'a> {
    /// The first value of a header: what Envoy's fault filter reads from
    /// its `x-envoy-fault-*` headers (`HeaderMap::get`), and the request id.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What Istio matching looks at.
    pub fn http(&self) -> HttpRequest<'a> {
        HttpRequest {
            method: self.method,
            path: self.path,
            headers: self.headers,
        }
    }
}

/// Where a fault came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOrigin {
    /// The rule at this index.
    Rule(usize),
    /// Request headers, through header control.
    HeaderControl,
}

/// An abort to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort {
    pub status: AbortStatus,
    /// The body (HTTP) or `grpc-message` (gRPC).
    pub body: String,
    /// Extra response headers from the configuration.
    pub headers: Vec<(String, String)>,
}

/// The fault to inject into one request: a delay, an abort, or a delay and
/// then an abort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub origin: FaultOrigin,
    /// The rule's label (name or index), or `header-control`.
    pub label: String,
    pub delay: Option<Duration>,
    pub abort: Option<Abort>,
}

/// The local response for an abort, ready for `send_http_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Fault {
    /// The value of the response header that reports this fault:
    /// `<faults>;rule=<label>`, faults being `delay=<duration>`,
    /// `abort=<status>` or `abort=grpc-<code>`, comma-separated, in the
    /// order they happen. For example `delay=2500ms,abort=503;rule=ratings`.
    pub fn header_value(&self) -> String {
        let mut parts = Vec::with_capacity(2);
        if let Some(delay) = self.delay {
            parts.push(format!("delay={}", header_duration(delay)));
        }
        match self.abort.as_ref().map(|a| a.status) {
            Some(AbortStatus::Http(code)) => parts.push(format!("abort={code}")),
            Some(AbortStatus::Grpc(code)) => parts.push(format!("abort=grpc-{code}")),
            None => {}
        }
        format!("{};rule={}", parts.join(","), self.label)
    }

    /// The abort's local response, with the reporting header
    /// (`response_header: header_value()`). HTTP: the status, the configured
    /// headers and the body. gRPC: HTTP 200 with `grpc-status` and
    /// `grpc-message` and no body (a trailers-only response), as Envoy's fault
    /// filter answers a gRPC request.
    pub fn local_reply(&self, response_header: &str) -> Option<LocalReply> {
        let abort = self.abort.as_ref()?;
        let mut headers = abort.headers.clone();
        headers.push((response_header.to_string(), self.header_value()));
        Some(match abort.status {
            AbortStatus::Http(code) => LocalReply {
                status: u32::from(code),
                headers,
                body: (!abort.body.is_empty()).then(|| abort.body.clone().into_bytes()),
            },
            AbortStatus::Grpc(code) => {
                headers.push(("content-type".into(), "application/grpc".into()));
                headers.push(("grpc-status".into(), code.to_string()));
                headers.push(("grpc-message".into(), abort.body.clone()));
                LocalReply {
                    status: 200,
                    headers,
                    body: None,
                }
            }
        })
    }
}

/// A delay in the response header: whole milliseconds where exact (every
/// delay header control grants, and most configured ones), else whole
/// microseconds or nanoseconds, so the value is one integer and a unit that
/// Go's grammar reads back.
fn header_duration(delay: Duration) -> String {
    let nanos = delay.as_nanos();
    if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

impl Config {
    /// Decides the fault for one request. Header control comes first when
    /// the request asks for a fault and one fires; otherwise the first rule
    /// whose match holds decides (later rules are not consulted, even if its
    /// percentages say no).
    pub fn decide(&self, request: &RequestView<'_>) -> Option<Fault> {
        let entropy = self.entropy(request);
        if let Some(control) = &self.header_control
            && let Some(fault) = header_fault(control, request, entropy)
        {
            return Some(fault);
        }
        let (index, rule) = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, rule)| any_matches(&rule.matches, request))?;
        rule_fault(index, rule, entropy)
    }

    /// The 64 bits the draws come from: the FNV-1a 64 hash of the request id
    /// when request-id sampling is on and the request has one, else the
    /// request's random number.
    pub fn entropy(&self, request: &RequestView<'_>) -> u64 {
        self.request_id_header
            .as_deref()
            .and_then(|name| request.header(name))
            .map_or(request.random, |id| fnv1a64(id.as_bytes()))
    }
}

fn rule_fault(index: usize, rule: &Rule, entropy: u64) -> Option<Fault> {
    let delay = rule
        .delay
        .filter(|d| d.percentage.fires(draw(entropy, DELAY_SALT)))
        .map(|d| d.fixed_delay);
    let abort = rule
        .abort
        .as_ref()
        .filter(|a| a.percentage.fires(draw(entropy, ABORT_SALT)))
        .map(|a| Abort {
            status: a.status,
            body: a.body.clone(),
            headers: a.headers.clone(),
        });
    (delay.is_some() || abort.is_some()).then(|| Fault {
        origin: FaultOrigin::Rule(index),
        label: rule.label.clone(),
        delay,
        abort,
    })
}

/// Envoy's header control: invalid values are ignored, as Envoy ignores
/// them; a delay is cut to `maxDelay`; a percentage header is capped by
/// `maxPercentage`, which also applies when the request gives none.
fn header_fault(control: &HeaderControl, request: &RequestView<'_>, entropy: u64) -> Option<Fault> {
    let requested_delay = control
        .delay
        .then(|| request.header(DELAY_HEADER))
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(|ms| Duration::from_millis(ms).min(control.max_delay));
    let requested_abort = control
        .abort
        .then(|| {
            let http = request
                .header(ABORT_HEADER)
                .and_then(|v| v.trim().parse::<u16>().ok())
                .filter(|code| (200..=599).contains(code))
                .map(AbortStatus::Http);
            let grpc = || {
                request
                    .header(ABORT_GRPC_HEADER)
                    .and_then(|v| v.trim().parse::<u8>().ok())
                    .filter(|code| (1..=16).contains(code))
                    .map(AbortStatus::Grpc)
            };
            http.or_else(grpc)
        })
        .flatten();
    if requested_delay.is_none() && requested_abort.is_none() {
        return None;
    }
    if !any_matches(&control.matches, request) {
        return None;
    }
    let share = |header: &str| {
        request
            .header(header)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .and_then(Percentage::from_percent)
            .map_or(control.max_percentage, |p| p.min(control.max_percentage))
    };
    let delay =
        requested_delay.filter(|_| share(DELAY_PERCENTAGE_HEADER).fires(draw(entropy, DELAY_SALT)));
    let abort = requested_abort
        .filter(|_| share(ABORT_PERCENTAGE_HEADER).fires(draw(entropy, ABORT_SALT)))
        .map(|status| Abort {
            status,
            body: DEFAULT_ABORT_BODY.to_string(),
            headers: Vec::new(),
        });
    (delay.is_some() || abort.is_some()).then(|| Fault {
        origin: FaultOrigin::HeaderControl,
        label: HEADER_CONTROL_LABEL.to_string(),
        delay,
        abort,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_policy::SplitMix64;
    use proptest::prelude::*;

    fn config(json: &str) -> Config {
        Config::from_json(json.as_bytes()).unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn request<'a>(path: &'a str, headers: &'a [(String, String)], random: u64) -> RequestView<'a> {
        RequestView {
            method: "GET",
            path,
            headers,
            source_address: None,
            route_name: None,
            random,
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let config = config(
            r#"{"rules": [
                {"name": "a", "match": [{"uri": {"prefix": "/a"}}], "abort": {"httpStatus": 500, "percentage": {"value": 100}}},
                {"name": "any", "abort": {"httpStatus": 503, "percentage": {"value": 100}}}
            ]}"#,
        );
        let fault = config.decide(&request("/a/1", &[], 0)).unwrap();
        assert_eq!(fault.label, "a");
        assert_eq!(fault.origin, FaultOrigin::Rule(0));
        let fault = config.decide(&request("/b", &[], 0)).unwrap();
        assert_eq!(fault.label, "any");
        assert_eq!(fault.abort.unwrap().status, AbortStatus::Http(503));
    }

    #[test]
    fn a_matching_rule_that_does_not_fire_stops_the_search() {
        let config = config(
            r#"{"rules": [
                {"match": [{"uri": {"prefix": "/a"}}], "abort": {"httpStatus": 500, "percentage": {"value": 0}}},
                {"abort": {"httpStatus": 503, "percentage": {"value": 100}}}
            ]}"#,
        );
        assert_eq!(config.decide(&request("/a", &[], 1)), None);
        assert!(config.decide(&request("/b", &[], 1)).is_some());
    }

    #[test]
    fn no_match_no_fault() {
        let config = config(
            r#"{"rules": [{"match": [{"headers": {"end-user": {"exact": "tester"}}}], "delay": {"fixedDelay": "1s", "percentage": {"value": 100}}}]}"#,
        );
        assert_eq!(config.decide(&request("/", &[], 0)), None);
        let headers = pairs(&[("end-user", "tester")]);
        let fault = config.decide(&request("/", &headers, 0)).unwrap();
        assert_eq!(fault.delay, Some(Duration::from_secs(1)));
        assert_eq!(fault.abort, None);
    }

    #[test]
    fn delay_and_abort_together() {
        let config = config(
            r#"{"rules": [{"name": "both", "abort": {"httpStatus": 503, "percentage": {"value": 100}}, "delay": {"fixedDelay": "2.5s", "percentage": {"value": 100}}}]}"#,
        );
        let fault = config.decide(&request("/", &[], 0)).unwrap();
        assert_eq!(fault.delay, Some(Duration::from_millis(2500)));
        assert_eq!(fault.header_value(), "delay=2500ms,abort=503;rule=both");
    }

    #[test]
    fn method_route_and_source_matter() {
        let config = config(
            r#"{"rules": [{"match": [{"method": {"exact": "POST"}, "routeName": "r1",
                 "sourceIpBlocks": ["192.168.0.0/16"]}], "abort": {"httpStatus": 500, "percentage": {"value": 100}}}]}"#,
        );
        let mut view = request("/", &[], 0);
        view.method = "POST";
        view.route_name = Some("r1");
        view.source_address = Some("192.168.3.4".parse().unwrap());
        assert!(config.decide(&view).is_some());
        view.method = "GET";
        assert!(config.decide(&view).is_none());
    }

    #[test]
    fn http_abort_reply_has_body_and_headers() {
        let config = config(
            r#"{"rules": [{"name": "r", "abort": {"httpStatus": 503, "headers": {"x-chaos": "1"}, "percentage": {"value": 100}}}]}"#,
        );
        let reply = config
            .decide(&request("/", &[], 0))
            .unwrap()
            .local_reply("x-fault-injected")
            .unwrap();
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body.as_deref(), Some(&b"fault filter abort"[..]));
        assert_eq!(
            reply.headers,
            pairs(&[("x-chaos", "1"), ("x-fault-injected", "abort=503;rule=r")])
        );
    }

    #[test]
    fn grpc_abort_reply_is_trailers_only() {
        let config = config(
            r#"{"rules": [{"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 100}}}]}"#,
        );
        let fault = config.decide(&request("/", &[], 0)).unwrap();
        assert_eq!(fault.header_value(), "abort=grpc-14;rule=0");
        let reply = fault.local_reply("x-f").unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, None);
        assert!(reply.headers.contains(&("grpc-status".into(), "14".into())));
        assert!(
            reply
                .headers
                .contains(&("grpc-message".into(), "fault filter abort".into()))
        );
    }

    #[test]
    fn a_delay_has_no_local_reply() {
        let config = config(
            r#"{"rules": [{"delay": {"fixedDelay": "10ms", "percentage": {"value": 100}}}]}"#,
        );
        let fault = config.decide(&request("/", &[], 0)).unwrap();
        assert_eq!(fault.local_reply("x"), None);
        assert_eq!(fault.header_value(), "delay=10ms;rule=0");
    }

    #[test]
    fn request_id_sampling_is_predictable() {
        let config = config(
            r#"{"requestIdHeader": "x-request-id",
                "rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 50}}}]}"#,
        );
        let mut fired = 0;
        for n in 0..1000 {
            let id = format!("req-{n}");
            let headers = pairs(&[("x-request-id", &id)]);
            let expected = Percentage::from_percent(50.0)
                .unwrap()
                .fires(draw(fnv1a64(id.as_bytes()), ABORT_SALT));
            let decided = config.decide(&request("/", &headers, n)).is_some();
            assert_eq!(decided, expected, "{id}");
            fired += usize::from(decided);
        }
        assert!((430..570).contains(&fired), "{fired}");
    }

    #[test]
    fn without_a_request_id_the_random_number_decides() {
        let config = config(
            r#"{"requestIdHeader": "x-request-id",
                "rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 50}}}]}"#,
        );
        let outcomes: std::collections::HashSet<bool> = (0..64)
            .map(|n| config.decide(&request("/", &[], splitmix(n))).is_some())
            .collect();
        assert_eq!(outcomes.len(), 2);
    }

    fn splitmix(seed: u64) -> u64 {
        SplitMix64::new(seed).next_u64()
    }

    #[test]
    fn percentages_hold_statistically() {
        let config = config(
            r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 20}},
                           "delay": {"fixedDelay": "1ms", "percentage": {"value": 5}}}]}"#,
        );
        let mut rng = SplitMix64::new(42);
        let (mut aborts, mut delays) = (0, 0);
        for _ in 0..20_000 {
            if let Some(fault) = config.decide(&request("/", &[], rng.next_u64())) {
                aborts += usize::from(fault.abort.is_some());
                delays += usize::from(fault.delay.is_some());
            }
        }
        assert!((3_700..4_300).contains(&aborts), "{aborts}");
        assert!((850..1_150).contains(&delays), "{delays}");
    }

    #[test]
    fn header_control_is_off_by_default() {
        let config = config(
            r#"{"rules": [{"match": [{"uri": {"exact": "/x"}}], "abort": {"httpStatus": 500, "percentage": {"value": 100}}}]}"#,
        );
        let headers = pairs(&[(ABORT_HEADER, "503"), (DELAY_HEADER, "100")]);
        assert_eq!(config.decide(&request("/", &headers, 0)), None);
    }

    #[test]
    fn header_control_aborts_and_delays() {
        let config = config(r#"{"headerControl": {"maxDelay": "1s"}}"#);
        let headers = pairs(&[(ABORT_HEADER, "503"), (DELAY_HEADER, "100")]);
        let fault = config.decide(&request("/", &headers, 0)).unwrap();
        assert_eq!(fault.origin, FaultOrigin::HeaderControl);
        assert_eq!(fault.delay, Some(Duration::from_millis(100)));
        assert_eq!(
            fault.header_value(),
            "delay=100ms,abort=503;rule=header-control"
        );
        let grpc = pairs(&[(ABORT_GRPC_HEADER, "14")]);
        let fault = config.decide(&request("/", &grpc, 0)).unwrap();
        assert_eq!(fault.abort.unwrap().status, AbortStatus::Grpc(14));
    }

    #[test]
    fn header_control_cuts_long_delays() {
        let config = config(r#"{"headerControl": {"maxDelay": "250ms"}}"#);
        let headers = pairs(&[(DELAY_HEADER, "60000")]);
        let fault = config.decide(&request("/", &headers, 0)).unwrap();
        assert_eq!(fault.delay, Some(Duration::from_millis(250)));
    }

    #[test]
    fn header_control_ignores_bad_values() {
        let config = config(r#"{"headerControl": {}}"#);
        for (name, value) in [
            (ABORT_HEADER, "99"),
            (ABORT_HEADER, "600"),
            (ABORT_HEADER, "abc"),
            (ABORT_GRPC_HEADER, "0"),
            (ABORT_GRPC_HEADER, "17"),
            (DELAY_HEADER, "0"),
            (DELAY_HEADER, "-5"),
            (DELAY_HEADER, "1s"),
        ] {
            let headers = pairs(&[(name, value)]);
            assert_eq!(
                config.decide(&request("/", &headers, 0)),
                None,
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn header_control_honours_its_switches_and_match() {
        let config = config(
            r#"{"headerControl": {"delay": false, "match": [{"headers": {"x-chaos-ok": {}}}]}}"#,
        );
        let delay_only = pairs(&[(DELAY_HEADER, "10"), ("x-chaos-ok", "1")]);
        assert_eq!(config.decide(&request("/", &delay_only, 0)), None);
        let unmatched = pairs(&[(ABORT_HEADER, "500")]);
        assert_eq!(config.decide(&request("/", &unmatched, 0)), None);
        let matched = pairs(&[(ABORT_HEADER, "500"), ("x-chaos-ok", "1")]);
        assert!(config.decide(&request("/", &matched, 0)).is_some());
    }

    #[test]
    fn header_control_percentages_are_capped() {
        let config = config(r#"{"headerControl": {"maxPercentage": {"value": 10}}}"#);
        let mut rng = SplitMix64::new(9);
        let count = |percent: &str, rng: &mut SplitMix64| {
            let headers = pairs(&[(ABORT_HEADER, "500"), (ABORT_PERCENTAGE_HEADER, percent)]);
            (0..10_000)
                .filter(|_| {
                    config
                        .decide(&request("/", &headers, rng.next_u64()))
                        .is_some()
                })
                .count()
        };
        let capped = count("100", &mut rng);
        assert!((850..1150).contains(&capped), "{capped}");
        let lower = count("2", &mut rng);
        assert!((130..270).contains(&lower), "{lower}");
        assert_eq!(count("0", &mut rng), 0);
    }

    #[test]
    fn header_control_comes_before_rules() {
        let config = config(
            r#"{"rules": [{"name": "r", "abort": {"httpStatus": 500, "percentage": {"value": 100}}}], "headerControl": {}}"#,
        );
        let headers = pairs(&[(ABORT_HEADER, "418")]);
        let fault = config.decide(&request("/", &headers, 0)).unwrap();
        assert_eq!(fault.label, HEADER_CONTROL_LABEL);
        let fault = config.decide(&request("/", &[], 0)).unwrap();
        assert_eq!(fault.label, "r");
    }

    fn header_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(("[a-z-]{1,12}", ".{0,16}"), 0..6)
    }

    proptest! {
        #[test]
        fn a_rule_at_100_percent_always_fires_and_at_0_never(
            random in any::<u64>(), path in "/[a-z/?=&]{0,20}", headers in header_strategy()
        ) {
            let always = config(r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 100}},
                                              "delay": {"fixedDelay": "1s", "percentage": {"value": 100}}}]}"#);
            let never = config(r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 0}},
                                             "delay": {"fixedDelay": "1s", "percentage": {"value": 0}}}]}"#);
            let view = request(&path, &headers, random);
            let fault = always.decide(&view);
            prop_assert!(fault.as_ref().is_some_and(|f| f.abort.is_some() && f.delay.is_some()));
            prop_assert_eq!(never.decide(&view), None);
        }

        #[test]
        fn the_same_request_id_always_gets_the_same_decision(
            id in "[0-9a-f-]{1,36}", first in any::<u64>(), second in any::<u64>(),
            percent in 0.0f64..=100.0
        ) {
            let config = config(&format!(
                r#"{{"requestIdHeader": "x-request-id", "rules": [{{
                    "abort": {{"httpStatus": 503, "percentage": {{"value": {percent}}}}},
                    "delay": {{"fixedDelay": "5ms", "percentage": {{"value": {percent}}}}}}}]}}"#
            ));
            let headers = vec![("x-request-id".to_string(), id)];
            prop_assert_eq!(
                config.decide(&request("/", &headers, first)),
                config.decide(&request("/", &headers, second))
            );
        }

        #[test]
        fn header_delays_never_exceed_the_maximum(ms in any::<u64>(), random in any::<u64>()) {
            let config = config(r#"{"headerControl": {"maxDelay": "750ms"}}"#);
            let headers = vec![(DELAY_HEADER.to_string(), ms.to_string())];
            if let Some(fault) = config.decide(&request("/", &headers, random)) {
                prop_assert!(fault.delay.is_some_and(|d| d <= Duration::from_millis(750)));
            }
        }

        #[test]
        fn deciding_never_panics(
            path in ".{0,40}", method in ".{0,8}", headers in header_strategy(), random in any::<u64>()
        ) {
            let config = config(
                r#"{"requestIdHeader": "x-request-id", "headerControl": {},
                    "rules": [{"match": [{"uri": {"regex": "/a.*"}, "queryParams": {"q": {"prefix": "x"}},
                                          "headers": {"x-a": {}}, "withoutHeaders": {"x-b": {"exact": "1"}}}],
                               "abort": {"httpStatus": 500, "percentage": {"value": 100}}},
                              {"delay": {"fixedDelay": "1ms", "percentage": {"value": 50}}}]}"#,
            );
            let mut view = request(&path, &headers, random);
            view.method = &method;
            let _ = config.decide(&view);
        }
    }
}
