//! Istio's value types in Envoy's terms: durations, percentages, string
//! matches.

use serde_json::{Value, json};

use super::model::{Percent, StringMatch};

/// A Go duration as Istio writes them (`10s`, `0.5s`, `250ms`, `1m30s`,
/// `1h`), as a proto `Duration` JSON string (`"90.000000000s"`).
///
/// Kubernetes stores Istio durations as Go's `time.ParseDuration` reads them:
/// a sequence of decimal numbers, each with a unit (`ns`, `us`/`µs`, `ms`,
/// `s`, `m`, `h`). Negative durations are meaningless for every field that
/// takes one here, so they are refused.
pub(crate) fn duration(text: &str) -> Result<String, String> {
    let nanos = parse_go_duration(text)?;
    Ok(format!(
        "{}.{:09}s",
        nanos / 1_000_000_000,
        nanos % 1_000_000_000
    ))
}

/// Nanoseconds of a Go duration: mesh-policy's parser (Go's grammar, in
/// integer arithmetic), the one the plugins use too.
pub(crate) fn parse_go_duration(text: &str) -> Result<u128, String> {
    mesh_policy::parse_duration(text)
        .map(|duration| duration.as_nanos())
        .map_err(|error| error.to_string())
}

/// Istio's `Percent` (a double, 0 to 100) as Envoy's `FractionalPercent` per
/// million, as Istio translates it (truncating below a millionth).
pub(crate) fn per_million(percent: &Percent) -> Value {
    let value = percent.value.unwrap_or(0.0).clamp(0.0, 100.0);
    json!({"numerator": (value * 10_000.0) as u64, "denominator": "MILLION"})
}

/// A deprecated integer percentage (`delay.percent`, `mirrorPercent`) as a
/// `FractionalPercent` per hundred, as Istio translates it.
pub(crate) fn per_hundred(percent: u32) -> Value {
    json!({"numerator": percent.min(100), "denominator": "HUNDRED"})
}

/// How Istio turns a `StringMatch` into an Envoy header or query matcher:
/// absent, empty or the regex `*` mean "present"; otherwise `exact`, `prefix`
/// or `safe_regex` (RE2, matching the whole value).
pub(crate) enum Matcher {
    Present,
    String(Value),
}

pub(crate) fn string_match(m: Option<&StringMatch>) -> Matcher {
    let Some(m) = m else {
        return Matcher::Present;
    };
    if let Some(exact) = &m.exact {
        Matcher::String(json!({"exact": exact}))
    } else if let Some(prefix) = &m.prefix {
        Matcher::String(json!({"prefix": prefix}))
    } else if let Some(regex) = &m.regex {
        if regex == "*" {
            Matcher::Present
        } else {
            Matcher::String(json!({"safe_regex": {"regex": regex}}))
        }
    } else {
        Matcher::Present
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_become_proto_durations() {
        assert_eq!(duration("10s").unwrap(), "10.000000000s");
        assert_eq!(duration("0.5s").unwrap(), "0.500000000s");
        assert_eq!(duration("250ms").unwrap(), "0.250000000s");
        assert_eq!(duration("1m30s").unwrap(), "90.000000000s");
        assert_eq!(duration("1h").unwrap(), "3600.000000000s");
        assert_eq!(duration("1.5h").unwrap(), "5400.000000000s");
        assert_eq!(duration("0").unwrap(), "0.000000000s");
        assert_eq!(duration("750us").unwrap(), "0.000750000s");
        // Integer arithmetic: no float rounding of many-digit fractions.
        assert_eq!(duration("0.000000001s").unwrap(), "0.000000001s");
        assert_eq!(duration("1.000000001s").unwrap(), "1.000000001s");
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in ["", "soon", "10", "s", "-1s", "1x", "1.2.3s", "1d"] {
            assert!(duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn percentages_follow_istio() {
        let percent = |value| Percent { value: Some(value) };
        assert_eq!(
            per_million(&percent(50.0)),
            json!({"numerator": 500_000, "denominator": "MILLION"})
        );
        assert_eq!(per_million(&percent(0.1))["numerator"], 1_000);
        assert_eq!(per_million(&Percent { value: None })["numerator"], 0);
        assert_eq!(
            per_hundred(75),
            json!({"numerator": 75, "denominator": "HUNDRED"})
        );
    }

    #[test]
    fn string_matches() {
        let m = |exact: Option<&str>, prefix: Option<&str>, regex: Option<&str>| StringMatch {
            exact: exact.map(str::to_string),
            prefix: prefix.map(str::to_string),
            regex: regex.map(str::to_string),
        };
        let json_of = |m: Matcher| match m {
            Matcher::Present => json!("present"),
            Matcher::String(v) => v,
        };
        assert_eq!(
            json_of(string_match(Some(&m(Some("a"), None, None)))),
            json!({"exact": "a"})
        );
        assert_eq!(
            json_of(string_match(Some(&m(None, Some("/a"), None)))),
            json!({"prefix": "/a"})
        );
        assert_eq!(
            json_of(string_match(Some(&m(None, None, Some(".*62.*"))))),
            json!({"safe_regex": {"regex": ".*62.*"}})
        );
        assert_eq!(
            json_of(string_match(Some(&m(None, None, Some("*"))))),
            json!("present")
        );
        assert_eq!(
            json_of(string_match(Some(&m(None, None, None)))),
            json!("present")
        );
        assert_eq!(json_of(string_match(None)), json!("present"));
    }
}
