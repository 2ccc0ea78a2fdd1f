"""Triggers, evictors, global, count and dynamic-session windows from Python: PyFlink's
own window tests, Flink's built-in triggers run by the engine against the same triggers
run in Python (a subclass runs in Python), triggers written in Python with state,
timers and merging, recovery of their state, and clear errors."""

import os
import time

import pytest

from superflow.common import Duration, JobExecutionError, RestartStrategies, Time, Types
from superflow.common import WatermarkStrategy
from superflow.datastream import (
    AllWindowFunction,
    CheckpointingMode,
    ProcessAllWindowFunction,
    ProcessWindowFunction,
    StreamExecutionEnvironment,
    WindowFunction,
)
from superflow.datastream.state import (
    ListStateDescriptor,
    ReducingStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)
from superflow.datastream.window import (
    ContinuousEventTimeTrigger,
    ContinuousProcessingTimeTrigger,
    CountEvictor,
    CountSlidingWindowAssigner,
    CountTrigger,
    CountTumblingWindowAssigner,
    CountWindow,
    DynamicEventTimeSessionWindows,
    EventTimeSessionWindows,
    EventTimeTrigger,
    GlobalWindow,
    GlobalWindows,
    NeverTrigger,
    ProcessingTimeTrigger,
    PurgingTrigger,
    SessionWindowTimeGapExtractor,
    TimeEvictor,
    Trigger,
    TriggerResult,
    TumblingEventTimeWindows,
)


def new_env(parallelism=1):
    return StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)


def second_column_time(stream):
    strategy = (WatermarkStrategy.for_monotonous_timestamps()
                .with_timestamp_assigner(lambda v, ts: int(v[1])))
    return stream.assign_timestamps_and_watermarks(strategy)


class SumWindowFunction(WindowFunction):
    def apply(self, key, window, inputs):
        return [(key, sum(i[0] for i in inputs))]


class CountWindowProcessFunction(ProcessWindowFunction):
    def process(self, key, context, elements):
        return [(key, len([e for e in elements]))]


class Described(ProcessWindowFunction):
    """The window and the values of its elements."""

    def process(self, key, context, elements):
        w = context.window()
        bounds = (w.start, w.end) if hasattr(w, "start") else repr(w)
        yield key, bounds, [e[1] for e in elements]


# PyFlink's tests of count and dynamic-session windows (pyflink/datastream/tests/
# test_window.py), with the results they expect.

def test_pyflink_count_tumbling_window():
    data = [(1, 'hi'), (2, 'hello'), (3, 'hi'), (4, 'hello'), (5, 'hi'), (6, 'hello'),
            (6, 'hello')]
    out = (new_env().from_collection(data).key_by(lambda x: x[1]).count_window(3)
           .apply(SumWindowFunction()).execute_and_collect())
    assert sorted(out) == sorted([('hi', 9), ('hello', 12)])


def test_pyflink_count_sliding_window():
    data = [(1, 'hi'), (2, 'hello'), (3, 'hi'), (4, 'hello'), (5, 'hi'), (6, 'hello')]
    out = (new_env().from_collection(data).key_by(lambda x: x[1])
           .window(CountSlidingWindowAssigner(2, 1)).apply(SumWindowFunction())
           .execute_and_collect())
    assert sorted(out) == sorted([('hello', 6), ('hi', 8), ('hi', 4), ('hello', 10)])


class MySessionWindowTimeGapExtractor(SessionWindowTimeGapExtractor):
    def extract(self, element):
        return element[1]


@pytest.mark.parametrize("assigner", [EventTimeSessionWindows, DynamicEventTimeSessionWindows])
def test_pyflink_event_time_dynamic_gap_session_window(assigner):
    data = [('hi', 1), ('hi', 2), ('hi', 3), ('hi', 4), ('hi', 9), ('hi', 9), ('hi', 15)]
    out = (second_column_time(new_env().from_collection(data)).key_by(lambda x: x[0])
           .window(assigner.with_dynamic_gap(MySessionWindowTimeGapExtractor()))
           .process(CountWindowProcessFunction()).execute_and_collect())
    assert sorted(out) == [('hi', 3), ('hi', 4)]


def test_a_dynamic_gap_may_be_a_function_and_must_be_positive():
    data = [('a', 1), ('a', 3), ('b', 1), ('b', 30)]
    out = (second_column_time(new_env(2).from_collection(data)).key_by(lambda x: x[0])
           .window(EventTimeSessionWindows.with_dynamic_gap(
               lambda e: 5 if e[0] == 'a' else 10))
           .process(Described()).execute_and_collect())
    # A merged session's records come in the order the sessions merged.
    assert sorted((k, w, sorted(v)) for k, w, v in out) == [
        ('a', (1, 8), [1, 3]), ('b', (1, 11), [1]), ('b', (30, 40), [30])]
    env = new_env()
    (second_column_time(env.from_collection(data)).key_by(lambda x: x[0])
     .window(EventTimeSessionWindows.with_dynamic_gap(lambda e: 0))
     .process(Described()).print())
    with pytest.raises(JobExecutionError, match="session gap must be above zero"):
        env.execute()


@pytest.mark.parametrize("parallelism", [1, 2])
def test_count_windows_fire_when_full_with_count_window_ids(parallelism):
    data = [("a", i) for i in range(1, 8)] + [("b", i) for i in range(1, 4)]
    out = (new_env(parallelism).from_collection(data).key_by(lambda v: v[0])
           .count_window(3, 2).process(Described()).execute_and_collect())
    # As PyFlink: windows of 3 records starting every 2nd record, each fired when full.
    assert sorted(out) == [("a", "CountWindow(id=0)", [1, 2, 3]),
                           ("a", "CountWindow(id=1)", [3, 4, 5]),
                           ("a", "CountWindow(id=2)", [5, 6, 7]),
                           ("b", "CountWindow(id=0)", [1, 2, 3])]
    out = (new_env(parallelism).from_collection(data).key_by(lambda v: v[0])
           .window(CountTumblingWindowAssigner.of(2)).reduce(
               lambda a, b: (a[0], a[1] + b[1]), Described()).execute_and_collect())
    assert sorted(out) == [("a", "CountWindow(id=0)", [3]), ("a", "CountWindow(id=1)", [7]),
                           ("a", "CountWindow(id=2)", [11]), ("b", "CountWindow(id=0)", [3])]
    assert CountWindow(2) == CountWindow(2) != CountWindow(3)
    out = (new_env(parallelism).from_collection(data).key_by(lambda v: v[0])
           .count_window(2, 3).process(Described()).execute_and_collect())
    # A slide above the size skips records between windows.
    assert sorted(out) == [("a", "CountWindow(id=0)", [1, 2]),
                           ("a", "CountWindow(id=1)", [4, 5]),
                           ("b", "CountWindow(id=0)", [1, 2])]


class FireAtTwoPurgeAtThree(Trigger):
    """Fires at a window's 2nd record and fires and purges at its 3rd; it checks that it
    is handed the count window itself."""

    def __init__(self):
        self.seen = ValueStateDescriptor("seen")

    def on_element(self, element, timestamp, window, ctx):
        assert isinstance(window, CountWindow), window
        state = ctx.get_partitioned_state(self.seen)
        n = (state.value() or 0) + 1
        state.update(n)
        return {2: TriggerResult.FIRE, 3: TriggerResult.FIRE_AND_PURGE}.get(
            n, TriggerResult.CONTINUE)

    def on_event_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_merge(self, window, ctx):
        raise AssertionError("not a merging trigger")

    def clear(self, window, ctx):
        ctx.get_partitioned_state(self.seen).clear()


@pytest.mark.parametrize("parallelism", [1, 2])
def test_count_windows_take_a_trigger_and_an_evictor_of_the_job(parallelism):
    data = [("a", i) for i in range(1, 8)] + [("b", i) for i in range(1, 4)]

    def run(windowed):
        return sorted(windowed(new_env(parallelism).from_collection(data)
                               .key_by(lambda v: v[0])).process(Described())
                      .execute_and_collect())

    # A Python trigger sees CountWindow(id); the windows still hold 3 records each.
    assert run(lambda k: k.count_window(3).trigger(FireAtTwoPurgeAtThree())) == [
        ("a", "CountWindow(id=0)", [1, 2]), ("a", "CountWindow(id=0)", [1, 2, 3]),
        ("a", "CountWindow(id=1)", [4, 5]), ("a", "CountWindow(id=1)", [4, 5, 6]),
        ("b", "CountWindow(id=0)", [1, 2]), ("b", "CountWindow(id=0)", [1, 2, 3])]
    # As PyFlink: a count trigger of 2 fires windows of 5 at their 2nd and 4th record,
    # and the 5th record, the window's last, fires nothing.
    assert run(lambda k: k.count_window(5).trigger(CountTrigger.of(2))) == [
        ("a", "CountWindow(id=0)", [1, 2]), ("a", "CountWindow(id=0)", [1, 2, 3, 4]),
        ("a", "CountWindow(id=1)", [6, 7]), ("b", "CountWindow(id=0)", [1, 2])]
    assert run(lambda k: k.count_window(4, 2).evictor(CountEvictor.of(2))) == [
        ("a", "CountWindow(id=0)", [3, 4]), ("a", "CountWindow(id=1)", [5, 6])]


def failing_once_at(tmp_path, position):
    """A map that raises once, at the record whose second field is ``position``."""
    marker = str(tmp_path / "failed")

    def fail_once(v):
        if v[1] == position and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("injected failure")
        return v
    return fail_once


def restarting(env, tmp_path):
    """Checkpoints every 5 ms into ``tmp_path`` and restarts at most 3 times."""
    env.enable_checkpointing(5, CheckpointingMode.EXACTLY_ONCE)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "ck"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    return env


def assert_restarted_once_with(stream, env, expected):
    node = stream._add("collect")
    result = env.execute("recovers")
    assert result.get_restarts() == 1
    assert sorted(result._collected[node["id"]]) == expected


def test_count_windows_count_on_after_a_restart(tmp_path):
    def job(fail):
        env = restarting(new_env(2), tmp_path) if fail else new_env(2)
        stream = env.from_collection([(f"k{i % 4}", i) for i in range(3000)])
        if fail:
            stream = stream.map(failing_once_at(tmp_path, 1500)).uid("fail")
        return (stream.key_by(lambda v: v[0]).count_window(7, 3).process(Described())
                .uid("windows"), env)

    clean, _ = job(False)
    expected = sorted(clean.execute_and_collect())
    assert len(expected) == 4 * ((750 - 7) // 3 + 1)
    assert_restarted_once_with(*job(True), expected)


# Flink's triggers run by the engine, and the same triggers run in Python: a subclass
# that changes nothing is called as Python code, with its state kept by the engine.

class PyEventTime(EventTimeTrigger):
    pass


class PyContinuousEventTime(ContinuousEventTimeTrigger):
    pass


class PyCount(CountTrigger):
    pass


class PyPurging(PurgingTrigger):
    pass


def as_python(trigger):
    """The same trigger, run in Python."""
    if isinstance(trigger, PurgingTrigger):
        return PyPurging(as_python(trigger.nested_trigger))
    if isinstance(trigger, ContinuousEventTimeTrigger):
        return PyContinuousEventTime(trigger.interval)
    if isinstance(trigger, CountTrigger):
        return PyCount(trigger._count)
    return PyEventTime()


EVENTS = [("a", t) for t in (0, 3, 7, 12, 14, 15, 23, 31, 33, 50, 52, 64)] + \
         [("b", t) for t in (1, 2, 40, 41, 44, 47)]

BUILT_IN = [
    ("tumbling", TumblingEventTimeWindows.of(Duration.of_millis(20)), EventTimeTrigger.create()),
    ("tumbling", TumblingEventTimeWindows.of(Duration.of_millis(20)), CountTrigger.of(2)),
    ("tumbling", TumblingEventTimeWindows.of(Duration.of_millis(20)),
     PurgingTrigger.of(CountTrigger.of(2))),
    ("tumbling", TumblingEventTimeWindows.of(Duration.of_millis(40)),
     ContinuousEventTimeTrigger.of(Duration.of_millis(10))),
    ("sessions", EventTimeSessionWindows.with_gap(Duration.of_millis(6)), CountTrigger.of(3)),
    ("sessions", EventTimeSessionWindows.with_gap(Duration.of_millis(6)),
     ContinuousEventTimeTrigger.of(Duration.of_millis(5))),
    ("sessions", EventTimeSessionWindows.with_gap(Duration.of_millis(6)),
     PurgingTrigger.of(CountTrigger.of(2))),
]


def fired(trigger, assigner, parallelism, bound_ms):
    strategy = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(bound_ms))
                .with_timestamp_assigner(lambda v, ts: v[1]))
    # Without a bound, in order; with one, out of order within it, so that sessions merge.
    data = sorted(EVENTS, key=lambda e: (e[1] // 10, -e[1]) if bound_ms else e[1])
    return sorted(new_env(parallelism).from_collection(data)
                  .assign_timestamps_and_watermarks(strategy).key_by(lambda v: v[0])
                  .window(assigner).trigger(trigger).process(Described())
                  .execute_and_collect())


@pytest.mark.parametrize("parallelism", [1, 2])
@pytest.mark.parametrize("case", range(len(BUILT_IN)))
def test_built_in_triggers_run_by_the_engine_agree_with_python(case, parallelism):
    _, assigner, trigger = BUILT_IN[case]
    engine = fired(trigger, assigner, parallelism, 10)
    python = fired(as_python(trigger), assigner, parallelism, 10)
    assert engine == python and engine


def test_built_in_triggers_fire_as_in_flink():
    tumbling = TumblingEventTimeWindows.of(Duration.of_millis(20))
    # A count trigger replaces the window's end: a window fires every 2 records only.
    assert fired(CountTrigger.of(2), tumbling, 1, 0) == [
        ("a", (0, 20), [0, 3]), ("a", (0, 20), [0, 3, 7, 12]),
        ("a", (0, 20), [0, 3, 7, 12, 14, 15]), ("a", (20, 40), [23, 31]),
        ("a", (40, 60), [50, 52]), ("b", (0, 20), [1, 2]), ("b", (40, 60), [40, 41]),
        ("b", (40, 60), [40, 41, 44, 47])]
    assert fired(PurgingTrigger.of(CountTrigger.of(2)), tumbling, 1, 0) == [
        ("a", (0, 20), [0, 3]), ("a", (0, 20), [7, 12]), ("a", (0, 20), [14, 15]),
        ("a", (20, 40), [23, 31]), ("a", (40, 60), [50, 52]), ("b", (0, 20), [1, 2]),
        ("b", (40, 60), [40, 41]), ("b", (40, 60), [44, 47])]
    # Every 10 ms of event time from the first record's 10 ms, and at the window's end:
    # b's window [0, 40) at 10, 20, 30 and 39; a's [40, 80) from 50: 60, 70 and 79.
    continuous = fired(ContinuousEventTimeTrigger.of(Duration.of_millis(10)),
                       TumblingEventTimeWindows.of(Duration.of_millis(40)), 1, 0)
    assert continuous.count(("b", (0, 40), [1, 2])) == 4
    assert continuous.count(("b", (40, 80), [40, 41, 44, 47])) == 4
    assert continuous.count(("a", (40, 80), [50, 52, 64])) == 3
    # A never-firing trigger leaves global windows unevaluated; a count trigger fires them.
    env = new_env()
    stream = env.from_collection(EVENTS).key_by(lambda v: v[0]).window(GlobalWindows.create())
    assert list(stream.trigger(NeverTrigger.create()).process(Described())
                .execute_and_collect()) == []
    out = (new_env().from_collection(EVENTS).key_by(lambda v: v[0])
           .window(GlobalWindows.create()).trigger(PurgingTrigger.of(CountTrigger.of(5)))
           .process(Described()).execute_and_collect())
    assert sorted(out) == [("a", "GlobalWindow", [0, 3, 7, 12, 14]),
                           ("a", "GlobalWindow", [15, 23, 31, 33, 50]),
                           ("b", "GlobalWindow", [1, 2, 40, 41, 44])]
    assert GlobalWindow.get() == GlobalWindow()


def test_merged_sessions_add_up_their_counts():
    # Two sessions of one record each and a record bridging them: the merged session
    # has three records, so a count trigger of 3 fires it, in the engine and in Python.
    data = [("k", 0), ("k", 20), ("k", 10)]
    for trigger in (CountTrigger.of(3), PyCount(3)):
        strategy = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(100))
                    .with_timestamp_assigner(lambda v, ts: v[1]))
        out = (new_env().from_collection(data).assign_timestamps_and_watermarks(strategy)
               .key_by(lambda v: v[0]).window(EventTimeSessionWindows.with_gap(
                   Duration.of_millis(10))).trigger(trigger).process(Described())
               .execute_and_collect())
        assert [(k, w, sorted(v)) for k, w, v in out] == [("k", (0, 30), [0, 10, 20])], \
            type(trigger).__name__


# Triggers written in Python.

class FlushOnMarker(Trigger):
    """Fires and purges on a record saying 'flush', with the words seen since (a list in
    value state, which the engine keeps pickled); fires at the window's end otherwise."""

    def __init__(self):
        self.words = ValueStateDescriptor("words")

    def on_element(self, element, timestamp, window, ctx):
        state = ctx.get_partitioned_state(self.words)
        if element[-1] == "flush":
            state.clear()
            return TriggerResult.FIRE_AND_PURGE
        state.update((state.value() or []) + [element[-1]])
        ctx.register_event_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.FIRE if time == window.max_timestamp() else TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_merge(self, window, ctx):
        raise AssertionError("not a merging trigger")

    def clear(self, window, ctx):
        ctx.get_partitioned_state(self.words).clear()
        ctx.delete_event_time_timer(window.max_timestamp())


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_python_trigger_with_object_state_and_timers(parallelism):
    data = [("k", 1, "x"), ("k", 2, "flush"), ("k", 3, "y"), ("k", 4, "z"), ("j", 5, "w"),
            ("k", 12, "v"), ("k", 13, "flush"), ("k", 14, "u")]
    strategy = (WatermarkStrategy.for_monotonous_timestamps()
                .with_timestamp_assigner(lambda v, ts: v[1]))

    class Words(ProcessWindowFunction):
        def process(self, key, context, elements):
            yield key, context.window().start, [e[2] for e in elements]

    # One subtask assigns timestamps, so that each key's records arrive in order.
    timed = new_env(parallelism).from_collection(data).assign_timestamps_and_watermarks(
        strategy).set_parallelism(1)
    out = (timed.key_by(lambda v: v[0]).window(TumblingEventTimeWindows.of(Duration.of_millis(10)))
           .trigger(FlushOnMarker()).process(Words()).execute_and_collect())
    assert sorted(out) == [("j", 0, ["w"]), ("k", 0, ["x", "flush"]), ("k", 0, ["y", "z"]),
                           ("k", 10, ["u"]), ("k", 10, ["v", "flush"])]


class FireOnDistinct(Trigger):
    """A merging trigger: fires a session once it has seen `n` distinct values, kept in
    list state and merged with merge_partitioned_state."""

    def __init__(self, n):
        self.n = n
        self.seen = ListStateDescriptor("seen")
        self.firings = ReducingStateDescriptor("firings", lambda a, b: a + b)

    def on_element(self, element, timestamp, window, ctx):
        seen = ctx.get_partitioned_state(self.seen)
        if element[2] not in seen.get():
            seen.add(element[2])
        if len(set(seen.get())) >= self.n:
            ctx.get_partitioned_state(self.firings).add(1)
            seen.clear()
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def can_merge(self):
        return True

    def on_merge(self, window, ctx):
        ctx.merge_partitioned_state(self.seen)
        ctx.merge_partitioned_state(self.firings)

    def clear(self, window, ctx):
        ctx.get_partitioned_state(self.seen).clear()


def test_a_python_trigger_merges_its_state_with_sessions():
    # Sessions (gap 10) of key k: {0 a, 3 a} and {20 b}; the record at 11 (c) bridges
    # them into one session holding a, b and c: three distinct values, so it fires.
    data = [("k", 0, "a"), ("k", 3, "a"), ("k", 20, "b"), ("k", 11, "c"), ("k", 50, "d")]
    strategy = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(100))
                .with_timestamp_assigner(lambda v, ts: v[1]))
    out = (new_env().from_collection(data).assign_timestamps_and_watermarks(strategy)
           .key_by(lambda v: v[0]).window(EventTimeSessionWindows.with_gap(
               Duration.of_millis(10))).trigger(FireOnDistinct(3)).process(Described())
           .execute_and_collect())
    assert [(k, w, sorted(v)) for k, w, v in out] == [("k", (0, 30), [0, 3, 11, 20])]


def test_evictors_keep_the_last_records_or_the_latest_times():
    data = [("a", t) for t in (1, 2, 3, 8, 9)] + [("b", 4)]
    tumbling = TumblingEventTimeWindows.of(Duration.of_millis(10))

    def run(evictor, trigger=None, parallelism=1):
        windowed = (second_column_time(new_env(parallelism).from_collection(data))
                    .key_by(lambda v: v[0]).window(tumbling))
        if trigger is not None:
            windowed = windowed.trigger(trigger)
        return sorted(windowed.evictor(evictor).process(Described()).execute_and_collect())

    assert run(CountEvictor.of(2)) == [("a", (0, 10), [8, 9]), ("b", (0, 10), [4])]
    assert run(TimeEvictor.of(Duration.of_millis(2)), parallelism=2) == [
        ("a", (0, 10), [8, 9]), ("b", (0, 10), [4])]
    # Evicting after the function: each firing sees what the previous one left.
    assert run(CountEvictor.of(1, do_evict_after=True), CountTrigger.of(2)) == [
        ("a", (0, 10), [1, 2]), ("a", (0, 10), [2, 3, 8])]
    out = (second_column_time(new_env().from_collection(data)).key_by(lambda v: v[0])
           .window(tumbling).evictor(CountEvictor.of(3))
           .reduce(lambda a, b: (a[0], a[1] + b[1])).execute_and_collect())
    assert sorted(out) == [("a", 20), ("b", 4)]


def test_a_continuous_processing_time_trigger_schedules_aligned_firings():
    # Driven by hand, as the engine drives a Python trigger: the state a call leaves is
    # what the next call is handed.
    from superflow.datastream.window import _TriggerContext

    trigger, window = ContinuousProcessingTimeTrigger.of(Duration.of_millis(1000)), GlobalWindow()
    values = {}

    def call(method, *args):
        ctx = _TriggerContext(0, values, None)
        result = getattr(trigger, method)(*args, window, ctx)
        for name, value in ctx._changes().items():
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value
        return result, ctx._ops

    result, ops = call("on_element", ("k", 1), 5)
    assert result == TriggerResult.CONTINUE and len(ops) == 1
    (op, first), = ops
    assert first % 1000 == 0 and first > time.time() * 1000 - 1000
    assert call("on_element", ("k", 2), 6) == (TriggerResult.CONTINUE, [])
    assert call("on_processing_time", first + 1)[0] == TriggerResult.CONTINUE
    result, ops = call("on_processing_time", first)
    assert result == TriggerResult.FIRE and [t for _, t in ops] == [first + 1000]
    _, ops = call("clear")
    assert [t for _, t in ops] == [first + 1000] and values == {}
    # The same trigger in the engine, in a job: nothing is due before the input ends.
    out = list(new_env().from_collection([("k", 1)]).key_by(lambda v: v[0])
               .window(GlobalWindows.create()).trigger(trigger).process(Described())
               .execute_and_collect())
    assert out == []


def test_a_python_trigger_state_survives_a_restart(tmp_path):
    def job(fail):
        env = restarting(new_env(2), tmp_path) if fail else new_env(2)
        words = [f"w{i * i % 7}" for i in range(3000)]
        data = [(f"k{i % 4}", i, words[i]) for i in range(3000)]

        class Words(ProcessWindowFunction):
            def process(self, key, context, elements):
                yield key, context.window().start, len(elements)

        stream = env.from_collection(data)
        if fail:
            stream = stream.map(failing_once_at(tmp_path, 1500)).uid("fail")
        strategy = (WatermarkStrategy.for_monotonous_timestamps()
                    .with_timestamp_assigner(lambda v, ts: v[1]))
        return (stream.assign_timestamps_and_watermarks(strategy).key_by(lambda v: v[0])
                .window(TumblingEventTimeWindows.of(Duration.of_millis(500)))
                .trigger(FireOnDistinct(3)).process(Words()).uid("words"), env)

    clean, env = job(False)
    expected = sorted(clean.execute_and_collect())
    assert len(expected) > 100
    assert_restarted_once_with(*job(True), expected)


# Errors.

class Wrong(Trigger):
    def __init__(self, answer):
        self.answer = answer

    def on_element(self, element, timestamp, window, ctx):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def on_event_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_merge(self, window, ctx):
        pass

    def clear(self, window, ctx):
        ctx.register_event_time_timer("soon")


def windowed(env):
    return (env.from_collection([("a", 1)]).key_by(lambda v: v[0])
            .window(GlobalWindows.create()))


def test_trigger_errors_are_clear():
    env = new_env()
    windowed(env).trigger(Wrong("fire")).process(Described()).print()
    with pytest.raises(JobExecutionError, match="Trigger.on_element returns a TriggerResult, "
                                                "got 'fire'"):
        env.execute()
    env = new_env()
    windowed(env).trigger(Wrong(KeyError("no such rule"))).process(Described()).print()
    with pytest.raises(JobExecutionError, match="(?s)Window.*KeyError: 'no such rule'"):
        env.execute()
    with pytest.raises(TypeError, match="takes a Trigger"):
        windowed(new_env()).trigger(lambda e: True)
    with pytest.raises(ValueError, match="cannot be used with session windows"):
        (new_env().from_collection([("a", 1)]).key_by(lambda v: v[0])
         .window(EventTimeSessionWindows.with_gap(Time.seconds(1))).trigger(Wrong(None)))
    with pytest.raises(TypeError, match="CountEvictor or a TimeEvictor"):
        windowed(new_env()).evictor(3)
    with pytest.raises(ValueError, match="count of at least 1"):
        CountTrigger.of(0)
    with pytest.raises(TypeError, match="window join takes time windows"):
        env = new_env()
        (env.from_collection([1]).join(env.from_collection([2])).where(lambda v: v)
         .equal_to(lambda v: v).window(GlobalWindows.create()))

    class WithTtl(FlushOnMarker):
        def __init__(self):
            super().__init__()
            self.words.enable_time_to_live(StateTtlConfig.new_builder(Time.seconds(1)).build())

    env = new_env()
    windowed(env).trigger(PurgingTrigger.of(WithTtl())).process(Described()).print()
    with pytest.raises(JobExecutionError, match="trigger state 'words' has a time to live"):
        env.execute()


def test_a_bad_timer_from_a_trigger_fails_the_job_with_its_cause():
    # The window is cleared when the final watermark passes its end; the trigger's
    # clear() then asks for a timer at "soon".
    env = new_env()
    (second_column_time(env.from_collection([("a", 1), ("a", 2)])).key_by(lambda v: v[0])
     .window(TumblingEventTimeWindows.of(Duration.of_millis(10)))
     .trigger(Wrong(TriggerResult.CONTINUE)).process(Described()).print())
    with pytest.raises(JobExecutionError, match="timer is an int of milliseconds, got 'soon'"):
        env.execute()


# Windows of a whole stream.

class AllValues(ProcessAllWindowFunction):
    def process(self, context, elements):
        w = context.window()
        yield (w.start, w.end) if hasattr(w, "start") else repr(w), sorted(e[1] for e in elements)


class AllSum(AllWindowFunction):
    def apply(self, window, inputs):
        return [(window.start, sum(i[1] for i in inputs))]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_window_all_evaluates_the_whole_stream_on_one_subtask(parallelism):
    data = [("a", t) for t in (1, 5, 12)] + [("b", t) for t in (3, 14, 25)]
    tumbling = TumblingEventTimeWindows.of(Duration.of_millis(10))
    windowed = second_column_time(new_env(parallelism).from_collection(data)).window_all(tumbling)
    out = windowed.process(AllValues())
    assert out.get_parallelism() == 1
    assert sorted(out.execute_and_collect()) == [((0, 10), [1, 3, 5]), ((10, 20), [12, 14]),
                                                 ((20, 30), [25])]
    out = (second_column_time(new_env(parallelism).from_collection(data)).window_all(tumbling)
           .apply(AllSum()).execute_and_collect())
    assert sorted(out) == [(0, 9), (10, 26), (20, 25)]
    out = (second_column_time(new_env(parallelism).from_collection(data)).window_all(tumbling)
           .reduce(lambda a, b: ("all", a[1] + b[1]), AllValues()).execute_and_collect())
    assert sorted(out) == [((0, 10), [9]), ((10, 20), [26]), ((20, 30), [25])]
    out = (new_env(parallelism).from_collection(data).count_window_all(4)
           .process(AllValues()).execute_and_collect())
    assert [len(values) for _, values in out] == [4]
    out = (second_column_time(new_env(parallelism).from_collection(data))
           .window_all(GlobalWindows.create()).trigger(CountTrigger.of(3))
           .evictor(CountEvictor.of(2)).process(AllValues()).execute_and_collect())
    assert [len(values) for _, values in out] == [2, 2]
