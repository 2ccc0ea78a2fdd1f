"""Connectors (``pyflink.datastream.connectors``): the sources of ``env.from_source``
(``NumberSequenceSource``, ``FileSource``), beside the environment's own
(``from_collection``, ``from_sequence``, ``read_text_file``); sinks are ``print``,
``add_sink``, ``execute_and_collect`` and the exactly-once ``FileSink``."""

from superflow.datastream.connectors.base import DeliveryGuarantee, Sink, Source
from superflow.datastream.connectors.file_system import (
    FileSink,
    FileSource,
    OutputFileConfig,
    RollingPolicy,
    StreamFormat,
)
from superflow.datastream.connectors.number_seq import NumberSequenceSource

__all__ = ["DeliveryGuarantee", "FileSink", "FileSource", "NumberSequenceSource",
           "OutputFileConfig", "RollingPolicy", "Sink", "Source", "StreamFormat"]
