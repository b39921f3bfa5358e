//! Properties derived from the stream, set by the test, set by the plugin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{ops, plugin};
use proxy_wasm_harness::{Harness, Response};

fn upstream_headers(
    plugin_config: proxy_wasm_harness::Plugin,
    op_list: &[&str],
) -> proxy_wasm_harness::HeaderMap {
    let mut harness = Harness::new();
    let worker = harness.start(&plugin_config).unwrap();
    let exchange = harness
        .exchange(worker, ops("/items?id=7", op_list), |_| Response::ok())
        .unwrap();
    exchange.upstream_request.unwrap().headers
}

#[test]
fn request_attributes_come_from_the_headers() {
    let headers = upstream_headers(
        plugin(),
        &[
            "copy-property request.path x-path",
            "copy-property request.method x-method",
            "copy-property request.url_path x-url-path",
            "copy-property request.host x-host",
            "copy-property source.address x-source",
        ],
    );
    assert_eq!(headers.get("x-path"), Some("/items?id=7"));
    assert_eq!(headers.get("x-method"), Some("GET"));
    assert_eq!(headers.get("x-url-path"), Some("/items"));
    assert_eq!(headers.get("x-host"), Some("example.com"));
    assert_eq!(headers.get("x-source"), Some("127.0.0.1:40000"));
}

#[test]
fn plugin_and_node_properties() {
    let configured = plugin()
        .name("my-plugin")
        .root_id("my-root")
        .node_metadata("ISTIO_VERSION", "1.30.3")
        .source_address("10.0.0.9:1234");
    let headers = upstream_headers(
        configured,
        &[
            "copy-property plugin_name x-name",
            "copy-property plugin_root_id x-root",
            "copy-property xds.node.metadata.ISTIO_VERSION x-istio",
            "copy-property node.metadata.ISTIO_VERSION x-bare-node",
            "copy-property source.address x-source",
        ],
    );
    // Envoy 1.40 answers the node under `xds.` only.
    assert_eq!(headers.get("x-bare-node"), Some("missing"));
    assert_eq!(headers.get("x-name"), Some("my-plugin"));
    assert_eq!(headers.get("x-root"), Some("my-root"));
    assert_eq!(headers.get("x-istio"), Some("1.30.3"));
    assert_eq!(headers.get("x-source"), Some("10.0.0.9:1234"));
}

#[test]
fn a_missing_property_is_not_found() {
    let headers = upstream_headers(plugin(), &["copy-property no.such.thing x-missing"]);
    assert_eq!(headers.get("x-missing"), Some("missing"));
}

#[test]
fn a_property_set_by_the_plugin_reads_back_in_the_same_stream() {
    let headers = upstream_headers(
        plugin(),
        &["set-property my.flag on", "copy-property my.flag x-flag"],
    );
    assert_eq!(headers.get("x-flag"), Some("on"));
}

#[test]
fn a_property_set_by_the_test_is_visible() {
    let mut harness = Harness::new();
    let worker = harness.start(&plugin()).unwrap();
    let s = harness.new_stream(worker).unwrap();
    harness
        .set_property(s, &["connection", "mtls"], "true")
        .unwrap();
    harness
        .request_headers(
            s,
            [
                (":path", "/"),
                ("x-test-op", "copy-property connection.mtls x-mtls"),
            ],
            true,
        )
        .unwrap();
    let headers = harness.stream(s).unwrap().request_headers().unwrap();
    assert_eq!(headers.get("x-mtls"), Some("true"));
}
