//! [`FileSink`], a transactional file sink built on the runtime's [`TwoPhaseCommitSink`]
//! contract (Flink's `TwoPhaseCommitSinkFunction`).
//!
//! A sink writes each checkpoint interval's records into a transaction. When a checkpoint
//! is taken, the transaction is pre-committed (flushed, made durable) and recorded in the
//! checkpoint; when the checkpoint completes, it is committed (made visible). After a
//! failure, the restored checkpoint's pre-committed transactions are committed, and
//! anything a failed run wrote after it is aborted, so the output holds each record once.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use superflow_core::{RecordDisplay, UserError};

use crate::bucket::{BucketAssigner, Buckets};
use crate::commit_log::{CommitLog, CommittedAfterRestore};

pub use superflow_runtime::sink::{TransactionContext, TwoPhaseCommitSink};

/// When a [`FileSink`] closes a part file and starts the next (Flink's
/// `DefaultRollingPolicy`); parts also close at every checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct RollingPolicy {
    /// A part reaching this many bytes is closed.
    pub max_part_size: u64,
    /// A part open this long is closed.
    pub rollover_interval: Duration,
}

impl Default for RollingPolicy {
    fn default() -> Self {
        RollingPolicy {
            max_part_size: 128 * 1024 * 1024,
            rollover_interval: Duration::from_secs(60),
        }
    }
}

/// How a [`FileSink`] names its part files (Flink's `OutputFileConfig`):
/// `<prefix>-<uuid>-<n><suffix>`, the uuid being one of the subtask's in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFileConfig {
    /// The start of every part's name (`part` by default).
    pub part_prefix: String,
    /// The end of every part's name (none by default), such as `.csv`.
    pub part_suffix: String,
}

impl Default for OutputFileConfig {
    fn default() -> Self {
        OutputFileConfig {
            part_prefix: "part".into(),
            part_suffix: String::new(),
        }
    }
}

/// What is wrong with the names of a file sink's parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartNameError {
    /// The prefix is empty.
    #[error("the part prefix must not be empty")]
    EmptyPrefix,
    /// The prefix starts with `.`: readers skip hidden files.
    #[error("the part prefix '{0}' must not start with '.': readers skip hidden files")]
    HiddenPrefix(String),
    /// A prefix or suffix with a path separator would put parts in another directory.
    #[error("the part {what} '{value}' must not contain a path separator")]
    PathSeparator {
        /// "prefix" or "suffix".
        what: &'static str,
        /// The name.
        value: String,
    },
}

impl OutputFileConfig {
    /// Checks that the names are usable as part of one file name: a prefix that is not
    /// empty, and neither with a path separator (a part would land in another
    /// directory), nor a prefix starting with `.` (readers skip hidden files).
    pub fn validate(&self) -> Result<(), PartNameError> {
        if self.part_prefix.is_empty() {
            return Err(PartNameError::EmptyPrefix);
        }
        if self.part_prefix.starts_with('.') {
            return Err(PartNameError::HiddenPrefix(self.part_prefix.clone()));
        }
        for (what, value) in [("prefix", &self.part_prefix), ("suffix", &self.part_suffix)] {
            if value.contains(['/', '\\', '\0']) {
                return Err(PartNameError::PathSeparator {
                    what,
                    value: value.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A part file of a [`FileSink`] transaction: written hidden, renamed on commit. Names
/// are relative to the sink's directory, so a checkpoint restores with the output
/// directory moved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartFile {
    /// The hidden file being written (`.part-...inprogress`).
    pub in_progress: String,
    /// The name it gets on commit.
    pub committed: String,
}

/// The part files of one [`FileSink`] transaction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct FileTransaction {
    /// Closed parts, and the open one last.
    pub parts: Vec<PartFile>,
}

/// Writes records as lines into part files of a directory, exactly once: a part becomes
/// visible (renamed from a hidden in-progress name) only when the checkpoint that
/// covers it completes, or when the job finishes (Flink's `FileSink` in row format).
///
/// As in Flink, parts go into buckets: by default a directory per hour of processing
/// time (`2026-12-07--13/`, [`BucketAssigner`]). Part names are Flink's:
/// `part-<uuid>-<n>` ([`OutputFileConfig`] changes the prefix and adds a suffix), the
/// uuid one per subtask and run; readers should skip names starting with `.` (Flink's
/// convention, which `read_text_file` follows).
pub struct FileSink {
    dir: PathBuf,
    policy: RollingPolicy,
    names: OutputFileConfig,
    bucket_assigner: BucketAssigner,
    committed_after_restore: CommittedAfterRestore,
    buckets: Option<Buckets>,
    ctx: Option<TransactionContext>,
    counter: u64,
    /// The open part of each bucket written to since the last checkpoint.
    open: Vec<(String, OpenPart)>,
    text: String,
}

struct OpenPart {
    writer: BufWriter<File>,
    size: u64,
    opened: Instant,
}

impl Clone for FileSink {
    fn clone(&self) -> Self {
        FileSink::new(self.dir.clone())
            .with_rolling_policy(self.policy)
            .with_output_file_config(self.names.clone())
            .with_bucket_assigner(self.bucket_assigner.clone())
            .with_committed_after_restore(self.committed_after_restore)
    }
}

/// The uuid in the part names of `subtask` in run `run_id`: unique per run and subtask,
/// and known to every subtask, so that recovery tells this run's parts from leftovers.
fn part_uuid(run_id: u64, subtask: usize) -> String {
    let (a, b) = (run_id, subtask as u64);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        (b >> 48) & 0xffff,
        b & 0xffff_ffff_ffff
    )
}

impl FileSink {
    /// A sink writing part files into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> FileSink {
        FileSink {
            dir: dir.into(),
            policy: RollingPolicy::default(),
            names: OutputFileConfig::default(),
            bucket_assigner: BucketAssigner::default(),
            committed_after_restore: CommittedAfterRestore::default(),
            buckets: None,
            ctx: None,
            counter: 0,
            open: Vec::new(),
            text: String::new(),
        }
    }

    /// Sets the directories parts go into (by default one per hour of processing time).
    pub fn with_bucket_assigner(mut self, assigner: BucketAssigner) -> FileSink {
        self.bucket_assigner = assigner;
        self
    }

    /// Sets when parts roll.
    pub fn with_rolling_policy(mut self, policy: RollingPolicy) -> FileSink {
        self.policy = policy;
        self
    }

    /// Sets how parts are named.
    pub fn with_output_file_config(mut self, names: OutputFileConfig) -> FileSink {
        self.names = names;
        self
    }

    /// Sets what a restore does with parts committed after the checkpoint it restores
    /// (refuse to start, by default; see [`CommittedAfterRestore`]).
    pub fn with_committed_after_restore(mut self, choice: CommittedAfterRestore) -> FileSink {
        self.committed_after_restore = choice;
        self
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io_error(path: &Path, what: &str, e: std::io::Error) -> UserError {
        format!("cannot {what} '{}': {e}", path.display()).into()
    }

    /// Closes a part: flushes it and makes it durable.
    fn close(dir: &Path, mut part: OpenPart) -> Result<(), UserError> {
        part.writer
            .flush()
            .map_err(|e| Self::io_error(dir, "write to", e))?;
        let file = part
            .writer
            .into_inner()
            .map_err(|e| Self::io_error(dir, "write to", e.into_error()))?;
        file.sync_all()
            .map_err(|e| Self::io_error(dir, "sync a part file in", e))
    }

    /// Closes every open part.
    fn close_parts(&mut self) -> Result<(), UserError> {
        for (_, part) in std::mem::take(&mut self.open) {
            Self::close(&self.dir, part)?;
        }
        Ok(())
    }

    /// Starts a part in `bucket` and returns its index in `open`.
    fn start_part(
        &mut self,
        bucket: String,
        transaction: &mut FileTransaction,
    ) -> Result<usize, UserError> {
        let ctx = self.ctx.as_ref().ok_or("the file sink was not opened")?;
        let name = format!(
            "{}-{}-{}{}",
            self.names.part_prefix,
            part_uuid(ctx.run_id, ctx.subtask),
            self.counter,
            self.names.part_suffix
        );
        self.counter += 1;
        let in_bucket = |file: &str| match bucket.as_str() {
            "" => file.to_string(),
            dir => format!("{dir}/{file}"),
        };
        let part = PartFile {
            in_progress: in_bucket(&format!(".{name}.inprogress")),
            committed: in_bucket(&name),
        };
        let path = self.dir.join(&part.in_progress);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Self::io_error(parent, "create bucket directory", e))?;
        }
        let file = File::create(&path).map_err(|e| Self::io_error(&path, "create", e))?;
        self.open.push((
            bucket,
            OpenPart {
                writer: BufWriter::with_capacity(1 << 16, file),
                size: 0,
                opened: Instant::now(),
            },
        ));
        transaction.parts.push(part);
        Ok(self.open.len() - 1)
    }

    /// The in-progress parts under the sink's directory (in buckets too), by path
    /// relative to it.
    fn in_progress_parts(&self) -> Result<Vec<String>, UserError> {
        let mut found = Vec::new();
        let hidden_part = format!(".{}-", self.names.part_prefix);
        let mut pending = vec![(self.dir.clone(), String::new())];
        while let Some((dir, relative)) = pending.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| Self::io_error(&dir, "list", e))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let path = match relative.as_str() {
                    "" => name.clone(),
                    r => format!("{r}/{name}"),
                };
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push((entry.path(), path));
                } else if name.starts_with(&hidden_part) && name.ends_with(".inprogress") {
                    found.push(path);
                }
            }
        }
        Ok(found)
    }
}

impl<T: RecordDisplay + 'static> TwoPhaseCommitSink<T> for FileSink {
    type Transaction = FileTransaction;

    fn recover(
        &mut self,
        ctx: &TransactionContext,
        all_restored: &[FileTransaction],
    ) -> Result<(), UserError> {
        let bad = |e: &dyn std::fmt::Display| format!("file sink '{}': {e}", self.dir.display());
        self.names.validate().map_err(|e| bad(&e))?;
        self.buckets = Some(self.bucket_assigner.compile().map_err(|e| bad(&e))?);
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Self::io_error(&self.dir, "create output directory", e))?;
        self.ctx = Some(ctx.clone());
        if ctx.subtask != 0 {
            return Ok(());
        }
        // In-progress parts of earlier runs that no restored transaction names were
        // written after the restored checkpoint: they are replayed, so they go.
        let keep: std::collections::HashSet<&str> = all_restored
            .iter()
            .flat_map(|t| t.parts.iter().map(|p| p.in_progress.as_str()))
            .collect();
        let current: Vec<String> = (0..ctx.parallelism)
            .map(|s| format!(".{}-{}-", self.names.part_prefix, part_uuid(ctx.run_id, s)))
            .collect();
        for path in self.in_progress_parts()? {
            let name = path.rsplit('/').next().unwrap_or(&path);
            let ours = current.iter().any(|c| name.starts_with(c.as_str()));
            if !ours && !keep.contains(path.as_str()) {
                let file = self.dir.join(&path);
                tracing::debug!(file = %file.display(), "aborting a part of an earlier run");
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Self::io_error(&file, "remove", e)),
                }
            }
        }
        if let (Some(lineage), Some((checkpoint, from))) = (ctx.lineage, &ctx.restored) {
            CommitLog::of(&self.dir).settle(
                lineage,
                (*checkpoint, from),
                ctx.run_id,
                self.committed_after_restore,
            )?;
        }
        Ok(())
    }

    fn begin_transaction(
        &mut self,
        ctx: &TransactionContext,
    ) -> Result<FileTransaction, UserError> {
        self.ctx = Some(ctx.clone());
        Ok(FileTransaction::default())
    }

    fn invoke(
        &mut self,
        transaction: &mut FileTransaction,
        values: &mut Vec<T>,
    ) -> Result<(), UserError> {
        if values.is_empty() {
            return Ok(());
        }
        self.text.clear();
        for value in values.drain(..) {
            value.fmt_record(&mut self.text)?;
            self.text.push('\n');
        }
        // The bucket of the batch: its records are handled at one processing time.
        let bucket = self
            .buckets
            .as_ref()
            .ok_or("the file sink was not opened")?
            .bucket_now();
        let index = match self.open.iter().position(|(b, _)| *b == bucket) {
            Some(index) => index,
            None => self.start_part(bucket, transaction)?,
        };
        let (_, part) = &mut self.open[index];
        part.writer
            .write_all(self.text.as_bytes())
            .map_err(|e| Self::io_error(&self.dir, "write to", e))?;
        part.size += self.text.len() as u64;
        if part.size >= self.policy.max_part_size {
            let (_, full) = self.open.swap_remove(index);
            Self::close(&self.dir, full)?;
        }
        Ok(())
    }

    fn tick(&mut self, _transaction: &mut FileTransaction, now: Instant) -> Result<(), UserError> {
        let rollover = self.policy.rollover_interval;
        while let Some(index) = self
            .open
            .iter()
            .position(|(_, p)| now.duration_since(p.opened) >= rollover)
        {
            let (_, part) = self.open.swap_remove(index);
            Self::close(&self.dir, part)?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, _transaction: &mut FileTransaction) -> Result<(), UserError> {
        self.close_parts()
    }

    fn commit(&mut self, checkpoint: u64, transaction: FileTransaction) -> Result<(), UserError> {
        if let Some(ctx) = &self.ctx {
            if let Some(lineage) = ctx.lineage {
                let parts: Vec<String> = transaction
                    .parts
                    .iter()
                    .map(|p| p.committed.clone())
                    .collect();
                CommitLog::of(&self.dir).record(
                    lineage,
                    checkpoint,
                    (ctx.run_id, ctx.subtask),
                    &parts,
                )?;
            }
        }
        for part in transaction.parts {
            let (from, to) = (
                self.dir.join(&part.in_progress),
                self.dir.join(&part.committed),
            );
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                // Committed before (a restore commits again): nothing to do.
                Err(_) if to.exists() => {}
                Err(e) => return Err(Self::io_error(&from, "commit", e)),
            }
        }
        Ok(())
    }

    fn abort(&mut self, transaction: FileTransaction) -> Result<(), UserError> {
        self.open.clear();
        for part in transaction.parts {
            let path = self.dir.join(&part.in_progress);
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(Self::io_error(&path, "abort", e));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(run_id: u64) -> TransactionContext {
        TransactionContext {
            subtask: 0,
            parallelism: 1,
            run_id,
            ..TransactionContext::default()
        }
    }

    /// The committed lines under `dir`, in its buckets too.
    fn visible(dir: &Path) -> Vec<String> {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.path().is_dir() {
                lines.extend(visible(&entry.path()));
            } else {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                lines.extend(text.lines().map(String::from));
            }
        }
        lines.sort();
        lines
    }

    #[test]
    fn parts_go_into_a_directory_per_hour_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::new(dir.path());
        TwoPhaseCommitSink::<i64>::recover(&mut sink, &ctx(1), &[]).unwrap();
        let mut txn = TwoPhaseCommitSink::<i64>::begin_transaction(&mut sink, &ctx(1)).unwrap();
        let hour = BucketAssigner::default().compile().unwrap().bucket_now();
        sink.invoke(&mut txn, &mut vec![1i64]).unwrap();
        TwoPhaseCommitSink::<i64>::pre_commit(&mut sink, &mut txn).unwrap();
        TwoPhaseCommitSink::<i64>::commit(&mut sink, 1, txn.clone()).unwrap();
        // yyyy-MM-dd--HH: the hour may have turned since `hour` was taken.
        let bucket = txn.parts[0]
            .committed
            .split('/')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(bucket.len(), "2026-12-07--13".len(), "{bucket}");
        assert!(bucket >= hour, "{bucket} {hour}");
        assert_eq!(visible(dir.path()), vec!["1"]);
    }

    #[test]
    fn output_is_visible_only_after_commit_and_commit_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::new(dir.path());
        TwoPhaseCommitSink::<i64>::recover(&mut sink, &ctx(1), &[]).unwrap();
        let mut txn = TwoPhaseCommitSink::<i64>::begin_transaction(&mut sink, &ctx(1)).unwrap();
        sink.invoke(&mut txn, &mut vec![1i64, 2]).unwrap();
        TwoPhaseCommitSink::<i64>::pre_commit(&mut sink, &mut txn).unwrap();
        assert!(visible(dir.path()).is_empty());
        TwoPhaseCommitSink::<i64>::commit(&mut sink, 1, txn.clone()).unwrap();
        TwoPhaseCommitSink::<i64>::commit(&mut sink, 1, txn).unwrap();
        assert_eq!(visible(dir.path()), vec!["1", "2"]);
    }

    #[test]
    fn parts_are_named_by_the_output_file_config() {
        let dir = tempfile::tempdir().unwrap();
        let names = OutputFileConfig {
            part_prefix: "prefix".into(),
            part_suffix: ".txt".into(),
        };
        let mut sink = FileSink::new(dir.path())
            .with_output_file_config(names)
            .with_bucket_assigner(BucketAssigner::base_path());
        TwoPhaseCommitSink::<i64>::recover(&mut sink, &ctx(3), &[]).unwrap();
        let mut txn = TwoPhaseCommitSink::<i64>::begin_transaction(&mut sink, &ctx(3)).unwrap();
        sink.invoke(&mut txn, &mut vec![1i64]).unwrap();
        TwoPhaseCommitSink::<i64>::pre_commit(&mut sink, &mut txn).unwrap();
        // Flink's names: <prefix>-<uuid of the subtask's writer>-<counter><suffix>.
        let uuid = "00000000-0000-0003-0000-000000000000";
        assert_eq!(
            txn.parts[0].in_progress,
            format!(".prefix-{uuid}-0.txt.inprogress")
        );
        let mut lost = TwoPhaseCommitSink::<i64>::begin_transaction(&mut sink, &ctx(3)).unwrap();
        sink.invoke(&mut lost, &mut vec![2i64]).unwrap();
        TwoPhaseCommitSink::<i64>::commit(&mut sink, 1, txn.clone()).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                format!(".prefix-{uuid}-1.txt.inprogress"),
                format!("prefix-{uuid}-0.txt")
            ]
        );
        // A later run aborts the earlier run's part under the same prefix.
        let mut next = FileSink::new(dir.path())
            .with_output_file_config(OutputFileConfig {
                part_prefix: "prefix".into(),
                part_suffix: ".txt".into(),
            })
            .with_bucket_assigner(BucketAssigner::base_path());
        TwoPhaseCommitSink::<i64>::recover(&mut next, &ctx(4), &[txn]).unwrap();
        assert_eq!(visible(dir.path()), vec!["1"]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_part_prefix_that_is_not_one_file_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (prefix, suffix, error) in [
            ("", "", "must not be empty"),
            (".hidden", "", "must not start with '.'"),
            ("a/b", "", "path separator"),
            ("part", "/x", "path separator"),
        ] {
            let mut sink = FileSink::new(dir.path()).with_output_file_config(OutputFileConfig {
                part_prefix: prefix.into(),
                part_suffix: suffix.into(),
            });
            let e = TwoPhaseCommitSink::<i64>::recover(&mut sink, &ctx(1), &[]).unwrap_err();
            assert!(e.to_string().contains(error), "{prefix:?} {suffix:?}: {e}");
        }
    }

    #[test]
    fn parts_roll_by_size_and_a_new_run_aborts_what_it_does_not_restore() {
        let dir = tempfile::tempdir().unwrap();
        let policy = RollingPolicy {
            max_part_size: 4,
            rollover_interval: Duration::from_secs(60),
        };
        let mut sink = FileSink::new(dir.path())
            .with_rolling_policy(policy)
            .with_bucket_assigner(BucketAssigner::base_path());
        TwoPhaseCommitSink::<i64>::recover(&mut sink, &ctx(1), &[]).unwrap();
        let mut kept = TwoPhaseCommitSink::<i64>::begin_transaction(&mut sink, &ctx(1)).unwrap();
        sink.invoke(&mut kept, &mut vec![10i64, 11]).unwrap();
        sink.invoke(&mut kept, &mut vec![12i64]).unwrap();
        TwoPhaseCommitSink::<i64>::pre_commit(&mut sink, &mut kept).unwrap();
        assert_eq!(kept.parts.len(), 2);
        let mut lost = TwoPhaseCommitSink::<i64>::begin_transaction(&mut sink, &ctx(1)).unwrap();
        sink.invoke(&mut lost, &mut vec![99i64]).unwrap();
        // A new run restores `kept` only: `lost` is removed, `kept` then committed.
        let mut next = FileSink::new(dir.path()).with_bucket_assigner(BucketAssigner::base_path());
        TwoPhaseCommitSink::<i64>::recover(&mut next, &ctx(2), std::slice::from_ref(&kept))
            .unwrap();
        TwoPhaseCommitSink::<i64>::commit(&mut next, 1, kept).unwrap();
        assert_eq!(visible(dir.path()), vec!["10", "11", "12"]);
        let hidden = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(hidden, 0);
    }
}
