//! Turning the job graph into timely operators on one worker.
//!
//! A node's output is a `Stream<Batch>`, memoized by node id in [`BuildCtx`], so a node
//! with several consumers is built once. Chains are built from their tail: the tail
//! node wraps its downstream [`OneInputStage`] in its own stage and hands the result to its
//! input node ([`Attach::attach`]), until a node that heads the chain builds one timely
//! operator whose logic pushes each input batch through the composed stages. Stages
//! exchange `Vec`s (reused where possible), one dynamic call per stage per batch.

mod chain;
mod operator_core;
mod source_driver;
mod stage_context;

pub use chain::{
    side_output_tag, Attach, ChainOutput, NodeBuilder, OneInputStage, SideOutputSink, Stage,
    TwoInputStage,
};
pub use stage_context::StageContext;

use operator_core::{deliver_one, deliver_two, ErasedInput, OperatorCore, Signal};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use superflow_core::Data;
use timely::dataflow::channels::pact::{ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::Concatenate;
use timely::dataflow::{Scope, Stream};

use crate::batch::{Batch, DecodeFn};
use crate::checkpoint::{CheckpointCoordinator, InstanceId, RestoredState};
use crate::control::JobControl;
use crate::exchange::{self, PartitionKind, RouteContext, StreamPartitioner, TaggedBatchRouter};
use crate::graph::{JobGraph, JobPlan, NodeId};
use crate::metrics::WorkerMetrics;
use crate::source::FlowControl;
use crate::time::{ChannelId, WatermarkTracker};

/// A physical stream of a Superflow dataflow.
pub type BatchStream<'s> = Stream<'s, u64, Batch>;

/// The output handle of every Superflow operator.
type BatchOutput = OutputBuilder<u64, timely::container::CapacityContainerBuilder<Batch>>;

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
    pub(crate) state_backend: Arc<dyn superflow_state::StateBackend>,
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
            state_backend: Arc::clone(&self.run.state_backend),
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

    fn route_context(&self, from: NodeId, to: NodeId, kind: PartitionKind) -> RouteContext {
        let what = match kind {
            PartitionKind::Hash => "key-by",
            PartitionKind::Custom => "custom partitioner",
            _ => "partitioner",
        };
        RouteContext {
            worker: self.worker(),
            source_parallelism: self.parallelism(from),
            target_parallelism: self.parallelism(to),
            max_parallelism: self.plan.key_groups[to],
            edge: Arc::from(format!(
                "{} ({what} from {})",
                self.graph.nodes[to].name, self.graph.nodes[from].name
            )),
        }
    }

    /// Builds a chain's operator with one input: the head stage is `consumer`, fed from
    /// input `input_index` of node `id` through that edge's partitioner.
    pub fn build_unary<I: Data>(
        &mut self,
        id: NodeId,
        input_index: usize,
        consumer: Box<dyn OneInputStage<I>>,
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
                    &self.route_context(from, id, partitioner.kind),
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
        consumer: Box<dyn OneInputStage<I>>,
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
        self.pass_through_operator(name, input, move |data, give| {
            if data.tag() == tag {
                give(&mut std::mem::take(data).with_tag(0));
            }
        })
    }

    /// Builds an operator on this worker (no exchange) that passes watermarks on as
    /// they come and hands every other batch to `logic`, with where to give its output;
    /// its output has the channels of its input.
    fn pass_through_operator(
        &mut self,
        name: &str,
        input: BatchStream<'s>,
        mut logic: impl FnMut(&mut Batch, &mut dyn FnMut(&mut Batch)) + 'static,
    ) -> BatchStream<'s> {
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
                        } else {
                            logic(data, &mut |batch| out.session(&cap).give_container(batch));
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
        consumer: Box<dyn TwoInputStage<A, B>>,
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
        let receiver = core.receiver();
        let (d1, d2) = (p1.decode, p2.decode);
        let mut consumer = consumer;
        let scope = self.run.activation_scope.clone();
        builder.build(move |mut capabilities| {
            let mut handle1 = handle1;
            let mut handle2 = handle2;
            core.held = capabilities.pop();
            move |frontiers| {
                crate::activation::in_scope(&scope, &mut || {
                    core.open_once(&mut *consumer);
                    let mut out = output.activate();
                    for (input, handle) in [(0, &mut handle1), (1, &mut handle2)] {
                        handle.for_each(
                            &mut |cap: &timely::dataflow::operators::InputCapability<u64>,
                                  data: &mut Batch| {
                                if core.defer(cap.least().copied().unwrap_or(0), input, data) {
                                    return;
                                }
                                if deliver_two(
                                    &receiver,
                                    &mut tracker,
                                    &mut *consumer,
                                    input,
                                    data,
                                    (d1, d2),
                                ) {
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
                            deliver_two(
                                &receiver,
                                &mut tracker,
                                &mut *consumer,
                                input,
                                batch,
                                (d1, d2),
                            );
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
        partitioner: &StreamPartitioner,
        from: NodeId,
        to: NodeId,
    ) -> Box<dyn ErasedInput> {
        match &partitioner.router {
            None => Box::new(builder.new_input(input, Pipeline)),
            Some(factory) => {
                let pact = exchange::pact(
                    &self.routing_factory(partitioner, factory),
                    &self.route_context(from, to, partitioner.kind),
                );
                Box::new(builder.new_input(input, pact))
            }
        }
    }

    /// A broadcast edge routes the tagged copies its fan-out made; other edges use
    /// their own router.
    fn routing_factory(
        &self,
        partitioner: &StreamPartitioner,
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
        partitioner: &StreamPartitioner,
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
        let mut copier = factory(&self.route_context(from, to, partitioner.kind));
        self.pass_through_operator("Broadcast", input, move |data, give| {
            if data.tag() != 0 {
                return;
            }
            let mut copies: Vec<Batch> = (0..targets).map(|_| Batch::default()).collect();
            copier.route(data, &mut copies);
            for (target, copy) in copies.into_iter().enumerate() {
                give(&mut copy.with_target(target));
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn unary_operator<I: Data, P: ParallelizationContract<u64, Batch>>(
        &mut self,
        input: BatchStream<'s>,
        pact: P,
        decode: Option<DecodeFn>,
        mut consumer: Box<dyn OneInputStage<I>>,
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
        let receiver = core.receiver();
        let scope = self.run.activation_scope.clone();
        builder.build(move |mut capabilities| {
            core.held = capabilities.pop();
            move |frontiers| {
                crate::activation::in_scope(&scope, &mut || {
                    core.open_once(&mut *consumer);
                    let mut out = output.activate();
                    handle.for_each(|cap, data| {
                        if core.defer(cap.least().copied().unwrap_or(0), 0, data) {
                            return;
                        }
                        if deliver_one(&receiver, &mut tracker, &mut *consumer, data, decode) {
                            core.drain(&mut out.session(&cap));
                        }
                    });
                    core.after_inputs(frontiers, &mut out, &mut |signal| match signal {
                        Signal::ProcessingTime(now) => consumer.on_processing_time(now),
                        Signal::Finish => consumer.finish(),
                        Signal::Snapshot(snapshot) => consumer.snapshot(snapshot),
                        Signal::Replay(_, batch) => {
                            deliver_one(&receiver, &mut tracker, &mut *consumer, batch, decode);
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
