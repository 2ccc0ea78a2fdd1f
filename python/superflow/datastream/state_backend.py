"""State backends (``pyflink.datastream.state_backend``): where keyed state lives."""

from typing import Any, Optional

from superflow._unsupported import unsupported


class StateBackend:
    _spec: tuple = ("hashmap",)


class HashMapStateBackend(StateBackend):
    """Keyed state in memory (the default)."""

    def __init__(self) -> None:
        self._spec = ("hashmap",)


class EmbeddedLsmStateBackend(StateBackend):
    """Keyed state larger than memory: ``cache_entries`` per state and subtask in
    memory, the rest in an embedded LSM store (fjall) in ``directory``; checkpoints of it
    are incremental.

    ``timers`` is where timers live (Flink's ``state.backend.rocksdb.timer-service.factory``):
    ``"memory"`` (the default; faster, but their memory grows with their number) or
    ``"store"`` (the earliest in memory, the rest in the store: bounded memory).

    ``block_cache_bytes`` is the store's cache of blocks read from disk, per process
    (Flink's ``state.backend.rocksdb.block.cache-size``): 32 MiB by default."""

    def __init__(
        self,
        directory: Optional[str] = None,
        cache_entries: int = 100_000,
        timers: str = "memory",
        block_cache_bytes: int = 32 * 1024 * 1024,
    ):
        if not isinstance(cache_entries, int) or cache_entries < 1:
            raise ValueError(f"cache_entries must be a positive integer, got {cache_entries!r}")
        if timers not in ("store", "memory"):
            raise ValueError(f"timers must be 'store' or 'memory', got {timers!r}")
        if not isinstance(block_cache_bytes, int) or isinstance(block_cache_bytes, bool) \
                or block_cache_bytes < 0:
            raise ValueError("block_cache_bytes must be a non-negative integer, "
                             f"got {block_cache_bytes!r}")
        self._spec = ("embedded_lsm", directory, cache_entries, timers, block_cache_bytes)


class EmbeddedRocksDBStateBackend(EmbeddedLsmStateBackend):
    """Flink's on-disk keyed state backend. Superflow has no RocksDB: this is its
    embedded LSM store (fjall) in RocksDB's place, with the same role: keyed state larger
    than memory, incremental checkpoints (always on, whatever
    ``enable_incremental_checkpointing`` says)."""

    def __init__(self, enable_incremental_checkpointing: Optional[bool] = None,
                 **kwargs: Any):
        super().__init__(**kwargs)

    def set_db_storage_paths(self, *paths: str) -> None:
        """The directory of the store (one: a second path is refused)."""
        if len(paths) != 1:
            raise ValueError(f"the embedded store keeps one directory, got {len(paths)}")
        self._spec = (self._spec[0], str(paths[0])) + self._spec[2:]


CustomStateBackend = unsupported("CustomStateBackend", "datastream",
                                 "state backends written in Java")
PredefinedOptions = unsupported("PredefinedOptions", "datastream",
                                "RocksDB option profiles (the embedded store is fjall)")
