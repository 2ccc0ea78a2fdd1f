//! What can go wrong with checkpoint files and the stores that hold them
//! ([`CheckpointError`]). Each error names the file or URL, and what about it failed.

use std::path::PathBuf;

/// A checkpoint could not be written, found, read or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A local file or directory could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done: `read`, `write`, ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file of a checkpoint is not what its metadata says, or not a checkpoint file
    /// this build can read.
    #[error("{what} {location} is damaged: {reason}")]
    Damaged {
        /// The kind of file: `part`, `metadata`, `the files of state 'uid/name' in`...
        what: String,
        /// Its path or URL.
        location: String,
        /// How it differs from what was written.
        reason: String,
    },
    /// State could not be encoded into a checkpoint.
    #[error("cannot encode {what} for a checkpoint: {reason}")]
    Encode {
        /// What was encoded.
        what: String,
        /// The encoder's error.
        reason: String,
    },
    /// The object store (or its URL) failed.
    #[error("{0}")]
    ObjectStore(String),
    /// There is nothing to restore at the location given.
    #[error("no complete checkpoint to restore from in {0}")]
    NothingToRestore(String),
    /// The checkpoint does not fit the job it is restored into.
    #[error("{checkpoint} {reason}")]
    Incompatible {
        /// The checkpoint's path or URL.
        checkpoint: String,
        /// Why it does not fit, and what to do.
        reason: String,
    },
    /// The state store of the embedded backend could not be opened.
    #[error("cannot open the state store: {0}")]
    StateStore(#[from] superflow_state::StoreError),
    /// A savepoint was asked of a process other than process 0.
    #[error("savepoints of a job on several processes are taken through process 0")]
    NotLeader,
    /// The checkpoint or savepoint did not complete (it expired, a part could not be
    /// written, or the job ended first).
    #[error("{0}")]
    Aborted(String),
    /// The checkpoint coordinator is gone (the job ended).
    #[error("the job is not running")]
    NotRunning,
}

impl CheckpointError {
    /// An I/O error of `path` while doing `action`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CheckpointError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// File `location` (a `what`) is damaged: `reason`.
    pub fn damaged(
        what: impl Into<String>,
        location: impl ToString,
        reason: impl ToString,
    ) -> Self {
        CheckpointError::Damaged {
            what: what.into(),
            location: location.to_string(),
            reason: reason.to_string(),
        }
    }
}

impl From<CheckpointError> for superflow_core::JobError {
    fn from(e: CheckpointError) -> Self {
        superflow_core::JobError::Checkpoint(Box::new(e))
    }
}
