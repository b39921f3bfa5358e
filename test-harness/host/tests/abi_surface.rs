//! Every hostcall the Rust SDK 0.2.x imports is provided, with the signature
//! the SDK declares: a module importing all of them instantiates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use proxy_wasm_harness::{Harness, Plugin};

/// (name, params, results) of the 37 hostcalls in proxy-wasm 0.2.5's
/// `hostcalls.rs`, on wasm32 (pointers and sizes are i32).
const HOSTCALLS: &[(&str, &str, &str)] = &[
    ("proxy_log", "i32 i32 i32", "i32"),
    ("proxy_get_log_level", "i32", "i32"),
    ("proxy_get_current_time_nanoseconds", "i32", "i32"),
    ("proxy_set_tick_period_milliseconds", "i32", "i32"),
    ("proxy_get_buffer_bytes", "i32 i32 i32 i32 i32", "i32"),
    ("proxy_set_buffer_bytes", "i32 i32 i32 i32 i32", "i32"),
    ("proxy_get_header_map_pairs", "i32 i32 i32", "i32"),
    ("proxy_set_header_map_pairs", "i32 i32 i32", "i32"),
    ("proxy_get_header_map_value", "i32 i32 i32 i32 i32", "i32"),
    ("proxy_remove_header_map_value", "i32 i32 i32", "i32"),
    (
        "proxy_replace_header_map_value",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    ("proxy_add_header_map_value", "i32 i32 i32 i32 i32", "i32"),
    ("proxy_get_property", "i32 i32 i32 i32", "i32"),
    ("proxy_set_property", "i32 i32 i32 i32", "i32"),
    ("proxy_get_shared_data", "i32 i32 i32 i32 i32", "i32"),
    ("proxy_set_shared_data", "i32 i32 i32 i32 i32", "i32"),
    ("proxy_register_shared_queue", "i32 i32 i32", "i32"),
    ("proxy_resolve_shared_queue", "i32 i32 i32 i32 i32", "i32"),
    ("proxy_dequeue_shared_queue", "i32 i32 i32", "i32"),
    ("proxy_enqueue_shared_queue", "i32 i32 i32", "i32"),
    ("proxy_continue_stream", "i32", "i32"),
    ("proxy_close_stream", "i32", "i32"),
    (
        "proxy_send_local_response",
        "i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "proxy_http_call",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "proxy_grpc_call",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "proxy_grpc_stream",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    ("proxy_grpc_send", "i32 i32 i32 i32", "i32"),
    ("proxy_grpc_cancel", "i32", "i32"),
    ("proxy_grpc_close", "i32", "i32"),
    ("proxy_get_status", "i32 i32 i32", "i32"),
    ("proxy_set_effective_context", "i32", "i32"),
    (
        "proxy_call_foreign_function",
        "i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    ("proxy_done", "", "i32"),
    ("proxy_define_metric", "i32 i32 i32 i32", "i32"),
    ("proxy_get_metric", "i32 i32", "i32"),
    ("proxy_record_metric", "i32 i64", "i32"),
    ("proxy_increment_metric", "i32 i64", "i32"),
];

#[test]
fn all_37_sdk_hostcalls_are_provided() {
    assert_eq!(HOSTCALLS.len(), 37);
    let imports: String = HOSTCALLS
        .iter()
        .map(|(name, params, results)| {
            let params = if params.is_empty() {
                String::new()
            } else {
                format!("(param {params})")
            };
            format!(r#"(import "env" "{name}" (func {params} (result {results})))"#)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let wat = format!(
        r#"(module {imports}
            (memory (export "memory") 1)
            (func (export "proxy_abi_version_0_2_1"))
            (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024)))"#
    );
    let plugin = Plugin::from_bytes(wat.as_bytes()).unwrap();
    Harness::new().start(&plugin).unwrap();
}

#[test]
fn a_module_importing_an_unknown_hostcall_is_refused_at_load() {
    let wat = r#"(module
        (import "env" "proxy_no_such_call" (func (result i32)))
        (memory (export "memory") 1)
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024)))"#;
    let error = Harness::new()
        .start(&Plugin::from_bytes(wat.as_bytes()).unwrap())
        .unwrap_err();
    assert!(error.to_string().contains("proxy_no_such_call"), "{error}");
}
