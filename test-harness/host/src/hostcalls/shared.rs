//! Shared data (with Envoy's CAS rules) and shared queues.

use wasmtime::Linker;

use super::{Ctx, HostResult, finish, read_bytes, read_string, return_bytes, write_u32};
use crate::state::HostState;
use crate::types::Status;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut caller: Ctx<'_>,
         key: u32,
         key_size: u32,
         return_data: u32,
         return_size: u32,
         return_cas: u32| {
            finish((|| {
                let key = read_string(&caller, key, key_size)?;
                let (value, cas) = {
                    let state = caller.data();
                    state.world.shared().get(&state.vm.vm_id, &key)?
                };
                // Check the CAS slot first so a bad pointer allocates nothing.
                write_u32(&mut caller, return_cas, cas)?;
                return_bytes(&mut caller, &value, return_data, return_size)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |caller: Ctx<'_>, key: u32, key_size: u32, value: u32, value_size: u32, cas: u32| {
            finish((|| -> HostResult<()> {
                let key = read_string(&caller, key, key_size)?;
                let value = read_bytes(&caller, value, value_size)?;
                let state = caller.data();
                Ok(state
                    .world
                    .shared()
                    .set(&state.vm.vm_id, &key, &value, cas)?)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut caller: Ctx<'_>, name: u32, name_size: u32, return_id: u32| {
            finish((|| {
                let name = read_string(&caller, name, name_size)?;
                let token = {
                    let state = caller.data();
                    // The queue belongs to the root context of this VM.
                    let vm = &state.vm;
                    state.world.shared().register_queue(
                        &vm.vm_id,
                        &name,
                        vm.worker,
                        vm.root_context,
                    )
                };
                write_u32(&mut caller, return_id, token)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut caller: Ctx<'_>,
         vm_id: u32,
         vm_id_size: u32,
         name: u32,
         name_size: u32,
         return_id: u32| {
            finish((|| {
                let mut vm_id = read_string(&caller, vm_id, vm_id_size)?;
                let name = read_string(&caller, name, name_size)?;
                // An empty VM id names the caller's own VM
                // (proxy-wasm-cpp-host's `resolveSharedQueue`).
                if vm_id.is_empty() {
                    vm_id = caller.data().vm.vm_id.clone();
                }
                let token = caller
                    .data()
                    .world
                    .shared()
                    .resolve_queue(&vm_id, &name)
                    .ok_or(Status::NotFound)?;
                write_u32(&mut caller, return_id, token)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |caller: Ctx<'_>, token: u32, value: u32, value_size: u32| {
            finish((|| -> HostResult<()> {
                let value = read_bytes(&caller, value, value_size)?;
                caller.data().world.shared().enqueue(token, &value)?;
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut caller: Ctx<'_>, token: u32, return_data: u32, return_size: u32| {
            finish((|| {
                let value = caller.data().world.shared().dequeue(token)?;
                return_bytes(&mut caller, &value, return_data, return_size)
            })())
        },
    )?;
    Ok(())
}
