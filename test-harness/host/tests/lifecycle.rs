//! VM start, configuration, traps and streams in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{ops, plugin, start};
use proxy_wasm_harness::{
    Action, Flow, Harness, HarnessError, LogLevel, Plugin, Request, Response,
};

#[test]
fn configures_and_logs_the_vm_configuration() {
    let mut harness = Harness::new();
    let worker = harness.start(&plugin().vm_config("hello-vm")).unwrap();
    let info = harness.logs_at(worker, LogLevel::Info).unwrap();
    assert_eq!(info, vec!["vm_start configuration=hello-vm", "configured"]);
}

#[test]
fn refused_configuration_is_a_typed_error_with_the_log_line() {
    let mut harness = Harness::new();
    let error = harness
        .start(&plugin().plugin_config(r#"{"tickMs": "soon"}"#))
        .unwrap_err();
    assert!(
        matches!(error, HarnessError::ConfigureFailed { .. }),
        "{error}"
    );
    let errors: Vec<_> = error
        .logs()
        .iter()
        .filter(|l| l.level == LogLevel::Error)
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .message
            .starts_with("invalid plugin configuration"),
        "{errors:?}"
    );
}

#[test]
fn refused_vm_start_is_a_typed_error() {
    let mut harness = Harness::new();
    let error = harness.start(&plugin().vm_config("fail")).unwrap_err();
    assert!(
        matches!(error, HarnessError::VmStartFailed { .. }),
        "{error}"
    );
}

#[test]
fn a_trap_fails_the_vm_and_not_the_test() {
    let (mut harness, worker) = start("");
    let error = harness
        .exchange(worker, ops("/", &["trap"]), |_| Response::ok())
        .unwrap_err();
    match &error {
        HarnessError::Trap {
            callback,
            message,
            logs,
        } => {
            assert_eq!(callback, "proxy_on_request_headers");
            assert!(message.contains("unreachable"), "{message}");
            // The SDK's panic hook logs the panic message before aborting.
            assert!(
                logs.iter()
                    .any(|l| l.level == LogLevel::Critical && l.message.contains("asked to trap")),
                "{logs:?}"
            );
        }
        other => panic!("expected a trap, got {other}"),
    }
    assert!(harness.failure(worker).unwrap().is_some());
    let next = harness.exchange(worker, Request::get("/"), |_| Response::ok());
    assert!(matches!(next, Err(HarnessError::VmFailed(_))), "{next:?}");
}

#[test]
fn several_streams_are_in_flight_at_once() {
    let (mut harness, worker) = start("");
    let a = harness.new_stream(worker).unwrap();
    let b = harness.new_stream(worker).unwrap();
    assert_ne!(a, b);
    let action_a = harness
        .request_headers(
            a,
            [
                (":path", "/a"),
                ("x-test-op", "add-response-header x-which a"),
            ],
            true,
        )
        .unwrap();
    let action_b = harness
        .request_headers(
            b,
            [
                (":path", "/b"),
                ("x-test-op", "add-response-header x-which b"),
            ],
            true,
        )
        .unwrap();
    assert_eq!((action_a, action_b), (Action::Continue, Action::Continue));
    // Answer them in the opposite order.
    harness
        .response_headers(b, [(":status", "200")], true)
        .unwrap();
    harness
        .response_headers(a, [(":status", "201")], true)
        .unwrap();
    let a_headers = harness
        .stream(a)
        .unwrap()
        .response_headers()
        .unwrap()
        .clone();
    let b_headers = harness
        .stream(b)
        .unwrap()
        .response_headers()
        .unwrap()
        .clone();
    assert_eq!(a_headers.get("x-which"), Some("a"));
    assert_eq!(b_headers.get("x-which"), Some("b"));
    assert_eq!(a_headers.get("x-test-plugin-saw-status"), Some("201"));
    assert_eq!(harness.stream(a).unwrap().request_flow(), Flow::Flowing);
    let finished = harness.finish_stream(a).unwrap();
    assert_eq!(
        finished.response_headers().unwrap().get("x-which"),
        Some("a")
    );
    assert!(harness.stream(a).is_err(), "a finished stream is gone");
    let logs = harness.logs_at(worker, LogLevel::Info).unwrap();
    assert!(logs.contains(&"on_log response.code=201"), "{logs:?}");
}

#[test]
fn workers_are_independent_vms_sharing_metrics() {
    let mut harness = Harness::new();
    let workers = harness.start_workers(&plugin(), 3).unwrap();
    for worker in &workers {
        harness
            .exchange(*worker, Request::get("/"), |_| Response::ok())
            .unwrap();
    }
    assert_eq!(harness.counter("test_plugin.requests"), Some(3));
}

#[test]
fn a_module_without_the_abi_export_is_refused() {
    let error = Plugin::from_bytes(br#"(module (memory (export "memory") 1))"#)
        .and_then(|p| Harness::new().start(&p).map(|_| ()))
        .unwrap_err();
    assert!(matches!(error, HarnessError::UnsupportedAbi), "{error}");
}

#[test]
fn stdout_through_wasi_is_captured() {
    let wat = r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 16) "hi from wasi\n")
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const 13))
            (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
            (i32.const 1)))"#;
    let mut harness = Harness::new();
    let worker = harness
        .start(&Plugin::from_bytes(wat.as_bytes()).unwrap())
        .unwrap();
    assert_eq!(harness.stdio(worker).unwrap().0, "hi from wasi\n");
}
