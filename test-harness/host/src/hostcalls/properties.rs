//! `proxy_get_property` and `proxy_set_property`.
//!
//! A path arrives as NUL-separated segments (`request\0path\0`). Values set by
//! the test or the plugin win; otherwise the well-known attributes are derived
//! from the stream as Envoy derives them: strings as raw bytes, integers as
//! 8 little-endian bytes, maps (`request.headers`) in the pair format.

use wasmtime::Linker;

use super::{Ctx, HostResult, finish, read_bytes, return_bytes};
use crate::headers::HeaderMap;
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
    match segments.as_slice() {
        ["plugin_name"] => Some(vm.plugin_name.clone().into_bytes()),
        ["plugin_root_id"] => Some(vm.root_id.clone().into_bytes()),
        ["plugin_vm_id"] => Some(vm.vm_id.clone().into_bytes()),
        ["node", "metadata"] => Some(encode_struct(&vm.node_metadata)),
        ["node", "metadata", key] => vm.node_metadata.get(*key).map(|v| v.clone().into_bytes()),
        ["source", "address"] => stream.map(|_| vm.source_address.clone().into_bytes()),
        ["source", "port"] => stream.and_then(|_| {
            let port: i64 = vm.source_address.rsplit(':').next()?.parse().ok()?;
            Some(port.to_le_bytes().to_vec())
        }),
        ["request", rest @ ..] => request_attribute(stream?, rest),
        ["response", rest @ ..] => response_attribute(stream?, rest),
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
        ["headers"] => Some(headers.serialize()),
        ["headers", name] => header(name),
        _ => None,
    }
}

fn response_attribute(stream: &HttpStream, rest: &[&str]) -> Option<Vec<u8>> {
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

/// Encodes string-valued node metadata as a protobuf `google.protobuf.Struct`,
/// the bytes Envoy returns for `node.metadata`.
fn encode_struct(fields: &std::collections::BTreeMap<String, String>) -> Vec<u8> {
    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn field(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        varint(bytes.len(), out);
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::new();
    for (key, value) in fields {
        let mut string_value = Vec::new();
        field(0x1a, value.as_bytes(), &mut string_value); // Value.string_value = 3
        let mut entry = Vec::new();
        field(0x0a, key.as_bytes(), &mut entry); // key = 1
        field(0x12, &string_value, &mut entry); // value = 2
        field(0x0a, &entry, &mut out); // Struct.fields = 1
    }
    out
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

    #[test]
    fn struct_encoding_matches_protobuf() {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("a".to_string(), "b".to_string());
        // fields { key: "a" value { string_value: "b" } }
        assert_eq!(
            encode_struct(&fields),
            vec![0x0a, 8, 0x0a, 1, b'a', 0x12, 3, 0x1a, 1, b'b']
        );
    }
}
