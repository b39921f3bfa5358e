#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real `alerts` binary: configured from the environment, answers the
//! seed's `/status`, and exits cleanly on SIGTERM.

use airport_common::testing::probe_status_then_terminate;

#[test]
fn the_binary_serves_status_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SECTION_DB", dir.path().join("s.db").display().to_string()),
        ("ALERTS_DB", dir.path().join("a.db").display().to_string()),
    ];
    let probe = probe_status_then_terminate(env!("CARGO_BIN_EXE_alerts"), &env).unwrap();
    assert_eq!(probe.code, 200);
    assert_eq!(probe.body, "Alerts v1 : Online");
    assert!(probe.exit.success(), "exit {}", probe.exit);
}
