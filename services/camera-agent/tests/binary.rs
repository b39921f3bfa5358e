#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real `camera-agent` binary: configured from the environment, answers the
//! seed's `/status`, and exits cleanly on SIGTERM.

use std::time::Duration;

use airport_common::testing::ChildService;

#[test]
fn the_binary_serves_status_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("CAMERA_ID", "3".to_string()),
        ("SECTION_DB", dir.path().join("s.db").display().to_string()),
        ("ALERTS_DB", dir.path().join("a.db").display().to_string()),
    ];
    let svc = ChildService::spawn(
        env!("CARGO_BIN_EXE_camera-agent"),
        &[],
        &env,
        Duration::from_secs(20),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        airport_common::HttpClient::default()
            .get(&format!("{}/status", svc.url()), Duration::from_secs(10))
            .await
            .unwrap()
    });
    assert_eq!(status.status, 200);
    assert_eq!(status.text(), "Camera Agent 3 v1 : Online");
    let exit = svc.terminate(Duration::from_secs(10)).unwrap();
    assert!(exit.success(), "exit {exit}");
}
