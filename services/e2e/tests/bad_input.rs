#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every kind of bad input gets a 4xx with a JSON error saying what is wrong,
//! nothing partial is stored, and the services keep serving.

mod support;

use airport_common::HttpResponse;
use airport_common::types::{AlertsPage, ErrorBody, StatsPage};
use support::{Options, Stack, frame_json, get, post_json, post_raw};

fn no_cameras() -> Options {
    Options {
        cameras: 0,
        ..Options::default()
    }
}

fn assert_error(r: &HttpResponse, status: u16, code: &str, mentions: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    let body: ErrorBody = r
        .json()
        .unwrap_or_else(|e| panic!("not a JSON error: {e}: {}", r.text()));
    assert_eq!(body.error, code, "{}", body.message);
    assert!(
        body.message.contains(mentions),
        "message {:?} should mention {mentions:?}",
        body.message
    );
}

async fn assert_nothing_stored(s: &Stack) {
    let stats: StatsPage = get(&format!("{}/stats", s.section.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(stats.total, 0, "section stored something");
    let alerts: AlertsPage = get(&format!("{}/alerts", s.alerts.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(alerts.total, 0, "alerts stored something");
    assert_eq!(
        s.analysis_requests().await,
        0,
        "a bad frame reached image analysis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_refuses_bad_frames() {
    let s = Stack::start(no_cameras()).await;
    let url = format!("{}/frames", s.collector.url());

    let r = post_raw(&url, "application/json", "{\"frame_id\": \"x\",").await;
    assert_error(&r, 400, "invalid_json", "");

    let mut missing = frame_json("f1", "1", "1");
    missing.as_object_mut().unwrap().remove("timestamp");
    assert_error(
        &post_json(&url, &missing).await,
        422,
        "invalid_field",
        "timestamp",
    );

    let mut bad_ts = frame_json("f1", "1", "1");
    bad_ts["timestamp"] = "yesterday".into();
    assert_error(
        &post_json(&url, &bad_ts).await,
        422,
        "invalid_field",
        "timestamp",
    );

    let mut bad_event = frame_json("f1", "1", "1");
    bad_event["event"] = "sideways".into();
    assert_error(
        &post_json(&url, &bad_event).await,
        422,
        "invalid_field",
        "sideways",
    );

    let mut bad_id = frame_json("../../etc", "1", "1");
    bad_id["frame_id"] = "../../etc".into();
    assert_error(
        &post_json(&url, &bad_id).await,
        422,
        "invalid_field",
        "frame_id",
    );

    let mut text = frame_json("f1", "1", "1");
    text["image"] = base64_of(b"this is not a picture").into();
    assert_error(
        &post_json(&url, &text).await,
        422,
        "bad_image",
        "not a JPEG or PNG",
    );

    let mut not_b64 = frame_json("f1", "1", "1");
    not_b64["image"] = "!!!".into();
    assert_error(&post_json(&url, &not_b64).await, 422, "bad_image", "base64");

    let mut empty = frame_json("f1", "1", "1");
    empty["image"] = "".into();
    assert_error(&post_json(&url, &empty).await, 422, "bad_image", "empty");

    assert_error(
        &post_json(&url, &frame_json("f1", "9", "1")).await,
        422,
        "unknown_section",
        "9",
    );
    assert_error(
        &post_json(&url, &frame_json("f1", "1", "77")).await,
        422,
        "unknown_camera",
        "77",
    );

    let mut huge = frame_json("f1", "1", "1");
    huge["image"] = "A".repeat(300_000).into();
    let r = post_json(&url, &huge).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json::<ErrorBody>().unwrap().error, "body_too_large");

    let r = post_raw(
        &url,
        "text/plain",
        serde_json::to_vec(&frame_json("f1", "1", "1")).unwrap(),
    )
    .await;
    assert_error(&r, 415, "unsupported_media_type", "Content-Type");

    assert_nothing_stored(&s).await;
    let r = post_json(&url, &frame_json("f-good", "1", "1")).await;
    assert_eq!(r.status, 200, "still serving: {}", r.text());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_corrupt_past_its_header_is_refused_by_the_vision_services() {
    let s = Stack::start(no_cameras()).await;
    let url = format!("{}/frames", s.collector.url());
    // The header (all the collector reads) is intact; the pixel data stops
    // halfway, which only decoding finds: image analysis and face
    // recognition answer 422, the collector passes that on, and nothing is
    // stored.
    let jpeg = support::frame_jpeg();
    let mut cut = frame_json("cut-1", "1", "1");
    cut["image"] = base64_of(&jpeg[..jpeg.len() / 2]).into();
    let r = post_json(&url, &cut).await;
    assert_error(&r, 422, "bad_image", "image analysis refused the image");
    assert!(r.text().contains("truncated"), "{}", r.text());
    let m = get(&format!("{}/metrics", s.analysis.url())).await.text();
    assert_eq!(
        support::metric(&m, "image_analysis_requests_refused_total"),
        1
    );
    assert_eq!(
        support::metric(&m, "image_analysis_requests_failed_total"),
        0
    );
    let stats: StatsPage = get(&format!("{}/stats", s.section.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(stats.total, 0);
    let r = post_json(&url, &frame_json("whole-1", "1", "1")).await;
    assert_eq!(r.status, 200, "still serving: {}", r.text());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn section_and_alerts_refuse_bad_records() {
    let s = Stack::start(no_cameras()).await;
    let stats = format!("{}/stats", s.section.url());
    let good = serde_json::json!({
        "frame_id": "r1", "camera_id": "1", "section": "1", "event": "exit",
        "timestamp": "2020-02-25T14:35:38.204522Z", "count": 1,
        "people": [{"gender": "male", "gender_confidence": 0.9, "age": 40.0, "age_bracket": "38-43"}]
    });

    assert_error(
        &post_raw(&stats, "application/json", "{\"frame_id\": }").await,
        400,
        "invalid_json",
        "",
    );
    let mut r = good.clone();
    r.as_object_mut().unwrap().remove("people");
    assert_error(&post_json(&stats, &r).await, 422, "invalid_field", "people");
    let mut r = good.clone();
    r["section"] = "2".into();
    assert_error(
        &post_json(&stats, &r).await,
        422,
        "unknown_section",
        "section 2",
    );
    let mut r = good.clone();
    r["people"][0]["age_bracket"] = "33-34".into();
    assert_error(&post_json(&stats, &r).await, 422, "invalid_field", "33-34");
    let mut r = good.clone();
    r["people"][0]["gender_confidence"] = 7.into();
    assert_error(
        &post_json(&stats, &r).await,
        422,
        "invalid_field",
        "gender_confidence",
    );
    let mut r = good.clone();
    r["image"] = serde_json::json!({"content_type": "image/jpeg", "width": 1, "height": 1, "data": base64_of(b"GIF89a nope")});
    assert_error(&post_json(&stats, &r).await, 422, "bad_image", "image.data");
    let r = get(&format!("{stats}?limit=lots")).await;
    assert_error(&r, 400, "invalid_query", "limit");
    let r = get(&format!("{stats}?limit=100000")).await;
    assert_error(&r, 400, "invalid_query", "limit");

    let alerts = format!("{}/alerts", s.alerts.url());
    let alert = serde_json::json!({
        "frame_id": "r1", "camera_id": "1", "section": "1", "event": "exit",
        "timestamp": "2020-02-25T14:35:38.204522Z", "name": "PersonX", "confidence": 0.5
    });
    let mut a = alert.clone();
    a.as_object_mut().unwrap().remove("name");
    assert_error(&post_json(&alerts, &a).await, 422, "invalid_field", "name");
    let mut a = alert.clone();
    a["confidence"] = 1.5.into();
    assert_error(
        &post_json(&alerts, &a).await,
        422,
        "invalid_field",
        "confidence",
    );
    let mut a = alert.clone();
    a["name"] = "".into();
    assert_error(&post_json(&alerts, &a).await, 422, "invalid_field", "name");
    let mut a = alert.clone();
    a["section"] = "5".into();
    assert_error(&post_json(&alerts, &a).await, 422, "unknown_section", "5");
    let big = serde_json::json!({"name": "x".repeat(100_000)});
    assert_eq!(post_json(&alerts, &big).await.status, 413);

    assert_nothing_stored(&s).await;
    assert_eq!(post_json(&stats, &good).await.status, 201, "still serving");
    assert_eq!(
        post_json(&alerts, &alert).await.status,
        201,
        "still serving"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_and_cameras_refuse_bad_requests() {
    let s = Stack::start(Options {
        cameras: 1,
        ..Options::default()
    })
    .await;
    let panel = s.cpanel_v1.url();
    assert_error(
        &get(&format!("{panel}/production")).await,
        400,
        "invalid_query",
        "toggle",
    );
    assert_error(
        &get(&format!("{panel}/production?toggle=maybe")).await,
        400,
        "invalid_query",
        "maybe",
    );
    assert_error(
        &get(&format!("{panel}/production?toggle=on&camera=42")).await,
        404,
        "unknown_camera",
        "42",
    );
    assert_error(
        &get(&format!("{panel}/cameras/42/state")).await,
        404,
        "unknown_camera",
        "42",
    );
    assert_error(
        &get(&format!("{panel}/nope")).await,
        404,
        "not_found",
        "/nope",
    );
    let rec = serde_json::json!({
        "frame_id": "p1", "camera_id": "1", "section": "8", "event": "exit",
        "timestamp": "2020-02-25T14:35:38.204522Z", "count": 0, "people": []
    });
    assert_error(
        &post_json(&format!("{panel}/analysis"), &rec).await,
        422,
        "unknown_section",
        "8",
    );
    assert_error(
        &post_raw(&format!("{panel}/alert"), "application/json", "{").await,
        400,
        "invalid_json",
        "",
    );

    let cam = s.cameras[0].url();
    assert_error(
        &post_raw(&format!("{cam}/start"), "application/json", "{").await,
        400,
        "invalid_json",
        "",
    );
    assert_error(
        &post_json(&format!("{cam}/start"), &serde_json::json!({"section": "1", "event": "up", "destination": "http://127.0.0.1:9"})).await,
        422,
        "invalid_field",
        "up",
    );
    assert_error(
        &post_json(
            &format!("{cam}/start"),
            &serde_json::json!({"section": "1", "event": "exit"}),
        )
        .await,
        422,
        "missing_field",
        "destination",
    );
    assert_error(
        &post_json(
            &format!("{cam}/start"),
            &serde_json::json!({"section": "1", "event": "exit", "destination": "ftp://x"}),
        )
        .await,
        422,
        "invalid_field",
        "destination",
    );
    assert_error(
        &post_json(&format!("{cam}/start"), &serde_json::json!({"section": "1", "event": "exit", "destination": "http://127.0.0.1:9", "fps": 0})).await,
        422,
        "invalid_field",
        "fps",
    );
    let st = get(&format!("{cam}/state")).await.text();
    assert_eq!(
        st,
        r#"{"streaming":false,"cycle":0,"fps":0,"section":null,"destination":null,"event":null}"#,
        "a refused start changes nothing"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_is_a_json_405_naming_it_on_every_service() {
    let s = Stack::start(Options {
        cameras: 1,
        ..Options::default()
    })
    .await;
    let mut services = vec![
        ("section", s.section.url()),
        ("alerts", s.alerts.url()),
        ("collector", s.collector.url()),
        ("image analysis", s.analysis.url()),
        ("face recognition", s.recognition.url()),
        ("cpanel v1", s.cpanel_v1.url()),
        ("cpanel v2", s.cpanel_v2.url()),
    ];
    services.extend(s.cameras.iter().map(|c| ("camera agent", c.url())));
    for (name, url) in services {
        let r = support::client()
            .send(
                axum::http::Method::DELETE,
                &format!("{url}/status"),
                &[],
                bytes::Bytes::new(),
                support::T,
            )
            .await
            .unwrap();
        assert_error(&r, 405, "method_not_allowed", "DELETE");
        let allow = r
            .headers
            .get(axum::http::header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{name}: a 405 without Allow"));
        assert!(allow.contains("GET"), "{name}: Allow {allow:?}");
    }
    s.stop().await;
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
