//! The `CheckpointCoordinator` of one job run: it triggers checkpoints (interval, min
//! pause, max concurrent, savepoint requests), collects every operator subtask's part,
//! writes the parts in the background (one thread per part, so subtasks write in
//! parallel), writes the metadata last, and keeps the statistics.
//!
//! Workers talk to it through atomics they read on their hot path (the triggered and
//! completed ids) and a channel for parts; it runs on its own thread.
//!
//! On several processes, process 0's coordinator decides (triggers, expiry, completion,
//! the metadata, retention) and the others follow it over the control channel
//! (`cluster_control.rs`): they take part in the checkpoints it triggers, write their
//! own parts, and report them; it writes the metadata once every process has.
//!
//! The coordinator thread's work is split by concept: [`lifecycle`] (trigger, complete,
//! expire, retain), [`protocol`] (the other processes), [`writer`] (parts and their
//! directories) and [`job_end`] (the final checkpoint of a finished job).

mod job_end;
mod lifecycle;
mod protocol;
mod writer;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use superflow_core::OperatorFailure;

use crate::checkpoint::config::{CheckpointConfig, SnapshotCompression};
use crate::checkpoint::snapshot::OperatorSnapshot;
use crate::checkpoint::storage::{CheckpointStorage, PartMetadata};
use crate::cluster_control::{ControlMessage, ControlRole};
use crate::control::JobControl;

use protocol::{is_own_failure, Peers};
use writer::{PartSource, Pending};

/// One operator subtask of a run: the timely operator and the worker it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId {
    /// The operator's index in the dataflow (the same on every worker).
    pub operator: usize,
    /// The worker.
    pub worker: usize,
}

/// A part an operator subtask hands over: its state at a checkpoint, or its final state
/// once its input ended (which stands for it in every later checkpoint).
#[derive(Debug)]
pub struct PartReport {
    /// Which subtask.
    pub instance: InstanceId,
    /// The operator (chain) name.
    pub operator: String,
    /// The node id of the chain's head.
    pub node: usize,
    /// The subtask index.
    pub subtask: usize,
    /// The operator's parallelism.
    pub parallelism: usize,
    /// The state.
    pub snapshot: OperatorSnapshot,
    /// How long the synchronous copy took.
    pub sync: Duration,
    /// How long records of later epochs waited for this checkpoint.
    pub alignment: Duration,
}

/// What became of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CheckpointStatus {
    /// Every part and the metadata are written.
    Completed,
    /// It expired or a part could not be written.
    Failed(String),
}

/// Per operator figures of one checkpoint.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OperatorCheckpointStats {
    /// The operator (chain) name.
    pub operator: String,
    /// Parts written (subtasks with state).
    pub parts: usize,
    /// Bytes written.
    pub size_bytes: u64,
    /// The longest synchronous copy of a subtask.
    pub sync_duration: Duration,
    /// The longest background write of a subtask.
    pub async_duration: Duration,
    /// The longest alignment of a subtask.
    pub alignment_duration: Duration,
}

/// What a job reports about one checkpoint (and the REST API will show).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint id.
    pub id: u64,
    /// Whether it was a savepoint.
    pub savepoint: bool,
    /// Completed or failed.
    pub status: CheckpointStatus,
    /// When it was triggered, in milliseconds since the Unix epoch.
    pub trigger_timestamp_ms: i64,
    /// From trigger to completion (or failure).
    pub duration: Duration,
    /// Bytes written over all parts.
    pub size_bytes: u64,
    /// Where it is stored.
    pub path: PathBuf,
    /// Per operator figures.
    pub operators: Vec<OperatorCheckpointStats>,
}

/// What the job does once a savepoint is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AfterSavepoint {
    /// It runs on.
    Continue,
    /// Its sources stop at the savepoint and the job ends, timers and windows still
    /// pending (they resume from the savepoint).
    Stop,
    /// Its sources send the final watermark first, so that every event-time timer and
    /// window fires before the savepoint, then stop (Flink's `stop --drain`).
    Drain,
}

enum Message {
    Register(Vec<InstanceId>),
    Part(u64, Box<PartReport>),
    Final(Arc<PartReport>),
    Written(
        u64,
        InstanceId,
        Result<Option<PartMetadata>, super::CheckpointError>,
    ),
    Savepoint {
        dir: PathBuf,
        after: AfterSavepoint,
        reply: Sender<Result<PathBuf, super::CheckpointError>>,
    },
    /// A message from another process of the job.
    Remote(usize, ControlMessage),
    Shutdown(RunOutcome),
}

/// How a run ended, which decides what happens to its checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The job finished: checkpoints are deleted (savepoints stay).
    Finished,
    /// The job was cancelled: checkpoints are kept or deleted per the retention.
    Cancelled,
    /// The run failed: checkpoints are kept, to restore from.
    Failed,
}

/// What a transactional sink leaves to do when the job has finished: commit the
/// transactions it pre-committed at the end of its input.
pub type EndAction = Box<dyn FnOnce() -> Result<(), CommitError> + Send>;

/// A sink could not commit its transactions at the end of the job.
#[derive(Debug, thiserror::Error)]
#[error("sink '{sink}' could not commit: {cause}")]
pub struct CommitError {
    /// The sink operator's name.
    pub sink: String,
    /// What its commit returned.
    pub cause: superflow_core::UserError,
}

struct Shared {
    triggered: AtomicU64,
    completed: AtomicU64,
    stop_after: AtomicU64,
    drain: std::sync::atomic::AtomicBool,
    stats: Mutex<Vec<CheckpointStats>>,
    savepoints: Mutex<HashSet<u64>>,
    end_actions: Mutex<Vec<EndAction>>,
    end_errors: Mutex<Vec<String>>,
    remote_failure: Mutex<Option<OperatorFailure>>,
}

/// Triggers and completes the checkpoints of one run of a job.
pub struct CheckpointCoordinator {
    shared: Arc<Shared>,
    sender: Sender<Message>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    config: Option<CheckpointConfig>,
    base: u64,
    run_id: u64,
    lineage: u64,
    decides: bool,
}

impl std::fmt::Debug for CheckpointCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointCoordinator")
            .field("triggered", &self.triggered())
            .field("completed", &self.completed())
            .finish()
    }
}

/// What the coordinator of a run is started with.
pub struct CoordinatorSettings {
    /// Periodic checkpoints; `None` = only savepoints.
    pub config: Option<CheckpointConfig>,
    /// The job's name (written into the metadata).
    pub job: String,
    /// The job's max parallelism.
    pub max_parallelism: usize,
    /// The operators (by state uid) with a max parallelism of their own.
    pub operator_key_groups: std::collections::BTreeMap<String, usize>,
    /// Workers that will register their operators.
    pub workers: usize,
    /// The id the run starts after (its epochs start at `base << 32`).
    pub base: u64,
    /// Statistics of earlier runs of the job.
    pub history: Vec<CheckpointStats>,
    /// The run's id, the same on every process.
    pub run_id: u64,
    /// The line of checkpoints the run continues: the restored checkpoint's, or on a
    /// fresh start the run's id.
    pub lineage: u64,
    /// This process's place among the job's processes.
    pub control: ControlRole,
}

impl CheckpointCoordinator {
    /// Starts the coordinator's thread.
    pub fn start(mut settings: CoordinatorSettings, control: Arc<JobControl>) -> Arc<Self> {
        let shared = Arc::new(Shared {
            triggered: AtomicU64::new(settings.base),
            completed: AtomicU64::new(settings.base),
            stop_after: AtomicU64::new(u64::MAX),
            drain: std::sync::atomic::AtomicBool::new(false),
            stats: Mutex::new(settings.history.clone()),
            savepoints: Mutex::new(HashSet::new()),
            end_actions: Mutex::new(Vec::new()),
            end_errors: Mutex::new(Vec::new()),
            remote_failure: Mutex::new(None),
        });
        let (sender, receiver) = mpsc::channel();
        let config = settings.config.clone();
        let base = settings.base;
        let run_id = settings.run_id;
        let lineage = settings.lineage;
        let decides = settings.control.decides();
        let peers = Peers::connect(std::mem::take(&mut settings.control), &sender, &control);
        let mut state = CoordinatorThread {
            peers,
            inbox: VecDeque::new(),
            ready: 0,
            gone: HashSet::new(),
            cancel_sent: false,
            shared: Arc::clone(&shared),
            sender: sender.clone(),
            control,
            storage: settings
                .config
                .as_ref()
                .map(|c| CheckpointStorage::new(&c.storage)),
            settings,
            registered: 0,
            instances: HashSet::new(),
            pending: BTreeMap::new(),
            finals: HashMap::new(),
            next_trigger: None,
            last_completion: None,
            consecutive_failures: 0,
            savepoints: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("superflow-checkpoints".into())
            .spawn(move || state.run(receiver))
            .ok();
        if thread.is_none() {
            tracing::error!(
                "cannot start the checkpoint coordinator thread; no checkpoints will be taken"
            );
        }
        Arc::new(CheckpointCoordinator {
            shared,
            sender,
            thread: Mutex::new(thread),
            config,
            base,
            run_id,
            lineage,
            decides,
        })
    }

    /// A fresh run id: the time in nanoseconds.
    pub fn new_run_id() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }

    /// The checkpoint settings, if checkpointing is enabled.
    pub fn config(&self) -> Option<&CheckpointConfig> {
        self.config.as_ref()
    }

    /// The id this run started after.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// An id unique to this run (its start time in nanoseconds), for names of files a
    /// run writes that a later run must tell apart.
    pub fn run_id(&self) -> u64 {
        self.run_id
    }

    /// Runs `action` if the job finishes, after its final checkpoint is written (so a
    /// crash before then restores the transactions and commits them on restart).
    pub fn on_finish(&self, action: EndAction) {
        if let Ok(mut actions) = self.shared.end_actions.lock() {
            actions.push(action);
        }
    }

    /// The operator failure another process reported when this process's run failed
    /// because the other went away (process 0, after `shutdown`).
    pub fn remote_failure(&self) -> Option<OperatorFailure> {
        self.shared
            .remote_failure
            .lock()
            .ok()
            .and_then(|f| f.clone())
    }

    /// What went wrong in the actions run when the job finished.
    pub fn end_errors(&self) -> Vec<String> {
        self.shared
            .end_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Whether operators align on checkpoint epochs (exactly-once).
    pub fn aligned(&self) -> bool {
        self.config
            .as_ref()
            .is_none_or(|c| c.mode == super::CheckpointingMode::ExactlyOnce)
    }

    /// The latest checkpoint triggered: sources jump to its epoch.
    #[inline]
    pub fn triggered(&self) -> u64 {
        self.shared.triggered.load(Ordering::Acquire)
    }

    /// The latest checkpoint completed: transactional sinks commit up to it.
    #[inline]
    pub fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::Acquire)
    }

    /// After a stop-with-savepoint: sources stop once they reached this checkpoint.
    #[inline]
    pub fn stop_after(&self) -> u64 {
        self.shared.stop_after.load(Ordering::Acquire)
    }

    /// Whether sources drain (send the final watermark) before the stopping savepoint.
    #[inline]
    pub fn drains(&self) -> bool {
        self.shared.drain.load(Ordering::Acquire)
    }

    /// Whether checkpoint `id` is a savepoint (which is self-contained: never incremental).
    pub fn is_savepoint(&self, id: u64) -> bool {
        self.shared.savepoints.lock().is_ok_and(|s| s.contains(&id))
    }

    /// The line of checkpoints this run continues (see
    /// [`CheckpointMetadata::lineage`](crate::checkpoint::CheckpointMetadata::lineage)),
    /// `None` without periodic checkpoints.
    pub fn lineage(&self) -> Option<u64> {
        self.config.as_ref().map(|_| self.lineage)
    }

    /// Where incremental state of checkpoint `id` goes: the storage's shared directory;
    /// `None` for savepoints and without checkpoint storage.
    pub fn incremental_dir(&self, id: u64) -> Option<PathBuf> {
        let config = self.config.as_ref()?;
        (!self.is_savepoint(id)).then(|| config.storage.join(super::storage::SHARED_DIR))
    }

    /// A worker's operators that take part in checkpoints (called once per worker).
    pub fn register(&self, instances: Vec<InstanceId>) {
        let _ = self.sender.send(Message::Register(instances));
    }

    /// An operator subtask's state at `checkpoint`.
    pub fn report(&self, checkpoint: u64, report: PartReport) {
        let _ = self
            .sender
            .send(Message::Part(checkpoint, Box::new(report)));
    }

    /// An operator subtask's state once its input ended. It stands for the subtask in
    /// every later checkpoint, so it is encoded here, once.
    pub fn report_final(&self, mut report: PartReport) -> Result<(), super::CheckpointError> {
        report.snapshot.materialize()?;
        let _ = self.sender.send(Message::Final(Arc::new(report)));
        Ok(())
    }

    /// Triggers a savepoint into `dir`; the job then goes on as `after` says. Blocks
    /// until it completes or fails.
    pub fn savepoint(
        &self,
        dir: PathBuf,
        after: AfterSavepoint,
    ) -> Result<PathBuf, super::CheckpointError> {
        use super::CheckpointError;
        if !self.decides {
            return Err(CheckpointError::NotLeader);
        }
        let named = dir.to_string_lossy();
        if super::remote::is_url(&named) {
            super::remote::open(&named)?;
        }
        let (reply, answer) = mpsc::channel();
        self.sender
            .send(Message::Savepoint { dir, after, reply })
            .map_err(|_| CheckpointError::NotRunning)?;
        answer.recv().unwrap_or_else(|_| {
            Err(CheckpointError::Aborted(
                "the job ended before the savepoint completed".to_string(),
            ))
        })
    }

    /// Statistics of every checkpoint so far.
    pub fn stats(&self) -> Vec<CheckpointStats> {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Ends the run: pending checkpoints are abandoned, and the run's checkpoints kept
    /// or deleted per `outcome`. Returns the statistics.
    pub fn shutdown(&self, outcome: RunOutcome) -> Vec<CheckpointStats> {
        let _ = self.sender.send(Message::Shutdown(outcome));
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        self.stats()
    }
}

/// A savepoint asked for: its directory, what the job does after it, and who waits.
type SavepointRequest = (
    PathBuf,
    AfterSavepoint,
    Sender<Result<PathBuf, super::CheckpointError>>,
);

struct CoordinatorThread {
    peers: Peers,
    /// Messages of the end of a job that arrived before the coordinator waited for them.
    inbox: VecDeque<(usize, ControlMessage)>,
    /// Followers whose workers have all registered (process 0).
    ready: usize,
    /// Followers whose run ended or that are gone (process 0): this run takes no more
    /// checkpoints with them.
    gone: HashSet<usize>,
    cancel_sent: bool,
    shared: Arc<Shared>,
    sender: Sender<Message>,
    control: Arc<JobControl>,
    storage: Option<CheckpointStorage>,
    settings: CoordinatorSettings,
    registered: usize,
    instances: HashSet<InstanceId>,
    pending: BTreeMap<u64, Pending>,
    finals: HashMap<InstanceId, Arc<PartReport>>,
    next_trigger: Option<Instant>,
    last_completion: Option<Instant>,
    consecutive_failures: u32,
    savepoints: Vec<SavepointRequest>,
}

impl CoordinatorThread {
    fn run(&mut self, receiver: Receiver<Message>) {
        loop {
            let wait = self
                .next_trigger
                .map_or(Duration::from_millis(50), |t| {
                    t.saturating_duration_since(Instant::now())
                })
                .clamp(Duration::from_millis(1), Duration::from_millis(50));
            match receiver.recv_timeout(wait) {
                Ok(Message::Shutdown(outcome)) => {
                    self.finish_writes(&receiver, outcome);
                    self.shut_down(outcome, &receiver);
                    return;
                }
                Ok(message) => self.handle(message),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if !self.cancel_sent && self.control.is_cancelled() {
                self.cancel_sent = true;
                self.peers.broadcast(&ControlMessage::Cancel);
            }
            self.expire();
            self.maybe_trigger();
        }
    }

    /// Waits for the parts being written when the job ended (a savepoint that stopped
    /// the job completes then), for at most the checkpoint timeout.
    fn finish_writes(&mut self, receiver: &Receiver<Message>, outcome: RunOutcome) {
        let deadline = Instant::now()
            + self
                .settings
                .config
                .as_ref()
                .map_or(Duration::from_secs(60), |c| c.timeout);
        // When the job finished, parts other processes still write count too: a savepoint
        // that stopped the job completes with theirs.
        let remote = outcome == RunOutcome::Finished;
        while self.pending.values().any(|p| {
            p.requested.len() > p.written.len() || (remote && !p.waiting.is_subset(&self.gone))
        }) {
            let wait = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(wait) {
                Ok(Message::Shutdown(_)) => {}
                Ok(message) => self.handle(message),
                Err(_) => return,
            }
        }
    }

    fn compression(&self) -> SnapshotCompression {
        self.settings
            .config
            .as_ref()
            .map_or(SnapshotCompression::None, |c| c.compression)
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Register(instances) => {
                self.instances.extend(instances);
                self.registered += 1;
                if self.registered == self.settings.workers {
                    self.peers.send_to_leader(&ControlMessage::Ready);
                    self.schedule_first();
                }
            }
            Message::Part(id, report) => self.write_part(id, PartSource::Taken(report)),
            Message::Final(report) => {
                let ids: Vec<u64> = self.pending.keys().copied().collect();
                for id in ids {
                    self.write_part(id, PartSource::Final(Arc::clone(&report)));
                }
                self.finals.insert(report.instance, report);
            }
            Message::Written(id, instance, result) => match result {
                Ok(part) => {
                    let Some(pending) = self.pending.get_mut(&id) else {
                        return;
                    };
                    pending.written.insert(instance, part);
                    self.check_done(id);
                }
                Err(e) if self.peers.is_follower() => {
                    self.pending.remove(&id);
                    self.peers.send_to_leader(&ControlMessage::PartFailed {
                        id,
                        reason: format!("a part could not be written: {e}"),
                    });
                }
                Err(e) => self.fail(id, format!("a part could not be written: {e}")),
            },
            Message::Savepoint { dir, after, reply } => self.savepoints.push((dir, after, reply)),
            Message::Remote(peer, message) => self.handle_remote(peer, message),
            Message::Shutdown(_) => {}
        }
    }

    /// Schedules the first checkpoint once every worker of every process registered.
    fn schedule_first(&mut self) {
        if self.registered < self.settings.workers || self.ready < self.peers.followers() {
            return;
        }
        if let Some(config) = &self.settings.config {
            self.next_trigger = Some(Instant::now() + config.interval);
        }
    }

    /// Whether every part of this process for checkpoint `id` is written: then process
    /// 0 completes it once the others reported theirs, and the others report.
    fn check_done(&mut self, id: u64) {
        let Some(pending) = self.pending.get_mut(&id) else {
            return;
        };
        if self.registered < self.settings.workers || pending.written.len() < self.instances.len() {
            return;
        }
        if self.peers.is_follower() {
            if !pending.reported {
                pending.reported = true;
                let parts = pending.written.values().flatten().cloned().collect();
                self.peers
                    .send_to_leader(&ControlMessage::Parts { id, parts });
            }
        } else if pending.waiting.is_empty() {
            self.complete(id);
        }
    }

    fn shut_down(&mut self, outcome: RunOutcome, receiver: &Receiver<Message>) {
        let follower = self.peers.is_follower();
        let abandoned: Vec<u64> = self.pending.keys().copied().collect();
        for id in abandoned {
            if let Some(pending) = self.pending.remove(&id) {
                if !follower {
                    self.remove_pending_dir(id, &pending, false);
                }
                self.peers.broadcast(&ControlMessage::Aborted { id });
                if let Some(reply) = pending.reply {
                    let _ = reply.send(Err(super::CheckpointError::Aborted(
                        "the job ended before the savepoint completed".into(),
                    )));
                }
            }
        }
        for (_, _, reply) in self.savepoints.drain(..) {
            let _ = reply.send(Err(super::CheckpointError::Aborted(
                "the job ended before the savepoint was taken".into(),
            )));
        }
        match (outcome, follower) {
            (RunOutcome::Finished, false) => self.finish_job(receiver),
            (RunOutcome::Finished, true) => self.finish_as_follower(receiver),
            (_, true) => {
                let failure = self.control.failure().filter(is_own_failure);
                self.peers
                    .send_to_leader(&ControlMessage::Ended { failure });
            }
            (RunOutcome::Failed, false) => self.learn_remote_failure(receiver),
            (_, false) => {}
        }
        // Process 0 alone keeps or deletes the job's checkpoints; a job whose end failed
        // keeps them, to commit from on restart.
        if !follower && self.end_errors_empty() {
            self.delete_checkpoints(outcome);
        }
        self.peers.close();
    }

    fn delete_checkpoints(&self, outcome: RunOutcome) {
        let (Some(storage), Some(config)) = (&self.storage, &self.settings.config) else {
            return;
        };
        let delete = match outcome {
            RunOutcome::Finished => true,
            RunOutcome::Cancelled => {
                config.retention == super::ExternalizedCheckpointRetention::DeleteOnCancellation
            }
            RunOutcome::Failed => false,
        };
        if delete {
            for id in storage.checkpoint_ids() {
                if id > self.settings.base || outcome == RunOutcome::Finished {
                    storage.delete(id);
                }
            }
            self.collect_shared_files(storage, u64::MAX);
        }
    }
}

/// A coordinator of a one-worker job on this process alone, for the tests of this
/// module and its parts.
#[cfg(test)]
pub(crate) fn coordinator_for_test(
    config: CheckpointConfig,
    job: &str,
    control: Arc<JobControl>,
) -> Arc<CheckpointCoordinator> {
    CheckpointCoordinator::start(
        CoordinatorSettings {
            config: Some(config),
            job: job.into(),
            max_parallelism: 128,
            operator_key_groups: Default::default(),
            workers: 1,
            base: 0,
            history: Vec::new(),
            run_id: CheckpointCoordinator::new_run_id(),
            lineage: 1,
            control: ControlRole::Alone,
        },
        control,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.part` file under `dir`.
    fn parts_under(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "part") {
                    found.push(path);
                }
            }
        }
        found
    }

    #[test]
    fn a_part_written_after_its_checkpoint_expired_is_deleted() {
        let root = tempfile::tempdir().unwrap();
        let mut config = CheckpointConfig::new(Duration::from_millis(20));
        config.timeout = Duration::from_millis(100);
        config.tolerable_failures = 10;
        config.storage = root.path().join("checkpoints");
        let control = JobControl::new();
        let coordinator = coordinator_for_test(config, "slow-part", Arc::clone(&control));
        let instance = InstanceId {
            operator: 0,
            worker: 0,
        };
        coordinator.register(vec![instance]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while coordinator.triggered() == 0 {
            assert!(Instant::now() < deadline, "no checkpoint was triggered");
            std::thread::sleep(Duration::from_millis(5));
        }
        let id = coordinator.triggered();
        let (encoding, encoded) = mpsc::channel::<()>();
        let mut snapshot = OperatorSnapshot::for_checkpoint(id);
        // The encoding outlives the checkpoint's timeout.
        snapshot.add_keyed_later("op/state".into(), move || {
            std::thread::sleep(Duration::from_millis(600));
            let _ = encoding.send(());
            Ok(vec![1, 2, 3])
        });
        coordinator.report(
            id,
            PartReport {
                instance,
                operator: "slow".into(),
                node: 0,
                subtask: 0,
                parallelism: 1,
                snapshot,
                sync: Duration::ZERO,
                alignment: Duration::ZERO,
            },
        );
        encoded.recv_timeout(Duration::from_secs(10)).unwrap();
        let stats = coordinator.shutdown(RunOutcome::Cancelled);
        // The writer deletes its part, then the directory it recreated, right after
        // writing the part: wait for both.
        let dir = root.path().join("checkpoints").join(format!("chk-{id}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !parts_under(root.path()).is_empty() || dir.exists() {
            assert!(
                Instant::now() < deadline,
                "stray parts: {:?}; {} exists: {}",
                parts_under(root.path()),
                dir.display(),
                dir.exists()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            stats
                .iter()
                .any(|s| s.id == id && matches!(s.status, CheckpointStatus::Failed(_))),
            "{stats:?}"
        );
    }
}
