//! Restoring at another parallelism, from damaged checkpoints, and from savepoints.
//!
//! The job: a parallel generator (its splits are the source's state), a rolling sum per
//! key (keyed state) and a keyed process function that counts per key in value state and
//! reports the count from an event-time timer at the end (timers), into a `FileSink`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use superflow::prelude::*;

mod common;
use common::{committed_lines as lines, copy_dir};

const RECORDS: u64 = 40_000;
const KEYS: u64 = 101;

/// Counts records per key; reports `total <key> <count>` when the input ends.
#[derive(Clone)]
struct CountPerKey {
    count: ValueStateDescriptor<u64>,
}

impl KeyedProcessFunction<u64, (u64, u64), String> for CountPerKey {
    fn process_element(
        &mut self,
        _value: (u64, u64),
        ctx: &mut KeyedProcessContext<u64>,
        _out: &mut Collector<String>,
    ) -> Result<(), UserError> {
        let mut count = ctx.get_state(&self.count);
        let n = count.value().unwrap_or(0) + 1;
        count.update(n);
        ctx.timer_service().register_event_time_timer(i64::MAX - 1);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _time: i64,
        ctx: &mut KeyedProcessContext<u64>,
        out: &mut Collector<String>,
    ) -> Result<(), UserError> {
        let key = *ctx.get_current_key();
        let n = ctx.get_state(&self.count).value().unwrap_or(0);
        out.collect(format!("total {key} {n}"));
        Ok(())
    }
}

fn job(env: &StreamExecutionEnvironment, out: &Path, fail_at: Option<FailAt>, rate: f64) {
    job_with(env, out, fail_at, rate, JOB_KEY_GROUPS);
}

/// Where a first run fails: at the first record from `record` on once the checkpoint
/// storage holds `complete` complete checkpoints, so that it has them to restore from
/// however slowly a loaded machine takes them. The failure says `failing at <record>`.
#[derive(Clone)]
struct FailAt {
    record: u64,
    storage: PathBuf,
    complete: usize,
    /// A complete checkpoint must have at least this id.
    min_checkpoint: u64,
}

impl FailAt {
    fn new(record: u64, storage: &Path, complete: usize) -> Option<FailAt> {
        Some(FailAt {
            record,
            storage: storage.to_path_buf(),
            complete,
            min_checkpoint: 0,
        })
    }

    fn due(&self, record: u64) -> bool {
        if record < self.record {
            return false;
        }
        let complete: Vec<u64> = std::fs::read_dir(&self.storage)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("_metadata").is_file())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
            .collect();
        complete.len() >= self.complete && complete.iter().any(|&id| id >= self.min_checkpoint)
    }
}

/// The max parallelism of the two keyed operators, (sums, totals); `None` takes the
/// job's.
type OwnKeyGroups = (Option<usize>, Option<usize>);

const JOB_KEY_GROUPS: OwnKeyGroups = (None, None);

fn with_groups<T: superflow::Data>(stream: DataStream<T>, groups: Option<usize>) -> DataStream<T> {
    match groups {
        Some(n) => stream.set_max_parallelism(n),
        None => stream,
    }
}

fn job_with(
    env: &StreamExecutionEnvironment,
    out: &Path,
    fail_at: Option<FailAt>,
    rate: f64,
    (sums_groups, totals_groups): OwnKeyGroups,
) {
    let records = env
        .from_generator(|i| (i % KEYS, i), Some(RECORDS), Some(rate))
        .uid("numbers")
        .map(move |r: (u64, u64)| {
            if let Some(fail) = fail_at.as_ref().filter(|f| f.due(r.1)) {
                panic!("failing at {}", fail.record);
            }
            r
        })
        .uid("check");
    let sums = records
        .key_by(|r: &(u64, u64)| r.0)
        .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
        .uid("sums");
    let sums = with_groups(sums, sums_groups)
        .map(|(k, s): (u64, u64)| format!("sum {k} {s}"))
        .uid("format");
    let totals = records
        .key_by(|r: &(u64, u64)| r.0)
        .process(CountPerKey {
            count: ValueStateDescriptor::new("count"),
        })
        .name("totals")
        .uid("totals");
    let totals = with_groups(totals, totals_groups);
    // A restore from an older checkpoint (a damaged newer one skipped) rolls back the
    // output committed after it, so that the output stays exact.
    sums.union(&[&totals])
        .sink_to(FileSink::new(out).with_committed_after_restore(CommittedAfterRestore::Quarantine))
        .uid("sink");
}

/// Runs the job at parallelism 3 restoring from `url`, after this process's staging
/// copy of the store is gone, as if another machine restored.
fn resume_elsewhere_from(url: &str, out: &Path, name: &str) -> superflow::JobExecutionResult {
    let remote =
        superflow::runtime::checkpoint::remote::open(url).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(remote.staging()).unwrap_or_else(|e| panic!("{e}"));
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(3);
    env.set_restore_path(url);
    job(&env, out, None, 200_000.0);
    env.execute(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Per key: the largest rolling sum, the number of sum lines, and the reported total.
fn summary(lines: &[String]) -> BTreeMap<u64, (u64, u64, u64)> {
    let mut out: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        let (Some(kind), Some(k), Some(v)) = (parts.first(), parts.get(1), parts.get(2)) else {
            panic!("bad line {line}");
        };
        let (k, v): (u64, u64) = (
            k.parse().unwrap_or_else(|e| panic!("{e}")),
            v.parse().unwrap_or_else(|e| panic!("{e}")),
        );
        let entry = out.entry(k).or_default();
        match *kind {
            "sum" => {
                entry.0 = entry.0.max(v);
                entry.1 += 1;
            }
            "total" => entry.2 = v,
            other => panic!("bad kind {other}"),
        }
    }
    out
}

fn expected() -> BTreeMap<u64, (u64, u64, u64)> {
    let mut out: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
    for i in 0..RECORDS {
        let e = out.entry(i % KEYS).or_default();
        e.0 += i;
        e.1 += 1;
        e.2 += 1;
    }
    out
}

/// Runs the job at parallelism 4 until it fails at record 24,000, leaving its
/// checkpoints and its output so far; returns (checkpoints, output) directories.
fn failed_run(root: &Path, retained: usize, rate: f64) -> (PathBuf, PathBuf) {
    failed_run_with(root, retained, rate, JOB_KEY_GROUPS)
}

fn failed_run_with(
    root: &Path,
    retained: usize,
    rate: f64,
    groups: OwnKeyGroups,
) -> (PathBuf, PathBuf) {
    let (checkpoints, out) = (root.join("checkpoints"), root.join("out"));
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(4);
    env.enable_checkpointing(Duration::from_millis(25));
    let storage = checkpoints.clone();
    env.configure_checkpoints(move |c| {
        c.storage = storage;
        c.retained = retained;
    });
    env.set_restart_strategy(RestartStrategy::None);
    job_with(
        &env,
        &out,
        FailAt::new(24_000, &checkpoints, retained),
        rate,
        groups,
    );
    let err = env.execute("rescale, first run").err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.to_string().contains("failing at 24000")),
        "{err:?}"
    );
    (checkpoints, out)
}

/// Restores a copy of `(checkpoints, out)` at `parallelism` and runs it to the end.
fn resume(
    root: &Path,
    from: &(PathBuf, PathBuf),
    name: &str,
    parallelism: usize,
) -> (JobExecutionResult, PathBuf) {
    let (result, out) = try_resume(root, from, name, parallelism, JOB_KEY_GROUPS);
    let result = result.unwrap_or_else(|e| panic!("at parallelism {parallelism}: {e}"));
    (result, out)
}

fn try_resume(
    root: &Path,
    from: &(PathBuf, PathBuf),
    name: &str,
    parallelism: usize,
    groups: OwnKeyGroups,
) -> (Result<JobExecutionResult, JobError>, PathBuf) {
    let (checkpoints, out) = (
        root.join(format!("{name}-checkpoints")),
        root.join(format!("{name}-out")),
    );
    copy_dir(&from.0, &checkpoints);
    copy_dir(&from.1, &out);
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(parallelism);
    env.enable_checkpointing(Duration::from_millis(25));
    let storage = checkpoints.clone();
    env.configure_checkpoints(move |c| c.storage = storage);
    env.set_restore_path(&checkpoints);
    job_with(&env, &out, None, 200_000.0, groups);
    (env.execute("rescale, resumed"), out)
}

#[test]
fn a_checkpoint_taken_at_parallelism_four_restores_at_one_two_and_eight() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let first = failed_run(root.path(), 2, 60_000.0);
    let before = summary(&lines(&first.1));
    assert!(
        before.values().map(|v| v.1).sum::<u64>() < RECORDS,
        "the first run committed part of its output at most"
    );
    for parallelism in [1, 2, 8] {
        let (result, out) = resume(root.path(), &first, &format!("p{parallelism}"), parallelism);
        assert!(result.restored_from.is_some());
        // Exactly once: every record's rolling sum once, and the right totals.
        assert_eq!(
            summary(&lines(&out)),
            expected(),
            "at parallelism {parallelism}"
        );
    }
}

#[test]
fn operators_with_their_own_max_parallelism_restore_at_another_parallelism() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Key groups unlike the job's 128 and unlike each other, so that routing by the
    // wrong count would send a key to a subtask that did not restore its state.
    let groups = (Some(7), Some(5));
    let first = failed_run_with(root.path(), 2, 60_000.0, groups);
    let metadata = std::fs::read_dir(&first.0)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("_metadata")).ok())
        .next()
        .unwrap_or_else(|| panic!("no checkpoint in {}", first.0.display()));
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        metadata["operator_key_groups"],
        serde_json::json!({"sums": 7, "totals": 5})
    );
    for parallelism in [3, 5] {
        let name = format!("own-p{parallelism}");
        let (result, out) = try_resume(root.path(), &first, &name, parallelism, groups);
        let result = result.unwrap_or_else(|e| panic!("at parallelism {parallelism}: {e}"));
        assert!(result.restored_from.is_some());
        assert_eq!(
            summary(&lines(&out)),
            expected(),
            "at parallelism {parallelism}"
        );
    }

    let (too_wide, _) = try_resume(root.path(), &first, "own-p6", 6, groups);
    let err = too_wide.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains(
            "the parallelism of operator 'totals' is 6, which exceeds the max parallelism 5"
        ),
        "{err}"
    );
    let (changed, _) = try_resume(root.path(), &first, "own-changed", 3, (Some(7), Some(6)));
    let err = changed.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("with max parallelism 5 for operator 'totals', the job now has 6"),
        "{err}"
    );
    let (job_default, _) = try_resume(root.path(), &first, "own-job", 3, (Some(7), None));
    let err = job_default.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("with max parallelism 5 for operator 'totals', the job now has 128"),
        "{err}"
    );
}

#[test]
fn a_damaged_checkpoint_is_skipped_for_the_previous_one() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Slower, so that three checkpoints complete before the failure.
    let first = failed_run(root.path(), 3, 30_000.0);
    let storage = CheckpointStorage::new(&first.0);
    let complete: Vec<u64> = storage
        .checkpoint_ids()
        .into_iter()
        .filter(|&id| storage.is_complete(id))
        .collect();
    assert_eq!(complete.len(), 3, "{complete:?}");
    let part_of = |id: u64| -> PathBuf {
        std::fs::read_dir(storage.checkpoint_dir(id))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "part"))
            .unwrap_or_else(|| panic!("checkpoint {id} has parts"))
    };
    // The newest: truncated. The one before: a flipped byte.
    let newest = part_of(complete[2]);
    let bytes = std::fs::read(&newest).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
    let second = part_of(complete[1]);
    let mut bytes = std::fs::read(&second).unwrap_or_else(|e| panic!("{e}"));
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&second, bytes).unwrap_or_else(|e| panic!("{e}"));

    // Asked for by name, a damaged checkpoint is an error that names it.
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_restore_path(storage.checkpoint_dir(complete[2]));
    job(&env, &root.path().join("unused"), None, 200_000.0);
    let err = env
        .execute("explicit")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("has") && err.contains(".part"), "{err}");

    let (result, out) = resume(root.path(), &first, "fallback", 2);
    let restored = result.restored_from.unwrap_or_default();
    assert!(
        restored.ends_with(format!("chk-{}", complete[0])),
        "restored from {}",
        restored.display()
    );
    // State is right; output the sink committed after the older checkpoint is written
    // again (a restore from an older checkpoint replays it, as in Flink).
    let summary = summary(&lines(&out));
    let expected = expected();
    for (key, (max, count, total)) in &expected {
        let got = summary.get(key).copied().unwrap_or_default();
        assert_eq!((got.0, got.2), (*max, *total), "key {key}");
        assert!(got.1 >= *count, "key {key}");
    }
}

#[test]
fn a_savepoint_stops_the_job_and_restores_at_another_parallelism() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = root.path().join("out");
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    job(&env, &out, None, 20_000.0);
    let client = env
        .execute_async("savepoints")
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(300));
    let first = client
        .trigger_savepoint(root.path().join("savepoint-1"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(first.join("_metadata").is_file());
    std::thread::sleep(Duration::from_millis(200));
    let stopped = client
        .stop_with_savepoint(root.path().join("savepoint-2"))
        .unwrap_or_else(|e| panic!("{e}"));
    let result = client.wait().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        result
            .checkpoints
            .iter()
            .filter(|c| c.savepoint && c.status == CheckpointStatus::Completed)
            .count(),
        2
    );
    let partial = summary(&lines(&out));
    assert!(
        partial.values().map(|v| v.1).sum::<u64>() < RECORDS,
        "the job stopped early"
    );
    assert!(
        partial.values().all(|v| v.2 == 0),
        "no totals: the input did not end"
    );

    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(3);
    env.set_restore_path(&stopped);
    job(&env, &out, None, 200_000.0);
    env.execute("from the savepoint")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary(&lines(&out)), expected());
}

/// Counts the records it gets in operator list state (Flink's `CheckpointedFunction`)
/// and adds its count to a shared total when its input ends.
#[derive(Clone)]
struct CountingSink {
    counts: Vec<u64>,
    total: std::sync::Arc<std::sync::atomic::AtomicU64>,
    union_seen: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SinkFunction<u64> for CountingSink {
    fn initialize_state(
        &mut self,
        ctx: &superflow::runtime::checkpoint::FunctionInitializationContext<'_>,
    ) -> Result<(), UserError> {
        // Each old subtask's count comes back to exactly one new subtask.
        self.counts = ctx.get_list_state("counts");
        if self.counts.is_empty() {
            self.counts.push(0);
        }
        let union: Vec<u64> = ctx.get_union_list_state("everyone");
        self.union_seen
            .fetch_max(union.len() as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn invoke(&mut self, _value: u64) -> Result<(), UserError> {
        self.counts[0] += 1;
        Ok(())
    }

    fn snapshot_state(
        &mut self,
        ctx: &mut superflow::runtime::checkpoint::FunctionSnapshotContext<'_>,
    ) -> Result<(), UserError> {
        ctx.put_list_state("counts", &self.counts)?;
        ctx.put_union_list_state("everyone", &[1u64])?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.total.fetch_add(
            self.counts.iter().sum::<u64>(),
            std::sync::atomic::Ordering::SeqCst,
        );
        Ok(())
    }
}

#[test]
fn operator_list_state_is_dealt_and_union_state_shared_on_restore() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let storage = root.path().join("checkpoints");
    let run = |parallelism: usize, fail_at: Option<u64>, restore: bool| {
        let env = StreamExecutionEnvironment::get_execution_environment();
        env.set_parallelism(parallelism);
        env.enable_checkpointing(Duration::from_millis(20));
        let dir = storage.clone();
        env.configure_checkpoints(move |c| c.storage = dir);
        env.set_restart_strategy(RestartStrategy::None);
        if restore {
            env.set_restore_path(&storage);
        }
        let (total, union_seen) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        env.from_generator(|i| i, Some(10_000), Some(40_000.0))
            .uid("numbers")
            .map(move |i: u64| {
                if Some(i) == fail_at {
                    panic!("failing at {i}");
                }
                i
            })
            .uid("check")
            .add_sink(CountingSink {
                counts: Vec::new(),
                total: Arc::clone(&total),
                union_seen: Arc::clone(&union_seen),
            })
            .uid("counting-sink");
        let outcome = env.execute("operator state");
        (
            outcome,
            total.load(Ordering::SeqCst),
            union_seen.load(Ordering::SeqCst),
        )
    };
    let (first, _, _) = run(4, Some(6_000), false);
    assert!(first.is_err());
    let (second, total, union_seen) = run(3, None, true);
    second.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(total, 10_000, "every record counted once over the restore");
    assert_eq!(union_seen, 4, "the union state of all four old subtasks");
}

/// A job environment at parallelism 2 with the embedded backend in `root/lsm`, ten
/// entries per state in memory, checkpoints every `interval` ms into `root/checkpoints`
/// keeping `retained`, and no restarts.
fn embedded_env(
    root: &Path,
    timers: TimerStorage,
    (interval, retained): (u64, usize),
) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    env.set_state_backend(StateBackendConfig::EmbeddedLsm {
        dir: Some(root.join("lsm")),
        cache_entries: 10,
        timers,
        block_cache_bytes: 1 << 20,
    });
    env.enable_checkpointing(Duration::from_millis(interval));
    let storage = root.join("checkpoints");
    env.configure_checkpoints(move |c| {
        c.storage = storage;
        c.retained = retained;
    });
    env.set_restart_strategy(RestartStrategy::None);
    env
}

#[test]
fn state_spilled_to_the_embedded_store_checkpoints_and_restores_in_memory_and_back() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (checkpoints, out) = (root.path().join("checkpoints"), root.path().join("out"));
    // Ten entries per state in memory: nearly all of the 101 keys live in the store.
    let env = embedded_env(root.path(), TimerStorage::InStore, (25, 2));
    // Slow enough for several checkpoints with nearly every access going to the store.
    job(&env, &out, FailAt::new(16_000, &checkpoints, 2), 16_000.0);
    let err = env
        .execute("lsm, first run")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("failing at 16000"), "{err}");
    // The store's state went into the checkpoints incrementally: chains of a full file
    // and deltas, shared between checkpoints.
    let (metadata, _) = superflow::runtime::checkpoint::find_restorable(&checkpoints)
        .unwrap_or_else(|e| panic!("{e}"));
    // A part names the files of each of its states' chains (`<partition>-c<id>`).
    let mut chains: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for file in metadata.parts.iter().flat_map(|p| &p.shared) {
        let state = file
            .rsplit_once("-c")
            .map_or(file.as_str(), |(state, _)| state);
        *chains.entry(state).or_default() += 1;
    }
    let longest = chains.values().copied().max().unwrap_or(0);
    // Timers in the store are checkpointed incrementally too.
    assert!(
        metadata
            .parts
            .iter()
            .flat_map(|p| &p.states)
            .any(|(state, kind)| {
                state.ends_with("/timers")
                    && *kind == superflow::runtime::checkpoint::SectionKind::KeyedChain
            }),
        "{:?}",
        metadata.parts
    );
    // Checkpoint n of a run is the n-th snapshot of every stage: a full file at the
    // first and every 8th, a delta at the others.
    let chain = ((metadata.id - 1) % 8 + 1) as usize;
    assert_eq!(
        longest, chain,
        "checkpoint {}: {:?}",
        metadata.id, metadata.parts
    );
    let first = (checkpoints, out);
    // Restored in memory at 3.
    let (_, in_memory) = resume(root.path(), &first, "memory", 3);
    assert_eq!(summary(&lines(&in_memory)), expected());
    // And into the store again, at 1.
    let (copy, out) = (
        root.path().join("lsm-checkpoints"),
        root.path().join("lsm-out"),
    );
    copy_dir(&first.0, &copy);
    copy_dir(&first.1, &out);
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(1);
    env.set_state_backend(StateBackendConfig::EmbeddedLsm {
        dir: None,
        cache_entries: 5,
        timers: TimerStorage::InStore,
        block_cache_bytes: 1 << 20,
    });
    env.set_restore_path(&copy);
    job(&env, &out, None, 200_000.0);
    env.execute("lsm, resumed")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary(&lines(&out)), expected());
}

#[test]
fn cancelled_jobs_keep_or_delete_their_checkpoints_as_configured() {
    for retention in [
        ExternalizedCheckpointRetention::RetainOnCancellation,
        ExternalizedCheckpointRetention::DeleteOnCancellation,
    ] {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (checkpoints, out) = (root.path().join("checkpoints"), root.path().join("out"));
        let env = StreamExecutionEnvironment::get_execution_environment();
        env.set_parallelism(2);
        env.enable_checkpointing(Duration::from_millis(20));
        let storage = checkpoints.clone();
        env.configure_checkpoints(move |c| {
            c.storage = storage;
            c.retention = retention;
        });
        job(&env, &out, None, 20_000.0);
        let client = env
            .execute_async("cancelled")
            .unwrap_or_else(|e| panic!("{e}"));
        let storage = CheckpointStorage::new(&checkpoints);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !storage
            .checkpoint_ids()
            .iter()
            .any(|&id| storage.is_complete(id))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint completed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        client.cancel();
        client.wait().unwrap_or_else(|e| panic!("{e}"));
        let kept = storage
            .checkpoint_ids()
            .iter()
            .any(|&id| storage.is_complete(id));
        match retention {
            ExternalizedCheckpointRetention::RetainOnCancellation => {
                assert!(kept, "retained on cancellation");
                // And the job resumes from them to the end, exactly once.
                let env = StreamExecutionEnvironment::get_execution_environment();
                env.set_parallelism(2);
                env.set_restore_path(&checkpoints);
                job(&env, &out, None, 200_000.0);
                env.execute("resumed after cancel")
                    .unwrap_or_else(|e| panic!("{e}"));
                // Exactly once: what the cancelled run did not commit is replayed.
                assert_eq!(summary(&lines(&out)), expected());
            }
            ExternalizedCheckpointRetention::DeleteOnCancellation => {
                assert!(!kept, "deleted on cancellation");
            }
        }
    }
}

#[test]
fn expired_checkpoints_fail_the_job_past_the_tolerable_number() {
    for tolerable in [0u32, 1_000] {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let env = StreamExecutionEnvironment::get_execution_environment();
        env.set_parallelism(2);
        env.enable_checkpointing(Duration::from_millis(10));
        let storage = root.path().join("checkpoints");
        env.configure_checkpoints(move |c| {
            c.storage = storage;
            // No checkpoint can complete this fast (the sources see it on their next
            // activation at the earliest).
            c.timeout = Duration::from_nanos(1);
            c.tolerable_failures = tolerable;
        });
        env.set_restart_strategy(RestartStrategy::None);
        job(&env, &root.path().join("out"), None, 40_000.0);
        let outcome = env.execute("expiring checkpoints");
        if tolerable == 0 {
            let err = outcome.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.contains("expired") && err.contains("tolerates 0"),
                "{err}"
            );
        } else {
            let result = outcome.unwrap_or_else(|e| panic!("{e}"));
            assert!(result
                .checkpoints
                .iter()
                .all(|c| matches!(c.status, CheckpointStatus::Failed(_))));
            assert!(!result.checkpoints.is_empty());
        }
    }
}

#[test]
fn incremental_checkpoints_in_an_object_store_restore_into_an_empty_staging_directory() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (store, out) = (root.path().join("store"), root.path().join("out"));
    let url = format!("file://{}", store.display());
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    env.set_state_backend(StateBackendConfig::EmbeddedLsm {
        dir: Some(root.path().join("lsm")),
        cache_entries: 10,
        timers: TimerStorage::InStore,
        block_cache_bytes: 1 << 20,
    });
    env.enable_checkpointing(Duration::from_millis(25));
    let location = PathBuf::from(&url);
    env.configure_checkpoints(move |c| c.storage = location);
    env.set_restart_strategy(RestartStrategy::None);
    job(&env, &out, FailAt::new(16_000, &store, 1), 16_000.0);
    let err = env.execute("object store, first run").err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.to_string().contains("failing at 16000")),
        "{err:?}"
    );
    // The store holds the checkpoints and the shared increments of the embedded backend.
    assert!(store
        .join("shared")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some()));
    let result = resume_elsewhere_from(&url, &out, "object store, resumed");
    let from = result.restored_from.unwrap_or_default();
    assert!(
        from.to_string_lossy().starts_with(&url),
        "{}",
        from.display()
    );
    assert_eq!(summary(&lines(&out)), expected());
}

#[test]
fn a_storage_url_that_cannot_be_opened_is_a_clear_error() {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.enable_checkpointing(Duration::from_millis(25));
    env.configure_checkpoints(|c| c.storage = PathBuf::from("nosuch://bucket/checkpoints"));
    env.from_sequence(0, 10).print();
    let err = env.execute("bad storage").err().map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(
        err.contains("cannot open checkpoint storage 'nosuch://bucket/checkpoints'"),
        "{err}"
    );
}

#[test]
fn a_savepoint_into_an_object_store_restores_from_its_url_at_another_parallelism() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = root.path().join("out");
    let url = format!(
        "file://{}",
        root.path().join("savepoints/stopped").display()
    );
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    job(&env, &out, None, 20_000.0);
    let client = env
        .execute_async("savepoint into a store")
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(300));
    let bad = client.trigger_savepoint(PathBuf::from("nosuch://bucket/savepoint"));
    assert!(
        bad.as_ref().is_err_and(|e| e
            .to_string()
            .contains("cannot open checkpoint storage 'nosuch://bucket/savepoint'")),
        "{bad:?}"
    );
    let stopped = client
        .stop_with_savepoint(PathBuf::from(&url))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stopped, PathBuf::from(&url), "named by its URL");
    let result = client.wait().unwrap_or_else(|e| panic!("{e}"));
    let savepoint = result
        .checkpoints
        .iter()
        .find(|c| c.savepoint && c.status == CheckpointStatus::Completed)
        .unwrap_or_else(|| panic!("{:?}", result.checkpoints));
    assert_eq!(savepoint.path, PathBuf::from(&url));
    // In the store: the metadata and a part per subtask of each stateful operator.
    let stored = root.path().join("savepoints/stopped");
    assert!(stored.join("_metadata").is_file());
    assert!(stored.read_dir().map_or(0, |d| d.count()) > 2);
    let result = resume_elsewhere_from(&url, &out, "from the savepoint's URL");
    assert_eq!(result.restored_from, Some(PathBuf::from(&url)));
    assert_eq!(summary(&lines(&out)), expected());
}

#[test]
fn a_damaged_shared_file_falls_back_to_the_retained_full_checkpoint() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (checkpoints, out) = (root.path().join("checkpoints"), root.path().join("out"));
    let env = embedded_env(root.path(), TimerStorage::InMemory, (20, 2));
    // Past checkpoint 11 (so that the last full checkpoint, 9, is older than the two
    // kept), at a rate that lets it get there before the input ends.
    let fail_at = FailAt::new(0, &checkpoints, 0).map(|f| FailAt {
        min_checkpoint: 11,
        ..f
    });
    job(&env, &out, fail_at, 8_000.0);
    let err = env
        .execute("shared, first run")
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("failing at")));
    let storage = CheckpointStorage::new(&checkpoints);
    let complete: Vec<u64> = storage
        .checkpoint_ids()
        .into_iter()
        .filter(|&id| storage.is_complete(id))
        .collect();
    let full = complete
        .iter()
        .copied()
        .filter(|&id| superflow_state_full(id))
        .max()
        .unwrap_or_else(|| panic!("a full checkpoint is kept among {complete:?}"));
    let newest = *complete.last().unwrap_or(&0);
    assert!(newest > full + 1, "{complete:?}");
    // The first delta after the full checkpoint: every later checkpoint's chains read it.
    let (metadata, _) = superflow::runtime::checkpoint::find_restorable(&checkpoints)
        .unwrap_or_else(|e| panic!("{e}"));
    let delta = metadata
        .parts
        .iter()
        .flat_map(|p| &p.shared)
        .filter_map(|f| {
            let id: u64 = f.rsplit_once("-c")?.1.parse().ok()?;
            (id > full).then_some((id, f.clone()))
        })
        .min()
        .unwrap_or_else(|| panic!("a delta after checkpoint {full}: {:?}", metadata.parts));
    let path = checkpoints.join("shared").join(&delta.1);
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));

    let (result, resumed) = resume(root.path(), &(checkpoints, out), "shared", 2);
    let restored = result.restored_from.unwrap_or_default();
    assert!(
        restored.ends_with(format!("chk-{full}")),
        "restored from {}, the kept full checkpoint is {full}",
        restored.display()
    );
    assert_eq!(summary(&lines(&resumed)), expected());
}

/// Whether checkpoint `id` writes every state in full (the first and every 8th id).
fn superflow_state_full(id: u64) -> bool {
    id % 8 == 1
}
