"""Key-value settings (``pyflink.common.Configuration``). The environment reads
``parallelism.default`` from the configuration it is created with."""

from typing import Dict, Optional


class Configuration:
    """String settings, as PyFlink's ``Configuration``."""

    def __init__(self, other: Optional["Configuration"] = None):
        self._data: Dict[str, str] = dict(other._data) if other is not None else {}

    def set_string(self, key: str, value: str) -> "Configuration":
        self._data[key] = str(value)
        return self

    def get_string(self, key: str, default_value: str) -> str:
        return self._data.get(key, default_value)

    def set_integer(self, key: str, value: int) -> "Configuration":
        self._data[key] = str(int(value))
        return self

    def get_integer(self, key: str, default_value: int) -> int:
        value = self._data.get(key)
        if value is None:
            return default_value
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"configuration '{key}' is not an integer: {value!r}") from None

    def set_boolean(self, key: str, value: bool) -> "Configuration":
        self._data[key] = "true" if value else "false"
        return self

    def get_boolean(self, key: str, default_value: bool) -> bool:
        value = self._data.get(key)
        if value is None:
            return default_value
        return value.lower() == "true"

    def contains_key(self, key: str) -> bool:
        return key in self._data

    def remove_config(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    def key_set(self):
        return set(self._data)

    def to_dict(self) -> Dict[str, str]:
        return dict(self._data)
