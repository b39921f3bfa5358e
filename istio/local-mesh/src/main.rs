//! `make demo`: the airport services behind one real Envoy on loopback,
//! driven by the manifests in `istio/` and with the plugins of
//! `istio/plugins/` loaded where their selectors say.
//!
//! Every service call crosses Envoy: each service has its own listener (the
//! mesh side of its callers' sidecars), and the gateway listener serves the
//! public paths of the seed (`/`, `/status`, `/cameras/1/state`, ...).
//! Ctrl-C stops everything (services and Envoy are in the terminal's process
//! group and get the signal too); `--for 30s` stops after a while instead.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use envoy_rig::{Envoy, EnvoyOptions, FailurePolicy, HttpFilter, WasmFilter, client, repo_root};
use local_mesh::{GATEWAY, Workload, translate};
use serde_json::Value;

const USAGE: &str = "\
usage: local-mesh demo [--port 8080] [--bin-dir target/debug] [--scenario NAME]... [--for 30s]

Starts the airport services and one Envoy playing the ingress gateway and
every sidecar, configured from istio/app/*.yaml (plus istio/scenarios/NAME.yaml
for each --scenario) and istio/plugins/*.yaml, and prints where to look.";

/// One process of the demo.
struct Service {
    name: &'static str,
    /// The mesh host it serves (its Kubernetes Service).
    host: &'static str,
    version: &'static str,
    binary: &'static str,
    args: &'static [&'static str],
    env: Vec<(String, String)>,
    port: u16,
}

struct Running {
    children: Vec<(String, Child)>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16, String> {
    // Bound and released at once: a tiny race on loopback, fine for a demo.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn parse_duration(text: &str) -> Option<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(m) = text.strip_suffix('m') {
        return m.parse::<u64>().ok().map(|m| Duration::from_secs(m * 60));
    }
    text.strip_suffix('s')?
        .parse()
        .ok()
        .map(Duration::from_secs)
}

struct Options {
    port: u16,
    bin_dir: PathBuf,
    scenarios: Vec<String>,
    run_for: Option<Duration>,
}

/// Where cargo builds: `CARGO_TARGET_DIR` when set, else `<repo>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => repo_root().join(dir),
        None => repo_root().join("target"),
    }
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        port: 8080,
        bin_dir: target_dir().join("debug"),
        scenarios: Vec::new(),
        run_for: None,
    };
    let mut iter = args.iter();
    match iter.next().map(String::as_str) {
        Some("demo") => {}
        _ => return Err(USAGE.to_string()),
    }
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => {
                options.port = value()?
                    .parse()
                    .map_err(|_| "--port: not a port".to_string())?
            }
            "--bin-dir" => options.bin_dir = PathBuf::from(value()?),
            "--scenario" => options.scenarios.push(value()?),
            "--for" => {
                let text = value()?;
                options.run_for =
                    Some(parse_duration(&text).ok_or(format!("--for: not a duration: {text}"))?);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn read_manifests(files: &[PathBuf]) -> Result<Vec<Value>, String> {
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        documents.extend(
            istio_manifests::parse_documents(&text)
                .map_err(|e| format!("{}: {e}", file.display()))?,
        );
    }
    Ok(documents)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// 32 random bytes as hex, for a signing key nobody configured.
fn fresh_secret() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for a demo signing key: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The Wasm filters of `istio/plugins/*.yaml`, keyed by the mesh host their
/// selector picks (`app: <host>`) or [`GATEWAY`] (`istio: ingressgateway`).
/// Plugins by the host they run on, and a line each for the summary.
type LoadedPlugins = (BTreeMap<String, Vec<HttpFilter>>, Vec<String>);

fn plugins(root: &Path) -> Result<LoadedPlugins, String> {
    let mut by_host: BTreeMap<String, Vec<HttpFilter>> = BTreeMap::new();
    let mut loaded = Vec::new();
    for doc in read_manifests(&yaml_files(&root.join("istio/plugins")))? {
        if doc["kind"] != "WasmPlugin" {
            continue;
        }
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let wasm = target_dir()
            .join("wasm-artifacts/wasm32-wasip1/wasm")
            .join(format!("{}.wasm", name.replace('-', "_")));
        if !wasm.exists() {
            return Err(format!("{}: not built; run `make wasm`", wasm.display()));
        }
        let labels = &doc["spec"]["selector"]["matchLabels"];
        let key = if labels["istio"] == "ingressgateway" {
            GATEWAY.to_string()
        } else if let Some(app) = labels["app"].as_str() {
            app.to_string()
        } else {
            return Err(format!(
                "WasmPlugin/{name}: the local mesh needs selector app: <service> or istio: ingressgateway"
            ));
        };
        let config =
            serde_json::to_string(&doc["spec"]["pluginConfig"]).map_err(|e| e.to_string())?;
        let mut filter = WasmFilter::new(&name, &wasm)
            .root_id(&name)
            .vm_id(&name)
            .configuration(config);
        if doc["spec"]["failStrategy"] == "FAIL_OPEN" {
            filter = filter.failure_policy(FailurePolicy::FailOpen);
        }
        for env in doc["spec"]["vmConfig"]["env"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(key) = env["name"].as_str() else {
                continue;
            };
            let value = if env["valueFrom"] == "HOST" {
                // In a cluster the proxy's own environment (fed from a Secret);
                // here this process's, or a fresh secret for this demo run.
                match std::env::var(key) {
                    Ok(value) => value,
                    Err(_) => fresh_secret()?,
                }
            } else {
                env["value"].as_str().unwrap_or_default().to_string()
            };
            filter = filter.env(key, &value);
        }
        loaded.push(format!("{name} on {key}"));
        by_host.entry(key).or_default().push(filter.into());
    }
    Ok((by_host, loaded))
}

fn run(options: Options) -> Result<(), String> {
    let root = repo_root();
    let state = root.join("target/demo");
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;

    // Mesh addresses: one Envoy listener per host, fixed before anything starts.
    let hosts = [
        "image-analysis",
        "face-recognition",
        "section-1",
        "alerts",
        "collector",
        "camera-1",
        "camera-2",
        "cpanel",
    ];
    let mut mesh_ports = BTreeMap::new();
    for host in hosts {
        mesh_ports.insert(host.to_string(), free_port()?);
    }
    let mesh = |host: &str| format!("http://127.0.0.1:{}", mesh_ports[host]);
    let env = |pairs: &[(&str, String)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Vec<_>>()
    };

    let camera_list = serde_json::json!({"cameras": [
        {"id": 1, "description": "exit camera section 1", "url": mesh("camera-1"), "section": 1, "type": "exit"},
        {"id": 2, "description": "entry camera section 1", "url": mesh("camera-2"), "section": 1, "type": "entry"},
    ]});
    let camera_config = state.join("cameras.json");
    std::fs::write(&camera_config, camera_list.to_string()).map_err(|e| e.to_string())?;
    let frames = root.join("services/testdata/frames").display().to_string();

    let panel_env = |version: &str| {
        env(&[
            ("SERVICE_VERSION", version.to_string()),
            ("CPANEL_CONFIG", camera_config.display().to_string()),
            ("CPANEL_SECTIONS", format!("1={}", mesh("section-1"))),
            ("ALERTS_URL", mesh("alerts")),
            ("COLLECTOR_URL", mesh("collector")),
        ])
    };
    let services = vec![
        Service {
            name: "vision (test double)",
            host: "image-analysis",
            version: "v1",
            binary: "airport-stack",
            args: &["vision-stub"],
            env: Vec::new(),
            port: free_port()?,
        },
        Service {
            name: "section 1",
            host: "section-1",
            version: "v1",
            binary: "section",
            args: &[],
            env: env(&[
                ("SECTION_ID", "1".into()),
                (
                    "SECTION_DB",
                    state.join("section-1.db").display().to_string(),
                ),
            ]),
            port: free_port()?,
        },
        Service {
            name: "alerts",
            host: "alerts",
            version: "v1",
            binary: "alerts",
            args: &[],
            env: env(&[("ALERTS_DB", state.join("alerts.db").display().to_string())]),
            port: free_port()?,
        },
        Service {
            name: "collector",
            host: "collector",
            version: "v1",
            binary: "collector",
            args: &[],
            env: env(&[
                ("IMAGE_ANALYSIS_URL", mesh("image-analysis")),
                ("FACE_RECOGNITION_URL", mesh("face-recognition")),
                ("ALERTS_URL", mesh("alerts")),
                ("COLLECTOR_SECTIONS", format!("1={}", mesh("section-1"))),
            ]),
            port: free_port()?,
        },
        Service {
            name: "camera 1",
            host: "camera-1",
            version: "v1",
            binary: "camera-agent",
            args: &[],
            env: env(&[
                ("CAMERA_ID", "1".into()),
                ("CAMERA_FRAMES_DIR", frames.clone()),
            ]),
            port: free_port()?,
        },
        Service {
            name: "camera 2",
            host: "camera-2",
            version: "v1",
            binary: "camera-agent",
            args: &[],
            env: env(&[
                ("CAMERA_ID", "2".into()),
                ("CAMERA_FRAMES_DIR", frames.clone()),
            ]),
            port: free_port()?,
        },
        Service {
            name: "control panel v1",
            host: "cpanel",
            version: "v1",
            binary: "control-panel",
            args: &[],
            env: panel_env("v1"),
            port: free_port()?,
        },
        Service {
            name: "control panel v2",
            host: "cpanel",
            version: "v2",
            binary: "control-panel",
            args: &[],
            env: panel_env("v2"),
            port: free_port()?,
        },
    ];

    // The vision test double serves both vision hosts until issue 8's real
    // services exist.
    let mut workloads: Vec<Workload> = services
        .iter()
        .map(|s| Workload {
            service: s.host.to_string(),
            version: s.version.to_string(),
            port: s.port,
        })
        .collect();
    workloads.push(Workload {
        service: "face-recognition".into(),
        version: "v1".into(),
        port: services[0].port,
    });

    let mut files = yaml_files(&root.join("istio/app"));
    for scenario in &options.scenarios {
        let file = root
            .join("istio/scenarios")
            .join(format!("{scenario}.yaml"));
        if !file.exists() {
            return Err(format!(
                "no scenario {scenario} ({} is missing)",
                file.display()
            ));
        }
        files.push(file);
    }
    let documents = read_manifests(&files)?;
    let (plugins, loaded) = plugins(&root)?;
    let (bootstrap, listeners) =
        translate(&documents, &workloads, options.port, &mesh_ports, &plugins)
            .map_err(|e| e.to_string())?;

    let envoy_options = EnvoyOptions::default().concurrency(2);
    let envoy = Envoy::start_with(&bootstrap, &envoy_options)
        .map_err(|e| format!("Envoy did not start: {e}"))?;

    let mut running = Running {
        children: Vec::new(),
    };
    for service in &services {
        let binary = options.bin_dir.join(service.binary);
        if !binary.exists() {
            return Err(format!(
                "{} is not built; run `make demo`",
                binary.display()
            ));
        }
        let log_name = service.name.replace([' ', '(', ')'], "-");
        let log = std::fs::File::create(state.join(format!("{log_name}.log")))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&binary)
            .args(service.args)
            .envs(service.env.iter().cloned())
            .env("LISTEN_ADDR", format!("127.0.0.1:{}", service.port))
            .env("SERVICE_VERSION", service.version)
            .env("LOG_FORMAT", "text")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        running.children.push((service.name.to_string(), child));
    }

    let gateway = listeners
        .gateway
        .as_deref()
        .ok_or("no Gateway-bound VirtualService in istio/app")?;
    let url = envoy.listener_url(gateway).map_err(|e| e.to_string())?;
    // Ready when the dashboard answers through the gateway (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client::get(format!("{url}/status")).is_ok_and(|r| r.status == 200) {
            break;
        }
        for (name, child) in &mut running.children {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{name} exited ({status}); see target/demo/"));
            }
        }
        if Instant::now() > deadline {
            return Err("the services did not answer through the gateway within 30 s; see target/demo/*.log".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = client::get(format!("{url}/production?toggle=on")).map(|r| r.status);

    println!();
    println!(
        "The airport demo is up: {} services behind Envoy 1.40 on loopback.",
        services.len()
    );
    println!(
        "  routes from   istio/app/*.yaml{}",
        options
            .scenarios
            .iter()
            .map(|s| format!(" + istio/scenarios/{s}.yaml"))
            .collect::<String>()
    );
    println!(
        "  plugins       {}",
        if loaded.is_empty() {
            "none".to_string()
        } else {
            loaded.join(", ")
        }
    );
    println!(
        "  vision        a test double answers for image analysis and face recognition (the real ones are issue 8)"
    );
    println!(
        "  cameras       turned on: /production?toggle=on answered {}",
        started.map_or_else(|e| e.to_string(), |s| s.to_string())
    );
    println!();
    println!("Where to look:");
    println!("  dashboard     {url}/");
    println!(
        "  health        {url}/status  {url}/cameras/1/state  {url}/collector/status  {url}/alerts/status  {url}/sections/1/status"
    );
    println!(
        "  Envoy admin   {}/stats?filter=wasmcustom   {}/clusters",
        envoy.admin_url(),
        envoy.admin_url()
    );
    println!(
        "  logs          target/demo/*.log   Envoy: {}",
        envoy.log_path().display()
    );
    println!();
    match options.run_for {
        Some(limit) => {
            println!("Stopping in {limit:?}.");
            std::thread::sleep(limit);
        }
        None => {
            println!("Ctrl-C stops everything.");
            loop {
                std::thread::park();
            }
        }
    }
    drop(running);
    drop(envoy);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("local-mesh: {message}");
            ExitCode::FAILURE
        }
    }
}
