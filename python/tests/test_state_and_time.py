"""Keyed state and timers from Python, event time, and PyFlink's documented examples."""

from collections import Counter

import pytest

from superflow.common import Duration, JobExecutionError, Time, Types, WatermarkStrategy
from superflow.common.watermark_strategy import TimestampAssigner
from superflow.datastream import (
    AggregateFunction,
    KeyedProcessFunction,
    MapFunction,
    ProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
    TimeDomain,
)
from superflow.datastream.state import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)


def collect(stream):
    return list(stream.execute_and_collect())


class CountPerKey(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext):
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))

    def process_element(self, value, ctx):
        c = (self.count.value() or 0) + 1
        self.count.update(c)
        yield ctx.get_current_key(), c


@pytest.mark.parametrize("parallelism", [1, 2])
def test_value_state_counts_per_key(parallelism):
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    data = [("a", 1), ("b", 1), ("a", 1), ("c", 1), ("a", 1), ("b", 1)]
    out = collect(env.from_collection(data).key_by(lambda x: x[0]).process(CountPerKey()))
    assert sorted(out) == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("c", 1)]


def test_list_map_reducing_and_aggregating_state(env):
    class Average(AggregateFunction):
        def create_accumulator(self):
            return (0, 0)

        def add(self, value, acc):
            return (acc[0] + value, acc[1] + 1)

        def get_result(self, acc):
            return acc[0] / acc[1]

    class Everything(KeyedProcessFunction):
        def open(self, ctx):
            self.seen = ctx.get_list_state(ListStateDescriptor("seen", Types.INT()))
            self.by_parity = ctx.get_map_state(
                MapStateDescriptor("parity", Types.STRING(), Types.INT()))
            self.total = ctx.get_reducing_state(
                ReducingStateDescriptor("total", lambda a, b: a + b, Types.INT()))
            self.avg = ctx.get_aggregating_state(
                AggregatingStateDescriptor("avg", Average(), Types.TUPLE([])))

        def process_element(self, value, ctx):
            v = value[1]
            self.seen.add(v)
            parity = "even" if v % 2 == 0 else "odd"
            self.by_parity.put(parity, (self.by_parity.get(parity) or 0) + 1)
            self.total.add(v)
            self.avg.add(v)
            if v == 0:
                self.seen.clear()
                self.by_parity.remove("even")
            yield (ctx.get_current_key(), list(self.seen.get()), sorted(self.by_parity.items()),
                   self.total.get(), self.avg.get(), self.by_parity.contains("odd"))

    data = [("k", 1), ("k", 2), ("j", 5), ("k", 0), ("k", 3)]
    out = collect(env.from_collection(data).key_by(lambda x: x[0]).process(Everything()))
    assert out == [
        ("k", [1], [("odd", 1)], 1, 1.0, True),
        ("k", [1, 2], [("even", 1), ("odd", 1)], 3, 1.5, True),
        ("j", [5], [("odd", 1)], 5, 5.0, True),
        ("k", [], [("odd", 1)], 3, 1.0, True),
        ("k", [3], [("odd", 2)], 6, 1.5, True),
    ]


def test_value_state_clear_and_update_to_none(env):
    class Toggle(KeyedProcessFunction):
        def open(self, ctx):
            self.flag = ctx.get_state(ValueStateDescriptor("flag", Types.BOOLEAN()))

        def process_element(self, value, ctx):
            if self.flag.value():
                self.flag.clear()
                yield "off"
            else:
                self.flag.update(True)
                yield "on"

    out = collect(env.from_collection([1, 1, 1, 2]).key_by(lambda x: x).process(Toggle()))
    assert out == ["on", "off", "on", "on"]


def test_keyed_state_outside_a_keyed_stream_is_an_error(env):
    class Wrong(MapFunction):
        def open(self, ctx):
            ctx.get_state(ValueStateDescriptor("x", Types.INT()))

        def map(self, value):
            return value

    env.from_collection([1]).map(Wrong()).print()
    with pytest.raises(JobExecutionError, match="only available on a keyed stream"):
        env.execute()


def test_state_declared_twice_is_an_error(env):
    class Twice(KeyedProcessFunction):
        def open(self, ctx):
            ctx.get_state(ValueStateDescriptor("x"))
            ctx.get_list_state(ListStateDescriptor("x"))

        def process_element(self, value, ctx):
            yield value

    env.from_collection([1]).key_by(lambda x: x).process(Twice()).print()
    with pytest.raises(JobExecutionError, match="declared twice"):
        env.execute()


def test_ttl_config_takes_pyflinks_builder_calls_and_rejects_bad_ones():
    config = (StateTtlConfig.new_builder(Time.seconds(1))
              .update_ttl_on_read_and_write()
              .return_expired_if_not_cleaned_up()
              .use_processing_time()
              .cleanup_full_snapshot()
              .cleanup_incrementally(10, False)
              .cleanup_in_rocksdb_compact_filter(500)
              .build())
    assert config.ttl_ms == 1000
    assert config.get_update_type() == StateTtlConfig.UpdateType.OnReadAndWrite
    assert config.get_state_visibility() == \
        StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp
    assert config._engine() == (1000, True, True, True, (10, False), 500)
    default = StateTtlConfig.new_builder(Time.seconds(1)).build()
    assert default._engine() == (1000, False, False, False, (5, False), 1000)
    off = StateTtlConfig.new_builder(Time.seconds(1)).disable_cleanup_in_background().build()
    assert off._engine()[4:] == (None, None)
    explicit = (StateTtlConfig.new_builder(Time.seconds(1)).disable_cleanup_in_background()
                .cleanup_incrementally(3, True).build())
    assert explicit._engine()[4:] == ((3, True), None)
    ValueStateDescriptor("v", Types.INT()).enable_time_to_live(config)
    with pytest.raises(ValueError, match="unknown update type"):
        StateTtlConfig.new_builder(Time.seconds(1)).set_update_type("Sometimes")
    with pytest.raises(ValueError, match="unknown state visibility"):
        StateTtlConfig.new_builder(Time.seconds(1)).set_state_visibility("Maybe")
    with pytest.raises(ValueError, match="must be positive"):
        StateTtlConfig.new_builder(Time.milliseconds(0))
    with pytest.raises(TypeError, match="Time or Duration"):
        StateTtlConfig.new_builder(5)
    with pytest.raises(ValueError, match="cleanup_size"):
        StateTtlConfig.new_builder(Time.seconds(1)).cleanup_incrementally(0)
    with pytest.raises(ValueError, match="query_time_after_num_entries"):
        StateTtlConfig.new_builder(Time.seconds(1)).cleanup_in_rocksdb_compact_filter(-1)
    with pytest.raises(TypeError, match="takes a StateTtlConfig"):
        ValueStateDescriptor("v").enable_time_to_live(1000)


class TtlProbe(KeyedProcessFunction):
    """("write", v) sets the value, ("sleep", s) waits s seconds, ("read",) yields what
    the state gives. Sleeps are lower bounds on the time that passes, so a value older
    than its TTL is surely expired; the TTLs leave a wide margin the other way."""

    def __init__(self, ttl_config):
        self.ttl_config = ttl_config

    def open(self, runtime_context):
        descriptor = ValueStateDescriptor("v", Types.PICKLED_BYTE_ARRAY())
        descriptor.enable_time_to_live(self.ttl_config)
        self.state = runtime_context.get_state(descriptor)

    def process_element(self, value, ctx):
        import time
        if value[1] == "write":
            self.state.update(value[2])
        elif value[1] == "sleep":
            time.sleep(value[2])
        else:
            yield self.state.value()


def ttl_run(env, ttl_config, steps):
    data = [("k",) + step for step in steps]
    return collect(env.from_collection(data).key_by(lambda x: x[0]).process(TtlProbe(ttl_config)))


def test_state_expires_after_its_ttl_in_processing_time(env):
    ttl = StateTtlConfig.new_builder(Time.milliseconds(200)).build()
    assert ttl_run(env, ttl, [("write", 1), ("read",), ("sleep", 0.4), ("read",),
                              ("write", 2), ("read",)]) == [1, None, 2]


@pytest.mark.parametrize("update", ["OnCreateAndWrite", "OnReadAndWrite"])
def test_reads_restart_the_ttl_only_with_on_read_and_write(env, update):
    ttl = StateTtlConfig.new_builder(Time.seconds(1)).set_update_type(update).build()
    # Six reads 0.3 s apart: 1.8 s after the write, more than the TTL, yet never more
    # than 0.3 s after the last read.
    steps = [("write", "x")] + [("sleep", 0.3), ("read",)] * 6
    out = ttl_run(env, ttl, steps)
    if update == "OnReadAndWrite":
        assert out == ["x"] * 6
    else:
        assert out[-1] is None


@pytest.mark.parametrize("update", ["OnCreateAndWrite", "OnReadAndWrite"])
def test_an_expired_value_may_be_returned_once_if_not_cleaned_up(env, update):
    # Without background cleanup, which checks the one key as it is loaded.
    ttl = (StateTtlConfig.new_builder(Time.milliseconds(200))
           .set_update_type(update)
           .return_expired_if_not_cleaned_up()
           .disable_cleanup_in_background()
           .build())
    # The expired value is returned once, and a read of it renews nothing.
    assert ttl_run(env, ttl, [("write", 1), ("sleep", 0.4), ("read",), ("read",)]) == [1, None]



def element_ttl_state(kind, ttl_ms=200, configure=lambda b: b):
    """A list or map state with a TTL, driven by hand: `_load(value, now)` is what the
    engine calls before each call, with the time, and `_store()` what it keeps after."""
    from superflow.datastream import state as states
    descriptor = (ListStateDescriptor("elements") if kind == "list"
                  else MapStateDescriptor("entries"))
    descriptor.enable_time_to_live(
        configure(StateTtlConfig.new_builder(Time.milliseconds(ttl_ms))).build())
    return states.ListState(descriptor) if kind == "list" else states.MapState(descriptor)


def test_list_state_elements_expire_one_by_one():
    state = element_ttl_state("list")
    state._load(None, 1000)
    state.add("a")
    state._load(state._store(), 1150)
    state.add_all(["b", "c"])
    kept = state._store()
    state._load(kept, 1199)
    assert list(state.get()) == ["a", "b", "c"] and not state._dirty
    # At 1200 "a" is 200 ms old: gone as the key is loaded, the rest stays.
    state._load(kept, 1200)
    assert state._dirty and list(state.get()) == ["b", "c"]
    assert state._store() == [(1150, "b"), (1150, "c")]
    state._load(state._store(), 1350)
    assert list(state.get()) == [] and state._store() is None


def test_list_state_renews_read_elements_with_on_read_and_write():
    state = element_ttl_state("list", configure=lambda b: b.update_ttl_on_read_and_write())
    state._load(None, 1000)
    state.add("a")
    state._load(state._store(), 1100)
    state.add("b")
    state._load(state._store(), 1190)
    assert list(state) == ["a", "b"]
    state._load(state._store(), 1380)
    assert list(state.get()) == ["a", "b"]


def test_list_state_returns_expired_elements_once_if_asked():
    state = element_ttl_state("list", configure=lambda b: b.return_expired_if_not_cleaned_up())
    state._load(None, 1000)
    state.add("a")
    state._load(state._store(), 1100)
    state.add("b")
    state._load(state._store(), 1250)
    assert list(state.get()) == ["a", "b"]
    state._load(state._store(), 1250)
    assert list(state.get()) == ["b"]


def test_map_state_entries_expire_one_by_one_and_unread_ones_go_too():
    state = element_ttl_state("map")
    state._load(None, 1000)
    state.put_all({"a": 1, "b": 2})
    state._load(state._store(), 1150)
    state.put("c", 3)
    state.put("a", 10)
    kept = state._store()
    # At 1200 "b" expired: the load drops it although nothing asks for it.
    state._load(kept, 1200)
    assert state._dirty and state._store()[1] == {"a": (1150, 10), "c": (1150, 3)}
    assert state.get("b") is None and not state.contains("b")
    assert sorted(state.items()) == [("a", 10), ("c", 3)]
    state._load(state._store(), 1350)
    assert state.is_empty() and state._store() is None


def test_map_state_renews_an_entry_on_read_with_on_read_and_write():
    state = element_ttl_state("map", configure=lambda b: b.update_ttl_on_read_and_write())
    state._load(None, 1000)
    state.put_all({"a": 1, "b": 2})
    state._load(state._store(), 1150)
    assert state.get("a") == 1
    state._load(state._store(), 1250)
    assert sorted(state.keys()) == ["a"]


def test_map_state_returns_an_expired_entry_once_if_asked():
    state = element_ttl_state("map", configure=lambda b: b.return_expired_if_not_cleaned_up())
    state._load(None, 1000)
    state.put("a", 1)
    state._load(state._store(), 1300)
    assert state.get("a") == 1
    assert state.get("a") is None and state._store() is None


@pytest.mark.parametrize("kind", ["list", "map"])
def test_a_ttl_on_list_or_map_state_written_without_one_is_refused(kind):
    state = element_ttl_state(kind)
    with pytest.raises(ValueError, match="state '(elements|entries)' was written without"):
        state._load([1, 2] if kind == "list" else {"a": 1}, 1000)


class ElementTtlProbe(KeyedProcessFunction):
    """("add", v) adds to a list state and puts into a map state, ("sleep", s) waits s
    seconds, ("read",) yields what both hold."""

    def open(self, runtime_context):
        ttl = StateTtlConfig.new_builder(Time.seconds(1)).build()
        elements = ListStateDescriptor("elements", Types.STRING())
        elements.enable_time_to_live(ttl)
        entries = MapStateDescriptor("entries", Types.STRING(), Types.INT())
        entries.enable_time_to_live(ttl)
        self.elements = runtime_context.get_list_state(elements)
        self.entries = runtime_context.get_map_state(entries)

    def process_element(self, value, ctx):
        import time
        if value[1] == "add":
            self.elements.add(value[2])
            self.entries.put(value[2], len(value[2]))
        elif value[1] == "sleep":
            time.sleep(value[2])
        else:
            yield list(self.elements.get()), sorted(self.entries.items())


def test_list_and_map_elements_expire_one_by_one_in_a_job(env):
    # "old" is more than the TTL older than the read; "new" was added just before it.
    steps = [("add", "old"), ("read",), ("sleep", 1.2), ("add", "new"), ("read",)]
    data = [("k",) + step for step in steps]
    out = collect(env.from_collection(data).key_by(lambda x: x[0]).process(ElementTtlProbe()))
    assert out == [(["old"], [("old", 3)]), (["new"], [("new", 3)])]


class SecondTimestamps(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[1]


def test_event_time_timers_fire_with_the_watermark(env):
    class Deadline(KeyedProcessFunction):
        def process_element(self, value, ctx):
            ctx.timer_service().register_event_time_timer(ctx.timestamp() + 10)
            yield ("seen", ctx.get_current_key(), ctx.timestamp())

        def on_timer(self, timestamp, ctx):
            assert ctx.time_domain() == TimeDomain.EVENT_TIME
            yield ("timer", ctx.get_current_key(), timestamp, ctx.timer_service().current_watermark())

    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        SecondTimestamps())
    data = [("a", 1), ("b", 5), ("a", 30), ("b", 31)]
    out = collect(env.from_collection(data).assign_timestamps_and_watermarks(strategy)
                  .key_by(lambda x: x[0]).process(Deadline()))
    seen = [o for o in out if o[0] == "seen"]
    timers = [o[:3] for o in out if o[0] == "timer"]
    assert seen == [("seen", "a", 1), ("seen", "b", 5), ("seen", "a", 30), ("seen", "b", 31)]
    assert sorted(timers) == [("timer", "a", 11), ("timer", "a", 40), ("timer", "b", 15),
                              ("timer", "b", 41)]


def test_deleted_timers_do_not_fire(env):
    class Once(KeyedProcessFunction):
        def process_element(self, value, ctx):
            ctx.timer_service().register_event_time_timer(100)
            if value[1] == 2:
                ctx.timer_service().delete_event_time_timer(100)
            return None

        def on_timer(self, timestamp, ctx):
            yield ctx.get_current_key()

    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(5)) \
        .with_timestamp_assigner(lambda v, ts: v[1])
    out = collect(env.from_collection([("x", 1), ("y", 1), ("x", 2)])
                  .assign_timestamps_and_watermarks(strategy)
                  .key_by(lambda v: v[0]).process(Once()))
    assert out == ["y"]


def test_timers_on_a_non_keyed_stream_are_an_error(env):
    class Wrong(ProcessFunction):
        def process_element(self, value, ctx):
            ctx.timer_service().register_event_time_timer(1)
            yield value

    env.from_collection([1]).process(Wrong()).print()
    with pytest.raises(JobExecutionError, match="only available on a keyed stream"):
        env.execute()


# ----- PyFlink's documented examples -----

WORD_COUNT_DATA = [
    "To be, or not to be,--that is the question:--",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune",
    "Or to take arms against a sea of troubles,",
    "And by opposing end them?--To die,--to sleep,--",
    "No more; and by a sleep to say we end",
    "The heartache, and the thousand natural shocks",
    "That flesh is heir to,--'tis a consummation",
    "Devoutly to be wish'd. To die,--to sleep;--",
    "To sleep! perchance to dream:--ay, there's the rub;",
]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_pyflink_word_count_example(parallelism):
    # PyFlink's examples/datastream/word_count.py, with its built-in data.
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    ds = env.from_collection(WORD_COUNT_DATA)

    def split(line):
        yield from line.split()

    ds = ds.flat_map(split) \
        .map(lambda i: (i, 1), output_type=Types.TUPLE([Types.STRING(), Types.INT()])) \
        .key_by(lambda i: i[0]) \
        .reduce(lambda i, j: (i[0], i[1] + j[1]))
    out = collect(ds)
    final = {}
    for word, count in out:
        final[word] = max(final.get(word, 0), count)
    expected = Counter(w for line in WORD_COUNT_DATA for w in line.split())
    assert final == dict(expected)
    assert final["to"] == 6 and final["To"] == 3 and final["the"] == 4


def test_pyflink_count_with_timeout_example(env):
    # The KeyedProcessFunction example of PyFlink's "Process Function" page: count per
    # key, and emit (key, count) when a key has had no record for 60 s of event time.
    class CountWithTimeoutFunction(KeyedProcessFunction):
        def __init__(self):
            self.state = None

        def open(self, runtime_context: RuntimeContext):
            self.state = runtime_context.get_state(ValueStateDescriptor(
                "my_state", Types.PICKLED_BYTE_ARRAY()))

        def process_element(self, value, ctx):
            current = self.state.value()
            if current is None:
                current = [value[0], 0, 0]
            current[1] += 1
            current[2] = ctx.timestamp()
            self.state.update(current)
            ctx.timer_service().register_event_time_timer(current[2] + 60000)

        def on_timer(self, timestamp, ctx):
            result = self.state.value()
            if timestamp == result[2] + 60000:
                yield result[0], result[1]

    class MyTimestampAssigner(TimestampAssigner):
        def extract_timestamp(self, value, record_timestamp):
            return int(value[2])

    data = [("Alice", 110.1, 1000), ("Bob", 30.2, 2000), ("Alice", 20.0, 3000),
            ("Bob", 53.1, 70000), ("Alice", 13.1, 130000), ("Bob", 3.1, 140000)]
    watermark_strategy = WatermarkStrategy.for_monotonous_timestamps() \
        .with_timestamp_assigner(MyTimestampAssigner())
    out = collect(env.from_collection(data)
                  .assign_timestamps_and_watermarks(watermark_strategy)
                  .key_by(lambda x: x[0])
                  .process(CountWithTimeoutFunction()))
    # The input is read before the first periodic watermark (every 200 ms), so every
    # timer fires on the watermark at the end of the input; only each key's last timer
    # matches its last modification, as in Flink.
    assert sorted(out) == [("Alice", 3), ("Bob", 3)]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_keyed_co_process_function_joins_two_streams_by_key(parallelism, tmp_path):
    from superflow.datastream import KeyedCoProcessFunction
    closed = tmp_path / "closed"

    class Enrich(KeyedCoProcessFunction):
        def close(self):
            # Each subtask appends a line once both inputs ended.
            with open(closed, "a") as f:
                f.write("closed\n")

        def open(self, runtime_context):
            self.name = runtime_context.get_state(ValueStateDescriptor("name", Types.STRING()))
            self.pending = runtime_context.get_list_state(
                ListStateDescriptor("pending", Types.INT()))

        def process_element1(self, value, ctx):
            # An order: enrich it now if the customer is known, else keep it.
            name = self.name.value()
            if name is None:
                self.pending.add(value[1])
            else:
                yield ctx.get_current_key(), name, value[1]

        def process_element2(self, value, ctx):
            self.name.update(value[1])
            for amount in self.pending.get():
                yield ctx.get_current_key(), value[1], amount
            self.pending.clear()

    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    orders = env.from_collection([(1, 10), (2, 20), (1, 11), (3, 30)])
    customers = env.from_collection([(1, "ann"), (2, "bob"), (3, "cy")])
    out = collect(orders.connect(customers).key_by(lambda o: o[0], lambda c: c[0])
                  .process(Enrich()))
    assert sorted(out) == [(1, "ann", 10), (1, "ann", 11), (2, "bob", 20), (3, "cy", 30)]
    assert closed.read_text().splitlines() == ["closed"] * parallelism
    with pytest.raises(TypeError, match="key_by"):
        orders.connect(customers).process(Enrich())
