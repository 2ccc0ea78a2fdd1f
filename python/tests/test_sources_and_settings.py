"""PyFlink's ``from_source`` connectors (``NumberSequenceSource``, ``FileSource``),
``ExecutionConfig``, and the operator settings PyFlink jobs call (chaining, slot sharing
groups, buffer timeouts)."""

import os
import time

import pytest

from superflow.common import Configuration, Duration, JobExecutionError, Types, WatermarkStrategy
from superflow.datastream import StreamExecutionEnvironment
from superflow.datastream.connectors import (
    FileSource,
    NumberSequenceSource,
    Source,
    StreamFormat,
)
from superflow.datastream.window import TumblingEventTimeWindows
from test_checkpoints import committed_lines


def new_env(parallelism=1, configuration=None):
    env = StreamExecutionEnvironment.get_execution_environment(configuration)
    return env.set_parallelism(parallelism)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_number_sequence_source(parallelism):
    env = new_env(parallelism)
    numbers = env.from_source(NumberSequenceSource(1, 1000), WatermarkStrategy.no_watermarks(),
                              "numbers", Types.LONG())
    out = list(numbers.filter(lambda v: v % 7 == 0).execute_and_collect())
    assert sorted(out) == list(range(7, 1001, 7))
    assert NumberSequenceSource(3, 5).get_from() == 3 and NumberSequenceSource(3, 5).get_to() == 5


def test_pyflink_word_count_from_a_file_source(tmp_path):
    # PyFlink's word_count.py example, reading its input with a FileSource.
    text = ["To be, or not to be,--that is the question:--",
            "Whether 'tis nobler in the mind to suffer",
            "The slings and arrows of outrageous fortune",
            "Or to take arms against a sea of troubles,"]
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("\n".join(text[:2]) + "\n")
    second.write_text("\n".join(text[2:]) + "\n")
    env = new_env(2)
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(first), str(second)).process_static_file_set().build()
    ds = env.from_source(source=source, watermark_strategy=WatermarkStrategy.for_monotonous_timestamps(),
                         source_name="file_source")

    def split(line):
        yield from line.split()

    counts = (ds.flat_map(split).map(lambda i: (i, 1))
              .key_by(lambda i: i[0]).reduce(lambda i, j: (i[0], i[1] + j[1])))
    final = {}
    for word, count in counts.execute_and_collect():
        final[word] = max(final.get(word, 0), count)
    expected = {}
    for line in text:
        for word in line.split():
            expected[word] = expected.get(word, 0) + 1
    assert final == expected and final["to"] == 3


def test_a_file_source_with_event_time(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("".join(f"k{i % 2},{i * 100}\n" for i in range(40)))
    strategy = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(0))
                .with_timestamp_assigner(lambda line, ts: int(line.split(",")[1])))
    env = new_env()
    lines = env.from_source(FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(path)).build(), strategy, "events")
    out = (lines.map(lambda line: (line.split(",")[0], 1)).key_by(lambda v: v[0])
           .window(TumblingEventTimeWindows.of(Duration.of_millis(1000)))
           .reduce(lambda a, b: (a[0], a[1] + b[1])).execute_and_collect())
    assert sorted(out) == sorted([("k0", 5), ("k1", 5)] * 4)


def test_source_errors_are_clear(tmp_path):
    env = new_env()
    with pytest.raises(TypeError, match="takes a Source"):
        env.from_source([1, 2], WatermarkStrategy.no_watermarks(), "list")
    with pytest.raises(TypeError, match="takes a WatermarkStrategy"):
        env.from_source(NumberSequenceSource(1, 2), None, "numbers")

    class Mine(Source):
        pass

    with pytest.raises(TypeError, match="not one of Superflow's sources"):
        env.from_source(Mine(), WatermarkStrategy.no_watermarks(), "mine")
    with pytest.raises(ValueError, match="start <= end"):
        NumberSequenceSource(5, 1)
    with pytest.raises(ValueError, match="reads UTF-8"):
        StreamFormat.text_line_format("UTF-16")
    with pytest.raises(ValueError, match="at least 1 ms"):
        FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(tmp_path)) \
            .monitor_continuously(Duration.of_millis(0))
    with pytest.raises(TypeError, match="monitor_continuously takes a Time or Duration"):
        FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(tmp_path)) \
            .monitor_continuously("1s")
    env = new_env()
    env.from_source(FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(tmp_path / "missing")).build(),
        WatermarkStrategy.no_watermarks(), "missing").print()
    with pytest.raises(JobExecutionError, match="source .missing. cannot start: cannot read input path"):
        env.execute()


def drop_file(directory, name, lines):
    """Moves a file into a monitored directory whole, as a user should."""
    hidden = directory / f".{name}.writing"
    hidden.write_text("".join(f"{line}\n" for line in lines))
    os.rename(hidden, directory / name)


def wait_for_lines(out_dir, count, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        lines = committed_lines(out_dir) if out_dir.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def monitoring_job(env, in_dir, out_dir):
    from superflow.common.serialization import Encoder
    from superflow.datastream.connectors import FileSink
    source = (FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(in_dir))
              .monitor_continuously(Duration.of_millis(20)).build())
    (env.from_source(source, WatermarkStrategy.no_watermarks(), "watched").uid("watched")
     .map(lambda line: line.upper()).uid("upper")
     .sink_to(FileSink.for_row_format(str(out_dir), Encoder.simple_string_encoder()).build())
     .uid("sink"))


def test_a_monitoring_file_source_reads_new_files_once_across_a_rescaling_restore(tmp_path):
    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    drop_file(in_dir, "early.txt", [f"early {i}" for i in range(50)])
    env = new_env(2)
    env.enable_checkpointing(30)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    monitoring_job(env, in_dir, out)
    client = env.execute_async("watching")
    expected = [f"EARLY {i}" for i in range(50)]
    for f in range(6):
        drop_file(in_dir, f"late-{f}.txt", [f"late {f} {i}" for i in range(f * 10 + 1)])
        expected += [f"LATE {f} {i}" for i in range(f * 10 + 1)]
        time.sleep(0.03)
    assert sorted(wait_for_lines(out, len(expected))) == sorted(expected)
    savepoint = client.stop_with_savepoint(False, str(tmp_path / "savepoint")).result(timeout=60)
    client.get_job_execution_result().result(timeout=60)

    # Files that came while the job was down are read after the restore, at another
    # parallelism; none that was read before is read again.
    for f in range(3):
        drop_file(in_dir, f"while-down-{f}.txt", [f"down {f} {i}" for i in range(7)])
        expected += [f"DOWN {f} {i}" for i in range(7)]
    env = new_env(3)
    env.enable_checkpointing(30)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints-2"))
    env.set_restore_path(savepoint)
    monitoring_job(env, in_dir, out)
    client = env.execute_async("watching again")
    drop_file(in_dir, "after.txt", ["after"])
    expected.append("AFTER")
    lines = wait_for_lines(out, len(expected))
    time.sleep(0.3)
    client.cancel().result(timeout=30)
    client.get_job_execution_result().result(timeout=60)
    assert sorted(committed_lines(out)) == sorted(expected) == sorted(lines)


def test_execution_config_sets_the_watermark_interval():
    env = new_env()
    config = env.get_config()
    assert config.get_auto_watermark_interval() == 200
    assert config.set_auto_watermark_interval(50).get_auto_watermark_interval() == 50
    config.set_parallelism(2)
    assert env.get_parallelism() == 2 and config.get_max_parallelism() == 128
    env = new_env(1, Configuration().set_string("pipeline.auto-watermark-interval", "2 s"))
    assert env.get_config().get_auto_watermark_interval() == 2000
    with pytest.raises(ValueError, match="duration such as"):
        new_env(1, Configuration().set_string("pipeline.auto-watermark-interval", "soon"))
    # Without periodic watermarks, the final one still fires every window.
    env = new_env()
    env.get_config().set_auto_watermark_interval(0)
    strategy = (WatermarkStrategy.for_monotonous_timestamps()
                .with_timestamp_assigner(lambda v, ts: v))
    out = (env.from_collection(list(range(3000))).assign_timestamps_and_watermarks(strategy)
           .key_by(lambda v: 0).window(TumblingEventTimeWindows.of(Duration.of_millis(1000)))
           .reduce(lambda a, b: a + b).execute_and_collect())
    assert sorted(out) == [sum(range(1000)), sum(range(1000, 2000)), sum(range(2000, 3000))]


def test_chaining_and_slot_settings_are_taken():
    env = new_env(2)
    env.set_buffer_timeout(100)
    stream = (env.from_collection(list(range(100))).map(lambda v: v + 1).disable_chaining()
              .filter(lambda v: v % 2 == 0).start_new_chain().slot_sharing_group("odd")
              .map(lambda v: v * 10).force_non_parallel())
    assert stream.get_parallelism() == 1
    assert sorted(stream.execute_and_collect()) == [v * 10 for v in range(2, 101, 2)]
    with pytest.raises(ValueError, match="buffer timeout"):
        env.set_buffer_timeout(-5)
