//! Which requests a rule applies to: Istio's `HTTPMatchRequest` subset
//! (uri, method, headers, withoutHeaders, queryParams) plus source address
//! ranges and the route name.

use std::net::IpAddr;

use regex::Regex;

use crate::decision::RequestView;

/// Istio's `StringMatch`: exact, prefix, or a regex that must match the whole
/// value (RE2 semantics, as Envoy's `safe_regex`).
#[derive(Debug, Clone)]
pub enum StringMatcher {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl StringMatcher {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatcher::Exact(expected) => value == expected,
            StringMatcher::Prefix(prefix) => value.starts_with(prefix.as_str()),
            StringMatcher::Regex(regex) => regex.is_match(value),
        }
    }
}

/// A header or query parameter condition. `None` checks presence only (an
/// empty `StringMatch` in Istio).
#[derive(Debug, Clone)]
pub struct NamedMatcher {
    pub name: String,
    pub value: Option<StringMatcher>,
}

/// An address range in CIDR form (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix_len: u8,
}

impl IpBlock {
    /// Parses `address` or `address/prefix`. Host bits set in a range
    /// (`10.1.2.3/8`) are ignored, as Envoy's CIDR ranges ignore them.
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                p.parse::<u8>().ok().filter(|n| *n <= max)?
            }
            None => max,
        };
        Some(Self {
            network,
            prefix_len,
        })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len));
                let mask = mask.unwrap_or(0);
                u32::from(net) & mask == u32::from(addr) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len));
                let mask = mask.unwrap_or(0);
                u128::from(net) & mask == u128::from(addr) & mask
            }
            _ => false,
        }
    }
}

/// Reads `source.address` as Envoy gives it: `10.0.0.1:4321`,
/// `[fd00::1]:4321`, or an address without a port.
pub fn parse_source_address(text: &str) -> Option<IpAddr> {
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    text.rsplit_once(':')?.0.parse().ok()
}

/// One `match` entry: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Match {
    pub uri: Option<StringMatcher>,
    pub method: Option<StringMatcher>,
    pub headers: Vec<NamedMatcher>,
    pub without_headers: Vec<NamedMatcher>,
    pub query_params: Vec<NamedMatcher>,
    pub source_ip_blocks: Vec<IpBlock>,
    pub route_name: Option<String>,
}

impl Match {
    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        if let Some(uri) = &self.uri
            && !uri.matches(path_without_query(request.path))
        {
            return false;
        }
        if let Some(method) = &self.method
            && !method.matches(request.method)
        {
            return false;
        }
        if !self.headers.iter().all(|m| header_matches(request, m)) {
            return false;
        }
        if self
            .without_headers
            .iter()
            .any(|m| header_matches(request, m))
        {
            return false;
        }
        if !self
            .query_params
            .iter()
            .all(|m| query_matches(request.path, m))
        {
            return false;
        }
        if !self.source_ip_blocks.is_empty() {
            let Some(address) = request.source_address else {
                return false;
            };
            if !self.source_ip_blocks.iter().any(|b| b.contains(address)) {
                return false;
            }
        }
        if let Some(route) = &self.route_name
            && request.route_name != Some(route.as_str())
        {
            return false;
        }
        true
    }

    pub(crate) fn uses_source_address(&self) -> bool {
        !self.source_ip_blocks.is_empty()
    }

    pub(crate) fn uses_route_name(&self) -> bool {
        self.route_name.is_some()
    }
}

/// Whether any of `matches` holds; an empty list matches every request.
pub(crate) fn any_matches(matches: &[Match], request: &RequestView<'_>) -> bool {
    matches.is_empty() || matches.iter().any(|m| m.matches(request))
}

/// The path without its query string or fragment, which is what Envoy's
/// path and regex route matching look at.
fn path_without_query(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// A header condition as Envoy evaluates it: several values of one header
/// are matched as one value joined with `,`.
fn header_matches(request: &RequestView<'_>, matcher: &NamedMatcher) -> bool {
    let mut values = request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(&matcher.name))
        .map(|(_, value)| value.as_str());
    let Some(first) = values.next() else {
        return false;
    };
    let Some(value_matcher) = &matcher.value else {
        return true;
    };
    match values.next() {
        None => value_matcher.matches(first),
        Some(second) => {
            let mut joined = format!("{first},{second}");
            for value in values {
                joined.push(',');
                joined.push_str(value);
            }
            value_matcher.matches(&joined)
        }
    }
}

/// A query parameter condition on the first parameter of that name. Names
/// and values are compared as sent (not percent-decoded).
fn query_matches(path: &str, matcher: &NamedMatcher) -> bool {
    let Some((_, query)) = path.split_once('?') else {
        return false;
    };
    let query = query.split('#').next().unwrap_or(query);
    let found = query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(name, _)| *name == matcher.name);
    match (found, &matcher.value) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some((_, value)), Some(value_matcher)) => value_matcher.matches(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex(pattern: &str) -> StringMatcher {
        StringMatcher::Regex(Regex::new(&format!("^(?:{pattern})$")).unwrap())
    }

    fn view<'a>(path: &'a str, headers: &'a [(String, String)]) -> RequestView<'a> {
        RequestView {
            method: "GET",
            path,
            headers,
            source_address: None,
            route_name: None,
            random: 0,
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn string_matchers() {
        assert!(StringMatcher::Exact("/a".into()).matches("/a"));
        assert!(!StringMatcher::Exact("/a".into()).matches("/ab"));
        assert!(StringMatcher::Prefix("/a".into()).matches("/ab"));
        assert!(!StringMatcher::Prefix("/a".into()).matches("/b"));
        assert!(regex("/v[0-9]+/.*").matches("/v2/items"));
        assert!(!regex("v[0-9]").matches("/v2"), "regex matches whole value");
    }

    #[test]
    fn uri_ignores_the_query_string() {
        let m = Match {
            uri: Some(StringMatcher::Exact("/items".into())),
            ..Match::default()
        };
        assert!(m.matches(&view("/items?id=7", &[])));
        assert!(m.matches(&view("/items#top", &[])));
        assert!(!m.matches(&view("/items/7", &[])));
    }

    #[test]
    fn headers_present_exact_and_joined() {
        let headers = pairs(&[("end-user", "tester"), ("x-a", "1"), ("x-a", "2")]);
        let present = Match {
            headers: vec![NamedMatcher {
                name: "end-user".into(),
                value: None,
            }],
            ..Match::default()
        };
        assert!(present.matches(&view("/", &headers)));
        assert!(!present.matches(&view("/", &[])));
        let joined = Match {
            headers: vec![NamedMatcher {
                name: "x-a".into(),
                value: Some(StringMatcher::Exact("1,2".into())),
            }],
            ..Match::default()
        };
        assert!(joined.matches(&view("/", &headers)));
    }

    #[test]
    fn without_headers_excludes() {
        let m = Match {
            without_headers: vec![NamedMatcher {
                name: "x-canary".into(),
                value: None,
            }],
            ..Match::default()
        };
        assert!(m.matches(&view("/", &[])));
        assert!(!m.matches(&view("/", &pairs(&[("x-canary", "1")]))));
        let not_value = Match {
            without_headers: vec![NamedMatcher {
                name: "x-canary".into(),
                value: Some(StringMatcher::Exact("yes".into())),
            }],
            ..Match::default()
        };
        assert!(not_value.matches(&view("/", &pairs(&[("x-canary", "no")]))));
        assert!(!not_value.matches(&view("/", &pairs(&[("x-canary", "yes")]))));
    }

    #[test]
    fn query_params_first_occurrence_and_presence() {
        let m = |value: Option<StringMatcher>| Match {
            query_params: vec![NamedMatcher {
                name: "debug".into(),
                value,
            }],
            ..Match::default()
        };
        assert!(m(None).matches(&view("/x?a=1&debug", &[])));
        assert!(!m(None).matches(&view("/x?a=1", &[])));
        assert!(!m(None).matches(&view("/x", &[])));
        let exact = m(Some(StringMatcher::Exact("1".into())));
        assert!(exact.matches(&view("/x?debug=1&debug=2", &[])));
        assert!(!exact.matches(&view("/x?debug=2&debug=1", &[])));
        assert!(!exact.matches(&view("/x?debugger=1", &[])));
    }

    #[test]
    fn ip_blocks() {
        let block = IpBlock::parse("10.0.0.0/8").unwrap();
        assert!(block.contains("10.200.1.1".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        assert!(block.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!block.contains("fd00::1".parse().unwrap()));
        let single = IpBlock::parse("192.168.1.5").unwrap();
        assert!(single.contains("192.168.1.5".parse().unwrap()));
        assert!(!single.contains("192.168.1.6".parse().unwrap()));
        let all = IpBlock::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = IpBlock::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(
            IpBlock::parse("::/0")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
    }

    #[test]
    fn bad_ip_blocks_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host",
            "",
        ] {
            assert_eq!(IpBlock::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn source_blocks_need_a_known_address() {
        let m = Match {
            source_ip_blocks: vec![IpBlock::parse("10.0.0.0/8").unwrap()],
            ..Match::default()
        };
        let mut request = view("/", &[]);
        assert!(!m.matches(&request));
        request.source_address = Some("10.1.1.1".parse().unwrap());
        assert!(m.matches(&request));
    }

    #[test]
    fn route_name_is_exact() {
        let m = Match {
            route_name: Some("reviews".into()),
            ..Match::default()
        };
        let mut request = view("/", &[]);
        assert!(!m.matches(&request));
        request.route_name = Some("reviews");
        assert!(m.matches(&request));
        request.route_name = Some("reviews-v2");
        assert!(!m.matches(&request));
    }

    #[test]
    fn source_addresses_in_envoy_forms() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(parse_source_address("10.0.0.1:4321"), Some(v4));
        assert_eq!(parse_source_address("10.0.0.1"), Some(v4));
        assert_eq!(parse_source_address("[fd00::1]:4321"), Some(v6));
        assert_eq!(parse_source_address("fd00::1"), Some(v6));
        assert_eq!(parse_source_address("pipe:/tmp/x"), None);
    }

    #[test]
    fn an_empty_match_list_matches_everything() {
        assert!(any_matches(&[], &view("/", &[])));
    }
}
