//! Writing a checkpoint's parts: each on a thread of its own, into the checkpoint's
//! directory, and what a part writer that outlives its checkpoint does.

use crate::checkpoint::CheckpointError;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::config::SnapshotCompression;
use crate::checkpoint::storage::{encode_part, write_atomically, PartMetadata};

use super::{CoordinatorThread, InstanceId, Message, PartReport};

/// A part to write: a subtask's own (encoded on the writer thread), or a final one
/// shared by every later checkpoint.
pub(super) enum PartSource {
    Taken(Box<PartReport>),
    Final(Arc<PartReport>),
}

pub(super) struct Pending {
    pub(super) started: Instant,
    pub(super) trigger_ms: i64,
    pub(super) dir: PathBuf,
    pub(super) savepoint: bool,
    pub(super) reply: Option<Sender<Result<PathBuf, CheckpointError>>>,
    pub(super) requested: HashSet<InstanceId>,
    pub(super) written: HashMap<InstanceId, Option<PartMetadata>>,
    /// Other processes whose parts have not been reported yet (process 0).
    pub(super) waiting: HashSet<usize>,
    /// The parts other processes reported (process 0).
    pub(super) remote_parts: Vec<PartMetadata>,
    /// Whether this process reported its parts to process 0 (the others).
    pub(super) reported: bool,
    /// Set once the checkpoint is no longer pending here: a part writer still running
    /// then (it outlived the checkpoint's timeout, or the run's end) deletes what it
    /// wrote, rather than leave a stray part in a directory that was removed.
    pub(super) ended: EndedFlag,
}

/// Whether a checkpoint ended here, set when its [`Pending`] is dropped.
pub(super) struct EndedFlag(pub(super) Arc<AtomicBool>);

impl Drop for EndedFlag {
    fn drop(&mut self) {
        // A completed checkpoint has every part written, so no writer is left to see it.
        self.0.store(true, Ordering::Release);
    }
}

impl CoordinatorThread {
    /// Where this process writes its parts of checkpoint `id`, which process 0 put in
    /// `dir`: a savepoint's directory as named; a checkpoint's in this process's own
    /// storage directory (with an object store, each process stages locally and
    /// uploads).
    /// A savepoint into an object store is staged in the store's staging directory
    /// (emptied first) and uploaded as written.
    pub(super) fn own_dir(
        &self,
        id: u64,
        dir: PathBuf,
        savepoint: bool,
    ) -> Result<PathBuf, CheckpointError> {
        match (&self.storage, savepoint) {
            (Some(storage), false) => Ok(storage.checkpoint_dir(id)),
            (_, true) if crate::checkpoint::remote::is_url(&dir.to_string_lossy()) => {
                let remote = crate::checkpoint::remote::open(&dir.to_string_lossy())?;
                let staging = remote.staging().to_path_buf();
                let _ = std::fs::remove_dir_all(&staging);
                Ok(staging)
            }
            _ => Ok(dir),
        }
    }

    /// Removes what a checkpoint that did not complete wrote (from the object store
    /// too); a savepoint's directory only if it failed (`savepoint_too`).
    pub(super) fn remove_pending_dir(&self, id: u64, pending: &Pending, savepoint_too: bool) {
        match (&self.storage, pending.savepoint) {
            (Some(storage), false) => storage.delete(id),
            (_, true) if !savepoint_too => {}
            _ => {
                let _ = std::fs::remove_dir_all(&pending.dir);
            }
        }
    }

    pub(super) fn write_part(&mut self, id: u64, report: PartSource) {
        let compression = self.compression();
        let Some(pending) = self.pending.get_mut(&id) else {
            return;
        };
        let instance = match &report {
            PartSource::Taken(r) => r.instance,
            PartSource::Final(r) => r.instance,
        };
        if !pending.requested.insert(instance) {
            return;
        }
        let dir = pending.dir.clone();
        let ended = Arc::clone(&pending.ended.0);
        let sender = self.sender.clone();
        let spawned = std::thread::Builder::new()
            .name("superflow-checkpoint-writer".into())
            .spawn(move || {
                if ended.load(Ordering::Acquire) {
                    return;
                }
                let started = Instant::now();
                let result = match report {
                    PartSource::Taken(mut report) => report
                        .snapshot
                        .materialize()
                        .and_then(|()| write_part_file(&dir, &report, compression, started)),
                    PartSource::Final(report) => {
                        write_part_file(&dir, &report, compression, started)
                    }
                };
                if ended.load(Ordering::Acquire) {
                    if let Ok(Some(part)) = &result {
                        tracing::debug!(checkpoint = id, part = %part.file, "deleting the part of an ended checkpoint");
                        crate::checkpoint::storage::remove_written(&dir.join(&part.file));
                    }
                    return;
                }
                let _ = sender.send(Message::Written(id, instance, result));
            });
        if let Err(e) = spawned {
            self.fail(id, format!("cannot start a writer thread: {e}"));
        }
    }
}

/// Encodes and writes a part; `started` is when its background work began (encoding
/// the copied state included).
pub(super) fn write_part_file(
    dir: &std::path::Path,
    report: &PartReport,
    compression: SnapshotCompression,
    started: Instant,
) -> Result<Option<PartMetadata>, CheckpointError> {
    if report.snapshot.is_empty() {
        return Ok(None);
    }
    let bytes = encode_part(report.snapshot.sections(), compression)?;
    let file = format!(
        "{}-{}.part",
        report.instance.operator, report.instance.worker
    );
    let path = dir.join(&file);
    write_atomically(&path, &bytes).map_err(|e| CheckpointError::io("write part", path, e))?;
    let shared: Vec<String> = report
        .snapshot
        .sections()
        .iter()
        .filter(|s| s.kind == crate::checkpoint::SectionKind::KeyedChain)
        .map(crate::checkpoint::storage::chain_files)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    // This checkpoint's increments are the chain files named after it.
    let suffix = report.snapshot.checkpoint().map(|id| format!("-c{id}"));
    let shared_dir = crate::checkpoint::storage::shared_dir(dir);
    let increments: Vec<&String> = shared
        .iter()
        .filter(|name| suffix.as_ref().is_some_and(|s| name.ends_with(s.as_str())))
        .collect();
    if let Some(remote) = crate::checkpoint::remote::mirroring(&shared_dir) {
        for name in &increments {
            remote.upload(&shared_dir.join(name))?;
        }
    }
    let incremental_bytes = increments
        .iter()
        .filter_map(|name| std::fs::metadata(shared_dir.join(name)).ok())
        .map(|m| m.len())
        .sum();
    Ok(Some(PartMetadata {
        file,
        operator: report.operator.clone(),
        node: report.node,
        subtask: report.subtask,
        parallelism: report.parallelism,
        size: bytes.len() as u64,
        crc32: crc32fast::hash(&bytes),
        states: report
            .snapshot
            .sections()
            .iter()
            .map(|s| (s.state.clone(), s.kind))
            .collect(),
        shared,
        incremental_bytes,
        sync_micros: report.sync.as_micros() as u64,
        async_micros: started.elapsed().as_micros() as u64,
        alignment_micros: report.alignment.as_micros() as u64,
    }))
}
