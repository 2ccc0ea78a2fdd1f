"""Event time (``pyflink.common.watermark_strategy``): how records get their
timestamps, and how watermarks follow them."""

from typing import Any, Callable, Optional, Union

from superflow.common.time import Duration


class TimestampAssigner:
    """Extracts a record's event timestamp, in milliseconds."""

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        raise NotImplementedError("TimestampAssigner.extract_timestamp")


class WatermarkStrategy:
    """How watermarks are generated (``WatermarkStrategy.for_bounded_out_of_orderness``
    and the rest), with an optional timestamp assigner and idleness timeout."""

    def __init__(self, kind: str, bound_ms: int = 0):
        self._kind = kind
        self._bound_ms = bound_ms
        self._idle_ms: Optional[int] = None
        self._assigner: Optional[Callable[[Any, int], int]] = None

    @staticmethod
    def for_monotonous_timestamps() -> "WatermarkStrategy":
        """Timestamps only grow: the watermark is the largest timestamp seen."""
        return WatermarkStrategy("monotonous")

    @staticmethod
    def for_bounded_out_of_orderness(max_out_of_orderness: Duration) -> "WatermarkStrategy":
        """Records arrive at most ``max_out_of_orderness`` late."""
        if not isinstance(max_out_of_orderness, Duration):
            raise TypeError("for_bounded_out_of_orderness takes a Duration")
        return WatermarkStrategy("bounded", max_out_of_orderness.to_milliseconds())

    @staticmethod
    def no_watermarks() -> "WatermarkStrategy":
        return WatermarkStrategy("none")

    def with_timestamp_assigner(self, timestamp_assigner: Union[
            TimestampAssigner, Callable[[Any, int], int]]) -> "WatermarkStrategy":
        """Takes timestamps from ``extract_timestamp(value, record_timestamp)``."""
        extract = getattr(timestamp_assigner, "extract_timestamp", timestamp_assigner)
        if not callable(extract):
            raise TypeError("with_timestamp_assigner takes a TimestampAssigner or a function")
        copy = self._copy()
        copy._assigner = extract
        return copy

    def with_idleness(self, idle_timeout: Duration) -> "WatermarkStrategy":
        """A source subtask without records for ``idle_timeout`` stops holding the
        watermark back."""
        if not isinstance(idle_timeout, Duration):
            raise TypeError("with_idleness takes a Duration")
        copy = self._copy()
        copy._idle_ms = idle_timeout.to_milliseconds()
        return copy

    def _copy(self) -> "WatermarkStrategy":
        copy = WatermarkStrategy(self._kind, self._bound_ms)
        copy._idle_ms = self._idle_ms
        copy._assigner = self._assigner
        return copy
