#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real `face-recognition` binary: loads the models named by
//! `MODELS_DIR`, answers the seed's `/status`, exits cleanly on SIGTERM, and
//! without its models exits at once with one line saying what to do.

use airport_common::testing::probe_status_then_terminate;
use airport_vision_service::testing::models_dir;

const BIN: &str = env!("CARGO_BIN_EXE_face-recognition");

#[test]
fn the_binary_serves_status_and_stops_on_sigterm() {
    let models = models_dir().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MODELS_DIR", models.display().to_string()),
        (
            "WATCHLIST_DB",
            dir.path().join("w.db").display().to_string(),
        ),
    ];
    let probe = probe_status_then_terminate(BIN, &env).unwrap();
    assert_eq!(probe.code, 200);
    assert_eq!(probe.body, "Face Recognition v1 : Online");
    assert!(probe.exit.success(), "exit {}", probe.exit);
}

#[test]
fn without_models_it_exits_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .env("MODELS_DIR", "/nonexistent/models")
        .env("WATCHLIST_DB", dir.path().join("w.db"))
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "text")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("models not found"))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].contains("models not found in /nonexistent/models: run make models"),
        "{stdout}"
    );
}

#[test]
fn a_bad_threshold_exits_non_zero_naming_it() {
    let out = std::process::Command::new(BIN)
        .env("RECOGNITION_THRESHOLD", "high")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("RECOGNITION_THRESHOLD"));
}
