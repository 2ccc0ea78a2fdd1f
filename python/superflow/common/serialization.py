"""How records become bytes at the edges (``pyflink.common.serialization``)."""


class Encoder:
    """Writes a record as a line of text (``str(record)``)."""

    def __init__(self, charset: str):
        if charset.upper().replace("-", "") != "UTF8":
            raise ValueError(f"encoders write UTF-8 only, got {charset!r}")
        self.charset = charset

    @staticmethod
    def simple_string_encoder(charset_name: str = "UTF-8") -> "Encoder":
        return Encoder(charset_name)
