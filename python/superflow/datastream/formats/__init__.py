"""Formats (``pyflink.datastream.formats``): PyFlink's package exports no names of its
own; its modules (json, csv, avro, parquet, orc) come with the connectors work."""

__all__: list = []
