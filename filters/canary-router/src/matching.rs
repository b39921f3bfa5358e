//! Rule matching: Istio's `HTTPMatchRequest` (`uri`, `method`, `headers`,
//! `withoutHeaders`, `queryParams`) as Envoy evaluates what istiod writes
//! for it, from `mesh-policy` (a repeated header matching on any one value, the first
//! query parameter, `{}` for presence, `withoutHeaders` inverted with a
//! missing header counted as empty), plus the router's own `cookies` (Istio
//! has no cookie match); and the request as the rules and the cookie see
//! it. A cookie is read as Envoy's `Http::Utility::parseCookieValue` reads
//! it: the first cookie of that name, one pair of surrounding DQUOTEs
//! removed.

use mesh_policy::{HttpMatch, HttpRequest, NamedMatch, path_without_query};

/// One `match` entry: the Istio conditions and the cookie conditions, all
/// of which must hold.
#[derive(Debug, Clone, Default)]
pub struct RuleMatch {
    pub http: HttpMatch,
    /// Cookie names as written; `value: None` checks presence.
    pub cookies: Vec<NamedMatch>,
}

impl RuleMatch {
    pub fn matches(&self, request: &ParsedRequest<'_>) -> bool {
        self.http.matches(&request.http)
            && self.cookies.iter().all(|m| {
                request
                    .cookie_value(&m.name)
                    .is_some_and(|value| m.value.as_ref().is_none_or(|v| v.matches(value)))
            })
    }
}

/// An explicit assignment: when any of `matches` holds, the request goes to
/// subset `subset` whatever its bucket.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Index into the configuration's subsets.
    pub subset: usize,
    pub matches: Vec<RuleMatch>,
}

impl Rule {
    pub fn matches(&self, request: &ParsedRequest<'_>) -> bool {
        self.matches.iter().any(|m| m.matches(request))
    }
}

/// The request split into what rules and cookies look at. Nothing here can
/// fail: a malformed cookie pair or query parameter is skipped.
#[derive(Debug, Clone)]
pub struct ParsedRequest<'a> {
    /// What the Istio conditions look at.
    pub http: HttpRequest<'a>,
    /// The path without the query string or fragment.
    pub path: &'a str,
    /// Every `name=value` pair of every `cookie` header, in order, values
    /// unquoted.
    pub cookies: Vec<(&'a str, &'a str)>,
}

impl<'a> ParsedRequest<'a> {
    /// `path` is the `:path` pseudo-header, query string included.
    pub fn new(headers: &'a [(String, String)], path: &'a str) -> Self {
        let method = headers
            .iter()
            .find(|(name, _)| name == ":method")
            .map_or("", |(_, value)| value.as_str());
        let cookies = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, value)| parse_cookie_header(value))
            .collect();
        Self {
            http: HttpRequest {
                method,
                path,
                headers,
            },
            path: path_without_query(path),
            cookies,
        }
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.http
            .headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The first value of cookie `name` (what Envoy's cookie parser returns).
    pub fn cookie_value(&self, name: &str) -> Option<&'a str> {
        self.cookie_values(name).next()
    }

    /// Every value of cookie `name`, in order.
    pub fn cookie_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.cookies
            .iter()
            .filter(move |(key, _)| *key == name)
            .map(|(_, value)| *value)
    }
}

/// `text` without leading and trailing spaces and tabs (a byte loop: both
/// are ASCII, and it is smaller in the .wasm than a char-pattern trim).
fn trim_blanks(text: &str) -> &str {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let bytes = text.as_bytes();
    let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    text.get(start..end).unwrap_or(text)
}

/// The `name=value` pairs of one `Cookie` header (`a=1; b=2`). Pairs without
/// `=` or with an empty name are skipped. A value wrapped in DQUOTEs (RFC
/// 6265 §4.1.1 `cookie-value = *cookie-octet / ( DQUOTE *cookie-octet
/// DQUOTE )`) loses one pair of them, as Envoy's cookie parser does: the
/// quotes are not part of the value.
pub fn parse_cookie_header(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let name = trim_blanks(name);
        let value = trim_blanks(value);
        let value = value
            .strip_prefix('"')
            .and_then(|inner| inner.strip_suffix('"'))
            .unwrap_or(value);
        (!name.is_empty()).then_some((name, value))
    })
}

/// RFC 6265 §5.1.4 path-match: whether a request to `request_path` (no
/// query) gets a cookie whose `Path` is `cookie_path`, which is when the
/// browser sends it. Case-sensitive, on the path as sent.
pub fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    match request_path.strip_prefix(cookie_path) {
        None => false,
        Some(rest) => rest.is_empty() || cookie_path.ends_with('/') || rest.starts_with('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cookies_from_every_cookie_header() {
        let h = headers(&[("cookie", "a=1; b=2"), ("Cookie", "c= 3 ;;junk; =x")]);
        let request = ParsedRequest::new(&h, "/");
        assert_eq!(request.cookies, vec![("a", "1"), ("b", "2"), ("c", "3")]);
    }

    #[test]
    fn one_pair_of_dquotes_is_removed_as_envoy_does() {
        let h = headers(&[("cookie", r#"a="1"; b=""x""; c="; d="open; e="""#)]);
        let request = ParsedRequest::new(&h, "/");
        assert_eq!(
            request.cookies,
            vec![
                ("a", "1"),
                ("b", "\"x\""),
                ("c", "\""),
                ("d", "\"open"),
                ("e", "")
            ]
        );
    }

    #[test]
    fn rfc_6265_path_match() {
        for (request, cookie) in [
            ("/panel", "/panel"),
            ("/panel/", "/panel"),
            ("/panel/x/y", "/panel"),
            ("/panel/x", "/panel/"),
            ("/", "/"),
            ("/anything", "/"),
        ] {
            assert!(path_matches(request, cookie), "{request} in {cookie}");
        }
        for (request, cookie) in [
            ("/api", "/panel"),
            ("/panelx", "/panel"),
            ("/pane", "/panel"),
            ("/Panel", "/panel"),
            ("/panel", "/panel/"),
            ("", "/"),
        ] {
            assert!(!path_matches(request, cookie), "{request} not in {cookie}");
        }
    }
}
