//! Read, decide, write with compare-and-swap: how every worker VM updates a
//! value in proxy-wasm shared data without losing another worker's update.
//!
//! The rules are proxy-wasm's shared data as Envoy implements it
//! (`proxy_get_shared_data` returns a value and a CAS; `proxy_set_shared_data`
//! with a non-zero CAS fails with `CasMismatch` when another write came
//! between; every write bumps the CAS). [`MemoryStore`] follows them, for
//! tests of the filter crates.

use std::collections::HashMap;

/// Why a shared-data call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Another worker wrote the value since it was read.
    #[error("CAS mismatch")]
    CasMismatch,
    /// Anything else the host answered.
    #[error("{0}")]
    Host(String),
}

/// Shared data as proxy-wasm offers it: a value with a version (CAS), and a
/// conditional write. The adapter implements it with hostcalls; tests with
/// a map.
pub trait SharedStore {
    /// The value and its CAS; `(None, None)` when the key does not exist.
    fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError>;

    /// Writes `value` if the entry's CAS still equals `cas` (`None`: always).
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// Why [`cas_update`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CasError {
    #[error("still contended after {0} attempts")]
    Contended(usize),
    #[error("shared data: {0}")]
    Store(String),
}

/// Reads `key`, lets `decide` compute a result and the new value from what
/// it read (`None`: nothing to write), and writes it only if nobody wrote in
/// between; on a CAS mismatch it reads and decides again, at most `attempts`
/// times. Each decision is made on a fresh read, so no update is lost.
pub fn cas_update<S, T, F>(
    store: &mut S,
    key: &str,
    attempts: usize,
    mut decide: F,
) -> Result<T, CasError>
where
    S: SharedStore + ?Sized,
    F: FnMut(Option<&[u8]>) -> (T, Option<Vec<u8>>),
{
    for _ in 0..attempts {
        let (value, cas) = store.get(key).map_err(|e| CasError::Store(e.to_string()))?;
        let (result, write) = decide(value.as_deref());
        let Some(write) = write else {
            return Ok(result);
        };
        match store.set(key, &write, cas) {
            Ok(()) => return Ok(result),
            Err(StoreError::CasMismatch) => continue,
            Err(e) => return Err(CasError::Store(e.to_string())),
        }
    }
    Err(CasError::Contended(attempts))
}

/// What a rival worker writes, given what it read ([`MemoryStore::rival`]).
pub type Rival = fn(Option<&[u8]>) -> Vec<u8>;

/// Shared data in memory with Envoy's rules (every write bumps the CAS; a
/// write with a stale CAS is refused), plus an optional rival worker that
/// writes between a read and the next write the first `interfere` times:
/// what a test needs to show that no update is lost.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Key to (value, CAS).
    pub entries: HashMap<String, (Vec<u8>, u32)>,
    pub next_cas: u32,
    /// How many of the next reads a rival write follows.
    pub interfere: usize,
    pub rival: Option<Rival>,
    /// When set, every call fails with this host error.
    pub failing: Option<String>,
}

impl MemoryStore {
    /// The value at `key`, if any.
    pub fn value(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(|(value, _)| value.as_slice())
    }
}

impl SharedStore for MemoryStore {
    fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        if let Some(error) = &self.failing {
            return Err(StoreError::Host(error.clone()));
        }
        let found = self.entries.get(key).cloned();
        if self.interfere > 0 {
            self.interfere -= 1;
            if let Some(rival) = self.rival {
                let next = rival(found.as_ref().map(|(v, _)| v.as_slice()));
                self.next_cas += 1;
                self.entries.insert(key.to_string(), (next, self.next_cas));
            }
        }
        Ok(match found {
            Some((value, cas)) => (Some(value), Some(cas)),
            None => (None, None),
        })
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        if let Some(error) = &self.failing {
            return Err(StoreError::Host(error.clone()));
        }
        if let (Some(cas), Some((_, current))) = (cas, self.entries.get(key))
            && cas != *current
        {
            return Err(StoreError::CasMismatch);
        }
        self.next_cas += 1;
        self.entries
            .insert(key.to_string(), (value.to_vec(), self.next_cas));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn increment(value: Option<&[u8]>) -> Vec<u8> {
        let n = value.and_then(|v| v.first().copied()).unwrap_or(0);
        vec![n + 1]
    }

    #[test]
    fn a_rival_write_is_never_lost() {
        let mut store = MemoryStore {
            interfere: 3,
            rival: Some(increment),
            ..MemoryStore::default()
        };
        store.set("k", &[0], None).unwrap();
        let mut decisions = 0;
        cas_update(&mut store, "k", 8, |v| {
            decisions += 1;
            ((), Some(increment(v)))
        })
        .unwrap();
        // Three rival increments and ours: every one counted.
        assert_eq!(store.value("k"), Some(&[4u8][..]));
        assert_eq!(decisions, 4);
    }

    #[test]
    fn gives_up_after_the_bound() {
        let mut store = MemoryStore {
            interfere: 100,
            rival: Some(increment),
            ..MemoryStore::default()
        };
        store.set("k", &[0], None).unwrap();
        let result = cas_update(&mut store, "k", 5, |v| ((), Some(increment(v))));
        assert_eq!(result, Err(CasError::Contended(5)));
    }

    #[test]
    fn nothing_to_write_writes_nothing() {
        let mut store = MemoryStore::default();
        let found = cas_update(&mut store, "k", 1, |v| (v.is_some(), None)).unwrap();
        assert!(!found);
        assert!(store.entries.is_empty());
    }

    #[test]
    fn host_errors_are_reported() {
        let mut store = MemoryStore {
            failing: Some("BadArgument".into()),
            ..MemoryStore::default()
        };
        let result = cas_update(&mut store, "k", 3, |v| ((), Some(increment(v))));
        assert_eq!(result, Err(CasError::Store("BadArgument".into())));
    }

    #[test]
    fn a_stale_cas_is_refused() {
        let mut store = MemoryStore::default();
        store.set("k", b"a", None).unwrap();
        let (_, cas) = store.get("k").unwrap();
        store.set("k", b"b", None).unwrap();
        assert_eq!(store.set("k", b"c", cas), Err(StoreError::CasMismatch));
        assert_eq!(store.value("k"), Some(&b"b"[..]));
    }
}
