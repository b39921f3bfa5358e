//! `local-mesh up`: the daemon that plays the cluster.
//!
//! It holds what `kubectl apply` would store (the resources, keyed by kind,
//! namespace and name), runs a process per pod of each Deployment, and keeps
//! one Envoy configured from the Istio resources. Clients (`apply`, `scale`,
//! `reset`, `status`, `down`) talk to it over a Unix socket in the state
//! directory: one JSON request line, then JSON lines of progress and a final
//! `done` or `error`.
//!
//! Everything that changes state happens on the main thread, one request at a
//! time: it also starts every child process, which `PR_SET_PDEATHSIG` ties to
//! the thread that forked it. Between requests the main thread supervises:
//! a pod that exits is restarted with a growing back-off (as a kubelet
//! does), leaves Envoy's endpoints until it is ready again, and an Envoy that
//! dies is started again on the same files.
//!
//! A pod is a process of the image's program (the binary of that name in the
//! build directory) on a free loopback port (`LISTEN_ADDR`, which every
//! airport service reads), with the container's environment in which each
//! Kubernetes Service URL (`http://collector:8080`,
//! `http://collector.airport.svc.cluster.local:8080`) points at that
//! Service's Envoy listener instead, and each container path at a local one:
//! volumes under the state directory, and what the image would carry
//! (models, frames) in the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use local_mesh::schemas::SchemaCheck;
use local_mesh::{GATEWAY, Workload, inbound_sidecar, translate};
use regex::Regex;
use serde_json::{Value, json};

use crate::kube::{self, Deployment, Document, Key, Service, Volume};
use crate::plugins::{self, Topology};
use crate::process;
use crate::xds::MeshEnvoy;

/// How long a new pod may take to pass its readiness probe (the vision
/// services load their models first).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a stopped pod may take to finish its in-flight requests.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The supervisor's tick: exits, restarts and readiness are checked this often.
const TICK: Duration = Duration::from_millis(250);

/// The kinds `apply` takes.
const KINDS: &[&str] = &[
    "Namespace",
    "Deployment",
    "Service",
    "ConfigMap",
    "Gateway",
    "VirtualService",
    "DestinationRule",
    "ServiceEntry",
    "WasmPlugin",
];

/// How `up` was asked to run.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub repo: PathBuf,
    pub state_dir: PathBuf,
    pub gateway_port: u16,
    pub bin_dir: PathBuf,
    pub wasm_dir: PathBuf,
    pub envoy: PathBuf,
    pub vision_stub: bool,
    pub concurrency: u32,
}

/// Files of the state directory.
pub fn lock_path(state: &Path) -> PathBuf {
    state.join("lock")
}
pub fn state_path(state: &Path) -> PathBuf {
    state.join("state.json")
}
pub fn socket_path(state: &Path) -> PathBuf {
    state.join("control.sock")
}

/// A free loopback port (bound and released: a tiny race, fine on loopback).
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}

/// The loopback ports the daemon has handed out (Service listeners, pods
/// and their sidecars' inbound listeners, the gateway): a port is free to the
/// kernel from the moment [`free_port`] releases it until its process or
/// Envoy binds it, so the kernel may offer it again in between (20 pods
/// started by one `apply` made it happen). A port handed out is never
/// handed out again until its pod is gone.
#[derive(Debug, Default)]
struct Ports {
    taken: BTreeSet<u16>,
}

impl Ports {
    fn allocate(&mut self) -> Result<u16, String> {
        self.allocate_from(free_port)
    }

    /// A port of `offered` (the kernel's free ports) not handed out yet.
    fn allocate_from(
        &mut self,
        mut offered: impl FnMut() -> Result<u16, String>,
    ) -> Result<u16, String> {
        // The kernel picks among tens of thousands of ports; a handful of
        // tries always finds one not handed out.
        for _ in 0..64 {
            let port = offered()?;
            if self.taken.insert(port) {
                return Ok(port);
            }
        }
        Err(format!(
            "no free loopback port the local mesh has not handed out already ({} taken)",
            self.taken.len()
        ))
    }

    fn release(&mut self, port: u16) {
        self.taken.remove(&port);
    }
}

/// Whether `GET path` on a loopback port answers 2xx within `timeout`.
pub fn http_ok(port: u16, path: &str, timeout: Duration) -> bool {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 2")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where the output of a request goes: the client, and the daemon's own
/// stdout (the terminal of a foreground `up`, or `daemon.log`).
struct Reply {
    stream: Option<UnixStream>,
}

impl Reply {
    fn send(&mut self, message: &Value) {
        if let Some(stream) = &mut self.stream {
            let mut line = message.to_string();
            line.push('\n');
            if stream.write_all(line.as_bytes()).is_err() {
                // The client went away (Ctrl-C on `make apply`): carry on.
                self.stream = None;
            }
        }
    }

    fn line(&mut self, text: impl Into<String>) {
        let text = text.into();
        println!("{text}");
        self.send(&json!({"out": text}));
    }

    fn error(&mut self, text: &str) {
        println!("error: {text}");
        self.send(&json!({"error": text}));
    }

    fn data(&mut self, value: Value) {
        self.send(&json!({"data": value}));
    }

    fn done(&mut self) {
        self.send(&json!({"done": true}));
    }
}

/// A running (or restarting) process of a Deployment.
#[derive(Debug)]
struct Pod {
    name: String,
    deployment: String,
    namespace: String,
    labels: BTreeMap<String, String>,
    /// What the pod runs; pods with another fingerprint are outdated.
    fingerprint: String,
    launch: Launch,
    port: u16,
    /// Its sidecar's inbound listener, in front of `port`.
    inbound_port: u16,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    started: Instant,
    created: Instant,
    ready: bool,
    restarts: u32,
    restart_at: Option<Instant>,
}

/// Envoy's clusters and listeners, a line per plugin, and the translator's
/// warnings.
type Rendered = (Vec<Value>, Vec<Value>, Vec<String>, Vec<String>);

/// A ready pod, as routing sees it.
#[derive(Debug, Clone)]
struct Live {
    name: String,
    namespace: String,
    labels: BTreeMap<String, String>,
    port: u16,
    inbound_port: u16,
}

/// How to start a pod of a Deployment, before the per-pod paths.
#[derive(Debug, Clone)]
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    /// The container's env with Service URLs already pointed at the mesh.
    env: Vec<(String, String)>,
    readiness: Option<String>,
    /// Container path → local path, longest first: volumes are resolved per
    /// pod, so this holds the volume name (`volume:<name>`) for them.
    paths: Vec<(String, String)>,
    /// Volume name → its files (ConfigMap keys, URLs pointed at the mesh);
    /// `None` for an emptyDir.
    volumes: BTreeMap<String, Option<BTreeMap<String, String>>>,
    /// Services this pod's environment calls.
    calls: BTreeSet<String>,
}

/// What the parsed resources say.
struct Model {
    services: Vec<Service>,
    deployments: Vec<Deployment>,
    config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
}

impl Model {
    fn read(store: &[Document]) -> Result<Self, String> {
        let mut config_maps = BTreeMap::new();
        for doc in store.iter().filter(|d| d.value["kind"] == "ConfigMap") {
            let key = kube::key_of(&doc.value);
            let data = kube::config_map(&doc.value).map_err(|e| format!("{}: {e}", doc.source))?;
            config_maps.insert((key.1, key.2), data);
        }
        let mut services = Vec::new();
        let mut deployments = Vec::new();
        for doc in store {
            let result = match doc.value["kind"].as_str() {
                Some("Service") => kube::service(&doc.value).map(|s| services.push(s)),
                Some("Deployment") => {
                    kube::deployment(&doc.value, &config_maps).map(|d| deployments.push(d))
                }
                _ => Ok(()),
            };
            result.map_err(|e| format!("{}: {e}", doc.source))?;
        }
        Ok(Self {
            services,
            deployments,
            config_maps,
        })
    }
}

/// The daemon's state.
struct Daemon {
    options: UpOptions,
    store: Vec<Document>,
    pods: Vec<Pod>,
    /// Each Service's Envoy listener port (by `name.namespace`), fixed for
    /// the daemon's life so the URLs handed to pods stay valid.
    service_ports: BTreeMap<String, u16>,
    /// Every port handed out, so none is handed out twice.
    ports: Ports,
    envoy: MeshEnvoy,
    /// Values of `vmConfig.env` entries with `valueFrom: HOST`, kept for the
    /// daemon's life (a canary's cookie key must not change on re-apply).
    host_env: BTreeMap<String, String>,
    pod_counter: u64,
    started: Instant,
    /// The last configuration Envoy took, to skip identical pushes.
    pushed: Option<(Vec<Value>, Vec<Value>)>,
    plugin_summary: Vec<String>,
    gateway_listening: bool,
    /// Routing must be pushed again (a pod became ready or left).
    dirty: bool,
    /// The schemas `apply` checks documents against, loaded at the first
    /// `apply` (a daemon that only runs pods never needs them).
    schemas: Option<SchemaCheck>,
}

enum Message {
    Request(UnixStream),
    Signal(i32),
}

/// Runs the daemon in this process until `down`, Ctrl-C or SIGTERM.
pub fn run(options: UpOptions) -> Result<(), String> {
    let state = options.state_dir.clone();
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(&state))
        .map_err(|e| format!("{}: {e}", lock_path(&state).display()))?;
    if lock.try_lock().is_err() {
        return Err(crate::control::already_running(&state));
    }
    // Checked before anything starts, so a busy port is one clear line.
    if let Err(e) = TcpListener::bind(("127.0.0.1", options.gateway_port)) {
        return Err(format!(
            "the gateway port 127.0.0.1:{} is busy ({e}), and not by a local mesh of {}; \
             free it or pick another with GATEWAY_PORT=... (local-mesh up --gateway-port N)",
            options.gateway_port,
            state.display()
        ));
    }
    if !options.bin_dir.is_dir() {
        return Err(format!(
            "{} does not exist: build the services first (`make demo` does)",
            options.bin_dir.display()
        ));
    }
    for dir in ["pods", "logs"] {
        let path = state.join(dir);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("local mesh: state in {}", state.display());
    println!("local mesh: starting Envoy ({})", options.envoy.display());
    let envoy = MeshEnvoy::start(&options.envoy, options.concurrency, &state.join("envoy"))
        .map_err(|e| e.to_string())?;
    println!(
        "local mesh: Envoy is up (pid {}, admin {}), configured from {}/envoy/{{lds,cds}}.json",
        envoy.pid(),
        envoy.admin_url(),
        state.display()
    );

    let socket = socket_path(&state);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let (sender, receiver) = mpsc::channel();
    let requests = sender.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if requests.send(Message::Request(stream)).is_err() {
                break;
            }
        }
    });
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("cannot handle signals: {e}"))?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if sender.send(Message::Signal(signal)).is_err() {
                break;
            }
        }
    });

    let mut daemon = Daemon {
        options: options.clone(),
        store: Vec::new(),
        pods: Vec::new(),
        service_ports: BTreeMap::new(),
        ports: Ports {
            taken: BTreeSet::from([options.gateway_port]),
        },
        envoy,
        host_env: BTreeMap::new(),
        pod_counter: 0,
        started: Instant::now(),
        pushed: None,
        plugin_summary: Vec::new(),
        gateway_listening: false,
        dirty: false,
        schemas: None,
    };
    let gateway = format!("http://127.0.0.1:{}", options.gateway_port);
    let state_file = json!({
        "pid": std::process::id(),
        "gateway": gateway,
        "envoy_pid": daemon.envoy.pid(),
        "admin": daemon.envoy.admin_url(),
        "socket": socket,
        "started": unix_now(),
    });
    let state_json = state_path(&state);
    std::fs::write(&state_json, state_file.to_string())
        .map_err(|e| format!("{}: {e}", state_json.display()))?;
    println!(
        "local mesh: ready (pid {}). Gateway {gateway} (it serves routes once a Gateway and its VirtualServices are applied).",
        std::process::id()
    );
    println!(
        "local mesh: next: make deploy-app-default deploy-istio-default (local-mesh apply -f istio/workloads -f istio/app); make down stops it"
    );
    // Flushed for `up --detach`, which waits for this line in daemon.log.
    let _ = std::io::stdout().flush();

    loop {
        match receiver.recv_timeout(TICK) {
            Ok(Message::Signal(signal)) => {
                println!("local mesh: signal {signal}: stopping");
                daemon.shutdown(&mut Reply { stream: None });
                break;
            }
            Ok(Message::Request(stream)) => {
                if daemon.serve(stream) {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => daemon.tick(),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let _ = std::io::stdout().flush();
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&state_json);
    drop(lock);
    Ok(())
}

impl Daemon {
    /// Handles one client connection; true when the daemon should exit.
    fn serve(&mut self, stream: UnixStream) -> bool {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut line = String::new();
        let read = stream
            .try_clone()
            .map(BufReader::new)
            .and_then(|mut r| r.read_line(&mut line));
        let mut reply = Reply {
            stream: Some(stream),
        };
        let request: Value = match read
            .map_err(|e| e.to_string())
            .and_then(|_| serde_json::from_str(&line).map_err(|e| format!("bad request: {e}")))
        {
            Ok(request) => request,
            Err(e) => {
                reply.error(&e);
                return false;
            }
        };
        let command = request["command"].as_str().unwrap_or_default().to_string();
        if command != "status" {
            println!("local mesh: {command}");
        }
        let result = match command.as_str() {
            "apply" => self.apply(&request["files"], &mut reply),
            "delete" => self.delete(&request["files"], &mut reply),
            "scale" => self.scale(&request, &mut reply),
            "reset" => self.reset(&request["files"], &mut reply),
            "status" => {
                let status = self.status();
                reply.data(status);
                Ok(())
            }
            "down" => {
                self.shutdown(&mut reply);
                reply.done();
                return true;
            }
            other => Err(format!("unknown command {other:?}")),
        };
        match result {
            Ok(()) => reply.done(),
            Err(e) => reply.error(&e),
        }
        false
    }

    /// Parses the files a client sent; each document must be of a kind the
    /// local mesh runs.
    fn documents(files: &Value) -> Result<Vec<Document>, String> {
        let mut docs = Vec::new();
        for file in files.as_array().into_iter().flatten() {
            let source = file["source"].as_str().unwrap_or("?");
            let text = file["text"].as_str().unwrap_or_default();
            docs.extend(kube::parse_file(source, text).map_err(|e| e.to_string())?);
        }
        for doc in &docs {
            let kind = doc.value["kind"].as_str().unwrap_or_default();
            if !KINDS.contains(&kind) {
                return Err(format!(
                    "{}: kind {kind} is not supported by the local mesh (it runs {})",
                    doc.source,
                    KINDS.join(", ")
                ));
            }
        }
        Ok(docs)
    }

    /// The documents of the files a client sent to be stored (`apply`,
    /// `reset`), each valid against its kind's schema, as the API server
    /// checks it with strict field validation, before anything else reads
    /// it.
    fn checked_documents(&mut self, files: &Value) -> Result<Vec<Document>, String> {
        let docs = Self::documents(files)?;
        let check = match self.schemas.take() {
            Some(check) => check,
            None => SchemaCheck::load(&self.options.repo).map_err(|e| e.to_string())?,
        };
        let result = docs.iter().try_for_each(|doc| {
            check
                .check(&doc.value)
                .map_err(|violations| format!("{}: {violations}", doc.source))
        });
        self.schemas = Some(check);
        result?;
        Ok(docs)
    }

    fn apply(&mut self, files: &Value, reply: &mut Reply) -> Result<(), String> {
        let docs = self.checked_documents(files)?;
        let mut store = self.store.clone();
        let mut lines = Vec::new();
        for doc in docs {
            let key = kube::key_of(&doc.value);
            let verb = match store.iter().position(|d| kube::key_of(&d.value) == key) {
                Some(index) if store[index].value == doc.value => "unchanged",
                Some(index) => {
                    store[index] = doc;
                    "configured"
                }
                None => {
                    store.push(doc);
                    "created"
                }
            };
            lines.push(format!("{} {verb}", kube::display_name(&key)));
        }
        self.commit(store, lines, reply)
    }

    fn delete(&mut self, files: &Value, reply: &mut Reply) -> Result<(), String> {
        let docs = Self::documents(files)?;
        let mut store = self.store.clone();
        let mut lines = Vec::new();
        for doc in docs {
            let key = kube::key_of(&doc.value);
            let before = store.len();
            store.retain(|d| kube::key_of(&d.value) != key);
            if store.len() < before {
                lines.push(format!("{} deleted", kube::display_name(&key)));
            } else {
                lines.push(format!("{} not found", kube::display_name(&key)));
            }
        }
        self.commit(store, lines, reply)
    }

    fn reset(&mut self, files: &Value, reply: &mut Reply) -> Result<(), String> {
        let docs = self.checked_documents(files)?;
        let keep: BTreeSet<Key> = docs.iter().map(|d| kube::key_of(&d.value)).collect();
        let mut lines: Vec<String> = self
            .store
            .iter()
            .map(|d| kube::key_of(&d.value))
            .filter(|k| !keep.contains(k))
            .map(|k| format!("{} deleted", kube::display_name(&k)))
            .collect();
        for doc in &docs {
            let key = kube::key_of(&doc.value);
            let verb = match self.store.iter().find(|d| kube::key_of(&d.value) == key) {
                Some(old) if old.value == doc.value => "unchanged",
                Some(_) => "configured",
                None => "created",
            };
            lines.push(format!("{} {verb}", kube::display_name(&key)));
        }
        self.commit(docs, lines, reply)
    }

    fn scale(&mut self, request: &Value, reply: &mut Reply) -> Result<(), String> {
        let name = request["deployment"].as_str().unwrap_or_default();
        let replicas = request["replicas"]
            .as_u64()
            .ok_or("scale needs a replica count")?;
        let mut store = self.store.clone();
        let matching: Vec<usize> = store
            .iter()
            .enumerate()
            .filter(|(_, d)| d.value["kind"] == "Deployment" && d.value["metadata"]["name"] == name)
            .map(|(i, _)| i)
            .collect();
        let [index] = matching.as_slice() else {
            return Err(format!(
                "deployment {name:?} {}",
                if matching.is_empty() {
                    "is not applied (make deploy-app-default applies istio/workloads)"
                } else {
                    "exists in several namespaces"
                }
            ));
        };
        store[*index].value["spec"]["replicas"] = json!(replicas);
        self.commit(store, vec![format!("deployment.apps/{name} scaled")], reply)
    }

    /// Validates `store`, makes it current, and brings pods and Envoy in line.
    fn commit(
        &mut self,
        store: Vec<Document>,
        lines: Vec<String>,
        reply: &mut Reply,
    ) -> Result<(), String> {
        // Everything that can be refused is refused before anything changes.
        let model = Model::read(&store)?;
        let mut launches = BTreeMap::new();
        for deployment in &model.deployments {
            launches.insert(deployment.key(), self.launch(deployment, &model)?);
        }
        let (_, _, _, warnings) = self.render(&store, &model, &launches, None)?;

        self.store = store;
        for line in lines {
            reply.line(line);
        }
        for warning in warnings {
            reply.line(format!("warning: {warning}"));
        }
        self.reconcile(&model, &launches, reply)
    }

    /// What a pod of `deployment` runs.
    fn launch(&mut self, deployment: &Deployment, model: &Model) -> Result<Launch, String> {
        let container = &deployment.container;
        let program = container.program().to_string();
        let vision = matches!(program.as_str(), "image-analysis" | "face-recognition");
        let (binary, mut args) = if vision && self.options.vision_stub {
            (
                self.options.bin_dir.join("airport-stack"),
                vec!["vision-stub".to_string()],
            )
        } else {
            (self.options.bin_dir.join(&program), Vec::new())
        };
        if !binary.is_file() {
            let hint = if vision && !self.options.vision_stub {
                " (for development only, `local-mesh up --vision-stub` runs the test double instead)"
            } else {
                ""
            };
            // The binary's name, not its path: a refusal names what to do,
            // not where this machine keeps its build.
            let name = binary
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            return Err(format!(
                "Deployment/{}: image {program}: its program {name} is not built; `make demo` builds every service{hint}",
                deployment.name
            ));
        }
        args.extend(container.args.iter().cloned());

        for service in &model.services {
            if !self.service_ports.contains_key(&service.key()) {
                let port = self.ports.allocate()?;
                self.service_ports.insert(service.key(), port);
            }
        }
        let mut calls = BTreeSet::new();
        let env: Vec<(String, String)> = container
            .env
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    point_at_mesh(
                        v,
                        &deployment.namespace,
                        &model.services,
                        &self.service_ports,
                        &mut calls,
                    ),
                )
            })
            .collect();
        let mut volumes = BTreeMap::new();
        // Volumes that are a folder of the repository (volume name → folder).
        let mut folders = BTreeMap::new();
        for (name, volume) in &deployment.volumes {
            let files = match volume {
                Volume::EmptyDir => None,
                Volume::ConfigMap { name: map, items } => {
                    let applied = model
                        .config_maps
                        .get(&(deployment.namespace.clone(), map.clone()));
                    let data = match (applied, folder_config_map(map)) {
                        (Some(data), _) => data,
                        (None, Some(folder)) => {
                            if items.is_some() {
                                return Err(format!(
                                    "Deployment/{}: volume {name}: ConfigMap {map} is the folder {folder}, mounted whole here (no items)",
                                    deployment.name
                                ));
                            }
                            folders.insert(name.clone(), self.options.repo.join(folder));
                            continue;
                        }
                        (None, None) => {
                            return Err(format!(
                                "Deployment/{}: volume {name} needs ConfigMap {map}, which is not applied",
                                deployment.name
                            ));
                        }
                    };
                    let mut files = BTreeMap::new();
                    for (key, text) in data {
                        let path = match items {
                            Some(items) => match items.iter().find(|(k, _)| k == key) {
                                Some((_, path)) => path.clone(),
                                None => continue,
                            },
                            None => key.clone(),
                        };
                        files.insert(
                            path,
                            point_at_mesh(
                                text,
                                &deployment.namespace,
                                &model.services,
                                &self.service_ports,
                                &mut calls,
                            ),
                        );
                    }
                    Some(files)
                }
            };
            volumes.insert(name.clone(), files);
        }
        let mut paths: Vec<(String, String)> = container
            .mounts
            .iter()
            .map(|(mount, volume)| match folders.get(volume) {
                Some(folder) => (mount.clone(), folder.display().to_string()),
                None => (mount.clone(), format!("volume:{volume}")),
            })
            .collect();
        for (inside, local) in image_paths(&program) {
            paths.push((
                inside.to_string(),
                self.options.repo.join(local).display().to_string(),
            ));
        }
        paths.sort_by_key(|(inside, _)| std::cmp::Reverse(inside.len()));
        Ok(Launch {
            program: binary,
            args,
            env,
            readiness: container.readiness_path.clone(),
            paths,
            volumes,
            calls,
        })
    }

    /// The Envoy configuration for `store` with the `live` pods (all of the
    /// Deployments as placeholders when `live` is `None`, to validate before
    /// anything runs).
    fn render(
        &mut self,
        store: &[Document],
        model: &Model,
        launches: &BTreeMap<String, Launch>,
        live: Option<&[Live]>,
    ) -> Result<Rendered, String> {
        let workloads: Vec<Workload> = match live {
            Some(live) => live
                .iter()
                .flat_map(|pod| {
                    model
                        .services
                        .iter()
                        .filter(|s| s.namespace == pod.namespace && s.selects(&pod.labels))
                        .map(|s| Workload {
                            service: s.name.clone(),
                            namespace: s.namespace.clone(),
                            version: pod.labels.get("version").cloned().unwrap_or_default(),
                            // Callers reach the pod through its sidecar's inbound side.
                            port: pod.inbound_port,
                        })
                })
                .collect(),
            None => model
                .deployments
                .iter()
                .flat_map(|d| {
                    model
                        .services
                        .iter()
                        .filter(|s| s.namespace == d.namespace && s.selects(&d.labels))
                        .map(|s| Workload {
                            service: s.name.clone(),
                            namespace: s.namespace.clone(),
                            version: d.labels.get("version").cloned().unwrap_or_default(),
                            port: 9,
                        })
                })
                .collect(),
        };
        let topology: Vec<(BTreeMap<String, String>, BTreeSet<String>)> = model
            .deployments
            .iter()
            .map(|d| {
                let calls = launches
                    .get(&d.key())
                    .map(|l| l.calls.clone())
                    .unwrap_or_default();
                (d.labels.clone(), calls)
            })
            .collect();
        let plugin_docs: Vec<&Value> = store
            .iter()
            .map(|d| &d.value)
            .filter(|v| v["kind"] == "WasmPlugin")
            .collect();
        let host_env = &mut self.host_env;
        let placement = plugins::place(
            &plugin_docs,
            &self.options.wasm_dir,
            &plugins::project_modules(&self.options.repo),
            &Topology {
                workloads: &topology,
            },
            &mut |key| {
                if let Some(value) = host_env.get(key) {
                    return Ok(value.clone());
                }
                let value = match std::env::var(key) {
                    Ok(value) => value,
                    Err(_) => fresh_secret()?,
                };
                host_env.insert(key.to_string(), value.clone());
                Ok(value)
            },
        )
        .map_err(|e| e.to_string())?;
        let routing: Vec<Value> = store
            .iter()
            .map(|d| d.value.clone())
            // Kubernetes Services declare the mesh's hosts (a Service with no
            // ready pod still gets its listener, and answers 503).
            .filter(|v| {
                matches!(
                    v["kind"].as_str(),
                    Some(
                        "Service"
                            | "Gateway"
                            | "VirtualService"
                            | "DestinationRule"
                            | "ServiceEntry"
                    )
                )
            })
            .collect();
        let ports: BTreeMap<String, u16> = self
            .service_ports
            .iter()
            .filter(|(key, _)| model.services.iter().any(|s| s.key() == **key))
            .map(|(name, port)| (name.clone(), *port))
            .collect();
        let translation = translate(
            &routing,
            &workloads,
            self.options.gateway_port,
            &ports,
            &placement.outbound,
        )
        .map_err(|e| e.to_string())?;
        self.gateway_listening = translation.listeners.gateway.is_some();
        let (mut clusters, mut listeners) = translation.resources();
        // Each pod's sidecar, inbound side: its own listener in front of the
        // process, where SERVER-mode plugins run (as they do in the pod's
        // istio-proxy), so they see every caller, the gateway included.
        for pod in live.into_iter().flatten() {
            let (cluster, listener) = inbound_sidecar(
                &pod.name,
                pod.inbound_port,
                pod.port,
                placement.inbound_for(&pod.labels),
            );
            clusters.push(cluster);
            listeners.push(listener);
        }
        Ok((clusters, listeners, placement.summary, translation.warnings))
    }

    /// The pods Envoy routes to: ready, and not in `leaving`.
    fn live(&self, leaving: &BTreeSet<String>) -> Vec<Live> {
        self.pods
            .iter()
            .filter(|p| p.ready && !leaving.contains(&p.name))
            .map(|p| Live {
                name: p.name.clone(),
                namespace: p.namespace.clone(),
                labels: p.labels.clone(),
                port: p.port,
                inbound_port: p.inbound_port,
            })
            .collect()
    }

    /// Renders routing for the ready pods and gives it to Envoy.
    fn push(
        &mut self,
        model: &Model,
        launches: &BTreeMap<String, Launch>,
        leaving: &BTreeSet<String>,
        reply: &mut Reply,
    ) -> Result<(), String> {
        let store = self.store.clone();
        let live = self.live(leaving);
        let (clusters, listeners, summary, _) =
            self.render(&store, model, launches, Some(&live))?;
        if self.pushed.as_ref() == Some(&(clusters.clone(), listeners.clone())) {
            return Ok(());
        }
        self.envoy
            .push(clusters.clone(), listeners.clone())
            .map_err(|e| e.to_string())?;
        let count = |prefix: &str| {
            listeners
                .iter()
                .filter(|l| l["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
                .count()
        };
        let gateway = if self.gateway_listening {
            format!("gateway on :{}, ", self.options.gateway_port)
        } else {
            "no gateway yet, ".to_string()
        };
        reply.line(format!(
            "envoy: configuration {} taken without a restart (pid {}): {gateway}{} Service listeners, {} pod inbound listeners, {} clusters",
            self.envoy.version(),
            self.envoy.pid(),
            count("svc-"),
            count("inbound-"),
            clusters.len(),
        ));
        if summary != self.plugin_summary {
            for line in &summary {
                reply.line(format!("envoy: plugin {line}"));
            }
            self.plugin_summary = summary;
        }
        self.pushed = Some((clusters, listeners));
        self.dirty = false;
        Ok(())
    }

    /// Starts, replaces and stops pods until every Deployment runs its
    /// replicas of its current template, then updates Envoy.
    fn reconcile(
        &mut self,
        model: &Model,
        launches: &BTreeMap<String, Launch>,
        reply: &mut Reply,
    ) -> Result<(), String> {
        let mut leaving: BTreeSet<String> = BTreeSet::new();
        let mut recreate_first: BTreeSet<String> = BTreeSet::new();
        let mut to_start: Vec<(Deployment, String)> = Vec::new();
        for deployment in &model.deployments {
            let Some(launch) = launches.get(&deployment.key()) else {
                continue;
            };
            let fingerprint = fingerprint(deployment, launch);
            let mine: Vec<&Pod> = self
                .pods
                .iter()
                .filter(|p| p.deployment == deployment.name && p.namespace == deployment.namespace)
                .collect();
            let current: Vec<&Pod> = mine
                .iter()
                .copied()
                .filter(|p| p.fingerprint == fingerprint)
                .collect();
            let outdated: Vec<&Pod> = mine
                .iter()
                .copied()
                .filter(|p| p.fingerprint != fingerprint)
                .collect();
            let wanted = deployment.replicas as usize;
            // Scaling down stops the newest pods first.
            for pod in current.iter().skip(wanted) {
                leaving.insert(pod.name.clone());
            }
            for pod in &outdated {
                leaving.insert(pod.name.clone());
                if deployment.recreate {
                    recreate_first.insert(pod.name.clone());
                }
            }
            for _ in current.len()..wanted {
                to_start.push((deployment.clone(), fingerprint.clone()));
            }
        }
        let deployed: BTreeSet<(String, String)> = model
            .deployments
            .iter()
            .map(|d| (d.namespace.clone(), d.name.clone()))
            .collect();
        for pod in &self.pods {
            if !deployed.contains(&(pod.namespace.clone(), pod.deployment.clone())) {
                leaving.insert(pod.name.clone());
            }
        }

        // Recreate: the old pods go before the new ones start.
        if !recreate_first.is_empty() {
            self.push(model, launches, &leaving, reply)?;
            self.stop_pods(&recreate_first, reply);
        }
        let mut started = Vec::new();
        for (deployment, fingerprint) in to_start {
            let launch = launches
                .get(&deployment.key())
                .cloned()
                .ok_or("internal: no launch")?;
            let pod = self.start_pod(&deployment, &fingerprint, launch)?;
            reply.line(format!(
                "pod/{} started: {} (pid {}, 127.0.0.1:{})",
                pod.name,
                pod.launch
                    .program
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                pod.child.as_ref().map_or(0, Child::id),
                pod.port
            ));
            started.push(pod.name.clone());
            self.pods.push(pod);
        }
        let waited = self.wait_ready(&started, reply);
        // Envoy gets the new endpoints even if a pod failed, so what runs is served.
        self.push(model, launches, &leaving, reply)?;
        self.stop_pods(&leaving, reply);
        waited
    }

    fn start_pod(
        &mut self,
        deployment: &Deployment,
        fingerprint: &str,
        launch: Launch,
    ) -> Result<Pod, String> {
        self.pod_counter += 1;
        let name = format!(
            "{}-{}-{}",
            deployment.name, deployment.template_hash, self.pod_counter
        );
        let state = &self.options.state_dir;
        let dir = state.join("pods").join(&name);
        let log = state.join("logs").join(format!("{name}.log"));
        let port = self.ports.allocate()?;
        let inbound_port = self.ports.allocate()?;
        let mut pod = Pod {
            name,
            deployment: deployment.name.clone(),
            namespace: deployment.namespace.clone(),
            labels: deployment.labels.clone(),
            fingerprint: fingerprint.to_string(),
            launch,
            port,
            inbound_port,
            dir,
            log,
            child: None,
            started: Instant::now(),
            created: Instant::now(),
            ready: false,
            restarts: 0,
            restart_at: None,
        };
        for (volume, files) in &pod.launch.volumes {
            let path = pod.dir.join("volumes").join(volume);
            std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            for (file, text) in files.iter().flatten() {
                std::fs::write(path.join(file), text)
                    .map_err(|e| format!("{}: {e}", path.join(file).display()))?;
            }
        }
        spawn(&mut pod)?;
        Ok(pod)
    }

    /// Waits until the pods in `names` pass their readiness probe.
    fn wait_ready(&mut self, names: &[String], reply: &mut Reply) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut pending: BTreeSet<String> = names.iter().cloned().collect();
        let mut failures = Vec::new();
        while !pending.is_empty() {
            let mut settled = Vec::new();
            for pod in self.pods.iter_mut().filter(|p| pending.contains(&p.name)) {
                if let Some(child) = &mut pod.child
                    && let Ok(Some(status)) = child.try_wait()
                {
                    failures.push(format!(
                        "pod/{} exited ({status}) before it was ready; {} ends with:\n{}",
                        pod.name,
                        pod.log.display(),
                        process::log_tail(&pod.log, 15)
                    ));
                    pod.child = None;
                    pod.restart_at = Some(Instant::now() + backoff(pod.restarts));
                    settled.push(pod.name.clone());
                    continue;
                }
                if probe(pod) {
                    pod.ready = true;
                    reply.line(format!(
                        "pod/{} ready after {:.1} s",
                        pod.name,
                        pod.started.elapsed().as_secs_f64()
                    ));
                    settled.push(pod.name.clone());
                }
            }
            for name in settled {
                pending.remove(&name);
            }
            if Instant::now() >= deadline {
                for name in &pending {
                    failures.push(format!("pod/{name} not ready after {READY_TIMEOUT:?}"));
                }
                break;
            }
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    }

    fn stop_pods(&mut self, names: &BTreeSet<String>, reply: &mut Reply) {
        let (mut leaving, staying): (Vec<Pod>, Vec<Pod>) = std::mem::take(&mut self.pods)
            .into_iter()
            .partition(|p| names.contains(&p.name));
        self.pods = staying;
        let mut children: Vec<&mut Child> = leaving
            .iter_mut()
            .filter_map(|p| p.child.as_mut())
            .collect();
        process::stop_all(&mut children, STOP_GRACE);
        for pod in &leaving {
            self.ports.release(pod.port);
            self.ports.release(pod.inbound_port);
            reply.line(format!("pod/{} stopped", pod.name));
            let _ = std::fs::remove_dir_all(&pod.dir);
        }
    }

    /// Between requests: restarts pods that exited, notices readiness, and
    /// starts Envoy again if it died.
    fn tick(&mut self) {
        match self.envoy.revive() {
            Ok(Some(status)) => println!(
                "local mesh: Envoy had exited ({status}); started it again on the same files (pid {})",
                self.envoy.pid()
            ),
            Ok(None) => {}
            Err(e) => println!("local mesh: Envoy is down and does not start again: {e}"),
        }
        let now = Instant::now();
        for pod in &mut self.pods {
            if let Some(child) = &mut pod.child
                && let Ok(Some(status)) = child.try_wait()
            {
                pod.child = None;
                let delay = backoff(pod.restarts);
                println!(
                    "local mesh: pod/{} exited ({status}); restarting in {delay:?} (see {})",
                    pod.name,
                    pod.log.display()
                );
                pod.restart_at = Some(now + delay);
                if pod.ready {
                    pod.ready = false;
                    self.dirty = true;
                }
            }
            if pod.child.is_none() && pod.restart_at.is_some_and(|at| at <= now) {
                pod.restart_at = None;
                pod.restarts += 1;
                if let Err(e) = spawn(pod) {
                    println!("local mesh: pod/{}: {e}", pod.name);
                    pod.restart_at = Some(now + backoff(pod.restarts));
                }
            }
            if pod.child.is_some() && !pod.ready && probe(pod) {
                println!("local mesh: pod/{} ready again", pod.name);
                pod.ready = true;
                self.dirty = true;
            }
        }
        if self.dirty {
            let store = self.store.clone();
            let result = Model::read(&store).and_then(|model| {
                let mut launches = BTreeMap::new();
                for d in &model.deployments {
                    launches.insert(d.key(), self.launch(d, &model)?);
                }
                self.push(
                    &model,
                    &launches,
                    &BTreeSet::new(),
                    &mut Reply { stream: None },
                )
            });
            if let Err(e) = result {
                println!("local mesh: cannot update Envoy: {e}");
                // Tried again on the next tick only if something changes.
                self.dirty = false;
            }
        }
    }

    fn status(&mut self) -> Value {
        let pods: Vec<Value> = self
            .pods
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "deployment": p.deployment,
                    "labels": p.labels,
                    "ready": p.ready,
                    "restarts": p.restarts,
                    "pid": p.child.as_ref().map(Child::id),
                    "port": p.port,
                    "inbound_port": p.inbound_port,
                    "age_s": p.created.elapsed().as_secs(),
                    "log": p.log,
                })
            })
            .collect();
        let services: Vec<Value> = self
            .store
            .iter()
            .filter(|d| d.value["kind"] == "Service")
            .filter_map(|d| {
                let (_, namespace, name) = kube::key_of(&d.value);
                let port = self.service_ports.get(&format!("{name}.{namespace}"))?;
                Some(json!({
                    "name": name,
                    "namespace": namespace,
                    "mesh_url": format!("http://127.0.0.1:{port}"),
                }))
            })
            .collect();
        let resources: Vec<String> = self
            .store
            .iter()
            .map(|d| {
                format!(
                    "{} ({})",
                    kube::display_name(&kube::key_of(&d.value)),
                    d.source
                )
            })
            .collect();
        json!({
            "pid": std::process::id(),
            "uptime_s": self.started.elapsed().as_secs(),
            "state_dir": self.options.state_dir,
            "gateway": {
                "url": format!("http://127.0.0.1:{}", self.options.gateway_port),
                "listening": self.gateway_listening,
                "key": GATEWAY,
            },
            "envoy": {
                "pid": self.envoy.pid(),
                "uptime_s": self.envoy.server_uptime(),
                "admin": self.envoy.admin_url(),
                "config_version": self.envoy.version(),
                "restarts": self.envoy.restarts,
                "log": self.envoy.log_path(),
            },
            "plugins": self.plugin_summary,
            "pods": pods,
            "services": services,
            "resources": resources,
        })
    }

    fn shutdown(&mut self, reply: &mut Reply) {
        let names: BTreeSet<String> = self.pods.iter().map(|p| p.name.clone()).collect();
        reply.line(format!("stopping {} pods", names.len()));
        self.stop_pods(&names, reply);
        self.envoy.stop();
        reply.line(format!(
            "envoy (pid {}) stopped; the local mesh is down",
            self.envoy.pid()
        ));
    }
}

/// Starts (or restarts) the pod's process.
/// A container path in an env value, as a path here: the longest matching
/// entry of `paths` (container path → local path, or `volume:<name>` for the
/// pod's volume directory under `pod_dir`). Other values stay as they are.
fn local_path(value: &str, paths: &[(String, String)], pod_dir: &Path) -> String {
    for (inside, target) in paths {
        let rest = if value == inside {
            Some("")
        } else {
            value
                .strip_prefix(inside.as_str())
                .filter(|r| r.starts_with('/'))
        };
        if let Some(rest) = rest {
            let base = match target.strip_prefix("volume:") {
                Some(volume) => pod_dir.join("volumes").join(volume).display().to_string(),
                None => target.clone(),
            };
            return format!("{base}{rest}");
        }
    }
    value.to_string()
}

fn spawn(pod: &mut Pod) -> Result<(), String> {
    let local = |value: &str| local_path(value, &pod.launch.paths, &pod.dir);
    std::fs::create_dir_all(&pod.dir).map_err(|e| format!("{}: {e}", pod.dir.display()))?;
    let mut command = Command::new(&pod.launch.program);
    command
        .args(&pod.launch.args)
        .current_dir(&pod.dir)
        // A container sees its own environment, not the daemon's.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOSTNAME", &pod.name);
    for (key, value) in &pod.launch.env {
        command.env(key, local(value));
    }
    // The pod's port: every airport service listens where LISTEN_ADDR says.
    command.env("LISTEN_ADDR", format!("127.0.0.1:{}", pod.port));
    let child = process::spawn(command, &pod.log)
        .map_err(|e| format!("cannot start {}: {e}", pod.launch.program.display()))?;
    pod.child = Some(child);
    pod.started = Instant::now();
    pod.ready = false;
    Ok(())
}

/// One readiness probe (a TCP connect when the container has no probe).
fn probe(pod: &Pod) -> bool {
    match &pod.launch.readiness {
        Some(path) => http_ok(pod.port, path, Duration::from_millis(500)),
        None => TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], pod.port)),
            Duration::from_millis(200),
        )
        .is_ok(),
    }
}

/// A kubelet's crash-loop back-off: 1 s, 2 s, 4 s ... up to 30 s.
fn backoff(restarts: u32) -> Duration {
    Duration::from_secs((1u64 << restarts.min(5)).min(30))
}

fn fingerprint(deployment: &Deployment, launch: &Launch) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    deployment.template_hash.hash(&mut hasher);
    launch.program.hash(&mut hasher);
    launch.args.hash(&mut hasher);
    launch.env.hash(&mut hasher);
    format!("{:?}", launch.volumes).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// `text` with every Kubernetes Service address (`collector:8080`,
/// `collector.airport.svc.cluster.local:8080`) replaced by that Service's
/// Envoy listener; the Services found go into `calls`. Hosts that are no
/// Service (or not on that port) stay as they are.
fn point_at_mesh(
    text: &str,
    namespace: &str,
    services: &[Service],
    mesh_ports: &BTreeMap<String, u16>,
    calls: &mut BTreeSet<String>,
) -> String {
    service_address()
        .replace_all(text, |caps: &regex::Captures<'_>| {
            let lead = caps.name("lead").map_or("", |m| m.as_str());
            let ns = caps.name("ns").map_or(namespace, |m| m.as_str());
            let port: Option<u16> = caps["port"].parse().ok();
            let found = services.iter().find(|s| {
                s.name == caps["host"]
                    && s.namespace == ns
                    && s.ports.iter().any(|(p, _)| Some(*p) == port)
            });
            match found.and_then(|s| mesh_ports.get(&s.key()).map(|p| (s, p))) {
                Some((service, mesh_port)) => {
                    calls.insert(service.key());
                    format!("{lead}127.0.0.1:{mesh_port}")
                }
                None => caps[0].to_string(),
            }
        })
        .into_owned()
}

/// A Service address in a URL or a `host:port` value: the host, optionally
/// with `.namespace`, `.svc` and `.cluster.local`, and a port.
fn service_address() -> &'static Regex {
    static PATTERN: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        #[allow(clippy::expect_used)] // a constant pattern, covered by the tests
        Regex::new(
            r"(?P<lead>^|[^A-Za-z0-9.\-])(?P<host>[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)(?:\.(?P<ns>[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)(?:\.svc(?:\.cluster\.local)?)?)?:(?P<port>[0-9]{1,5})\b",
        )
        .expect("a valid pattern")
    })
}

/// What each image carries besides its program, and where that is here:
/// container path → path in the repository. The images built for a cluster
/// put the same files at the same container paths.
fn image_paths(program: &str) -> Vec<(&'static str, &'static str)> {
    match program {
        "camera-agent" => vec![("/srv/frames", "services/testdata/frames")],
        "image-analysis" | "face-recognition" => vec![("/models", ".models")],
        _ => Vec::new(),
    }
}

/// ConfigMaps that `make deploy-app-default K8S=1` makes of a folder of the
/// repository (the Makefile's `FOLDER_CONFIGMAPS`, `kubectl create configmap
/// NAME --from-file=FOLDER`): photos, binary files that no manifest carries.
/// Here a Deployment mounting one that is not applied mounts the folder.
fn folder_config_map(name: &str) -> Option<&'static str> {
    match name {
        "demo-frames" => Some("services/testdata/demo-frames"),
        "watchlist-photos" => Some("services/testdata/watchlist"),
        _ => None,
    }
}

/// 32 random bytes as hex, for a `valueFrom: HOST` key nobody set.
fn fresh_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for a plugin key: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn rewrite(text: &str) -> (String, BTreeSet<String>) {
        let services = vec![
            Service {
                name: "collector".into(),
                namespace: "airport".into(),
                selector: BTreeMap::from([("app".into(), "collector".into())]),
                ports: vec![(8080, json!("http"))],
            },
            Service {
                name: "section-1".into(),
                namespace: "airport".into(),
                selector: BTreeMap::from([("app".into(), "section-1".into())]),
                ports: vec![(8080, json!("http"))],
            },
        ];
        let ports = BTreeMap::from([
            ("collector.airport".to_string(), 4001),
            ("section-1.airport".to_string(), 4002),
        ]);
        let mut calls = BTreeSet::new();
        let out = point_at_mesh(text, "airport", &services, &ports, &mut calls);
        (out, calls)
    }

    #[test]
    fn a_port_offered_again_is_not_handed_out_twice() {
        // The kernel offers a port again while its first taker has not
        // bound it yet: the second taker gets the next one.
        let mut offers = [40000, 40000, 40000, 40001, 40000].into_iter();
        let mut next = || offers.next().ok_or_else(|| "no more".to_string());
        let mut ports = Ports::default();
        assert_eq!(ports.allocate_from(&mut next), Ok(40000));
        assert_eq!(ports.allocate_from(&mut next), Ok(40001));
        // Released with its pod, it may be handed out again.
        ports.release(40000);
        assert_eq!(ports.allocate_from(&mut next), Ok(40000));
    }

    #[test]
    fn service_urls_point_at_the_mesh() {
        assert_eq!(rewrite("http://collector:8080").0, "http://127.0.0.1:4001");
        assert_eq!(
            rewrite("http://collector.airport.svc.cluster.local:8080/frames").0,
            "http://127.0.0.1:4001/frames"
        );
        assert_eq!(
            rewrite("1=http://section-1:8080,2=http://section-2:8080").0,
            "1=http://127.0.0.1:4002,2=http://section-2:8080"
        );
        // Another namespace, another port, or a longer host is not the Service.
        assert_eq!(
            rewrite("http://collector.other:8080").0,
            "http://collector.other:8080"
        );
        assert_eq!(rewrite("http://collector:9090").0, "http://collector:9090");
        assert_eq!(
            rewrite("http://my-collector:8080").0,
            "http://my-collector:8080"
        );
        assert_eq!(
            rewrite(r#"{"url": "http://section-1.airport:8080"}"#).1,
            BTreeSet::from(["section-1.airport".to_string()])
        );
    }

    #[test]
    fn container_paths_become_local_paths() {
        let paths = vec![
            ("/data/cache".to_string(), "volume:cache".to_string()),
            ("/data".to_string(), "volume:data".to_string()),
            ("/models".to_string(), "/repo/.models".to_string()),
        ];
        let pod = Path::new("/state/pods/p-1");
        assert_eq!(local_path("/models", &paths, pod), "/repo/.models");
        assert_eq!(
            local_path("/data/section-1.db", &paths, pod),
            "/state/pods/p-1/volumes/data/section-1.db"
        );
        assert_eq!(
            local_path("/data/cache/x", &paths, pod),
            "/state/pods/p-1/volumes/cache/x"
        );
        // Only whole path segments, and only at the start of the value.
        assert_eq!(local_path("/modelsX", &paths, pod), "/modelsX");
        assert_eq!(local_path("1=/models", &paths, pod), "1=/models");
        assert_eq!(local_path("http://x:8080", &paths, pod), "http://x:8080");
    }

    /// The folders the local mesh mounts are the ones `make` turns into
    /// ConfigMaps for a cluster, and they exist.
    #[test]
    fn folder_config_maps_are_the_makefiles() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let makefile = std::fs::read_to_string(repo.join("Makefile")).unwrap();
        let line = makefile
            .lines()
            .find_map(|l| l.strip_prefix("FOLDER_CONFIGMAPS :="))
            .expect("FOLDER_CONFIGMAPS in the Makefile");
        let pairs: Vec<(&str, &str)> = line
            .split_whitespace()
            .map(|pair| pair.split_once('=').unwrap())
            .collect();
        assert_eq!(pairs.len(), 2, "{line}");
        for (name, folder) in pairs {
            assert_eq!(folder_config_map(name), Some(folder), "{name}");
            assert!(repo.join(folder).is_dir(), "{folder}");
        }
        assert_eq!(folder_config_map("cpanel-cameras"), None);
    }

    #[test]
    fn back_off_grows_to_thirty_seconds() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(20), Duration::from_secs(30));
    }

    #[test]
    fn readiness_needs_a_2xx() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for (index, stream) in listener.incoming().take(2).enumerate() {
                let mut stream = stream.unwrap();
                let mut buf = [0u8; 256];
                let _ = stream.read(&mut buf);
                let status = if index == 0 {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = stream.write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                );
            }
        });
        assert!(http_ok(port, "/readyz", Duration::from_secs(2)));
        assert!(!http_ok(port, "/readyz", Duration::from_secs(2)));
        server.join().unwrap();
        assert!(!http_ok(port, "/readyz", Duration::from_millis(200)));
    }
}
