//! Rule matching: Istio-style string matches on headers, the path, query
//! parameters and cookies, and the request as the rules see it.

use regex::Regex;

/// One string condition, compiled.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    Exact(String),
    Prefix(String),
    /// Matches the whole value (anchored, as Istio's RE2 `regex`).
    Regex(Regex),
    /// `true`: the header, parameter or cookie is there (any value);
    /// `false`: it is not.
    Present(bool),
}

impl StringMatcher {
    /// Whether one value matches (a presence check holds for any value).
    fn matches_value(&self, value: &str) -> bool {
        match self {
            StringMatcher::Exact(exact) => value == exact,
            StringMatcher::Prefix(prefix) => value.starts_with(prefix.as_str()),
            StringMatcher::Regex(regex) => regex.is_match(value),
            StringMatcher::Present(present) => *present,
        }
    }

    /// Whether a named item with these values matches: any value matching
    /// is enough; `Present(false)` holds only when there is no value.
    pub fn matches_any<'a>(&self, mut values: impl Iterator<Item = &'a str>) -> bool {
        match self {
            StringMatcher::Present(false) => values.next().is_none(),
            _ => values.any(|value| self.matches_value(value)),
        }
    }

    /// Whether a single value (the path) matches.
    pub fn matches(&self, value: &str) -> bool {
        self.matches_value(value)
    }
}

/// One `match` entry: every condition in it must hold.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// Header names lower-case.
    pub headers: Vec<(String, StringMatcher)>,
    /// The path, query string excluded.
    pub uri: Option<StringMatcher>,
    pub query_params: Vec<(String, StringMatcher)>,
    pub cookies: Vec<(String, StringMatcher)>,
}

impl Match {
    pub fn matches(&self, request: &ParsedRequest<'_>) -> bool {
        self.uri.as_ref().is_none_or(|m| m.matches(request.path))
            && self
                .headers
                .iter()
                .all(|(name, m)| m.matches_any(request.header_values(name)))
            && self
                .query_params
                .iter()
                .all(|(name, m)| m.matches_any(request.query_values(name)))
            && self
                .cookies
                .iter()
                .all(|(name, m)| m.matches_any(request.cookie_values(name)))
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
    /// Every `name=value` pair of every `cookie` header, in order.
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

    /// Every value of query parameter `name`, as sent (not percent-decoded).
    pub fn query_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .filter(move |(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// Every value of cookie `name`, as sent.
    pub fn cookie_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.cookies
            .iter()
            .filter(move |(key, _)| *key == name)
            .map(|(_, value)| *value)
    }
}

/// The `name=value` pairs of one `Cookie` header (`a=1; b=2`). Pairs without
/// `=` or with an empty name are skipped; a value wrapped in double quotes
/// (allowed by RFC 6265) keeps its quotes.
pub fn parse_cookie_header(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let name = name.trim_matches([' ', '\t']);
        (!name.is_empty()).then(|| (name, value.trim_matches([' ', '\t'])))
    })
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
    fn path_and_query_split() {
        let h = Vec::new();
        let request = ParsedRequest::new(&h, "/panel/x?beta=1&flag&beta=2#top");
        assert_eq!(request.path, "/panel/x");
        assert_eq!(request.query_values("beta").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(request.query_values("flag").collect::<Vec<_>>(), [""]);
        assert_eq!(request.query_values("none").count(), 0);
    }

    #[test]
    fn presence_and_absence() {
        let present = StringMatcher::Present(true);
        let absent = StringMatcher::Present(false);
        assert!(present.matches_any(["x"].into_iter()));
        assert!(!present.matches_any(std::iter::empty()));
        assert!(absent.matches_any(std::iter::empty()));
        assert!(!absent.matches_any(["x"].into_iter()));
    }

    #[test]
    fn any_header_value_may_match() {
        let h = headers(&[("x-group", "a"), ("X-Group", "beta")]);
        let request = ParsedRequest::new(&h, "/");
        let m = StringMatcher::Exact("beta".into());
        assert!(m.matches_any(request.header_values("x-group")));
    }
}
