//! The proxy-wasm ABI 0.2.1 hostcalls, one module per area, each with its own
//! `add_to_linker`.
//!
//! Every hostcall reads guest memory with bounds checks and answers a bad
//! pointer with `InvalidMemoryAccess`, an unknown enum value with
//! `BadArgument`, and so on, as Envoy does. Only a trap inside the guest's own
//! allocator (called back while a hostcall writes a result) is propagated as a
//! trap.

use wasmtime::{Caller, Linker};

use crate::state::HostState;
use crate::types::Status;

mod buffers;
mod calls;
mod clock;
mod grpc;
mod headers;
mod logging;
mod metrics;
mod properties;
mod shared;
mod streams;

pub(crate) use logging::push as log_host;

/// Registers every hostcall under the `env` module.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    logging::add_to_linker(linker)?;
    clock::add_to_linker(linker)?;
    headers::add_to_linker(linker)?;
    buffers::add_to_linker(linker)?;
    properties::add_to_linker(linker)?;
    shared::add_to_linker(linker)?;
    metrics::add_to_linker(linker)?;
    calls::add_to_linker(linker)?;
    grpc::add_to_linker(linker)?;
    streams::add_to_linker(linker)?;
    Ok(())
}

/// Why a hostcall stopped: a status for the guest, or a trap to propagate.
pub(crate) enum HostError {
    Status(Status),
    Trap(wasmtime::Error),
}

impl From<Status> for HostError {
    fn from(status: Status) -> Self {
        HostError::Status(status)
    }
}

pub(crate) type HostResult<T> = Result<T, HostError>;

/// Turns a hostcall's outcome into its ABI return value.
pub(crate) fn finish(result: HostResult<()>) -> wasmtime::Result<u32> {
    match result {
        Ok(()) => Ok(Status::Ok as u32),
        Err(HostError::Status(status)) => Ok(status as u32),
        Err(HostError::Trap(trap)) => Err(trap),
    }
}

type Ctx<'a> = Caller<'a, HostState>;

fn memory(caller: &Ctx<'_>) -> HostResult<wasmtime::Memory> {
    caller
        .data()
        .memory
        .ok_or(HostError::Status(Status::InvalidMemoryAccess))
}

/// Copies `len` bytes of guest memory at `ptr`, bounds-checked.
pub(crate) fn read_bytes(caller: &Ctx<'_>, ptr: u32, len: u32) -> HostResult<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let memory = memory(caller)?;
    let data = memory.data(caller);
    let start = ptr as usize;
    let end = start
        .checked_add(len as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    data.get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or(HostError::Status(Status::InvalidMemoryAccess))
}

pub(crate) fn read_string(caller: &Ctx<'_>, ptr: u32, len: u32) -> HostResult<String> {
    let bytes = read_bytes(caller, ptr, len)?;
    String::from_utf8(bytes).map_err(|_| HostError::Status(Status::BadArgument))
}

fn write_bytes(caller: &mut Ctx<'_>, ptr: u32, bytes: &[u8]) -> HostResult<()> {
    let memory = memory(caller)?;
    memory
        .write(caller, ptr as usize, bytes)
        .map_err(|_| HostError::Status(Status::InvalidMemoryAccess))
}

pub(crate) fn write_u32(caller: &mut Ctx<'_>, ptr: u32, value: u32) -> HostResult<()> {
    write_bytes(caller, ptr, &value.to_le_bytes())
}

pub(crate) fn write_u64(caller: &mut Ctx<'_>, ptr: u32, value: u64) -> HostResult<()> {
    write_bytes(caller, ptr, &value.to_le_bytes())
}

/// Checks that a return slot of `size` bytes at `ptr` is writable before any
/// guest memory is allocated for the result, so a bad slot does not leak.
fn check_slot(caller: &Ctx<'_>, ptr: u32, size: usize) -> HostResult<()> {
    let memory = memory(caller)?;
    let end = (ptr as usize)
        .checked_add(size)
        .ok_or(Status::InvalidMemoryAccess)?;
    if end > memory.data_size(caller) {
        return Err(Status::InvalidMemoryAccess.into());
    }
    Ok(())
}

/// Allocates guest memory through `proxy_on_memory_allocate`, copies `bytes`
/// into it, and writes the pointer and size to the guest's return slots:
/// how every hostcall hands variable-size data back.
pub(crate) fn return_bytes(
    caller: &mut Ctx<'_>,
    bytes: &[u8],
    ptr_slot: u32,
    size_slot: u32,
) -> HostResult<()> {
    check_slot(caller, ptr_slot, 4)?;
    check_slot(caller, size_slot, 4)?;
    let allocate = caller
        .data()
        .allocate
        .clone()
        .ok_or(HostError::Status(Status::InvalidMemoryAccess))?;
    let len =
        u32::try_from(bytes.len()).map_err(|_| HostError::Status(Status::InvalidMemoryAccess))?;
    let ptr = allocate.call(&mut *caller, len).map_err(HostError::Trap)?;
    if ptr == 0 {
        return Err(Status::InvalidMemoryAccess.into());
    }
    write_bytes(caller, ptr, bytes)?;
    write_u32(caller, ptr_slot, ptr)?;
    write_u32(caller, size_slot, len)?;
    Ok(())
}
