"""Types, durations, configuration and errors shared by the APIs (``pyflink.common``)."""

from superflow.common.typeinfo import Types, TypeInformation
from superflow.common.types import Row, RowKind
from superflow.common.time import Duration, Time
from superflow.common.configuration import Configuration
from superflow.common.execution_config import ExecutionConfig
from superflow.common.job_client import JobClient, JobID, JobStatus
from superflow.common.restart_strategy import RestartStrategies
from superflow.common.watermark_strategy import TimestampAssigner, WatermarkStrategy
from superflow._superflow import JobExecutionError

__all__ = [
    "Row",
    "RowKind",
    "Types",
    "TypeInformation",
    "Duration",
    "Time",
    "Configuration",
    "ExecutionConfig",
    "JobClient",
    "JobExecutionError",
    "JobID",
    "JobStatus",
    "RestartStrategies",
    "TimestampAssigner",
    "WatermarkStrategy",
]
