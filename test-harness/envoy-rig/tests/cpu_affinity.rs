//! `EnvoyOptions::cpu_affinity` pins every Envoy thread (what the benchmark relies on).

#![allow(clippy::unwrap_used)] // test code

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Envoy, EnvoyOptions, Listener, Route, RouteAction, RouteMatch, VirtualHost,
};

/// The `Cpus_allowed_list` value of a `/proc/.../status` file.
fn cpus_allowed(status_path: &str) -> String {
    let status = std::fs::read_to_string(status_path).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The highest CPU this test may use: pinning there differs from the
/// default (all CPUs) whenever there are two or more.
fn last_allowed_cpu() -> usize {
    let list = cpus_allowed("/proc/self/status");
    let last = list.rsplit([',', '-']).next().unwrap();
    last.parse().unwrap()
}

#[test]
fn every_envoy_thread_runs_on_the_chosen_cpu() {
    let cpu = last_allowed_cpu();
    let bootstrap = Bootstrap::new().listener(Listener::new("in").virtual_host(
        VirtualHost::new("all").route(Route::new(
            RouteMatch::prefix("/"),
            RouteAction::DirectResponse {
                status: 204,
                body: None,
            },
        )),
    ));
    let envoy =
        Envoy::start_with(&bootstrap, &EnvoyOptions::default().cpu_affinity([cpu])).unwrap();
    // Serving proves the pinned process works, not just that it started.
    let response = Request::get(envoy.url().unwrap()).send().unwrap();
    assert_eq!(response.status, 204);

    let tasks = std::fs::read_dir(format!("/proc/{}/task", envoy.pid())).unwrap();
    let mut threads = 0;
    for task in tasks {
        let status = task.unwrap().path().join("status");
        assert_eq!(cpus_allowed(&status.to_string_lossy()), cpu.to_string());
        threads += 1;
    }
    assert!(threads > 1, "Envoy runs several threads, saw {threads}");
}
