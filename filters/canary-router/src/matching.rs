//! Rule matching: Istio's `HTTPMatchRequest` subset the router supports
//! (`uri`, `headers`, `withoutHeaders`, `queryParams`), evaluated as Envoy
//! evaluates what istiod translates it to, plus the router's own `cookies`
//! (Istio has no cookie match); and the request as the rules see it.
//!
//! Envoy's semantics, which a pasted Istio `match:` block must keep:
//! - several values of one header are matched as one value joined with `,`
//!   (Envoy's `HeaderUtility::getAllOfHeaderAsString`);
//! - a query parameter condition looks at the first parameter of that name
//!   (Envoy's `QueryParamsMulti::getFirstValue`), as sent;
//! - an empty `StringMatch` (`{}`) checks presence (Envoy's
//!   `present_match`);
//! - `withoutHeaders` is the header condition inverted, with a missing
//!   header counted as empty (`invert_match` + `treat_missing_header_as_empty`);
//! - a cookie is read as Envoy's `Http::Utility::parseCookieValue` reads it:
//!   the first cookie of that name, one pair of surrounding DQUOTEs removed.

use regex::Regex;

/// Istio's `StringMatch`, compiled: exact, prefix, or a regex matching the
/// whole value (RE2 `FullMatch`, as Envoy's `safe_regex`).
#[derive(Debug, Clone)]
pub enum StringMatcher {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl StringMatcher {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatcher::Exact(exact) => value == exact,
            StringMatcher::Prefix(prefix) => value.starts_with(prefix.as_str()),
            StringMatcher::Regex(regex) => regex.is_match(value),
        }
    }
}

/// A condition on a named item (header, query parameter, cookie). `None`
/// checks presence only (Istio's `{}`).
#[derive(Debug, Clone)]
pub struct NamedMatcher {
    /// Header names lower-case; parameter and cookie names as written.
    pub name: String,
    pub value: Option<StringMatcher>,
}

impl NamedMatcher {
    /// Whether an item whose value is `value` (`None`: absent) matches.
    fn matches(&self, value: Option<&str>) -> bool {
        match (value, &self.value) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(value), Some(matcher)) => matcher.matches(value),
        }
    }
}

/// One `match` entry: every condition in it must hold.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// The path, query string excluded.
    pub uri: Option<StringMatcher>,
    pub headers: Vec<NamedMatcher>,
    pub without_headers: Vec<NamedMatcher>,
    pub query_params: Vec<NamedMatcher>,
    pub cookies: Vec<NamedMatcher>,
}

impl Match {
    pub fn matches(&self, request: &ParsedRequest<'_>) -> bool {
        self.uri.as_ref().is_none_or(|m| m.matches(request.path))
            && self
                .headers
                .iter()
                .all(|m| m.matches(request.header(&m.name).as_deref()))
            && self.without_headers.iter().all(|m| {
                // Envoy's treat_missing_header_as_empty: a missing header is
                // "" for a value condition, and absent for a presence one.
                let value = request.header(&m.name);
                let value = match (&value, &m.value) {
                    (None, Some(_)) => Some(""),
                    _ => value.as_deref(),
                };
                !m.matches(value)
            })
            && self
                .query_params
                .iter()
                .all(|m| m.matches(request.query_value(&m.name)))
            && self
                .cookies
                .iter()
                .all(|m| m.matches(request.cookie_value(&m.name)))
    }
}

/// An explicit assignment: when any of `matches` holds, the request goes to
/// subset `subset` whatever its bucket.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Index into the configuration's subsets.
    pub subset: usize,
    pub matches: Vec<Match>,
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
    headers: &'a [(String, String)],
    /// The path without the query string.
    pub path: &'a str,
    /// The query string, without `?` (empty when there is none).
    pub query: &'a str,
    /// Every `name=value` pair of every `cookie` header, in order, values
    /// unquoted.
    pub cookies: Vec<(&'a str, &'a str)>,
}

impl<'a> ParsedRequest<'a> {
    /// Splits `path` (the `:path` pseudo-header) and parses the cookies.
    pub fn new(headers: &'a [(String, String)], path: &'a str) -> Self {
        let path = path.split_once('#').map_or(path, |(before, _)| before);
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let cookies = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, value)| parse_cookie_header(value))
            .collect();
        Self {
            headers,
            path,
            query,
            cookies,
        }
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Header `name` as Envoy's header matchers see it: its values joined
    /// with `,` (`None` when absent). One value is borrowed, not copied.
    pub fn header(&self, name: &str) -> Option<std::borrow::Cow<'a, str>> {
        let mut values = self.header_values(name);
        let first = values.next()?;
        match values.next() {
            None => Some(std::borrow::Cow::Borrowed(first)),
            Some(second) => {
                let mut joined = format!("{first},{second}");
                for value in values {
                    joined.push(',');
                    joined.push_str(value);
                }
                Some(std::borrow::Cow::Owned(joined))
            }
        }
    }

    /// The first value of query parameter `name`, as sent (not
    /// percent-decoded); `""` for a parameter without `=`.
    pub fn query_value(&self, name: &str) -> Option<&'a str> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
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

/// The `name=value` pairs of one `Cookie` header (`a=1; b=2`). Pairs without
/// `=` or with an empty name are skipped. A value wrapped in DQUOTEs (RFC
/// 6265 §4.1.1 `cookie-value = *cookie-octet / ( DQUOTE *cookie-octet
/// DQUOTE )`) loses one pair of them, as Envoy's cookie parser does: the
/// quotes are not part of the value.
pub fn parse_cookie_header(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let name = name.trim_matches([' ', '\t']);
        let value = value.trim_matches([' ', '\t']);
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
    fn path_and_query_split() {
        let h = Vec::new();
        let request = ParsedRequest::new(&h, "/panel/x?beta=1&flag&beta=2#top");
        assert_eq!(request.path, "/panel/x");
        assert_eq!(request.query_value("beta"), Some("1"));
        assert_eq!(request.query_value("flag"), Some(""));
        assert_eq!(request.query_value("none"), None);
    }

    #[test]
    fn repeated_headers_are_joined_with_commas() {
        let h = headers(&[("x-group", "a"), ("X-Group", "beta"), ("x-one", "1")]);
        let request = ParsedRequest::new(&h, "/");
        assert_eq!(request.header("x-group").as_deref(), Some("a,beta"));
        assert_eq!(request.header("x-one").as_deref(), Some("1"));
        assert_eq!(request.header("x-none"), None);
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
