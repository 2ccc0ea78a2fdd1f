//! The errors a job ends with, and the failure a user function raises.
//!
//! A failure inside an operator travels as an [`OperatorFailure`] panic payload from
//! the operator to the worker, which turns it into a [`JobError::OperatorFailed`]. The
//! user's own message and location come first; the engine's frames never do.

use std::fmt;

/// An error a user function returns (`?` works on any `std::error::Error`).
pub type UserError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A user function (or a source or sink) failed while the job ran.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorFailure {
    /// The operator's name, as set by `.name(...)` or defaulted from its kind.
    pub operator: String,
    /// The subtask (0-based) that failed.
    pub subtask: usize,
    /// The cause: the panic message or the returned error.
    pub cause: String,
    /// Where the panic happened (`file:line:column`), if it was a panic.
    pub location: Option<String>,
    /// Whether a restart cannot help ([`Unrecoverable`]): the job then fails at once,
    /// whatever its restart strategy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fatal: bool,
}

/// An error that restarting the job cannot fix (a sink that refuses to start over
/// output it cannot account for, say): returned by a transactional sink
/// (`TwoPhaseCommitSink`), it fails the job at once, whatever the restart strategy.
/// Other functions' errors restart the job as any other error does.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unrecoverable(pub String);

impl fmt::Display for OperatorFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "operator '{}' (subtask {}) failed: {}",
            self.operator,
            self.subtask + 1,
            self.cause
        )?;
        if let Some(loc) = &self.location {
            write!(f, " (at {loc})")?;
        }
        Ok(())
    }
}

/// Why a job could not run, or why it stopped.
///
/// `Debug` prints the same text as `Display`, so `fn main() -> Result<(), JobError>`
/// shows the user's message, not a struct dump.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The job graph is not valid; nothing ran.
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// A parallelism setting is out of range; nothing ran.
    #[error("invalid parallelism: {0}")]
    InvalidParallelism(String),
    /// A source could not be opened (missing file, unreachable socket); nothing ran.
    #[error("source '{operator}' cannot start: {reason}")]
    SourceUnavailable {
        /// The source operator's name.
        operator: String,
        /// What is wrong, naming the file or address.
        reason: String,
    },
    /// A user function, source or sink failed while the job ran.
    #[error("{0}")]
    OperatorFailed(OperatorFailure),
    /// The cluster configuration (processes, addresses) is wrong, or the network failed.
    /// The runtime's errors here are its `ClusterError`s (`downcast_ref` tells which).
    #[error("cluster error: {0}")]
    Cluster(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A checkpoint or savepoint could not be restored, or checkpointing is misconfigured.
    /// The runtime's errors here are its `CheckpointError`s (`downcast_ref` tells which).
    #[error("checkpoint error: {0}")]
    Checkpoint(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The job was cancelled before it finished.
    #[error("job was cancelled")]
    Cancelled,
    /// The engine itself failed; this is a bug in Superflow.
    #[error("internal error: {0}")]
    Internal(String),
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
