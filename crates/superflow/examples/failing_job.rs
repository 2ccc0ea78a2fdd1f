//! A job whose user function panics on one record: the job fails with the operator's
//! name, the panic message and its location, and every worker stops.
//!
//! ```text
//! cargo run --example failing_job
//! ```

use superflow::prelude::*;

fn main() -> Result<(), JobError> {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    env.from_sequence(1, 1_000)
        .map(|x: i64| {
            if x == 500 {
                panic!("record {x} is poisoned");
            }
            x * 2
        })
        .name("Doubler")
        .filter(|x: &i64| x % 3 == 0)
        .print();
    env.execute("failing job")?;
    Ok(())
}
