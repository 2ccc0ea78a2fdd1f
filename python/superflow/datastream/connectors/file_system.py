"""Files (``pyflink.datastream.connectors.file_system``): ``FileSource`` reads the lines
of files (split by byte ranges across its subtasks, its positions checkpointed), and the
exactly-once ``FileSink`` writes records as lines into part files that become visible
(renamed from a hidden ``.part-...inprogress`` name) only when the checkpoint covering
them completes, or when the job finishes."""

from typing import Any, List, Optional

from superflow.common.serialization import Encoder
from superflow.common.time import to_millis
from superflow.datastream.connectors.base import Sink, Source
from superflow._unsupported import unsupported


class StreamFormat:
    """How a ``FileSource`` reads records from a file."""

    def __init__(self, charset: str):
        from superflow.common.serialization import _line_charset
        self._charset = _line_charset(charset, "the text line format")

    @staticmethod
    def text_line_format(charset_name: str = "UTF-8") -> "StreamFormat":
        """One record per line, without its line break."""
        return StreamFormat(charset_name)


class FileSource(Source):
    """The lines of files, or of every visible file of directories: bounded (the files
    there when the job starts), or, with ``monitor_continuously``, unbounded (the
    directories are listed again at every interval, and each new file is read once,
    whole, by one subtask; the files seen are checkpointed)."""

    def __init__(self, paths: List[str], discovery_interval_ms: Optional[int] = None,
                 charset: str = "UTF-8"):
        self._paths = paths
        self._discovery_interval_ms = discovery_interval_ms
        self._charset = charset

    @staticmethod
    def for_record_stream_format(stream_format: StreamFormat, *paths: Any
                                 ) -> "FileSource.FileSourceBuilder":
        if not isinstance(stream_format, StreamFormat):
            raise TypeError("for_record_stream_format takes StreamFormat.text_line_format()")
        if not paths:
            raise ValueError("a FileSource needs at least one path")
        return FileSource.FileSourceBuilder([str(p) for p in paths], stream_format._charset)

    class FileSourceBuilder:
        def __init__(self, paths: List[str], charset: str = "UTF-8"):
            self._paths = paths
            self._charset = charset
            self._discovery_interval_ms: Optional[int] = None

        def process_static_file_set(self) -> "FileSource.FileSourceBuilder":
            """Reads the files there when the job starts, once (the default)."""
            self._discovery_interval_ms = None
            return self

        def monitor_continuously(self, discovery_interval: Any) -> "FileSource.FileSourceBuilder":
            """Keeps watching the paths, listing them every ``discovery_interval`` (a
            ``Duration``, or milliseconds), and reads each new file once: the source
            never ends. A file is read up to the size it had when it was found, so move
            files into the directory whole (write them elsewhere, or under a name
            starting with ``.`` or ``_``, and rename them)."""
            interval = to_millis(discovery_interval, "monitor_continuously")
            if interval < 1:
                raise ValueError("monitor_continuously needs an interval of at least 1 ms, "
                                 f"got {discovery_interval!r}")
            self._discovery_interval_ms = interval
            return self

        def build(self) -> "FileSource":
            return FileSource(self._paths, self._discovery_interval_ms, self._charset)

    def _stream(self, env, name):
        streams = [env._text_file(path, name, self._discovery_interval_ms, self._charset)
                   for path in self._paths]
        return streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]


class RollingPolicy:
    """When a part file is closed and the next begins; parts also close at every
    checkpoint."""

    def __init__(self, part_size: int, rollover_ms: int):
        self.part_size = part_size
        self.rollover_ms = rollover_ms

    @staticmethod
    def default_rolling_policy(part_size: int = 128 * 1024 * 1024,
                               rollover_interval: int = 60 * 1000,
                               inactivity_interval: Optional[int] = None) -> "RollingPolicy":
        """Roll at ``part_size`` bytes or after ``rollover_interval`` ms."""
        if not isinstance(part_size, int) or part_size < 1:
            raise ValueError(f"part_size must be a positive integer, got {part_size!r}")
        return RollingPolicy(part_size, to_millis(rollover_interval, "rollover_interval"))

    @staticmethod
    def on_checkpoint_rolling_policy() -> "RollingPolicy":
        """Roll only at checkpoints (and at the end)."""
        return RollingPolicy(2 ** 62, 2 ** 62)


class OutputFileConfig:
    """How a ``FileSink`` names its part files, as Flink does:
    ``<part_prefix>-<uuid>-<n><part_suffix>``, the uuid one per subtask and run
    (``part`` and no suffix by default)."""

    def __init__(self, part_prefix: str, part_suffix: str):
        for what, value in (("part_prefix", part_prefix), ("part_suffix", part_suffix)):
            if not isinstance(value, str):
                raise TypeError(f"{what} must be a string, got {value!r}")
            if "/" in value or "\\" in value or "\0" in value:
                raise ValueError(f"{what} {value!r} must not contain a path separator")
        if not part_prefix:
            raise ValueError("part_prefix must not be empty")
        if part_prefix.startswith("."):
            raise ValueError(f"part_prefix {part_prefix!r} must not start with '.': "
                             "readers skip hidden files")
        self.part_prefix = part_prefix
        self.part_suffix = part_suffix

    def get_part_prefix(self) -> str:
        return self.part_prefix

    def get_part_suffix(self) -> str:
        return self.part_suffix

    @staticmethod
    def builder() -> "OutputFileConfig.OutputFileConfigBuilder":
        return OutputFileConfig.OutputFileConfigBuilder()

    class OutputFileConfigBuilder:
        def __init__(self):
            self._prefix = "part"
            self._suffix = ""

        def with_part_prefix(self, prefix: str) -> "OutputFileConfig.OutputFileConfigBuilder":
            self._prefix = prefix
            return self

        def with_part_suffix(self, suffix: str) -> "OutputFileConfig.OutputFileConfigBuilder":
            self._suffix = suffix
            return self

        def build(self) -> "OutputFileConfig":
            return OutputFileConfig(self._prefix, self._suffix)


class BucketAssigner:
    """Which directory (bucket) under a ``FileSink``'s base path a part goes to: by
    default one per hour of processing time (``2026-12-07--13``), as in Flink."""

    def __init__(self, spec: List[Optional[str]]):
        self._spec = spec

    @staticmethod
    def base_path_bucket_assigner() -> "BucketAssigner":
        """Every part in the base path itself."""
        return BucketAssigner(["base_path"])

    @staticmethod
    def date_time_bucket_assigner(format_str: str = "yyyy-MM-dd--HH",
                                  timezone_id: Optional[str] = None) -> "BucketAssigner":
        """A directory per period of processing time, named by ``format_str`` (a pattern
        of Java's ``DateTimeFormatter``: letters ``y M d H h m s S a E D``, text in single
        quotes) in ``timezone_id`` (an IANA name such as ``America/Los_Angeles``, ``UTC``,
        or an offset such as ``GMT-08:00``; the system's when None). A bad pattern or
        time zone fails the job when it starts, naming it."""
        if not isinstance(format_str, str) or not format_str:
            raise ValueError(f"format_str must be a non-empty string, got {format_str!r}")
        if timezone_id is not None and not isinstance(timezone_id, str):
            raise TypeError(f"timezone_id must be a string, got {timezone_id!r}")
        return BucketAssigner(["date_time", format_str, timezone_id])


_COMMITTED_AFTER_RESTORE = ("refuse", "quarantine", "keep_duplicates")


class FileSink(Sink):
    """A sink of part files in a directory, exactly once with checkpoints. Parts are
    named as Flink names them (``part-<uuid>-<n>``) and go into a directory per hour
    (``BucketAssigner``) unless told otherwise.

    A restore from a checkpoint older than the newest (a damaged one skipped) replays
    records whose parts may already be committed. ``committed_after_restore`` says what
    happens then: ``"refuse"`` to start (the default, naming the parts),
    ``"quarantine"`` (move them into ``<base_path>/.quarantine/`` and write them
    again), or ``"keep_duplicates"``."""

    def __init__(self, base_path: str, rolling_policy: RollingPolicy,
                 output_file_config: Optional[OutputFileConfig] = None,
                 bucket_assigner: Optional[BucketAssigner] = None,
                 committed_after_restore: str = "refuse"):
        if committed_after_restore not in _COMMITTED_AFTER_RESTORE:
            raise ValueError(
                f"committed_after_restore must be one of {', '.join(_COMMITTED_AFTER_RESTORE)}"
                f", got {committed_after_restore!r}")
        self.base_path = base_path
        self.rolling_policy = rolling_policy
        self.output_file_config = output_file_config or OutputFileConfig("part", "")
        self.bucket_assigner = bucket_assigner or BucketAssigner.date_time_bucket_assigner()
        self.committed_after_restore = committed_after_restore

    @staticmethod
    def for_row_format(base_path: str, encoder: Encoder) -> "FileSink.RowFormatBuilder":
        if not isinstance(encoder, Encoder):
            raise TypeError("for_row_format takes an Encoder (Encoder.simple_string_encoder())")
        return FileSink.RowFormatBuilder(str(base_path))

    class RowFormatBuilder:
        def __init__(self, base_path: str):
            self._base_path = base_path
            self._policy = RollingPolicy.default_rolling_policy()
            self._names = OutputFileConfig("part", "")
            self._buckets = BucketAssigner.date_time_bucket_assigner()
            self._committed_after_restore = "refuse"

        def with_committed_after_restore(self, choice: str) -> "FileSink.RowFormatBuilder":
            """What a restore from an older checkpoint does with parts already
            committed after it: ``"refuse"`` (the default), ``"quarantine"`` or
            ``"keep_duplicates"`` (a Superflow setting; see ``FileSink``)."""
            if choice not in _COMMITTED_AFTER_RESTORE:
                raise ValueError("with_committed_after_restore takes one of "
                                 f"{', '.join(_COMMITTED_AFTER_RESTORE)}, got {choice!r}")
            self._committed_after_restore = choice
            return self

        def with_bucket_assigner(self, bucket_assigner: BucketAssigner
                                 ) -> "FileSink.RowFormatBuilder":
            """Sets the directories parts go into."""
            if not isinstance(bucket_assigner, BucketAssigner):
                raise TypeError("with_bucket_assigner takes a BucketAssigner, got "
                                f"{type(bucket_assigner).__name__}")
            self._buckets = bucket_assigner
            return self

        def with_bucket_check_interval(self, interval: int) -> "FileSink.RowFormatBuilder":
            """Accepted for PyFlink's jobs: the sink looks at the time of every batch it
            writes, so a new bucket starts with the first batch after the hour turns."""
            to_millis(interval, "with_bucket_check_interval")
            return self

        def with_rolling_policy(self, policy: RollingPolicy) -> "FileSink.RowFormatBuilder":
            if not isinstance(policy, RollingPolicy):
                raise TypeError("with_rolling_policy takes a RollingPolicy")
            self._policy = policy
            return self

        def with_output_file_config(self, config: OutputFileConfig
                                    ) -> "FileSink.RowFormatBuilder":
            """Names the part files (prefix and suffix)."""
            if not isinstance(config, OutputFileConfig):
                raise TypeError("with_output_file_config takes an OutputFileConfig, got "
                                f"{type(config).__name__}")
            self._names = config
            return self

        def build(self) -> "FileSink":
            return FileSink(self._base_path, self._policy, self._names, self._buckets,
                            self._committed_after_restore)


FileSourceBuilder = FileSource.FileSourceBuilder

FileCompactor = unsupported("FileCompactor", "datastream.connectors.file_system",
                            "compaction of the file sink's small files")
FileCompactStrategy = unsupported("FileCompactStrategy", "datastream.connectors.file_system",
                                  "compaction of the file sink's small files")
StreamingFileSink = unsupported("StreamingFileSink", "datastream.connectors.file_system",
                                "the legacy StreamingFileSink (use FileSink)")
BulkFormat = unsupported("BulkFormat", "datastream.connectors.file_system",
                         "bulk file formats (Parquet, ORC, Avro)")
FileEnumeratorProvider = unsupported("FileEnumeratorProvider",
                                     "datastream.connectors.file_system",
                                     "custom file enumerators")
FileSplitAssignerProvider = unsupported("FileSplitAssignerProvider",
                                        "datastream.connectors.file_system",
                                        "custom file split assigners")

__all__ = ["FileCompactor", "FileCompactStrategy", "OutputFileConfig", "FileSource",
           "FileSourceBuilder", "FileSink", "StreamingFileSink", "StreamFormat", "BulkFormat",
           "FileEnumeratorProvider", "FileSplitAssignerProvider", "RollingPolicy",
           "BucketAssigner"]
