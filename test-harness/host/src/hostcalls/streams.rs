//! Stream control: continue, close, local responses, the effective context
//! and `proxy_done`.

use wasmtime::Linker;

use super::{Ctx, HostResult, finish, read_bytes, read_string};
use crate::headers::deserialize_pairs;
use crate::state::{Direction, HostState, LocalResponse};
use crate::types::{Status, StreamType};

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut caller: Ctx<'_>, stream_type: u32| {
            finish(continue_stream(caller.data_mut(), stream_type))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_close_stream",
        |mut caller: Ctx<'_>, stream_type: u32| {
            finish(close_stream(caller.data_mut(), stream_type))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut caller: Ctx<'_>,
         status: u32,
         details: u32,
         details_size: u32,
         body: u32,
         body_size: u32,
         headers: u32,
         headers_size: u32,
         grpc_status: i32| {
            finish((|| {
                let details = read_string(&caller, details, details_size)?;
                let body = read_bytes(&caller, body, body_size)?;
                let headers = deserialize_pairs(&read_bytes(&caller, headers, headers_size)?)?;
                let response = LocalResponse {
                    status,
                    headers,
                    body,
                    details,
                    grpc_status: (grpc_status >= 0).then_some(grpc_status),
                };
                send_local_response(caller.data_mut(), response)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut caller: Ctx<'_>, context: u32| {
            let vm = &mut caller.data_mut().vm;
            if !vm.context_exists(context) {
                return finish(Err(Status::BadArgument.into()));
            }
            vm.effective_context = context;
            finish(Ok(()))
        },
    )?;
    linker.func_wrap("env", "proxy_done", |mut caller: Ctx<'_>| {
        caller.data_mut().vm.root_done = true;
        finish(Ok(()))
    })?;
    Ok(())
}

/// Envoy defers the continue until the current callback returns; the harness
/// applies it then (see `Side::apply_resume`).
fn continue_stream(state: &mut HostState, stream_type: u32) -> HostResult<()> {
    let direction = http_direction(stream_type)?;
    let vm = &mut state.vm;
    let context = vm.effective_context;
    // On a root context Envoy has no stream to continue and says Ok.
    if let Some(stream) = vm.stream_mut(context) {
        stream.side_mut(direction).pending_resume = true;
    }
    Ok(())
}

fn close_stream(state: &mut HostState, stream_type: u32) -> HostResult<()> {
    let direction = http_direction(stream_type)?;
    let vm = &mut state.vm;
    let context = vm.effective_context;
    if let Some(stream) = vm.stream_mut(context) {
        stream.side_mut(direction).closed = true;
    }
    Ok(())
}

/// The HTTP direction a stream type names; the network stream types do not
/// apply to an HTTP plugin (`BadArgument`, as in Envoy).
fn http_direction(stream_type: u32) -> HostResult<Direction> {
    match StreamType::from_abi(stream_type) {
        Some(StreamType::HttpRequest) => Ok(Direction::Request),
        Some(StreamType::HttpResponse) => Ok(Direction::Response),
        _ => Err(Status::BadArgument.into()),
    }
}

/// Envoy sends one local reply per stream (a second is a `BadArgument`) after
/// the current callback returns.
fn send_local_response(state: &mut HostState, response: LocalResponse) -> HostResult<()> {
    let vm = &mut state.vm;
    let context = vm.effective_context;
    let Some(stream) = vm.stream_mut(context) else {
        return Ok(());
    };
    if stream.local_response.is_some() {
        return Err(Status::BadArgument.into());
    }
    stream.local_response = Some(response);
    Ok(())
}
