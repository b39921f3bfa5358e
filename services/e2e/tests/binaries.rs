#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The whole pipeline as real processes, configured from the environment
//! only, each started by `airport-stack SERVICE` (the same `run` as the
//! service's own binary), image analysis and face recognition with the real
//! models: frames reach the dashboard, SIGTERM shuts every service down
//! cleanly, and a restarted section has lost nothing.

mod support;

use std::time::Duration;

use airport_common::testing::ChildService;
use airport_common::types::StatsPage;
use support::{
    PERSON_OF_INTEREST, T, eventually, expected_people_lines, get, models_dir, write_frames_dir,
    write_watchlist_dir,
};

const BIN: &str = env!("CARGO_BIN_EXE_airport-stack");
/// Loading the models takes seconds on a busy machine.
const START: Duration = Duration::from_secs(60);

fn spawn(service: &str, env: &[(&str, String)]) -> ChildService {
    ChildService::spawn(BIN, &[service], env, START).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_as_real_processes() {
    let dir = tempfile::tempdir().unwrap();
    let section_db = dir.path().join("section-1.db").display().to_string();

    let models = models_dir().display().to_string();
    let analysis = spawn(
        "image-analysis",
        &[
            ("MODELS_DIR", models.clone()),
            ("VISION_WORKERS", "1".into()),
        ],
    );
    let recognition = spawn(
        "face-recognition",
        &[
            ("MODELS_DIR", models),
            ("VISION_WORKERS", "1".into()),
            (
                "WATCHLIST_DB",
                dir.path().join("watchlist.db").display().to_string(),
            ),
            (
                "WATCHLIST_ENROL_DIR",
                write_watchlist_dir(dir.path()).display().to_string(),
            ),
        ],
    );
    let lines = expected_people_lines(&analysis.url()).await;
    let first = format!("{}exit", lines[0]);
    let alert_line = format!("name: <b>{PERSON_OF_INTEREST}</b>");
    let section = spawn(
        "section",
        &[
            ("SECTION_ID", "1".into()),
            ("SECTION_DB", section_db.clone()),
        ],
    );
    let alerts = spawn(
        "alerts",
        &[(
            "ALERTS_DB",
            dir.path().join("alerts.db").display().to_string(),
        )],
    );
    let collector = spawn(
        "collector",
        &[
            ("IMAGE_ANALYSIS_URL", analysis.url()),
            ("FACE_RECOGNITION_URL", recognition.url()),
            ("ALERTS_URL", alerts.url()),
            ("COLLECTOR_SECTIONS", format!("1={}", section.url())),
        ],
    );
    let camera = spawn(
        "camera-agent",
        &[
            ("CAMERA_ID", "1".into()),
            ("CAMERA_FPS", "5".into()),
            (
                "CAMERA_FRAMES_DIR",
                write_frames_dir(dir.path()).display().to_string(),
            ),
        ],
    );
    let panel_file = dir.path().join("config.json");
    std::fs::write(
        &panel_file,
        format!(
            r#"{{"cameras": [{{"id": 1, "description": "exit camera section 1", "url": "{}", "section": 1, "type": "exit"}}]}}"#,
            camera.url()
        ),
    )
    .unwrap();
    let panel = spawn(
        "control-panel",
        &[
            ("SERVICE_VERSION", "v2".into()),
            ("CPANEL_CONFIG", panel_file.display().to_string()),
            ("CPANEL_SECTIONS", format!("1={}", section.url())),
            ("ALERTS_URL", alerts.url()),
            ("COLLECTOR_URL", collector.url()),
        ],
    );

    for (svc, want) in [
        (&panel, "CPanel v2 : Online"),
        (&collector, "Collector v1 : Online"),
        (&alerts, "Alerts v1 : Online"),
        (&section, "Section 1 v1 : Online"),
        (&analysis, "Image Analysis v1 : Online"),
        (&recognition, "Face Recognition v1 : Online"),
    ] {
        assert_eq!(get(&format!("{}/status", svc.url())).await.text(), want);
    }

    assert_eq!(
        get(&format!("{}/production?toggle=on", panel.url()))
            .await
            .status,
        200
    );
    let url = panel.url();
    eventually(T, "the dashboard shows frames and an alert", || {
        let (url, first, alert) = (url.clone(), first.clone(), alert_line.clone());
        async move {
            let p = get(&format!("{url}/")).await.text();
            (p.contains("<h1>Dashboard V2</h1>")
                && p.contains(&first)
                && p.contains(&alert)
                && p.contains("<rect class=\"face\""))
            .then_some(())
        }
    })
    .await;
    assert_eq!(
        get(&format!("{}/production?toggle=off", panel.url()))
            .await
            .status,
        200
    );
    let before: StatsPage = get(&format!("{}/stats?limit=3", section.url()))
        .await
        .json()
        .unwrap();
    assert!(before.total >= 1);

    // SIGTERM: a clean exit, after draining.
    let section_addr = section.addr().to_string();
    let status = section.terminate(T).unwrap();
    assert!(status.success(), "section exited with {status}");

    // Restarted on the same address with the same database: nothing lost.
    let section = spawn(
        "section",
        &[
            ("SECTION_ID", "1".into()),
            ("SECTION_DB", section_db),
            ("LISTEN_ADDR", section_addr),
        ],
    );
    let after: StatsPage = get(&format!("{}/stats?limit=3", section.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(after, before);
    let p = get(&format!("{}/", panel.url())).await.text();
    assert!(p.contains(&first));

    for svc in [
        panel,
        camera,
        collector,
        section,
        alerts,
        analysis,
        recognition,
    ] {
        let logs = svc.logs();
        let status = svc.terminate(T).unwrap();
        assert!(status.success(), "exit {status}");
        assert!(
            logs.iter()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
            "logs are JSON lines"
        );
    }
}

#[test]
fn an_unknown_service_name_is_a_usage_error() {
    let out = std::process::Command::new(BIN)
        .arg("teleporter")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

#[test]
fn a_bad_config_value_exits_non_zero_naming_it() {
    let out = std::process::Command::new(BIN)
        .arg("collector")
        .env("COLLECTOR_MAX_IN_FLIGHT", "many")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("COLLECTOR_MAX_IN_FLIGHT"));
}
