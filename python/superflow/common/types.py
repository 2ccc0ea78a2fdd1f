"""``Row`` and ``RowKind`` (``pyflink.common.types``): a record of positional fields,
optionally named, as PyFlink's jobs build and read them."""

from enum import Enum
from typing import Any, Dict, Iterator, List, Optional, Sequence


class RowKind(Enum):
    """The change a row stands for in a changelog."""

    INSERT = 0
    UPDATE_BEFORE = 1
    UPDATE_AFTER = 2
    DELETE = 3


_KIND_MARKS = {RowKind.INSERT: "+I", RowKind.UPDATE_BEFORE: "-U",
               RowKind.UPDATE_AFTER: "+U", RowKind.DELETE: "-D"}


def _flink_text(value: Any) -> str:
    """A field as Java prints it: strings bare, None as null, booleans in lower case,
    lists as arrays, dicts as maps."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Row):
        return value._flink_string()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flink_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_flink_text(k)}={_flink_text(v)}"
                               for k, v in value.items()) + "}"
    return str(value)


def _rebuild_row(names: Optional[Sequence[str]], values: Sequence[Any],
                 kind: "RowKind") -> "Row":
    # Module level, so that pickle writes a row by reference to this function.
    row = Row(*values)
    if names is not None:
        row._names = list(names)
    row._kind = kind
    return row


class Row:
    """A row: ``Row(1, "a")`` by position, ``Row(name="a", count=1)`` by name (fields
    sorted by name, as in PyFlink). Fields read by index (``row[0]``), by name
    (``row["name"]``, ``row.name``) and by iteration; ``Row("name", "count")`` is a row
    *class*, called with the values to make rows of those fields."""

    __slots__ = ("_values", "_names", "_kind")

    def __init__(self, *args: Any, **kwargs: Any):
        if args and kwargs:
            raise ValueError("a Row takes its fields by position or by name, not both")
        self._names: Optional[List[str]]
        if kwargs:
            self._names = sorted(kwargs)
            self._values = [kwargs[name] for name in self._names]
        else:
            self._names = None
            self._values = list(args)
        self._kind = RowKind.INSERT

    def __call__(self, *values: Any) -> "Row":
        """Makes a row whose field names are this row's values."""
        if len(values) > len(self._values):
            raise ValueError(f"Row{tuple(self._values)} has {len(self._values)} fields, "
                             f"got {len(values)} values")
        return _rebuild_row([str(v) for v in self._values], values, self._kind)

    def as_dict(self, recursive: bool = False) -> Dict[str, Any]:
        """The fields by name; nested rows too with ``recursive``."""
        if self._names is None:
            raise TypeError("a Row without field names has no dict form")

        def convert(value: Any) -> Any:
            if not recursive:
                return value
            if isinstance(value, Row):
                return value.as_dict(True)
            if isinstance(value, list):
                return [convert(v) for v in value]
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            return value

        return {name: convert(value) for name, value in zip(self._names, self._values)}

    def get_row_kind(self) -> RowKind:
        return self._kind

    def set_row_kind(self, row_kind: RowKind) -> None:
        self._kind = row_kind

    def set_field_names(self, field_names: List[str]) -> None:
        self._names = list(field_names)

    def get_field_names(self) -> Optional[List[str]]:
        return None if self._names is None else list(self._names)

    def _index(self, name: str) -> int:
        if self._names is not None and name in self._names:
            return self._names.index(name)
        raise KeyError(f"the Row has no field '{name}' (fields: {self._names})")

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, (int, slice)):
            return self._values[item]
        return self._values[self._index(item)]

    def __setitem__(self, item: Any, value: Any) -> None:
        if isinstance(item, (int, slice)):
            self._values[item] = value
        else:
            self._values[self._index(item)] = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[self._index(name)]
        except KeyError as e:
            raise AttributeError(str(e)) from None

    def __contains__(self, item: Any) -> bool:
        return item in self._values

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Row) and self._names == other._names
                and self._kind == other._kind and self._values == other._values)

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __reduce__(self) -> Any:
        return _rebuild_row, (self._names, tuple(self._values), self._kind)

    def _flink_string(self) -> str:
        """How Flink prints a row (``Row.toString``): ``+I[Alice, 11]``, which is what
        ``print()`` shows of a Row, as in PyFlink."""
        return _KIND_MARKS[self._kind] + "[" + ", ".join(
            _flink_text(v) for v in self._values) + "]"

    def __repr__(self) -> str:
        if self._names is None:
            return "<Row(%s)>" % ", ".join(repr(v) for v in self._values)
        return "Row(%s)" % ", ".join(f"{n}={v!r}" for n, v in zip(self._names, self._values))
