#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! With every inference worker busy, the probes still answer at once, a frame
//! waits its turn in the queue, and once the queue is full one more frame is
//! refused with 503 `overloaded` and `Retry-After`.
//!
//! The workers are kept busy by jobs the test holds and releases, so the
//! test knows a frame is in flight when `/status` answers, whatever the
//! machine's speed.

mod support;

use std::time::Duration;

use airport_common::contract::AnalysisResponse;
use airport_vision_service::testing::{hold_workers, wait_queued};
use support::{T, assert_error, get, image, metric, post, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_while_frames_wait_and_a_full_queue_is_503() {
    let svc = start(&[
        ("VISION_WORKERS", "1"),
        ("VISION_QUEUE_DEPTH", "1"),
        ("VISION_RETRY_AFTER_SECS", "3"),
    ])
    .await;
    let base = svc.running.url();
    let url = format!("{base}/analyze");
    let held = hold_workers(&svc.pool, T).await.unwrap();

    // A real frame goes in and waits for the one worker.
    let frame = tokio::spawn({
        let url = url.clone();
        async move {
            post(
                &url,
                Some("image/jpeg"),
                Some("waiting-1"),
                image("grace_hopper_512x512.jpg"),
            )
            .await
        }
    });
    wait_queued(&svc.pool, 1, T).await.unwrap();

    // The probes answer while it is in flight.
    let status = get(&format!("{base}/status")).await;
    assert_eq!(status.status, 200);
    assert_eq!(status.text(), "Image Analysis v1 : Online");
    assert_eq!(get(&format!("{base}/healthz")).await.status, 200);
    assert_eq!(get(&format!("{base}/readyz")).await.status, 200);
    assert!(
        !frame.is_finished(),
        "the frame is still waiting for a worker"
    );
    let m = get(&format!("{base}/metrics")).await.text();
    assert_eq!(metric(&m, "image_analysis_pool_busy"), 1);
    assert_eq!(metric(&m, "image_analysis_pool_queued"), 1);

    // The queue holds one frame: the next is refused at once.
    let refused = post(
        &url,
        Some("image/jpeg"),
        None,
        image("grace_hopper_512x512.jpg"),
    )
    .await;
    assert_error(&refused, 503, "overloaded", "busy");
    assert_eq!(refused.retry_after_secs(), Some(3));
    assert!(!frame.is_finished());

    held.release().await;
    let r = tokio::time::timeout(T, frame).await.unwrap().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let done: AnalysisResponse = r.json().unwrap();
    assert_eq!(done.frame_id.as_deref(), Some("waiting-1"));
    assert_eq!(done.count, 1);
    assert!(done.timings_ms["queue"] > 0.0, "{:?}", done.timings_ms);

    let m = get(&format!("{base}/metrics")).await.text();
    assert_eq!(metric(&m, "image_analysis_jobs_overloaded_total"), 1);
    assert_eq!(
        metric(&m, "image_analysis_requests_failed_total"),
        1,
        "the 503"
    );
    // Served again once a worker is free.
    let again = post(
        &url,
        Some("image/jpeg"),
        None,
        image("grace_hopper_512x512.jpg"),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text());
    tokio::time::timeout(Duration::from_secs(30), svc.running.stop())
        .await
        .unwrap()
        .unwrap();
}
