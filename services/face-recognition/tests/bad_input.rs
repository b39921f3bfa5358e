#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every malformed `/recognize` request gets a 4xx with the contract's code;
//! none is a 500, and the service keeps serving.

mod support;

use support::{assert_error, get, hopper, metric, post, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_frame_gets_its_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(
        &dir.path().join("w.db"),
        &[("MAX_BODY_BYTES", "100000"), ("MAX_IMAGE_PIXELS", "200000")],
    )
    .await;
    let base = svc.running.url();
    let url = format!("{base}/recognize");
    let jpeg = hopper();

    assert_error(
        &post(&url, Some("image/jpeg"), Vec::new()).await,
        400,
        "empty_body",
        "empty",
    );
    assert_error(
        &post(&url, Some("text/plain"), jpeg.clone()).await,
        415,
        "unsupported_media_type",
        "text/plain",
    );
    assert_error(
        &post(&url, Some("image/png"), jpeg.clone()).await,
        422,
        "bad_image",
        "is a JPEG",
    );
    assert_error(
        &post(&url, Some("image/jpeg"), b"\xFF\xD8\xFF garbage".to_vec()).await,
        422,
        "bad_image",
        "",
    );
    // Within the limits, but cut in the middle of the pixel data.
    let small = airport_common::imaging::sample_jpeg(300, 200, 4).unwrap();
    assert_error(
        &post(&url, Some("image/jpeg"), small[..small.len() / 2].to_vec()).await,
        422,
        "bad_image",
        "",
    );
    assert_error(
        &post(&url, Some("image/jpeg"), jpeg.clone()).await,
        413,
        "image_too_large",
        "262144 pixels",
    );
    assert_error(
        &post(&url, Some("image/jpeg"), vec![0xFF; 100_001]).await,
        413,
        "image_too_large",
        "100000 bytes",
    );

    let m = get(&format!("{base}/metrics")).await.text();
    assert_eq!(metric(&m, "face_recognition_requests_refused_total"), 7);
    assert_eq!(metric(&m, "face_recognition_requests_failed_total"), 0);
    let r = post(&url, Some("image/jpeg"), small).await;
    assert_eq!(r.status, 200, "still serving: {}", r.text());
    svc.running.stop().await.unwrap();
}
