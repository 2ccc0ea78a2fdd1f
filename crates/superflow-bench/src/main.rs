//! `superflow-bench`: runs named workloads and prints one JSON line per run.
//!
//! ```text
//! cargo run --release -p superflow-bench -- w2 --records 10000000 --parallelism 2
//! ```
//!
//! Workloads match `../shared/peers/` (Flink's `FlinkBench.java`), so figures compare
//! one to one: `trivial`, `w1` (map + filter), `w2` (keyed rolling sum), `w4` (word
//! count over a text file) and `baseline` (w2 as a plain single-threaded loop).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use rustc_hash::FxHashMap;
use serde::Serialize;
use superflow::prelude::*;
use superflow::Data;

/// The allocator matters for jobs that allocate per record (strings, events): glibc's
/// malloc took a third of Nexmark's time in a profile; mimalloc is the usual choice.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Workload {
    /// One record from source to sink: start-up and shut-down cost.
    Trivial,
    /// `x = 2i + 1`, keep `x % 3 != 0`, count and sum at the sink.
    W1,
    /// `key_by(i % keys)`, rolling sum of `i`, every update emitted.
    W2,
    /// Word count over a text file: split on ' ', rolling count per word.
    W4,
    /// `--records` lines of 10 digits (11 bytes with the line break) from a local TCP
    /// peer through `socket_text_stream`, parsed and summed at the sink.
    Socket,
    /// The same lines from a file through `read_text_file`: the rate `socket` aims at.
    FileLines,
    /// W2's result computed by a hand-written single-threaded loop.
    Baseline,
    /// Event time as the peers' w3: event `e` at `e` ms, key `e % 1000`, tumbling 1 s
    /// windows, count per key and window (every subtask's events ascend in lock-step).
    W3,
    /// Keyed tumbling-window count in event time (1 s windows, 1,000 events per ms,
    /// subtasks in lock-step as in w3):
    /// the cost of timestamps, watermarks, window state and timers. Use `--keys`.
    WindowCount,
    /// Checkpoint and restore of `--keys` entries of keyed state (40-byte values) with
    /// `--state-backend`: the synchronous copy, the encoding and write of the part
    /// (lz4), and the restore (read, check, decode, insert). Prints its own JSON line.
    StateSnapshot,
    /// The Nexmark source alone: the generator's own rate.
    NexmarkGen,
    /// Nexmark q0: pass-through.
    NexmarkQ0,
    /// Nexmark q1: currency conversion.
    NexmarkQ1,
    /// Nexmark q2: selection.
    NexmarkQ2,
    /// Nexmark q3: local item suggestion (join).
    NexmarkQ3,
    /// Nexmark q4: average price per category.
    NexmarkQ4,
    /// Nexmark q5: hot items (sliding windows).
    NexmarkQ5,
    /// Nexmark q6: average selling price per seller.
    NexmarkQ6,
    /// Nexmark q7: highest bid (tumbling windows).
    NexmarkQ7,
    /// Nexmark q8: monitor new users (window join).
    NexmarkQ8,
    /// Nexmark q9: winning bids.
    NexmarkQ9,
    /// Nexmark q11: user sessions.
    NexmarkQ11,
    /// Nexmark q12: processing-time windows.
    NexmarkQ12,
}

impl Workload {
    fn is_nexmark(self) -> bool {
        matches!(
            self,
            Workload::NexmarkGen
                | Workload::NexmarkQ0
                | Workload::NexmarkQ1
                | Workload::NexmarkQ2
                | Workload::NexmarkQ3
                | Workload::NexmarkQ4
                | Workload::NexmarkQ5
                | Workload::NexmarkQ6
                | Workload::NexmarkQ7
                | Workload::NexmarkQ8
                | Workload::NexmarkQ9
                | Workload::NexmarkQ11
                | Workload::NexmarkQ12
        )
    }
}

#[derive(Debug, Parser)]
#[command(about = "Superflow benchmark workloads; prints one JSON line per run")]
struct Args {
    /// The workload to run.
    #[arg(value_enum)]
    workload: Workload,
    /// Number of input records (w1, w2, baseline).
    #[arg(long, default_value_t = 10_000_000)]
    records: u64,
    /// Parallelism (worker threads).
    #[arg(long, default_value_t = 1)]
    parallelism: usize,
    /// Input file for w4 (default: the peers' words file).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Distinct keys for w2 and window-count.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// The auto-watermark interval in ms (Flink's default: 200).
    #[arg(long, default_value_t = 200)]
    watermark_interval_ms: u64,
    /// Nexmark: events per second of event time (timestamps' density).
    #[arg(long, default_value_t = 10_000_000)]
    event_rate: usize,
    /// Runs of the workload (one JSON line each).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Takes a checkpoint every MS milliseconds (0 or absent: no checkpoints).
    #[arg(long, value_name = "MS")]
    checkpoint_interval_ms: Option<u64>,
    /// Where keyed state lives.
    #[arg(long, value_enum, default_value_t = BackendChoice::Memory)]
    state_backend: BackendChoice,
    /// With `--state-backend lsm`: entries per state and subtask kept in memory.
    #[arg(long, default_value_t = 100_000)]
    cache_entries: usize,
    /// With `--state-backend lsm`: the store's block cache, in MiB.
    #[arg(long, default_value_t = superflow::runtime::checkpoint::StateBackendConfig::DEFAULT_BLOCK_CACHE_BYTES >> 20)]
    block_cache_mb: u64,
    /// With `--state-backend lsm`: where timers live.
    #[arg(long, value_enum, default_value_t = Timers::Memory)]
    timers: Timers,
}

/// Where `--timers` puts the embedded backend's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Timers {
    /// The earliest in memory, the rest in the store.
    Store,
    /// All in memory (the default).
    Memory,
}

/// The state backends `--state-backend` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum BackendChoice {
    /// Hash maps in memory (the default).
    Memory,
    /// The embedded LSM store, for state larger than memory.
    Lsm,
}

#[derive(Debug, Serialize)]
struct Report {
    workload: Workload,
    records: u64,
    parallelism: usize,
    seconds: f64,
    records_per_sec: f64,
    records_per_sec_per_core: f64,
    /// For Nexmark workloads: events per second per core (the records are events).
    #[serde(skip_serializing_if = "Option::is_none")]
    events_per_sec_per_core: Option<f64>,
    peak_rss_mb: f64,
    output_records: u64,
    checksum: u64,
    ok: bool,
    /// With `--checkpoint-interval-ms`: checkpoints completed, and the mean size and
    /// synchronous and asynchronous durations (the slowest subtask's) of each.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoints: Option<CheckpointFigures>,
}

#[derive(Debug, Serialize)]
struct CheckpointFigures {
    completed: usize,
    mean_bytes: f64,
    mean_sync_ms: f64,
    mean_async_ms: f64,
    mean_duration_ms: f64,
}

impl CheckpointFigures {
    fn of(stats: &[CheckpointStats]) -> CheckpointFigures {
        let done: Vec<&CheckpointStats> = stats
            .iter()
            .filter(|c| c.status == CheckpointStatus::Completed)
            .collect();
        let n = done.len().max(1) as f64;
        let slowest = |c: &CheckpointStats,
                       f: fn(
            &superflow::runtime::checkpoint::OperatorCheckpointStats,
        ) -> std::time::Duration| {
            c.operators
                .iter()
                .map(f)
                .max()
                .unwrap_or_default()
                .as_secs_f64()
                * 1e3
        };
        CheckpointFigures {
            completed: done.len(),
            mean_bytes: done.iter().map(|c| c.size_bytes as f64).sum::<f64>() / n,
            mean_sync_ms: done
                .iter()
                .map(|c| slowest(c, |o| o.sync_duration))
                .sum::<f64>()
                / n,
            mean_async_ms: done
                .iter()
                .map(|c| slowest(c, |o| o.async_duration))
                .sum::<f64>()
                / n,
            mean_duration_ms: done
                .iter()
                .map(|c| c.duration.as_secs_f64() * 1e3)
                .sum::<f64>()
                / n,
        }
    }
}

/// Counts records at the sink and sums a value, as the peers' `CountingProbe`.
#[derive(Clone)]
struct CountingSink<F> {
    records: Arc<AtomicU64>,
    checksum: Arc<AtomicU64>,
    local_records: u64,
    local_sum: u64,
    value: F,
}

impl<T: 'static, F: Fn(&T) -> u64 + Clone + Send + 'static> SinkFunction<T> for CountingSink<F> {
    fn invoke(&mut self, value: T) -> Result<(), UserError> {
        self.local_records += 1;
        self.local_sum = self.local_sum.wrapping_add((self.value)(&value));
        Ok(())
    }
    fn invoke_batch(&mut self, values: &mut Vec<T>) -> Result<(), UserError> {
        self.local_records += values.len() as u64;
        for v in values.drain(..) {
            self.local_sum = self.local_sum.wrapping_add((self.value)(&v));
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<(), UserError> {
        self.records
            .fetch_add(self.local_records, Ordering::Relaxed);
        self.checksum.fetch_add(self.local_sum, Ordering::Relaxed);
        Ok(())
    }
}

/// Keeps the last (largest) value per key, as the peers' `KEYED_MAX` probe.
#[derive(Clone)]
struct KeyedMaxSink {
    records: Arc<AtomicU64>,
    finals: Arc<Mutex<FxHashMap<i64, i64>>>,
    local_records: u64,
    local: FxHashMap<i64, i64>,
}

impl SinkFunction<(i64, i64)> for KeyedMaxSink {
    fn invoke(&mut self, (k, v): (i64, i64)) -> Result<(), UserError> {
        self.local_records += 1;
        let slot = self.local.entry(k).or_insert(v);
        *slot = (*slot).max(v);
        Ok(())
    }
    fn invoke_batch(&mut self, values: &mut Vec<(i64, i64)>) -> Result<(), UserError> {
        self.local_records += values.len() as u64;
        for (k, v) in values.drain(..) {
            let slot = self.local.entry(k).or_insert(v);
            *slot = (*slot).max(v);
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<(), UserError> {
        self.records
            .fetch_add(self.local_records, Ordering::Relaxed);
        let mut finals = self.finals.lock().map_err(|_| "poisoned")?;
        for (k, v) in self.local.drain() {
            let slot = finals.entry(k).or_insert(v);
            *slot = (*slot).max(v);
        }
        Ok(())
    }
}

fn counting<F: Clone>(value: F) -> (CountingSink<F>, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (records, checksum) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let sink = CountingSink {
        records: Arc::clone(&records),
        checksum: Arc::clone(&checksum),
        local_records: 0,
        local_sum: 0,
        value,
    };
    (sink, records, checksum)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn default_words_file() -> PathBuf {
    let home = std::env::var("PEERS_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/superflow-peers")
        });
    home.join("data/words.txt")
}

/// Runs one workload; returns (input records, output records, checksum, ok) and the
/// seconds the job itself took (result checks excluded).
fn run(args: &Args) -> Result<(Checked, f64, Vec<CheckpointStats>)> {
    let started = Instant::now();
    let mut info = RunInfo::default();
    let outcome = run_workload(args, &mut info, started);
    let _ = std::fs::remove_dir_all(checkpoint_dir());
    Ok((
        outcome?,
        info.job_seconds
            .unwrap_or_else(|| started.elapsed().as_secs_f64()),
        info.checkpoints,
    ))
}

/// Where checkpoints of a bench run go (deleted after the run).
fn checkpoint_dir() -> PathBuf {
    std::env::temp_dir().join(format!("superflow-bench-{}", std::process::id()))
}

/// Input records, output records, checksum, and whether the output is right.
type Checked = (u64, u64, u64, bool);

/// What a run measured besides its output.
#[derive(Default)]
struct RunInfo {
    job_seconds: Option<f64>,
    checkpoints: Vec<CheckpointStats>,
}

/// Runs the job, keeping its checkpoint statistics.
fn execute(
    env: &StreamExecutionEnvironment,
    name: &str,
    run: &mut RunInfo,
) -> Result<JobExecutionResult, JobError> {
    let result = env.execute(name)?;
    run.checkpoints = result.checkpoints.clone();
    Ok(result)
}

fn run_workload(args: &Args, run: &mut RunInfo, started: Instant) -> Result<(u64, u64, u64, bool)> {
    let n = args.records;
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(args.parallelism);
    if let Some(interval) = args.checkpoint_interval_ms.filter(|ms| *ms > 0) {
        env.enable_checkpointing(std::time::Duration::from_millis(interval));
        let storage = checkpoint_dir();
        env.configure_checkpoints(move |c| c.storage = storage);
    }
    if args.state_backend == BackendChoice::Lsm {
        env.set_state_backend(
            superflow::runtime::checkpoint::StateBackendConfig::EmbeddedLsm {
                dir: None,
                cache_entries: args.cache_entries,
                timers: match args.timers {
                    Timers::Store => superflow::runtime::checkpoint::TimerStorage::InStore,
                    Timers::Memory => superflow::runtime::checkpoint::TimerStorage::InMemory,
                },
                block_cache_bytes: args.block_cache_mb << 20,
            },
        );
    }
    env.set_auto_watermark_interval(std::time::Duration::from_millis(args.watermark_interval_ms));
    match args.workload {
        Workload::Trivial => {
            let (sink, records, _) = counting(|_: &i64| 0u64);
            env.set_parallelism(1);
            env.from_sequence(0, 0).add_sink(sink);
            execute(&env, "trivial", run)?;
            run.job_seconds = Some(started.elapsed().as_secs_f64());
            let out = records.load(Ordering::Relaxed);
            Ok((1, out, 0, out == 1))
        }
        Workload::W1 => {
            let (sink, records, checksum) = counting(|x: &i64| *x as u64);
            env.from_sequence(0, n as i64 - 1)
                .map(|i: i64| 2 * i + 1)
                .filter(|x: &i64| x % 3 != 0)
                .add_sink(sink);
            execute(&env, "w1", run)?;
            run.job_seconds = Some(started.elapsed().as_secs_f64());
            let (mut count, mut sum) = (0u64, 0u64);
            for i in 0..n {
                let x = 2 * i + 1;
                if x % 3 != 0 {
                    count += 1;
                    sum = sum.wrapping_add(x);
                }
            }
            let (out, cks) = (
                records.load(Ordering::Relaxed),
                checksum.load(Ordering::Relaxed),
            );
            Ok((n, out, cks, out == count && cks == sum))
        }
        Workload::W2 => {
            let keys = args.keys as i64;
            let records = Arc::new(AtomicU64::new(0));
            let finals = Arc::new(Mutex::new(FxHashMap::default()));
            let sink = KeyedMaxSink {
                records: Arc::clone(&records),
                finals: Arc::clone(&finals),
                local_records: 0,
                local: FxHashMap::default(),
            };
            env.from_sequence(0, n as i64 - 1)
                .map(move |i: i64| (i % keys, i))
                .key_by(|t: &(i64, i64)| t.0)
                .reduce(|a: (i64, i64), b: (i64, i64)| (a.0, a.1 + b.1))
                .add_sink(sink);
            execute(&env, "w2", run)?;
            run.job_seconds = Some(started.elapsed().as_secs_f64());
            let out = records.load(Ordering::Relaxed);
            let finals = finals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let checksum = finals
                .values()
                .map(|v| *v as u64)
                .fold(0u64, u64::wrapping_add);
            let expected = (n as u128 * (n as u128).saturating_sub(1) / 2) as u64;
            Ok((n, out, checksum, out == n && checksum == expected))
        }
        Workload::W4 => {
            let input = args.input.clone().unwrap_or_else(default_words_file);
            if !input.exists() {
                bail!(
                    "w4 needs a words file: {} does not exist (write one with ../shared/peers/flink/gen_words.py --out FILE, or pass --input)",
                    input.display()
                );
            }
            let (sink, records, checksum) = counting(|t: &(String, i64)| t.1 as u64);
            env.read_text_file(&input)
                .flat_map(|line: String, out: &mut Collector<(String, i64)>| {
                    for word in line.split(' ') {
                        if !word.is_empty() {
                            out.collect((word.to_string(), 1));
                        }
                    }
                })
                .key_by(|t: &(String, i64)| t.0.clone())
                .reduce(|a: (String, i64), b: (String, i64)| (a.0, a.1 + b.1))
                .add_sink(sink);
            execute(&env, "w4", run).with_context(|| format!("w4 over {}", input.display()))?;
            run.job_seconds = Some(started.elapsed().as_secs_f64());
            let out = records.load(Ordering::Relaxed);
            Ok((out, out, checksum.load(Ordering::Relaxed), out > 0))
        }
        Workload::Socket | Workload::FileLines => {
            // The lines are made before the job, so the job's time is the source's.
            let mut text = Vec::with_capacity(n as usize * 11);
            for i in 0..n {
                text.extend_from_slice(format!("{i:010}\n").as_bytes());
            }
            let (sink, records, checksum) =
                counting(|line: &String| line.parse::<u64>().unwrap_or(u64::MAX));
            let lines = if matches!(args.workload, Workload::Socket) {
                let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
                let port = listener.local_addr()?.port();
                std::thread::spawn(move || {
                    if let Ok((mut peer, _)) = listener.accept() {
                        use std::io::Write;
                        let _ = peer.write_all(&text);
                    }
                });
                env.set_parallelism(1);
                env.socket_text_stream("127.0.0.1", port)
            } else {
                let file = std::env::temp_dir()
                    .join(format!("superflow-bench-lines-{}.txt", std::process::id()));
                std::fs::write(&file, &text)?;
                drop(text);
                env.read_text_file(&file)
            };
            lines.add_sink(sink);
            let name = format!("{:?}", args.workload).to_lowercase();
            let job_started = Instant::now();
            let result = execute(&env, &name, run);
            run.job_seconds = Some(job_started.elapsed().as_secs_f64());
            let _ = std::fs::remove_file(
                std::env::temp_dir()
                    .join(format!("superflow-bench-lines-{}.txt", std::process::id())),
            );
            result?;
            let (out, cks) = (
                records.load(Ordering::Relaxed),
                checksum.load(Ordering::Relaxed),
            );
            let expected = (n as u128 * (n as u128).saturating_sub(1) / 2) as u64;
            Ok((n, out, cks, out == n && cks == expected))
        }
        Workload::W3 => {
            let p = args.parallelism as i64;
            let chunk = n as i64 / p;
            if chunk * p != n as i64 {
                bail!("w3 needs --records divisible by --parallelism");
            }
            let (sink, records, checksum) = counting(|t: &(i64, i64, u64)| t.2);
            env.from_sequence(0, n as i64 - 1)
                .map(move |i: i64| (i % chunk) * p + i / chunk)
                .assign_timestamps_and_watermarks(
                    WatermarkStrategy::for_monotonous_timestamps()
                        .with_timestamp_assigner(|e: &i64, _| *e),
                )
                .key_by(|e: &i64| e % 1000)
                .window(TumblingEventTimeWindows::of(
                    std::time::Duration::from_secs(1),
                ))
                .aggregate_with_process(
                    superflow_nexmark::queries::CountAggregate,
                    |key: &i64,
                     ctx: &mut ProcessWindowContext<'_, i64, TimeWindow>,
                     counts: &[u64],
                     out: &mut Collector<(i64, i64, u64)>| {
                        out.collect((*key, ctx.window().start, counts[0]));
                        Ok(())
                    },
                )
                .add_sink(sink);
            execute(&env, "w3", run)?;
            run.job_seconds = Some(started.elapsed().as_secs_f64());
            let (out, total) = (
                records.load(Ordering::Relaxed),
                checksum.load(Ordering::Relaxed),
            );
            // Every 1 s window holds 1,000 events, one per key.
            let pairs = n.div_ceil(1000).min(n) * 1000u64.min(n);
            Ok((n, out, total, total == n && (n % 1000 != 0 || out == pairs)))
        }
        Workload::WindowCount => {
            let keys = args.keys as i64;
            let p = args.parallelism as i64;
            let chunk = n as i64 / p;
            if chunk * p != n as i64 {
                bail!("window-count needs --records divisible by --parallelism");
            }
            let (sink, records, checksum) = counting(|t: &(i64, u64)| t.1);
            // As in w3, every subtask's events ascend and the subtasks advance in
            // lock-step, so the watermark does not wait for one subtask's half of the input.
            env.from_sequence(0, n as i64 - 1)
                .map(move |i: i64| (i % chunk) * p + i / chunk)
                .map(move |e: i64| (e % keys, e))
                .assign_timestamps_and_watermarks(
                    WatermarkStrategy::for_monotonous_timestamps()
                        .with_timestamp_assigner(|t: &(i64, i64), _| t.1 / 1000),
                )
                .key_by(|t: &(i64, i64)| t.0)
                .window(TumblingEventTimeWindows::of(
                    std::time::Duration::from_secs(1),
                ))
                .aggregate(superflow_nexmark::queries::CountAggregate)
                .map(|count: u64| (0i64, count))
                .add_sink(sink);
            execute(&env, "window-count", run)?;
            run.job_seconds = Some(started.elapsed().as_secs_f64());
            let (out, total) = (
                records.load(Ordering::Relaxed),
                checksum.load(Ordering::Relaxed),
            );
            // Each window of 1,000,000 consecutive records holds min(keys, 1e6) keys.
            let windows = n.div_ceil(1_000_000);
            let per_window = (args.keys).min(1_000_000);
            let expected_out = if n % 1_000_000 == 0 {
                windows * per_window
            } else {
                out
            };
            Ok((n, out, total, total == n && out == expected_out))
        }
        Workload::NexmarkGen
        | Workload::NexmarkQ0
        | Workload::NexmarkQ1
        | Workload::NexmarkQ2
        | Workload::NexmarkQ3
        | Workload::NexmarkQ4
        | Workload::NexmarkQ5
        | Workload::NexmarkQ6
        | Workload::NexmarkQ7
        | Workload::NexmarkQ8
        | Workload::NexmarkQ9
        | Workload::NexmarkQ11
        | Workload::NexmarkQ12 => {
            use superflow_nexmark::queries as q;
            let settings = superflow_nexmark::NexmarkSettings {
                events: n,
                events_per_second: args.event_rate,
                ..Default::default()
            };
            let events = superflow_nexmark::event_stream(&env, &settings);
            let (sink, records, _) = counting(|_: &()| 0u64);
            fn unit<T: Data>(s: DataStream<T>) -> DataStream<()> {
                s.map(|_: T| ())
            }
            let out = match args.workload {
                Workload::NexmarkQ0 => unit(q::q0(&events)),
                Workload::NexmarkQ1 => unit(q::q1(&events)),
                Workload::NexmarkQ2 => unit(q::q2(&events)),
                Workload::NexmarkQ3 => unit(q::q3(&events)),
                Workload::NexmarkQ4 => unit(q::q4(&events)),
                Workload::NexmarkQ5 => unit(q::q5(&events)),
                Workload::NexmarkQ6 => unit(q::q6(&events)),
                Workload::NexmarkQ7 => unit(q::q7(&events)),
                Workload::NexmarkQ8 => unit(q::q8(&events)),
                Workload::NexmarkQ9 => unit(q::q9(&events)),
                Workload::NexmarkQ11 => unit(q::q11(&events)),
                Workload::NexmarkQ12 => unit(q::q12(&events, std::time::Duration::from_secs(10))),
                _ => unit(events),
            };
            out.add_sink(sink);
            execute(&env, "nexmark", run)?;
            run.job_seconds = Some(started.elapsed().as_secs_f64());
            let out = records.load(Ordering::Relaxed);
            let ok = match args.workload {
                Workload::NexmarkGen => out == n,
                Workload::NexmarkQ0 | Workload::NexmarkQ1 => out > 0 && out <= n,
                _ => true,
            };
            Ok((n, out, 0, ok))
        }
        Workload::StateSnapshot => bail!("state-snapshot runs on its own"),
        Workload::Baseline => {
            let keys = args.keys as i64;
            let mut sums: FxHashMap<i64, (i64, i64)> = FxHashMap::default();
            let mut emitted = 0u64;
            let mut last = 0i64;
            for i in 0..n as i64 {
                let record = (i % keys, i);
                let slot = sums.entry(record.0).or_insert((record.0, 0));
                slot.1 += record.1;
                emitted += 1;
                last = std::hint::black_box(slot.1);
            }
            std::hint::black_box(last);
            run.job_seconds = Some(started.elapsed().as_secs_f64());
            let checksum = sums
                .values()
                .map(|v| v.1 as u64)
                .fold(0u64, u64::wrapping_add);
            let expected = (n as u128 * (n as u128).saturating_sub(1) / 2) as u64;
            Ok((n, emitted, checksum, checksum == expected))
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.parallelism == 0 {
        bail!("--parallelism must be at least 1");
    }
    if matches!(args.workload, Workload::StateSnapshot) {
        for _ in 0..args.repeat.max(1) {
            println!("{}", serde_json::to_string(&state_snapshot(&args)?)?);
        }
        return Ok(());
    }
    for _ in 0..args.repeat.max(1) {
        let ((records, output_records, checksum, ok), seconds, checkpoints) = run(&args)?;
        let parallelism = if matches!(args.workload, Workload::Baseline | Workload::Trivial) {
            1
        } else {
            args.parallelism
        };
        let rate = records as f64 / seconds;
        let report = Report {
            workload: args.workload,
            records,
            parallelism,
            seconds,
            records_per_sec: rate,
            records_per_sec_per_core: rate / parallelism as f64,
            events_per_sec_per_core: args
                .workload
                .is_nexmark()
                .then_some(rate / parallelism as f64),
            peak_rss_mb: peak_rss_mb(),
            output_records,
            checksum,
            ok,
            checkpoints: args
                .checkpoint_interval_ms
                .filter(|ms| *ms > 0)
                .map(|_| CheckpointFigures::of(&checkpoints)),
        };
        println!("{}", serde_json::to_string(&report)?);
        if !ok {
            bail!("{:?} produced a wrong result: {report:?}", args.workload);
        }
    }
    Ok(())
}

/// What `state-snapshot` measured.
#[derive(Debug, Serialize)]
struct StateSnapshotReport {
    workload: &'static str,
    state_backend: BackendChoice,
    keys: u64,
    /// Encoded state (the part file before compression).
    state_bytes: u64,
    part_bytes: u64,
    fill_seconds: f64,
    sync_ms: f64,
    encode_ms: f64,
    write_ms: f64,
    restore_ms: f64,
    peak_rss_mb: f64,
    ok: bool,
}

/// Fills a keyed state of `--keys` entries, checkpoints it into a part file and
/// restores it, with the chosen backend.
fn state_snapshot(args: &Args) -> Result<StateSnapshotReport> {
    use superflow::core::KeyGroupRange;
    use superflow_state::{
        DiskStateStore, EmbeddedStateBackend, MemoryStateBackend, SpillingMap, StateBackend,
    };
    type Value = (u64, u64, u64, u64, u64);
    let dir = checkpoint_dir();
    std::fs::create_dir_all(&dir)?;
    let backend: Box<dyn StateBackend> = match args.state_backend {
        BackendChoice::Memory => Box::new(MemoryStateBackend),
        BackendChoice::Lsm => Box::new(EmbeddedStateBackend::new(
            DiskStateStore::open(&dir.join("lsm"))?,
            args.cache_entries,
            false,
        )),
    };
    let open = |name: &str| -> Result<SpillingMap<u64, Value>> {
        Ok(SpillingMap::in_backend(&*backend, name, 128, None)?)
    };
    let started = Instant::now();
    let mut map = open("bench/state")?;
    for k in 0..args.keys {
        map.insert(k, state_value(k));
    }
    let fill_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let encode = map.snapshot_later(128);
    let sync_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let bytes = encode()?;
    let encode_ms = started.elapsed().as_secs_f64() * 1e3;
    let state_bytes = bytes.len() as u64;
    let started = Instant::now();
    let packed = lz4_compress(&bytes);
    let part = dir.join("part");
    std::fs::write(&part, &packed)?;
    let write_ms = started.elapsed().as_secs_f64() * 1e3;
    drop(bytes);
    drop(map);
    let started = Instant::now();
    let packed = std::fs::read(&part)?;
    let bytes = lz4_decompress(&packed)?;
    let mut back = open("bench/restored")?;
    let restored = back
        .restore(&bytes, KeyGroupRange::all())
        .map_err(anyhow::Error::msg)?;
    let restore_ms = started.elapsed().as_secs_f64() * 1e3;
    let ok = restored as u64 == args.keys
        && back.get_mut(&(args.keys / 2)).copied() == Some(state_value(args.keys / 2));
    drop(back);
    drop(backend);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(StateSnapshotReport {
        workload: "state-snapshot",
        state_backend: args.state_backend,
        keys: args.keys,
        state_bytes,
        part_bytes: packed.len() as u64,
        fill_seconds,
        sync_ms,
        encode_ms,
        write_ms,
        restore_ms,
        peak_rss_mb: peak_rss_mb(),
        ok,
    })
}

/// The value of key `k`: five full-width numbers (about 50 bytes encoded).
fn state_value(k: u64) -> (u64, u64, u64, u64, u64) {
    let x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | (1 << 63);
    (x, x ^ 1, x ^ 2, x ^ 3, x ^ 4)
}

fn lz4_compress(bytes: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(bytes)
}

fn lz4_decompress(bytes: &[u8]) -> Result<Vec<u8>> {
    Ok(lz4_flex::decompress_size_prepended(bytes)?)
}
