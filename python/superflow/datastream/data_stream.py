"""``DataStream``, ``KeyedStream`` and ``ConnectedStreams`` (``pyflink.datastream``).
Each transformation adds a node to the environment's plan; ``execute`` runs the plan
on the Rust engine."""

import functools
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, TypeVar, Union

from superflow.common.typeinfo import TypeInformation
from superflow.datastream import functions as fn
from superflow.datastream.output_tag import OutputTag

if TYPE_CHECKING:
    from superflow.datastream.stream_execution_environment import StreamExecutionEnvironment


def _callable(function: Any, method: str, what: str) -> Any:
    """The function to call: a plain callable, or ``function.<method>`` of a function
    object."""
    if isinstance(function, fn.Function) or (
            not callable(function) and hasattr(function, method)):
        bound = getattr(function, method, None)
        if bound is None or not callable(bound):
            raise TypeError(f"{what}: {type(function).__name__} has no method {method}()")
        return bound
    if callable(function):
        return function
    raise TypeError(f"{what} takes a function or a {what} object, "
                    f"got {type(function).__name__}")


def _conversion(output_type: Optional[TypeInformation]) -> Optional[Callable[[Any], Any]]:
    """What makes an operator's records of ``output_type`` take that type's form (a
    FLOAT is a 32-bit float, as PyFlink's records pass through Java); None when the type
    changes no value, so the records go on untouched."""
    from superflow.common.typeinfo import _needs_conversion, as_declared
    if output_type is None or not _needs_conversion(output_type):
        return None
    return functools.partial(as_declared, output_type)


def _typed(env: "StreamExecutionEnvironment", node: Dict[str, Any],
           output_type: Optional[TypeInformation]) -> "DataStream":
    """The stream of ``node``'s records, of ``output_type``: records whose declared type
    changes values take its form as they leave the operator."""
    conversion = _conversion(output_type)
    if conversion is not None:
        node["declared"] = conversion
    return DataStream(env, node, output_type)


def checked_max_parallelism(max_parallelism: Any) -> int:
    """``max_parallelism`` if it is a valid number of key groups (1..32768)."""
    if (not isinstance(max_parallelism, int) or isinstance(max_parallelism, bool)
            or not 1 <= max_parallelism <= 32768):
        raise ValueError(f"max parallelism must be in 1..32768, got {max_parallelism!r}")
    return max_parallelism


def _rich(function: Any) -> Any:
    return function if isinstance(function, fn.Function) else None


_Self = TypeVar("_Self", bound="_OperatorSettings")


class _OperatorSettings:
    """The settings of the operator behind a stream or a sink."""

    _node: Dict[str, Any]

    def name(self: _Self, name: str) -> _Self:
        self._node["name"] = name
        return self

    def uid(self: _Self, uid: str) -> _Self:
        self._node["uid"] = uid
        return self

    def set_parallelism(self: _Self, parallelism: int) -> _Self:
        if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
            raise ValueError(f"parallelism must be a positive integer, got {parallelism!r}")
        self._node["parallelism"] = parallelism
        return self

    def set_max_parallelism(self: _Self, max_parallelism: int) -> _Self:
        """Sets the operator's max parallelism: the upper bound of its parallelism, also
        when a checkpoint is restored at another parallelism, and the number of key
        groups its keyed state and timers are split into. Without it the operator takes
        the environment's. A checkpoint restores only with the max parallelism each
        keyed operator was written with."""
        self._node["max_parallelism"] = checked_max_parallelism(max_parallelism)
        return self

    def disable_chaining(self: _Self) -> _Self:
        """Keeps the operator out of any chain: it runs as an operator of its own."""
        self._node["chaining"] = "disable"
        return self

    def start_new_chain(self: _Self) -> _Self:
        """Starts a new chain at this operator, not chained to the one before."""
        self._node["chaining"] = "new_chain"
        return self

    def force_non_parallel(self: _Self) -> _Self:
        """Runs the operator as one subtask."""
        return self.set_parallelism(1)

    def slot_sharing_group(self: _Self, slot_sharing_group: Any) -> _Self:
        """Accepted for PyFlink's jobs: every operator of a process shares its one worker
        thread, so there are no slots to group."""
        self._node["slot_sharing_group"] = str(getattr(slot_sharing_group, "get_name",
                                                       lambda: slot_sharing_group)())
        return self


class DataStream(_OperatorSettings):
    """A stream of Python objects."""

    def __init__(self, env: "StreamExecutionEnvironment", node: Dict[str, Any],
                 output_type: Optional[TypeInformation] = None):
        self._env = env
        self._node = node
        self._output_type = output_type

    # ----- the operator that produced this stream -----

    def get_name(self) -> Optional[str]:
        return self._node.get("name")

    def get_parallelism(self) -> int:
        return self._node.get("parallelism") or self._env.get_parallelism()

    def get_max_parallelism(self) -> int:
        """The operator's max parallelism: its own, or the environment's."""
        return self._node.get("max_parallelism") or self._env.get_max_parallelism()

    def get_type(self) -> Optional[TypeInformation]:
        return self._output_type

    def set_description(self, description: str) -> "DataStream":
        self._node["description"] = description
        return self

    def _add(self, op: str, inputs: Optional[List["DataStream"]] = None, **fields: Any
             ) -> Dict[str, Any]:
        streams = [self] + (inputs or [])
        return self._env._add_node(op, [s._node for s in streams], **fields)

    def _one(self, op: str, output_type: Optional[TypeInformation] = None, **fields: Any
             ) -> "DataStream":
        return _typed(self._env, self._add(op, **fields), output_type)

    # ----- transformations -----

    def map(self, func: Union[Callable[[Any], Any], fn.MapFunction],
            output_type: Optional[TypeInformation] = None) -> "DataStream":
        """One output per record."""
        return self._one("map", output_type, fn=_callable(func, "map", "MapFunction"),
                         rich=_rich(func))

    def flat_map(self, func: Union[Callable[[Any], Any], fn.FlatMapFunction],
                 output_type: Optional[TypeInformation] = None) -> "DataStream":
        """Any number of outputs per record: the function returns or yields them."""
        return self._one("flat_map", output_type,
                         fn=_callable(func, "flat_map", "FlatMapFunction"), rich=_rich(func))

    def filter(self, func: Union[Callable[[Any], bool], fn.FilterFunction]) -> "DataStream":
        """Keeps the records for which the function returns true."""
        return self._one("filter", self._output_type,
                         fn=_callable(func, "filter", "FilterFunction"), rich=_rich(func))

    def process(self, func: fn.ProcessFunction,
                output_type: Optional[TypeInformation] = None) -> "DataStream":
        """Runs a ``ProcessFunction``: ``process_element(value, ctx)`` yields outputs."""
        if not isinstance(func, fn.ProcessFunction) and not hasattr(func, "process_element"):
            raise TypeError("process() takes a ProcessFunction")
        return self._one("process", output_type, fn=func.process_element, rich=func)

    def assign_timestamps_and_watermarks(self, watermark_strategy: Any) -> "DataStream":
        """Gives records event timestamps and generates watermarks."""
        from superflow.common.watermark_strategy import WatermarkStrategy
        if not isinstance(watermark_strategy, WatermarkStrategy):
            raise TypeError("assign_timestamps_and_watermarks takes a WatermarkStrategy")
        # The records pass unchanged: their declared type is the input's.
        node = self._add("watermarks", fn=watermark_strategy._assigner,
                         fn2=watermark_strategy._generator, strategy=watermark_strategy._kind,
                         bound_ms=watermark_strategy._bound_ms,
                         idle_ms=watermark_strategy._idle_ms)
        return DataStream(self._env, node, self._output_type)

    def key_by(self, key_selector: Union[Callable[[Any], Any], fn.KeySelector],
               key_type: Optional[TypeInformation] = None) -> "KeyedStream":
        """Partitions the stream by key."""
        node = self._add("key_by", fn=_callable(key_selector, "get_key", "KeySelector"))
        return KeyedStream(self._env, node, self._output_type)

    def window_all(self, window_assigner: Any) -> Any:
        """Cuts the whole stream into the assigner's windows, evaluated by one subtask."""
        from superflow.datastream.window import AllWindowedStream, WindowAssigner
        if not isinstance(window_assigner, WindowAssigner):
            raise TypeError("window_all() takes a WindowAssigner, such as "
                            "TumblingEventTimeWindows.of(Time.seconds(1))")
        return AllWindowedStream(self, window_assigner._spec)

    def count_window_all(self, size: int, slide: int = 0) -> Any:
        """Windows of ``size`` records of the whole stream (sliding by ``slide`` records
        if given), each fired when full, by one subtask."""
        from superflow.datastream.window import AllWindowedStream, count_window_spec
        return AllWindowedStream(self, count_window_spec(size, slide))

    def union(self, *streams: "DataStream") -> "DataStream":
        """The records of this stream and of ``streams``."""
        for s in streams:
            if not isinstance(s, DataStream):
                raise TypeError(f"union() takes DataStreams, got {type(s).__name__}")
        return DataStream(self._env, self._add("union", list(streams)), self._output_type)

    def connect(self, ds: Union["DataStream", "BroadcastStream"]
                ) -> Union["ConnectedStreams", "BroadcastConnectedStream"]:
        """Two streams handled by one co-function; with a ``BroadcastStream``, a
        ``BroadcastConnectedStream`` for a (keyed) broadcast process function."""
        if isinstance(ds, BroadcastStream):
            return BroadcastConnectedStream(self, ds)
        if not isinstance(ds, DataStream):
            raise TypeError(f"connect() takes a DataStream, got {type(ds).__name__}")
        return ConnectedStreams(self, ds)

    def join(self, other_stream: "DataStream") -> "WindowJoin":
        """Joins with ``other_stream`` per key and window:
        ``.where(k1).equal_to(k2).window(assigner).apply(JoinFunction)``."""
        return WindowJoin(self, other_stream, "join")

    def co_group(self, other_stream: "DataStream") -> "WindowJoin":
        """Groups both streams per key and window:
        ``.where(k1).equal_to(k2).window(assigner).apply(CoGroupFunction)``."""
        return WindowJoin(self, other_stream, "co_group")

    def get_side_output(self, output_tag: OutputTag) -> "DataStream":
        """The side output ``output_tag`` of this stream's process function."""
        if not isinstance(output_tag, OutputTag):
            raise TypeError("get_side_output() takes an OutputTag")
        return self._one("side_output", output_tag.type_info, text=output_tag.tag_id)

    # ----- partitioning -----

    def forward(self) -> "DataStream":
        return self._one("forward", self._output_type)

    def rebalance(self) -> "DataStream":
        return self._one("rebalance", self._output_type)

    def rescale(self) -> "DataStream":
        return self._one("rescale", self._output_type)

    def shuffle(self) -> "DataStream":
        return self._one("shuffle", self._output_type)

    def broadcast(self, *broadcast_state_descriptors: Any
                  ) -> Union["DataStream", "BroadcastStream"]:
        """Sends every record to every subtask downstream. With ``MapStateDescriptor``s,
        returns a ``BroadcastStream`` to ``connect`` to another stream, whose function
        keeps those broadcast states (the broadcast state pattern)."""
        if not broadcast_state_descriptors:
            return self._one("broadcast", self._output_type)
        from superflow.datastream.state import MapStateDescriptor
        for d in broadcast_state_descriptors:
            if not isinstance(d, MapStateDescriptor):
                raise TypeError("broadcast() takes MapStateDescriptors, got "
                                f"{type(d).__name__}")
        names = [d.name for d in broadcast_state_descriptors]
        if len(set(names)) != len(names):
            raise ValueError(f"broadcast state names must differ, got {names}")
        return BroadcastStream(self, names)

    def global_(self) -> "DataStream":
        """Sends every record to the first subtask (Flink's ``global()``)."""
        return self._one("global", self._output_type)

    def partition_custom(self, partitioner: Union[Callable[[Any, int], int], fn.Partitioner],
                         key_selector: Union[Callable[[Any], Any], fn.KeySelector]
                         ) -> "DataStream":
        """Sends each record to ``partitioner(key, num_partitions)``."""
        return self._one("partition_custom", self._output_type,
                         fn=_callable(partitioner, "partition", "Partitioner"),
                         fn2=_callable(key_selector, "get_key", "KeySelector"))

    # ----- sinks -----

    def print(self, sink_identifier: Optional[str] = None) -> "DataStreamSink":
        """Prints each record, prefixed with ``N>`` (the subtask) when the parallelism
        is above one, and with ``sink_identifier`` if given (``id:N>``, or ``id>`` at
        parallelism one), as Flink does: as Flink prints its declared type (``(a,1)`` for
        a ``Types.TUPLE``), or Python's ``str()`` of it without one, as PyFlink prints."""
        if sink_identifier is not None and not isinstance(sink_identifier, str):
            raise TypeError(f"print() takes a string sink identifier, got {sink_identifier!r}")
        return DataStreamSink(self._as_text()._add("print", text=sink_identifier))

    def _as_text(self) -> "DataStream":
        """This stream, or, when its declared type prints otherwise than Python's
        ``str()``, the stream of each record's text as Flink writes that type (PyFlink's
        sinks see the Java object, whose ``toString`` they write)."""
        from superflow.common.typeinfo import Types, flink_string
        declared = self._output_type
        if declared is None or declared.name in ("PICKLED_BYTE_ARRAY", "STRING", "ROW",
                                                 "ROW_NAMED"):
            return self
        text = DataStream._one(self, "map", Types.STRING(),
                               fn=functools.partial(flink_string, declared),
                               name="Declared Type To String")
        if self._node.get("parallelism"):
            text._node["parallelism"] = self._node["parallelism"]
        return text

    def sink_to(self, sink: Any) -> "DataStreamSink":
        """Writes the stream to a sink connector (``FileSink``)."""
        from superflow.datastream.connectors.file_system import FileSink
        if not isinstance(sink, FileSink):
            raise TypeError(f"sink_to takes a FileSink, got {type(sink).__name__}")
        return DataStreamSink(self._as_text()._add(
            "file_sink", text=sink.base_path, start=sink.rolling_policy.part_size,
            end=sink.rolling_policy.rollover_ms,
            names=[sink.output_file_config.part_prefix, sink.output_file_config.part_suffix,
                   sink.committed_after_restore],
            bucket=list(sink.bucket_assigner._spec)))

    def add_sink(self, sink_func: Union[Callable[[Any], None], fn.SinkFunction]
                 ) -> "DataStreamSink":
        """Calls the sink function with every record."""
        return DataStreamSink(self._add(
            "sink", fn=_callable(sink_func, "invoke", "SinkFunction")))

    def execute_and_collect(self, job_execution_name: Optional[str] = None,
                            limit: Optional[int] = None) -> "CloseableIterator":
        """Runs the job and returns this stream's records (of every subtask)."""
        node = self._add("collect")
        # The sink keeps the records gathered so far in checkpoints, and cannot be named
        # by the user: its uid follows the stream's, so that a restore finds its state.
        if self._node.get("uid"):
            node["uid"] = f"{self._node['uid']}/collect"
        result = self._env.execute(job_execution_name or "collect")
        records = result._collected.get(node["id"], [])
        if limit is not None:
            records = records[:limit]
        return CloseableIterator(records)


class DataStreamSink(_OperatorSettings):
    """The end of a stream."""

    def __init__(self, node: Dict[str, Any]):
        self._node = node


class CloseableIterator:
    """The records ``execute_and_collect`` returns: an iterator and a context manager."""

    def __init__(self, records: List[Any]):
        self._records = records
        self._iter = iter(records)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._iter)

    def __enter__(self) -> "CloseableIterator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._iter = iter(())


def _sum_reducer(position: Union[int, str]) -> Callable[[Any, Any], Any]:
    def add(a: Any, b: Any) -> Any:
        if isinstance(a, tuple):
            if not isinstance(position, int):
                raise TypeError(f"sum({position!r}): tuples are summed by an int position")
            return a[:position] + (a[position] + b[position],) + a[position + 1:]
        if isinstance(a, list):
            out = list(a)
            out[position] = a[position] + b[position]
            return out
        if isinstance(a, dict):
            out = dict(a)
            out[position] = a[position] + b[position]
            return out
        if hasattr(a, "_fields") or hasattr(a, "as_dict"):
            return a.__class__(*[x + y if i == position else x
                                 for i, (x, y) in enumerate(zip(a, b))])
        if position in (0, None):
            return a + b
        raise TypeError(f"sum({position!r}) on a {type(a).__name__}: "
                        "records must be tuples, lists or dicts")
    return add


def _pick(position: Union[int, str], better: Callable[[Any, Any], bool], whole: bool
          ) -> Callable[[Any, Any], Any]:
    def pick(a: Any, b: Any) -> Any:
        av, bv = a[position], b[position]
        if whole:
            return b if better(bv, av) else a
        if not better(bv, av):
            return a
        if isinstance(a, tuple):
            return a[:position] + (bv,) + a[position + 1:]
        out = a.copy()
        out[position] = bv
        return out
    return pick


class KeyedStream(DataStream):
    """A stream partitioned by key: rolling aggregations, keyed process functions and
    keyed state."""

    def _one(self, op: str, output_type: Optional[TypeInformation] = None, **fields: Any
             ) -> "DataStream":
        return _typed(self._env, self._add(op, **fields), output_type)

    def reduce(self, func: Union[Callable[[Any, Any], Any], fn.ReduceFunction]
               ) -> "DataStream":
        """Rolling reduce: every record emits its key's new result."""
        return self._one("reduce", self._output_type,
                         fn=_callable(func, "reduce", "ReduceFunction"))

    def _checked_position(self, aggregation: str, position: Union[int, str]
                          ) -> Union[int, str]:
        """``position`` if the records can have it: a field name, or a position that is
        not negative and, when the stream declares a tuple or row type, within it (as
        Rust checks when the job is built)."""
        if isinstance(position, bool) or not isinstance(position, (int, str)):
            raise TypeError(f"{aggregation}() takes a field position or name, "
                            f"got {position!r}")
        if isinstance(position, int):
            declared = self._output_type
            arity = len(declared.fields) if declared is not None and declared.name in (
                "TUPLE", "ROW", "ROW_NAMED") else None
            if position < 0 or (arity is not None and position >= arity):
                within = f" of the declared {declared!r}" if arity is not None else ""
                raise ValueError(f"{aggregation}({position}): there is no field {position}"
                                 f"{within}")
        return position

    def sum(self, position_to_sum: Union[int, str] = 0) -> "DataStream":
        """Rolling sum of a field (a tuple position or a dict key)."""
        position = self._checked_position("sum", position_to_sum)
        return self._one("reduce", self._output_type, fn=_sum_reducer(position),
                         name="Keyed Sum")

    def min(self, position_to_min: Union[int, str] = 0) -> "DataStream":
        position = self._checked_position("min", position_to_min)
        return self._one("reduce", self._output_type,
                         fn=_pick(position, lambda x, y: x < y, False), name="Min")

    def max(self, position_to_max: Union[int, str] = 0) -> "DataStream":
        position = self._checked_position("max", position_to_max)
        return self._one("reduce", self._output_type,
                         fn=_pick(position, lambda x, y: x > y, False), name="Max")

    def min_by(self, position_to_min_by: Union[int, str] = 0) -> "DataStream":
        position = self._checked_position("min_by", position_to_min_by)
        return self._one("reduce", self._output_type,
                         fn=_pick(position, lambda x, y: x < y, True), name="MinBy")

    def max_by(self, position_to_max_by: Union[int, str] = 0) -> "DataStream":
        position = self._checked_position("max_by", position_to_max_by)
        return self._one("reduce", self._output_type,
                         fn=_pick(position, lambda x, y: x > y, True), name="MaxBy")

    def interval_join(self, keyed_stream: "KeyedStream") -> "IntervalJoin":
        """Joins with another keyed stream on key and event time: continue with
        ``between(lower, upper)``."""
        if not isinstance(keyed_stream, KeyedStream):
            raise TypeError("interval_join takes a KeyedStream (key_by the other stream first)")
        return IntervalJoin(self, keyed_stream)

    def window(self, window_assigner: Any) -> Any:
        """Cuts each key's records into the assigner's windows."""
        from superflow.datastream.window import WindowAssigner, WindowedStream
        if not isinstance(window_assigner, WindowAssigner):
            raise TypeError("window() takes a WindowAssigner, such as "
                            "TumblingEventTimeWindows.of(Time.seconds(1))")
        return WindowedStream(self, window_assigner._spec)

    def count_window(self, size: int, slide: int = 0) -> Any:
        """Windows of ``size`` records per key (sliding by ``slide`` records if given)."""
        from superflow.datastream.window import WindowedStream, count_window_spec
        return WindowedStream(self, count_window_spec(size, slide))

    def process(self, func: Any, output_type: Optional[TypeInformation] = None
                ) -> "DataStream":
        """Runs a ``KeyedProcessFunction`` (state, timers), or a ``ProcessFunction``."""
        if isinstance(func, fn.KeyedProcessFunction) or (
                not isinstance(func, fn.ProcessFunction) and hasattr(func, "on_timer")):
            return self._one("keyed_process", output_type, fn=func)
        return DataStream.process(self, func, output_type)


class WindowJoin:
    """A window join or co-group being built: ``where``, ``equal_to``, ``window``,
    then ``apply``."""

    def __init__(self, first: DataStream, second: DataStream, kind: str):
        if not isinstance(second, DataStream):
            raise TypeError(f"{kind} takes a DataStream, got {type(second).__name__}")
        self._first = first
        self._second = second
        self._kind = kind
        self._keys: List[Any] = []
        self._spec: Optional[Dict[str, Any]] = None

    def where(self, key_selector: Any) -> "WindowJoin":
        self._keys = [_callable(key_selector, "get_key", "KeySelector")]
        return self

    def equal_to(self, key_selector: Any) -> "WindowJoin":
        if len(self._keys) != 1:
            raise TypeError("equal_to() comes after where()")
        self._keys.append(_callable(key_selector, "get_key", "KeySelector"))
        return self

    def window(self, window_assigner: Any) -> "WindowJoin":
        from superflow.datastream.window import WindowAssigner
        if len(self._keys) != 2:
            raise TypeError("window() comes after where() and equal_to()")
        if not isinstance(window_assigner, WindowAssigner):
            raise TypeError("window() takes a WindowAssigner")
        spec = window_assigner._spec
        if spec["assigner"] in ("global", "count") or spec.get("gap") is not None:
            raise TypeError("a window join takes time windows: tumbling, sliding, or "
                            f"sessions with a fixed gap, not {type(window_assigner).__name__}")
        self._spec = dict(spec)
        return self

    def allowed_lateness(self, time_ms: int) -> "WindowJoin":
        from superflow.common.time import to_millis
        if self._spec is None:
            raise TypeError("allowed_lateness() comes after window()")
        self._spec["lateness_ms"] = to_millis(time_ms, "allowed_lateness")
        return self

    def apply(self, function: Any, output_type: Optional[TypeInformation] = None
              ) -> DataStream:
        """Runs ``join(first, second)`` for every pair of a key's window (join), or
        ``co_group(firsts, seconds)`` once per key and window (co-group)."""
        if self._spec is None:
            raise TypeError("apply() comes after where(), equal_to() and window()")
        method = "join" if self._kind == "join" else "co_group"
        if not callable(getattr(function, method, None)):
            raise TypeError(f"apply() takes a {'JoinFunction' if method == 'join' else 'CoGroupFunction'} "
                            f"(missing {method})")
        node = self._first._add("window_join", [self._second], fn=function,
                                key1=self._keys[0], key2=self._keys[1],
                                window_kind=self._kind, **self._spec)
        return _typed(self._first._env, node, output_type)


class IntervalJoin:
    """``left.interval_join(right)``: needs ``between``."""

    def __init__(self, left: KeyedStream, right: KeyedStream):
        self._left = left
        self._right = right

    def between(self, lower_bound: Any, upper_bound: Any) -> "IntervalJoined":
        """Joins a left record at ``t`` with the right records of its key in
        ``[t + lower_bound, t + upper_bound]`` (``Time``/``Duration``, or ms; may be
        negative as ms)."""
        def ms(value: Any) -> int:
            from superflow.common.time import Duration
            if isinstance(value, Duration):
                return value.to_milliseconds()
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            raise TypeError(f"between takes Time/Duration or milliseconds, got {value!r}")
        lower, upper = ms(lower_bound), ms(upper_bound)
        if lower > upper:
            raise ValueError(f"between: the lower bound {lower} ms is above the upper "
                             f"bound {upper} ms")
        return IntervalJoined(self._left, self._right, lower, upper)


class IntervalJoined:
    """An interval join with its bounds: ``process(ProcessJoinFunction)``."""

    def __init__(self, left: KeyedStream, right: KeyedStream, lower: int, upper: int):
        self._left = left
        self._right = right
        self._bounds = {"start": lower, "end": upper}
        self._late = ["", ""]

    def side_output_left_late_data(self, output_tag: OutputTag) -> "IntervalJoined":
        """Sends left records behind the watermark to ``output_tag`` instead of dropping
        them (read it with ``get_side_output`` on the joined stream)."""
        if not isinstance(output_tag, OutputTag):
            raise TypeError("side_output_left_late_data takes an OutputTag")
        self._late[0] = output_tag.tag_id
        return self

    def side_output_right_late_data(self, output_tag: OutputTag) -> "IntervalJoined":
        """Sends right records behind the watermark to ``output_tag`` instead of dropping
        them."""
        if not isinstance(output_tag, OutputTag):
            raise TypeError("side_output_right_late_data takes an OutputTag")
        self._late[1] = output_tag.tag_id
        return self

    def lower_bound_exclusive(self) -> "IntervalJoined":
        self._bounds["lower_exclusive"] = True
        return self

    def upper_bound_exclusive(self) -> "IntervalJoined":
        self._bounds["upper_exclusive"] = True
        return self

    def process(self, process_join_function: Any,
                output_type: Optional[TypeInformation] = None) -> DataStream:
        if not callable(getattr(process_join_function, "process_element", None)):
            raise TypeError("process() takes a ProcessJoinFunction")
        node = self._left._add("interval_join", [self._right], fn=process_join_function,
                               name="Interval Join", names=list(self._late), **self._bounds)
        return _typed(self._left._env, node, output_type)


class ConnectedStreams:
    """Two streams handled by one co-function."""

    def __init__(self, first: DataStream, second: DataStream,
                 keys: Optional[tuple] = None):
        self._first = first
        self._second = second
        self._keys = keys

    def key_by(self, key_selector1: Any, key_selector2: Any,
               key_type: Optional[TypeInformation] = None) -> "ConnectedStreams":
        """Partitions both inputs by key, for a ``KeyedCoProcessFunction``."""
        return ConnectedStreams(self._first, self._second, (
            _callable(key_selector1, "get_key", "KeySelector"),
            _callable(key_selector2, "get_key", "KeySelector")))

    def process(self, func: Any, output_type: Optional[TypeInformation] = None
                ) -> DataStream:
        """Runs a ``KeyedCoProcessFunction`` (``process_element1/2``, ``on_timer``,
        keyed state) on the streams keyed by ``key_by``."""
        if self._keys is None:
            raise TypeError(
                "process() on connected streams needs key_by(key1, key2) first: Superflow "
                "does not have the unkeyed CoProcessFunction yet; key both inputs and use a "
                "KeyedCoProcessFunction, or use map/flat_map with a CoMapFunction")
        for method in ("process_element1", "process_element2"):
            if not callable(getattr(func, method, None)):
                raise TypeError(f"process() takes a KeyedCoProcessFunction (missing {method})")
        node = self._first._add("co_keyed_process", [self._second], fn=func,
                                key1=self._keys[0], key2=self._keys[1])
        return _typed(self._first._env, node, output_type)

    def map(self, func: fn.CoMapFunction, output_type: Optional[TypeInformation] = None
            ) -> DataStream:
        node = self._first._add(
            "co_map", [self._second], fn=_callable(func, "map1", "CoMapFunction"),
            fn2=_callable(func, "map2", "CoMapFunction"))
        return _typed(self._first._env, node, output_type)

    def flat_map(self, func: fn.CoFlatMapFunction,
                 output_type: Optional[TypeInformation] = None) -> DataStream:
        node = self._first._add(
            "co_flat_map", [self._second],
            fn=_callable(func, "flat_map1", "CoFlatMapFunction"),
            fn2=_callable(func, "flat_map2", "CoFlatMapFunction"))
        return _typed(self._first._env, node, output_type)


class BroadcastStream:
    """A stream sent to every subtask of the operator it is connected to, with the
    broadcast state that operator keeps (``DataStream.broadcast(descriptors...)``)."""

    def __init__(self, stream: DataStream, names: List[str]):
        self._stream = stream
        self._names = names


class BroadcastConnectedStream:
    """A stream (keyed or not) connected with a broadcast stream."""

    def __init__(self, stream: DataStream, broadcast: BroadcastStream):
        self._stream = stream
        self._broadcast = broadcast

    def process(self, func: Any, output_type: Optional[TypeInformation] = None
                ) -> DataStream:
        """Runs a ``KeyedBroadcastProcessFunction`` (after ``key_by``) or a
        ``BroadcastProcessFunction``."""
        keyed = isinstance(self._stream, KeyedStream)
        wanted = fn.KeyedBroadcastProcessFunction if keyed else fn.BroadcastProcessFunction
        for method in ("process_element", "process_broadcast_element"):
            if not callable(getattr(func, method, None)):
                raise TypeError(f"process() takes a {wanted.__name__} (missing {method})")
        if not keyed and isinstance(func, fn.KeyedBroadcastProcessFunction):
            raise TypeError("a KeyedBroadcastProcessFunction needs a keyed stream: "
                            "key_by(...) before connect(broadcast_stream)")
        node = self._stream._add("broadcast_process", [self._broadcast._stream], fn=func,
                                 names=list(self._broadcast._names))
        return _typed(self._stream._env, node, output_type)
