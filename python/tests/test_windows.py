"""Windows from Python: every assigner, and reduce / aggregate / process / apply, with
allowed lateness and late data, against results worked out by hand."""

import pytest

from superflow.common import Duration, JobExecutionError, Time, WatermarkStrategy
from superflow.datastream import (
    AggregateFunction,
    OutputTag,
    ProcessWindowFunction,
    StreamExecutionEnvironment,
    WindowFunction,
)
from superflow.datastream.window import (
    CountWindow,
    EventTimeSessionWindows,
    SlidingEventTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
)


def collect(stream):
    return list(stream.execute_and_collect())


def timed(env, data, bound_ms=0):
    strategy = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(bound_ms))
                .with_timestamp_assigner(lambda v, ts: v[1]))
    return env.from_collection(data).assign_timestamps_and_watermarks(strategy)


# (key, event time ms, value)
SENSORS = [("kitchen", 1000, 20), ("garage", 2000, 5), ("kitchen", 9000, 2),
           ("kitchen", 12000, 7), ("garage", 15000, 8)]


class WithWindow(ProcessWindowFunction):
    def process(self, key, context, elements):
        w = context.window()
        yield key, w.start, w.end, sum(e[2] for e in elements), len(elements)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_tumbling_event_time_process(parallelism):
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    out = collect(timed(env, SENSORS).key_by(lambda v: v[0])
                  .window(TumblingEventTimeWindows.of(Time.seconds(10))).process(WithWindow()))
    assert sorted(out) == [("garage", 0, 10000, 5, 1), ("garage", 10000, 20000, 8, 1),
                           ("kitchen", 0, 10000, 22, 2), ("kitchen", 10000, 20000, 7, 1)]


def test_reduce_with_and_without_a_window_function(env):
    def add(a, b):
        return (a[0], a[1], a[2] + b[2])

    out = collect(timed(env, SENSORS).key_by(lambda v: v[0])
                  .window(TumblingEventTimeWindows.of(Time.seconds(10))).reduce(add))
    assert sorted(out) == [("garage", 2000, 5), ("garage", 15000, 8), ("kitchen", 1000, 22),
                           ("kitchen", 12000, 7)]

    class Apply(WindowFunction):
        def apply(self, key, window, inputs):
            assert isinstance(window, TimeWindow)
            for total in inputs:
                yield key, window.max_timestamp(), total[2]

    env2 = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    out = collect(timed(env2, SENSORS).key_by(lambda v: v[0])
                  .window(TumblingEventTimeWindows.of(Time.seconds(10))).reduce(add, Apply()))
    assert sorted(out) == [("garage", 9999, 5), ("garage", 19999, 8), ("kitchen", 9999, 22),
                           ("kitchen", 19999, 7)]


class Average(AggregateFunction):
    def create_accumulator(self):
        return (0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + value[2], accumulator[1] + 1)

    def get_result(self, accumulator):
        return accumulator[0] / accumulator[1]

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


def test_aggregate_sliding_windows(env):
    out = collect(timed(env, SENSORS).key_by(lambda v: v[0])
                  .window(SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(5)))
                  .aggregate(Average(), WithKeyAndWindow()))
    assert sorted(out) == [
        ("garage", -5000, 5000, 5.0), ("garage", 0, 10000, 5.0), ("garage", 10000, 20000, 8.0),
        ("garage", 15000, 25000, 8.0), ("kitchen", -5000, 5000, 20.0),
        ("kitchen", 0, 10000, 11.0), ("kitchen", 5000, 15000, 4.5),
        ("kitchen", 10000, 20000, 7.0)]


class WithKeyAndWindow(ProcessWindowFunction):
    def process(self, key, context, elements):
        for average in elements:
            yield key, context.window().start, context.window().end, average


def test_session_windows_merge(env):
    clicks = [("u", 1000, 1), ("u", 2500, 1), ("u", 9000, 1), ("v", 1000, 1), ("u", 3000, 1)]
    out = collect(timed(env, clicks, bound_ms=5000).key_by(lambda v: v[0])
                  .window(EventTimeSessionWindows.with_gap(Time.seconds(2))).process(WithWindow()))
    assert sorted(out) == [("u", 1000, 5000, 3, 3), ("u", 9000, 11000, 1, 1),
                           ("v", 1000, 3000, 1, 1)]


def test_count_windows_tumbling_and_sliding(env):
    data = [("a", i, i) for i in range(1, 8)]

    class Values(ProcessWindowFunction):
        def process(self, key, context, elements):
            assert isinstance(context.window(), CountWindow)
            yield [e[2] for e in elements]

    out = collect(env.from_collection(data).key_by(lambda v: v[0]).count_window(3)
                  .process(Values()))
    assert out == [[1, 2, 3], [4, 5, 6]]
    env2 = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    out = collect(env2.from_collection(data).key_by(lambda v: v[0]).count_window(3, 2)
                  .process(Values()))
    # As PyFlink: windows of 3 from every 2nd record, each fired when full.
    assert out == [[1, 2, 3], [3, 4, 5], [5, 6, 7]]


def test_allowed_lateness_and_a_late_side_output_keep_on_time_records(env):
    late = OutputTag("late")
    data = [("k", 1000, 1), ("k", 12000, 1), ("k", 2000, 1), ("k", 25000, 1), ("k", 3000, 1)]
    windowed = (timed(env, data).key_by(lambda v: v[0])
                .window(TumblingEventTimeWindows.of(Time.seconds(10)))
                .allowed_lateness(Time.seconds(15)).side_output_late_data(late)
                .process(WithWindow()))
    side = windowed.get_side_output(late)
    side.map(lambda v: v).add_sink(lambda v: None)
    out = collect(windowed)
    # With no watermark before the end of the input, nothing is late: every record is in
    # its window when the final watermark fires them.
    assert sorted(out) == [("k", 0, 10000, 3, 3), ("k", 10000, 20000, 1, 1),
                           ("k", 20000, 30000, 1, 1)]


def test_window_sum(env):
    out = collect(timed(env, SENSORS).key_by(lambda v: v[0])
                  .window(TumblingEventTimeWindows.of(Time.seconds(20))).sum(2))
    assert sorted(out) == [("garage", 2000, 13), ("kitchen", 1000, 29)]


def test_processing_time_windows_still_open_at_the_end_are_dropped(env):
    # As in Flink: the end of a bounded input advances event time to the end, not the
    # wall clock, so an hour-long processing-time window never fires.
    out = collect(env.from_collection([("a", 0, 1), ("a", 0, 2)]).key_by(lambda v: v[0])
                  .window(TumblingProcessingTimeWindows.of(Time.hours(1)))
                  .reduce(lambda a, b: (a[0], 0, a[2] + b[2])))
    assert out == []


def test_window_errors_are_clear(env):
    with pytest.raises(TypeError, match="WindowAssigner"):
        env.from_collection([1]).key_by(lambda v: v).window(10)
    with pytest.raises(ValueError, match="positive"):
        TumblingEventTimeWindows.of(Time.seconds(0))
    with pytest.raises(TypeError, match="AggregateFunction"):
        env.from_collection([1]).key_by(lambda v: v).count_window(2).aggregate(lambda a: a)

    class Broken(ProcessWindowFunction):
        def process(self, key, context, elements):
            raise RuntimeError(f"cannot evaluate {key}")

    env.from_collection([("x", 1)]).key_by(lambda v: v[0]).count_window(1) \
        .process(Broken()).print()
    with pytest.raises(JobExecutionError, match="RuntimeError: cannot evaluate x"):
        env.execute()


@pytest.mark.parametrize("parallelism", [1, 2])
def test_interval_join(parallelism):
    from superflow.datastream import ProcessJoinFunction

    class Pair(ProcessJoinFunction):
        def process_element(self, left, right, ctx):
            assert ctx.get_timestamp() == max(left[1], right[1])
            yield left[0], left[2], right[2], ctx.get_left_timestamp(), ctx.get_right_timestamp()

    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    clicks = timed(env, [("u", 1000, "click1"), ("u", 5000, "click2"), ("v", 1000, "click3")])
    buys = timed(env, [("u", 1500, "buy1"), ("u", 9000, "buy2"), ("v", 3000, "buy3")])
    out = collect(clicks.key_by(lambda v: v[0]).interval_join(buys.key_by(lambda v: v[0]))
                  .between(Time.milliseconds(0), Time.seconds(2)).process(Pair()))
    assert sorted(out) == [("u", "click1", "buy1", 1000, 1500), ("v", "click3", "buy3", 1000, 3000)]
    env2 = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    clicks = timed(env2, [("u", 1000, "click1"), ("v", 1000, "click3")])
    buys = timed(env2, [("u", 1500, "buy1"), ("v", 3000, "buy3")])
    out = collect(clicks.key_by(lambda v: v[0]).interval_join(buys.key_by(lambda v: v[0]))
                  .between(0, 2000).upper_bound_exclusive().process(Pair()))
    assert sorted(out) == [("u", "click1", "buy1", 1000, 1500)]
    with pytest.raises(ValueError, match="lower bound"):
        clicks.key_by(lambda v: v[0]).interval_join(buys.key_by(lambda v: v[0])).between(5, 1)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_window_join_and_co_group(parallelism):
    from superflow.datastream import CoGroupFunction, JoinFunction

    class Pair(JoinFunction):
        def join(self, first, second):
            return first[0], first[2], second[2]

    class Count(CoGroupFunction):
        def co_group(self, first, second):
            keys = {e[0] for e in first} | {e[0] for e in second}
            yield keys.pop(), len(first), len(second)

    def streams(env):
        a = timed(env, [("u", 1000, "a1"), ("u", 2000, "a2"), ("v", 3000, "a3"), ("w", 12000, "a4")])
        b = timed(env, [("u", 1500, "b1"), ("v", 9000, "b2"), ("v", 15000, "b3")])
        return a, b

    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    a, b = streams(env)
    out = collect(a.join(b).where(lambda e: e[0]).equal_to(lambda e: e[0])
                  .window(TumblingEventTimeWindows.of(Time.seconds(10))).apply(Pair()))
    assert sorted(out) == [("u", "a1", "b1"), ("u", "a2", "b1"), ("v", "a3", "b2")]
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    a, b = streams(env)
    out = collect(a.co_group(b).where(lambda e: e[0]).equal_to(lambda e: e[0])
                  .window(TumblingEventTimeWindows.of(Time.seconds(10))).apply(Count()))
    assert sorted(out) == [("u", 2, 1), ("v", 0, 1), ("v", 1, 1), ("w", 1, 0)]
    with pytest.raises(TypeError, match="after where"):
        a.join(b).window(TumblingEventTimeWindows.of(Time.seconds(1)))
