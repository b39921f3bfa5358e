//! The client side of the daemon's control socket.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::Value;

use crate::daemon::{lock_path, socket_path, state_path};

/// The daemon's `state.json`, if a daemon wrote one.
pub fn state(state_dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(state_path(state_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether a daemon holds the lock of `state_dir`.
pub fn running(state_dir: &Path) -> bool {
    match File::options().write(true).open(lock_path(state_dir)) {
        Ok(file) => file.try_lock().is_err(),
        Err(_) => false,
    }
}

/// What a second `up` says.
pub fn already_running(state_dir: &Path) -> String {
    match state(state_dir) {
        Some(s) => format!(
            "a local mesh is already running (pid {}, gateway {}); stop it with `make down`",
            s["pid"],
            s["gateway"].as_str().unwrap_or("?")
        ),
        None => format!(
            "a local mesh is starting in {} (see daemon.log there); stop it with `make down`",
            state_dir.display()
        ),
    }
}

/// Sends one request and prints the daemon's progress lines as they come;
/// `data` gets any structured answer. Fails with the daemon's error.
pub fn send(state_dir: &Path, request: &Value, mut data: impl FnMut(Value)) -> Result<(), String> {
    let socket = socket_path(state_dir);
    let mut stream = match UnixStream::connect(&socket) {
        Ok(stream) => stream,
        Err(e) if running(state_dir) => {
            return Err(format!(
                "the local mesh in {} does not answer on {} ({e}); it may still be starting (see daemon.log there)",
                state_dir.display(),
                socket.display()
            ));
        }
        Err(_) => {
            return Err(format!(
                "no local mesh is running (state in {}); start one with `make up` or `make demo`",
                state_dir.display()
            ));
        }
    };
    let mut line = request.to_string();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("sending to the local mesh: {e}"))?;
    let mut finished = false;
    let mut error = None;
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(|e| format!("reading from the local mesh: {e}"))?;
        let message: Value = serde_json::from_str(&line)
            .map_err(|e| format!("the local mesh answered {line:?}: {e}"))?;
        if let Some(text) = message["out"].as_str() {
            println!("{text}");
        } else if let Some(text) = message["error"].as_str() {
            error = Some(text.to_string());
            finished = true;
        } else if message.get("data").is_some() {
            data(message["data"].clone());
        } else if message["done"] == true {
            finished = true;
        }
    }
    match (finished, error) {
        (_, Some(error)) => Err(error),
        (true, None) => Ok(()),
        (false, None) => Err("the local mesh stopped before it answered".to_string()),
    }
}

fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// `status` for people.
pub fn print_status(status: &Value) {
    let envoy = &status["envoy"];
    println!(
        "local mesh  pid {}, up {}, state {}",
        status["pid"],
        duration(status["uptime_s"].as_u64().unwrap_or(0)),
        status["state_dir"].as_str().unwrap_or("?")
    );
    println!(
        "gateway     {} ({})",
        status["gateway"]["url"].as_str().unwrap_or("?"),
        if status["gateway"]["listening"] == true {
            "serving"
        } else {
            "no Gateway applied yet: make deploy-istio-default"
        }
    );
    println!(
        "envoy       pid {}, up {}, admin {}, configuration {}, restarts {}",
        envoy["pid"],
        duration(envoy["uptime_s"].as_u64().unwrap_or(0)),
        envoy["admin"].as_str().unwrap_or("?"),
        envoy["config_version"],
        envoy["restarts"]
    );
    for plugin in status["plugins"].as_array().into_iter().flatten() {
        println!("plugin      {}", plugin.as_str().unwrap_or("?"));
    }
    let pods = status["pods"].as_array().cloned().unwrap_or_default();
    println!();
    if pods.is_empty() {
        println!("no pods: make deploy-app-default (local-mesh apply -f istio/workloads)");
    } else {
        println!(
            "{:<34} {:<6} {:<9} {:<8} {:<16} AGE",
            "POD", "READY", "RESTARTS", "PID", "ADDRESS"
        );
        for pod in &pods {
            println!(
                "{:<34} {:<6} {:<9} {:<8} {:<16} {}",
                pod["name"].as_str().unwrap_or("?"),
                if pod["ready"] == true { "1/1" } else { "0/1" },
                pod["restarts"].to_string(),
                pod["pid"]
                    .as_u64()
                    .map_or("-".to_string(), |p| p.to_string()),
                format!("127.0.0.1:{}", pod["port"]),
                duration(pod["age_s"].as_u64().unwrap_or(0))
            );
        }
    }
    let services = status["services"].as_array().cloned().unwrap_or_default();
    if !services.is_empty() {
        println!();
        println!(
            "{:<20} MESH LISTENER (what the pods' Service URLs point at)",
            "SERVICE"
        );
        for service in &services {
            println!(
                "{:<20} {}",
                service["name"].as_str().unwrap_or("?"),
                service["mesh_url"].as_str().unwrap_or("?")
            );
        }
    }
    let resources = status["resources"].as_array().cloned().unwrap_or_default();
    if !resources.is_empty() {
        println!();
        println!("applied:");
        for resource in &resources {
            println!("  {}", resource.as_str().unwrap_or("?"));
        }
    }
}
