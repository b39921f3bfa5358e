#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The pipeline's own overhead: frames per second and per-frame latency
//! (p50, p99) through collector → section, with the vision services stubbed
//! at zero cost (the test double answers at once, with no watchlist match,
//! so nothing goes to alerts), side by side with the same statistics posted
//! straight to section (the storage cost alone). The ratio of the two is what
//! the collector adds: JSON and base64 decoding, image header checks, the two
//! vision calls on loopback, and the forward to section.
//!
//! Each row: a fresh stack in-process on loopback (each service's real router
//! and server, SQLite on a temporary directory), a warm-up, then a bounded
//! count of frames posted by N concurrent clients; every request timed from
//! send to complete answer. Bodies are built before the clock starts. At the
//! end the section's stored total is checked against what was sent.
//!
//! `cargo bench -p airport-e2e --bench pipeline` (release). Environment:
//! `PIPELINE_BENCH_FRAMES` (default 2000 per row), `PIPELINE_BENCH_CLIENTS`
//! (default `1,8`), `PIPELINE_BENCH_WARMUP` (default 100).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use airport_common::types::StatsPage;
use airport_common::{HttpClient, Timestamp};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use base64::Engine;
use bytes::Bytes;
use support::{Options, Stack, Vision, get};

const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `POST /stats` on section: the storage cost alone.
    Section,
    /// `POST /frames` on the collector: vision calls, then section.
    Collector,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Section => "section alone (`POST /stats`)",
            Target::Collector => "collector → section (`POST /frames`)",
        }
    }
}

#[derive(Debug)]
struct Row {
    path: Target,
    clients: usize,
    frames: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Row {
    fn fps(&self) -> f64 {
        self.frames as f64 / self.seconds
    }
}

fn env_or<V: std::str::FromStr>(name: &str, default: V) -> V {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// The demo frames the cameras send (160x120 JPEGs), base64.
fn demo_frames() -> Vec<String> {
    let mut paths: Vec<_> = std::fs::read_dir(support::frames_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap()))
        .collect()
}

fn frame_body(frame_id: &str, image: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "frame_id": frame_id,
            "camera_id": "1",
            "section": "1",
            "event": "exit",
            "timestamp": Timestamp::now().to_string(),
            "image": image,
        }))
        .unwrap(),
    )
}

/// The section's body for `frame_id`: exactly what the collector sent for
/// the template frame (statistics and photo), under a new frame id.
fn stats_body(template: &serde_json::Value, frame_id: &str, image: &str) -> Bytes {
    let mut rec = template.clone();
    rec["frame_id"] = serde_json::Value::from(frame_id);
    rec["timestamp"] = serde_json::Value::from(Timestamp::now().to_string());
    rec["image"]["data"] = serde_json::Value::from(image);
    Bytes::from(serde_json::to_vec(&rec).unwrap())
}

async fn stack(clients: usize) -> Stack {
    let s = Stack::start(Options {
        max_in_flight: clients.max(8),
        cameras: 0,
        vision: Vision::Double,
        ..Options::default()
    })
    .await;
    s.double().set_match(false);
    s
}

/// What the collector sends to section for one demo frame, as section stored it.
async fn template(images: &[String]) -> serde_json::Value {
    let s = stack(1).await;
    let r = support::post_raw(
        &format!("{}/frames", s.collector.url()),
        "application/json",
        frame_body("template", &images[0]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let page: StatsPage = get(&format!("{}/stats?limit=1&images=true", s.section.url()))
        .await
        .json()
        .unwrap();
    let rec = serde_json::to_value(page.latest.expect("the template frame is stored")).unwrap();
    s.stop().await;
    assert!(rec["image"]["data"].is_string(), "the photo is forwarded");
    rec
}

/// Posts every body with `clients` concurrent clients; returns the wall time
/// and each request's latency.
async fn drive(
    client: &HttpClient,
    url: &str,
    bodies: Vec<Bytes>,
    clients: usize,
    want: StatusCode,
) -> (Duration, Vec<Duration>) {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, url, bodies, next) = (
            client.clone(),
            url.to_string(),
            bodies.clone(),
            next.clone(),
        );
        tasks.spawn(async move {
            let mut times = Vec::with_capacity(bodies.len() / clients + 1);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t0 = Instant::now();
                let r = client
                    .send(
                        Method::POST,
                        &url,
                        &[(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                        body.clone(),
                        DEADLINE,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("POST {url}: {e}"));
                times.push(t0.elapsed());
                assert_eq!(r.status, want, "POST {url}: {}", r.text());
            }
            times
        });
    }
    let mut all = Vec::new();
    while let Some(t) = tasks.join_next().await {
        all.extend(t.unwrap());
    }
    (start.elapsed(), all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run_row(
    path: Target,
    clients: usize,
    frames: usize,
    warmup: usize,
    images: &[String],
    template: &serde_json::Value,
) -> Row {
    let s = stack(clients).await;
    let (url, want) = match path {
        Target::Section => (format!("{}/stats", s.section.url()), StatusCode::CREATED),
        Target::Collector => (format!("{}/frames", s.collector.url()), StatusCode::OK),
    };
    let body = |i: usize| {
        let id = format!("bench-{i:06}");
        let image = &images[i % images.len()];
        match path {
            Target::Section => stats_body(template, &id, image),
            Target::Collector => frame_body(&id, image),
        }
    };
    let client = HttpClient::default();
    let warm: Vec<Bytes> = (0..warmup).map(body).collect();
    drive(&client, &url, warm, clients, want).await;
    let measured: Vec<Bytes> = (warmup..warmup + frames).map(body).collect();
    let (wall, mut times) = drive(&client, &url, measured, clients, want).await;

    let page: StatsPage = get(&format!("{}/stats?limit=1", s.section.url()))
        .await
        .json()
        .unwrap();
    assert_eq!(
        page.total,
        (warmup + frames) as u64,
        "section stored every frame once"
    );
    if path == Target::Collector {
        let m = get(&format!("{}/metrics", s.collector.url())).await.text();
        assert_eq!(
            support::metric(&m, "collector_frames_processed_total"),
            (warmup + frames) as u64
        );
    }
    s.stop().await;

    times.sort();
    Row {
        path,
        clients,
        frames,
        seconds: wall.as_secs_f64(),
        p50: percentile(&times, 50.0),
        p99: percentile(&times, 99.0),
        max: times.last().copied().unwrap_or_default(),
    }
}

/// The 1-minute load average, to judge how busy the machine was.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let frames: usize = env_or("PIPELINE_BENCH_FRAMES", 2000);
    let warmup: usize = env_or("PIPELINE_BENCH_WARMUP", 100);
    let clients: Vec<usize> = std::env::var("PIPELINE_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,8".to_string())
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .expect("PIPELINE_BENCH_CLIENTS: numbers, comma-separated")
        })
        .collect();
    assert!(frames > 0 && clients.iter().all(|&c| c > 0));

    let load_before = load();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = rt.block_on(async {
        let images = demo_frames();
        let template = template(&images).await;
        let mut rows = Vec::new();
        for &c in &clients {
            for path in [Target::Section, Target::Collector] {
                let row = run_row(path, c, frames, warmup, &images, &template).await;
                eprintln!("done: {} with {c} clients", path.label());
                rows.push(row);
            }
        }
        rows
    });

    println!();
    println!("`cargo bench -p airport-e2e --bench pipeline`");
    println!();
    println!(
        "{frames} frames per row after {warmup} warm-up, 160x120 JPEG demo frames, \
         vision test double answering at once (no match, so no alerts), SQLite section \
         on a temporary directory, all in one process on a 2-worker tokio runtime; \
         latency per request, send to complete answer. {} cores; 1-minute load average \
         {load_before} before, {} after.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load()
    );
    println!();
    println!("| path | clients | frames | frames/s | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} |",
            r.path.label(),
            r.clients,
            r.frames,
            r.fps(),
            ms(r.p50),
            ms(r.p99),
            ms(r.max)
        );
    }
    println!();
    println!("| clients | section alone ÷ collector → section, frames/s | p50 ratio | p99 ratio |");
    println!("| ---: | ---: | ---: | ---: |");
    for &c in &clients {
        let find = |p: Target| rows.iter().find(|r| r.path == p && r.clients == c);
        if let (Some(s), Some(p)) = (find(Target::Section), find(Target::Collector)) {
            println!(
                "| {c} | {:.2}x | {:.2}x | {:.2}x |",
                s.fps() / p.fps(),
                p.p50.as_secs_f64() / s.p50.as_secs_f64(),
                p.p99.as_secs_f64() / s.p99.as_secs_f64()
            );
        }
    }
}
