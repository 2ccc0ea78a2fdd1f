//! Superflow's built-in sources and sinks.
//!
//! Sources implement the runtime's [`SourceFunction`](superflow_runtime::SourceFunction);
//! sinks implement [`SinkFunction`]. Each parallel source splits its input across
//! subtasks without overlap.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bucket;
pub mod collection;
pub mod commit_log;
pub mod generator;
pub mod sink;
pub mod socket;
pub mod text_file;
pub mod transactional;

pub use bucket::BucketAssigner;
pub use collection::CollectionSource;
pub use commit_log::CommittedAfterRestore;
pub use generator::{DataGeneratorSource, SequenceSource};
pub use sink::{PrintSink, SinkContext, SinkFunction, TextFileSink, WriteMode};
pub use socket::SocketTextSource;
pub use text_file::TextFileSource;
pub use transactional::{
    FileSink, FileTransaction, OutputFileConfig, RollingPolicy, TransactionContext,
    TwoPhaseCommitSink,
};

/// Encodes a reader's splits for a checkpoint.
pub(crate) fn encode_splits<S: serde::Serialize>(splits: &[S]) -> Option<Vec<Vec<u8>>> {
    splits.iter().map(|s| postcard::to_stdvec(s).ok()).collect()
}

/// Decodes one split written by [`encode_splits`].
pub(crate) fn decode_split<S: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<S, superflow_runtime::SourceError> {
    postcard::from_bytes(bytes).map_err(|e| {
        superflow_runtime::SourceError::new(format!(
            "the source's position in the checkpoint cannot be read: {e}"
        ))
    })
}
