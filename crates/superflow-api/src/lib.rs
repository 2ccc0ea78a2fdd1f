//! Superflow's DataStream API, modelled on Apache Flink's.
//!
//! A program gets a [`StreamExecutionEnvironment`], creates sources, transforms the
//! resulting [`DataStream`]s, adds sinks and calls `execute`. Building the job only
//! records a job graph; `execute` validates it, chains operators and runs it on
//! timely-dataflow workers.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod broadcast;
pub mod env;
pub mod functions;
pub mod join;
pub mod keyed;
pub mod keyed_process;
mod nodes;
mod stages;
pub mod state;
pub mod stream;
mod two_phase;
pub mod watermark;
pub mod window;

pub use broadcast::{
    BroadcastConnectedStream, BroadcastContext, BroadcastProcessFunction, BroadcastStream,
    KeyedBroadcastProcessFunction, KeyedReadOnlyContext, ReadOnlyBroadcastState, ReadOnlyContext,
};
pub use env::StreamExecutionEnvironment;
pub use functions::{
    CoFlatMapFunction, CoMapFunction, Collector, FilterFunction, FlatMapFunction, KeySelector,
    MapFunction, OutputTag, Partitioner, ProcessContext, ProcessFunction, ReduceFunction,
    RuntimeContext, SendOn,
};
pub use join::{
    CoGroupFunction, IntervalJoin, JoinFunction, KeyedCoProcessFunction, KeyedConnectedStreams,
    ProcessJoinContext, ProcessJoinFunction, TaggedUnion,
};
pub use keyed::KeyedStream;
pub use keyed_process::{KeyedProcessContext, KeyedProcessFunction, KeyedTimerService};
pub use state::{
    AggregatingState, AggregatingStateDescriptor, ListState, ListStateDescriptor, MapState,
    MapStateDescriptor, ReducingState, ReducingStateDescriptor, StateTtlConfig, StateValue,
    StateVisibility, UpdateType, ValueState, ValueStateDescriptor,
};
pub use stream::{ConnectedStreams, DataStream};
pub use superflow_state::TimeDomain;
pub use watermark::{
    BoundedOutOfOrderness, TimestampAssigner, WatermarkGenerator, WatermarkOutput,
    WatermarkStrategy,
};
pub use window::{
    AggregateFunction, EventTimeSessionWindows, GlobalWindows, ProcessWindowContext,
    ProcessWindowFunction, ProcessingTimeSessionWindows, SlidingEventTimeWindows,
    SlidingProcessingTimeWindows, TimeWindow, TumblingEventTimeWindows,
    TumblingProcessingTimeWindows, WindowedStream,
};
