//! `proxy_get_property` and `proxy_set_property`.
//!
//! A path arrives as NUL-separated segments (`request\0path\0`). Values set by
//! the test or the plugin win; otherwise the well-known attributes are derived
//! from the stream as Envoy derives them: strings as raw bytes, integers as
//! 8 little-endian bytes, maps (`request.headers`) in the pair format.

use wasmtime::Linker;

use super::{Ctx, HostResult, finish, read_bytes, return_bytes};
use crate::headers::{HeaderMap, serialize_pairs};
use crate::state::{HostState, HttpStream, VmState};
use crate::types::Status;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut caller: Ctx<'_>, path: u32, path_size: u32, return_data: u32, return_size: u32| {
            finish((|| {
                let path = parse_path(&read_bytes(&caller, path, path_size)?)?;
                let value = lookup(&caller.data().vm, &path).ok_or(Status::NotFound)?;
                return_bytes(&mut caller, &value, return_data, return_size)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut caller: Ctx<'_>, path: u32, path_size: u32, value: u32, value_size: u32| {
            finish((|| -> HostResult<()> {
                let path = parse_path(&read_bytes(&caller, path, path_size)?)?;
                let value = read_bytes(&caller, value, value_size)?;
                let vm = &mut caller.data_mut().vm;
                let context = vm.effective_context;
                match vm.stream_mut(context) {
                    Some(stream) => stream.properties.insert(path, value),
                    None => vm.vm_properties.insert(path, value),
                };
                Ok(())
            })())
        },
    )?;
    Ok(())
}

pub(crate) fn parse_path(bytes: &[u8]) -> Result<Vec<String>, Status> {
    let trimmed = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if trimmed.is_empty() {
        return Err(Status::BadArgument);
    }
    trimmed
        .split(|b| *b == 0)
        .map(|segment| String::from_utf8(segment.to_vec()).map_err(|_| Status::BadArgument))
        .collect()
}

fn lookup(vm: &VmState, path: &[String]) -> Option<Vec<u8>> {
    let stream = vm.streams.get(&vm.effective_context);
    if let Some(value) = stream.and_then(|s| s.properties.get(path)) {
        return Some(value.clone());
    }
    if let Some(value) = vm.vm_properties.get(path) {
        return Some(value.clone());
    }
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let string = |s: &str| Some(s.as_bytes().to_vec());
    let int = |n: i64| Some(n.to_le_bytes().to_vec());
    match segments.as_slice() {
        // The Wasm extension's own tokens (`PROPERTY_TOKENS` in
        // source/extensions/common/wasm/context.cc).
        ["plugin_name"] => string(&vm.plugin_name),
        ["plugin_root_id"] => string(&vm.root_id),
        ["plugin_vm_id"] => string(&vm.vm_id),
        ["connection_id"] => Some(stream?.connection_id.to_le_bytes().to_vec()),
        // Everything else is CEL's attribute vocabulary
        // (source/extensions/filters/common/expr/context.h): `xds.*` for the
        // node and the route, no bare `node`, `cluster_name`, `route_name`.
        ["xds", rest @ ..] => xds_attribute(vm, stream, rest),
        ["source", "address"] => stream.and(string(&vm.source_address)),
        ["source", "port"] => stream.and_then(|_| int(port_of(&vm.source_address)?)),
        ["destination", "address"] => stream.and(string(&vm.destination_address)),
        ["destination", "port"] => stream.and_then(|_| int(port_of(&vm.destination_address)?)),
        ["connection", "id"] => Some(stream?.connection_id.to_le_bytes().to_vec()),
        // A plain-text listener: not mTLS (a CEL bool, one byte).
        ["connection", "mtls"] => stream.map(|_| vec![0]),
        ["request", rest @ ..] => request_attribute(stream?, rest),
        ["response", rest @ ..] => response_attribute(stream?, rest),
        _ => None,
    }
}

fn port_of(address: &str) -> Option<i64> {
    address.rsplit(':').next()?.parse().ok()
}

/// `xds.*`: the node from the bootstrap (answered in any context), and the
/// route a stream took (only in a stream's context).
fn xds_attribute(vm: &VmState, stream: Option<&HttpStream>, rest: &[&str]) -> Option<Vec<u8>> {
    let string = |s: &str| Some(s.as_bytes().to_vec());
    match rest {
        ["node", "id"] => string(&vm.node_id),
        ["node", "cluster"] => string(&vm.node_cluster),
        // A `google.protobuf.Struct` is a CEL map: Envoy serialises it in the
        // pairs format, each value as its own bytes.
        ["node", "metadata"] => Some(serialize_pairs(
            vm.node_metadata
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        )),
        ["node", "metadata", key] => vm.node_metadata.get(*key).map(|v| v.as_bytes().to_vec()),
        ["cluster_name"] => stream.and(vm.route.cluster_name.as_deref().and_then(string)),
        ["route_name"] => stream.and(vm.route.route_name.as_deref().and_then(string)),
        ["virtual_host_name"] => stream.and(vm.route.virtual_host_name.as_deref().and_then(string)),
        // `envoy.config.core.v3.TrafficDirection`: UNSPECIFIED (0) for a
        // listener that does not say.
        ["listener_direction"] => stream.map(|_| 0i64.to_le_bytes().to_vec()),
        _ => None,
    }
}

fn request_attribute(stream: &HttpStream, rest: &[&str]) -> Option<Vec<u8>> {
    let headers = stream.request.headers.as_ref()?;
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes().to_vec());
    match rest {
        ["path"] => header(":path"),
        ["url_path"] => headers
            .get(":path")
            .map(|p| p.split('?').next().unwrap_or(p).as_bytes().to_vec()),
        ["query"] => headers.get(":path").map(|p| {
            p.split_once('?')
                .map(|(_, q)| q)
                .unwrap_or("")
                .as_bytes()
                .to_vec()
        }),
        ["method"] => header(":method"),
        ["host"] => header(":authority"),
        ["scheme"] => header(":scheme"),
        ["id"] => header("x-request-id"),
        ["referer"] => header("referer"),
        ["useragent"] => header("user-agent"),
        ["protocol"] => Some(b"HTTP/1.1".to_vec()),
        ["time"] => Some(stream.started_nanos.to_le_bytes().to_vec()),
        // Body bytes received so far.
        ["size"] => Some((request_body_len(stream) as i64).to_le_bytes().to_vec()),
        ["headers"] => Some(headers.serialize()),
        ["headers", name] => header(name),
        _ => None,
    }
}

/// What has gone upstream plus what the plugin holds (the current chunk, or
/// everything buffered so far).
fn request_body_len(stream: &HttpStream) -> usize {
    let held = stream.request.body.as_ref().map_or(0, Vec::len);
    stream.request.forwarded_body.len() + held
}

fn response_attribute(stream: &HttpStream, rest: &[&str]) -> Option<Vec<u8>> {
    match rest {
        // No response flags: nothing went wrong in the proxy.
        ["flags"] => return Some(0u64.to_le_bytes().to_vec()),
        ["size"] => {
            let size = stream.response.forwarded_body.len() as u64;
            return Some(size.to_le_bytes().to_vec());
        }
        _ => {}
    }
    let headers: &HeaderMap = stream.response.headers.as_ref()?;
    match rest {
        ["code"] => {
            let code: i64 = headers.get(":status")?.parse().ok()?;
            Some(code.to_le_bytes().to_vec())
        }
        ["headers"] => Some(headers.serialize()),
        ["headers", name] => headers.get(name).map(|v| v.as_bytes().to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_on_nul_with_or_without_trailing_nul() {
        assert_eq!(
            parse_path(b"request\0path\0").unwrap(),
            vec!["request", "path"]
        );
        assert_eq!(parse_path(b"plugin_name").unwrap(), vec!["plugin_name"]);
        assert_eq!(parse_path(b""), Err(Status::BadArgument));
    }
}
