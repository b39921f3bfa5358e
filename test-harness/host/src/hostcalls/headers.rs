//! Header map hostcalls: get, get pairs, set pairs, add, replace, remove.

use wasmtime::Linker;

use super::{Ctx, HostError, HostResult, finish, read_bytes, read_string, return_bytes};
use crate::headers::{HeaderMap, deserialize_pairs};
use crate::state::{Direction, HostState};
use crate::types::{MapType, Status};

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut caller: Ctx<'_>, map_type: u32, return_data: u32, return_size: u32| {
            finish((|| {
                // Envoy answers a map that does not exist (yet) with no
                // pairs, not an error: `getHeaderMapPairs` serialises
                // whatever `getConstMap` returns, null included.
                let bytes = match with_map(&mut caller, map_type, Access::Read, |map| {
                    Ok(map.serialize())
                }) {
                    Err(HostError::Status(Status::BadArgument))
                        if MapType::from_abi(map_type).is_some() =>
                    {
                        HeaderMap::new().serialize()
                    }
                    other => other?,
                };
                return_bytes(&mut caller, &bytes, return_data, return_size)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut caller: Ctx<'_>, map_type: u32, data: u32, size: u32| {
            finish((|| {
                let bytes = read_bytes(&caller, data, size)?;
                let pairs = deserialize_pairs(&bytes)?;
                with_map(&mut caller, map_type, Access::Write, |map| {
                    *map = pairs.into_iter().collect();
                    Ok(())
                })
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut caller: Ctx<'_>,
         map_type: u32,
         key: u32,
         key_size: u32,
         return_data: u32,
         return_size: u32| {
            finish((|| {
                let key = read_string(&caller, key, key_size)?;
                let value = with_map(&mut caller, map_type, Access::Read, |map| {
                    map.get(&key).map(str::to_owned).ok_or(Status::NotFound)
                })?;
                return_bytes(&mut caller, value.as_bytes(), return_data, return_size)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut caller: Ctx<'_>,
         map_type: u32,
         key: u32,
         key_size: u32,
         value: u32,
         value_size: u32| {
            finish((|| {
                let key = read_string(&caller, key, key_size)?;
                let value = read_string(&caller, value, value_size)?;
                with_map(&mut caller, map_type, Access::Write, |map| {
                    map.add(&key, &value);
                    Ok(())
                })
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut caller: Ctx<'_>,
         map_type: u32,
         key: u32,
         key_size: u32,
         value: u32,
         value_size: u32| {
            finish((|| {
                let key = read_string(&caller, key, key_size)?;
                let value = read_string(&caller, value, value_size)?;
                with_map(&mut caller, map_type, Access::Write, |map| {
                    map.replace(&key, &value);
                    Ok(())
                })
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut caller: Ctx<'_>, map_type: u32, key: u32, key_size: u32| {
            finish((|| {
                let key = read_string(&caller, key, key_size)?;
                with_map(&mut caller, map_type, Access::Write, |map| {
                    map.remove(&key);
                    Ok(())
                })
            })())
        },
    )?;
    Ok(())
}

/// Whether a hostcall reads a map or changes it: only a change creates the
/// trailers of a stream that has none (see [`with_map`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Runs `f` on the map `map_type` names for the effective context. A map that
/// does not exist (yet) for this context is a `BadArgument`, as in Envoy
/// ("requested map type is not currently available"), with one exception
/// Envoy makes (`Context::getMap` in source/extensions/common/wasm/context.cc):
/// changing the trailers of a direction that has none, from that direction's
/// body callback with `end_of_stream`, creates them (Envoy's
/// `addDecodedTrailers` / `addEncodedTrailers`).
fn with_map<T>(
    caller: &mut Ctx<'_>,
    map_type: u32,
    access: Access,
    f: impl FnOnce(&mut HeaderMap) -> Result<T, Status>,
) -> HostResult<T> {
    let map_type = MapType::from_abi(map_type).ok_or(Status::BadArgument)?;
    let vm = &mut caller.data_mut().vm;
    let body_end = vm.body_end_of_stream;
    let map = match map_type {
        MapType::HttpCallResponseHeaders => vm.delivering_callout.as_mut().map(|c| &mut c.headers),
        MapType::HttpCallResponseTrailers => {
            vm.delivering_callout.as_mut().map(|c| &mut c.trailers)
        }
        // Readable during the gRPC callback that delivers them; never
        // writable (Envoy's `getMap` has no mutable gRPC maps).
        MapType::GrpcReceiveInitialMetadata if access == Access::Read => {
            vm.delivering_grpc.initial_metadata.as_mut()
        }
        MapType::GrpcReceiveTrailingMetadata if access == Access::Read => {
            vm.delivering_grpc.trailing_metadata.as_mut()
        }
        MapType::GrpcReceiveInitialMetadata | MapType::GrpcReceiveTrailingMetadata => None,
        stream_map => {
            let stream = vm.effective_stream_mut()?;
            let creates = |direction| access == Access::Write && body_end == Some(direction);
            match stream_map {
                MapType::RequestHeaders => stream.request.headers.as_mut(),
                MapType::RequestTrailers if creates(Direction::Request) => {
                    Some(stream.request.trailers.get_or_insert_with(HeaderMap::new))
                }
                MapType::RequestTrailers => stream.request.trailers.as_mut(),
                MapType::ResponseHeaders => stream.response.headers.as_mut(),
                _ if creates(Direction::Response) => {
                    Some(stream.response.trailers.get_or_insert_with(HeaderMap::new))
                }
                _ => stream.response.trailers.as_mut(),
            }
        }
    };
    let map = map.ok_or(Status::BadArgument)?;
    Ok(f(map)?)
}
