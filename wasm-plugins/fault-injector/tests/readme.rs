//! The README's example configuration is accepted and does what the README
//! says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{send, start};
use proxy_wasm_harness::Request;

fn readme_example() -> String {
    let readme = include_str!("../README.md");
    let start = readme.find("```json\n").expect("a json block") + "```json\n".len();
    let end = start + readme[start..].find("```").expect("end of the block");
    readme[start..end].to_string()
}

#[test]
fn the_readme_example_works() {
    let (mut h, w) = start(&readme_example());
    let exchange = send(
        &mut h,
        w,
        Request::get("/ratings/7").header("end-user", "tester"),
    );
    assert_eq!(exchange.status(), Some(500));
    assert_eq!(
        exchange.response_header("x-fault-injected"),
        Some("abort=500;rule=ratings-tester-500")
    );
    let exchange = send(&mut h, w, Request::get("/ratings/7"));
    assert_eq!(exchange.status(), Some(200));
    let exchange = send(
        &mut h,
        w,
        Request::get("/").header("x-envoy-fault-abort-request", "503"),
    );
    assert_eq!(exchange.status(), Some(200), "only x-chaos-team may ask");
    let exchange = send(
        &mut h,
        w,
        Request::get("/")
            .header("x-chaos-team", "sre")
            .header("x-envoy-fault-abort-request", "503"),
    );
    assert_eq!(exchange.status(), Some(503));
}
