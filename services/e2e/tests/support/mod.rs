//! Shared by the end-to-end tests: the whole stack in-process on loopback
//! (each service's real router and server, on ephemeral ports), the real
//! vision services with the real models (or, where a test needs a vision
//! service that costs nothing or fails on demand, the vision test double),
//! the demo frame, an HTTP helper and bounded polling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use airport_common::config::Lookup;
use airport_common::contract::AnalysisResponse;
use airport_common::types::Frame;
use airport_common::{HttpClient, HttpResponse, Running, Timestamp};
use airport_e2e::{VisionControl, serve_vision_double};
use airport_vision_service::InferencePool;
use airport_vision_service::testing::{self as vision_testing, HeldWorkers};
use axum::http::{HeaderValue, Method, header::CONTENT_TYPE};
use base64::Engine;
use bytes::Bytes;
use tokio::net::TcpListener;

/// Deadline of one call and of each `eventually` (real models on a busy
/// 2-core machine: generous).
pub const T: Duration = Duration::from_secs(30);

pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

pub fn url_of(l: &TcpListener) -> String {
    format!("http://{}", l.local_addr().unwrap())
}

pub fn frames_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/frames")
}

/// The person of interest on the demo watchlist, and where their photo is:
/// Grace Hopper's public-domain portrait.
pub const PERSON_OF_INTEREST: &str = "PersonX";

fn portrait(name: &str) -> image::RgbImage {
    let path = vision_testing::testdata(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

/// The camera frame of the end-to-end tests: the two public-domain
/// portraits side by side (Grace Hopper, who is `PersonX` on the watchlist,
/// then the astronaut), 640x320 JPEG. Two people, one of interest.
pub fn frame_jpeg() -> &'static [u8] {
    static FRAME: OnceLock<Vec<u8>> = OnceLock::new();
    FRAME.get_or_init(|| {
        let half = |img: image::RgbImage| {
            image::imageops::resize(&img, 320, 320, image::imageops::FilterType::Triangle)
        };
        let mut frame = image::RgbImage::new(640, 320);
        image::imageops::replace(
            &mut frame,
            &half(portrait("grace_hopper_512x512.jpg")),
            0,
            0,
        );
        image::imageops::replace(&mut frame, &half(portrait("astronaut.png")), 320, 0);
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(frame)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .unwrap();
        out.into_inner()
    })
}

/// A folder holding the demo frame, for the cameras.
pub fn write_frames_dir(dir: &std::path::Path) -> PathBuf {
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    std::fs::write(frames.join("frame-01.jpg"), frame_jpeg()).unwrap();
    frames
}

/// A folder with the watchlist's photos (`PersonX.jpg`), for `WATCHLIST_ENROL_DIR`.
pub fn write_watchlist_dir(dir: &std::path::Path) -> PathBuf {
    let photos = dir.join("watchlist");
    std::fs::create_dir_all(&photos).unwrap();
    let photo = std::fs::read(vision_testing::testdata("grace_hopper_512x512.jpg")).unwrap();
    std::fs::write(photos.join(format!("{PERSON_OF_INTEREST}.jpg")), photo).unwrap();
    photos
}

/// The models, or a panic saying to run `make models`.
pub fn models_dir() -> PathBuf {
    vision_testing::models_dir().unwrap_or_else(|e| panic!("{e}"))
}

/// What image analysis says about the demo frame, asked directly.
pub async fn analysis_of_frame(analysis_url: &str) -> AnalysisResponse {
    let r = client()
        .send(
            Method::POST,
            &format!("{analysis_url}/analyze"),
            &[(CONTENT_TYPE, HeaderValue::from_static("image/jpeg"))],
            Bytes::from_static(frame_jpeg()),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().unwrap()
}

/// The dashboard's line for each face of the demo frame
/// (`gender: female | age: 25-32 | event: `), from image analysis itself.
pub async fn expected_people_lines(analysis_url: &str) -> Vec<String> {
    analysis_of_frame(analysis_url)
        .await
        .faces
        .iter()
        .map(|f| {
            format!(
                "gender: {} | age: {} | event: ",
                f.gender,
                f.age_bracket.as_str()
            )
        })
        .collect()
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

/// The demo frame, base64.
pub fn frame_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(frame_jpeg())
}

pub fn frame_json(frame_id: &str, section: &str, camera: &str) -> serde_json::Value {
    serde_json::json!({
        "frame_id": frame_id,
        "camera_id": camera,
        "section": section,
        "event": "exit",
        "timestamp": Timestamp::now().to_string(),
        "image": frame_b64(),
    })
}

pub fn frame(frame_id: &str) -> Frame {
    serde_json::from_value(frame_json(frame_id, "1", "1")).unwrap()
}

/// Which vision services a stack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vision {
    /// The real image analysis and face recognition, real models.
    Real,
    /// The vision test double: fixed answers at once, or 500 on demand.
    Double,
}

/// Options of [`Stack::start`].
#[derive(Debug, Clone)]
pub struct Options {
    pub max_in_flight: usize,
    pub analysis_timeout_ms: u64,
    pub cameras: usize,
    pub camera_fps: f64,
    pub vision: Vision,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_in_flight: 8,
            analysis_timeout_ms: 5000,
            cameras: 2,
            // Below what the real vision services sustain on a busy 2-core
            // machine with debug builds, so frames are not refused for lack
            // of room unless a test wants that.
            camera_fps: 3.0,
            vision: Vision::Real,
        }
    }
}

/// Every service, in-process, on loopback.
pub struct Stack {
    /// Image analysis (the real service, or the double).
    pub analysis: Running,
    /// Face recognition (the real service, or the double).
    pub recognition: Running,
    /// The real image analysis's inference pool.
    pub analysis_pool: Option<InferencePool>,
    /// The double's controls, when the stack runs it.
    pub double: Option<VisionControl>,
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
        let (l_analysis, l_recognition, l_section, l_alerts, l_collector, l_v1, l_v2) = (
            listener().await,
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
        let analysis_url = url_of(&l_analysis);
        let recognition_url = url_of(&l_recognition);
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

        let (analysis, recognition, analysis_pool, double) = match opts.vision {
            Vision::Real => {
                let models = models_dir().display().to_string();
                let workers = ("VISION_WORKERS", "2".to_string());
                let cfg = image_analysis::Config::from_lookup(&Lookup::from_pairs([
                    ("MODELS_DIR", models.clone()),
                    workers.clone(),
                ]))
                .unwrap();
                let a = image_analysis::start(cfg, l_analysis).await.unwrap();
                let cfg = face_recognition::Config::from_lookup(&Lookup::from_pairs([
                    ("MODELS_DIR", models),
                    workers,
                    (
                        "WATCHLIST_DB",
                        dir.path().join("watchlist.db").display().to_string(),
                    ),
                    (
                        "WATCHLIST_ENROL_DIR",
                        write_watchlist_dir(dir.path()).display().to_string(),
                    ),
                ]))
                .unwrap();
                let r = face_recognition::start(cfg, l_recognition).await.unwrap();
                (a.running, r.running, Some(a.pool), None)
            }
            Vision::Double => {
                let ctl = VisionControl::new();
                let a = serve_vision_double(l_analysis, ctl.clone());
                let r = serve_vision_double(l_recognition, ctl.clone());
                (a, r, None, Some(ctl))
            }
        };
        let section = Self::start_section(&dir, l_section).await;
        let alerts = Self::start_alerts(&dir, l_alerts).await;
        let collector_cfg = collector::Config::from_lookup(&Lookup::from_pairs([
            ("IMAGE_ANALYSIS_URL", analysis_url.clone()),
            ("FACE_RECOGNITION_URL", recognition_url.clone()),
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
        let frames = write_frames_dir(dir.path());
        let mut cameras = Vec::new();
        for (i, l) in l_cams.into_iter().enumerate() {
            let cfg = camera_agent::Config::from_lookup(&Lookup::from_pairs([
                ("CAMERA_ID", (i + 1).to_string()),
                ("CAMERA_FPS", opts.camera_fps.to_string()),
                ("CAMERA_FRAMES_DIR", frames.display().to_string()),
            ]))
            .unwrap();
            let (running, _agent) = camera_agent::start(cfg, l).await;
            cameras.push(running);
        }
        Stack {
            analysis,
            recognition,
            analysis_pool,
            double,
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
        self.analysis.stop().await.unwrap();
        self.recognition.stop().await.unwrap();
    }

    /// The double's controls (panics on a stack with the real services).
    pub fn double(&self) -> &VisionControl {
        self.double
            .as_ref()
            .expect("this stack runs the real vision services")
    }

    /// Keeps every image analysis worker busy until released: frames sent
    /// meanwhile wait inside image analysis.
    pub async fn hold_analysis(&self) -> HeldWorkers {
        let pool = self
            .analysis_pool
            .as_ref()
            .expect("this stack runs the vision double");
        vision_testing::hold_workers(pool, T).await.unwrap()
    }

    /// Waits until `n` frames wait for an image analysis worker.
    pub async fn wait_analysis_queued(&self, n: u64) {
        let pool = self
            .analysis_pool
            .as_ref()
            .expect("this stack runs the vision double");
        vision_testing::wait_queued(pool, n, T).await.unwrap();
    }

    /// Frames image analysis has received (whatever their outcome).
    pub async fn analysis_requests(&self) -> u64 {
        match &self.double {
            Some(d) => d.analysis_calls(),
            None => {
                let m = get(&format!("{}/metrics", self.analysis.url()))
                    .await
                    .text();
                metric(&m, "image_analysis_requests_total")
            }
        }
    }
}
