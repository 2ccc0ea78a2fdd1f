//! Checkpoints and recovery: a job that fails restarts from its last checkpoint, with
//! its keyed state, window contents, timers, join buffers and source positions as they
//! were, and its transactional file sink's output exactly as if it had never failed.
//!
//! The crash job (keyed counts, a tumbling-window sum and an interval join, from a
//! replayable generator into a `FileSink`) runs here with a panic injected at a
//! seeded record, and as a child process killed with SIGKILL at seeded moments and
//! restarted from its checkpoints. `SUPERFLOW_SOAK_SEEDS=n` runs more seeds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use superflow::prelude::*;
use superflow::FlowControl;

mod common;
use common::{assert_same_lines, committed_lines, loopback_addresses};

/// Records of the crash job.
const RECORDS: u64 = 12_000;

/// Record `i`: key `i % 13`, value `i`, event time `i` ms.
fn record(i: u64) -> (u64, u64) {
    (i % 13, i)
}

/// Builds the crash job: its output lines go to a `FileSink` in `out`. The map before
/// the keyed operators calls `inject` with every value (to panic on purpose).
fn crash_job(
    env: &StreamExecutionEnvironment,
    out: &Path,
    rate: Option<f64>,
    inject: impl Fn(u64) + Clone + Send + Sync + 'static,
) {
    let source = env
        .from_generator(record, Some(RECORDS), rate)
        .set_parallelism(1)
        .uid("generator")
        .exchangeable()
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(0))
                .with_timestamp_assigner(|r: &(u64, u64), _| r.1 as i64),
        )
        .map(move |r: (u64, u64)| {
            inject(r.1);
            r
        })
        .uid("inject");
    let counts = source
        .map(|r: (u64, u64)| (r.0, 1u64))
        .key_by(|r: &(u64, u64)| r.0)
        .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
        .uid("counts")
        .map(|(k, n): (u64, u64)| format!("count {k} {n}"));
    let windows = source
        .key_by(|r: &(u64, u64)| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(500)))
        .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
        .uid("window-sum")
        .map(|(k, s): (u64, u64)| format!("window {k} {s}"));
    let evens = source.filter(|r: &(u64, u64)| r.1 % 2 == 0);
    let odds = source.filter(|r: &(u64, u64)| r.1 % 2 == 1);
    let joined = evens
        .key_by(|r: &(u64, u64)| r.0)
        .interval_join(&odds.key_by(|r: &(u64, u64)| r.0))
        .between(-30, 30)
        .process(
            |a: &(u64, u64),
             b: &(u64, u64),
             _: &superflow::ProcessJoinContext,
             out: &mut Collector<String>| {
                out.collect(format!("join {} {}", a.1, b.1));
                Ok(())
            },
        )
        .uid("join");
    counts
        .union(&[&windows, &joined])
        .sink_to(FileSink::new(out).with_rolling_policy(RollingPolicy {
            max_part_size: 64 * 1024,
            rollover_interval: Duration::from_millis(200),
        }))
        .uid("file-sink");
}

/// The output of a run that never fails (computed once).
fn expected_output() -> &'static Vec<String> {
    static EXPECTED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    EXPECTED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let env = StreamExecutionEnvironment::get_execution_environment();
        env.set_parallelism(2);
        crash_job(&env, dir.path(), None, |_| {});
        env.execute("crash job, no failure")
            .unwrap_or_else(|e| panic!("{e}"));
        committed_lines(dir.path())
    })
}

/// Asserts that the committed output in `out` is that of a run that never failed.
fn assert_exactly_once(out: &Path, context: &str) {
    let expected = expected_output();
    assert_same_lines(&committed_lines(out), expected, context);
}

/// The operators that dropped records as late, and how many. The crash job's
/// generator has its timestamps in order and its watermarks trail them, so none should,
/// however checkpoints hold records back for alignment.
fn late_records_dropped(result: &superflow::JobExecutionResult) -> Vec<(String, u64)> {
    result
        .operators
        .iter()
        .filter(|o| o.late_records_dropped > 0)
        .map(|o| (o.name.clone(), o.late_records_dropped))
        .collect()
}

/// A small seeded generator (splitmix64), so seeds reproduce.
fn seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |bound| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % bound.max(1)
    }
}

fn seeds(default: u64) -> u64 {
    std::env::var("SUPERFLOW_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_expected_output_has_every_kind_of_line() {
    let expected = expected_output();
    assert_eq!(
        expected.iter().filter(|l| l.starts_with("count ")).count(),
        RECORDS as usize
    );
    assert!(expected.iter().any(|l| l.starts_with("window ")));
    assert!(expected.iter().any(|l| l.starts_with("join ")));
}

#[test]
fn records_held_back_for_alignment_stay_ahead_of_later_watermarks() {
    // Frequent checkpoints and watermarks, and one of the two map subtasks stalling now
    // and then: the keyed operators hold the other's records back for alignment, with
    // the watermarks its chain sent after them (at an earlier epoch). Replayed sorted by
    // epoch, those records came late to the join and the windows and were dropped (this
    // caught that in about one run in five; the crash tests on a loaded machine did so
    // in one run in two).
    for seed in 0..seeds(4) {
        let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let checkpoints = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let env = StreamExecutionEnvironment::get_execution_environment();
        env.set_parallelism(2);
        env.set_auto_watermark_interval(Duration::from_millis(1));
        env.enable_checkpointing(Duration::from_millis(2));
        let storage = checkpoints.path().to_path_buf();
        env.configure_checkpoints(move |c| c.storage = storage);
        let stall_every = 40 + 10 * seed;
        crash_job(&env, out.path(), Some(20_000.0), move |value| {
            if value % stall_every == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let result = env
            .execute("crash job, stalls")
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let late = late_records_dropped(&result);
        assert!(
            late.is_empty(),
            "seed {seed}: late records dropped: {late:?}"
        );
        assert_exactly_once(out.path(), &format!("seed {seed}: stalls"));
    }
}

#[test]
fn a_panic_restarts_the_job_from_its_last_checkpoint_with_exactly_once_output() {
    for seed in 0..seeds(4) {
        let mut random = seeded(seed);
        let panic_at = 2_000 + random(RECORDS - 4_000);
        let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let checkpoints = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let env = StreamExecutionEnvironment::get_execution_environment();
        env.set_parallelism(2);
        // Odd seeds keep two entries per state and subtask in memory: the counts, the
        // window contents and the join buffers live in the embedded store.
        let lsm = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        if seed % 2 == 1 {
            env.set_state_backend(StateBackendConfig::EmbeddedLsm {
                dir: Some(lsm.path().to_path_buf()),
                cache_entries: 2,
                timers: TimerStorage::InStore,
                block_cache_bytes: 1 << 20,
            });
        }
        env.enable_checkpointing(Duration::from_millis(40));
        let storage = checkpoints.path().to_path_buf();
        env.configure_checkpoints(move |c| c.storage = storage);
        env.set_restart_strategy(RestartStrategy::fixed_delay(3, Duration::ZERO));
        let failed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&failed);
        crash_job(&env, out.path(), Some(20_000.0), move |value| {
            if value == panic_at && !flag.swap(true, Ordering::SeqCst) {
                panic!("injected failure at record {value}");
            }
        });
        let result = env
            .execute("crash job, panic")
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(
            failed.load(Ordering::SeqCst),
            "seed {seed}: the panic fired"
        );
        assert_eq!(result.restarts, 1, "seed {seed}");
        assert!(
            result
                .checkpoints
                .iter()
                .any(|c| c.status == CheckpointStatus::Completed),
            "seed {seed}: checkpoints completed: {:?}",
            result.checkpoints
        );
        let late = late_records_dropped(&result);
        assert_exactly_once(
            out.path(),
            &format!("seed {seed}: panic at {panic_at}, late records dropped {late:?}"),
        );
        assert!(
            late.is_empty(),
            "seed {seed}: late records dropped: {late:?}"
        );
    }
}

#[test]
fn without_a_restart_strategy_the_panic_fails_the_job_naming_the_operator() {
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let checkpoints = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(40));
    let storage = checkpoints.path().to_path_buf();
    env.configure_checkpoints(move |c| c.storage = storage);
    env.set_restart_strategy(RestartStrategy::None);
    crash_job(&env, out.path(), None, |value| {
        if value == 5_000 {
            panic!("bad record {value}");
        }
    });
    let err = env.execute("fails").err().map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(err.contains("bad record 5000"), "{err}");
    assert!(err.contains("Map"), "{err}");
}

/// A child's checkpoint storage: `checkpoints`, or the object store URL in
/// `SUPERFLOW_CRASH_URL` (`file://` on the same directory, or `s3://`), where each new
/// process stages into an empty directory of its own and downloads from the store.
/// Restores from it when a checkpoint there completed.
fn checkpoint_into(env: &StreamExecutionEnvironment, checkpoints: &str) {
    let location = match std::env::var("SUPERFLOW_CRASH_URL") {
        Ok(url) => PathBuf::from(url),
        Err(_) => PathBuf::from(checkpoints),
    };
    let storage = location.clone();
    env.configure_checkpoints(move |c| c.storage = storage);
    if superflow::runtime::checkpoint::find_restorable(&location).is_ok() {
        env.set_restore_path(&location);
    }
}

/// The crash job as a child process: checkpoints into `SUPERFLOW_CRASH_CHECKPOINTS`,
/// output into `SUPERFLOW_CRASH_OUT`, restoring from the checkpoints if there are any.
#[test]
fn crash_child() -> Result<(), Box<dyn std::error::Error>> {
    let (Ok(out), Ok(checkpoints)) = (
        std::env::var("SUPERFLOW_CRASH_OUT"),
        std::env::var("SUPERFLOW_CRASH_CHECKPOINTS"),
    ) else {
        return Ok(());
    };
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(40));
    checkpoint_into(&env, &checkpoints);
    crash_job(&env, Path::new(&out), Some(10_000.0), |_| {});
    let result = env.execute("crash job, child")?;
    if let Some(path) = result.restored_from {
        println!("restored from {}", path.display());
    }
    Ok(())
}

#[test]
fn a_killed_process_restarts_from_its_checkpoints_with_exactly_once_output() {
    killed_and_restarted(&Storage::Directory, seeds(2));
}

#[test]
fn a_killed_process_restarts_from_checkpoints_in_an_object_store() {
    killed_and_restarted(&Storage::FileUrl, seeds(1));
}

/// The same on S3, as served by moto (`python3 -m moto.server`); runs with the
/// `cloud-storage` feature (`.ci/run` installs `moto[server]` and runs it).
#[cfg(feature = "cloud-storage")]
#[test]
fn a_killed_process_restarts_from_checkpoints_in_s3() {
    let s3 = common::s3::MotoServer::start("superflow-checkpoints");
    killed_and_restarted(&Storage::S3(s3), seeds(1));
}

/// Where the killed job's checkpoints go.
enum Storage {
    /// A local directory.
    Directory,
    /// The same directory as an object store, at a `file://` URL.
    FileUrl,
    /// A bucket of an S3 server.
    #[cfg(feature = "cloud-storage")]
    S3(common::s3::MotoServer),
}

/// Runs the crash job as a child process, kills it with SIGKILL at seeded moments and
/// restarts it from its checkpoints (in a directory, or in an object store), then
/// compares the committed output.
/// Whether the crash job's storage holds a completed checkpoint (its `_metadata`).
#[cfg_attr(not(feature = "cloud-storage"), allow(unused_variables))]
fn holds_a_checkpoint(storage: &Storage, checkpoints: &Path, seed: u64) -> bool {
    match storage {
        Storage::Directory | Storage::FileUrl => std::fs::read_dir(checkpoints)
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| entry.path().join("_metadata").is_file()),
        #[cfg(feature = "cloud-storage")]
        Storage::S3(s3) => s3
            .keys(&format!("crash-{seed}/"))
            .iter()
            .any(|key| key.ends_with("/_metadata")),
    }
}

fn killed_and_restarted(storage: &Storage, seeds: u64) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    for seed in 0..seeds {
        let mut random = seeded(100 + seed);
        let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let checkpoints = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = match storage {
            Storage::Directory => None,
            Storage::FileUrl => Some(format!("file://{}", checkpoints.path().display())),
            #[cfg(feature = "cloud-storage")]
            Storage::S3(s3) => Some(s3.url(&format!("crash-{seed}"))),
        };
        let mut kills = 0;
        let mut runs = 0;
        loop {
            runs += 1;
            assert!(runs < 20, "seed {seed}: the job never finished");
            let mut command = std::process::Command::new(&exe);
            command
                .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
                .env("SUPERFLOW_CRASH_OUT", out.path())
                .env("SUPERFLOW_CRASH_CHECKPOINTS", checkpoints.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if let Some(url) = &url {
                command.env("SUPERFLOW_CRASH_URL", url);
            }
            #[cfg(feature = "cloud-storage")]
            if let Storage::S3(s3) = storage {
                command.envs(s3.environment());
            }
            let mut child = command.spawn().unwrap_or_else(|e| panic!("{e}"));
            if kills < 3 {
                if kills == 2 {
                    // The last kill comes after a checkpoint, so that the final run
                    // restores (on a slow machine the first ones may all come earlier).
                    let deadline = std::time::Instant::now() + Duration::from_secs(60);
                    while !holds_a_checkpoint(storage, checkpoints.path(), seed) {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "seed {seed}: no checkpoint completed"
                        );
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                std::thread::sleep(Duration::from_millis(100 + random(500)));
                // SIGKILL: the process gets no chance to clean up.
                let _ = child.kill();
                let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
                if output.status.success() {
                    break;
                }
                kills += 1;
                continue;
            }
            let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "seed {seed}: the restarted job failed: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            if let Some(url) = &url {
                // The new process (an empty staging directory) read the store.
                assert!(stdout.contains(&format!("restored from {url}")), "{stdout}");
            }
            match storage {
                Storage::FileUrl => {
                    // (An object store has no directories: file:// leaves empty ones,
                    // and the `name#n` temporary files of uploads a kill cut short.)
                    let left: Vec<_> = std::fs::read_dir(checkpoints.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
                        .map(|e| e.path())
                        .filter(|p| !p.to_string_lossy().contains('#'))
                        .collect();
                    assert!(
                        left.is_empty(),
                        "a finished job deletes its checkpoints: {left:?}"
                    );
                }
                #[cfg(feature = "cloud-storage")]
                Storage::S3(s3) => {
                    let left = s3.keys(&format!("crash-{seed}/"));
                    assert!(
                        left.is_empty(),
                        "a finished job deletes its checkpoints: {left:?}"
                    );
                }
                Storage::Directory => {}
            }
            break;
        }
        assert_exactly_once(out.path(), &format!("seed {seed}, {kills} kills"));
    }
}

#[test]
fn a_text_file_source_resumes_at_its_checkpointed_offsets() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap_or_else(|e| panic!("{e}"));
    // Two files of lines of varying length, so that splits start inside lines.
    let mut expected = Vec::new();
    for file in 0..2 {
        let mut text = String::new();
        for line in 0..20_000 {
            let l = format!("file{file} line{line} {}", "x".repeat(line % 17));
            text.push_str(&l);
            text.push('\n');
            expected.push(l);
        }
        std::fs::write(input.join(format!("part-{file}.txt")), text)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    expected.sort();
    let out = dir.path().join("out");
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(3);
    env.enable_checkpointing(Duration::from_millis(10));
    let storage = dir.path().join("checkpoints");
    env.configure_checkpoints(move |c| c.storage = storage);
    env.set_restart_strategy(RestartStrategy::fixed_delay(2, Duration::ZERO));
    // Small batches and short epochs, so that checkpoints fall inside the files.
    env.set_flow_control(FlowControl {
        batch_size: 64,
        batches_per_activation: 1,
        max_epoch_records: 256,
        ..FlowControl::default()
    });
    let failed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&failed);
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    env.read_text_file(&input)
        .uid("lines")
        .map(move |line: String| {
            if seen.fetch_add(1, Ordering::SeqCst) == 25_000 && !flag.swap(true, Ordering::SeqCst) {
                panic!("injected failure");
            }
            // Slow enough that checkpoints complete while the files are read.
            std::thread::sleep(Duration::from_micros(20));
            line
        })
        .uid("check")
        .sink_to(FileSink::new(&out))
        .uid("sink");
    let result = env.execute("text file").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.restarts, 1);
    assert!(result
        .checkpoints
        .iter()
        .any(|c| c.status == CheckpointStatus::Completed));
    assert_same_lines(&committed_lines(&out), &expected, "every line exactly once");
}

/// The crash job as one of two processes (`SUPERFLOW_CLUSTER_CRASH_OUT` set), at
/// parallelism 4 (two workers each), checkpointing into a directory both share. With
/// `SUPERFLOW_CLUSTER_PANIC_AT=n`, the record `n` panics once, on whichever process maps
/// it (a marker file makes it once over both processes and every restart).
#[test]
fn cluster_crash_child() -> Result<(), Box<dyn std::error::Error>> {
    let (Ok(out), Ok(checkpoints)) = (
        std::env::var("SUPERFLOW_CLUSTER_CRASH_OUT"),
        std::env::var("SUPERFLOW_CRASH_CHECKPOINTS"),
    ) else {
        return Ok(());
    };
    let panic_at: Option<u64> = std::env::var("SUPERFLOW_CLUSTER_PANIC_AT")
        .ok()
        .and_then(|s| s.parse().ok());
    let marker = PathBuf::from(&checkpoints).join("panicked");
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(4);
    env.enable_checkpointing(Duration::from_millis(40));
    env.set_restart_strategy(RestartStrategy::fixed_delay(5, Duration::ZERO));
    checkpoint_into(&env, &checkpoints);
    crash_job(&env, Path::new(&out), Some(10_000.0), move |value| {
        let first = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
                .is_ok()
        };
        if Some(value) == panic_at && first() {
            panic!("injected failure at record {value}");
        }
    });
    let result = env.execute("crash job, cluster child")?;
    println!("restarts {}", result.restarts);
    Ok(())
}

fn spawn_cluster_process(
    id: usize,
    addresses: &str,
    out: &Path,
    checkpoints: &Path,
    panic_at: Option<u64>,
) -> std::process::Child {
    spawn_cluster_process_with(id, addresses, out, checkpoints, panic_at, false)
}

fn spawn_cluster_process_with(
    id: usize,
    addresses: &str,
    out: &Path,
    checkpoints: &Path,
    panic_at: Option<u64>,
    url: bool,
) -> std::process::Child {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut command = std::process::Command::new(exe);
    command
        .args([
            "--exact",
            "cluster_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SUPERFLOW_CLUSTER_CRASH_OUT", out)
        .env("SUPERFLOW_CRASH_CHECKPOINTS", checkpoints)
        .env("SUPERFLOW_PROCESSES", "2")
        .env("SUPERFLOW_PROCESS_ID", id.to_string())
        .env("SUPERFLOW_ADDRESSES", addresses)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(at) = panic_at {
        command.env("SUPERFLOW_CLUSTER_PANIC_AT", at.to_string());
    }
    if url {
        command.env("SUPERFLOW_CRASH_URL", "1");
    }
    command.spawn().unwrap_or_else(|e| panic!("{e}"))
}

/// Waits for `child` (killing it after two minutes, so that a hang fails the test
/// instead of stalling it) and asserts that it succeeded; returns its output.
fn wait_success(child: std::process::Child, what: &str) -> String {
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let output = match receiver.recv_timeout(Duration::from_secs(120)) {
        Ok(output) => output.unwrap_or_else(|e| panic!("{e}")),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("{what} did not end within two minutes");
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{what} failed: {text}");
    text
}

#[test]
fn a_panic_on_one_of_two_processes_restarts_both_with_exactly_once_output() {
    for seed in 0..seeds(2) {
        let mut random = seeded(200 + seed);
        let panic_at = 2_000 + random(RECORDS - 4_000);
        let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let checkpoints = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let addresses = loopback_addresses(2);
        let children: Vec<_> = (0..2)
            .map(|id| {
                spawn_cluster_process(
                    id,
                    &addresses,
                    out.path(),
                    checkpoints.path(),
                    Some(panic_at),
                )
            })
            .collect();
        let logs: Vec<String> = children
            .into_iter()
            .enumerate()
            .map(|(id, c)| wait_success(c, &format!("seed {seed}: process {id}")))
            .collect();
        assert!(
            checkpoints.path().join("panicked").exists(),
            "seed {seed}: the panic fired"
        );
        for log in &logs {
            assert!(log.contains("restarts 1"), "seed {seed}: {logs:?}");
        }
        assert_exactly_once(out.path(), &format!("seed {seed}: panic at {panic_at}"));
    }
}

#[test]
fn a_killed_process_of_two_rejoins_and_both_resume_with_exactly_once_output() {
    killed_one_of_two(false, seeds(2));
}

#[test]
fn a_killed_process_of_two_resumes_from_an_object_store() {
    killed_one_of_two(true, seeds(1));
}

/// Kills one of two processes with SIGKILL at a seeded moment and starts it again;
/// checkpoints in a shared directory, or in an object store (a `file://` URL, every
/// process staging in its own directory).
fn killed_one_of_two(url: bool, seeds: u64) {
    for seed in 0..seeds {
        let mut random = seeded(300 + seed);
        let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let checkpoints = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let addresses = loopback_addresses(2);
        let spawn = |id| {
            spawn_cluster_process_with(id, &addresses, out.path(), checkpoints.path(), None, url)
        };
        let mut children = [Some(spawn(0)), Some(spawn(1))];
        let victim = random(2) as usize;
        std::thread::sleep(Duration::from_millis(200 + random(600)));
        // SIGKILL: the process gets no chance to clean up; the other one notices, fails
        // its run and waits for the process to come back, as a supervisor would start it.
        let mut killed = children[victim]
            .take()
            .unwrap_or_else(|| panic!("no child"));
        let _ = killed.kill();
        let status = killed.wait().unwrap_or_else(|e| panic!("{e}"));
        let survivor = children[1 - victim]
            .take()
            .unwrap_or_else(|| panic!("no child"));
        let mut respawned = (!status.success()).then(|| spawn(victim));
        wait_success(survivor, &format!("seed {seed}: process {}", 1 - victim));
        if let Some(mut respawned) = respawned.take() {
            // Killed after the job's end was committed, the process started again finds
            // no job to rejoin and waits for the others in vain: the job is done.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while respawned.try_wait().ok().flatten().is_none()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            if respawned.try_wait().ok().flatten().is_none() {
                let _ = respawned.kill();
                let _ = respawned.wait();
            } else {
                wait_success(respawned, &format!("seed {seed}: process {victim} again"));
            }
        }
        assert_exactly_once(out.path(), &format!("seed {seed}: process {victim} killed"));
    }
}

#[test]
fn checkpoints_of_two_processes_restore_on_one_process_at_another_parallelism() {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    for seed in 0..seeds(1) {
        let mut random = seeded(400 + seed);
        let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let checkpoints = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let addresses = loopback_addresses(2);
        let mut children: Vec<_> = (0..2)
            .map(|id| spawn_cluster_process(id, &addresses, out.path(), checkpoints.path(), None))
            .collect();
        std::thread::sleep(Duration::from_millis(500 + random(400)));
        for child in &mut children {
            let _ = child.kill();
        }
        for mut child in children {
            let _ = child.wait();
        }
        // One process at parallelism 2 (crash_child) takes over the two processes'
        // checkpoints (written at parallelism 4).
        let child = std::process::Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("SUPERFLOW_CRASH_OUT", out.path())
            .env("SUPERFLOW_CRASH_CHECKPOINTS", checkpoints.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        wait_success(child, &format!("seed {seed}: the single process"));
        assert_exactly_once(out.path(), &format!("seed {seed}"));
    }
}
