#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Enrolment by name and photo, listing, removal, every refused enrolment,
//! and a watchlist that survives a restart.

mod support;

use airport_common::Timestamp;
use airport_common::contract::Watchlist;
use support::{
    assert_error, astronaut, both_portraits, delete, encode, enrol, get, hopper, post, recognize,
    start,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_list_refuse_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(&dir.path().join("w.db"), &[]).await;
    let base = svc.running.url();
    let list = |base: String| async move {
        get(&format!("{base}/watchlist"))
            .await
            .json::<Watchlist>()
            .unwrap()
    };
    assert!(list(base.clone()).await.entries.is_empty());

    let before = Timestamp::now();
    let grace = enrol(&base, "Grace Hopper", hopper()).await;
    assert_eq!(grace.name, "Grace Hopper");
    let at: Timestamp = grace.enrolled_at.parse().unwrap();
    assert!(at >= before && at <= Timestamp::now());
    enrol(&base, "Zoë Astronaut", astronaut()).await;
    let names: Vec<String> = list(base.clone())
        .await
        .entries
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        ["Grace Hopper", "Zoë Astronaut"],
        "in enrolment order"
    );

    let at = |name: &str| format!("{base}/watchlist/{}", encode(name));
    assert_error(
        &post(&at("Grace Hopper"), Some("image/png"), astronaut()).await,
        409,
        "already_enrolled",
        "Grace Hopper",
    );
    assert_error(
        &post(&at(" Grace"), Some("image/jpeg"), hopper()).await,
        422,
        "invalid_name",
        "space",
    );
    assert_error(
        &post(&at("a\nb"), Some("image/jpeg"), hopper()).await,
        422,
        "invalid_name",
        "control",
    );
    assert_error(
        &post(&at(&"x".repeat(101)), Some("image/jpeg"), hopper()).await,
        422,
        "invalid_name",
        "101 characters",
    );
    assert_error(
        &post(
            &format!("{base}/watchlist/%FF%FE"),
            Some("image/jpeg"),
            hopper(),
        )
        .await,
        422,
        "invalid_name",
        "",
    );
    let no_face = airport_common::imaging::sample_jpeg(320, 240, 9).unwrap();
    assert_error(
        &post(&at("Nobody"), Some("image/jpeg"), no_face).await,
        422,
        "no_face",
        "no face",
    );
    assert_error(
        &post(&at("Two People"), Some("image/jpeg"), both_portraits()).await,
        422,
        "several_faces",
        "2 faces",
    );
    assert_error(
        &post(&at("Empty"), Some("image/jpeg"), Vec::new()).await,
        400,
        "empty_body",
        "empty",
    );
    assert_error(
        &post(&at("Typeless"), None, hopper()).await,
        415,
        "unsupported_media_type",
        "Content-Type",
    );
    assert_eq!(
        list(base.clone()).await.entries.len(),
        2,
        "nothing refused was enrolled"
    );

    assert_eq!(delete(&at("Zoë Astronaut")).await.status, 204);
    assert_error(
        &delete(&at("Zoë Astronaut")).await,
        404,
        "not_found",
        "Zoë Astronaut",
    );
    assert_error(&delete(&at("")).await, 404, "not_found", "");
    let names: Vec<String> = list(base.clone())
        .await
        .entries
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["Grace Hopper"]);
    // Deleted, so no longer recognised; the one still enrolled is.
    let r = recognize(&base, both_portraits()).await;
    let matched: Vec<&str> = r.matches.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(matched, ["Grace Hopper"]);
    svc.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchlist_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let svc = start(&db, &[]).await;
    let entry = enrol(&svc.running.url(), "PersonX", hopper()).await;
    let first = recognize(&svc.running.url(), hopper()).await;
    svc.running.stop().await.unwrap();

    let svc = start(&db, &[]).await;
    let listed: Watchlist = get(&format!("{}/watchlist", svc.running.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(listed.entries, vec![entry]);
    let r = recognize(&svc.running.url(), hopper()).await;
    assert_eq!(r.matches.len(), 1);
    assert_eq!(r.matches[0].name, "PersonX");
    assert_eq!(
        r.matches, first.matches,
        "the same embedding came back from disk"
    );
    svc.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_photos_is_enrolled_at_start_once() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("persons");
    std::fs::create_dir(&photos).unwrap();
    std::fs::write(photos.join("PersonX.jpg"), hopper()).unwrap();
    std::fs::write(photos.join("notes.txt"), "not a photo").unwrap();
    let db = dir.path().join("w.db");
    let env = [("WATCHLIST_ENROL_DIR", photos.to_str().unwrap())];
    let svc = start(&db, &env).await;
    let listed: Watchlist = get(&format!("{}/watchlist", svc.running.url()))
        .await
        .json()
        .unwrap();
    let names: Vec<&str> = listed.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["PersonX"]);
    svc.running.stop().await.unwrap();

    // Already enrolled: kept as it was, not enrolled twice.
    let svc = start(&db, &env).await;
    let again: Watchlist = get(&format!("{}/watchlist", svc.running.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(again, listed);
    svc.running.stop().await.unwrap();

    // A photo that cannot be enrolled stops the start, naming it.
    std::fs::write(photos.join("Two People.jpg"), both_portraits()).unwrap();
    let models = airport_vision_service::testing::models_dir().unwrap();
    let config =
        face_recognition::Config::from_lookup(&airport_common::config::Lookup::from_pairs([
            ("MODELS_DIR", models.display().to_string()),
            ("WATCHLIST_DB", db.display().to_string()),
            ("WATCHLIST_ENROL_DIR", photos.display().to_string()),
        ]))
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = face_recognition::start(config, listener)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Two People.jpg") && err.contains("2 faces"),
        "{err}"
    );
}
