//! Turning the job graph into timely operators on one worker.
//!
//! A node's output is a `Stream<Batch>`, memoized by node id in [`BuildCtx`], so a node
//! with several consumers is built once. Chains are built from their tail: the tail
//! node wraps its downstream [`Consumer`] in its own stage and hands the result to its
//! input node ([`Attach::attach`]), until a node that heads the chain builds one timely
//! operator whose logic pushes each input batch through the composed stages. Stages
//! exchange `Vec`s (reused where possible), one dynamic call per stage per batch.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use superflow_core::Data;
use timely::dataflow::channels::pact::{ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::Concatenate;
use timely::dataflow::{Scope, Stream};

use crate::batch::{Batch, DecodeFn};
use crate::control::JobControl;
use crate::exchange::{self, PartitionKind, Partitioner, RouteContext, TaggedBatchRouter};
use crate::failure::{guard, raise};
use crate::graph::{JobGraph, JobPlan, NodeId};
use crate::metrics::{OperatorCounters, WorkerMetrics};
use crate::source::{FlowControl, SourceFunction, SourcePoll};

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

/// One stage of a chain, seen from upstream: it takes batches of `T`.
pub trait Consumer<T>: 'static {
    /// Consumes the records of `batch` (leaving it empty, its capacity for reuse).
    fn push(&mut self, batch: &mut Vec<T>);
    /// The input is exhausted: flush and close.
    fn finish(&mut self) {}
}

/// Where a chain's last stage puts its output, and the chain's name.
pub struct ChainOutput {
    queue: Rc<RefCell<Vec<Batch>>>,
    names: Vec<String>,
}

impl ChainOutput {
    /// A new, empty chain output.
    pub fn new() -> ChainOutput {
        ChainOutput {
            queue: Rc::new(RefCell::new(Vec::new())),
            names: Vec::new(),
        }
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
    fn push(&mut self, batch: &mut Vec<T>) {
        if !batch.is_empty() {
            self.queue
                .borrow_mut()
                .push(Batch::local(std::mem::take(batch)).with_tag(self.tag));
        }
    }
}

/// Where a stage puts side-output records: batches tagged with the side output's tag,
/// on the same physical stream as the main output.
#[derive(Clone)]
pub struct SideOutputSink {
    queue: Rc<RefCell<Vec<Batch>>>,
}

impl SideOutputSink {
    /// Emits `records` on side output `tag`.
    pub fn emit<T: Data>(&self, tag: u32, records: Vec<T>) {
        if !records.is_empty() {
            self.queue
                .borrow_mut()
                .push(Batch::local(records).with_tag(tag));
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
    /// The job's max parallelism.
    pub max_parallelism: usize,
    /// The operator's record counters on this worker.
    pub counters: Rc<OperatorCounters>,
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
}

/// Per-worker state while the dataflow is built.
pub struct BuildCtx<'s> {
    scope: Scope<'s, u64>,
    graph: Arc<JobGraph>,
    plan: Arc<JobPlan>,
    streams: HashMap<NodeId, BatchStream<'s>>,
    control: Arc<JobControl>,
    metrics: Rc<WorkerMetrics>,
    probe: ProbeHandle<u64>,
    flow: FlowControl,
}

impl<'s> BuildCtx<'s> {
    pub(crate) fn new(
        scope: Scope<'s, u64>,
        graph: Arc<JobGraph>,
        plan: Arc<JobPlan>,
        control: Arc<JobControl>,
        metrics: Rc<WorkerMetrics>,
        probe: ProbeHandle<u64>,
        flow: FlowControl,
    ) -> BuildCtx<'s> {
        BuildCtx {
            scope,
            graph,
            plan,
            streams: HashMap::new(),
            control,
            metrics,
            probe,
            flow,
        }
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
            max_parallelism: self.plan.max_parallelism,
            counters: self.metrics.counters(id),
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

    /// Merges the outputs of several nodes (a union).
    pub fn concatenate(&mut self, streams: Vec<BatchStream<'s>>) -> BatchStream<'s> {
        self.scope.concatenate(streams)
    }

    fn route_context(&self, from: NodeId, to: NodeId) -> RouteContext {
        RouteContext {
            worker: self.worker(),
            source_parallelism: self.parallelism(from),
            target_parallelism: self.parallelism(to),
            max_parallelism: self.plan.max_parallelism,
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
        let name = chain.name();
        let queue = Rc::clone(&chain.queue);
        let decode = partitioner.decode;
        match &partitioner.router {
            None => unary_operator(self.scope, name, input, Pipeline, decode, consumer, queue),
            Some(factory) => {
                let pact = exchange::pact(
                    &self.routing_factory(&partitioner, factory),
                    &self.route_context(from, id),
                );
                unary_operator(self.scope, name, input, pact, decode, consumer, queue)
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
        unary_operator(
            self.scope,
            chain.name(),
            input,
            Pipeline,
            None,
            consumer,
            Rc::clone(&chain.queue),
        )
    }

    /// Builds the operator that selects side output `tag` from node `from`'s stream and
    /// turns it into a main output.
    pub fn build_side_output_selector(
        &mut self,
        from: NodeId,
        tag: u32,
        name: &str,
    ) -> BatchStream<'s> {
        let input = self.stream(from);
        let mut builder = OperatorBuilder::new(name.to_string(), self.scope);
        let mut handle = builder.new_input(input, Pipeline);
        let (output, stream) = builder.new_output::<Batch>();
        let mut output = BatchOutput::from(output);
        builder.build(move |_caps| {
            move |_frontiers| {
                let mut out = output.activate();
                handle.for_each(|cap, data| {
                    if data.tag() == tag {
                        let mut batch = std::mem::take(data).with_tag(0);
                        out.session(&cap).give_container(&mut batch);
                    }
                });
            }
        });
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
        let mut builder = OperatorBuilder::new(chain.name(), self.scope);
        let handle1 = self.add_input(&mut builder, input1, &p1, from1, id);
        let handle2 = self.add_input(&mut builder, input2, &p2, from2, id);
        let (output, stream) = builder.new_output::<Batch>();
        let mut output = BatchOutput::from(output);
        let queue = Rc::clone(&chain.queue);
        let (d1, d2) = (p1.decode, p2.decode);
        let consumer = Rc::new(RefCell::new(consumer));
        builder.build(move |_capabilities| {
            let mut handle1 = handle1;
            let mut handle2 = handle2;
            let mut finished = false;
            move |frontiers| {
                let mut out = output.activate();
                handle1.for_each(
                    &mut |cap: &timely::dataflow::operators::InputCapability<u64>,
                          data: &mut Batch| {
                        if data.tag() != 0 {
                            return;
                        }
                        let mut records = data.take_vec::<A>(d1);
                        consumer.borrow_mut().push1(&mut records);
                        drain_queue(&queue, &mut out.session(cap));
                    },
                );
                handle2.for_each(
                    &mut |cap: &timely::dataflow::operators::InputCapability<u64>,
                          data: &mut Batch| {
                        if data.tag() != 0 {
                            return;
                        }
                        let mut records = data.take_vec::<B>(d2);
                        consumer.borrow_mut().push2(&mut records);
                        drain_queue(&queue, &mut out.session(cap));
                    },
                );
                if !finished && frontiers.iter().all(|f| f.is_empty()) {
                    finished = true;
                    consumer.borrow_mut().finish();
                    queue.borrow_mut().clear();
                }
            }
        });
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
    /// exact across the exchange).
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
        let mut handle = builder.new_input(input, Pipeline);
        let (output, stream) = builder.new_output::<Batch>();
        let mut output = BatchOutput::from(output);
        builder.build(move |_caps| {
            move |_frontiers| {
                let mut out = output.activate();
                handle.for_each(|cap, data| {
                    if data.tag() != 0 {
                        return;
                    }
                    let mut copies: Vec<Batch> = (0..targets).map(|_| Batch::default()).collect();
                    copier.route(data, &mut copies);
                    let mut session = out.session(&cap);
                    for (target, copy) in copies.into_iter().enumerate() {
                        let mut copy = copy.with_target(target);
                        session.give_container(&mut copy);
                    }
                });
            }
        });
        stream
    }

    /// Builds a source operator for node `id`.
    pub fn build_source<T: Data>(
        &mut self,
        id: NodeId,
        source: Arc<dyn SourceFunction<T>>,
    ) -> BatchStream<'s> {
        let ctx = self.stage_context(id);
        let control = Arc::clone(&self.control);
        let probe = self.probe.clone();
        let flow = self.flow.clone();
        let mut builder = OperatorBuilder::new(ctx.name.to_string(), self.scope);
        let activator = self.scope.activator_for(builder.operator_info().address);
        let (output, stream) = builder.new_output::<Batch>();
        let mut output = BatchOutput::from(output);
        builder.build(move |mut capabilities| {
            let mut capability = capabilities.pop();
            if ctx.subtask >= ctx.parallelism {
                capability = None;
            }
            let mut reader = None;
            let mut epoch: u64 = 0;
            let mut epoch_started = Instant::now();
            let mut epoch_records = 0usize;
            let mut buffer: Vec<T> = Vec::new();
            move |_frontiers| {
                let Some(cap) = capability.as_mut() else {
                    return;
                };
                if control.should_stop() {
                    capability = None;
                    return;
                }
                if epoch + 1 >= flow.max_epochs_in_flight
                    && probe.less_than(&(epoch + 1 - flow.max_epochs_in_flight))
                {
                    activator.activate_after(flow.blocked_poll);
                    return;
                }
                let reader = reader.get_or_insert_with(|| {
                    ctx.guard(
                        || match source.create_reader(ctx.subtask, ctx.parallelism) {
                            Ok(reader) => reader,
                            Err(e) => ctx.fail(e),
                        },
                    )
                });
                let mut out = output.activate();
                let mut session = out.session(&*cap);
                let mut finished = false;
                let mut wait = None;
                for _ in 0..flow.batches_per_activation {
                    let poll = ctx.guard(|| reader.poll(&mut buffer, flow.batch_size));
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
                    if epoch_records >= flow.max_epoch_records {
                        break;
                    }
                }
                drop(session);
                if finished {
                    capability = None;
                    return;
                }
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
            }
        });
        stream
    }
}

/// The logic of a two-input operator.
pub trait BinaryConsumer<A, B>: 'static {
    /// Consumes records of the first input.
    fn push1(&mut self, batch: &mut Vec<A>);
    /// Consumes records of the second input.
    fn push2(&mut self, batch: &mut Vec<B>);
    /// Both inputs are exhausted.
    fn finish(&mut self) {}
}

fn drain_queue<CT: timely::dataflow::operators::CapabilityTrait<u64>>(
    queue: &Rc<RefCell<Vec<Batch>>>,
    session: &mut timely::dataflow::operators::generic::Session<
        '_,
        '_,
        u64,
        timely::container::CapacityContainerBuilder<Batch>,
        CT,
    >,
) {
    let mut queue = queue.borrow_mut();
    for batch in queue.iter_mut() {
        session.give_container(batch);
    }
    queue.clear();
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

fn unary_operator<'s, I: Data, P: ParallelizationContract<u64, Batch>>(
    scope: Scope<'s, u64>,
    name: String,
    input: BatchStream<'s>,
    pact: P,
    decode: Option<DecodeFn>,
    mut consumer: Box<dyn Consumer<I>>,
    queue: Rc<RefCell<Vec<Batch>>>,
) -> BatchStream<'s> {
    let mut builder = OperatorBuilder::new(name, scope);
    let mut handle = builder.new_input(input, pact);
    let (output, stream) = builder.new_output::<Batch>();
    let mut output = BatchOutput::from(output);
    builder.build(move |_capabilities| {
        let mut finished = false;
        move |frontiers| {
            let mut out = output.activate();
            handle.for_each(|cap, data| {
                if data.tag() != 0 {
                    return;
                }
                let mut records = data.take_vec::<I>(decode);
                consumer.push(&mut records);
                drain_queue(&queue, &mut out.session(&cap));
            });
            if !finished && frontiers[0].is_empty() {
                finished = true;
                consumer.finish();
                // Output produced while closing has no epoch left to belong to.
                queue.borrow_mut().clear();
            }
        }
    });
    stream
}
