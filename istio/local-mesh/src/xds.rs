//! One real Envoy fed from files, the way `kubectl apply` feeds a cluster's
//! proxies: listeners (LDS) and clusters (CDS) come from two files in the
//! state directory (`dynamic_resources` with `path_config_source`), and a
//! new configuration is a new file renamed over the old one. Envoy watches
//! for the rename and swaps its configuration in place: same process, same
//! uptime, same listening sockets.
//!
//! An update is confirmed, not assumed: after each rename we wait until
//! Envoy's `update_success` or `update_rejected` counter moves, and a
//! rejection comes back as an error with Envoy's reason. Clusters go first
//! (the union of the old and new sets), then the listeners whose routes use
//! them, then the clusters no route needs any more, so no request in between
//! meets a route to a cluster Envoy does not have.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use envoy_rig::client::Request;
use serde_json::{Value, json};

use crate::process;

const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// How long Envoy may take to start, and to take one configuration file.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(20);

/// What went wrong with Envoy.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("Envoy exited ({status}) while {doing}; its log ends with:\n{log}")]
    Exited {
        status: String,
        doing: String,
        log: String,
    },
    #[error("Envoy rejected the new {what}: {reason}")]
    Rejected { what: String, reason: String },
    #[error("Envoy did not {doing} within {timeout:?}; its log ends with:\n{log}")]
    Timeout {
        doing: String,
        timeout: Duration,
        log: String,
    },
    #[error("Envoy's admin interface: {0}")]
    Admin(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EnvoyError {
    let context = context.into();
    move |source| EnvoyError::Io { context, source }
}

/// The running Envoy of the mesh.
#[derive(Debug)]
pub struct MeshEnvoy {
    binary: PathBuf,
    concurrency: u32,
    dir: PathBuf,
    child: Child,
    admin: SocketAddr,
    started: Instant,
    /// Bumped on every file written; the files' `version_info`.
    version: u64,
    /// Clusters Envoy has now, by name.
    clusters: BTreeMap<String, Value>,
    /// Envoy restarts after it died on its own.
    pub restarts: u32,
}

impl MeshEnvoy {
    /// Starts Envoy on empty configuration files in `dir` and waits until it is live.
    pub fn start(binary: &Path, concurrency: u32, dir: &Path) -> Result<Self, EnvoyError> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut version = 0;
        for (path, type_url) in [
            (dir.join("cds.json"), CLUSTER_TYPE),
            (dir.join("lds.json"), LISTENER_TYPE),
        ] {
            version += 1;
            write_resources(&path, type_url, version, Vec::new())?;
        }
        let (child, admin) = launch(binary, concurrency, dir)?;
        Ok(Self {
            binary: binary.to_path_buf(),
            concurrency,
            dir: dir.to_path_buf(),
            child,
            admin,
            started: Instant::now(),
            version,
            clusters: BTreeMap::new(),
            restarts: 0,
        })
    }

    fn lds_path(&self) -> PathBuf {
        self.dir.join("lds.json")
    }

    fn cds_path(&self) -> PathBuf {
        self.dir.join("cds.json")
    }

    /// Where Envoy logs.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("envoy.log")
    }

    fn check_alive(&mut self, doing: &str) -> Result<(), EnvoyError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(EnvoyError::Exited {
                status: status.to_string(),
                doing: doing.to_string(),
                log: self.log_tail(30),
            }),
            _ => Ok(()),
        }
    }

    /// If Envoy died on its own, starts it again on the current files.
    /// Returns the exit status it died with.
    pub fn revive(&mut self) -> Result<Option<String>, EnvoyError> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.restarts += 1;
                let (child, admin) = launch(&self.binary, self.concurrency, &self.dir)?;
                self.child = child;
                self.admin = admin;
                self.started = Instant::now();
                Ok(Some(status.to_string()))
            }
            _ => Ok(None),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// Envoy's own uptime in seconds (`/server_info`'s
    /// `uptime_current_epoch`, which the admin computes when asked), `None`
    /// if the admin does not answer.
    pub fn server_uptime(&self) -> Option<u64> {
        let body = admin_get(self.admin, "/server_info").ok()?;
        let info: Value = serde_json::from_str(&body).ok()?;
        info["uptime_current_epoch"]
            .as_str()?
            .strip_suffix('s')?
            .parse()
            .ok()
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn log_tail(&self, lines: usize) -> String {
        process::log_tail(&self.log_path(), lines)
    }

    /// The address a listener is bound to (its port may have been 0).
    pub fn listener_addr(&self, name: &str) -> Result<SocketAddr, EnvoyError> {
        let body = admin_get(self.admin, "/listeners?format=json")?;
        let listeners: Value = serde_json::from_str(&body)
            .map_err(|e| EnvoyError::Admin(format!("/listeners: {e}")))?;
        listeners["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == name)
            .and_then(|l| {
                let address = &l["local_address"]["socket_address"];
                let ip = address["address"].as_str()?;
                let port = address["port_value"].as_u64()?;
                format!("{ip}:{port}").parse().ok()
            })
            .ok_or_else(|| EnvoyError::Admin(format!("listener {name:?} is not up")))
    }

    /// One counter or gauge by its full name; `None` if Envoy has no such stat.
    pub fn stat(&self, name: &str) -> Result<Option<u64>, EnvoyError> {
        let filter = format!("^{}$", regex::escape(name));
        let encoded: String = filter
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        Ok(self.stats(&encoded)?.get(name).copied())
    }

    /// Counters and gauges whose names contain `filter`, from the text format.
    fn stats(&self, filter: &str) -> Result<BTreeMap<String, u64>, EnvoyError> {
        let body = admin_get(self.admin, &format!("/stats?filter={filter}"))?;
        Ok(body
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect())
    }

    /// Writes one file and waits until Envoy has taken or refused it.
    fn update(&mut self, what: &str, resources: Vec<Value>) -> Result<(), EnvoyError> {
        let (path, type_url, prefix) = match what {
            "listeners" => (self.lds_path(), LISTENER_TYPE, "listener_manager.lds"),
            _ => (self.cds_path(), CLUSTER_TYPE, "cluster_manager.cds"),
        };
        let counters = |stats: &BTreeMap<String, u64>| {
            (
                stats
                    .get(&format!("{prefix}.update_success"))
                    .copied()
                    .unwrap_or(0),
                stats
                    .get(&format!("{prefix}.update_rejected"))
                    .copied()
                    .unwrap_or(0),
            )
        };
        let (success_before, rejected_before) = counters(&self.stats("manager")?);
        let log_before = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
        self.version += 1;
        write_resources(&path, type_url, self.version, resources)?;
        let deadline = Instant::now() + UPDATE_TIMEOUT;
        loop {
            self.check_alive(&format!("taking new {what}"))?;
            let stats = self.stats("manager")?;
            let (success, rejected) = counters(&stats);
            if rejected > rejected_before {
                return Err(EnvoyError::Rejected {
                    what: what.to_string(),
                    reason: self.rejection_since(log_before),
                });
            }
            if success > success_before
                && stats
                    .get("listener_manager.total_listeners_warming")
                    .copied()
                    .unwrap_or(0)
                    == 0
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(EnvoyError::Timeout {
                    doing: format!("take the new {what} ({})", path.display()),
                    timeout: UPDATE_TIMEOUT,
                    log: self.log_tail(20),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Envoy's reason for the last rejection, from its log.
    fn rejection_since(&self, offset: u64) -> String {
        let log = std::fs::read(self.log_path()).unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(0).min(log.len());
        let text = String::from_utf8_lossy(&log[start..]);
        text.lines()
            .filter(|l| l.contains("rejected") || l.contains("error"))
            .map(|l| l.split("] ").last().unwrap_or(l).to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Replaces Envoy's clusters and listeners, in the order that keeps every
    /// route's cluster present, and waits until Envoy has taken them.
    pub fn push(&mut self, clusters: Vec<Value>, listeners: Vec<Value>) -> Result<(), EnvoyError> {
        let new: BTreeMap<String, Value> = clusters
            .into_iter()
            .map(|c| (c["name"].as_str().unwrap_or_default().to_string(), c))
            .collect();
        let mut union = self.clusters.clone();
        union.extend(new.clone());
        if union != self.clusters {
            self.update("clusters", union.values().cloned().collect())?;
        }
        self.clusters = union;
        self.update("listeners", listeners)?;
        if self.clusters != new {
            self.update("clusters", new.values().cloned().collect())?;
            self.clusters = new;
        }
        Ok(())
    }

    /// Stops Envoy (`SIGTERM`, then `SIGKILL` after a grace period).
    pub fn stop(&mut self) {
        process::stop_all(&mut [&mut self.child], Duration::from_secs(5));
    }
}

impl Drop for MeshEnvoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn admin_get(admin: SocketAddr, path: &str) -> Result<String, EnvoyError> {
    let response = Request::get(format!("http://{admin}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .map_err(|e| EnvoyError::Admin(format!("GET {path}: {e}")))?;
    if response.status == 200 {
        Ok(response.text())
    } else {
        Err(EnvoyError::Admin(format!(
            "GET {path}: status {}",
            response.status
        )))
    }
}

/// Writes a discovery response atomically: a temporary file in the same
/// directory renamed over `path`, which is the move Envoy watches for.
fn write_resources(
    path: &Path,
    type_url: &str,
    version: u64,
    resources: Vec<Value>,
) -> Result<(), EnvoyError> {
    let resources: Vec<Value> = resources
        .into_iter()
        .map(|mut r| {
            r["@type"] = json!(type_url);
            r
        })
        .collect();
    let body = json!({"version_info": version.to_string(), "resources": resources});
    let text = serde_json::to_vec_pretty(&body).map_err(|e| EnvoyError::Io {
        context: format!("rendering {}", path.display()),
        source: e.into(),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming {} into place", tmp.display())))
}

/// Starts Envoy on the files in `dir` and waits until `/ready` says `LIVE`.
fn launch(binary: &Path, concurrency: u32, dir: &Path) -> Result<(Child, SocketAddr), EnvoyError> {
    let bootstrap = json!({
        "node": {"id": "local-mesh", "cluster": "local-mesh"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "lds_config": {"path_config_source": {"path": dir.join("lds.json")}, "resource_api_version": "V3"},
            "cds_config": {"path_config_source": {"path": dir.join("cds.json")}, "resource_api_version": "V3"},
        },
    });
    let bootstrap_path = dir.join("bootstrap.json");
    std::fs::write(&bootstrap_path, bootstrap.to_string())
        .map_err(io(format!("writing {}", bootstrap_path.display())))?;
    let admin_path = dir.join("admin-address");
    let _ = std::fs::remove_file(&admin_path);
    let log = dir.join("envoy.log");
    let mut command = Command::new(binary);
    command
        .arg("-c")
        .arg(&bootstrap_path)
        .arg("--admin-address-path")
        .arg(&admin_path)
        .arg("--disable-hot-restart")
        .arg("--concurrency")
        .arg(concurrency.to_string())
        .arg("-l")
        .arg("info")
        // A replaced listener closes its old connections at once, so a
        // service's pooled connection picks up a new route on its next
        // request instead of after Envoy's default 10 minutes of draining.
        .arg("--drain-time-s")
        .arg("1")
        .arg("--drain-strategy")
        .arg("immediate");
    let mut child =
        process::spawn(command, &log).map_err(io(format!("starting {}", binary.display())))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(EnvoyError::Exited {
                status: status.to_string(),
                doing: "starting".into(),
                log: process::log_tail(&log, 30),
            });
        }
        if let Ok(text) = std::fs::read_to_string(&admin_path)
            && let Ok(admin) = text.trim().parse::<SocketAddr>()
            && admin_get(admin, "/ready").is_ok_and(|body| body.trim() == "LIVE")
        {
            return Ok((child, admin));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(EnvoyError::Timeout {
                doing: "become ready".into(),
                timeout: READY_TIMEOUT,
                log: process::log_tail(&log, 30),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Splits a bootstrap (`static_resources`) into its clusters and listeners.
pub fn split_bootstrap(bootstrap: &Value) -> (Vec<Value>, Vec<Value>) {
    let list = |key: &str| {
        bootstrap["static_resources"][key]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    (list("clusters"), list("listeners"))
}
