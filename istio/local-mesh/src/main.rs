//! `local-mesh`: the seed's demo steps on one machine, with the manifests a
//! cluster gets.
//!
//! `local-mesh up` starts a daemon that plays the cluster: it runs the
//! Deployments of `istio/workloads/` as local processes and one real Envoy
//! as the ingress gateway (`127.0.0.1:31221`, the seed's port) and every
//! sidecar, configured from the Istio resources. The other commands are its
//! `kubectl`: `apply -f`, `delete -f`, `scale`, `reset`, `status`, `down`.
//! Applying a scenario changes the running Envoy through its file-based
//! dynamic configuration, without a restart. See [`daemon`] for how a
//! Deployment becomes a process.

mod control;
mod daemon;
mod kube;
mod plugins;

use local_mesh::{process, xds};

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const USAGE: &str = "\
usage: local-mesh [--state-dir DIR] COMMAND

  up [--detach] [--gateway-port 31221] [--bin-dir DIR] [--wasm-dir DIR]
     [--vision-stub] [--concurrency 2]
                          start the mesh: Envoy (the gateway and every sidecar),
                          then pods as manifests are applied. Foreground: Ctrl-C
                          stops everything; --detach: runs in the background
  apply -f FILE|DIR ...   apply manifests, like kubectl apply (Deployments start
                          or replace processes; Istio resources re-route Envoy)
  delete -f FILE|DIR ...  delete the resources of these manifests
  scale DEPLOYMENT N      run N pods of a Deployment (kubectl scale)
  reset [-f FILE|DIR ...] back to istio/workloads + istio/app only (or the files given)
  status [--json]         pods, Services, Envoy, what is applied
  attach                  wait here; Ctrl-C stops the mesh
  down                    stop everything the mesh started

The state directory (default <target>/local-mesh, or $LOCAL_MESH_STATE_DIR)
holds the lock, the control socket, Envoy's files and every pod's log.";

/// The repository this runs for: `$LOCAL_MESH_REPO`, else the nearest
/// directory above the current one, or above this binary, that holds
/// `istio/workloads` and a `Cargo.toml`. Found at run time, not compiled in,
/// so a binary built in a shared target directory from another checkout
/// still serves the checkout it is run in.
fn repo_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOCAL_MESH_REPO") {
        return PathBuf::from(dir);
    }
    let is_repo =
        |dir: &Path| dir.join("istio/workloads").is_dir() && dir.join("Cargo.toml").is_file();
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    for start in starts.into_iter().flatten() {
        if let Some(found) = start.ancestors().find(|dir| is_repo(dir)) {
            return found.to_path_buf();
        }
    }
    envoy_rig::repo_root()
}

/// The directory this binary was built into (`target/debug`), where the
/// services' binaries are too.
fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| repo_dir().join("target/debug"))
}

/// Where cargo builds: the parent of [`bin_dir`].
fn target_dir() -> PathBuf {
    bin_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_dir().join("target"))
}

/// The pinned Envoy: `$ENVOY_BIN`, else `<repo>/.venv/envoy` (`make envoy`).
fn envoy_path(repo: &Path) -> Result<PathBuf, String> {
    let path = match std::env::var_os(envoy_rig::ENVOY_BIN_ENV) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => repo.join(".venv/envoy"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "Envoy not found at {}: run `make envoy` (or set ENVOY_BIN)",
            path.display()
        ))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("local-mesh: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let mut state_dir = std::env::var_os("LOCAL_MESH_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("local-mesh"));
    let mut rest = args;
    while let [flag, value, tail @ ..] = rest {
        if flag != "--state-dir" {
            break;
        }
        state_dir = PathBuf::from(value);
        rest = tail;
    }
    let Some((command, rest)) = rest.split_first() else {
        return Err(USAGE.to_string());
    };
    match command.as_str() {
        "up" => up(&state_dir, rest),
        "apply" => files_request(&state_dir, "apply", rest, false),
        "delete" => files_request(&state_dir, "delete", rest, false),
        "reset" => files_request(&state_dir, "reset", rest, true),
        "scale" => scale(&state_dir, rest),
        "status" => {
            let json_out = rest.iter().any(|a| a == "--json");
            control::send(&state_dir, &json!({"command": "status"}), |status| {
                if json_out {
                    println!("{status}");
                } else {
                    control::print_status(&status);
                }
            })
        }
        "down" => {
            if !control::running(&state_dir) {
                println!(
                    "no local mesh is running (state in {})",
                    state_dir.display()
                );
                return Ok(());
            }
            let pid = control::state(&state_dir).and_then(|s| s["pid"].as_u64());
            control::send(&state_dir, &json!({"command": "down"}), |_| {})?;
            wait_gone(&state_dir, pid)
        }
        "attach" => attach(&state_dir),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

/// Waits until the daemon has released its lock (it exits right after).
fn wait_gone(state_dir: &Path, pid: Option<u64>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while control::running(state_dir) {
        if Instant::now() >= deadline {
            return Err(format!(
                "the local mesh (pid {}) did not exit within 30 s",
                pid.map_or("?".to_string(), |p| p.to_string())
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn up(state_dir: &Path, args: &[String]) -> Result<(), String> {
    let target = target_dir();
    let mut options = daemon::UpOptions {
        repo: repo_dir(),
        state_dir: state_dir.to_path_buf(),
        gateway_port: 31221,
        bin_dir: bin_dir(),
        wasm_dir: target.join("wasm-artifacts/wasm32-wasip1/wasm"),
        envoy: PathBuf::new(),
        vision_stub: false,
        concurrency: 2,
    };
    let mut detach = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--detach" => detach = true,
            "--vision-stub" => options.vision_stub = true,
            "--gateway-port" => {
                options.gateway_port = value()?
                    .parse()
                    .map_err(|_| "--gateway-port: not a port".to_string())?
            }
            "--bin-dir" => options.bin_dir = PathBuf::from(value()?),
            "--wasm-dir" => options.wasm_dir = PathBuf::from(value()?),
            "--concurrency" => {
                options.concurrency = value()?
                    .parse()
                    .map_err(|_| "--concurrency: not a number".to_string())?
            }
            other => return Err(format!("up: unknown argument {other}\n{USAGE}")),
        }
    }
    if control::running(state_dir) {
        return Err(control::already_running(state_dir));
    }
    options.envoy = envoy_path(&options.repo)?;
    if detach {
        let forwarded: Vec<&String> = args.iter().filter(|a| *a != "--detach").collect();
        return detached(state_dir, &forwarded);
    }
    daemon::run(options)
}

/// Starts `up` in the background (its own process group, output to
/// `daemon.log`) and shows its progress until it is ready.
fn detached(state_dir: &Path, args: &[&String]) -> Result<(), String> {
    use std::os::unix::process::CommandExt;

    std::fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let log_path = state_dir.join("daemon.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let me = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    let mut child = Command::new(me)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("up")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    let mut shown = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        // Whole lines only: the daemon may be mid-line.
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        if complete > shown {
            print!("{}", &text[shown..complete]);
            shown = complete;
        }
        if text.contains("local mesh: ready") {
            println!(
                "local mesh: running in the background (log {}); `make down` stops it",
                log_path.display()
            );
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            print!("{}", &text[shown..]);
            return Err(format!(
                "the daemon exited ({status}); see {}",
                log_path.display()
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the daemon is not ready after 90 s; see {}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The files of `-f` arguments, read here (paths are the client's).
fn read_files(args: &[String], defaults: &[PathBuf]) -> Result<Vec<Value>, String> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-f" | "--filename" => paths.push(PathBuf::from(
                iter.next().ok_or("-f needs a file or directory")?,
            )),
            other => match other
                .strip_prefix("--filename=")
                .or_else(|| other.strip_prefix("-f="))
            {
                Some(path) => paths.push(PathBuf::from(path)),
                None => return Err(format!("unexpected argument {other} (use -f FILE)")),
            },
        }
    }
    if paths.is_empty() {
        if defaults.is_empty() {
            return Err("no files: use -f FILE|DIR".to_string());
        }
        paths = defaults.to_vec();
    }
    let mut files = Vec::new();
    for path in &paths {
        for file in kube::manifest_files(path).map_err(|e| e.to_string())? {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let source = file
                .strip_prefix(repo_dir())
                .unwrap_or(&file)
                .display()
                .to_string();
            files.push(json!({"source": source, "text": text}));
        }
    }
    Ok(files)
}

fn files_request(
    state_dir: &Path,
    command: &str,
    args: &[String],
    defaults: bool,
) -> Result<(), String> {
    let defaults = if defaults {
        vec![
            repo_dir().join("istio/workloads"),
            repo_dir().join("istio/app"),
        ]
    } else {
        Vec::new()
    };
    let files = read_files(args, &defaults)?;
    control::send(
        state_dir,
        &json!({"command": command, "files": files}),
        |_| {},
    )
}

fn scale(state_dir: &Path, args: &[String]) -> Result<(), String> {
    // `scale cpanel-v2 3`, or kubectl's `scale deployment cpanel-v2 --replicas=3`.
    let mut name = None;
    let mut replicas = None;
    for arg in args {
        if let Some(n) = arg.strip_prefix("--replicas=") {
            replicas = Some(n.to_string());
        } else if arg == "deployment" || arg == "deploy" {
            continue;
        } else if name.is_none() {
            name = Some(arg.trim_start_matches("deployment/").to_string());
        } else {
            replicas = Some(arg.clone());
        }
    }
    let (Some(name), Some(replicas)) = (name, replicas) else {
        return Err("usage: local-mesh scale DEPLOYMENT N".to_string());
    };
    let replicas: u32 = replicas
        .parse()
        .map_err(|_| format!("scale: {replicas:?} is not a replica count"))?;
    control::send(
        state_dir,
        &json!({"command": "scale", "deployment": name, "replicas": replicas}),
        |_| {},
    )
}

/// Waits in the foreground; Ctrl-C stops the mesh. Returns when the mesh is down.
fn attach(state_dir: &Path) -> Result<(), String> {
    let Some(state) = control::state(state_dir).filter(|_| control::running(state_dir)) else {
        return Err(format!(
            "no local mesh is running (state in {})",
            state_dir.display()
        ));
    };
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("cannot handle signals: {e}"))?;
    println!(
        "The local mesh runs (pid {}). Ctrl-C here stops it; other terminals can run the demo steps (make cpanel-50-50, make load, ...).",
        state["pid"]
    );
    loop {
        if signals.pending().next().is_some() {
            println!();
            let pid = state["pid"].as_u64();
            control::send(state_dir, &json!({"command": "down"}), |_| {})?;
            return wait_gone(state_dir, pid);
        }
        if !control::running(state_dir) {
            println!("the local mesh has stopped");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
