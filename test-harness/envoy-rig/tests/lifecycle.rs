//! Readiness, parallel Envoys, clean shutdown, and clear errors.

use std::path::Path;

use envoy_rig::client::Request;
use envoy_rig::{
    Bootstrap, Cluster, Envoy, EnvoyOptions, Listener, RigError, Route, RouteAction, RouteMatch,
    Upstream, VirtualHost,
};

fn direct_response_bootstrap() -> Bootstrap {
    Bootstrap::new().listener(
        Listener::new("ingress").virtual_host(VirtualHost::new("app").route(Route::new(
            RouteMatch::prefix("/"),
            RouteAction::DirectResponse {
                status: 204,
                body: None,
            },
        ))),
    )
}

#[test]
fn start_returns_a_live_envoy_and_drop_removes_the_process() {
    let envoy = Envoy::start(&direct_response_bootstrap()).unwrap();
    let pid = envoy.pid();

    let ready = Request::get(format!("{}/ready", envoy.admin_url()))
        .send()
        .unwrap();
    assert_eq!(ready.text().trim(), "LIVE");
    assert_ne!(envoy.listener_addr("ingress").unwrap().port(), 0);
    let response = Request::get(format!("{}/", envoy.url().unwrap()))
        .send()
        .unwrap();
    assert_eq!(response.status, 204);
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let dir = envoy.dir().to_path_buf();

    drop(envoy);

    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(!dir.exists());
}

#[test]
fn envoys_run_side_by_side() {
    let first = Envoy::start(&direct_response_bootstrap()).unwrap();
    let second = Envoy::start(&direct_response_bootstrap()).unwrap();

    assert_ne!(first.admin_addr(), second.admin_addr());
    assert_ne!(first.url().unwrap(), second.url().unwrap());
    for envoy in [&first, &second] {
        let response = Request::get(envoy.url().unwrap()).send().unwrap();
        assert_eq!(response.status, 204);
    }
}

#[test]
fn log_holds_envoy_output_at_the_chosen_level() {
    let options = EnvoyOptions::default().concurrency(2).log_level("debug");
    let envoy = Envoy::start_with(&direct_response_bootstrap(), &options).unwrap();

    let log = envoy.log();
    assert!(log.contains("[debug]"), "{log}");
    assert!(envoy.stat("server.concurrency").unwrap() == Some(2));
}

#[test]
fn a_rejected_bootstrap_fails_with_envoys_reason() {
    let upstream = Upstream::start("v1").unwrap();
    // Two clusters with one name: Envoy refuses the bootstrap.
    let bootstrap = direct_response_bootstrap()
        .cluster(Cluster::new("dup", upstream.port()))
        .cluster(Cluster::new("dup", upstream.port()));

    let err = Envoy::start(&bootstrap).unwrap_err();

    assert!(matches!(err, RigError::EnvoyExited { .. }), "{err}");
    assert!(err.to_string().contains("dup"), "{err}");
    assert!(matches!(
        Envoy::validate(&bootstrap, &EnvoyOptions::default()),
        Err(RigError::InvalidBootstrap { .. })
    ));
    assert!(Envoy::validate(&direct_response_bootstrap(), &EnvoyOptions::default()).is_ok());
}

#[test]
fn a_missing_binary_says_how_to_install_it() {
    let options = EnvoyOptions {
        binary: Some("/nonexistent/envoy".into()),
        ..EnvoyOptions::default()
    };

    let err = Envoy::start_with(&direct_response_bootstrap(), &options).unwrap_err();

    assert_eq!(
        err.to_string(),
        "Envoy not found at /nonexistent/envoy: run `make envoy` (or set ENVOY_BIN)"
    );
}
