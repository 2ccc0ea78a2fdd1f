"""Keyed state (``pyflink.datastream.state``): declare it with a descriptor in
``open`` through ``runtime_context.get_state(...)``; its value is the current key's.
The engine loads the current key's value before each call and stores it back when it
changed, in its keyed state backend (checkpointed, partitioned by key group)."""

from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from superflow.common.time import Duration
from superflow.common.typeinfo import TypeInformation


# How many values a compaction cleans up between two readings of the clock, unless told
# otherwise (Flink's default for its RocksDB compaction filter, and the engine's).
_DEFAULT_QUERY_TIME_AFTER_NUM_ENTRIES = 1000


class StateTtlConfig:
    """Time-to-live of state values, in processing time
    (``StateTtlConfig.new_builder(Time.seconds(1))...build()``).

    A Python state's value (a whole list or dict for list and map state) expires as
    one. Expired values are removed when read; ``cleanup_incrementally(n)`` also sweeps
    the whole state every ``n`` accesses, ``cleanup_full_snapshot()`` leaves expired
    values out of checkpoints, and with the embedded LSM backend the store's
    compactions drop them in the background (``cleanup_in_rocksdb_compact_filter``, on
    by default; ``disable_cleanup_in_background()`` turns it off)."""

    class UpdateType:
        OnCreateAndWrite = "OnCreateAndWrite"
        OnReadAndWrite = "OnReadAndWrite"

    class StateVisibility:
        NeverReturnExpired = "NeverReturnExpired"
        ReturnExpiredIfNotCleanedUp = "ReturnExpiredIfNotCleanedUp"

    class TtlTimeCharacteristic:
        ProcessingTime = "ProcessingTime"

    def __init__(self, ttl_ms: int, update_type: str, visibility: str,
                 cleanup_full_snapshot: bool = False,
                 cleanup_incrementally: Optional[int] = None,
                 compaction_query_time_after: Optional[int] =
                 _DEFAULT_QUERY_TIME_AFTER_NUM_ENTRIES):
        self.ttl_ms = ttl_ms
        self.update_type = update_type
        self.visibility = visibility
        self.cleanup_full_snapshot = cleanup_full_snapshot
        self.cleanup_incrementally = cleanup_incrementally
        self.compaction_query_time_after = compaction_query_time_after

    @staticmethod
    def new_builder(ttl: Duration) -> "StateTtlConfig.Builder":
        return StateTtlConfig.Builder(ttl)

    def get_ttl(self) -> Duration:
        return Duration.of_millis(self.ttl_ms)

    def get_update_type(self) -> str:
        return self.update_type

    def get_state_visibility(self) -> str:
        return self.visibility

    def is_enabled(self) -> bool:
        return self.ttl_ms > 0

    def _engine(self) -> Tuple[int, bool, bool, bool, Optional[int], Optional[int]]:
        """What the engine needs: (ttl ms, reads renew, expired returned, cleanup on full
        snapshot, incremental cleanup every n accesses, compaction cleanup)."""
        return (self.ttl_ms,
                self.update_type == StateTtlConfig.UpdateType.OnReadAndWrite,
                self.visibility == StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp,
                self.cleanup_full_snapshot,
                self.cleanup_incrementally,
                self.compaction_query_time_after)

    class Builder:
        def __init__(self, ttl: Duration):
            self._update = StateTtlConfig.UpdateType.OnCreateAndWrite
            self._visibility = StateTtlConfig.StateVisibility.NeverReturnExpired
            self._full_snapshot = False
            self._incremental: Optional[int] = None
            self._compaction: Optional[int] = _DEFAULT_QUERY_TIME_AFTER_NUM_ENTRIES
            self.set_ttl(ttl)

        def set_ttl(self, ttl: Duration) -> "StateTtlConfig.Builder":
            if not isinstance(ttl, Duration):
                raise TypeError("a state TTL is a Time or Duration, not "
                                f"{type(ttl).__name__}")
            if ttl.to_milliseconds() <= 0:
                raise ValueError(f"a state TTL must be positive, not {ttl.to_milliseconds()} ms")
            self._ttl = ttl.to_milliseconds()
            return self

        def set_update_type(self, update_type: str) -> "StateTtlConfig.Builder":
            if update_type not in (StateTtlConfig.UpdateType.OnCreateAndWrite,
                                   StateTtlConfig.UpdateType.OnReadAndWrite):
                raise ValueError(
                    f"unknown update type {update_type!r}: use "
                    "StateTtlConfig.UpdateType.OnCreateAndWrite or OnReadAndWrite")
            self._update = update_type
            return self

        def update_ttl_on_create_and_write(self) -> "StateTtlConfig.Builder":
            return self.set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)

        def update_ttl_on_read_and_write(self) -> "StateTtlConfig.Builder":
            return self.set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)

        def set_state_visibility(self, visibility: str) -> "StateTtlConfig.Builder":
            if visibility not in (StateTtlConfig.StateVisibility.NeverReturnExpired,
                                  StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp):
                raise ValueError(
                    f"unknown state visibility {visibility!r}: use StateTtlConfig."
                    "StateVisibility.NeverReturnExpired or ReturnExpiredIfNotCleanedUp")
            self._visibility = visibility
            return self

        def return_expired_if_not_cleaned_up(self) -> "StateTtlConfig.Builder":
            return self.set_state_visibility(
                StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp)

        def never_return_expired(self) -> "StateTtlConfig.Builder":
            return self.set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)

        def set_ttl_time_characteristic(self, characteristic: str) -> "StateTtlConfig.Builder":
            if characteristic != StateTtlConfig.TtlTimeCharacteristic.ProcessingTime:
                raise ValueError(f"state TTL runs in processing time only, not {characteristic!r}")
            return self

        def use_processing_time(self) -> "StateTtlConfig.Builder":
            return self

        def cleanup_full_snapshot(self) -> "StateTtlConfig.Builder":
            self._full_snapshot = True
            return self

        def cleanup_incrementally(self, cleanup_size: int,
                                  run_cleanup_for_every_record: bool = False
                                  ) -> "StateTtlConfig.Builder":
            """Sweeps the whole state for expired values every ``cleanup_size`` state
            accesses (Flink checks ``cleanup_size`` entries on each access instead: here
            the work comes as one sweep now and then, not a little on every access)."""
            if not isinstance(cleanup_size, int) or cleanup_size <= 0:
                raise ValueError(f"cleanup_size must be a positive int, not {cleanup_size!r}")
            self._incremental = cleanup_size
            return self

        def cleanup_in_rocksdb_compact_filter(
                self, query_time_after_num_entries: int,
                periodic_compaction_time: Optional[Duration] = None) -> "StateTtlConfig.Builder":
            """With the embedded LSM backend, compactions drop expired values, reading the
            clock again every ``query_time_after_num_entries`` values."""
            if not isinstance(query_time_after_num_entries, int) or \
                    query_time_after_num_entries <= 0:
                raise ValueError("query_time_after_num_entries must be a positive int, not "
                                 f"{query_time_after_num_entries!r}")
            self._compaction = query_time_after_num_entries
            return self

        def disable_cleanup_in_background(self) -> "StateTtlConfig.Builder":
            self._compaction = None
            return self

        def build(self) -> "StateTtlConfig":
            return StateTtlConfig(self._ttl, self._update, self._visibility,
                                  self._full_snapshot, self._incremental, self._compaction)


class StateDescriptor:
    """Names a state and its type."""

    def __init__(self, name: str, type_info: Optional[TypeInformation] = None):
        if not isinstance(name, str) or not name:
            raise ValueError("a state descriptor needs a non-empty string name")
        self.name = name
        self.type_info = type_info
        self._ttl_config: Optional[StateTtlConfig] = None

    def get_name(self) -> str:
        return self.name

    def enable_time_to_live(self, ttl_config: StateTtlConfig) -> None:
        if not isinstance(ttl_config, StateTtlConfig):
            raise TypeError("enable_time_to_live takes a StateTtlConfig (from "
                            f"StateTtlConfig.new_builder(...).build()), not "
                            f"{type(ttl_config).__name__}")
        self._ttl_config = ttl_config


class ValueStateDescriptor(StateDescriptor):
    def __init__(self, name: str, value_type_info: Optional[TypeInformation] = None):
        super().__init__(name, value_type_info)


class ListStateDescriptor(StateDescriptor):
    def __init__(self, name: str, elem_type_info: Optional[TypeInformation] = None):
        super().__init__(name, elem_type_info)


class MapStateDescriptor(StateDescriptor):
    def __init__(self, name: str, key_type_info: Optional[TypeInformation] = None,
                 value_type_info: Optional[TypeInformation] = None):
        super().__init__(name, value_type_info)
        self.key_type_info = key_type_info


class ReducingStateDescriptor(StateDescriptor):
    def __init__(self, name: str, reduce_function: Any,
                 type_info: Optional[TypeInformation] = None):
        super().__init__(name, type_info)
        reduce = getattr(reduce_function, "reduce", reduce_function)
        if not callable(reduce):
            raise TypeError("ReducingStateDescriptor needs a ReduceFunction or a function")
        self.reduce_function = reduce


class AggregatingStateDescriptor(StateDescriptor):
    def __init__(self, name: str, agg_function: Any,
                 state_type_info: Optional[TypeInformation] = None):
        super().__init__(name, state_type_info)
        for method in ("create_accumulator", "add", "get_result"):
            if not callable(getattr(agg_function, method, None)):
                raise TypeError(f"AggregatingStateDescriptor needs an AggregateFunction "
                                f"(missing {method})")
        self.agg_function = agg_function


class State:
    """The current key's value of one declared state."""

    def __init__(self, descriptor: StateDescriptor):
        self._descriptor = descriptor
        self._value: Any = None
        self._dirty = False
        # Whether the call read the value: with UpdateType.OnReadAndWrite, a read
        # restarts its time to live.
        self._read = False

    def _load(self, value: Any) -> None:
        self._value = value
        self._dirty = False
        self._read = False

    def _store(self) -> Any:
        return self._value

    def clear(self) -> None:
        self._value = None
        self._dirty = True


class ValueState(State):
    def value(self) -> Any:
        self._read = True
        return self._value

    def update(self, value: Any) -> None:
        self._value = value
        self._dirty = True


class ListState(State):
    def get(self) -> Iterable[Any]:
        self._read = True
        return list(self._value) if self._value else []

    def add(self, value: Any) -> None:
        if self._value is None:
            self._value = []
        self._value.append(value)
        self._dirty = True

    def add_all(self, values: List[Any]) -> None:
        if self._value is None:
            self._value = []
        self._value.extend(values)
        self._dirty = True

    def update(self, values: List[Any]) -> None:
        self._value = list(values) if values else None
        self._dirty = True

    def __iter__(self) -> Iterator[Any]:
        return iter(self.get())


class MapState(State):
    def _map(self) -> Dict[Any, Any]:
        if self._value is None:
            self._value = {}
        return self._value

    def get(self, key: Any) -> Any:
        self._read = True
        return (self._value or {}).get(key)

    def put(self, key: Any, value: Any) -> None:
        self._map()[key] = value
        self._dirty = True

    def put_all(self, dict_value: Dict[Any, Any]) -> None:
        self._map().update(dict_value)
        self._dirty = True

    def remove(self, key: Any) -> None:
        if self._value and key in self._value:
            del self._value[key]
            self._dirty = True

    def contains(self, key: Any) -> bool:
        self._read = True
        return bool(self._value) and key in self._value

    def items(self) -> Iterable[Tuple[Any, Any]]:
        self._read = True
        return list((self._value or {}).items())

    def keys(self) -> Iterable[Any]:
        self._read = True
        return list((self._value or {}).keys())

    def values(self) -> Iterable[Any]:
        self._read = True
        return list((self._value or {}).values())

    def is_empty(self) -> bool:
        self._read = True
        return not self._value

    def _store(self) -> Any:
        return self._value or None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())


class ReducingState(State):
    def get(self) -> Any:
        self._read = True
        return self._value

    def add(self, value: Any) -> None:
        if self._value is None:
            self._value = value
        else:
            self._value = self._descriptor.reduce_function(self._value, value)
        self._dirty = True


class AggregatingState(State):
    def get(self) -> Any:
        self._read = True
        if self._value is None:
            return None
        return self._descriptor.agg_function.get_result(self._value)

    def add(self, value: Any) -> None:
        function = self._descriptor.agg_function
        acc = self._value if self._value is not None else function.create_accumulator()
        self._value = function.add(value, acc)
        self._dirty = True
