//! `proxy_log` and `proxy_get_log_level`.

use wasmtime::Linker;

use super::{Ctx, HostResult, finish, read_bytes, write_u32};
use crate::state::{HostState, LogEntry};
use crate::types::{LogLevel, Status};

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut caller: Ctx<'_>, level: u32, ptr: u32, len: u32| {
            finish(log(&mut caller, level, ptr, len))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut caller: Ctx<'_>, return_level: u32| {
            let level = caller.data().vm.log_level.to_abi();
            finish(write_u32(&mut caller, return_level, level))
        },
    )?;
    Ok(())
}

fn log(caller: &mut Ctx<'_>, level: u32, ptr: u32, len: u32) -> HostResult<()> {
    let level = LogLevel::from_abi(level).ok_or(Status::BadArgument)?;
    let message = String::from_utf8_lossy(&read_bytes(caller, ptr, len)?).into_owned();
    push(caller.data_mut(), level, message);
    Ok(())
}

/// Records a line the way Envoy prints it: only at or above the log level.
pub(crate) fn push(state: &mut HostState, level: LogLevel, message: String) {
    if level >= state.vm.log_level {
        state.vm.logs.push(LogEntry { level, message });
    }
}
