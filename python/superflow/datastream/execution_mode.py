"""``RuntimeExecutionMode`` (``pyflink.datastream``): streaming or batch semantics."""

from enum import Enum


class RuntimeExecutionMode(Enum):
    """How a job's operators emit, as in Flink.

    ``STREAMING`` (the default): results as records arrive, watermarks as the sources
    make them. ``BATCH``: a bounded job emits final results only: a keyed ``reduce`` or
    ``sum`` one record per key at the end, event-time windows fire once with all their
    records (watermarks are perfect: no record is late), and processing-time timers fire
    at the end of the input. ``AUTOMATIC``: ``BATCH`` when every source is bounded,
    ``STREAMING`` otherwise. A job with an unbounded source is refused in ``BATCH``."""

    STREAMING = 0
    BATCH = 1
    AUTOMATIC = 2
