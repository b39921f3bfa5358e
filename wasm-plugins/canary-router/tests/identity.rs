//! The identity header's hash gives a user without a cookie the same bucket
//! on every device, worker and proxy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use canary_router_filter::identity_bucket;
use common::*;
use proxy_wasm_harness::{Harness, Request};

const IDENTITY: &str = r#", "identity": "x-user-id""#;

#[test]
fn an_identified_user_gets_the_hash_bucket() {
    let (mut harness, worker) = start(&config_json(50, IDENTITY));
    for user in ["alice", "bob", "carol", "user-1", "user-2"] {
        let exchange = send(
            &mut harness,
            worker,
            Request::get("/").header("x-user-id", user),
        );
        let value = cookie_value(&canary_set_cookie(&exchange).unwrap());
        let bucket = identity_bucket(user);
        assert_eq!(cookie_bucket(&value), bucket, "{user}");
        let expected = if bucket >= 5_000 { "v2" } else { "v1" };
        assert_eq!(routed_to(&exchange), expected, "{user}");
    }
    assert_eq!(
        harness.counter("canary_router.assigned.v1").unwrap()
            + harness.counter("canary_router.assigned.v2").unwrap(),
        5
    );
}

#[test]
fn every_device_and_worker_agrees() {
    // Four workers with different random seeds stand for four devices.
    let mut harness = Harness::new();
    let mut subsets = Vec::new();
    for seed in 0..4 {
        let worker = harness
            .start(&plugin(&config_json(50, IDENTITY)).random_seed(seed))
            .unwrap();
        let exchange = send(
            &mut harness,
            worker,
            Request::get("/").header("x-user-id", "alice"),
        );
        subsets.push((
            routed_to(&exchange).to_string(),
            canary_set_cookie(&exchange).map(|c| cookie_bucket(&cookie_value(&c))),
        ));
    }
    assert!(subsets.windows(2).all(|w| w[0] == w[1]), "{subsets:?}");
}

#[test]
fn anonymous_users_draw_at_random() {
    // The same seed gives the same draws; different seeds spread users.
    let buckets = |seed: u64| {
        let (mut harness, worker) =
            start_plugin(&plugin(&config_json(50, IDENTITY)).random_seed(seed));
        (0..8)
            .map(|_| {
                let exchange = send(&mut harness, worker, Request::get("/"));
                cookie_bucket(&cookie_value(&canary_set_cookie(&exchange).unwrap()))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(buckets(1), buckets(1));
    assert_ne!(buckets(1), buckets(2));
}
