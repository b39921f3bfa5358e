//! Child processes that never outlive the mesh.
//!
//! Every service and Envoy is started from the daemon's main thread with
//! `PR_SET_PDEATHSIG`, so if the daemon dies (even by `SIGKILL`) the kernel
//! kills them too. Each child gets its own process group: a Ctrl-C in the
//! terminal reaches the daemon only, which then stops the children in order
//! (`SIGTERM`, a grace period for in-flight requests, then `SIGKILL`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `command` with its output appended to `log`.
pub fn spawn(mut command: Command, log: &Path) -> std::io::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    die_with_parent(&mut command);
    command.spawn()
}

/// Asks the kernel to `SIGKILL` the child when the thread that started it
/// dies, and puts it in its own process group.
///
/// The signal follows the *thread*: the daemon starts every child from its
/// main thread, which lives as long as the process.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // `pre_exec` is unsafe; the workspace denies unsafe code elsewhere.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;

    command.process_group(0);
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: `prctl` and `getppid` are plain
    // syscalls that neither allocate nor take locks.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then no signal
            // would ever come.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the local mesh exited"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
}

/// Sends `SIGTERM` to process `pid` (a child of ours, or the daemon).
#[allow(unsafe_code)] // `libc::kill` is an FFI call.
pub fn terminate(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: `kill` has no memory-safety preconditions; a stale pid is
    // reported as an error, not undefined behaviour.
    unsafe { libc::kill(pid, libc::SIGTERM) == 0 }
}

/// Stops children: `SIGTERM` to all at once, then waits up to `grace` for
/// each to exit, then `SIGKILL`s what is left.
pub fn stop_all(children: &mut [&mut Child], grace: Duration) {
    for child in children.iter() {
        terminate(child.id());
    }
    let deadline = Instant::now() + grace;
    for child in children.iter_mut() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// The last `lines` lines of a log file (for error messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn stop_all_terminates_gracefully() {
        let dir = tempfile::tempdir().unwrap();
        let mut sleeper = spawn(
            {
                let mut c = Command::new("sleep");
                c.arg("30");
                c
            },
            &dir.path().join("log"),
        )
        .unwrap();
        assert!(sleeper.try_wait().unwrap().is_none());
        let started = Instant::now();
        stop_all(&mut [&mut sleeper], Duration::from_secs(5));
        // `sleep` dies of SIGTERM at once: well before the grace period.
        assert!(started.elapsed() < Duration::from_secs(4));
        assert!(sleeper.try_wait().unwrap().is_some());
    }

    #[test]
    fn log_tail_keeps_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&path, 2), "b\nc");
        assert_eq!(log_tail(&dir.path().join("missing"), 2), "");
    }
}
