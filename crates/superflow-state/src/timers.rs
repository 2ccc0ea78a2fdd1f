//! `TimerService`: event-time and processing-time timers of one operator subtask,
//! deduplicated per (key, namespace, time) as in Flink, and fired in time order.

use std::collections::BTreeMap;
use std::hash::Hash;

use crate::hashing::StateHashSet;

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Fires when the watermark reaches the timer's time.
    EventTime,
    /// Fires when the wall clock reaches the timer's time.
    ProcessingTime,
}

/// The timers of one domain, grouped by time.
type TimerQueue<K, N> = BTreeMap<i64, StateHashSet<(K, N)>>;

/// Timers of one operator subtask, per key and namespace.
#[derive(Debug, Clone)]
pub struct TimerService<K, N> {
    event: TimerQueue<K, N>,
    processing: TimerQueue<K, N>,
}

impl<K, N> Default for TimerService<K, N> {
    fn default() -> Self {
        TimerService {
            event: BTreeMap::new(),
            processing: BTreeMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> TimerService<K, N> {
    /// No timers.
    pub fn new() -> Self {
        Self::default()
    }

    fn queue(&mut self, domain: TimeDomain) -> &mut TimerQueue<K, N> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    /// Registers a timer; registering the same (key, namespace, time) twice keeps one.
    #[inline]
    pub fn register(&mut self, domain: TimeDomain, key: K, namespace: N, time: i64) {
        self.queue(domain)
            .entry(time)
            .or_default()
            .insert((key, namespace));
    }

    /// Deletes a timer, if it exists.
    pub fn delete(&mut self, domain: TimeDomain, key: &K, namespace: &N, time: i64) {
        let queue = self.queue(domain);
        if let Some(set) = queue.get_mut(&time) {
            set.remove(&(key.clone(), namespace.clone()));
            if set.is_empty() {
                queue.remove(&time);
            }
        }
    }

    /// Takes the earliest timers at or before `until` (all of one time), if any. Call it
    /// in a loop: firing a timer may register another that is also due.
    pub fn pop_due(&mut self, domain: TimeDomain, until: i64) -> Option<(i64, Vec<(K, N)>)> {
        let queue = self.queue(domain);
        let (&time, _) = queue.first_key_value()?;
        if time > until {
            return None;
        }
        let set = queue.remove(&time)?;
        Some((time, set.into_iter().collect()))
    }

    /// The earliest processing-time timer.
    pub fn next_processing_time(&self) -> Option<i64> {
        self.processing.keys().next().copied()
    }

    /// The number of timers of `domain`.
    pub fn len(&self, domain: TimeDomain) -> usize {
        match domain {
            TimeDomain::EventTime => self.event.values().map(StateHashSet::len).sum(),
            TimeDomain::ProcessingTime => self.processing.values().map(StateHashSet::len).sum(),
        }
    }
}

impl<K, N> TimerService<K, N>
where
    K: Hash + Eq + Clone + serde::Serialize + serde::de::DeserializeOwned,
    N: Hash + Eq + Clone + serde::Serialize + serde::de::DeserializeOwned,
{
    /// Writes every timer as keyed state (key, namespace, (domain, time)), so a restore
    /// at another parallelism gives each subtask the timers of its key groups.
    pub fn snapshot(
        &self,
        max_parallelism: usize,
        compression: crate::Compression,
    ) -> Result<Vec<u8>, crate::SnapshotError> {
        let mut timers: Vec<(&K, &N, (bool, i64))> = Vec::new();
        for (processing, queue) in [(false, &self.event), (true, &self.processing)] {
            for (time, set) in queue {
                for (k, n) in set {
                    timers.push((k, n, (processing, *time)));
                }
            }
        }
        crate::write_keyed_snapshot(
            timers.iter().map(|(k, n, t)| (*k, *n, t)),
            max_parallelism,
            compression,
        )
    }

    /// Registers the timers of `snapshot` whose key groups fall in `range`.
    pub fn restore(
        &mut self,
        snapshot: &[u8],
        range: superflow_core::KeyGroupRange,
    ) -> Result<usize, crate::SnapshotError> {
        crate::read_keyed_snapshot(snapshot, range, |k, n, (processing, time): (bool, i64)| {
            let domain = if processing {
                TimeDomain::ProcessingTime
            } else {
                TimeDomain::EventTime
            };
            self.register(domain, k, n, time);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_time_order_once_each() {
        let mut t: TimerService<&str, ()> = TimerService::new();
        t.register(TimeDomain::EventTime, "a", (), 20);
        t.register(TimeDomain::EventTime, "a", (), 20);
        t.register(TimeDomain::EventTime, "b", (), 10);
        t.register(TimeDomain::EventTime, "c", (), 30);
        t.delete(TimeDomain::EventTime, &"c", &(), 30);
        assert_eq!(t.len(TimeDomain::EventTime), 2);
        assert_eq!(
            t.pop_due(TimeDomain::EventTime, 25),
            Some((10, vec![("b", ())]))
        );
        assert_eq!(
            t.pop_due(TimeDomain::EventTime, 25),
            Some((20, vec![("a", ())]))
        );
        assert_eq!(t.pop_due(TimeDomain::EventTime, 25), None);
        assert_eq!(t.pop_due(TimeDomain::EventTime, i64::MAX), None);
    }

    #[test]
    fn timers_restore_by_key_group() {
        let mut t: TimerService<u64, u32> = TimerService::new();
        for k in 0..100 {
            t.register(TimeDomain::EventTime, k, 1, k as i64);
            t.register(TimeDomain::ProcessingTime, k, 2, 1000 + k as i64);
        }
        let bytes = t.snapshot(128, crate::Compression::None).unwrap();
        let mut total = 0;
        for s in 0..3 {
            let range = superflow_core::key_group_range_for_subtask(128, 3, s);
            let mut back: TimerService<u64, u32> = TimerService::new();
            back.restore(&bytes, range).unwrap();
            total += back.len(TimeDomain::EventTime);
            assert_eq!(
                back.len(TimeDomain::EventTime),
                back.len(TimeDomain::ProcessingTime)
            );
        }
        assert_eq!(total, 100);
    }

    #[test]
    fn processing_time_is_kept_apart() {
        let mut t: TimerService<u32, u32> = TimerService::new();
        t.register(TimeDomain::ProcessingTime, 1, 0, 500);
        assert_eq!(t.next_processing_time(), Some(500));
        assert_eq!(t.pop_due(TimeDomain::EventTime, i64::MAX), None);
        assert_eq!(
            t.pop_due(TimeDomain::ProcessingTime, 500),
            Some((500, vec![(1, 0)]))
        );
    }
}
