#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! With every inference worker busy, `/status` and the watchlist listing
//! still answer, a frame waits its turn, and a full queue answers 503
//! `overloaded` with `Retry-After`. The workers are kept busy by jobs the
//! test holds, so it knows a frame is in flight whatever the machine's speed.

mod support;

use airport_common::contract::RecognitionResponse;
use airport_vision_service::testing::{hold_workers, wait_queued};
use support::{T, assert_error, get, hopper, metric, post, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_while_frames_wait_and_a_full_queue_is_503() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(
        &dir.path().join("w.db"),
        &[("VISION_WORKERS", "1"), ("VISION_QUEUE_DEPTH", "1")],
    )
    .await;
    let base = svc.running.url();
    let held = hold_workers(&svc.pool, T).await.unwrap();

    let frame = tokio::spawn({
        let url = format!("{base}/recognize");
        async move { post(&url, Some("image/jpeg"), hopper()).await }
    });
    wait_queued(&svc.pool, 1, T).await.unwrap();

    let status = get(&format!("{base}/status")).await;
    assert_eq!(status.status, 200);
    assert_eq!(status.text(), "Face Recognition v1 : Online");
    assert_eq!(get(&format!("{base}/watchlist")).await.status, 200);
    assert!(
        !frame.is_finished(),
        "the frame is still waiting for a worker"
    );

    // Recognition and enrolment share the pool: both are refused when full.
    let refused = post(&format!("{base}/recognize"), Some("image/jpeg"), hopper()).await;
    assert_error(&refused, 503, "overloaded", "busy");
    assert_eq!(refused.retry_after_secs(), Some(1));
    let refused = post(
        &format!("{base}/watchlist/PersonX"),
        Some("image/jpeg"),
        hopper(),
    )
    .await;
    assert_error(&refused, 503, "overloaded", "busy");
    assert!(!frame.is_finished());

    held.release().await;
    let r = tokio::time::timeout(T, frame).await.unwrap().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let done: RecognitionResponse = r.json().unwrap();
    assert_eq!(done.faces, 1);
    let m = get(&format!("{base}/metrics")).await.text();
    assert_eq!(metric(&m, "face_recognition_jobs_overloaded_total"), 2);
    assert_eq!(metric(&m, "face_recognition_watchlist_entries"), 0);
    svc.running.stop().await.unwrap();
}
