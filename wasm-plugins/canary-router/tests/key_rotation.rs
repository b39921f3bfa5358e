//! Signing keys from the VM's environment, and key rotation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::*;
use proxy_wasm_harness::{Harness, Request};

fn env_config(v2: u8, previous: bool) -> String {
    let previous = if previous {
        r#", "previousSigningKey": {"env": "CANARY_KEY_PREVIOUS"}"#
    } else {
        ""
    };
    format!(
        r#"{{"subsets": [{{"name": "v1", "weight": {}}}, {{"name": "v2", "weight": {v2}}}],
            "cookie": {{"name": "canary", "maxAge": "1d",
                        "signingKey": {{"env": "CANARY_KEY"}}{previous}}}}}"#,
        100 - v2
    )
}

#[test]
fn a_key_from_the_environment_signs_cookies() {
    let plugin = plugin(&env_config(50, false)).env("CANARY_KEY", KEY);
    let (mut harness, worker) = start_plugin(&plugin);
    let exchange = send(&mut harness, worker, Request::get("/"));
    let value = cookie_value(&canary_set_cookie(&exchange).unwrap());
    // The filter, given the same key inline, accepts it.
    assert!(
        signer(&["v1", "v2"], KEY)
            .cookie()
            .codec
            .decode(&value)
            .is_ok()
    );
}

#[test]
fn a_rotation_accepts_old_cookies_and_resigns_them() {
    let mut harness = Harness::new();
    let before = harness
        .start(&plugin(&env_config(50, false)).env("CANARY_KEY", KEY))
        .unwrap();
    let first = send(&mut harness, before, Request::get("/"));
    let old_cookie = cookie_pair(&canary_set_cookie(&first).unwrap());
    let subset = routed_to(&first).to_string();

    // Rotation: the new key signs, the old one is still accepted.
    let rotating = harness
        .start(
            &plugin(&env_config(50, true))
                .env("CANARY_KEY", NEW_KEY)
                .env("CANARY_KEY_PREVIOUS", KEY),
        )
        .unwrap();
    let during = send(
        &mut harness,
        rotating,
        Request::get("/").header("cookie", &old_cookie),
    );
    assert_eq!(routed_to(&during), subset);
    let resigned = cookie_pair(&canary_set_cookie(&during).expect("re-signed"));
    assert_ne!(resigned, old_cookie);
    assert_eq!(
        cookie_bucket(&cookie_value(&resigned)),
        cookie_bucket(&cookie_value(&old_cookie))
    );
    // The re-signed cookie sticks without another rewrite.
    let again = send(
        &mut harness,
        rotating,
        Request::get("/").header("cookie", &resigned),
    );
    assert_eq!(canary_set_cookie(&again), None);

    // After the rotation: the old key is gone, the re-signed cookie holds,
    // an old one is refused.
    let after = harness
        .start(&plugin(&env_config(50, false)).env("CANARY_KEY", NEW_KEY))
        .unwrap();
    let kept = send(
        &mut harness,
        after,
        Request::get("/").header("cookie", &resigned),
    );
    assert_eq!(routed_to(&kept), subset);
    assert_eq!(canary_set_cookie(&kept), None);
    let stale = send(
        &mut harness,
        after,
        Request::get("/").header("cookie", &old_cookie),
    );
    assert!(canary_set_cookie(&stale).is_some());
    assert_eq!(harness.counter("canary_router.rejected_cookies"), Some(1));
}
