//! Durations as Istio and Go write them, in integer nanoseconds.
//!
//! The grammar is Go's `time.ParseDuration` (Go's `src/time/format.go`):
//! `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units `ns`, `us`, `µs` (U+00B5),
//! `μs` (U+03BC), `ms`, `s`, `m`, `h`; a bare `0` (after an optional sign)
//! is zero; every other term needs a unit; no white space anywhere. As in
//! Go, an integer part beyond 2^63 or a total beyond the range of an `i64`
//! of nanoseconds is an overflow, and fraction digits past what fits in 63
//! bits are ignored. Where Go scales a fraction in floating point, this
//! crate truncates the exact product (`fraction × unit / 10^digits`), so a
//! result can differ from Go's by a nanosecond only when the fraction has
//! more significant digits than a double holds.
//!
//! [`format_duration`] writes Go's `Duration.String()` form (`1h2m3.5s`,
//! `1.5ms`, `250µs`, `0s`), which [`parse_duration`] reads back exactly.

use std::time::Duration;

/// Why a duration string was refused. Each message quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration (write it as Go does: 300ms, 1.5s, 2h45m)")]
    Empty,
    #[error("{0:?} is not a duration (write it as Go does: 300ms, 1.5s, 2h45m)")]
    Invalid(String),
    #[error("{0:?} has a number without a unit (use ns, us, ms, s, m or h)")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in {text:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit { unit: String, text: String },
    #[error("{0:?} is too long (at most 2562047h47m16.854775807s)")]
    Overflow(String),
    #[error("{0:?} is negative")]
    Negative(String),
}

const NANOS_PER_UNIT: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// 2^63: the magnitude of the most negative duration, the bound Go checks
/// every intermediate value against.
const LIMIT: u64 = 1 << 63;

/// Go's `time.ParseDuration`: signed nanoseconds.
pub fn parse_go_duration(text: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(text.to_string());
    let overflow = || DurationError::Overflow(text.to_string());
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut rest = text;
    let mut negative = false;
    if let Some(unsigned) = rest.strip_prefix('-') {
        negative = true;
        rest = unsigned;
    } else if let Some(unsigned) = rest.strip_prefix('+') {
        rest = unsigned;
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let bytes = rest.as_bytes();
        if !(bytes[0] == b'.' || bytes[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // The integer part: an overflow here is an error, as in Go.
        let mut whole: u64 = 0;
        let mut index = 0;
        while let Some(digit) = bytes.get(index).filter(|b| b.is_ascii_digit()) {
            if whole > LIMIT / 10 {
                return Err(overflow());
            }
            whole = whole * 10 + u64::from(digit - b'0');
            if whole > LIMIT {
                return Err(overflow());
            }
            index += 1;
        }
        let has_whole = index > 0;
        // The fraction: digits that no longer fit are skipped, as in Go.
        let mut fraction: u64 = 0;
        let mut scale: u64 = 1;
        let mut has_fraction = false;
        if bytes.get(index) == Some(&b'.') {
            index += 1;
            let start = index;
            let mut full = false;
            while let Some(digit) = bytes.get(index).filter(|b| b.is_ascii_digit()) {
                if !full {
                    let next = fraction
                        .checked_mul(10)
                        .map(|f| f + u64::from(digit - b'0'))
                        .filter(|f| fraction <= (LIMIT - 1) / 10 && *f <= LIMIT);
                    match next {
                        Some(next) => {
                            fraction = next;
                            scale *= 10;
                        }
                        None => full = true,
                    }
                }
                index += 1;
            }
            has_fraction = index > start;
        }
        if !has_whole && !has_fraction {
            return Err(invalid());
        }
        // The unit: everything up to the next digit or period.
        let unit_end = bytes[index..]
            .iter()
            .position(|b| *b == b'.' || b.is_ascii_digit())
            .map_or(bytes.len(), |end| index + end);
        if unit_end == index {
            return Err(DurationError::MissingUnit(text.to_string()));
        }
        // `index` and `unit_end` sit on ASCII bytes or the end: char boundaries.
        let unit = &rest[index..unit_end];
        rest = &rest[unit_end..];
        let nanos_per_unit = NANOS_PER_UNIT
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, nanos)| *nanos)
            .ok_or_else(|| DurationError::UnknownUnit {
                unit: unit.to_string(),
                text: text.to_string(),
            })?;
        if whole > LIMIT / nanos_per_unit {
            return Err(overflow());
        }
        let mut term = whole * nanos_per_unit;
        if fraction > 0 {
            // fraction × unit ÷ scale, exact in u64 (no 128-bit division in
            // the .wasm): `scale` is a power of ten, so the unit's factors of
            // ten cancel first, and what is left of the unit (1, 6 or 36)
            // times the remainder fits. The part is below one unit.
            let (mut unit, mut scale) = (nanos_per_unit, scale);
            while scale > 1 && unit % 10 == 0 {
                unit /= 10;
                scale /= 10;
            }
            let rest = (fraction % scale).checked_mul(unit).ok_or_else(overflow)? / scale;
            let part = (fraction / scale) * unit + rest;
            term = term
                .checked_add(part)
                .filter(|t| *t <= LIMIT)
                .ok_or_else(overflow)?;
        }
        total = total
            .checked_add(term)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(overflow)?;
    }
    if negative {
        // total <= 2^63, so the negation fits (2^63 is i64::MIN).
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| overflow())
}

/// A duration that may not be negative (every duration the plugins take):
/// Go's grammar, and a negative value refused by name. `-0` is zero, as in Go.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let nanos = parse_go_duration(text)?;
    let nanos = u64::try_from(nanos).map_err(|_| DurationError::Negative(text.to_string()))?;
    Ok(Duration::from_nanos(nanos))
}

/// Go's `Duration.String()`: `0s`, `7ns`, `1.5µs`, `2.25ms`, `3s`, `1m30s`,
/// `1h0m0.5s`. Durations longer than Go's range are written the same way.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", with_fraction(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", with_fraction(nanos, 6));
    }
    let seconds = with_fraction(nanos % 60_000_000_000, 9);
    let minutes = nanos / 60_000_000_000;
    let (hours, minutes) = (minutes / 60, minutes % 60);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / 10^digits` with the fraction's trailing zeros (and a bare
/// period) left out: Go's `fmtFrac` then `fmtInt`.
fn with_fraction(value: u128, digits: u32) -> String {
    let unit = 10u128.pow(digits);
    let (whole, fraction) = (value / unit, value % unit);
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0width$}", width = digits as usize);
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ns(n: i64) -> Result<i64, DurationError> {
        Ok(n)
    }

    #[test]
    fn go_parse_duration_cases() {
        // Cases from Go's own tests of ParseDuration (src/time/time_test.go).
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("-5s", -5_000_000_000),
            ("+5s", 5_000_000_000),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.0s", 1_000_000_000),
            ("1.00s", 1_000_000_000),
            ("1.004s", 1_004_000_000),
            ("1.0040s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12µs", 12_000),
            ("12μs", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14_000_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("-2m3.4s", -123_400_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            // Go scales this fraction in floating point and gets 20m; the
            // exact product of its 19 digits is a nanosecond less.
            ("0.3333333333333333333h", 1_199_999_999_999),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("0.100000000000000000000h", 360_000_000_000),
            ("0.830103483285477580700h", 2_988_372_539_827),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_go_duration(text), ns(*expected), "{text}");
        }
    }

    #[test]
    fn go_refuses_what_go_refuses() {
        let invalid = |t: &str| Err(DurationError::Invalid(t.to_string()));
        assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
        for text in [
            "3", "-", "+", "s", ".", "-.", ".s", "+.s", "1s ", " 1s", "1 s", "1e3s",
        ] {
            assert!(parse_go_duration(text).is_err(), "{text}");
        }
        assert_eq!(parse_go_duration("-"), invalid("-"));
        assert_eq!(parse_go_duration(".s"), invalid(".s"));
        assert_eq!(
            parse_go_duration("3"),
            Err(DurationError::MissingUnit("3".into()))
        );
        assert_eq!(
            parse_go_duration("1d"),
            Err(DurationError::UnknownUnit {
                unit: "d".into(),
                text: "1d".into()
            })
        );
        assert_eq!(
            parse_go_duration("3000000h"),
            Err(DurationError::Overflow("3000000h".into()))
        );
        for text in [
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "-9223372036854775809ns",
        ] {
            assert_eq!(
                parse_go_duration(text),
                Err(DurationError::Overflow(text.into())),
                "{text}"
            );
        }
    }

    #[test]
    fn plugin_durations_are_never_negative() {
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("-0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("-1ms"),
            Err(DurationError::Negative("-1ms".into()))
        );
        assert_eq!(
            parse_duration("-9223372036854775808ns"),
            Err(DurationError::Negative("-9223372036854775808ns".into()))
        );
    }

    #[test]
    fn go_string_cases() {
        // Go's Duration.String() cases (src/time/time_test.go).
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (245_000_000_000, "4m5s"),
            (245_001_000_000, "4m5.001s"),
            (18_367_001_000_000, "5h6m7.001s"),
            (480_000_000_001, "8m0.000000001s"),
            (i64::MAX as u64, "2562047h47m16.854775807s"),
            (3_600_000_000_000, "1h0m0s"),
            (60_000_000_000, "1m0s"),
            (1_000_000, "1ms"),
        ];
        for (nanos, expected) in cases {
            assert_eq!(format_duration(Duration::from_nanos(*nanos)), *expected);
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(nanos in 0u64..=(i64::MAX as u64)) {
            let duration = Duration::from_nanos(nanos);
            prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }

        #[test]
        fn whole_units_scale_exactly(n in 0u64..2_562_047, unit in 0usize..8) {
            let (name, per_unit) = NANOS_PER_UNIT[unit];
            let expected = u128::from(n) * u128::from(per_unit);
            let parsed = parse_go_duration(&format!("{n}{name}"));
            match i64::try_from(expected) {
                Ok(expected) => prop_assert_eq!(parsed, Ok(expected)),
                Err(_) => prop_assert!(matches!(parsed, Err(DurationError::Overflow(_)))),
            }
        }

        #[test]
        fn a_sign_negates(text in "[0-9]{1,6}(\\.[0-9]{1,6})?(ns|us|ms|s|m|h)") {
            let positive = parse_go_duration(&text).unwrap();
            prop_assert_eq!(parse_go_duration(&format!("+{text}")), Ok(positive));
            prop_assert_eq!(parse_go_duration(&format!("-{text}")), Ok(-positive));
        }

        #[test]
        fn terms_add_up(a in "[0-9]{1,4}(\\.[0-9]{1,3})?(ms|s|m)", b in "[0-9]{1,4}(\\.[0-9]{1,3})?(ns|us|h)") {
            let sum = parse_go_duration(&a).unwrap() + parse_go_duration(&b).unwrap();
            prop_assert_eq!(parse_go_duration(&format!("{a}{b}")), Ok(sum));
        }

        #[test]
        fn fractions_truncate_exactly(whole in 0u64..1000, fraction in "[0-9]{1,9}") {
            let digits = u32::try_from(fraction.len()).unwrap();
            let numerator: u64 = fraction.parse().unwrap();
            let expected = whole * 1_000_000_000 + numerator * 10u64.pow(9 - digits);
            prop_assert_eq!(parse_go_duration(&format!("{whole}.{fraction}s")), Ok(i64::try_from(expected).unwrap()));
        }

        #[test]
        fn never_panics(text in "\\PC{0,24}") {
            let _ = parse_go_duration(&text);
        }
    }
}
