//! Serving a router with graceful shutdown, and the `main` of every service.
//!
//! Shutdown is a [`Shutdown`] handle: SIGTERM or ctrl-c trigger it in a real
//! process, tests trigger it directly. When it fires, `/readyz` turns 503, the
//! listener stops accepting, and in-flight requests run to completion
//! (axum's `with_graceful_shutdown`).

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::health::Health;

/// A shutdown signal shared by every part of a service.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// Not triggered yet.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(false);
        Self { tx: Arc::new(tx) }
    }

    /// Starts the shutdown (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once shutdown has started.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so this only ends when the value is true.
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Triggers on SIGTERM or ctrl-c (SIGINT).
    pub fn trigger_on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let signal = wait_for_signal().await;
            tracing::info!(signal, "shutdown signal received");
            this.trigger();
        });
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; ctrl-c only");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "ctrl-c"
}

/// Serves `app` on `listener` until `shutdown` fires, then drains in-flight
/// requests. Logs `listening addr=...` once bound (tests read it).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: Shutdown,
    health: Health,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    let drain = async move {
        shutdown.wait().await;
        health.set_ready(false);
        tracing::info!("shutting down: finishing in-flight requests");
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(drain)
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// A service serving in the background (tests and embedding).
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its shutdown handle.
    pub shutdown: Shutdown,
    /// Its readiness.
    pub health: Health,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Triggers shutdown and waits until in-flight requests are done.
    pub async fn stop(self) -> Result<(), BoxError> {
        self.shutdown.trigger();
        self.task.await??;
        Ok(())
    }
}

/// Serves `app` on `listener` in a background task.
pub fn spawn(listener: TcpListener, app: Router, shutdown: Shutdown, health: Health) -> Running {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let task = tokio::spawn(serve(listener, app, shutdown.clone(), health.clone()));
    Running {
        addr,
        shutdown,
        health,
        task,
    }
}

/// The boxed error a service's `run` returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The whole `main` of a service: tracing, a multi-threaded runtime, signals,
/// then `run`. Returns a failure exit code (never panics) if `run` fails.
pub fn run_main<F, Fut>(service: &'static str, run: F) -> ExitCode
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    crate::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(service, error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown.trigger_on_signals();
        tracing::info!(service, version = env!("CARGO_PKG_VERSION"), "starting");
        match run(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(service, error = %e, "exiting on error");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn wait_returns_after_trigger_even_if_triggered_first() {
        let s = Shutdown::new();
        assert!(!s.is_triggered());
        s.trigger();
        s.wait().await;
        assert!(s.is_triggered());
        let s2 = s.clone();
        s2.wait().await;
    }
}
