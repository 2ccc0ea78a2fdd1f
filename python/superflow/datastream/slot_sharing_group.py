"""``SlotSharingGroup`` and ``MemorySize`` (``pyflink.datastream``). Every operator of a
Superflow process shares its worker thread, so there are no slots: the groups and their
resources are kept (``get_...``) but do not change where operators run."""

from typing import Dict, Optional


class MemorySize:
    """An amount of memory in bytes."""

    def __init__(self, bytes_size: int):
        if not isinstance(bytes_size, int) or isinstance(bytes_size, bool) or bytes_size < 0:
            raise ValueError(f"a memory size is a non-negative number of bytes, got {bytes_size!r}")
        self._bytes = bytes_size

    @staticmethod
    def of_mebi_bytes(mebi_bytes: int) -> "MemorySize":
        return MemorySize(mebi_bytes << 20)

    def get_bytes(self) -> int:
        return self._bytes

    def get_kibi_bytes(self) -> int:
        return self._bytes >> 10

    def get_mebi_bytes(self) -> int:
        return self._bytes >> 20

    def get_gibi_bytes(self) -> int:
        return self._bytes >> 30

    def get_tebi_bytes(self) -> int:
        return self._bytes >> 40

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemorySize) and self._bytes == other._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __lt__(self, other: "MemorySize") -> bool:
        return self._bytes < other._bytes

    def __le__(self, other: "MemorySize") -> bool:
        return self._bytes <= other._bytes

    def __str__(self) -> str:
        return f"{self._bytes} bytes"


class SlotSharingGroup:
    """A named group of operators and the resources it asks for."""

    def __init__(self, name: str, cpu_cores: Optional[float] = None,
                 task_heap_memory: Optional[MemorySize] = None,
                 task_off_heap_memory: Optional[MemorySize] = None,
                 managed_memory: Optional[MemorySize] = None,
                 external_resources: Optional[Dict[str, float]] = None):
        if not isinstance(name, str) or not name:
            raise ValueError(f"a slot sharing group needs a name, got {name!r}")
        self._name = name
        self._cpu_cores = cpu_cores
        self._task_heap_memory = task_heap_memory
        self._task_off_heap_memory = task_off_heap_memory
        self._managed_memory = managed_memory
        self._external_resources = dict(external_resources or {})

    def get_name(self) -> str:
        return self._name

    def get_cpu_cores(self) -> Optional[float]:
        return self._cpu_cores

    def get_task_heap_memory(self) -> Optional[MemorySize]:
        return self._task_heap_memory

    def get_task_off_heap_memory(self) -> Optional[MemorySize]:
        return self._task_off_heap_memory

    def get_managed_memory(self) -> Optional[MemorySize]:
        return self._managed_memory

    def get_external_resources(self) -> Dict[str, float]:
        return dict(self._external_resources)

    @staticmethod
    def builder(name: str) -> "SlotSharingGroup.Builder":
        return SlotSharingGroup.Builder(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SlotSharingGroup) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(self._name)

    class Builder:
        def __init__(self, name: str):
            self._name = name
            self._settings: Dict[str, object] = {}
            self._external: Dict[str, float] = {}

        def set_cpu_cores(self, cpu_cores: float) -> "SlotSharingGroup.Builder":
            if cpu_cores <= 0:
                raise ValueError(f"cpu cores must be positive, got {cpu_cores!r}")
            self._settings["cpu_cores"] = float(cpu_cores)
            return self

        def set_task_heap_memory(self, memory: MemorySize) -> "SlotSharingGroup.Builder":
            self._settings["task_heap_memory"] = memory
            return self

        def set_task_heap_memory_mb(self, mb: int) -> "SlotSharingGroup.Builder":
            return self.set_task_heap_memory(MemorySize.of_mebi_bytes(mb))

        def set_task_off_heap_memory(self, memory: MemorySize) -> "SlotSharingGroup.Builder":
            self._settings["task_off_heap_memory"] = memory
            return self

        def set_task_off_heap_memory_mb(self, mb: int) -> "SlotSharingGroup.Builder":
            return self.set_task_off_heap_memory(MemorySize.of_mebi_bytes(mb))

        def set_managed_memory(self, memory: MemorySize) -> "SlotSharingGroup.Builder":
            self._settings["managed_memory"] = memory
            return self

        def set_managed_memory_mb(self, mb: int) -> "SlotSharingGroup.Builder":
            return self.set_managed_memory(MemorySize.of_mebi_bytes(mb))

        def set_external_resource(self, name: str, value: float) -> "SlotSharingGroup.Builder":
            self._external[name] = float(value)
            return self

        def build(self) -> "SlotSharingGroup":
            return SlotSharingGroup(self._name, external_resources=self._external,
                                    **self._settings)  # type: ignore[arg-type]
