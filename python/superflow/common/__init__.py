"""Types, durations, configuration and errors shared by the APIs (``pyflink.common``)."""

from concurrent.futures import Future as CompletableFuture
from enum import Enum

from superflow._unsupported import unsupported
from superflow.common.typeinfo import Types, TypeInformation
from superflow.common.types import Row, RowKind
from superflow.common.time import Duration, Instant, Time
from superflow.common.configuration import Configuration
from superflow.common.execution_config import ExecutionConfig
from superflow.common.job_client import JobClient, JobID, JobStatus
from superflow.common.restart_strategy import RestartStrategies, RestartStrategyConfiguration
from superflow.common.serialization import (
    ByteArraySchema,
    DeserializationSchema,
    Encoder,
    SerializationSchema,
    SimpleStringSchema,
)
from superflow.common.watermark_strategy import TimestampAssigner, WatermarkStrategy
from superflow._superflow import JobExecutionError


class InputDependencyConstraint(Enum):
    """Flink's deprecated scheduling constraint of batch jobs; kept for the programs
    that name it. Superflow schedules every operator at once, so it has no effect."""

    ANY = 0
    ALL = 1


ConfigOption = unsupported("ConfigOption", "common", "typed configuration options "
                           "(use Configuration.set_string/set_integer)")
ConfigOptions = unsupported("ConfigOptions", "common", "typed configuration options "
                            "(use Configuration.set_string/set_integer)")
TypeSerializer = unsupported("TypeSerializer", "common", "user-defined type serializers "
                             "(records are Python objects, serialized by the engine)")
AssignerWithPeriodicWatermarksWrapper = unsupported(
    "AssignerWithPeriodicWatermarksWrapper", "common",
    "the legacy periodic-watermark assigners (use WatermarkStrategy)")


def __getattr__(name: str) -> object:
    # JobExecutionResult lives with the environment, which imports this package.
    if name == "JobExecutionResult":
        from superflow.datastream.stream_execution_environment import JobExecutionResult
        return JobExecutionResult
    raise AttributeError(f"module 'superflow.common' has no attribute {name!r}")


__all__ = [
    "Configuration",
    "ConfigOption",
    "ConfigOptions",
    "ExecutionConfig",
    "TypeInformation",
    "TypeSerializer",
    "Types",
    "SerializationSchema",
    "DeserializationSchema",
    "SimpleStringSchema",
    "ByteArraySchema",
    "Encoder",
    "CompletableFuture",
    "InputDependencyConstraint",
    "JobClient",
    "JobExecutionError",
    "JobExecutionResult",
    "JobID",
    "JobStatus",
    "RestartStrategies",
    "RestartStrategyConfiguration",
    "Row",
    "RowKind",
    "WatermarkStrategy",
    "TimestampAssigner",
    "Duration",
    "Instant",
    "Time",
    "AssignerWithPeriodicWatermarksWrapper",
]
