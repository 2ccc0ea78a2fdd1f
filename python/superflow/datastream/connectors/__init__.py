"""Connectors (``pyflink.datastream.connectors``). From Python today: the sources of
the environment (``from_collection``, ``from_sequence``, ``read_text_file``) and the
sinks of a stream (``print``, ``add_sink``, ``execute_and_collect``)."""

__all__: list = []
