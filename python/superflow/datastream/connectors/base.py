"""``Source`` (``pyflink.datastream.connectors``): what ``env.from_source`` reads."""

from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from superflow.datastream.data_stream import DataStream
    from superflow.datastream.stream_execution_environment import StreamExecutionEnvironment


class Source:
    """A source of ``env.from_source(source, watermark_strategy, source_name)``."""

    def _stream(self, env: "StreamExecutionEnvironment", name: str) -> "DataStream":
        """The stream of this source's records in ``env``, named ``name``. Each source
        of this package says how; a class of the user's that only derives from
        ``Source`` has no records to give."""
        raise TypeError(f"{type(self).__name__} is not one of Superflow's sources "
                        "(NumberSequenceSource, FileSource): a source written in Python "
                        "is a generator passed to from_collection")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Sink:
    """A sink of ``DataStream.sink_to(sink)``."""


class DeliveryGuarantee(Enum):
    """What a sink promises after a failure: ``EXACTLY_ONCE`` (with checkpoints, as
    ``FileSink`` writes), ``AT_LEAST_ONCE``, or ``NONE``."""

    EXACTLY_ONCE = 0
    AT_LEAST_ONCE = 1
    NONE = 2


__all__ = ["Source", "Sink", "DeliveryGuarantee"]
