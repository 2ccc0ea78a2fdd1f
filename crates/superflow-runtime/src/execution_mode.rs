//! `RuntimeExecutionMode`: whether a job runs with streaming or batch semantics, and
//! which of the two a job of bounded sources gets when the choice is automatic.

use superflow_core::JobError;

use crate::graph::{JobGraph, NodeKind};

/// How a job's operators emit (Flink's `RuntimeExecutionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeExecutionMode {
    /// Results as records arrive; watermarks as the sources and strategies make them.
    #[default]
    Streaming,
    /// Final results of a bounded job only: a keyed reduce emits one record per key at
    /// the end of its input, watermarks are perfect (only the final one, so no record
    /// is late and every event-time window fires once with all its records), and
    /// processing-time timers fire at the end of the input. Checkpoints are not taken.
    Batch,
    /// `Batch` when every source is bounded, `Streaming` otherwise.
    Automatic,
}

impl RuntimeExecutionMode {
    /// The mode a job of `graph` runs in (`Streaming` or `Batch`). A job with an
    /// unbounded source cannot run in `Batch` mode: the error names the source.
    pub fn resolve(self, graph: &JobGraph) -> Result<RuntimeExecutionMode, JobError> {
        let unbounded = graph
            .nodes
            .iter()
            .find(|n| n.kind == NodeKind::Source && !n.bounded);
        match (self, unbounded) {
            (RuntimeExecutionMode::Streaming, _) => Ok(RuntimeExecutionMode::Streaming),
            (RuntimeExecutionMode::Automatic, Some(_)) => Ok(RuntimeExecutionMode::Streaming),
            (_, None) => Ok(RuntimeExecutionMode::Batch),
            (RuntimeExecutionMode::Batch, Some(source)) => Err(JobError::InvalidJob(format!(
                "source '{}' is unbounded, and a job in BATCH execution mode needs bounded \
                 sources: run it in STREAMING mode, or bound the source",
                source.name
            ))),
        }
    }

    /// Whether records are handled with batch semantics.
    pub fn is_batch(self) -> bool {
        self == RuntimeExecutionMode::Batch
    }
}
