//! What a sink implements, beside [`SourceFunction`](crate::source::SourceFunction):
//! [`SinkFunction`] (records as they come, at least once after a restore) and
//! [`TwoPhaseCommitSink`] (exactly once: a transaction per checkpoint interval).
//!
//! A two-phase-commit sink writes each checkpoint interval's records into a
//! transaction. When a checkpoint is taken, the transaction is pre-committed (flushed,
//! made durable) and recorded in the checkpoint; when the checkpoint completes, it is
//! committed (made visible). After a failure, the restored checkpoint's pre-committed
//! transactions are committed, and anything a failed run wrote after it is aborted, so
//! the output holds each record once.

use std::time::Instant;

use serde::{de::DeserializeOwned, Serialize};
use superflow_core::UserError;

use crate::checkpoint::{FunctionInitializationContext, FunctionSnapshotContext};

/// Where a sink subtask runs.
#[derive(Debug, Clone, Copy)]
pub struct SinkContext {
    /// This subtask's index (0-based).
    pub subtask: usize,
    /// The sink's parallelism.
    pub parallelism: usize,
}

/// A sink. Each subtask gets its own clone of the sink given to `add_sink`.
pub trait SinkFunction<T>: Send + 'static {
    /// Called once per subtask before the first record.
    fn open(&mut self, _ctx: &SinkContext) -> Result<(), UserError> {
        Ok(())
    }

    /// Writes one record.
    fn invoke(&mut self, value: T) -> Result<(), UserError>;

    /// Writes a batch of records (drains `values`). Override to write in bulk.
    fn invoke_batch(&mut self, values: &mut Vec<T>) -> Result<(), UserError> {
        for value in values.drain(..) {
            self.invoke(value)?;
        }
        Ok(())
    }

    /// Called once when the input has ended: flush and close.
    fn finish(&mut self) -> Result<(), UserError> {
        Ok(())
    }

    /// Restores the sink's operator state (Flink's `CheckpointedFunction`); called once,
    /// before `open`.
    fn initialize_state(
        &mut self,
        _ctx: &FunctionInitializationContext<'_>,
    ) -> Result<(), UserError> {
        Ok(())
    }

    /// Writes the sink's operator state into a checkpoint.
    fn snapshot_state(&mut self, _ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), UserError> {
        Ok(())
    }
}

/// Where a transactional sink's subtask runs.
#[derive(Debug, Clone, Default)]
pub struct TransactionContext {
    /// This subtask's index.
    pub subtask: usize,
    /// The sink's parallelism.
    pub parallelism: usize,
    /// An id unique to this run of the job: names that must not collide with what an
    /// earlier (failed) run wrote can include it.
    pub run_id: u64,
    /// The line of checkpoints the run continues (`None` without checkpoints): the ids
    /// of transactions committed in one line are comparable, those of other lines (a
    /// fresh start of the job, another job writing into the same place) are not.
    pub lineage: Option<u64>,
    /// The checkpoint this run restored from, and where it was read.
    pub restored: Option<(u64, String)>,
}

/// A sink with exactly-once output through two-phase commit.
///
/// `commit` may be called again for a transaction already committed (a restore commits
/// the restored checkpoint's transactions, which may have been committed before the
/// failure), so it must be idempotent. A restore from a checkpoint older than the newest
/// (a damaged one skipped, or one the user named) replays records whose transactions may
/// have been committed for a later checkpoint: `recover` is where a sink that can tell
/// refuses, or rolls that output back.
pub trait TwoPhaseCommitSink<T>: Send + 'static {
    /// A transaction's handle: stored in checkpoints, so it must be serializable.
    type Transaction: Serialize + DeserializeOwned + Clone + Send + 'static;

    /// Called once per subtask before anything else. `restored` are the pre-committed
    /// transactions of the checkpoint the job restores from that this subtask will
    /// commit next; subtask 0 should clean up what earlier runs left that is not among
    /// them (`all_restored` lists those of every subtask).
    fn recover(
        &mut self,
        ctx: &TransactionContext,
        all_restored: &[Self::Transaction],
    ) -> Result<(), UserError> {
        let _ = (ctx, all_restored);
        Ok(())
    }

    /// Starts a transaction.
    fn begin_transaction(
        &mut self,
        ctx: &TransactionContext,
    ) -> Result<Self::Transaction, UserError>;

    /// Writes records into the transaction (draining `values`).
    fn invoke(
        &mut self,
        transaction: &mut Self::Transaction,
        values: &mut Vec<T>,
    ) -> Result<(), UserError>;

    /// Called now and then (at least every 100 ms while records flow), for time-based
    /// work such as rolling files.
    fn tick(&mut self, transaction: &mut Self::Transaction, now: Instant) -> Result<(), UserError> {
        let _ = (transaction, now);
        Ok(())
    }

    /// Makes the transaction durable; after this it can only be committed or aborted.
    fn pre_commit(&mut self, transaction: &mut Self::Transaction) -> Result<(), UserError>;

    /// Makes the transaction's output visible; it was pre-committed for checkpoint
    /// `checkpoint` (`u64::MAX`: the end of the job).
    fn commit(&mut self, checkpoint: u64, transaction: Self::Transaction) -> Result<(), UserError>;

    /// Discards the transaction's output.
    fn abort(&mut self, transaction: Self::Transaction) -> Result<(), UserError>;
}
