#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The public-domain portraits analysed by the real models: one face each,
//! with fields that make sense for the image.

mod support;

use airport_common::contract::AnalysisResponse;
use airport_common::types::AgeBracket;
use support::{image, post, start};

fn check_one_face(r: &AnalysisResponse, width: u32, height: u32) {
    assert_eq!((r.width, r.height), (width, height));
    assert_eq!(r.count, 1, "{r:?}");
    assert_eq!(r.faces.len(), 1, "{r:?}");
    let f = &r.faces[0];
    let b = f.bbox;
    assert!(b.x >= 0.0 && b.y >= 0.0, "{b:?}");
    assert!(
        b.x + b.width <= width as f32 + 1.0 && b.y + b.height <= height as f32 + 1.0,
        "{b:?}"
    );
    // A portrait: the face is a good part of the picture, not a speck.
    assert!(
        b.width > width as f32 / 8.0 && b.height > height as f32 / 8.0,
        "{b:?}"
    );
    assert!(f.score > 0.5 && f.score <= 1.0, "{f:?}");
    assert_eq!(f.landmarks.len(), 5);
    for [x, y] in &f.landmarks {
        assert!(
            *x >= b.x && *x <= b.x + b.width && *y >= b.y && *y <= b.y + b.height,
            "landmark ({x},{y}) outside {b:?}"
        );
    }
    let [le, re, nose, lm, rm] = [
        f.landmarks[0],
        f.landmarks[1],
        f.landmarks[2],
        f.landmarks[3],
        f.landmarks[4],
    ];
    assert!(
        le[0] < re[0] && lm[0] < rm[0],
        "left is left in the image: {:?}",
        f.landmarks
    );
    assert!(
        le[1] < nose[1] && nose[1] < lm[1],
        "eyes above nose above mouth: {:?}",
        f.landmarks
    );
    assert!((0.5..=1.0).contains(&f.gender_confidence), "{f:?}");
    assert!((1.0..=100.0).contains(&f.age), "{f:?}");
    assert_eq!(f.age_bracket, AgeBracket::from_age(f.age));
    for stage in ["decode", "detect", "gender", "age", "queue", "total"] {
        let ms = r
            .timings_ms
            .get(stage)
            .copied()
            .unwrap_or_else(|| panic!("no {stage} in {:?}", r.timings_ms));
        assert!(ms >= 0.0 && ms <= r.timings_ms["total"], "{stage}: {ms}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_public_domain_portrait_has_one_face() {
    let svc = start(&[]).await;
    let url = format!("{}/analyze", svc.running.url());

    let r = post(
        &url,
        Some("image/jpeg"),
        Some("cam1-hopper-1"),
        image("grace_hopper_512x512.jpg"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hopper: AnalysisResponse = r.json().unwrap();
    assert_eq!(hopper.frame_id.as_deref(), Some("cam1-hopper-1"));
    check_one_face(&hopper, 512, 512);

    let r = post(&url, Some("image/png"), None, image("astronaut.png")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let astronaut: AnalysisResponse = r.json().unwrap();
    assert_eq!(astronaut.frame_id, None);
    check_one_face(&astronaut, 512, 512);

    // The same frame again: the same answer (the models are deterministic).
    let again: AnalysisResponse = post(
        &url,
        Some("image/jpeg"),
        None,
        image("grace_hopper_512x512.jpg"),
    )
    .await
    .json()
    .unwrap();
    assert_eq!(again.faces, hopper.faces);
    svc.running.stop().await.unwrap();
}
