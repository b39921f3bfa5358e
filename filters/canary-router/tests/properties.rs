//! Properties of the split, the cookie and the decision.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use canary_router_filter::{
    BUCKETS, Config, Reason, RequestView, Split, SplitMix64, Verified, identity_bucket, no_env,
    random_bucket,
};
use proptest::prelude::*;

const NOW: u64 = 1_767_225_600;

/// `n` weights summing to 100, from `n - 1` cut points in 0..=100.
fn weights(n: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..=100, n - 1).prop_map(|mut cuts| {
        cuts.sort_unstable();
        let mut previous = 0;
        let mut out = Vec::with_capacity(cuts.len() + 1);
        for cut in cuts {
            out.push(cut - previous);
            previous = cut;
        }
        out.push(100 - previous);
        out
    })
}

/// Weights for 2 to 4 subsets.
fn any_weights() -> impl Strategy<Value = Vec<u8>> {
    (2usize..=4).prop_flat_map(weights)
}

/// Old weights, and new ones where the last subset (the canary) weighs at
/// least as much, the rest shared out any way among the others.
fn ramp() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    any_weights().prop_flat_map(|old| {
        let n = old.len();
        let canary = old[n - 1];
        (canary..=100u8, prop::collection::vec(0u8..=100, n - 2)).prop_map(
            move |(new_canary, cuts)| {
                let room = 100 - new_canary;
                let mut cuts: Vec<u8> = cuts.into_iter().map(|c| c % (room + 1)).collect();
                cuts.sort_unstable();
                let mut previous = 0;
                let mut new = Vec::with_capacity(n);
                for cut in cuts {
                    new.push(cut - previous);
                    previous = cut;
                }
                new.push(room - previous);
                new.push(new_canary);
                (old.clone(), new)
            },
        )
    })
}

/// Weights for 2 to 4 subsets, the index of the one to remove, and the
/// index (among the old subsets) of the neighbour that takes its weight: the
/// one before it or the one after it.
fn removal() -> impl Strategy<Value = (Vec<u8>, usize, usize)> {
    any_weights().prop_flat_map(|weights| {
        let n = weights.len();
        (Just(weights), 0..n, any::<bool>()).prop_map(move |(weights, removed, after)| {
            let heir = match removed {
                0 => 1,
                r if r == n - 1 => r - 1,
                r if after => r + 1,
                r => r - 1,
            };
            (weights, removed, heir)
        })
    })
}

/// A signed configuration of subsets `s0, s1, ...` (named by their index in
/// `names`), with `weights`.
fn named_subsets(names: &[usize], weights: &[u8]) -> Config {
    let subsets = names
        .iter()
        .zip(weights)
        .map(|(name, weight)| format!(r#"{{"name": "s{name}", "weight": {weight}}}"#))
        .collect::<Vec<_>>()
        .join(", ");
    let json = format!(
        r#"{{"subsets": [{subsets}], "identity": "x-user-id",
            "cookie": {{"maxAge": "1d", "signingKey": {{"inline": "{KEY}"}}}}}}"#
    );
    Config::from_json(json.as_bytes(), &no_env).unwrap_or_else(|e| panic!("{e}"))
}

fn split(weights: &[u8]) -> Split {
    Split::new(weights).expect("weights sum to 100")
}

fn two_subsets(v1: u8, v2: u8, key: &str, previous: Option<&str>) -> Config {
    let previous = previous
        .map(|k| format!(r#", "previousSigningKey": {{"inline": "{k}"}}"#))
        .unwrap_or_default();
    let json = format!(
        r#"{{"subsets": [{{"name": "v1", "weight": {v1}}}, {{"name": "v2", "weight": {v2}}}],
            "cookie": {{"maxAge": "1d", "signingKey": {{"inline": "{key}"}}{previous}}}}}"#
    );
    Config::from_json(json.as_bytes(), &no_env).unwrap_or_else(|e| panic!("{e}"))
}

fn view<'a>(headers: &'a [(String, String)], random: u64) -> RequestView<'a> {
    RequestView {
        headers,
        path: "/",
        now: Some(NOW),
        random,
    }
}

fn cookie_header(set_cookie: &str) -> Vec<(String, String)> {
    let pair = set_cookie.split(';').next().unwrap().to_string();
    vec![("cookie".to_string(), pair)]
}

const KEY: &str = "0123456789abcdef0123456789abcdef";

proptest! {
    #[test]
    fn ramping_a_weight_up_never_moves_a_user_off_the_canary((old, new) in ramp()) {
        let (before, after) = (split(&old), split(&new));
        let canary = old.len() - 1;
        for bucket in 0..BUCKETS {
            if before.subset_of(bucket) == canary {
                prop_assert_eq!(after.subset_of(bucket), canary, "bucket {}", bucket);
            }
        }
    }

    #[test]
    fn ramping_up_through_the_decision_keeps_canary_users(
        from in 0u8..=100,
        by in 0u8..=100,
        random: u64,
    ) {
        let to = from.saturating_add(by).min(100);
        let before = two_subsets(100 - from, from, KEY, None);
        let after = two_subsets(100 - to, to, KEY, None);
        let first = before.decide(&view(&[], random));
        let cookie = cookie_header(first.set_cookie.as_deref().unwrap());
        let next = after.decide(&view(&cookie, 0));
        prop_assert_eq!(next.bucket, first.bucket);
        if first.subset_name == "v2" {
            prop_assert_eq!(next.subset_name, "v2");
            prop_assert_eq!(next.reason, Reason::Sticky);
        }
    }

    #[test]
    fn a_rollback_moves_exactly_the_users_who_no_longer_fit(high in 0u8..=100, low in 0u8..=100) {
        let (high, low) = (high.max(low), high.min(low));
        let before = split(&[100 - high, high]);
        let after = split(&[100 - low, low]);
        let mut moved = 0u32;
        for bucket in 0..BUCKETS {
            match (before.subset_of(bucket), after.subset_of(bucket)) {
                (1, 0) => moved += 1,
                (0, 1) => prop_assert!(false, "bucket {} moved onto the canary", bucket),
                _ => {}
            }
        }
        prop_assert_eq!(moved, 100 * u32::from(high - low));
    }

    #[test]
    fn removing_a_subset_moves_only_that_subsets_users(
        (weights, removed, heir) in removal(),
        sample in prop::collection::vec(0..BUCKETS, 1..24),
        random: u64,
    ) {
        // Before: subsets s0..sn. After: s`removed` is gone and its weight
        // went to its neighbour s`heir`; the order is kept.
        let n = weights.len();
        let names: Vec<usize> = (0..n).filter(|&i| i != removed).collect();
        let mut new_weights: Vec<u8> = Vec::with_capacity(n - 1);
        for &i in &names {
            let extra = if i == heir { weights[removed] } else { 0 };
            new_weights.push(weights[i] + extra);
        }
        let (before, after) = (split(&weights), split(&new_weights));

        // The split: every bucket keeps its subset unless the removed one
        // owned it, and those buckets all go to the heir.
        let mut moved = 0u32;
        for bucket in 0..BUCKETS {
            let old_owner = before.subset_of(bucket);
            let new_owner = names[after.subset_of(bucket)];
            if old_owner == removed {
                moved += 1;
                prop_assert_eq!(new_owner, heir, "bucket {}", bucket);
            } else {
                prop_assert_eq!(new_owner, old_owner, "bucket {}", bucket);
            }
        }
        prop_assert_eq!(moved, 100 * u32::from(weights[removed]));

        // The decision, with cookies signed before the removal: the removed
        // subset's users keep their bucket, move to the heir and get a new
        // cookie; nobody else moves or gets one. Neither the random draw nor
        // the identity header changes the answer.
        let old_config = named_subsets(&(0..n).collect::<Vec<_>>(), &weights);
        let new_config = named_subsets(&names, &new_weights);
        for bucket in sample {
            let old_owner = before.subset_of(bucket);
            let old_name = format!("s{old_owner}");
            let value = old_config.cookie().codec.encode(bucket, &old_name, NOW);
            let headers = vec![
                ("cookie".to_string(), format!("canary={value}")),
                ("x-user-id".to_string(), format!("user-{random}")),
            ];
            let decision = new_config.decide(&view(&headers, random));
            let again = new_config.decide(&view(&headers[..1], random.wrapping_add(1)));
            prop_assert_eq!(decision.bucket, Some(bucket));
            prop_assert_eq!(decision.rejected, None);
            prop_assert_eq!(&decision, &again);
            if old_owner == removed {
                let heir_name = format!("s{heir}");
                prop_assert_eq!(decision.subset_name, heir_name.as_str());
                prop_assert_eq!(decision.reason, Reason::Reassigned { from: None });
                let rewritten = cookie_header(decision.set_cookie.as_deref().unwrap());
                let prefix = format!("canary=c1.{bucket}.{heir_name}.{NOW}.");
                prop_assert!(rewritten[0].1.starts_with(&prefix), "{}", rewritten[0].1);
                // The rewritten cookie sticks.
                let next = new_config.decide(&view(&rewritten, 0));
                prop_assert_eq!(next.reason, Reason::Sticky);
                prop_assert_eq!(next.subset_name, heir_name.as_str());
                prop_assert_eq!(next.set_cookie, None);
            } else {
                prop_assert_eq!(decision.subset_name, old_name.as_str());
                prop_assert_eq!(decision.reason, Reason::Sticky);
                prop_assert_eq!(decision.set_cookie, None);
            }
        }
    }

    #[test]
    fn every_bucket_maps_to_exactly_one_subset(weights in any_weights()) {
        let split = split(&weights);
        for bucket in 0..BUCKETS {
            let owners: Vec<usize> = (0..weights.len())
                .filter(|&i| split.range(i).contains(&bucket))
                .collect();
            prop_assert_eq!(owners.len(), 1, "bucket {}", bucket);
            prop_assert_eq!(split.subset_of(bucket), owners[0]);
        }
    }

    #[test]
    fn the_share_of_buckets_equals_the_weights(weights in any_weights()) {
        let split = split(&weights);
        let mut counts = vec![0u32; weights.len()];
        for bucket in 0..BUCKETS {
            counts[split.subset_of(bucket)] += 1;
        }
        for (count, weight) in counts.iter().zip(&weights) {
            prop_assert_eq!(*count, 100 * u32::from(*weight));
        }
    }

    #[test]
    fn a_cookie_signed_with_the_rotation_key_is_accepted(
        old_key in "[!-~]{32,64}",
        new_key in "[!-~]{32,64}",
        random: u64,
        canary in 0u8..=100,
    ) {
        prop_assume!(old_key != new_key);
        let old_key = old_key.replace(['"', '\\'], "x");
        let new_key = new_key.replace(['"', '\\'], "x");
        prop_assume!(old_key != new_key);
        let before = two_subsets(100 - canary, canary, &old_key, None);
        let rotating = two_subsets(100 - canary, canary, &new_key, Some(&old_key));
        let first = before.decide(&view(&[], random));
        let cookie = cookie_header(first.set_cookie.as_deref().unwrap());
        let next = rotating.decide(&view(&cookie, 0));
        prop_assert_eq!(next.reason, Reason::Sticky);
        prop_assert_eq!(next.subset_name, first.subset_name);
        prop_assert_eq!(next.bucket, first.bucket);
        // Re-signed with the current key, which alone accepts it from now on.
        let resigned = cookie_header(next.set_cookie.as_deref().unwrap());
        let value = resigned[0].1.split_once('=').unwrap().1;
        let (_, verified) = rotating.cookie().codec.decode(value).unwrap();
        prop_assert_eq!(verified, Verified::Current);
        let after = two_subsets(100 - canary, canary, &new_key, None);
        prop_assert_eq!(after.decide(&view(&resigned, 0)).reason, Reason::Sticky);
    }

    #[test]
    fn a_changed_cookie_is_never_accepted(random: u64, index: usize, replacement in "[!-~]") {
        let config = two_subsets(50, 50, KEY, None);
        let first = config.decide(&view(&[], random));
        let value = cookie_header(first.set_cookie.as_deref().unwrap())[0].1.clone();
        let value = value.split_once('=').unwrap().1.to_string();
        let at = index % value.len();
        let mut changed = value.clone();
        changed.replace_range(at..=at, &replacement);
        prop_assume!(changed != value);
        prop_assert!(config.cookie().codec.decode(&changed).is_err(), "{}", changed);
    }

    #[test]
    fn any_request_gets_a_decision(
        cookie in ".{0,200}",
        path in ".{0,100}",
        identity in ".{0,40}",
        random: u64,
    ) {
        let json = r#"{"subsets": [{"name": "v1", "weight": 60}, {"name": "v2", "weight": 40}],
            "identity": "x-user-id",
            "rules": [{"subset": "v2", "match": [{"queryParams": {"beta": {"regex": "y.*"}}}]}],
            "cookie": {"signingKey": {"inline": "0123456789abcdef0123456789abcdef"}}}"#;
        let config = Config::from_json(json.as_bytes(), &no_env).unwrap();
        let headers = vec![
            ("cookie".to_string(), cookie),
            ("x-user-id".to_string(), identity),
        ];
        let decision = config.decide(&RequestView { headers: &headers, path: &path, now: Some(NOW), random });
        prop_assert!(decision.subset_name == "v1" || decision.subset_name == "v2");
    }
}

/// Random draws land on subsets in proportion to the weights (within four
/// binomial standard deviations; the seeds are fixed, so this is repeatable).
#[test]
fn random_draws_follow_the_weights() {
    let split = split(&[90, 10]);
    for seed in 0..8 {
        let mut rng = SplitMix64::new(seed);
        let n = 20_000u32;
        let canary = (0..n)
            .filter(|_| split.subset_of(random_bucket(rng.next_u64())) == 1)
            .count() as f64;
        let (mean, sd) = (f64::from(n) * 0.1, (f64::from(n) * 0.1 * 0.9).sqrt());
        assert!((canary - mean).abs() < 4.0 * sd, "seed {seed}: {canary}");
    }
}

/// Identity hashes spread users evenly too, even for ids that differ only
/// in their last characters.
#[test]
fn identity_hashes_follow_the_weights() {
    let split = split(&[90, 10]);
    let n = 20_000u32;
    let canary = (0..n)
        .filter(|i| split.subset_of(identity_bucket(&format!("user-{i}"))) == 1)
        .count() as f64;
    let (mean, sd) = (f64::from(n) * 0.1, (f64::from(n) * 0.1 * 0.9).sqrt());
    assert!((canary - mean).abs() < 4.0 * sd, "{canary}");
    let mut per_decile = [0u32; 10];
    for i in 0..n {
        per_decile[usize::from(identity_bucket(&format!("{i}")) / 1000)] += 1;
    }
    for count in per_decile {
        assert!(
            (f64::from(count) - 2000.0).abs() < 4.0 * 42.5,
            "{per_decile:?}"
        );
    }
}
