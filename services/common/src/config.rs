//! Configuration from environment variables with documented defaults.
//!
//! Every service reads its config through a [`Lookup`], which is the process
//! environment in production and a map in tests, so tests never touch the
//! (process-global) environment.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// A bad configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {name}={value:?}: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub name: String,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// A bad value.
    pub fn new(name: &str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

type GetFn = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Where configuration values come from.
pub struct Lookup {
    get: Box<GetFn>,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup")
    }
}

impl Lookup {
    /// The process environment.
    pub fn env() -> Self {
        Self {
            get: Box::new(|k| std::env::var(k).ok()),
        }
    }

    /// A fixed set of values (tests).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self {
            get: Box::new(move |k| map.get(k).cloned()),
        }
    }

    /// The raw value, if set and not blank.
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.trim().is_empty())
    }

    /// A string with a default.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_string())
    }

    /// A parsed value with a default.
    pub fn parse<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::new(name, &v, e.to_string())),
        }
    }

    /// A number within bounds, with a default.
    pub fn bounded<T>(&self, name: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let v = self.parse(name, default)?;
        if v < min || v > max {
            return Err(ConfigError::new(
                name,
                &v.to_string(),
                format!("must be from {min} to {max}"),
            ));
        }
        Ok(v)
    }

    /// A duration in milliseconds (`FOO_MS`), with a default.
    pub fn millis(&self, name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        let ms = self.bounded(name, default_ms, 1, 3_600_000)?;
        Ok(Duration::from_millis(ms))
    }

    /// The listen address: `LISTEN_ADDR`, default `0.0.0.0:8080` (the seed's port).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.parse("LISTEN_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)))
    }

    /// The version shown in `/status`: `SERVICE_VERSION`, default `v1`.
    pub fn version(&self) -> Result<String, ConfigError> {
        let v = self.string("SERVICE_VERSION", "v1");
        if v.len() > 16 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            return Err(ConfigError::new(
                "SERVICE_VERSION",
                &v,
                "expected a short version such as v1",
            ));
        }
        Ok(v)
    }
}

/// Parses `1=http://a:8080,2=http://b:8080` into pairs, keeping order.
pub fn parse_pairs(name: &str, value: &str) -> Result<Vec<(String, String)>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (k, v) = item.split_once('=').ok_or_else(|| {
                ConfigError::new(name, value, format!("{item:?} is not key=value"))
            })?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Checks a base URL: `http://host[:port][/path]`, returned without a trailing slash.
pub fn base_url(name: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim().trim_end_matches('/');
    let uri: axum::http::Uri = v
        .parse()
        .map_err(|e| ConfigError::new(name, value, format!("not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(ConfigError::new(
            name,
            value,
            "expected http://host[:port] (TLS is the mesh's job)",
        ));
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn defaults_apply_when_unset_or_blank() {
        let l = Lookup::from_pairs([("A", " ")]);
        assert_eq!(l.string("A", "x"), "x");
        assert_eq!(l.parse("B", 7u32).unwrap(), 7);
        assert_eq!(l.listen_addr().unwrap().port(), 8080);
        assert_eq!(l.version().unwrap(), "v1");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let l = Lookup::from_pairs([("N", "lots"), ("M", "0")]);
        let e = l.parse("N", 1u32).unwrap_err();
        assert_eq!(e.name, "N");
        assert!(e.to_string().contains("invalid N=\"lots\""));
        assert!(l.bounded("M", 5u32, 1, 10).is_err());
    }

    #[test]
    fn pairs_and_urls() {
        let p = parse_pairs("S", "1=http://a:1, 2=http://b:2/").unwrap();
        assert_eq!(p[1], ("2".to_string(), "http://b:2/".to_string()));
        assert!(parse_pairs("S", "1").is_err());
        assert_eq!(base_url("U", "http://a:1/").unwrap(), "http://a:1");
        assert!(base_url("U", "https://a").is_err());
        assert!(base_url("U", "a:1").is_err());
    }
}
