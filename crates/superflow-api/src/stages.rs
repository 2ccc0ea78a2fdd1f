//! The chain stages behind each transformation. A stage consumes a batch, runs the
//! user function over every record (inlined: the function type is a generic
//! parameter), and pushes its output batch to the next stage.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use superflow_connectors::{SinkContext, SinkFunction};
use superflow_core::Data;
use superflow_runtime::{BinaryConsumer, Consumer, SideOutputSink, StageContext};

use crate::functions::{
    CoFlatMapFunction, CoMapFunction, Collector, FilterFunction, FlatMapFunction, KeySelector,
    MapFunction, ProcessContext, ProcessFunction, ReduceFunction, RuntimeContext,
};

/// Counts a stage's output and hands it to the next stage, keeping the buffer for reuse.
#[inline]
fn emit<O: 'static>(ctx: &StageContext, out: &mut Vec<O>, next: &mut Box<dyn Consumer<O>>) {
    ctx.counters.add_out(out.len());
    next.push(out);
    out.clear();
}

fn runtime_context(ctx: &StageContext) -> RuntimeContext {
    RuntimeContext {
        task_name: ctx.name.to_string(),
        subtask: ctx.subtask,
        parallelism: ctx.parallelism,
    }
}

pub(crate) struct MapStage<I, O, F> {
    pub ctx: StageContext,
    pub f: Arc<F>,
    pub out: Vec<O>,
    pub next: Box<dyn Consumer<O>>,
    pub _in: PhantomData<fn(I)>,
}

impl<I: Data, O: Data, F: MapFunction<I, O>> Consumer<I> for MapStage<I, O, F> {
    fn push(&mut self, batch: &mut Vec<I>) {
        self.ctx.counters.add_in(batch.len());
        let (f, out) = (&self.f, &mut self.out);
        self.ctx
            .guard(|| out.extend(batch.drain(..).map(|x| f.map(x))));
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
    fn finish(&mut self) {
        self.next.finish();
    }
}

pub(crate) struct FilterStage<T, F> {
    pub ctx: StageContext,
    pub f: Arc<F>,
    pub next: Box<dyn Consumer<T>>,
}

impl<T: Data, F: FilterFunction<T>> Consumer<T> for FilterStage<T, F> {
    fn push(&mut self, batch: &mut Vec<T>) {
        self.ctx.counters.add_in(batch.len());
        let f = &self.f;
        self.ctx.guard(|| batch.retain(|x| f.filter(x)));
        self.ctx.counters.add_out(batch.len());
        self.next.push(batch);
    }
    fn finish(&mut self) {
        self.next.finish();
    }
}

pub(crate) struct FlatMapStage<I, O, F> {
    pub ctx: StageContext,
    pub f: Arc<F>,
    pub out: Vec<O>,
    pub next: Box<dyn Consumer<O>>,
    pub _in: PhantomData<fn(I)>,
}

impl<I: Data, O: Data, F: FlatMapFunction<I, O>> Consumer<I> for FlatMapStage<I, O, F> {
    fn push(&mut self, batch: &mut Vec<I>) {
        self.ctx.counters.add_in(batch.len());
        let (f, out) = (&self.f, &mut self.out);
        self.ctx.guard(|| {
            let mut collector = Collector::new(out);
            for x in batch.drain(..) {
                f.flat_map(x, &mut collector);
            }
        });
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
    fn finish(&mut self) {
        self.next.finish();
    }
}

pub(crate) struct ProcessStage<I, O, P> {
    pub ctx: StageContext,
    pub function: P,
    pub opened: bool,
    pub context: ProcessContext,
    pub out: Vec<O>,
    pub next: Box<dyn Consumer<O>>,
    pub _in: PhantomData<fn(I)>,
}

impl<I: Data, O: Data, P: ProcessFunction<I, O>> ProcessStage<I, O, P> {
    pub fn new(
        ctx: StageContext,
        node: usize,
        function: P,
        sink: SideOutputSink,
        next: Box<dyn Consumer<O>>,
    ) -> Self {
        let context = ProcessContext::new(node, runtime_context(&ctx), sink);
        ProcessStage {
            ctx,
            function,
            opened: false,
            context,
            out: Vec::new(),
            next,
            _in: PhantomData,
        }
    }

    fn open(&mut self) {
        if !self.opened {
            self.opened = true;
            let runtime = runtime_context(&self.ctx);
            let function = &mut self.function;
            if let Err(e) = self.ctx.guard(|| function.open(&runtime)) {
                self.ctx.fail(format!("open() failed: {e}"));
            }
        }
    }
}

impl<I: Data, O: Data, P: ProcessFunction<I, O>> Consumer<I> for ProcessStage<I, O, P> {
    fn push(&mut self, batch: &mut Vec<I>) {
        self.open();
        self.ctx.counters.add_in(batch.len());
        let (function, context, out) = (&mut self.function, &mut self.context, &mut self.out);
        let result = self.ctx.guard(|| {
            let mut collector = Collector::new(out);
            for x in batch.drain(..) {
                function.process_element(x, context, &mut collector)?;
            }
            Ok::<(), superflow_core::UserError>(())
        });
        if let Err(e) = result {
            self.ctx.fail(e);
        }
        self.context.flush_side_outputs();
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
    fn finish(&mut self) {
        if self.ctx.subtask < self.ctx.parallelism {
            self.open();
            let function = &mut self.function;
            if let Err(e) = self.ctx.guard(|| function.close()) {
                self.ctx.fail(format!("close() failed: {e}"));
            }
        }
        self.next.finish();
    }
}

/// A rolling, per-key reduce: every record emits the key's new value.
pub(crate) struct KeyedReduceStage<T, K, KS, R> {
    pub ctx: StageContext,
    pub key: Arc<KS>,
    pub reduce: Arc<R>,
    pub state: FxHashMap<K, Option<T>>,
    pub out: Vec<T>,
    pub next: Box<dyn Consumer<T>>,
}

impl<T, K, KS, R> Consumer<T> for KeyedReduceStage<T, K, KS, R>
where
    T: Data,
    K: Data + Hash + Eq,
    KS: KeySelector<T, K>,
    R: ReduceFunction<T>,
{
    fn push(&mut self, batch: &mut Vec<T>) {
        self.ctx.counters.add_in(batch.len());
        let (key, reduce, state, out) = (&self.key, &self.reduce, &mut self.state, &mut self.out);
        self.ctx.guard(|| {
            for value in batch.drain(..) {
                let slot = state.entry(key.get_key(&value)).or_insert(None);
                let next = match slot.take() {
                    Some(accumulated) => reduce.reduce(accumulated, value),
                    None => value,
                };
                out.push(next.clone());
                *slot = Some(next);
            }
        });
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
    fn finish(&mut self) {
        self.next.finish();
    }
}

pub(crate) struct SinkStage<T, S> {
    pub ctx: StageContext,
    pub sink: S,
    pub opened: bool,
    pub _in: PhantomData<fn(T)>,
}

impl<T: Data, S: SinkFunction<T>> SinkStage<T, S> {
    fn open(&mut self) {
        if !self.opened {
            self.opened = true;
            let info = SinkContext {
                subtask: self.ctx.subtask,
                parallelism: self.ctx.parallelism,
            };
            let sink = &mut self.sink;
            if let Err(e) = self.ctx.guard(|| sink.open(&info)) {
                self.ctx.fail(e);
            }
        }
    }
}

impl<T: Data, S: SinkFunction<T>> Consumer<T> for SinkStage<T, S> {
    fn push(&mut self, batch: &mut Vec<T>) {
        self.open();
        self.ctx.counters.add_in(batch.len());
        let sink = &mut self.sink;
        if let Err(e) = self.ctx.guard(|| sink.invoke_batch(batch)) {
            self.ctx.fail(e);
        }
        batch.clear();
    }
    fn finish(&mut self) {
        if self.ctx.subtask < self.ctx.parallelism {
            self.open();
            let sink = &mut self.sink;
            if let Err(e) = self.ctx.guard(|| sink.finish()) {
                self.ctx.fail(e);
            }
        }
    }
}

pub(crate) struct CoMapStage<A, B, O, F> {
    pub ctx: StageContext,
    pub f: F,
    pub out: Vec<O>,
    pub next: Box<dyn Consumer<O>>,
    pub _in: PhantomData<fn(A, B)>,
}

impl<A: Data, B: Data, O: Data, F: CoMapFunction<A, B, O>> BinaryConsumer<A, B>
    for CoMapStage<A, B, O, F>
{
    fn push1(&mut self, batch: &mut Vec<A>) {
        self.ctx.counters.add_in(batch.len());
        let (f, out) = (&mut self.f, &mut self.out);
        self.ctx
            .guard(|| out.extend(batch.drain(..).map(|x| f.map1(x))));
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
    fn push2(&mut self, batch: &mut Vec<B>) {
        self.ctx.counters.add_in(batch.len());
        let (f, out) = (&mut self.f, &mut self.out);
        self.ctx
            .guard(|| out.extend(batch.drain(..).map(|x| f.map2(x))));
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
    fn finish(&mut self) {
        self.next.finish();
    }
}

pub(crate) struct CoFlatMapStage<A, B, O, F> {
    pub ctx: StageContext,
    pub f: F,
    pub out: Vec<O>,
    pub next: Box<dyn Consumer<O>>,
    pub _in: PhantomData<fn(A, B)>,
}

impl<A: Data, B: Data, O: Data, F: CoFlatMapFunction<A, B, O>> BinaryConsumer<A, B>
    for CoFlatMapStage<A, B, O, F>
{
    fn push1(&mut self, batch: &mut Vec<A>) {
        self.ctx.counters.add_in(batch.len());
        let (f, out) = (&mut self.f, &mut self.out);
        self.ctx.guard(|| {
            let mut collector = Collector::new(out);
            for x in batch.drain(..) {
                f.flat_map1(x, &mut collector);
            }
        });
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
    fn push2(&mut self, batch: &mut Vec<B>) {
        self.ctx.counters.add_in(batch.len());
        let (f, out) = (&mut self.f, &mut self.out);
        self.ctx.guard(|| {
            let mut collector = Collector::new(out);
            for x in batch.drain(..) {
                f.flat_map2(x, &mut collector);
            }
        });
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
    fn finish(&mut self) {
        self.next.finish();
    }
}

/// Passes records through unchanged (a union input that needs its own exchange).
pub(crate) struct Identity<T> {
    pub next: Box<dyn Consumer<T>>,
}

impl<T: Data> Consumer<T> for Identity<T> {
    fn push(&mut self, batch: &mut Vec<T>) {
        self.next.push(batch);
    }
    fn finish(&mut self) {
        self.next.finish();
    }
}
