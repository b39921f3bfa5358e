//! The cookie as browsers keep it, in the harness: only requests inside its
//! `Path` (RFC 6265 §5.1.4) are assigned; a DQUOTE-wrapped value is the
//! same cookie (RFC 6265 §4.1.1, as Envoy's own parser reads it); a signed
//! cookie from the future keeps its bucket and is re-issued with the local
//! time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::*;
use proxy_wasm_harness::Request;

/// v1 10 / v2 90, the cookie under `/panel` only.
fn panel_scoped() -> String {
    format!(
        r#"{{"subsets": [{{"name": "v1", "weight": 10}}, {{"name": "v2", "weight": 90}}],
            "routeHeader": "{ROUTE_HEADER}",
            "cookie": {{"name": "canary", "maxAge": "1d", "path": "/panel", "signingKey": {{"inline": "{KEY}"}}}}}}"#
    )
}

#[test]
fn a_browser_calling_outside_the_cookie_path_keeps_its_cookie() {
    // fluxcd/flagger#1339: the browser has its /panel cookie, then calls
    // /api, where it does not send it. The router must neither draw a new
    // bucket there nor send a Set-Cookie that replaces the /panel one.
    let (mut harness, worker) = start(&panel_scoped());
    let mut on_v2 = 0;
    for _ in 0..40 {
        let first = send(&mut harness, worker, Request::get("/panel"));
        let set_cookie = canary_set_cookie(&first).expect("assigned under /panel");
        assert!(set_cookie.contains("; Path=/panel;"), "{set_cookie}");
        let version = routed_to(&first).to_string();
        on_v2 += usize::from(version == "v2");
        for path in ["/api/flights", "/", "/panelling", "/api?next=/panel"] {
            let api = send(&mut harness, worker, Request::get(path));
            assert_eq!(routed_to(&api), "v1", "{path}: the default subset");
            assert_eq!(canary_set_cookie(&api), None, "{path}: no cookie");
        }
        let back = send(
            &mut harness,
            worker,
            Request::get("/panel/board").header("cookie", &cookie_pair(&set_cookie)),
        );
        assert_eq!(routed_to(&back), version);
        assert_eq!(canary_set_cookie(&back), None);
    }
    assert!(on_v2 > 20, "{on_v2} of 40 drew v2 at 90 %");
    assert_eq!(
        harness.counter("canary_router.outside_cookie_path"),
        Some(160)
    );
    assert_eq!(
        harness.counter("canary_router.assigned.v1").unwrap() as usize,
        40 - on_v2
    );
    assert_eq!(harness.counter("canary_router.sticky_hits"), Some(40));
    assert_eq!(
        harness.counter("canary_router.routed.v1").unwrap() as usize,
        2 * (40 - on_v2) + 160
    );
}

#[test]
fn a_quoted_cookie_sticks() {
    let (mut harness, worker) = start(&config_json(50, ""));
    let now = now_secs(&harness);
    let value = signer(&["v1", "v2"], KEY)
        .cookie()
        .codec
        .encode(9_999, "v2", now);
    for cookie in [
        format!("canary=\"{value}\""),
        format!("theme=dark; canary=\"{value}\""),
    ] {
        let exchange = send(
            &mut harness,
            worker,
            Request::get("/").header("cookie", &cookie),
        );
        assert_eq!(routed_to(&exchange), "v2", "{cookie}");
        assert_eq!(canary_set_cookie(&exchange), None, "{cookie}");
    }
    assert_eq!(harness.counter("canary_router.sticky_hits"), Some(2));
    assert_eq!(harness.counter("canary_router.rejected_cookies"), Some(0));
}

#[test]
fn a_cookie_from_the_future_keeps_its_bucket_and_is_reissued_now() {
    // Signed by a proxy whose clock is an hour ahead (or by this one before
    // its clock stepped back): bucket 9999 at 50 % is v2, whatever the draw.
    let (mut harness, worker) = start(&config_json(50, ""));
    let now = now_secs(&harness);
    let ahead = signer(&["v1", "v2"], KEY)
        .cookie()
        .codec
        .encode(9_999, "v2", now + 3_600);
    for _ in 0..5 {
        let exchange = send(
            &mut harness,
            worker,
            Request::get("/").header("cookie", &format!("canary={ahead}")),
        );
        assert_eq!(routed_to(&exchange), "v2");
        let reissued = cookie_value(&canary_set_cookie(&exchange).expect("re-issued"));
        assert_eq!(cookie_bucket(&reissued), 9_999);
        assert_eq!(cookie_subset(&reissued), "v2");
        assert!(reissued.contains(&format!(".{now}.")), "{reissued}");
        // The re-issued cookie then sticks without another Set-Cookie.
        let again = send(
            &mut harness,
            worker,
            Request::get("/").header("cookie", &format!("canary={reissued}")),
        );
        assert_eq!(routed_to(&again), "v2");
        assert_eq!(canary_set_cookie(&again), None);
    }
    assert_eq!(harness.counter("canary_router.rejected_cookies"), Some(0));
    assert_eq!(harness.counter("canary_router.sticky_hits"), Some(10));
    assert_eq!(harness.counter("canary_router.assigned.v1"), Some(0));
    assert_eq!(harness.counter("canary_router.assigned.v2"), Some(0));
}
