"""Keyed state (``pyflink.datastream.state``): declare it with a descriptor in
``open`` through ``runtime_context.get_state(...)``; its value is the current key's.
The engine loads the current key's value before each call and stores it back when it
changed, in its keyed state backend (checkpointed, partitioned by key group)."""

from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from superflow.common.time import Duration
from superflow.common.typeinfo import TypeInformation


class StateTtlConfig:
    """Time-to-live of state values (``StateTtlConfig.new_builder(Time.seconds(1))``)."""

    class UpdateType:
        OnCreateAndWrite = "OnCreateAndWrite"
        OnReadAndWrite = "OnReadAndWrite"

    class StateVisibility:
        NeverReturnExpired = "NeverReturnExpired"
        ReturnExpiredIfNotCleanedUp = "ReturnExpiredIfNotCleanedUp"

    def __init__(self, ttl_ms: int, update_type: str, visibility: str):
        self.ttl_ms = ttl_ms
        self.update_type = update_type
        self.visibility = visibility

    @staticmethod
    def new_builder(ttl: Duration) -> "StateTtlConfig.Builder":
        return StateTtlConfig.Builder(ttl)

    class Builder:
        def __init__(self, ttl: Duration):
            if not isinstance(ttl, Duration):
                raise TypeError("StateTtlConfig.new_builder takes a Time or Duration")
            self._ttl = ttl.to_milliseconds()
            self._update = StateTtlConfig.UpdateType.OnCreateAndWrite
            self._visibility = StateTtlConfig.StateVisibility.NeverReturnExpired

        def set_update_type(self, update_type: str) -> "StateTtlConfig.Builder":
            if update_type != StateTtlConfig.UpdateType.OnCreateAndWrite:
                raise ValueError(
                    f"update type {update_type!r} is not supported from Python yet; "
                    "only OnCreateAndWrite")
            self._update = update_type
            return self

        def set_state_visibility(self, visibility: str) -> "StateTtlConfig.Builder":
            if visibility != StateTtlConfig.StateVisibility.NeverReturnExpired:
                raise ValueError(
                    f"visibility {visibility!r} is not supported from Python yet; "
                    "only NeverReturnExpired")
            self._visibility = visibility
            return self

        def build(self) -> "StateTtlConfig":
            return StateTtlConfig(self._ttl, self._update, self._visibility)


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

    def _load(self, value: Any) -> None:
        self._value = value
        self._dirty = False

    def _store(self) -> Any:
        return self._value

    def clear(self) -> None:
        self._value = None
        self._dirty = True


class ValueState(State):
    def value(self) -> Any:
        return self._value

    def update(self, value: Any) -> None:
        self._value = value
        self._dirty = True


class ListState(State):
    def get(self) -> Iterable[Any]:
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
        return bool(self._value) and key in self._value

    def items(self) -> Iterable[Tuple[Any, Any]]:
        return list((self._value or {}).items())

    def keys(self) -> Iterable[Any]:
        return list((self._value or {}).keys())

    def values(self) -> Iterable[Any]:
        return list((self._value or {}).values())

    def is_empty(self) -> bool:
        return not self._value

    def _store(self) -> Any:
        return self._value or None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())


class ReducingState(State):
    def get(self) -> Any:
        return self._value

    def add(self, value: Any) -> None:
        if self._value is None:
            self._value = value
        else:
            self._value = self._descriptor.reduce_function(self._value, value)
        self._dirty = True


class AggregatingState(State):
    def get(self) -> Any:
        if self._value is None:
            return None
        return self._descriptor.agg_function.get_result(self._value)

    def add(self, value: Any) -> None:
        function = self._descriptor.agg_function
        acc = self._value if self._value is not None else function.create_accumulator()
        self._value = function.add(value, acc)
        self._dirty = True
