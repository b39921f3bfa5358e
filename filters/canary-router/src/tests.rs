//! Configuration refusals and decisions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use super::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";
const OLD_KEY: &str = "fedcba9876543210fedcba9876543210";
const NOW: u64 = 1_767_225_600;

fn parse(json: &str) -> Result<Config, ConfigError> {
    Config::from_json(json.as_bytes(), &no_env)
}

fn config(json: &str) -> Config {
    parse(json).unwrap_or_else(|e| panic!("{e}"))
}

fn refusal(json: &str) -> String {
    match parse(json) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e.to_string(),
    }
}

macro_rules! refuses {
    ($($name:ident: $config:expr => $expected:expr;)*) => {$(
        #[test]
        fn $name() {
            let message = refusal($config);
            assert!(
                message.starts_with($expected),
                "{message:?} should start with {:?}",
                $expected
            );
            assert!(!message.contains('\n'), "{message:?}");
        }
    )*};
}

const V: &str = r#""subsets": [{"name": "v1", "weight": 90}, {"name": "v2", "weight": 10}]"#;

refuses! {
    empty_configuration: "  " => "subsets: no subsets";
    empty_object: "{}" => "subsets: no subsets";
    not_an_object: "[1]" => "config: expected a JSON object, got an array";
    malformed_json: r#"{"subsets": "# => "subsets: EOF while parsing";
    trailing_garbage: &format!("{{{V}}}}}") => "config: trailing characters";
    missing_subsets: r#"{"rules": []}"# => "subsets: no subsets";
    unknown_top_level_field: &format!(r#"{{{V}, "weights": 1}}"#) => "weights: unknown field `weights`";
    unknown_subset_field: r#"{"subsets": [{"name": "v1", "weight": 100, "labels": {}}]}"# => "subsets[0].labels: unknown field";
    unknown_cookie_field: &format!(r#"{{{V}, "cookie": {{"expires": "1d"}}}}"#) => "cookie.expires: unknown field";
    wrong_type: r#"{"subsets": [{"name": "v1", "weight": "100"}]}"# => "subsets[0].weight: invalid type";
    no_subsets: r#"{"subsets": []}"# => "subsets: no subsets";
    weights_under_100: r#"{"subsets": [{"name": "v1", "weight": 80}, {"name": "v2", "weight": 10}]}"# => "subsets: weights sum to 90, not 100";
    weights_over_100: r#"{"subsets": [{"name": "v1", "weight": 95}, {"name": "v2", "weight": 10}]}"# => "subsets: weights sum to 105, not 100";
    negative_weight: r#"{"subsets": [{"name": "v1", "weight": 110}, {"name": "v2", "weight": -10}]}"# => "subsets[0].weight: 110 is not a weight (0 to 100)";
    negative_weight_alone: r#"{"subsets": [{"name": "v1", "weight": 100}, {"name": "v2", "weight": -1}]}"# => "subsets[1].weight: -1 is not a weight";
    duplicate_subset: r#"{"subsets": [{"name": "v1", "weight": 50}, {"name": "v1", "weight": 50}]}"# => "subsets[1].name: duplicate subset name \"v1\"";
    subset_name_with_a_dot: r#"{"subsets": [{"name": "v1.2", "weight": 100}]}"# => "subsets[0].name: \"v1.2\" is not a subset name";
    empty_subset_name: r#"{"subsets": [{"name": "", "weight": 100}]}"# => "subsets[0].name: \"\" is not a subset name";
    rule_for_an_unknown_subset: &format!(r#"{{{V}, "rules": [{{"subset": "v3", "match": [{{"uri": {{"prefix": "/"}}}}]}}]}}"#) => "rules[0].subset: \"v3\" is not one of the subsets (v1, v2)";
    rule_without_match: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": []}}]}}"#) => "rules[0].match: a rule needs at least one match";
    rule_missing_match: &format!(r#"{{{V}, "rules": [{{"subset": "v2"}}]}}"#) => "rules[0]: missing field `match`";
    empty_match_entry: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{}}]}}]}}"#) => "rules[0].match[0]: an empty match";
    two_match_kinds: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"headers": {{"end-user": {{"exact": "a", "prefix": "b"}}}}}}]}}]}}"#) => "rules[0].match[0].headers.end-user: give exactly one of exact, prefix, regex";
    bad_regex: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"headers": {{"user-agent": {{"regex": ".*(62"}}}}}}]}}]}}"#) => "rules[0].match[0].headers.user-agent.regex: bad regex: regex parse error";
    present_on_uri: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"uri": {{"present": true}}}}]}}]}}"#) => "rules[0].match[0].uri.present: unknown field `present`";
    present_on_a_header: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"headers": {{"x-beta": {{"present": false}}}}}}]}}]}}"#) => "rules[0].match[0].headers.x-beta.present: unknown field `present`, expected one of `exact`, `prefix`, `regex`";
    present_on_a_query_parameter: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"queryParams": {{"preview": {{"present": true}}}}}}]}}]}}"#) => "rules[0].match[0].queryParams.preview.present: unknown field `present`";
    empty_uri_match: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"uri": {{}}}}]}}]}}"#) => "rules[0].match[0].uri: empty match: give exact, prefix or regex";
    fractional_max_age: &format!(r#"{{{V}, "cookie": {{"maxAge": "1.5s"}}}}"#) => "cookie.maxAge: \"1.5s\" is not whole seconds";
    istio_authority_match: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"authority": {{"exact": "a"}}, "uri": {{"prefix": "/"}}}}]}}]}}"#) => "rules[0].match[0].authority: Istio's authority is not supported";
    istio_ignore_uri_case: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"uri": {{"prefix": "/A"}}, "ignoreUriCase": true}}]}}]}}"#) => "rules[0].match[0].ignoreUriCase: Istio's ignoreUriCase is not supported";
    istio_source_labels: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"sourceLabels": {{"app": "a"}}, "uri": {{"prefix": "/"}}}}]}}]}}"#) => "rules[0].match[0].sourceLabels: Istio's sourceLabels is not supported";
    istio_gateways: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"gateways": ["mesh"], "uri": {{"prefix": "/"}}}}]}}]}}"#) => "rules[0].match[0].gateways: Istio's gateways is not supported";
    istio_port: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"port": 80, "uri": {{"prefix": "/"}}}}]}}]}}"#) => "rules[0].match[0].port: Istio's port is not supported";
    unknown_match_field: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"header": {{"a": {{}}}}}}]}}]}}"#) => "rules[0].match[0].header: unknown field `header`";
    host_prefix_without_secure: &format!(r#"{{{V}, "cookie": {{"name": "__Host-canary"}}}}"#) => "cookie.secure: the __Host- cookie name prefix needs secure: true (RFC 6265bis";
    host_prefix_in_lower_case_without_secure: &format!(r#"{{{V}, "cookie": {{"name": "__host-canary"}}}}"#) => "cookie.secure: the __Host- cookie name prefix needs secure: true";
    host_prefix_with_a_sub_path: &format!(r#"{{{V}, "cookie": {{"name": "__Host-canary", "secure": true, "path": "/panel"}}}}"#) => "cookie.path: the __Host- cookie name prefix needs path \"/\", not \"/panel\"";
    host_prefix_with_a_domain: &format!(r#"{{{V}, "cookie": {{"name": "__Host-canary", "secure": true, "domain": "airport.example"}}}}"#) => "cookie.domain: the __Host- cookie name prefix forbids a domain";
    secure_prefix_without_secure: &format!(r#"{{{V}, "cookie": {{"name": "__Secure-canary", "path": "/panel"}}}}"#) => "cookie.secure: the __Secure- cookie name prefix needs secure: true";
    bad_header_name_in_rule: &format!(r#"{{{V}, "rules": [{{"subset": "v2", "match": [{{"headers": {{"end user": {{"exact": "a"}}}}}}]}}]}}"#) => "rules[0].match[0].headers.end user: \"end user\" is not a valid header name";
    bad_route_header: &format!(r#"{{{V}, "routeHeader": "x canary"}}"#) => "routeHeader: \"x canary\" is not a valid header name";
    pseudo_route_header: &format!(r#"{{{V}, "routeHeader": ":authority"}}"#) => "routeHeader: \":authority\" is a pseudo-header (Envoy owns it)";
    reserved_route_header: &format!(r#"{{{V}, "routeHeader": "Host"}}"#) => "routeHeader: \"Host\" cannot be used here";
    identity_is_route_header: &format!(r#"{{{V}, "identity": "X-Canary-Subset"}}"#) => "identity: must differ from routeHeader";
    bad_identity: &format!(r#"{{{V}, "identity": ""}}"#) => "identity: \"\" is not a valid header name";
    bad_cookie_name: &format!(r#"{{{V}, "cookie": {{"name": "can;ary"}}}}"#) => "cookie.name: \"can;ary\" is not a cookie name";
    bad_duration: &format!(r#"{{{V}, "cookie": {{"maxAge": "a week"}}}}"#) => "cookie.maxAge: cannot parse duration \"a week\"";
    duration_without_unit: &format!(r#"{{{V}, "cookie": {{"maxAge": "3600"}}}}"#) => "cookie.maxAge: cannot parse duration \"3600\": \"3600\" has a number without a unit";
    zero_max_age: &format!(r#"{{{V}, "cookie": {{"maxAge": "0s"}}}}"#) => "cookie.maxAge: must be at least 1s";
    huge_max_age: &format!(r#"{{{V}, "cookie": {{"maxAge": "401d"}}}}"#) => "cookie.maxAge: 401d is longer than 400d";
    relative_cookie_path: &format!(r#"{{{V}, "cookie": {{"path": "app"}}}}"#) => "cookie.path: \"app\" must start with '/'";
    bad_cookie_domain: &format!(r#"{{{V}, "cookie": {{"domain": "exa mple.com"}}}}"#) => "cookie.domain: \"exa mple.com\" is not a domain";
    bad_same_site: &format!(r#"{{{V}, "cookie": {{"sameSite": "Relaxed"}}}}"#) => "cookie.sameSite: \"Relaxed\" is not Strict, Lax or None";
    same_site_none_without_secure: &format!(r#"{{{V}, "cookie": {{"sameSite": "None"}}}}"#) => "cookie.sameSite: SameSite=None needs secure: true";
    short_inline_key: &format!(r#"{{{V}, "cookie": {{"signingKey": {{"inline": "too short"}}}}}}"#) => "cookie.signingKey.inline: the key is 9 bytes; at least 32 are needed";
    key_with_both_sources: &format!(r#"{{{V}, "cookie": {{"signingKey": {{"inline": "{KEY}", "env": "K"}}}}}}"#) => "cookie.signingKey: give one of inline or env";
    key_with_no_source: &format!(r#"{{{V}, "cookie": {{"signingKey": {{}}}}}}"#) => "cookie.signingKey: give one of inline or env";
    unset_env_key: &format!(r#"{{{V}, "cookie": {{"signingKey": {{"env": "CANARY_KEY"}}}}}}"#) => "cookie.signingKey.env: environment variable \"CANARY_KEY\" is not set";
    previous_without_current: &format!(r#"{{{V}, "cookie": {{"previousSigningKey": {{"inline": "{KEY}"}}}}}}"#) => "cookie.previousSigningKey: needs signingKey";
    short_previous_key: &format!(r#"{{{V}, "cookie": {{"signingKey": {{"inline": "{KEY}"}}, "previousSigningKey": {{"inline": "short"}}}}}}"#) => "cookie.previousSigningKey.inline: the key is 5 bytes";
}

#[test]
fn errors_never_show_the_key() {
    let message = refusal(&format!(
        r#"{{{V}, "cookie": {{"signingKey": {{"inline": "secret-but-short"}}}}}}"#
    ));
    assert!(!message.contains("secret"), "{message}");
}

#[test]
fn a_key_comes_from_the_environment() {
    let env = |name: &str| (name == "CANARY_KEY").then(|| format!("{KEY}\n"));
    let json = format!(r#"{{{V}, "cookie": {{"signingKey": {{"env": "CANARY_KEY"}}}}}}"#);
    let config = Config::from_json(json.as_bytes(), &env).unwrap();
    assert!(config.cookie().codec.signed());
    let short = |_: &str| Some("short\n".to_string());
    let error = Config::from_json(json.as_bytes(), &short).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cookie.signingKey.env: the key is 5 bytes; at least 32 are needed"
    );
    assert_eq!(error.path(), "cookie.signingKey.env");
}

#[test]
fn defaults() {
    let config = config(&format!("{{{V}}}"));
    assert_eq!(config.route_header(), "x-canary-subset");
    assert_eq!(config.identity(), None);
    assert_eq!(config.cookie().codec.name(), "canary");
    assert_eq!(config.cookie().max_age, 7 * 86_400);
    assert_eq!(
        config.cookie().attributes,
        "; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"
    );
    assert!(!config.cookie().codec.signed());
}

#[test]
fn header_names_are_lower_cased() {
    let config = config(&format!(
        r#"{{{V}, "routeHeader": "X-Version", "identity": "X-User-Id"}}"#
    ));
    assert_eq!(config.route_header(), "x-version");
    assert_eq!(config.identity(), Some("x-user-id"));
}

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

fn signed(weights: (u8, u8), extra: &str) -> Config {
    config(&format!(
        r#"{{"subsets": [{{"name": "v1", "weight": {}}}, {{"name": "v2", "weight": {}}}],
            "cookie": {{"name": "canary", "maxAge": "1d", "signingKey": {{"inline": "{KEY}"}}}}{extra}}}"#,
        weights.0, weights.1
    ))
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn decide<'c>(config: &'c Config, pairs: &[(&str, &str)], now: u64, random: u64) -> Decision<'c> {
    let headers = headers(pairs);
    let path = pairs
        .iter()
        .find(|(k, _)| *k == ":path")
        .map_or("/", |(_, v)| v);
    config.decide(&RequestView {
        headers: &headers,
        path,
        now: Some(now),
        random,
    })
}

/// The cookie value of a `Set-Cookie` header.
fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value)
        .unwrap()
}

#[test]
fn a_new_user_gets_a_random_bucket_and_a_cookie() {
    let config = signed((90, 10), "");
    let decision = decide(&config, &[], NOW, 9_123);
    assert_eq!(decision.bucket, Some(9_123));
    assert_eq!(decision.subset_name, "v2");
    assert_eq!(
        decision.reason,
        Reason::Assigned {
            source: BucketSource::Random
        }
    );
    let set_cookie = decision.set_cookie.unwrap();
    assert!(
        set_cookie.starts_with("canary=c1.9123.v2.1767225600."),
        "{set_cookie}"
    );
    assert!(set_cookie.ends_with("; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax"));
    let decision = decide(&config, &[], NOW, 8_999);
    assert_eq!(decision.subset_name, "v1");
}

#[test]
fn a_valid_cookie_sticks_without_a_new_cookie() {
    let config = signed((90, 10), "");
    let value = config.cookie().codec.encode(9_500, "v2", NOW);
    let cookie = format!("other=1; canary={value}");
    let decision = decide(&config, &[("cookie", &cookie)], NOW + 60, 0);
    assert_eq!(decision.reason, Reason::Sticky);
    assert_eq!(decision.subset_name, "v2");
    assert_eq!(decision.bucket, Some(9_500));
    assert_eq!(decision.set_cookie, None);
    assert_eq!(decision.rejected, None);
}

#[test]
fn a_cookie_past_half_its_life_is_refreshed() {
    let config = signed((90, 10), "");
    let value = config.cookie().codec.encode(9_500, "v2", NOW);
    let cookie = format!("canary={value}");
    let later = NOW + 12 * 3_600;
    let decision = decide(&config, &[("cookie", &cookie)], later, 0);
    assert_eq!(decision.reason, Reason::Sticky);
    let set_cookie = decision.set_cookie.unwrap();
    assert!(set_cookie.starts_with(&format!("canary=c1.9500.v2.{later}.")));
}

#[test]
fn a_ramp_reassigns_and_rewrites_the_cookie() {
    let at_10 = signed((90, 10), "");
    let value = at_10.cookie().codec.encode(6_000, "v1", NOW);
    let cookie = format!("canary={value}");
    assert_eq!(
        decide(&at_10, &[("cookie", &cookie)], NOW, 0).reason,
        Reason::Sticky
    );
    let at_50 = signed((50, 50), "");
    let decision = decide(&at_50, &[("cookie", &cookie)], NOW, 0);
    assert_eq!(decision.reason, Reason::Reassigned { from: Some(0) });
    assert_eq!(decision.subset_name, "v2");
    let set_cookie = decision.set_cookie.unwrap();
    assert!(set_cookie.starts_with(&format!("canary=c1.6000.v2.{NOW}.")));
}

#[test]
fn a_cookie_for_a_removed_subset_keeps_its_bucket() {
    // Signed for v1, v2 and v3; v3 (the last) was then removed and its
    // weight given back to v2.
    let three = config(&format!(
        r#"{{"subsets": [{{"name": "v1", "weight": 80}}, {{"name": "v2", "weight": 10}}, {{"name": "v3", "weight": 10}}],
            "cookie": {{"maxAge": "1d", "signingKey": {{"inline": "{KEY}"}}}}}}"#
    ));
    let two = signed((80, 20), "");
    for (bucket, subset) in [(9_500, "v2"), (9_000, "v2"), (9_999, "v2")] {
        let value = three.cookie().codec.encode(bucket, "v3", NOW);
        let cookie = format!("canary={value}");
        // The same answer whatever the random draw and the identity.
        for (random, user) in [(0, "alice"), (1_234, "bob")] {
            let decision = decide(
                &two,
                &[("cookie", &cookie), ("x-user-id", user)],
                NOW + 60,
                random,
            );
            assert_eq!(decision.reason, Reason::Reassigned { from: None });
            assert_eq!(decision.subset_name, subset);
            assert_eq!(decision.bucket, Some(bucket));
            assert_eq!(decision.rejected, None);
            let set_cookie = decision.set_cookie.unwrap();
            assert!(
                set_cookie.starts_with(&format!("canary=c1.{bucket}.{subset}.{}.", NOW + 60)),
                "{set_cookie}"
            );
        }
    }
    // A v3 cookie whose bucket v1 owns now goes to v1 (only possible when
    // the weights moved too): the bucket alone decides.
    let value = three.cookie().codec.encode(42, "v3", NOW);
    let decision = decide(&two, &[("cookie", &format!("canary={value}"))], NOW, 9_999);
    assert_eq!(decision.subset_name, "v1");
    assert_eq!(decision.reason, Reason::Reassigned { from: None });
    // Expired, forged or unsigned is still refused, removed subset or not.
    let expired = three.cookie().codec.encode(9_500, "v3", NOW - 86_400);
    let forged = value.replacen("42", "43", 1);
    for (value, why) in [
        (expired, Rejection::Expired),
        (forged, Rejection::BadSignature),
        ("c1.9500.v3.1767225600".to_string(), Rejection::BadSignature),
    ] {
        let decision = decide(&two, &[("cookie", &format!("canary={value}"))], NOW, 7);
        assert_eq!(decision.rejected, Some(why), "{value}");
        assert_eq!(decision.bucket, Some(7));
    }
}

#[test]
fn rejected_cookies_are_replaced() {
    let config = signed((90, 10), "");
    let codec = &config.cookie().codec;
    let good = codec.encode(9_500, "v2", NOW);
    let forged = good.replacen("9500", "9501", 1);
    let expired = codec.encode(9_500, "v2", NOW - 86_400);
    for (value, why) in [
        (forged, Rejection::BadSignature),
        (expired, Rejection::Expired),
        ("c1.9500.v2".to_string(), Rejection::Malformed),
        ("%%%".to_string(), Rejection::Malformed),
    ] {
        let cookie = format!("canary={value}");
        let decision = decide(&config, &[("cookie", &cookie)], NOW, 42);
        assert_eq!(decision.rejected, Some(why), "{value}");
        assert_eq!(decision.bucket, Some(42), "{value}");
        assert!(decision.set_cookie.is_some());
    }
}

#[test]
fn rules_win_and_leave_the_cookie_alone() {
    let config = signed(
        (100, 0),
        r#", "rules": [
            {"subset": "v2", "match": [{"headers": {"end-user": {"exact": "tester"}}}]},
            {"subset": "v1", "match": [{"uri": {"prefix": "/v2"}}, {"queryParams": {"canary": {"exact": "no"}}}]},
            {"subset": "v2", "match": [{"headers": {"user-agent": {"regex": ".*62.*"}}}, {"cookies": {"beta": {"exact": "yes"}}}]},
            {"subset": "v2", "match": [{"headers": {"x-beta": {}}, "uri": {"exact": "/only"}}]}
        ]"#,
    );
    let tester = decide(&config, &[("end-user", "tester")], NOW, 0);
    assert_eq!(tester.subset_name, "v2");
    assert_eq!(tester.reason, Reason::Rule { index: 0 });
    assert_eq!(tester.set_cookie, None);
    assert_eq!(tester.bucket, None);
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Reason);
    let cases: &[Case<'_>] = &[
        (
            &[("end-user", "testers")],
            "v1",
            Reason::Assigned {
                source: BucketSource::Random,
            },
        ),
        (
            &[("end-user", "tester"), (":path", "/v2/x")],
            "v2",
            Reason::Rule { index: 0 },
        ),
        (&[(":path", "/v2/x")], "v1", Reason::Rule { index: 1 }),
        (
            &[(":path", "/x?a=1&canary=no")],
            "v1",
            Reason::Rule { index: 1 },
        ),
        (
            &[("user-agent", "Mozilla/62.0")],
            "v2",
            Reason::Rule { index: 2 },
        ),
        (
            &[("user-agent", "Mozilla/61.0")],
            "v1",
            Reason::Assigned {
                source: BucketSource::Random,
            },
        ),
        (
            &[("cookie", "a=b; beta=yes")],
            "v2",
            Reason::Rule { index: 2 },
        ),
        (
            &[("x-beta", ""), (":path", "/only")],
            "v2",
            Reason::Rule { index: 3 },
        ),
        (
            &[("x-beta", ""), (":path", "/only/not")],
            "v1",
            Reason::Assigned {
                source: BucketSource::Random,
            },
        ),
    ];
    for (pairs, subset, reason) in cases {
        let decision = decide(&config, pairs, NOW, 0);
        assert_eq!(decision.subset_name, *subset, "{pairs:?}");
        assert_eq!(decision.reason, *reason, "{pairs:?}");
    }
}

#[test]
fn the_identity_hash_picks_the_bucket() {
    let config = signed((50, 50), r#", "identity": "x-user-id""#);
    let a = decide(&config, &[("x-user-id", "alice")], NOW, 1);
    let b = decide(&config, &[("x-user-id", "alice")], NOW, 2);
    assert_eq!(a.bucket, Some(identity_bucket("alice")));
    assert_eq!(a.bucket, b.bucket);
    assert_eq!(
        a.reason,
        Reason::Assigned {
            source: BucketSource::Identity
        }
    );
    // An empty identity is no identity.
    let anonymous = decide(&config, &[("x-user-id", "")], NOW, 77);
    assert_eq!(anonymous.bucket, Some(77));
    // The cookie wins over the identity.
    let value = config.cookie().codec.encode(3, "v1", NOW);
    let cookie = format!("canary={value}");
    let decision = decide(
        &config,
        &[("x-user-id", "alice"), ("cookie", &cookie)],
        NOW,
        0,
    );
    assert_eq!(decision.bucket, Some(3));
}

#[test]
fn the_previous_key_is_accepted_and_the_cookie_resigned() {
    let old = signed((90, 10), "");
    let value = old.cookie().codec.encode(9_500, "v2", NOW);
    let cookie = format!("canary={value}");
    let rotated = config(&format!(
        r#"{{{V}, "cookie": {{"maxAge": "1d", "signingKey": {{"inline": "{OLD_KEY}"}}, "previousSigningKey": {{"inline": "{KEY}"}}}}}}"#
    ));
    let decision = decide(&rotated, &[("cookie", &cookie)], NOW + 1, 0);
    assert_eq!(decision.reason, Reason::Sticky);
    let set_cookie = decision.set_cookie.unwrap();
    let resigned = cookie_value(&set_cookie);
    assert_ne!(resigned, value);
    assert!(
        rotated.cookie().codec.decode(resigned).unwrap().1 == Verified::Current,
        "{resigned}"
    );
    // Once the old key is dropped, the old cookie is forged.
    let dropped = config(&format!(
        r#"{{{V}, "cookie": {{"maxAge": "1d", "signingKey": {{"inline": "{OLD_KEY}"}}}}}}"#
    ));
    let decision = decide(&dropped, &[("cookie", &cookie)], NOW + 1, 0);
    assert_eq!(decision.rejected, Some(Rejection::BadSignature));
}

#[test]
fn the_first_valid_cookie_of_several_wins() {
    let config = signed((90, 10), "");
    let value = config.cookie().codec.encode(9_500, "v2", NOW);
    let cookies = format!("canary=junk; canary={value}");
    let decision = decide(&config, &[("cookie", &cookies)], NOW, 0);
    assert_eq!(decision.reason, Reason::Sticky);
    assert_eq!(decision.rejected, None);
}

#[test]
fn unsigned_cookies_work_without_a_key() {
    let config = config(&format!("{{{V}}}"));
    let decision = decide(
        &config,
        &[("cookie", "canary=c1.9999.v2.1767225600")],
        NOW,
        0,
    );
    assert_eq!(decision.reason, Reason::Sticky);
    assert_eq!(decision.subset_name, "v2");
}

// ---------------------------------------------------------------------------
// The cookie's scope, quoting, name prefixes and clock (issue 15)
// ---------------------------------------------------------------------------

/// v1 10 / v2 90, the cookie scoped to `path`.
fn scoped(path: &str) -> Config {
    config(&format!(
        r#"{{"subsets": [{{"name": "v1", "weight": 10}}, {{"name": "v2", "weight": 90}}],
            "cookie": {{"name": "canary", "maxAge": "1d", "path": "{path}", "signingKey": {{"inline": "{KEY}"}}}}}}"#
    ))
}

#[test]
fn only_requests_inside_the_cookie_path_are_assigned() {
    let config = scoped("/panel");
    // Random draw 9999 would be v2: inside the path, a new v2 user.
    for path in ["/panel", "/panel/", "/panel/x/y", "/panel?tab=2"] {
        let decision = decide(&config, &[(":path", path)], NOW, 9_999);
        assert_eq!(decision.subset_name, "v2", "{path}");
        assert!(
            decision
                .set_cookie
                .as_deref()
                .is_some_and(|c| c.contains("; Path=/panel;")),
            "{path}: {decision:?}"
        );
    }
    // Outside (RFC 6265 §5.1.4): the default subset, no bucket, no cookie.
    for path in ["/api", "/", "/panelx", "/pane", "/Panel", "/api?x=/panel"] {
        let decision = decide(&config, &[(":path", path)], NOW, 9_999);
        assert_eq!(decision.reason, Reason::OutsideCookiePath, "{path}");
        assert_eq!(decision.subset_name, "v1", "{path}");
        assert_eq!(decision.bucket, None, "{path}");
        assert_eq!(decision.set_cookie, None, "{path}");
    }
}

#[test]
fn outside_the_cookie_path_the_cookie_is_neither_read_nor_rewritten() {
    // A v2 cookie that would be rewritten (signed with a key since rotated
    // out) reaches /api: a browser would not send it there, and whatever
    // the request carries, the router writes nothing.
    let config = scoped("/panel");
    let value = config.cookie().codec.encode(9_500, "v2", NOW - 80_000);
    let cookie = format!("canary={value}");
    let inside = decide(&config, &[(":path", "/panel"), ("cookie", &cookie)], NOW, 0);
    assert_eq!(inside.reason, Reason::Sticky);
    assert!(
        inside.set_cookie.is_some(),
        "old: refreshed inside the path"
    );
    let outside = decide(&config, &[(":path", "/api"), ("cookie", &cookie)], NOW, 0);
    assert_eq!(outside.reason, Reason::OutsideCookiePath);
    assert_eq!(outside.set_cookie, None);
    assert_eq!(outside.rejected, None);
}

#[test]
fn rules_still_apply_outside_the_cookie_path() {
    let config = config(
        r#"{"subsets": [{"name": "v1", "weight": 100}, {"name": "v2", "weight": 0}],
            "rules": [{"subset": "v2", "match": [{"headers": {"end-user": {"exact": "tester"}}}]}],
            "cookie": {"path": "/panel"}}"#,
    );
    let decision = decide(
        &config,
        &[(":path", "/api"), ("end-user", "tester")],
        NOW,
        0,
    );
    assert_eq!(decision.reason, Reason::Rule { index: 0 });
    assert_eq!(decision.subset_name, "v2");
}

#[test]
fn the_default_subset_is_the_first_with_a_weight() {
    let drained = config(
        r#"{"subsets": [{"name": "v1", "weight": 0}, {"name": "v2", "weight": 100}],
            "cookie": {"path": "/panel"}}"#,
    );
    assert_eq!(drained.default_subset(), 1);
    let decision = decide(&drained, &[(":path", "/api")], NOW, 0);
    assert_eq!(decision.subset_name, "v2");
    assert_eq!(scoped("/panel").default_subset(), 0);
}

#[test]
fn a_quoted_cookie_is_the_same_cookie() {
    let config = signed((90, 10), "");
    let value = config.cookie().codec.encode(9_500, "v2", NOW);
    for cookie in [
        format!("canary=\"{value}\""),
        format!("theme=dark; canary=\"{value}\"; x=1"),
    ] {
        let decision = decide(&config, &[("cookie", &cookie)], NOW + 60, 0);
        assert_eq!(decision.reason, Reason::Sticky, "{cookie}");
        assert_eq!(decision.bucket, Some(9_500));
        assert_eq!(decision.rejected, None, "{cookie}");
        assert_eq!(decision.set_cookie, None, "{cookie}");
    }
    // Only one pair goes: two pairs of quotes are not a cookie of ours.
    let twice = format!("canary=\"\"{value}\"\"");
    let decision = decide(&config, &[("cookie", &twice)], NOW, 0);
    assert_eq!(decision.rejected, Some(Rejection::Malformed));
}

#[test]
fn cookie_name_prefixes_with_their_attributes_are_accepted() {
    let host = config(&format!(
        r#"{{{V}, "cookie": {{"name": "__Host-canary", "secure": true}}}}"#
    ));
    assert_eq!(
        host.cookie().attributes,
        "; Max-Age=604800; Path=/; Secure; HttpOnly; SameSite=Lax"
    );
    let secure = config(&format!(
        r#"{{{V}, "cookie": {{"name": "__Secure-canary", "secure": true, "path": "/panel", "domain": "airport.example"}}}}"#
    ));
    assert_eq!(secure.cookie().codec.name(), "__Secure-canary");
    // Not a prefix: only at the start.
    config(&format!(
        r#"{{{V}, "cookie": {{"name": "x__Host-canary"}}}}"#
    ));
}

#[test]
fn a_cookie_from_the_future_keeps_its_bucket_and_is_reissued_now() {
    let config = signed((90, 10), "");
    let codec = &config.cookie().codec;
    // Another proxy an hour ahead, or this one before its clock stepped back
    // ten years.
    for issued in [NOW + 3_600, NOW + 10 * 365 * 86_400] {
        let value = codec.encode(9_500, "v2", issued);
        let decision = decide(&config, &[("cookie", &format!("canary={value}"))], NOW, 42);
        assert_eq!(decision.reason, Reason::Sticky, "{issued}");
        assert_eq!(decision.bucket, Some(9_500));
        assert_eq!(decision.rejected, None);
        let set_cookie = decision.set_cookie.expect("re-issued");
        assert!(
            set_cookie.starts_with(&format!("canary=c1.9500.v2.{NOW}.")),
            "{set_cookie}"
        );
    }
    // Within the clock skew: as fresh as a cookie of now, left alone.
    let value = codec.encode(9_500, "v2", NOW + decision::CLOCK_SKEW_SECS);
    let decision = decide(&config, &[("cookie", &format!("canary={value}"))], NOW, 42);
    assert_eq!(decision.reason, Reason::Sticky);
    assert_eq!(decision.set_cookie, None);
    // After a ramp down, a future cookie moves like any other, stamped now.
    let value = codec.encode(9_500, "v2", NOW + 3_600);
    let rolled_back = signed((100, 0), "");
    let decision = decide(
        &rolled_back,
        &[("cookie", &format!("canary={value}"))],
        NOW,
        42,
    );
    assert_eq!(decision.reason, Reason::Reassigned { from: Some(1) });
    assert!(
        decision
            .set_cookie
            .is_some_and(|c| c.starts_with(&format!("canary=c1.9500.v1.{NOW}.")))
    );
}

// ---------------------------------------------------------------------------
// Istio's match semantics, as Envoy evaluates them (issue 15)
// ---------------------------------------------------------------------------

fn ruled(rules: &str) -> Config {
    signed((100, 0), &format!(r#", "rules": {rules}"#))
}

fn rule_matches(config: &Config, pairs: &[(&str, &str)]) -> bool {
    matches!(decide(config, pairs, NOW, 0).reason, Reason::Rule { .. })
}

#[test]
fn a_repeated_header_matches_on_any_of_its_values_as_in_envoy() {
    let exact =
        ruled(r#"[{"subset": "v2", "match": [{"headers": {"x-group": {"exact": "beta"}}}]}]"#);
    assert!(rule_matches(
        &exact,
        &[("x-group", "alpha"), ("x-group", "beta")]
    ));
    assert!(rule_matches(
        &exact,
        &[("x-group", "beta"), ("X-Group", "alpha")]
    ));
    assert!(!rule_matches(&exact, &[("x-group", "alpha,beta")]));
    let without = ruled(
        r#"[{"subset": "v2", "match": [{"headers": {"x-beta": {}}, "withoutHeaders": {"x-group": {"exact": "staff"}}}]}]"#,
    );
    assert!(!rule_matches(
        &without,
        &[("x-beta", ""), ("x-group", "a"), ("x-group", "staff")]
    ));
    assert!(rule_matches(
        &without,
        &[("x-beta", ""), ("x-group", "a"), ("x-group", "b")]
    ));
}

#[test]
fn the_first_query_parameter_of_a_name_is_matched() {
    let config = ruled(r#"[{"subset": "v2", "match": [{"queryParams": {"v": {"exact": "2"}}}]}]"#);
    assert!(rule_matches(&config, &[(":path", "/?v=2")]));
    assert!(rule_matches(&config, &[(":path", "/?v=2&v=1")]));
    assert!(!rule_matches(&config, &[(":path", "/?v=1&v=2")]));
    let present = ruled(r#"[{"subset": "v2", "match": [{"queryParams": {"preview": {}}}]}]"#);
    assert!(rule_matches(&present, &[(":path", "/?preview")]));
    assert!(rule_matches(&present, &[(":path", "/?a=1&preview=")]));
    assert!(!rule_matches(&present, &[(":path", "/?previews=1")]));
}

#[test]
fn an_empty_string_match_checks_presence_and_without_headers_inverts() {
    let config = ruled(
        r#"[{"subset": "v2", "match": [{"headers": {"x-beta": {}}, "withoutHeaders": {"x-opt-out": {}, "x-group": {"exact": "staff"}}}]}]"#,
    );
    assert!(rule_matches(&config, &[("x-beta", "")]));
    assert!(rule_matches(
        &config,
        &[("x-beta", "1"), ("x-group", "guests")]
    ));
    assert!(!rule_matches(&config, &[]));
    assert!(!rule_matches(
        &config,
        &[("x-beta", "1"), ("x-opt-out", "")]
    ));
    assert!(!rule_matches(
        &config,
        &[("x-beta", "1"), ("x-group", "staff")]
    ));
    // A missing header counts as empty for a value condition, as Envoy's
    // treat_missing_header_as_empty: `withoutHeaders: {x: {exact: ""}}`
    // refuses requests without x.
    let empty = ruled(
        r#"[{"subset": "v2", "match": [{"headers": {"x-beta": {}}, "withoutHeaders": {"x-group": {"exact": ""}}}]}]"#,
    );
    assert!(!rule_matches(&empty, &[("x-beta", "1")]));
    assert!(rule_matches(&empty, &[("x-beta", "1"), ("x-group", "a")]));
    // Istio's `method`: the `:method` pseudo-header.
    let method = ruled(r#"[{"subset": "v2", "match": [{"method": {"exact": "POST"}}]}]"#);
    assert!(rule_matches(&method, &[(":method", "POST")]));
    assert!(!rule_matches(&method, &[(":method", "GET")]));
}

#[test]
fn istios_cookie_header_regex_works() {
    // The Istio documentation's cookie routing: a regex on the cookie header.
    let config = ruled(
        r#"[{"subset": "v2", "match": [{"name": "jason", "headers": {"cookie": {"regex": "^(.*?;)?(user=jason)(;.*)?$"}}}]}]"#,
    );
    assert!(rule_matches(
        &config,
        &[("cookie", "user=jason; theme=dark")]
    ));
    assert!(!rule_matches(&config, &[("cookie", "user=jasonx")]));
}

#[test]
fn cookie_conditions_read_the_first_cookie_unquoted() {
    let config = ruled(r#"[{"subset": "v2", "match": [{"cookies": {"beta": {"exact": "yes"}}}]}]"#);
    assert!(rule_matches(&config, &[("cookie", "beta=\"yes\"")]));
    assert!(rule_matches(&config, &[("cookie", "beta=yes; beta=no")]));
    assert!(!rule_matches(&config, &[("cookie", "beta=no; beta=yes")]));
}

#[test]
fn max_age_is_a_go_duration_led_by_days() {
    for (text, secs) in [
        ("7d", 7 * 86_400),
        ("1d12h", 129_600),
        ("90m", 5_400),
        ("1.5h", 5_400),
        ("1h30m15s", 5_415),
        ("400d", 400 * 86_400),
    ] {
        let config = config(&format!(r#"{{{V}, "cookie": {{"maxAge": "{text}"}}}}"#));
        assert_eq!(config.cookie().max_age, secs, "{text}");
    }
}

#[test]
fn without_a_clock_no_cookie_is_read_or_written() {
    let config = signed((10, 90), "");
    let value = config.cookie().codec.encode(9_500, "v2", NOW);
    let headers = headers(&[("cookie", &format!("canary={value}"))]);
    let decision = config.decide(&RequestView {
        headers: &headers,
        path: "/",
        now: None,
        random: 9_999,
    });
    assert_eq!(decision.reason, Reason::NoClock);
    assert_eq!(decision.subset_name, "v1");
    assert_eq!(decision.set_cookie, None);
}
