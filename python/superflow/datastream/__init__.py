"""The DataStream API (``pyflink.datastream``)."""

from superflow.datastream.data_stream import (
    CloseableIterator,
    ConnectedStreams,
    DataStream,
    DataStreamSink,
    KeyedStream,
)
from superflow.datastream.functions import (
    AggregateFunction,
    CoGroupFunction,
    CoFlatMapFunction,
    CoMapFunction,
    FilterFunction,
    FlatMapFunction,
    JoinFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    KeySelector,
    MapFunction,
    Partitioner,
    ProcessFunction,
    ProcessJoinFunction,
    ProcessWindowFunction,
    ReduceFunction,
    RuntimeContext,
    SinkFunction,
    TimeDomain,
    TimerService,
    WindowFunction,
)
from superflow.datastream.checkpoint_config import (
    CheckpointConfig,
    CheckpointingMode,
    ExternalizedCheckpointRetention,
)
from superflow.datastream.output_tag import OutputTag
from superflow.datastream.state_backend import EmbeddedLsmStateBackend, HashMapStateBackend
from superflow.datastream.window import WindowedStream
from superflow.datastream.stream_execution_environment import (
    JobExecutionResult,
    StreamExecutionEnvironment,
)

__all__ = [
    "CheckpointConfig",
    "CheckpointingMode",
    "EmbeddedLsmStateBackend",
    "ExternalizedCheckpointRetention",
    "HashMapStateBackend",
    "AggregateFunction",
    "CloseableIterator",
    "CoFlatMapFunction",
    "CoGroupFunction",
    "CoMapFunction",
    "ConnectedStreams",
    "DataStream",
    "DataStreamSink",
    "FilterFunction",
    "FlatMapFunction",
    "JobExecutionResult",
    "JoinFunction",
    "KeyedCoProcessFunction",
    "KeyedProcessFunction",
    "KeyedStream",
    "KeySelector",
    "MapFunction",
    "OutputTag",
    "Partitioner",
    "ProcessFunction",
    "ProcessJoinFunction",
    "ProcessWindowFunction",
    "ReduceFunction",
    "RuntimeContext",
    "SinkFunction",
    "StreamExecutionEnvironment",
    "TimeDomain",
    "TimerService",
    "WindowFunction",
    "WindowedStream",
]
