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
