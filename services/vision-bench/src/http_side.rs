//! The whole services over HTTP on loopback: `image-analysis` and
//! `face-recognition` started from their release binaries (as deployed: one
//! inference worker per core, models loaded once), loaded by N concurrent
//! clients posting the same frame back to back.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airport_common::HttpClient;
use anyhow::{Context, Result, bail};
use bytes::Bytes;

use crate::results::Throughput;
use crate::tract_side::Pipeline;

const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
const STARTUP_DEADLINE: Duration = Duration::from_secs(180);

/// A running service, stopped when dropped.
#[derive(Debug)]
pub struct Service {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The path frames are posted to.
    pub path: &'static str,
    /// The binary's name.
    pub name: &'static str,
}

impl Drop for Service {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Service {
    /// The binary of `pipeline`'s service in `bin_dir`, if it was built.
    pub fn binary(bin_dir: &Path, pipeline: Pipeline) -> PathBuf {
        bin_dir.join(match pipeline {
            Pipeline::Analysis => "image-analysis",
            Pipeline::Recognition => "face-recognition",
        })
    }

    /// Starts the service of `pipeline` and waits (with a deadline) until its
    /// `/status` answers.
    pub fn start(
        bin_dir: &Path,
        pipeline: Pipeline,
        models: &Path,
        workers: usize,
        work_dir: &Path,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Service> {
        let (name, path) = match pipeline {
            Pipeline::Analysis => ("image-analysis", "/analyze"),
            Pipeline::Recognition => ("face-recognition", "/recognize"),
        };
        let binary = Self::binary(bin_dir, pipeline);
        let port = free_port()?;
        std::fs::create_dir_all(work_dir)?;
        let log_path = work_dir.join(format!("{name}.log"));
        let log = File::create(&log_path)?;
        let watchlist = work_dir.join("watchlist.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", watchlist.display()));
        }
        let child = Command::new(&binary)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("MODELS_DIR", models)
            .env("VISION_WORKERS", workers.to_string())
            .env("WATCHLIST_DB", &watchlist)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut service = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
            path,
            name,
        };
        let client = HttpClient::default();
        let status = format!("{}/status", service.base);
        let started = Instant::now();
        runtime.block_on(async {
            loop {
                if let Some(exit) = service.child.try_wait()? {
                    bail!(
                        "{name} exited ({exit}) before answering; its log: {}",
                        log_path.display()
                    );
                }
                if let Ok(resp) = client.get(&status, Duration::from_secs(2)).await
                    && resp.status.is_success()
                {
                    return Ok(());
                }
                if started.elapsed() > STARTUP_DEADLINE {
                    bail!(
                        "{name} did not answer /status within {STARTUP_DEADLINE:?}; its log: {}",
                        log_path.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })?;
        Ok(service)
    }

    /// One frame, answered 200; returns the number of faces it reports.
    pub fn faces(&self, runtime: &tokio::runtime::Runtime, frame: &Bytes) -> Result<u64> {
        let client = HttpClient::default();
        let url = format!("{}{}", self.base, self.path);
        let resp = runtime.block_on(post(&client, &url, frame.clone()))?;
        let body: serde_json::Value = serde_json::from_slice(&resp)
            .with_context(|| format!("{} answered something that is not JSON", self.name))?;
        // /analyze says `count`, /recognize says `faces`.
        body.get("count")
            .or_else(|| body.get("faces"))
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("{} answered without a face count: {body}", self.name))
    }

    /// `clients` concurrent clients posting `frame` back to back for
    /// `seconds`; every answer must be a 200.
    pub fn throughput(
        &self,
        runtime: &tokio::runtime::Runtime,
        frame: &Bytes,
        clients: usize,
        seconds: f64,
    ) -> Result<Throughput> {
        let url = format!("{}{}", self.base, self.path);
        let budget = Duration::from_secs_f64(seconds);
        runtime.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    let client = HttpClient::default();
                    let url = url.clone();
                    let frame = frame.clone();
                    tokio::spawn(async move {
                        let mut latencies = Vec::new();
                        loop {
                            let t0 = Instant::now();
                            if t0 >= start + budget {
                                break;
                            }
                            post(&client, &url, frame.clone()).await?;
                            latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                        }
                        anyhow::Ok((latencies, Instant::now()))
                    })
                })
                .collect();
            let mut latencies = Vec::new();
            let mut end = start;
            for task in tasks {
                let (l, e) = task.await.context("a client task failed")??;
                latencies.extend(l);
                end = end.max(e);
            }
            Ok(Throughput {
                frames: latencies.len(),
                seconds: (end - start).as_secs_f64(),
                latencies_ms: latencies,
            })
        })
    }
}

async fn post(client: &HttpClient, url: &str, frame: Bytes) -> Result<Bytes> {
    use hyper::Method;
    use hyper::header::{CONTENT_TYPE, HeaderValue};
    let headers = [(CONTENT_TYPE, HeaderValue::from_static("image/jpeg"))];
    let resp = client
        .send(Method::POST, url, &headers, frame, REQUEST_DEADLINE)
        .await
        .with_context(|| format!("POST {url}"))?;
    if !resp.status.is_success() {
        bail!("POST {url}: {} {}", resp.status, resp.text());
    }
    Ok(resp.body)
}
