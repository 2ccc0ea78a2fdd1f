"""``StreamExecutionEnvironment`` (``pyflink.datastream``): where a job is built and
run. A job's parallelism is its number of worker processes: one Python interpreter
each, since one interpreter runs one Python thread at a time."""

import itertools
import os
import threading
from concurrent.futures import Future
from typing import Any, Dict, Iterable, List, Optional, Tuple

from superflow.common.configuration import Configuration
from superflow.common.execution_config import ExecutionConfig
from superflow.common.job_client import JobClient, JobID
from superflow.common.typeinfo import TypeInformation, _needs_conversion, as_declared
from superflow.common.types import Row
from superflow.common.restart_strategy import RestartStrategyConfiguration
from superflow.datastream.checkpoint_config import CheckpointConfig
from superflow.datastream.data_stream import DataStream, checked_max_parallelism
from superflow.datastream.execution_mode import RuntimeExecutionMode
from superflow.datastream.state_backend import StateBackend


# Creation order of nodes, over every environment: a job lists its nodes in this order,
# which is a topological order, since a node is made after its inputs.
_NODE_SEQUENCE = itertools.count()


def _config_millis(value: str, key: str) -> int:
    """Milliseconds of a Flink duration setting: ``200``, ``200 ms``, ``2 s``, ``1 min``."""
    text = value.strip().lower().replace(" ", "")
    for suffix, factor in (("ms", 1), ("min", 60_000), ("s", 1000), ("", 1)):
        if text.endswith(suffix):
            number = text[:len(text) - len(suffix)] if suffix else text
            if number.isdigit():
                return int(number) * factor
    raise ValueError(f"{key} is a duration such as '200 ms' or '2 s', got {value!r}")


class JobExecutionResult:
    """What a finished job reports."""

    def __init__(self, job_name: str, raw: Dict[str, Any]):
        self._job_name = job_name
        self._net_runtime_ms = raw.get("net_runtime_ms", 0.0)
        self._collected: Dict[int, List[Any]] = raw.get("collected", {})
        self._operators: List[Dict[str, Any]] = raw.get("operators", [])
        self._bench = raw.get("bench", (0, 0, 0))
        self._checkpoints: List[Dict[str, Any]] = raw.get("checkpoints", [])
        self._restarts = raw.get("restarts", 0)
        self._restart_causes: List[str] = raw.get("restart_causes", [])
        self._restored_from: Optional[str] = raw.get("restored_from")

    def get_job_name(self) -> str:
        return self._job_name

    def get_net_runtime(self) -> int:
        """Milliseconds from the start of the workers to the end of the last one."""
        return int(self._net_runtime_ms)

    def get_operator_metrics(self) -> List[Dict[str, Any]]:
        """Records in and out per operator (of the driver's process)."""
        return list(self._operators)

    def get_completed_checkpoints(self) -> int:
        """How many checkpoints completed."""
        return sum(1 for c in self._checkpoints if c["status"] == "COMPLETED")

    def get_checkpoint_stats(self) -> List[Dict[str, Any]]:
        """Every checkpoint of the job (earlier runs' too, after a restart): ``id``,
        ``savepoint``, ``status`` (``COMPLETED`` or ``FAILED``, then with a ``failure``),
        ``trigger_timestamp_ms``, ``duration_ms``, ``size_bytes``, ``path``, and per
        operator (``operators``): ``operator``, ``parts``, ``size_bytes``,
        ``sync_duration_ms``, ``async_duration_ms`` and ``alignment_duration_ms``."""
        return [dict(c, operators=[dict(o) for o in c["operators"]]) for c in self._checkpoints]

    def get_restarts(self) -> int:
        """How many times the job restarted after a failure."""
        return self._restarts

    def get_restart_causes(self) -> List[str]:
        return list(self._restart_causes)

    def get_restored_from(self) -> Optional[str]:
        """The checkpoint the job started from, if it was restored."""
        return self._restored_from

    def __repr__(self) -> str:
        return f"JobExecutionResult({self._job_name!r}, {self.get_net_runtime()} ms)"


def _as_row(element: Any, index: int, type_info: TypeInformation) -> Row:
    """Element `index` of a collection as a Row of `type_info`'s fields."""
    names = type_info.field_names
    arity = len(type_info.fields)
    if isinstance(element, dict):
        if names is None:
            raise ValueError(f"element {index} of the collection is a dict, but "
                             f"{type_info!r} has no field names (use Types.ROW_NAMED)")
        missing = [n for n in names if n not in element]
        if missing:
            raise ValueError(f"element {index} of the collection lacks fields {missing} "
                             f"of {names}: {element!r}")
        values = [element[n] for n in names]
    elif isinstance(element, (tuple, list, Row)):
        values = list(element)
    else:
        raise TypeError(f"element {index} of the collection is a "
                        f"{type(element).__name__}, not a row of {arity} fields: {element!r}")
    if len(values) != arity:
        raise ValueError(f"element {index} of the collection has {len(values)} fields, "
                         f"{type_info!r} has {arity}: {element!r}")
    row = Row(*values)
    if names is not None:
        row.set_field_names(names)
    elif isinstance(element, Row) and element.get_field_names() is not None:
        row.set_field_names(element.get_field_names() or [])
    if isinstance(element, Row):
        row.set_row_kind(element.get_row_kind())
    return row


class StreamExecutionEnvironment:
    """The context in which a job is built and executed."""

    def __init__(self, configuration: Optional[Configuration] = None):
        self._nodes: List[Dict[str, Any]] = []
        self._parallelism: Optional[int] = None
        self._max_parallelism: Optional[int] = None
        self._checkpoint_config = CheckpointConfig()
        self._restart: Optional[RestartStrategyConfiguration] = None
        self._state_backend: Optional[StateBackend] = None
        self._restore_path: Optional[str] = None
        self._allow_non_restored_state = False
        self._savepoint_dir: Optional[str] = None
        self._auto_watermark_interval_ms = 200
        self._runtime_mode = RuntimeExecutionMode.STREAMING
        self._cached_files: Dict[str, str] = {}
        if configuration is not None:
            if configuration.contains_key("execution.runtime-mode"):
                text = configuration.get_string("execution.runtime-mode", "").strip()
                modes = {m.name: m for m in RuntimeExecutionMode}
                if text.upper() not in modes:
                    raise ValueError("execution.runtime-mode is STREAMING, BATCH or AUTOMATIC, "
                                     f"got {text!r}")
                self._runtime_mode = modes[text.upper()]
            if configuration.contains_key("pipeline.auto-watermark-interval"):
                self._auto_watermark_interval_ms = _config_millis(
                    configuration.get_string("pipeline.auto-watermark-interval", ""),
                    "pipeline.auto-watermark-interval")
            for key in ("execution.checkpointing.savepoint-dir", "state.savepoints.dir"):
                if configuration.contains_key(key):
                    self._savepoint_dir = configuration.get_string(key, "")
            if configuration.contains_key("parallelism.default"):
                self.set_parallelism(configuration.get_integer("parallelism.default", 1))
            for key in ("execution.state-recovery.path", "execution.savepoint.path"):
                if configuration.contains_key(key):
                    self.set_restore_path(configuration.get_string(key, ""))
            for key in ("execution.state-recovery.ignore-unclaimed-state",
                        "execution.savepoint.ignore-unclaimed-state"):
                if configuration.contains_key(key):
                    self._allow_non_restored_state = configuration.get_boolean(key, False)

    @staticmethod
    def get_execution_environment(configuration: Optional[Configuration] = None
                                  ) -> "StreamExecutionEnvironment":
        return StreamExecutionEnvironment(configuration)

    # ----- settings -----

    def set_parallelism(self, parallelism: int) -> "StreamExecutionEnvironment":
        """The default parallelism: the number of worker processes."""
        if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
            raise ValueError(f"parallelism must be a positive integer, got {parallelism!r}")
        self._parallelism = parallelism
        return self

    def get_parallelism(self) -> int:
        """As set, or the number of cores, as in Flink."""
        return self._parallelism or os.cpu_count() or 1

    def set_max_parallelism(self, max_parallelism: int) -> "StreamExecutionEnvironment":
        """The number of key groups (default 128): the most a job can be rescaled to."""
        self._max_parallelism = checked_max_parallelism(max_parallelism)
        return self

    def get_max_parallelism(self) -> int:
        return self._max_parallelism or 128

    def set_runtime_mode(self, execution_mode: RuntimeExecutionMode
                         ) -> "StreamExecutionEnvironment":
        """Streaming (the default) or batch semantics (``RuntimeExecutionMode``): in
        ``BATCH`` a bounded job emits final results only, as in Flink."""
        if not isinstance(execution_mode, RuntimeExecutionMode):
            raise TypeError("set_runtime_mode takes RuntimeExecutionMode.STREAMING, BATCH or "
                            f"AUTOMATIC, got {execution_mode!r}")
        self._runtime_mode = execution_mode
        return self

    def get_config(self) -> ExecutionConfig:
        """The job settings PyFlink keeps in ``ExecutionConfig``: the watermark
        interval, parallelism and max parallelism."""
        return ExecutionConfig(self)

    def set_buffer_timeout(self, timeout_millis: int) -> "StreamExecutionEnvironment":
        """Accepted for PyFlink's jobs. Records travel in batches that leave an operator
        at the end of each of its activations, never waiting for more records, so there
        is no buffer to time out."""
        if not isinstance(timeout_millis, int) or timeout_millis < -1:
            raise ValueError(f"buffer timeout must be -1 or more ms, got {timeout_millis!r}")
        return self

    # ----- dependencies (PyFlink's; Superflow runs no JVM) -----

    def add_jars(self, *jars_path: str) -> "StreamExecutionEnvironment":
        """Accepted for PyFlink's jobs, and nothing is loaded: Superflow runs no JVM, and
        its connectors are built in (a job that needs a Java connector gets an error
        naming the missing capability when it uses it)."""
        for jar in jars_path:
            if not isinstance(jar, str):
                raise TypeError(f"add_jars takes paths, got {jar!r}")
        return self

    def add_classpaths(self, *classpaths: str) -> "StreamExecutionEnvironment":
        """Accepted for PyFlink's jobs, and nothing is loaded (no JVM): see ``add_jars``."""
        return self.add_jars(*classpaths)

    def add_python_file(self, file_path: str) -> "StreamExecutionEnvironment":
        """Makes a Python file, package directory or zip archive importable by the job's
        functions, here and in its worker processes (PyFlink's PYTHONPATH of the
        workers): a ``.py`` file's directory, or the directory or archive itself, goes
        onto ``sys.path``."""
        import sys
        path = os.path.abspath(str(file_path))
        if not os.path.exists(path):
            raise FileNotFoundError(f"add_python_file: {file_path!r} does not exist")
        entry = os.path.dirname(path) if path.endswith(".py") else path
        if entry not in sys.path:
            sys.path.append(entry)
        return self

    def set_python_requirements(self, requirements_file_path: str,
                                requirements_cache_dir: Optional[str] = None
                                ) -> "StreamExecutionEnvironment":
        """Accepted for PyFlink's jobs, and nothing is installed: the job's functions run
        in this interpreter and in worker processes started with it, so the packages of
        ``requirements_file_path`` must be installed here (``pip install -r``)."""
        if not os.path.isfile(str(requirements_file_path)):
            raise FileNotFoundError(
                f"set_python_requirements: {requirements_file_path!r} does not exist")
        return self

    def register_cached_file(self, file_path: str, name: str, executable: bool = False
                             ) -> "StreamExecutionEnvironment":
        """Accepted for PyFlink's jobs: every process of a Superflow job runs on this
        machine, so functions read ``file_path`` where it is; the file must exist."""
        path = str(file_path)
        if path.startswith("file://"):
            path = path[len("file://"):]
        if not os.path.exists(path):
            raise FileNotFoundError(f"register_cached_file: {file_path!r} does not exist")
        self._cached_files[str(name)] = path
        return self

    def add_source(self, source_func: Any, source_name: str = "Custom Source",
                   type_info: Optional[TypeInformation] = None) -> DataStream:
        """PyFlink's ``add_source`` takes a Java ``SourceFunction``, which Superflow
        cannot run: a Python source is a generator or list given to
        ``from_collection``, or a ``Source`` given to ``from_source``."""
        raise NotImplementedError(
            "add_source: Superflow runs no Java SourceFunction; give a generator or a list "
            "to from_collection(), or a Source (FileSource, NumberSequenceSource) to "
            "from_source()")

    # ----- fault tolerance -----

    def enable_checkpointing(self, interval: int, mode: Optional[str] = None
                             ) -> "StreamExecutionEnvironment":
        """Takes a checkpoint every ``interval`` ms; a failed job restarts from the last
        one (on every process of the job)."""
        self._checkpoint_config.set_checkpoint_interval(interval)
        if mode is not None:
            self._checkpoint_config.set_checkpointing_mode(mode)
        return self

    def get_checkpoint_config(self) -> CheckpointConfig:
        return self._checkpoint_config

    def set_restart_strategy(self, restart_strategy_configuration: RestartStrategyConfiguration
                             ) -> "StreamExecutionEnvironment":
        if not isinstance(restart_strategy_configuration, RestartStrategyConfiguration):
            raise TypeError("set_restart_strategy takes RestartStrategies.<...>(...)")
        self._restart = restart_strategy_configuration
        return self

    def set_state_backend(self, state_backend: StateBackend) -> "StreamExecutionEnvironment":
        if not isinstance(state_backend, StateBackend):
            raise TypeError("set_state_backend takes HashMapStateBackend() or "
                            "EmbeddedLsmStateBackend()")
        self._state_backend = state_backend
        return self

    def set_restore_path(self, path: str, allow_non_restored_state: bool = False
                         ) -> "StreamExecutionEnvironment":
        """Starts the next job from a checkpoint, a savepoint, or the newest sound
        checkpoint of a checkpoint directory."""
        self._restore_path = str(path)
        self._allow_non_restored_state = allow_non_restored_state
        return self

    # ----- sources -----

    def _add_node(self, op: str, inputs: List[Dict[str, Any]], **fields: Any
                  ) -> Dict[str, Any]:
        """A new node reading ``inputs`` (nodes). A node keeps its inputs themselves, not
        positions in a list: a stream built before an ``execute`` stays usable in the
        next job, which then runs the stream's operators again from their sources, as
        in Flink."""
        node = {"op": op, "_inputs": list(inputs), "_seq": next(_NODE_SEQUENCE)}
        node.update({k: v for k, v in fields.items() if v is not None})
        self._nodes.append(node)
        return node

    def _job_nodes(self) -> List[Dict[str, Any]]:
        """The nodes of the job built since the last ``execute`` with every node they
        read from (also nodes of earlier jobs), in creation order, each a copy with its
        position in the job as ``id`` and its inputs' positions as ``inputs``. The
        originals get their position in this job as ``id`` too."""
        reached: Dict[int, Dict[str, Any]] = {}
        pending = list(self._nodes)
        while pending:
            node = pending.pop()
            if node["_seq"] not in reached:
                reached[node["_seq"]] = node
                pending.extend(node["_inputs"])
        ordered = [reached[seq] for seq in sorted(reached)]
        for position, node in enumerate(ordered):
            node["id"] = position
        return [dict({k: v for k, v in node.items() if not k.startswith("_")},
                     inputs=[i["id"] for i in node["_inputs"]])
                for node in ordered]

    def from_source(self, source: Any, watermark_strategy: Any, source_name: str,
                    type_info: Optional[TypeInformation] = None) -> DataStream:
        """The records of a connector's ``Source`` (``NumberSequenceSource``,
        ``FileSource``), with timestamps and watermarks by ``watermark_strategy``
        (``WatermarkStrategy.no_watermarks()`` for none). These sources give their records
        no timestamp of their own, so a strategy without a timestamp assigner leaves them
        without one, as in Flink (an event-time window over them then fails, saying so)."""
        from superflow.common.watermark_strategy import WatermarkStrategy
        from superflow.datastream.connectors.base import Source
        if not isinstance(source, Source):
            raise TypeError("from_source takes a Source (NumberSequenceSource, FileSource), "
                            f"got {type(source).__name__}")
        if not isinstance(watermark_strategy, WatermarkStrategy):
            raise TypeError("from_source takes a WatermarkStrategy, got "
                            f"{type(watermark_strategy).__name__}")
        stream = source._stream(self, source_name)
        stream._output_type = type_info
        if watermark_strategy._kind == "none" or watermark_strategy._assigner is None:
            return stream
        return stream.assign_timestamps_and_watermarks(watermark_strategy)

    def from_collection(self, collection: Iterable[Any],
                        type_info: Optional[TypeInformation] = None) -> DataStream:
        """A bounded stream of the collection's elements. With ``Types.ROW(...)`` or
        ``Types.ROW_NAMED(...)`` as ``type_info``, each element (a tuple, a list, a dict
        by field name, or a Row) becomes a ``Row`` of those fields, as in PyFlink."""
        if isinstance(collection, (str, bytes)) or not hasattr(collection, "__iter__"):
            raise TypeError("from_collection() takes a list or another iterable of records, "
                            f"got {type(collection).__name__}")
        elements = list(collection)
        if type_info is not None and type_info.name in ("ROW", "ROW_NAMED"):
            elements = [_as_row(e, i, type_info) for i, e in enumerate(elements)]
        elif type_info is not None and _needs_conversion(type_info):
            # As PyFlink's elements come back from Java: a FLOAT is a 32-bit float.
            elements = [as_declared(type_info, e) for e in elements]
        node = self._add_node("from_collection", [], elements=elements,
                              name="Collection Source")
        return DataStream(self, node, type_info)

    def from_elements(self, *elements: Any) -> DataStream:
        """A bounded stream of the given elements; one list argument is taken as the
        elements themselves."""
        if len(elements) == 1 and isinstance(elements[0], list):
            return self.from_collection(elements[0])
        return self.from_collection(list(elements))

    def from_sequence(self, start: int, end: int) -> DataStream:
        """The integers ``start..=end``."""
        if end < start:
            raise ValueError(f"from_sequence: end {end} is before start {start}")
        node = self._add_node("from_sequence", [], start=int(start), end=int(end),
                              name="Sequence Source")
        return DataStream(self, node)

    def read_text_file(self, file_path: str, charset_name: str = "UTF-8") -> DataStream:
        """The lines of a text file (or of the files of a directory), in ``charset_name``
        (``UTF-8``, ``ISO-8859-1``, ``windows-1252``, ...). Bytes not valid in it are read
        as U+FFFD, as Java reads them, with a warning naming the file."""
        from superflow.common.serialization import _line_charset
        charset = _line_charset(charset_name, "read_text_file")
        return self._text_file(file_path, f"Text Source: {file_path}", None, charset)

    def _text_file(self, file_path: str, name: str, discovery_interval_ms: Optional[int],
                   charset: str = "UTF-8") -> DataStream:
        """The lines of a file or directory in ``charset``, monitored every
        ``discovery_interval_ms`` when it is given."""
        node = self._add_node("read_text_file", [], text=str(file_path), name=name,
                              start=discovery_interval_ms, charset=charset)
        return DataStream(self, node)

    # ----- running -----

    def _processes(self) -> int:
        explicit = [n["parallelism"] for n in self._nodes if n.get("parallelism")]
        return max([self.get_parallelism()] + explicit)

    def _take_job(self, job_name: Optional[str]) -> Tuple[str, List[Dict[str, Any]],
                                                          Dict[str, Any], int]:
        """The job built so far, with its settings and its number of processes; the
        environment is cleared for the next job."""
        sinks = ("print", "collect", "sink", "file_sink", "_bench_sink")
        if not any(n["op"] in sinks for n in self._nodes):
            raise RuntimeError("no sinks defined in the job: add print(), add_sink() or "
                               "execute_and_collect() before execute()")
        nodes = self._job_nodes()
        self._nodes = []
        name = job_name or "Superflow Streaming Job"
        settings = {"parallelism": self.get_parallelism(),
                    "max_parallelism": self._max_parallelism,
                    "auto_watermark_interval_ms": self._auto_watermark_interval_ms,
                    "runtime_mode": self._runtime_mode.name.lower(),
                    "checkpoint": self._checkpoint_config._dict(),
                    "restart": self._restart._spec if self._restart else None,
                    "state_backend": self._state_backend._spec if self._state_backend else None,
                    "restore_path": self._restore_path,
                    "allow_non_restored_state": self._allow_non_restored_state}
        processes = max([settings["parallelism"]] +
                        [n["parallelism"] for n in nodes if n.get("parallelism")])
        return name, nodes, settings, processes

    def execute(self, job_name: Optional[str] = None) -> JobExecutionResult:
        """Runs the job to its end; the environment is cleared for the next job."""
        from superflow import _cluster

        name, nodes, settings, processes = self._take_job(job_name)
        raw = _cluster.run(name, nodes, settings, processes)
        return JobExecutionResult(name, raw)

    def execute_async(self, job_name: Optional[str] = None) -> JobClient:
        """Starts the job on a thread of this process and returns at once: the
        ``JobClient`` cancels it, takes savepoints and hands over its result. The
        interpreter waits for a job still running when the script ends, as a Flink
        cluster keeps running a job its client left."""
        from superflow import _cluster, _superflow

        name, nodes, settings, processes = self._take_job(job_name)
        handle = _superflow.JobHandle()
        outcome: Future = Future()

        def run() -> None:
            try:
                outcome.set_result(JobExecutionResult(
                    name, _cluster.run(name, nodes, settings, processes, handle)))
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits
                outcome.set_exception(e)

        threading.Thread(target=run, name=f"superflow-job-{name}").start()
        return JobClient(JobID(), handle, outcome, self._savepoint_dir)

    def get_execution_plan(self) -> str:
        """The plan as text: one line per operator."""
        lines = []
        for n in self._job_nodes():
            inputs = ", ".join(str(i) for i in n["inputs"])
            label = n.get("name") or n["op"]
            lines.append(f"{n['id']}: {label} <- [{inputs}]")
        return "\n".join(lines)
