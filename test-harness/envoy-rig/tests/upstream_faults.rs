//! The echo upstream's own behaviour, talked to directly (no Envoy).

use std::time::Duration;

use envoy_rig::client::Request;
use envoy_rig::{Fault, RigError, Share, Upstream};

#[test]
fn every_nth_request_fails_with_the_status() {
    let upstream = Upstream::start("alerts").unwrap();
    upstream.inject(Fault::Status(500), Share::EveryNth(2));

    let statuses: Vec<u16> = (0..4)
        .map(|_| Request::get(upstream.url()).send().unwrap().status)
        .collect();

    assert_eq!(statuses, [200, 500, 200, 500]);
    assert_eq!(upstream.request_count(), 4);
}

#[test]
fn clearing_the_fault_restores_plain_echoes() {
    let upstream = Upstream::start("alerts").unwrap();
    upstream.inject(Fault::Status(500), Share::All);
    assert_eq!(Request::get(upstream.url()).send().unwrap().status, 500);

    upstream.clear_fault();

    let response = Request::get(upstream.url()).send().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-upstream"), Some("alerts"));
}

#[test]
fn a_reset_fault_drops_the_connection() {
    let upstream = Upstream::start("alerts").unwrap();
    upstream.inject(Fault::Reset, Share::FirstN(1));

    let failed = Request::get(upstream.url()).send();
    let next = Request::get(upstream.url()).send().unwrap();

    assert!(matches!(failed, Err(RigError::Http { .. })), "{failed:?}");
    assert_eq!(next.status, 200);
}

#[test]
fn a_delayed_request_still_gets_its_echo() {
    let upstream = Upstream::start("alerts").unwrap();
    upstream.inject(Fault::Delay(Duration::from_millis(50)), Share::All);

    let response = Request::get(format!("{}/slow", upstream.url()))
        .send()
        .unwrap();

    assert_eq!(response.status, 200);
    assert_eq!(response.json().unwrap()["path"], "/slow");
}
