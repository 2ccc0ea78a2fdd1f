//! The chain stages behind each transformation. A stage consumes a batch, runs the
//! user function over every record (inlined: the function type is a generic
//! parameter), and pushes its output batch to the next stage.

use std::marker::PhantomData;
use std::sync::Arc;

use superflow_core::{Data, ExchangeData, Key};
use superflow_runtime::checkpoint::{
    FunctionInitializationContext, FunctionSnapshotContext, OperatorSnapshot,
};
use superflow_runtime::sink::{SinkContext, SinkFunction};
use superflow_runtime::{
    OneInputStage, Records, SideOutputSink, Stage, StageContext, TwoInputStage, MAX_WATERMARK,
};

use crate::functions::{
    collect_spilling, CoFlatMapFunction, CoMapFunction, Collector, FilterFunction, FlatMapFunction,
    KeySelector, MapFunction, ProcessContext, ProcessFunction, ReduceFunction, RuntimeContext,
};

/// Counts a stage's output and hands it to the next stage, keeping the buffer for reuse.
#[inline]
pub(crate) fn emit<O: 'static>(
    ctx: &StageContext,
    out: &mut Records<O>,
    next: &mut Box<dyn OneInputStage<O>>,
) {
    if out.is_empty() {
        return;
    }
    ctx.counters.add_out(out.len());
    next.push(out);
    out.clear();
}

pub(crate) fn runtime_context(ctx: &StageContext) -> RuntimeContext {
    RuntimeContext {
        task_name: ctx.name.to_string(),
        subtask: ctx.subtask,
        parallelism: ctx.parallelism,
        max_parallelism: ctx.max_parallelism,
    }
}

pub(crate) struct MapStage<I, O, F> {
    pub ctx: StageContext,
    pub f: Arc<F>,
    pub out: Records<O>,
    pub next: Box<dyn OneInputStage<O>>,
    pub _in: PhantomData<fn(I)>,
}

/// Implements [`Stage`] for a stage without hooks of its own: every signal passes on to
/// the stage in its `next` field.
macro_rules! passes_signals_on {
    ($stage:ident<$($param:ident),*>) => {
        impl<$($param: 'static),*> Stage for $stage<$($param),*> {
            fn next_stage(&mut self) -> Option<&mut dyn Stage> {
                Some(&mut *self.next)
            }
        }
    };
}

passes_signals_on!(MapStage<I, O, F>);
passes_signals_on!(FilterStage<T, F>);
passes_signals_on!(FlatMapStage<I, O, F>);
passes_signals_on!(CoMapStage<A, B, O, F>);
passes_signals_on!(CoFlatMapStage<A, B, O, F>);
passes_signals_on!(Identity<T>);

impl<I: Data, O: Data, F: MapFunction<I, O>> OneInputStage<I> for MapStage<I, O, F> {
    fn push(&mut self, batch: &mut Records<I>) {
        self.ctx.counters.add_in(batch.len());
        let (f, out) = (&self.f, &mut self.out);
        self.ctx
            .guard(|| out.values.extend(batch.values.drain(..).map(|x| f.map(x))));
        // A map keeps each record's timestamp.
        std::mem::swap(&mut out.timestamps, &mut batch.timestamps);
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
}

pub(crate) struct FilterStage<T, F> {
    pub ctx: StageContext,
    pub f: Arc<F>,
    pub next: Box<dyn OneInputStage<T>>,
}

impl<T: Data, F: FilterFunction<T>> OneInputStage<T> for FilterStage<T, F> {
    fn push(&mut self, batch: &mut Records<T>) {
        self.ctx.counters.add_in(batch.len());
        let f = &self.f;
        self.ctx.guard(|| batch.retain(|x| f.filter(x)));
        emit(&self.ctx, batch, &mut self.next);
    }
}

pub(crate) struct FlatMapStage<I, O, F> {
    pub ctx: StageContext,
    pub f: Arc<F>,
    pub out: Records<O>,
    pub next: Box<dyn OneInputStage<O>>,
    pub _in: PhantomData<fn(I)>,
}

impl<I: Data, O: Data, F: FlatMapFunction<I, O>> OneInputStage<I> for FlatMapStage<I, O, F> {
    fn push(&mut self, batch: &mut Records<I>) {
        self.ctx.counters.add_in(batch.len());
        let (f, ctx, next, out) = (&self.f, &self.ctx, &mut self.next, &mut self.out);
        // A record that flat-maps into many (one huge line into its words) sends them on
        // a batch at a time, so its output never sits whole.
        let mut send_on = |records: &mut Records<O>| emit(ctx, records, next);
        ctx.guard(|| {
            for (x, t) in batch.drain() {
                collect_spilling(out, t, &mut send_on, |c| f.flat_map(x, c));
            }
        });
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
}

pub(crate) struct ProcessStage<I, O, P> {
    pub ctx: StageContext,
    pub function: P,
    pub context: ProcessContext,
    pub out: Records<O>,
    pub next: Box<dyn OneInputStage<O>>,
    pub _in: PhantomData<fn(I)>,
}

impl<I: Data, O: Data, P: ProcessFunction<I, O>> ProcessStage<I, O, P> {
    pub fn new(
        ctx: StageContext,
        node: usize,
        function: P,
        sink: SideOutputSink,
        next: Box<dyn OneInputStage<O>>,
    ) -> Self {
        let context = ProcessContext::new(node, runtime_context(&ctx), sink);
        ProcessStage {
            ctx,
            function,
            context,
            out: Records::default(),
            next,
            _in: PhantomData,
        }
    }
}

/// Asks a function with operator state to write it into a checkpoint; an error fails
/// the job.
pub(crate) fn snapshot_function_state(
    ctx: &StageContext,
    out: &mut OperatorSnapshot,
    snapshot: impl FnOnce(&mut FunctionSnapshotContext<'_>) -> Result<(), superflow_core::UserError>,
) {
    let result = ctx.guard(|| snapshot(&mut FunctionSnapshotContext::new(ctx, out)));
    if let Err(e) = result {
        ctx.fail(format!("snapshot_state() failed: {e}"));
    }
}

/// Runs a function's `close` hook when its input ends; an error fails the job.
pub(crate) fn close_at_end(
    ctx: &StageContext,
    close: impl FnOnce() -> Result<(), superflow_core::UserError>,
) {
    if let Err(e) = ctx.guard(close) {
        ctx.fail(format!("close() failed: {e}"));
    }
}

/// Runs a function's `open` hook (the operator calls it once, before the first
/// record); an error fails the job.
pub(crate) fn open_function(
    ctx: &StageContext,
    open: impl FnOnce(&RuntimeContext) -> Result<(), superflow_core::UserError>,
) {
    let runtime = runtime_context(ctx);
    if let Err(e) = ctx.guard(|| open(&runtime)) {
        ctx.fail(format!("open() failed: {e}"));
    }
}

impl<I: Data, O: Data, P: ProcessFunction<I, O>> OneInputStage<I> for ProcessStage<I, O, P> {
    fn push(&mut self, batch: &mut Records<I>) {
        self.ctx.counters.add_in(batch.len());
        let (function, context, out) = (&mut self.function, &mut self.context, &mut self.out);
        let (ctx, next) = (&self.ctx, &mut self.next);
        let mut send_on = |records: &mut Records<O>| emit(ctx, records, next);
        let result = ctx.guard(|| function.process_batch(batch, context, out, &mut send_on));
        if let Err(e) = result {
            self.ctx.fail(e);
        }
        self.context.flush_side_outputs();
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
}

impl<I: Data, O: Data, P: ProcessFunction<I, O>> Stage for ProcessStage<I, O, P> {
    fn next_stage(&mut self) -> Option<&mut dyn Stage> {
        Some(&mut *self.next)
    }
    fn open(&mut self) {
        let (function, ctx) = (&mut self.function, &self.ctx);
        open_function(ctx, |runtime| {
            function.initialize_state(&FunctionInitializationContext::new(ctx))?;
            function.open(runtime)
        });
        self.next.open();
    }
    fn watermark(&mut self, event: superflow_runtime::WatermarkEvent) {
        if let superflow_runtime::WatermarkEvent::Watermark(w) = event {
            self.context.watermark = w;
        }
        self.next.watermark(event);
    }
    fn snapshot(&mut self, out: &mut OperatorSnapshot) {
        let function = &mut self.function;
        snapshot_function_state(&self.ctx, out, |c| function.snapshot_state(c));
        self.next.snapshot(out);
    }
    fn finish(&mut self) {
        let function = &mut self.function;
        close_at_end(&self.ctx, || function.close());
        self.next.finish();
    }
}

/// A key's value after `value`: `value` itself for the key's first record.
#[inline]
fn reduce_into<T, R: ReduceFunction<T>>(reduce: &R, accumulated: Option<T>, value: T) -> T {
    match accumulated {
        Some(accumulated) => reduce.reduce(accumulated, value),
        None => value,
    }
}

/// A rolling, per-key reduce: every record emits the key's new value. In batch mode
/// only the final value of each key is emitted, when the input ends (Flink's
/// `BatchGroupedReduceOperator`: with the timestamp `i64::MAX`).
pub(crate) struct KeyedReduceStage<T, K, KS, R> {
    pub ctx: StageContext,
    pub key: Arc<KS>,
    pub reduce: Arc<R>,
    pub state: superflow_state::SpillingMap<K, Option<T>>,
    pub out: Records<T>,
    pub next: Box<dyn OneInputStage<T>>,
    /// Batch mode: whether the final values went out.
    pub final_emitted: bool,
}

impl<T, K, KS, R> KeyedReduceStage<T, K, KS, R> {
    /// The name of the per-key results in checkpoints.
    pub const STATE: &'static str = "reduce";
}

impl<T: Clone + 'static, K, KS, R> KeyedReduceStage<T, K, KS, R>
where
    K: Key,
    T: serde::Serialize + serde::de::DeserializeOwned + Send,
{
    /// Batch mode: emits every key's value, once, at the end of the input.
    fn emit_final(&mut self) {
        if !self.ctx.runtime_mode.is_batch() || std::mem::replace(&mut self.final_emitted, true) {
            return;
        }
        let out = &mut self.out;
        self.state.retain(|_key, value| {
            if let Some(value) = value {
                out.values.push(value.clone());
            }
            true
        });
        out.timestamps = Some(vec![MAX_WATERMARK; out.values.len()]);
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
}

impl<T, K, KS, R> OneInputStage<T> for KeyedReduceStage<T, K, KS, R>
where
    T: ExchangeData,
    K: Key,
    KS: KeySelector<T, K>,
    R: ReduceFunction<T>,
{
    fn push(&mut self, batch: &mut Records<T>) {
        self.ctx.counters.add_in(batch.len());
        let (key, reduce, state, out) = (&self.key, &self.reduce, &mut self.state, &mut self.out);
        if self.ctx.runtime_mode.is_batch() {
            self.ctx.guard(|| {
                for value in batch.values.drain(..) {
                    let slot = state.get_or_insert_with(key.get_key(&value), || None);
                    *slot = Some(reduce_into(&**reduce, slot.take(), value));
                }
            });
            batch.clear();
            return;
        }
        self.ctx.guard(|| {
            for value in batch.values.drain(..) {
                let slot = state.get_or_insert_with(key.get_key(&value), || None);
                let next = reduce_into(&**reduce, slot.take(), value);
                out.values.push(next.clone());
                *slot = Some(next);
            }
        });
        // One output per input: each keeps its input's timestamp.
        std::mem::swap(&mut out.timestamps, &mut batch.timestamps);
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
}

impl<T, K, KS, R> Stage for KeyedReduceStage<T, K, KS, R>
where
    T: ExchangeData,
    K: Key,
    KS: KeySelector<T, K>,
    R: ReduceFunction<T>,
{
    fn next_stage(&mut self) -> Option<&mut dyn Stage> {
        Some(&mut *self.next)
    }
    fn watermark(&mut self, event: superflow_runtime::WatermarkEvent) {
        if event == superflow_runtime::WatermarkEvent::Watermark(MAX_WATERMARK) {
            self.emit_final();
        }
        self.next.watermark(event);
    }
    fn finish(&mut self) {
        self.emit_final();
        self.next.finish();
    }
    fn snapshot(&mut self, out: &mut OperatorSnapshot) {
        snapshot_spilling(&self.ctx, out, Self::STATE, &mut self.state);
        self.next.snapshot(out);
    }
}

/// Writes keyed state `name` held in a `SpillingMap` into a checkpoint: with the
/// embedded store, its changes since the last checkpoint (incremental); in memory, a
/// copy. Either way the data path stops only for the copy, and the writer thread
/// encodes it.
pub(crate) fn snapshot_spilling<K, V>(
    ctx: &StageContext,
    out: &mut OperatorSnapshot,
    name: &str,
    map: &mut superflow_state::SpillingMap<K, V>,
) where
    K: Key,
    V: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let id = ctx.state_id(name);
    let incremental = out
        .checkpoint()
        .and_then(|checkpoint| Some((checkpoint, ctx.checkpoints.incremental_dir(checkpoint)?)))
        .and_then(|(checkpoint, shared)| map.snapshot_incremental(checkpoint, shared));
    match incremental {
        Some(encode) => out.add_keyed_chain_later(id, encode),
        None => out.add_keyed_later(id, map.snapshot_later(ctx.max_parallelism)),
    }
}

/// Writes a copy of keyed store `name` into a checkpoint; the copy is encoded off the
/// data path.
pub(crate) fn snapshot_store<K, N, V>(
    ctx: &StageContext,
    out: &mut OperatorSnapshot,
    name: &str,
    store: &superflow_state::KeyedStore<K, N, V>,
) where
    K: Key,
    N: Key,
    V: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let copy = store.clone();
    let max_parallelism = ctx.max_parallelism;
    out.add_keyed_later(ctx.state_id(name), move || {
        Ok(copy.snapshot(max_parallelism, superflow_state::Compression::None)?)
    });
}

/// Writes keyed table `name` into a checkpoint: a copy encoded off the data path in
/// memory; with the embedded store, as a spilling map is written (incrementally).
pub(crate) fn snapshot_table<K, N, V>(
    ctx: &StageContext,
    out: &mut OperatorSnapshot,
    name: &str,
    table: &mut superflow_state::StateTable<K, N, V>,
) where
    K: Key,
    N: Key,
    V: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    match table {
        superflow_state::StateTable::Memory(store) => snapshot_store(ctx, out, name, store),
        superflow_state::StateTable::Spilling(map) => snapshot_spilling(ctx, out, name, map),
    }
}

pub(crate) struct SinkStage<T, S> {
    pub ctx: StageContext,
    pub sink: S,
    pub _in: PhantomData<fn(T)>,
}

impl<T: Data, S: SinkFunction<T>> OneInputStage<T> for SinkStage<T, S> {
    fn push(&mut self, batch: &mut Records<T>) {
        self.ctx.counters.add_in(batch.len());
        let sink = &mut self.sink;
        if let Err(e) = self.ctx.guard(|| sink.invoke_batch(&mut batch.values)) {
            self.ctx.fail(e);
        }
        batch.clear();
    }
}

impl<T: Data, S: SinkFunction<T>> Stage for SinkStage<T, S> {
    fn next_stage(&mut self) -> Option<&mut dyn Stage> {
        None
    }
    fn open(&mut self) {
        let info = SinkContext {
            subtask: self.ctx.subtask,
            parallelism: self.ctx.parallelism,
        };
        let (sink, ctx) = (&mut self.sink, &self.ctx);
        let result = ctx.guard(|| {
            sink.initialize_state(&FunctionInitializationContext::new(ctx))?;
            sink.open(&info)
        });
        if let Err(e) = result {
            self.ctx.fail(e);
        }
    }
    // A plain sink writes as records come (at least once after a restore); exactly-once
    // output goes through a `TwoPhaseCommitSink`.
    fn snapshot(&mut self, out: &mut OperatorSnapshot) {
        let sink = &mut self.sink;
        snapshot_function_state(&self.ctx, out, |c| sink.snapshot_state(c));
    }
    fn finish(&mut self) {
        let sink = &mut self.sink;
        if let Err(e) = self.ctx.guard(|| sink.finish()) {
            self.ctx.fail(e);
        }
    }
}

pub(crate) struct CoMapStage<A, B, O, F> {
    pub ctx: StageContext,
    pub f: F,
    pub out: Records<O>,
    pub next: Box<dyn OneInputStage<O>>,
    pub _in: PhantomData<fn(A, B)>,
}

impl<A: Data, B: Data, O: Data, F: CoMapFunction<A, B, O>> TwoInputStage<A, B>
    for CoMapStage<A, B, O, F>
{
    fn push1(&mut self, batch: &mut Records<A>) {
        self.ctx.counters.add_in(batch.len());
        let (f, out) = (&mut self.f, &mut self.out);
        self.ctx
            .guard(|| out.values.extend(batch.values.drain(..).map(|x| f.map1(x))));
        std::mem::swap(&mut out.timestamps, &mut batch.timestamps);
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
    fn push2(&mut self, batch: &mut Records<B>) {
        self.ctx.counters.add_in(batch.len());
        let (f, out) = (&mut self.f, &mut self.out);
        self.ctx
            .guard(|| out.values.extend(batch.values.drain(..).map(|x| f.map2(x))));
        std::mem::swap(&mut out.timestamps, &mut batch.timestamps);
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
}

pub(crate) struct CoFlatMapStage<A, B, O, F> {
    pub ctx: StageContext,
    pub f: F,
    pub out: Records<O>,
    pub next: Box<dyn OneInputStage<O>>,
    pub _in: PhantomData<fn(A, B)>,
}

impl<A: Data, B: Data, O: Data, F: CoFlatMapFunction<A, B, O>> TwoInputStage<A, B>
    for CoFlatMapStage<A, B, O, F>
{
    fn push1(&mut self, batch: &mut Records<A>) {
        self.ctx.counters.add_in(batch.len());
        let (f, out) = (&mut self.f, &mut self.out);
        self.ctx.guard(|| {
            for (x, t) in batch.drain() {
                f.flat_map1(x, &mut Collector::new(&mut out.values));
                out.stamp_new(t);
            }
        });
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
    fn push2(&mut self, batch: &mut Records<B>) {
        self.ctx.counters.add_in(batch.len());
        let (f, out) = (&mut self.f, &mut self.out);
        self.ctx.guard(|| {
            for (x, t) in batch.drain() {
                f.flat_map2(x, &mut Collector::new(&mut out.values));
                out.stamp_new(t);
            }
        });
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
}

/// Passes records through unchanged (a union input that needs its own exchange).
pub(crate) struct Identity<T> {
    pub next: Box<dyn OneInputStage<T>>,
}

impl<T: Data> OneInputStage<T> for Identity<T> {
    fn push(&mut self, batch: &mut Records<T>) {
        self.next.push(batch);
    }
}
