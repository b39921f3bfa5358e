#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The collector pushes back when full, times out slow services, reports
//! failing ones, and keeps serving.
//!
//! A slow image analysis is the real service with every worker kept busy
//! (the test holds them), so frames wait inside it; a vision service that
//! answers 500 is the vision test double, the only way to get one on demand.

mod support;

use airport_common::types::{ErrorBody, StatsPage};
use airport_e2e::Mode;
use support::{Options, Stack, T, Vision, eventually, frame_json, get, metric, post_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_collector_answers_503_with_retry_after() {
    let s = Stack::start(Options {
        cameras: 0,
        max_in_flight: 1,
        ..Options::default()
    })
    .await;
    let frames = format!("{}/frames", s.collector.url());
    let held = s.hold_analysis().await;

    // Frame A takes the only slot and waits inside image analysis.
    let a = tokio::spawn({
        let frames = frames.clone();
        async move { post_json(&frames, &frame_json("bp-a", "1", "1")).await }
    });
    s.wait_analysis_queued(1).await;

    // Frame B is refused at once, not queued.
    let b = post_json(&frames, &frame_json("bp-b", "1", "1")).await;
    assert_eq!(b.status, 503);
    assert_eq!(b.retry_after_secs(), Some(1));
    assert_eq!(b.json::<ErrorBody>().unwrap().error, "overloaded");
    // A retry of A while it is in flight is told to come back, not processed twice.
    let dup = post_json(&frames, &frame_json("bp-a", "1", "1")).await;
    assert_eq!(dup.status, 409);
    assert!(dup.retry_after_secs().is_some());
    // Probes are not blocked by the full pipeline.
    assert_eq!(
        get(&format!("{}/status", s.collector.url())).await.text(),
        "Collector v1 : Online"
    );
    let m = get(&format!("{}/metrics", s.collector.url())).await.text();
    assert_eq!(metric(&m, "collector_frames_in_flight"), 1);
    assert_eq!(metric(&m, "collector_frames_overloaded_total"), 1);

    held.release().await;
    let a = a.await.unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    // B, retried after Retry-After, now goes through.
    let b = post_json(&frames, &frame_json("bp-b", "1", "1")).await;
    assert_eq!(b.status, 200, "{}", b.text());
    let stats: StatsPage = get(&format!("{}/stats", s.section.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(stats.total, 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_vision_service_times_out_and_the_collector_keeps_going() {
    // The deadline must be long enough for a real analysis once the
    // workers are free again, and is waited out once while they are held.
    let s = Stack::start(Options {
        cameras: 0,
        analysis_timeout_ms: 3000,
        ..Options::default()
    })
    .await;
    let frames = format!("{}/frames", s.collector.url());
    let held = s.hold_analysis().await;
    let r = post_json(&frames, &frame_json("slow-1", "1", "1")).await;
    assert_eq!(r.status, 504, "{}", r.text());
    let body: ErrorBody = r.json().unwrap();
    assert_eq!(body.error, "downstream_timeout");
    assert!(body.message.contains("image analysis"), "{}", body.message);
    let m = get(&format!("{}/metrics", s.collector.url())).await.text();
    assert_eq!(metric(&m, "collector_analysis_timeouts_total"), 1);
    assert_eq!(
        metric(&m, "collector_frames_in_flight"),
        0,
        "the slot was given back"
    );

    // Once the service answers again, the same frame goes through, counted once.
    held.release().await;
    let r = post_json(&frames, &frame_json("slow-1", "1", "1")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let stats: StatsPage = get(&format!("{}/stats", s.section.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(stats.total, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_or_missing_services_are_reported_and_nothing_stored_is_lost() {
    let s = Stack::start(Options {
        cameras: 0,
        vision: Vision::Double,
        ..Options::default()
    })
    .await;
    let frames = format!("{}/frames", s.collector.url());
    assert_eq!(
        post_json(&frames, &frame_json("ok-1", "1", "1"))
            .await
            .status,
        200
    );

    s.double().set_mode(Mode::Fail);
    let r = post_json(&frames, &frame_json("fail-1", "1", "1")).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json::<ErrorBody>().unwrap().error, "downstream_failed");
    let m = get(&format!("{}/metrics", s.collector.url())).await.text();
    assert_eq!(metric(&m, "collector_analysis_failures_total"), 1);
    assert_eq!(metric(&m, "collector_recognition_failures_total"), 1);

    // The alerts service disappears: statistics still land, the failure is reported.
    s.double().set_mode(Mode::Normal);
    let Stack {
        alerts,
        section,
        collector,
        ..
    } = s;
    alerts.stop().await.unwrap();
    let r = post_json(
        &format!("{}/frames", collector.url()),
        &frame_json("noalerts-1", "1", "1"),
    )
    .await;
    assert_eq!(r.status, 502);
    assert!(r.json::<ErrorBody>().unwrap().message.contains("alerts"));
    let m = get(&format!("{}/metrics", collector.url())).await.text();
    assert_eq!(metric(&m, "collector_alerts_failures_total"), 1);
    let stats: StatsPage = get(&format!("{}/stats", section.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(
        stats.total, 2,
        "ok-1 kept, noalerts-1 stored, fail-1 never stored"
    );
    assert_eq!(
        get(&format!("{}/status", collector.url())).await.text(),
        "Collector v1 : Online"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_back_off_and_retry_when_the_collector_is_full() {
    let s = Stack::start(Options {
        cameras: 2,
        max_in_flight: 1,
        camera_fps: 50.0,
        ..Options::default()
    })
    .await;
    let held = s.hold_analysis().await;
    let on = get(&format!("{}/production?toggle=on", s.cpanel_v1.url())).await;
    assert_eq!(on.status, 200);
    let collector = s.collector.url();
    eventually(T, "the collector refuses a frame", || {
        let c = collector.clone();
        async move {
            let m = get(&format!("{c}/metrics")).await.text();
            (metric(&m, "collector_frames_overloaded_total") >= 1).then_some(())
        }
    })
    .await;
    held.release().await;
    let first = support::expected_people_lines(&s.analysis.url()).await[0].clone();
    let v1 = s.cpanel_v1.url();
    eventually(T, "frames flow again", || {
        let (v1, first) = (v1.clone(), first.clone());
        async move {
            let p = get(&format!("{v1}/")).await.text();
            p.contains(&first).then_some(())
        }
    })
    .await;
    let off = get(&format!("{}/production?toggle=off", s.cpanel_v1.url())).await;
    assert_eq!(off.status, 200);
    let mut retries = 0;
    for cam in &s.cameras {
        let m = get(&format!("{}/metrics", cam.url())).await.text();
        retries += metric(&m, "camera_frame_retries_total");
    }
    assert!(retries >= 1, "a refused frame was retried");
    s.stop().await;
}
