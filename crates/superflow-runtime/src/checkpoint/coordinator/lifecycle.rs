//! A checkpoint's life on the coordinator thread: triggering (interval, min pause, max
//! concurrent, savepoints), completion and its metadata, expiry and failure, and the
//! retention of completed checkpoints and their shared files.

use crate::checkpoint::CheckpointError;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use superflow_core::OperatorFailure;

use crate::checkpoint::storage::{
    write_metadata, CheckpointMetadata, CheckpointStorage, PartMetadata,
};
use crate::cluster_control::ControlMessage;

use super::writer::{EndedFlag, PartSource, Pending};
use super::{
    AfterSavepoint, CheckpointStats, CheckpointStatus, CoordinatorThread, OperatorCheckpointStats,
    PartReport,
};

impl CoordinatorThread {
    pub(super) fn maybe_trigger(&mut self) {
        if self.registered < self.settings.workers
            || self.ready < self.peers.followers()
            || !self.gone.is_empty()
            || self.peers.is_follower()
            || self.control.should_stop()
        {
            return;
        }
        let now = Instant::now();
        if let Some((dir, after, reply)) = self.savepoints.pop() {
            self.trigger(Some(dir), after, Some(reply));
            return;
        }
        let Some(config) = self.settings.config.clone() else {
            return;
        };
        let Some(next) = self.next_trigger else {
            return;
        };
        let running = self.pending.values().filter(|p| !p.savepoint).count();
        let paused = self
            .last_completion
            .is_some_and(|t| now < t + config.min_pause);
        if now >= next && running < config.max_concurrent.max(1) && !paused {
            self.trigger(None, AfterSavepoint::Continue, None);
            self.next_trigger = Some(now + config.interval);
        }
    }

    pub(super) fn trigger(
        &mut self,
        savepoint_dir: Option<PathBuf>,
        after: AfterSavepoint,
        reply: Option<Sender<Result<PathBuf, CheckpointError>>>,
    ) {
        let id = self.shared.triggered.load(Ordering::Acquire) + 1;
        let savepoint = savepoint_dir.is_some();
        // Other processes get the savepoint's location as named (a URL stays a URL).
        let (named, dir) = match (savepoint_dir, &self.storage) {
            (Some(named), _) => match self.own_dir(id, named.clone(), true) {
                Ok(dir) => (named, dir),
                Err(e) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(e));
                    }
                    return;
                }
            },
            (None, Some(storage)) => {
                let dir = storage.checkpoint_dir(id);
                (dir.clone(), dir)
            }
            (None, None) => return,
        };
        tracing::debug!(checkpoint = id, savepoint, "triggering checkpoint");
        self.peers.broadcast(&ControlMessage::Trigger {
            id,
            dir: named,
            savepoint,
            after,
        });
        self.begin(id, dir, savepoint, after, reply);
    }

    /// This process takes part in checkpoint `id` (triggered here, or by process 0).
    pub(super) fn begin(
        &mut self,
        id: u64,
        dir: PathBuf,
        savepoint: bool,
        after: AfterSavepoint,
        reply: Option<Sender<Result<PathBuf, CheckpointError>>>,
    ) {
        let waiting = self.peers.follower_ids().into_iter().collect();
        self.pending.insert(
            id,
            Pending {
                started: Instant::now(),
                trigger_ms: crate::time::processing_time_now(),
                dir,
                savepoint,
                reply,
                requested: HashSet::new(),
                written: HashMap::new(),
                waiting,
                remote_parts: Vec::new(),
                reported: false,
                ended: EndedFlag(Arc::new(AtomicBool::new(false))),
            },
        );
        if savepoint {
            if let Ok(mut ids) = self.shared.savepoints.lock() {
                ids.insert(id);
            }
        }
        if after != AfterSavepoint::Continue {
            self.shared
                .drain
                .store(after == AfterSavepoint::Drain, Ordering::Release);
            self.shared.stop_after.store(id, Ordering::Release);
        }
        self.shared.triggered.store(id, Ordering::Release);
        let finals: Vec<Arc<PartReport>> = self.finals.values().cloned().collect();
        for report in finals {
            self.write_part(id, PartSource::Final(report));
        }
        self.check_done(id);
    }

    pub(super) fn complete(&mut self, id: u64) {
        let Some(mut pending) = self.pending.remove(&id) else {
            return;
        };
        let metadata = self.metadata_of(id, &mut pending);
        if let Err(e) = write_metadata(&pending.dir, &metadata) {
            self.peers.broadcast(&ControlMessage::Aborted { id });
            let reason = format!("the metadata could not be written: {e}");
            self.record(id, &pending, &metadata, Some(reason.clone()));
            if let Some(reply) = pending.reply {
                let _ = reply.send(Err(CheckpointError::Aborted(reason)));
            }
            return;
        }
        self.record(id, &pending, &metadata, None);
        if !pending.savepoint {
            self.shared.completed.store(id, Ordering::Release);
            self.last_completion = Some(Instant::now());
            self.consecutive_failures = 0;
            self.retain(id);
        } else {
            // A savepoint also completes the epochs before it: sinks may commit.
            self.shared.completed.fetch_max(id, Ordering::AcqRel);
        }
        self.peers.broadcast(&ControlMessage::Completed { id });
        tracing::info!(
            checkpoint = id,
            savepoint = pending.savepoint,
            path = %crate::checkpoint::remote::name_of(&pending.dir).display(),
            "checkpoint complete"
        );
        if let Some(reply) = pending.reply {
            let _ = reply.send(Ok(crate::checkpoint::remote::name_of(&pending.dir)));
        }
    }

    /// Deletes complete checkpoints older than the last `retained`.
    pub(super) fn retain(&self, newest: u64) {
        let (Some(storage), Some(config)) = (&self.storage, &self.settings.config) else {
            return;
        };
        let complete: Vec<u64> = storage
            .checkpoint_ids()
            .into_iter()
            .filter(|&id| id <= newest && storage.is_complete(id))
            .collect();
        let keep = config.retained.max(1);
        if complete.len() > keep {
            let (older, kept) = complete.split_at(complete.len() - keep);
            // The newest self-contained checkpoint stays too: kept incremental
            // checkpoints share files, and one damaged file would make all of them
            // unusable.
            let fallback = if kept.iter().any(|&id| self_contained(storage, id)) {
                None
            } else {
                older
                    .iter()
                    .rev()
                    .copied()
                    .find(|&id| self_contained(storage, id))
            };
            for &id in older {
                if Some(id) != fallback {
                    storage.delete(id);
                }
            }
        }
        self.collect_shared_files(storage, newest);
    }

    /// Deletes the shared files of incremental checkpoints that no kept checkpoint
    /// refers to (files of checkpoints after `newest` may still be in use).
    pub(super) fn collect_shared_files(&self, storage: &CheckpointStorage, newest: u64) {
        let names = storage.shared_files();
        if names.is_empty() {
            return;
        }
        let mut referenced = HashSet::new();
        for id in storage.checkpoint_ids() {
            let Some(text) = storage.metadata_bytes(id) else {
                continue;
            };
            match serde_json::from_slice::<CheckpointMetadata>(&text) {
                Ok(metadata) => {
                    for part in metadata.parts {
                        referenced.extend(part.shared);
                    }
                }
                // Unreadable metadata: keep everything rather than guess.
                Err(_) => return,
            }
        }
        for name in names {
            let id = name
                .rsplit_once("-c")
                .and_then(|(_, id)| id.parse::<u64>().ok());
            if id.is_some_and(|id| id <= newest) && !referenced.contains(&name) {
                storage.delete_shared(&name);
            }
        }
    }

    pub(super) fn expire(&mut self) {
        let Some(timeout) = self.settings.config.as_ref().map(|c| c.timeout) else {
            return;
        };
        if self.peers.is_follower() {
            return;
        }
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.started.elapsed() > timeout)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.fail(id, format!("it expired after {timeout:?}"));
        }
    }

    pub(super) fn fail(&mut self, id: u64, reason: String) {
        self.end_pending(id, reason, true);
    }

    /// Ends pending checkpoint `id` as failed. A failure of the checkpoint itself
    /// (`counted`: it expired, a part could not be written) counts toward the tolerable
    /// failures; one because a process's run ended does not (the run fails anyway, and
    /// its own failure is the one to report).
    pub(super) fn end_pending(&mut self, id: u64, reason: String, counted: bool) {
        let Some(mut pending) = self.pending.remove(&id) else {
            return;
        };
        self.peers.broadcast(&ControlMessage::Aborted { id });
        if counted {
            crate::notice::warn_user(format!("checkpoint {id} failed: {reason}"));
        }
        let metadata = self.metadata_of(id, &mut pending);
        self.record(id, &pending, &metadata, Some(reason.clone()));
        self.remove_pending_dir(id, &pending, true);
        if let Some(reply) = pending.reply {
            let _ = reply.send(Err(CheckpointError::Aborted(reason)));
            return;
        }
        if !counted {
            return;
        }
        self.consecutive_failures += 1;
        let tolerable = self
            .settings
            .config
            .as_ref()
            .map_or(0, |c| c.tolerable_failures);
        if self.consecutive_failures > tolerable {
            self.control.fail(OperatorFailure {
                fatal: false,
                operator: "<checkpoint coordinator>".into(),
                subtask: 0,
                cause: format!(
                    "checkpoint {id} failed ({reason}); the job tolerates {tolerable} failed checkpoints in a row"
                ),
                location: None,
            });
        }
    }

    /// The metadata of checkpoint `id`.
    pub(super) fn metadata(
        &self,
        id: u64,
        savepoint: bool,
        trigger_timestamp_ms: i64,
        parts: Vec<PartMetadata>,
    ) -> CheckpointMetadata {
        CheckpointMetadata {
            id,
            job: self.settings.job.clone(),
            lineage: self.settings.lineage,
            savepoint,
            trigger_timestamp_ms,
            max_parallelism: self.settings.max_parallelism,
            operator_key_groups: self.settings.operator_key_groups.clone(),
            parts,
        }
    }

    /// The metadata of pending checkpoint `id`, with the parts written so far.
    pub(super) fn metadata_of(&self, id: u64, pending: &mut Pending) -> CheckpointMetadata {
        let mut parts: Vec<PartMetadata> = std::mem::take(&mut pending.written)
            .into_values()
            .flatten()
            .chain(std::mem::take(&mut pending.remote_parts))
            .collect();
        parts.sort_by_key(|p| (p.node, p.subtask));
        self.metadata(id, pending.savepoint, pending.trigger_ms, parts)
    }

    /// Records the statistics of checkpoint `id`, completed or failed.
    pub(super) fn record(
        &self,
        id: u64,
        pending: &Pending,
        metadata: &CheckpointMetadata,
        failure: Option<String>,
    ) {
        let (dir, started, savepoint) = (&pending.dir, pending.started, pending.savepoint);
        let mut operators: BTreeMap<String, OperatorCheckpointStats> = BTreeMap::new();
        for part in &metadata.parts {
            let entry =
                operators
                    .entry(part.operator.clone())
                    .or_insert_with(|| OperatorCheckpointStats {
                        operator: part.operator.clone(),
                        parts: 0,
                        size_bytes: 0,
                        sync_duration: Duration::ZERO,
                        async_duration: Duration::ZERO,
                        alignment_duration: Duration::ZERO,
                    });
            entry.parts += 1;
            entry.size_bytes += part.size + part.incremental_bytes;
            entry.sync_duration = entry
                .sync_duration
                .max(Duration::from_micros(part.sync_micros));
            entry.async_duration = entry
                .async_duration
                .max(Duration::from_micros(part.async_micros));
            entry.alignment_duration = entry
                .alignment_duration
                .max(Duration::from_micros(part.alignment_micros));
        }
        let stats = CheckpointStats {
            id,
            savepoint,
            status: failure.map_or(CheckpointStatus::Completed, CheckpointStatus::Failed),
            trigger_timestamp_ms: metadata.trigger_timestamp_ms,
            duration: started.elapsed(),
            size_bytes: metadata
                .parts
                .iter()
                .map(|p| p.size + p.incremental_bytes)
                .sum(),
            path: crate::checkpoint::remote::name_of(dir),
            operators: operators.into_values().collect(),
        };
        if let Ok(mut all) = self.shared.stats.lock() {
            all.push(stats);
        }
    }
}

/// Whether checkpoint `id` needs no shared file of an earlier checkpoint (every
/// incremental state wrote its full file at it, or it has none).
fn self_contained(storage: &CheckpointStorage, id: u64) -> bool {
    let Some(text) = storage.metadata_bytes(id) else {
        return false;
    };
    let Ok(metadata) = serde_json::from_slice::<CheckpointMetadata>(&text) else {
        return false;
    };
    let own = format!("-c{id}");
    metadata
        .parts
        .iter()
        .flat_map(|part| &part.shared)
        .all(|file| file.ends_with(&own))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::coordinator_for_test;
    use crate::checkpoint::{
        CheckpointConfig, InstanceId, OperatorSnapshot, PartReport, RunOutcome,
    };
    use crate::control::JobControl;

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn the_trigger_policy_keeps_max_concurrent_and_the_min_pause() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = CheckpointConfig::new(Duration::from_millis(5));
        config.max_concurrent = 1;
        config.min_pause = Duration::from_millis(300);
        config.storage = root.path().join("checkpoints");
        let coordinator = coordinator_for_test(config, "policy", JobControl::new());
        let instance = InstanceId {
            operator: 0,
            worker: 0,
        };
        // Nothing is triggered before every worker registered.
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(coordinator.triggered(), 0);
        coordinator.register(vec![instance]);
        wait_until("the first trigger", || coordinator.triggered() == 1);
        // One at a time: the interval (5 ms) passes many times while it is pending.
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(coordinator.triggered(), 1);
        let report = |id: u64| PartReport {
            instance,
            operator: "op".into(),
            node: 0,
            subtask: 0,
            parallelism: 1,
            snapshot: OperatorSnapshot::for_checkpoint(id),
            sync: Duration::ZERO,
            alignment: Duration::ZERO,
        };
        coordinator.report(1, report(1));
        wait_until("the first completion", || coordinator.completed() == 1);
        let completed = Instant::now();
        // The min pause (300 ms) holds the next one back, however short the interval.
        wait_until("the second trigger", || coordinator.triggered() == 2);
        assert!(completed.elapsed() >= Duration::from_millis(250));
        coordinator.shutdown(RunOutcome::Cancelled);
    }
}
