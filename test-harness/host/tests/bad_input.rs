//! Misuse of the ABI gets Envoy's status codes, never a host panic.
//!
//! Each module below is hand-written WebAssembly whose
//! `proxy_on_request_headers` makes one bad hostcall and returns its status
//! as the action, so the test reads the status straight off the result.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use proxy_wasm_harness::{Action, Harness, Plugin, Status};

fn status_of(call: &str) -> Status {
    let wat = format!(
        r#"(module
            (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
            (import "env" "proxy_get_header_map_value" (func $value (param i32 i32 i32 i32 i32) (result i32)))
            (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
            (import "env" "proxy_get_buffer_bytes" (func $buffer (param i32 i32 i32 i32 i32) (result i32)))
            (import "env" "proxy_set_header_map_pairs" (func $set_pairs (param i32 i32 i32) (result i32)))
            (import "env" "proxy_get_property" (func $property (param i32 i32 i32 i32) (result i32)))
            (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))
            (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
            (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 100) "a\00b\00")
            (data (i32.const 200) "\01\00\00\00\05\00\00\00")
            (func (export "proxy_abi_version_0_2_1"))
            (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
            (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
                {call}))"#
    );
    let plugin = Plugin::from_bytes(wat.as_bytes()).unwrap();
    let mut harness = Harness::new();
    let worker = harness.start(&plugin).unwrap();
    let stream = harness.new_stream(worker).unwrap();
    let action = harness
        .request_headers(stream, [(":path", "/")], true)
        .unwrap();
    let code = match action {
        Action::Continue => 0,
        Action::Pause => 1,
        Action::Other(code) => code,
    };
    [
        Status::Ok,
        Status::NotFound,
        Status::BadArgument,
        Status::SerializationFailure,
        Status::ParseFailure,
        Status::BadExpression,
        Status::InvalidMemoryAccess,
        Status::Empty,
        Status::CasMismatch,
    ]
    .into_iter()
    .find(|s| *s as u32 == code)
    .unwrap_or_else(|| panic!("unexpected status {code}"))
}

#[test]
fn out_of_bounds_return_slot_is_invalid_memory_access() {
    assert_eq!(
        status_of("(call $pairs (i32.const 0) (i32.const 0xfffffff0) (i32.const 8))"),
        Status::InvalidMemoryAccess
    );
}

#[test]
fn out_of_bounds_input_is_invalid_memory_access() {
    assert_eq!(
        status_of("(call $log (i32.const 2) (i32.const 65530) (i32.const 100))"),
        Status::InvalidMemoryAccess
    );
    assert_eq!(
        status_of("(call $log (i32.const 2) (i32.const 0xffffffff) (i32.const 2))"),
        Status::InvalidMemoryAccess
    );
}

#[test]
fn unknown_map_type_is_a_bad_argument() {
    assert_eq!(
        status_of(
            "(call $value (i32.const 99) (i32.const 100) (i32.const 1) (i32.const 0) (i32.const 4))"
        ),
        Status::BadArgument
    );
}

#[test]
fn a_map_not_available_yet_has_no_pairs_but_no_value() {
    // Response headers do not exist during the request: Envoy 1.40 lists
    // their pairs as none (Ok) but refuses to read a value from them
    // (test-harness/ENVOY-FACTS.md).
    assert_eq!(
        status_of("(call $pairs (i32.const 2) (i32.const 0) (i32.const 4))"),
        Status::Ok
    );
    assert_eq!(
        status_of(
            "(call $value (i32.const 2) (i32.const 100) (i32.const 1) (i32.const 0) (i32.const 4))"
        ),
        Status::BadArgument
    );
}

#[test]
fn unknown_log_level_is_a_bad_argument() {
    assert_eq!(
        status_of("(call $log (i32.const 9) (i32.const 100) (i32.const 1))"),
        Status::BadArgument
    );
}

#[test]
fn missing_header_is_not_found() {
    assert_eq!(
        status_of(
            "(call $value (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 0) (i32.const 4))"
        ),
        Status::NotFound
    );
}

#[test]
fn body_not_available_is_not_found_and_unknown_buffer_is_bad() {
    assert_eq!(
        status_of(
            "(call $buffer (i32.const 0) (i32.const 0) (i32.const 10) (i32.const 0) (i32.const 4))"
        ),
        Status::NotFound
    );
    assert_eq!(
        status_of(
            "(call $buffer (i32.const 42) (i32.const 0) (i32.const 10) (i32.const 0) (i32.const 4))"
        ),
        Status::BadArgument
    );
}

#[test]
fn malformed_pairs_are_a_bad_argument() {
    // Claims one pair with a 5-byte key, but the data ends.
    assert_eq!(
        status_of("(call $set_pairs (i32.const 0) (i32.const 200) (i32.const 8))"),
        Status::BadArgument
    );
}

#[test]
fn missing_property_is_not_found() {
    assert_eq!(
        status_of("(call $property (i32.const 100) (i32.const 4) (i32.const 0) (i32.const 4))"),
        Status::NotFound
    );
}

#[test]
fn unknown_effective_context_is_a_bad_argument() {
    assert_eq!(
        status_of("(call $effective (i32.const 777))"),
        Status::BadArgument
    );
}

#[test]
fn continue_on_a_network_stream_type_is_a_bad_argument() {
    assert_eq!(
        status_of("(call $continue (i32.const 2))"),
        Status::BadArgument
    );
}

#[test]
fn unknown_metric_is_not_found() {
    assert_eq!(
        status_of("(call $increment (i32.const 4) (i64.const 1))"),
        Status::NotFound
    );
}

#[test]
fn a_trap_in_the_allocator_is_reported_not_panicked() {
    let wat = r#"(module
        (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_memory_allocate") (param i32) (result i32) unreachable)
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
            (call $pairs (i32.const 0) (i32.const 0) (i32.const 4))))"#;
    let mut harness = Harness::new();
    let worker = harness
        .start(&Plugin::from_bytes(wat.as_bytes()).unwrap())
        .unwrap();
    let stream = harness.new_stream(worker).unwrap();
    let error = harness
        .request_headers(stream, [(":path", "/")], true)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("trapped in proxy_on_request_headers"),
        "{error}"
    );
}
