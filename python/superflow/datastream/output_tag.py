"""Side outputs (``pyflink.datastream.OutputTag``): a process function yields
``(tag, value)`` to send ``value`` to the side output ``tag``."""

from typing import Optional

from superflow.common.typeinfo import TypeInformation


class OutputTag:
    """Names a side output."""

    def __init__(self, tag_id: str, type_info: Optional[TypeInformation] = None):
        if not isinstance(tag_id, str) or not tag_id:
            raise ValueError("an OutputTag needs a non-empty string id")
        self.tag_id = tag_id
        self.type_info = type_info

    def __repr__(self) -> str:
        return f"OutputTag({self.tag_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutputTag) and other.tag_id == self.tag_id

    def __hash__(self) -> int:
        return hash(self.tag_id)
