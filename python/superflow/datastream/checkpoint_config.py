"""Checkpoint settings (``pyflink.datastream.CheckpointConfig``). Checkpoints are taken
by the engine: keyed state (pickled), window contents, timers, source positions and
the records ``execute_and_collect`` gathered; a failed job restarts from the last one."""

from typing import Any, Dict, Optional


class CheckpointingMode:
    EXACTLY_ONCE = "EXACTLY_ONCE"
    AT_LEAST_ONCE = "AT_LEAST_ONCE"


class ExternalizedCheckpointRetention:
    RETAIN_ON_CANCELLATION = "RETAIN_ON_CANCELLATION"
    DELETE_ON_CANCELLATION = "DELETE_ON_CANCELLATION"


def _non_negative(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


class CheckpointConfig:
    """How and where checkpoints are taken."""

    def __init__(self) -> None:
        self._settings: Dict[str, Any] = {}

    def _enabled(self) -> bool:
        return "interval_ms" in self._settings

    def _dict(self) -> Optional[Dict[str, Any]]:
        return dict(self._settings) if self._enabled() else None

    def set_checkpoint_interval(self, checkpoint_interval: int) -> "CheckpointConfig":
        if _non_negative(checkpoint_interval, "the checkpoint interval") < 1:
            raise ValueError("the checkpoint interval must be at least 1 ms")
        self._settings["interval_ms"] = checkpoint_interval
        return self

    def get_checkpoint_interval(self) -> int:
        return self._settings.get("interval_ms", -1)

    def is_checkpointing_enabled(self) -> bool:
        return self._enabled()

    def set_checkpointing_mode(self, checkpointing_mode: str) -> "CheckpointConfig":
        if checkpointing_mode not in (CheckpointingMode.EXACTLY_ONCE,
                                      CheckpointingMode.AT_LEAST_ONCE):
            raise ValueError(f"unknown checkpointing mode {checkpointing_mode!r}")
        self._settings["mode"] = checkpointing_mode
        return self

    def get_checkpointing_mode(self) -> str:
        return self._settings.get("mode", CheckpointingMode.EXACTLY_ONCE)

    def set_checkpoint_timeout(self, checkpoint_timeout: int) -> "CheckpointConfig":
        self._settings["timeout_ms"] = _non_negative(checkpoint_timeout, "the timeout")
        return self

    def set_min_pause_between_checkpoints(self, min_pause_between_checkpoints: int
                                          ) -> "CheckpointConfig":
        self._settings["min_pause_ms"] = _non_negative(min_pause_between_checkpoints,
                                                       "the minimum pause")
        return self

    def set_max_concurrent_checkpoints(self, max_concurrent_checkpoints: int
                                       ) -> "CheckpointConfig":
        if _non_negative(max_concurrent_checkpoints, "max concurrent checkpoints") < 1:
            raise ValueError("max concurrent checkpoints must be at least 1")
        self._settings["max_concurrent"] = max_concurrent_checkpoints
        return self

    def set_tolerable_checkpoint_failure_number(self, number: int) -> "CheckpointConfig":
        self._settings["tolerable"] = _non_negative(number, "tolerable failures")
        return self

    def set_externalized_checkpoint_retention(self, retention: str) -> "CheckpointConfig":
        if retention not in (ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION,
                             ExternalizedCheckpointRetention.DELETE_ON_CANCELLATION):
            raise ValueError(f"unknown checkpoint retention {retention!r}")
        self._settings["retention"] = retention
        return self

    def set_checkpoint_storage_dir(self, checkpoint_path: str) -> "CheckpointConfig":
        """Where checkpoints are written (default ``superflow-checkpoints``): a directory,
        or an object store URL (``file:///...``, ``memory:///...``; ``s3://``, ``gs://``
        and ``az://`` when the package was built with the ``cloud-storage`` feature).
        Jobs of several processes need a location every process reaches."""
        path = str(checkpoint_path)
        if not path:
            raise ValueError("the checkpoint storage location must not be empty")
        self._settings["storage"] = path
        return self

    def set_checkpoint_storage(self, storage: "CheckpointStorage") -> "CheckpointConfig":
        """Where checkpoints are written: ``FileSystemCheckpointStorage(path)`` or
        ``JobManagerCheckpointStorage()`` (in the memory of the job's process)."""
        if not isinstance(storage, CheckpointStorage):
            raise TypeError("set_checkpoint_storage takes FileSystemCheckpointStorage(path) or "
                            f"JobManagerCheckpointStorage(), got {type(storage).__name__}")
        if storage._location is None:
            self._settings.pop("storage", None)
            return self
        return self.set_checkpoint_storage_dir(storage._location)

    def set_snapshot_compression(self, compression: str) -> "CheckpointConfig":
        """``none``, ``lz4`` or ``zstd``."""
        if compression not in ("none", "lz4", "zstd"):
            raise ValueError(f"unknown snapshot compression {compression!r}")
        self._settings["compression"] = compression
        return self

    def set_num_retained_checkpoints(self, retained: int) -> "CheckpointConfig":
        if _non_negative(retained, "retained checkpoints") < 1:
            raise ValueError("at least one checkpoint must be retained")
        self._settings["retained"] = retained
        return self


class CheckpointStorage:
    """Where checkpoints are kept."""

    _location: Optional[str]


class FileSystemCheckpointStorage(CheckpointStorage):
    """Checkpoints in a directory or an object store (``file://``, ``s3://``, ...)."""

    def __init__(self, checkpoint_path: str):
        if not str(checkpoint_path):
            raise ValueError("the checkpoint storage location must not be empty")
        self._location = str(checkpoint_path)

    def get_checkpoint_path(self) -> str:
        return self._location


class JobManagerCheckpointStorage(CheckpointStorage):
    """Flink's checkpoints in the JobManager's memory. Superflow has no JobManager: its
    checkpoints go to ``checkpoint_path`` if given, or else to the default directory
    (``superflow-checkpoints``), so that a restart after a failure finds them."""

    def __init__(self, checkpoint_path: Optional[str] = None,
                 max_state_size: Optional[int] = None):
        self._location = None if checkpoint_path is None else str(checkpoint_path)
