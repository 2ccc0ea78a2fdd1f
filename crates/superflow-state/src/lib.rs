//! Keyed state of one operator subtask: values addressed by (key, namespace), where the
//! namespace is a window for window operators and `()` for plain keyed state, and the
//! event-time and processing-time timers registered per (key, namespace).
//!
//! Window contents, trigger state and process-function timers all live here, so that
//! snapshots and restores (the checkpoint issue) have one place to read and write.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backend;
mod hashing;
pub mod keyed;
pub mod snapshot;
pub mod spill;
pub mod table;
pub mod timers;

pub use backend::{
    Compacted, CompactionCleanup, CompactionRun, DiskStateStore, EmbeddedStateBackend,
    MemoryStateBackend, PartitionBatch, PartitionView, StateBackend, StatePartition, StoreError,
    TIMERS_PER_CACHE_ENTRY,
};
pub use keyed::KeyedStore;
pub use snapshot::{
    filter_keyed_snapshot, read_keyed_snapshot, write_keyed_snapshot, write_raw_keyed_snapshot,
    Compression, Encoding, EncodingError, SnapshotError,
};
pub use spill::{is_full_checkpoint, read_chain, SpillingMap};
pub use table::{Namespaced, StateTable};
pub use timers::{TimeDomain, TimerService};
