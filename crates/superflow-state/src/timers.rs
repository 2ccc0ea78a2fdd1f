//! `TimerService`: event-time and processing-time timers of one operator subtask,
//! deduplicated per (key, namespace, time) as in Flink, and fired in time order.
//!
//! With the embedded store, timers beyond a number in memory go to it (as Flink's
//! RocksDB backend keeps its timers in RocksDB): memory holds the earliest ones, at or
//! before the domain's `spill_from` time, every stored timer is at or after it, and
//! when memory runs dry the next earliest are read back. The timers of one time (a
//! window's end, for a million keys) may be split between the two, so that neither
//! side ever holds more than its share; they then fire in several pieces, in order.

use std::collections::BTreeMap;
use std::hash::Hash;

use serde::{de::DeserializeOwned, Serialize};

use crate::backend::{StateBackend, StatePartition, TIMERS_PER_CACHE_ENTRY};
use crate::hashing::StateHashSet;
use crate::snapshot::{Encoding, EncodingError};
use crate::spill::{append_grouped_key, encode_delta, write_chain_file, IncrementalChain};

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Fires when the watermark reaches the timer's time.
    EventTime,
    /// Fires when the wall clock reaches the timer's time.
    ProcessingTime,
}

impl TimeDomain {
    /// The first byte of the domain's timers in the store.
    fn tag(self) -> u8 {
        match self {
            TimeDomain::EventTime => 0,
            TimeDomain::ProcessingTime => 1,
        }
    }
}

/// The timers of one domain: the earliest in memory, grouped by time, and (with a
/// store) the rest in the store, all at or after `spill_from`.
#[derive(Debug, Clone)]
struct TimerQueue<K, N> {
    hot: BTreeMap<i64, StateHashSet<(K, N)>>,
    hot_len: usize,
    /// Every stored timer of the domain is at or after this time, and every timer in
    /// memory at or before it (`i64::MAX`: none is stored).
    spill_from: i64,
}

impl<K, N> Default for TimerQueue<K, N> {
    fn default() -> Self {
        TimerQueue {
            hot: BTreeMap::new(),
            hot_len: 0,
            spill_from: i64::MAX,
        }
    }
}

/// The stored part of a timer service: one partition for both domains, whose keys are
/// the domain, the time (ordered as unsigned big-endian) and the encoded key and
/// namespace, with empty values.
struct TimerDisk {
    partition: Box<dyn StatePartition>,
    capacity: usize,
    chain: IncrementalChain,
}

impl TimerDisk {
    fn prefix(domain: TimeDomain, time: i64) -> [u8; 9] {
        let mut out = [0u8; 9];
        out[0] = domain.tag();
        out[1..].copy_from_slice(&((time as u64) ^ (1 << 63)).to_be_bytes());
        out
    }

    fn time_of(stored: &[u8]) -> i64 {
        let mut time = [0u8; 8];
        if let Some(bytes) = stored.get(1..9) {
            time.copy_from_slice(bytes);
        }
        (u64::from_be_bytes(time) ^ (1 << 63)) as i64
    }

    /// The timer a stored key holds.
    fn timer_of<K: DeserializeOwned, N: DeserializeOwned>(
        stored: &[u8],
    ) -> Result<Timer<K, N>, EncodingError> {
        let domain = if stored.first() == Some(&TimeDomain::ProcessingTime.tag()) {
            TimeDomain::ProcessingTime
        } else {
            TimeDomain::EventTime
        };
        let (k, n): (K, N) = postcard::from_bytes(stored.get(9..).unwrap_or_default())
            .map_err(EncodingError::Decode)?;
        Ok((domain, Self::time_of(stored), k, n))
    }

    fn key<K: Serialize, N: Serialize>(
        &self,
        domain: TimeDomain,
        time: i64,
        timer: &(K, N),
        out: &mut Vec<u8>,
    ) {
        out.clear();
        out.extend_from_slice(&Self::prefix(domain, time));
        if let Err(e) = postcard::to_io(timer, &mut *out) {
            self.partition
                .fail(&format!("a timer cannot be encoded: {e}"));
        }
    }
}

/// A timer as an incremental checkpoint records it: its domain, time, key and
/// namespace.
type Timer<K, N> = (TimeDomain, i64, K, N);

/// Timers of one operator subtask, per key and namespace.
pub struct TimerService<K, N> {
    event: TimerQueue<K, N>,
    processing: TimerQueue<K, N>,
    disk: Option<TimerDisk>,
    /// With a store, once incremental checkpoints have started: the timers registered,
    /// deleted or fired since the last checkpoint (whether each still exists is looked
    /// up when the next one is taken).
    changed: StateHashSet<Timer<K, N>>,
    scratch: Vec<u8>,
}

impl<K, N> Default for TimerService<K, N> {
    fn default() -> Self {
        TimerService {
            event: TimerQueue::default(),
            processing: TimerQueue::default(),
            disk: None,
            changed: StateHashSet::default(),
            scratch: Vec::new(),
        }
    }
}

impl<K, N> std::fmt::Debug for TimerService<K, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerService")
            .field("event_in_memory", &self.event.hot_len)
            .field("processing_in_memory", &self.processing.hot_len)
            .field("spilling", &self.disk.is_some())
            .finish()
    }
}

impl<K, N> TimerService<K, N>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    N: Hash + Eq + Clone + Serialize + DeserializeOwned,
{
    /// No timers, all kept in memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// No timers; beyond `capacity` per domain in memory, they go to partition `state`
    /// of `store`.
    #[cfg(test)]
    pub(crate) fn spilling(
        store: &std::sync::Arc<crate::backend::DiskStateStore>,
        state: &str,
        capacity: usize,
    ) -> Self {
        match store.partition(state, None) {
            Ok(partition) => Self::over_partition(Box::new(partition), capacity),
            Err(e) => panic!("{e}"),
        }
    }

    /// The timers of state `state` in `backend`: in memory, unless the backend keeps
    /// timers in its store; then [`TIMERS_PER_CACHE_ENTRY`] times its cache entries per
    /// domain in memory and the rest in the state's partition.
    pub fn in_backend(backend: &dyn StateBackend, state: &str) -> Result<Self, crate::StoreError> {
        if !backend.timers_in_store() {
            return Ok(Self::new());
        }
        Ok(match backend.open_partition(state, None)? {
            Some(partition) => Self::over_partition(
                partition,
                backend
                    .cache_entries()
                    .saturating_mul(TIMERS_PER_CACHE_ENTRY),
            ),
            None => Self::new(),
        })
    }

    fn over_partition(partition: Box<dyn StatePartition>, capacity: usize) -> Self {
        TimerService {
            disk: Some(TimerDisk {
                partition,
                capacity: capacity.max(2),
                chain: IncrementalChain::default(),
            }),
            ..Self::default()
        }
    }

    /// Whether timer changes are recorded for the next incremental checkpoint.
    #[inline]
    fn records_changes(&self) -> bool {
        self.disk.as_ref().is_some_and(|disk| disk.chain.started())
    }

    /// The timers of `domain`, the store and the scratch buffer, borrowed apart.
    #[inline]
    fn parts(
        &mut self,
        domain: TimeDomain,
    ) -> (&mut TimerQueue<K, N>, Option<&TimerDisk>, &mut Vec<u8>) {
        let queue = match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        };
        (queue, self.disk.as_ref(), &mut self.scratch)
    }

    /// Registers a timer; registering the same (key, namespace, time) twice keeps one.
    #[inline]
    pub fn register(&mut self, domain: TimeDomain, key: K, namespace: N, time: i64) {
        if self.records_changes() {
            self.changed
                .insert((domain, time, key.clone(), namespace.clone()));
        }
        let (queue, disk, scratch) = self.parts(domain);
        // Without a store every timer is in memory (one at `i64::MAX` too, the time
        // that marks "nothing stored").
        let Some(disk) = disk.filter(|_| time >= queue.spill_from) else {
            if queue.hot.entry(time).or_default().insert((key, namespace)) {
                queue.hot_len += 1;
                if let Some(disk) = disk {
                    if queue.hot_len > disk.capacity {
                        Self::spill(disk, domain, queue, scratch);
                    }
                }
            }
            return;
        };
        let timer = (key, namespace);
        // The time memory and the store share: memory may hold the timer already.
        if time == queue.spill_from && queue.hot.get(&time).is_some_and(|s| s.contains(&timer)) {
            return;
        }
        disk.key(domain, time, &timer, scratch);
        if let Err(e) = disk.partition.insert(scratch.as_slice(), b"") {
            disk.partition.fail(&e);
        }
    }

    /// Moves the latest timers in memory to the store until a quarter of the capacity
    /// is free (splitting a time if it must).
    #[inline(never)]
    fn spill(
        disk: &TimerDisk,
        domain: TimeDomain,
        queue: &mut TimerQueue<K, N>,
        scratch: &mut Vec<u8>,
    ) {
        let target = disk.capacity - disk.capacity / 4;
        let mut batch = disk.partition.batch();
        while queue.hot_len > target {
            let Some(mut last) = queue.hot.last_entry() else {
                break;
            };
            let time = *last.key();
            queue.spill_from = time;
            let set = last.get_mut();
            let moving: Vec<(K, N)> = if queue.hot_len - set.len() >= target {
                set.drain().collect()
            } else {
                let n = queue.hot_len - target;
                let some: Vec<(K, N)> = set.iter().take(n).cloned().collect();
                for timer in &some {
                    set.remove(timer);
                }
                some
            };
            if set.is_empty() {
                last.remove();
            }
            queue.hot_len -= moving.len();
            for timer in &moving {
                disk.key(domain, time, timer, scratch);
                batch.insert(scratch.as_slice(), b"");
            }
        }
        if let Err(e) = batch.commit() {
            disk.partition.fail(&e);
        }
    }

    /// Reads the earliest stored timers of `domain` into memory, up to half the
    /// capacity.
    #[inline(never)]
    fn refill(disk: &TimerDisk, domain: TimeDomain, queue: &mut TimerQueue<K, N>) {
        let target = (disk.capacity / 2).max(1);
        let partition = &*disk.partition;
        let mut batch = partition.batch();
        queue.spill_from = i64::MAX;
        let scanned = partition.scan(&[domain.tag()], &mut |stored, _| {
            let time = TimerDisk::time_of(stored);
            if queue.hot_len >= target {
                queue.spill_from = time;
                return false;
            }
            let timer: (K, N) = postcard::from_bytes(stored.get(9..).unwrap_or_default())
                .unwrap_or_else(|e| partition.fail(&format!("a timer cannot be decoded: {e}")));
            if queue.hot.entry(time).or_default().insert(timer) {
                queue.hot_len += 1;
            }
            batch.remove(stored);
            true
        });
        if let Err(e) = scanned.and_then(|()| batch.commit()) {
            partition.fail(&e);
        }
    }

    /// Deletes a timer, if it exists.
    pub fn delete(&mut self, domain: TimeDomain, key: &K, namespace: &N, time: i64) {
        if self.records_changes() {
            self.changed
                .insert((domain, time, key.clone(), namespace.clone()));
        }
        let (queue, disk, scratch) = self.parts(domain);
        let timer = (key.clone(), namespace.clone());
        if time <= queue.spill_from {
            if let Some(set) = queue.hot.get_mut(&time) {
                if set.remove(&timer) {
                    queue.hot_len -= 1;
                }
                if set.is_empty() {
                    queue.hot.remove(&time);
                }
            }
        }
        if let Some(disk) = disk.filter(|_| time >= queue.spill_from) {
            disk.key(domain, time, &timer, scratch);
            if let Err(e) = disk.partition.remove(scratch.as_slice()) {
                disk.partition.fail(&e);
            }
        }
    }

    /// Takes the earliest timers at or before `until` (of one time; with a store, a time
    /// with many timers comes in several pieces), if any. Call it in a loop: firing a
    /// timer may register another that is also due.
    pub fn pop_due(&mut self, domain: TimeDomain, until: i64) -> Option<(i64, Vec<(K, N)>)> {
        let (queue, disk, _) = self.parts(domain);
        if queue.hot.is_empty() {
            if queue.spill_from > until {
                return None;
            }
            Self::refill(disk?, domain, queue);
        }
        let (&time, _) = queue.hot.first_key_value()?;
        if time > until {
            return None;
        }
        let set = queue.hot.remove(&time)?;
        queue.hot_len -= set.len();
        let fired: Vec<(K, N)> = set.into_iter().collect();
        if self.records_changes() {
            self.changed.extend(
                fired
                    .iter()
                    .map(|(k, n)| (domain, time, k.clone(), n.clone())),
            );
        }
        Some((time, fired))
    }

    /// The earliest processing-time timer (with a store, possibly a little earlier:
    /// the time before which no stored timer lies).
    pub fn next_processing_time(&self) -> Option<i64> {
        let queue = &self.processing;
        queue
            .hot
            .keys()
            .next()
            .copied()
            .or((queue.spill_from != i64::MAX).then_some(queue.spill_from))
    }

    /// The number of timers of `domain` (counting stored ones reads the store).
    pub fn len(&self, domain: TimeDomain) -> usize {
        let queue = match domain {
            TimeDomain::EventTime => &self.event,
            TimeDomain::ProcessingTime => &self.processing,
        };
        let stored = self.disk.as_ref().map_or(0, |disk| {
            let mut count = 0;
            if let Err(e) = disk.partition.scan(&[domain.tag()], &mut |_, _| {
                count += 1;
                true
            }) {
                disk.partition.fail(&e);
            }
            count
        });
        queue.hot_len + stored
    }

    /// Timers in memory, of both domains.
    pub fn in_memory_len(&self) -> usize {
        self.event.hot_len + self.processing.hot_len
    }
}

impl<K, N> TimerService<K, N>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static,
    N: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static,
{
    /// A copy of every timer, and the function that writes them as keyed state (key,
    /// namespace, (domain, time)) on the checkpoint writer's thread, so a restore at
    /// another parallelism gives each subtask the timers of its key groups. The data
    /// path pays for copying the timers in memory; stored ones are read from an MVCC
    /// snapshot of the store by the writer.
    pub fn snapshot_later(
        &self,
        max_parallelism: usize,
        compression: crate::Compression,
    ) -> Encoding {
        let copy = (self.event.hot.clone(), self.processing.hot.clone());
        let stored = self.disk.as_ref().map(|disk| disk.partition.view());
        Box::new(move || {
            let mut timers: Vec<(K, N, (bool, i64))> = Vec::new();
            for (processing, queue) in [(false, copy.0), (true, copy.1)] {
                for (time, set) in queue {
                    for (k, n) in set {
                        timers.push((k, n, (processing, time)));
                    }
                }
            }
            if let Some(view) = &stored {
                let mut keys = Vec::new();
                view.scan(&mut |key, _| keys.push(key.to_vec()))?;
                for key in keys {
                    let (domain, time, k, n) = TimerDisk::timer_of::<K, N>(&key)?;
                    timers.push((k, n, (domain == TimeDomain::ProcessingTime, time)));
                }
            }
            Ok(crate::write_keyed_snapshot(
                timers.iter().map(|(k, n, t)| (k, n, t)),
                max_parallelism,
                compression,
            )?)
        })
    }

    /// For checkpoint `checkpoint` with timers in the store: the timers registered,
    /// deleted or fired since the last checkpoint (every timer, for the first one and
    /// every 8th), and the function that writes them as file `<partition>-c<checkpoint>`
    /// of `shared` and returns the chain of files a restore reads (see
    /// [`read_chain`](crate::read_chain); it adds up to what
    /// [`TimerService::snapshot_later`] writes). `None` without a store.
    pub fn snapshot_incremental(
        &mut self,
        checkpoint: u64,
        shared: std::path::PathBuf,
        max_parallelism: usize,
    ) -> Option<Encoding> {
        let disk = self.disk.as_mut()?;
        // Timers often change wholesale between checkpoints (a window per key that
        // fires and the next that registers): when most of them changed, a delta would
        // be larger than every timer, so a full file is written, and the chain pauses
        // (no changes are recorded until the next full file starts one again).
        let total = self.event.hot_len + self.processing.hot_len + disk.partition.approximate_len();
        let churned = disk.chain.started() && self.changed.len().saturating_mul(2) > total;
        let (full, file, chain) = disk.chain.next(disk.partition.name(), checkpoint, churned);
        if churned {
            disk.chain.pause();
        }
        let changed = std::mem::take(&mut self.changed);
        let stored = disk.partition.view();
        if full {
            let copy = (self.event.hot.clone(), self.processing.hot.clone());
            return Some(Box::new(move || {
                let mut entries = Vec::new();
                for (domain, queue) in [
                    (TimeDomain::EventTime, copy.0),
                    (TimeDomain::ProcessingTime, copy.1),
                ] {
                    for (time, set) in queue {
                        for (k, n) in set {
                            entries
                                .push((chain_key(&(domain, time, k, n), max_parallelism)?, true));
                        }
                    }
                }
                let mut keys = Vec::new();
                stored.scan(&mut |key, _| keys.push(key.to_vec()))?;
                for key in keys {
                    let timer = TimerDisk::timer_of::<K, N>(&key)?;
                    entries.push((chain_key(&timer, max_parallelism)?, true));
                }
                write_timer_delta(&shared, &file, &entries, &chain)
            }));
        }
        // Whether each changed timer exists is decided now, in memory; one that may be
        // in the store is looked up in its snapshot by the writer.
        let mut in_store = Vec::new();
        let mut decided = Vec::new();
        for timer in changed {
            let (domain, time, k, n) = timer;
            let queue = match domain {
                TimeDomain::EventTime => &self.event,
                TimeDomain::ProcessingTime => &self.processing,
            };
            let pair = (k, n);
            let in_memory = time <= queue.spill_from
                && queue.hot.get(&time).is_some_and(|set| set.contains(&pair));
            let (k, n) = pair;
            if in_memory || time < queue.spill_from {
                decided.push(((domain, time, k, n), in_memory));
            } else {
                disk.key(domain, time, &(k.clone(), n.clone()), &mut self.scratch);
                in_store.push(((domain, time, k, n), self.scratch.clone()));
            }
        }
        Some(Box::new(move || {
            let mut entries = Vec::with_capacity(decided.len() + in_store.len());
            for (timer, exists) in &decided {
                entries.push((chain_key(timer, max_parallelism)?, *exists));
            }
            for (timer, stored_key) in &in_store {
                let exists = stored.get(stored_key)?.is_some();
                entries.push((chain_key(timer, max_parallelism)?, exists));
            }
            write_timer_delta(&shared, &file, &entries, &chain)
        }))
    }

    /// Writes every timer as keyed state now (see [`TimerService::snapshot_later`]).
    pub fn snapshot(
        &self,
        max_parallelism: usize,
        compression: crate::Compression,
    ) -> Result<Vec<u8>, crate::SnapshotError> {
        self.snapshot_later(max_parallelism, compression)()
            .map_err(|e| crate::SnapshotError::Encode(e.to_string()))
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

/// A timer's key in an incremental checkpoint file: its key group (big-endian), then
/// key, namespace and (domain, time) as [`TimerService::snapshot_later`] encodes them, so
/// that the chain adds up to the same keyed snapshot (each entry's value is empty).
fn chain_key<K: Hash + Serialize, N: Serialize>(
    (domain, time, k, n): &Timer<K, N>,
    max_parallelism: usize,
) -> Result<Vec<u8>, EncodingError> {
    let mut out = Vec::new();
    let processing = *domain == TimeDomain::ProcessingTime;
    append_grouped_key(k, &(k, n, (processing, *time)), max_parallelism, &mut out)
        .map_err(EncodingError::Encode)?;
    Ok(out)
}

/// Writes an incremental file of timers: each timer's key, and whether it exists.
fn write_timer_delta(
    shared: &std::path::Path,
    file: &str,
    entries: &[(Vec<u8>, bool)],
    chain: &[String],
) -> Result<Vec<u8>, EncodingError> {
    let bytes = encode_delta(
        entries
            .iter()
            .map(|(key, exists)| (&key[..], exists.then_some(&[][..]))),
    );
    write_chain_file(shared, file, &bytes, chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::DiskStateStore;

    #[test]
    fn timers_fire_in_time_order_once_each() {
        let mut t: TimerService<char, ()> = TimerService::new();
        t.register(TimeDomain::EventTime, 'a', (), 20);
        t.register(TimeDomain::EventTime, 'a', (), 20);
        t.register(TimeDomain::EventTime, 'b', (), 10);
        t.register(TimeDomain::EventTime, 'c', (), 30);
        t.delete(TimeDomain::EventTime, &'c', &(), 30);
        assert_eq!(t.len(TimeDomain::EventTime), 2);
        assert_eq!(
            t.pop_due(TimeDomain::EventTime, 25),
            Some((10, vec![('b', ())]))
        );
        assert_eq!(
            t.pop_due(TimeDomain::EventTime, 25),
            Some((20, vec![('a', ())]))
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
    fn a_timer_at_the_end_of_time_fires_with_either_storage() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStateStore::open(&dir.path().join("state")).unwrap();
        for mut t in [
            TimerService::<u32, u32>::new(),
            TimerService::spilling(&store, "op/end", 2),
        ] {
            t.register(TimeDomain::EventTime, 1, 0, i64::MAX);
            t.register(TimeDomain::EventTime, 1, 0, i64::MAX);
            t.register(TimeDomain::EventTime, 2, 0, 5);
            assert_eq!(t.len(TimeDomain::EventTime), 2);
            assert_eq!(
                t.pop_due(TimeDomain::EventTime, i64::MAX),
                Some((5, vec![(2, 0)]))
            );
            assert_eq!(
                t.pop_due(TimeDomain::EventTime, i64::MAX),
                Some((i64::MAX, vec![(1, 0)]))
            );
            assert_eq!(t.pop_due(TimeDomain::EventTime, i64::MAX), None);
        }
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

    /// Every timer due at `until`, in firing order (checked), sorted within a time.
    fn drain(
        timers: &mut TimerService<u64, u32>,
        domain: TimeDomain,
        until: i64,
    ) -> Vec<(i64, u64, u32)> {
        let mut all = Vec::new();
        while let Some((time, due)) = timers.pop_due(domain, until) {
            assert!(
                all.last().is_none_or(|(t, _, _)| *t <= time),
                "in time order"
            );
            all.extend(due.into_iter().map(|(k, n)| (time, k, n)));
        }
        all.sort();
        all
    }

    /// A small deterministic generator, so that the tests replay the same timers.
    fn seeded_random(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut state = seed;
        move |bound: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % bound
        }
    }

    /// One draw in four is a processing-time timer.
    fn domain_of(draw: u64) -> TimeDomain {
        if draw == 0 {
            TimeDomain::ProcessingTime
        } else {
            TimeDomain::EventTime
        }
    }

    #[test]
    fn stored_timers_fire_as_timers_in_memory_do() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStateStore::open(&dir.path().join("state")).unwrap();
        let mut spilled: TimerService<u64, u32> = TimerService::spilling(&store, "op/t", 8);
        let mut memory: TimerService<u64, u32> = TimerService::new();
        let mut random = seeded_random(42);
        let mut watermark = 0i64;
        for round in 0..3_000 {
            let domain = domain_of(random(4));
            let (key, window) = (random(50), random(3) as u32);
            let time = watermark + random(400) as i64 - 20;
            match random(10) {
                0..=5 => {
                    spilled.register(domain, key, window, time);
                    memory.register(domain, key, window, time);
                }
                6 => {
                    spilled.delete(domain, &key, &window, time);
                    memory.delete(domain, &key, &window, time);
                }
                _ => {
                    watermark += random(60) as i64;
                    assert_eq!(
                        drain(&mut spilled, domain, watermark),
                        drain(&mut memory, domain, watermark),
                        "round {round}"
                    );
                }
            }
            if round % 500 == 0 {
                for d in [TimeDomain::EventTime, TimeDomain::ProcessingTime] {
                    assert_eq!(spilled.len(d), memory.len(d), "round {round}");
                }
                assert!(spilled.in_memory_len() <= 2 * 8 + 1);
                let a = spilled.snapshot(128, crate::Compression::None).unwrap();
                let mut back: TimerService<u64, u32> = TimerService::new();
                back.restore(&a, superflow_core::KeyGroupRange::all())
                    .unwrap();
                for d in [TimeDomain::EventTime, TimeDomain::ProcessingTime] {
                    assert_eq!(back.len(d), memory.len(d), "round {round}");
                }
            }
        }
        // One time with many timers is split between memory and the store.
        let at = watermark + 1_000;
        for k in 0..300u64 {
            spilled.register(TimeDomain::EventTime, k % 100, 9, at);
            memory.register(TimeDomain::EventTime, k % 100, 9, at);
            if k % 7 == 0 {
                spilled.delete(TimeDomain::EventTime, &(k / 2), &9, at);
                memory.delete(TimeDomain::EventTime, &(k / 2), &9, at);
            }
        }
        assert_eq!(
            drain(&mut spilled, TimeDomain::EventTime, at - 1),
            drain(&mut memory, TimeDomain::EventTime, at - 1)
        );
        for k in 0..100u64 {
            spilled.register(TimeDomain::EventTime, k, 9, at);
            memory.register(TimeDomain::EventTime, k, 9, at);
        }
        assert!(
            spilled.len(TimeDomain::EventTime) > 8,
            "some timers were stored"
        );
        for d in [TimeDomain::EventTime, TimeDomain::ProcessingTime] {
            assert_eq!(
                drain(&mut spilled, d, i64::MAX),
                drain(&mut memory, d, i64::MAX)
            );
        }
    }

    /// The timers a keyed snapshot of timers holds, sorted.
    fn timers_in(snapshot: &[u8]) -> Vec<(u64, u32, (bool, i64))> {
        let mut all = Vec::new();
        crate::read_keyed_snapshot(snapshot, superflow_core::KeyGroupRange::all(), |k, n, t| {
            all.push((k, n, t))
        })
        .unwrap();
        all.sort();
        all
    }

    #[test]
    fn incremental_timer_checkpoints_add_up_to_the_timers() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStateStore::open(&dir.path().join("state")).unwrap();
        let shared = dir.path().join("shared");
        let mut spilled: TimerService<u64, u32> = TimerService::spilling(&store, "op/t", 8);
        let mut random = seeded_random(7);
        let (mut watermark, mut checkpoint, mut deltas) = (0i64, 0u64, 0);
        for round in 0..4_000 {
            let domain = domain_of(random(4));
            let (key, window) = (random(60), random(3) as u32);
            let time = watermark + random(400) as i64;
            match random(10) {
                0..=5 => spilled.register(domain, key, window, time),
                6 => spilled.delete(domain, &key, &window, time),
                _ => {
                    watermark += random(40) as i64;
                    drain(&mut spilled, domain, watermark);
                }
            }
            if round % 150 == 0 {
                checkpoint += 1;
                let whole = spilled.snapshot(128, crate::Compression::None).unwrap();
                let encode = spilled
                    .snapshot_incremental(checkpoint, shared.clone(), 128)
                    .unwrap();
                // The data path goes on before the writer runs.
                spilled.register(TimeDomain::EventTime, 1_000, 1, watermark + 5);
                spilled.delete(TimeDomain::EventTime, &key, &window, time);
                let chain: Vec<String> = postcard::from_bytes(&encode().unwrap()).unwrap();
                deltas += usize::from(chain.len() > 1);
                let files: Vec<Vec<u8>> = chain
                    .iter()
                    .map(|f| std::fs::read(shared.join(f)).unwrap())
                    .collect();
                let merged = crate::read_chain(&files).unwrap();
                assert_eq!(timers_in(&merged), timers_in(&whole), "round {round}");
                let mut back: TimerService<u64, u32> = TimerService::new();
                back.restore(&merged, superflow_core::KeyGroupRange::all())
                    .unwrap();
                let processing = timers_in(&whole).iter().filter(|t| t.2 .0).count();
                assert_eq!(back.len(TimeDomain::ProcessingTime), processing);
            }
        }
        assert!(
            spilled.len(TimeDomain::EventTime) > 8,
            "some timers were stored"
        );
        assert!(deltas > 15, "most checkpoints were deltas: {deltas}");
        // A delta holds what changed, not every timer.
        spilled
            .snapshot_incremental(checkpoint + 1, shared.clone(), 128)
            .unwrap()()
        .unwrap();
        spilled.register(TimeDomain::EventTime, 5, 5, watermark + 50);
        let encode = spilled
            .snapshot_incremental(checkpoint + 2, shared.clone(), 128)
            .unwrap();
        let chain: Vec<String> = postcard::from_bytes(&encode().unwrap()).unwrap();
        assert!(chain.len() > 1, "{chain:?}");
        let last = std::fs::read(shared.join(chain.last().unwrap())).unwrap();
        assert!(last.len() < 64, "one timer's delta is {} bytes", last.len());
    }
}
