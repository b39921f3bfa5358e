//! State that Envoy keeps per process and every worker VM sees: the clock,
//! shared data, shared queues and the stats store.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::types::{MetricType, Status};

/// The virtual clock: nothing moves unless a test advances it.
#[derive(Debug, Clone)]
pub(crate) struct VirtualClock {
    inner: Arc<Mutex<ClockState>>,
}

#[derive(Debug)]
struct ClockState {
    /// Wall-clock time since the Unix epoch.
    wall: Duration,
    /// Monotonic time since the harness started.
    monotonic: Duration,
}

impl VirtualClock {
    pub(crate) fn new(start_wall: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ClockState {
                wall: start_wall,
                monotonic: Duration::ZERO,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ClockState> {
        // A poisoned lock only means another test thread panicked while holding
        // it; the clock's data cannot be left half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn wall(&self) -> Duration {
        self.lock().wall
    }

    pub(crate) fn monotonic(&self) -> Duration {
        self.lock().monotonic
    }

    pub(crate) fn advance(&self, by: Duration) {
        let mut state = self.lock();
        state.wall += by;
        state.monotonic += by;
    }
}

impl wasmtime_wasi::HostWallClock for VirtualClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        self.wall()
    }
}

impl wasmtime_wasi::HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.monotonic().as_nanos() as u64
    }
}

/// Shared data and queues with proxy-wasm-cpp-host's exact rules.
#[derive(Debug)]
pub(crate) struct SharedStore {
    /// Per VM id: key to (value, cas).
    data: HashMap<String, HashMap<String, (Vec<u8>, u32)>>,
    next_cas: u32,
    queues: HashMap<u32, SharedQueue>,
    queue_tokens: HashMap<(String, String), u32>,
    next_queue_token: u32,
    /// `proxy_on_queue_ready` calls owed: (worker, root context, queue token).
    /// Envoy posts them to the owning worker, so they run after the current
    /// callback, never inside it.
    pub(crate) pending_queue_ready: VecDeque<(usize, u32, u32)>,
}

#[derive(Debug)]
pub(crate) struct SharedQueue {
    pub(crate) owner_vm: usize,
    pub(crate) owner_context: u32,
    pub(crate) items: VecDeque<Vec<u8>>,
}

impl Default for SharedStore {
    fn default() -> Self {
        Self {
            data: HashMap::new(),
            next_cas: 1,
            queues: HashMap::new(),
            queue_tokens: HashMap::new(),
            next_queue_token: 1,
            pending_queue_ready: VecDeque::new(),
        }
    }
}

impl SharedStore {
    fn take_cas(&mut self) -> u32 {
        let cas = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1);
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        cas
    }

    pub(crate) fn get(&self, vm_id: &str, key: &str) -> Result<(Vec<u8>, u32), Status> {
        self.data
            .get(vm_id)
            .and_then(|m| m.get(key))
            .cloned()
            .ok_or(Status::NotFound)
    }

    /// Envoy's rule: a CAS of 0 writes unconditionally; a non-zero CAS must
    /// match the stored one; a key that does not exist yet accepts any CAS.
    pub(crate) fn set(
        &mut self,
        vm_id: &str,
        key: &str,
        value: &[u8],
        cas: u32,
    ) -> Result<(), Status> {
        let current = self
            .data
            .get(vm_id)
            .and_then(|m| m.get(key))
            .map(|(_, c)| *c);
        if let Some(current) = current
            && cas != 0
            && cas != current
        {
            return Err(Status::CasMismatch);
        }
        let new_cas = self.take_cas();
        self.data
            .entry(vm_id.to_string())
            .or_default()
            .insert(key.to_string(), (value.to_vec(), new_cas));
        Ok(())
    }

    pub(crate) fn register_queue(
        &mut self,
        vm_id: &str,
        name: &str,
        vm: usize,
        context: u32,
    ) -> u32 {
        let key = (vm_id.to_string(), name.to_string());
        if let Some(token) = self.queue_tokens.get(&key).copied() {
            if let Some(queue) = self.queues.get_mut(&token) {
                queue.owner_vm = vm;
                queue.owner_context = context;
            }
            return token;
        }
        let token = self.next_queue_token;
        self.next_queue_token += 1;
        self.queue_tokens.insert(key, token);
        self.queues.insert(
            token,
            SharedQueue {
                owner_vm: vm,
                owner_context: context,
                items: VecDeque::new(),
            },
        );
        token
    }

    pub(crate) fn resolve_queue(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.queue_tokens
            .get(&(vm_id.to_string(), name.to_string()))
            .copied()
    }

    /// Enqueues and returns the (VM, root context) to notify.
    pub(crate) fn enqueue(&mut self, token: u32, value: &[u8]) -> Result<(usize, u32), Status> {
        let queue = self.queues.get_mut(&token).ok_or(Status::NotFound)?;
        queue.items.push_back(value.to_vec());
        let owner = (queue.owner_vm, queue.owner_context);
        self.pending_queue_ready
            .push_back((owner.0, owner.1, token));
        Ok(owner)
    }

    pub(crate) fn dequeue(&mut self, token: u32) -> Result<Vec<u8>, Status> {
        let queue = self.queues.get_mut(&token).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }

    pub(crate) fn snapshot(&self, vm_id: &str) -> BTreeMap<String, (Vec<u8>, u32)> {
        self.data
            .get(vm_id)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

/// The process-wide stats store. Envoy's stats are named, so two VMs that
/// define the same metric name share one value.
#[derive(Debug, Default)]
pub(crate) struct StatsStore {
    pub(crate) metrics: BTreeMap<String, Metric>,
}

/// One metric's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Counter(u64),
    Gauge(i64),
    /// Every recorded value, in order.
    Histogram(Vec<u64>),
}

impl Metric {
    pub(crate) fn new(kind: MetricType) -> Self {
        match kind {
            MetricType::Counter => Metric::Counter(0),
            MetricType::Gauge => Metric::Gauge(0),
            MetricType::Histogram => Metric::Histogram(Vec::new()),
        }
    }

    pub(crate) fn kind(&self) -> MetricType {
        match self {
            Metric::Counter(_) => MetricType::Counter,
            Metric::Gauge(_) => MetricType::Gauge,
            Metric::Histogram(_) => MetricType::Histogram,
        }
    }
}

/// Everything the VMs of one harness share.
#[derive(Debug, Clone)]
pub(crate) struct World {
    pub(crate) clock: VirtualClock,
    pub(crate) shared: Arc<Mutex<SharedStore>>,
    pub(crate) stats: Arc<Mutex<StatsStore>>,
    /// The clusters Envoy would know: callouts to any other name are
    /// refused as Envoy refuses them. Empty until a test declares some.
    pub(crate) clusters: Arc<Mutex<HashSet<String>>>,
}

impl World {
    pub(crate) fn new(start_wall: Duration) -> Self {
        Self {
            clock: VirtualClock::new(start_wall),
            shared: Arc::default(),
            stats: Arc::default(),
            clusters: Arc::default(),
        }
    }

    pub(crate) fn declare_cluster(&self, name: &str) {
        self.clusters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
    }

    pub(crate) fn knows_cluster(&self, name: &str) -> bool {
        self.clusters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
    }

    pub(crate) fn shared(&self) -> MutexGuard<'_, SharedStore> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn stats(&self) -> MutexGuard<'_, StatsStore> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_zero_writes_unconditionally_and_stale_cas_mismatches() {
        let mut store = SharedStore::default();
        assert_eq!(store.get("vm", "k"), Err(Status::NotFound));
        store.set("vm", "k", b"1", 12345).unwrap(); // missing key: any CAS
        let (_, cas1) = store.get("vm", "k").unwrap();
        store.set("vm", "k", b"2", cas1).unwrap();
        assert_eq!(store.set("vm", "k", b"3", cas1), Err(Status::CasMismatch));
        store.set("vm", "k", b"4", 0).unwrap();
        assert_eq!(store.get("vm", "k").unwrap().0, b"4");
        assert_eq!(store.get("other-vm", "k"), Err(Status::NotFound));
    }

    #[test]
    fn queues_are_fifo_and_report_empty() {
        let mut store = SharedStore::default();
        let token = store.register_queue("vm", "q", 0, 1);
        assert_eq!(store.resolve_queue("vm", "q"), Some(token));
        assert_eq!(store.dequeue(token), Err(Status::Empty));
        store.enqueue(token, b"a").unwrap();
        store.enqueue(token, b"b").unwrap();
        assert_eq!(store.dequeue(token).unwrap(), b"a");
        assert_eq!(store.dequeue(999), Err(Status::NotFound));
    }
}
