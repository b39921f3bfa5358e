//! Each service image, unpacked as a container runtime would, runs: its
//! binary is static (nothing outside the image is loaded), starts from the
//! root filesystem with the image's environment, working folder and (when
//! the test runs as root) its non-root user, answers its `/status` on
//! loopback with the contract's text, and stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use object::Object;
use oci_images::{Kind, Variant};

use crate::support::{Layout, built, gunzip};

/// What `GET /status` answers, per image (services/CONTRACT.md).
const STATUS: &[(&str, &str)] = &[
    ("alerts", "Alerts v1 : Online"),
    ("camera-agent", "Camera Agent 1 v1 : Online"),
    ("collector", "Collector v1 : Online"),
    ("control-panel", "CPanel v1 : Online"),
    ("face-recognition", "Face Recognition v1 : Online"),
    ("image-analysis", "Image Analysis v1 : Online"),
    ("section", "Section 1 v1 : Online"),
];

const START_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// The layer unpacked into `dir` (ownership kept when running as root, as
/// a container runtime does).
fn unpack(layout: &Layout, dir: &Path, as_root: bool) {
    let tar_bytes = gunzip(&layout.layers[0]);
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(as_root);
    archive.unpack(dir).expect("the layer unpacks");
}

/// A path of the image as seen from outside the unpacked root.
fn host_path(rootfs: &Path, image_path: &str) -> PathBuf {
    rootfs.join(image_path.trim_start_matches('/'))
}

struct Running {
    child: Child,
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts the image's entrypoint from `rootfs` and waits for its
/// `listening` log line.
fn start(
    rootfs: &Path,
    config: &oci_spec::image::Config,
    as_root: bool,
) -> Result<Running, String> {
    let entrypoint = config.entrypoint().as_ref().ok_or("no entrypoint")?;
    let (program, args) = entrypoint.split_first().ok_or("empty entrypoint")?;
    let binary = host_path(rootfs, program);
    let mut command = if as_root {
        // As the image's user and group with no supplementary groups, as a
        // container runtime starts it (std cannot clear the groups).
        let user = config.user().as_deref().ok_or("no user")?;
        let (uid, gid) = user.split_once(':').ok_or("user is not uid:gid")?;
        let mut command = Command::new(setpriv()?);
        command
            .args(["--reuid", uid, "--regid", gid, "--clear-groups", "--"])
            .arg(&binary);
        command
    } else {
        Command::new(&binary)
    };
    command.args(args).env_clear();
    for kv in config.env().as_deref().unwrap_or_default() {
        let (key, value) = kv.split_once('=').ok_or(format!("env `{kv}`"))?;
        // A path of the image (the frames, the models) is found under the
        // unpacked root, as a container would find it at /.
        let value = if value.starts_with('/') && host_path(rootfs, value).exists() {
            host_path(rootfs, value).display().to_string()
        } else {
            value.to_string()
        };
        command.env(key, value);
    }
    // Loopback, a free port, and logs the test can read.
    command
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    let workdir = config.working_dir().as_deref().unwrap_or("/");
    command.current_dir(host_path(rootfs, workdir));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if log["message"] == "listening"
                && let Some(addr) = log["addr"].as_str()
            {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(addr) => return Ok(Running { child, addr }),
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("{program} exited at start: {status}"));
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{program} did not listen within {START_DEADLINE:?}"
                    ));
                }
            }
        }
    }
}

/// util-linux's `setpriv`, from this process's `PATH`.
fn setpriv() -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("setpriv"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            "setpriv (util-linux) is needed to run the image's user, and is not on PATH".into()
        })
}

/// Whether this process runs as root (and so can run the image's user).
fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The binary must load nothing from outside the image: no program
/// interpreter (dynamic loader), an x86-64 ELF.
fn assert_static(binary: &Path, name: &str) {
    let bytes = std::fs::read(binary).expect("the binary");
    let file = object::File::parse(bytes.as_slice()).expect("an object file");
    assert_eq!(file.format(), object::BinaryFormat::Elf, "{name}");
    assert_eq!(file.architecture(), object::Architecture::X86_64, "{name}");
    assert!(
        file.section_by_name(".interp").is_none(),
        "{name}: {} asks for a dynamic loader: not a static binary",
        binary.display()
    );
    assert!(
        file.symbols().next().is_none(),
        "{name}: the shipped binary keeps its symbols (profile image strips them)"
    );
}

#[test]
fn every_service_runs_from_its_image_and_answers_status() {
    let built = built();
    let as_root = running_as_root();
    if !as_root {
        eprintln!("not root: the services run as this user, not the image's");
    }
    let mut checked = 0;
    for image in built
        .assembled
        .images
        .iter()
        .filter(|i| i.variant == Variant::Service)
    {
        let name = image.name.as_str();
        let expected = STATUS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .unwrap_or_else(|| panic!("{name}: add its /status text to STATUS"));
        let layout = Layout::open(&image.layout).expect("a valid layout");
        let config = layout.config();
        let run = config.config().as_ref().expect("a run config");
        let scratch = tempfile::tempdir().expect("a temp folder");
        // The image's user must reach the unpacked root.
        std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let rootfs = scratch.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755)).unwrap();
        unpack(&layout, &rootfs, as_root);
        let entrypoint = run.entrypoint().as_ref().expect("an entrypoint")[0].clone();
        assert_static(&host_path(&rootfs, &entrypoint), name);

        let service = start(&rootfs, run, as_root).unwrap_or_else(|e| panic!("{name}: {e}"));
        let response = envoy_rig::client::get(format!("http://{}/status", service.addr))
            .unwrap_or_else(|e| panic!("{name}: GET /status: {e}"));
        assert_eq!(response.status, 200, "{name}");
        assert_eq!(response.text(), expected, "{name}");

        let mut service = service;
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&service.child),
            rustix::process::Signal::TERM,
        )
        .expect("SIGTERM sent");
        let deadline = Instant::now() + STOP_DEADLINE;
        let status = loop {
            if let Some(status) = service.child.try_wait().expect("waits") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: still running after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{name}: exit {status} after SIGTERM");

        // A service with a working folder wrote its data there, as its user.
        let definition = built.catalog.get(name).expect("a definition");
        if let Kind::Service(s) = &definition.kind
            && let Some(workdir) = &s.workdir
            && as_root
        {
            use std::os::unix::fs::MetadataExt;
            let written: Vec<_> = std::fs::read_dir(host_path(&rootfs, workdir))
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().uid())
                .collect();
            assert!(!written.is_empty(), "{name}: wrote nothing in {workdir}");
            assert!(
                written.iter().all(|uid| *uid == built.catalog.shared.user),
                "{name}: files in {workdir} not owned by the image's user: {written:?}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "checked {checked} services");
}
