//! Two configurations on one shared-data key, as during a rollout (the old
//! and the new plugin configuration, same root id, running side by side):
//! neither resets the other's budget, and shared data stays bounded
//! whatever the configuration churn.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{answer, open, plugin};
use proxy_wasm_harness::Harness;

/// Same bound (0.2 x requests + 10), another window: 1/s over 10 s, 2/s over 5 s.
const OLD: &str =
    r#"{"budget": {"retryRatio": 0.2, "minRetriesPerSecond": 1, "ttl": "10s"}, "retryOn": "5xx"}"#;
const NEW: &str =
    r#"{"budget": {"retryRatio": 0.2, "minRetriesPerSecond": 2, "ttl": "5s"}, "retryOn": "5xx"}"#;

#[test]
fn the_old_and_the_new_configuration_keep_their_own_bounds() {
    let mut harness = Harness::new();
    let old = harness.start(&plugin(OLD)).unwrap();
    let new = harness.start(&plugin(NEW)).unwrap();
    let (mut by_old, mut by_new) = (0, 0);
    let mut streams = Vec::new();
    for i in 0..100 {
        let (id, granted) = open(&mut harness, if i % 2 == 0 { old } else { new }, &[]);
        if i % 2 == 0 {
            by_old += granted;
        } else {
            by_new += granted;
        }
        streams.push((id, granted));
    }
    // Each window counts both configurations' requests and grants, so
    // together they hold the bound: 0.2 x 100 + 10 = 30. (Resetting each
    // other's state, they granted 2 to every request: 200.)
    assert_eq!(by_old + by_new, 30);
    assert_eq!((by_old, by_new), (15, 15));
    for (id, granted) in streams {
        answer(&mut harness, id, 503, Some(granted + 1));
    }
    // Spent on both sides: neither configuration frees the other's.
    assert_eq!(open(&mut harness, old, &[]).1, 0);
    assert_eq!(open(&mut harness, new, &[]).1, 0);
}

#[test]
fn a_new_max_tokens_carries_the_bucket_over_at_the_same_fill() {
    // No retries, so one failed request costs exactly one token: 3 of 4.
    let four =
        r#"{"tokenBucket": {"maxTokens": 4, "tokenRatio": 0.1}, "attempts": 0, "retryOn": "5xx"}"#;
    let ten =
        r#"{"tokenBucket": {"maxTokens": 10, "tokenRatio": 0.1}, "attempts": 4, "retryOn": "5xx"}"#;
    let mut harness = Harness::new();
    let old = harness.start(&plugin(four)).unwrap();
    let (id, _) = open(&mut harness, old, &[]);
    answer(&mut harness, id, 503, Some(1));
    assert_eq!(
        harness.gauge("retry_budget._other.tokens_milli"),
        Some(3_000)
    );
    // grpc-core's replacement: 3/4 becomes 7.5/10, so 2 retries above half
    // (not the 4 of a full bucket).
    let new = harness.start(&plugin(ten)).unwrap();
    let (_, granted) = open(&mut harness, new, &[]);
    assert_eq!(granted, 2);
    assert_eq!(
        harness.gauge("retry_budget._other.tokens_milli"),
        Some(7_500)
    );
}

#[test]
fn configuration_churn_does_not_grow_shared_data() {
    let mut harness = Harness::new();
    let mut keys = None;
    for ttl in 1..=12 {
        let config = format!(
            r#"{{"budget": {{"retryRatio": 0, "minRetriesPerSecond": 2, "ttl": "{ttl}s"}}, "retryOn": "5xx"}}"#
        );
        let worker = harness.start(&plugin(&config)).unwrap();
        let (id, granted) = open(&mut harness, worker, &[]);
        // Four windows fit in a value; later ones wait for a free one.
        assert_eq!(granted, if ttl <= 4 { 2 } else { 0 }, "ttl {ttl}s");
        answer(&mut harness, id, 503, Some(granted + 1));
        let entries = harness.shared_data_entries("");
        // The same keys for every configuration: the registry and 33 slots.
        let names: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(names.len(), 34);
        assert_eq!(*keys.get_or_insert_with(|| names.clone()), names);
        for (key, value) in &entries {
            assert!(
                value.len() <= retry_budget_filter::MAX_STATE_BYTES,
                "{key}: {} bytes",
                value.len()
            );
        }
    }
}
