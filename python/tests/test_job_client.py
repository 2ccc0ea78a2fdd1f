"""``execute_async`` and its ``JobClient``, as in PyFlink: the job runs while the caller
goes on; savepoints taken from the client restore elsewhere with the output of a run
that never stopped, a drained stop fires every window, cancel ends the job early, and
a failing job's error comes back through the client."""

import os
import time

import pytest

from superflow.common import (
    Configuration,
    Duration,
    JobClient,
    JobExecutionError,
    JobStatus,
    WatermarkStrategy,
)
from superflow.datastream import StreamExecutionEnvironment
from superflow.datastream.window import TumblingEventTimeWindows
from test_checkpoints import RunningCount

N = 200_000


def slowly(i):
    # About 40K records a second: the job is still running when the test acts.
    if i % 200 == 0:
        time.sleep(0.005)
    return i


def held_back_while(marker):
    """``slowly``, and four times slower while the file ``marker`` exists: a job that is
    to be stopped midway does not finish first on a fast machine."""
    def held_back(i):
        if i % 200 == 0 and os.path.exists(marker):
            time.sleep(0.015)
        return slowly(i)
    return held_back


def counting_job(env, out_dir, hold=None, max_parallelism=None):
    from superflow.datastream.connectors import FileSink
    from superflow.common.serialization import Encoder
    step = slowly if hold is None else held_back_while(str(hold))
    counts = (env.from_sequence(0, N - 1).uid("source").map(step).uid("slowly")
              .key_by(lambda i: i % 5).process(RunningCount()).uid("count"))
    if max_parallelism is not None:
        counts.set_max_parallelism(max_parallelism)
    (counts.sink_to(FileSink.for_row_format(str(out_dir), Encoder.simple_string_encoder()).build())
     .uid("sink"))


def committed(out_dir):
    lines = []
    for root, dirs, files in os.walk(out_dir):
        # Hidden directories hold the sink's commit records, not output.
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("."):
                with open(os.path.join(root, name)) as f:
                    lines.extend(f.read().splitlines())
    return sorted(lines)


def expected():
    return sorted(str((k, c)) for k in range(5) for c in range(1, len(range(k, N, 5)) + 1))


def wait_until_running(client):
    time.sleep(0.3)
    assert client.get_job_status().result() == JobStatus.RUNNING


@pytest.mark.parametrize("parallelism", [1, 2])
def test_savepoints_from_the_client_restore_with_the_output_of_an_unstopped_run(
        tmp_path, parallelism):
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.enable_checkpointing(10_000)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    out = tmp_path / "out"
    hold = tmp_path / "hold"
    hold.touch()
    counting_job(env, out, hold)
    client = env.execute_async("stoppable")
    assert isinstance(client, JobClient) and len(client.get_job_id().to_hex_string()) == 32
    wait_until_running(client)
    first = client.trigger_savepoint(str(tmp_path / "savepoint-1")).result(timeout=60)
    assert os.path.isfile(os.path.join(first, "_metadata"))
    assert client.get_job_status().result() == JobStatus.RUNNING
    stopped = client.stop_with_savepoint(False, str(tmp_path / "savepoint-2")).result(timeout=60)
    result = client.get_job_execution_result().result(timeout=60)
    assert client.get_job_status().result() == JobStatus.FINISHED
    savepoints = [c for c in result.get_checkpoint_stats() if c["savepoint"]]
    assert [c["status"] for c in savepoints] == ["COMPLETED", "COMPLETED"]
    partial = committed(out)
    assert 0 < len(partial) < N, "the job stopped at the savepoint"
    hold.unlink()

    # Resumed from the stopping savepoint at another parallelism: the committed output
    # is that of a run that never stopped.
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(3 - parallelism)
    env.set_restore_path(stopped)
    counting_job(env, out)
    env.execute("resumed")
    assert committed(out) == expected()


def test_an_operator_rescales_within_its_own_max_parallelism(tmp_path):
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    out = tmp_path / "out"
    hold = tmp_path / "hold"
    hold.touch()
    counting_job(env, out, hold, max_parallelism=3)
    client = env.execute_async("own max parallelism")
    wait_until_running(client)
    stopped = client.stop_with_savepoint(False, str(tmp_path / "savepoint")).result(timeout=60)
    client.get_job_execution_result().result(timeout=60)
    hold.unlink()
    assert 0 < len(committed(out)) < N, "the job stopped at the savepoint"

    def resume(parallelism, max_parallelism):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(parallelism).set_restore_path(stopped)
        counting_job(env, out, max_parallelism=max_parallelism)
        return env.execute("resumed")

    # The keyed state is split into 3 key groups: another count cannot restore it, and
    # the operator cannot run wider than 3.
    with pytest.raises(JobExecutionError,
                       match="max parallelism 3 for operator '.*', the job now has 4"):
        resume(3, 4)
    with pytest.raises(JobExecutionError, match="is 4, which exceeds the max parallelism 3"):
        resume(4, 3)
    resume(3, 3)
    assert committed(out) == expected()


def test_max_parallelism_is_a_number_of_key_groups():
    env = StreamExecutionEnvironment.get_execution_environment()
    stream = env.from_collection([1, 2]).map(lambda x: x)
    assert stream.get_max_parallelism() == 128
    env.set_max_parallelism(64)
    assert stream.get_max_parallelism() == 64
    assert stream.set_max_parallelism(7).get_max_parallelism() == 7
    for bad in (0, 32769, "8", True):
        with pytest.raises(ValueError, match="max parallelism must be in 1..32768"):
            stream.set_max_parallelism(bad)


def test_a_drained_stop_fires_every_window_and_a_plain_stop_does_not(tmp_path):
    fired = {}
    for drain in (False, True):
        env = StreamExecutionEnvironment.get_execution_environment(
            Configuration().set_string("execution.checkpointing.savepoint-dir",
                                       str(tmp_path / f"savepoints-{drain}")))
        env.set_parallelism(1)
        strategy = (WatermarkStrategy.for_monotonous_timestamps()
                    .with_timestamp_assigner(lambda v, ts: v))
        counts = (env.from_sequence(0, 10 * N).map(slowly)
                  .assign_timestamps_and_watermarks(strategy).key_by(lambda v: v % 3)
                  .window(TumblingEventTimeWindows.of(Duration.of_millis(1000)))
                  .reduce(lambda a, b: a + b))
        seen = []
        counts.map(lambda v: v).add_sink(seen.append)
        client = env.execute_async("drain" if drain else "stop")
        wait_until_running(client)
        path = client.stop_with_savepoint(advance_to_end_of_time=drain).result(timeout=60)
        assert path.startswith(str(tmp_path / f"savepoints-{drain}"))
        result = client.get_job_execution_result().result(timeout=60)
        source = [o for o in result.get_operator_metrics() if "Source" in o["name"]][0]
        fired[drain] = (len(seen), source["records_out"])
    # Every window fired when drained: 3 keys per started second of event time.
    windows, records = fired[True]
    assert windows == 3 * ((records - 1) // 1000 + 1)
    windows, records = fired[False]
    assert windows < 3 * ((records - 1) // 1000 + 1)


def test_cancel_ends_the_job_early(tmp_path):
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    seen = []
    env.from_sequence(0, 10 * N).map(slowly).add_sink(seen.append)
    client = env.execute_async("cancelled")
    wait_until_running(client)
    client.cancel().result(timeout=30)
    result = client.get_job_execution_result().result(timeout=60)
    assert client.get_job_status().result() == JobStatus.CANCELED
    assert JobStatus.CANCELED.is_globally_terminal_state()
    assert 0 < len(seen) < 10 * N + 1
    assert result.get_job_name() == "cancelled"


def test_a_failure_comes_back_through_the_client(tmp_path):
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)

    def fail(i):
        if i == 500:
            raise ValueError(f"bad record {i}")
        return i

    env.from_sequence(0, 1000).map(fail).print()
    client = env.execute_async("failing")
    with pytest.raises(JobExecutionError, match="ValueError: bad record 500"):
        client.get_job_execution_result().result(timeout=60)
    assert client.get_job_status().result() == JobStatus.FAILED
    with pytest.raises(JobExecutionError, match="not running"):
        client.trigger_savepoint(str(tmp_path / "late")).result(timeout=30)
    with pytest.raises(ValueError, match="no savepoint directory"):
        client.trigger_savepoint()
