//! Running a service binary as a real process in tests: it listens on an
//! ephemeral loopback port, and the address is read from its own
//! `listening` log line; SIGTERM stops it gracefully. The child is killed if
//! the handle is dropped, so a failing test leaves no process behind.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A service process.
#[derive(Debug)]
pub struct ChildService {
    child: Child,
    addr: String,
    logs: Arc<Mutex<Vec<String>>>,
}

fn listening_addr(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("message")?.as_str()? == "listening" {
        Some(v.get("addr")?.as_str()?.to_string())
    } else {
        None
    }
}

impl ChildService {
    /// Starts `program args...` with `env` (plus `LISTEN_ADDR=127.0.0.1:0`
    /// unless given, and JSON logs), and waits up to `within` for it to listen.
    pub fn spawn(
        program: &str,
        args: &[&str],
        env: &[(&str, String)],
        within: Duration,
    ) -> Result<Self, String> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let stdout = child.stdout.take().ok_or_else(|| "no stdout".to_string())?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = tx.send(addr);
                }
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        let deadline = Instant::now() + within;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => {
                    return Ok(Self { child, addr, logs });
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!("{program} {args:?} exited early: {status}"));
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!(
                            "{program} {args:?} did not listen within {within:?}"
                        ));
                    }
                }
            }
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `host:port` it listens on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `within` for the exit.
    pub fn terminate(mut self, within: Duration) -> Result<ExitStatus, String> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM {pid} failed"));
        }
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(format!("pid {pid} still running {within:?} after SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a service binary showed in the basic probe: the status code and
/// body of its `/status`, then its exit status after SIGTERM.
#[derive(Debug)]
pub struct StatusProbe {
    pub code: u16,
    pub body: String,
    pub exit: ExitStatus,
}

/// Starts `program` with `env`, asks its `/status`, then stops it with
/// SIGTERM: the check every service binary's own test makes.
pub fn probe_status_then_terminate(
    program: &str,
    env: &[(&str, String)],
) -> Result<StatusProbe, String> {
    let service = ChildService::spawn(program, &[], env, Duration::from_secs(20))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build a runtime: {e}"))?;
    let response = runtime
        .block_on(crate::HttpClient::default().get(
            &format!("{}/status", service.url()),
            Duration::from_secs(10),
        ))
        .map_err(|e| format!("GET /status: {e}"))?;
    let exit = service.terminate(Duration::from_secs(10))?;
    Ok(StatusProbe {
        code: response.status.as_u16(),
        body: response.text(),
        exit,
    })
}
