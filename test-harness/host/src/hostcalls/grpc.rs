//! gRPC callouts: `proxy_grpc_call`, `proxy_grpc_stream`, `proxy_grpc_send`,
//! `proxy_grpc_cancel` and `proxy_grpc_close`, with the checks and status
//! codes of Envoy 1.40 (`Context::grpcCall`, `grpcStream`, `grpcSend`,
//! `grpcClose`, `grpcCancel` in source/extensions/common/wasm/context.cc;
//! the ABI glue in proxy-wasm-cpp-host's src/exports.cc). The answers are
//! delivered by the harness (`Harness::serve_grpc`, `respond_grpc`).

use std::time::Duration;

use wasmtime::Linker;

use super::{Ctx, finish, log_host, read_bytes, write_u32};
use crate::grpc::{GrpcCall, GrpcKind, GrpcTarget, base64, grpc_target};
use crate::headers::deserialize_raw_pairs;
use crate::state::HostState;
use crate::types::{LogLevel, Status};

/// What `proxy_grpc_call` and `proxy_grpc_stream` have in common.
struct Open {
    kind: GrpcKind,
    target: Vec<u8>,
    service: String,
    method: String,
    metadata: Vec<u8>,
    message: Option<Vec<u8>>,
    timeout_ms: u32,
}

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |mut caller: Ctx<'_>,
         target: u32,
         target_size: u32,
         service: u32,
         service_size: u32,
         method: u32,
         method_size: u32,
         metadata: u32,
         metadata_size: u32,
         message: u32,
         message_size: u32,
         timeout_ms: u32,
         return_token: u32| {
            finish((|| {
                let open = Open {
                    kind: GrpcKind::Call,
                    target: read_bytes(&caller, target, target_size)?,
                    service: lossy(read_bytes(&caller, service, service_size)?),
                    method: lossy(read_bytes(&caller, method, method_size)?),
                    metadata: read_bytes(&caller, metadata, metadata_size)?,
                    message: Some(read_bytes(&caller, message, message_size)?),
                    timeout_ms,
                };
                let token = open_grpc(caller.data_mut(), open)?;
                write_u32(&mut caller, return_token, token)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |mut caller: Ctx<'_>,
         target: u32,
         target_size: u32,
         service: u32,
         service_size: u32,
         method: u32,
         method_size: u32,
         metadata: u32,
         metadata_size: u32,
         return_token: u32| {
            finish((|| {
                let open = Open {
                    kind: GrpcKind::Stream,
                    target: read_bytes(&caller, target, target_size)?,
                    service: lossy(read_bytes(&caller, service, service_size)?),
                    method: lossy(read_bytes(&caller, method, method_size)?),
                    metadata: read_bytes(&caller, metadata, metadata_size)?,
                    message: None,
                    timeout_ms: 0,
                };
                let token = open_grpc(caller.data_mut(), open)?;
                write_u32(&mut caller, return_token, token)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        |mut caller: Ctx<'_>, token: u32, message: u32, message_size: u32, end_stream: u32| {
            finish((|| {
                let message = read_bytes(&caller, message, message_size)?;
                Ok(send(caller.data_mut(), token, message, end_stream != 0)?)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_cancel",
        |mut caller: Ctx<'_>, token: u32| {
            finish(cancel(caller.data_mut(), token).map_err(Into::into))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_close",
        |mut caller: Ctx<'_>, token: u32| {
            finish(close(caller.data_mut(), token).map_err(Into::into))
        },
    )?;
    Ok(())
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Envoy's order: parse the upstream bytes (a bare name Envoy does not know
/// is `ParseFailure`, before any token is taken), take a token, create the
/// client, start the stream. A `GrpcService` proto naming an unknown cluster
/// gets past the first check (`skip_cluster_check`) and fails to start: the
/// async client closes it at once with UNAVAILABLE "Cluster not available",
/// a close Envoy defers until the callback returns and delivers for a token
/// the plugin never got, and the hostcall answers `InternalFailure`.
fn open_grpc(state: &mut HostState, open: Open) -> Result<u32, Status> {
    let cluster = match grpc_target(&open.target) {
        GrpcTarget::BareName(name) if state.world.knows_cluster(&name) => name,
        GrpcTarget::BareName(_) => return Err(Status::ParseFailure),
        GrpcTarget::EnvoyGrpc(name) => name,
        GrpcTarget::GoogleGrpc => {
            log_host(
                state,
                LogLevel::Critical,
                "harness: a GrpcService with google_grpc (Envoy's Google gRPC client) is not modelled; use envoy_grpc or a cluster name".to_string(),
            );
            return Err(Status::InternalFailure);
        }
        GrpcTarget::Unset => {
            log_host(
                state,
                LogLevel::Critical,
                "harness: the gRPC upstream parses as a GrpcService proto without envoy_grpc or google_grpc; Envoy has no client for it".to_string(),
            );
            return Err(Status::BadArgument);
        }
    };
    let vm = &mut state.vm;
    let token = match open.kind {
        GrpcKind::Call => {
            vm.last_grpc_call_token = vm.last_grpc_call_token.wrapping_add(4);
            vm.last_grpc_call_token
        }
        GrpcKind::Stream => {
            vm.last_grpc_stream_token = vm.last_grpc_stream_token.wrapping_add(4);
            vm.last_grpc_stream_token
        }
    };
    if !state.world.knows_cluster(&cluster) {
        vm.stray_grpc_closes
            .push((token, 14, "Cluster not available".to_string()));
        return Err(Status::InternalFailure);
    }
    // proxy-wasm-cpp-host's `PairsUtil::toPairs` reads malformed pairs as none.
    let initial_metadata = deserialize_raw_pairs(&open.metadata)
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| {
            let key = String::from_utf8_lossy(key).to_ascii_lowercase();
            let value = if key.ends_with("-bin") {
                base64(value)
            } else {
                String::from_utf8_lossy(value).into_owned()
            };
            (key, value)
        })
        .collect();
    let timeout = Duration::from_millis(u64::from(open.timeout_ms));
    // A unary call's timeout becomes the async request's timeout; 0 sets none.
    let deadline = (open.kind == GrpcKind::Call && open.timeout_ms > 0)
        .then(|| state.world.clock.monotonic() + timeout);
    let call = GrpcCall {
        token,
        kind: open.kind,
        cluster,
        service: open.service,
        method: open.method,
        initial_metadata,
        half_closed: open.message.is_some(),
        messages: open.message.into_iter().collect(),
        timeout,
        context_id: vm.effective_context,
        deadline,
        started: state.world.clock.monotonic(),
        offered: false,
        initial_metadata_delivered: false,
        local_closed: false,
        remote_closed: false,
    };
    vm.grpc_calls.insert(token, call);
    Ok(token)
}

fn is_call(token: u32) -> bool {
    token & 3 == 1
}

fn is_stream(token: u32) -> bool {
    token & 3 == 2
}

/// `grpcSend`: only stream tokens (`BadArgument` otherwise), known ones
/// (`NotFound` otherwise).
fn send(
    state: &mut HostState,
    token: u32,
    message: Vec<u8>,
    end_stream: bool,
) -> Result<(), Status> {
    if !is_stream(token) {
        return Err(Status::BadArgument);
    }
    let call = state
        .vm
        .grpc_calls
        .get_mut(&token)
        .ok_or(Status::NotFound)?;
    if !call.half_closed && !call.remote_closed {
        call.messages.push(message);
        call.half_closed = end_stream;
    }
    Ok(())
}

/// `grpcClose`: a call is cancelled; a stream is half-closed, and forgotten
/// once the server has closed it too.
fn close(state: &mut HostState, token: u32) -> Result<(), Status> {
    let calls = &mut state.vm.grpc_calls;
    if is_call(token) {
        calls.remove(&token).ok_or(Status::NotFound)?;
        return Ok(());
    }
    if !is_stream(token) {
        return Err(Status::BadArgument);
    }
    let call = calls.get_mut(&token).ok_or(Status::NotFound)?;
    call.half_closed = true;
    if call.remote_closed {
        calls.remove(&token);
    } else {
        call.local_closed = true;
    }
    Ok(())
}

/// `grpcCancel`: a call or stream is dropped without any further callback.
fn cancel(state: &mut HostState, token: u32) -> Result<(), Status> {
    if !is_call(token) && !is_stream(token) {
        return Err(Status::BadArgument);
    }
    state
        .vm
        .grpc_calls
        .remove(&token)
        .map(drop)
        .ok_or(Status::NotFound)
}
