//! The benchmark's upstream: a minimal HTTP/1.1 responder on one thread.
//!
//! The rig's [`Upstream`](crate::Upstream) records and echoes every request,
//! which is what tests want and far too much work for a benchmark, where the
//! upstream must never be the bottleneck. This one answers `200 ok` with a
//! fixed two-byte body; only a request carrying [`ECHO_HEADER`] gets the
//! request headers back (one `name: value` line each), which the pre-load
//! check uses to see what Envoy forwarded.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::error::{Result, RigError};

/// The request header that makes the responder list the request headers in its body.
pub const ECHO_HEADER: &str = "x-bench-echo";

/// A running responder on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub(crate) struct FastUpstream {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FastUpstream {
    /// Starts the responder on its own thread, which inherits the calling
    /// thread's CPU affinity.
    pub(crate) fn start() -> Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel::<std::io::Result<SocketAddr>>();
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-upstream".into())
            .spawn(move || serve(&ready_tx, stop))
            .map_err(|e| RigError::io("starting the benchmark upstream thread", e))?;
        let addr = ready_rx
            .recv()
            .map_err(|_| {
                RigError::io(
                    "starting the benchmark upstream",
                    std::io::Error::other("its thread exited before binding"),
                )
            })?
            .map_err(|e| RigError::io("binding the benchmark upstream", e))?;
        Ok(Self {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The bound port.
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for FastUpstream {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(ready: &mpsc::Sender<std::io::Result<SocketAddr>>, stop: oneshot::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(("127.0.0.1", 0)).await {
            Ok(listener) => listener,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(listener.local_addr());
        let accept = async {
            loop {
                // A failed accept concerns that peer only.
                if let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service_fn(respond))
                            .await;
                    });
                }
            }
        };
        tokio::select! {
            _ = stop => {},
            () = accept => {},
        }
    });
    // Dropping the runtime cancels every connection task.
}

async fn respond(
    request: hyper::Request<Incoming>,
) -> std::result::Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    // Bodies are not read: wrk sends GETs, and hyper discards what is left.
    let body = if request.headers().contains_key(ECHO_HEADER) {
        let mut listing = String::new();
        for (name, value) in request.headers() {
            listing.push_str(name.as_str());
            listing.push_str(": ");
            listing.push_str(&String::from_utf8_lossy(value.as_bytes()));
            listing.push('\n');
        }
        Bytes::from(listing)
    } else {
        Bytes::from_static(b"ok")
    };
    Ok(hyper::Response::new(Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Request;

    #[test]
    fn answers_ok_and_echoes_on_request() {
        let upstream = FastUpstream::start().unwrap();
        let url = format!("http://127.0.0.1:{}/", upstream.port());

        let plain = Request::get(&url).send().unwrap();
        assert_eq!((plain.status, plain.text()), (200, "ok".to_owned()));

        let echoed = Request::get(&url)
            .header(ECHO_HEADER, "1")
            .header("x-probe", "p")
            .send()
            .unwrap();
        assert!(echoed.text().lines().any(|l| l == "x-probe: p"));
    }
}
