//! Turning the job graph into timely operators on one worker.
//!
//! A node's output is a `Stream<Batch>`, memoized by node id in [`BuildCtx`], so a node
//! with several consumers is built once. Chains are built from their tail: the tail
//! node wraps its downstream [`Consumer`] in its own stage and hands the result to its
//! input node ([`Attach::attach`]), until a node that heads the chain builds one timely
//! operator whose logic pushes each input batch through the composed stages. Stages
//! exchange `Vec`s (reused where possible), one dynamic call per stage per batch.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use superflow_core::Data;
use timely::dataflow::channels::pact::{ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::{Capability, Concatenate};
use timely::dataflow::{Scope, Stream};
use timely::progress::frontier::MutableAntichain;
use timely::scheduling::Activator;

use crate::batch::{Batch, DecodeFn, Records};
use crate::checkpoint::{
    checkpoint_epoch, checkpoint_of_epoch, CheckpointCoordinator, InstanceId, OperatorSnapshot,
    PartReport, RestoredState,
};
use crate::control::JobControl;
use crate::exchange::{self, PartitionKind, Partitioner, RouteContext, TaggedBatchRouter};
use crate::failure::{guard, raise};
use crate::graph::{JobGraph, JobPlan, NodeId};
use crate::metrics::{OperatorCounters, WorkerMetrics};
use crate::source::{FlowControl, SourceFunction, SourcePoll};
use crate::time::{
    processing_time_now, ChannelId, WakeUp, WatermarkEvent, WatermarkMessage, WatermarkTracker,
    MAX_WATERMARK,
};

/// Timers kept in memory per cache entry of the embedded backend. A timer is a few
/// dozen bytes, and a window operator has one per key and window: with as many as the
/// window contents, the timers of the next window went to the store and back, and a
/// window count over 100k keys ran at half speed (2.6M against 4.7M records/s).
const TIMERS_PER_CACHE_ENTRY: usize = 4;

/// A physical stream of a Superflow dataflow.
pub type BatchStream<'s> = Stream<'s, u64, Batch>;

/// The output handle of every Superflow operator.
type BatchOutput = OutputBuilder<u64, timely::container::CapacityContainerBuilder<Batch>>;

/// Builds a node's physical operator(s). Implemented by the API for each node kind.
pub trait NodeBuilder: Send + Sync {
    /// Builds this node, whose output nothing has built yet, and returns its stream.
    fn materialize<'s>(&self, ctx: &mut BuildCtx<'s>) -> BatchStream<'s>;
}

/// A node that can feed a chain: it takes the downstream consumer and builds the chain's
/// operator (or passes a wrapped consumer further up).
pub trait Attach<T>: Send + Sync {
    /// Feeds this node's records into `downstream`, and returns the chain operator's
    /// output stream.
    fn attach<'s>(
        &self,
        ctx: &mut BuildCtx<'s>,
        downstream: Box<dyn Consumer<T>>,
        chain: &mut ChainOutput,
    ) -> BatchStream<'s>;
}

/// One stage of a chain, seen from upstream: it takes batches of `T`, and the time
/// signals of its operator. Every stage passes the signals it does not consume on to
/// the next stage ([`forward_time_signals!`](crate::forward_time_signals) does that).
pub trait Consumer<T>: 'static {
    /// Consumes the records of `batch` (leaving it empty, its capacity for reuse).
    fn push(&mut self, batch: &mut Records<T>);
    /// The operator's combined input watermark advanced (or all its inputs went idle).
    fn watermark(&mut self, event: WatermarkEvent);
    /// Processing time reached a time some stage asked for (see [`WakeUp`]).
    fn on_processing_time(&mut self, now: i64);
    /// The input is exhausted: flush and close.
    fn finish(&mut self);
    /// Writes the stage's state for a checkpoint, then asks the next stage to
    /// ([`forward_snapshot!`](crate::forward_snapshot) does that for stateless stages).
    fn snapshot(&mut self, out: &mut OperatorSnapshot);
}

/// Implements [`Consumer::snapshot`] for a stage without state of its own.
#[macro_export]
macro_rules! forward_snapshot {
    ($next:ident) => {
        fn snapshot(&mut self, out: &mut $crate::checkpoint::OperatorSnapshot) {
            self.$next.snapshot(out)
        }
    };
}

/// Implements [`Consumer::watermark`] and [`Consumer::on_processing_time`] for a stage
/// that only passes them on to the stage in field `$next`.
#[macro_export]
macro_rules! forward_time_signals {
    ($next:ident) => {
        fn watermark(&mut self, event: $crate::time::WatermarkEvent) {
            self.$next.watermark(event)
        }
        fn on_processing_time(&mut self, now: i64) {
            self.$next.on_processing_time(now)
        }
    };
}

/// Where a chain's last stage puts its output, and the chain's name.
pub struct ChainOutput {
    queue: Rc<RefCell<Vec<Batch>>>,
    names: Vec<String>,
    wake: WakeUp,
}

impl ChainOutput {
    /// A new, empty chain output.
    pub fn new() -> ChainOutput {
        ChainOutput {
            queue: Rc::new(RefCell::new(Vec::new())),
            names: Vec::new(),
            wake: WakeUp::default(),
        }
    }

    /// Where the chain's stages ask for processing-time calls.
    pub fn wake_up(&self) -> WakeUp {
        self.wake.clone()
    }

    /// Records that node `name` is part of the chain (called tail first).
    pub fn add_name(&mut self, name: &str) {
        self.names.push(name.to_string());
    }

    /// The chain's name, as Flink shows it: `Map -> Filter -> Sink`.
    pub fn name(&self) -> String {
        let mut names = self.names.clone();
        names.reverse();
        names.join(" -> ")
    }

    /// The consumer that ends a chain whose records leave the operator.
    pub fn tail<T: Data>(&self) -> Box<dyn Consumer<T>> {
        Box::new(QueueTail {
            queue: Rc::clone(&self.queue),
            tag: 0,
        })
    }

    /// Emits a side output's batch from a stage of this chain.
    pub fn side_output_sink(&self) -> SideOutputSink {
        SideOutputSink {
            queue: Rc::clone(&self.queue),
        }
    }
}

impl Default for ChainOutput {
    fn default() -> Self {
        ChainOutput::new()
    }
}

struct QueueTail {
    queue: Rc<RefCell<Vec<Batch>>>,
    tag: u32,
}

impl<T: Data> Consumer<T> for QueueTail {
    fn push(&mut self, batch: &mut Records<T>) {
        if !batch.is_empty() {
            self.queue
                .borrow_mut()
                .push(Batch::local_records(std::mem::take(batch)).with_tag(self.tag));
        }
    }
    fn watermark(&mut self, event: WatermarkEvent) {
        // The operator stamps the channel (origin, subtask) when it sends the batch.
        let message = WatermarkMessage {
            origin: 0,
            subtask: 0,
            value: match event {
                WatermarkEvent::Watermark(w) => w,
                WatermarkEvent::Idle => i64::MIN,
            },
            idle: event == WatermarkEvent::Idle,
        };
        self.queue.borrow_mut().push(Batch::watermark(message, 0));
    }
    fn on_processing_time(&mut self, _now: i64) {}
    fn finish(&mut self) {}
    fn snapshot(&mut self, _out: &mut OperatorSnapshot) {}
}

/// Where a stage puts side-output records: batches tagged with the side output's tag,
/// on the same physical stream as the main output.
#[derive(Clone)]
pub struct SideOutputSink {
    queue: Rc<RefCell<Vec<Batch>>>,
}

impl SideOutputSink {
    /// Emits `records` on side output `tag`.
    pub fn emit<T: Data>(&self, tag: u32, records: Records<T>) {
        if !records.is_empty() {
            self.queue
                .borrow_mut()
                .push(Batch::local_records(records).with_tag(tag));
        }
    }
}

/// The tag of side output `name` of node `node`: stable, and distinct from 0 (main).
pub fn side_output_tag(node: NodeId, name: &str) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (node, name).hash(&mut hasher);
    (hasher.finish() as u32).max(1)
}

/// What a stage knows about where it runs.
#[derive(Clone)]
pub struct StageContext {
    /// The operator's node id.
    pub node: NodeId,
    /// The operator's name.
    pub name: Arc<str>,
    /// This subtask's index.
    pub subtask: usize,
    /// The operator's parallelism.
    pub parallelism: usize,
    /// The operator's max parallelism: the number of key groups of its keyed state.
    pub max_parallelism: usize,
    /// The operator's record counters on this worker.
    pub counters: Rc<OperatorCounters>,
    /// The name its state is stored under: the node's uid, or one derived from its
    /// position and name.
    pub uid: Arc<str>,
    /// The checkpoint the job restores from, if any.
    pub restored: Option<Arc<RestoredState>>,
    /// The job's checkpoint coordinator.
    pub checkpoints: Arc<CheckpointCoordinator>,
    /// The embedded store of larger-than-memory state; `None` with the in-memory
    /// backend.
    pub state_store: Option<EmbeddedStore>,
    /// The job's semantics: `Streaming` or `Batch` (never `Automatic`).
    pub runtime_mode: crate::RuntimeExecutionMode,
}

/// The embedded store of one job run, with the embedded backend's settings.
#[derive(Clone)]
pub struct EmbeddedStore {
    /// The store.
    pub store: Arc<superflow_state::DiskStateStore>,
    /// Entries per state and subtask kept in memory.
    pub cache_entries: usize,
    /// Where timers live.
    pub timers: crate::checkpoint::TimerStorage,
}

impl StageContext {
    /// Runs user code of this stage; a panic fails the job naming this operator.
    #[inline]
    pub fn guard<R>(&self, f: impl FnOnce() -> R) -> R {
        guard(&self.name, self.subtask, f)
    }

    /// Fails the job with an error of this operator.
    pub fn fail(&self, cause: impl std::fmt::Display) -> ! {
        raise(&self.name, self.subtask, cause)
    }

    /// The id of this operator's state `name` in checkpoints.
    pub fn state_id(&self, name: &str) -> String {
        format!("{}/{name}", self.uid)
    }

    /// The name of this subtask's partition of state `name` in the embedded store.
    pub fn store_partition(&self, name: &str) -> String {
        format!("{}#{}", self.state_id(name), self.subtask)
    }

    /// The key groups this subtask owns.
    pub fn key_group_range(&self) -> superflow_core::KeyGroupRange {
        superflow_core::key_group_range_for_subtask(
            self.max_parallelism,
            self.parallelism,
            self.subtask,
        )
    }

    /// The latest completed checkpoint (transactional sinks commit up to it).
    pub fn completed_checkpoint(&self) -> u64 {
        self.checkpoints.completed()
    }

    /// The store of keyed state `name` of this subtask (spilling to the embedded store
    /// with that backend), holding its key groups of the restored checkpoint.
    pub fn keyed_map<K, V>(&self, name: &str) -> superflow_state::SpillingMap<K, V>
    where
        K: superflow_core::Key,
        V: serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut map = match &self.state_store {
            Some(embedded) => superflow_state::SpillingMap::spilling(
                &embedded.store,
                &self.store_partition(name),
                self.max_parallelism,
                embedded.cache_entries,
            ),
            None => superflow_state::SpillingMap::in_memory(),
        };
        self.restore_keyed(name, |bytes, range| map.restore(bytes, range));
        map
    }

    /// The timers of this subtask, kept as state `name`: with the embedded store and
    /// timers in it, beyond `TIMERS_PER_CACHE_ENTRY` times the cache's entries per
    /// domain, in the store; holding this subtask's key groups of the restored
    /// checkpoint.
    pub fn timer_service<K, N>(&self, name: &str) -> superflow_state::TimerService<K, N>
    where
        K: superflow_core::Key,
        N: superflow_core::Key,
    {
        let mut timers = match &self.state_store {
            Some(embedded) if embedded.timers == crate::checkpoint::TimerStorage::InStore => {
                superflow_state::TimerService::spilling(
                    &embedded.store,
                    &self.store_partition(name),
                    embedded
                        .cache_entries
                        .saturating_mul(TIMERS_PER_CACHE_ENTRY),
                )
            }
            _ => superflow_state::TimerService::new(),
        };
        self.restore_keyed(name, |bytes, range| timers.restore(bytes, range));
        timers
    }

    /// The table of keyed state `name` addressed by key and namespace (window contents,
    /// join buffers), spilling to the embedded store with that backend, holding this
    /// subtask's key groups of the restored checkpoint.
    pub fn keyed_table<K, N, V>(&self, name: &str) -> superflow_state::StateTable<K, N, V>
    where
        K: superflow_core::Key,
        N: superflow_core::Key,
        V: serde::Serialize + serde::de::DeserializeOwned,
    {
        if self.state_store.is_some() {
            return superflow_state::StateTable::Spilling(self.keyed_map(name));
        }
        let mut table = superflow_state::StateTable::in_memory();
        self.restore_keyed(name, |bytes, range| table.restore(bytes, range));
        table
    }

    /// The elements of list state `name` this subtask restores (none on a fresh start).
    /// A state that cannot be decoded fails the job, naming it.
    pub fn restore_list<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<Vec<T>> {
        let restored = self.restored.as_ref()?;
        let id = self.state_id(name);
        if !restored.contains(&id) {
            return None;
        }
        match restored.list(&id, self.subtask, self.parallelism) {
            Ok(items) => Some(items),
            Err(e) => self.fail(format!(
                "cannot restore from {}: {e}",
                restored.path.display()
            )),
        }
    }

    /// Restores keyed state `name` with `restore`, called with each old part and this
    /// subtask's key groups; an error fails the job, naming the state.
    pub fn restore_keyed<E: std::fmt::Display>(
        &self,
        name: &str,
        mut restore: impl FnMut(&[u8], superflow_core::KeyGroupRange) -> Result<usize, E>,
    ) {
        let Some(restored) = self.restored.as_ref() else {
            return;
        };
        let id = self.state_id(name);
        let range = self.key_group_range();
        for part in restored.keyed_parts(&id) {
            if let Err(e) = restore(part, range) {
                self.fail(format!(
                    "cannot restore state '{id}' from {}: {e}",
                    restored.path.display()
                ));
            }
        }
    }
}

/// The channels (producing operator, subtask) that send batches, and so watermarks, on a
/// physical stream, across all workers.
type Channels = Vec<(u32, u32)>;

/// Per-worker state while the dataflow is built.
pub struct BuildCtx<'s> {
    scope: Scope<'s, u64>,
    graph: Arc<JobGraph>,
    plan: Arc<JobPlan>,
    streams: HashMap<NodeId, BatchStream<'s>>,
    channels: BTreeMap<(usize, usize), Channels>,
    run: JobRun,
    metrics: Rc<WorkerMetrics>,
    probe: ProbeHandle<u64>,
    instances: Vec<InstanceId>,
}

/// What every worker of one run of a job shares.
#[derive(Clone)]
pub(crate) struct JobRun {
    pub(crate) control: Arc<JobControl>,
    pub(crate) flow: FlowControl,
    pub(crate) checkpoints: Arc<CheckpointCoordinator>,
    pub(crate) restored: Option<Arc<RestoredState>>,
    pub(crate) state_store: Option<EmbeddedStore>,
    pub(crate) activation_scope: Option<Arc<dyn crate::ActivationScope>>,
    pub(crate) runtime_mode: crate::RuntimeExecutionMode,
}

/// How an operator input is connected, for watermark tracking.
struct InputChannels {
    /// The producers of the input stream, on all workers.
    producers: Channels,
    /// Whether the input is a pipeline (it then only receives from this worker).
    pipeline: bool,
}

impl<'s> BuildCtx<'s> {
    pub(crate) fn new(
        scope: Scope<'s, u64>,
        graph: Arc<JobGraph>,
        plan: Arc<JobPlan>,
        run: JobRun,
        metrics: Rc<WorkerMetrics>,
        probe: ProbeHandle<u64>,
    ) -> BuildCtx<'s> {
        BuildCtx {
            scope,
            graph,
            plan,
            streams: HashMap::new(),
            channels: BTreeMap::new(),
            run,
            metrics,
            probe,
            instances: Vec::new(),
        }
    }

    /// The operators of this worker that take part in checkpoints.
    pub(crate) fn take_instances(&mut self) -> Vec<InstanceId> {
        std::mem::take(&mut self.instances)
    }

    /// This worker's index.
    pub fn worker(&self) -> usize {
        self.scope.index()
    }

    /// The job graph.
    pub fn graph(&self) -> &JobGraph {
        &self.graph
    }

    /// The physical plan.
    pub fn plan(&self) -> &JobPlan {
        &self.plan
    }

    /// The effective parallelism of a node.
    pub fn parallelism(&self, id: NodeId) -> usize {
        self.plan.parallelism[id]
    }

    /// Whether node `id` runs inside its input's operator.
    pub fn is_chained_to_input(&self, id: NodeId) -> bool {
        self.plan.chained_to_input[id]
    }

    /// The context of node `id`'s stage on this worker.
    pub fn stage_context(&self, id: NodeId) -> StageContext {
        StageContext {
            node: id,
            name: Arc::from(self.graph.nodes[id].name.as_str()),
            subtask: self.worker(),
            parallelism: self.parallelism(id),
            max_parallelism: self.plan.key_groups[id],
            counters: self.metrics.counters(id),
            uid: Arc::from(self.graph.nodes[id].state_uid().as_str()),
            restored: self.run.restored.clone(),
            checkpoints: Arc::clone(&self.run.checkpoints),
            state_store: self.run.state_store.clone(),
            runtime_mode: self.run.runtime_mode,
        }
    }

    /// The output stream of node `id`, building it on first use.
    pub fn stream(&mut self, id: NodeId) -> BatchStream<'s> {
        if let Some(stream) = self.streams.get(&id) {
            return stream.clone();
        }
        let builder = Arc::clone(&self.graph.nodes[id].builder);
        let stream = builder.materialize(self);
        self.streams.insert(id, stream.clone());
        stream
    }

    fn stream_key(stream: &BatchStream<'s>) -> (usize, usize) {
        (stream.name().node, stream.name().port)
    }

    fn producers(&self, stream: &BatchStream<'s>) -> Channels {
        self.channels
            .get(&Self::stream_key(stream))
            .cloned()
            .unwrap_or_default()
    }

    fn set_producers(&mut self, stream: &BatchStream<'s>, producers: Channels) {
        self.channels.insert(Self::stream_key(stream), producers);
    }

    /// The channels an operator's output has: every subtask that receives input on a
    /// pipeline, or subtasks `0..parallelism` behind an exchange.
    fn output_producers(origin: u32, inputs: &[InputChannels], parallelism: usize) -> Channels {
        let mut subtasks = BTreeSet::new();
        for input in inputs {
            if input.pipeline {
                subtasks.extend(input.producers.iter().map(|&(_, s)| s));
            } else {
                subtasks.extend(0..parallelism as u32);
            }
        }
        subtasks.into_iter().map(|s| (origin, s)).collect()
    }

    /// The channels this worker's subtask of an operator hears watermarks from.
    fn expected_channels(&self, inputs: &[InputChannels]) -> Vec<ChannelId> {
        let worker = self.worker() as u32;
        let mut expected = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            for &(origin, subtask) in &input.producers {
                if !input.pipeline || subtask == worker {
                    expected.push(ChannelId {
                        input: index as u8,
                        origin,
                        subtask,
                    });
                }
            }
        }
        expected
    }

    /// Merges the outputs of several nodes (a union).
    pub fn concatenate(&mut self, streams: Vec<BatchStream<'s>>) -> BatchStream<'s> {
        let mut producers: Channels = streams.iter().flat_map(|s| self.producers(s)).collect();
        producers.sort_unstable();
        producers.dedup();
        let stream = self.scope.concatenate(streams);
        self.set_producers(&stream, producers);
        stream
    }

    fn route_context(&self, from: NodeId, to: NodeId) -> RouteContext {
        RouteContext {
            worker: self.worker(),
            source_parallelism: self.parallelism(from),
            target_parallelism: self.parallelism(to),
            max_parallelism: self.plan.key_groups[to],
        }
    }

    /// Builds a chain's operator with one input: the head stage is `consumer`, fed from
    /// input `input_index` of node `id` through that edge's partitioner.
    pub fn build_unary<I: Data>(
        &mut self,
        id: NodeId,
        input_index: usize,
        consumer: Box<dyn Consumer<I>>,
        chain: &mut ChainOutput,
    ) -> BatchStream<'s> {
        let from = self.graph.nodes[id].inputs[input_index].from;
        let partitioner = self.plan.edges[id][input_index].clone();
        let input = self.stream(from);
        let input = self.broadcast_fan_out(input, &partitioner, from, id);
        let channels = InputChannels {
            producers: self.producers(&input),
            pipeline: partitioner.router.is_none(),
        };
        let decode = partitioner.decode;
        match &partitioner.router {
            None => self.unary_operator(input, Pipeline, decode, consumer, chain, channels, id),
            Some(factory) => {
                let pact = exchange::pact(
                    &self.routing_factory(&partitioner, factory),
                    &self.route_context(from, id),
                );
                self.unary_operator(input, pact, decode, consumer, chain, channels, id)
            }
        }
    }

    /// Builds an operator reading node `from`'s stream on this worker (no exchange),
    /// whose logic is `consumer`.
    pub fn build_pipeline_from<I: Data>(
        &mut self,
        from: NodeId,
        consumer: Box<dyn Consumer<I>>,
        chain: &mut ChainOutput,
    ) -> BatchStream<'s> {
        let input = self.stream(from);
        let channels = InputChannels {
            producers: self.producers(&input),
            pipeline: true,
        };
        self.unary_operator(input, Pipeline, None, consumer, chain, channels, from)
    }

    /// Builds the operator that selects side output `tag` from node `from`'s stream and
    /// turns it into a main output. Watermarks pass through: a side output has the event
    /// time of its operator.
    pub fn build_side_output_selector(
        &mut self,
        from: NodeId,
        tag: u32,
        name: &str,
    ) -> BatchStream<'s> {
        let input = self.stream(from);
        let mut builder = OperatorBuilder::new(name.to_string(), self.scope);
        let mut handle = builder.new_input(input.clone(), Pipeline);
        let (output, stream) = builder.new_output::<Batch>();
        let mut output = BatchOutput::from(output);
        let scope = self.run.activation_scope.clone();
        builder.build(move |_caps| {
            move |_frontiers| {
                crate::activation::in_scope(&scope, &mut || {
                    let mut out = output.activate();
                    handle.for_each(|cap, data| {
                        if data.as_watermark().is_some() {
                            out.session(&cap).give_container(data);
                        } else if data.tag() == tag {
                            let mut batch = std::mem::take(data).with_tag(0);
                            out.session(&cap).give_container(&mut batch);
                        }
                    });
                })
            }
        });
        let producers = self.producers(&input);
        self.set_producers(&stream, producers);
        stream
    }

    /// Builds a two-input operator (connect) whose logic is `consumer`.
    pub fn build_binary<A: Data, B: Data>(
        &mut self,
        id: NodeId,
        consumer: Box<dyn BinaryConsumer<A, B>>,
        chain: &mut ChainOutput,
    ) -> BatchStream<'s> {
        let (from1, from2) = (
            self.graph.nodes[id].inputs[0].from,
            self.graph.nodes[id].inputs[1].from,
        );
        let (p1, p2) = (
            self.plan.edges[id][0].clone(),
            self.plan.edges[id][1].clone(),
        );
        let input1 = self.stream(from1);
        let input1 = self.broadcast_fan_out(input1, &p1, from1, id);
        let input2 = self.stream(from2);
        let input2 = self.broadcast_fan_out(input2, &p2, from2, id);
        let inputs = [
            InputChannels {
                producers: self.producers(&input1),
                pipeline: p1.router.is_none(),
            },
            InputChannels {
                producers: self.producers(&input2),
                pipeline: p2.router.is_none(),
            },
        ];
        let mut builder = OperatorBuilder::new(chain.name(), self.scope);
        let activator = self.scope.activator_for(builder.operator_info().address);
        let handle1 = self.add_input(&mut builder, input1, &p1, from1, id);
        let handle2 = self.add_input(&mut builder, input2, &p2, from2, id);
        let (output, stream) = builder.new_output::<Batch>();
        let mut output = BatchOutput::from(output);
        let origin = stream.name().node as u32;
        let mut tracker = WatermarkTracker::new(self.expected_channels(&inputs));
        let mut core = OperatorCore::new(self, chain, activator, origin, id);
        let (d1, d2) = (p1.decode, p2.decode);
        let mut consumer = consumer;
        let scope = self.run.activation_scope.clone();
        builder.build(move |mut capabilities| {
            let mut handle1 = handle1;
            let mut handle2 = handle2;
            core.held = capabilities.pop();
            move |frontiers| {
                crate::activation::in_scope(&scope, &mut || {
                    let mut out = output.activate();
                    for (input, handle) in [(0, &mut handle1), (1, &mut handle2)] {
                        handle.for_each(
                            &mut |cap: &timely::dataflow::operators::InputCapability<u64>,
                                  data: &mut Batch| {
                                if core.defer(cap.least().copied().unwrap_or(0), input, data) {
                                    return;
                                }
                                if deliver_two(&mut tracker, &mut *consumer, input, data, (d1, d2))
                                {
                                    core.drain(&mut out.session(cap));
                                }
                            },
                        );
                    }
                    core.after_inputs(frontiers, &mut out, &mut |signal| match signal {
                        Signal::ProcessingTime(now) => consumer.on_processing_time(now),
                        Signal::Finish => consumer.finish(),
                        Signal::Snapshot(snapshot) => consumer.snapshot(snapshot),
                        Signal::Replay(input, batch) => {
                            deliver_two(&mut tracker, &mut *consumer, input, batch, (d1, d2));
                        }
                    });
                })
            }
        });
        let producers = Self::output_producers(origin, &inputs, self.parallelism(id));
        self.set_producers(&stream, producers);
        stream
    }

    fn add_input(
        &self,
        builder: &mut OperatorBuilder<'s, u64>,
        input: BatchStream<'s>,
        partitioner: &Partitioner,
        from: NodeId,
        to: NodeId,
    ) -> Box<dyn ErasedInput> {
        match &partitioner.router {
            None => Box::new(builder.new_input(input, Pipeline)),
            Some(factory) => {
                let pact = exchange::pact(
                    &self.routing_factory(partitioner, factory),
                    &self.route_context(from, to),
                );
                Box::new(builder.new_input(input, pact))
            }
        }
    }

    /// A broadcast edge routes the tagged copies its fan-out made; other edges use
    /// their own router.
    fn routing_factory(
        &self,
        partitioner: &Partitioner,
        factory: &exchange::RouterFactory,
    ) -> exchange::RouterFactory {
        if partitioner.kind == PartitionKind::Broadcast {
            Arc::new(|_ctx: &RouteContext| {
                Box::new(TaggedBatchRouter) as Box<dyn exchange::BatchRouter>
            })
        } else {
            Arc::clone(factory)
        }
    }

    /// For a broadcast edge, inserts the operator that copies each batch once per
    /// target (the copies are counted as records there, which keeps progress tracking
    /// exact across the exchange). Watermarks pass through; the exchange copies them.
    fn broadcast_fan_out(
        &mut self,
        input: BatchStream<'s>,
        partitioner: &Partitioner,
        from: NodeId,
        to: NodeId,
    ) -> BatchStream<'s> {
        if partitioner.kind != PartitionKind::Broadcast {
            return input;
        }
        let Some(factory) = &partitioner.router else {
            return input;
        };
        let targets = self.parallelism(to);
        // The broadcast router factory copies one batch into one slot per target.
        let mut copier = factory(&self.route_context(from, to));
        let mut builder = OperatorBuilder::new("Broadcast".to_string(), self.scope);
        let mut handle = builder.new_input(input.clone(), Pipeline);
        let (output, stream) = builder.new_output::<Batch>();
        let mut output = BatchOutput::from(output);
        let scope = self.run.activation_scope.clone();
        builder.build(move |_caps| {
            move |_frontiers| {
                crate::activation::in_scope(&scope, &mut || {
                    let mut out = output.activate();
                    handle.for_each(|cap, data| {
                        if data.as_watermark().is_some() {
                            out.session(&cap).give_container(data);
                            return;
                        }
                        if data.tag() != 0 {
                            return;
                        }
                        let mut copies: Vec<Batch> =
                            (0..targets).map(|_| Batch::default()).collect();
                        copier.route(data, &mut copies);
                        let mut session = out.session(&cap);
                        for (target, copy) in copies.into_iter().enumerate() {
                            let mut copy = copy.with_target(target);
                            session.give_container(&mut copy);
                        }
                    });
                })
            }
        });
        let producers = self.producers(&input);
        self.set_producers(&stream, producers);
        stream
    }

    /// Builds a source operator for node `id`. When a bounded source ends, it sends the
    /// maximum watermark, so every pending event-time window and timer fires.
    pub fn build_source<T: Data>(
        &mut self,
        id: NodeId,
        source: Arc<dyn SourceFunction<T>>,
    ) -> BatchStream<'s> {
        let ctx = self.stage_context(id);
        let control = Arc::clone(&self.run.control);
        let probe = self.probe.clone();
        let flow = self.run.flow.clone();
        let peers = self.scope.peers();
        let mut builder = OperatorBuilder::new(ctx.name.to_string(), self.scope);
        let activator = self.scope.activator_for(builder.operator_info().address);
        let (output, stream) = builder.new_output::<Batch>();
        let mut output = BatchOutput::from(output);
        let origin = stream.name().node as u32;
        let instance = InstanceId {
            operator: origin as usize,
            worker: self.worker(),
        };
        self.instances.push(instance);
        let coordinator = Arc::clone(&self.run.checkpoints);
        let scope = self.run.activation_scope.clone();
        // The watermark a source sends when its input ends, or when it drains.
        let subtask = ctx.subtask as u32;
        let final_watermark = move || {
            let end = WatermarkMessage {
                origin,
                subtask,
                value: MAX_WATERMARK,
                idle: false,
            };
            Batch::watermark(end, peers)
        };
        builder.build(move |mut capabilities| {
            let mut capability = capabilities.pop();
            let mut reader: Option<Box<dyn crate::source::SourceReader<T>>> = None;
            let mut done = coordinator.base();
            let mut epoch: u64 = checkpoint_epoch(done);
            if let Some(cap) = capability.as_mut() {
                cap.downgrade(&epoch);
            }
            let mut epoch_started = Instant::now();
            let mut epoch_records = 0usize;
            let mut buffer: Vec<T> = Vec::new();
            move |_frontiers| {
                crate::activation::in_scope(&scope, &mut || {
                    let Some(cap) = capability.as_mut() else {
                        return;
                    };
                    if ctx.subtask >= ctx.parallelism || control.should_stop() {
                        report_source_final(&coordinator, &ctx, instance, reader.as_deref());
                        capability = None;
                        return;
                    }
                    let reader_ref = reader.get_or_insert_with(|| {
                        ctx.guard(|| {
                            let created = match ctx.restore_list::<Vec<u8>>(SOURCE_SPLITS) {
                                Some(splits) => {
                                    let restored = crate::source::RestoredSplits {
                                        splits,
                                        shared: ctx
                                            .restore_list::<Vec<u8>>(SOURCE_SHARED)
                                            .unwrap_or_default(),
                                    };
                                    source.restore_reader(restored, ctx.subtask, ctx.parallelism)
                                }
                                None => source.create_reader(ctx.subtask, ctx.parallelism),
                            };
                            match created {
                                Ok(reader) => reader,
                                Err(e) => ctx.fail(e),
                            }
                        })
                    });
                    let triggered = coordinator.triggered();
                    if triggered > done {
                        // The position after every record sent so far closes each checkpoint
                        // triggered since the last look.
                        for id in done + 1..=triggered {
                            coordinator.report(
                                id,
                                source_part(&ctx, instance, Some(&**reader_ref), Some(id)),
                            );
                        }
                        done = triggered;
                        let stopping = done >= coordinator.stop_after();
                        if stopping && coordinator.drains() {
                            // Drain: the final watermark goes out before the savepoint's
                            // epoch, so that the timers and windows it fires are in the
                            // savepoint, and their output is committed with it.
                            output
                                .activate()
                                .session(&*cap)
                                .give_container(&mut final_watermark());
                        }
                        epoch = checkpoint_epoch(done);
                        cap.downgrade(&epoch);
                        epoch_started = Instant::now();
                        epoch_records = 0;
                        if stopping {
                            // Stop with a savepoint: end here (drained, or with timers and
                            // windows still pending).
                            report_source_final(&coordinator, &ctx, instance, reader.as_deref());
                            capability = None;
                            return;
                        }
                    }
                    let sub_epoch = epoch - checkpoint_epoch(done);
                    if sub_epoch + 1 >= flow.max_epochs_in_flight
                        && probe.less_than(&(epoch + 1 - flow.max_epochs_in_flight))
                    {
                        activator.activate_after(flow.blocked_poll);
                        return;
                    }
                    let Some(reader_mut) = reader.as_mut() else {
                        return;
                    };
                    let mut out = output.activate();
                    let mut session = out.session(&*cap);
                    let mut finished = false;
                    let mut wait = None;
                    for _ in 0..flow.batches_per_activation {
                        let poll = ctx.guard(|| reader_mut.poll(&mut buffer, flow.batch_size));
                        if !buffer.is_empty() {
                            ctx.counters.add_out(buffer.len());
                            epoch_records += buffer.len();
                            let mut batch = Batch::local(std::mem::replace(
                                &mut buffer,
                                Vec::with_capacity(flow.batch_size),
                            ));
                            session.give_container(&mut batch);
                        }
                        match poll {
                            Ok(SourcePoll::Ready) => {}
                            Ok(SourcePoll::Pending(delay)) => {
                                wait = Some(delay);
                                break;
                            }
                            Ok(SourcePoll::Finished) => {
                                finished = true;
                                break;
                            }
                            Err(e) => ctx.fail(e),
                        }
                        // A checkpoint triggered, or an epoch due, ends the activation at
                        // once: a slow function chained to the source would otherwise hold
                        // the barrier back for every batch left in it.
                        if epoch_records >= flow.max_epoch_records
                            || coordinator.triggered() > done
                            || epoch_started.elapsed() >= flow.epoch_cadence
                        {
                            break;
                        }
                    }
                    if finished {
                        session.give_container(&mut final_watermark());
                        drop(session);
                        report_source_final(&coordinator, &ctx, instance, reader.as_deref());
                        capability = None;
                        return;
                    }
                    drop(session);
                    if epoch_records >= flow.max_epoch_records
                        || epoch_started.elapsed() >= flow.epoch_cadence
                    {
                        epoch += 1;
                        cap.downgrade(&epoch);
                        epoch_started = Instant::now();
                        epoch_records = 0;
                    }
                    match wait {
                        Some(delay) => activator.activate_after(delay.min(flow.epoch_cadence)),
                        None => activator.activate(),
                    }
                })
            }
        });
        let producers = (0..self.parallelism(id) as u32)
            .map(|s| (origin, s))
            .collect();
        self.set_producers(&stream, producers);
        stream
    }

    #[allow(clippy::too_many_arguments)]
    fn unary_operator<I: Data, P: ParallelizationContract<u64, Batch>>(
        &mut self,
        input: BatchStream<'s>,
        pact: P,
        decode: Option<DecodeFn>,
        mut consumer: Box<dyn Consumer<I>>,
        chain: &ChainOutput,
        channels: InputChannels,
        head: NodeId,
    ) -> BatchStream<'s> {
        let parallelism = self.parallelism(head);
        let mut builder = OperatorBuilder::new(chain.name(), self.scope);
        let activator = self.scope.activator_for(builder.operator_info().address);
        let mut handle = builder.new_input(input, pact);
        let (output, stream) = builder.new_output::<Batch>();
        let mut output = BatchOutput::from(output);
        let origin = stream.name().node as u32;
        let inputs = [channels];
        let mut tracker = WatermarkTracker::new(self.expected_channels(&inputs));
        let mut core = OperatorCore::new(self, chain, activator, origin, head);
        let scope = self.run.activation_scope.clone();
        builder.build(move |mut capabilities| {
            core.held = capabilities.pop();
            move |frontiers| {
                crate::activation::in_scope(&scope, &mut || {
                    let mut out = output.activate();
                    handle.for_each(|cap, data| {
                        if core.defer(cap.least().copied().unwrap_or(0), 0, data) {
                            return;
                        }
                        if deliver_one(&mut tracker, &mut *consumer, data, decode) {
                            core.drain(&mut out.session(&cap));
                        }
                    });
                    core.after_inputs(frontiers, &mut out, &mut |signal| match signal {
                        Signal::ProcessingTime(now) => consumer.on_processing_time(now),
                        Signal::Finish => consumer.finish(),
                        Signal::Snapshot(snapshot) => consumer.snapshot(snapshot),
                        Signal::Replay(_, batch) => {
                            deliver_one(&mut tracker, &mut *consumer, batch, decode);
                        }
                    });
                })
            }
        });
        let producers = Self::output_producers(origin, &inputs, parallelism);
        self.set_producers(&stream, producers);
        stream
    }
}

/// The logic of a two-input operator.
pub trait BinaryConsumer<A, B>: 'static {
    /// Consumes records of the first input.
    fn push1(&mut self, batch: &mut Records<A>);
    /// Consumes records of the second input.
    fn push2(&mut self, batch: &mut Records<B>);
    /// The combined watermark of both inputs advanced (or both went idle).
    fn watermark(&mut self, event: WatermarkEvent);
    /// Processing time reached a time some stage asked for.
    fn on_processing_time(&mut self, now: i64);
    /// Both inputs are exhausted.
    fn finish(&mut self);
    /// Writes the operator's state for a checkpoint, then asks the next stage to.
    fn snapshot(&mut self, out: &mut OperatorSnapshot);
}

/// A source subtask's part of a checkpoint: the position of its reader's splits.
fn source_part<T>(
    ctx: &StageContext,
    instance: InstanceId,
    reader: Option<&dyn crate::source::SourceReader<T>>,
    checkpoint: Option<u64>,
) -> PartReport {
    let mut snapshot =
        checkpoint.map_or_else(OperatorSnapshot::new, OperatorSnapshot::for_checkpoint);
    if let Some((reader, splits)) = reader.and_then(|r| Some((r, r.snapshot_splits()?))) {
        if let Err(e) = snapshot.add_list(ctx.state_id(SOURCE_SPLITS), &splits, false) {
            ctx.fail(format!("cannot write the source's position: {e}"));
        }
        let shared = reader.snapshot_shared();
        if !shared.is_empty() {
            if let Err(e) = snapshot.add_list(ctx.state_id(SOURCE_SHARED), &shared, true) {
                ctx.fail(format!("cannot write the source's shared position: {e}"));
            }
        }
    }
    PartReport {
        instance,
        operator: ctx.name.to_string(),
        node: ctx.node,
        subtask: ctx.subtask,
        parallelism: ctx.parallelism,
        snapshot,
        sync: Duration::ZERO,
        alignment: Duration::ZERO,
    }
}

/// Reports a source subtask's final position.
fn report_source_final<T>(
    coordinator: &CheckpointCoordinator,
    ctx: &StageContext,
    instance: InstanceId,
    reader: Option<&dyn crate::source::SourceReader<T>>,
) {
    if let Err(e) = coordinator.report_final(source_part(ctx, instance, reader, None)) {
        ctx.fail(format!("cannot write the source's final position: {e}"));
    }
}

/// The state name of a source's positions.
const SOURCE_SPLITS: &str = "splits";

/// The state name of what a source's readers share (union list state).
const SOURCE_SHARED: &str = "shared-splits";

/// Hands one input batch of a one-input operator to its stages: a watermark through the
/// tracker, records of the main output to `push`. Returns whether the stages ran.
fn deliver_one<I: Data>(
    tracker: &mut WatermarkTracker,
    consumer: &mut dyn Consumer<I>,
    data: &mut Batch,
    decode: Option<DecodeFn>,
) -> bool {
    if let Some(message) = data.as_watermark() {
        match tracker.update(0, message) {
            Some(event) => consumer.watermark(event),
            None => return false,
        }
    } else if data.tag() == 0 {
        let mut records = data.take_records::<I>(decode);
        consumer.push(&mut records);
    } else {
        return false;
    }
    true
}

/// [`deliver_one`] for input `input` of a two-input operator.
fn deliver_two<A: Data, B: Data>(
    tracker: &mut WatermarkTracker,
    consumer: &mut dyn BinaryConsumer<A, B>,
    input: usize,
    data: &mut Batch,
    decode: (Option<DecodeFn>, Option<DecodeFn>),
) -> bool {
    if let Some(message) = data.as_watermark() {
        match tracker.update(input as u8, message) {
            Some(event) => consumer.watermark(event),
            None => return false,
        }
    } else if data.tag() == 0 {
        if input == 0 {
            let mut records = data.take_records::<A>(decode.0);
            consumer.push1(&mut records);
        } else {
            let mut records = data.take_records::<B>(decode.1);
            consumer.push2(&mut records);
        }
    } else {
        return false;
    }
    true
}

/// A call into an operator's stages that no input batch carries.
enum Signal<'a> {
    ProcessingTime(i64),
    Finish,
    /// Write the stages' state for a checkpoint (clones made meanwhile are the
    /// snapshot's copies: see `superflow_core::snapshot_copy`).
    Snapshot(&'a mut OperatorSnapshot),
    /// A batch of input `usize` held back for alignment, to process now.
    Replay(usize, &'a mut Batch),
}

/// What every Superflow operator does besides running its stages: it sends what the
/// chain queued (stamping watermarks with its channel), holds a capability at its input
/// frontier so that timers and the end of input can still emit, schedules itself for
/// processing-time wake-ups, and takes its part in checkpoints.
struct OperatorCore {
    queue: Rc<RefCell<Vec<Batch>>>,
    wake: WakeUp,
    activator: Activator,
    scheduled: Option<i64>,
    held: Option<Capability<u64>>,
    finished: bool,
    origin: u32,
    subtask: u32,
    peers: usize,
    checkpoints: CheckpointPart,
}

/// An operator subtask's part in checkpoints: when its input frontier passes a
/// checkpoint's epoch it snapshots its stages; in exactly-once mode it holds back the
/// batches of later epochs until then (alignment).
struct CheckpointPart {
    coordinator: Arc<CheckpointCoordinator>,
    aligned: bool,
    /// The checkpoints up to this one are taken: batches of epochs up to its interval
    /// are processed as they come.
    done: u64,
    deferred: Vec<(u64, usize, Batch)>,
    deferred_since: Option<Instant>,
    instance: InstanceId,
    operator: String,
    node: NodeId,
    subtask: usize,
    parallelism: usize,
}

impl CheckpointPart {
    fn report(&self, snapshot: OperatorSnapshot, sync: Duration) -> PartReport {
        PartReport {
            instance: self.instance,
            operator: self.operator.clone(),
            node: self.node,
            subtask: self.subtask,
            parallelism: self.parallelism,
            snapshot,
            sync,
            alignment: self
                .deferred_since
                .map_or(Duration::ZERO, |since| since.elapsed()),
        }
    }
}

impl OperatorCore {
    fn new(
        ctx: &mut BuildCtx<'_>,
        chain: &ChainOutput,
        activator: Activator,
        origin: u32,
        head: NodeId,
    ) -> OperatorCore {
        let instance = InstanceId {
            operator: origin as usize,
            worker: ctx.worker(),
        };
        ctx.instances.push(instance);
        let coordinator = Arc::clone(&ctx.run.checkpoints);
        OperatorCore {
            queue: Rc::clone(&chain.queue),
            wake: chain.wake.clone(),
            activator,
            scheduled: None,
            held: None,
            finished: false,
            origin,
            subtask: ctx.worker() as u32,
            peers: ctx.scope.peers(),
            checkpoints: CheckpointPart {
                aligned: coordinator.aligned(),
                done: coordinator.base(),
                coordinator,
                deferred: Vec::new(),
                deferred_since: None,
                instance,
                operator: chain.name(),
                node: head,
                subtask: ctx.worker(),
                parallelism: ctx.parallelism(head),
            },
        }
    }

    /// Holds back `data` (received at `epoch` on input `input`) if it comes after a
    /// checkpoint this subtask has not taken yet; returns whether it did.
    fn defer(&mut self, epoch: u64, input: usize, data: &mut Batch) -> bool {
        let part = &mut self.checkpoints;
        if !part.aligned || checkpoint_of_epoch(epoch) <= part.done {
            return false;
        }
        part.deferred.push((epoch, input, std::mem::take(data)));
        part.deferred_since.get_or_insert_with(Instant::now);
        true
    }

    fn drain<CT: timely::dataflow::operators::CapabilityTrait<u64>>(
        &self,
        session: &mut timely::dataflow::operators::generic::Session<
            '_,
            '_,
            u64,
            timely::container::CapacityContainerBuilder<Batch>,
            CT,
        >,
    ) {
        let mut queue = self.queue.borrow_mut();
        for batch in queue.iter_mut() {
            batch.stamp_watermark_origin(self.origin, self.subtask, self.peers);
            session.give_container(batch);
        }
        queue.clear();
    }

    /// Takes every checkpoint whose epoch the input frontier (`least`, `None` when the
    /// input ended) has passed, each followed by the held-back batches it releases.
    fn take_checkpoints(
        &mut self,
        least: Option<u64>,
        out: &mut timely::dataflow::operators::generic::OutputBuilderSession<
            '_,
            u64,
            timely::container::CapacityContainerBuilder<Batch>,
        >,
        signal: &mut dyn FnMut(Signal),
    ) {
        loop {
            let next = self.checkpoints.done + 1;
            let passed = match least {
                Some(least) => checkpoint_of_epoch(least) >= next,
                None => self
                    .checkpoints
                    .deferred
                    .iter()
                    .any(|(epoch, _, _)| checkpoint_of_epoch(*epoch) >= next),
            };
            if !passed {
                return;
            }
            let started = Instant::now();
            let mut snapshot = OperatorSnapshot::for_checkpoint(next);
            superflow_core::copy_for_snapshot(|| signal(Signal::Snapshot(&mut snapshot)));
            let report = self.checkpoints.report(snapshot, started.elapsed());
            self.checkpoints.coordinator.report(next, report);
            self.checkpoints.done = next;
            let deferred = std::mem::take(&mut self.checkpoints.deferred);
            let (due, later): (Vec<_>, Vec<_>) = deferred
                .into_iter()
                .partition(|(epoch, _, _)| checkpoint_of_epoch(*epoch) <= next);
            self.checkpoints.deferred = later;
            self.checkpoints.deferred_since =
                (!self.checkpoints.deferred.is_empty()).then(Instant::now);
            // In the order they came, not by epoch: an operator sends a periodic
            // watermark at its input frontier, an earlier epoch than records it sent
            // before it from the same checkpoint interval, and sorted the watermark
            // would overtake those records and make them late.
            for (epoch, input, mut batch) in due {
                signal(Signal::Replay(input, &mut batch));
                if let Some(held) = &self.held {
                    let cap = held.delayed(&epoch.max(*held.time()));
                    self.drain(&mut out.session(&cap));
                }
            }
        }
    }

    fn after_inputs(
        &mut self,
        frontiers: &[MutableAntichain<u64>],
        out: &mut timely::dataflow::operators::generic::OutputBuilderSession<
            '_,
            u64,
            timely::container::CapacityContainerBuilder<Batch>,
        >,
        signal: &mut dyn FnMut(Signal),
    ) {
        if self.held.is_none() {
            return;
        }
        let least = frontiers
            .iter()
            .filter_map(|f| f.frontier().iter().min().copied())
            .min();
        self.take_checkpoints(least, out, signal);
        let Some(least) = least else {
            if !self.finished {
                self.finished = true;
                signal(Signal::Finish);
                if let Some(held) = &self.held {
                    self.drain(&mut out.session(held));
                }
                let started = Instant::now();
                let mut snapshot = OperatorSnapshot::new();
                superflow_core::copy_for_snapshot(|| signal(Signal::Snapshot(&mut snapshot)));
                let report = self.checkpoints.report(snapshot, started.elapsed());
                if let Err(e) = self.checkpoints.coordinator.report_final(report) {
                    raise(
                        &self.checkpoints.operator,
                        self.checkpoints.subtask,
                        format!("cannot write the final state: {e}"),
                    );
                }
            }
            self.held = None;
            return;
        };
        if let Some(held) = &mut self.held {
            if *held.time() < least {
                held.downgrade(&least);
            }
        }
        if self.wake.next().is_none() {
            return;
        }
        let now = processing_time_now();
        if self.wake.take_due(now) {
            signal(Signal::ProcessingTime(now));
            if let Some(held) = &self.held {
                self.drain(&mut out.session(held));
            }
        }
        if let Some(at) = self.wake.next() {
            let stale = self.scheduled.is_none_or(|s| s <= now || at < s);
            if stale {
                self.scheduled = Some(at);
                self.activator
                    .activate_after(Duration::from_millis((at - now).max(0) as u64));
            }
        }
    }
}

/// An input handle whose pact type is erased, for operators with several inputs.
trait ErasedInput {
    fn for_each(
        &mut self,
        logic: &mut dyn FnMut(&timely::dataflow::operators::InputCapability<u64>, &mut Batch),
    );
}

impl<P> ErasedInput for timely::dataflow::operators::generic::InputHandleCore<u64, Batch, P>
where
    P: timely::communication::Pull<timely::dataflow::channels::Message<u64, Batch>>,
{
    fn for_each(
        &mut self,
        logic: &mut dyn FnMut(&timely::dataflow::operators::InputCapability<u64>, &mut Batch),
    ) {
        timely::dataflow::operators::generic::InputHandleCore::for_each(self, |cap, data| {
            logic(&cap, data)
        });
    }
}
