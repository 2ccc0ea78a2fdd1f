"""``ExecutionConfig`` (``pyflink.common``): the settings of a job that
``env.get_config()`` shows; it reads and writes its environment's."""

from typing import TYPE_CHECKING, Union

from superflow.common.time import Duration, to_millis

if TYPE_CHECKING:
    from superflow.datastream.stream_execution_environment import StreamExecutionEnvironment


class ExecutionConfig:
    """The watermark interval, parallelism and max parallelism of the environment's
    jobs."""

    def __init__(self, env: "StreamExecutionEnvironment"):
        self._env = env

    def set_auto_watermark_interval(self, interval: Union[int, Duration]) -> "ExecutionConfig":
        """How often (ms) ``assign_timestamps_and_watermarks`` emits its periodic
        watermark (default 200, as Flink's); 0 turns periodic watermarks off."""
        self._env._auto_watermark_interval_ms = to_millis(interval,
                                                          "set_auto_watermark_interval")
        return self

    def get_auto_watermark_interval(self) -> int:
        return self._env._auto_watermark_interval_ms

    def set_parallelism(self, parallelism: int) -> "ExecutionConfig":
        self._env.set_parallelism(parallelism)
        return self

    def get_parallelism(self) -> int:
        return self._env.get_parallelism()

    def set_max_parallelism(self, max_parallelism: int) -> "ExecutionConfig":
        self._env.set_max_parallelism(max_parallelism)
        return self

    def get_max_parallelism(self) -> int:
        return self._env.get_max_parallelism()
