//! Read, decide, write with compare-and-swap: how every worker VM updates a
//! value in proxy-wasm shared data without losing another worker's update.

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

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    /// What a rival worker writes, given what it read.
    pub(crate) type Rival = fn(Option<&[u8]>) -> Vec<u8>;

    /// Shared data with Envoy's rules (a CAS bumps on every write; a write
    /// with a stale CAS is refused), plus a rival worker that writes between
    /// our read and our write the first `interfere` times.
    #[derive(Debug, Default)]
    pub(crate) struct MapStore {
        pub entries: HashMap<String, (Vec<u8>, u32)>,
        pub next_cas: u32,
        pub interfere: usize,
        pub rival: Option<Rival>,
    }

    impl SharedStore for MapStore {
        fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
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

    fn increment(value: Option<&[u8]>) -> Vec<u8> {
        let n = value.and_then(|v| v.first().copied()).unwrap_or(0);
        vec![n + 1]
    }

    #[test]
    fn a_rival_write_is_never_lost() {
        let mut store = MapStore {
            interfere: 3,
            rival: Some(increment),
            ..MapStore::default()
        };
        store.set("k", &[0], None).unwrap();
        let mut decisions = 0;
        cas_update(&mut store, "k", 8, |v| {
            decisions += 1;
            ((), Some(increment(v)))
        })
        .unwrap();
        // Three rival increments and ours: every one counted.
        assert_eq!(store.entries["k"].0, vec![4]);
        assert_eq!(decisions, 4);
    }

    #[test]
    fn gives_up_after_the_bound() {
        let mut store = MapStore {
            interfere: 100,
            rival: Some(increment),
            ..MapStore::default()
        };
        store.set("k", &[0], None).unwrap();
        let result = cas_update(&mut store, "k", 5, |v| ((), Some(increment(v))));
        assert_eq!(result, Err(CasError::Contended(5)));
    }

    #[test]
    fn nothing_to_write_writes_nothing() {
        let mut store = MapStore::default();
        let found = cas_update(&mut store, "k", 1, |v| (v.is_some(), None)).unwrap();
        assert!(!found);
        assert!(store.entries.is_empty());
    }
}
