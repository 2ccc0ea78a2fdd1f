//! A restore that skips checkpoints whose output the `FileSink` already committed: by
//! default the job refuses to start, naming the checkpoint and the parts; with
//! `CommittedAfterRestore::Quarantine` those parts move into `.quarantine/` and the
//! replay writes them again, so the output holds each record exactly once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use superflow::connectors::commit_log::{COMMITS_DIR, QUARANTINE_DIR};
use superflow::prelude::*;
use superflow::runtime::checkpoint::CheckpointStorage;

mod common;
use common::committed_lines as lines;

const RECORDS: u64 = 30_000;
const KEYS: u64 = 37;

/// The checkpoint ids the sink committed parts for, from its commit records.
fn committed_checkpoints(out: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(out.join(COMMITS_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix('c')?.split('-').next()?.parse().ok()
        })
        .filter(|&id| id != u64::MAX)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn complete(storage: &CheckpointStorage) -> Vec<u64> {
    storage
        .checkpoint_ids()
        .into_iter()
        .filter(|&id| storage.is_complete(id))
        .collect()
}

/// The job: per key, the rolling count of the records, as lines `sum <key> <n>` (the
/// same lines whatever order the two source subtasks' records arrive in) into a
/// `FileSink` with `choice`; with `fail`, it fails once the sink has committed a
/// checkpoint that three older complete checkpoints precede.
fn job(
    env: &StreamExecutionEnvironment,
    (checkpoints, out): (&Path, &Path),
    fail: bool,
    choice: CommittedAfterRestore,
) {
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(20));
    let storage = checkpoints.to_path_buf();
    env.configure_checkpoints(move |c| {
        c.storage = storage;
        c.retained = 8;
    });
    let (watched, output) = (CheckpointStorage::new(checkpoints), out.to_path_buf());
    let rate = if fail { 20_000.0 } else { 1_000_000.0 };
    env.from_generator(|i| (i % KEYS, i), Some(RECORDS), Some(rate))
        .uid("numbers")
        .map(move |r: (u64, u64)| {
            if fail {
                let complete = complete(&watched);
                let committed = committed_checkpoints(&output);
                let newest = committed.last().copied().unwrap_or(0);
                if complete.iter().filter(|&&id| id < newest).count() >= 3 {
                    panic!("failing after checkpoint {newest} was committed");
                }
            }
            (r.0, 1)
        })
        .uid("check")
        .key_by(|r: &(u64, u64)| r.0)
        .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
        .uid("sums")
        .map(|(k, s): (u64, u64)| format!("sum {k} {s}"))
        .uid("format")
        .sink_to(FileSink::new(out).with_committed_after_restore(choice))
        .uid("sink");
}

/// Asserts that `got` holds the lines of `want`, naming a few differences (not all of
/// the 30,000 lines).
fn assert_same(got: &[String], want: &[String]) {
    let missing: Vec<&String> = want
        .iter()
        .filter(|l| got.binary_search(l).is_err())
        .collect();
    let extra: Vec<&String> = got
        .iter()
        .filter(|l| want.binary_search(l).is_err())
        .collect();
    assert!(
        got.len() == want.len() && missing.is_empty() && extra.is_empty(),
        "{} lines, {} expected; {} missing (first {:?}), {} not expected (first {:?})",
        got.len(),
        want.len(),
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>()
    );
}

fn expected() -> Vec<String> {
    let mut counts = vec![0u64; KEYS as usize];
    let mut lines = Vec::new();
    for i in 0..RECORDS {
        let k = i % KEYS;
        counts[k as usize] += 1;
        lines.push(format!("sum {k} {}", counts[k as usize]));
    }
    lines.sort();
    lines
}

/// A first run that fails after the sink committed a checkpoint's parts; then every
/// complete checkpoint from the newest committed one on has a part cut in half, so a
/// restore falls back to an older one. Returns (checkpoints, output, the newest complete
/// checkpoint left sound).
fn failed_after_commits(root: &Path) -> (PathBuf, PathBuf, u64) {
    let (checkpoints, out) = (root.join("checkpoints"), root.join("out"));
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_restart_strategy(RestartStrategy::None);
    job(
        &env,
        (&checkpoints, &out),
        true,
        CommittedAfterRestore::Refuse,
    );
    let err = env.execute("first run").err().map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("failing after")),
        "{err:?}"
    );
    let storage = CheckpointStorage::new(&checkpoints);
    let newest_committed = committed_checkpoints(&out).last().copied().unwrap_or(0);
    for id in complete(&storage)
        .into_iter()
        .filter(|&id| id >= newest_committed)
    {
        for part in std::fs::read_dir(storage.checkpoint_dir(id))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "part"))
        {
            let bytes = std::fs::read(&part).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&part, &bytes[..bytes.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let sound = complete(&storage)
        .into_iter()
        .filter(|&id| id < newest_committed)
        .max()
        .unwrap_or_else(|| panic!("a complete checkpoint before {newest_committed}"));
    (checkpoints, out, sound)
}

fn resume(
    (checkpoints, out): (&Path, &Path),
    choice: CommittedAfterRestore,
) -> Result<JobExecutionResult, JobError> {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_restore_path(checkpoints);
    job(&env, (checkpoints, out), false, choice);
    env.execute("resumed")
}

#[test]
fn a_restore_past_committed_output_is_refused_by_default_and_rolled_back_into_quarantine() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (checkpoints, out, sound) = failed_after_commits(root.path());
    let before = lines(&out);

    // By default: refused at once (a restart could not help), naming the checkpoint
    // restored, a part committed after it, and both ways out; nothing is moved.
    let err = resume((&checkpoints, &out), CommittedAfterRestore::Refuse)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains(&format!("restores checkpoint {sound}")),
        "{err}"
    );
    assert!(
        err.contains("committed after it") && err.contains("part-"),
        "{err}"
    );
    assert!(
        err.contains("Quarantine") && err.contains("KeepDuplicates"),
        "{err}"
    );
    // A refusal moves nothing (the restored checkpoint's own transactions may still be
    // committed: their records come before it).
    let after = lines(&out);
    assert!(
        before.iter().all(|l| after.binary_search(l).is_ok()),
        "a refusal removes no output"
    );
    assert!(!out.join(QUARANTINE_DIR).exists());

    // Rolled back: the parts move into quarantine, the replay writes them again, and
    // the output holds every record once.
    let result = resume((&checkpoints, &out), CommittedAfterRestore::Quarantine)
        .unwrap_or_else(|e| panic!("{e}"));
    let restored = result.restored_from.unwrap_or_default();
    assert!(
        restored.ends_with(format!("chk-{sound}")),
        "restored from {}",
        restored.display()
    );
    assert_same(&lines(&out), &expected());
    let quarantined = lines(&out.join(QUARANTINE_DIR));
    assert!(!quarantined.is_empty(), "the rolled-back parts are kept");
    assert!(
        quarantined
            .iter()
            .all(|l| expected().binary_search(l).is_ok()),
        "quarantine holds lines of the output"
    );
}

#[test]
fn keeping_duplicates_past_committed_output_is_a_choice_that_warns() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (checkpoints, out, _) = failed_after_commits(root.path());
    resume((&checkpoints, &out), CommittedAfterRestore::KeepDuplicates)
        .unwrap_or_else(|e| panic!("{e}"));
    let got = lines(&out);
    let expected = expected();
    assert!(got.len() > expected.len(), "the kept parts repeat records");
    let mut unique = got.clone();
    unique.dedup();
    assert_same(&unique, &expected);
    assert!(!out.join(QUARANTINE_DIR).exists());
}
