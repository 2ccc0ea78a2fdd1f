"""Connectors (``pyflink.datastream.connectors``). Sources are the environment's
(``from_collection``, ``from_sequence``, ``read_text_file``); sinks are ``print``,
``add_sink``, ``execute_and_collect`` and the exactly-once ``FileSink`` here."""

from superflow.datastream.connectors.file_system import FileSink, RollingPolicy

__all__ = ["FileSink", "RollingPolicy"]
