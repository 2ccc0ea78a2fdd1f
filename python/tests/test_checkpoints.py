"""Checkpoints and recovery of Python jobs: an exception restarts the job from its last
checkpoint, and a process killed with SIGKILL resumes in a new process; either way the
output equals that of a run that never failed."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from superflow.common import JobExecutionError, RestartStrategies, Types
from superflow.datastream import (
    CheckpointingMode,
    EmbeddedLsmStateBackend,
    KeyedProcessFunction,
    StreamExecutionEnvironment,
)
from superflow.datastream.state import (
    ListStateDescriptor,
    MapStateDescriptor,
    ValueStateDescriptor,
)

N = 200_000


class RunningCount(KeyedProcessFunction):
    def open(self, ctx):
        self.count = ctx.get_state(ValueStateDescriptor("count", Types.LONG()))

    def process_element(self, value, ctx):
        c = (self.count.value() or 0) + 1
        self.count.update(c)
        yield ctx.get_current_key(), c


def expected():
    return sorted((k, c) for k in range(7) for c in range(1, len(range(k, N, 7)) + 1))


def job(env, fail_marker=None, fail_at=N // 2):
    def maybe_fail(i):
        if fail_marker is not None and i == fail_at and not os.path.exists(fail_marker):
            open(fail_marker, "w").close()
            raise RuntimeError("injected failure")
        return i

    return (env.from_sequence(0, N - 1).map(maybe_fail).uid("fail")
            .key_by(lambda i: i % 7).process(RunningCount()).uid("count"))


@pytest.mark.parametrize("backend,parallelism", [("memory", 1), ("lsm", 1), ("memory", 2), ("lsm", 2)])
def test_an_exception_restarts_from_the_last_checkpoint(tmp_path, backend, parallelism):
    # At parallelism 2 the job runs on two processes: the one that raised takes the
    # other down with it, and both restart from the checkpoint process 0 picks.
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.enable_checkpointing(5, CheckpointingMode.EXACTLY_ONCE)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    if backend == "lsm":
        env.set_state_backend(EmbeddedLsmStateBackend(str(tmp_path / "lsm"), 1000))
    stream = job(env, str(tmp_path / "failed-once"))
    node = stream._add("collect")
    result = env.execute("recovering")
    assert result.get_restarts() == 1
    assert "injected failure" in result.get_restart_causes()[0]
    assert sorted(result._collected[node["id"]]) == expected()
    stats = result.get_checkpoint_stats()
    completed = [c for c in stats if c["status"] == "COMPLETED"]
    assert len(completed) == result.get_completed_checkpoints() > 0
    assert [c["id"] for c in stats] == sorted(c["id"] for c in stats)
    count = [o for o in completed[-1]["operators"] if o["operator"].startswith("KeyedProcess")]
    assert count and count[0]["parts"] == parallelism and count[0]["size_bytes"] > 0
    assert count[0]["sync_duration_ms"] >= 0 and completed[-1]["duration_ms"] >= 0


def test_without_a_restart_strategy_the_failure_is_raised(tmp_path):
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    env.enable_checkpointing(5)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    env.set_restart_strategy(RestartStrategies.no_restart())
    job(env, str(tmp_path / "failed-once")).print()
    with pytest.raises(JobExecutionError, match="injected failure"):
        env.execute()



class GrowingState(KeyedProcessFunction):
    """Changes its state in place, as Python code does: the list and map states append
    to and put into the engine's own list and dict, and the value is a dict holding a
    list the function appends to before update()."""

    def open(self, ctx):
        self.items = ctx.get_list_state(ListStateDescriptor("items", Types.LONG()))
        self.seen = ctx.get_state(ValueStateDescriptor("seen", Types.PICKLED_BYTE_ARRAY()))
        self.parity = ctx.get_map_state(MapStateDescriptor("parity", Types.LONG(), Types.LONG()))

    def process_element(self, value, ctx):
        self.items.add(value)
        seen = self.seen.value() or {"values": []}
        seen["values"].append(value)
        self.seen.update(seen)
        self.parity.put(value % 2, (self.parity.get(value % 2) or 0) + 1)
        yield (ctx.get_current_key(), len(list(self.items.get())), len(seen["values"]),
               tuple(sorted(self.parity.items())))


@pytest.mark.parametrize("parallelism", [1, 2])
def test_state_changed_in_place_restores_as_it_was_at_the_checkpoint(tmp_path, parallelism):
    # The checkpoint's copy is encoded on a writer thread while the next records change
    # the same lists and dicts: were the copy a new reference to them, the restored state
    # would hold records of after the checkpoint, which the source replays.
    n = 60_000

    def run(marker):
        env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
        env.enable_checkpointing(5, CheckpointingMode.EXACTLY_ONCE)
        env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "ck" / marker))
        env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
        marker_path = str(tmp_path / marker)

        def maybe_fail(i):
            if marker == "fail" and i == n // 2 and not os.path.exists(marker_path):
                open(marker_path, "w").close()
                raise RuntimeError("injected failure")
            return i

        stream = (env.from_sequence(0, n - 1).uid("numbers").map(maybe_fail).uid("fail")
                  .key_by(lambda i: i % 40).process(GrowingState()).uid("grow"))
        node = stream._add("collect")
        result = env.execute("in place")
        return result, sorted(result._collected[node["id"]])

    _, clean = run("clean")
    failed, recovered = run("fail")
    assert failed.get_restarts() == 1
    assert len(clean) == n
    assert recovered == clean


CHILD = textwrap.dedent('''
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from test_checkpoints import N
    from superflow.datastream import StreamExecutionEnvironment

    storage, marker = sys.argv[1], sys.argv[2]
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    env.enable_checkpointing(10)
    env.get_checkpoint_config().set_checkpoint_storage_dir(storage)

    def slow(i):
        # Past a tenth of the input, slow down (10 us a record) and say so, so that the
        # test can kill the process while it runs, after a checkpoint.
        if i >= N // 10 and i % 1000 == 0:
            if not os.path.exists(marker):
                open(marker, "w").close()
            time.sleep(0.01)
        return i

    env.from_sequence(0, N - 1).map(slow).uid("slow").map(lambda i: i).uid("fail") \\
        .key_by(lambda i: i % 7).process(__import__("test_checkpoints").RunningCount()) \\
        .uid("count").print()
    env.execute("killed")
''')


def written_after(path, moment):
    """Whether the file was written after `moment`. A checkpoint the storage no longer
    retains is deleted between the listing and the stat; that one does not count."""
    try:
        return path.stat().st_mtime > moment
    except FileNotFoundError:
        return False


def test_a_killed_process_resumes_from_its_checkpoints(tmp_path):
    storage = tmp_path / "checkpoints"
    marker = tmp_path / "running"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=os.path.dirname(__file__)))
    child = subprocess.Popen([sys.executable, str(script), str(storage), str(marker)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode()
        assert time.time() < deadline, "the child never got going"
        time.sleep(0.01)
    # Wait for a checkpoint taken after the marker, then kill the process outright.
    seen = time.time()
    while True:
        if any(written_after(p, seen) for p in storage.glob("chk-*/_metadata")):
            break
        assert time.time() < deadline, "no checkpoint completed"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()

    # A new process restores the newest checkpoint of the storage and finishes the job.
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    env.enable_checkpointing(10)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "second"))
    env.set_restore_path(str(storage))
    stream = (env.from_sequence(0, N - 1).map(lambda i: i).uid("slow")
              .map(lambda i: i).uid("fail")
              .key_by(lambda i: i % 7).process(RunningCount()).uid("count"))
    node = stream._add("collect")
    result = env.execute("resumed")
    assert result.get_restored_from() is not None
    out = sorted(result._collected[node["id"]])
    # The records counted before the checkpoint were printed by the killed process;
    # the resumed one continues each key's count from the checkpoint to the end.
    assert out, "nothing after the checkpoint"
    finals = {}
    for key, count in out:
        finals[key] = max(finals.get(key, 0), count)
    assert finals == {k: len(range(k, N, 7)) for k in range(7)}
    firsts = {}
    for key, count in out:
        firsts[key] = min(firsts.get(key, count), count)
    assert all(firsts[k] > 1 for k in range(7)), "the counts did not resume from the checkpoint"
    for key in range(7):
        counts = [c for k, c in out if k == key]
        assert counts == list(range(firsts[key], finals[key] + 1))


def committed_lines(directory):
    """The lines of a FileSink's committed parts, in its buckets (a directory per hour by
    default) too, in the order of the parts' paths."""
    lines = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            lines.extend(committed_lines(path))
        else:
            lines.extend(path.read_text().splitlines())
    return lines


@pytest.mark.parametrize("parallelism", [1, 2])
def test_file_sink_commits_every_record_once_across_a_restart(tmp_path, parallelism):
    from superflow.common.serialization import Encoder
    from superflow.datastream.connectors import FileSink, RollingPolicy
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.enable_checkpointing(5)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    out = tmp_path / "out"
    sink = (FileSink.for_row_format(str(out), Encoder.simple_string_encoder())
            .with_rolling_policy(RollingPolicy.default_rolling_policy(part_size=64 * 1024))
            .build())
    job(env, str(tmp_path / "failed-once")).map(lambda kc: f"{kc[0]},{kc[1]}").sink_to(sink)
    result = env.execute("file sink")
    assert result.get_restarts() == 1
    lines = committed_lines(out)
    assert sorted(tuple(map(int, l.split(","))) for l in lines) == expected()
    # Several parts, in the sink's buckets (a directory per hour).
    assert len([p for p in out.rglob("*") if p.is_file()]) > 1


def test_file_sink_without_checkpoints_commits_at_the_end(env, tmp_path):
    from superflow.common.serialization import Encoder
    from superflow.datastream.connectors import FileSink
    out = tmp_path / "plain"
    env.from_collection(["a", "b", ("c", 1)]).sink_to(
        FileSink.for_row_format(str(out), Encoder.simple_string_encoder()).build())
    env.execute()
    assert committed_lines(out) == ["a", "b", "('c', 1)"]
    with pytest.raises(TypeError, match="FileSink"):
        env.from_collection([1]).sink_to("not a sink")
    with pytest.raises(ValueError, match="UTF-8"):
        Encoder.simple_string_encoder("latin-1")


def test_quarantine_and_the_other_choices_reach_the_file_sink(env, tmp_path):
    from superflow.common.serialization import Encoder
    from superflow.datastream.connectors import FileSink
    builder = FileSink.for_row_format(str(tmp_path / "out"), Encoder.simple_string_encoder())
    assert builder.build().committed_after_restore == "refuse"
    for choice in ("quarantine", "keep_duplicates", "refuse"):
        sink = builder.with_committed_after_restore(choice).build()
        assert sink.committed_after_restore == choice
        env.from_collection([choice]).sink_to(sink)
        env.execute()
    assert sorted(committed_lines(tmp_path / "out")) == ["keep_duplicates", "quarantine", "refuse"]
    with pytest.raises(ValueError, match="quarantine"):
        builder.with_committed_after_restore("duplicates please")


def test_file_sink_names_its_parts_by_the_output_file_config(env, tmp_path):
    from superflow.common.serialization import Encoder
    from superflow.datastream.connectors import FileSink, OutputFileConfig
    out = tmp_path / "named"
    config = (OutputFileConfig.builder().with_part_prefix("prefix")
              .with_part_suffix(".txt").build())
    assert (config.get_part_prefix(), config.get_part_suffix()) == ("prefix", ".txt")
    env.from_collection(["a", "b"]).sink_to(
        FileSink.for_row_format(str(out), Encoder.simple_string_encoder())
        .with_output_file_config(config).build())
    env.execute()
    names = [p.name for p in out.rglob("*") if p.is_file()]
    assert len(names) == 1 and names[0].startswith("prefix-") and names[0].endswith(".txt")
    assert committed_lines(out) == ["a", "b"]
    for prefix, suffix, error in [("", "", "must not be empty"),
                                  (".x", "", "must not start with '.'"),
                                  ("a/b", "", "path separator"),
                                  ("part", "x/", "path separator")]:
        with pytest.raises(ValueError, match=error):
            OutputFileConfig.builder().with_part_prefix(prefix).with_part_suffix(suffix).build()
    with pytest.raises(TypeError, match="OutputFileConfig"):
        FileSink.for_row_format(str(out), Encoder.simple_string_encoder()) \
            .with_output_file_config("prefix")


def test_a_killed_worker_process_is_started_again_and_the_job_resumes(tmp_path, capfd):
    driver = os.getpid()
    marker = str(tmp_path / "killed")

    def kill_a_worker(i):
        # SIGKILL of the worker process (never of this one, the driver) in the middle of
        # its share of the input.
        if i >= N // 2 and os.getpid() != driver and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return i

    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.enable_checkpointing(5)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    stream = (env.from_sequence(0, N - 1).map(kill_a_worker).uid("kill")
              .key_by(lambda i: i % 7).process(RunningCount()).uid("count"))
    node = stream._add("collect")
    result = env.execute("a worker killed")
    assert os.path.exists(marker), "no worker was killed"
    assert result.get_restarts() == 1
    assert "starting it again" in capfd.readouterr().err
    assert sorted(result._collected[node["id"]]) == expected()


def test_a_killed_worker_fails_a_job_that_cannot_restart(tmp_path):
    driver = os.getpid()

    def kill_a_worker(i):
        if os.getpid() != driver:
            os.kill(os.getpid(), signal.SIGKILL)
        return i

    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.from_sequence(0, 999).map(kill_a_worker).print()
    started = time.time()
    with pytest.raises(JobExecutionError, match="worker process 1 exited with code -9"):
        env.execute()
    assert time.time() - started < 30


@pytest.mark.parametrize("new_parallelism", [1, 3])
def test_checkpoints_of_two_processes_restore_at_another_parallelism(tmp_path, new_parallelism):
    storage = str(tmp_path / "checkpoints")
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.enable_checkpointing(5)
    env.get_checkpoint_config().set_checkpoint_storage_dir(storage)
    env.set_restart_strategy(RestartStrategies.no_restart())
    # Late in either subtask's share of the sequence, so that checkpoints completed.
    job(env, str(tmp_path / "failed-once"), fail_at=N - 1000)._add("collect")
    with pytest.raises(JobExecutionError, match="injected failure"):
        env.execute("fails at parallelism 2")

    # The failed job kept its checkpoints; the same job at another parallelism resumes
    # from the newest: key groups and the collected records are dealt anew.
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(new_parallelism)
    env.enable_checkpointing(5)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "second"))
    env.set_restore_path(storage)
    stream = job(env)
    node = stream._add("collect")
    result = env.execute("resumed")
    assert result.get_restored_from() is not None
    assert sorted(result._collected[node["id"]]) == expected()


@pytest.mark.parametrize("parallelism", [1, 2])
def test_checkpoints_in_an_object_store_restore_a_failed_job(tmp_path, parallelism):
    # file:// is an object store location: the processes stage locally and upload.
    store = tmp_path / "store"
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.enable_checkpointing(5)
    env.get_checkpoint_config().set_checkpoint_storage_dir(f"file://{store}")
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    stream = job(env, str(tmp_path / "failed-once"), fail_at=N - 1000)
    node = stream._add("collect")
    result = env.execute("object store")
    assert result.get_restarts() == 1
    assert sorted(result._collected[node["id"]]) == expected()
    assert store.is_dir(), "checkpoints were uploaded"


@pytest.mark.parametrize("timers", ["store", "memory"])
def test_timers_of_the_embedded_backend_live_where_asked(timers):
    # A keyed process function's timers, in the store (one per cache entry is in
    # memory, four cache entries) or all in memory: the same output either way.
    class FireAtTheEnd(KeyedProcessFunction):
        def process_element(self, value, ctx):
            ctx.timer_service().register_event_time_timer(100 + value)
            return []

        def on_timer(self, timestamp, ctx):
            yield ctx.get_current_key(), timestamp

    from superflow.common import Duration, WatermarkStrategy

    class Stamp:
        def extract_timestamp(self, value, record_timestamp):
            return value

    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    # A block cache of 1 MiB: the store reads most blocks from disk.
    env.set_state_backend(EmbeddedLsmStateBackend(cache_entries=1, timers=timers,
                                                  block_cache_bytes=1 << 20))
    out = list(env.from_collection(list(range(50)))
               .assign_timestamps_and_watermarks(
                   WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(0))
                   .with_timestamp_assigner(Stamp()))
               .key_by(lambda v: v % 3)
               .process(FireAtTheEnd())
               .execute_and_collect())
    assert out == sorted([(v % 3, 100 + v) for v in range(50)], key=lambda r: r[1])


def test_the_embedded_backend_names_a_bad_timer_setting():
    with pytest.raises(ValueError, match="timers must be 'store' or 'memory'"):
        EmbeddedLsmStateBackend(timers="disk")
    with pytest.raises(ValueError, match="block_cache_bytes must be a non-negative integer, got '32mb'"):
        EmbeddedLsmStateBackend(block_cache_bytes="32mb")


def test_execute_and_collect_names_its_sink_after_the_stream(tmp_path, capfd):
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    named = env.from_collection([1, 2, 3]).uid("numbers").map(lambda x: x * 2).uid("double")
    assert sorted(named.execute_and_collect()) == [2, 4, 6]
    assert "without a uid" not in capfd.readouterr().err
    unnamed = env.from_collection([1, 2, 3]).uid("numbers").map(lambda x: x * 2)
    assert sorted(unnamed.execute_and_collect()) == [2, 4, 6]
    # A map keeps no state, so it needs no uid; the collect sink keeps its records.
    assert "without a uid: 'Collect Sink';" in capfd.readouterr().err
    keyed = (env.from_collection([1, 2, 3]).uid("numbers").map(lambda x: x * 2)
             .key_by(lambda x: x % 2).reduce(lambda a, b: a + b).uid("sum"))
    keyed.print()
    env.execute()
    assert "without a uid" not in capfd.readouterr().err
