"""Benchmarks of the Python API: ``python3 -m superflow.bench <workload> --records N
--parallelism P``. Prints one JSON line per run, with the fields of the Rust bench
binary (``superflow-bench``). The workloads are the peers' (../shared/peers):

- ``w1``: ``map(lambda i: 2 * i + 1)``, ``filter(lambda x: x % 3 != 0)``, counted;
- ``w2``: ``map(lambda i: (i % keys, i))``, ``key_by(lambda t: t[0])``,
  ``reduce(lambda x, y: (x[0], x[1] + y[1]))``, every update emitted;
- ``w4``: word count of a text file (``--input``): ``flat_map`` splitting on spaces,
  ``map`` to ``(word, 1)``, ``key_by``, ``reduce``, every update emitted;
- ``trivial``: one record through a map: the start-up cost.

Each user function is a Python lambda called by the engine; the sink counts and checks
in Rust, as the peers' sinks do in Java.
"""

import argparse
import json
import os
import resource
import sys
import time
from typing import Any, Dict

from superflow.datastream import StreamExecutionEnvironment


def _peak_rss_mb(processes: int) -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if processes <= 1:
        return own
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return own + children * (processes - 1)


def _words_file() -> str:
    home = os.environ.get("PEERS_HOME", os.path.expanduser("~/.cache/superflow-peers"))
    return os.path.join(home, "data", "words.txt")


def run(workload: str, records: int, parallelism: int, keys: int = 1000,
        input_path: str = "") -> Dict[str, Any]:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    n = records
    expected_ok = None
    if workload == "trivial":
        n = 1
        ds = env.from_sequence(0, 0).map(lambda x: x)
        ds._add("_bench_sink", start=-1, end=-1)
    elif workload == "w1":
        ds = env.from_sequence(0, n - 1).map(lambda i: 2 * i + 1).filter(lambda x: x % 3 != 0)
        ds._add("_bench_sink", start=-1, end=-1)
    elif workload == "w2":
        k = keys
        ds = (env.from_sequence(0, n - 1)
              .map(lambda i: (i % k, i))
              .key_by(lambda t: t[0])
              .reduce(lambda x, y: (x[0], x[1] + y[1])))
        ds._add("_bench_sink", start=1, end=0)  # sums field 1, largest per key of field 0
    elif workload == "w4":
        path = input_path or _words_file()
        if not os.path.exists(path):
            raise SystemExit(f"w4 needs a words file: {path} does not exist (write one with "
                             "../shared/peers/flink/gen_words.py --out FILE, or pass --input)")
        ds = (env.read_text_file(path)
              .flat_map(lambda line: [w for w in line.split(" ") if w])
              .map(lambda w: (w, 1))
              .key_by(lambda t: t[0])
              .reduce(lambda a, b: (a[0], a[1] + b[1])))
        ds._add("_bench_sink", start=1, end=-1)  # counts and sums field 1, as the Rust bench
    else:
        raise SystemExit(f"unknown workload {workload!r}: trivial, w1, w2 or w4")
    started = time.perf_counter()
    result = env.execute(workload)
    seconds = time.perf_counter() - started
    out, total, keyed_max = result._bench
    if workload == "w1":
        # x = 2i + 1 is a multiple of 3 exactly when i % 3 == 1: m such i, whose x sum
        # to 3m^2, out of n values of x that sum to n^2.
        m = (n + 1) // 3
        count = n - m
        expected_sum = n * n - 3 * m * m
        expected_ok = out == count and total == expected_sum
        checksum = total
    elif workload == "w2":
        expected_ok = out == n and keyed_max == n * (n - 1) // 2
        checksum = keyed_max
    elif workload == "w4":
        n = out
        expected_ok = out > 0
        checksum = total
    else:
        expected_ok = out == 1
        checksum = total
    return {
        "workload": workload,
        "api": "python",
        "records": n,
        "parallelism": parallelism,
        "seconds": seconds,
        "records_per_sec": n / seconds,
        "records_per_sec_per_core": n / seconds / parallelism,
        "peak_rss_mb": _peak_rss_mb(parallelism),
        "output_records": out,
        "checksum": checksum,
        "ok": bool(expected_ok),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m superflow.bench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=["trivial", "w1", "w2", "w4"])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--keys", type=int, default=1000, help="distinct keys of w2")
    parser.add_argument("--input", default="", help="the words file of w4")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    if args.records < 1 or args.parallelism < 1 or args.keys < 1:
        parser.error("--records, --parallelism and --keys must be positive")
    ok = True
    for _ in range(args.runs):
        report = run(args.workload, args.records, args.parallelism, args.keys, args.input)
        print(json.dumps(report), flush=True)
        ok = ok and report["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
