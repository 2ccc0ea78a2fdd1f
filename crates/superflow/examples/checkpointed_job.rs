//! Exactly-once recovery end to end: a keyed running count and a 1 s window sum over a
//! replayable generator, written by a transactional `FileSink`, with a checkpoint every
//! 100 ms. A panic injected at one record fails the job; it restarts from its last
//! checkpoint, and the committed output is the same as if it had never failed.
//!
//! ```text
//! cargo run --release --example checkpointed_job -- [--fail-at N] [--out DIR]
//! ```
//!
//! Run it a second time with `--restore DIR/checkpoints` after killing it (Ctrl-C keeps
//! the checkpoints; so does `kill -9`) to resume from the last checkpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use superflow::prelude::*;

const EVENTS: u64 = 50_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let fail_at: u64 = value_of("--fail-at").map_or(Ok(30_000), |v| v.parse())?;
    let out = std::path::PathBuf::from(
        value_of("--out").unwrap_or_else(|| "target/checkpointed-job".into()),
    );
    let checkpoints = out.join("checkpoints");
    let output = out.join("output");
    if value_of("--restore").is_none() {
        let _ = std::fs::remove_dir_all(&out);
    }

    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(100));
    let storage = checkpoints.clone();
    env.configure_checkpoints(move |c| {
        c.storage = storage;
        c.compression = SnapshotCompression::Lz4;
    });
    env.set_restart_strategy(RestartStrategy::fixed_delay(3, Duration::from_millis(200)));
    if let Some(path) = value_of("--restore") {
        env.set_restore_path(path);
    }

    let failed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&failed);
    // Event i: sensor i % 10, reading i % 100, at i ms; 25,000 events per second.
    let events = env
        .from_generator(
            |i| (i % 10, i % 100, i as i64),
            Some(EVENTS),
            Some(25_000.0),
        )
        .uid("events")
        .map(move |e: (u64, u64, i64)| {
            if e.2 as u64 == fail_at && !flag.swap(true, Ordering::SeqCst) {
                panic!("injected failure at event {fail_at}");
            }
            e
        })
        .uid("inject")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps()
                .with_timestamp_assigner(|e: &(u64, u64, i64), _| e.2),
        )
        .uid("timestamps");
    let counts = events
        .map(|e: (u64, u64, i64)| (e.0, 1u64))
        .uid("ones")
        .key_by(|c: &(u64, u64)| c.0)
        .sum(1)
        .uid("counts")
        .map(|(sensor, n): (u64, u64)| format!("count sensor={sensor} n={n}"))
        .uid("format-counts");
    let sums = events
        .key_by(|e: &(u64, u64, i64)| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(|a: (u64, u64, i64), b: (u64, u64, i64)| (a.0, a.1 + b.1, a.2.min(b.2)))
        .uid("window-sums")
        .map(|(sensor, sum, start): (u64, u64, i64)| {
            format!("window sensor={sensor} second={} sum={sum}", start / 1000)
        })
        .uid("format-sums");
    counts
        .union(&[&sums])
        .sink_to(FileSink::new(&output))
        .uid("file-sink");

    let result = env.execute("checkpointed job")?;
    for cause in &result.restart_causes {
        println!("restarted after: {cause}");
    }
    let completed = result
        .checkpoints
        .iter()
        .filter(|c| c.status == CheckpointStatus::Completed)
        .count();
    println!(
        "finished in {} ms after {} restart(s); {completed} checkpoints completed",
        result.net_runtime_ms(),
        result.restarts
    );
    if let Some(last) = result.checkpoints.iter().rev().find(|c| !c.savepoint) {
        println!(
            "last checkpoint: id {} in {} ms, {} bytes",
            last.id,
            last.duration.as_millis(),
            last.size_bytes
        );
    }
    // The sink writes a directory per hour (Flink's default buckets); in-progress parts
    // are hidden.
    let mut lines = 0;
    let mut pending = vec![output.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                lines += std::fs::read_to_string(entry.path())?.lines().count();
            }
        }
    }
    println!(
        "{lines} lines committed in {} ({EVENTS} counts and {} window sums expected)",
        output.display(),
        10 * EVENTS.div_ceil(1000)
    );
    Ok(())
}
