//! A VirtualService route's `corsPolicy` as istiod writes it: Envoy's CORS
//! filter on the listener (after the fault filter) and a `CorsPolicy` in the
//! route's `typed_per_filter_config` (`pilot/pkg/networking/core/route/route.go`,
//! `TranslateCORSPolicy`; the filter order in
//! `pilot/pkg/networking/core/listener_builder.go`).
//!
//! istiod puts the CORS filter on every HTTP connection manager; without a
//! route policy it passes every request unchanged, so the local mesh adds it
//! only to listeners where some route has a policy.

use serde::Deserialize;
use serde_json::{Value, json};

use super::MeshError;
use super::model::StringMatch;
use super::values::parse_go_duration;

/// The filter's name, and its key in a route's `typed_per_filter_config`.
pub(crate) const FILTER: &str = "envoy.filters.http.cors";

/// Istio's `CorsPolicy` (the fields of the `networking.istio.io/v1` CRD).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CorsPolicy {
    #[serde(default)]
    pub allow_origins: Option<Vec<StringMatch>>,
    /// Deprecated: exact origins; only read when `allowOrigins` is absent.
    #[serde(default)]
    pub allow_origin: Option<Vec<String>>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age: Option<String>,
    pub allow_credentials: Option<bool>,
    pub unmatched_preflights: Option<String>,
}

/// The CORS filter as istiod adds it to a connection manager (an empty
/// `Cors` config: the policies are per route).
pub(crate) fn filter() -> Value {
    json!({
        "name": FILTER,
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}
    })
}

/// Whether a route (Envoy JSON) carries a CORS policy.
pub(crate) fn has_policy(route: &Value) -> bool {
    route["typed_per_filter_config"].get(FILTER).is_some()
}

/// The route's `CorsPolicy`, as `TranslateCORSPolicy` builds it:
/// `allowOrigins` as string matchers (an empty match is left out), or the
/// deprecated `allowOrigin` as exact ones; the lists joined with commas;
/// `maxAge` in whole seconds; `allowCredentials` only when set; the filter
/// enabled for every request; preflights whose origin matches nothing
/// forwarded upstream unless `unmatchedPreflights: IGNORE`.
pub(crate) fn policy(resource: &str, path: &str, cors: &CorsPolicy) -> Result<Value, MeshError> {
    let mut out = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
    });
    out["forward_not_matching_preflights"] = json!(match cors.unmatched_preflights.as_deref() {
        Some("IGNORE") => false,
        None | Some("UNSPECIFIED") | Some("FORWARD") => true,
        Some(other) => {
            return Err(MeshError::Invalid {
                resource: resource.to_string(),
                message: format!(
                    "{path}.unmatchedPreflights: {other:?} is not one of UNSPECIFIED, FORWARD, IGNORE"
                ),
            });
        }
    });
    let origins: Option<Vec<Value>> = match (&cors.allow_origins, &cors.allow_origin) {
        (Some(matches), _) => Some(matches.iter().filter_map(origin_matcher).collect()),
        (None, Some(exact)) => Some(exact.iter().map(|o| json!({"exact": o})).collect()),
        (None, None) => None,
    };
    if let Some(origins) = origins {
        out["allow_origin_string_match"] = json!(origins);
    }
    if let Some(credentials) = cors.allow_credentials {
        out["allow_credentials"] = json!(credentials);
    }
    for (key, list) in [
        ("allow_headers", &cors.allow_headers),
        ("allow_methods", &cors.allow_methods),
        ("expose_headers", &cors.expose_headers),
    ] {
        // Go's strings.Join of an empty list is "", which Envoy reads as unset.
        if !list.is_empty() {
            out[key] = json!(list.join(","));
        }
    }
    if let Some(max_age) = &cors.max_age {
        let nanos = parse_go_duration(max_age).map_err(|e| MeshError::Invalid {
            resource: resource.to_string(),
            message: format!("{path}.maxAge: {e}"),
        })?;
        // `MaxAge.GetSeconds()`: the whole seconds, the rest dropped.
        out["max_age"] = json!((nanos / 1_000_000_000).to_string());
    }
    Ok(out)
}

/// `util.ConvertToEnvoyMatch`: exact, prefix or RE2 regex; a match with none
/// of them is left out.
fn origin_matcher(m: &StringMatch) -> Option<Value> {
    if let Some(exact) = &m.exact {
        Some(json!({"exact": exact}))
    } else if let Some(prefix) = &m.prefix {
        Some(json!({"prefix": prefix}))
    } else {
        m.regex
            .as_ref()
            .map(|regex| json!({"safe_regex": {"regex": regex}}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: Value) -> CorsPolicy {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn lists_are_joined_and_max_age_is_whole_seconds() {
        let out = policy(
            "VirtualService/x",
            "spec.http[0].corsPolicy",
            &read(json!({
                "allowOrigins": [{"exact": "https://a.example"}, {"regex": ".*\\.b\\.example"}, {}],
                "allowMethods": ["GET", "POST"],
                "allowHeaders": ["x-a", "x-b"],
                "exposeHeaders": ["x-c"],
                "maxAge": "90.5s",
                "allowCredentials": true,
            })),
        )
        .unwrap();
        assert_eq!(
            out["allow_origin_string_match"],
            json!([{"exact": "https://a.example"}, {"safe_regex": {"regex": ".*\\.b\\.example"}}])
        );
        assert_eq!(out["allow_methods"], "GET,POST");
        assert_eq!(out["allow_headers"], "x-a,x-b");
        assert_eq!(out["expose_headers"], "x-c");
        assert_eq!(out["max_age"], "90");
        assert_eq!(out["allow_credentials"], true);
        assert_eq!(out["forward_not_matching_preflights"], true);
    }

    #[test]
    fn unset_fields_stay_unset() {
        let out = policy("VirtualService/x", "p", &read(json!({}))).unwrap();
        for key in [
            "allow_origin_string_match",
            "allow_methods",
            "allow_credentials",
            "max_age",
        ] {
            assert!(out.get(key).is_none(), "{key} in {out}");
        }
    }

    #[test]
    fn ignore_keeps_unmatched_preflights_from_the_upstream() {
        let out = policy(
            "VirtualService/x",
            "p",
            &read(json!({"unmatchedPreflights": "IGNORE", "allowOrigin": ["https://a"]})),
        )
        .unwrap();
        assert_eq!(out["forward_not_matching_preflights"], false);
        assert_eq!(
            out["allow_origin_string_match"],
            json!([{"exact": "https://a"}])
        );
    }
}
