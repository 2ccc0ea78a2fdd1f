//! Running a job: the cluster configuration, the timely workers, the worker loop that
//! stops every worker when one fails, and the result or error the job ends with.

use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use superflow_core::{JobError, OperatorFailure, DEFAULT_MAX_PARALLELISM};
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::Probe;

use crate::build::{BuildCtx, JobRun};
use crate::checkpoint::{
    find_restorable, AfterSavepoint, CheckpointConfig, CheckpointCoordinator, CheckpointError,
    CheckpointStats, CheckpointStorage, CoordinatorSettings, RestartBackoff, RestartStrategy,
    RestoredState, RunOutcome, StateBackendConfig,
};
use crate::cluster_control::{ControlMessage, ControlRole};
use crate::cluster_error::ClusterError;
use crate::control::JobControl;
use crate::failure::{
    failure_from_panic, install_panic_hook, mark_worker_thread, peer_lost, quietly,
};
use crate::graph::{JobGraph, JobPlan};
use crate::metrics::{OperatorMetrics, WorkerMetrics};
use crate::source::FlowControl;

pub use crate::cluster_config::{
    ClusterConfig, ENV_ADDRESSES, ENV_HOSTFILE, ENV_PROCESSES, ENV_PROCESS_ID, ENV_SECRET,
};

/// How to run a job.
#[derive(Debug, Clone)]
pub struct ExecutionSettings {
    /// The job's parallelism; `None` = all cores (of every process).
    pub parallelism: Option<usize>,
    /// Max parallelism (number of key groups).
    pub max_parallelism: usize,
    /// Flow control of sources.
    pub flow: FlowControl,
    /// Processes; `None` = this process only.
    pub cluster: Option<ClusterConfig>,
    /// Periodic checkpoints; `None` = off.
    pub checkpointing: Option<CheckpointConfig>,
    /// What happens on failure; `None` = none without checkpoints, and up to 10
    /// restarts with exponential delay with them.
    pub restart: Option<RestartStrategy>,
    /// A checkpoint or savepoint directory, or a checkpoint storage directory (its
    /// newest sound checkpoint), to start from.
    pub restore_from: Option<std::path::PathBuf>,
    /// Whether state in the restored checkpoint that matches no operator is skipped
    /// (otherwise it is an error).
    pub allow_non_restored_state: bool,
    /// Where keyed state lives.
    pub state_backend: StateBackendConfig,
    /// What every operator activation runs inside (the Python binding's GIL).
    pub activation_scope: Option<Arc<dyn crate::ActivationScope>>,
    /// Whether Ctrl-C cancels the job (a handler is installed once per process); off
    /// for hosts that handle signals themselves, as the Python interpreter does.
    pub ctrl_c: bool,
    /// Streaming or batch semantics (`Automatic`: batch when every source is bounded).
    pub runtime_mode: crate::RuntimeExecutionMode,
}

impl Default for ExecutionSettings {
    fn default() -> Self {
        ExecutionSettings {
            parallelism: None,
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            flow: FlowControl::default(),
            cluster: None,
            checkpointing: None,
            restart: None,
            restore_from: None,
            allow_non_restored_state: false,
            state_backend: StateBackendConfig::HashMap,
            activation_scope: None,
            ctrl_c: true,
            runtime_mode: crate::RuntimeExecutionMode::Streaming,
        }
    }
}

/// The number of cores: the automatic default parallelism.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// What a finished job reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobExecutionResult {
    /// The job's name.
    pub job_name: String,
    /// Wall time from the start of the workers to the end of the last one.
    pub net_runtime: Duration,
    /// The job's parallelism (number of workers over all processes).
    pub parallelism: usize,
    /// Per-operator record counts (of this process's workers, in the last run).
    pub operators: Vec<OperatorMetrics>,
    /// Every checkpoint and savepoint taken, over all runs.
    pub checkpoints: Vec<CheckpointStats>,
    /// How many times the job restarted after a failure.
    pub restarts: u32,
    /// What failed before each restart.
    pub restart_causes: Vec<String>,
    /// The checkpoint the first run restored from.
    pub restored_from: Option<std::path::PathBuf>,
}

impl JobExecutionResult {
    /// The net runtime in milliseconds, as Flink's `getNetRuntime()`.
    pub fn net_runtime_ms(&self) -> u128 {
        self.net_runtime.as_millis()
    }

    /// The metrics of the first operator named `name`.
    pub fn operator(&self, name: &str) -> Option<&OperatorMetrics> {
        self.operators.iter().find(|o| o.name == name)
    }
}

struct WorkerReport {
    metrics: std::collections::BTreeMap<usize, (u64, u64, u64)>,
}

/// Validates, plans and runs a job graph to its end; blocks.
pub fn execute_graph(
    job_name: &str,
    graph: JobGraph,
    settings: &ExecutionSettings,
    control: Arc<JobControl>,
) -> Result<JobExecutionResult, JobError> {
    let outcome = execute_job(job_name, graph, settings, Arc::clone(&control));
    control.mark_ended();
    match outcome {
        // Ctrl-C cancelled it: the caller must not take it for a finished job (Flink's
        // execute throws), so a program that returns the error does not exit 0.
        Ok(_) if control.was_interrupted() => Err(JobError::Cancelled),
        outcome => outcome,
    }
}

fn execute_job(
    job_name: &str,
    graph: JobGraph,
    settings: &ExecutionSettings,
    control: Arc<JobControl>,
) -> Result<JobExecutionResult, JobError> {
    install_panic_hook();
    let runtime_mode = settings.runtime_mode.resolve(&graph)?;
    let without_checkpoints;
    let settings = if runtime_mode.is_batch() && settings.checkpointing.is_some() {
        crate::notice::warn_user(format!(
            "job '{job_name}' runs in BATCH execution mode, which takes no checkpoints (as in Flink): a failure restarts it from the beginning"
        ));
        without_checkpoints = ExecutionSettings {
            checkpointing: None,
            ..settings.clone()
        };
        &without_checkpoints
    } else {
        settings
    };
    let resolved;
    let settings = match with_storage_resolved(settings)? {
        Some(changed) => {
            resolved = changed;
            &resolved
        }
        None => settings,
    };
    let processes = settings
        .cluster
        .as_ref()
        .map_or(1, ClusterConfig::processes);
    let default_parallelism = settings
        .parallelism
        .unwrap_or_else(|| available_cores() * processes);
    let plan = JobPlan::new(
        &graph,
        default_parallelism,
        settings.max_parallelism,
        processes,
    )?;
    if plan.workers % processes != 0 {
        return Err(JobError::InvalidParallelism(format!(
            "the job's parallelism {} cannot be split evenly over {processes} processes",
            plan.workers
        )));
    }
    // A source is prepared (its files checked, its socket connected) only where one of
    // its subtasks runs: subtasks 0..p run on workers 0..p, and this process runs the
    // workers from `process_id * workers_per_process`.
    let first_worker_here = settings
        .cluster
        .as_ref()
        .map_or(0, |c| c.process_id * (plan.workers / processes));
    for (id, node) in graph.nodes.iter().enumerate() {
        if plan.parallelism[id] <= first_worker_here {
            continue;
        }
        if let Some(prepare) = &node.prepare {
            prepare().map_err(|reason| JobError::SourceUnavailable {
                operator: node.name.clone(),
                reason: reason.to_string(),
            })?;
        }
    }
    if settings.checkpointing.is_some() || settings.restore_from.is_some() {
        for node in graph.nodes.iter().filter(|n| !n.replayable) {
            crate::notice::warn_user(format!(
                "job '{job_name}': source '{}' cannot replay its input: after a restore it reads on from where it is, and what it read since the checkpoint is lost (at most once)",
                node.name
            ));
        }
        let unnamed: Vec<String> = graph
            .nodes
            .iter()
            .filter(|n| {
                n.uid.is_none()
                    && n.keeps_state
                    && !matches!(
                        n.kind,
                        crate::graph::NodeKind::Internal | crate::graph::NodeKind::Union
                    )
            })
            .map(|n| format!("'{}'", n.name))
            .collect();
        if !unnamed.is_empty() {
            crate::notice::warn_user(format!(
                "job '{job_name}': operators without a uid: {}; their state is matched to checkpoints by their position in the job, so changing the job's shape loses it. Set .uid(...) on stateful operators",
                unnamed.join(", ")
            ));
        }
    }
    let threads = plan.workers / processes;
    let graph = Arc::new(graph);
    let plan = Arc::new(plan);
    let restart = settings
        .restart
        .clone()
        .unwrap_or(if settings.checkpointing.is_some() {
            RestartStrategy::exponential_delay(10)
        } else {
            RestartStrategy::None
        });
    let mut backoff = RestartBackoff::new(restart);
    let mut restore_from = settings.restore_from.clone();
    let mut history = Vec::new();
    let mut first_restore = None;
    let mut causes = Vec::new();
    // The id of the run that failed last: on a restart, the other processes look in the
    // checkpoint storage for process 0's word that it gave the job up after it.
    let mut failed_run: Option<u64> = None;
    let storage = settings
        .checkpointing
        .as_ref()
        .map(|c| CheckpointStorage::new(&c.storage));
    // Where process 0 of several records that it gave the job up.
    let give_up_records = storage
        .as_ref()
        .filter(|_| processes > 1 && settings.cluster.as_ref().is_some_and(|c| c.process_id == 0));
    loop {
        let watch = failed_run.map(|run_id| {
            let storage = storage.as_ref();
            move || storage.and_then(|s| s.give_up_of(run_id))
        });
        let mut network = match &settings.cluster {
            Some(cluster) => Some(crate::cluster::connect(
                cluster,
                &control,
                watch.as_ref().map(|w| w as &dyn Fn() -> Option<String>),
                &plan.shape(&graph, processes),
            )?),
            None => None,
        };
        let role = network
            .as_mut()
            .map(|n| std::mem::take(&mut n.control))
            .unwrap_or_default();
        let (start, role) = agree_on_start(role, restore_from.as_deref(), settings, |path| {
            restore(path, &graph, &plan, settings)
        })?;
        let run_id = start.run_id;
        // A fresh start begins a line of checkpoints; a restore continues its checkpoint's
        // (checkpoints of builds that did not record it all count as line 0).
        let lineage = start
            .restored
            .as_ref()
            .map_or(start.run_id, |state| state.lineage);
        let restored = start.restored.map(|state| {
            tracing::info!(job = job_name, checkpoint = state.checkpoint, path = %state.path.display(), "restoring");
            first_restore.get_or_insert_with(|| state.path.clone());
            Arc::new(state)
        });
        let coordinator = CheckpointCoordinator::start(
            CoordinatorSettings {
                config: settings.checkpointing.clone(),
                job: job_name.to_string(),
                max_parallelism: plan.max_parallelism,
                operator_key_groups: operator_key_groups(&graph, &plan),
                workers: threads,
                base: start.base,
                history: std::mem::take(&mut history),
                run_id: start.run_id,
                lineage,
                control: role,
            },
            Arc::clone(&control),
        );
        control.set_checkpoints(Some(Arc::clone(&coordinator)));
        let state_backend = settings.state_backend.open_for_run(
            coordinator.run_id(),
            settings.cluster.as_ref().map(|cluster| cluster.process_id),
        );
        let state_backend = state_backend.map_err(CheckpointError::StateStore)?;
        let run = JobRun {
            control: Arc::clone(&control),
            flow: settings.flow.clone(),
            checkpoints: Arc::clone(&coordinator),
            restored,
            state_backend: Arc::clone(&state_backend),
            activation_scope: settings.activation_scope.clone(),
            runtime_mode,
        };
        let started = Instant::now();
        let mut outcome = run_once(job_name, &graph, &plan, settings, threads, run, network);
        let run_outcome = match &outcome {
            Err(_) => RunOutcome::Failed,
            Ok(_) if control.is_cancelled() => RunOutcome::Cancelled,
            Ok(_) => RunOutcome::Finished,
        };
        control.set_checkpoints(None);
        history = coordinator.shutdown(run_outcome);
        if let (Err(JobError::Cluster(_)), Some(failure)) = (&outcome, coordinator.remote_failure())
        {
            outcome = Err(JobError::OperatorFailed(failure));
        }
        // The store is a working copy of this run; checkpoints hold what lasts.
        let working_dir = state_backend
            .working_dir()
            .map(std::path::Path::to_path_buf);
        drop(state_backend);
        if let Some(dir) = working_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        let end_errors = coordinator.end_errors();
        // The end of a finished job failed (a process died while the final checkpoint
        // was taken, or a commit failed): with checkpoints, that restarts the job like any
        // failure; the restored final (or last) checkpoint commits on the way.
        let end_failed = !end_errors.is_empty();
        if end_failed {
            outcome = Err(JobError::Checkpoint(
                format!(
                    "the job finished, but its output could not be committed: {}",
                    end_errors.join("; ")
                )
                .into(),
            ));
        }
        match outcome {
            Ok(mut result) => {
                if let Some(records) = give_up_records {
                    records.forget_give_ups();
                }
                result.checkpoints = history;
                result.restarts = backoff.restarts();
                result.restart_causes = causes;
                result.restored_from = first_restore;
                return Ok(result);
            }
            Err(error) => {
                // On several processes, a process that failed takes the others down
                // with it, and each restarts: process 0 picks the checkpoint for all.
                let restartable = (matches!(&error, JobError::OperatorFailed(f) if !f.fatal)
                    || (processes > 1 && matches!(error, JobError::Cluster(_)))
                    || (end_failed && settings.checkpointing.is_some()))
                    && !control.is_cancelled();
                let delay = if restartable {
                    backoff.on_failure(started.elapsed())
                } else {
                    None
                };
                let Some(delay) = delay else {
                    if let Some(records) = give_up_records {
                        records.record_give_up(run_id, &error.to_string());
                    }
                    return Err(error);
                };
                failed_run = Some(run_id);
                let from = storage.as_ref().and_then(|storage| {
                    storage
                        .checkpoint_ids()
                        .iter()
                        .any(|&id| storage.is_complete(id))
                        .then(|| storage.root().to_path_buf())
                });
                restore_from = from.or_else(|| settings.restore_from.clone());
                let from = match (&settings.cluster, &restore_from) {
                    (Some(cluster), _) if cluster.process_id != 0 => {
                        "the checkpoint process 0 picks".to_string()
                    }
                    (_, Some(path)) => path.display().to_string(),
                    (_, None) => "the beginning".to_string(),
                };
                crate::notice::warn_user(format!(
                    "job '{job_name}': {error}; restart {} in {delay:?} from {from}",
                    backoff.restarts(),
                ));
                causes.push(error.to_string());
                // A cancellation (Ctrl-C, or a Python worker whose driver is gone) ends
                // the wait at once.
                let until = Instant::now() + delay;
                while !control.is_cancelled() {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(10)));
                }
                if control.is_cancelled() {
                    return Err(error);
                }
                control.clear_failure();
            }
        }
    }
}

/// Checkpoint storage given as an object store URL: the settings with the storage
/// directory replaced by the store's local staging directory (`None`: unchanged).
fn with_storage_resolved(
    settings: &ExecutionSettings,
) -> Result<Option<ExecutionSettings>, JobError> {
    let Some(config) = &settings.checkpointing else {
        return Ok(None);
    };
    let location = config.storage.to_string_lossy();
    if !crate::checkpoint::remote::is_url(&location) {
        return Ok(None);
    }
    let remote = crate::checkpoint::remote::open(&location)?;
    let mut changed = settings.clone();
    if let Some(config) = changed.checkpointing.as_mut() {
        config.storage = remote.staging().to_path_buf();
    }
    Ok(Some(changed))
}

/// Where a run starts: agreed on by every process of the job, as process 0 says.
struct RunStart {
    /// The checkpoint or savepoint restored, loaded.
    restored: Option<RestoredState>,
    /// Checkpoint ids of the run start after this one.
    base: u64,
    /// The run's id.
    run_id: u64,
}

/// Process 0 (or the only process) decides where the run starts: the checkpoint
/// `restore_from` names (a storage directory means its newest sound checkpoint), and
/// ids after every checkpoint already in the storage; it tells the others, which wait
/// for it and load the same checkpoint.
fn agree_on_start(
    role: ControlRole,
    restore_from: Option<&std::path::Path>,
    settings: &ExecutionSettings,
    load: impl Fn(&std::path::Path) -> Result<RestoredState, JobError>,
) -> Result<(RunStart, ControlRole), JobError> {
    if let ControlRole::Follower(mut leader) = role {
        let ControlMessage::Start {
            restore,
            base,
            run_id,
        } = leader.receive(crate::cluster::CONNECT_TIMEOUT)
        else {
            return Err(ClusterError::NotStarted.into());
        };
        let restored = restore.as_deref().map(load).transpose()?;
        let start = RunStart {
            restored,
            base,
            run_id,
        };
        return Ok((start, ControlRole::Follower(leader)));
    }
    let mut role = role;
    let restored = restore_from.map(load).transpose()?;
    let storage_max = settings
        .checkpointing
        .as_ref()
        .and_then(|c| {
            CheckpointStorage::new(&c.storage)
                .checkpoint_ids()
                .last()
                .copied()
        })
        .unwrap_or(0);
    let start = RunStart {
        base: restored
            .as_ref()
            .map_or(0, |r| r.checkpoint)
            .max(storage_max),
        restored,
        run_id: CheckpointCoordinator::new_run_id(),
    };
    if let ControlRole::Leader(followers) = &mut role {
        let message = ControlMessage::Start {
            restore: start.restored.as_ref().map(|r| r.path.clone()),
            base: start.base,
            run_id: start.run_id,
        };
        for follower in followers {
            follower.send(&message).map_err(ClusterError::from)?;
        }
    }
    Ok((start, role))
}

/// The operators (by state uid) whose own max parallelism differs from the job's.
fn operator_key_groups(
    graph: &JobGraph,
    plan: &JobPlan,
) -> std::collections::BTreeMap<String, usize> {
    graph
        .nodes
        .iter()
        .filter(|node| plan.key_groups[node.id] != plan.max_parallelism)
        .map(|node| (node.state_uid(), plan.key_groups[node.id]))
        .collect()
}

/// Loads what `path` points to and checks that it fits the job.
fn restore(
    path: &std::path::Path,
    graph: &JobGraph,
    plan: &JobPlan,
    settings: &ExecutionSettings,
) -> Result<RestoredState, JobError> {
    let (_, state) = find_restorable(path)?;
    // Key groups are the unit keyed state moves in, so an operator's count must not
    // change; operators without keyed state (sources, sinks) may.
    for node in &graph.nodes {
        let uid = node.state_uid();
        let (written, now) = (state.key_groups_of(&uid), plan.key_groups[node.id]);
        if written != now && state.has_keyed_state_of(&uid) {
            return Err(CheckpointError::Incompatible {
                checkpoint: state.path.display().to_string(),
                reason: format!(
                    "was written with max parallelism {written} for operator '{}', the job now has {now}; \
                     keyed state can only be restored with the max parallelism it was written with",
                    node.name,
                ),
            }
            .into());
        }
    }
    if !settings.allow_non_restored_state {
        let prefixes: Vec<String> = graph
            .nodes
            .iter()
            .map(|n| format!("{}/", n.state_uid()))
            .collect();
        let mut orphans: Vec<&str> = state
            .states()
            .filter(|id| !prefixes.iter().any(|p| id.starts_with(p.as_str())))
            .collect();
        orphans.sort_unstable();
        if !orphans.is_empty() {
            return Err(CheckpointError::Incompatible {
                checkpoint: state.path.display().to_string(),
                reason: format!(
                    "holds state that matches no operator of the job: {}; give the operators the uids they had, or allow non-restored state",
                    orphans.join(", ")
                ),
            }
            .into());
        }
    }
    Ok(state)
}

/// One run of the job, from the start of the workers to their end.
fn run_once(
    job_name: &str,
    graph: &Arc<JobGraph>,
    plan: &Arc<JobPlan>,
    settings: &ExecutionSettings,
    threads: usize,
    run: JobRun,
    sockets: Option<crate::cluster::ClusterSockets>,
) -> Result<JobExecutionResult, JobError> {
    let control = Arc::clone(&run.control);
    let processes = settings
        .cluster
        .as_ref()
        .map_or(1, ClusterConfig::processes);
    tracing::info!(
        job = job_name,
        workers = plan.workers,
        processes,
        "starting job"
    );

    crate::failure::reset_peer_lost();
    let started = Instant::now();
    let worker_graph = Arc::clone(graph);
    let worker_plan = Arc::clone(plan);
    let work = move |worker: &mut timely::worker::Worker| {
        run_worker(worker, &worker_graph, &worker_plan, &run)
    };
    let mut network = None;
    let guards = match (&settings.cluster, sockets) {
        (Some(cluster), Some(mut sockets)) => {
            let (builders, guard, links) =
                crate::cluster::start_network(cluster, sockets.take_data(), threads)?;
            let links = Arc::new(links);
            control.set_links(Some(Arc::clone(&links)));
            network = Some((guard, links));
            timely::execute::execute_from(
                builders,
                Box::new(()),
                timely::WorkerConfig::default(),
                work,
            )
        }
        _ => {
            let config = timely::Config {
                communication: timely::CommunicationConfig::Process(threads),
                worker: timely::WorkerConfig::default(),
            };
            timely::execute(config, work)
        }
    }
    .map_err(ClusterError::Failed)?;
    let reports = quietly(move || guards.join());
    // A peer process gone before this one severed anything: the job failed because of it.
    let mut lost = peer_lost();
    control.set_links(None);
    if let Some((guard, links)) = network {
        if control.has_failed() || reports.is_err() {
            links.sever();
        }
        // Joins the network threads, which end when every process closed its side; one
        // whose peer vanished panics.
        if let Err(payload) = quietly(move || drop(guard)) {
            if !control.has_failed() {
                lost = lost.or_else(|| Some(crate::failure::panic_message(payload.as_ref())));
            }
        }
    }
    let own_failure = control
        .failure()
        .filter(|f| f.operator != "<worker>" && f.operator != "<network>");
    if let (Some(reason), None) = (&lost, &own_failure) {
        return Err(ClusterError::Lost(reason.clone()).into());
    }
    let reports = match reports {
        Ok(reports) => reports,
        Err(payload) => {
            let reason = crate::failure::panic_message(payload.as_ref());
            return Err(ClusterError::Lost(reason).into());
        }
    };
    let net_runtime = started.elapsed();

    let mut totals = vec![(0u64, 0u64, 0u64); graph.nodes.len()];
    for report in reports {
        match report {
            Ok(report) => {
                for (id, (records_in, records_out, late)) in report.metrics {
                    totals[id].0 += records_in;
                    totals[id].1 += records_out;
                    totals[id].2 += late;
                }
            }
            Err(message) => control.fail(OperatorFailure {
                fatal: false,
                operator: "<worker>".into(),
                subtask: 0,
                cause: message,
                location: None,
            }),
        }
    }
    if let Some(failure) = control.failure() {
        if failure.operator == "<network>" {
            return Err(ClusterError::Failed(failure.cause).into());
        }
        return Err(JobError::OperatorFailed(failure));
    }
    if control.is_cancelled() {
        tracing::info!(job = job_name, "job cancelled");
    }
    let operators = graph
        .nodes
        .iter()
        .filter(|node| !node.dormant)
        .map(|node| OperatorMetrics {
            id: node.id,
            name: node.name.clone(),
            uid: node.uid.clone(),
            parallelism: plan.parallelism[node.id],
            records_in: totals[node.id].0,
            records_out: totals[node.id].1,
            late_records_dropped: totals[node.id].2,
        })
        .collect();
    Ok(JobExecutionResult {
        job_name: job_name.to_string(),
        net_runtime,
        parallelism: plan.workers,
        operators,
        checkpoints: Vec::new(),
        restarts: 0,
        restart_causes: Vec::new(),
        restored_from: None,
    })
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    graph: &Arc<JobGraph>,
    plan: &Arc<JobPlan>,
    run: &JobRun,
) -> WorkerReport {
    let control = &run.control;
    mark_worker_thread();
    let metrics = Rc::new(WorkerMetrics::default());
    let index = worker.index();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let probe = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            let mut ctx = BuildCtx::new(
                scope,
                Arc::clone(graph),
                Arc::clone(plan),
                run.clone(),
                Rc::clone(&metrics),
                probe.clone(),
            );
            for &sink in &plan.sinks {
                ctx.stream(sink).probe_with(&probe);
            }
            run.checkpoints.register(ctx.take_instances());
        });
        while worker.has_dataflows() && !control.has_failed() {
            worker.step_or_park(Some(Duration::from_millis(20)));
            if let Some(reason) = peer_lost() {
                control.fail(OperatorFailure {
                    fatal: false,
                    operator: "<network>".into(),
                    subtask: index,
                    cause: format!("lost the connection to another process of the job ({reason})"),
                    location: None,
                });
            }
        }
    }));
    if let Err(payload) = outcome {
        let failure = failure_from_panic("<worker>", index, payload);
        tracing::debug!(%failure, "worker failed");
        control.fail(failure);
    }
    if control.has_failed() {
        for dataflow in worker.installed_dataflows() {
            worker.drop_dataflow(dataflow);
        }
    }
    WorkerReport {
        metrics: metrics.snapshot(),
    }
}

/// What another thread may ask of a running job: to cancel it, or to take a
/// savepoint. Cloned from its `JobClient`, it stays usable while that one waits.
#[derive(Clone)]
pub struct JobController {
    control: Arc<JobControl>,
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl JobController {
    /// Stops the job's sources; the job drains and ends.
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// Takes a savepoint into `dir` while the job runs; returns its directory.
    pub fn trigger_savepoint(
        &self,
        dir: impl Into<std::path::PathBuf>,
    ) -> Result<std::path::PathBuf, JobError> {
        self.savepoint(dir.into(), AfterSavepoint::Continue)
    }

    /// Takes a savepoint into `dir` and stops the job there (sources stop at the
    /// savepoint; its pending timers and windows resume from it).
    pub fn stop_with_savepoint(
        &self,
        dir: impl Into<std::path::PathBuf>,
    ) -> Result<std::path::PathBuf, JobError> {
        self.savepoint(dir.into(), AfterSavepoint::Stop)
    }

    /// Sends the final watermark, so that every event-time timer and window fires, then
    /// takes a savepoint into `dir` and stops the job there (Flink's
    /// `stopWithSavepoint(advanceToEndOfTime = true)`, `stop --drain`).
    pub fn drain_with_savepoint(
        &self,
        dir: impl Into<std::path::PathBuf>,
    ) -> Result<std::path::PathBuf, JobError> {
        self.savepoint(dir.into(), AfterSavepoint::Drain)
    }

    fn savepoint(
        &self,
        dir: std::path::PathBuf,
        after: AfterSavepoint,
    ) -> Result<std::path::PathBuf, JobError> {
        // The coordinator appears once the workers start; a savepoint asked for before
        // that waits for it.
        let coordinator = loop {
            if let Some(c) = self.control.checkpoints() {
                break c;
            }
            if self.is_ended() {
                return Err(CheckpointError::NotRunning.into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        coordinator.savepoint(dir, after).map_err(JobError::from)
    }

    /// Whether the job has ended.
    pub fn is_ended(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A handle on a job running in the background (`execute_async`).
pub struct JobClient {
    controller: JobController,
    handle: std::thread::JoinHandle<Result<JobExecutionResult, JobError>>,
}

impl JobClient {
    /// Starts `graph` on a background thread.
    pub fn spawn(job_name: String, graph: JobGraph, settings: ExecutionSettings) -> JobClient {
        let control = JobControl::for_settings(settings.ctrl_c);
        let controller = JobController {
            control: Arc::clone(&control),
            ended: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        let ended = Arc::clone(&controller.ended);
        let handle = std::thread::Builder::new()
            .name(format!("superflow-job-{job_name}"))
            .spawn(move || {
                let result = execute_graph(&job_name, graph, &settings, control);
                ended.store(true, std::sync::atomic::Ordering::Release);
                result
            })
            .unwrap_or_else(|e| panic!("cannot start the job thread: {e}"));
        JobClient { controller, handle }
    }

    /// A controller of the job for other threads.
    pub fn controller(&self) -> JobController {
        self.controller.clone()
    }

    /// Stops the job's sources; the job drains and ends. `wait` returns its result.
    pub fn cancel(&self) {
        self.controller.cancel();
    }

    /// Takes a savepoint into `dir` while the job runs; returns its directory.
    pub fn trigger_savepoint(
        &self,
        dir: impl Into<std::path::PathBuf>,
    ) -> Result<std::path::PathBuf, JobError> {
        self.controller.trigger_savepoint(dir)
    }

    /// Takes a savepoint into `dir` and stops the job there (sources stop at the
    /// savepoint; `wait` then returns the result).
    pub fn stop_with_savepoint(
        &self,
        dir: impl Into<std::path::PathBuf>,
    ) -> Result<std::path::PathBuf, JobError> {
        self.controller.stop_with_savepoint(dir)
    }

    /// Fires every event-time timer and window with the final watermark, then stops the
    /// job with a savepoint into `dir` (see `JobController::drain_with_savepoint`).
    pub fn drain_with_savepoint(
        &self,
        dir: impl Into<std::path::PathBuf>,
    ) -> Result<std::path::PathBuf, JobError> {
        self.controller.drain_with_savepoint(dir)
    }

    /// Whether the job has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the job to end.
    pub fn wait(self) -> Result<JobExecutionResult, JobError> {
        match self.handle.join() {
            Ok(result) => result,
            Err(payload) => Err(JobError::Internal(crate::failure::panic_message(
                payload.as_ref(),
            ))),
        }
    }
}
