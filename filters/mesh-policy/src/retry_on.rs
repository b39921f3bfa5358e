//! Envoy's retry conditions, as Istio's `retryOn` writes them: one
//! comma-separated list mixing HTTP conditions (`x-envoy-retry-on`), gRPC
//! conditions (`x-envoy-retry-grpc-on`) and bare status codes (which become
//! `retriable-status-codes` plus `x-envoy-retriable-status-codes`).
//!
//! References: Envoy's router documentation (`x-envoy-retry-on`,
//! `x-envoy-retry-grpc-on`, `x-envoy-retriable-status-codes`) and Istio's
//! `HTTPRetry.retryOn` with its default list.

/// Istio 1.30's default `retryOn`: pilot's `defaultRetryOn` in
/// `pilot/pkg/networking/core/route/retry/retry.go` (tag 1.30.3, the same on
/// `release-1.30` and master), which `DefaultPolicy` sends with **no**
/// `retriable_status_codes`: `retriable-status-codes` is among the
/// conditions, but with no code listed it retries none, so an upstream 503
/// is answered, not retried. (Istio before 1.24 listed 503; 1.24 dropped it
/// behind a flag, istio/istio#52111, and the flag has since gone.)
pub const ISTIO_DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// Conditions of `x-envoy-retry-on` (Envoy's router documentation).
pub const HTTP_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
];

/// Conditions of `x-envoy-retry-grpc-on`, with their gRPC status codes.
pub const GRPC_CONDITIONS: &[(&str, u32)] = &[
    ("cancelled", 1),
    ("deadline-exceeded", 4),
    ("resource-exhausted", 8),
    ("internal", 13),
    ("unavailable", 14),
];

/// Conditions under which Envoy answers 503 itself when the upstream never
/// gave a response (reset, refused or failed connection).
const LOCAL_503: &[&str] = &[
    "reset",
    "reset-before-request",
    "connect-failure",
    "refused-stream",
    "http3-post-connect-failure",
];

/// Why a `retryOn` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryOnError {
    #[error("is empty")]
    Empty,
    #[error(
        "{0:?} is not an Envoy retry condition (5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, ..., a gRPC condition such as unavailable, or a status code)"
    )]
    Unknown(String),
    #[error("{0} is not an HTTP status code (100-599)")]
    BadStatus(String),
}

/// A validated list of retry conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOn {
    http: Vec<&'static str>,
    grpc: Vec<(&'static str, u32)>,
    status_codes: Vec<u16>,
}

impl RetryOn {
    /// Parses `5xx,reset,unavailable,503`: names are trimmed and matched
    /// exactly (Envoy's are lower case); duplicates are dropped.
    pub fn parse(list: &str) -> Result<Self, RetryOnError> {
        let mut retry_on = Self {
            http: Vec::new(),
            grpc: Vec::new(),
            status_codes: Vec::new(),
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if let Some(known) = HTTP_CONDITIONS.iter().find(|c| **c == name) {
                if !retry_on.http.contains(known) {
                    retry_on.http.push(known);
                }
            } else if let Some(known) = GRPC_CONDITIONS.iter().find(|(c, _)| *c == name) {
                if !retry_on.grpc.contains(known) {
                    retry_on.grpc.push(*known);
                }
            } else if name.bytes().all(|b| b.is_ascii_digit()) {
                let code = name
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| RetryOnError::BadStatus(name.to_string()))?;
                if !retry_on.status_codes.contains(&code) {
                    retry_on.status_codes.push(code);
                }
            } else {
                return Err(RetryOnError::Unknown(name.to_string()));
            }
        }
        if retry_on.http.is_empty() && retry_on.grpc.is_empty() && retry_on.status_codes.is_empty()
        {
            return Err(RetryOnError::Empty);
        }
        if !retry_on.status_codes.is_empty() && !retry_on.http.contains(&"retriable-status-codes") {
            retry_on.http.push("retriable-status-codes");
        }
        Ok(retry_on)
    }

    /// Istio 1.30's default ([`ISTIO_DEFAULT_RETRY_ON`]): connection
    /// failures and refused streams, gRPC `unavailable` and `cancelled`,
    /// and no status code.
    pub fn istio_default() -> Self {
        Self {
            http: vec![
                "connect-failure",
                "refused-stream",
                "retriable-status-codes",
            ],
            grpc: vec![("unavailable", 14), ("cancelled", 1)],
            status_codes: Vec::new(),
        }
    }

    /// The value of `x-envoy-retry-on`, if any HTTP condition is set.
    pub fn retry_on_header(&self) -> Option<String> {
        (!self.http.is_empty()).then(|| self.http.join(","))
    }

    /// The value of `x-envoy-retry-grpc-on`, if any gRPC condition is set.
    pub fn retry_grpc_on_header(&self) -> Option<String> {
        (!self.grpc.is_empty()).then(|| {
            self.grpc
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// The value of `x-envoy-retriable-status-codes`, if codes were listed.
    pub fn retriable_status_codes_header(&self) -> Option<String> {
        (!self.status_codes.is_empty()).then(|| {
            self.status_codes
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// Whether a final response is a failure these conditions would have
    /// retried: what the budgets count as a failed request. `grpc_status` is
    /// the `grpc-status` response header (a trailers-only gRPC response),
    /// the only place Envoy looks for it when deciding a retry.
    pub fn is_failure(&self, status: u16, grpc_status: Option<u32>) -> bool {
        let has = |name: &str| self.http.contains(&name);
        (has("5xx") && status >= 500)
            || (has("gateway-error") && matches!(status, 502..=504))
            || (has("retriable-4xx") && status == 409)
            || (status == 503 && LOCAL_503.iter().any(|c| has(c)))
            || self.status_codes.contains(&status)
            || grpc_status.is_some_and(|g| self.grpc.iter().any(|(_, code)| *code == g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three headers a list becomes.
    fn headers(on: &RetryOn) -> [Option<String>; 3] {
        [
            on.retry_on_header(),
            on.retry_grpc_on_header(),
            on.retriable_status_codes_header(),
        ]
    }

    fn some(values: [&str; 3]) -> [Option<String>; 3] {
        values.map(|v| (!v.is_empty()).then(|| v.to_string()))
    }

    #[test]
    fn splits_istio_list_into_envoy_headers() {
        // Istio's default before 1.24, with 503 listed.
        let on =
            RetryOn::parse("connect-failure,refused-stream,unavailable,cancelled,503").unwrap();
        assert_eq!(
            headers(&on),
            some([
                "connect-failure,refused-stream,retriable-status-codes",
                "unavailable,cancelled",
                "503"
            ])
        );
    }

    #[test]
    fn istio_default_is_istios_list() {
        assert_eq!(
            RetryOn::istio_default(),
            RetryOn::parse(ISTIO_DEFAULT_RETRY_ON).unwrap()
        );
    }

    #[test]
    fn istio_default_lists_no_status_code() {
        // Istio 1.30's DefaultPolicy: the conditions, no retriable_status_codes.
        let on = RetryOn::istio_default();
        assert_eq!(
            headers(&on),
            some([
                "connect-failure,refused-stream,retriable-status-codes",
                "unavailable,cancelled",
                ""
            ])
        );
        // Not retried for its status: an upstream 500 or 429 is answered.
        assert!(!on.is_failure(500, None));
        assert!(!on.is_failure(429, None));
        // A 503 still counts: Envoy answers 503 itself for the connection
        // failures and refused streams these conditions retry.
        assert!(on.is_failure(503, None));
        assert!(on.is_failure(200, Some(14)));
        assert!(!on.is_failure(200, Some(13)));
    }

    #[test]
    fn grpc_only_has_no_http_header() {
        let on = RetryOn::parse(" unavailable ").unwrap();
        assert_eq!(on.retry_on_header(), None);
        assert_eq!(on.retriable_status_codes_header(), None);
    }

    #[test]
    fn duplicates_are_dropped() {
        let on = RetryOn::parse("5xx,5xx,503,503").unwrap();
        assert_eq!(
            on.retry_on_header().as_deref(),
            Some("5xx,retriable-status-codes")
        );
        assert_eq!(on.retriable_status_codes_header().as_deref(), Some("503"));
    }

    #[test]
    fn refuses_unknown_names_and_codes() {
        assert_eq!(
            RetryOn::parse("5xx,5XX"),
            Err(RetryOnError::Unknown("5XX".into()))
        );
        assert_eq!(
            RetryOn::parse("700"),
            Err(RetryOnError::BadStatus("700".into()))
        );
        assert_eq!(RetryOn::parse(" , "), Err(RetryOnError::Empty));
    }

    #[test]
    fn failures_follow_the_conditions() {
        let five = RetryOn::parse("5xx").unwrap();
        assert!(five.is_failure(500, None));
        assert!(five.is_failure(503, None));
        assert!(!five.is_failure(404, None));
        let gateway = RetryOn::parse("gateway-error").unwrap();
        assert!(gateway.is_failure(502, None));
        assert!(!gateway.is_failure(500, None));
        let reset = RetryOn::parse("reset").unwrap();
        assert!(reset.is_failure(503, None));
        assert!(!reset.is_failure(500, None));
        let codes = RetryOn::parse("409,429").unwrap();
        assert!(codes.is_failure(429, None));
        assert!(!codes.is_failure(500, None));
        let grpc = RetryOn::parse("unavailable").unwrap();
        assert!(grpc.is_failure(200, Some(14)));
        assert!(!grpc.is_failure(200, Some(0)));
        assert!(
            RetryOn::parse("retriable-4xx")
                .unwrap()
                .is_failure(409, None)
        );
    }
}
