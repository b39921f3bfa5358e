//! HTTP callouts, foreign functions and `proxy_get_status` (gRPC callouts are
//! in `grpc`).

use std::time::Duration;

use wasmtime::Linker;

use super::{Ctx, HostResult, finish, read_bytes, read_string, return_bytes, write_u32};
use crate::headers::deserialize_pairs;
use crate::state::{ForeignCall, HostState, HttpCall};
use crate::types::Status;

/// Foreign functions Envoy 1.40 registers that this harness understands.
const KNOWN_FOREIGN_FUNCTIONS: &[&str] = &["clear_route_cache"];

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut caller: Ctx<'_>,
         upstream: u32,
         upstream_size: u32,
         headers: u32,
         headers_size: u32,
         body: u32,
         body_size: u32,
         trailers: u32,
         trailers_size: u32,
         timeout_ms: u32,
         return_token: u32| {
            finish((|| {
                let upstream = read_string(&caller, upstream, upstream_size)?;
                let headers = deserialize_pairs(&read_bytes(&caller, headers, headers_size)?)?;
                let body = read_bytes(&caller, body, body_size)?;
                let trailers = deserialize_pairs(&read_bytes(&caller, trailers, trailers_size)?)?;
                let token = http_call(
                    caller.data_mut(),
                    upstream,
                    headers,
                    body,
                    trailers,
                    timeout_ms,
                )?;
                write_u32(&mut caller, return_token, token)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |mut caller: Ctx<'_>, return_code: u32, return_message: u32, return_message_size: u32| {
            finish((|| {
                let (code, message) = caller.data().vm.last_status.clone();
                write_u32(&mut caller, return_code, code)?;
                // Envoy writes a null pointer for an empty message
                // (`copyToPointerSize`), which SDKs read as "no message".
                if message.is_empty() {
                    write_u32(&mut caller, return_message, 0)?;
                    return write_u32(&mut caller, return_message_size, 0);
                }
                return_bytes(
                    &mut caller,
                    message.as_bytes(),
                    return_message,
                    return_message_size,
                )
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |mut caller: Ctx<'_>,
         name: u32,
         name_size: u32,
         args: u32,
         args_size: u32,
         _results: u32,
         _results_size: u32| {
            finish((|| -> HostResult<()> {
                let name = read_string(&caller, name, name_size)?;
                let arguments = read_bytes(&caller, args, args_size)?;
                if !KNOWN_FOREIGN_FUNCTIONS.contains(&name.as_str()) {
                    return Err(Status::NotFound.into());
                }
                let vm = &mut caller.data_mut().vm;
                let context_id = vm.effective_context;
                vm.foreign_calls.push(ForeignCall {
                    name,
                    arguments,
                    context_id,
                });
                Ok(())
            })())
        },
    )?;
    Ok(())
}

fn http_call(
    state: &mut HostState,
    upstream: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
    timeout_ms: u32,
) -> Result<u32, Status> {
    // A cluster Envoy does not know is refused (`getThreadLocalCluster`
    // finds nothing, `Context::httpCall`).
    if !state.world.knows_cluster(&upstream) {
        return Err(Status::BadArgument);
    }
    let vm = &mut state.vm;
    // Envoy refuses a callout without these three pseudo-headers.
    for required in [":method", ":path", ":authority"] {
        if !headers.iter().any(|(k, v)| k == required && !v.is_empty()) {
            return Err(Status::BadArgument);
        }
    }
    // Envoy reads the timeout as a signed 32-bit int: 2^31 ms or more is
    // negative there, and refused; 0 means no timeout at all
    // (`Context::httpCall`, source/extensions/common/wasm/context.cc).
    if i32::try_from(timeout_ms).is_err() {
        return Err(Status::BadArgument);
    }
    // Envoy's async client sends a body with its length.
    let mut headers = headers;
    if !body.is_empty() {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
        headers.push(("content-length".to_string(), body.len().to_string()));
    }
    vm.last_http_token = vm.last_http_token.wrapping_add(4);
    let token = vm.last_http_token;
    let timeout = Duration::from_millis(u64::from(timeout_ms));
    let deadline = (timeout_ms > 0).then(|| state.world.clock.monotonic() + timeout);
    vm.http_calls.insert(
        token,
        HttpCall {
            token,
            upstream,
            headers,
            body,
            trailers,
            timeout,
            context_id: vm.effective_context,
            deadline,
            offered: false,
        },
    );
    Ok(token)
}
