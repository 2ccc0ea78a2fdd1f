"""How records become bytes at the edges (``pyflink.common.serialization``): the
encoder of the file sink, and the schemas that turn records into bytes and back."""

from typing import Any, Optional

from superflow._unsupported import unsupported


def _checked_charset(charset: str, what: str) -> str:
    """``charset`` if Python knows it (``UTF-8``, ``ISO-8859-1``, ...)."""
    import codecs
    if not isinstance(charset, str):
        raise TypeError(f"{what}: a charset is a name such as 'UTF-8', got {charset!r}")
    try:
        codecs.lookup(charset)
    except LookupError:
        raise ValueError(f"{what}: unknown charset {charset!r}") from None
    return charset


def _line_charset(charset: str, what: str) -> str:
    """``charset`` if text lines can be read in it: a charset Python knows whose lines
    end with the byte ``\\n`` (UTF-8 and the other ASCII-compatible ones, not UTF-16 or
    UTF-32)."""
    import codecs
    name = codecs.lookup(_checked_charset(charset, what)).name
    if name.startswith(("utf-16", "utf-32")):
        raise ValueError(f"{what} reads UTF-8 and the other ASCII-compatible charsets "
                         f"(ISO-8859-1, windows-1252, Shift_JIS, ...), not {charset!r}: "
                         "lines are split at the byte '\\n'")
    return charset


class Encoder:
    """Writes a record as a line of text (``str(record)``)."""

    def __init__(self, charset: str):
        if charset.upper().replace("-", "") != "UTF8":
            raise ValueError(f"encoders write UTF-8 only, got {charset!r}")
        self.charset = charset

    @staticmethod
    def simple_string_encoder(charset_name: str = "UTF-8") -> "Encoder":
        return Encoder(charset_name)


class SerializationSchema:
    """Turns a record into bytes: ``serialize(element)``."""

    def serialize(self, element: Any) -> bytes:
        raise NotImplementedError(f"{type(self).__name__}.serialize")


class DeserializationSchema:
    """Turns bytes into a record: ``deserialize(message)``."""

    def deserialize(self, message: bytes) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.deserialize")

    def is_end_of_stream(self, next_element: Any) -> bool:
        return False


class SimpleStringSchema(SerializationSchema, DeserializationSchema):
    """Strings as bytes in a charset (UTF-8 by default), both ways."""

    def __init__(self, charset: str = "UTF-8"):
        self._charset = _checked_charset(charset, "SimpleStringSchema")

    def serialize(self, element: Any) -> bytes:
        if not isinstance(element, str):
            raise TypeError(f"SimpleStringSchema serializes strings, got "
                            f"{type(element).__name__}: {element!r}")
        return element.encode(self._charset)

    def deserialize(self, message: bytes) -> str:
        return bytes(message).decode(self._charset)


class ByteArraySchema(SerializationSchema, DeserializationSchema):
    """Bytes as they are, both ways."""

    def serialize(self, element: Any) -> bytes:
        if not isinstance(element, (bytes, bytearray, memoryview)):
            raise TypeError(f"ByteArraySchema serializes bytes, got "
                            f"{type(element).__name__}: {element!r}")
        return bytes(element)

    def deserialize(self, message: bytes) -> bytes:
        return bytes(message)


class RowFieldExtractorSchema(SerializationSchema):
    """One field of a row, which must hold bytes, as the serialized record (Flink's
    schema for writing a row's key or value field as it is)."""

    def __init__(self, field_index: int):
        if not isinstance(field_index, int) or isinstance(field_index, bool) or field_index < 0:
            raise ValueError(f"field_index must be a non-negative integer, got {field_index!r}")
        self._field_index = field_index

    def serialize(self, element: Any) -> bytes:
        try:
            field: Optional[Any] = element[self._field_index]
        except (IndexError, TypeError, KeyError):
            raise ValueError(f"RowFieldExtractorSchema: the record has no field "
                             f"{self._field_index}: {element!r}") from None
        if field is None:
            return b""
        if not isinstance(field, (bytes, bytearray, memoryview)):
            raise TypeError(f"RowFieldExtractorSchema: field {self._field_index} must hold "
                            f"bytes, got {type(field).__name__}: {field!r}")
        return bytes(field)


BulkWriterFactory = unsupported("BulkWriterFactory", "common.serialization",
                                "bulk formats (Parquet, ORC, Avro files)")

__all__ = ["SerializationSchema", "DeserializationSchema", "SimpleStringSchema",
           "ByteArraySchema", "Encoder", "BulkWriterFactory", "RowFieldExtractorSchema"]
