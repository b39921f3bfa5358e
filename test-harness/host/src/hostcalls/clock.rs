//! The virtual clock and the tick timer.

use std::time::Duration;

use wasmtime::Linker;

use super::{Ctx, finish, write_u64};
use crate::state::HostState;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut caller: Ctx<'_>, return_time: u32| {
            let now = caller.data().world.clock.wall().as_nanos() as u64;
            finish(write_u64(&mut caller, return_time, now))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut caller: Ctx<'_>, period_ms: u32| {
            let state = caller.data_mut();
            let now = state.world.clock.monotonic();
            let period = Duration::from_millis(u64::from(period_ms));
            // Envoy keeps one tick timer per root context; a period of 0
            // disables it.
            state.vm.tick_period = period;
            state.vm.next_tick = (!period.is_zero()).then(|| now + period);
            finish(Ok(()))
        },
    )?;
    Ok(())
}
