//! Keyed state larger than memory: a bounded table in memory in front of an embedded
//! LSM store (fjall), one partition per state of each operator subtask.
//!
//! A value is in memory while it is used; when the table is full, the entries it meets
//! first are written to the store and dropped from memory, and a lookup that misses the
//! table reads the store. The store is a working copy for one run of the job (its
//! directory is wiped when it opens): checkpoints, not the store, make state durable.
//! A snapshot writes the table's entries into the store and encodes an MVCC snapshot of
//! the partition on the checkpoint writer's thread, straight from the stored bytes (the
//! store's keys start with the key group, so they come out grouped).
//! The store is the backend's ([`StateBackend`]): the map reaches it through a
//! [`StatePartition`], so it spills to whichever store the backend has.

mod chain;

pub(crate) use chain::{append_grouped_key, encode_delta, write_chain_file, IncrementalChain};
pub use chain::{is_full_checkpoint, read_chain};

use std::hash::Hash;
use std::path::PathBuf;

use serde::{de::DeserializeOwned, Serialize};
use superflow_core::KeyGroupRange;

use crate::backend::{CompactionCleanup, StateBackend, StatePartition};
use crate::snapshot::{
    read_keyed_snapshot, write_raw_keyed_snapshot, Compression, Encoding, SnapshotError,
};

/// The stored part of a spilling map.
struct Disk {
    partition: Box<dyn StatePartition>,
    max_parallelism: usize,
    /// Keys written or removed since the last checkpoint.
    changed: crate::hashing::StateHashSet<K2>,
    /// The files of the incremental checkpoint chain so far.
    chain: IncrementalChain,
    /// Which keys the store may hold: a lookup of a key it never held (a new window,
    /// most often) then costs no read of the store.
    stored_keys: StoredKeys,
}

/// A Bloom filter of the keys written to a partition. Keys removed from the store stay
/// in it, so once it has taken in more keys than it was sized for, it is built again
/// from the keys the store holds.
struct StoredKeys {
    filter: fastbloom::BloomFilter<foldhash::fast::FixedState>,
    added: usize,
    room: usize,
}

impl StoredKeys {
    /// The fewest keys a filter is sized for.
    const MIN_ROOM: usize = 1 << 16;

    fn with_room(room: usize) -> StoredKeys {
        let room = room.max(Self::MIN_ROOM);
        StoredKeys {
            filter: fastbloom::BloomFilter::with_false_pos(0.01)
                .hasher(foldhash::fast::FixedState::with_seed(11))
                .expected_items(room),
            added: 0,
            room,
        }
    }

    #[inline]
    fn add(&mut self, key: &[u8]) {
        self.filter.insert(key);
        self.added += 1;
    }

    #[inline]
    fn may_hold(&self, key: &[u8]) -> bool {
        self.filter.contains(key)
    }

    /// Builds the filter again from the keys of `partition` if it is full.
    fn refresh(&mut self, partition: &dyn StatePartition) {
        if self.added <= self.room {
            return;
        }
        let mut fresh = StoredKeys::with_room(2 * partition.approximate_len());
        if let Err(e) = partition.scan(&[], &mut |key, _| {
            fresh.add(key);
            true
        }) {
            partition.fail(&e);
        }
        *self = fresh;
    }
}

/// A key as the store holds it (key group, then the encoded key).
type K2 = Vec<u8>;

/// A stored key (without its key group) and value, copied out of a partition's view.
type StoredEntry = (Vec<u8>, Vec<u8>);

impl Disk {
    /// Writes the entries in memory to the store (those of `only`, sorted stored keys,
    /// if given), which then holds them too.
    fn write_back<K: Hash + Serialize, V: Serialize>(
        &mut self,
        hot: &mut rustc_hash::FxHashMap<K, Slot<V>>,
        only: Option<&[K2]>,
    ) {
        let mut batch = self.partition.batch();
        let mut key_bytes = Vec::new();
        let mut value = Vec::new();
        for (key, slot) in hot.iter_mut() {
            self.key(key, &mut key_bytes);
            if only.is_some_and(|only| only.binary_search(&key_bytes).is_err()) {
                continue;
            }
            Self::stage(
                &*self.partition,
                &mut self.stored_keys,
                &mut *batch,
                &key_bytes,
                &slot.value,
                &mut value,
            );
            slot.stored = true;
        }
        Self::commit(&*self.partition, &mut self.stored_keys, batch);
    }

    /// Adds `value` under stored key `key` to `batch` (encoded in `buf`); from then on
    /// the store may hold `key`.
    fn stage<V: Serialize>(
        partition: &dyn StatePartition,
        stored_keys: &mut StoredKeys,
        batch: &mut dyn crate::backend::PartitionBatch,
        key: &[u8],
        value: &V,
        buf: &mut Vec<u8>,
    ) {
        buf.clear();
        if let Err(e) = postcard::to_io(value, &mut *buf) {
            partition.fail(&format!("a value cannot be encoded: {e}"));
        }
        batch.insert(key, buf.as_slice());
        stored_keys.add(key);
    }

    /// Writes `batch` to the store, and builds the filter of stored keys again if it is
    /// full.
    fn commit(
        partition: &dyn StatePartition,
        stored_keys: &mut StoredKeys,
        batch: Box<dyn crate::backend::PartitionBatch + '_>,
    ) {
        if let Err(e) = batch.commit() {
            partition.fail(&e);
        }
        stored_keys.refresh(partition);
    }

    /// The store's key of `key`: its key group (big-endian, so keys sort by group), then
    /// its encoding.
    fn key<K: Hash + Serialize>(&self, key: &K, out: &mut Vec<u8>) {
        out.clear();
        if let Err(e) = append_grouped_key(key, key, self.max_parallelism, out) {
            self.partition
                .fail(&format!("a key cannot be encoded: {e}"));
        }
    }
}

/// A value in memory, and whether the store may hold an older copy of it.
#[derive(Clone)]
struct Slot<V> {
    value: V,
    stored: bool,
}

/// Values of one keyed state by key, in memory up to a number of entries and in the
/// embedded store beyond (or all in memory, without a store).
pub struct SpillingMap<K, V> {
    /// FxHash: keys here are whole keys (no window beside them), which it hashes well
    /// and fastest (w2 ran 15% faster than with foldhash).
    hot: rustc_hash::FxHashMap<K, Slot<V>>,
    capacity: usize,
    disk: Option<Disk>,
    scratch: Vec<u8>,
    /// The keys in memory [`SpillingMap::retain_some`] has still to check in its round.
    round: Vec<K>,
}

impl<K, V> Default for SpillingMap<K, V> {
    fn default() -> Self {
        SpillingMap {
            hot: rustc_hash::FxHashMap::default(),
            capacity: usize::MAX,
            disk: None,
            scratch: Vec::new(),
            round: Vec::new(),
        }
    }
}

impl<K, V> SpillingMap<K, V>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// A map held in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The map of state `state` in `backend`: in memory with the memory backend; with
    /// a store, at most the backend's cache entries in memory and the rest in the
    /// state's partition, whose stored values `cleanup` sees when the store compacts
    /// them.
    pub fn in_backend(
        backend: &dyn StateBackend,
        state: &str,
        max_parallelism: usize,
        cleanup: Option<CompactionCleanup>,
    ) -> Result<Self, crate::StoreError> {
        Ok(match backend.open_partition(state, cleanup)? {
            Some(partition) => {
                Self::over_partition(partition, max_parallelism, backend.cache_entries())
            }
            None => Self::in_memory(),
        })
    }

    /// A map keeping at most `capacity` entries in memory and the rest in partition
    /// `state` of `store` (tests size the table themselves; jobs open maps with
    /// [`Self::in_backend`]).
    #[cfg(test)]
    pub(crate) fn spilling(
        store: &std::sync::Arc<crate::backend::DiskStateStore>,
        state: &str,
        max_parallelism: usize,
        capacity: usize,
    ) -> Self {
        match store.partition(state, None) {
            Ok(partition) => Self::over_partition(Box::new(partition), max_parallelism, capacity),
            Err(e) => panic!("{e}"),
        }
    }

    /// A map keeping at most `capacity` entries in memory and the rest in `partition`.
    fn over_partition(
        partition: Box<dyn StatePartition>,
        max_parallelism: usize,
        capacity: usize,
    ) -> Self {
        SpillingMap {
            hot: rustc_hash::FxHashMap::default(),
            capacity: capacity.max(1),
            disk: Some(Disk {
                partition,
                max_parallelism,
                changed: Default::default(),
                chain: IncrementalChain::default(),
                stored_keys: StoredKeys::with_room(capacity.saturating_mul(4)),
            }),
            scratch: Vec::new(),
            round: Vec::new(),
        }
    }

    /// Notes that `key` changed since the last checkpoint (with a store). Only a delta
    /// needs the changed keys: before the first incremental checkpoint (and without
    /// checkpoints) none are kept, so that they do not pile up.
    #[inline]
    fn touch(&mut self, key: &K) {
        if let Some(disk) = &mut self.disk {
            if !disk.chain.started() {
                return;
            }
            disk.key(key, &mut self.scratch);
            if !disk.changed.contains(&self.scratch) {
                disk.changed.insert(self.scratch.clone());
            }
        }
    }

    /// Whether entries go to the embedded store.
    pub fn is_spilling(&self) -> bool {
        self.disk.is_some()
    }

    /// Entries in memory.
    pub fn in_memory_len(&self) -> usize {
        self.hot.len()
    }

    /// Writes entries to the store until the table has room for one more.
    fn make_room(&mut self) {
        let Some(disk) = &mut self.disk else {
            return;
        };
        if self.hot.len() < self.capacity {
            return;
        }
        // An eighth at a time, so a full table is not flushed on every insert.
        let evict = (self.capacity / 8).max(1);
        let victims: Vec<K> = self.hot.keys().take(evict).cloned().collect();
        let mut batch = disk.partition.batch();
        let mut value = Vec::new();
        for key in victims {
            if let Some(slot) = self.hot.remove(&key) {
                disk.key(&key, &mut self.scratch);
                Disk::stage(
                    &*disk.partition,
                    &mut disk.stored_keys,
                    &mut *batch,
                    &self.scratch,
                    &slot.value,
                    &mut value,
                );
            }
        }
        Disk::commit(&*disk.partition, &mut disk.stored_keys, batch);
    }

    /// The value of `key`, for update (read from the store on a miss).
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if self.disk.is_some() {
            self.touch(key);
        }
        if !self.hot.contains_key(key) {
            let disk = self.disk.as_ref()?;
            disk.key(key, &mut self.scratch);
            if !disk.stored_keys.may_hold(&self.scratch) {
                return None;
            }
            let bytes = match disk.partition.get(&self.scratch) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return None,
                Err(e) => disk.partition.fail(&e),
            };
            let value: V = postcard::from_bytes(&bytes).unwrap_or_else(|e| {
                disk.partition
                    .fail(&format!("a value cannot be decoded: {e}"))
            });
            self.make_room();
            self.hot.insert(
                key.clone(),
                Slot {
                    value,
                    stored: true,
                },
            );
        }
        self.hot.get_mut(key).map(|slot| &mut slot.value)
    }

    /// The value of `key`, created by `init` if there is none.
    #[inline]
    pub fn get_or_insert_with(&mut self, key: K, init: impl FnOnce() -> V) -> &mut V {
        // The in-memory path on its own: it is w2's hot path, which ran 35% slower
        // through `get_or_create`'s flag.
        if self.disk.is_none() {
            return &mut self
                .hot
                .entry(key)
                .or_insert_with(|| Slot {
                    value: init(),
                    stored: false,
                })
                .value;
        }
        self.get_or_create_stored(key, init).0
    }

    /// The value of `key`, created by `init` if there is none; the flag says whether it
    /// was created.
    #[inline]
    pub fn get_or_create(&mut self, key: K, init: impl FnOnce() -> V) -> (&mut V, bool) {
        if self.disk.is_none() {
            let mut created = false;
            let slot = self.hot.entry(key).or_insert_with(|| {
                created = true;
                Slot {
                    value: init(),
                    stored: false,
                }
            });
            return (&mut slot.value, created);
        }
        self.get_or_create_stored(key, init)
    }

    /// `get_or_create` with a store, out of line so that the in-memory path stays small.
    #[inline(never)]
    fn get_or_create_stored(&mut self, key: K, init: impl FnOnce() -> V) -> (&mut V, bool) {
        let created = self.get_mut(&key).is_none();
        if created {
            self.make_room();
            self.hot.insert(
                key.clone(),
                Slot {
                    value: init(),
                    stored: false,
                },
            );
        }
        match self.hot.get_mut(&key) {
            Some(slot) => (&mut slot.value, created),
            None => unreachable!("the key is in memory"),
        }
    }

    /// Sets the value of `key`.
    pub fn insert(&mut self, key: K, value: V) {
        if self.disk.is_some() {
            self.touch(&key);
        }
        match self.hot.get_mut(&key) {
            Some(slot) => slot.value = value,
            None => {
                self.make_room();
                // The store may hold an older value; the one in memory shadows it.
                let stored = self.disk.is_some();
                self.hot.insert(key, Slot { value, stored });
            }
        }
    }

    /// Removes the value of `key`, and returns it.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        if self.disk.is_some() {
            self.touch(key);
        }
        let (value, stored) = match self.hot.remove(key) {
            Some(slot) => (Some(slot.value), slot.stored),
            None => (None, true),
        };
        let Some(disk) = &self.disk else {
            return value;
        };
        if !stored {
            return value;
        }
        disk.key(key, &mut self.scratch);
        if !disk.stored_keys.may_hold(&self.scratch) {
            return value;
        }
        let value = match value {
            Some(value) => Some(value),
            None => match disk.partition.get(&self.scratch) {
                Ok(Some(bytes)) => Some(postcard::from_bytes(&bytes).unwrap_or_else(|e| {
                    disk.partition
                        .fail(&format!("a value cannot be decoded: {e}"))
                })),
                Ok(None) => return None,
                Err(e) => disk.partition.fail(&e),
            },
        };
        if let Err(e) = disk.partition.remove(self.scratch.as_slice()) {
            disk.partition.fail(&e);
        }
        value
    }

    /// Entries in memory (without a store: all of them).
    pub fn len(&self) -> usize {
        self.hot.len()
    }

    /// Whether no entry is in memory.
    pub fn is_empty(&self) -> bool {
        self.hot.is_empty()
    }

    /// The capacity of the table in memory.
    pub fn capacity(&self) -> usize {
        self.hot.capacity()
    }

    /// Keeps the entries for which `keep` says so (all of them, in the store too).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let mut dropped_stored = Vec::new();
        self.hot.retain(|k, slot| {
            let kept = keep(k, &mut slot.value);
            if !kept && slot.stored {
                dropped_stored.push(k.clone());
            }
            kept
        });
        for key in dropped_stored {
            let _ = self.remove(&key);
        }
        self.give_memory_back();
        let Some(disk) = &self.disk else {
            return;
        };
        let partition = &*disk.partition;
        let mut batch = partition.batch();
        let mut value_bytes = Vec::new();
        let hot = &self.hot;
        let scanned = partition.scan(&[], &mut |stored_key, bytes| {
            let key: K = postcard::from_bytes(stored_key.get(2..).unwrap_or_default())
                .unwrap_or_else(|e| partition.fail(&format!("a key cannot be decoded: {e}")));
            if hot.contains_key(&key) {
                return true;
            }
            let mut value: V = postcard::from_bytes(bytes)
                .unwrap_or_else(|e| partition.fail(&format!("a value cannot be decoded: {e}")));
            if keep(&key, &mut value) {
                value_bytes.clear();
                if let Err(e) = postcard::to_io(&value, &mut value_bytes) {
                    partition.fail(&format!("a value cannot be encoded: {e}"));
                }
                if value_bytes.as_slice() != bytes {
                    batch.insert(stored_key, value_bytes.as_slice());
                }
            } else {
                batch.remove(stored_key);
            }
            true
        });
        if let Err(e) = scanned.and_then(|()| batch.commit()) {
            partition.fail(&e);
        }
    }

    /// Checks the next `count` entries in memory with `keep`, dropping those it refuses,
    /// in a round over the table (Flink's incremental TTL cleanup): a round takes the
    /// keys in memory when it starts, so entries added later wait for the next one.
    /// Entries only in the store are left to its compactions. The end of a round that
    /// left the table mostly empty gives its memory back.
    pub fn retain_some(&mut self, count: usize, mut keep: impl FnMut(&K, &mut V) -> bool) {
        if self.round.is_empty() {
            if self.hot.is_empty() {
                return;
            }
            self.round = self.hot.keys().cloned().collect();
        }
        for _ in 0..count {
            let Some(key) = self.round.pop() else {
                break;
            };
            if let Some(slot) = self.hot.get_mut(&key) {
                if !keep(&key, &mut slot.value) {
                    let _ = self.remove(&key);
                }
            }
        }
        if self.round.is_empty() {
            self.round = Vec::new();
            self.give_memory_back();
        }
    }

    /// Shrinks a table left mostly empty, so the memory goes back.
    fn give_memory_back(&mut self) {
        if self.hot.len() * 4 < self.hot.capacity() {
            self.hot.shrink_to_fit();
        }
    }

    /// Every entry in memory (without a store: every entry).
    pub fn iter_in_memory(&self) -> impl Iterator<Item = (&K, &V)> {
        self.hot.iter().map(|(k, slot)| (k, &slot.value))
    }

    /// Adds the entries of `snapshot` whose key groups fall in `range`.
    pub fn restore(
        &mut self,
        snapshot: &[u8],
        range: KeyGroupRange,
    ) -> Result<usize, SnapshotError> {
        read_keyed_snapshot(snapshot, range, |k, (): (), v| self.insert(k, v))
    }

    /// For checkpoint `checkpoint` with the embedded store: the changes since the last
    /// checkpoint (every entry, for the first one and every 8th), and the function that
    /// writes them as file `<partition>-c<checkpoint>` of `shared` and returns the chain
    /// of files a restore reads (encoded; see [`read_chain`]). `None` without a store.
    pub fn snapshot_incremental(&mut self, checkpoint: u64, shared: PathBuf) -> Option<Encoding> {
        let disk = self.disk.as_mut()?;
        let changed: Vec<K2> = {
            let mut keys: Vec<K2> = disk.changed.drain().collect();
            keys.sort_unstable();
            keys
        };
        let (full, file, chain) = disk.chain.next(disk.partition.name(), checkpoint, false);
        // Entries changed in memory go to the store; the store then holds the state. A
        // full checkpoint writes every entry in memory: before the first one no changes
        // were recorded (see `touch`).
        disk.write_back(&mut self.hot, (!full).then_some(changed.as_slice()));
        let view = disk.partition.view();
        Some(Box::new(move || {
            let mut entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            if full {
                view.scan(&mut |k, v| entries.push((k.to_vec(), Some(v.to_vec()))))?;
            } else {
                entries.reserve(changed.len());
                for key in changed {
                    let value = view.get(&key)?;
                    entries.push((key, value));
                }
            }
            let bytes = encode_delta(entries.iter().map(|(k, v)| (&k[..], v.as_deref())));
            write_chain_file(&shared, &file, &bytes, &chain)
        }))
    }

    /// A copy of the whole map, and the function that encodes it as a keyed snapshot:
    /// in memory, a clone of the table; with a store, the table written into the store
    /// and an MVCC snapshot of the partition.
    pub fn snapshot_later(&mut self, max_parallelism: usize) -> Encoding
    where
        K: Send + 'static,
        V: Clone + Send + 'static,
    {
        let Some(disk) = &mut self.disk else {
            let copy: Vec<(K, V)> = self
                .hot
                .iter()
                .map(|(k, slot)| (k.clone(), slot.value.clone()))
                .collect();
            return Box::new(move || {
                Ok(crate::write_keyed_snapshot(
                    copy.iter().map(|(k, v)| (k, &(), v)),
                    max_parallelism,
                    Compression::None,
                )?)
            });
        };
        disk.write_back(&mut self.hot, None);
        let view = disk.partition.view();
        Box::new(move || {
            let mut groups: Vec<(u32, Vec<StoredEntry>)> = Vec::new();
            view.scan(&mut |key, value| {
                let group = match key {
                    [high, low, ..] => u16::from_be_bytes([*high, *low]) as u32,
                    _ => return,
                };
                if groups.last().is_none_or(|(g, _)| *g != group) {
                    groups.push((group, Vec::new()));
                }
                if let Some((_, entries)) = groups.last_mut() {
                    entries.push((key.get(2..).unwrap_or_default().to_vec(), value.to_vec()));
                }
            })?;
            Ok(write_raw_keyed_snapshot(
                groups.iter().map(|(group, entries)| {
                    (*group, entries.iter().map(|(k, v)| (&k[..], &v[..])))
                }),
                Compression::None,
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::DiskStateStore;
    use std::sync::Arc;

    fn store() -> (tempfile::TempDir, Arc<DiskStateStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStateStore::open(&dir.path().join("state")).unwrap();
        (dir, store)
    }

    #[test]
    fn values_beyond_the_capacity_go_to_the_store_and_come_back() {
        let (_dir, store) = store();
        let mut map: SpillingMap<u64, String> = SpillingMap::spilling(&store, "op/s", 128, 100);
        for k in 0..10_000u64 {
            map.insert(k, format!("v{k}"));
        }
        assert!(map.in_memory_len() <= 100);
        for k in (0..10_000u64).step_by(7) {
            assert_eq!(map.get_mut(&k).cloned(), Some(format!("v{k}")));
            map.get_mut(&k).unwrap().push('!');
        }
        for k in (0..10_000u64).step_by(3) {
            assert!(map.remove(&k).is_some());
        }
        for k in 0..10_000u64 {
            let expected = (k % 3 != 0).then(|| {
                if k % 7 == 0 {
                    format!("v{k}!")
                } else {
                    format!("v{k}")
                }
            });
            assert_eq!(map.get_mut(&k).cloned(), expected, "key {k}");
        }
    }

    #[test]
    fn an_incremental_chain_adds_up_to_the_state() {
        // With 20 entries in memory most go through the store; with 1000 all stay in
        // memory, and the first (full) checkpoint must still hold them.
        for capacity in [20, 1000] {
            let (dir, store) = store();
            let shared = dir.path().join("shared");
            let mut map: SpillingMap<u64, u64> =
                SpillingMap::spilling(&store, "op/inc", 128, capacity);
            let mut memory: SpillingMap<u64, u64> = SpillingMap::in_memory();
            let mut files = Vec::new();
            for round in 0..5u64 {
                for k in 0..200u64 {
                    if (k + round) % 3 == 0 {
                        map.insert(k, k * 100 + round);
                        memory.insert(k, k * 100 + round);
                    }
                    if (k + round) % 7 == 0 {
                        let _ = map.remove(&k);
                        let _ = memory.remove(&k);
                    }
                }
                let names: Vec<String> = postcard::from_bytes(
                    &map.snapshot_incremental(round + 1, shared.clone()).unwrap()().unwrap(),
                )
                .unwrap();
                files = names
                    .iter()
                    .map(|n| std::fs::read(shared.join(n)).unwrap())
                    .collect();
                let decode = |bytes: &[u8]| {
                    let mut all = Vec::new();
                    read_keyed_snapshot(bytes, KeyGroupRange::all(), |k: u64, (): (), v: u64| {
                        all.push((k, v))
                    })
                    .unwrap();
                    all.sort();
                    all
                };
                let merged = decode(&read_chain(&files).unwrap());
                assert!(!merged.is_empty());
                assert_eq!(
                    merged,
                    decode(&memory.snapshot_later(128)().unwrap()),
                    "capacity {capacity}, checkpoint {}",
                    round + 1
                );
            }
            assert_eq!(files.len(), 5, "one full file and four deltas");
            let mut damaged = files.clone();
            let last = damaged[4].len() - 1;
            damaged[4][last] ^= 1;
            assert!(read_chain(&damaged).is_err());
        }
    }

    #[test]
    fn a_spilled_snapshot_equals_the_in_memory_one_and_restores() {
        let (_dir, store) = store();
        let mut spilled: SpillingMap<u64, Vec<u32>> =
            SpillingMap::spilling(&store, "op/a", 128, 50);
        let mut memory: SpillingMap<u64, Vec<u32>> = SpillingMap::in_memory();
        for k in 0..2_000u64 {
            let v = vec![k as u32; (k % 5) as usize];
            spilled.insert(k, v.clone());
            memory.insert(k, v);
        }
        spilled.retain(|k, _| k % 4 != 1);
        memory.retain(|k, _| k % 4 != 1);
        let a = spilled.snapshot_later(128)().unwrap();
        let b = memory.snapshot_later(128)().unwrap();
        let decode = |bytes: &[u8]| {
            let mut all = Vec::new();
            read_keyed_snapshot(
                bytes,
                KeyGroupRange::all(),
                |k: u64, (): (), v: Vec<u32>| all.push((k, v)),
            )
            .unwrap();
            all.sort();
            all
        };
        assert_eq!(decode(&a), decode(&b));
        assert_eq!(decode(&a).len(), 1_500);
        let mut back: SpillingMap<u64, Vec<u32>> = SpillingMap::spilling(&store, "op/b", 128, 10);
        back.restore(&a, KeyGroupRange::all()).unwrap();
        assert_eq!(back.get_mut(&8).cloned(), Some(vec![8u32; 3]));
        assert_eq!(back.get_mut(&9), None);
    }
}
