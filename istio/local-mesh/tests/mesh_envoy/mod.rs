//! The translator's output in the pinned Envoy, started the way the daemon
//! starts it ([`local_mesh::xds::MeshEnvoy`]: listeners and clusters from
//! files), so a test sees exactly what `local-mesh up` would serve.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use local_mesh::Translation;
use local_mesh::xds::{EnvoyError, MeshEnvoy};

/// A running Envoy with the translation's listeners and clusters; stopped
/// (and its temporary directory removed) when dropped.
pub struct RunningEnvoy {
    envoy: MeshEnvoy,
    dir: tempfile::TempDir,
}

impl RunningEnvoy {
    /// Starts Envoy (one worker, as the rig's tests run it) and gives it the
    /// translation; Envoy's refusal of the configuration is the error.
    pub fn try_start(translation: &Translation) -> Result<Self, EnvoyError> {
        let dir = tempfile::Builder::new()
            .prefix("local-mesh-envoy-")
            .tempdir()
            .unwrap();
        let binary = envoy_rig::envoy_binary().unwrap();
        let mut envoy = MeshEnvoy::start(&binary, 1, dir.path())?;
        let (clusters, listeners) = translation.resources();
        envoy.push(clusters, listeners)?;
        Ok(Self { envoy, dir })
    }

    pub fn start(translation: &Translation) -> Self {
        Self::try_start(translation).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `http://127.0.0.1:port` of a listener.
    pub fn listener_url(&self, name: &str) -> String {
        format!("http://{}", self.envoy.listener_addr(name).unwrap())
    }

    /// A counter or gauge, 0 if Envoy has none of that name yet.
    pub fn stat(&self, name: &str) -> u64 {
        self.envoy.stat(name).unwrap().unwrap_or(0)
    }

    /// Waits until stat `name` reaches `min` (polling Envoy's admin), at
    /// most `timeout`.
    pub fn wait_for_stat(&self, name: &str, min: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.stat(name);
            if value >= min {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {value} after {timeout:?}, expected {min}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.envoy.log_tail(lines)
    }

    /// Envoy's admin `/config_dump`, parsed.
    pub fn config_dump(&self) -> serde_json::Value {
        let response =
            envoy_rig::client::Request::get(format!("{}/config_dump", self.envoy.admin_url()))
                .send()
                .unwrap();
        response.json().unwrap()
    }
}

impl Drop for RunningEnvoy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- Envoy log tail ({}) ----\n{}\n---- end of Envoy log ----",
                self.dir.path().display(),
                self.envoy.log_tail(40)
            );
        }
    }
}
