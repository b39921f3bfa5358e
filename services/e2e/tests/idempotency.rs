#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A retried frame is never counted twice, and restarts lose nothing.

mod support;

use airport_common::types::{AlertsPage, FrameOutcome, FrameStatus, StatsPage};
use support::{Options, Stack, frame_json, get, listener, metric, post_json};

fn no_cameras() -> Options {
    Options {
        cameras: 0,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_frame_is_counted_once() {
    let s = Stack::start(no_cameras()).await;
    let frames = format!("{}/frames", s.collector.url());
    let body = frame_json("cam1-retry-1", "1", "1");

    let first: FrameOutcome = post_json(&frames, &body).await.json().unwrap();
    assert_eq!(first.status, FrameStatus::Processed);
    assert_eq!((first.people, first.matches), (2, 1));
    let again = post_json(&frames, &body).await;
    assert_eq!(again.status, 200);
    let again: FrameOutcome = again.json().unwrap();
    assert_eq!(again.status, FrameStatus::Duplicate);
    assert_eq!(
        s.analysis_requests().await,
        1,
        "a duplicate is not analysed again"
    );

    let stats: StatsPage = get(&format!("{}/stats", s.section.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(stats.total, 1);
    let alerts: AlertsPage = get(&format!("{}/alerts", s.alerts.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(alerts.total, 1);
    let m = get(&format!("{}/metrics", s.collector.url())).await.text();
    assert_eq!(metric(&m, "collector_frames_duplicate_total"), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_retried_after_a_collector_restart_is_still_counted_once() {
    let s = Stack::start(no_cameras()).await;
    let body = frame_json("cam1-restart-1", "1", "1");
    let r = post_json(&format!("{}/frames", s.collector.url()), &body).await;
    assert_eq!(r.status, 200);

    // A fresh collector has forgotten the frame; section and alerts have not.
    let cfg = airport_common::config::Lookup::from_pairs([
        ("IMAGE_ANALYSIS_URL", s.analysis.url()),
        ("FACE_RECOGNITION_URL", s.recognition.url()),
        ("ALERTS_URL", s.alerts.url()),
        ("COLLECTOR_SECTIONS", format!("1={}", s.section.url())),
    ]);
    let fresh = collector::start(
        collector::Config::from_lookup(&cfg).unwrap(),
        listener().await,
    );
    let out: FrameOutcome = post_json(&format!("{}/frames", fresh.url()), &body)
        .await
        .json()
        .unwrap();
    assert_eq!(out.status, FrameStatus::Processed);
    assert_eq!(s.analysis_requests().await, 2);

    let stats: StatsPage = get(&format!("{}/stats", s.section.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(stats.total, 1, "section ignored the duplicate");
    let alerts: AlertsPage = get(&format!("{}/alerts", s.alerts.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(alerts.total, 1, "alerts ignored the duplicate");
    fresh.stop().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_answer_201_then_200_for_the_same_frame() {
    let s = Stack::start(no_cameras()).await;
    let rec = serde_json::json!({
        "frame_id": "direct-1", "camera_id": "1", "section": "1", "event": "entry",
        "timestamp": "2020-02-25T14:35:38.204522Z", "count": 1,
        "people": [{"gender": "female", "gender_confidence": 0.8, "age": 30.0, "age_bracket": "25-32"}]
    });
    let url = format!("{}/stats", s.section.url());
    assert_eq!(post_json(&url, &rec).await.status, 201);
    let second = post_json(&url, &rec).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json::<serde_json::Value>().unwrap()["stored"], false);

    let alert = serde_json::json!({
        "frame_id": "direct-1", "camera_id": "1", "section": "1", "event": "entry",
        "timestamp": "2020-02-25T14:35:27.224857Z", "name": "George W", "confidence": 0.6
    });
    let url = format!("{}/alerts", s.alerts.url());
    assert_eq!(post_json(&url, &alert).await.status, 201);
    assert_eq!(post_json(&url, &alert).await.status, 200);
    let mut other = alert.clone();
    other["name"] = "PersonX".into();
    assert_eq!(
        post_json(&url, &other).await.status,
        201,
        "another person in the same frame is a new alert"
    );
    let page: AlertsPage = get(&url).await.json().unwrap();
    assert_eq!(page.total, 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn section_and_alerts_lose_nothing_across_a_restart() {
    let s = Stack::start(no_cameras()).await;
    let frames = format!("{}/frames", s.collector.url());
    for i in 0..5 {
        let r = post_json(&frames, &frame_json(&format!("cam1-keep-{i}"), "1", "1")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let before: StatsPage = get(&format!("{}/stats?limit=10&images=true", s.section.url()))
        .await
        .json()
        .unwrap();
    let alerts_before: AlertsPage = get(&format!("{}/alerts", s.alerts.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(before.total, 5);
    assert!(
        before.latest.as_ref().unwrap().image.is_some(),
        "photo stored for v2"
    );

    let Stack {
        section,
        alerts,
        dir,
        collector,
        cpanel_v1,
        cpanel_v2,
        analysis,
        recognition,
        ..
    } = s;
    section.stop().await.unwrap();
    alerts.stop().await.unwrap();

    let section2 = Stack::start_section(&dir, listener().await).await;
    let alerts2 = Stack::start_alerts(&dir, listener().await).await;
    let after: StatsPage = get(&format!("{}/stats?limit=10&images=true", section2.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(after, before, "every frame, photo included, survived");
    let alerts_after: AlertsPage = get(&format!("{}/alerts", alerts2.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(alerts_after, alerts_before);

    // Still idempotent after the restart.
    let rec = serde_json::to_value(after.latest.unwrap()).unwrap();
    assert_eq!(
        post_json(&format!("{}/stats", section2.url()), &rec)
            .await
            .status,
        200
    );

    for r in [
        section2,
        alerts2,
        collector,
        cpanel_v1,
        cpanel_v2,
        analysis,
        recognition,
    ] {
        r.stop().await.unwrap();
    }
}
