//! (feature `adapter`) What the proxy-wasm adapters of the mesh plugins
//! share, so that each adapter keeps only its own plugin's glue: reading
//! the plugin configuration through [`crate::from_json`], the host clock (an
//! `Option`: a failing host is never read as the epoch), a per-VM random
//! seed, shared data as a [`crate::SharedStore`], one-line logs and
//! string properties. Nothing here decides policy; that lives in the filter
//! crates and the rest of this crate, tested natively. Hostcalls are wasm
//! imports, so this module is exercised through the plugins, in the harness
//! and in Envoy.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, UNIX_EPOCH};

use crate::{ConfigError, EnvLookup, PluginConfig, SharedStore, StoreError};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, Status};

/// Logs one line; a host that refuses the log is not worth failing over.
pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// The plugin configuration buffer; empty when the host has none (which
/// `from_json` reads as `{}`), `Err` when the host refuses the call.
pub fn plugin_configuration() -> Result<Vec<u8>, Status> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .map(Option::unwrap_or_default)
}

/// Reads and validates the plugin configuration, `env` giving the VM's
/// environment. On a refusal it logs one error line, prefixed with
/// `plugin` and naming the field, and returns `None`: the caller returns
/// `false` from `on_configure`.
pub fn configure<C: PluginConfig>(plugin: &str, env: EnvLookup<'_>) -> Option<C> {
    let raw = match plugin_configuration() {
        Ok(raw) => raw,
        Err(status) => {
            log(
                LogLevel::Error,
                &format!("{plugin}: cannot read the plugin configuration: {status:?}"),
            );
            return None;
        }
    };
    match crate::from_json::<C>(&raw, env) {
        Ok(config) => Some(config),
        Err(error) => {
            log_config_error(plugin, &error);
            None
        }
    }
}

/// The one log line of a refused configuration.
pub fn log_config_error(plugin: &str, error: &ConfigError) {
    log(
        LogLevel::Error,
        &format!("{plugin}: invalid configuration: {error}"),
    );
}

/// The VM's environment (WASI): for configurations that name a variable.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The host's wall clock since the epoch; `None` when the host fails (a
/// caller decides what a missing clock means, instead of reading 0).
pub fn now() -> Option<Duration> {
    hostcalls::get_current_time()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
}

/// [`now`] in nanoseconds.
pub fn now_nanos() -> Option<u64> {
    now().and_then(|since| u64::try_from(since.as_nanos()).ok())
}

/// A seed for the VM's sampling generator. std's `RandomState` draws its
/// keys from WASI `random_get`; hashing the host time with it gives each VM
/// its own seed without another crate, and still a varying one on a host
/// whose random source is poor.
pub fn random_seed() -> u64 {
    RandomState::new().hash_one(now_nanos().unwrap_or(0))
}

/// A property as text (`["source", "address"]`, `["xds", "route_name"]`);
/// `None` when missing or refused.
pub fn property(path: Vec<&str>) -> Option<String> {
    hostcalls::get_property(path)
        .ok()
        .flatten()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Proxy-wasm shared data through hostcalls, for [`crate::cas_update`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        hostcalls::get_shared_data(key).map_err(|status| StoreError::Host(format!("{status:?}")))
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(status) => Err(StoreError::Host(format!("{status:?}"))),
        }
    }
}
