"""The broadcast state pattern: ``broadcast(descriptors)``, ``connect`` and
``(Keyed)BroadcastProcessFunction``, at one and two processes, with checkpoints."""

import os

import pytest

from superflow.common import JobExecutionError, RestartStrategies, Types, WatermarkStrategy
from superflow.common.watermark_strategy import TimestampAssigner
from superflow.datastream import (
    BroadcastProcessFunction,
    KeyedBroadcastProcessFunction,
    OutputTag,
    StreamExecutionEnvironment,
)
from superflow.datastream.state import ListStateDescriptor, MapStateDescriptor

THRESHOLDS = MapStateDescriptor("thresholds", Types.STRING(), Types.INT())
MAX_TIME = 2 ** 62


class Index(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[-1]


class AboveThreshold(KeyedBroadcastProcessFunction):
    """Keeps each key's readings until the end of the input (an event-time timer), then
    emits those above the key's threshold as the broadcast rules finally say."""

    def open(self, ctx):
        self.readings = ctx.get_list_state(ListStateDescriptor("readings", Types.INT()))

    def process_element(self, value, ctx):
        self.readings.add(value[1])
        ctx.timer_service().register_event_time_timer(MAX_TIME)

    def process_broadcast_element(self, value, ctx):
        key, threshold = value[0], value[1]
        state = ctx.get_broadcast_state(THRESHOLDS)
        if threshold is None:
            state.remove(key)
        else:
            state.put(key, threshold)

    def on_timer(self, timestamp, ctx):
        rules = ctx.get_broadcast_state(THRESHOLDS)
        key = ctx.get_current_key()
        limit = rules.get(key)
        if limit is None:
            yield key, "no rule", sorted(self.readings.get())
        else:
            yield key, limit, sorted(r for r in self.readings.get() if r > limit)


def readings():
    # (sensor, reading, time)
    return [(f"s{i % 3}", (i * 37) % 100, i) for i in range(60)]


def rules():
    # (sensor, threshold or None to remove, time): s0's rule changes, s2's is removed.
    return [("s0", 90, 0), ("s1", 50, 1), ("s2", 10, 2), ("s0", 40, 3), ("s2", None, 4)]


def expected():
    final = {"s0": 40, "s1": 50}
    out = []
    for key in ("s0", "s1", "s2"):
        values = sorted(r for s, r, _ in readings() if s == key)
        if key in final:
            out.append((key, final[key], [v for v in values if v > final[key]]))
        else:
            out.append((key, "no rule", values))
    return out


def build(env, fail_marker=None):
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(Index())

    def maybe_fail(r):
        if fail_marker is not None and r[2] == 40 and not os.path.exists(fail_marker):
            open(fail_marker, "w").close()
            raise RuntimeError("injected failure")
        return r

    main = (env.from_collection(readings()).assign_timestamps_and_watermarks(strategy)
            .map(maybe_fail).uid("fail"))
    broadcast = (env.from_collection(rules()).set_parallelism(1)
                 .assign_timestamps_and_watermarks(strategy).broadcast(THRESHOLDS))
    return (main.key_by(lambda r: r[0]).connect(broadcast).process(AboveThreshold())
            .uid("above"))


@pytest.mark.parametrize("parallelism", [1, 2])
def test_keyed_broadcast_state_is_read_by_every_key_with_its_keyed_state_and_timers(
        parallelism):
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    assert sorted(build(env).execute_and_collect()) == expected()


@pytest.mark.parametrize("parallelism", [1, 2])
def test_broadcast_state_is_restored_after_a_failure(tmp_path, parallelism):
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.enable_checkpointing(5)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    stream = build(env, str(tmp_path / "failed"))
    node = stream._add("collect")
    result = env.execute("broadcast recovery")
    assert result.get_restarts() == 1
    assert sorted(result._collected[node["id"]]) == expected()


class Tagger(BroadcastProcessFunction):
    """Plain broadcast: every subtask sees every rule in order; records are tagged with
    what the subtask knows when they arrive."""

    def open(self, ctx):
        self.subtask = ctx.get_index_of_this_subtask()

    def process_element(self, value, ctx):
        known = ctx.get_broadcast_state(THRESHOLDS)
        yield "record", value, known.contains(value)
        if value == "side":
            yield OutputTag("side", Types.STRING()), value

    def process_broadcast_element(self, value, ctx):
        state = ctx.get_broadcast_state(THRESHOLDS)
        state.put(value, len(state.keys()))
        yield "rule", self.subtask, value, state.get(value), sorted(state.keys())


def test_a_plain_broadcast_reaches_every_subtask_in_order(env2):
    words = env2.from_collection(["a", "b", "side", "c"])
    broadcast = env2.from_collection(["x", "y", "z"]).set_parallelism(1).broadcast(THRESHOLDS)
    out = words.connect(broadcast).process(Tagger())
    side = out.get_side_output(OutputTag("side", Types.STRING()))
    side_records = list(side.execute_and_collect())
    # execute_and_collect ran the whole job; run it again for the main output.
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    words = env.from_collection(["a", "b", "side", "c"])
    broadcast = env.from_collection(["x", "y", "z"]).set_parallelism(1).broadcast(THRESHOLDS)
    results = list(words.connect(broadcast).process(Tagger()).execute_and_collect())
    rules_seen = sorted(r for r in results if r[0] == "rule")
    # Each of the two subtasks saw the three rules in their order, and its own state
    # grew as they came.
    assert rules_seen == sorted(
        ("rule", subtask, rule, i, ["x", "y", "z"][:i + 1])
        for subtask in range(2) for i, rule in enumerate(["x", "y", "z"]))
    records = sorted(r for r in results if r[0] == "record")
    assert [r[1] for r in records] == ["a", "b", "c", "side"]
    assert all(r[2] is False for r in records)
    assert side_records == ["side"]


def test_broadcast_needs_map_state_descriptors_and_the_right_function(env):
    with pytest.raises(TypeError, match="MapStateDescriptor"):
        env.from_collection([1]).broadcast("rules")
    broadcast = env.from_collection([1]).broadcast(THRESHOLDS)
    with pytest.raises(TypeError, match="needs a keyed stream"):
        env.from_collection([1]).connect(broadcast).process(AboveThreshold())
    with pytest.raises(TypeError, match="takes a BroadcastProcessFunction .missing process_element"):
        env.from_collection([1]).connect(broadcast).process(object())


class ReadsUndeclared(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        ctx.get_broadcast_state(MapStateDescriptor("other", Types.STRING(), Types.INT()))

    def process_broadcast_element(self, value, ctx):
        pass


class WritesFromTheBroadcastSideOutput(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        pass

    def process_broadcast_element(self, value, ctx):
        yield OutputTag("side", Types.STRING()), value


class WritesReadOnly(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        ctx.get_broadcast_state(THRESHOLDS).put("k", 1)

    def process_broadcast_element(self, value, ctx):
        pass


@pytest.mark.parametrize("function,message", [
    (ReadsUndeclared(), "broadcast state 'other' was not declared"),
    (WritesFromTheBroadcastSideOutput(), "process_broadcast_element yielded a record for side output 'side'"),
    (WritesReadOnly(), "'ReadOnlyBroadcastState' object has no attribute 'put'"),
])
def test_misuse_of_broadcast_state_fails_the_job_naming_it(env, function, message):
    broadcast = env.from_collection(["r"]).broadcast(THRESHOLDS)
    env.from_collection(["a"]).connect(broadcast).process(function).print()
    with pytest.raises(JobExecutionError, match=message):
        env.execute()
