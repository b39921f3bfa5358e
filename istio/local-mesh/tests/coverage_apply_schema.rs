//! `local-mesh apply` checks every document against the schemas of
//! `istio/check` (Istio's and Kubernetes' own, installed by `make crds`)
//! before anything else: a typo in a field name is refused with the
//! schema's error and path, and the mesh keeps serving what it served. The
//! check alone (`local_mesh::schemas`), then through the daemon with real
//! requests through its Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use envoy_rig::client::Request;
use local_mesh::schemas::SchemaCheck;
use serde_json::Value;

const MESH: &str = env!("CARGO_BIN_EXE_local-mesh");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const TYPO: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: web}
spec:
  hosts: [echo]
  http:
  - timout: 3s
    route:
    - destination: {host: echo}
";

#[test]
fn a_misspelt_field_is_refused_with_the_schemas_path() {
    let check = SchemaCheck::load(&repo()).unwrap_or_else(|e| panic!("{e}"));
    let document = istio_manifests::parse_documents(TYPO).unwrap().remove(0);
    assert_eq!(
        check.check(&document).unwrap_err(),
        "VirtualService/echo: spec.http[0].timout: unknown field"
    );
    let fixed = istio_manifests::parse_documents(&TYPO.replace("timout", "timeout"))
        .unwrap()
        .remove(0);
    assert_eq!(check.check(&fixed), Ok(()));
}

#[test]
fn without_the_schemas_the_check_says_run_make_crds() {
    let empty = tempfile::tempdir().unwrap();
    let message = SchemaCheck::load_from(empty.path())
        .unwrap_err()
        .to_string();
    assert!(message.contains("run `make crds`"), "{message}");
    assert!(
        !message.contains(&*empty.path().to_string_lossy()),
        "{message}"
    );
}

/// `local-mesh up` with one program, `echo-pod` (an HTTP server on
/// `LISTEN_ADDR`), in a state directory of its own.
struct Daemon {
    state: tempfile::TempDir,
    child: Child,
}

impl Daemon {
    fn up() -> Self {
        let state = tempfile::Builder::new()
            .prefix("local-mesh-schema-")
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(state.path().join("up.log")).unwrap();
        let child = Command::new(MESH)
            .arg("--state-dir")
            .arg(state.path())
            .args(["up", "--gateway-port", &port.to_string(), "--bin-dir"])
            .arg(&bin)
            .arg("--wasm-dir")
            .arg(&wasm)
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = Self { state, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !daemon.state.path().join("state.json").exists() {
            assert!(
                Instant::now() < deadline,
                "not up in 60 s:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("up.log")).unwrap_or_default()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(MESH)
            .arg("--state-dir")
            .arg(self.state.path())
            .args(args)
            .current_dir(repo())
            .output()
            .unwrap()
    }

    fn apply(&self, name: &str, yaml: &str) -> Output {
        let path = self.state.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        self.run(&["apply", "-f", path.to_str().unwrap()])
    }

    fn service_url(&self, name: &str) -> String {
        let output = self.run(&["status", "--json"]);
        let status: Value = serde_json::from_slice(&output.stdout).unwrap();
        status["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no service {name}: {status:#}"))["mesh_url"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- local-mesh daemon log ----\n{}", self.log());
        }
    }
}

const ECHO: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo, version: v1}
    spec:
      containers:
      - name: echo
        image: example.test/echo-pod:1
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: web}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, targetPort: http}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: web}
spec:
  hosts: [echo]
  http:
  - headers:
      response:
        set: {x-version: first}
    route:
    - destination: {host: echo}
";

#[test]
fn apply_refuses_an_invalid_document_and_the_mesh_keeps_serving() {
    let daemon = Daemon::up();
    let output = daemon.apply("echo.yaml", ECHO);
    assert!(output.status.success(), "{output:?}\n{}", daemon.log());
    let url = format!("{}/", daemon.service_url("echo"));
    let response = Request::get(&url).send().unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("x-version"), Some("first"));

    // The same VirtualService, changed, with a misspelt field.
    let broken = ECHO
        .replace("x-version: first", "x-version: second")
        .replace("  - headers:", "  - timout: 3s\n    headers:");
    let output = daemon.apply("echo.yaml", &broken);
    assert!(!output.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains("VirtualService/echo: spec.http[0].timout: unknown field"),
        "{said}"
    );
    // Nothing of the refused file was applied.
    let response = Request::get(&url).send().unwrap();
    assert_eq!(response.header("x-version"), Some("first"));
}
