//! Buffer hostcalls: bodies, callout bodies and the configuration buffers.

use wasmtime::Linker;

use super::{Ctx, HostResult, finish, read_bytes, return_bytes};
use crate::state::{ConfigPhase, HostState};
use crate::types::{BufferType, Status};

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut caller: Ctx<'_>,
         buffer_type: u32,
         start: u32,
         max_size: u32,
         return_data: u32,
         return_size: u32| {
            finish(get_buffer(
                &mut caller,
                buffer_type,
                start,
                max_size,
                return_data,
                return_size,
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut caller: Ctx<'_>,
         buffer_type: u32,
         start: u32,
         size: u32,
         data: u32,
         data_size: u32| {
            finish((|| {
                let data = read_bytes(&caller, data, data_size)?;
                set_buffer(
                    &mut caller,
                    buffer_type,
                    start as usize,
                    size as usize,
                    &data,
                )
            })())
        },
    )?;
    Ok(())
}

fn get_buffer(
    caller: &mut Ctx<'_>,
    buffer_type: u32,
    start: u32,
    max_size: u32,
    return_data: u32,
    return_size: u32,
) -> HostResult<()> {
    let buffer_type = BufferType::from_abi(buffer_type).ok_or(Status::BadArgument)?;
    let (start, max_size) = (start as usize, max_size as usize);
    if start.checked_add(max_size).is_none() {
        return Err(Status::BadArgument.into());
    }
    let slice = {
        let buffer = readable(caller.data(), buffer_type)?;
        if start > buffer.len() {
            return Err(Status::BadArgument.into());
        }
        let end = buffer.len().min(start + max_size);
        buffer[start..end].to_vec()
    };
    // Envoy answers an empty range with Ok and writes nothing.
    if slice.is_empty() {
        return Ok(());
    }
    return_bytes(caller, &slice, return_data, return_size)
}

fn readable(state: &HostState, buffer_type: BufferType) -> Result<&[u8], Status> {
    let vm = &state.vm;
    match buffer_type {
        BufferType::RequestBody => vm
            .effective_stream()?
            .request
            .body
            .as_deref()
            .ok_or(Status::NotFound),
        BufferType::ResponseBody => vm
            .effective_stream()?
            .response
            .body
            .as_deref()
            .ok_or(Status::NotFound),
        BufferType::HttpCallResponseBody => vm
            .delivering_callout
            .as_ref()
            .map(|c| c.body.as_slice())
            .ok_or(Status::NotFound),
        // Envoy's `getBuffer` always has a buffer here, empty outside a
        // gRPC callback (`rootContext()->grpc_receive_buffer_`).
        BufferType::GrpcReceiveBuffer => {
            Ok(vm.delivering_grpc.message.as_deref().unwrap_or_default())
        }
        BufferType::VmConfiguration => Ok(&vm.vm_config),
        // Envoy hands out the plugin configuration only while configuring.
        BufferType::PluginConfiguration if vm.config_phase == ConfigPhase::Configure => {
            Ok(&vm.plugin_config)
        }
        _ => Err(Status::NotFound),
    }
}

/// Envoy's `Buffer::copyFrom`: `start == 0` drains `size` bytes and prepends
/// the data (so `size >= len` replaces everything), `start >= len` appends,
/// anything in between is a `BadArgument`. Read-only buffers are `NotFound`.
fn set_buffer(
    caller: &mut Ctx<'_>,
    buffer_type: u32,
    start: usize,
    size: usize,
    data: &[u8],
) -> HostResult<()> {
    let buffer_type = BufferType::from_abi(buffer_type).ok_or(Status::BadArgument)?;
    let vm = &mut caller.data_mut().vm;
    let buffer = match buffer_type {
        BufferType::RequestBody => vm.effective_stream_mut()?.request.body.as_mut(),
        BufferType::ResponseBody => vm.effective_stream_mut()?.response.body.as_mut(),
        BufferType::HttpCallResponseBody => vm.delivering_callout.as_mut().map(|c| &mut c.body),
        BufferType::GrpcReceiveBuffer => vm.delivering_grpc.message.as_mut(),
        _ => None,
    }
    .ok_or(Status::NotFound)?;
    if start == 0 {
        let drained = size.min(buffer.len());
        buffer.splice(0..drained, data.iter().copied());
        Ok(())
    } else if start >= buffer.len() {
        buffer.extend_from_slice(data);
        Ok(())
    } else {
        Err(Status::BadArgument.into())
    }
}
