//! Running a real Envoy process on loopback.
//!
//! [`Envoy::start`] writes the bootstrap to a temporary directory, starts Envoy
//! with `--disable-hot-restart` (no shared-memory region, so any number of
//! Envoys run side by side), and waits until the admin `/ready` endpoint says
//! `LIVE`. All ports are ephemeral: the admin address comes from
//! `--admin-address-path`, the listener ports from admin `/listeners`.
//!
//! The process never outlives its handle: it is killed on drop, and on Linux it
//! also gets `SIGKILL` if the test process dies first. When a test panics, the
//! drop prints the tail of Envoy's log, which is usually where the reason is.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::affinity::CpuSet;
use crate::binary::envoy_binary;
use crate::bootstrap::Bootstrap;
use crate::client::Request;
use crate::error::{Result, RigError};

/// How often readiness and [`Envoy::wait_for_stat`] poll.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Lines of Envoy's log printed when a test panics.
const LOG_TAIL_LINES: usize = 60;

/// Command-line options for an Envoy run.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// The binary; `None` uses [`envoy_binary`].
    pub binary: Option<PathBuf>,
    /// Worker threads (`--concurrency`); 1 by default, since tests run many
    /// Envoys at once and one worker makes per-worker plugin state predictable.
    pub concurrency: u32,
    /// The global log level (`-l`).
    pub log_level: String,
    /// Per-component log levels (`--component-log-level`), `wasm=debug` by
    /// default so plugin logs land in [`Envoy::log`].
    pub component_log_levels: Vec<(String, String)>,
    /// How long to wait for `/ready` to say `LIVE`.
    pub ready_timeout: Duration,
    /// The CPUs Envoy may run on (`sched_setaffinity` in the child before
    /// exec, so every Envoy thread inherits it); `None` leaves it unpinned.
    /// Linux only: elsewhere a `Some` makes [`Envoy::start_with`] fail.
    pub cpu_affinity: Option<Vec<usize>>,
    /// More command-line arguments, after the rig's own (e.g.
    /// `--config-yaml` to merge a `node` into the bootstrap).
    pub extra_args: Vec<String>,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        Self {
            binary: None,
            concurrency: 1,
            log_level: "info".into(),
            component_log_levels: vec![("wasm".into(), "debug".into())],
            ready_timeout: Duration::from_secs(30),
            cpu_affinity: None,
            extra_args: Vec::new(),
        }
    }
}

impl EnvoyOptions {
    /// Sets the worker count.
    #[must_use]
    pub fn concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers;
        self
    }

    /// Sets the global log level (`trace`, `debug`, `info`, `warning`, ...).
    #[must_use]
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = level.into();
        self
    }

    /// Sets one component's log level (e.g. `"wasm", "trace"`).
    #[must_use]
    pub fn component_log_level(
        mut self,
        component: impl Into<String>,
        level: impl Into<String>,
    ) -> Self {
        let component = component.into();
        self.component_log_levels.retain(|(c, _)| *c != component);
        self.component_log_levels.push((component, level.into()));
        self
    }

    /// Pins Envoy (all its threads) to `cpus`, e.g. `[0]` for a benchmark.
    #[must_use]
    pub fn cpu_affinity(mut self, cpus: impl IntoIterator<Item = usize>) -> Self {
        self.cpu_affinity = Some(cpus.into_iter().collect());
        self
    }

    pub(crate) fn binary(&self) -> Result<PathBuf> {
        match &self.binary {
            Some(path) if path.is_file() => Ok(path.clone()),
            Some(path) => Err(RigError::EnvoyNotFound { path: path.clone() }),
            None => envoy_binary(),
        }
    }

    fn common_args(&self, command: &mut Command) {
        command
            .arg("--disable-hot-restart")
            .arg("--concurrency")
            .arg(self.concurrency.to_string())
            .arg("-l")
            .arg(&self.log_level);
        if !self.component_log_levels.is_empty() {
            let levels: Vec<String> = self
                .component_log_levels
                .iter()
                .map(|(component, level)| format!("{component}:{level}"))
                .collect();
            command.arg("--component-log-level").arg(levels.join(","));
        }
        command.args(&self.extra_args);
    }
}

/// A running Envoy; killed when dropped.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    // Holds the bootstrap and the log; removed when the handle drops.
    dir: tempfile::TempDir,
    log_path: PathBuf,
    admin: SocketAddr,
    listeners: Vec<(String, SocketAddr)>,
}

impl Envoy {
    /// Starts Envoy with default options and waits until it is ready.
    pub fn start(bootstrap: &Bootstrap) -> Result<Self> {
        Self::start_with(bootstrap, &EnvoyOptions::default())
    }

    /// Starts Envoy with `options` and waits until it is ready.
    pub fn start_with(bootstrap: &Bootstrap, options: &EnvoyOptions) -> Result<Self> {
        let binary = options.binary()?;
        // Built before the fork: the child may only make async-signal-safe calls.
        let affinity = options
            .cpu_affinity
            .as_deref()
            .map(CpuSet::new)
            .transpose()
            .map_err(|e| RigError::io("setting Envoy's CPU affinity", e))?;
        let dir = tempfile::Builder::new()
            .prefix("envoy-rig-")
            .tempdir()
            .map_err(|e| RigError::io("creating a temp dir for Envoy", e))?;
        let config_path = write_bootstrap(dir.path(), bootstrap)?;
        let admin_path = dir.path().join("admin-address");
        let log_path = dir.path().join("envoy.log");
        let log = File::create(&log_path)
            .map_err(|e| RigError::io(format!("creating {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| RigError::io("duplicating the log handle", e))?;

        let mut command = Command::new(&binary);
        command.arg("-c").arg(&config_path);
        options.common_args(&mut command);
        command
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        configure_child(&mut command, affinity);
        let child = command
            .spawn()
            .map_err(|e| RigError::io(format!("starting {}", binary.display()), e))?;

        // From here on the handle owns the process, so every early return kills it.
        let mut envoy = Self {
            child,
            dir,
            log_path,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listeners: Vec::new(),
        };
        envoy.wait_ready(&admin_path, options.ready_timeout)?;
        envoy.listeners = envoy.read_listeners(bootstrap)?;
        Ok(envoy)
    }

    /// Runs `envoy --mode validate` on `bootstrap`: Envoy parses everything and
    /// loads Wasm modules without binding a port.
    pub fn validate(bootstrap: &Bootstrap, options: &EnvoyOptions) -> Result<()> {
        let binary = options.binary()?;
        let dir = tempfile::Builder::new()
            .prefix("envoy-rig-validate-")
            .tempdir()
            .map_err(|e| RigError::io("creating a temp dir for Envoy", e))?;
        let config_path = write_bootstrap(dir.path(), bootstrap)?;
        let mut command = Command::new(&binary);
        command
            .arg("--mode")
            .arg("validate")
            .arg("-c")
            .arg(&config_path);
        options.common_args(&mut command);
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| RigError::io(format!("running {}", binary.display()), e))?;
        let mut printed = String::from_utf8_lossy(&output.stdout).into_owned();
        printed.push_str(&String::from_utf8_lossy(&output.stderr));
        if output.status.success() {
            Ok(())
        } else {
            Err(RigError::InvalidBootstrap {
                log_tail: tail(&printed, LOG_TAIL_LINES),
            })
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin interface's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// `http://127.0.0.1:<admin port>`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// The listeners' names and bound addresses, in bootstrap order.
    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// The bound address of listener `name`.
    pub fn listener_addr(&self, name: &str) -> Result<SocketAddr> {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| *addr)
            .ok_or_else(|| RigError::NoListener(name.to_owned()))
    }

    /// `http://127.0.0.1:<port>` of listener `name`.
    pub fn listener_url(&self, name: &str) -> Result<String> {
        Ok(format!("http://{}", self.listener_addr(name)?))
    }

    /// `http://127.0.0.1:<port>` of the first listener.
    pub fn url(&self) -> Result<String> {
        self.listeners
            .first()
            .map(|(_, addr)| format!("http://{addr}"))
            .ok_or_else(|| RigError::NoListener("(any)".to_owned()))
    }

    /// Where Envoy's stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything Envoy has logged so far (empty if the log cannot be read).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The temporary directory holding the bootstrap and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// GETs an admin path (e.g. `/clusters`) and returns the body; non-200 is an error.
    pub fn admin_get(&self, path: &str) -> Result<String> {
        self.admin_request("GET", path)
    }

    /// POSTs to an admin path (e.g. `/reset_counters`).
    pub fn admin_post(&self, path: &str) -> Result<String> {
        self.admin_request("POST", path)
    }

    fn admin_request(&self, method: &str, path: &str) -> Result<String> {
        let response = Request::new(method, format!("{}{path}", self.admin_url())).send()?;
        if response.status == 200 {
            Ok(response.text())
        } else {
            Err(RigError::admin(
                path,
                format!("status {}: {}", response.status, response.text()),
            ))
        }
    }

    /// Counters and gauges by full name, from admin `/stats?format=json`.
    ///
    /// Plugin metrics appear as `wasmcustom.<name>`. Histograms and text
    /// readouts are left out: tests compare counts, not latencies.
    pub fn stats(&self) -> Result<BTreeMap<String, u64>> {
        let endpoint = "/stats?format=json";
        let body = self.admin_get(endpoint)?;
        parse_stats(&body).map_err(|reason| RigError::admin(endpoint, reason))
    }

    /// One counter or gauge, `None` if Envoy has no stat of that name (yet).
    pub fn stat(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.stats()?.get(name).copied())
    }

    /// Polls stat `name` until it reaches at least `min`, for at most `timeout`;
    /// returns the value seen. For stats Envoy updates after the response has
    /// already reached the client.
    pub fn wait_for_stat(&self, name: &str, min: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.stat(name)?.unwrap_or(0);
            if value >= min {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(RigError::admin(
                    "/stats",
                    format!("{name} is {value}, still below {min} after {timeout:?}"),
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    fn exited(&mut self) -> Result<Option<String>> {
        match self.child.try_wait() {
            Ok(Some(status)) => Ok(Some(status.to_string())),
            Ok(None) => Ok(None),
            Err(e) => Err(RigError::io("checking on Envoy", e)),
        }
    }

    /// Polls until the admin address is published and `/ready` says `LIVE`.
    fn wait_ready(&mut self, admin_path: &Path, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut admin_known = false;
        loop {
            if let Some(status) = self.exited()? {
                return Err(RigError::EnvoyExited {
                    status,
                    log_tail: self.log_tail(LOG_TAIL_LINES),
                });
            }
            if !admin_known {
                // Envoy writes the file once the admin listener is bound; an
                // empty or partial file just means "not yet".
                if let Some(addr) = std::fs::read_to_string(admin_path)
                    .ok()
                    .and_then(|text| text.trim().parse::<SocketAddr>().ok())
                {
                    self.admin = addr;
                    admin_known = true;
                }
            }
            if admin_known {
                let ready = Request::get(format!("{}/ready", self.admin_url()))
                    .timeout(POLL_INTERVAL * 50)
                    .send();
                if let Ok(response) = ready
                    && response.status == 200
                    && response.text().trim() == "LIVE"
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(RigError::NotReady {
                    timeout,
                    log_tail: self.log_tail(LOG_TAIL_LINES),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Reads the bound listener addresses from admin `/listeners?format=json`.
    fn read_listeners(&self, bootstrap: &Bootstrap) -> Result<Vec<(String, SocketAddr)>> {
        let endpoint = "/listeners?format=json";
        let body = self.admin_get(endpoint)?;
        let bound = parse_listeners(&body).map_err(|reason| RigError::admin(endpoint, reason))?;
        bootstrap
            .listener_names()
            .map(|name| {
                bound
                    .get(name)
                    .map(|addr| (name.to_owned(), *addr))
                    .ok_or_else(|| {
                        RigError::admin(endpoint, format!("listener {name:?} is not up"))
                    })
            })
            .collect()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        // SIGKILL: a test has no use for Envoy's graceful drain, and it is
        // the one signal that cannot leave a process hanging around.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- Envoy log tail ({}) ----\n{}\n---- end of Envoy log ----",
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }
}

fn write_bootstrap(dir: &Path, bootstrap: &Bootstrap) -> Result<PathBuf> {
    // The `.json` extension is what makes Envoy parse `-c` as JSON.
    let path = dir.join("bootstrap.json");
    let text =
        serde_json::to_string_pretty(&bootstrap.to_json()).map_err(|source| RigError::Json {
            context: "rendering the bootstrap".into(),
            source,
        })?;
    std::fs::write(&path, text)
        .map_err(|e| RigError::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

/// Prepares the forked child before exec: asks the kernel to SIGKILL Envoy
/// when the thread that started it dies, so a test process killed mid-run
/// (timeout, Ctrl-C, abort) leaves no Envoy behind, and applies the CPU
/// affinity, if any, so every Envoy thread inherits it.
///
/// The signal follows the *thread* that forked, so an Envoy must not outlive
/// the thread that started it (a `#[test]` never does).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // `pre_exec` is unsafe; the workspace denies unsafe code elsewhere.
fn configure_child(command: &mut Command, affinity: Option<CpuSet>) {
    use std::os::unix::process::CommandExt;

    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: `prctl`, `getppid` and
    // `sched_setaffinity` are plain syscalls that neither allocate nor take
    // locks, and the CPU set was built before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then no signal
            // would ever come, so give up now.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the test process exited"));
            }
            if let Some(set) = &affinity {
                set.apply_to_current_thread()?;
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn configure_child(_command: &mut Command, _affinity: Option<CpuSet>) {}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn parse_stats(body: &str) -> std::result::Result<BTreeMap<String, u64>, String> {
    let json: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let entries = json
        .get("stats")
        .and_then(Value::as_array)
        .ok_or("no \"stats\" array")?;
    // Counters and gauges are `{"name", "value": <number>}`; histograms sit in
    // one `{"histograms": ...}` entry and text readouts have string values.
    Ok(entries
        .iter()
        .filter_map(|entry| {
            let name = entry.get("name")?.as_str()?;
            let value = entry.get("value")?.as_u64()?;
            Some((name.to_owned(), value))
        })
        .collect())
}

fn parse_listeners(body: &str) -> std::result::Result<BTreeMap<String, SocketAddr>, String> {
    let json: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let statuses = json
        .get("listener_statuses")
        .and_then(Value::as_array)
        .ok_or("no \"listener_statuses\" array")?;
    Ok(statuses
        .iter()
        .filter_map(|status| {
            let name = status.get("name")?.as_str()?;
            let socket = status.get("local_address")?.get("socket_address")?;
            let ip = socket.get("address")?.as_str()?.parse().ok()?;
            let port = u16::try_from(socket.get("port_value")?.as_u64()?).ok()?;
            Some((name.to_owned(), SocketAddr::new(ip, port)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_keep_counters_and_gauges_only() {
        let body = r#"{"stats":[
            {"name":"wasmcustom.hits","value":3},
            {"name":"server.live","value":1},
            {"name":"server.version_text","value":"1.40.0"},
            {"histograms":{"supported_quantiles":[50]}}
        ]}"#;
        let stats = parse_stats(body).unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats["wasmcustom.hits"], 3);
    }

    #[test]
    fn listeners_map_names_to_bound_ports() {
        let body = r#"{"listener_statuses":[{"name":"in","local_address":
            {"socket_address":{"address":"127.0.0.1","port_value":4321}}}]}"#;
        let listeners = parse_listeners(body).unwrap();
        assert_eq!(listeners["in"], SocketAddr::from(([127, 0, 0, 1], 4321)));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    #[test]
    fn options_put_wasm_at_debug() {
        let mut command = Command::new("envoy");
        EnvoyOptions::default()
            .component_log_level("wasm", "trace")
            .common_args(&mut command);
        let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy()).collect();
        assert!(args.contains(&"wasm:trace".into()));
        assert!(args.contains(&"--disable-hot-restart".into()));
    }
}
