//! Duration strings as Istio takes them in `fixedDelay`: Go-style
//! sequences of a decimal number and a unit (`2.5s`, `10ms`, `1m`, `1h30m`,
//! `250us`), which also covers protobuf's JSON form (`2.5s`).

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("negative durations are not allowed")]
    Negative,
    #[error("expected a number at {0:?}")]
    BadNumber(String),
    #[error("{0:?} has no unit (use ns, us, ms, s, m or h)")]
    MissingUnit(String),
    #[error("unknown unit {0:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit(String),
    #[error("too large")]
    Overflow,
}

const NANOS_PER: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go/Istio duration string. `0` alone is accepted (as in Go);
/// callers enforce their own minimum.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(DurationError::BadNumber(rest.to_string()));
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(text.to_string()));
        }
        let scale = NANOS_PER
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, nanos)| *nanos)
            .ok_or_else(|| DurationError::UnknownUnit(unit.to_string()))?;
        total = total
            .checked_add(component_nanos(whole, fraction, scale)?)
            .ok_or(DurationError::Overflow)?;
        rest = next;
    }
    let nanos = u64::try_from(total).map_err(|_| DurationError::Overflow)?;
    Ok(Duration::from_nanos(nanos))
}

/// `whole.fraction` units of `scale` nanoseconds, truncated to whole
/// nanoseconds.
fn component_nanos(whole: &str, fraction: &str, scale: u128) -> Result<u128, DurationError> {
    let mut nanos: u128 = 0;
    for digit in whole.bytes() {
        nanos = nanos
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(digit - b'0')))
            .ok_or(DurationError::Overflow)?;
    }
    nanos = nanos.checked_mul(scale).ok_or(DurationError::Overflow)?;
    // Digits past the 18th cannot change the result by a nanosecond at any
    // unit up to hours, and keep the arithmetic far from overflow.
    let mut numerator: u128 = 0;
    let mut denominator: u128 = 1;
    for digit in fraction.bytes().take(18) {
        numerator = numerator * 10 + u128::from(digit - b'0');
        denominator *= 10;
    }
    Ok(nanos + numerator * scale / denominator)
}

/// A short human form for headers and logs: `2500ms`, `1500us`, `7ns`.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn istio_examples_parse() {
        assert_eq!(parse_duration("2.5s"), Ok(ms(2500)));
        assert_eq!(parse_duration("10ms"), Ok(ms(10)));
        assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("5s"), Ok(ms(5000)));
    }

    #[test]
    fn compound_and_small_units_parse() {
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h2m3s4ms"), Ok(ms(3_723_004)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("1.s"), Ok(ms(1000)));
        assert_eq!(parse_duration("0.0001s"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("+3ms"), Ok(ms(3)));
    }

    #[test]
    fn bad_strings_say_why() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("  "), Err(DurationError::Empty));
        assert_eq!(parse_duration("-1s"), Err(DurationError::Negative));
        assert_eq!(
            parse_duration("10"),
            Err(DurationError::MissingUnit("10".into()))
        );
        assert_eq!(
            parse_duration("10sec"),
            Err(DurationError::UnknownUnit("sec".into()))
        );
        assert_eq!(
            parse_duration("1d"),
            Err(DurationError::UnknownUnit("d".into()))
        );
        assert_eq!(
            parse_duration("s"),
            Err(DurationError::BadNumber("s".into()))
        );
        assert_eq!(
            parse_duration("1.2.3s"),
            Err(DurationError::BadNumber("1.2.3s".into()))
        );
        assert_eq!(
            parse_duration("1s2"),
            Err(DurationError::MissingUnit("1s2".into()))
        );
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn formats_in_the_coarsest_exact_unit() {
        assert_eq!(format_duration(ms(2500)), "2500ms");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1500us");
        assert_eq!(format_duration(Duration::from_nanos(7)), "7ns");
    }

    proptest! {
        #[test]
        fn milliseconds_round_trip(n in 0u64..10_000_000_000) {
            prop_assert_eq!(parse_duration(&format!("{n}ms")), Ok(ms(n)));
            prop_assert_eq!(parse_duration(&format_duration(ms(n))), Ok(ms(n)));
        }

        #[test]
        fn never_panics(text in ".{0,24}") {
            let _ = parse_duration(&text);
        }
    }
}
