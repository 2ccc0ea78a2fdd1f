//! Checkpoints: what a job is configured with, how checkpoint ids map
//! to epochs, the state sections operators write, the files they go to, and the
//! coordinator that triggers checkpoints and completes them.
//!
//! Checkpoint `n` is the epoch boundary `n << 32`. A source that sees checkpoint `n`
//! triggered records its position and jumps to that epoch; an operator whose input
//! frontier passes it snapshots its state, which then holds exactly the effects of the
//! earlier epochs. The frontier is the barrier: no barrier messages are sent.

mod config;
pub(crate) use config::RestartBackoff;
pub(crate) mod coordinator;
mod error;
mod operator_state;
pub mod remote;
mod snapshot;
mod storage;

pub use config::{
    CheckpointConfig, CheckpointingMode, ExternalizedCheckpointRetention, RestartStrategy,
    SnapshotCompression, StateBackendConfig, TimerStorage,
};
pub use coordinator::{
    AfterSavepoint, CheckpointCoordinator, CheckpointStats, CheckpointStatus, CommitError,
    CoordinatorSettings, InstanceId, OperatorCheckpointStats, PartReport, RunOutcome,
};
pub use error::CheckpointError;
pub use operator_state::{FunctionInitializationContext, FunctionSnapshotContext};
pub use snapshot::{DeferredEncoding, OperatorSnapshot, RestoredState, SectionKind, StateSection};
pub use storage::{
    find_restorable, load_checkpoint, CheckpointMetadata, CheckpointStorage, PartMetadata,
};

/// The epoch at which checkpoint `id` closes.
#[inline]
pub fn checkpoint_epoch(id: u64) -> u64 {
    id << 32
}

/// The checkpoint interval an epoch belongs to: epochs of interval `n` come after
/// checkpoint `n` and before checkpoint `n + 1`.
#[inline]
pub fn checkpoint_of_epoch(epoch: u64) -> u64 {
    epoch >> 32
}
