//! `StreamExecutionEnvironment`: where a job's sources are created, its settings held,
//! and where it is executed.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use superflow_connectors::{
    CollectionSource, DataGeneratorSource, SequenceSource, SocketTextSource, TextFileSource,
};
use superflow_core::{Data, JobError, DEFAULT_MAX_PARALLELISM};
use superflow_runtime::checkpoint::{CheckpointConfig, RestartStrategy, StateBackendConfig};
use superflow_runtime::{
    execute_graph, ActivationScope, ChainingStrategy, ClusterConfig, ExecutionSettings,
    FlowControl, InputEdge, JobClient, JobControl, JobExecutionResult, JobGraph, JobPlan, Node,
    NodeBuilder, NodeId, NodeKind, PrepareFn, RuntimeExecutionMode, SourceFunction,
};

use crate::nodes::SourceNode;
use crate::stream::DataStream;
use crate::watermark::{TimestampAssigner, WatermarkStrategy};

struct EnvState {
    graph: JobGraph,
    parallelism: Option<usize>,
    max_parallelism: Option<usize>,
    flow: FlowControl,
    cluster: Option<ClusterConfig>,
    problems: Vec<String>,
    /// Nodes before this index belong to jobs already executed.
    executed: usize,
    checkpointing: Option<CheckpointConfig>,
    restart: Option<RestartStrategy>,
    restore_from: Option<PathBuf>,
    allow_non_restored_state: bool,
    state_backend: StateBackendConfig,
    activation_scope: Option<Arc<dyn ActivationScope>>,
    ctrl_c: bool,
    runtime_mode: RuntimeExecutionMode,
    /// Milliseconds between periodic watermarks; read by the stages when the job runs, so
    /// it may be set after the streams are built.
    watermark_interval: Arc<AtomicU64>,
}

impl EnvState {
    /// The graph of the job built since the last `execute`: the nodes made since, and
    /// every node they read from, also nodes of earlier jobs (a stream stays usable
    /// after `execute`, and the next job runs its operators again from their sources,
    /// as in Flink). The environment keeps every node, so ids stay what the program's
    /// streams hold; the other nodes of earlier jobs are dormant.
    fn job_graph(&self) -> JobGraph {
        let mut graph = self.graph.clone();
        graph.problems.extend(self.problems.iter().cloned());
        let mut included = vec![false; graph.nodes.len()];
        let mut pending: Vec<NodeId> = (self.executed..graph.nodes.len()).collect();
        while let Some(id) = pending.pop() {
            if !std::mem::replace(&mut included[id], true) {
                pending.extend(graph.nodes[id].inputs.iter().map(|edge| edge.from));
            }
        }
        graph.nodes = std::mem::take(&mut graph.nodes)
            .into_iter()
            .zip(included)
            .map(|(node, included)| if included { node } else { node.into_dormant() })
            .collect();
        graph
    }
}

impl Default for EnvState {
    fn default() -> Self {
        EnvState {
            graph: JobGraph::default(),
            parallelism: None,
            max_parallelism: None,
            flow: FlowControl::default(),
            cluster: None,
            problems: Vec::new(),
            executed: 0,
            checkpointing: None,
            restart: None,
            restore_from: None,
            allow_non_restored_state: false,
            state_backend: StateBackendConfig::HashMap,
            activation_scope: None,
            ctrl_c: true,
            runtime_mode: RuntimeExecutionMode::Streaming,
            watermark_interval: Arc::new(AtomicU64::new(DEFAULT_WATERMARK_INTERVAL_MS)),
        }
    }
}

/// Flink's default auto-watermark interval.
const DEFAULT_WATERMARK_INTERVAL_MS: u64 = 200;

/// The context in which a streaming job is built and executed, as in Flink.
#[derive(Clone, Default)]
pub struct StreamExecutionEnvironment {
    state: Rc<RefCell<EnvState>>,
}

/// What a new node is made of.
pub(crate) struct NodeSpec {
    pub name: String,
    pub kind: NodeKind,
    pub inputs: Vec<InputEdge>,
    pub max_parallelism: Option<usize>,
    pub prepare: Option<PrepareFn>,
}

impl StreamExecutionEnvironment {
    /// A new environment. Its parallelism defaults to the number of cores.
    pub fn get_execution_environment() -> Self {
        Self::default()
    }

    /// Sets the job's default parallelism: the number of workers (threads).
    pub fn set_parallelism(&self, parallelism: usize) -> &Self {
        self.state.borrow_mut().parallelism = Some(parallelism);
        self
    }

    /// Sets streaming (the default) or batch semantics (Flink's `setRuntimeMode`): in
    /// [`RuntimeExecutionMode::Batch`] a bounded job emits final results only (one
    /// record per key from a keyed reduce, each event-time window once), and
    /// [`RuntimeExecutionMode::Automatic`] picks batch when every source is bounded.
    pub fn set_runtime_mode(&self, mode: RuntimeExecutionMode) -> &Self {
        self.state.borrow_mut().runtime_mode = mode;
        self
    }

    /// How long a job cancelled by Ctrl-C may take to stop before the process ends with
    /// exit code 130, naming the operators whose user code is still running (10 s by
    /// default; a second Ctrl-C ends it at once). The setting is the process's.
    pub fn set_cancel_grace_period(&self, grace: Duration) -> &Self {
        superflow_runtime::control::set_cancel_grace_period(grace);
        self
    }

    /// The job's default parallelism: as set, or the number of cores.
    pub fn get_parallelism(&self) -> usize {
        let state = self.state.borrow();
        let processes = state.cluster.as_ref().map_or(1, ClusterConfig::processes);
        state
            .parallelism
            .unwrap_or_else(|| superflow_runtime::available_cores() * processes)
    }

    /// Sets how often watermark generators are asked for a periodic watermark (default
    /// 200 ms). Zero turns periodic watermarks off: only punctuated watermarks and the
    /// final watermark of a bounded input remain.
    pub fn set_auto_watermark_interval(&self, interval: Duration) -> &Self {
        self.state
            .borrow()
            .watermark_interval
            .store(interval.as_millis() as u64, Ordering::Relaxed);
        self
    }

    /// The auto-watermark interval.
    pub fn get_auto_watermark_interval(&self) -> Duration {
        Duration::from_millis(
            self.state
                .borrow()
                .watermark_interval
                .load(Ordering::Relaxed),
        )
    }

    pub(crate) fn watermark_interval_handle(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.state.borrow().watermark_interval)
    }

    /// Takes a checkpoint every `interval` (Flink's `enableCheckpointing`), exactly-once,
    /// into `superflow-checkpoints` unless [`configure_checkpoints`](Self::configure_checkpoints)
    /// says otherwise. With checkpoints, a failed job restarts from the last one (up to
    /// 10 times, with exponential delay, unless a restart strategy is set).
    pub fn enable_checkpointing(&self, interval: Duration) -> &Self {
        let mut state = self.state.borrow_mut();
        match &mut state.checkpointing {
            Some(config) => config.interval = interval,
            None => state.checkpointing = Some(CheckpointConfig::new(interval)),
        }
        self
    }

    /// Changes the checkpoint settings (mode, timeout, pause, storage...); enables
    /// checkpoints every 10 s if they were not enabled.
    pub fn configure_checkpoints(&self, configure: impl FnOnce(&mut CheckpointConfig)) -> &Self {
        let mut state = self.state.borrow_mut();
        let config = state
            .checkpointing
            .get_or_insert_with(|| CheckpointConfig::new(Duration::from_secs(10)));
        configure(config);
        self
    }

    /// The checkpoint settings, if checkpoints are enabled.
    pub fn get_checkpoint_config(&self) -> Option<CheckpointConfig> {
        self.state.borrow().checkpointing.clone()
    }

    /// Sets where keyed state lives (Flink's `setStateBackend`): in memory (the
    /// default), or with [`StateBackendConfig::embedded_lsm`] partly on disk, for state larger
    /// than memory.
    pub fn set_state_backend(&self, backend: StateBackendConfig) -> &Self {
        self.state.borrow_mut().state_backend = backend;
        self
    }

    /// Sets what happens when the job fails (Flink's restart strategies).
    pub fn set_restart_strategy(&self, strategy: RestartStrategy) -> &Self {
        self.state.borrow_mut().restart = Some(strategy);
        self
    }

    /// Starts the next job from a checkpoint or savepoint: its directory, or a checkpoint
    /// storage directory (then its newest sound checkpoint), as Flink's `-s path`.
    pub fn set_restore_path(&self, path: impl Into<PathBuf>) -> &Self {
        self.state.borrow_mut().restore_from = Some(path.into());
        self
    }

    /// Whether a restore may skip state that matches no operator (default: it is an error).
    pub fn set_allow_non_restored_state(&self, allow: bool) -> &Self {
        self.state.borrow_mut().allow_non_restored_state = allow;
        self
    }

    /// Runs every operator activation of the job inside `scope`. For runtimes that embed
    /// Superflow: the Python binding holds the GIL there.
    pub fn set_activation_scope(&self, scope: Arc<dyn ActivationScope>) -> &Self {
        self.state.borrow_mut().activation_scope = Some(scope);
        self
    }

    /// Whether Ctrl-C cancels a running job (the default). A host that handles signals
    /// itself turns it off and cancels through [`execute_async`](Self::execute_async)'s
    /// client.
    pub fn set_ctrl_c_cancels(&self, cancels: bool) -> &Self {
        self.state.borrow_mut().ctrl_c = cancels;
        self
    }

    /// Sets the max parallelism: the number of key groups (default 128).
    pub fn set_max_parallelism(&self, max_parallelism: usize) -> &Self {
        self.state.borrow_mut().max_parallelism = Some(max_parallelism);
        self
    }

    /// The max parallelism.
    pub fn get_max_parallelism(&self) -> usize {
        self.state
            .borrow()
            .max_parallelism
            .unwrap_or(DEFAULT_MAX_PARALLELISM)
    }

    /// Sets how sources pace themselves (batch size, epoch cadence, epochs in flight).
    pub fn set_flow_control(&self, flow: FlowControl) -> &Self {
        self.state.borrow_mut().flow = flow;
        self
    }

    /// The flow-control settings.
    pub fn flow_control(&self) -> FlowControl {
        self.state.borrow().flow.clone()
    }

    /// Runs the job on several processes. Without this, `execute` reads the
    /// `SUPERFLOW_PROCESSES`, `SUPERFLOW_PROCESS_ID` and `SUPERFLOW_ADDRESSES` variables.
    pub fn set_cluster(&self, cluster: ClusterConfig) -> &Self {
        self.state.borrow_mut().cluster = Some(cluster);
        self
    }

    pub(crate) fn record_problem(&self, problem: String) {
        self.state.borrow_mut().problems.push(problem);
    }

    pub(crate) fn add_node<B: NodeBuilder + 'static>(
        &self,
        spec: NodeSpec,
        make: impl FnOnce(NodeId) -> B,
    ) -> (NodeId, Arc<B>) {
        let id = self.state.borrow().graph.nodes.len();
        let node = Arc::new(make(id));
        let builder: Arc<dyn NodeBuilder> = Arc::clone(&node) as Arc<dyn NodeBuilder>;
        self.state.borrow_mut().graph.nodes.push(Node {
            id,
            name: spec.name,
            uid: None,
            parallelism: None,
            max_parallelism: spec.max_parallelism,
            key_groups: None,
            kind: spec.kind,
            chaining: ChainingStrategy::Always,
            inputs: spec.inputs,
            builder,
            prepare: spec.prepare,
            replayable: true,
            keeps_state: true,
            bounded: true,
            dormant: false,
        });
        (id, node)
    }

    pub(crate) fn update_node(&self, id: NodeId, update: impl FnOnce(&mut Node)) {
        if let Some(node) = self.state.borrow_mut().graph.nodes.get_mut(id) {
            update(node);
        }
    }

    /// A setting the user made on node `id` (`None`: not set, it takes the job's).
    pub(crate) fn node_setting<R>(
        &self,
        id: NodeId,
        read: impl FnOnce(&Node) -> Option<R>,
    ) -> Option<R> {
        self.state.borrow().graph.nodes.get(id).and_then(read)
    }

    /// Adds a source.
    pub fn from_source<T: Data, S: SourceFunction<T>>(&self, source: S) -> DataStream<T> {
        let name = source.name();
        let max_parallelism = source.max_parallelism();
        let replayable = source.is_replayable();
        let bounded = source.is_bounded();
        let source: Arc<dyn SourceFunction<T>> = Arc::new(source);
        let check = Arc::clone(&source);
        let prepare: PrepareFn = Arc::new(move || check.prepare());
        let spec = NodeSpec {
            name,
            kind: NodeKind::Source,
            inputs: Vec::new(),
            max_parallelism,
            prepare: Some(prepare),
        };
        let (id, node) = self.add_node(spec, |id| SourceNode { id, source });
        self.update_node(id, |n| {
            n.replayable = replayable;
            n.bounded = bounded;
        });
        DataStream::new(self.clone(), id, node)
    }

    /// Same as [`from_source`](Self::from_source), as Flink's `addSource`.
    pub fn add_source<T: Data, S: SourceFunction<T>>(&self, source: S) -> DataStream<T> {
        self.from_source(source)
    }

    /// A stream from a source, with event timestamps and watermarks from `strategy`
    /// (Flink's `fromSource(source, strategy, name)`).
    pub fn from_source_with_watermarks<T, S, A>(
        &self,
        source: S,
        strategy: WatermarkStrategy<T, A>,
        name: &str,
    ) -> DataStream<T>
    where
        T: Data,
        S: SourceFunction<T>,
        A: TimestampAssigner<T>,
    {
        self.from_source(source)
            .name(name)
            .assign_timestamps_and_watermarks(strategy)
    }

    /// A non-parallel source emitting `elements` in order.
    pub fn from_elements<T: Data + Sync>(&self, elements: Vec<T>) -> DataStream<T> {
        self.from_source(CollectionSource::new(elements))
    }

    /// A non-parallel source emitting the items of `collection` in order.
    pub fn from_collection<T: Data + Sync, I: IntoIterator<Item = T>>(
        &self,
        collection: I,
    ) -> DataStream<T> {
        self.from_source(CollectionSource::new(collection.into_iter().collect()))
    }

    /// The numbers `from..=to`, split across subtasks (Flink's `fromSequence`).
    pub fn from_sequence(&self, from: i64, to: i64) -> DataStream<i64> {
        self.from_source(SequenceSource::new(from, to))
    }

    /// Records made by `generate(index)` for `index` in `0..count` (`None`: forever),
    /// at most `rate` records per second over all subtasks (`None`: as fast as possible).
    pub fn from_generator<T, F>(
        &self,
        generate: F,
        count: Option<u64>,
        rate: Option<f64>,
    ) -> DataStream<T>
    where
        T: Data,
        F: Fn(u64) -> T + Clone + Send + Sync + 'static,
    {
        self.from_source(DataGeneratorSource::new(generate, count, rate))
    }

    /// The lines of a text file, or of every file in a directory, in UTF-8. Bytes that
    /// are not valid UTF-8 are read as U+FFFD, with a warning (as Java reads them);
    /// `from_source(TextFileSource::new(path).strict())` fails on them instead.
    pub fn read_text_file(&self, path: impl Into<PathBuf>) -> DataStream<String> {
        self.from_source(TextFileSource::new(path))
    }

    /// The lines of a text file, or of every file in a directory, in `charset` (Flink's
    /// `readTextFile(path, charsetName)`: `ISO-8859-1`, `windows-1252`, `Shift_JIS`, ...).
    /// An unknown charset, or one not ASCII-compatible (UTF-16), fails `execute`.
    pub fn read_text_file_with_charset(
        &self,
        path: impl Into<PathBuf>,
        charset: &str,
    ) -> DataStream<String> {
        self.from_source(TextFileSource::new(path).with_charset(charset))
    }

    /// Lines read from a TCP socket (non-parallel); the stream ends when the peer closes.
    pub fn socket_text_stream(&self, host: &str, port: u16) -> DataStream<String> {
        self.from_source(SocketTextSource::new(host, port))
    }

    /// The operators `execute` would run, one per line: each a chain of the job's
    /// nodes (`Map -> Filter -> Sink`) with its parallelism. Nothing runs.
    pub fn get_execution_plan(&self) -> Result<Vec<String>, JobError> {
        let state = self.state.borrow();
        let graph = state.job_graph();
        let processes = state.cluster.as_ref().map_or(1, ClusterConfig::processes);
        let default_parallelism = state
            .parallelism
            .unwrap_or_else(|| superflow_runtime::available_cores() * processes);
        let max_parallelism = state.max_parallelism.unwrap_or(DEFAULT_MAX_PARALLELISM);
        let plan = JobPlan::new(&graph, default_parallelism, max_parallelism, processes)?;
        Ok(plan
            .chains(&graph)
            .into_iter()
            .map(|chain| {
                let names: Vec<&str> = chain
                    .iter()
                    .map(|id| graph.nodes[*id].name.as_str())
                    .collect();
                format!(
                    "{} (parallelism {})",
                    names.join(" -> "),
                    plan.parallelism[chain[0]]
                )
            })
            .collect())
    }

    fn take_job(&self) -> Result<(JobGraph, ExecutionSettings), JobError> {
        let mut state = self.state.borrow_mut();
        let graph = state.job_graph();
        state.executed = state.graph.nodes.len();
        state.problems.clear();
        let cluster = match state.cluster.clone() {
            Some(cluster) => Some(cluster),
            None => ClusterConfig::from_env()?,
        };
        let settings = ExecutionSettings {
            parallelism: state.parallelism,
            max_parallelism: state.max_parallelism.unwrap_or(DEFAULT_MAX_PARALLELISM),
            flow: state.flow.clone(),
            cluster,
            checkpointing: state.checkpointing.clone(),
            restart: state.restart.clone(),
            restore_from: state.restore_from.clone(),
            allow_non_restored_state: state.allow_non_restored_state,
            state_backend: state.state_backend.clone(),
            activation_scope: state.activation_scope.clone(),
            ctrl_c: state.ctrl_c,
            runtime_mode: state.runtime_mode,
        };
        Ok((graph, settings))
    }

    /// Runs the job to its end (a bounded job ends when its sources are exhausted; an
    /// unbounded one runs until Ctrl-C). The job's operators are cleared afterwards,
    /// so the environment can build another job.
    pub fn execute(&self, job_name: &str) -> Result<JobExecutionResult, JobError> {
        let (graph, settings) = self.take_job()?;
        let control = JobControl::for_settings(settings.ctrl_c);
        execute_graph(job_name, graph, &settings, control)
    }

    /// Starts the job in the background; the handle cancels it or waits for it.
    pub fn execute_async(&self, job_name: &str) -> Result<JobClient, JobError> {
        let (graph, settings) = self.take_job()?;
        Ok(JobClient::spawn(job_name.to_string(), graph, settings))
    }
}
