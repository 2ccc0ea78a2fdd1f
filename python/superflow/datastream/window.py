"""Windows (``pyflink.datastream.window``): assigners, the windows they make, and the
windowed stream of ``key_by(...).window(...)``."""

from typing import Any, Callable, Dict, Optional, Union

from superflow.common.time import Duration, to_millis
from superflow.datastream.functions import _now_ms
from superflow.datastream.output_tag import OutputTag

MAX_TIMESTAMP = 2 ** 63 - 1


class TimeWindow:
    """A window of event or processing time: ``[start, end)`` in milliseconds."""

    def __init__(self, start: int, end: int):
        self.start = start
        self.end = end

    def max_timestamp(self) -> int:
        return self.end - 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeWindow) and (self.start, self.end) == (other.start, other.end)

    def __hash__(self) -> int:
        return hash((self.start, self.end))

    def __repr__(self) -> str:
        return f"TimeWindow(start={self.start}, end={self.end})"


class GlobalWindow:
    """The one window of a count window's key."""

    def max_timestamp(self) -> int:
        return MAX_TIMESTAMP

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GlobalWindow)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "GlobalWindow"


class _WindowContext:
    """``ProcessWindowFunction.Context``."""

    def __init__(self, window: Any, watermark: int):
        self._window = window
        self._watermark = watermark

    def window(self) -> Any:
        return self._window

    def current_watermark(self) -> int:
        return self._watermark

    def current_processing_time(self) -> int:
        return _now_ms()


_ms = to_millis


class WindowAssigner:
    """Puts each record into windows."""

    def __init__(self, kind: str, size_ms: int, slide_ms: int = 0, offset_ms: int = 0):
        if size_ms <= 0:
            raise ValueError(f"window size must be positive, got {size_ms} ms")
        self._spec = {"assigner": kind, "size_ms": size_ms, "slide_ms": slide_ms,
                      "offset_ms": offset_ms}


class TumblingEventTimeWindows(WindowAssigner):
    @staticmethod
    def of(size: Duration, offset: Optional[Duration] = None) -> "TumblingEventTimeWindows":
        return TumblingEventTimeWindows(
            "tumbling_event_time", _ms(size, "of"), 0, _ms(offset or 0, "of"))


class TumblingProcessingTimeWindows(WindowAssigner):
    @staticmethod
    def of(size: Duration, offset: Optional[Duration] = None
           ) -> "TumblingProcessingTimeWindows":
        return TumblingProcessingTimeWindows(
            "tumbling_processing_time", _ms(size, "of"), 0, _ms(offset or 0, "of"))


class SlidingEventTimeWindows(WindowAssigner):
    @staticmethod
    def of(size: Duration, slide: Duration, offset: Optional[Duration] = None
           ) -> "SlidingEventTimeWindows":
        return SlidingEventTimeWindows("sliding_event_time", _ms(size, "of"),
                                       _ms(slide, "of"), _ms(offset or 0, "of"))


class SlidingProcessingTimeWindows(WindowAssigner):
    @staticmethod
    def of(size: Duration, slide: Duration, offset: Optional[Duration] = None
           ) -> "SlidingProcessingTimeWindows":
        return SlidingProcessingTimeWindows("sliding_processing_time", _ms(size, "of"),
                                            _ms(slide, "of"), _ms(offset or 0, "of"))


class EventTimeSessionWindows(WindowAssigner):
    @staticmethod
    def with_gap(gap: Duration) -> "EventTimeSessionWindows":
        return EventTimeSessionWindows("event_time_session", _ms(gap, "with_gap"))


class ProcessingTimeSessionWindows(WindowAssigner):
    @staticmethod
    def with_gap(gap: Duration) -> "ProcessingTimeSessionWindows":
        return ProcessingTimeSessionWindows("processing_time_session", _ms(gap, "with_gap"))


class WindowedStream:
    """A keyed stream cut into windows; one of ``reduce``, ``aggregate``, ``process``
    or ``apply`` evaluates them."""

    def __init__(self, keyed: Any, spec: Dict[str, Any]):
        self._keyed = keyed
        self._spec = dict(spec)

    def allowed_lateness(self, time_ms: Union[int, Duration]) -> "WindowedStream":
        """Keeps windows for ``time_ms`` after the watermark passed them; late records
        fire them again."""
        self._spec["lateness_ms"] = _ms(time_ms, "allowed_lateness")
        return self

    def side_output_late_data(self, output_tag: OutputTag) -> "WindowedStream":
        """Sends records too late for their windows to ``output_tag``."""
        if not isinstance(output_tag, OutputTag):
            raise TypeError("side_output_late_data takes an OutputTag")
        self._spec["late_tag"] = output_tag.tag_id
        return self

    def _evaluate(self, kind: str, function: Any, window_function: Any, apply_style: bool,
                  name: str) -> Any:
        from superflow.datastream.data_stream import DataStream
        node = self._keyed._add("window", window_kind=kind, fn=function, fn2=window_function,
                                apply_style=apply_style, name=name, **self._spec)
        return DataStream(self._keyed._env, node)

    def reduce(self, reduce_function: Any, window_function: Any = None,
               output_type: Any = None) -> Any:
        """Combines each window's records incrementally; one result per window (handed
        to ``window_function`` when given)."""
        from superflow.datastream.data_stream import _callable
        call = _callable(reduce_function, "reduce", "ReduceFunction")
        return self._evaluate("reduce", call, *_window_function(window_function), "Window(Reduce)")

    def aggregate(self, aggregate_function: Any, window_function: Any = None,
                  accumulator_type: Any = None, output_type: Any = None) -> Any:
        """Aggregates each window's records with an ``AggregateFunction``."""
        for method in ("create_accumulator", "add", "get_result", "merge"):
            if not callable(getattr(aggregate_function, method, None)):
                raise TypeError(f"aggregate() takes an AggregateFunction (missing {method})")
        return self._evaluate("aggregate", aggregate_function,
                              *_window_function(window_function), "Window(Aggregate)")

    def process(self, process_window_function: Any, output_type: Any = None) -> Any:
        """Hands each window's records to ``process(key, context, elements)``."""
        if not callable(getattr(process_window_function, "process", None)):
            raise TypeError("process() takes a ProcessWindowFunction")
        return self._evaluate("process", None, process_window_function, False,
                              "Window(Process)")

    def apply(self, window_function: Any, output_type: Any = None) -> Any:
        """Hands each window's records to ``apply(key, window, inputs)``."""
        if not callable(getattr(window_function, "apply", None)):
            raise TypeError("apply() takes a WindowFunction")
        return self._evaluate("process", None, window_function, True, "Window(Apply)")

    def sum(self, position_to_sum: Union[int, str] = 0) -> Any:
        from superflow.datastream.data_stream import _sum_reducer
        return self._evaluate("reduce", _sum_reducer(position_to_sum), None, False,
                              "Window(Sum)")


def _window_function(window_function: Any):
    if window_function is None:
        return None, False
    if callable(getattr(window_function, "process", None)):
        return window_function, False
    if callable(getattr(window_function, "apply", None)):
        return window_function, True
    raise TypeError("a window function is a ProcessWindowFunction or a WindowFunction")


def count_window_spec(size: int, slide: int) -> Dict[str, Any]:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"count_window size must be a positive integer, got {size!r}")
    if not isinstance(slide, int) or slide < 0:
        raise ValueError(f"count_window slide must be a non-negative integer, got {slide!r}")
    return {"assigner": "count", "size_ms": size, "slide_ms": slide, "offset_ms": 0}


__all__ = [
    "EventTimeSessionWindows",
    "GlobalWindow",
    "ProcessingTimeSessionWindows",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "TimeWindow",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "WindowAssigner",
    "WindowedStream",
]
