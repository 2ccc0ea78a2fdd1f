"""Durations (``pyflink.common.Duration`` and ``pyflink.common.time.Time``), in
milliseconds."""

from typing import Union


def to_millis(value: Union["Duration", int], what: str) -> int:
    """Milliseconds of a ``Duration``/``Time``, or of a non-negative int (milliseconds),
    as PyFlink's methods accept both; ``what`` names the caller in the error."""
    if isinstance(value, Duration):
        return value.to_milliseconds()
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise TypeError(f"{what} takes a Time or Duration (or milliseconds), got {value!r}")


class Duration:
    """A length of time, as PyFlink's ``Duration``."""

    def __init__(self, millis: int):
        if millis < 0:
            raise ValueError(f"a duration cannot be negative, got {millis} ms")
        self._millis = int(millis)

    @staticmethod
    def of_millis(millis: int) -> "Duration":
        return Duration(millis)

    @staticmethod
    def of_seconds(seconds: int) -> "Duration":
        return Duration(seconds * 1000)

    @staticmethod
    def of_minutes(minutes: int) -> "Duration":
        return Duration(minutes * 60_000)

    @staticmethod
    def of_hours(hours: int) -> "Duration":
        return Duration(hours * 3_600_000)

    @staticmethod
    def of_days(days: int) -> "Duration":
        return Duration(days * 86_400_000)

    @staticmethod
    def zero() -> "Duration":
        return Duration(0)

    def to_milliseconds(self) -> int:
        return self._millis

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and self._millis == other._millis

    def __hash__(self) -> int:
        return hash(self._millis)

    def __repr__(self) -> str:
        return f"Duration({self._millis} ms)"


class Time(Duration):
    """A length of time, as PyFlink's (older) ``Time``."""

    @staticmethod
    def milliseconds(millis: int) -> "Time":
        return Time(millis)

    @staticmethod
    def seconds(seconds: int) -> "Time":
        return Time(seconds * 1000)

    @staticmethod
    def minutes(minutes: int) -> "Time":
        return Time(minutes * 60_000)

    @staticmethod
    def hours(hours: int) -> "Time":
        return Time(hours * 3_600_000)

    @staticmethod
    def days(days: int) -> "Time":
        return Time(days * 86_400_000)


class Instant:
    """A point on the time line: seconds and nanoseconds since the Unix epoch, as
    PyFlink's ``Instant``."""

    def __init__(self, seconds: int, nanos: int):
        if not 0 <= nanos < 1_000_000_000:
            raise ValueError(f"nanos must be in 0..999999999, got {nanos}")
        self.seconds = int(seconds)
        self.nanos = int(nanos)

    @staticmethod
    def of_epoch_milli(epoch_milli: int) -> "Instant":
        seconds, millis = divmod(int(epoch_milli), 1000)
        return Instant(seconds, millis * 1_000_000)

    def to_epoch_milli(self) -> int:
        return self.seconds * 1000 + self.nanos // 1_000_000

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instant) and (self.seconds, self.nanos) == (
            other.seconds, other.nanos)

    def __hash__(self) -> int:
        return hash((self.seconds, self.nanos))

    def __repr__(self) -> str:
        return f"Instant<{self.seconds}, {self.nanos}>"
