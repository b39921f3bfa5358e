//! The schedule of delayed streams. A delayed stream is parked until its
//! due time; one host timer (the root context's tick) serves them all and
//! is armed for the earliest due time, re-armed only when a new delay ends
//! sooner, and turned off when nothing is parked. Proxy-wasm's tick has
//! millisecond periods and Envoy restarts it when the period is set, so the
//! wait is whole milliseconds rounded up (a delay never ends early), at
//! least 1 ms and at most [`MAX_TICK`]. Times are the host clock in
//! nanoseconds, passed in by the adapter; nothing here reads a clock.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The longest tick period: far-off delays are re-checked at least this
/// often, which keeps the millisecond count well inside the ABI's u32.
pub const MAX_TICK: Duration = Duration::from_secs(60);

const NANOS_PER_MS: u64 = 1_000_000;

/// What the tick found: the streams whose delay is over (earliest first),
/// and the period to set the timer to (`None`: turn it off).
#[derive(Debug, PartialEq, Eq)]
pub struct Tick<T> {
    pub due: Vec<(u32, T)>,
    pub next: Option<Duration>,
}

/// Parked streams by due time, each with what to do when it is due (`T`).
#[derive(Debug, Clone)]
pub struct DelayScheduler<T> {
    /// (due time in ns, stream id) to the parked item, earliest first.
    parked: BTreeMap<(u64, u32), T>,
    /// Stream id to due time, to unpark a stream that goes away.
    due_by_stream: HashMap<u32, u64>,
    /// When the timer fires next (ns), if armed.
    next_wake: Option<u64>,
}

impl<T> Default for DelayScheduler<T> {
    fn default() -> Self {
        Self {
            parked: BTreeMap::new(),
            due_by_stream: HashMap::new(),
            next_wake: None,
        }
    }
}

impl<T> DelayScheduler<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parks `stream` until `due`. Returns the timer period to set when the
    /// timer must be (re)armed (this delay ends before it would fire); the
    /// adapter sets it and, if the host accepts, calls [`armed`](Self::armed).
    pub fn park(&mut self, stream: u32, due: u64, now: u64, item: T) -> Option<Duration> {
        if let Some(previous) = self.due_by_stream.insert(stream, due) {
            self.parked.remove(&(previous, stream));
        }
        self.parked.insert((due, stream), item);
        self.next_wake
            .is_none_or(|wake| due < wake)
            .then(|| wait(due, now))
    }

    /// The host accepted `period`, set at `now`.
    pub fn armed(&mut self, now: u64, period: Duration) {
        let period = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        self.next_wake = Some(now.saturating_add(period));
    }

    pub fn is_parked(&self, stream: u32) -> bool {
        self.due_by_stream.contains_key(&stream)
    }

    /// How many streams are parked.
    pub fn len(&self) -> usize {
        self.parked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }

    /// Forgets a parked stream (it went away; nothing is resumed). Returns
    /// `true` when the timer should be turned off (nothing left parked).
    pub fn unpark(&mut self, stream: u32) -> bool {
        let Some(due) = self.due_by_stream.remove(&stream) else {
            return false;
        };
        self.parked.remove(&(due, stream));
        self.parked.is_empty() && self.next_wake.take().is_some()
    }

    /// The timer fired at `now`: takes every stream due by then, and says
    /// what to set the timer to next. The adapter calls
    /// [`armed`](Self::armed) when it sets a `next` period.
    pub fn on_tick(&mut self, now: u64) -> Tick<T> {
        let later = self.parked.split_off(&(now.saturating_add(1), 0));
        let due: Vec<(u32, T)> = std::mem::replace(&mut self.parked, later)
            .into_iter()
            .map(|((_, stream), item)| (stream, item))
            .collect();
        for (stream, _) in &due {
            self.due_by_stream.remove(stream);
        }
        self.next_wake = None;
        let next = self.parked.keys().next().map(|(due, _)| wait(*due, now));
        Tick { due, next }
    }
}

/// Whole milliseconds from `now` to `due`, rounded up, within 1 ms and
/// [`MAX_TICK`].
fn wait(due: u64, now: u64) -> Duration {
    let max_ms = u64::try_from(MAX_TICK.as_millis()).unwrap_or(u64::MAX);
    let ms = due
        .saturating_sub(now)
        .div_ceil(NANOS_PER_MS)
        .clamp(1, max_ms);
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MS: u64 = NANOS_PER_MS;

    /// Parks and arms as the adapter does, the host accepting every period.
    fn park(
        s: &mut DelayScheduler<&'static str>,
        stream: u32,
        due: u64,
        now: u64,
    ) -> Option<Duration> {
        let period = s.park(stream, due, now, "item");
        if let Some(period) = period {
            s.armed(now, period);
        }
        period
    }

    #[test]
    fn the_timer_is_armed_for_the_earliest_delay_only() {
        let mut s = DelayScheduler::new();
        assert_eq!(
            park(&mut s, 1, 500 * MS, 0),
            Some(Duration::from_millis(500))
        );
        // Later than the armed wake: the timer stays.
        assert_eq!(park(&mut s, 2, 900 * MS, 0), None);
        // Sooner: re-armed.
        assert_eq!(
            park(&mut s, 3, 100 * MS, 0),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn waits_round_up_and_stay_in_bounds() {
        assert_eq!(wait(1, 0), Duration::from_millis(1));
        assert_eq!(wait(MS + 1, 0), Duration::from_millis(2));
        assert_eq!(wait(0, 5 * MS), Duration::from_millis(1));
        assert_eq!(wait(3_600_000 * MS, 0), MAX_TICK);
    }

    #[test]
    fn a_tick_takes_what_is_due_and_re_arms_for_the_rest() {
        let mut s = DelayScheduler::new();
        park(&mut s, 1, 10 * MS, 0);
        park(&mut s, 2, 10 * MS, 0);
        park(&mut s, 3, 100 * MS, 0);
        let tick = s.on_tick(10 * MS);
        assert_eq!(tick.due, vec![(1, "item"), (2, "item")]);
        assert_eq!(tick.next, Some(Duration::from_millis(90)));
        assert!(!s.is_parked(1) && s.is_parked(3));
        s.armed(10 * MS, Duration::from_millis(90));
        let tick = s.on_tick(100 * MS);
        assert_eq!(tick.due, vec![(3, "item")]);
        assert_eq!(tick.next, None);
        assert!(s.is_empty());
    }

    #[test]
    fn an_early_tick_resumes_nothing() {
        let mut s = DelayScheduler::new();
        park(&mut s, 1, 10 * MS, 0);
        let tick = s.on_tick(10 * MS - 1);
        assert!(tick.due.is_empty());
        assert_eq!(tick.next, Some(Duration::from_millis(1)));
    }

    #[test]
    fn a_stream_that_goes_away_is_forgotten_and_the_timer_stops_last() {
        let mut s = DelayScheduler::new();
        park(&mut s, 1, 10 * MS, 0);
        park(&mut s, 2, 20 * MS, 0);
        assert!(!s.unpark(1), "one still parked");
        assert!(!s.unpark(1), "unknown stream");
        assert!(s.unpark(2), "last one: turn the timer off");
        assert!(s.on_tick(30 * MS).due.is_empty());
    }

    #[test]
    fn parking_a_stream_again_replaces_its_delay() {
        let mut s = DelayScheduler::new();
        park(&mut s, 1, 10 * MS, 0);
        park(&mut s, 1, 50 * MS, 0);
        assert_eq!(s.len(), 1);
        assert!(s.on_tick(10 * MS).due.is_empty());
        assert_eq!(s.on_tick(50 * MS).due.len(), 1);
    }

    proptest! {
        #[test]
        fn every_stream_resumes_once_and_never_early(
            delays in proptest::collection::vec(0u64..5_000, 1..40),
            steps in proptest::collection::vec(1u64..700, 1..60),
        ) {
            let mut s = DelayScheduler::new();
            let mut now = 0u64;
            for (stream, delay) in delays.iter().enumerate() {
                let stream = u32::try_from(stream).unwrap();
                let due = now + delay * MS;
                if let Some(period) = s.park(stream, due, now, due) {
                    s.armed(now, period);
                }
            }
            let mut resumed = std::collections::HashSet::new();
            let mut wake = now + 1;
            // Spurious (early) ticks at the given steps, then the timer the
            // scheduler asks for until nothing is parked.
            let ticks = steps.iter().map(|step| Some(*step)).chain(std::iter::repeat(None));
            for step in ticks.take(steps.len() + 2 * delays.len() + 2) {
                now = match step {
                    Some(step) => now.max(wake.min(now + step * MS)),
                    None => now.max(wake),
                };
                let tick = s.on_tick(now);
                for (stream, due) in tick.due {
                    prop_assert!(due <= now, "resumed early");
                    prop_assert!(resumed.insert(stream), "resumed twice");
                }
                match tick.next {
                    Some(next) => {
                        s.armed(now, next);
                        wake = now + u64::try_from(next.as_nanos()).unwrap();
                    }
                    None => break,
                }
            }
            prop_assert!(s.is_empty());
            prop_assert_eq!(resumed.len(), delays.len());
        }
    }
}
