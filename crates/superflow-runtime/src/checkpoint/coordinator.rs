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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use superflow_core::OperatorFailure;

use super::config::{CheckpointConfig, SnapshotCompression};
use super::snapshot::OperatorSnapshot;
use super::storage::{
    encode_part, write_atomically, write_metadata, CheckpointMetadata, CheckpointStorage,
    PartMetadata,
};
use crate::cluster_control::{ControlMessage, ControlRole, ControlWriter};
use crate::control::JobControl;

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
    Written(u64, InstanceId, Result<Option<PartMetadata>, String>),
    Savepoint {
        dir: PathBuf,
        after: AfterSavepoint,
        reply: Sender<Result<PathBuf, String>>,
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
pub type EndAction = Box<dyn FnOnce() -> Result<(), String> + Send>;

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
    pub fn report_final(&self, mut report: PartReport) -> Result<(), String> {
        report.snapshot.materialize()?;
        let _ = self.sender.send(Message::Final(Arc::new(report)));
        Ok(())
    }

    /// Triggers a savepoint into `dir`; the job then goes on as `after` says. Blocks
    /// until it completes or fails.
    pub fn savepoint(&self, dir: PathBuf, after: AfterSavepoint) -> Result<PathBuf, String> {
        if !self.decides {
            return Err(
                "savepoints of a job on several processes are taken through process 0".into(),
            );
        }
        let named = dir.to_string_lossy();
        if super::remote::is_url(&named) {
            super::remote::open(&named)?;
        }
        let (reply, answer) = mpsc::channel();
        self.sender
            .send(Message::Savepoint { dir, after, reply })
            .map_err(|_| "the job is not running".to_string())?;
        answer
            .recv()
            .map_err(|_| "the job ended before the savepoint completed".to_string())?
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
type SavepointRequest = (PathBuf, AfterSavepoint, Sender<Result<PathBuf, String>>);

/// A part to write: a subtask's own (encoded on the writer thread), or a final one
/// shared by every later checkpoint.
enum PartSource {
    Taken(Box<PartReport>),
    Final(Arc<PartReport>),
}

struct Pending {
    started: Instant,
    trigger_ms: i64,
    dir: PathBuf,
    savepoint: bool,
    reply: Option<Sender<Result<PathBuf, String>>>,
    requested: HashSet<InstanceId>,
    written: HashMap<InstanceId, Option<PartMetadata>>,
    /// Other processes whose parts have not been reported yet (process 0).
    waiting: HashSet<usize>,
    /// The parts other processes reported (process 0).
    remote_parts: Vec<PartMetadata>,
    /// Whether this process reported its parts to process 0 (the others).
    reported: bool,
    /// Set once the checkpoint is no longer pending here: a part writer still running
    /// then (it outlived the checkpoint's timeout, or the run's end) deletes what it
    /// wrote, rather than leave a stray part in a directory that was removed.
    ended: EndedFlag,
}

/// Whether a checkpoint ended here, set when its [`Pending`] is dropped.
struct EndedFlag(Arc<AtomicBool>);

impl Drop for EndedFlag {
    fn drop(&mut self) {
        // A completed checkpoint has every part written, so no writer is left to see it.
        self.0.store(true, Ordering::Release);
    }
}

/// The other processes of the job, as the coordinator talks to them.
enum Peers {
    Alone,
    Leader(Vec<ControlWriter>),
    Follower(ControlWriter),
}

impl Peers {
    /// Starts a reader thread per control connection, delivering into the coordinator's
    /// channel (a cancellation is applied at once).
    fn connect(role: ControlRole, sender: &Sender<Message>, control: &Arc<JobControl>) -> Self {
        let split = |link: crate::cluster_control::ControlLink| {
            let sender = sender.clone();
            let control = Arc::clone(control);
            let peer = link.peer();
            link.split(move |peer, message| {
                if message == ControlMessage::Cancel {
                    control.cancel();
                }
                let _ = sender.send(Message::Remote(peer, message));
            })
            .map_err(|e| (peer, e))
        };
        let result = match role {
            ControlRole::Alone => Ok(Peers::Alone),
            ControlRole::Leader(links) => links
                .into_iter()
                .map(split)
                .collect::<Result<Vec<_>, _>>()
                .map(Peers::Leader),
            ControlRole::Follower(link) => split(link).map(Peers::Follower),
        };
        result.unwrap_or_else(|(peer, e)| {
            control.fail(OperatorFailure {
                operator: "<checkpoint coordinator>".into(),
                subtask: 0,
                cause: format!("control connection to process {peer}: {e}"),
                location: None,
            });
            Peers::Alone
        })
    }

    fn followers(&self) -> usize {
        match self {
            Peers::Leader(followers) => followers.len(),
            _ => 0,
        }
    }

    /// The process indexes of the followers (process 0).
    fn follower_ids(&self) -> Vec<usize> {
        match self {
            Peers::Leader(followers) => followers.iter().map(|f| f.peer).collect(),
            _ => Vec::new(),
        }
    }

    fn is_follower(&self) -> bool {
        matches!(self, Peers::Follower(_))
    }

    /// Sends `message` to every follower (process 0); a follower that is gone makes its
    /// run fail on its own.
    fn broadcast(&mut self, message: &ControlMessage) {
        if let Peers::Leader(followers) = self {
            for follower in followers {
                if let Err(e) = follower.send(message) {
                    tracing::debug!("control message not sent: {e}");
                }
            }
        }
    }

    /// Sends `message` to process 0 (a follower).
    fn send_to_leader(&mut self, message: &ControlMessage) {
        if let Peers::Follower(leader) = self {
            if let Err(e) = leader.send(message) {
                tracing::debug!("control message not sent: {e}");
            }
        }
    }

    fn close(&self) {
        match self {
            Peers::Alone => {}
            Peers::Leader(followers) => followers.iter().for_each(ControlWriter::close),
            Peers::Follower(leader) => leader.close(),
        }
    }
}

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

    fn handle_remote(&mut self, peer: usize, message: ControlMessage) {
        match message {
            ControlMessage::Ready => {
                self.ready += 1;
                self.schedule_first();
            }
            ControlMessage::Trigger {
                id,
                dir,
                savepoint,
                after,
            } => match self.own_dir(id, dir, savepoint) {
                Ok(dir) => self.begin(id, dir, savepoint, after, None),
                Err(reason) => self
                    .peers
                    .send_to_leader(&ControlMessage::PartFailed { id, reason }),
            },
            ControlMessage::Parts { id, parts } => match self.pending.get_mut(&id) {
                Some(pending) => {
                    pending.remote_parts.extend(parts);
                    pending.waiting.remove(&peer);
                    self.check_done(id);
                }
                // The final checkpoint's parts, or a checkpoint abandoned meanwhile.
                None => self
                    .inbox
                    .push_back((peer, ControlMessage::Parts { id, parts })),
            },
            ControlMessage::PartFailed { id, reason } => {
                if self.pending.contains_key(&id) {
                    self.fail(id, format!("process {peer}: {reason}"));
                } else {
                    self.inbox
                        .push_back((peer, ControlMessage::PartFailed { id, reason }));
                }
            }
            ControlMessage::Completed { id } => match self.pending.remove(&id) {
                Some(mut pending) => {
                    let metadata = self.metadata_of(id, &mut pending);
                    self.record(id, &pending, &metadata, None);
                    self.shared.completed.fetch_max(id, Ordering::AcqRel);
                }
                None => self
                    .inbox
                    .push_back((peer, ControlMessage::Completed { id })),
            },
            ControlMessage::Aborted { id } => {
                if let Some(mut pending) = self.pending.remove(&id) {
                    let metadata = self.metadata_of(id, &mut pending);
                    let reason = "process 0 abandoned it".to_string();
                    self.record(id, &pending, &metadata, Some(reason));
                }
            }
            ControlMessage::Disconnected(reason) => {
                self.fail_waiting_on(peer, &format!("process {peer} is gone ({reason})"));
                self.inbox
                    .push_back((peer, ControlMessage::Disconnected(reason)));
            }
            ControlMessage::Ended { failure } => {
                self.fail_waiting_on(peer, &format!("process {peer} ended its run"));
                self.inbox
                    .push_back((peer, ControlMessage::Ended { failure }));
            }
            // Applied by the reader thread.
            ControlMessage::Cancel | ControlMessage::Start { .. } => {}
            end => self.inbox.push_back((peer, end)),
        }
    }

    /// Where this process writes its parts of checkpoint `id`, which process 0 put in
    /// `dir`: a savepoint's directory as named; a checkpoint's in this process's own
    /// storage directory (with an object store, each process stages locally and
    /// uploads).
    /// A savepoint into an object store is staged in the store's staging directory
    /// (emptied first) and uploaded as written.
    fn own_dir(&self, id: u64, dir: PathBuf, savepoint: bool) -> Result<PathBuf, String> {
        match (&self.storage, savepoint) {
            (Some(storage), false) => Ok(storage.checkpoint_dir(id)),
            (_, true) if super::remote::is_url(&dir.to_string_lossy()) => {
                let remote = super::remote::open(&dir.to_string_lossy())?;
                let staging = remote.staging().to_path_buf();
                let _ = std::fs::remove_dir_all(&staging);
                Ok(staging)
            }
            _ => Ok(dir),
        }
    }

    /// Removes what a checkpoint that did not complete wrote (from the object store
    /// too); a savepoint's directory only if it failed (`savepoint_too`).
    fn remove_pending_dir(&self, id: u64, pending: &Pending, savepoint_too: bool) {
        match (&self.storage, pending.savepoint) {
            (Some(storage), false) => storage.delete(id),
            (_, true) if !savepoint_too => {}
            _ => {
                let _ = std::fs::remove_dir_all(&pending.dir);
            }
        }
    }

    /// Fails the pending checkpoints that wait for parts of process `peer`, which will
    /// send none in this run.
    fn fail_waiting_on(&mut self, peer: usize, reason: &str) {
        self.gone.insert(peer);
        let waiting: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.waiting.contains(&peer))
            .map(|(&id, _)| id)
            .collect();
        for id in waiting {
            self.end_pending(id, reason.to_string(), false);
        }
    }

    /// Waits until `deadline` for a message of another process that `accept` takes,
    /// handling everything else meanwhile.
    fn wait_for(
        &mut self,
        receiver: &Receiver<Message>,
        deadline: Instant,
        accept: impl Fn(usize, &ControlMessage) -> bool,
    ) -> Option<(usize, ControlMessage)> {
        loop {
            if let Some(at) = self.inbox.iter().position(|(p, m)| accept(*p, m)) {
                return self.inbox.remove(at);
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return None;
            }
            match receiver.recv_timeout(wait) {
                Ok(Message::Remote(peer, message)) if accept(peer, &message) => {
                    return Some((peer, message))
                }
                Ok(Message::Shutdown(_)) => {}
                Ok(message) => self.handle(message),
                Err(_) => return None,
            }
        }
    }

    fn write_part(&mut self, id: u64, report: PartSource) {
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
                        super::storage::remove_written(&dir.join(&part.file));
                    }
                    return;
                }
                let _ = sender.send(Message::Written(id, instance, result));
            });
        if let Err(e) = spawned {
            self.fail(id, format!("cannot start a writer thread: {e}"));
        }
    }

    fn maybe_trigger(&mut self) {
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

    fn trigger(
        &mut self,
        savepoint_dir: Option<PathBuf>,
        after: AfterSavepoint,
        reply: Option<Sender<Result<PathBuf, String>>>,
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
    fn begin(
        &mut self,
        id: u64,
        dir: PathBuf,
        savepoint: bool,
        after: AfterSavepoint,
        reply: Option<Sender<Result<PathBuf, String>>>,
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

    fn complete(&mut self, id: u64) {
        let Some(mut pending) = self.pending.remove(&id) else {
            return;
        };
        let metadata = self.metadata_of(id, &mut pending);
        if let Err(e) = write_metadata(&pending.dir, &metadata) {
            self.peers.broadcast(&ControlMessage::Aborted { id });
            let reason = format!("the metadata could not be written: {e}");
            self.record(id, &pending, &metadata, Some(reason.clone()));
            if let Some(reply) = pending.reply {
                let _ = reply.send(Err(reason));
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
            path = %super::remote::name_of(&pending.dir).display(),
            "checkpoint complete"
        );
        if let Some(reply) = pending.reply {
            let _ = reply.send(Ok(super::remote::name_of(&pending.dir)));
        }
    }

    /// Deletes complete checkpoints older than the last `retained`.
    fn retain(&self, newest: u64) {
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
            for &id in &complete[..complete.len() - keep] {
                storage.delete(id);
            }
        }
        self.collect_shared_files(storage, newest);
    }

    /// Deletes the shared files of incremental checkpoints that no kept checkpoint
    /// refers to (files of checkpoints after `newest` may still be in use).
    fn collect_shared_files(&self, storage: &CheckpointStorage, newest: u64) {
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

    fn expire(&mut self) {
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

    fn fail(&mut self, id: u64, reason: String) {
        self.end_pending(id, reason, true);
    }

    /// Ends pending checkpoint `id` as failed. A failure of the checkpoint itself
    /// (`counted`: it expired, a part could not be written) counts toward the tolerable
    /// failures; one because a process's run ended does not (the run fails anyway, and
    /// its own failure is the one to report).
    fn end_pending(&mut self, id: u64, reason: String, counted: bool) {
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
            let _ = reply.send(Err(reason.clone()));
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
    fn metadata(
        &self,
        id: u64,
        savepoint: bool,
        trigger_timestamp_ms: i64,
        parts: Vec<PartMetadata>,
    ) -> CheckpointMetadata {
        CheckpointMetadata {
            id,
            job: self.settings.job.clone(),
            savepoint,
            trigger_timestamp_ms,
            max_parallelism: self.settings.max_parallelism,
            operator_key_groups: self.settings.operator_key_groups.clone(),
            parts,
        }
    }

    /// The metadata of pending checkpoint `id`, with the parts written so far.
    fn metadata_of(&self, id: u64, pending: &mut Pending) -> CheckpointMetadata {
        let mut parts: Vec<PartMetadata> = std::mem::take(&mut pending.written)
            .into_values()
            .flatten()
            .chain(std::mem::take(&mut pending.remote_parts))
            .collect();
        parts.sort_by_key(|p| (p.node, p.subtask));
        self.metadata(id, pending.savepoint, pending.trigger_ms, parts)
    }

    /// Records the statistics of checkpoint `id`, completed or failed.
    fn record(
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
            path: super::remote::name_of(dir),
            operators: operators.into_values().collect(),
        };
        if let Ok(mut all) = self.shared.stats.lock() {
            all.push(stats);
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
                    let _ = reply.send(Err("the job ended before the savepoint completed".into()));
                }
            }
        }
        for (_, _, reply) in self.savepoints.drain(..) {
            let _ = reply.send(Err("the job ended before the savepoint was taken".into()));
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

    /// When this process's run failed only because another process went away, waits a
    /// moment for the others to say which of their operators failed, so that the job
    /// reports the cause rather than the lost connection.
    fn learn_remote_failure(&mut self, receiver: &Receiver<Message>) {
        if self.control.failure().is_some_and(|f| is_own_failure(&f)) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for _ in 0..self.peers.followers() {
            let answer = self.wait_for(receiver, deadline, |_, m| {
                matches!(
                    m,
                    ControlMessage::Ended { .. } | ControlMessage::Disconnected(_)
                )
            });
            match answer {
                Some((_, ControlMessage::Ended { failure: Some(f) })) => {
                    if let Ok(mut slot) = self.shared.remote_failure.lock() {
                        *slot = Some(f);
                    }
                    return;
                }
                Some(_) => {}
                None => return,
            }
        }
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

/// The end of a finished job: every process writes its subtasks' final state into one
/// last checkpoint, process 0 completes it, and then every process runs its end actions
/// (transactional sinks commit). A crash in between restores that checkpoint, whose
/// sinks then commit on restart.
impl CoordinatorThread {
    fn end_deadline(&self) -> Instant {
        Instant::now()
            + self
                .settings
                .config
                .as_ref()
                .map_or(Duration::from_secs(60), |c| c.timeout)
    }

    fn take_end_actions(&self) -> Vec<EndAction> {
        self.shared
            .end_actions
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default()
    }

    /// Writes this process's final parts into `dir`.
    fn write_finals(&self, dir: &std::path::Path) -> Result<Vec<PartMetadata>, String> {
        let compression = self.compression();
        let mut parts = Vec::new();
        for report in self.finals.values() {
            parts.extend(write_part_file(dir, report, compression, Instant::now())?);
        }
        Ok(parts)
    }

    /// Process 0 (or the only one).
    fn finish_job(&mut self, receiver: &Receiver<Message>) {
        let actions = self.take_end_actions();
        let deadline = self.end_deadline();
        let followers = self.peers.follower_ids();
        let mut any_actions = !actions.is_empty();
        let mut problems = Vec::new();
        for &peer in &followers {
            let answer = self.wait_for(receiver, deadline, |p, m| {
                p == peer
                    && matches!(
                        m,
                        ControlMessage::Finishing { .. }
                            | ControlMessage::Ended { .. }
                            | ControlMessage::Disconnected(_)
                    )
            });
            match answer {
                Some((_, ControlMessage::Finishing { end_actions })) => any_actions |= end_actions,
                Some((_, ControlMessage::Disconnected(reason))) => {
                    problems.push(format!("process {peer} is gone ({reason})"))
                }
                Some(_) => problems.push(format!("process {peer} failed or was cancelled")),
                None => problems.push(format!("process {peer} did not finish in time")),
            }
        }
        if let Err(reason) = self.problems(problems) {
            return self.abandon_end(reason);
        }
        if let (true, Some(storage)) = (any_actions, &self.storage) {
            let id = self.shared.triggered.load(Ordering::Acquire) + 1;
            let dir = storage.checkpoint_dir(id);
            self.peers.broadcast(&ControlMessage::FinalCheckpoint {
                id,
                dir: dir.clone(),
            });
            let mut parts = match self.write_finals(&dir) {
                Ok(parts) => parts,
                Err(e) => return self.abandon_end(e),
            };
            let mut problems = Vec::new();
            for &peer in &followers {
                let answer = self.wait_for(receiver, deadline, |p, m| {
                    let for_this = matches!(m,
                        ControlMessage::Parts { id: i, .. } | ControlMessage::PartFailed { id: i, .. } if *i == id);
                    p == peer && (for_this || matches!(m, ControlMessage::Disconnected(_)))
                });
                match answer {
                    Some((_, ControlMessage::Parts { parts: theirs, .. })) => parts.extend(theirs),
                    Some((_, ControlMessage::PartFailed { reason, .. })) => {
                        problems.push(format!("process {peer}: {reason}"))
                    }
                    Some(_) => problems.push(format!("process {peer} is gone")),
                    None => problems.push(format!("process {peer} did not write its part in time")),
                }
            }
            if let Err(reason) = self.problems(problems) {
                return self.abandon_end(reason);
            }
            parts.sort_by_key(|p| (p.node, p.subtask));
            let metadata = self.metadata(id, false, crate::time::processing_time_now(), parts);
            if let Err(e) = write_metadata(&dir, &metadata) {
                return self.abandon_end(e.to_string());
            }
            self.peers.broadcast(&ControlMessage::Completed { id });
        } else {
            self.peers.broadcast(&ControlMessage::NoFinalCheckpoint);
        }
        for action in actions {
            if let Err(e) = action() {
                self.end_error(e);
            }
        }
        if !any_actions {
            return;
        }
        for &peer in &followers {
            let answer = self.wait_for(receiver, deadline, |p, m| {
                p == peer
                    && matches!(
                        m,
                        ControlMessage::EndDone { .. } | ControlMessage::Disconnected(_)
                    )
            });
            match answer {
                Some((_, ControlMessage::EndDone { errors })) => {
                    for e in errors {
                        self.end_error(format!("process {peer}: {e}"));
                    }
                }
                _ => self.end_error(format!(
                    "process {peer} did not report that it committed its output"
                )),
            }
        }
    }

    fn problems(&self, problems: Vec<String>) -> Result<(), String> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the job did not finish on every process: {}",
                problems.join("; ")
            ))
        }
    }

    /// Process 0 gives up the end of the job: no process commits.
    fn abandon_end(&mut self, reason: String) {
        tracing::warn!("the final checkpoint could not be written: {reason}");
        self.peers.broadcast(&ControlMessage::EndAbandoned {
            reason: reason.clone(),
        });
        self.end_error(format!(
            "the final checkpoint could not be written ({reason}); the output of the end of the job is not committed"
        ));
    }

    /// Any process but process 0: takes part in the final checkpoint process 0 asks
    /// for, then commits.
    fn finish_as_follower(&mut self, receiver: &Receiver<Message>) {
        let actions = self.take_end_actions();
        let deadline = self.end_deadline();
        self.peers.send_to_leader(&ControlMessage::Finishing {
            end_actions: !actions.is_empty(),
        });
        let instruction = self.wait_for(receiver, deadline, |_, m| {
            matches!(
                m,
                ControlMessage::FinalCheckpoint { .. }
                    | ControlMessage::NoFinalCheckpoint
                    | ControlMessage::EndAbandoned { .. }
                    | ControlMessage::Disconnected(_)
            )
        });
        match instruction {
            Some((_, ControlMessage::FinalCheckpoint { id, dir })) => {
                let written = self
                    .own_dir(id, dir, false)
                    .and_then(|dir| self.write_finals(&dir));
                match written {
                    Ok(parts) => self
                        .peers
                        .send_to_leader(&ControlMessage::Parts { id, parts }),
                    Err(reason) => {
                        self.peers
                            .send_to_leader(&ControlMessage::PartFailed { id, reason: reason.clone() });
                        return self.end_error(format!(
                            "the final checkpoint could not be written ({reason}); the output of the end of the job is not committed"
                        ));
                    }
                }
                let answer = self.wait_for(receiver, deadline, |_, m| {
                    matches!(m, ControlMessage::Completed { id: i } if *i == id)
                        || matches!(
                            m,
                            ControlMessage::EndAbandoned { .. } | ControlMessage::Disconnected(_)
                        )
                });
                if !matches!(answer, Some((_, ControlMessage::Completed { .. }))) {
                    return self.end_error(format!(
                        "process 0 did not complete the final checkpoint ({answer:?}); the output of the end of the job is not committed"
                    ));
                }
            }
            Some((_, ControlMessage::NoFinalCheckpoint)) => {}
            Some((_, ControlMessage::EndAbandoned { reason })) => {
                return self.end_error(format!(
                    "{reason}; the output of the end of the job is not committed"
                ))
            }
            other => {
                return self.end_error(format!(
                    "process 0 did not end the job ({other:?}); the output of the end of the job is not committed"
                ))
            }
        }
        let mut errors = Vec::new();
        for action in actions {
            if let Err(e) = action() {
                errors.push(e);
            }
        }
        self.peers.send_to_leader(&ControlMessage::EndDone {
            errors: errors.clone(),
        });
        for e in errors {
            self.end_error(e);
        }
    }

    fn end_errors_empty(&self) -> bool {
        self.shared.end_errors.lock().is_ok_and(|e| e.is_empty())
    }

    fn end_error(&self, error: String) {
        if let Ok(mut errors) = self.shared.end_errors.lock() {
            errors.push(error);
        }
    }
}

/// Whether a failure started in this process, rather than being the lost connection
/// to a process that failed (seen by the network, or by a worker whose network
/// operations panicked).
fn is_own_failure(failure: &OperatorFailure) -> bool {
    failure.operator != "<network>" && failure.operator != "<worker>"
}

/// Encodes and writes a part; `started` is when its background work began (encoding
/// the copied state included).
fn write_part_file(
    dir: &std::path::Path,
    report: &PartReport,
    compression: SnapshotCompression,
    started: Instant,
) -> Result<Option<PartMetadata>, String> {
    if report.snapshot.is_empty() {
        return Ok(None);
    }
    let bytes = encode_part(report.snapshot.sections(), compression)?;
    let file = format!(
        "{}-{}.part",
        report.instance.operator, report.instance.worker
    );
    write_atomically(&dir.join(&file), &bytes)
        .map_err(|e| format!("{}: {e}", dir.join(&file).display()))?;
    let shared: Vec<String> = report
        .snapshot
        .sections()
        .iter()
        .filter(|s| s.kind == super::SectionKind::KeyedChain)
        .map(super::storage::chain_files)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    // This checkpoint's increments are the chain files named after it.
    let suffix = report.snapshot.checkpoint().map(|id| format!("-c{id}"));
    let shared_dir = super::storage::shared_dir(dir);
    let increments: Vec<&String> = shared
        .iter()
        .filter(|name| suffix.as_ref().is_some_and(|s| name.ends_with(s.as_str())))
        .collect();
    if let Some(remote) = super::remote::mirroring(&shared_dir) {
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
        let coordinator = CheckpointCoordinator::start(
            CoordinatorSettings {
                config: Some(config),
                job: "slow-part".into(),
                max_parallelism: 128,
                operator_key_groups: Default::default(),
                workers: 1,
                base: 0,
                history: Vec::new(),
                run_id: CheckpointCoordinator::new_run_id(),
                control: ControlRole::Alone,
            },
            Arc::clone(&control),
        );
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
