//! Word count: the lines of a text file (or a built-in text), split into words, and a
//! rolling count per word, as in Flink's WordCount example.
//!
//! ```text
//! cargo run --release --example word_count -- [FILE] [--parallelism N]
//! ```
//!
//! The same binary runs as several processes; see the README ("Running on several
//! processes").

use superflow::prelude::*;

const TEXT: &[&str] = &[
    "To be, or not to be,--that is the question:--",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune",
    "Or to take arms against a sea of troubles,",
];

fn main() -> Result<(), JobError> {
    let mut args = std::env::args().skip(1);
    let (mut input, mut parallelism) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--parallelism" => parallelism = args.next().and_then(|p| p.parse::<usize>().ok()),
            path => input = Some(path.to_string()),
        }
    }
    let env = StreamExecutionEnvironment::get_execution_environment();
    if let Some(p) = parallelism {
        env.set_parallelism(p);
    }
    let lines = match input {
        Some(path) => env.read_text_file(path),
        None => env
            .from_collection(TEXT.iter().map(|l| l.to_string()))
            .rebalance(),
    };
    lines
        .flat_map(|line: String, out: &mut Collector<(String, i64)>| {
            for word in line
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                out.collect((word.to_lowercase(), 1));
            }
        })
        .name("Tokenizer")
        .key_by(|t: &(String, i64)| t.0.clone())
        .sum(1)
        .print();
    let result = env.execute("Streaming WordCount")?;
    eprintln!("job finished in {} ms", result.net_runtime_ms());
    Ok(())
}
