"""Event time (``pyflink.common.watermark_strategy``): how records get their
timestamps, and how watermarks follow them."""

from typing import Any, Callable, Optional, Union

from superflow.common.time import Duration


class TimestampAssigner:
    """Extracts a record's event timestamp, in milliseconds."""

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        raise NotImplementedError("TimestampAssigner.extract_timestamp")


class WatermarkOutput:
    """Where a ``WatermarkGenerator`` emits (Flink's ``WatermarkOutput``). A watermark
    emitted from ``on_event`` acts before the next record, as in Flink."""

    def __init__(self) -> None:
        self._watermark: Optional[int] = None
        self._idle: Optional[bool] = None

    def emit_watermark(self, watermark: int) -> None:
        """Event time has reached ``watermark`` (ms): no record at or before it is
        expected any more. One that does not advance the last is ignored."""
        if not isinstance(watermark, int) or isinstance(watermark, bool):
            raise TypeError(f"emit_watermark takes an int (ms), got {watermark!r}")
        if self._watermark is None or watermark > self._watermark:
            self._watermark = watermark
        self._idle = False

    def mark_idle(self) -> None:
        """The stream is idle: operators downstream stop waiting for its watermark."""
        self._idle = True

    def mark_active(self) -> None:
        self._idle = False


class WatermarkGenerator:
    """Makes watermarks from records and periodically (Flink's Java
    ``WatermarkGenerator``; PyFlink has none): ``on_event(event, event_timestamp,
    output)`` for each record (a punctuated generator emits there), and
    ``on_periodic_emit(output)`` every auto-watermark interval."""

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        pass

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        pass


class WatermarkStrategy:
    """How watermarks are generated (``WatermarkStrategy.for_bounded_out_of_orderness``
    and the rest), with an optional timestamp assigner and idleness timeout."""

    def __init__(self, kind: str, bound_ms: int = 0):
        self._kind = kind
        self._bound_ms = bound_ms
        self._idle_ms: Optional[int] = None
        self._assigner: Optional[Callable[[Any, int], int]] = None
        self._generator: Optional[Callable[[], Any]] = None

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

    @staticmethod
    def for_generator(generator_supplier: Any) -> "WatermarkStrategy":
        """Watermarks from a ``WatermarkGenerator`` of your own, as Flink's Java
        ``WatermarkStrategy.forGenerator`` (beyond PyFlink): ``generator_supplier()``
        makes one per subtask (a class, or a function returning a generator); a
        generator object is copied for each subtask."""
        if isinstance(generator_supplier, WatermarkGenerator):
            import copy
            prototype = generator_supplier

            def generator_supplier() -> WatermarkGenerator:
                return copy.deepcopy(prototype)
        if not callable(generator_supplier):
            raise TypeError("for_generator takes a WatermarkGenerator class or object, or a "
                            f"function making one, got {type(generator_supplier).__name__}")
        strategy = WatermarkStrategy("generator")
        strategy._generator = generator_supplier
        return strategy

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
        copy._generator = self._generator
        return copy
