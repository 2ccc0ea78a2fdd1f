//! The example job of the document Superflow was specified from, line for line.
//!
//! Run it with `cargo run --release --example seed_job`. It prints
//! `(a, false) (a, true) (b, false) (b, true)`, one per line, each with the subtask
//! that printed it (`1> ` or `2> `), in some order.

use superflow::prelude::*;

fn main() -> Result<(), JobError> {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    let data = env.from_elements(vec![("a", 1), ("a", 2), ("b", 3), ("b", 4)]);
    data.map(|(k, v)| (k, v % 2 == 0)).print();
    env.execute("optimized_flink_job")?;
    Ok(())
}
