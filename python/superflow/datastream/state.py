"""Keyed state (``pyflink.datastream.state``): declare it with a descriptor in
``open`` through ``runtime_context.get_state(...)``; its value is the current key's.
The engine loads the current key's value before each call and stores it back when it
changed, in its keyed state backend (checkpointed, partitioned by key group)."""

from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from superflow.common.time import Duration
from superflow.common.typeinfo import TypeInformation
from superflow._unsupported import unsupported


# The background cleanups on by default, as in Flink and the engine: how many entries
# each state access checks (incremental cleanup), and how many values a compaction
# cleans up between two readings of the clock.
_DEFAULT_INCREMENTAL_CLEANUP_SIZE = 5
_DEFAULT_QUERY_TIME_AFTER_NUM_ENTRIES = 1000


class StateTtlConfig:
    """Time-to-live of state values, in processing time
    (``StateTtlConfig.new_builder(Time.seconds(1))...build()``).

    Each element of a list state and each entry of a map state has its own time to
    live, as in Flink. Expired values are removed when read, and in the background: each
    state access checks a few more entries (``cleanup_incrementally``, 5 by default),
    and with the embedded LSM backend the store's compactions drop them
    (``cleanup_in_rocksdb_compact_filter``); ``disable_cleanup_in_background()`` turns
    off those defaults. ``cleanup_full_snapshot()`` leaves expired values out of
    checkpoints. Those cleanups work on a
    key's whole list or map, which goes once all its elements expired; expired elements
    of a list or map still in use go when its key is next used."""

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
                 cleanup_incrementally: Optional[Tuple[int, bool]] = None,
                 compaction_query_time_after: Optional[int] = None,
                 cleanup_in_background: bool = True):
        self.ttl_ms = ttl_ms
        self.update_type = update_type
        self.visibility = visibility
        self.cleanup_full_snapshot = cleanup_full_snapshot
        # Set explicitly; the defaults apply while cleanup in background is on.
        self.cleanup_incrementally = cleanup_incrementally
        self.compaction_query_time_after = compaction_query_time_after
        self.cleanup_in_background = cleanup_in_background

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

    def _engine(self) -> Tuple[int, bool, bool, bool, Optional[Tuple[int, bool]],
                               Optional[int]]:
        """What the engine needs: (ttl ms, reads renew, expired returned, cleanup on full
        snapshot, incremental cleanup (entries per access, on every record too),
        compaction cleanup), with the background defaults applied."""
        background = self.cleanup_in_background
        incremental = self.cleanup_incrementally
        if incremental is None and background:
            incremental = (_DEFAULT_INCREMENTAL_CLEANUP_SIZE, False)
        compaction = self.compaction_query_time_after
        if compaction is None and background:
            compaction = _DEFAULT_QUERY_TIME_AFTER_NUM_ENTRIES
        return (self.ttl_ms,
                self.update_type == StateTtlConfig.UpdateType.OnReadAndWrite,
                self.visibility == StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp,
                self.cleanup_full_snapshot,
                incremental,
                compaction)

    class Builder:
        def __init__(self, ttl: Duration):
            self._update = StateTtlConfig.UpdateType.OnCreateAndWrite
            self._visibility = StateTtlConfig.StateVisibility.NeverReturnExpired
            self._full_snapshot = False
            self._incremental: Optional[Tuple[int, bool]] = None
            self._compaction: Optional[int] = None
            self._background = True
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
            """Each access of the state checks the next ``cleanup_size`` entries for
            expired values, going round the state, and so does each record if
            ``run_cleanup_for_every_record`` (on by default with 5 entries, as in
            Flink; with the embedded LSM backend, for the entries in memory)."""
            if not isinstance(cleanup_size, int) or cleanup_size <= 0:
                raise ValueError(f"cleanup_size must be a positive int, not {cleanup_size!r}")
            self._incremental = (cleanup_size, bool(run_cleanup_for_every_record))
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
            """Turns off the cleanups on by default (incremental, and at compaction);
            those set explicitly stay."""
            self._background = False
            return self

        def build(self) -> "StateTtlConfig":
            return StateTtlConfig(self._ttl, self._update, self._visibility,
                                  self._full_snapshot, self._incremental, self._compaction,
                                  self._background)


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
        ttl = descriptor._ttl_config
        self._ttl_ms, self._renews_on_read, self._returns_expired = (
            ttl._engine()[:3] if ttl is not None else (0, False, False))
        # The processing time of the call (milliseconds), with a TTL.
        self._now = 0

    def _engine_ttl(self) -> Optional[tuple]:
        """The TTL the engine applies to the value it keeps."""
        ttl = self._descriptor._ttl_config
        return None if ttl is None else ttl._engine()

    def _load(self, value: Any, now: int = 0) -> None:
        self._value = value
        self._dirty = False
        self._read = False
        self._now = now

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


def _ttl_mismatch(descriptor: StateDescriptor) -> ValueError:
    return ValueError(
        f"state '{descriptor.name}' was written without a time to live (or by an older "
        "Superflow), and now has one: as in Flink, a TTL cannot be added to existing "
        "list or map state; start it under a new name")


class _ElementTtl(State):
    """A list or map state with a TTL: each element has its own, as in Flink. The
    engine's one value per key carries a stamp per element (when it was written, or
    read with ``OnReadAndWrite``), and its own TTL, renewed by every write, outlives
    the elements: a key whose elements all expired goes as a whole, in every cleanup the
    engine does. Expired elements of a key still in use go when the key is used."""

    def _engine_ttl(self) -> Optional[tuple]:
        engine = super()._engine_ttl()
        # Reads renew elements here, and the write-back of a renewal renews the value.
        return None if engine is None else (engine[0], False) + engine[2:]

    def _expired(self, stamp: int) -> bool:
        return stamp + self._ttl_ms <= self._now


class ListState(_ElementTtl):
    """With a TTL the engine keeps ``(stamp, element)`` pairs in the order written;
    stamps never decrease along the list, so the expired elements are a prefix, dropped
    when read, or once they are a quarter of the list."""

    def _load(self, value: Any, now: int = 0) -> None:
        super()._load(value, now)
        if self._ttl_ms and value:
            first = value[0]
            if not (type(first) is tuple and len(first) == 2 and type(first[0]) is int):
                raise _ttl_mismatch(self._descriptor)
            if not self._returns_expired:
                self._drop_expired()

    def _expired_prefix(self) -> int:
        entries = self._value
        if not entries or not self._expired(entries[0][0]):
            return 0
        low, high = 1, len(entries)
        while low < high:
            middle = (low + high) // 2
            if self._expired(entries[middle][0]):
                low = middle + 1
            else:
                high = middle
        return low

    def _drop_expired(self) -> None:
        # Once a quarter of the list expired: an element expires with every call of a
        # list written on every call, and copying the rest each time would cost the
        # length of the list per call.
        cut = self._expired_prefix()
        if cut and cut * 4 >= len(self._value):
            self._value = self._value[cut:]
            self._dirty = True

    def _stamped(self, values: Iterable[Any]) -> List[Any]:
        if not self._ttl_ms:
            return list(values)
        return [(self._now, v) for v in values]

    def get(self) -> Iterable[Any]:
        self._read = True
        if not self._value:
            return []
        if not self._ttl_ms:
            return list(self._value)
        cut = self._expired_prefix()
        # An expired element is returned once, if asked, and goes either way.
        values = [v for _, v in (self._value if self._returns_expired else self._value[cut:])]
        if cut:
            self._value = self._value[cut:]
            self._dirty = True
        if self._renews_on_read and self._value:
            self._value = [(self._now, v) for _, v in self._value]
            self._dirty = True
        return values

    def add(self, value: Any) -> None:
        self.add_all([value])

    def add_all(self, values: List[Any]) -> None:
        if self._ttl_ms:
            self._drop_expired()
        if self._value is None:
            self._value = []
        self._value.extend(self._stamped(values))
        self._dirty = True

    def update(self, values: List[Any]) -> None:
        self._value = self._stamped(values) if values else None
        self._dirty = True

    def _store(self) -> Any:
        return self._value or None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.get())


class MapState(_ElementTtl):
    """With a TTL the engine keeps ``(sweep_at, {key: (stamp, value)})``: the first use
    of the key from ``sweep_at`` drops the expired entries (a write does, with
    ``ReturnExpiredIfNotCleanedUp``); ``sweep_at`` is the earliest expiry, or a quarter
    of the TTL after the last sweep if that is later. Reads never see expired entries."""

    def __init__(self, descriptor: StateDescriptor):
        super().__init__(descriptor)
        self._sweep_at: Optional[int] = None

    def _load(self, value: Any, now: int = 0) -> None:
        if self._ttl_ms:
            if value is not None and not (type(value) is tuple and len(value) == 2 and
                                          type(value[1]) is dict):
                raise _ttl_mismatch(self._descriptor)
            sweep_at, entries = value if value is not None else (None, None)
            super()._load(entries, now)
            self._sweep_at = sweep_at
            if not self._returns_expired:
                self._sweep_if_due()
        else:
            super()._load(value, now)

    def _sweep_if_due(self) -> None:
        if not self._value or self._sweep_at is None or self._now < self._sweep_at:
            return
        live = {k: e for k, e in self._value.items() if not self._expired(e[0])}
        self._value = live
        # The next sweep when the earliest entry left expires, but no sooner than a
        # quarter of the TTL from now: a map written on every call has an entry expire
        # with nearly every call, and a sweep reads the whole map.
        self._sweep_at = (max(min(e[0] for e in live.values()) + self._ttl_ms,
                              self._now + max(self._ttl_ms // 4, 1)) if live else None)
        self._dirty = True

    def _map(self) -> Dict[Any, Any]:
        if self._value is None:
            self._value = {}
        return self._value

    def _entry(self, key: Any) -> Tuple[bool, Any]:
        """Whether `key` has a value to give, and the value; an expired entry goes."""
        if not self._value or key not in self._value:
            return False, None
        if not self._ttl_ms:
            return True, self._value[key]
        stamp, value = self._value[key]
        if self._expired(stamp):
            del self._value[key]
            self._dirty = True
            return self._returns_expired, value
        if self._renews_on_read:
            self._value[key] = (self._now, value)
            self._dirty = True
        return True, value

    def _entries(self) -> List[Tuple[Any, Any]]:
        """The (key, value) pairs to give, renewing and dropping as `_entry` does."""
        if not self._value:
            return []
        if not self._ttl_ms:
            return list(self._value.items())
        pairs = []
        for key in list(self._value):
            found, value = self._entry(key)
            if found:
                pairs.append((key, value))
        return pairs

    def _write(self, pairs: Iterable[Tuple[Any, Any]]) -> None:
        if self._ttl_ms:
            self._sweep_if_due()
            pairs = ((k, (self._now, v)) for k, v in pairs)
            expiry = self._now + self._ttl_ms
            self._sweep_at = expiry if self._sweep_at is None else min(self._sweep_at, expiry)
        self._map().update(pairs)
        self._dirty = True

    def get(self, key: Any) -> Any:
        self._read = True
        return self._entry(key)[1]

    def put(self, key: Any, value: Any) -> None:
        self._write([(key, value)])

    def put_all(self, dict_value: Dict[Any, Any]) -> None:
        self._write(dict_value.items())

    def remove(self, key: Any) -> None:
        if self._value and key in self._value:
            del self._value[key]
            self._dirty = True

    def contains(self, key: Any) -> bool:
        self._read = True
        return self._entry(key)[0]

    def items(self) -> Iterable[Tuple[Any, Any]]:
        self._read = True
        return self._entries()

    def keys(self) -> Iterable[Any]:
        return [k for k, _ in self.items()]

    def values(self) -> Iterable[Any]:
        return [v for _, v in self.items()]

    def is_empty(self) -> bool:
        if not self._ttl_ms:
            self._read = True
            return not self._value
        return not self.items()

    def clear(self) -> None:
        super().clear()
        self._sweep_at = None

    def _store(self) -> Any:
        if not self._value:
            return None
        return (self._sweep_at, self._value) if self._ttl_ms else self._value

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


def __getattr__(name: str) -> Any:
    # The broadcast states live with the broadcast functions, which import this module.
    if name in ("BroadcastState", "ReadOnlyBroadcastState"):
        from superflow.datastream import functions
        return getattr(functions, name)
    raise AttributeError(f"module 'superflow.datastream.state' has no attribute {name!r}")


OperatorStateStore = unsupported("OperatorStateStore", "datastream.state",
                                 "operator state in Python functions (broadcast state is "
                                 "there: BroadcastProcessFunction)")

__all__ = ["ValueStateDescriptor", "ValueState", "ListStateDescriptor", "ListState",
           "MapStateDescriptor", "MapState", "ReducingStateDescriptor", "ReducingState",
           "AggregatingStateDescriptor", "AggregatingState", "ReadOnlyBroadcastState",
           "BroadcastState", "StateTtlConfig", "OperatorStateStore"]
