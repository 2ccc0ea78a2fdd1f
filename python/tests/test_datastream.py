"""The DataStream API from Python: every transformation, partitioner and sink, checked
against the output it must produce, on one process and on two."""

import os
import re
from collections import Counter

import pytest

from superflow import StreamExecutionEnvironment as TopLevelEnvironment
from superflow.common import Configuration, JobExecutionError, Types
from superflow.datastream import (
    CoFlatMapFunction,
    CoMapFunction,
    FilterFunction,
    FlatMapFunction,
    KeySelector,
    MapFunction,
    OutputTag,
    Partitioner,
    ProcessFunction,
    ReduceFunction,
    RuntimeContext,
    SinkFunction,
    StreamExecutionEnvironment,
)


def collect(stream):
    return list(stream.execute_and_collect())


def test_top_level_import_is_the_datastream_environment():
    assert TopLevelEnvironment is StreamExecutionEnvironment


def test_map_filter_flat_map_with_lambdas(env):
    ds = env.from_collection([1, 2, 3, 4, 5])
    out = collect(ds.map(lambda x: x * 10).filter(lambda x: x > 20)
                  .flat_map(lambda x: [x, x + 1]))
    assert out == [30, 31, 40, 41, 50, 51]


def test_function_classes_with_open_and_close(env):
    class AddOffset(MapFunction):
        def open(self, runtime_context: RuntimeContext):
            self.offset = 100 + runtime_context.get_index_of_this_subtask()
            assert runtime_context.get_number_of_parallel_subtasks() == 1

        def map(self, value):
            return value + self.offset

    class Odd(FilterFunction):
        def filter(self, value):
            return value % 2 == 1

    class Twice(FlatMapFunction):
        def flat_map(self, value):
            yield value
            yield value

    out = collect(env.from_collection([1, 2, 3]).map(AddOffset()).filter(Odd())
                  .flat_map(Twice()))
    assert out == [101, 101, 103, 103]


def test_from_elements_takes_a_list_or_the_elements(env):
    assert collect(env.from_elements([("a", 1), ("b", 2)])) == [("a", 1), ("b", 2)]
    env2 = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    assert collect(env2.from_elements(1, 2, 3)) == [1, 2, 3]


def test_from_sequence(env):
    assert collect(env.from_sequence(1, 5)) == [1, 2, 3, 4, 5]


def test_read_text_file(env, tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("first line\nsecond\n\nlast\n")
    assert collect(env.read_text_file(str(path))) == ["first line", "second", "", "last"]


def test_key_by_reduce_is_rolling(env):
    ds = env.from_collection([("a", 1), ("b", 5), ("a", 2), ("a", 3), ("b", 1)])
    out = collect(ds.key_by(lambda x: x[0]).reduce(lambda a, b: (a[0], a[1] + b[1])))
    assert out == [("a", 1), ("b", 5), ("a", 3), ("a", 6), ("b", 6)]


def test_reduce_function_and_key_selector_classes(env):
    class First(KeySelector):
        def get_key(self, value):
            return value[0]

    class Longest(ReduceFunction):
        def reduce(self, a, b):
            return a if len(a[1]) >= len(b[1]) else b

    ds = env.from_collection([("x", "ab"), ("x", "abc"), ("y", "z"), ("x", "a")])
    out = collect(ds.key_by(First()).reduce(Longest()))
    assert out == [("x", "ab"), ("x", "abc"), ("y", "z"), ("x", "abc")]


def test_sum_min_max_min_by_max_by(env):
    data = [("a", 3, "p"), ("a", 1, "q"), ("a", 5, "r")]

    def run(f):
        e = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
        return collect(f(e.from_collection(data).key_by(lambda x: x[0])))

    assert run(lambda k: k.sum(1)) == [("a", 3, "p"), ("a", 4, "p"), ("a", 9, "p")]
    assert run(lambda k: k.min(1)) == [("a", 3, "p"), ("a", 1, "p"), ("a", 1, "p")]
    assert run(lambda k: k.max(1)) == [("a", 3, "p"), ("a", 3, "p"), ("a", 5, "p")]
    assert run(lambda k: k.min_by(1)) == [("a", 3, "p"), ("a", 1, "q"), ("a", 1, "q")]
    assert run(lambda k: k.max_by(1)) == [("a", 3, "p"), ("a", 3, "p"), ("a", 5, "r")]


def test_keys_of_many_types(env):
    data = [(1, "int"), (1.0, "float one"), ("1", "str"), ((1, "x"), "tuple"), (None, "none"),
            (b"1", "bytes"), (10 ** 30, "big"), (frozenset([1]), "pickled"), (1, "int again")]
    out = collect(env.from_collection(data).key_by(lambda x: x[0])
                  .reduce(lambda a, b: (a[0], a[1] + "+" + b[1])))
    assert out[-1] == (1, "int+float one+int again")
    assert len(out) == len(data)


def test_union(env):
    a = env.from_collection([1, 2])
    b = env.from_collection([10, 20])
    c = env.from_collection([100])
    assert sorted(collect(a.union(b, c))) == [1, 2, 10, 20, 100]


def test_connect_co_map_and_co_flat_map(env):
    class Tag(CoMapFunction):
        def map1(self, value):
            return ("left", value)

        def map2(self, value):
            return ("right", value)

    class Spread(CoFlatMapFunction):
        def flat_map1(self, value):
            yield value

        def flat_map2(self, value):
            yield from value.split()

    left = env.from_collection([1, 2])
    right = env.from_collection(["x"])
    assert sorted(collect(left.connect(right).map(Tag()))) == [
        ("left", 1), ("left", 2), ("right", "x")]
    env2 = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    out = collect(env2.from_collection([1]).connect(env2.from_collection(["a b"]))
                  .flat_map(Spread()))
    assert sorted(out, key=str) == [1, "a", "b"]


def test_process_function_with_context_and_side_output(env):
    small = OutputTag("small", Types.INT())

    class Split(ProcessFunction):
        def process_element(self, value, ctx):
            assert ctx.timestamp() is None
            assert isinstance(ctx.timer_service().current_processing_time(), int)
            if value < 3:
                yield small, value
            else:
                yield value * 2

    main = env.from_collection([1, 2, 3, 4]).process(Split())
    side = main.get_side_output(small)
    side.map(lambda x: ("side", x)).add_sink(lambda x: None)
    out = collect(main)
    assert out == [6, 8]


def test_side_output_records_reach_their_stream(env):
    late = OutputTag("late")

    class Split(ProcessFunction):
        def process_element(self, value, ctx):
            if value % 2:
                yield late, value
            else:
                yield value

    main = env.from_collection(list(range(10))).process(Split())
    assert collect(main.get_side_output(late)) == [1, 3, 5, 7, 9]


def test_partitioners_keep_every_record(env2):
    ds = env2.from_collection(list(range(100)))
    out = collect(ds.rebalance().map(lambda x: x).rescale().map(lambda x: x).shuffle()
                  .map(lambda x: x).forward().map(lambda x: x))
    assert sorted(out) == list(range(100))


def test_broadcast_copies_to_every_subtask(env2):
    out = collect(env2.from_collection([7, 8]).set_parallelism(1).broadcast().map(lambda x: x))
    assert sorted(out) == [7, 7, 8, 8]


def test_global_sends_everything_to_one_subtask(env2):
    class Where(MapFunction):
        def open(self, ctx):
            self.index = ctx.get_index_of_this_subtask()

        def map(self, value):
            return self.index

    out = collect(env2.from_collection(list(range(20))).global_().map(Where()))
    assert out == [0] * 20


def test_the_runtime_context_names_the_subtask_and_the_max_parallelism(env2):
    class Where(MapFunction):
        def open(self, ctx):
            self.seen = (ctx.get_task_name_with_subtasks(),
                         ctx.get_max_number_of_parallel_subtasks())

        def map(self, value):
            return self.seen

    out = collect(env2.from_collection(list(range(20))).rebalance().map(Where())
                  .name("where").set_max_parallelism(9))
    assert sorted(set(out)) == [("where (1/2)", 9), ("where (2/2)", 9)]


def test_partition_custom(env2):
    class ByParity(Partitioner):
        def partition(self, key, num_partitions):
            return key % num_partitions

    class Where(MapFunction):
        def open(self, ctx):
            self.index = ctx.get_index_of_this_subtask()

        def map(self, value):
            return (value, self.index)

    out = collect(env2.from_collection(list(range(10)))
                  .partition_custom(ByParity(), lambda x: x).map(Where()))
    assert sorted(out) == [(i, i % 2) for i in range(10)]


def test_key_by_on_two_processes_puts_each_key_on_one_subtask(env2):
    class Where(MapFunction):
        def open(self, ctx):
            self.index = ctx.get_index_of_this_subtask()

        def map(self, value):
            return (value[0], self.index)

    words = ["apple", "pear", "fig", "kiwi", "plum", "lime"] * 20
    out = collect(env2.from_collection([(w, 1) for w in words]).key_by(lambda x: x[0])
                  .map(Where()))
    owners = {}
    for word, index in out:
        owners.setdefault(word, set()).add(index)
    assert all(len(s) == 1 for s in owners.values())
    assert len(out) == len(words)


def test_word_count_on_two_processes(env2):
    text = ["to be or not to be", "that is the question", "to be is to do"]
    out = collect(env2.from_collection(text).flat_map(lambda line: line.split())
                  .map(lambda w: (w, 1), output_type=Types.TUPLE([Types.STRING(), Types.INT()]))
                  .key_by(lambda x: x[0]).reduce(lambda a, b: (a[0], a[1] + b[1])))
    final = {}
    for word, count in out:
        final[word] = max(final.get(word, 0), count)
    assert final == dict(Counter(" ".join(text).split()))


def test_print_prefixes_the_subtask(capfd, env2):
    env2.from_collection([("a", 1), ("b", 2)]).map(lambda x: x).print()
    env2.execute("print")
    lines = capfd.readouterr().out.splitlines()
    assert sorted(lines) == sorted(["1> ('a', 1)", "2> ('b', 2)"]) or \
        sorted(re.sub(r"^\d> ", "", l) for l in lines) == ["('a', 1)", "('b', 2)"]
    assert all(re.match(r"^[12]> ", l) for l in lines)


def test_print_without_prefix_at_parallelism_one(capfd, env):
    env.from_collection(["x"]).print()
    env.execute()
    assert capfd.readouterr().out.splitlines() == ["x"]


def test_add_sink_with_a_sink_function(env, tmp_path):
    target = tmp_path / "out.txt"

    class FileAppend(SinkFunction):
        def invoke(self, value):
            with open(target, "a") as f:
                f.write(f"{value}\n")

    env.from_collection(["a", "b"]).add_sink(FileAppend())
    env.execute("sink")
    assert target.read_text().splitlines() == ["a", "b"]


def test_execute_and_collect_limit_and_context_manager(env):
    with env.from_collection(list(range(10))).execute_and_collect(limit=3) as results:
        assert list(results) == [0, 1, 2]


def test_name_uid_parallelism_and_plan(env):
    ds = env.from_collection([1]).map(lambda x: x).name("double").uid("double-uid")
    ds.set_parallelism(1)
    assert ds.get_name() == "double"
    assert "double" in env.get_execution_plan()
    result = ds.print().name("out")
    assert result is not None
    job = env.execute("named")
    assert job.get_job_name() == "named"
    assert job.get_net_runtime() >= 0
    assert any(op["name"] == "double" for op in job.get_operator_metrics())


def test_configuration_sets_the_default_parallelism():
    config = Configuration().set_integer("parallelism.default", 3)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    assert env.get_parallelism() == 3


def test_default_parallelism_is_the_number_of_cores():
    env = StreamExecutionEnvironment.get_execution_environment()
    assert env.get_parallelism() == (os.cpu_count() or 1)


def test_records_of_any_picklable_type_cross_processes(env2):
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

    points = [Point(i, -i) for i in range(10)]
    out = collect(env2.from_collection(points).rebalance().map(lambda p: p.x + p.y + p.x))
    assert sorted(out) == list(range(10))


# ----- errors -----

def test_an_exception_fails_the_job_with_its_traceback_and_operator(env):
    def explode(x):
        if x == 3:
            raise ValueError(f"bad record {x}")
        return x

    env.from_collection([1, 2, 3]).map(explode).name("Exploder").print()
    with pytest.raises(JobExecutionError) as info:
        env.execute("fails")
    message = str(info.value)
    assert "operator 'Exploder'" in message
    assert "ValueError: bad record 3" in message
    assert "in explode" in message


def test_an_exception_in_another_process_reaches_the_driver(env2):
    def explode(x):
        raise KeyError(f"missing {x}")

    env2.from_collection(list(range(10))).rebalance().map(explode).name("Boom").print()
    with pytest.raises(JobExecutionError) as info:
        env2.execute("fails on every process")
    message = str(info.value)
    assert "operator 'Boom'" in message
    assert "KeyError: 'missing" in message
    assert "lost the connection" not in message


def test_an_exception_in_a_key_selector(env):
    env.from_collection([{"k": 1}, {}]).key_by(lambda d: d["k"]).reduce(lambda a, b: a).print()
    with pytest.raises(JobExecutionError, match="KeyError: 'k'"):
        env.execute()


def test_a_job_without_sinks_is_refused(env):
    env.from_collection([1]).map(lambda x: x)
    with pytest.raises(RuntimeError, match="no sinks"):
        env.execute()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_parallelism_is_refused(env, bad):
    with pytest.raises(ValueError, match="parallelism must be a positive integer"):
        env.set_parallelism(bad)


def test_bad_arguments_name_what_is_wrong(env):
    with pytest.raises(TypeError, match="from_collection"):
        env.from_collection("abc")
    with pytest.raises(TypeError, match="MapFunction"):
        env.from_collection([1]).map(42)
    with pytest.raises(TypeError, match="union"):
        env.from_collection([1]).union([1])
    # Latin-1 is read now (as Flink's readTextFile reads any charset); UTF-16 cannot be
    # split into lines at the byte '\n', and an unknown charset is named.
    with pytest.raises(ValueError, match="UTF-8 and the other ASCII-compatible"):
        env.read_text_file("x", "UTF-16")
    with pytest.raises(ValueError, match="unknown charset 'latin-99'"):
        env.read_text_file("x", "latin-99")


def test_a_missing_input_file_fails_with_its_path(env, tmp_path):
    missing = tmp_path / "nope.txt"
    env.read_text_file(str(missing)).print()
    with pytest.raises(JobExecutionError, match="nope.txt"):
        env.execute()


def test_unpicklable_functions_are_refused_on_several_processes(env2):
    import threading
    lock = threading.Lock()
    env2.from_collection([1, 2]).map(lambda x: (lock, x)[1]).print()
    with pytest.raises(JobExecutionError, match="cannot be pickled"):
        env2.execute()


def _start_until_marked(script, marker):
    """Runs `script` in a new interpreter, its output piped, until it wrote `marker`."""
    import subprocess
    import sys
    import time
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.01)
    return child


def test_ctrl_c_cancels_the_job_and_raises_keyboard_interrupt(tmp_path):
    import signal
    marker = tmp_path / "running"
    script = tmp_path / "endless.py"
    script.write_text(
        "import time, sys\n"
        "from superflow.datastream import StreamExecutionEnvironment\n"
        "env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)\n"
        "def slow(x):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    time.sleep(0.001)\n"
        "    return x\n"
        "env.from_sequence(0, 10**9).map(slow).add_sink(lambda x: None)\n"
        "try:\n"
        "    env.execute('endless')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(3)\n")
    child = _start_until_marked(script, marker)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 3, err.decode()
    assert b"interrupted" in out


def test_a_second_ctrl_c_ends_a_job_stuck_in_a_function_naming_the_operator(tmp_path):
    import signal
    import time
    marker = tmp_path / "stuck"
    script = tmp_path / "stuck.py"
    script.write_text(
        "import time\n"
        "from superflow.datastream import StreamExecutionEnvironment\n"
        "env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)\n"
        "def stuck(x):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    time.sleep(3600)\n"
        "env.from_sequence(0, 10).map(stuck).name('Stuck').add_sink(lambda x: None)\n"
        "env.execute('stuck')\n")
    child = _start_until_marked(script, marker)
    child.send_signal(signal.SIGINT)
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130, err.decode()
    assert b"cancelling the job" in err and b"'Stuck' (subtask 1)" in err, err.decode()


def test_every_kind_of_record_crosses_processes_unchanged(env2):
    from collections import namedtuple
    Pair = namedtuple("Pair", "a b")
    records = [None, True, False, 0, -7, 2 ** 40, 2 ** 100, 1.5, float("inf"), "", "héllo ✓",
               b"\x00bytes", (), (1, ("nested", [2, 3.0])), [1, "two", None],
               {"k": [1, 2]}, {1, 2}, frozenset({"x"}), Pair(1, "b"), 1 + 2j]
    tagged = list(enumerate(records))
    out = collect(env2.from_collection(tagged).rebalance().map(lambda r: r)
                  .key_by(lambda r: r[0]).map(lambda r: r))
    assert sorted(out, key=lambda r: r[0]) == tagged
    back = dict(out)
    assert type(back[18]) is Pair and type(back[3]) is int and type(back[7]) is float
    assert type(back[1]) is bool and type(back[14]) is list and type(back[13]) is tuple


def test_a_killed_worker_process_fails_the_job_in_the_driver(env2, tmp_path):
    import signal
    import threading
    import time

    pids = tmp_path / "pids"
    pids.mkdir()

    class Slow(MapFunction):
        def open(self, ctx):
            (pids / str(os.getpid())).touch()

        def map(self, value):
            time.sleep(0.001)
            return value

    def kill_the_other_process():
        deadline = time.time() + 30
        while time.time() < deadline:
            others = [int(p.name) for p in pids.iterdir() if int(p.name) != os.getpid()]
            if others:
                os.kill(others[0], signal.SIGKILL)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_other_process)
    killer.start()
    env2.from_sequence(0, 10 ** 7).rebalance().map(Slow()).add_sink(lambda v: None)
    with pytest.raises(JobExecutionError) as info:
        env2.execute("loses a process")
    killer.join()
    assert "worker process 1 exited with code -9" in str(info.value)


def test_an_unhashable_key_is_refused_with_its_type(env):
    env.from_collection([1, 2]).key_by(lambda x: [x]).reduce(lambda a, b: a).print()
    with pytest.raises(JobExecutionError, match="key \\[1\\] of type list cannot be used as a key"):
        env.execute()


@pytest.mark.parametrize("exchange", ["key_by", "shuffle"])
def test_union_then_an_exchange_across_processes_keeps_every_record_once(env2, exchange):
    # Regression: a recycled container handed back by a timely pusher was sent again,
    # duplicating the last record of a collection after a union and an exchange.
    a = env2.from_collection(["a1", "a2", "a3", "a4"])
    b = env2.from_collection(["b1", "b2", "b3"])
    c = env2.from_collection(["c1"])
    union = a.union(b, c)
    routed = union.key_by(lambda x: x[1]) if exchange == "key_by" else union.shuffle()
    out = collect(routed.map(lambda x: x))
    assert sorted(out) == ["a1", "a2", "a3", "a4", "b1", "b2", "b3", "c1"]


def test_records_of_classes_of_the_driver_script_reach_the_worker_processes(tmp_path):
    # Pickle writes a class of `__main__` by reference, which a worker cannot resolve.
    import subprocess
    import sys
    script = tmp_path / "main_class.py"
    script.write_text(
        "from superflow.datastream import StreamExecutionEnvironment\n"
        "class Reading:\n"
        "    def __init__(self, v): self.v = v\n"
        "    def __reduce__(self): return (Reading, (self.v,))\n"
        "env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)\n"
        "out = env.from_collection([Reading(i) for i in range(6)]).rebalance()"
        ".map(lambda r: r).key_by(lambda r: r.v % 2).map(lambda r: r.v).execute_and_collect()\n"
        "print(sorted(out))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 1, 2, 3, 4, 5]"
    # The driver made a secret for the job: its processes authenticated each other.
    assert "without authentication" not in done.stderr, done.stderr


def test_row_reads_as_pyflinks_row():
    from superflow.common import Row, RowKind
    row = Row(name="Alice", age=11)
    assert repr(row) == "Row(age=11, name='Alice')"
    assert (row["name"], row.age, row[0], len(row), list(row)) == ("Alice", 11, 11, 2, [11, "Alice"])
    assert "Alice" in row and row.as_dict() == {"age": 11, "name": "Alice"}
    Person = Row("name", "age")
    alice = Person("Alice", 11)
    assert repr(alice) == "Row(name='Alice', age=11)" and alice.name == "Alice"
    assert repr(Row(1, "a")) == "<Row(1, 'a')>"
    assert Row(key=1, value=Row(a=2)).as_dict(True) == {"key": 1, "value": {"a": 2}}
    alice["age"] = 12
    alice.set_row_kind(RowKind.UPDATE_AFTER)
    import copy
    import pickle
    back = pickle.loads(pickle.dumps(alice))
    assert back == alice and back.get_row_kind() == RowKind.UPDATE_AFTER and back.age == 12
    assert copy.deepcopy(alice) == alice and hash(Row(1, 2)) == hash(Row(1, 2))
    with pytest.raises(ValueError, match="by position or by name"):
        Row(1, name="a")
    with pytest.raises(AttributeError, match="no field 'height'"):
        alice.height


@pytest.mark.parametrize("parallelism", [1, 2])
def test_from_collection_with_a_row_type_makes_rows(parallelism):
    from superflow.common import Row
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    row_type = Types.ROW_NAMED(["name", "value"], [Types.STRING(), Types.INT()])
    data = env.from_collection([{"name": "a", "value": 1}, ("b", 2), Row("c", 3)],
                               type_info=row_type)
    out = list(data.key_by(lambda r: r.name).map(lambda r: (r.name, r["value"] * 10, type(r).__name__))
               .execute_and_collect())
    assert sorted(out) == [("a", 10, "Row"), ("b", 20, "Row"), ("c", 30, "Row")]
    with pytest.raises(ValueError, match="element 1 of the collection has 3 fields"):
        env.from_collection([("a", 1), ("b", 2, 3)], type_info=row_type)
    with pytest.raises(ValueError, match=r"element 0 of the collection lacks fields \['value'\]"):
        env.from_collection([{"name": "a"}], type_info=row_type)


def test_print_shows_rows_as_flink_prints_them(capfd, env):
    from superflow.common import Row, RowKind
    retraction = Row("b", None, True, [1, 2])
    retraction.set_row_kind(RowKind.UPDATE_BEFORE)
    env.from_collection([(1, "aaa"), Row(2, Row(x=1.5))],
                        type_info=Types.ROW([Types.INT(), Types.STRING()])).print()
    env.from_collection([retraction]).print()
    env.execute("rows")
    assert sorted(capfd.readouterr().out.splitlines()) == [
        "+I[1, aaa]", "+I[2, +I[1.5]]", "-U[b, null, true, [1, 2]]"]


def test_sink_settings_apply_to_print_and_add_sink(capfd, env2):
    env2.from_collection(["a", "b", "c", "d"]).map(str.upper).print().set_parallelism(1).name("out")
    env2.execute("sink settings")
    assert sorted(capfd.readouterr().out.splitlines()) == ["A", "B", "C", "D"]


def test_a_bad_key_on_two_processes_is_reported_every_time_naming_the_key_by():
    # The key selector runs where the records are sent from: its error must reach the
    # driver as itself, never as the connection loss it causes in the other process.
    for _ in range(20):
        env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
        env.from_collection([("a", 1), ("b", 2)] * 50) \
            .key_by(lambda r: [r[0]]).sum(1).print()
        with pytest.raises(JobExecutionError) as error:
            env.execute()
        message = str(error.value)
        assert "key ['a'] of type list cannot be used as a key" in message, message
        assert "Keyed Sum (key-by from Collection Source)" in message, message


def test_the_job_directory_a_killed_driver_left_is_removed_by_the_next_job():
    import tempfile
    # What a SIGKILLed driver leaves: its job directory, named after a process that has
    # ended (no process has this id, above Linux's largest, 2**22).
    left = os.path.join(tempfile.gettempdir(), f"superflow-job-test-{2**23}")
    os.makedirs(left, exist_ok=True)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    out = env.from_collection([1, 2, 3, 4]).map(lambda x: x * 10).execute_and_collect()
    assert sorted(out) == [10, 20, 30, 40]
    assert not os.path.exists(left)


def test_a_flat_map_that_makes_millions_of_one_record_holds_a_batch_at_a_time(tmp_path):
    # In a process of its own, so that the peak memory is this job's.
    import subprocess
    import sys
    script = tmp_path / "huge_flat_map.py"
    script.write_text(
        "import resource\n"
        "from superflow.datastream import StreamExecutionEnvironment\n"
        "env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "out = env.from_collection([3_000_000]).flat_map(lambda n: range(n))"
        ".filter(lambda x: x % 1_000_000 == 999_999).execute_and_collect()\n"
        "grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024\n"
        "print(sorted(out), grown)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    records, grown = done.stdout.strip().rsplit(" ", 1)
    assert records == "[999999, 1999999, 2999999]"
    # Held whole, the 3M outputs of the one record took 121 MB more; a batch at a time, 16.
    assert int(grown) < 60, f"the job grew the process by {grown} MB"


def test_a_worker_whose_driver_was_killed_ends_even_in_a_stuck_function(tmp_path):
    # The driver (a process of its own) runs a job on two processes whose worker gets
    # stuck in a user function; once the worker is stuck, the driver is SIGKILLed. The
    # worker must not outlive it by more than its grace period (a second).
    import subprocess
    import sys
    import time
    marker = tmp_path / "stuck"
    script = tmp_path / "driver.py"
    script.write_text(
        "import os, time\n"
        "from superflow.datastream import StreamExecutionEnvironment\n"
        "env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)\n"
        "import sys\n"
        "def stuck(x):\n"
        "    if sys.argv[0].endswith('_worker.py'):  # only in the worker process\n"
        f"        open({str(marker)!r}, 'w').write(str(os.getpid()))\n"
        "        time.sleep(600)\n"
        "    return x\n"
        "env.from_sequence(0, 10**9).map(stuck).add_sink(lambda x: None)\n"
        "env.execute('stuck worker')\n")
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() or not marker.read_text():
            assert time.monotonic() < deadline, "the worker never got stuck"
            assert driver.poll() is None, "the driver ended early"
            time.sleep(0.05)
        worker = int(marker.read_text())
        driver.kill()
        driver.wait()

        def running(pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    state = next(line for line in f if line.startswith("State:"))
                return "Z" not in state.split()[1]
            except (FileNotFoundError, StopIteration):
                return False
        # A liveness bound, not a speed: the grace period is one second.
        deadline = time.monotonic() + 30
        while running(worker):
            assert time.monotonic() < deadline, "the worker outlived its driver"
            time.sleep(0.05)
    finally:
        driver.kill()
