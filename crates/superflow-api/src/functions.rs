//! The user-function traits of the DataStream API.
//!
//! Every trait has a blanket implementation for the matching closure, so both
//! `stream.map(|x| x + 1)` and `stream.map(MyMapper)` work. Stateless functions take
//! `&self` and are shared by the subtasks of a process; functions with hooks or state
//! (`ProcessFunction`, `CoMapFunction`, sinks) are cloned once per subtask, as Flink
//! deserializes one instance per subtask.

use std::any::Any;
use std::marker::PhantomData;

use rustc_hash::FxHashMap;
use superflow_core::{Data, UserError};
use superflow_runtime::checkpoint::{FunctionInitializationContext, FunctionSnapshotContext};
use superflow_runtime::{side_output_tag, NodeId, Records, SideOutputSink};

/// `map`: one record in, one out.
pub trait MapFunction<I, O>: Send + Sync + 'static {
    /// Transforms one record.
    fn map(&self, value: I) -> O;
}

impl<I, O, F: Fn(I) -> O + Send + Sync + 'static> MapFunction<I, O> for F {
    #[inline]
    fn map(&self, value: I) -> O {
        self(value)
    }
}

/// `filter`: keeps the records for which it returns true.
pub trait FilterFunction<T>: Send + Sync + 'static {
    /// Whether to keep `value`.
    fn filter(&self, value: &T) -> bool;
}

impl<T, F: Fn(&T) -> bool + Send + Sync + 'static> FilterFunction<T> for F {
    #[inline]
    fn filter(&self, value: &T) -> bool {
        self(value)
    }
}

/// `flat_map`: one record in, any number out through the collector.
pub trait FlatMapFunction<I, O>: Send + Sync + 'static {
    /// Emits the records made from `value`.
    fn flat_map(&self, value: I, out: &mut Collector<O>);
}

impl<I, O, F: Fn(I, &mut Collector<O>) + Send + Sync + 'static> FlatMapFunction<I, O> for F {
    #[inline]
    fn flat_map(&self, value: I, out: &mut Collector<O>) {
        self(value, out)
    }
}

/// `reduce`: combines the running value of a key with a new record.
pub trait ReduceFunction<T>: Send + Sync + 'static {
    /// Combines `accumulated` (the previous result for the key) with `value`.
    fn reduce(&self, accumulated: T, value: T) -> T;
}

impl<T, F: Fn(T, T) -> T + Send + Sync + 'static> ReduceFunction<T> for F {
    #[inline]
    fn reduce(&self, accumulated: T, value: T) -> T {
        self(accumulated, value)
    }
}

/// `key_by`: extracts the key of a record.
pub trait KeySelector<T, K>: Send + Sync + 'static {
    /// The key of `value`.
    fn get_key(&self, value: &T) -> K;
}

impl<T, K, F: Fn(&T) -> K + Send + Sync + 'static> KeySelector<T, K> for F {
    #[inline]
    fn get_key(&self, value: &T) -> K {
        self(value)
    }
}

/// `partition_custom`: picks the partition (subtask) of a key.
pub trait Partitioner<K>: Send + Sync + 'static {
    /// The subtask, in `0..num_partitions`, for `key`.
    fn partition(&self, key: &K, num_partitions: usize) -> usize;
}

impl<K, F: Fn(&K, usize) -> usize + Send + Sync + 'static> Partitioner<K> for F {
    #[inline]
    fn partition(&self, key: &K, num_partitions: usize) -> usize {
        self(key, num_partitions)
    }
}

/// Where a stage sends the records a call emitted so far (see [`Collector`]).
type Spill<'a, O> = &'a mut dyn FnMut(&mut Vec<O>);

/// Where a batch function sends output on before its batch ends ([`ProcessFunction::
/// process_batch`]): it takes the records (leaving the batch empty), so that a record
/// that becomes millions never holds them all.
pub type SendOn<'a, O> = &'a mut dyn FnMut(&mut Records<O>);

/// Collects the records a function emits.
pub struct Collector<'a, O> {
    out: &'a mut Vec<O>,
    /// Where a stage sends what one call emitted once it holds `SPILL_AT` records, so a
    /// call that emits millions (the words of one huge line) holds a batch at a time.
    spill: Option<Spill<'a, O>>,
}

/// How many records a spilling collector holds before it sends them on.
pub(crate) const SPILL_AT: usize = 4096;

impl<'a, O> Collector<'a, O> {
    pub(crate) fn new(out: &'a mut Vec<O>) -> Self {
        Collector { out, spill: None }
    }

    /// A collector that hands `spill` its records whenever it holds `SPILL_AT`.
    pub(crate) fn spilling(out: &'a mut Vec<O>, spill: Spill<'a, O>) -> Self {
        Collector {
            out,
            spill: Some(spill),
        }
    }

    /// Emits a record.
    #[inline]
    pub fn collect(&mut self, value: O) {
        self.out.push(value);
        if let Some(spill) = &mut self.spill {
            if self.out.len() >= SPILL_AT {
                spill(self.out);
            }
        }
    }
}

/// Runs `call` (one input record's function) with a collector into `out` that sends
/// what it holds on through `send_on` every `SPILL_AT` records, then stamps the
/// record's outputs with its `timestamp`.
pub(crate) fn collect_spilling<O, R>(
    out: &mut Records<O>,
    timestamp: Option<i64>,
    send_on: SendOn<'_, O>,
    call: impl FnOnce(&mut Collector<O>) -> R,
) -> R {
    let Records { values, timestamps } = &mut *out;
    let mut spill = |full: &mut Vec<O>| {
        let mut records = Records {
            values: std::mem::take(full),
            timestamps: timestamps.take(),
        };
        records.stamp_new(timestamp);
        send_on(&mut records);
        *full = records.values;
        *timestamps = records.timestamps;
    };
    let result = call(&mut Collector::spilling(values, &mut spill));
    out.stamp_new(timestamp);
    result
}

/// Names a side output and its record type, as Flink's `OutputTag`.
#[derive(Debug)]
pub struct OutputTag<T> {
    id: String,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for OutputTag<T> {
    fn clone(&self) -> Self {
        OutputTag {
            id: self.id.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> OutputTag<T> {
    /// A tag named `id`; tags with the same id and type are the same side output.
    pub fn new(id: impl Into<String>) -> Self {
        OutputTag {
            id: id.into(),
            _type: PhantomData,
        }
    }

    /// The tag's name.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Where a function runs: its operator, subtask and parallelism.
#[derive(Debug, Clone)]
pub struct RuntimeContext {
    /// The operator's name.
    pub task_name: String,
    /// This subtask's index (0-based).
    pub subtask: usize,
    /// The operator's parallelism.
    pub parallelism: usize,
    /// The operator's max parallelism (its number of key groups).
    pub max_parallelism: usize,
}

impl RuntimeContext {
    /// This subtask's index (0-based), as Flink's `getIndexOfThisSubtask()`.
    pub fn index_of_this_subtask(&self) -> usize {
        self.subtask
    }

    /// The operator's parallelism, as Flink's `getNumberOfParallelSubtasks()`.
    pub fn number_of_parallel_subtasks(&self) -> usize {
        self.parallelism
    }

    /// The operator's max parallelism, as Flink's `getMaxNumberOfParallelSubtasks()`.
    pub fn max_number_of_parallel_subtasks(&self) -> usize {
        self.max_parallelism
    }

    /// The operator's name with this subtask, as Flink's `getTaskNameWithSubtasks()`:
    /// `name (2/4)`.
    pub fn task_name_with_subtasks(&self) -> String {
        format!(
            "{} ({}/{})",
            self.task_name,
            self.subtask + 1,
            self.parallelism
        )
    }
}

trait SideBuffer: Any {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn flush(&mut self, tag: u32, sink: &SideOutputSink);
}

struct TypedSideBuffer<T>(Records<T>);

impl<T: Data> SideBuffer for TypedSideBuffer<T> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn flush(&mut self, tag: u32, sink: &SideOutputSink) {
        sink.emit(tag, std::mem::take(&mut self.0));
    }
}

/// The context of `ProcessFunction::process_element`: the record's timestamp, the
/// current watermark, side outputs and runtime info.
pub struct ProcessContext {
    node: NodeId,
    runtime: RuntimeContext,
    side: FxHashMap<u32, Box<dyn SideBuffer>>,
    sink: SideOutputSink,
    pub(crate) timestamp: Option<i64>,
    pub(crate) watermark: i64,
}

impl ProcessContext {
    pub(crate) fn new(node: NodeId, runtime: RuntimeContext, sink: SideOutputSink) -> Self {
        ProcessContext {
            node,
            runtime,
            side: FxHashMap::default(),
            sink,
            timestamp: None,
            watermark: i64::MIN,
        }
    }

    /// The event timestamp of the current record, if the stream has timestamps.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's current event-time watermark (`i64::MIN` before the first).
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The wall clock, in milliseconds since the Unix epoch.
    pub fn current_processing_time(&self) -> i64 {
        superflow_runtime::processing_time_now()
    }

    /// Emits `value` on the side output `tag`.
    pub fn output<S: Data>(&mut self, tag: &OutputTag<S>, value: S) {
        let key = side_output_tag(self.node, &tag.id);
        let buffer = self
            .side
            .entry(key)
            .or_insert_with(|| Box::new(TypedSideBuffer::<S>(Records::default())));
        match buffer.as_any_mut().downcast_mut::<TypedSideBuffer<S>>() {
            Some(typed) => typed.0.push(value, self.timestamp),
            None => panic!(
                "side output '{}' is used with two record types; give each type its own tag",
                tag.id
            ),
        }
    }

    /// Where the function runs.
    pub fn runtime_context(&self) -> &RuntimeContext {
        &self.runtime
    }

    /// The loop of `ProcessFunction::process_batch`: `handle(record, context,
    /// collector)` for each record of `batch`, in order, with the record's timestamp
    /// set, its outputs stamped with it into `out`; stops at the first error.
    /// Every `SPILL_AT` outputs, even within one record's, they go on through `send_on`.
    pub fn each_record<I, O>(
        &mut self,
        batch: &mut Records<I>,
        out: &mut Records<O>,
        send_on: SendOn<'_, O>,
        mut handle: impl FnMut(I, &mut ProcessContext, &mut Collector<O>) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        for (value, timestamp) in batch.drain() {
            self.timestamp = timestamp;
            collect_spilling(out, timestamp, &mut *send_on, |out| {
                handle(value, self, out)
            })?;
        }
        Ok(())
    }

    pub(crate) fn flush_side_outputs(&mut self) {
        for (tag, buffer) in self.side.iter_mut() {
            buffer.flush(*tag, &self.sink);
        }
    }
}

/// A process function: per record, any number of outputs and side outputs, with
/// `open`/`close` hooks. Each subtask has its own clone, so `&mut self` state is local.
pub trait ProcessFunction<I, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before the first record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }

    /// Handles one record.
    fn process_element(
        &mut self,
        value: I,
        ctx: &mut ProcessContext,
        out: &mut Collector<O>,
    ) -> Result<(), UserError>;

    /// Handles a batch of records: `process_element` for each (`ctx.each_record`), the
    /// output in `out`, or sent on through `send_on` once there is a batch of it. A
    /// binding to an interpreter overrides it to enter the interpreter once per batch
    /// rather than once per record.
    fn process_batch(
        &mut self,
        batch: &mut Records<I>,
        ctx: &mut ProcessContext,
        out: &mut Records<O>,
        send_on: SendOn<'_, O>,
    ) -> Result<(), UserError> {
        ctx.each_record(batch, out, send_on, |value, ctx, out| {
            self.process_element(value, ctx, out)
        })
    }

    /// Called once when the input has ended.
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }

    /// Restores the function's operator state (Flink's `CheckpointedFunction`); called
    /// once, before `open`.
    fn initialize_state(
        &mut self,
        _ctx: &FunctionInitializationContext<'_>,
    ) -> Result<(), UserError> {
        Ok(())
    }

    /// Writes the function's operator state into a checkpoint.
    fn snapshot_state(&mut self, _ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), UserError> {
        Ok(())
    }
}

impl<I, O, F> ProcessFunction<I, O> for F
where
    F: FnMut(I, &mut ProcessContext, &mut Collector<O>) -> Result<(), UserError>
        + Clone
        + Send
        + Sync
        + 'static,
{
    fn process_element(
        &mut self,
        value: I,
        ctx: &mut ProcessContext,
        out: &mut Collector<O>,
    ) -> Result<(), UserError> {
        self(value, ctx, out)
    }
}

/// `connect(...).map(...)`: one output per record of either input.
pub trait CoMapFunction<A, B, O>: Clone + Send + Sync + 'static {
    /// Maps a record of the first input.
    fn map1(&mut self, value: A) -> O;
    /// Maps a record of the second input.
    fn map2(&mut self, value: B) -> O;
}

impl<A, B, O, F1, F2> CoMapFunction<A, B, O> for (F1, F2)
where
    F1: FnMut(A) -> O + Clone + Send + Sync + 'static,
    F2: FnMut(B) -> O + Clone + Send + Sync + 'static,
{
    fn map1(&mut self, value: A) -> O {
        (self.0)(value)
    }
    fn map2(&mut self, value: B) -> O {
        (self.1)(value)
    }
}

/// `connect(...).flat_map(...)`: any number of outputs per record of either input.
pub trait CoFlatMapFunction<A, B, O>: Clone + Send + Sync + 'static {
    /// Handles a record of the first input.
    fn flat_map1(&mut self, value: A, out: &mut Collector<O>);
    /// Handles a record of the second input.
    fn flat_map2(&mut self, value: B, out: &mut Collector<O>);
}

impl<A, B, O, F1, F2> CoFlatMapFunction<A, B, O> for (F1, F2)
where
    F1: FnMut(A, &mut Collector<O>) + Clone + Send + Sync + 'static,
    F2: FnMut(B, &mut Collector<O>) + Clone + Send + Sync + 'static,
{
    fn flat_map1(&mut self, value: A, out: &mut Collector<O>) {
        (self.0)(value, out)
    }
    fn flat_map2(&mut self, value: B, out: &mut Collector<O>) {
        (self.1)(value, out)
    }
}
