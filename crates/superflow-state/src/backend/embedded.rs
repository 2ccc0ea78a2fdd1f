//! [`EmbeddedStateBackend`]: state larger than memory in an embedded LSM store (fjall,
//! Flink's `EmbeddedRocksDBStateBackend`): one partition per state of each operator
//! subtask, compaction filters for TTL cleanup, and MVCC snapshots of a partition read
//! off the data path.
//!
//! fjall was chosen over redb by measurement (`docs/state-backends.md`): the tables in
//! front of it turn misses into random reads and evictions into random writes, which
//! the LSM serves at several times redb's write rate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    Compacted, CompactionCleanup, CompactionRun, PartitionBatch, PartitionView, StateBackend,
    StatePartition, StoreError,
};

/// The embedded backend of one job run on one process: its store, and how much of each
/// state the tables in front of it keep in memory.
#[derive(Debug, Clone)]
pub struct EmbeddedStateBackend {
    store: Arc<DiskStateStore>,
    cache_entries: usize,
    timers_in_store: bool,
}

impl EmbeddedStateBackend {
    /// A backend over `store`, keeping `cache_entries` entries per state and subtask in
    /// memory, and timers beyond those in memory in the store if `timers_in_store`.
    pub fn new(
        store: Arc<DiskStateStore>,
        cache_entries: usize,
        timers_in_store: bool,
    ) -> EmbeddedStateBackend {
        EmbeddedStateBackend {
            store,
            cache_entries,
            timers_in_store,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<DiskStateStore> {
        &self.store
    }
}

impl StateBackend for EmbeddedStateBackend {
    fn open_partition(
        &self,
        state: &str,
        cleanup: Option<CompactionCleanup>,
    ) -> Result<Option<Box<dyn StatePartition>>, StoreError> {
        Ok(Some(Box::new(self.store.partition(state, cleanup)?)))
    }

    fn cache_entries(&self) -> usize {
        self.cache_entries
    }

    fn timers_in_store(&self) -> bool {
        self.timers_in_store
    }

    fn working_dir(&self) -> Option<&Path> {
        Some(self.store.dir())
    }
}

/// One partition of the store.
pub(crate) struct FjallPartition {
    store: Arc<DiskStateStore>,
    keyspace: fjall::Keyspace,
    name: String,
}

impl StatePartition for FjallPartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.keyspace
            .get(key)
            .map(|value| value.map(|v| v.to_vec()))
            .map_err(|e| self.store.error(e))
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.keyspace
            .insert(key, value)
            .map_err(|e| self.store.error(e))
    }

    fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        self.keyspace.remove(key).map_err(|e| self.store.error(e))
    }

    fn batch(&self) -> Box<dyn PartitionBatch + '_> {
        Box::new(FjallBatch {
            batch: self.store.db.batch(),
            partition: self,
        })
    }

    fn scan(
        &self,
        prefix: &[u8],
        each: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for item in self.keyspace.prefix(prefix) {
            let (key, value) = item.into_inner().map_err(|e| self.store.error(e))?;
            if !each(&key, &value) {
                break;
            }
        }
        Ok(())
    }

    fn approximate_len(&self) -> usize {
        self.keyspace.approximate_len()
    }

    fn view(&self) -> Box<dyn PartitionView> {
        Box::new(FjallView {
            snapshot: self.store.db.snapshot(),
            keyspace: self.keyspace.clone(),
            store: Arc::clone(&self.store),
        })
    }

    fn error(&self, reason: &dyn std::fmt::Display) -> StoreError {
        self.store.error(reason)
    }
}

struct FjallBatch<'a> {
    batch: fjall::OwnedWriteBatch,
    partition: &'a FjallPartition,
}

impl PartitionBatch for FjallBatch<'_> {
    fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.batch.insert(&self.partition.keyspace, key, value);
    }

    fn remove(&mut self, key: &[u8]) {
        self.batch.remove(&self.partition.keyspace, key);
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let store = &self.partition.store;
        self.batch.commit().map_err(|e| store.error(e))
    }
}

/// An MVCC snapshot of one partition.
struct FjallView {
    snapshot: fjall::Snapshot,
    keyspace: fjall::Keyspace,
    store: Arc<DiskStateStore>,
}

impl PartitionView for FjallView {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        use fjall::Readable;
        self.snapshot
            .get(&self.keyspace, key)
            .map(|value| value.map(|v| v.to_vec()))
            .map_err(|e| self.store.error(e))
    }

    fn scan(&self, each: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        use fjall::Readable;
        for item in self.snapshot.iter(&self.keyspace) {
            let (key, value) = item.into_inner().map_err(|e| self.store.error(e))?;
            each(&key, &value);
        }
        Ok(())
    }
}

/// The embedded store of one job run on one process: a fjall database in a local
/// directory, shared by every subtask's spilling state.
pub struct DiskStateStore {
    pub(crate) db: fjall::Database,
    dir: PathBuf,
    /// Compaction cleanups of partitions not created yet, by partition name: fjall asks
    /// for a partition's filter when it creates the partition.
    cleanups: Arc<std::sync::Mutex<HashMap<String, CompactionCleanup>>>,
}

impl std::fmt::Debug for DiskStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStateStore")
            .field("dir", &self.dir)
            .finish()
    }
}

/// Adapts a [`CompactionCleanup`] to fjall's compaction filters.
struct CleanupFactory(std::panic::AssertUnwindSafe<CompactionCleanup>);

impl fjall::compaction::filter::Factory for CleanupFactory {
    fn name(&self) -> &str {
        "superflow-ttl"
    }

    fn make_filter(
        &self,
        _: &fjall::compaction::filter::Context,
    ) -> Box<dyn fjall::compaction::filter::CompactionFilter> {
        Box::new(CleanupFilter((self.0)()))
    }
}

struct CleanupFilter(CompactionRun);

impl fjall::compaction::filter::CompactionFilter for CleanupFilter {
    fn filter_item(
        &mut self,
        item: fjall::compaction::filter::ItemAccessor<'_>,
        _: &fjall::compaction::filter::Context,
    ) -> fjall::compaction::filter::CompactionFilterResult {
        use fjall::compaction::filter::Verdict;
        let value = item.value()?;
        Ok(match (self.0)(&value) {
            Compacted::Keep => Verdict::Keep,
            Compacted::Remove => Verdict::Remove,
            Compacted::Replace(bytes) => Verdict::ReplaceValue(bytes.into()),
        })
    }
}

impl DiskStateStore {
    /// The block cache a store gets unless told otherwise: 32 MiB.
    ///
    /// The block cache is a second cache behind each state's own table in memory: at
    /// 128 MiB it held most of the backend's memory (a window count over 4M keys, 20M
    /// records, peaked at 1.23 GB against 0.67 GB at 32 MiB, and ran 30% faster: 0.19M
    /// against 0.13M records/s).
    pub const DEFAULT_BLOCK_CACHE_BYTES: u64 = 32 * 1024 * 1024;

    /// Opens a fresh store in `dir` (whatever was there is removed), with the default
    /// block cache.
    pub fn open(dir: &Path) -> Result<Arc<DiskStateStore>, StoreError> {
        Self::open_with_block_cache(dir, Self::DEFAULT_BLOCK_CACHE_BYTES)
    }

    /// Opens a fresh store in `dir` (whatever was there is removed) whose cache of
    /// blocks read from disk holds up to `block_cache_bytes`.
    pub fn open_with_block_cache(
        dir: &Path,
        block_cache_bytes: u64,
    ) -> Result<Arc<DiskStateStore>, StoreError> {
        let error = |reason: String| StoreError::new(dir.display().to_string(), reason);
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| error(e.to_string()))?;
        }
        let cleanups: Arc<std::sync::Mutex<HashMap<String, CompactionCleanup>>> = Arc::default();
        let assigned = Arc::clone(&cleanups);
        // A working copy: writes need not reach the OS at once (checkpoints are the
        // durable copy).
        let db = fjall::Database::builder(dir)
            .temporary(true)
            .manual_journal_persist(true)
            .cache_size(block_cache_bytes)
            .with_compaction_filter_factories(Arc::new(move |partition: &str| {
                let cleanup = lock(&assigned).remove(partition)?;
                let factory: Arc<dyn fjall::compaction::filter::Factory> =
                    Arc::new(CleanupFactory(std::panic::AssertUnwindSafe(cleanup)));
                Some(factory)
            }))
            .open()
            .map_err(|e| error(e.to_string()))?;
        Ok(Arc::new(DiskStateStore {
            db,
            dir: dir.to_path_buf(),
            cleanups,
        }))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes the store holds on disk.
    pub fn disk_space(&self) -> Result<u64, StoreError> {
        self.db.disk_space().map_err(|e| self.error(e))
    }

    /// The partition of `state`, created with `cleanup` as its compaction cleanup if it
    /// does not exist yet.
    pub(crate) fn partition(
        self: &Arc<Self>,
        state: &str,
        cleanup: Option<CompactionCleanup>,
    ) -> Result<FjallPartition, StoreError> {
        // Partition names allow few characters: a hash of the state's name stands in.
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = foldhash::fast::FixedState::with_seed(7).build_hasher();
        hasher.write(state.as_bytes());
        let name = format!("s{:016x}", hasher.finish());
        if let Some(cleanup) = cleanup {
            lock(&self.cleanups).insert(name.clone(), cleanup);
        }
        let keyspace = self.db.keyspace(&name, || {
            fjall::KeyspaceCreateOptions::default()
                .manual_journal_persist(true)
                .max_memtable_size(4 * 1024 * 1024)
        });
        lock(&self.cleanups).remove(&name);
        Ok(FjallPartition {
            store: Arc::clone(self),
            keyspace: keyspace.map_err(|e| self.error(e))?,
            name,
        })
    }

    /// Compacts `state`'s partition now, and returns how many entries it holds then (for
    /// tests and measurements of compaction cleanup).
    pub fn compact(self: &Arc<Self>, state: &str) -> Result<usize, StoreError> {
        let keyspace = self.partition(state, None)?.keyspace;
        keyspace
            .rotate_memtable_and_wait()
            .and_then(|()| keyspace.major_compact())
            .and_then(|()| keyspace.len())
            .map_err(|e| self.error(e))
    }

    fn error(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::new(self.dir.display().to_string(), reason)
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
