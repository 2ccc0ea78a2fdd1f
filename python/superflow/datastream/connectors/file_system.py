"""The exactly-once file sink (``pyflink.datastream.connectors.file_system``): records
are written as lines into part files that become visible (renamed from a hidden
``.part-...inprogress`` name) only when the checkpoint covering them completes, or when
the job finishes."""

from typing import Optional

from superflow.common.serialization import Encoder
from superflow.common.time import to_millis


class RollingPolicy:
    """When a part file is closed and the next begins; parts also close at every
    checkpoint."""

    def __init__(self, part_size: int, rollover_ms: int):
        self.part_size = part_size
        self.rollover_ms = rollover_ms

    @staticmethod
    def default_rolling_policy(part_size: int = 128 * 1024 * 1024,
                               rollover_interval: int = 60 * 1000,
                               inactivity_interval: Optional[int] = None) -> "RollingPolicy":
        """Roll at ``part_size`` bytes or after ``rollover_interval`` ms."""
        if not isinstance(part_size, int) or part_size < 1:
            raise ValueError(f"part_size must be a positive integer, got {part_size!r}")
        return RollingPolicy(part_size, to_millis(rollover_interval, "rollover_interval"))

    @staticmethod
    def on_checkpoint_rolling_policy() -> "RollingPolicy":
        """Roll only at checkpoints (and at the end)."""
        return RollingPolicy(2 ** 62, 2 ** 62)


class FileSink:
    """A sink of part files in a directory, exactly once with checkpoints."""

    def __init__(self, base_path: str, rolling_policy: RollingPolicy):
        self.base_path = base_path
        self.rolling_policy = rolling_policy

    @staticmethod
    def for_row_format(base_path: str, encoder: Encoder) -> "FileSink.RowFormatBuilder":
        if not isinstance(encoder, Encoder):
            raise TypeError("for_row_format takes an Encoder (Encoder.simple_string_encoder())")
        return FileSink.RowFormatBuilder(str(base_path))

    class RowFormatBuilder:
        def __init__(self, base_path: str):
            self._base_path = base_path
            self._policy = RollingPolicy.default_rolling_policy()

        def with_rolling_policy(self, policy: RollingPolicy) -> "FileSink.RowFormatBuilder":
            if not isinstance(policy, RollingPolicy):
                raise TypeError("with_rolling_policy takes a RollingPolicy")
            self._policy = policy
            return self

        def build(self) -> "FileSink":
            return FileSink(self._base_path, self._policy)


__all__ = ["FileSink", "RollingPolicy"]
