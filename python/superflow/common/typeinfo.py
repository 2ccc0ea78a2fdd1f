"""Type information (``pyflink.common.typeinfo``). Records are Python objects, so a
type is a declaration: it is accepted wherever PyFlink takes one, and kept on the
stream it describes."""

from typing import List, Optional


class TypeInformation:
    """The declared type of a stream's records or of a state's values."""

    def __init__(self, name: str, fields: Optional[List["TypeInformation"]] = None,
                 field_names: Optional[List[str]] = None):
        self.name = name
        self.fields = fields or []
        self.field_names = field_names

    def __repr__(self) -> str:
        if self.fields:
            inner = ", ".join(repr(f) for f in self.fields)
            return f"{self.name}({inner})"
        return self.name

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TypeInformation) and self.name == other.name
                and self.fields == other.fields and self.field_names == other.field_names)

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.fields)))


class Types:
    """Factory of type information, as PyFlink's ``Types``."""

    @staticmethod
    def STRING() -> TypeInformation:
        return TypeInformation("STRING")

    @staticmethod
    def BYTE() -> TypeInformation:
        return TypeInformation("BYTE")

    @staticmethod
    def BOOLEAN() -> TypeInformation:
        return TypeInformation("BOOLEAN")

    @staticmethod
    def SHORT() -> TypeInformation:
        return TypeInformation("SHORT")

    @staticmethod
    def INT() -> TypeInformation:
        return TypeInformation("INT")

    @staticmethod
    def LONG() -> TypeInformation:
        return TypeInformation("LONG")

    @staticmethod
    def FLOAT() -> TypeInformation:
        return TypeInformation("FLOAT")

    @staticmethod
    def DOUBLE() -> TypeInformation:
        return TypeInformation("DOUBLE")

    @staticmethod
    def CHAR() -> TypeInformation:
        return TypeInformation("CHAR")

    @staticmethod
    def BIG_INT() -> TypeInformation:
        return TypeInformation("BIG_INT")

    @staticmethod
    def BIG_DEC() -> TypeInformation:
        return TypeInformation("BIG_DEC")

    @staticmethod
    def SQL_DATE() -> TypeInformation:
        return TypeInformation("SQL_DATE")

    @staticmethod
    def SQL_TIME() -> TypeInformation:
        return TypeInformation("SQL_TIME")

    @staticmethod
    def SQL_TIMESTAMP() -> TypeInformation:
        return TypeInformation("SQL_TIMESTAMP")

    @staticmethod
    def PICKLED_BYTE_ARRAY() -> TypeInformation:
        return TypeInformation("PICKLED_BYTE_ARRAY")

    @staticmethod
    def PRIMITIVE_ARRAY(element_type: TypeInformation) -> TypeInformation:
        return TypeInformation("PRIMITIVE_ARRAY", [element_type])

    @staticmethod
    def BASIC_ARRAY(element_type: TypeInformation) -> TypeInformation:
        return TypeInformation("BASIC_ARRAY", [element_type])

    @staticmethod
    def OBJECT_ARRAY(element_type: TypeInformation) -> TypeInformation:
        return TypeInformation("OBJECT_ARRAY", [element_type])

    @staticmethod
    def LIST(element_type: TypeInformation) -> TypeInformation:
        return TypeInformation("LIST", [element_type])

    @staticmethod
    def MAP(key_type: TypeInformation, value_type: TypeInformation) -> TypeInformation:
        return TypeInformation("MAP", [key_type, value_type])

    @staticmethod
    def TUPLE(types: List[TypeInformation]) -> TypeInformation:
        return TypeInformation("TUPLE", list(types))

    @staticmethod
    def ROW(types: List[TypeInformation]) -> TypeInformation:
        return TypeInformation("ROW", list(types))

    @staticmethod
    def ROW_NAMED(names: List[str], types: List[TypeInformation]) -> TypeInformation:
        if len(names) != len(types):
            raise ValueError(
                f"ROW_NAMED: {len(names)} names for {len(types)} types")
        return TypeInformation("ROW_NAMED", list(types), list(names))


# ----- what a declared type does to records -----
#
# PyFlink hands each record of a declared type to Java, which keeps it as that type: a
# FLOAT becomes a 32-bit float, and `print()` and the file sink's encoder write Java's
# `toString()` of it: `(hi,0,5,4)` for a tuple, `110.0999984741211` for the FLOAT 110.1
# read back into Python. These functions do the same on the Python side.

_INTEGERS = ("BYTE", "SHORT", "INT", "LONG", "BIG_INT")
_FLOATS = ("FLOAT", "DOUBLE")


def _float32(value: float) -> float:
    """``value`` rounded to the nearest 32-bit float, as Java's ``float`` keeps it."""
    import struct
    return struct.unpack("f", struct.pack("f", value))[0]


def _needs_conversion(type_info: "TypeInformation") -> bool:
    """Whether records of ``type_info`` change when they take its form (32-bit floats)."""
    return type_info.name == "FLOAT" or any(_needs_conversion(f) for f in type_info.fields)


def as_declared(type_info: Optional[TypeInformation], value: object) -> object:
    """``value`` as a record of ``type_info`` comes back from Java: FLOATs rounded to 32
    bits, the fields of a TUPLE converted by their own types. Values of other types, and
    values that do not fit the type, are returned as they are."""
    if type_info is None or value is None:
        return value
    name = type_info.name
    if name == "FLOAT" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _float32(float(value))
    if name == "TUPLE" and isinstance(value, (tuple, list)) and len(value) == len(type_info.fields):
        return tuple(as_declared(t, v) for t, v in zip(type_info.fields, value))
    if name in ("LIST", "BASIC_ARRAY", "PRIMITIVE_ARRAY", "OBJECT_ARRAY") and \
            isinstance(value, list) and type_info.fields:
        return [as_declared(type_info.fields[0], v) for v in value]
    return value


def _java_float_text(value: float, single: bool) -> str:
    """Java's ``Float.toString`` / ``Double.toString``: the shortest digits that read back
    as the same number, in plain notation from 10^-3 to 10^7 and in Java's scientific
    notation (``1.0E7``) outside it."""
    import math
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if single:
        digits = next(f"{value:.{p}e}" for p in range(0, 10)
                      if _float32(float(f"{value:.{p}e}")) == value)
    else:
        # Python's repr is the shortest text that reads back as the same double.
        digits = f"{value:.{_significant(repr(value)) - 1}e}"
    mantissa, exponent = digits.split("e")
    exp = int(exponent)
    sign = "-" if mantissa.startswith("-") else ""
    figures = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    if -3 <= exp < 7:
        if exp >= 0:
            whole = figures[:exp + 1].ljust(exp + 1, "0")
            fraction = figures[exp + 1:] or "0"
        else:
            whole = "0"
            fraction = "0" * (-exp - 1) + figures
        return f"{sign}{whole}.{fraction}"
    fraction = figures[1:] or "0"
    return f"{sign}{figures[0]}.{fraction}E{exp}"


def _significant(text: str) -> int:
    """The number of significant digits of Python's shortest repr of a float."""
    mantissa = text.lower().split("e")[0].lstrip("-").replace(".", "").lstrip("0")
    return max(1, len(mantissa.rstrip("0")) or 1)


def flink_string(type_info: Optional[TypeInformation], value: object) -> str:
    """``value`` as Flink prints a record of ``type_info`` (Java's ``toString``): tuples
    as ``(a,1)``, rows as ``+I[a, 1]``, strings bare, booleans ``true``, ``null``;
    without a declared type (or a pickled one), Python's ``str()``, as PyFlink prints."""
    from superflow.common.types import Row, _flink_text
    if type_info is None or type_info.name == "PICKLED_BYTE_ARRAY":
        return value if isinstance(value, str) else str(value)
    if value is None:
        return "null"
    name = type_info.name
    if isinstance(value, Row):
        return value._flink_string()
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    mismatch = ((name in ("STRING", "CHAR") and not isinstance(value, str))
                or (name == "BOOLEAN" and not isinstance(value, bool))
                or (name in _INTEGERS and not (number and isinstance(value, int)))
                or (name in _FLOATS and not number)
                or (name == "TUPLE" and not (isinstance(value, (tuple, list))
                                             and len(value) == len(type_info.fields))))
    if mismatch:
        # PyFlink fails converting such a record to its Java type: so does Superflow.
        raise TypeError(f"the record {value!r} ({type(value).__name__}) does not match its "
                        f"declared type {type_info!r} (type_info= or output_type=)")
    if name in ("STRING", "CHAR"):
        return str(value)
    if name == "BOOLEAN":
        return "true" if value else "false"
    if name in _INTEGERS:
        return str(value)
    if name in _FLOATS:
        return _java_float_text(float(value), single=name == "FLOAT")
    if name == "TUPLE":
        return "(" + ",".join(flink_string(t, v) for t, v in zip(type_info.fields, value)) + ")"
    if name in ("LIST", "BASIC_ARRAY", "PRIMITIVE_ARRAY", "OBJECT_ARRAY") and \
            isinstance(value, (list, tuple)):
        element = type_info.fields[0] if type_info.fields else None
        return "[" + ", ".join(flink_string(element, v) if element else _flink_text(v)
                               for v in value) + "]"
    if name == "MAP" and isinstance(value, dict) and len(type_info.fields) == 2:
        k_type, v_type = type_info.fields
        return "{" + ", ".join(f"{flink_string(k_type, k)}={flink_string(v_type, v)}"
                               for k, v in value.items()) + "}"
    if name == "SQL_TIMESTAMP" and hasattr(value, "microsecond") and value.microsecond == 0:
        return f"{value}.0"
    return _flink_text(value)
