"""Files (``pyflink.datastream.connectors.file_system``): ``FileSource`` reads the lines
of files (split by byte ranges across its subtasks, its positions checkpointed), and the
exactly-once ``FileSink`` writes records as lines into part files that become visible
(renamed from a hidden ``.part-...inprogress`` name) only when the checkpoint covering
them completes, or when the job finishes."""

from typing import Any, List, Optional

from superflow.common.serialization import Encoder
from superflow.common.time import to_millis
from superflow.datastream.connectors.base import Source


class StreamFormat:
    """How a ``FileSource`` reads records from a file."""

    def __init__(self, charset: str):
        if charset.replace("-", "").lower() not in ("utf8", "ascii", "usascii"):
            raise ValueError(f"the text line format reads UTF-8, not {charset}")
        self._charset = charset

    @staticmethod
    def text_line_format(charset_name: str = "UTF-8") -> "StreamFormat":
        """One record per line, without its line break."""
        return StreamFormat(charset_name)


class FileSource(Source):
    """The lines of files, or of every visible file of directories (bounded: the files
    there when the job starts)."""

    def __init__(self, paths: List[str]):
        self._paths = paths

    @staticmethod
    def for_record_stream_format(stream_format: StreamFormat, *paths: Any
                                 ) -> "FileSource.FileSourceBuilder":
        if not isinstance(stream_format, StreamFormat):
            raise TypeError("for_record_stream_format takes StreamFormat.text_line_format()")
        if not paths:
            raise ValueError("a FileSource needs at least one path")
        return FileSource.FileSourceBuilder([str(p) for p in paths])

    class FileSourceBuilder:
        def __init__(self, paths: List[str]):
            self._paths = paths

        def process_static_file_set(self) -> "FileSource.FileSourceBuilder":
            """Reads the files once (the default, and the only mode here)."""
            return self

        def monitor_continuously(self, discovery_interval: Any) -> "FileSource.FileSourceBuilder":
            raise ValueError("FileSource.monitor_continuously: watching for new files is not "
                             "built yet; the source reads the files present when the job "
                             "starts (process_static_file_set)")

        def build(self) -> "FileSource":
            return FileSource(self._paths)

    def _stream(self, env, name):
        streams = [env.read_text_file(path).name(name) for path in self._paths]
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


class FileSink:
    """A sink of part files in a directory, exactly once with checkpoints."""

    def __init__(self, base_path: str, rolling_policy: RollingPolicy):
        self.base_path = base_path
        self.rolling_policy = rolling_policy

    @staticmethod
    def for_row_format(base_path: str, encoder: Encoder) -> "FileSink.RowFormatBuilder":
        if not isinstance(encoder, Encoder):
            raise TypeError("for_row_format takes an Encoder (Encoder.simple_string_encoder())")
        return FileSink.RowFormatBuilder(str(base_path))

    class RowFormatBuilder:
        def __init__(self, base_path: str):
            self._base_path = base_path
            self._policy = RollingPolicy.default_rolling_policy()

        def with_rolling_policy(self, policy: RollingPolicy) -> "FileSink.RowFormatBuilder":
            if not isinstance(policy, RollingPolicy):
                raise TypeError("with_rolling_policy takes a RollingPolicy")
            self._policy = policy
            return self

        def build(self) -> "FileSink":
            return FileSink(self._base_path, self._policy)


__all__ = ["FileSink", "RollingPolicy"]
