//! Rules, forged cookies and client route headers in a real Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod envoy;

use envoy::{KEY, User, Versions, config, counter};

const TESTER_RULE: &str = r#", "rules": [
    {"subset": "v2", "match": [{"headers": {"end-user": {"exact": "tester"}}}]}
]"#;

#[test]
fn the_tester_always_reaches_v2_even_at_zero_weight() {
    let versions = Versions::start();
    let envoy = versions.envoy(&config(0, TESTER_RULE));
    let base = envoy.url().unwrap();
    // A regular visit first, so the tester also carries a v1 cookie.
    let mut user = User::new();
    assert_eq!(user.visit(&base).version, "v1");
    user.headers.push(("end-user".into(), "tester".into()));
    for _ in 0..20 {
        let seen = user.visit(&base);
        assert_eq!(seen.version, "v2");
        assert!(seen.set_cookie.is_none());
    }
    let mut fresh = User::new();
    fresh.headers.push(("end-user".into(), "tester".into()));
    assert_eq!(fresh.visit(&base).version, "v2");
    assert_eq!(counter(&envoy, "canary_router.rule_matches"), 21);
    // Without the header, the tester's cookie still says v1.
    user.headers.clear();
    assert_eq!(user.visit(&base).version, "v1");
}

#[test]
fn a_forged_cookie_is_ignored() {
    // At 10 %, bucket 9999 is on v2. The forger's identity hashes to bucket
    // 7236 (v1), so a refused cookie deterministically lands on v1.
    let versions = Versions::start();
    let envoy = versions.envoy(&config(10, r#", "identity": "x-user-id""#));
    let base = envoy.url().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut forger = User::new();
    forger.headers.push(("x-user-id".into(), "alice".into()));
    assert_eq!(canary_router_filter::identity_bucket("alice"), 7_236);
    // Bucket edited in a genuine cookie (MAC kept), or signed with a guessed key.
    let genuine = signer(KEY).cookie().codec.encode(100, "v1", now);
    let edited = genuine
        .replacen(".100.", ".9999.", 1)
        .replacen(".v1.", ".v2.", 1);
    let guessed = signer("not-the-key-0123456789abcdefghij")
        .cookie()
        .codec
        .encode(9_999, "v2", now);
    for forged in [edited, guessed] {
        forger.cookie = Some(format!("canary={forged}"));
        let seen = forger.visit(&base);
        assert_eq!(seen.version, "v1");
        assert!(seen.set_cookie.is_some());
        assert_eq!(forger.cookie_bucket(), Some(7_236));
    }
    assert_eq!(counter(&envoy, "canary_router.rejected_cookies"), 2);
    // A genuine cookie for bucket 9999 is honoured: v2.
    let genuine = signer(KEY).cookie().codec.encode(9_999, "v2", now);
    forger.cookie = Some(format!("canary={genuine}"));
    let seen = forger.visit(&base);
    assert_eq!(seen.version, "v2");
    assert!(seen.set_cookie.is_none());
    assert_eq!(counter(&envoy, "canary_router.sticky_hits"), 1);
}

#[test]
fn a_client_cannot_choose_its_version_with_the_route_header() {
    let versions = Versions::start();
    let envoy = versions.envoy(&config(0, ""));
    let base = envoy.url().unwrap();
    let mut user = User::new();
    user.headers.push(("x-canary-subset".into(), "v2".into()));
    user.headers.push(("x-canary-subset".into(), "v2".into()));
    for _ in 0..5 {
        let seen = user.visit(&base);
        assert_eq!(seen.version, "v1");
        assert_eq!(seen.route_header.as_deref(), Some("v1"));
    }
    assert_eq!(versions.v2.request_count(), 0);
}

fn signer(key: &str) -> canary_router_filter::Config {
    let json = format!(
        r#"{{"subsets": [{{"name": "v1", "weight": 100}}, {{"name": "v2", "weight": 0}}],
            "cookie": {{"name": "canary", "maxAge": "7d", "signingKey": {{"inline": "{key}"}}}}}}"#
    );
    canary_router_filter::Config::from_json(json.as_bytes(), &canary_router_filter::no_env).unwrap()
}
