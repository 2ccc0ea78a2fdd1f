"""``NumberSequenceSource`` (``pyflink.datastream.connectors.number_seq``): the numbers
from ``start`` to ``end``, both included, split across the source's subtasks; each
subtask's position is checkpointed."""

from superflow.datastream.connectors.base import Source


class NumberSequenceSource(Source):
    def __init__(self, start: int, end: int):
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"NumberSequenceSource {name} is an int, got {value!r}")
        if end < start:
            raise ValueError(f"NumberSequenceSource needs start <= end, got {start} > {end}")
        self._start = start
        self._end = end

    def get_from(self) -> int:
        return self._start

    def get_to(self) -> int:
        return self._end

    def _stream(self, env, name):
        return env.from_sequence(self._start, self._end).name(name)


__all__ = ["NumberSequenceSource"]
