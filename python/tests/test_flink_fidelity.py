"""What a PyFlink program meets first: the names PyFlink exports, its generic function
classes, batch execution mode, streams reused across jobs, declared types (32-bit
FLOATs, tuples printed as Flink prints them), watermarks that act per record, and the
late side outputs of interval joins."""

import importlib

import pytest

from superflow.common import Duration, Encoder, Row, Time, Types, WatermarkStrategy
from superflow.common.watermark_strategy import WatermarkGenerator
from superflow.datastream import (
    KeyedProcessFunction,
    OutputTag,
    ProcessWindowFunction,
    RuntimeExecutionMode,
    StreamExecutionEnvironment,
)
from superflow.datastream.window import CountWindow, TimeWindow, TumblingEventTimeWindows

# PyFlink 2.3's `__all__` lists of the modules a DataStream program imports from.
PYFLINK_NAMES = {
    "common": "Configuration ConfigOption ConfigOptions ExecutionConfig TypeInformation "
              "TypeSerializer Types SerializationSchema DeserializationSchema "
              "SimpleStringSchema ByteArraySchema Encoder CompletableFuture "
              "InputDependencyConstraint JobClient JobExecutionResult JobID JobStatus "
              "RestartStrategies RestartStrategyConfiguration Row RowKind WatermarkStrategy "
              "Duration Instant Time AssignerWithPeriodicWatermarksWrapper",
    "common.serialization": "SerializationSchema DeserializationSchema SimpleStringSchema "
                            "ByteArraySchema Encoder BulkWriterFactory RowFieldExtractorSchema",
    "datastream": "StreamExecutionEnvironment DataStream KeyedStream WindowedStream "
                  "ConnectedStreams BroadcastStream BroadcastConnectedStream AsyncDataStream "
                  "DataStreamSink MapFunction CoMapFunction FlatMapFunction CoFlatMapFunction "
                  "ReduceFunction FilterFunction ProcessFunction KeyedProcessFunction "
                  "CoProcessFunction KeyedCoProcessFunction WindowFunction "
                  "ProcessWindowFunction AggregateFunction BroadcastProcessFunction "
                  "KeyedBroadcastProcessFunction AsyncFunction RuntimeContext TimerService "
                  "CheckpointingMode CheckpointConfig ExternalizedCheckpointRetention "
                  "StateBackend HashMapStateBackend EmbeddedRocksDBStateBackend "
                  "CustomStateBackend PredefinedOptions CheckpointStorage "
                  "JobManagerCheckpointStorage FileSystemCheckpointStorage "
                  "CustomCheckpointStorage RuntimeExecutionMode Window TimeWindow CountWindow "
                  "GlobalWindow WindowAssigner MergingWindowAssigner TriggerResult Trigger "
                  "TimeDomain KeySelector Partitioner SourceFunction SinkFunction "
                  "SlotSharingGroup MemorySize OutputTag AsyncRetryPredicate AsyncRetryStrategy",
    "datastream.functions": "RuntimeContext MapFunction CoMapFunction FlatMapFunction "
                            "CoFlatMapFunction ReduceFunction AggregateFunction KeySelector "
                            "FilterFunction Partitioner SourceFunction SinkFunction "
                            "ProcessFunction CoProcessFunction KeyedProcessFunction "
                            "KeyedCoProcessFunction TimerService WindowFunction "
                            "AllWindowFunction ProcessWindowFunction ProcessAllWindowFunction "
                            "BaseBroadcastProcessFunction BroadcastProcessFunction "
                            "KeyedBroadcastProcessFunction AsyncFunction "
                            "AsyncFunctionDescriptor AsyncRetryPredicate AsyncRetryStrategy",
    "datastream.window": "Window TimeWindow CountWindow GlobalWindow WindowAssigner "
                         "TumblingProcessingTimeWindows TumblingEventTimeWindows "
                         "SlidingProcessingTimeWindows SlidingEventTimeWindows "
                         "ProcessingTimeSessionWindows EventTimeSessionWindows "
                         "DynamicProcessingTimeSessionWindows DynamicEventTimeSessionWindows "
                         "GlobalWindows MergingWindowAssigner CountTumblingWindowAssigner "
                         "CountSlidingWindowAssigner TriggerResult Trigger EventTimeTrigger "
                         "ProcessingTimeTrigger ContinuousEventTimeTrigger "
                         "ContinuousProcessingTimeTrigger NeverTrigger PurgingTrigger "
                         "CountTrigger TimeWindowSerializer CountWindowSerializer "
                         "GlobalWindowSerializer SessionWindowTimeGapExtractor",
    "datastream.state": "ValueStateDescriptor ValueState ListStateDescriptor ListState "
                        "MapStateDescriptor MapState ReducingStateDescriptor ReducingState "
                        "AggregatingStateDescriptor AggregatingState ReadOnlyBroadcastState "
                        "BroadcastState StateTtlConfig OperatorStateStore",
    "datastream.connectors": "Sink Source DeliveryGuarantee",
    "datastream.connectors.file_system": "FileCompactor FileCompactStrategy OutputFileConfig "
                                         "FileSource FileSourceBuilder FileSink "
                                         "StreamingFileSink StreamFormat BulkFormat "
                                         "FileEnumeratorProvider FileSplitAssignerProvider "
                                         "RollingPolicy BucketAssigner",
    "datastream.formats": "",
}


@pytest.mark.parametrize("module", sorted(PYFLINK_NAMES))
def test_every_name_pyflink_exports_can_be_imported(module):
    ours = importlib.import_module("superflow." + module)
    missing = [n for n in PYFLINK_NAMES[module].split() if not hasattr(ours, n)]
    assert missing == []


def test_a_name_without_its_capability_says_so_when_used():
    from superflow.datastream import AsyncDataStream, AsyncFunction
    from superflow.datastream.connectors.file_system import BulkFormat

    with pytest.raises(NotImplementedError, match="async I/O"):
        AsyncDataStream.unordered_wait(None, None, None)
    with pytest.raises(NotImplementedError, match="bulk file formats"):
        BulkFormat()

    class MyAsync(AsyncFunction):  # subclassing works; running it does not
        pass

    with pytest.raises(NotImplementedError, match="AsyncFunction"):
        MyAsync()


def test_serialization_schemas_round_trip():
    from superflow.common.serialization import (ByteArraySchema, RowFieldExtractorSchema,
                                                SimpleStringSchema)
    schema = SimpleStringSchema()
    assert schema.deserialize(schema.serialize("grüße")) == "grüße"
    assert SimpleStringSchema("ISO-8859-1").serialize("é") == b"\xe9"
    with pytest.raises(ValueError, match="unknown charset"):
        SimpleStringSchema("no-such-charset")
    assert ByteArraySchema().serialize(bytearray(b"ab")) == b"ab"
    assert RowFieldExtractorSchema(1).serialize(Row("k", b"value")) == b"value"
    with pytest.raises(TypeError, match="must hold bytes"):
        RowFieldExtractorSchema(0).serialize(Row("k", b"value"))


def test_function_classes_are_generic_as_in_pyflink(env, capfd):
    class Count(ProcessWindowFunction[tuple, tuple, str, TimeWindow]):
        def process(self, key: str, context: ProcessWindowFunction.Context[TimeWindow],
                    elements):
            assert isinstance(context, ProcessWindowFunction.Context)
            return [(key, context.window().start, len(list(elements)))]

    assert KeyedProcessFunction.Context and KeyedProcessFunction.OnTimerContext
    out = list(env.from_collection([("a", 1), ("a", 2), ("a", 7)])
               .assign_timestamps_and_watermarks(
                   WatermarkStrategy.for_monotonous_timestamps()
                   .with_timestamp_assigner(lambda e, _: e[1]))
               .key_by(lambda e: e[0])
               .window(TumblingEventTimeWindows.of(Time.milliseconds(5)))
               .process(Count())
               .execute_and_collect())
    assert sorted(out) == [("a", 0, 2), ("a", 5, 1)]
    assert issubclass(TimeWindow, importlib.import_module("superflow.datastream").Window)
    assert CountWindow(3).max_timestamp() > 0


def test_a_stream_built_before_execute_reads_its_own_input_in_the_next_job(env):
    ds = env.from_collection([1, 2, 3])
    assert sorted(ds.map(lambda x: x + 1).execute_and_collect()) == [2, 3, 4]
    other = env.from_collection([10, 20])
    # PyFlink reads ds's own source again: [100, 200, 300], not [1000, 2000].
    assert sorted(ds.map(lambda x: x * 100).execute_and_collect()) == [100, 200, 300]
    assert sorted(ds.filter(lambda x: x != 2).union(other).execute_and_collect()) == \
        [1, 3, 10, 20]


def words(env):
    return env.from_collection(["to", "be", "or", "not", "to", "be", "to"]) \
        .map(lambda w: (w, 1), output_type=Types.TUPLE([Types.STRING(), Types.INT()]))


@pytest.mark.parametrize("parallelism", [1, 2])
def test_batch_mode_emits_one_final_record_per_key(parallelism):
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    out = words(env).key_by(lambda w: w[0]).reduce(lambda a, b: (a[0], a[1] + b[1])) \
        .execute_and_collect()
    assert sorted(out) == [("be", 2), ("not", 1), ("or", 1), ("to", 3)]
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    assert len(list(words(env).key_by(lambda w: w[0]).sum(1).execute_and_collect())) == 7


def test_automatic_mode_and_the_configuration_key_pick_batch_for_bounded_sources():
    from superflow.common import Configuration
    config = Configuration()
    config.set_string("execution.runtime-mode", "automatic")
    env = StreamExecutionEnvironment.get_execution_environment(config).set_parallelism(1)
    out = words(env).key_by(lambda w: w[0]).sum(1).execute_and_collect()
    assert sorted(out) == [("be", 2), ("not", 1), ("or", 1), ("to", 3)]
    config.set_string("execution.runtime-mode", "sometimes")
    with pytest.raises(ValueError, match="STREAMING, BATCH or AUTOMATIC"):
        StreamExecutionEnvironment.get_execution_environment(config)
    with pytest.raises(TypeError, match="RuntimeExecutionMode"):
        env.set_runtime_mode("BATCH")


def test_batch_mode_fires_event_time_windows_once_with_every_record(env):
    class Punctuated(WatermarkGenerator):
        def on_event(self, event, event_timestamp, output):
            output.emit_watermark(event_timestamp - 1)

    def counts(mode):
        env.set_runtime_mode(mode)
        env.get_config().set_auto_watermark_interval(0)
        return sorted(env.from_collection([("k", 10), ("k", 30), ("k", 5), ("k", 31), ("k", 12)])
                      .assign_timestamps_and_watermarks(
                          WatermarkStrategy.for_generator(Punctuated)
                          .with_timestamp_assigner(lambda e, _: e[1]))
                      .key_by(lambda e: e[0])
                      .window(TumblingEventTimeWindows.of(Time.milliseconds(10)))
                      .reduce(lambda a, b: (a[0], a[1], (a[2] if len(a) > 2 else 1) + 1))
                      .map(lambda r: (r[1] // 10 * 10, r[2] if len(r) > 2 else 1))
                      .execute_and_collect())

    assert counts(RuntimeExecutionMode.BATCH) == [(0, 1), (10, 2), (30, 2)]
    # Streaming: 5 and 12 are behind the watermark of 30, so they are dropped.
    assert counts(RuntimeExecutionMode.STREAMING) == [(10, 1), (30, 2)]


def test_batch_mode_fires_processing_time_timers_at_the_end(env):
    class FarAhead(KeyedProcessFunction):
        # One timer per key (timers are per key and time); what on_timer registers at
        # the end of the input is ignored, as in Flink, instead of looping.
        def process_element(self, value, ctx):
            ctx.timer_service().register_processing_time_timer(4_000_000_000_000)

        def on_timer(self, timestamp, ctx):
            ctx.timer_service().register_processing_time_timer(timestamp + 1000)
            ctx.timer_service().register_event_time_timer(timestamp + 1000)
            yield ctx.get_current_key()

    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    out = words(env).key_by(lambda w: w[0]).process(FarAhead()).execute_and_collect()
    assert sorted(out) == ["be", "not", "or", "to"]


def test_batch_mode_refuses_an_unbounded_source(env, tmp_path):
    from superflow.datastream.connectors.file_system import FileSource, StreamFormat
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(tmp_path)) \
        .monitor_continuously(Duration.of_seconds(1)).build()
    env.from_source(source, WatermarkStrategy.no_watermarks(), "watched").print()
    with pytest.raises(Exception, match="unbounded.*BATCH"):
        env.execute()


def test_declared_types_are_kept_as_flink_keeps_them(env, capfd):
    # A FLOAT is a 32-bit float, as PyFlink's elements come back from Java.
    out = env.from_collection([("Alice", 110.1)], type_info=Types.TUPLE(
        [Types.STRING(), Types.FLOAT()])).execute_and_collect()
    assert list(out) == [("Alice", 110.0999984741211)]
    # print() writes what Flink prints of the declared type; without one, str().
    env.from_collection([("hi", 0, 5, 4)], type_info=Types.TUPLE(
        [Types.STRING(), Types.INT(), Types.INT(), Types.INT()])).print()
    env.from_collection([(True, None, 2.5e-5, [1, 2])], type_info=Types.TUPLE(
        [Types.BOOLEAN(), Types.STRING(), Types.DOUBLE(), Types.LIST(Types.INT())])).print()
    env.from_collection([1.0e7], type_info=Types.FLOAT()).print()
    env.from_collection([("hi", 0)]).print()
    env.execute()
    printed = sorted(capfd.readouterr().out.splitlines())
    assert printed == ["('hi', 0)", "(hi,0,5,4)", "(true,null,2.5E-5,[1, 2])", "1.0E7"]


def test_an_operators_declared_floats_are_32_bit_floats(env):
    # As PyFlink's records pass through Java: a map declared FLOAT gives float32 values,
    # and so does a reduce of a stream declared with a FLOAT field.
    tenths = env.from_collection([1, 2]).map(lambda x: x / 10, output_type=Types.FLOAT())
    assert sorted(tenths.execute_and_collect()) == [0.10000000149011612, 0.20000000298023224]
    sums = env.from_collection([("a", 0.1), ("a", 0.2)]) \
        .map(lambda r: r, output_type=Types.TUPLE([Types.STRING(), Types.FLOAT()])) \
        .key_by(lambda r: r[0]).reduce(lambda a, b: (a[0], a[1] + b[1]))
    assert list(sums.execute_and_collect())[-1] == ("a", 0.30000001192092896)


def test_print_prefixes_lines_with_the_sink_identifier(env, capfd):
    env.from_collection(["a"]).print("id")
    env.from_collection(["b"]).print()
    env.execute()
    assert sorted(capfd.readouterr().out.splitlines()) == ["b", "id> a"]
    with pytest.raises(TypeError, match="sink identifier"):
        env.from_collection(["a"]).print(1)


def test_a_record_that_does_not_match_its_declared_type_fails_the_job_naming_both(env):
    env.from_collection([("a", 1), ("b", 2, 3)]) \
        .map(lambda r: r, output_type=Types.TUPLE([Types.STRING(), Types.INT()])).print()
    with pytest.raises(Exception, match=r"\('b', 2, 3\).*does not match its declared type TUPLE"):
        env.execute()


def test_a_typed_stream_is_written_to_a_file_sink_as_flink_prints_it(env, tmp_path):
    from superflow.datastream.connectors.file_system import FileSink
    env.from_collection([("a", 1)], type_info=Types.TUPLE([Types.STRING(), Types.INT()])) \
        .sink_to(FileSink.for_row_format(str(tmp_path), Encoder.simple_string_encoder()).build())
    env.execute()
    lines = [line for f in tmp_path.rglob("*") if f.is_file() and not f.name.startswith(".")
             for line in f.read_text().splitlines()]
    assert lines == ["(a,1)"]


class TrailingEveryRecord(WatermarkGenerator):
    """Emits `max timestamp - 3 s - 1` from every record (punctuated)."""

    def __init__(self):
        self.max = None

    def on_event(self, event, event_timestamp, output):
        self.max = event_timestamp if self.max is None else max(self.max, event_timestamp)
        output.emit_watermark(self.max - 3000 - 1)


class SumPerWindow(ProcessWindowFunction):
    def process(self, key, context, elements):
        yield key, context.window().start, sum(e[2] for e in elements)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_watermark_from_on_event_acts_before_the_next_record(parallelism):
    # The case Flink 2.3 was run on: the five records travel in one batch, yet each
    # watermark acts before the next record. [0,10s) fires at 14000's watermark (sum 1),
    # again for the allowed-late 2000 (sum 6); 3000 comes after the window's cleanup.
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.get_config().set_auto_watermark_interval(0)
    late = OutputTag("late")
    windows = env.from_collection([("a", 1000, 1), ("a", 14000, 1), ("a", 2000, 5),
                                   ("a", 30000, 1), ("a", 3000, 7)]) \
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_generator(TrailingEveryRecord)
            .with_timestamp_assigner(lambda e, _: e[1])) \
        .set_parallelism(1) \
        .key_by(lambda e: e[0]) \
        .window(TumblingEventTimeWindows.of(Time.seconds(10))) \
        .allowed_lateness(Time.seconds(5)) \
        .side_output_late_data(late) \
        .process(SumPerWindow())
    side = windows.get_side_output(late)
    windows.map(lambda r: ("window",) + r).union(side.map(lambda r: ("late",) + r)) \
        .add_sink(lambda r: None)
    out = sorted(windows.map(lambda r: ("window",) + r).union(
        side.map(lambda r: ("late",) + r)).execute_and_collect())
    assert out == [("late", "a", 3000, 7), ("window", "a", 0, 1), ("window", "a", 0, 6),
                   ("window", "a", 10000, 1), ("window", "a", 30000, 1)]


def test_a_python_watermark_generator_error_fails_the_job_naming_the_operator(env):
    class Broken(WatermarkGenerator):
        def on_event(self, event, event_timestamp, output):
            raise ValueError("no watermark for you")

    env.from_collection([1, 2]).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_generator(Broken).with_timestamp_assigner(lambda e, _: e)).print()
    with pytest.raises(Exception, match="no watermark for you"):
        env.execute()
    with pytest.raises(TypeError, match="for_generator"):
        WatermarkStrategy.for_generator(42)


def test_interval_join_sends_late_records_to_side_outputs(env, tmp_path):
    import threading
    import time
    from superflow.datastream.connectors.file_system import FileSource, StreamFormat
    from superflow.datastream.functions import ProcessJoinFunction

    class Pairs(ProcessJoinFunction):
        def process_element(self, left, right, ctx):
            yield left[1], right[1]

    class Punctuated(WatermarkGenerator):
        def on_event(self, event, event_timestamp, output):
            output.emit_watermark(event_timestamp - 1)

    # Left records come from files found while the job runs: "k,5" arrives a second
    # after "k,50", whose watermark (49) it is behind.
    watched = tmp_path / "left"
    watched.mkdir()
    (watched / "a.txt").write_text("k,10\nk,50\n")
    env.get_config().set_auto_watermark_interval(0)
    strategy = WatermarkStrategy.for_generator(Punctuated) \
        .with_timestamp_assigner(lambda line, _: int(line.split(",")[1]))
    left = env.from_source(
        FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(watched))
        .monitor_continuously(Duration.of_millis(20)).build(), strategy, "left") \
        .map(lambda line: (line.split(",")[0], int(line.split(",")[1])))
    right = env.from_collection([("k", 52)]).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_generator(Punctuated).with_timestamp_assigner(lambda e, _: e[1]))
    left_late, right_late = OutputTag("left-late"), OutputTag("right-late")
    joined = left.key_by(lambda e: e[0]).interval_join(right.key_by(lambda e: e[0])) \
        .between(Time.milliseconds(0), Time.milliseconds(5)) \
        .side_output_left_late_data(left_late) \
        .side_output_right_late_data(right_late) \
        .process(Pairs())
    seen = []
    joined.map(lambda r: ("pair",) + r) \
        .union(joined.get_side_output(left_late).map(lambda r: ("left late",) + r),
               joined.get_side_output(right_late).map(lambda r: ("right late",) + r)) \
        .add_sink(seen.append)
    client = env.execute_async("late interval join")
    deadline = time.time() + 30
    while ("pair", 50, 52) not in seen and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    threading.Thread(target=(watched / "b.txt").write_text, args=("k,5\n",)).start()
    while len(seen) < 2 and time.time() < deadline:
        time.sleep(0.02)
    client.cancel().result(timeout=30)
    assert sorted(seen) == [("left late", "k", 5), ("pair", 50, 52)]


def test_the_file_sink_writes_flinks_layout(env, tmp_path):
    import datetime
    import re
    from superflow.datastream.connectors.file_system import (BucketAssigner, FileSink,
                                                             OutputFileConfig)
    config = OutputFileConfig.builder().with_part_prefix("prefix").with_part_suffix(".ext") \
        .build()
    # Default: a directory per hour of processing time, named as Flink names it.
    before = datetime.datetime.now().strftime("%Y-%m-%d--%H")
    env.from_collection(["a", "b"]).sink_to(
        FileSink.for_row_format(str(tmp_path / "hourly"), Encoder.simple_string_encoder())
        .with_output_file_config(config).build())
    # An explicit pattern and time zone, and no buckets at all.
    env.from_collection(["c"]).sink_to(
        FileSink.for_row_format(str(tmp_path / "daily"), Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.date_time_bucket_assigner("yyyy/MM/dd", "UTC"))
        .build())
    env.from_collection(["d"]).sink_to(
        FileSink.for_row_format(str(tmp_path / "flat"), Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner()).build())
    env.execute()
    after = datetime.datetime.now().strftime("%Y-%m-%d--%H")
    uuid = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    [hourly] = [p for p in (tmp_path / "hourly").rglob("*") if p.is_file()]
    assert hourly.parent.name in (before, after)
    assert re.fullmatch(f"prefix-{uuid}-0\\.ext", hourly.name), hourly.name
    assert hourly.read_text() == "a\nb\n"
    [daily] = [p for p in (tmp_path / "daily").rglob("*") if p.is_file()]
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y/%m/%d")
    assert str(daily.parent.relative_to(tmp_path / "daily")) == today
    assert re.fullmatch(f"part-{uuid}-0", daily.name)
    [flat] = [p for p in (tmp_path / "flat").iterdir()]
    assert flat.is_file() and flat.read_text() == "d\n"


def test_a_bad_bucket_format_fails_the_job_naming_it(env, tmp_path):
    from superflow.datastream.connectors.file_system import BucketAssigner, FileSink
    env.from_collection(["a"]).sink_to(
        FileSink.for_row_format(str(tmp_path), Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.date_time_bucket_assigner("yyyy-QQ")).build())
    with pytest.raises(Exception, match="pattern letter 'Q'"):
        env.execute()
    env.from_collection(["a"]).sink_to(
        FileSink.for_row_format(str(tmp_path), Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.date_time_bucket_assigner(
            "yyyy", "Mars/Olympus")).build())
    with pytest.raises(Exception, match="unknown time zone 'Mars/Olympus'"):
        env.execute()


def test_text_files_in_other_charsets(env, tmp_path, capfd):
    from superflow.datastream.connectors.file_system import FileSource, StreamFormat
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café\ngrüße\n".encode("latin-1"))
    assert sorted(env.read_text_file(str(latin), "ISO-8859-1").execute_and_collect()) == \
        ["café", "grüße"]
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format("windows-1252"), str(latin)).build()
    assert sorted(env.from_source(source, WatermarkStrategy.no_watermarks(), "latin")
                  .execute_and_collect()) == ["café", "grüße"]
    # Read as UTF-8, the bad bytes are U+FFFD, as Java reads them, with a warning.
    assert sorted(env.read_text_file(str(latin)).execute_and_collect()) == \
        ["caf\ufffd", "gr\ufffd\ufffde"]
    assert "latin1.txt: 2 line(s) were not valid UTF-8" in capfd.readouterr().err
    with pytest.raises(ValueError, match="ASCII-compatible"):
        env.read_text_file(str(latin), "UTF-16")
    with pytest.raises(ValueError, match="unknown charset 'klingon'"):
        env.read_text_file(str(latin), "klingon")


def test_pyflink_dependency_methods_are_accepted(env, tmp_path):
    module = tmp_path / "helper_module_for_superflow.py"
    module.write_text("def triple(x):\n    return 3 * x\n")
    env.add_jars("file:///nowhere/flink-connector.jar").add_classpaths("file:///nowhere")
    env.add_python_file(str(module))
    import helper_module_for_superflow
    assert sorted(env.from_collection([1, 2]).map(helper_module_for_superflow.triple)
                  .execute_and_collect()) == [3, 6]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("")
    env.set_python_requirements(str(requirements))
    env.register_cached_file(str(module), "helper")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        env.add_python_file(str(tmp_path / "missing.py"))
    with pytest.raises(NotImplementedError, match="from_collection"):
        env.add_source(object())


def test_an_aggregation_position_outside_the_declared_tuple_is_refused_when_built(env):
    pairs = env.from_collection([("a", 1)], type_info=Types.TUPLE([Types.STRING(), Types.INT()]))
    with pytest.raises(ValueError, match=r"sum\(5\): there is no field 5 of the declared TUPLE"):
        pairs.key_by(lambda r: r[0]).sum(5)
    with pytest.raises(ValueError, match="no field -1"):
        env.from_collection([("a", 1)]).key_by(lambda r: r[0]).max(-1)
    with pytest.raises(TypeError, match="field position or name"):
        pairs.key_by(lambda r: r[0]).min_by(1.5)
