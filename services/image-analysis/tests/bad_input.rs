#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every malformed request gets a 4xx with the contract's code and a message
//! naming what is wrong; none is a 500, and the service keeps serving.

mod support;

use image::ImageFormat;
use support::{assert_error, get, image, metric, post, reencode, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_request_gets_its_4xx() {
    let svc = start(&[
        ("MAX_BODY_BYTES", "1000000"),
        ("MAX_IMAGE_PIXELS", "300000"),
    ])
    .await;
    let url = format!("{}/analyze", svc.running.url());
    let jpeg = image("grace_hopper_512x512.jpg");
    let png = reencode(&jpeg, ImageFormat::Png);

    assert_error(
        &post(&url, Some("image/jpeg"), None, Vec::new()).await,
        400,
        "empty_body",
        "empty",
    );
    assert_error(
        &post(&url, None, None, jpeg.clone()).await,
        415,
        "unsupported_media_type",
        "Content-Type",
    );
    assert_error(
        &post(&url, Some("application/octet-stream"), None, jpeg.clone()).await,
        415,
        "unsupported_media_type",
        "application/octet-stream",
    );
    assert_error(
        &post(
            &url,
            Some("image/jpeg"),
            None,
            b"GIF89a, or rather not an image".to_vec(),
        )
        .await,
        422,
        "bad_image",
        "not a JPEG or PNG",
    );
    assert_error(
        &post(&url, Some("image/jpeg"), None, png.clone()).await,
        422,
        "bad_image",
        "Content-Type says image/jpeg but the body is a PNG",
    );
    // Cut inside the header, then inside the pixel data.
    assert_error(
        &post(&url, Some("image/jpeg"), None, jpeg[..40].to_vec()).await,
        422,
        "bad_image",
        "",
    );
    assert_error(
        &post(
            &url,
            Some("image/jpeg"),
            None,
            jpeg[..jpeg.len() / 2].to_vec(),
        )
        .await,
        422,
        "bad_image",
        "",
    );
    assert_error(
        &post(&url, Some("image/png"), None, png[..png.len() / 2].to_vec()).await,
        422,
        "bad_image",
        "",
    );
    // Pixels flipped in the middle of the compressed data.
    let mut corrupt = png.clone();
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[mid..mid + 64] {
        *b ^= 0x5A;
    }
    assert_error(
        &post(&url, Some("image/png"), None, corrupt).await,
        422,
        "bad_image",
        "",
    );
    // 600x600 = 360,000 pixels, over the 300,000 allowed.
    let big = airport_common::imaging::sample_jpeg(600, 600, 1).unwrap();
    assert_error(
        &post(&url, Some("image/jpeg"), None, big).await,
        413,
        "image_too_large",
        "360000 pixels",
    );
    assert_error(
        &post(&url, Some("image/png"), None, vec![0x89; 1_000_001]).await,
        413,
        "image_too_large",
        "1000000 bytes",
    );
    assert_error(
        &post(
            &url,
            Some("image/jpeg"),
            Some("no spaces allowed"),
            jpeg.clone(),
        )
        .await,
        422,
        "invalid_field",
        "X-Frame-Id",
    );
    let refused = 12;

    // Still serving, and nothing above was a 500.
    let ok = post(&url, Some("image/jpeg"), None, jpeg).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let m = get(&format!("{}/metrics", svc.running.url())).await.text();
    assert_eq!(metric(&m, "image_analysis_requests_refused_total"), refused);
    assert_eq!(metric(&m, "image_analysis_requests_failed_total"), 0);
    assert_eq!(metric(&m, "image_analysis_jobs_panicked_total"), 0);
    assert_error(
        &get(&format!("{}/nowhere", svc.running.url())).await,
        404,
        "not_found",
        "/nowhere",
    );
    svc.running.stop().await.unwrap();
}
