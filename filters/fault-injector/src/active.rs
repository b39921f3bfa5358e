//! The count of faults in progress across every worker, for
//! `maxActiveFaults`: Envoy's fault filter refuses a fault (counting it as
//! an overflow) when `active_faults >= max_active_faults`, so a limit of 0
//! refuses every fault — Envoy's kill switch. The count is a decimal number
//! in shared data, changed only by compare-and-swap
//! ([`mesh_policy::cas_update`]), so it is exact across worker VMs.

use std::collections::HashMap;

use mesh_policy::{SharedStore, cas_update};

/// How many times an update retries after a CAS mismatch before giving up.
/// Each retry means another worker updated the count between our read and
/// our write; Envoy serialises shared-data calls, so a handful suffices.
pub const ACTIVE_FAULTS_CAS_ATTEMPTS: usize = 32;

/// Whether a fault may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The fault holds a slot until [`ActiveFaults::release`].
    Granted,
    /// The limit is reached (always, for a limit of 0): no fault.
    Overflow,
    /// Shared data failed; the fault is not injected (the count must not
    /// drift), and the reason is for one warning line.
    Failed(String),
}

/// The streams holding a slot in this VM, and the cluster-wide count.
#[derive(Debug, Clone, Default)]
pub struct ActiveFaults {
    /// The shared-data key of the count.
    key: String,
    /// Stream id to whether it was counted in shared data (only with a
    /// limit: without one nothing is shared).
    slots: HashMap<u32, bool>,
}

impl ActiveFaults {
    /// `key` names the count in shared data (one per plugin root).
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            slots: HashMap::new(),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Creates the count at 0 if it does not exist yet, so that every later
    /// update is a compare-and-swap (a write to a missing key cannot be).
    /// Call at configure time when the configuration has a limit.
    pub fn create_count<S: SharedStore + ?Sized>(&self, store: &mut S) {
        if matches!(store.get(&self.key), Ok((None, _))) {
            let _ = store.set(&self.key, b"0", None);
        }
    }

    /// Takes a slot for `stream` if `limit` allows (`None`: no limit, and
    /// nothing is shared).
    pub fn acquire<S: SharedStore + ?Sized>(
        &mut self,
        store: &mut S,
        stream: u32,
        limit: Option<u32>,
    ) -> Admission {
        let counted = match limit {
            None => false,
            Some(0) => return Admission::Overflow,
            Some(max) => {
                let taken = cas_update(store, &self.key, ACTIVE_FAULTS_CAS_ATTEMPTS, |value| {
                    let count = read_count(value);
                    if count < u64::from(max) {
                        (true, Some((count + 1).to_string().into_bytes()))
                    } else {
                        (false, None)
                    }
                });
                match taken {
                    Ok(true) => true,
                    Ok(false) => return Admission::Overflow,
                    Err(error) => return Admission::Failed(error.to_string()),
                }
            }
        };
        self.slots.insert(stream, counted);
        Admission::Granted
    }

    /// Gives back `stream`'s slot, if it holds one (so it may be called
    /// from every end of a stream). `Ok(true)` when a slot was released;
    /// `Err` when shared data failed (the slot is forgotten all the same).
    pub fn release<S: SharedStore + ?Sized>(
        &mut self,
        store: &mut S,
        stream: u32,
    ) -> Result<bool, String> {
        let Some(counted) = self.slots.remove(&stream) else {
            return Ok(false);
        };
        if counted {
            cas_update(store, &self.key, ACTIVE_FAULTS_CAS_ATTEMPTS, |value| {
                (
                    (),
                    Some(read_count(value).saturating_sub(1).to_string().into_bytes()),
                )
            })
            .map_err(|error| error.to_string())?;
        }
        Ok(true)
    }

    /// Whether `stream` holds a slot.
    pub fn holds(&self, stream: u32) -> bool {
        self.slots.contains_key(&stream)
    }

    /// How many streams of this VM hold a slot.
    pub fn held(&self) -> usize {
        self.slots.len()
    }
}

/// The count as stored; missing or unreadable counts as 0.
fn read_count(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use mesh_policy::MemoryStore;

    use super::*;

    fn count(store: &MemoryStore, key: &str) -> Option<String> {
        store
            .value(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn the_limit_bounds_faults_across_workers() {
        let mut store = MemoryStore::default();
        // Two worker VMs sharing one count.
        let mut first = ActiveFaults::new("k");
        let mut second = ActiveFaults::new("k");
        first.create_count(&mut store);
        assert_eq!(first.acquire(&mut store, 1, Some(2)), Admission::Granted);
        assert_eq!(second.acquire(&mut store, 1, Some(2)), Admission::Granted);
        assert_eq!(second.acquire(&mut store, 2, Some(2)), Admission::Overflow);
        assert_eq!(count(&store, "k").as_deref(), Some("2"));
        assert_eq!(first.release(&mut store, 1), Ok(true));
        assert_eq!(second.acquire(&mut store, 2, Some(2)), Admission::Granted);
        assert_eq!(count(&store, "k").as_deref(), Some("2"));
    }

    #[test]
    fn zero_is_a_kill_switch() {
        let mut store = MemoryStore::default();
        let mut active = ActiveFaults::new("k");
        active.create_count(&mut store);
        for stream in 0..10 {
            assert_eq!(
                active.acquire(&mut store, stream, Some(0)),
                Admission::Overflow
            );
        }
        assert_eq!(active.held(), 0);
        assert_eq!(count(&store, "k").as_deref(), Some("0"));
    }

    #[test]
    fn without_a_limit_nothing_is_shared() {
        let mut store = MemoryStore::default();
        let mut active = ActiveFaults::new("k");
        assert_eq!(active.acquire(&mut store, 7, None), Admission::Granted);
        assert!(active.holds(7));
        assert_eq!(active.release(&mut store, 7), Ok(true));
        assert!(store.entries.is_empty());
    }

    #[test]
    fn release_is_idempotent() {
        let mut store = MemoryStore::default();
        let mut active = ActiveFaults::new("k");
        active.create_count(&mut store);
        assert_eq!(active.acquire(&mut store, 3, Some(5)), Admission::Granted);
        assert_eq!(active.release(&mut store, 3), Ok(true));
        assert_eq!(active.release(&mut store, 3), Ok(false));
        assert_eq!(count(&store, "k").as_deref(), Some("0"));
    }

    #[test]
    fn a_rival_workers_update_is_never_lost() {
        fn rival(value: Option<&[u8]>) -> Vec<u8> {
            (read_count(value) + 1).to_string().into_bytes()
        }
        let mut store = MemoryStore {
            interfere: 3,
            rival: Some(rival),
            ..MemoryStore::default()
        };
        store.set("k", b"0", None).unwrap();
        let mut active = ActiveFaults::new("k");
        assert_eq!(active.acquire(&mut store, 1, Some(10)), Admission::Granted);
        // Three rival increments, then ours.
        assert_eq!(count(&store, "k").as_deref(), Some("4"));
    }

    #[test]
    fn a_failing_store_refuses_the_fault() {
        let mut store = MemoryStore {
            failing: Some("BadArgument".into()),
            ..MemoryStore::default()
        };
        let mut active = ActiveFaults::new("k");
        assert!(matches!(
            active.acquire(&mut store, 1, Some(3)),
            Admission::Failed(_)
        ));
        assert!(!active.holds(1));
    }
}
