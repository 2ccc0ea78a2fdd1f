//! The record a [`FileSink`](crate::FileSink) keeps beside its output of the parts it
//! committed for each checkpoint, and what a restore does with parts committed after
//! the checkpoint it restores.
//!
//! A restore from a checkpoint older than the newest (the newest was damaged and
//! skipped, or the user named an older one) replays the records after it. Their parts
//! may already be committed for a later checkpoint: left there, the replay writes the
//! same records again. Flink's `FileSink` has that problem and no record to tell; this
//! sink writes, before it makes a checkpoint's parts visible, which parts they are
//! (`<dir>/.superflow-commits/`), so that a restore can name them and, if asked, move
//! them into `<dir>/.quarantine/` before the replay writes them again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use superflow_core::UserError;

/// The hidden directory of commit records, in the sink's directory.
pub const COMMITS_DIR: &str = ".superflow-commits";
/// The hidden directory that parts rolled back by a restore are moved into.
pub const QUARANTINE_DIR: &str = ".quarantine";

/// What a restore does with output a [`FileSink`](crate::FileSink) committed after the
/// checkpoint it restores (whose records the replay writes again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommittedAfterRestore {
    /// The job refuses to start, naming the checkpoint, the parts, and the two ways out
    /// below (the default).
    #[default]
    Refuse,
    /// The parts are moved into `<dir>/.quarantine/chk-<restored>-<run>/` (never
    /// deleted), each named in the log; the replay then writes their records again, so
    /// the visible output holds each record once.
    Quarantine,
    /// The parts stay, with a warning: their records will be in the output twice.
    KeepDuplicates,
}

impl std::str::FromStr for CommittedAfterRestore {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "refuse" => Ok(CommittedAfterRestore::Refuse),
            "quarantine" => Ok(CommittedAfterRestore::Quarantine),
            "keep-duplicates" => Ok(CommittedAfterRestore::KeepDuplicates),
            other => Err(format!(
                "unknown choice '{other}' for output committed after the restored checkpoint: use 'refuse', 'quarantine' or 'keep-duplicates'"
            )),
        }
    }
}

/// One subtask's commit of one checkpoint's parts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct CommitRecord {
    /// The line of checkpoints the commit belongs to: records of other lines (a fresh
    /// start, another job writing into the same directory) do not count.
    lineage: u64,
    /// The checkpoint the parts were committed for (`u64::MAX`: the end of the job).
    checkpoint: u64,
    /// The parts, relative to the sink's directory.
    parts: Vec<String>,
}

/// The commit records of one sink directory.
pub(crate) struct CommitLog<'a> {
    dir: &'a Path,
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> UserError {
    format!("cannot {what} '{}': {e}", path.display()).into()
}

impl<'a> CommitLog<'a> {
    /// The records of the sink writing into `dir`.
    pub(crate) fn of(dir: &'a Path) -> CommitLog<'a> {
        CommitLog { dir }
    }

    fn records_dir(&self) -> PathBuf {
        self.dir.join(COMMITS_DIR)
    }

    /// Records, durably, that subtask `subtask` of run `run_id` commits `parts` for
    /// checkpoint `checkpoint` of line `lineage`; called before the parts become
    /// visible, so that no visible part goes unrecorded.
    pub(crate) fn record(
        &self,
        lineage: u64,
        checkpoint: u64,
        (run_id, subtask): (u64, usize),
        parts: &[String],
    ) -> Result<(), UserError> {
        if parts.is_empty() {
            return Ok(());
        }
        let dir = self.records_dir();
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, "create", e))?;
        let record = CommitRecord {
            lineage,
            checkpoint,
            parts: parts.to_vec(),
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let path = dir.join(format!("c{checkpoint:020}-{run_id:016x}-{subtask}.json"));
        let tmp = path.with_extension("tmp");
        let written = std::fs::File::create(&tmp).and_then(|mut file| {
            use std::io::Write;
            file.write_all(&bytes)?;
            file.sync_all()
        });
        written
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| io_error(&path, "write the commit record", e))
    }

    /// The records of line `lineage` for checkpoints after `checkpoint`, with their
    /// files.
    fn after(
        &self,
        lineage: u64,
        checkpoint: u64,
    ) -> Result<Vec<(PathBuf, CommitRecord)>, UserError> {
        let dir = self.records_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&dir, "list", e)),
        };
        let mut later = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| io_error(&path, "read", e))?;
            let record: CommitRecord = serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "the commit record '{}' is damaged ({e}); move it away if its parts are not needed",
                    path.display()
                )
            })?;
            if record.lineage == lineage && record.checkpoint > checkpoint {
                later.push((path, record));
            }
        }
        later.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(later)
    }

    /// For a run restored from checkpoint `restored` (read from `from`) of line
    /// `lineage`: does what `policy` says with the parts committed for later
    /// checkpoints of the line that are still in the output.
    pub(crate) fn settle(
        &self,
        lineage: u64,
        (restored, from): (u64, &str),
        run_id: u64,
        policy: CommittedAfterRestore,
    ) -> Result<(), UserError> {
        let later = self.after(lineage, restored)?;
        let visible: Vec<&str> = later
            .iter()
            .flat_map(|(_, record)| record.parts.iter())
            .filter(|part| self.dir.join(part).is_file())
            .map(String::as_str)
            .collect();
        if visible.is_empty() {
            return Ok(());
        }
        let checkpoints: std::collections::BTreeSet<String> = later
            .iter()
            .map(|(_, r)| match r.checkpoint {
                u64::MAX => "the end of the job".to_string(),
                id => id.to_string(),
            })
            .collect();
        let checkpoints = checkpoints.into_iter().collect::<Vec<_>>().join(", ");
        let mut listed = visible
            .iter()
            .take(5)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        if visible.len() > 5 {
            listed.push_str(&format!(" and {} more", visible.len() - 5));
        }
        let what = format!(
            "file sink '{}': the job restores checkpoint {restored} ({from}), but {} part file(s) were committed after it (for checkpoint {checkpoints}): {listed}",
            self.dir.display(),
            visible.len()
        );
        match policy {
            CommittedAfterRestore::Refuse => Err(superflow_core::Unrecoverable(format!(
                "{what}. Replaying from checkpoint {restored} would write their records again. Either roll them back: set the sink's CommittedAfterRestore::Quarantine (Python: committed_after_restore='quarantine'), which moves them into '{}' before the replay writes them again; or accept duplicates with CommittedAfterRestore::KeepDuplicates",
                self.dir.join(QUARANTINE_DIR).display()
            ))
            .into()),
            CommittedAfterRestore::KeepDuplicates => {
                superflow_runtime::notice::warn_user(format!(
                    "{what}; they stay, so their records will be in the output twice"
                ));
                Ok(())
            }
            CommittedAfterRestore::Quarantine => {
                let quarantine = self
                    .dir
                    .join(QUARANTINE_DIR)
                    .join(format!("chk-{restored}-{run_id:016x}"));
                for part in &visible {
                    let (from, to) = (self.dir.join(part), quarantine.join(part));
                    if let Some(parent) = to.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| io_error(parent, "create", e))?;
                    }
                    std::fs::rename(&from, &to)
                        .map_err(|e| io_error(&from, "move into quarantine", e))?;
                    tracing::warn!(part = %part, to = %to.display(), "moved into quarantine");
                }
                // The records go with their parts: a later restore does not count them.
                for (record, _) in &later {
                    if let Some(name) = record.file_name() {
                        let to = quarantine.join(COMMITS_DIR).join(name);
                        if let Some(parent) = to.parent() {
                            std::fs::create_dir_all(parent)
                                .map_err(|e| io_error(parent, "create", e))?;
                        }
                        std::fs::rename(record, &to)
                            .map_err(|e| io_error(record, "move into quarantine", e))?;
                    }
                }
                superflow_runtime::notice::warn_user(format!(
                    "{what}; they were moved into '{}', and the replay writes their records again",
                    quarantine.display()
                ));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(dir: &Path, name: &str) -> String {
        std::fs::write(dir.join(name), name).unwrap();
        name.to_string()
    }

    #[test]
    fn only_parts_of_later_checkpoints_of_the_same_line_count() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::of(dir.path());
        let (a, b, c) = (
            part(dir.path(), "part-a"),
            part(dir.path(), "part-b"),
            part(dir.path(), "part-c"),
        );
        log.record(1, 3, (1, 0), std::slice::from_ref(&a)).unwrap();
        log.record(1, 4, (1, 0), std::slice::from_ref(&b)).unwrap();
        log.record(2, 9, (7, 0), std::slice::from_ref(&c)).unwrap();
        let later = log.after(1, 3).unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].1.parts, vec![b.clone()]);
        // Restoring the newest checkpoint: nothing to settle, whatever the policy.
        log.settle(1, (4, "chk-4"), 2, CommittedAfterRestore::Refuse)
            .unwrap();
        let refused = log
            .settle(1, (3, "chk-3"), 2, CommittedAfterRestore::Refuse)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("checkpoint 3") && refused.contains("part-b"),
            "{refused}"
        );
        assert!(refused.contains("Quarantine") && refused.contains("KeepDuplicates"));
        log.settle(1, (3, "chk-3"), 2, CommittedAfterRestore::KeepDuplicates)
            .unwrap();
        assert!(dir.path().join(&b).is_file());
        log.settle(1, (3, "chk-3"), 2, CommittedAfterRestore::Quarantine)
            .unwrap();
        assert!(!dir.path().join(&b).exists());
        let moved = dir
            .path()
            .join(QUARANTINE_DIR)
            .join("chk-3-0000000000000002");
        assert_eq!(std::fs::read_to_string(moved.join(&b)).unwrap(), "part-b");
        // Settled once: the record went into quarantine with its part.
        assert!(log.after(1, 3).unwrap().is_empty());
        assert!(dir.path().join(&a).is_file() && dir.path().join(&c).is_file());
    }

    #[test]
    fn the_choice_reads_from_its_name() {
        assert_eq!(
            "quarantine".parse::<CommittedAfterRestore>(),
            Ok(CommittedAfterRestore::Quarantine)
        );
        assert_eq!(
            "KEEP_DUPLICATES".parse::<CommittedAfterRestore>(),
            Ok(CommittedAfterRestore::KeepDuplicates)
        );
        assert!("maybe".parse::<CommittedAfterRestore>().is_err());
    }
}
