"""User-function classes (``pyflink.datastream.functions``). Subclass them, or pass a
plain function or lambda where PyFlink accepts one. ``open`` and ``close`` run in the
worker, once per subtask."""

from typing import Any, Generic, Iterable, List, Optional, Tuple, TypeVar

from superflow._unsupported import unsupported

MIN_WATERMARK = -(2 ** 63)

# The type parameters of PyFlink's generic function classes: examples write
# ``ProcessWindowFunction[tuple, tuple, str, TimeWindow]``.
IN = TypeVar("IN")
IN1 = TypeVar("IN1")
IN2 = TypeVar("IN2")
OUT = TypeVar("OUT")
KEY = TypeVar("KEY")
W = TypeVar("W")
W2 = TypeVar("W2")


class Function:
    """Base of every user function: ``open`` before the first record, ``close`` after
    the last."""

    def open(self, runtime_context: "RuntimeContext") -> None:
        pass

    def close(self) -> None:
        pass


class MapFunction(Function, Generic[IN, OUT]):
    def map(self, value: Any) -> Any:
        raise NotImplementedError("MapFunction.map")


class FlatMapFunction(Function, Generic[IN, OUT]):
    def flat_map(self, value: Any) -> Optional[Iterable[Any]]:
        raise NotImplementedError("FlatMapFunction.flat_map")


class FilterFunction(Function, Generic[IN]):
    def filter(self, value: Any) -> bool:
        raise NotImplementedError("FilterFunction.filter")


class ReduceFunction(Function, Generic[IN]):
    def reduce(self, value1: Any, value2: Any) -> Any:
        raise NotImplementedError("ReduceFunction.reduce")


class AggregateFunction(Function, Generic[IN, OUT]):
    """Incremental aggregation: used by ``AggregatingStateDescriptor``."""

    def create_accumulator(self) -> Any:
        raise NotImplementedError("AggregateFunction.create_accumulator")

    def add(self, value: Any, accumulator: Any) -> Any:
        raise NotImplementedError("AggregateFunction.add")

    def get_result(self, accumulator: Any) -> Any:
        raise NotImplementedError("AggregateFunction.get_result")

    def merge(self, acc_a: Any, acc_b: Any) -> Any:
        raise NotImplementedError("AggregateFunction.merge")


class KeySelector(Function, Generic[IN, KEY]):
    def get_key(self, value: Any) -> Any:
        raise NotImplementedError("KeySelector.get_key")


class Partitioner(Function, Generic[KEY]):
    def partition(self, key: Any, num_partitions: int) -> int:
        raise NotImplementedError("Partitioner.partition")


class CoMapFunction(Function, Generic[IN1, IN2, OUT]):
    def map1(self, value: Any) -> Any:
        raise NotImplementedError("CoMapFunction.map1")

    def map2(self, value: Any) -> Any:
        raise NotImplementedError("CoMapFunction.map2")


class CoFlatMapFunction(Function, Generic[IN1, IN2, OUT]):
    def flat_map1(self, value: Any) -> Optional[Iterable[Any]]:
        raise NotImplementedError("CoFlatMapFunction.flat_map1")

    def flat_map2(self, value: Any) -> Optional[Iterable[Any]]:
        raise NotImplementedError("CoFlatMapFunction.flat_map2")


class SinkFunction(Function, Generic[IN]):
    """A sink written in Python: ``invoke`` is called with each record."""

    def invoke(self, value: Any) -> None:
        raise NotImplementedError("SinkFunction.invoke")


def _now_ms() -> int:
    """The processing time: the wall clock in milliseconds since the Unix epoch."""
    import time
    return time.time_ns() // 1_000_000


class TimerService:
    """Clocks and (on keyed streams) timers of the current key."""

    def __init__(self, context: "_ProcessContext"):
        self._context = context

    def current_processing_time(self) -> int:
        return _now_ms()

    def current_watermark(self) -> int:
        return self._context._watermark

    def _keyed(self, what: str, timestamp: int) -> None:
        ops = getattr(self._context, "_timer_ops", None)
        if ops is None:
            raise RuntimeError(
                f"{what}: timers are only available on a keyed stream "
                "(key_by(...).process(KeyedProcessFunction))")
        ops.append((what, int(timestamp)))

    def register_event_time_timer(self, timestamp: int) -> None:
        self._keyed("register_event_time_timer", timestamp)

    def register_processing_time_timer(self, timestamp: int) -> None:
        self._keyed("register_processing_time_timer", timestamp)

    def delete_event_time_timer(self, timestamp: int) -> None:
        self._keyed("delete_event_time_timer", timestamp)

    def delete_processing_time_timer(self, timestamp: int) -> None:
        self._keyed("delete_processing_time_timer", timestamp)


class _ProcessContext:
    """``ProcessFunction.Context``: set by the engine before each call."""

    def __init__(self) -> None:
        self._timestamp: Optional[int] = None
        self._watermark: int = MIN_WATERMARK
        self._timer_service = TimerService(self)

    def timestamp(self) -> Optional[int]:
        return self._timestamp

    def timer_service(self) -> TimerService:
        return self._timer_service


class _KeyedContext(_ProcessContext):
    """``KeyedProcessFunction.Context`` and ``OnTimerContext``."""

    def __init__(self) -> None:
        super().__init__()
        self._key: Any = None
        self._time_domain: Optional[str] = None
        self._timer_ops: List[Tuple[str, int]] = []

    def get_current_key(self) -> Any:
        return self._key

    def time_domain(self) -> Optional[str]:
        return None if self._time_domain is None else getattr(TimeDomain, self._time_domain)


class TimeDomain:
    """Which clock a firing timer follows."""

    EVENT_TIME = "EVENT_TIME"
    PROCESSING_TIME = "PROCESSING_TIME"


class ProcessFunction(Function, Generic[IN, OUT]):
    """Handles each record with a context: its timestamp, the clocks, side outputs
    (yield ``(output_tag, value)``)."""

    Context = _ProcessContext

    def process_element(self, value: Any, ctx: _ProcessContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("ProcessFunction.process_element")


class KeyedProcessFunction(Function, Generic[KEY, IN, OUT]):
    """Handles each record of a keyed stream with its key's state and timers."""

    Context = _KeyedContext
    OnTimerContext = _KeyedContext

    def process_element(self, value: Any, ctx: _KeyedContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("KeyedProcessFunction.process_element")

    def on_timer(self, timestamp: int, ctx: _KeyedContext) -> Optional[Iterable[Any]]:
        return None


class CoProcessFunction(Function, Generic[IN1, IN2, OUT]):
    """Handles the records of two connected streams that are not keyed. Superflow runs
    co-process functions on keyed streams only (``KeyedCoProcessFunction``); an
    unkeyed one is refused when the job is built, saying so."""

    Context = _ProcessContext

    def process_element1(self, value: Any, ctx: _ProcessContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("CoProcessFunction.process_element1")

    def process_element2(self, value: Any, ctx: _ProcessContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("CoProcessFunction.process_element2")


class KeyedCoProcessFunction(Function, Generic[KEY, IN1, IN2, OUT]):
    """Handles the records of two connected keyed streams with their key's state and
    timers. ``open`` runs before the first record (of either input)."""

    Context = _KeyedContext
    OnTimerContext = _KeyedContext

    def process_element1(self, value: Any, ctx: _KeyedContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("KeyedCoProcessFunction.process_element1")

    def process_element2(self, value: Any, ctx: _KeyedContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("KeyedCoProcessFunction.process_element2")

    def on_timer(self, timestamp: int, ctx: _KeyedContext) -> Optional[Iterable[Any]]:
        return None


class ReadOnlyBroadcastState:
    """Broadcast state as the non-broadcast side sees it: read only (PyFlink's
    ``ReadOnlyBroadcastState``)."""

    def __init__(self, name: str, entries: dict):
        self._name = name
        self._entries = entries

    def get(self, key: Any) -> Any:
        return self._entries.get(key)

    def contains(self, key: Any) -> bool:
        return key in self._entries

    def items(self) -> Iterable[Tuple[Any, Any]]:
        return list(self._entries.items())

    def keys(self) -> Iterable[Any]:
        return list(self._entries.keys())

    def values(self) -> Iterable[Any]:
        return list(self._entries.values())

    def is_empty(self) -> bool:
        return not self._entries

    def __iter__(self):
        return iter(list(self._entries.items()))


class BroadcastState(ReadOnlyBroadcastState):
    """Broadcast state as ``process_broadcast_element`` sees it: read and write. Every
    subtask sees every broadcast record, so every subtask's copy stays the same, as long
    as the function changes it only from the broadcast records."""

    def put(self, key: Any, value: Any) -> None:
        try:
            hash(key)
        except TypeError as e:
            raise TypeError(f"broadcast state '{self._name}': key {key!r} of type "
                            f"{type(key).__name__} cannot be used as a key: {e}") from None
        self._entries[key] = value

    def put_all(self, entries: Any) -> None:
        pairs = entries.items() if hasattr(entries, "items") else entries
        for key, value in pairs:
            self.put(key, value)

    def remove(self, key: Any) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


def _broadcast_state(views: dict, descriptor: Any, writable: bool) -> ReadOnlyBroadcastState:
    name = getattr(descriptor, "name", descriptor)
    if name not in views:
        raise ValueError(
            f"broadcast state '{name}' was not declared: pass its MapStateDescriptor to "
            f"broadcast(...) (declared: {sorted(views)})")
    return (BroadcastState if writable else ReadOnlyBroadcastState)(name, views[name])


class _ReadsBroadcastState:
    """What the non-broadcast side of a broadcast process function's context adds:
    broadcast state to read (the engine sets ``_broadcast`` before each call) and the
    watermark."""

    def __init__(self) -> None:
        super().__init__()
        self._broadcast: dict = {}

    def get_broadcast_state(self, state_descriptor: Any) -> ReadOnlyBroadcastState:
        return _broadcast_state(self._broadcast, state_descriptor, False)

    def current_watermark(self) -> int:
        return self._watermark  # type: ignore[attr-defined]


class _ReadOnlyBroadcastContext(_ReadsBroadcastState, _ProcessContext):
    """``BroadcastProcessFunction.ReadOnlyContext``: the record's timestamp, the clocks,
    broadcast state to read, side outputs (yield ``(output_tag, value)``)."""

    def current_processing_time(self) -> int:
        return _now_ms()


class _KeyedBroadcastContext(_ReadsBroadcastState, _KeyedContext):
    """``KeyedBroadcastProcessFunction.ReadOnlyContext`` and ``OnTimerContext``: what a
    keyed process function's context has, and broadcast state to read."""


class _BroadcastContext:
    """The context of ``process_broadcast_element``: broadcast state to read and
    write, the record's timestamp and the clocks."""

    def __init__(self, views: dict, timestamp: Optional[int], watermark: int):
        self._broadcast = views
        self._timestamp = timestamp
        self._watermark = watermark

    def get_broadcast_state(self, state_descriptor: Any) -> BroadcastState:
        state = _broadcast_state(self._broadcast, state_descriptor, True)
        assert isinstance(state, BroadcastState)
        return state

    def timestamp(self) -> Optional[int]:
        return self._timestamp

    def current_watermark(self) -> int:
        return self._watermark

    def current_processing_time(self) -> int:
        return _now_ms()


class BaseBroadcastProcessFunction(Function):
    """The base of the two broadcast process functions."""


class BroadcastProcessFunction(BaseBroadcastProcessFunction, Generic[IN1, IN2, OUT]):
    """Handles a stream connected with a broadcast stream: ``process_broadcast_element``
    sees every broadcast record on every subtask and may change broadcast state;
    ``process_element`` handles the other stream's records and reads it."""

    ReadOnlyContext = _ReadOnlyBroadcastContext
    Context = _BroadcastContext

    def process_element(self, value: Any, ctx: _ReadOnlyBroadcastContext
                        ) -> Optional[Iterable[Any]]:
        raise NotImplementedError("BroadcastProcessFunction.process_element")

    def process_broadcast_element(self, value: Any, ctx: _BroadcastContext
                                  ) -> Optional[Iterable[Any]]:
        raise NotImplementedError("BroadcastProcessFunction.process_broadcast_element")


class KeyedBroadcastProcessFunction(BaseBroadcastProcessFunction, Generic[KEY, IN1, IN2, OUT]):
    """As ``BroadcastProcessFunction``, on a keyed stream: ``process_element`` and
    ``on_timer`` also have the key, keyed state and timers."""

    ReadOnlyContext = _KeyedBroadcastContext
    OnTimerContext = _KeyedBroadcastContext
    Context = _BroadcastContext

    def process_element(self, value: Any, ctx: _KeyedBroadcastContext
                        ) -> Optional[Iterable[Any]]:
        raise NotImplementedError("KeyedBroadcastProcessFunction.process_element")

    def process_broadcast_element(self, value: Any, ctx: _BroadcastContext
                                  ) -> Optional[Iterable[Any]]:
        raise NotImplementedError("KeyedBroadcastProcessFunction.process_broadcast_element")

    def on_timer(self, timestamp: int, ctx: _KeyedBroadcastContext) -> Optional[Iterable[Any]]:
        return None


class _JoinContext:
    """``ProcessJoinFunction.Context``: the timestamps of the joined pair."""

    def __init__(self, left_timestamp: int, right_timestamp: int):
        self._left = left_timestamp
        self._right = right_timestamp

    def get_left_timestamp(self) -> int:
        return self._left

    def get_right_timestamp(self) -> int:
        return self._right

    def get_timestamp(self) -> int:
        """The larger of the two: the timestamp of the output."""
        return max(self._left, self._right)


class ProcessJoinFunction(Function, Generic[IN1, IN2, OUT]):
    """Joins the pairs of an interval join: ``process_element(left, right, ctx)`` yields
    the outputs."""

    Context = _JoinContext

    def process_element(self, left: Any, right: Any, ctx: _JoinContext
                        ) -> Optional[Iterable[Any]]:
        raise NotImplementedError("ProcessJoinFunction.process_element")


class JoinFunction(Function, Generic[IN1, IN2, OUT]):
    """Joins a pair of a window join: ``join(first, second)`` returns the output."""

    def join(self, value1: Any, value2: Any) -> Any:
        raise NotImplementedError("JoinFunction.join")


class CoGroupFunction(Function, Generic[IN1, IN2, OUT]):
    """Handles all records of both inputs of one key and window:
    ``co_group(firsts, seconds)`` yields the outputs; either list may be empty."""

    def co_group(self, first: Iterable[Any], second: Iterable[Any]
                 ) -> Optional[Iterable[Any]]:
        raise NotImplementedError("CoGroupFunction.co_group")


class _WindowFunctionContext(Generic[W2]):
    """What a window function sees of its window: ``window()``, the clocks, and the
    per-window and per-key state (``window_state()``, ``global_state()``). The engine
    hands over its own subclass."""

    def window(self) -> W2:
        raise NotImplementedError("Context.window")

    def current_processing_time(self) -> int:
        return _now_ms()

    def current_watermark(self) -> int:
        raise NotImplementedError("Context.current_watermark")


class ProcessWindowFunction(Function, Generic[IN, OUT, KEY, W]):
    """Evaluates a window with all its records: ``process(key, context, elements)``
    yields the outputs; ``context.window()`` is the window."""

    Context = _WindowFunctionContext

    def process(self, key: Any, context: Any, elements: Iterable[Any]
                ) -> Optional[Iterable[Any]]:
        raise NotImplementedError("ProcessWindowFunction.process")


class WindowFunction(Function, Generic[IN, OUT, KEY, W]):
    """Evaluates a window with all its records: ``apply(key, window, inputs)``."""

    def apply(self, key: Any, window: Any, inputs: Iterable[Any]) -> Optional[Iterable[Any]]:
        raise NotImplementedError("WindowFunction.apply")


class ProcessAllWindowFunction(Function, Generic[IN, OUT, W]):
    """Evaluates a window of a whole stream (``window_all``) with all its records:
    ``process(context, elements)`` yields the outputs; ``context.window()`` is the
    window."""

    Context = _WindowFunctionContext

    def process(self, context: Any, elements: Iterable[Any]) -> Optional[Iterable[Any]]:
        raise NotImplementedError("ProcessAllWindowFunction.process")


class AllWindowFunction(Function, Generic[IN, OUT, W]):
    """Evaluates a window of a whole stream with all its records:
    ``apply(window, inputs)``."""

    def apply(self, window: Any, inputs: Iterable[Any]) -> Optional[Iterable[Any]]:
        raise NotImplementedError("AllWindowFunction.apply")


class RuntimeContext:
    """Where a function runs, and (on keyed streams) its keyed state."""

    def __init__(self, task_name: str, subtask: int, parallelism: int, max_parallelism: int,
                 keyed: bool = True):
        self._task_name = task_name
        self._subtask = subtask
        self._parallelism = parallelism
        self._max_parallelism = max_parallelism
        self._keyed = keyed
        self._states: List[Tuple[str, Any, Optional[tuple]]] = []
        self._names: set = set()

    def get_task_name(self) -> str:
        return self._task_name

    def get_index_of_this_subtask(self) -> int:
        return self._subtask

    def get_number_of_parallel_subtasks(self) -> int:
        return self._parallelism

    def get_max_number_of_parallel_subtasks(self) -> int:
        """The operator's max parallelism: its number of key groups."""
        return self._max_parallelism

    def get_task_name_with_subtasks(self) -> str:
        """The task name with this subtask, as Flink writes it: ``name (2/4)``."""
        return f"{self._task_name} ({self._subtask + 1}/{self._parallelism})"

    def _declare(self, descriptor: Any, state: Any) -> Any:
        if not self._keyed:
            raise RuntimeError(
                f"keyed state '{descriptor.name}' is only available on a keyed stream: "
                "use key_by(...) before this function")
        if descriptor.name in self._names:
            raise ValueError(f"state '{descriptor.name}' is declared twice")
        self._names.add(descriptor.name)
        self._states.append((descriptor.name, state, state._engine_ttl()))
        return state

    def get_state(self, state_descriptor: Any) -> Any:
        from superflow.datastream import state
        return self._declare(state_descriptor, state.ValueState(state_descriptor))

    def get_list_state(self, state_descriptor: Any) -> Any:
        from superflow.datastream import state
        return self._declare(state_descriptor, state.ListState(state_descriptor))

    def get_map_state(self, state_descriptor: Any) -> Any:
        from superflow.datastream import state
        return self._declare(state_descriptor, state.MapState(state_descriptor))

    def get_reducing_state(self, state_descriptor: Any) -> Any:
        from superflow.datastream import state
        return self._declare(state_descriptor, state.ReducingState(state_descriptor))

    def get_aggregating_state(self, state_descriptor: Any) -> Any:
        from superflow.datastream import state
        return self._declare(state_descriptor, state.AggregatingState(state_descriptor))


SourceFunction = unsupported("SourceFunction", "datastream.functions",
                             "Java source functions (a Python source is a generator passed "
                             "to from_collection, or a Source of from_source)")
AsyncFunction = unsupported("AsyncFunction", "datastream.functions", "async I/O")
AsyncFunctionDescriptor = unsupported("AsyncFunctionDescriptor", "datastream.functions",
                                      "async I/O")
AsyncRetryPredicate = unsupported("AsyncRetryPredicate", "datastream.functions", "async I/O")
AsyncRetryStrategy = unsupported("AsyncRetryStrategy", "datastream.functions", "async I/O")

__all__ = [
    "RuntimeContext", "MapFunction", "CoMapFunction", "FlatMapFunction", "CoFlatMapFunction",
    "ReduceFunction", "AggregateFunction", "KeySelector", "FilterFunction", "Partitioner",
    "SourceFunction", "SinkFunction", "ProcessFunction", "CoProcessFunction",
    "KeyedProcessFunction", "KeyedCoProcessFunction", "TimerService", "WindowFunction",
    "AllWindowFunction", "ProcessWindowFunction", "ProcessAllWindowFunction",
    "BaseBroadcastProcessFunction", "BroadcastProcessFunction", "KeyedBroadcastProcessFunction",
    "AsyncFunction", "AsyncFunctionDescriptor", "AsyncRetryPredicate", "AsyncRetryStrategy",
    "ProcessJoinFunction", "JoinFunction", "CoGroupFunction", "TimeDomain", "Function",
    "BroadcastState", "ReadOnlyBroadcastState",
]
