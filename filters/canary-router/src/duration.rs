//! The cookie's `maxAge`: a duration string in whole seconds, written as
//! one or more `<digits><unit>` parts with units `s`, `m`, `h` and `d`
//! (`30m`, `12h`, `7d`, `1d12h`). Go and Istio durations without fractions
//! read the same; `d` is added because cookie lifetimes are counted in days.

use thiserror::Error;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("expected digits at {0:?}")]
    ExpectedDigits(String),
    #[error("{0:?} has no unit (use s, m, h or d)")]
    MissingUnit(String),
    #[error("unknown unit {0:?} (use s, m, h or d)")]
    UnknownUnit(String),
    #[error("fractions are not supported (write 90m, not 1.5h)")]
    Fraction,
    #[error("too large")]
    Overflow,
}

/// Parses a duration into whole seconds.
pub fn parse_seconds(text: &str) -> Result<u64, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.contains('.') {
        return Err(DurationError::Fraction);
    }
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(DurationError::ExpectedDigits(rest.to_string()));
        }
        let (digits, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale: u64 = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "" => return Err(DurationError::MissingUnit(text.to_string())),
            other => return Err(DurationError::UnknownUnit(other.to_string())),
        };
        let value: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
        total = value
            .checked_mul(scale)
            .and_then(|part| total.checked_add(part))
            .ok_or(DurationError::Overflow)?;
        rest = next;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_add_up() {
        assert_eq!(parse_seconds("45s"), Ok(45));
        assert_eq!(parse_seconds("30m"), Ok(1_800));
        assert_eq!(parse_seconds("12h"), Ok(43_200));
        assert_eq!(parse_seconds("7d"), Ok(604_800));
        assert_eq!(parse_seconds("1d12h30m5s"), Ok(131_405));
        assert_eq!(parse_seconds("0s"), Ok(0));
    }

    #[test]
    fn bad_strings_say_why() {
        assert_eq!(parse_seconds(""), Err(DurationError::Empty));
        assert_eq!(
            parse_seconds("100"),
            Err(DurationError::MissingUnit("100".into()))
        );
        assert_eq!(
            parse_seconds("1w"),
            Err(DurationError::UnknownUnit("w".into()))
        );
        assert_eq!(parse_seconds("1.5h"), Err(DurationError::Fraction));
        assert_eq!(
            parse_seconds("h"),
            Err(DurationError::ExpectedDigits("h".into()))
        );
        assert_eq!(
            parse_seconds("-1s"),
            Err(DurationError::ExpectedDigits("-1s".into()))
        );
        assert_eq!(
            parse_seconds("99999999999999999999d"),
            Err(DurationError::Overflow)
        );
    }
}
