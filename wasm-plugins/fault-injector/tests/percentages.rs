//! Percentages: statistically bounded with random sampling (a fixed seed
//! makes the run repeatable), exact with request-id hashing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{plugin, send, since, start, start_plugin};
use fault_injector_filter::{ABORT_SALT, DELAY_SALT, Percentage, draw, fnv1a64};
use proxy_wasm_harness::Request;

const REQUESTS: usize = 2000;

/// Which of `REQUESTS` plain GETs were aborted, in order.
fn abort_pattern(config: &str, seed: u64) -> Vec<bool> {
    let (mut h, w) = start_plugin(plugin(config).random_seed(seed));
    (0..REQUESTS)
        .map(|_| send(&mut h, w, Request::get("/")).status() == Some(503))
        .collect()
}

const QUARTER: &str = r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 25}}}]}"#;

#[test]
fn a_quarter_of_requests_are_aborted() {
    let aborted = abort_pattern(QUARTER, 7).iter().filter(|a| **a).count();
    // Binomial(2000, 0.25): mean 500, sd 19.4; five sd either side.
    assert!((403..=597).contains(&aborted), "{aborted}");
}

#[test]
fn the_same_seed_repeats_the_same_run_and_another_does_not() {
    assert_eq!(abort_pattern(QUARTER, 11), abort_pattern(QUARTER, 11));
    assert_ne!(abort_pattern(QUARTER, 11), abort_pattern(QUARTER, 12));
}

#[test]
fn delay_and_abort_percentages_are_independent() {
    let (mut h, w) = start_plugin(
        plugin(
            r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 50}},
                           "delay": {"fixedDelay": "1ms", "percentage": {"value": 50}}}]}"#,
        )
        .random_seed(3),
    );
    let mut counts = [[0usize; 2]; 2];
    for _ in 0..REQUESTS {
        let before = h.now();
        let exchange = send(&mut h, w, Request::get("/"));
        let delayed = since(&h, before) == Duration::from_millis(1);
        let aborted = exchange.status() == Some(503);
        counts[usize::from(delayed)][usize::from(aborted)] += 1;
    }
    // Each of the four combinations near a quarter (sd 19.4).
    for row in counts {
        for count in row {
            assert!((403..=597).contains(&count), "{counts:?}");
        }
    }
}

#[test]
fn zero_and_hundred_percent_are_exact() {
    let never = r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 0}}}]}"#;
    let always = r#"{"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 100}}}]}"#;
    assert!(abort_pattern(never, 1).iter().all(|a| !a));
    assert!(abort_pattern(always, 1).iter().all(|a| *a));
}

fn request_id_config(percent: &str) -> String {
    format!(
        r#"{{"requestIdHeader": "x-request-id",
            "rules": [{{"abort": {{"httpStatus": 503, "percentage": {{"value": {percent}}}}}}}]}}"#
    )
}

#[test]
fn request_id_hashing_decides_exactly_as_documented() {
    let (mut h, w) = start(&request_id_config("30"));
    let share = Percentage::from_percent(30.0).unwrap();
    let mut aborted = 0;
    for n in 0..REQUESTS {
        let id = format!("7c9e6679-7425-40de-944b-e07fc1f9{n:04}");
        let expected = share.fires(draw(fnv1a64(id.as_bytes()), ABORT_SALT));
        let exchange = send(&mut h, w, Request::get("/").header("x-request-id", &id));
        assert_eq!(exchange.status() == Some(503), expected, "{id}");
        aborted += usize::from(expected);
    }
    assert!((500..=700).contains(&aborted), "{aborted}");
}

#[test]
fn the_same_request_id_gets_the_same_decision_on_every_worker() {
    let config = request_id_config("50");
    let mut h = proxy_wasm_harness::Harness::new();
    let workers = h
        .start_workers(&plugin(&config).random_seed(99), 3)
        .unwrap();
    for n in 0..200 {
        let id = format!("hop-{n}");
        let outcomes: Vec<Option<u16>> = workers
            .iter()
            .map(|w| send(&mut h, *w, Request::get("/").header("x-request-id", &id)).status())
            .collect();
        assert!(
            outcomes.windows(2).all(|p| p[0] == p[1]),
            "{id}: {outcomes:?}"
        );
    }
}

/// A request id whose draw for `salt` is exactly `target`.
fn id_with_draw(salt: u64, target: u32) -> String {
    (0u64..)
        .map(|n| format!("id-{n}"))
        .find(|id| draw(fnv1a64(id.as_bytes()), salt) == target)
        .unwrap()
}

#[test]
fn four_decimal_places_are_honoured() {
    // 0.0001 % is one draw in a million: the id drawing 0 is aborted, the
    // id drawing 1 is not.
    let (mut h, w) = start(&request_id_config("0.0001"));
    let hit = id_with_draw(ABORT_SALT, 0);
    let miss = id_with_draw(ABORT_SALT, 1);
    let status = |h: &mut proxy_wasm_harness::Harness, id: &str| {
        send(h, w, Request::get("/").header("x-request-id", id)).status()
    };
    assert_eq!(status(&mut h, &hit), Some(503));
    assert_eq!(status(&mut h, &miss), Some(200));
}

#[test]
fn percentages_are_truncated_to_millionths_as_istiod_does() {
    // istiod gives Envoy uint32(value * 10000) millionths of requests. 12.3456
    // times 10000 is just under 123456 in float64, so 123455: the id drawing
    // 123454 is aborted, the one drawing 123455 is not (rounding would abort
    // it).
    let (mut h, w) = start(&request_id_config("12.3456"));
    let status = |h: &mut proxy_wasm_harness::Harness, id: &str| {
        send(h, w, Request::get("/").header("x-request-id", id)).status()
    };
    assert_eq!(
        status(&mut h, &id_with_draw(ABORT_SALT, 123_454)),
        Some(503)
    );
    assert_eq!(
        status(&mut h, &id_with_draw(ABORT_SALT, 123_455)),
        Some(200)
    );
    // 0.00005 is 0 millionths: not even the id drawing 0 is aborted.
    let (mut h, w) = start(&request_id_config("0.00005"));
    let status = |h: &mut proxy_wasm_harness::Harness, id: &str| {
        send(h, w, Request::get("/").header("x-request-id", id)).status()
    };
    assert_eq!(status(&mut h, &id_with_draw(ABORT_SALT, 0)), Some(200));
}

#[test]
fn request_id_hashing_decides_delays_too() {
    let (mut h, w) = start(
        r#"{"requestIdHeader": "x-request-id",
            "rules": [{"delay": {"fixedDelay": "5ms", "percentage": {"value": 40}}}]}"#,
    );
    let share = Percentage::from_percent(40.0).unwrap();
    for n in 0..300 {
        let id = format!("delay-{n}");
        let expected = share.fires(draw(fnv1a64(id.as_bytes()), DELAY_SALT));
        let before = h.now();
        send(&mut h, w, Request::get("/").header("x-request-id", &id));
        assert_eq!(
            since(&h, before) == Duration::from_millis(5),
            expected,
            "{id}"
        );
    }
}
