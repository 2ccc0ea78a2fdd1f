//! `DataStream`: the transformations, partitioners and sinks of one stream.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{de::DeserializeOwned, Serialize};
use superflow_connectors::{PrintSink, TextFileSink, WriteMode};
use superflow_core::{
    subtask_for_key, Data, ExchangeData, JobError, Key, RecordDisplay, UserError,
};
use superflow_runtime::exchange::{rescale_targets, round_robin};
use superflow_runtime::sink::{SinkFunction, TwoPhaseCommitSink};
use superflow_runtime::{
    side_output_tag, Attach, ChainingStrategy, InputEdge, NodeId, NodeKind, PartitionKind,
    StreamPartitioner,
};

use crate::env::{NodeSpec, StreamExecutionEnvironment};
use crate::functions::{
    CoFlatMapFunction, CoMapFunction, FilterFunction, FlatMapFunction, KeySelector, MapFunction,
    OutputTag, Partitioner as CustomPartitioner, ProcessFunction,
};
use crate::join::{KeyedConnectedStreams, TwoInputWindowing};
use crate::keyed::{KeyedStream, SharedKey};
use crate::nodes::{BinaryNode, SideOutputNode, StageFactory, StageNode, UnionNode};
use crate::stages::{
    CoFlatMapStage, CoMapStage, FilterStage, FlatMapStage, MapStage, ProcessStage, SinkStage,
};
use crate::watermark::{TimestampAssigner, WatermarkStrategy};
use crate::window::{
    AllWindowedStream, CountTrigger, GlobalWindows, PurgingTrigger, WindowAssigner, WindowedStream,
};

/// A stream of records of type `T`, as Flink's `DataStream`. Methods that configure
/// the operator that produced it (`name`, `set_parallelism`, ...) return the stream.
pub struct DataStream<T> {
    pub(crate) env: StreamExecutionEnvironment,
    pub(crate) id: NodeId,
    pub(crate) attach: Arc<dyn Attach<T>>,
    pub(crate) partitioner: StreamPartitioner,
    pub(crate) explicit_forward: bool,
    /// The rebalance a change of parallelism after this stream uses; `None` keeps
    /// records in their process (see [`DataStream::exchangeable`]).
    pub(crate) implicit_rebalance: Option<StreamPartitioner>,
}

impl<T> Clone for DataStream<T> {
    fn clone(&self) -> Self {
        DataStream {
            env: self.env.clone(),
            id: self.id,
            attach: Arc::clone(&self.attach),
            partitioner: self.partitioner.clone(),
            explicit_forward: self.explicit_forward,
            implicit_rebalance: self.implicit_rebalance.clone(),
        }
    }
}

impl<T: Data> DataStream<T> {
    pub(crate) fn new(
        env: StreamExecutionEnvironment,
        id: NodeId,
        attach: Arc<dyn Attach<T>>,
    ) -> Self {
        DataStream {
            env,
            id,
            attach,
            partitioner: StreamPartitioner::forward(),
            explicit_forward: false,
            implicit_rebalance: None,
        }
    }

    /// The environment this stream belongs to.
    pub fn get_execution_environment(&self) -> StreamExecutionEnvironment {
        self.env.clone()
    }

    /// The id of the operator producing this stream.
    pub fn id(&self) -> NodeId {
        self.id
    }

    pub(crate) fn input_edge(&self) -> InputEdge {
        InputEdge {
            from: self.id,
            partitioner: self.partitioner.clone(),
            explicit_forward: self.explicit_forward,
            implicit_rebalance: self
                .implicit_rebalance
                .clone()
                .unwrap_or_else(StreamPartitioner::local_rebalance::<T>),
        }
    }

    /// Adds a one-input node fed by this stream.
    pub(crate) fn one_input<O: Data>(
        &self,
        name: &str,
        kind: NodeKind,
        make: StageFactory<T, O>,
    ) -> DataStream<O> {
        let spec = NodeSpec {
            name: name.to_string(),
            kind,
            inputs: vec![self.input_edge()],
            max_parallelism: None,
            prepare: None,
        };
        let input = Arc::clone(&self.attach);
        let (id, node) = self.env.add_node(spec, |id| StageNode { id, input, make });
        DataStream::new(self.env.clone(), id, node)
    }

    // ----- operator settings -----

    /// Sets the parallelism of the operator that produces this stream.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        self.env
            .update_node(self.id, |node| node.parallelism = Some(parallelism));
        self
    }

    /// The parallelism set on this stream's operator, if any (else the job default).
    pub fn get_parallelism(&self) -> usize {
        self.env
            .node_setting(self.id, |n| n.parallelism)
            .unwrap_or_else(|| self.env.get_parallelism())
    }

    /// Sets the max parallelism of the operator that produces this stream: the bound of
    /// its parallelism across rescaling, and the number of key groups its keyed state
    /// and timers are split into (Flink's per-operator `setMaxParallelism`). Without
    /// it the operator takes the job's (`set_max_parallelism` on the environment). A
    /// checkpoint restores only with the count it was written with.
    pub fn set_max_parallelism(self, max_parallelism: usize) -> Self {
        self.env
            .update_node(self.id, |node| node.key_groups = Some(max_parallelism));
        self
    }

    /// The max parallelism of this stream's operator: its own, or the job's.
    pub fn get_max_parallelism(&self) -> usize {
        self.env
            .node_setting(self.id, |n| n.key_groups)
            .unwrap_or_else(|| self.env.get_max_parallelism())
    }

    /// Declares that the operator keeps no state (no keyed state, timers or
    /// `snapshot_state`), so that it needs no uid to restore: maps, filters and print
    /// sinks are declared so already; a binding's own functions can be.
    pub fn stateless(self) -> Self {
        self.env
            .update_node(self.id, |node| node.keeps_state = false);
        self
    }

    /// Names the operator (shown in metrics, logs and errors).
    pub fn name(self, name: &str) -> Self {
        self.env
            .update_node(self.id, |node| node.name = name.to_string());
        self
    }

    /// Sets the operator's stable id, used to match its state across job versions.
    pub fn uid(self, uid: &str) -> Self {
        self.env
            .update_node(self.id, |node| node.uid = Some(uid.to_string()));
        self
    }

    /// Keeps the operator out of any chain.
    pub fn disable_chaining(self) -> Self {
        self.env
            .update_node(self.id, |node| node.chaining = ChainingStrategy::Never);
        self
    }

    /// Starts a new chain at this operator.
    pub fn start_new_chain(self) -> Self {
        self.env
            .update_node(self.id, |node| node.chaining = ChainingStrategy::Head);
        self
    }

    // ----- transformations -----

    /// One output per record.
    pub fn map<O: Data, F: MapFunction<T, O>>(&self, f: F) -> DataStream<O> {
        let f = Arc::new(f);
        self.one_input(
            "Map",
            NodeKind::Operator,
            Arc::new(move |ctx, _chain, next| {
                Box::new(MapStage {
                    ctx: ctx.clone(),
                    f: Arc::clone(&f),
                    out: superflow_runtime::Records::default(),
                    next,
                    _in: PhantomData,
                })
            }),
        )
        .stateless()
    }

    /// Keeps the records for which `f` returns true.
    pub fn filter<F: FilterFunction<T>>(&self, f: F) -> DataStream<T> {
        let f = Arc::new(f);
        self.one_input(
            "Filter",
            NodeKind::Operator,
            Arc::new(move |ctx, _chain, next| {
                Box::new(FilterStage {
                    ctx: ctx.clone(),
                    f: Arc::clone(&f),
                    next,
                })
            }),
        )
        .stateless()
    }

    /// Any number of outputs per record, emitted through the collector.
    pub fn flat_map<O: Data, F: FlatMapFunction<T, O>>(&self, f: F) -> DataStream<O> {
        let f = Arc::new(f);
        self.one_input(
            "Flat Map",
            NodeKind::Operator,
            Arc::new(move |ctx, _chain, next| {
                Box::new(FlatMapStage {
                    ctx: ctx.clone(),
                    f: Arc::clone(&f),
                    out: superflow_runtime::Records::default(),
                    next,
                    _in: PhantomData,
                })
            }),
        )
        .stateless()
    }

    /// Assigns event timestamps to the records and generates watermarks (Flink's
    /// `assignTimestampsAndWatermarks`). Watermarks from upstream are replaced by the
    /// new ones, except the final watermark of a bounded input.
    pub fn assign_timestamps_and_watermarks<A: TimestampAssigner<T>>(
        &self,
        strategy: WatermarkStrategy<T, A>,
    ) -> DataStream<T> {
        let interval = self.env.watermark_interval_handle();
        self.one_input(
            "Timestamps/Watermarks",
            NodeKind::Operator,
            Arc::new(move |ctx, chain, next| {
                Box::new(strategy.stage(ctx, chain.wake_up(), &interval, next))
            }),
        )
    }

    /// A process function: outputs, side outputs, and open/close hooks.
    pub fn process<O: Data, P: ProcessFunction<T, O>>(&self, function: P) -> DataStream<O> {
        self.one_input(
            "Process",
            NodeKind::Operator,
            Arc::new(move |ctx, chain, next| {
                Box::new(ProcessStage::new(
                    ctx.clone(),
                    ctx.node,
                    function.clone(),
                    chain.side_output_sink(),
                    next,
                ))
            }),
        )
    }

    /// The records a process function emitted on side output `tag`.
    pub fn get_side_output<S: Data>(&self, tag: &OutputTag<S>) -> DataStream<S> {
        let spec = NodeSpec {
            name: format!("Side Output: {}", tag.id()),
            kind: NodeKind::Internal,
            inputs: vec![InputEdge {
                from: self.id,
                partitioner: StreamPartitioner::forward(),
                explicit_forward: false,
                implicit_rebalance: self
                    .implicit_rebalance
                    .clone()
                    .unwrap_or_else(StreamPartitioner::local_rebalance::<T>),
            }],
            max_parallelism: None,
            prepare: None,
        };
        let parallelism = self.env.node_setting(self.id, |n| n.parallelism);
        let (from, tag) = (self.id, side_output_tag(self.id, tag.id()));
        let (id, node) = self.env.add_node(spec, |id| SideOutputNode::<S> {
            id,
            from,
            tag,
            _type: PhantomData,
        });
        self.env.update_node(id, |n| n.parallelism = parallelism);
        DataStream::new(self.env.clone(), id, node)
    }

    /// Cuts the whole stream into windows, evaluated by one subtask (Flink's `windowAll`).
    pub fn window_all<A: WindowAssigner<T>>(
        &self,
        assigner: A,
    ) -> AllWindowedStream<T, A, A::DefaultTrigger>
    where
        T: ExchangeData,
    {
        let all: fn(&T) = |_| ();
        let keyed = self.key_by(all);
        WindowedStream::new(keyed.as_stream(), Arc::new(all), assigner, true)
    }

    /// Windows of `size` records over the whole stream (Flink's `countWindowAll`).
    pub fn count_window_all(
        &self,
        size: u64,
    ) -> AllWindowedStream<T, GlobalWindows, PurgingTrigger<CountTrigger>>
    where
        T: ExchangeData,
    {
        self.window_all(GlobalWindows::create())
            .trigger(PurgingTrigger::of(CountTrigger::of(size)))
    }

    /// Joins this stream with `other` per key and window (Flink's `join`): continue with
    /// `where_`, `equal_to`, `window` and `apply`.
    pub fn join<B: ExchangeData>(&self, other: &DataStream<B>) -> TwoInputWindowing<T, B>
    where
        T: ExchangeData,
    {
        TwoInputWindowing {
            first: self.clone(),
            second: other.clone(),
        }
    }

    /// Co-groups this stream with `other` per key and window (Flink's `coGroup`):
    /// continue with `where_`, `equal_to`, `window` and `co_group`.
    pub fn co_group<B: ExchangeData>(&self, other: &DataStream<B>) -> TwoInputWindowing<T, B>
    where
        T: ExchangeData,
    {
        self.join(other)
    }

    /// Partitions the stream by key; aggregations on the result are per key.
    pub fn key_by<K: Key, KS: KeySelector<T, K>>(&self, key_selector: KS) -> KeyedStream<T, K, KS>
    where
        T: Serialize + DeserializeOwned,
    {
        KeyedStream::new(self.clone(), key_selector)
    }

    /// Merges this stream with others of the same type.
    pub fn union(&self, others: &[&DataStream<T>]) -> DataStream<T> {
        let mut inputs = vec![self.input_edge()];
        inputs.extend(others.iter().map(|s| s.input_edge()));
        let spec = NodeSpec {
            name: "Union".into(),
            kind: NodeKind::Union,
            inputs,
            max_parallelism: None,
            prepare: None,
        };
        let (id, node) = self.env.add_node(spec, |id| UnionNode::<T> {
            id,
            _type: PhantomData,
        });
        DataStream::new(self.env.clone(), id, node)
    }

    /// Connects this stream with another, for a co-map or co-flat-map over both.
    pub fn connect<B: Data>(&self, other: &DataStream<B>) -> ConnectedStreams<T, B> {
        ConnectedStreams {
            first: self.clone(),
            second: other.clone(),
        }
    }

    // ----- partitioning -----

    pub(crate) fn with_partitioner(&self, partitioner: StreamPartitioner) -> DataStream<T> {
        let mut stream = self.clone();
        stream.partitioner = partitioner;
        stream.explicit_forward = false;
        stream
    }

    /// Keeps records on the producing subtask; the parallelism must not change.
    pub fn forward(&self) -> DataStream<T> {
        let mut stream = self.with_partitioner(StreamPartitioner::forward());
        stream.explicit_forward = true;
        stream
    }

    /// Round-robin over all downstream subtasks.
    pub fn rebalance(&self) -> DataStream<T>
    where
        T: ExchangeData,
    {
        self.with_partitioner(rebalance_partitioner::<T>())
    }

    /// Lets the implicit rebalance that a change of parallelism after this stream
    /// inserts cross processes, serializing the records. Without it, records of a job
    /// on several processes are only rebalanced through an explicit partitioner.
    pub fn exchangeable(mut self) -> Self
    where
        T: ExchangeData,
    {
        self.implicit_rebalance = Some(rebalance_partitioner::<T>());
        self
    }

    /// Round-robin over a local subset of the downstream subtasks.
    pub fn rescale(&self) -> DataStream<T>
    where
        T: ExchangeData,
    {
        self.with_partitioner(StreamPartitioner::by_target::<T, _, _>(
            PartitionKind::Rescale,
            |ctx| {
                let targets = rescale_targets(ctx);
                let mut next = 0usize;
                move |_: &T| {
                    let target = targets.start + next % targets.len();
                    next += 1;
                    target
                }
            },
        ))
    }

    /// Uniformly random partitioning.
    pub fn shuffle(&self) -> DataStream<T>
    where
        T: ExchangeData,
    {
        self.with_partitioner(StreamPartitioner::by_target::<T, _, _>(
            PartitionKind::Shuffle,
            |ctx| {
                // xorshift64*, seeded per worker: cheap and good enough to spread load.
                let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ ((ctx.worker as u64 + 1) << 17);
                let n = ctx.target_parallelism as u64;
                move |_: &T| {
                    state ^= state >> 12;
                    state ^= state << 25;
                    state ^= state >> 27;
                    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n) as usize
                }
            },
        ))
    }

    /// Every record to every downstream subtask.
    pub fn broadcast(&self) -> DataStream<T>
    where
        T: ExchangeData,
    {
        let factory: superflow_runtime::exchange::RouterFactory = Arc::new(|ctx| {
            Box::new(BroadcastCopier::<T> {
                targets: ctx.target_parallelism,
                _type: PhantomData,
            }) as Box<dyn superflow_runtime::exchange::BatchRouter>
        });
        self.with_partitioner(StreamPartitioner {
            kind: PartitionKind::Broadcast,
            router: Some(factory),
            decode: Some(superflow_runtime::batch::decoder_for::<T>()),
        })
    }

    /// Everything to the first downstream subtask.
    pub fn global(&self) -> DataStream<T>
    where
        T: ExchangeData,
    {
        self.with_partitioner(StreamPartitioner::by_target::<T, _, _>(
            PartitionKind::Global,
            |_ctx| |_: &T| 0,
        ))
    }

    /// Partitions by `partitioner` applied to the key `key_selector` extracts.
    pub fn partition_custom<K, P, KS>(&self, partitioner: P, key_selector: KS) -> DataStream<T>
    where
        T: ExchangeData,
        K: 'static,
        P: CustomPartitioner<K>,
        KS: KeySelector<T, K>,
    {
        let partitioner = Arc::new(partitioner);
        let key_selector = Arc::new(key_selector);
        self.with_partitioner(StreamPartitioner::by_target::<T, _, _>(
            PartitionKind::Custom,
            move |ctx| {
                let (p, k) = (Arc::clone(&partitioner), Arc::clone(&key_selector));
                let n = ctx.target_parallelism;
                move |x: &T| p.partition(&k.get_key(x), n)
            },
        ))
    }

    // ----- sinks -----

    /// Writes every record to `sink`; each subtask gets its own clone.
    pub fn add_sink<S: SinkFunction<T> + Clone>(&self, sink: S) -> DataStream<()> {
        // The prototype is shared by the worker threads, which clone it one at a time.
        let prototype = Mutex::new(sink);
        self.one_input(
            "Sink",
            NodeKind::Sink,
            Arc::new(move |ctx, _chain, _next| {
                let sink = match prototype.lock() {
                    Ok(sink) => sink.clone(),
                    Err(poisoned) => poisoned.into_inner().clone(),
                };
                Box::new(SinkStage {
                    ctx: ctx.clone(),
                    sink,
                    _in: PhantomData,
                })
            }),
        )
    }

    /// Writes every record to a transactional sink (Flink's `sinkTo` with a
    /// `TwoPhaseCommitSinkFunction`): exactly-once output with checkpoints; without
    /// them, the output is committed when the job finishes.
    pub fn sink_to<S: TwoPhaseCommitSink<T> + Clone>(&self, sink: S) -> DataStream<()> {
        let prototype = Mutex::new(sink);
        self.one_input(
            "Transactional Sink",
            NodeKind::Sink,
            Arc::new(move |ctx, chain, _next| {
                let sink = match prototype.lock() {
                    Ok(sink) => sink.clone(),
                    Err(poisoned) => poisoned.into_inner().clone(),
                };
                Box::new(crate::two_phase::TwoPhaseCommitStage::new(
                    ctx,
                    chain.wake_up(),
                    sink,
                ))
            }),
        )
    }

    /// Prints every record to stdout, prefixed with `N> ` when the parallelism is above 1.
    pub fn print(&self) -> DataStream<()>
    where
        T: RecordDisplay,
    {
        self.add_sink(PrintSink::stdout())
            .name("Print to Std. Out")
            .stateless()
    }

    /// Prints every record to stdout, each line prefixed with `identifier` (Flink's
    /// `print(sinkIdentifier)`): `id:N> record` above parallelism one, `id> record` at one.
    pub fn print_with_identifier(&self, identifier: &str) -> DataStream<()>
    where
        T: RecordDisplay,
    {
        self.add_sink(PrintSink::stdout().with_identifier(identifier))
            .name("Print to Std. Out")
            .stateless()
    }

    /// Prints every record to stderr.
    pub fn print_to_err(&self) -> DataStream<()>
    where
        T: RecordDisplay,
    {
        self.add_sink(PrintSink::stderr())
            .name("Print to Std. Err")
            .stateless()
    }

    /// Writes records as text lines to `path` (a directory of per-subtask files when the
    /// sink's parallelism is above 1). Fails if the file exists.
    pub fn write_as_text(&self, path: impl Into<PathBuf>) -> DataStream<()>
    where
        T: RecordDisplay,
    {
        self.write_as_text_with_mode(path, WriteMode::NoOverwrite)
    }

    /// Writes records as text lines, with an explicit overwrite mode.
    pub fn write_as_text_with_mode(
        &self,
        path: impl Into<PathBuf>,
        mode: WriteMode,
    ) -> DataStream<()>
    where
        T: RecordDisplay,
    {
        let path = path.into();
        let name = format!("Text Sink: {}", path.display());
        self.add_sink(TextFileSink::new(path, mode)).name(&name)
    }

    /// Runs the job and returns the records of this stream (of this process's subtasks,
    /// when the job runs on several processes).
    pub fn execute_and_collect(&self) -> Result<Vec<T>, JobError> {
        self.execute_and_collect_named("collect")
    }

    /// [`execute_and_collect`](Self::execute_and_collect) with a job name.
    pub fn execute_and_collect_named(&self, job_name: &str) -> Result<Vec<T>, JobError> {
        let results = Arc::new(Mutex::new(Vec::new()));
        self.add_sink(CollectSink {
            shared: Arc::clone(&results),
            local: Vec::new(),
        })
        .name("Collect Sink");
        self.env.execute(job_name)?;
        let mut guard = results
            .lock()
            .map_err(|_| JobError::Internal("collect sink poisoned".into()))?;
        Ok(std::mem::take(&mut *guard))
    }
}

fn rebalance_partitioner<T: ExchangeData>() -> StreamPartitioner {
    StreamPartitioner::by_target::<T, _, _>(PartitionKind::Rebalance, |ctx| {
        let mut next = round_robin(ctx);
        move |_: &T| next()
    })
}

/// Gathers a subtask's records, and hands them over when the input ends.
struct CollectSink<T> {
    shared: Arc<Mutex<Vec<T>>>,
    local: Vec<T>,
}

impl<T> Clone for CollectSink<T> {
    fn clone(&self) -> Self {
        CollectSink {
            shared: Arc::clone(&self.shared),
            local: Vec::new(),
        }
    }
}

impl<T: Data> SinkFunction<T> for CollectSink<T> {
    fn invoke(&mut self, value: T) -> Result<(), UserError> {
        self.local.push(value);
        Ok(())
    }
    fn invoke_batch(&mut self, values: &mut Vec<T>) -> Result<(), UserError> {
        self.local.append(values);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), UserError> {
        let mut shared = self.shared.lock().map_err(|_| "collect sink poisoned")?;
        shared.append(&mut self.local);
        Ok(())
    }
}

/// Copies a batch once per target, before a broadcast exchange.
struct BroadcastCopier<T> {
    targets: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T: ExchangeData> superflow_runtime::exchange::BatchRouter for BroadcastCopier<T> {
    fn route(
        &mut self,
        batch: &mut superflow_runtime::Batch,
        out: &mut [superflow_runtime::Batch],
    ) {
        let records = batch.take_records::<T>(None);
        for slot in out.iter_mut().take(self.targets) {
            *slot = superflow_runtime::Batch::exchangeable_records(records.clone());
        }
    }
}

/// Two streams connected for a co-map or co-flat-map.
pub struct ConnectedStreams<A, B> {
    pub(crate) first: DataStream<A>,
    pub(crate) second: DataStream<B>,
}

impl<A: Data, B: Data> ConnectedStreams<A, B> {
    pub(crate) fn binary<O: Data>(
        &self,
        name: &str,
        make: crate::nodes::BinaryStageFactory<A, B, O>,
    ) -> DataStream<O> {
        let spec = NodeSpec {
            name: name.to_string(),
            kind: NodeKind::TwoInput,
            inputs: vec![self.first.input_edge(), self.second.input_edge()],
            max_parallelism: None,
            prepare: None,
        };
        let env = self.first.env.clone();
        let (id, node) = env.add_node(spec, |id| BinaryNode { id, make });
        DataStream::new(env, id, node)
    }

    /// Maps records of both inputs to one output type.
    pub fn map<O: Data, F: CoMapFunction<A, B, O>>(&self, f: F) -> DataStream<O> {
        self.binary(
            "Co-Map",
            Arc::new(move |ctx, _chain, next| {
                Box::new(CoMapStage {
                    ctx: ctx.clone(),
                    f: f.clone(),
                    out: superflow_runtime::Records::default(),
                    next,
                    _in: PhantomData,
                })
            }),
        )
        .stateless()
    }

    /// Flat-maps records of both inputs to one output type.
    pub fn flat_map<O: Data, F: CoFlatMapFunction<A, B, O>>(&self, f: F) -> DataStream<O> {
        self.binary(
            "Co-Flat Map",
            Arc::new(move |ctx, _chain, next| {
                Box::new(CoFlatMapStage {
                    ctx: ctx.clone(),
                    f: f.clone(),
                    out: superflow_runtime::Records::default(),
                    next,
                    _in: PhantomData,
                })
            }),
        )
        .stateless()
    }

    /// Partitions both inputs by key, so records with equal keys meet in one subtask.
    pub fn key_by<K, KA, KB>(&self, key_a: KA, key_b: KB) -> KeyedConnectedStreams<A, B, K, KA, KB>
    where
        A: ExchangeData,
        B: ExchangeData,
        K: Key,
        KA: KeySelector<A, K>,
        KB: KeySelector<B, K>,
    {
        let (key_a, key_b) = (Arc::new(key_a), Arc::new(key_b));
        KeyedConnectedStreams {
            streams: ConnectedStreams {
                first: self
                    .first
                    .with_partitioner(hash_partitioner(SharedKey(Arc::clone(&key_a)))),
                second: self
                    .second
                    .with_partitioner(hash_partitioner(SharedKey(Arc::clone(&key_b)))),
            },
            key_a,
            key_b,
            _key: PhantomData,
        }
    }
}

/// The key-group partitioner for key selector `key`.
pub(crate) fn hash_partitioner<T: ExchangeData, K: Key, KS: KeySelector<T, K>>(
    key: KS,
) -> StreamPartitioner {
    let key = Arc::new(key);
    StreamPartitioner::by_target::<T, _, _>(PartitionKind::Hash, move |ctx| {
        let key = Arc::clone(&key);
        let (max_parallelism, parallelism) = (ctx.max_parallelism, ctx.target_parallelism);
        move |x: &T| subtask_for_key(&key.get_key(x), max_parallelism, parallelism)
    })
}
