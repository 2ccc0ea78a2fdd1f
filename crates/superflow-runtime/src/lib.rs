//! Superflow's execution layer, on timely-dataflow.
//!
//! Layers, bottom up: [`batch`] (the erased container on every edge), [`exchange`]
//! (partitioners as timely pacts), [`time`] (watermarks, channels, the clock), [`source`] (the source contract and flow control),
//! [`build`] (job graph nodes to timely operators, chaining), [`graph`] (the logical
//! graph and its physical plan), and [`executor`] (workers, failures, results).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod activation;
pub mod batch;
pub mod build;
pub mod checkpoint;
pub mod cluster;
pub mod cluster_auth;
mod cluster_config;
pub mod cluster_control;
pub mod cluster_error;
pub mod control;
pub mod exchange;
pub mod execution_mode;
pub mod executor;
pub mod failure;
pub mod graph;
mod leftovers;
pub mod metrics;
pub mod notice;
pub mod sink;
pub mod source;
pub mod time;
pub mod user_code;

pub use activation::ActivationScope;
pub use batch::{Batch, BatchDecodeError, Records};
pub use build::{
    side_output_tag, Attach, BatchStream, BuildCtx, ChainOutput, NodeBuilder, OneInputStage,
    SideOutputSink, Stage, StageContext, TwoInputStage,
};
pub use control::JobControl;
pub use exchange::{PartitionKind, RouteContext, StreamPartitioner};
pub use execution_mode::RuntimeExecutionMode;
pub use executor::{
    available_cores, execute_graph, ClusterConfig, ExecutionSettings, JobClient, JobController,
    JobExecutionResult,
};
pub use graph::{
    ChainingStrategy, InputEdge, JobGraph, JobPlan, Node, NodeId, NodeKind, PrepareFn,
};
pub use metrics::OperatorMetrics;
pub use source::{
    FlowControl, RestoredSplits, SourceError, SourceFunction, SourcePoll, SourceReader,
};
pub use time::{processing_time_now, WakeUp, WatermarkEvent, MAX_WATERMARK};
