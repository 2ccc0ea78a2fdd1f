//! Superflow's built-in sources and sinks.
//!
//! Sources implement the runtime's [`SourceFunction`](superflow_runtime::SourceFunction);
//! sinks implement [`SinkFunction`]. Each parallel source splits its input across
//! subtasks without overlap.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod collection;
pub mod generator;
pub mod sink;
pub mod socket;
pub mod text_file;

pub use collection::CollectionSource;
pub use generator::{DataGeneratorSource, SequenceSource};
pub use sink::{PrintSink, SinkContext, SinkFunction, TextFileSink, WriteMode};
pub use socket::SocketTextSource;
pub use text_file::TextFileSource;
