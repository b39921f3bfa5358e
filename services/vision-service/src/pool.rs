//! The inference pool: a fixed number of OS threads (one per core by
//! default) taking jobs from one bounded queue.
//!
//! Model inference is seconds of CPU per minute of traffic and must never run
//! on the async runtime's threads, or `/status` and every other request
//! would wait behind a slow frame. `spawn_blocking` is no answer either: its
//! pool grows to hundreds of threads, so a burst of frames would all run at
//! once, each slower, instead of a few at full speed. Here at most `workers`
//! jobs run, at most `queue_depth` more wait, and one more is refused at once
//! ([`PoolError::Full`], answered `503` with `Retry-After`), as the collector
//! refuses frames beyond its limit.
//!
//! A job whose caller has gone (the client timed out and hung up) is dropped
//! unrun when a worker reaches it, so a backlog of abandoned frames does not
//! delay the live ones. A job that panics is caught: its caller gets
//! [`PoolError::Panicked`] and the worker goes on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Why a job did not run to completion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every worker is busy and the queue is full.
    #[error(
        "all {workers} inference workers are busy and {queued} frames are waiting; retry later"
    )]
    Full {
        /// Workers in the pool.
        workers: usize,
        /// Jobs waiting (the queue's depth).
        queued: usize,
    },
    /// The job panicked (a bug, answered 500).
    #[error("inference failed unexpectedly: {0}")]
    Panicked(String),
    /// The pool has stopped (the service is shutting down).
    #[error("the inference pool has stopped")]
    Stopped,
}

/// The pool's counters.
#[derive(Debug, Default)]
struct PoolStats {
    busy: AtomicU64,
    completed: AtomicU64,
    rejected: AtomicU64,
    abandoned: AtomicU64,
    panicked: AtomicU64,
}

/// A point-in-time copy of [`PoolStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSnapshot {
    /// Jobs waiting for a worker.
    pub queued: u64,
    /// Jobs running.
    pub busy: u64,
    /// Jobs run to the end (including those that panicked).
    pub completed: u64,
    /// Jobs refused because the queue was full.
    pub rejected: u64,
    /// Jobs dropped unrun because their caller had gone.
    pub abandoned: u64,
    /// Jobs that panicked.
    pub panicked: u64,
}

impl PoolStats {
    fn snapshot(&self, queued: usize) -> PoolSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::SeqCst);
        PoolSnapshot {
            queued: queued as u64,
            busy: l(&self.busy),
            completed: l(&self.completed),
            rejected: l(&self.rejected),
            abandoned: l(&self.abandoned),
            panicked: l(&self.panicked),
        }
    }
}

/// What a job produced, and how long it waited for a worker.
#[derive(Debug)]
pub struct Ran<T> {
    /// The job's result.
    pub value: T,
    /// Time between submission and a worker starting it.
    pub queued_for: Duration,
}

/// A bounded pool of inference threads. Cloning shares the pool; the threads
/// end once every clone is dropped and the queue has drained.
#[derive(Debug, Clone)]
pub struct InferencePool {
    tx: Sender<Job>,
    stats: Arc<PoolStats>,
    workers: usize,
    queue_depth: usize,
}

impl InferencePool {
    /// Starts `workers` threads (at least 1) named `{name}-N`, with room for
    /// `queue_depth` waiting jobs (0: a job is accepted only if a worker is
    /// idle).
    pub fn new(name: &str, workers: usize, queue_depth: usize) -> std::io::Result<Self> {
        let workers = workers.max(1);
        // A zero-capacity crossbeam channel is a rendezvous channel: try_send
        // succeeds only if a worker is blocked in recv, i.e. idle.
        let (tx, rx) = crossbeam_channel::bounded::<Job>(queue_depth);
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })?;
        }
        Ok(Self {
            tx,
            stats: Arc::new(PoolStats::default()),
            workers,
            queue_depth,
        })
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Jobs that may wait for a worker.
    pub fn queue_depth(&self) -> usize {
        self.queue_depth
    }

    /// Current counters.
    pub fn stats(&self) -> PoolSnapshot {
        self.stats.snapshot(self.tx.len())
    }

    /// Runs `f` on a worker and waits for it without blocking the runtime.
    /// Refused at once with [`PoolError::Full`] if the queue is full.
    pub async fn run<T, F>(&self, f: F) -> Result<Ran<T>, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<Ran<T>, PoolError>>();
        let stats = self.stats.clone();
        let submitted = Instant::now();
        let job: Job = Box::new(move || {
            if done_tx.is_closed() {
                stats.abandoned.fetch_add(1, Ordering::SeqCst);
                return;
            }
            let queued_for = submitted.elapsed();
            stats.busy.fetch_add(1, Ordering::SeqCst);
            let outcome = catch_unwind(AssertUnwindSafe(f));
            stats.busy.fetch_sub(1, Ordering::SeqCst);
            stats.completed.fetch_add(1, Ordering::SeqCst);
            let result = match outcome {
                Ok(value) => Ok(Ran { value, queued_for }),
                Err(payload) => {
                    stats.panicked.fetch_add(1, Ordering::SeqCst);
                    let what = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".to_string());
                    tracing::error!(panic = %what, "inference job panicked");
                    Err(PoolError::Panicked(what))
                }
            };
            // The caller may have gone meanwhile; nothing to do then.
            let _ = done_tx.send(result);
        });
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.rejected.fetch_add(1, Ordering::SeqCst);
                return Err(PoolError::Full {
                    workers: self.workers,
                    queued: self.queue_depth,
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(PoolError::Stopped);
            }
        }
        done_rx.await.map_err(|_| PoolError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::sync::Barrier;

    #[tokio::test]
    async fn runs_jobs_off_the_runtime_and_returns_their_values() {
        let pool = InferencePool::new("t", 2, 4).unwrap();
        let name = pool
            .run(|| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert!(name.value.unwrap().starts_with("t-"));
        assert_eq!(pool.stats().completed, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuses_once_workers_and_queue_are_full() {
        let pool = InferencePool::new("t", 1, 1).unwrap();
        let gate = Arc::new(Barrier::new(2));
        let g = gate.clone();
        let p = pool.clone();
        let running = tokio::spawn(async move { p.run(move || g.wait()).await });
        while pool.stats().busy < 1 {
            tokio::task::yield_now().await;
        }
        let p = pool.clone();
        let waiting = tokio::spawn(async move { p.run(|| 7).await });
        while pool.stats().queued < 1 {
            tokio::task::yield_now().await;
        }
        let refused = pool.run(|| 8).await.unwrap_err();
        assert_eq!(
            refused,
            PoolError::Full {
                workers: 1,
                queued: 1
            }
        );
        assert_eq!(pool.stats().rejected, 1);
        gate.wait();
        running.await.unwrap().unwrap();
        assert_eq!(waiting.await.unwrap().unwrap().value, 7);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_worker_survives() {
        let pool = InferencePool::new("t", 1, 1).unwrap();
        let err = pool
            .run(|| -> u8 { panic!("model exploded") })
            .await
            .unwrap_err();
        assert_eq!(err, PoolError::Panicked("model exploded".into()));
        assert_eq!(pool.run(|| 5).await.unwrap().value, 5);
        assert_eq!(pool.stats().panicked, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_caller_left_is_not_run() {
        let pool = InferencePool::new("t", 1, 2).unwrap();
        let gate = Arc::new(Barrier::new(2));
        let g = gate.clone();
        let p = pool.clone();
        let blocker = tokio::spawn(async move { p.run(move || g.wait()).await });
        while pool.stats().busy < 1 {
            tokio::task::yield_now().await;
        }
        let ran = Arc::new(AtomicU64::new(0));
        let r = ran.clone();
        let p = pool.clone();
        let abandoned =
            tokio::spawn(async move { p.run(move || r.fetch_add(1, Ordering::SeqCst)).await });
        while pool.stats().queued < 1 {
            tokio::task::yield_now().await;
        }
        abandoned.abort();
        let _ = abandoned.await;
        gate.wait();
        blocker.await.unwrap().unwrap();
        // The queue is FIFO: once this later job has run, the abandoned one
        // has been reached and skipped.
        pool.run(|| ()).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(pool.stats().abandoned, 1);
    }
}
