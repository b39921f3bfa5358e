//! `local-mesh apply` against the real daemon with many pods at once: every
//! pod and every sidecar listener gets a port of its own (20 Deployments in
//! one file used to hand one port out twice: "Address already in use"),
//! each Service answers through Envoy, and a VirtualService that can do
//! nothing is reported to the client. The pods are a small Python HTTP
//! server (the daemon runs any program named by the image), so this needs
//! neither the airport services nor the models.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use envoy_rig::client::Request;
use serde_json::Value;

const MESH: &str = env!("CARGO_BIN_EXE_local-mesh");

/// Deployments (and Services) in the one file.
const PODS: usize = 20;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Mesh {
    state: tempfile::TempDir,
    daemon: Child,
}

impl Mesh {
    /// `local-mesh up` with a bin directory holding one program,
    /// `echo-pod`: an HTTP server on `LISTEN_ADDR`.
    fn up() -> Self {
        let state = tempfile::Builder::new()
            .prefix("local-mesh-apply-")
            .tempdir()
            .unwrap();
        let bin = state.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let program = bin.join("echo-pod");
        std::fs::write(
            &program,
            "#!/bin/sh\nexec python3 -m http.server --bind 127.0.0.1 \"${LISTEN_ADDR##*:}\"\n",
        )
        .unwrap();
        let mut permissions = std::fs::metadata(&program).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&program, permissions).unwrap();
        let wasm = state.path().join("wasm");
        std::fs::create_dir_all(&wasm).unwrap();
        let log = std::fs::File::create(state.path().join("up.log")).unwrap();
        let daemon = Command::new(MESH)
            .arg("--state-dir")
            .arg(state.path())
            .args([
                "up",
                "--gateway-port",
                &free_port().to_string(),
                "--bin-dir",
            ])
            .arg(&bin)
            .arg("--wasm-dir")
            .arg(&wasm)
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut mesh = Self { state, daemon };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !mesh.state.path().join("state.json").exists() {
            if let Some(status) = mesh.daemon.try_wait().unwrap() {
                panic!("local-mesh up exited ({status}):\n{}", mesh.log());
            }
            assert!(Instant::now() < deadline, "not up in 60 s:\n{}", mesh.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        mesh
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("up.log")).unwrap_or_default()
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(MESH)
            .arg("--state-dir")
            .arg(self.state.path())
            .args(args)
            .current_dir(repo())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "local-mesh {args:?} failed:\n{stdout}{}\n---- daemon ----\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        stdout
    }

    fn apply(&self, name: &str, yaml: &str) -> String {
        let path = self.state.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        self.run(&["apply", "-f", path.to_str().unwrap()])
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.run(&["status", "--json"])).unwrap()
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if self.daemon.try_wait().ok().flatten().is_none() {
            let _ = Command::new(MESH)
                .arg("--state-dir")
                .arg(self.state.path())
                .arg("down")
                .output();
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.daemon.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- local-mesh daemon log ----\n{}", self.log());
        }
    }
}

/// `PODS` Deployments and their Services in namespace `load`, one file.
fn many_deployments() -> String {
    (0..PODS)
        .map(|i| deployment(i, "load"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Deployment and Service `pod-<i>` in `namespace`.
fn deployment(i: usize, namespace: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: pod-{i}, namespace: {namespace}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: pod-{i}}}
  template:
    metadata:
      labels: {{app: pod-{i}, version: v1}}
    spec:
      containers:
      - name: echo
        image: example.test/echo-pod:1
        ports: [{{name: http, containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: pod-{i}, namespace: {namespace}}}
spec:
  selector: {{app: pod-{i}}}
  ports: [{{name: http, port: 8080, targetPort: http}}]
"
    )
}

/// Every port the daemon handed out: pods, their inbound listeners, and the
/// Services' listeners.
fn ports(status: &Value) -> Vec<u64> {
    let mut ports = Vec::new();
    for pod in status["pods"].as_array().unwrap() {
        ports.push(pod["port"].as_u64().unwrap());
        ports.push(pod["inbound_port"].as_u64().unwrap());
    }
    for service in status["services"].as_array().unwrap() {
        let url = service["mesh_url"].as_str().unwrap();
        ports.push(url.rsplit(':').next().unwrap().parse().unwrap());
    }
    ports
}

#[test]
fn twenty_deployments_in_one_file_each_get_their_own_ports_and_answer_through_envoy() {
    let mesh = Mesh::up();
    let output = mesh.apply("many.yaml", &many_deployments());
    assert!(!output.contains("already in use"), "{output}");
    let status = mesh.status();
    let pods = status["pods"].as_array().unwrap();
    assert_eq!(pods.len(), PODS, "{status:#}");
    assert!(pods.iter().all(|p| p["ready"] == true), "{status:#}");
    let handed_out = ports(&status);
    assert_eq!(handed_out.len(), 3 * PODS);
    assert_eq!(
        handed_out.iter().collect::<BTreeSet<_>>().len(),
        handed_out.len(),
        "a port handed out twice: {handed_out:?}"
    );
    // Each Service, through its Envoy listener and its pod's sidecar.
    for service in status["services"].as_array().unwrap() {
        let url = service["mesh_url"].as_str().unwrap();
        let response = Request::get(format!("{url}/"))
            .timeout(Duration::from_secs(10))
            .send()
            .unwrap();
        assert_eq!(
            response.status,
            200,
            "{}: {}",
            service["name"],
            response.text()
        );
    }
    // Re-applying the same file changes nothing and keeps every port.
    let again = mesh.apply("many.yaml", &many_deployments());
    assert!(!again.contains("created"), "{again}");
    assert_eq!(ports(&mesh.status()), handed_out);

    // The same Deployment and Service in another namespace run beside them.
    mesh.apply("other.yaml", &deployment(0, "other"));
    let status = mesh.status();
    let pods = status["pods"].as_array().unwrap();
    assert_eq!(pods.len(), PODS + 1, "{status:#}");
    assert!(pods.iter().all(|p| p["ready"] == true), "{status:#}");
    let twins: Vec<&Value> = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "pod-0")
        .collect();
    assert_eq!(twins.len(), 2, "{status:#}");
    assert_ne!(twins[0]["mesh_url"], twins[1]["mesh_url"]);
    for service in twins {
        let url = service["mesh_url"].as_str().unwrap();
        let response = Request::get(format!("{url}/")).send().unwrap();
        assert_eq!(response.status, 200, "{}", service["namespace"]);
    }
}

#[test]
fn a_virtual_service_for_a_host_that_is_no_service_is_taken_with_a_warning() {
    let mesh = Mesh::up();
    let output = mesh.apply(
        "egress.yaml",
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin-ext, namespace: load}
spec:
  hosts: [httpbin.org]
  http:
  - timeout: 3s
    route:
    - destination: {host: httpbin.org}
",
    );
    assert!(
        output.contains("virtualservice.networking.istio.io/httpbin-ext created"),
        "{output}"
    );
    assert!(
        output.contains(
            "warning: VirtualService/httpbin-ext: spec.hosts[0] httpbin.org is no Service of the mesh"
        ),
        "{output}"
    );
}
