"""Windows (``pyflink.datastream.window``): assigners, the windows they make, triggers
(Flink's built-in ones run in the engine; a ``Trigger`` subclass runs in Python),
evictors, and the windowed stream of ``key_by(...).window(...)``."""

from abc import ABC, abstractmethod
from enum import Enum
from typing import Any, Callable, Dict, Generic, List, Optional, TypeVar, Union

from superflow.common.time import Duration, to_millis
from superflow.datastream.functions import _now_ms, _WindowFunctionContext
from superflow.datastream.output_tag import OutputTag
from superflow._unsupported import unsupported
from superflow.datastream.state import (
    AggregatingState,
    AggregatingStateDescriptor,
    ListState,
    ListStateDescriptor,
    MapState,
    MapStateDescriptor,
    ReducingState,
    ReducingStateDescriptor,
    State,
    StateDescriptor,
    ValueState,
    ValueStateDescriptor,
)

MAX_TIMESTAMP = 2 ** 63 - 1

T = TypeVar("T")
W = TypeVar("W")


class Window(ABC):
    """A window: a group of records that a window function sees together."""

    @abstractmethod
    def max_timestamp(self) -> int:
        """The largest timestamp that still belongs to the window."""


class TimeWindow(Window):
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


class GlobalWindow(Window):
    """The one window of each key of ``GlobalWindows``."""

    @staticmethod
    def get() -> "GlobalWindow":
        return GlobalWindow()

    def max_timestamp(self) -> int:
        return MAX_TIMESTAMP

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GlobalWindow)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "GlobalWindow"


class CountWindow(Window):
    """A window of a count window assigner: the ``id``-th window of its key, counted
    from 0 in the order the windows start (window ``k`` holds the key's records
    ``k * slide`` to ``k * slide + size - 1``)."""

    def __init__(self, id: int):
        self.id = id

    def max_timestamp(self) -> int:
        return MAX_TIMESTAMP

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CountWindow) and self.id == other.id

    def __hash__(self) -> int:
        return hash(("CountWindow", self.id))

    def __repr__(self) -> str:
        return f"CountWindow(id={self.id})"


class _WindowContext(_WindowFunctionContext):
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


class WindowAssigner(Generic[T, W]):
    """Puts each record into windows."""

    def __init__(self, kind: str, size_ms: int, slide_ms: int = 0, offset_ms: int = 0,
                 gap: Any = None):
        if size_ms <= 0 and gap is None and kind != "global":
            raise ValueError(f"window size must be positive, got {size_ms} ms")
        self._spec = {"assigner": kind, "size_ms": size_ms, "slide_ms": slide_ms,
                      "offset_ms": offset_ms, "gap": gap}


class MergingWindowAssigner(WindowAssigner[T, W]):
    """An assigner whose windows merge when they overlap: the session windows."""


class SessionWindowTimeGapExtractor(ABC):
    """The gap of a dynamic session, per record: ``extract(element)`` returns it in
    milliseconds (above zero)."""

    @abstractmethod
    def extract(self, element: Any) -> int:
        pass


def _gap_extractor(extractor: Any) -> Callable[[Any], int]:
    extract = getattr(extractor, "extract", None)
    if callable(extract):
        return extract
    if callable(extractor):
        return extractor
    raise TypeError("with_dynamic_gap takes a SessionWindowTimeGapExtractor or a function "
                    f"of the record, got {type(extractor).__name__}")


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


class EventTimeSessionWindows(MergingWindowAssigner):
    @staticmethod
    def with_gap(gap: Duration) -> "EventTimeSessionWindows":
        return EventTimeSessionWindows("event_time_session", _ms(gap, "with_gap"))

    @staticmethod
    def with_dynamic_gap(extractor: Any) -> "EventTimeSessionWindows":
        """Sessions whose gap each record sets: ``extractor.extract(element)`` (or
        ``extractor(element)``) in milliseconds."""
        return EventTimeSessionWindows("event_time_session", 0, gap=_gap_extractor(extractor))


class ProcessingTimeSessionWindows(MergingWindowAssigner):
    @staticmethod
    def with_gap(gap: Duration) -> "ProcessingTimeSessionWindows":
        return ProcessingTimeSessionWindows("processing_time_session", _ms(gap, "with_gap"))

    @staticmethod
    def with_dynamic_gap(extractor: Any) -> "ProcessingTimeSessionWindows":
        return ProcessingTimeSessionWindows("processing_time_session", 0,
                                            gap=_gap_extractor(extractor))


class DynamicEventTimeSessionWindows(EventTimeSessionWindows):
    """Event-time sessions whose gap each record sets (PyFlink's name for
    ``EventTimeSessionWindows.with_dynamic_gap``)."""


class DynamicProcessingTimeSessionWindows(ProcessingTimeSessionWindows):
    """Processing-time sessions whose gap each record sets."""


class GlobalWindows(WindowAssigner):
    """One window per key holding all its records; it fires only by a trigger of its
    own (its default, ``NeverTrigger``, never fires)."""

    @staticmethod
    def create() -> "GlobalWindows":
        return GlobalWindows("global", 0)


class CountTumblingWindowAssigner(WindowAssigner):
    """Windows of ``window_size`` records per key, one after the other; each fires when
    it is full (what ``count_window(size)`` uses)."""

    def __init__(self, window_size: int):
        self._spec = count_window_spec(window_size, 0)

    @staticmethod
    def of(window_size: int) -> "CountTumblingWindowAssigner":
        return CountTumblingWindowAssigner(window_size)


class CountSlidingWindowAssigner(WindowAssigner):
    """Windows of ``window_size`` records per key, a new one starting every
    ``window_slide`` records; each fires when it is full, as in PyFlink (what
    ``count_window(size, slide)`` uses)."""

    def __init__(self, window_size: int, window_slide: int):
        if not isinstance(window_slide, int) or window_slide < 1:
            raise ValueError("a sliding count window's slide must be a positive integer, "
                             f"got {window_slide!r}")
        self._spec = count_window_spec(window_size, window_slide)

    @staticmethod
    def of(window_size: int, window_slide: int) -> "CountSlidingWindowAssigner":
        return CountSlidingWindowAssigner(window_size, window_slide)


class TriggerResult(Enum):
    """What a trigger decides for a window: ``FIRE`` evaluates it, ``PURGE`` drops its
    contents, ``FIRE_AND_PURGE`` does both, ``CONTINUE`` neither."""
    CONTINUE = (False, False)
    FIRE_AND_PURGE = (True, True)
    FIRE = (True, False)
    PURGE = (False, True)

    def is_fire(self) -> bool:
        return self.value[0]

    def is_purge(self) -> bool:
        return self.value[1]


class Trigger(ABC, Generic[T, W]):
    """Decides when a window fires (PyFlink's ``Trigger``). A subclass runs in Python,
    called by the engine for each record and timer of a window, with the window's own
    state through ``ctx.get_partitioned_state``; Flink's built-in triggers below run in
    the engine when used as they are."""

    class TriggerContext(ABC):
        """The clocks, timers and state of the current key and window."""

        @abstractmethod
        def get_current_processing_time(self) -> int:
            pass

        @abstractmethod
        def get_current_watermark(self) -> int:
            pass

        @abstractmethod
        def register_processing_time_timer(self, time: int) -> None:
            pass

        @abstractmethod
        def register_event_time_timer(self, time: int) -> None:
            pass

        @abstractmethod
        def delete_processing_time_timer(self, time: int) -> None:
            pass

        @abstractmethod
        def delete_event_time_timer(self, time: int) -> None:
            pass

        @abstractmethod
        def get_partitioned_state(self, state_descriptor: StateDescriptor) -> State:
            pass

    class OnMergeContext(TriggerContext):
        """The context of ``on_merge``: it can also merge state of the merged windows."""

        @abstractmethod
        def merge_partitioned_state(self, state_descriptor: StateDescriptor) -> None:
            pass

    @abstractmethod
    def on_element(self, element: Any, timestamp: int, window: Any,
                   ctx: "Trigger.TriggerContext") -> TriggerResult:
        pass

    @abstractmethod
    def on_processing_time(self, time: int, window: Any,
                           ctx: "Trigger.TriggerContext") -> TriggerResult:
        pass

    @abstractmethod
    def on_event_time(self, time: int, window: Any,
                      ctx: "Trigger.TriggerContext") -> TriggerResult:
        pass

    def can_merge(self) -> bool:
        """Whether the trigger works with merging windows (sessions); then
        ``on_merge`` must combine the merged windows' state and timers."""
        return False

    @abstractmethod
    def on_merge(self, window: Any, ctx: "Trigger.OnMergeContext") -> None:
        pass

    @abstractmethod
    def clear(self, window: Any, ctx: "Trigger.TriggerContext") -> None:
        pass

    def _engine(self) -> Optional[Dict[str, Any]]:
        """How the engine runs this trigger itself, if it can (None: call Python)."""
        return None


def _engine_trigger(trigger: Any) -> Dict[str, Any]:
    """The engine's form of ``trigger``: a built-in one by name when it is exactly that
    class (a subclass may change what it does), a Python trigger otherwise."""
    if not isinstance(trigger, Trigger):
        raise TypeError("trigger() takes a Trigger, such as CountTrigger.of(10), got "
                        f"{type(trigger).__name__}")
    if type(trigger) in _ENGINE_TRIGGERS:
        engine = trigger._engine()
        if engine is not None:
            return engine
    return {"kind": "python", "trigger": trigger, "can_merge": bool(trigger.can_merge())}


class EventTimeTrigger(Trigger):
    """Fires when the watermark passes the end of the window (the default of
    event-time windows)."""

    def on_element(self, element, timestamp, window, ctx):
        if window.max_timestamp() <= ctx.get_current_watermark():
            return TriggerResult.FIRE
        ctx.register_event_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.FIRE if time == window.max_timestamp() else TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window, ctx):
        if window.max_timestamp() > ctx.get_current_watermark():
            ctx.register_event_time_timer(window.max_timestamp())

    def clear(self, window, ctx):
        ctx.delete_event_time_timer(window.max_timestamp())

    def _engine(self):
        return {"kind": "event_time"}

    @staticmethod
    def create() -> "EventTimeTrigger":
        return EventTimeTrigger()


class ProcessingTimeTrigger(Trigger):
    """Fires when the wall clock passes the end of the window (the default of
    processing-time windows)."""

    def on_element(self, element, timestamp, window, ctx):
        ctx.register_processing_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.FIRE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window, ctx):
        if window.max_timestamp() > ctx.get_current_processing_time():
            ctx.register_processing_time_timer(window.max_timestamp())

    def clear(self, window, ctx):
        ctx.delete_processing_time_timer(window.max_timestamp())

    def _engine(self):
        return {"kind": "processing_time"}

    @staticmethod
    def create() -> "ProcessingTimeTrigger":
        return ProcessingTimeTrigger()


def _min(a: int, b: int) -> int:
    return min(a, b)


class _Continuous(Trigger):
    """Fires every ``interval`` of one clock, aligned to it, while the window lives."""

    _kind = ""

    def __init__(self, interval: int):
        if interval <= 0:
            raise ValueError(f"a continuous trigger needs an interval above zero, got {interval}")
        self.interval = interval
        self._fire_at = ReducingStateDescriptor("fire-time", _min)

    @abstractmethod
    def _register(self, ctx, time: int) -> None:
        """Registers a timer at ``time`` in the trigger's clock."""

    def _schedule(self, time: int, window, ctx, state) -> None:
        next_fire = min(time + self.interval, window.max_timestamp())
        state.add(next_fire)
        self._register(ctx, next_fire)

    def _fires_at(self, time: int, window, ctx) -> bool:
        state = ctx.get_partitioned_state(self._fire_at)
        if state.get() != time:
            return False
        state.clear()
        self._schedule(time, window, ctx, state)
        return True

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window, ctx):
        ctx.merge_partitioned_state(self._fire_at)
        next_fire = ctx.get_partitioned_state(self._fire_at).get()
        if next_fire is not None:
            self._register(ctx, next_fire)

    def _engine(self):
        return {"kind": self._kind, "interval_ms": self.interval}


class ContinuousEventTimeTrigger(_Continuous):
    """Fires every ``interval`` of event time, and when the watermark passes the end of
    the window."""

    _kind = "continuous_event_time"

    @staticmethod
    def of(interval: Duration) -> "ContinuousEventTimeTrigger":
        return ContinuousEventTimeTrigger(_ms(interval, "ContinuousEventTimeTrigger.of"))

    def _register(self, ctx, time: int) -> None:
        ctx.register_event_time_timer(time)

    def on_element(self, element, timestamp, window, ctx):
        if window.max_timestamp() <= ctx.get_current_watermark():
            return TriggerResult.FIRE
        ctx.register_event_time_timer(window.max_timestamp())
        state = ctx.get_partitioned_state(self._fire_at)
        if state.get() is None:
            self._schedule(timestamp - timestamp % self.interval, window, ctx, state)
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        if time == window.max_timestamp() or self._fires_at(time, window, ctx):
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_merge(self, window, ctx):
        super().on_merge(window, ctx)
        if window.max_timestamp() > ctx.get_current_watermark():
            ctx.register_event_time_timer(window.max_timestamp())

    def clear(self, window, ctx):
        state = ctx.get_partitioned_state(self._fire_at)
        if state.get() is not None:
            ctx.delete_event_time_timer(state.get())
        state.clear()
        ctx.delete_event_time_timer(window.max_timestamp())


class ContinuousProcessingTimeTrigger(_Continuous):
    """Fires every ``interval`` of processing time while the window receives records."""

    _kind = "continuous_processing_time"

    @staticmethod
    def of(interval: Duration) -> "ContinuousProcessingTimeTrigger":
        return ContinuousProcessingTimeTrigger(
            _ms(interval, "ContinuousProcessingTimeTrigger.of"))

    def _register(self, ctx, time: int) -> None:
        ctx.register_processing_time_timer(time)

    def on_element(self, element, timestamp, window, ctx):
        state = ctx.get_partitioned_state(self._fire_at)
        if state.get() is None:
            now = ctx.get_current_processing_time()
            self._schedule(now - now % self.interval, window, ctx, state)
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.FIRE if self._fires_at(time, window, ctx) else TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def clear(self, window, ctx):
        state = ctx.get_partitioned_state(self._fire_at)
        if state.get() is not None:
            ctx.delete_processing_time_timer(state.get())
        state.clear()


class CountTrigger(Trigger):
    """Fires each time the window has received ``count`` more records."""

    def __init__(self, count: int):
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"CountTrigger needs a count of at least 1, got {count!r}")
        self._count = count
        self._counted = ReducingStateDescriptor("count", lambda a, b: a + b)

    @staticmethod
    def of(count: int) -> "CountTrigger":
        return CountTrigger(count)

    def on_element(self, element, timestamp, window, ctx):
        counted = ctx.get_partitioned_state(self._counted)
        counted.add(1)
        if counted.get() >= self._count:
            counted.clear()
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window, ctx):
        ctx.merge_partitioned_state(self._counted)

    def clear(self, window, ctx):
        ctx.get_partitioned_state(self._counted).clear()

    def _engine(self):
        return {"kind": "count", "count": self._count}


class PurgingTrigger(Trigger):
    """Turns each firing of ``nested_trigger`` into fire-and-purge."""

    def __init__(self, nested_trigger: Trigger):
        if not isinstance(nested_trigger, Trigger):
            raise TypeError("PurgingTrigger.of takes a Trigger, got "
                            f"{type(nested_trigger).__name__}")
        self.nested_trigger = nested_trigger

    @staticmethod
    def of(nested_trigger: Trigger) -> "PurgingTrigger":
        return PurgingTrigger(nested_trigger)

    @staticmethod
    def _purging(result: TriggerResult) -> TriggerResult:
        return TriggerResult.FIRE_AND_PURGE if result.is_fire() else result

    def on_element(self, element, timestamp, window, ctx):
        return self._purging(self.nested_trigger.on_element(element, timestamp, window, ctx))

    def on_processing_time(self, time, window, ctx):
        return self._purging(self.nested_trigger.on_processing_time(time, window, ctx))

    def on_event_time(self, time, window, ctx):
        return self._purging(self.nested_trigger.on_event_time(time, window, ctx))

    def can_merge(self) -> bool:
        return self.nested_trigger.can_merge()

    def on_merge(self, window, ctx):
        self.nested_trigger.on_merge(window, ctx)

    def clear(self, window, ctx):
        self.nested_trigger.clear(window, ctx)

    def _engine(self):
        # A built-in trigger inside runs in the engine; a Python one makes this one
        # Python too, so that a Python trigger's state stays in one place.
        inner = _engine_trigger(self.nested_trigger)
        return None if inner["kind"] == "python" else {"kind": "purging", "inner": inner}


class NeverTrigger(Trigger):
    """Never fires: the default trigger of ``GlobalWindows``."""

    def on_element(self, element, timestamp, window, ctx):
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window, ctx):
        pass

    def clear(self, window, ctx):
        pass

    def _engine(self):
        return {"kind": "never"}

    @staticmethod
    def create() -> "NeverTrigger":
        return NeverTrigger()


_ENGINE_TRIGGERS = {EventTimeTrigger, ProcessingTimeTrigger, ContinuousEventTimeTrigger,
                    ContinuousProcessingTimeTrigger, CountTrigger, PurgingTrigger, NeverTrigger}

# Timer requests of a Python trigger, as the engine reads them after each call.
_REGISTER_EVENT, _REGISTER_PROCESSING, _DELETE_EVENT, _DELETE_PROCESSING = range(4)

_TRIGGER_STATES = ((ValueStateDescriptor, ValueState), (ListStateDescriptor, ListState),
                   (MapStateDescriptor, MapState), (ReducingStateDescriptor, ReducingState),
                   (AggregatingStateDescriptor, AggregatingState))


class _TriggerContext(Trigger.OnMergeContext):
    """What the engine hands a Python trigger for one call: the window's trigger state
    as it was (``values``, by state name), in ``on_merge`` the states of the windows
    merged into it, and the timers asked for and the states changed, which the engine
    applies to the window after the call."""

    def __init__(self, watermark: int, values: Dict[str, Any],
                 merged: Optional[List[Dict[str, Any]]]):
        self._watermark = watermark
        self._values = values
        self._merged = merged
        self._ops: List[tuple] = []
        self._states: Dict[str, State] = {}

    def get_current_processing_time(self) -> int:
        return _now_ms()

    def get_current_watermark(self) -> int:
        return self._watermark

    def _timer(self, op: int, time: Any) -> None:
        if not isinstance(time, int) or isinstance(time, bool):
            raise TypeError(f"a trigger's timer is an int of milliseconds, got {time!r}")
        self._ops.append((op, time))

    def register_event_time_timer(self, time: int) -> None:
        self._timer(_REGISTER_EVENT, time)

    def register_processing_time_timer(self, time: int) -> None:
        self._timer(_REGISTER_PROCESSING, time)

    def delete_event_time_timer(self, time: int) -> None:
        self._timer(_DELETE_EVENT, time)

    def delete_processing_time_timer(self, time: int) -> None:
        self._timer(_DELETE_PROCESSING, time)

    def get_partitioned_state(self, state_descriptor: StateDescriptor) -> State:
        name = getattr(state_descriptor, "name", None)
        known = self._states.get(name) if isinstance(name, str) else None
        if known is not None:
            if type(known._descriptor) is not type(state_descriptor):
                raise TypeError(f"trigger state '{name}' is a "
                                f"{type(known._descriptor).__name__}; it cannot also be a "
                                f"{type(state_descriptor).__name__}")
            return known
        kind = next((state for descriptor, state in _TRIGGER_STATES
                     if isinstance(state_descriptor, descriptor)), None)
        if kind is None:
            raise TypeError("get_partitioned_state takes a state descriptor (such as "
                            "ValueStateDescriptor), got "
                            f"{type(state_descriptor).__name__}")
        if state_descriptor._ttl_config is not None:
            raise ValueError(f"trigger state '{name}' has a time to live: a trigger's "
                             "state lives as long as its window, and takes none")
        state = kind(state_descriptor)
        state._load(self._values.get(name))
        self._states[name] = state
        return state

    def merge_partitioned_state(self, state_descriptor: StateDescriptor) -> None:
        if self._merged is None:
            raise RuntimeError("merge_partitioned_state is for Trigger.on_merge")
        state = self.get_partitioned_state(state_descriptor)
        name = state_descriptor.name
        values = [m[name] for m in self._merged if m.get(name) is not None]
        if not values:
            return
        merged = state._value
        for value in values:
            if merged is None:
                merged = value
            elif isinstance(state, ReducingState):
                merged = state_descriptor.reduce_function(merged, value)
            elif isinstance(state, AggregatingState):
                merge = getattr(state_descriptor.agg_function, "merge", None)
                if not callable(merge):
                    raise TypeError(f"trigger state '{name}' is merged, so its "
                                    "AggregateFunction needs merge(a, b)")
                merged = merge(merged, value)
            elif isinstance(state, ListState):
                merged = list(merged) + list(value)
            else:
                raise TypeError(f"merge_partitioned_state merges reducing, aggregating and "
                                f"list state; trigger state '{name}' is "
                                f"{type(state).__name__}")
        state._value = merged
        state._dirty = True

    def _changes(self) -> Dict[str, Any]:
        """The states the call changed: the value to keep, or None for a cleared one."""
        return {name: state._store() for name, state in self._states.items() if state._dirty}


class CountEvictor:
    """Keeps the last ``max_count`` records of a window, evicting before the window
    function (after it with ``do_evict_after``), as Flink's ``CountEvictor``."""

    def __init__(self, max_count: int, do_evict_after: bool = False):
        if not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 0:
            raise ValueError(f"CountEvictor needs a count of at least 0, got {max_count!r}")
        self._spec = {"kind": "count", "count": max_count, "after": bool(do_evict_after)}

    @staticmethod
    def of(max_count: int, do_evict_after: bool = False) -> "CountEvictor":
        return CountEvictor(max_count, do_evict_after)


class TimeEvictor:
    """Keeps the records of a window within ``window_size`` of its newest record's
    timestamp, as Flink's ``TimeEvictor``."""

    def __init__(self, window_size: Union[int, Duration], do_evict_after: bool = False):
        self._spec = {"kind": "time", "size_ms": _ms(window_size, "TimeEvictor.of"),
                      "after": bool(do_evict_after)}

    @staticmethod
    def of(window_size: Union[int, Duration], do_evict_after: bool = False) -> "TimeEvictor":
        return TimeEvictor(window_size, do_evict_after)


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

    def trigger(self, trigger: Trigger) -> "WindowedStream":
        """Replaces the assigner's default trigger."""
        engine = _engine_trigger(trigger)
        if self._spec["assigner"].endswith("_session") and not _can_merge(engine):
            raise ValueError(f"{type(trigger).__name__} cannot be used with session windows: "
                             "a trigger of merging windows returns True from can_merge() "
                             "and combines the merged windows' state in on_merge()")
        self._spec["trigger"] = engine
        return self

    def evictor(self, evictor: Union[CountEvictor, TimeEvictor]) -> "WindowedStream":
        """Removes records from a window before (or after) its function runs. The
        window then keeps each of its records, not only an aggregate."""
        if not isinstance(evictor, (CountEvictor, TimeEvictor)):
            raise TypeError("evictor() takes a CountEvictor or a TimeEvictor, got "
                            f"{type(evictor).__name__}")
        self._spec["evictor"] = evictor._spec
        return self

    def side_output_late_data(self, output_tag: OutputTag) -> "WindowedStream":
        """Sends records too late for their windows to ``output_tag``."""
        if not isinstance(output_tag, OutputTag):
            raise TypeError("side_output_late_data takes an OutputTag")
        self._spec["late_tag"] = output_tag.tag_id
        return self

    def _evaluate(self, kind: str, function: Any, window_function: Any, apply_style: bool,
                  name: str, output_type: Any = None) -> Any:
        """The stream of the windows' results, of ``output_type`` (declared)."""
        from superflow.datastream.data_stream import _typed
        node = self._keyed._add("window", window_kind=kind, fn=function, fn2=window_function,
                                apply_style=apply_style, name=name, **self._spec)
        return _typed(self._keyed._env, node, output_type)

    def reduce(self, reduce_function: Any, window_function: Any = None,
               output_type: Any = None) -> Any:
        """Combines each window's records incrementally; one result per window (handed
        to ``window_function`` when given)."""
        from superflow.datastream.data_stream import _callable
        call = _callable(reduce_function, "reduce", "ReduceFunction")
        return self._evaluate("reduce", call, *_window_function(window_function), "Window(Reduce)",
                              output_type if window_function is not None
                              else self._keyed.get_type())

    def aggregate(self, aggregate_function: Any, window_function: Any = None,
                  accumulator_type: Any = None, output_type: Any = None) -> Any:
        """Aggregates each window's records with an ``AggregateFunction``."""
        for method in ("create_accumulator", "add", "get_result", "merge"):
            if not callable(getattr(aggregate_function, method, None)):
                raise TypeError(f"aggregate() takes an AggregateFunction (missing {method})")
        return self._evaluate("aggregate", aggregate_function,
                              *_window_function(window_function), "Window(Aggregate)",
                              output_type)

    def process(self, process_window_function: Any, output_type: Any = None) -> Any:
        """Hands each window's records to ``process(key, context, elements)``."""
        if not callable(getattr(process_window_function, "process", None)):
            raise TypeError("process() takes a ProcessWindowFunction")
        return self._evaluate("process", None, process_window_function, False,
                              "Window(Process)", output_type)

    def apply(self, window_function: Any, output_type: Any = None) -> Any:
        """Hands each window's records to ``apply(key, window, inputs)``."""
        if not callable(getattr(window_function, "apply", None)):
            raise TypeError("apply() takes a WindowFunction")
        return self._evaluate("process", None, window_function, True, "Window(Apply)",
                              output_type)

    def sum(self, position_to_sum: Union[int, str] = 0) -> Any:
        from superflow.datastream.data_stream import _sum_reducer
        return self._evaluate("reduce", _sum_reducer(position_to_sum), None, False,
                              "Window(Sum)", self._keyed.get_type())


def _everything(value: Any) -> int:
    """The key of ``window_all``: one for every record."""
    return 0


class _WithoutKey:
    """A function of ``window_all`` as the keyed window operator calls it, without the
    key (the same for every record)."""

    def __init__(self, function: Any):
        self._function = function

    def process(self, key: Any, context: Any, elements: Any) -> Any:
        return self._function.process(context, elements)

    def apply(self, key: Any, window: Any, inputs: Any) -> Any:
        return self._function.apply(window, inputs)


class AllWindowedStream(WindowedStream):
    """A whole stream cut into windows (``window_all``), evaluated by one subtask, as
    in Flink; its window functions take no key: ``ProcessAllWindowFunction.process(
    context, elements)`` and ``AllWindowFunction.apply(window, inputs)``."""

    def __init__(self, stream: Any, spec: Dict[str, Any]):
        super().__init__(stream.key_by(_everything), spec)

    def _evaluate(self, kind: str, function: Any, window_function: Any, apply_style: bool,
                  name: str, output_type: Any = None) -> Any:
        if window_function is not None:
            window_function = _WithoutKey(window_function)
        stream = super()._evaluate(kind, function, window_function, apply_style,
                                   name.replace("Window", "Window All", 1), output_type)
        return stream.set_parallelism(1)

    def process(self, process_window_function: Any, output_type: Any = None) -> Any:
        """Hands each window's records to ``process(context, elements)``."""
        if not callable(getattr(process_window_function, "process", None)):
            raise TypeError("process() takes a ProcessAllWindowFunction")
        return self._evaluate("process", None, process_window_function, False,
                              "Window(Process)", output_type)

    def apply(self, window_function: Any, output_type: Any = None) -> Any:
        """Hands each window's records to ``apply(window, inputs)``."""
        if not callable(getattr(window_function, "apply", None)):
            raise TypeError("apply() takes an AllWindowFunction")
        return self._evaluate("process", None, window_function, True, "Window(Apply)",
                              output_type)


def _window_function(window_function: Any):
    if window_function is None:
        return None, False
    if callable(getattr(window_function, "process", None)):
        return window_function, False
    if callable(getattr(window_function, "apply", None)):
        return window_function, True
    raise TypeError("a window function is a ProcessWindowFunction or a WindowFunction")


def _can_merge(engine: Dict[str, Any]) -> bool:
    if engine["kind"] == "python":
        return engine["can_merge"]
    return engine["kind"] != "purging" or _can_merge(engine["inner"])


def count_window_spec(size: int, slide: int) -> Dict[str, Any]:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"count_window size must be a positive integer, got {size!r}")
    if not isinstance(slide, int) or slide < 0:
        raise ValueError(f"count_window slide must be a non-negative integer, got {slide!r}")
    return {"assigner": "count", "size_ms": size, "slide_ms": slide, "offset_ms": 0}


TimeWindowSerializer = unsupported("TimeWindowSerializer", "datastream.window",
                                   "user-visible window serializers (windows are Python objects)")
CountWindowSerializer = unsupported("CountWindowSerializer", "datastream.window",
                                    "user-visible window serializers (windows are Python objects)")
GlobalWindowSerializer = unsupported("GlobalWindowSerializer", "datastream.window",
                                     "user-visible window serializers (windows are Python "
                                     "objects)")

__all__ = [
    "Window",
    "MergingWindowAssigner",
    "TimeWindowSerializer",
    "CountWindowSerializer",
    "GlobalWindowSerializer",
    "ContinuousEventTimeTrigger",
    "ContinuousProcessingTimeTrigger",
    "CountEvictor",
    "CountSlidingWindowAssigner",
    "CountTrigger",
    "CountTumblingWindowAssigner",
    "CountWindow",
    "DynamicEventTimeSessionWindows",
    "DynamicProcessingTimeSessionWindows",
    "EventTimeSessionWindows",
    "EventTimeTrigger",
    "GlobalWindow",
    "GlobalWindows",
    "NeverTrigger",
    "ProcessingTimeSessionWindows",
    "ProcessingTimeTrigger",
    "PurgingTrigger",
    "SessionWindowTimeGapExtractor",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "TimeEvictor",
    "TimeWindow",
    "Trigger",
    "TriggerResult",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "AllWindowedStream",
    "WindowAssigner",
    "WindowedStream",
]
