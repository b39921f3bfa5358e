//! The assignment cookie in the harness: absent, present, forged, expired,
//! for a removed subset, malformed; refreshed; beside the app's cookies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::*;
use proxy_wasm_harness::{Request, Response};

#[test]
fn a_new_user_gets_a_subset_and_a_cookie() {
    let (mut harness, worker) = start(&config_json(50, ""));
    let exchange = send(&mut harness, worker, Request::get("/panel"));
    assert_eq!(exchange.status(), Some(200));
    let set_cookie = canary_set_cookie(&exchange).expect("a cookie for a new user");
    let value = cookie_value(&set_cookie);
    let subset = cookie_subset(&value);
    assert_eq!(routed_to(&exchange), subset);
    let now = now_secs(&harness);
    assert!(
        value.starts_with(&format!("c1.{}.{subset}.{now}.", cookie_bucket(&value))),
        "{value}"
    );
    assert!(
        set_cookie.ends_with("; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax"),
        "{set_cookie}"
    );
    assert_eq!(
        harness.counter(&format!("canary_router.assigned.{subset}")),
        Some(1)
    );
    assert_eq!(
        harness.counter(&format!("canary_router.routed.{subset}")),
        Some(1)
    );
}

#[test]
fn a_returning_user_sticks_without_a_new_cookie() {
    let (mut harness, worker) = start(&config_json(50, ""));
    let first = send(&mut harness, worker, Request::get("/"));
    let cookie = cookie_pair(&canary_set_cookie(&first).unwrap());
    let subset = routed_to(&first).to_string();
    for _ in 0..10 {
        let again = send(
            &mut harness,
            worker,
            Request::get("/").header("cookie", &format!("session=1; {cookie}")),
        );
        assert_eq!(routed_to(&again), subset);
        assert_eq!(canary_set_cookie(&again), None);
    }
    assert_eq!(harness.counter("canary_router.sticky_hits"), Some(10));
    assert_eq!(harness.counter("canary_router.rejected_cookies"), Some(0));
}

#[test]
fn users_without_cookies_spread_by_weight() {
    let (mut harness, worker) = start(&config_json(30, ""));
    let n = 400;
    let v2 = (0..n)
        .filter(|_| routed_to(&send(&mut harness, worker, Request::get("/"))) == "v2")
        .count();
    // 120 expected, binomial sd ~9.2: four sd either way.
    assert!((83..=157).contains(&v2), "{v2} of {n} on v2");
    let assigned = harness.counter("canary_router.assigned.v2").unwrap();
    assert_eq!(assigned, v2 as u64);
}

#[test]
fn a_forged_cookie_is_ignored_and_replaced() {
    let (mut harness, worker) = start(&config_json(0, ""));
    // A cookie claiming v2 with bucket 9999, signed with someone else's key.
    let forged =
        signer(&["v1", "v2"], NEW_KEY)
            .cookie()
            .codec
            .encode(9_999, "v2", now_secs(&harness));
    let exchange = send(
        &mut harness,
        worker,
        Request::get("/").header("cookie", &format!("canary={forged}")),
    );
    assert_eq!(routed_to(&exchange), "v1");
    let replaced = cookie_value(&canary_set_cookie(&exchange).unwrap());
    assert_eq!(cookie_subset(&replaced), "v1");
    assert_eq!(harness.counter("canary_router.rejected_cookies"), Some(1));
    assert_eq!(harness.counter("canary_router.assigned.v1"), Some(1));
    let logs = harness.logs(worker).unwrap();
    assert!(
        logs.iter()
            .any(|l| l.message == "canary-router: ignored the canary cookie: bad signature"),
        "{logs:?}"
    );
}

#[test]
fn an_expired_cookie_is_replaced() {
    let (mut harness, worker) = start(&config_json(50, ""));
    let first = send(&mut harness, worker, Request::get("/"));
    let cookie = cookie_pair(&canary_set_cookie(&first).unwrap());
    harness.advance(Duration::from_secs(86_400)).unwrap();
    let later = send(
        &mut harness,
        worker,
        Request::get("/").header("cookie", &cookie),
    );
    let renewed = canary_set_cookie(&later).expect("a new cookie");
    assert_ne!(cookie_pair(&renewed), cookie);
    assert_eq!(harness.counter("canary_router.rejected_cookies"), Some(1));
    assert_eq!(harness.counter("canary_router.sticky_hits"), Some(0));
}

#[test]
fn a_cookie_past_half_its_life_is_refreshed_in_place() {
    let (mut harness, worker) = start(&config_json(50, ""));
    let first = send(&mut harness, worker, Request::get("/"));
    let value = cookie_value(&canary_set_cookie(&first).unwrap());
    harness.advance(Duration::from_secs(11 * 3_600)).unwrap();
    let young = send(
        &mut harness,
        worker,
        Request::get("/").header("cookie", &format!("canary={value}")),
    );
    assert_eq!(canary_set_cookie(&young), None);
    harness.advance(Duration::from_secs(2 * 3_600)).unwrap();
    let old = send(
        &mut harness,
        worker,
        Request::get("/").header("cookie", &format!("canary={value}")),
    );
    let refreshed = cookie_value(&canary_set_cookie(&old).expect("refreshed"));
    assert_eq!(cookie_bucket(&refreshed), cookie_bucket(&value));
    assert_eq!(cookie_subset(&refreshed), cookie_subset(&value));
    assert!(refreshed.contains(&format!(".{}.", now_secs(&harness))));
    assert_eq!(harness.counter("canary_router.sticky_hits"), Some(2));
}

#[test]
fn a_cookie_for_a_removed_subset_keeps_its_bucket() {
    // Rollback by removal: v1 80 / v2 10 / v3 10 became v1 80 / v2 20. The
    // v3 users' cookies are properly signed, for a subset that is gone.
    let (mut harness, worker) = start(&config_json(20, ""));
    let now = now_secs(&harness);
    let three = signer(&["v1", "v2", "v3"], KEY);
    for bucket in [9_000, 9_999, 9_500] {
        let v3 = three.cookie().codec.encode(bucket, "v3", now);
        // Twice, with other random draws in between: the same answer.
        for _ in 0..2 {
            let exchange = send(
                &mut harness,
                worker,
                Request::get("/").header("cookie", &format!("canary={v3}")),
            );
            assert_eq!(routed_to(&exchange), "v2");
            let rewritten = cookie_value(&canary_set_cookie(&exchange).expect("rewritten"));
            assert_eq!(cookie_bucket(&rewritten), bucket);
            assert_eq!(cookie_subset(&rewritten), "v2");
            send(&mut harness, worker, Request::get("/"));
        }
    }
    // A v3 cookie in a bucket v1 owns now lands on v1.
    let v3 = three.cookie().codec.encode(42, "v3", now);
    let exchange = send(
        &mut harness,
        worker,
        Request::get("/").header("cookie", &format!("canary={v3}")),
    );
    assert_eq!(routed_to(&exchange), "v1");
    let rewritten = cookie_value(&canary_set_cookie(&exchange).unwrap());
    assert_eq!(
        (
            cookie_bucket(&rewritten),
            cookie_subset(&rewritten).as_str()
        ),
        (42, "v1")
    );
    // The rewritten cookie then sticks.
    let again = send(
        &mut harness,
        worker,
        Request::get("/").header("cookie", &format!("canary={rewritten}")),
    );
    assert_eq!(routed_to(&again), "v1");
    assert_eq!(canary_set_cookie(&again), None);
    assert_eq!(harness.counter("canary_router.reassignments"), Some(7));
    assert_eq!(harness.counter("canary_router.sticky_hits"), Some(1));
    assert_eq!(harness.counter("canary_router.rejected_cookies"), Some(0));
}

#[test]
fn a_forged_cookie_for_a_removed_subset_is_replaced() {
    let (mut harness, worker) = start(&config_json(20, ""));
    let v3 =
        signer(&["v1", "v2", "v3"], NEW_KEY)
            .cookie()
            .codec
            .encode(9_999, "v3", now_secs(&harness));
    let exchange = send(
        &mut harness,
        worker,
        Request::get("/").header("cookie", &format!("canary={v3}")),
    );
    let replaced = cookie_value(&canary_set_cookie(&exchange).unwrap());
    assert_eq!(cookie_subset(&replaced), routed_to(&exchange));
    assert_eq!(harness.counter("canary_router.rejected_cookies"), Some(1));
    assert_eq!(harness.counter("canary_router.reassignments"), Some(0));
}

#[test]
fn malformed_cookies_never_fail_the_request() {
    let (mut harness, worker) = start(&config_json(50, ""));
    let valid = signer(&["v1", "v2"], KEY)
        .cookie()
        .codec
        .encode(1, "v1", now_secs(&harness));
    let junk = [
        "canary=".to_string(),
        "canary".to_string(),
        "canary=c1".to_string(),
        "canary=c1.1.v1.1".to_string(),
        "canary=c1.99999.v1.1.xyz".to_string(),
        // Quoted is the same cookie (tests/cookie_scope.rs); two quotes
        // on one side is not.
        format!("canary=\"\"{valid}\""),
        format!("canary={valid}x"),
        format!("canary={}", "9".repeat(4_000)),
        ";;;=;=".to_string(),
        "canary=%00%ff\u{7f}".to_string(),
        "canary=c1.1.v1.1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u{e9}".to_string(),
    ];
    for cookie in &junk {
        let exchange = send(
            &mut harness,
            worker,
            Request::get("/").header("cookie", cookie),
        );
        assert_eq!(exchange.status(), Some(200), "{cookie}");
        assert!(canary_set_cookie(&exchange).is_some(), "{cookie}");
    }
    assert_eq!(harness.failure(worker).unwrap(), None);
    // `canary` without `=` and `;;;=;=` carry no canary cookie at all.
    assert_eq!(
        harness.counter("canary_router.rejected_cookies"),
        Some(junk.len() as u64 - 2)
    );
}

#[test]
fn the_apps_own_cookies_are_kept() {
    let (mut harness, worker) = start(&config_json(50, ""));
    let exchange = send_with(
        &mut harness,
        worker,
        Request::get("/"),
        Response::ok()
            .header("set-cookie", "session=abc; HttpOnly")
            .header("set-cookie", "theme=dark"),
    );
    let cookies = set_cookies(&exchange);
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    assert_eq!(cookies[0], "session=abc; HttpOnly");
    assert_eq!(cookies[1], "theme=dark");
    assert!(cookies[2].starts_with("canary=c1."));
}

#[test]
fn an_app_that_sets_the_cookie_itself_has_the_last_word() {
    let (mut harness, worker) = start(&config_json(50, ""));
    let exchange = send_with(
        &mut harness,
        worker,
        Request::get("/"),
        Response::ok().header("set-cookie", "canary=; Max-Age=0"),
    );
    assert_eq!(set_cookies(&exchange), ["canary=; Max-Age=0"]);
}

#[test]
fn cookie_attributes_follow_the_configuration() {
    let config = r#"{"subsets": [{"name": "v1", "weight": 100}],
        "cookie": {"name": "cpanel-version", "maxAge": "30d", "path": "/panel",
                   "domain": "airport.example", "secure": true, "httpOnly": false,
                   "sameSite": "None"}}"#;
    let (mut harness, worker) = start(config);
    let exchange = send(&mut harness, worker, Request::get("/panel"));
    let cookies = set_cookies(&exchange);
    assert_eq!(cookies.len(), 1);
    let now = now_secs(&harness);
    assert!(cookies[0].starts_with("cpanel-version=c1."), "{cookies:?}");
    assert!(
        cookies[0].contains(&format!(".v1.{now}; ")),
        "unsigned: no MAC field: {cookies:?}"
    );
    assert!(
        cookies[0].ends_with(
            "; Max-Age=2592000; Path=/panel; Domain=airport.example; Secure; SameSite=None"
        ),
        "{cookies:?}"
    );
}
