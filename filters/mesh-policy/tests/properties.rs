//! Properties of matching that must hold for any request: the Envoy rules
//! (a repeated header matching on any one value, first query parameter, inverted `withoutHeaders`)
//! stated as laws over generated headers, paths and values.
#![allow(clippy::unwrap_used)] // test code

use mesh_policy::{
    HttpMatch, HttpRequest, NamedMatch, StringMatch, first_query_value, header_values,
    path_without_query,
};
use proptest::prelude::*;

fn headers_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(("x-[a-c]", "[a-z0-9,]{0,6}"), 0..6)
}

fn request<'a>(path: &'a str, headers: &'a [(String, String)]) -> HttpRequest<'a> {
    HttpRequest {
        method: "GET",
        path,
        headers,
    }
}

fn header(name: &str, value: Option<StringMatch>) -> NamedMatch {
    NamedMatch {
        name: name.to_string(),
        value,
    }
}

proptest! {
    #[test]
    fn exact_matches_only_itself(a in "\\PC{0,8}", b in "\\PC{0,8}") {
        prop_assert!(StringMatch::Exact(a.clone()).matches(&a));
        prop_assert_eq!(StringMatch::Exact(a.clone()).matches(&b), a == b);
    }

    #[test]
    fn every_prefix_matches(value in "\\PC{0,12}", cut in 0usize..13) {
        let prefix: String = value.chars().take(cut).collect();
        prop_assert!(StringMatch::Prefix(prefix).matches(&value));
    }

    #[test]
    fn a_header_condition_holds_when_any_one_value_matches(headers in headers_strategy(), name in "x-[a-c]", wanted in "[a-z0-9,]{0,6}") {
        let upper = name.to_ascii_uppercase();
        let values: Vec<&str> = header_values(&headers, &upper).collect();
        let expected: Vec<&str> = headers.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect();
        prop_assert_eq!(&values, &expected);
        let m = HttpMatch { headers: vec![header(&name, Some(StringMatch::Exact(wanted.clone())))], ..HttpMatch::default() };
        prop_assert_eq!(m.matches(&request("/", &headers)), values.contains(&wanted.as_str()));
        // The values joined with "," match only when that is one of the values.
        if values.len() > 1 {
            let joined = values.join(",");
            let m = HttpMatch { headers: vec![header(&name, Some(StringMatch::Exact(joined.clone())))], ..HttpMatch::default() };
            prop_assert_eq!(m.matches(&request("/", &headers)), values.contains(&joined.as_str()));
        }
    }

    #[test]
    fn without_a_present_header_is_the_negation_of_with_it(headers in headers_strategy(), name in "x-[a-d]") {
        let with = HttpMatch { headers: vec![header(&name, None)], ..HttpMatch::default() };
        let without = HttpMatch { without_headers: vec![header(&name, None)], ..HttpMatch::default() };
        let r = request("/", &headers);
        prop_assert_eq!(with.matches(&r), !without.matches(&r));
    }

    #[test]
    fn without_a_value_negates_with_it_when_the_header_is_there(headers in headers_strategy(), name in "x-[a-c]", value in "[a-z0-9,]{0,3}") {
        let matcher = || Some(StringMatch::Prefix(value.clone()));
        let with = HttpMatch { headers: vec![header(&name, matcher())], ..HttpMatch::default() };
        let without = HttpMatch { without_headers: vec![header(&name, matcher())], ..HttpMatch::default() };
        let r = request("/", &headers);
        if header_values(&headers, &name).next().is_some() {
            prop_assert_eq!(with.matches(&r), !without.matches(&r));
        } else {
            // Missing: counted as "" by withoutHeaders, absent for headers.
            prop_assert!(!with.matches(&r));
            prop_assert_eq!(without.matches(&r), !value.is_empty());
        }
    }

    #[test]
    fn the_first_query_parameter_decides(
        name in "[a-c]", first in "[a-z0-9]{0,4}", second in "[a-z0-9]{0,4}", path in "/[a-z/]{0,8}"
    ) {
        let url = format!("{path}?{name}={first}&{name}={second}");
        prop_assert_eq!(first_query_value(&url, &name), Some(first.as_str()));
        let m = HttpMatch {
            query_params: vec![header(&name, Some(StringMatch::Exact(second.clone())))],
            ..HttpMatch::default()
        };
        prop_assert_eq!(m.matches(&request(&url, &[])), first == second);
    }

    #[test]
    fn uri_matching_never_sees_the_query(path in "/[a-z/]{0,10}", query in "[a-z=&]{0,10}") {
        let url = format!("{path}?{query}");
        prop_assert_eq!(path_without_query(&url), path.as_str());
        let m = HttpMatch { uri: Some(StringMatch::Exact(path.clone())), ..HttpMatch::default() };
        prop_assert!(m.matches(&request(&url, &[])));
    }

    #[test]
    fn matching_never_panics(path in "\\PC{0,24}", headers in proptest::collection::vec(("\\PC{0,6}", "\\PC{0,6}"), 0..5)) {
        let m = HttpMatch {
            uri: Some(StringMatch::Prefix("/".into())),
            headers: vec![header("x-a", None)],
            without_headers: vec![header("x-b", Some(StringMatch::Exact(String::new())))],
            query_params: vec![header("q", None)],
            ..HttpMatch::default()
        };
        let _ = m.matches(&request(&path, &headers));
    }
}

#[cfg(feature = "regex")]
mod regex_properties {
    use super::*;
    use mesh_policy::{WireStringMatch, matching::WireHttpMatch};

    fn regex(pattern: &str) -> StringMatch {
        StringMatch::compile(
            "m",
            WireStringMatch {
                regex: Some(pattern.to_string()),
                ..WireStringMatch::default()
            },
        )
        .unwrap()
        .unwrap()
    }

    proptest! {
        #[test]
        fn an_escaped_literal_regex_is_an_exact_match(a in "\\PC{0,8}", b in "\\PC{0,8}") {
            let escaped = regex::escape(&a);
            prop_assert_eq!(regex(&escaped).matches(&b), a == b);
        }

        #[test]
        fn a_regex_prefix_pattern_is_a_prefix_match(a in "[a-z/]{0,6}", b in "[a-z/]{0,10}") {
            let pattern = format!("{}.*", regex::escape(&a));
            prop_assert_eq!(regex(&pattern).matches(&b), b.starts_with(&a));
        }
    }

    #[test]
    fn compiled_from_the_wire() {
        let wire = WireHttpMatch {
            uri: Some(WireStringMatch {
                regex: Some("/v[0-9]+/.*".into()),
                ..WireStringMatch::default()
            }),
            ..WireHttpMatch::default()
        };
        let m = HttpMatch::compile("match[0]", wire).unwrap();
        assert!(m.matches(&request("/v1/x?y", &[])));
        assert!(!m.matches(&request("/v/x", &[])));
    }
}
