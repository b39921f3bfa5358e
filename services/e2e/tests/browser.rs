#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The dashboard in a real browser: the whole stack in-process on loopback
//! (real vision services and models, the cameras sending the two portraits
//! side by side), cameras on until both dashboards show data, then Debian's headless
//! Chromium loads v1 and v2. The test asserts on the DOM Chromium built
//! (`--dump-dom`) and on the pixels it painted (`--screenshot`): v2's photo
//! is on screen with a red rectangle drawn over each face, v1 has no photo.
//!
//! The screenshots and DOMs are kept under `target/test-artifacts/`
//! (`dashboard-v1.png`, `dashboard-v2.png`, `dashboard-v1.html`, ...).
//!
//! Chromium is `$CHROMIUM` or `/usr/bin/chromium`; without it the test fails
//! and says how to install it (`scripts/install-chromium.sh`, which `make
//! test` runs).

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airport_common::contract::BoundingBox;
use airport_common::types::StatsPage;
use image::{ImageFormat, RgbImage};
use support::{Options, PERSON_OF_INTEREST, Stack, T, eventually, expected_people_lines, get};

const INSTALL_HINT: &str = "run scripts/install-chromium.sh (make test does it)";

/// One Chromium run (start, load, render, exit) must finish within this.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(90);

/// Headless on a machine with no network but loopback: no background
/// connections, no GPU, no sandbox (we run as root), a fresh profile each run.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--hide-scrollbars",
];

const WINDOW: (u32, u32) = (1280, 900);

/// A full-window PNG of a page with text is tens of KiB; an empty or broken
/// render of 1280x900 compresses to a few KiB.
const MIN_SCREENSHOT_BYTES: u64 = 10 * 1024;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn chromium() -> PathBuf {
    let bin = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        bin.is_file(),
        "headless Chromium not found at {} (set CHROMIUM to use another): {INSTALL_HINT}",
        bin.display()
    );
    bin
}

/// `<target dir>/test-artifacts`, honouring `CARGO_TARGET_DIR`.
fn artifacts_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = workspace.canonicalize().unwrap_or(workspace);
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(t) if t.is_absolute() => t,
        Some(t) => workspace.join(t),
        None => workspace.join("target"),
    };
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Runs Chromium on `url` with `extra` flags, waiting (bounded) for it to
/// exit; returns what it printed on stdout. Blocking: call it off the runtime.
fn run_chromium(bin: &Path, extra: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut child = Command::new(bin)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL_HINT}", bin.display()));
    let deadline = Instant::now() + CHROMIUM_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {extra:?} {url} did not finish within {CHROMIUM_DEADLINE:?}; stderr:\n{}",
                tail(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "chromium {extra:?} {url} failed ({status}); stderr:\n{}",
        tail(&err_path)
    );
    std::fs::read_to_string(&out_path).unwrap()
}

/// The DOM Chromium built from `url`, also saved as `<name>.html`.
async fn dump_dom(bin: &Path, url: &str, name: &str) -> String {
    let (bin, url_owned) = (bin.to_path_buf(), url.to_string());
    let dom = tokio::task::spawn_blocking(move || {
        run_chromium(&bin, &["--dump-dom".to_string()], &url_owned)
    })
    .await
    .unwrap();
    std::fs::write(artifacts_dir().join(format!("{name}.html")), &dom).unwrap();
    dom
}

/// A screenshot of `url` saved as `<name>.png`, checked to be a real PNG of
/// the window's size, and decoded.
async fn screenshot(bin: &Path, url: &str, name: &str) -> (PathBuf, RgbImage) {
    let path = artifacts_dir().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&path);
    let extra = vec![
        format!("--screenshot={}", path.display()),
        format!("--window-size={},{}", WINDOW.0, WINDOW.1),
    ];
    let (bin, url_owned) = (bin.to_path_buf(), url.to_string());
    tokio::task::spawn_blocking(move || run_chromium(&bin, &extra, &url_owned))
        .await
        .unwrap();

    assert!(path.is_file(), "chromium wrote no {}", path.display());
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.starts_with(PNG_SIGNATURE),
        "{} is not a PNG (starts {:02x?})",
        path.display(),
        &bytes[..bytes.len().min(8)]
    );
    assert!(
        bytes.len() as u64 >= MIN_SCREENSHOT_BYTES,
        "{} is only {} bytes: an empty render?",
        path.display(),
        bytes.len()
    );
    let img = image::load_from_memory_with_format(&bytes, ImageFormat::Png)
        .unwrap()
        .to_rgb8();
    assert_eq!(img.dimensions(), WINDOW, "{}", path.display());
    println!("screenshot: {} ({} bytes)", path.display(), bytes.len());
    (path, img)
}

fn is_white(p: &image::Rgb<u8>) -> bool {
    p.0.iter().all(|&c| c >= 235)
}

/// The face marks' colour, `#e02020`, with room for anti-aliasing.
fn is_mark(p: &image::Rgb<u8>) -> bool {
    let [r, g, b] = p.0;
    r >= 180 && g <= 90 && b <= 90
}

/// Where the photo is on the screenshot: the box of the rows holding a run of
/// at least 300 non-white pixels (text never does; the photo is 640 wide).
fn photo_box(img: &RgbImage) -> Option<(u32, u32, u32, u32)> {
    let mut found: Option<(u32, u32, u32, u32)> = None;
    for y in 0..img.height() {
        let (mut start, mut best) = (0, (0, 0));
        for x in 0..=img.width() {
            if x == img.width() || is_white(img.get_pixel(x, y)) {
                if x - start > best.1 - best.0 {
                    best = (start, x);
                }
                start = x + 1;
            }
        }
        if best.1 - best.0 >= 300 {
            found = Some(match found {
                None => (best.0, y, best.1, y + 1),
                Some((x0, y0, x1, _)) => (x0.min(best.0), y0, x1.max(best.1), y + 1),
            });
        }
    }
    found
}

/// Checks that the screenshot shows a rectangle in the face marks' colour
/// along each edge of `b` (image pixels, mapped onto the photo's box) and the
/// photo, not the mark, inside it.
fn assert_face_marked(
    img: &RgbImage,
    photo: (u32, u32, u32, u32),
    size: (u32, u32),
    b: &BoundingBox,
) {
    let (x0, y0, x1, y1) = photo;
    let sx = f64::from(x1 - x0) / f64::from(size.0);
    let sy = f64::from(y1 - y0) / f64::from(size.1);
    let at = |x: f32, y: f32| {
        let px = (f64::from(x0) + f64::from(x) * sx).round() as u32;
        let py = (f64::from(y0) + f64::from(y) * sy).round() as u32;
        (px, py, *img.get_pixel(px, py))
    };
    let (cx, cy) = (b.x + b.width / 2.0, b.y + b.height / 2.0);
    for (edge, (x, y)) in [
        ("top", (cx, b.y)),
        ("bottom", (cx, b.y + b.height)),
        ("left", (b.x, cy)),
        ("right", (b.x + b.width, cy)),
    ] {
        let (px, py, p) = at(x, y);
        assert!(
            is_mark(&p),
            "no face mark on the {edge} edge of {b:?} at ({px},{py}): {p:?}"
        );
    }
    let (px, py, p) = at(cx, cy);
    assert!(
        !is_mark(&p) && !is_white(&p),
        "inside {b:?} at ({px},{py}) should be the photo: {p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_both_dashboards() {
    let bin = chromium();
    let s = Stack::start(Options::default()).await;
    let lines = expected_people_lines(&s.analysis.url()).await;
    let alert_line = format!("name: <b>{PERSON_OF_INTEREST}</b>");

    // Cameras on until both dashboards show a frame and an alert.
    let on = get(&format!("{}/production?toggle=on", s.cpanel_v1.url())).await;
    assert_eq!(on.status, 200, "{}", on.text());
    let (v1, v2) = (s.cpanel_v1.url(), s.cpanel_v2.url());
    eventually(T, "both dashboards show a frame and an alert", || {
        let (v1, v2) = (v1.clone(), v2.clone());
        let (first, alert) = (lines[0].clone(), alert_line.clone());
        async move {
            let p1 = get(&format!("{v1}/")).await.text();
            let p2 = get(&format!("{v2}/")).await.text();
            (p1.contains(&first)
                && p1.contains(&alert)
                && p2.contains("<rect class=\"face\"")
                && p2.contains(&alert))
            .then_some(())
        }
    })
    .await;
    // Stop them so that every browser run sees the same page.
    let off = get(&format!("{}/production?toggle=off", s.cpanel_v1.url())).await;
    assert_eq!(off.status, 200, "{}", off.text());

    // The latest frame as the section has it: the photo's size and the faces.
    let page: StatsPage = get(&format!("{}/stats?limit=1&images=true", s.section.url()))
        .await
        .json()
        .unwrap();
    let latest = page.latest.expect("a stored frame");
    let photo = latest.image.as_ref().expect("the photo is stored");
    let size = (photo.width, photo.height);
    let faces: Vec<BoundingBox> = latest.people.iter().filter_map(|p| p.bbox).collect();
    assert_eq!(faces.len(), 2, "image analysis found both portraits");

    // v1: text only.
    let dom = dump_dom(&bin, &format!("{v1}/"), "dashboard-v1").await;
    assert!(dom.contains("<h1>Dashboard V1</h1>"), "{dom}");
    assert!(dom.contains("<title>Dashboard V1</title>"), "{dom}");
    assert!(dom.contains("<h2>Section 1</h2>"), "{dom}");
    for line in &lines {
        assert!(dom.contains(line), "{line} in {dom}");
    }
    assert!(dom.contains("section: 1<br>"), "{dom}");
    assert!(dom.contains(&alert_line), "{dom}");
    assert!(!dom.contains("<svg"), "v1 shows no photo: {dom}");
    let (path, img) = screenshot(&bin, &format!("{v1}/"), "dashboard-v1").await;
    assert_eq!(
        photo_box(&img),
        None,
        "{}: v1 shows no photo",
        path.display()
    );

    // v2: the same text and the photo with both faces marked.
    let dom = dump_dom(&bin, &format!("{v2}/index"), "dashboard-v2").await;
    assert!(dom.contains("<h1>Dashboard V2</h1>"), "{dom}");
    for line in &lines {
        assert!(dom.contains(line), "{line} in {dom}");
    }
    assert!(dom.contains(&alert_line), "{dom}");
    assert!(
        dom.contains("<image href=\"data:image/jpeg;base64,"),
        "v2 shows the photo: {dom}"
    );
    assert_eq!(
        dom.matches("<rect class=\"face\"").count(),
        2,
        "both faces marked: {dom}"
    );
    assert!(dom.contains("with 2 faces marked"), "{dom}");
    let (path, img) = screenshot(&bin, &format!("{v2}/index"), "dashboard-v2").await;
    let photo_at =
        photo_box(&img).unwrap_or_else(|| panic!("{}: the photo is not on screen", path.display()));
    let (x0, y0, x1, y1) = photo_at;
    let drawn = f64::from(x1 - x0) / f64::from(y1 - y0);
    let want = f64::from(size.0) / f64::from(size.1);
    assert!(
        (drawn / want - 1.0).abs() < 0.03,
        "{}: the photo at {photo_at:?} is not {}x{} in shape",
        path.display(),
        size.0,
        size.1
    );
    for b in &faces {
        assert_face_marked(&img, photo_at, size, b);
    }

    s.stop().await;
}
