"""Superflow: Apache Flink's DataStream API on a Rust engine, with Python functions
running in-process (no JVM). A PyFlink job runs with its imports changed from
``pyflink`` to ``superflow``::

    from superflow.datastream import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3]).map(lambda x: x * 2).print()
    env.execute("doubles")
"""

from superflow.datastream.stream_execution_environment import StreamExecutionEnvironment
from superflow.common import JobExecutionError

__all__ = ["StreamExecutionEnvironment", "JobExecutionError"]
__version__ = "0.1.0"
