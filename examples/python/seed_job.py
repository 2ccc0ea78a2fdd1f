"""The example job Superflow was specified from, as a PyFlink user writes it: only the
import line differs from PyFlink."""

from superflow.datastream import StreamExecutionEnvironment

env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(2)
data = env.from_collection([('a', 1), ('a', 2), ('b', 3), ('b', 4)])
result = data.map(lambda x: (x[0], x[1] % 2 == 0))
result.print()
env.execute("optimized_flink_job")
