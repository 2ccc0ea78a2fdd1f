//! [`MemoryStateBackend`]: every entry in the tables in memory (Flink's
//! `HashMapStateBackend`), the fastest backend; state must fit in memory.

use super::{CompactionCleanup, StateBackend, StatePartition, StoreError};

/// Keeps every keyed state in memory: it opens no partition.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryStateBackend;

impl StateBackend for MemoryStateBackend {
    fn open_partition(
        &self,
        _state: &str,
        _cleanup: Option<CompactionCleanup>,
    ) -> Result<Option<Box<dyn StatePartition>>, StoreError> {
        Ok(None)
    }

    fn cache_entries(&self) -> usize {
        usize::MAX
    }

    fn timers_in_store(&self) -> bool {
        false
    }
}
