//! Superflow: Apache Flink's DataStream API, in Rust, on timely-dataflow.
//!
//! ```no_run
//! use superflow::prelude::*;
//!
//! let env = StreamExecutionEnvironment::get_execution_environment();
//! env.set_parallelism(2);
//! let data = env.from_elements(vec![("a", 1), ("a", 2), ("b", 3), ("b", 4)]);
//! data.map(|(k, v)| (k, v % 2 == 0)).print();
//! env.execute("optimized_flink_job")?;
//! # Ok::<(), superflow::JobError>(())
//! ```
//!
//! This crate re-exports the API ([`superflow_api`]), the built-in connectors
//! ([`superflow_connectors`]), the runtime types a job can configure
//! ([`superflow_runtime`]) and the shared vocabulary ([`superflow_core`]).

pub use superflow_api::*;
pub use superflow_connectors as connectors;
pub use superflow_core::{
    impl_record_display_via_display, Data, ExchangeData, FieldAggregate, JobError, Key,
    OperatorFailure, RecordDisplay, UserError,
};
pub use superflow_runtime::{
    ClusterConfig, FlowControl, JobClient, JobExecutionResult, OperatorMetrics, RestoredSplits,
    RuntimeExecutionMode, SourceError, SourceFunction, SourcePoll, SourceReader,
};

/// Lower-level pieces, for custom sources, sinks and partitioners.
pub mod runtime {
    pub use superflow_runtime::*;
}

/// Key groups and other shared definitions.
pub mod core {
    pub use superflow_core::*;
}

/// Everything a typical job needs.
pub mod prelude {
    pub use superflow_api::window::{
        AggregateFunction, ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger,
        CountEvictor, CountTrigger, CountWindow, CountWindows, EventTimeSessionWindows,
        EventTimeTrigger, Evictor, GlobalWindow, GlobalWindows, ProcessWindowContext,
        ProcessWindowFunction, ProcessingTimeSessionWindows, ProcessingTimeTrigger, PurgingTrigger,
        SlidingEventTimeWindows, SlidingProcessingTimeWindows, TimeEvictor, TimeWindow, Trigger,
        TriggerContext, TriggerResult, TumblingEventTimeWindows, TumblingProcessingTimeWindows,
        Window,
    };
    pub use superflow_api::{
        AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
        ReducingStateDescriptor, StateTtlConfig, StateVisibility, UpdateType, ValueStateDescriptor,
    };
    pub use superflow_api::{
        BroadcastContext, BroadcastProcessFunction, KeyedBroadcastProcessFunction,
        KeyedReadOnlyContext, ReadOnlyContext,
    };
    pub use superflow_api::{
        CoFlatMapFunction, CoMapFunction, Collector, DataStream, FilterFunction, FlatMapFunction,
        KeySelector, KeyedProcessContext, KeyedProcessFunction, KeyedStream, MapFunction,
        OutputTag, ProcessContext, ProcessFunction, ProcessJoinContext, ProcessJoinFunction,
        ReduceFunction, RuntimeContext, StreamExecutionEnvironment, TimeDomain, WatermarkGenerator,
        WatermarkOutput, WatermarkStrategy,
    };
    pub use superflow_connectors::{
        BucketAssigner, CommittedAfterRestore, FileSink, OutputFileConfig, RollingPolicy,
        SinkContext, SinkFunction, TransactionContext, TwoPhaseCommitSink, WriteMode,
    };
    pub use superflow_core::{JobError, RecordDisplay, Unrecoverable, UserError};
    pub use superflow_runtime::checkpoint::{
        CheckpointConfig, CheckpointStats, CheckpointStatus, CheckpointStorage, CheckpointingMode,
        ExternalizedCheckpointRetention, RestartStrategy, SnapshotCompression, StateBackendConfig,
        TimerStorage,
    };
    pub use superflow_runtime::{JobExecutionResult, RuntimeExecutionMode};
}
