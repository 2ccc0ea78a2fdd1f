//! Sources: the contract a source implements, and the flow-control settings that
//! bound how far it may run ahead of the sinks.

use std::time::Duration;

/// What a reader reports after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePoll {
    /// More records may follow at once.
    Ready,
    /// Nothing now; poll again after the given delay (rate limits, sockets).
    Pending(Duration),
    /// The source is exhausted (a bounded source has ended).
    Finished,
}

/// An error a source raises; the message names the file, line or address.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

impl SourceError {
    /// An error with the given message.
    pub fn new(message: impl Into<String>) -> SourceError {
        SourceError(message.into())
    }
}

/// A source, shared by all the subtasks of a process; each subtask reads its own split.
pub trait SourceFunction<T>: Send + Sync + 'static {
    /// The default operator name (Flink's source names).
    fn name(&self) -> String;

    /// The largest parallelism the source supports: `Some(1)` for non-parallel sources.
    fn max_parallelism(&self) -> Option<usize> {
        None
    }

    /// Whether readers record their position for checkpoints
    /// ([`SourceReader::snapshot_splits`]) and resume from it; a job with checkpoints
    /// warns about sources that do not (after a restore they read on from where they
    /// are, so records read since the checkpoint are lost).
    fn is_replayable(&self) -> bool {
        false
    }

    /// Whether the input ends (a collection, a sequence, the files there at the start).
    /// Decides `RuntimeExecutionMode::Automatic`, and a job with an unbounded source is
    /// refused in `Batch` mode. Unbounded by default, as Flink's `addSource`.
    fn is_bounded(&self) -> bool {
        false
    }

    /// Checks, before anything runs, that the source can start (files exist, sockets
    /// connect). The error names what is missing.
    fn prepare(&self) -> Result<(), SourceError> {
        Ok(())
    }

    /// The reader of subtask `subtask` out of `parallelism`. Readers of different
    /// subtasks read disjoint parts of the input.
    fn create_reader(
        &self,
        subtask: usize,
        parallelism: usize,
    ) -> Result<Box<dyn SourceReader<T>>, SourceError>;

    /// A reader that resumes what a checkpoint recorded, for subtask `subtask` out of
    /// `parallelism`.
    fn restore_reader(
        &self,
        restored: RestoredSplits,
        subtask: usize,
        parallelism: usize,
    ) -> Result<Box<dyn SourceReader<T>>, SourceError> {
        let _ = (restored, subtask, parallelism);
        Err(SourceError::new(format!(
            "source '{}' cannot resume from a checkpoint",
            self.name()
        )))
    }
}

/// What a checkpoint recorded of a source's readers, as one subtask gets it back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoredSplits {
    /// This subtask's share of the splits every reader recorded
    /// ([`SourceReader::snapshot_splits`]): every `parallelism`-th of them, so at another
    /// parallelism than the one they were written at, some of the old splits (possibly
    /// none), as Flink deals operator list state.
    pub splits: Vec<Vec<u8>>,
    /// What every reader recorded for all ([`SourceReader::snapshot_shared`]): each
    /// subtask gets all of it (union list state), such as the files a monitoring
    /// source has seen, which decide what it reads next whichever subtask read them.
    pub shared: Vec<Vec<u8>>,
}

/// The reader of one subtask of a source.
pub trait SourceReader<T> {
    /// Appends up to `max` records to `out`.
    fn poll(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourcePoll, SourceError>;

    /// The reader's position for a checkpoint: one entry per split it reads, holding
    /// what it needs to resume after the records it has returned. `None` for a source
    /// that cannot replay (after a restore it starts afresh).
    fn snapshot_splits(&self) -> Option<Vec<Vec<u8>>> {
        None
    }

    /// Entries that every subtask gets back, all of them, at a restore
    /// ([`RestoredSplits::shared`]); none by default.
    fn snapshot_shared(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

/// How sources pace themselves (flow control comes from epochs: `docs/architecture.md`, "Time").
#[derive(Debug, Clone)]
pub struct FlowControl {
    /// Records per batch.
    pub batch_size: usize,
    /// Batches a source emits before it yields to the rest of the dataflow.
    pub batches_per_activation: usize,
    /// A source opens a new epoch after this long...
    pub epoch_cadence: Duration,
    /// ...or after this many records, whichever comes first.
    pub max_epoch_records: usize,
    /// A source stops reading while this many epochs are unfinished at the sinks.
    pub max_epochs_in_flight: u64,
    /// How often a blocked source checks again.
    pub blocked_poll: Duration,
}

impl Default for FlowControl {
    fn default() -> Self {
        FlowControl {
            batch_size: 1024,
            batches_per_activation: 16,
            epoch_cadence: Duration::from_millis(50),
            max_epoch_records: 64 * 1024,
            max_epochs_in_flight: 4,
            blocked_poll: Duration::from_millis(1),
        }
    }
}
