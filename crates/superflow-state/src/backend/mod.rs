//! [`StateBackend`]: where keyed state lives beyond the tables in memory (Flink's state
//! backends). Every keyed state of a subtask is a table in memory (a [`SpillingMap`],
//! a [`StateTable`] or a [`TimerService`]); a backend decides whether the table holds
//! everything ([`MemoryStateBackend`]) or keeps a bounded part in memory and the rest
//! in a [`StatePartition`] of its store ([`EmbeddedStateBackend`], over fjall).
//!
//! A partition is an ordered map of bytes: the tables write their keys with the key
//! group first, so a partition's entries come out grouped, and they take their
//! checkpoints (full or incremental) from a consistent [`PartitionView`] on the
//! checkpoint writer's thread. A new backend implements these three traits in one file.
//!
//! [`SpillingMap`]: crate::SpillingMap
//! [`StateTable`]: crate::StateTable
//! [`TimerService`]: crate::TimerService

mod embedded;
mod memory;

pub use embedded::{DiskStateStore, EmbeddedStateBackend};
pub use memory::MemoryStateBackend;

use std::path::Path;
use std::sync::Arc;

/// Why a state backend's store failed.
#[derive(Debug, thiserror::Error)]
#[error("the state store in {location} failed: {reason}")]
pub struct StoreError {
    location: String,
    reason: String,
}

impl StoreError {
    /// An error of the store at `location` (a directory, or whatever names the store).
    pub fn new(location: impl Into<String>, reason: impl std::fmt::Display) -> StoreError {
        StoreError {
            location: location.into(),
            reason: reason.to_string(),
        }
    }
}

/// What a compaction does with one stored value.
#[derive(Debug, PartialEq, Eq)]
pub enum Compacted {
    /// The value stays as it is.
    Keep,
    /// The entry goes (an expired value).
    Remove,
    /// The value is replaced (a list or map that lost some expired elements).
    Replace(Vec<u8>),
}

/// Decides what one compaction run does with each stored value of a partition.
pub type CompactionRun = Box<dyn FnMut(&[u8]) -> Compacted + Send>;

/// Cleans a partition's values up when the store compacts them (TTL cleanup in the
/// background, as Flink's RocksDB compaction filter): makes a [`CompactionRun`] for
/// each compaction, so that it reads the clock once per run (or every so many values).
pub type CompactionCleanup = Arc<dyn Fn() -> CompactionRun + Send + Sync>;

/// Timers kept in memory per cache entry when timers go to the store. A timer is a few
/// dozen bytes, and a window operator has one per key and window: with as many as the
/// window contents, the timers of the next window went to the store and back, and a
/// window count over 100k keys ran at half speed (2.6M against 4.7M records/s).
pub const TIMERS_PER_CACHE_ENTRY: usize = 4;

/// Where the keyed state of one job run lives: shared by every subtask of a process.
pub trait StateBackend: Send + Sync + std::fmt::Debug {
    /// The partition of state `state` (one state of one subtask), created with
    /// `cleanup` as its compaction cleanup if it does not exist yet; `None` when the
    /// backend keeps every entry in memory.
    fn open_partition(
        &self,
        state: &str,
        cleanup: Option<CompactionCleanup>,
    ) -> Result<Option<Box<dyn StatePartition>>, StoreError>;

    /// Entries of one state and subtask kept in memory in front of the store.
    fn cache_entries(&self) -> usize;

    /// Whether timers beyond those in memory go to the store too.
    fn timers_in_store(&self) -> bool;

    /// The run's working copy on disk, removed when the run ends (checkpoints, not the
    /// store, make state durable).
    fn working_dir(&self) -> Option<&Path> {
        None
    }
}

/// One state of one subtask in a backend's store: an ordered map of bytes.
pub trait StatePartition: Send + Sync {
    /// The partition's name, which names its incremental checkpoint files.
    fn name(&self) -> &str;
    /// The stored value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key`.
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Removes `key`.
    fn remove(&self, key: &[u8]) -> Result<(), StoreError>;
    /// A batch of writes applied together by [`PartitionBatch::commit`].
    fn batch(&self) -> Box<dyn PartitionBatch + '_>;
    /// Calls `each` with the entries whose keys start with `prefix`, in key order, until
    /// it returns `false`.
    fn scan(
        &self,
        prefix: &[u8],
        each: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    /// About how many entries the partition holds (cheap).
    fn approximate_len(&self) -> usize;
    /// A consistent view of the partition as it is now, to read on another thread.
    fn view(&self) -> Box<dyn PartitionView>;
    /// An error of this partition, naming its store.
    fn error(&self, reason: &dyn std::fmt::Display) -> StoreError;

    /// Fails the job with an error of this partition: the tables in memory have no way
    /// to answer a lookup or take a write their store refused.
    fn fail(&self, reason: &dyn std::fmt::Display) -> ! {
        panic!("{}", self.error(reason))
    }
}

/// Writes to one partition, applied together.
pub trait PartitionBatch {
    /// Stores `value` under `key`.
    fn insert(&mut self, key: &[u8], value: &[u8]);
    /// Removes `key`.
    fn remove(&mut self, key: &[u8]);
    /// Applies the writes.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A consistent view of one partition, read on a checkpoint writer's thread.
pub trait PartitionView: Send {
    /// The value of `key` in the view.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Calls `each` with every entry, in key order.
    fn scan(&self, each: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded(dir: &Path, timers_in_store: bool) -> EmbeddedStateBackend {
        let store = DiskStateStore::open(&dir.join("lsm")).unwrap();
        EmbeddedStateBackend::new(store, 10, timers_in_store)
    }

    #[test]
    fn the_memory_backend_opens_no_partition() {
        let backend = MemoryStateBackend;
        assert!(backend.open_partition("op#0/s", None).unwrap().is_none());
        assert!(!backend.timers_in_store());
        assert!(backend.working_dir().is_none());
    }

    #[test]
    fn a_partition_is_an_ordered_map_of_bytes_with_consistent_views() {
        let dir = tempfile::tempdir().unwrap();
        let backend = embedded(dir.path(), false);
        assert_eq!(
            backend.working_dir(),
            Some(dir.path().join("lsm").as_path())
        );
        let partition = backend.open_partition("op#0/s", None).unwrap().unwrap();
        partition.insert(b"b1", b"two").unwrap();
        let mut batch = partition.batch();
        batch.insert(b"a1", b"one");
        batch.insert(b"b2", b"three");
        batch.remove(b"b1");
        batch.commit().unwrap();
        assert_eq!(partition.get(b"a1").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(partition.get(b"b1").unwrap(), None);
        let view = partition.view();
        partition.remove(b"a1").unwrap();
        partition.insert(b"b3", b"four").unwrap();
        // The view holds the partition as it was when taken.
        let mut seen = Vec::new();
        view.scan(&mut |k, v| seen.push((k.to_vec(), v.to_vec())))
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (b"a1".to_vec(), b"one".to_vec()),
                (b"b2".to_vec(), b"three".to_vec())
            ]
        );
        assert_eq!(view.get(b"b3").unwrap(), None);
        // A scan by prefix, in key order, stops when told.
        let mut keys = Vec::new();
        partition
            .scan(b"b", &mut |k, _| {
                keys.push(k.to_vec());
                false
            })
            .unwrap();
        assert_eq!(keys, vec![b"b2".to_vec()]);
        // Another state's partition is another map.
        let other = backend.open_partition("op#0/t", None).unwrap().unwrap();
        assert_eq!(other.get(b"b2").unwrap(), None);
        assert_ne!(other.name(), partition.name());
    }

    #[test]
    fn tables_open_in_a_backend_spill_to_it_beyond_its_cache() {
        let dir = tempfile::tempdir().unwrap();
        let backend = embedded(dir.path(), true);
        let mut map: crate::SpillingMap<u64, u64> =
            crate::SpillingMap::in_backend(&backend, "op#0/m", 128, None).unwrap();
        assert!(map.is_spilling());
        for k in 0..1_000 {
            map.insert(k, k * 2);
        }
        assert!(map.in_memory_len() <= backend.cache_entries());
        assert_eq!(map.get_mut(&7).copied(), Some(14));
        let mut timers: crate::TimerService<u64, ()> =
            crate::TimerService::in_backend(&backend, "op#0/timers").unwrap();
        for k in 0..1_000u64 {
            timers.register(crate::TimeDomain::EventTime, k, (), k as i64);
        }
        assert!(timers.in_memory_len() <= backend.cache_entries() * TIMERS_PER_CACHE_ENTRY);
        assert_eq!(timers.len(crate::TimeDomain::EventTime), 1_000);
        let memory: crate::SpillingMap<u64, u64> =
            crate::SpillingMap::in_backend(&MemoryStateBackend, "op#0/m", 128, None).unwrap();
        assert!(!memory.is_spilling());
    }
}
