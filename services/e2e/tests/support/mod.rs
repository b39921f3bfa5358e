//! Shared by the end-to-end tests: the whole stack in-process on loopback
//! (each service's real router and server, on ephemeral ports), an HTTP
//! helper and bounded polling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use airport_common::config::Lookup;
use airport_common::types::Frame;
use airport_common::{HttpClient, HttpResponse, Running, Timestamp};
use airport_e2e::{VisionControl, start_vision_stub};
use axum::http::{HeaderValue, Method, header::CONTENT_TYPE};
use base64::Engine;
use bytes::Bytes;
use tokio::net::TcpListener;

pub const T: Duration = Duration::from_secs(10);

pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

pub fn url_of(l: &TcpListener) -> String {
    format!("http://{}", l.local_addr().unwrap())
}

pub fn frames_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/frames")
}

pub fn client() -> HttpClient {
    HttpClient::default()
}

pub async fn get(url: &str) -> HttpResponse {
    client().get(url, T).await.unwrap()
}

pub async fn post_json(url: &str, v: &serde_json::Value) -> HttpResponse {
    client().post_json(url, v, T).await.unwrap()
}

pub async fn post_raw(
    url: &str,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> HttpResponse {
    client()
        .send(
            Method::POST,
            url,
            &[(CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body.into(),
            T,
        )
        .await
        .unwrap()
}

/// Polls `f` until it returns `Some`, at most `within`; panics naming `what`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A metric's value from a Prometheus text page.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
}

pub fn sample_b64(seed: u8) -> String {
    let jpeg = airport_common::imaging::sample_jpeg(64, 48, seed).unwrap();
    base64::engine::general_purpose::STANDARD.encode(jpeg)
}

pub fn frame_json(frame_id: &str, section: &str, camera: &str) -> serde_json::Value {
    serde_json::json!({
        "frame_id": frame_id,
        "camera_id": camera,
        "section": section,
        "event": "exit",
        "timestamp": Timestamp::now().to_string(),
        "image": sample_b64(5),
    })
}

pub fn frame(frame_id: &str) -> Frame {
    serde_json::from_value(frame_json(frame_id, "1", "1")).unwrap()
}

/// Options of [`Stack::start`].
#[derive(Debug, Clone)]
pub struct Options {
    pub max_in_flight: usize,
    pub analysis_timeout_ms: u64,
    pub cameras: usize,
    pub camera_fps: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_in_flight: 8,
            analysis_timeout_ms: 5000,
            cameras: 2,
            camera_fps: 20.0,
        }
    }
}

/// Every service, in-process, on loopback.
pub struct Stack {
    pub vision: VisionControl,
    pub vision_run: Running,
    pub section: Running,
    pub alerts: Running,
    pub collector: Running,
    pub cpanel_v1: Running,
    pub cpanel_v2: Running,
    pub cameras: Vec<Running>,
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub fn section_db(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("section-1.db")
    }

    pub fn alerts_db(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("alerts.db")
    }

    pub async fn start_section(dir: &tempfile::TempDir, l: TcpListener) -> Running {
        let cfg = section::Config::from_lookup(&Lookup::from_pairs([
            ("SECTION_ID", "1".to_string()),
            ("SECTION_DB", Self::section_db(dir).display().to_string()),
        ]))
        .unwrap();
        section::start(cfg, l).unwrap()
    }

    pub async fn start_alerts(dir: &tempfile::TempDir, l: TcpListener) -> Running {
        let cfg = alerts::Config::from_lookup(&Lookup::from_pairs([
            ("ALERTS_DB", Self::alerts_db(dir).display().to_string()),
            ("ALERTS_SECTIONS", "1".to_string()),
        ]))
        .unwrap();
        alerts::start(cfg, l).unwrap()
    }

    pub async fn start(opts: Options) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let (l_vision, l_section, l_alerts, l_collector, l_v1, l_v2) = (
            listener().await,
            listener().await,
            listener().await,
            listener().await,
            listener().await,
            listener().await,
        );
        let mut l_cams = Vec::new();
        for _ in 0..opts.cameras {
            l_cams.push(listener().await);
        }
        let vision_url = url_of(&l_vision);
        let section_url = url_of(&l_section);
        let alerts_url = url_of(&l_alerts);
        let collector_url = url_of(&l_collector);

        let camera_list: Vec<serde_json::Value> = l_cams
            .iter()
            .enumerate()
            .map(|(i, l)| {
                serde_json::json!({
                    "id": i + 1,
                    "description": format!("camera {}", i + 1),
                    "url": url_of(l),
                    "section": 1,
                    "type": if i % 2 == 0 { "exit" } else { "entry" },
                })
            })
            .collect();
        let panel_file = dir.path().join("config.json");
        std::fs::write(
            &panel_file,
            serde_json::to_vec(&serde_json::json!({ "cameras": camera_list })).unwrap(),
        )
        .unwrap();

        let (vision_run, vision) = start_vision_stub(l_vision);
        let section = Self::start_section(&dir, l_section).await;
        let alerts = Self::start_alerts(&dir, l_alerts).await;
        let collector_cfg = collector::Config::from_lookup(&Lookup::from_pairs([
            ("IMAGE_ANALYSIS_URL", vision_url.clone()),
            ("FACE_RECOGNITION_URL", vision_url.clone()),
            ("ALERTS_URL", alerts_url.clone()),
            ("COLLECTOR_SECTIONS", format!("1={section_url}")),
            ("COLLECTOR_CAMERAS", "1,2,3,4".to_string()),
            ("COLLECTOR_MAX_IN_FLIGHT", opts.max_in_flight.to_string()),
            ("ANALYSIS_TIMEOUT_MS", opts.analysis_timeout_ms.to_string()),
            ("MAX_BODY_BYTES", "200000".to_string()),
        ]))
        .unwrap();
        let collector = collector::start(collector_cfg, l_collector);
        let panel = |version: &str| {
            control_panel::Config::from_lookup(&Lookup::from_pairs([
                ("SERVICE_VERSION", version.to_string()),
                ("CPANEL_CONFIG", panel_file.display().to_string()),
                ("CPANEL_SECTIONS", format!("1={section_url}")),
                ("ALERTS_URL", alerts_url.clone()),
                ("COLLECTOR_URL", collector_url.clone()),
            ]))
            .unwrap()
        };
        let cpanel_v1 = control_panel::start(panel("v1"), l_v1);
        let cpanel_v2 = control_panel::start(panel("v2"), l_v2);
        let mut cameras = Vec::new();
        for (i, l) in l_cams.into_iter().enumerate() {
            let cfg = camera_agent::Config::from_lookup(&Lookup::from_pairs([
                ("CAMERA_ID", (i + 1).to_string()),
                ("CAMERA_FPS", opts.camera_fps.to_string()),
                ("CAMERA_FRAMES_DIR", frames_dir().display().to_string()),
            ]))
            .unwrap();
            let (running, _agent) = camera_agent::start(cfg, l).await;
            cameras.push(running);
        }
        Stack {
            vision,
            vision_run,
            section,
            alerts,
            collector,
            cpanel_v1,
            cpanel_v2,
            cameras,
            dir,
        }
    }

    pub async fn stop(self) {
        for c in self.cameras {
            c.stop().await.unwrap();
        }
        self.cpanel_v1.stop().await.unwrap();
        self.cpanel_v2.stop().await.unwrap();
        self.collector.stop().await.unwrap();
        self.section.stop().await.unwrap();
        self.alerts.stop().await.unwrap();
        self.vision_run.stop().await.unwrap();
    }
}
