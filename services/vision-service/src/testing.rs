//! Helpers for the vision services' tests (and the end-to-end tests): where
//! the models and the test images are, and a way to keep every inference
//! worker busy on demand, so that tests can prove what happens while frames
//! wait (probes still answer, a full queue answers 503) without relying on
//! how long a real frame takes.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::pool::InferencePool;

/// The workspace root (this crate is `services/vision-service`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The models for tests: where `make models` installs them (`$MODELS_DIR`,
/// else `<workspace>/.models`). An error naming the fix if absent.
pub fn models_dir() -> Result<PathBuf, String> {
    let dir = airport_vision::model_dir(&workspace_root());
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "models not found in {}: run make models",
            dir.display()
        ))
    }
}

/// A committed test image: `services/testdata/vision/<name>`.
pub fn testdata(name: &str) -> PathBuf {
    workspace_root().join("services/testdata/vision").join(name)
}

/// Every worker of a pool kept busy until [`HeldWorkers::release`] (or drop).
#[derive(Debug)]
pub struct HeldWorkers {
    releases: Vec<mpsc::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HeldWorkers {
    /// Lets the held jobs end and waits until they have.
    pub async fn release(mut self) {
        self.releases.clear();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

/// Submits one blocking job per worker and waits (up to `within`) until all
/// of them are running, i.e. every worker is busy.
pub async fn hold_workers(pool: &InferencePool, within: Duration) -> Result<HeldWorkers, String> {
    let mut releases = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..pool.workers() {
        let (tx, rx) = mpsc::channel::<()>();
        releases.push(tx);
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            // Ends when the sender is dropped.
            let _ = p.run(move || rx.recv()).await;
        }));
    }
    let deadline = Instant::now() + within;
    let workers = pool.workers() as u64;
    while pool.stats().busy < workers {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {workers} workers became busy within {within:?}",
                pool.stats().busy
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(HeldWorkers { releases, tasks })
}

/// Polls until `pool` has `n` jobs waiting (up to `within`).
pub async fn wait_queued(pool: &InferencePool, n: u64, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while pool.stats().queued < n {
        if Instant::now() > deadline {
            return Err(format!(
                "{} jobs queued after {within:?}, expected {n}",
                pool.stats().queued
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
