//! Two keyed inputs together: `KeyedCoProcessFunction` on connected keyed streams, the
//! interval join (`key_by(..).interval_join(..).between(..)`), and window joins and
//! co-groups (`join(..).where_(..).equal_to(..).window(..).apply(..)`), built as Flink
//! builds them: a tagged union of both inputs, keyed and windowed.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use superflow_core::{Data, ExchangeData, Key, UserError};
use superflow_runtime::checkpoint::OperatorSnapshot;
use superflow_runtime::{
    OneInputStage, Records, SideOutputSink, Stage, StageContext, TwoInputStage, WatermarkEvent,
};
use superflow_state::{StateTable, TimeDomain, TimerService};

use crate::functions::{Collector, KeySelector, OutputTag};
use crate::keyed::SharedKey;
use crate::keyed_process::{keyed_function_stage, KeyedFunctionStage, KeyedProcessContext};
use crate::stages::emit;
use crate::stream::{hash_partitioner, ConnectedStreams, DataStream};
use crate::window::functions::WindowEmit;
use crate::window::{
    Evictor, ListFold, NoEvictor, ProcessWindowContext, Trigger, WindowAssigner, WindowedStream,
};

// ----- keyed co-process -----

/// A process function over two keyed inputs with shared keyed timers (Flink's
/// `KeyedCoProcessFunction`). Each subtask has its own clone.
pub trait KeyedCoProcessFunction<K, A, B, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before the first record (of either input) or timer.
    fn open(&mut self, _ctx: &crate::RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }

    /// Called once per subtask after both inputs ended.
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }

    /// Handles a record of the first input.
    fn process_element1(
        &mut self,
        value: A,
        ctx: &mut KeyedProcessContext<K>,
        out: &mut Collector<O>,
    ) -> Result<(), UserError>;

    /// Handles a record of the second input.
    fn process_element2(
        &mut self,
        value: B,
        ctx: &mut KeyedProcessContext<K>,
        out: &mut Collector<O>,
    ) -> Result<(), UserError>;

    /// A timer registered for `ctx.get_current_key()` fired at `timestamp`.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut KeyedProcessContext<K>,
        _out: &mut Collector<O>,
    ) -> Result<(), UserError> {
        Ok(())
    }
}

/// Two connected streams, both partitioned by key.
pub struct KeyedConnectedStreams<A, B, K, KA, KB> {
    pub(crate) streams: ConnectedStreams<A, B>,
    pub(crate) key_a: Arc<KA>,
    pub(crate) key_b: Arc<KB>,
    pub(crate) _key: PhantomData<fn() -> K>,
}

impl<A, B, K, KA, KB> KeyedConnectedStreams<A, B, K, KA, KB>
where
    A: ExchangeData,
    B: ExchangeData,
    K: Key,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
{
    /// Maps records of both inputs to one output type.
    pub fn map<O: Data, F: crate::CoMapFunction<A, B, O>>(&self, f: F) -> DataStream<O> {
        self.streams.map(f)
    }

    /// Flat-maps records of both inputs to one output type.
    pub fn flat_map<O: Data, F: crate::CoFlatMapFunction<A, B, O>>(&self, f: F) -> DataStream<O> {
        self.streams.flat_map(f)
    }

    /// Runs a keyed co-process function over both inputs.
    pub fn process<O: Data, P: KeyedCoProcessFunction<K, A, B, O>>(
        &self,
        function: P,
    ) -> DataStream<O> {
        let (key_a, key_b) = (Arc::clone(&self.key_a), Arc::clone(&self.key_b));
        self.streams.binary(
            "KeyedCoProcess",
            Arc::new(move |ctx, chain, next| {
                Box::new(KeyedCoProcessStage {
                    ctx: ctx.clone(),
                    key_a: Arc::clone(&key_a),
                    key_b: Arc::clone(&key_b),
                    function: function.clone(),
                    context: KeyedProcessContext::new(ctx, chain),
                    out: Records::default(),
                    next,
                    _in: PhantomData,
                })
            }),
        )
    }
}

struct KeyedCoProcessStage<K, A, B, O, P, KA, KB> {
    ctx: StageContext,
    key_a: Arc<KA>,
    key_b: Arc<KB>,
    function: P,
    context: KeyedProcessContext<K>,
    out: Records<O>,
    next: Box<dyn OneInputStage<O>>,
    _in: PhantomData<fn(A, B)>,
}

impl<K, A, B, O, P, KA, KB> KeyedCoProcessStage<K, A, B, O, P, KA, KB>
where
    K: Key,
    A: Data,
    B: Data,
    O: Data,
    P: KeyedCoProcessFunction<K, A, B, O>,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
{
    fn run(&mut self, f: impl FnOnce(&mut Self) -> Result<(), UserError>) {
        let ctx = self.ctx.clone();
        if let Err(e) = ctx.guard(|| f(self)) {
            ctx.fail(e);
        }
        self.context.flush_side_outputs();
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
}

impl<K, A, B, O, P, KA, KB> KeyedFunctionStage<K> for KeyedCoProcessStage<K, A, B, O, P, KA, KB>
where
    K: Key,
    A: Data,
    B: Data,
    O: Data,
    P: KeyedCoProcessFunction<K, A, B, O>,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
{
    fn stage(&self) -> &StageContext {
        &self.ctx
    }

    fn keyed_context(&mut self) -> &mut KeyedProcessContext<K> {
        &mut self.context
    }

    fn open_function(&mut self, runtime: &crate::RuntimeContext) -> Result<(), UserError> {
        self.function.open(runtime)
    }

    fn close_function(&mut self) -> Result<(), UserError> {
        self.function.close()
    }

    /// Fires the due timers of `domain`, as the keyed process stage does.
    fn fire(&mut self, domain: TimeDomain, until: i64) {
        self.run(|s| {
            let (function, out) = (&mut s.function, &mut s.out);
            s.context.fire_timers(domain, until, &mut |time, ctx| {
                function.on_timer(time, ctx, &mut Collector::new(&mut out.values))?;
                out.stamp_new(ctx.timestamp());
                Ok(())
            })
        });
    }
}

impl<K, A, B, O, P, KA, KB> TwoInputStage<A, B> for KeyedCoProcessStage<K, A, B, O, P, KA, KB>
where
    K: Key,
    A: ExchangeData,
    B: ExchangeData,
    O: Data,
    P: KeyedCoProcessFunction<K, A, B, O>,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
{
    fn push1(&mut self, batch: &mut Records<A>) {
        self.ctx.counters.add_in(batch.len());
        self.run(|s| {
            for (x, t) in batch.drain() {
                s.context.set_current(s.key_a.get_key(&x), t);
                s.function.process_element1(
                    x,
                    &mut s.context,
                    &mut Collector::new(&mut s.out.values),
                )?;
                s.out.stamp_new(t);
            }
            Ok(())
        });
    }

    fn push2(&mut self, batch: &mut Records<B>) {
        self.ctx.counters.add_in(batch.len());
        self.run(|s| {
            for (x, t) in batch.drain() {
                s.context.set_current(s.key_b.get_key(&x), t);
                s.function.process_element2(
                    x,
                    &mut s.context,
                    &mut Collector::new(&mut s.out.values),
                )?;
                s.out.stamp_new(t);
            }
            Ok(())
        });
    }
}

keyed_function_stage!(impl<K, A, B, O, P, KA, KB> for KeyedCoProcessStage<K, A, B, O, P, KA, KB>
where
    K: Key,
    A: ExchangeData,
    B: ExchangeData,
    O: Data,
    P: KeyedCoProcessFunction<K, A, B, O>,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
);

// ----- interval join -----

/// What a process join function sees besides the two records.
#[derive(Debug, Clone, Copy)]
pub struct ProcessJoinContext {
    /// The left record's timestamp.
    pub left_timestamp: i64,
    /// The right record's timestamp.
    pub right_timestamp: i64,
}

impl ProcessJoinContext {
    /// The timestamp of the joined result: the larger of the two.
    pub fn timestamp(&self) -> i64 {
        self.left_timestamp.max(self.right_timestamp)
    }
}

/// Handles one joined pair of an interval join (Flink's `ProcessJoinFunction`).
pub trait ProcessJoinFunction<A, B, O>: Clone + Send + Sync + 'static {
    /// Emits the results of joining `left` and `right`.
    fn process_element(
        &mut self,
        left: &A,
        right: &B,
        ctx: &ProcessJoinContext,
        out: &mut Collector<O>,
    ) -> Result<(), UserError>;
}

impl<A, B, O, F> ProcessJoinFunction<A, B, O> for F
where
    F: FnMut(&A, &B, &ProcessJoinContext, &mut Collector<O>) -> Result<(), UserError>
        + Clone
        + Send
        + Sync
        + 'static,
{
    fn process_element(
        &mut self,
        left: &A,
        right: &B,
        ctx: &ProcessJoinContext,
        out: &mut Collector<O>,
    ) -> Result<(), UserError> {
        self(left, right, ctx, out)
    }
}

/// Two keyed streams to join on time intervals: `left.interval_join(&right)`.
pub struct IntervalJoin<A, B, K, KA, KB> {
    pub(crate) left: DataStream<A>,
    pub(crate) right: DataStream<B>,
    pub(crate) key_a: Arc<KA>,
    pub(crate) key_b: Arc<KB>,
    pub(crate) _key: PhantomData<fn() -> K>,
}

impl<A, B, K, KA, KB> IntervalJoin<A, B, K, KA, KB>
where
    A: ExchangeData,
    B: ExchangeData,
    K: Key,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
{
    /// Joins a left record at `t` with the right records of its key in
    /// `[t + lower_ms, t + upper_ms]`, both bounds inclusive (Flink's `between`).
    pub fn between(self, lower_ms: i64, upper_ms: i64) -> IntervalJoined<A, B, K, KA, KB> {
        if lower_ms > upper_ms {
            self.left.env.record_problem(format!(
                "interval join: the lower bound ({lower_ms} ms) is above the upper bound ({upper_ms} ms)"
            ));
        }
        IntervalJoined {
            join: self,
            lower: lower_ms,
            upper: upper_ms,
            late_tags: (None, None),
        }
    }
}

/// An interval join with its bounds.
pub struct IntervalJoined<A, B, K, KA, KB> {
    join: IntervalJoin<A, B, K, KA, KB>,
    lower: i64,
    upper: i64,
    /// The side outputs of late left and right records, by tag name.
    late_tags: (Option<String>, Option<String>),
}

impl<A, B, K, KA, KB> IntervalJoined<A, B, K, KA, KB>
where
    A: ExchangeData,
    B: ExchangeData,
    K: Key,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
{
    /// Excludes the lower bound.
    pub fn lower_bound_exclusive(mut self) -> Self {
        self.lower += 1;
        self
    }

    /// Excludes the upper bound.
    pub fn upper_bound_exclusive(mut self) -> Self {
        self.upper -= 1;
        self
    }

    /// Sends left records that arrive behind the watermark to side output `tag`
    /// instead of dropping them (Flink's `sideOutputLeftLateData`).
    pub fn side_output_left_late_data(mut self, tag: &OutputTag<A>) -> Self {
        self.late_tags.0 = Some(tag.id().to_string());
        self
    }

    /// Sends right records that arrive behind the watermark to side output `tag`
    /// instead of dropping them (Flink's `sideOutputRightLateData`).
    pub fn side_output_right_late_data(mut self, tag: &OutputTag<B>) -> Self {
        self.late_tags.1 = Some(tag.id().to_string());
        self
    }

    /// Emits the results of `function` for every pair; results carry the larger of the
    /// two timestamps.
    pub fn process<O: Data, P: ProcessJoinFunction<A, B, O>>(self, function: P) -> DataStream<O> {
        let IntervalJoin {
            left,
            right,
            key_a,
            key_b,
            ..
        } = self.join;
        let streams = left
            .with_partitioner(hash_partitioner(SharedKey(Arc::clone(&key_a))))
            .connect(&right.with_partitioner(hash_partitioner(SharedKey(Arc::clone(&key_b)))));
        let (lower, upper) = (self.lower, self.upper);
        let (left_late, right_late) = self.late_tags;
        streams.binary(
            "IntervalJoin",
            Arc::new(move |ctx, chain, next| {
                let tag = |name: &Option<String>| {
                    name.as_ref()
                        .map(|n| superflow_runtime::side_output_tag(ctx.node, n))
                };
                Box::new(IntervalJoinStage {
                    late: LateRecords {
                        tags: (tag(&left_late), tag(&right_late)),
                        left: Records::default(),
                        right: Records::default(),
                        sink: chain.side_output_sink(),
                    },
                    ctx: ctx.clone(),
                    key_a: Arc::clone(&key_a),
                    key_b: Arc::clone(&key_b),
                    function: function.clone(),
                    lower,
                    upper,
                    left: ctx.keyed_table(LEFT_STATE),
                    right: ctx.keyed_table(RIGHT_STATE),
                    timers: crate::keyed_process::restored_timers(ctx),
                    watermark: i64::MIN,
                    out: Records::default(),
                    next,
                })
            }),
        )
    }
}

/// Buffered records of one side of one key, by timestamp.
type Buffer<T> = BTreeMap<i64, Vec<T>>;

const LEFT: u8 = 0;
const RIGHT: u8 = 1;

/// The buffered records of one key with timestamps in `[from, to]` (none when the
/// interval is empty, as exclusive bounds can make it).
fn in_range<T>(
    buffer: Option<&Buffer<T>>,
    from: i64,
    to: i64,
) -> impl Iterator<Item = (&i64, &Vec<T>)> {
    buffer
        .filter(|_| from <= to)
        .into_iter()
        .flat_map(move |b| b.range(from..=to))
}

/// Buffers `value` of `key` at `t` on `side`, until the watermark reaches `expires`.
fn buffer<K: Key, T: ExchangeData>(
    store: &mut StateTable<K, (), Buffer<T>>,
    timers: &mut TimerService<K, u8>,
    key: K,
    side: u8,
    t: i64,
    value: T,
    expires: i64,
) {
    let (buffer, _) = store.get_or_insert_with(key.clone(), (), BTreeMap::new);
    buffer.entry(t).or_default().push(value);
    timers.register(TimeDomain::EventTime, key, side, expires);
}

/// Drops the records of `key` at or before `horizon`.
fn trim<K: Key, T: ExchangeData>(store: &mut StateTable<K, (), Buffer<T>>, key: &K, horizon: i64) {
    if let Some(buffer) = store.get_mut(key, &()) {
        *buffer = buffer.split_off(&horizon.saturating_add(1));
        if buffer.is_empty() {
            store.remove(key, &());
        }
    }
}

/// The late records of an interval join bound for side outputs.
struct LateRecords<A, B> {
    /// The side output tags of late left and right records.
    tags: (Option<u32>, Option<u32>),
    left: Records<A>,
    right: Records<B>,
    sink: SideOutputSink,
}

impl<A: Data, B: Data> LateRecords<A, B> {
    fn flush(&mut self) {
        if let (Some(tag), false) = (self.tags.0, self.left.is_empty()) {
            self.sink.emit(tag, std::mem::take(&mut self.left));
        }
        if let (Some(tag), false) = (self.tags.1, self.right.is_empty()) {
            self.sink.emit(tag, std::mem::take(&mut self.right));
        }
    }
}

struct IntervalJoinStage<A, B, K, KA, KB, P, O> {
    late: LateRecords<A, B>,
    ctx: StageContext,
    key_a: Arc<KA>,
    key_b: Arc<KB>,
    function: P,
    lower: i64,
    upper: i64,
    left: StateTable<K, (), Buffer<A>>,
    right: StateTable<K, (), Buffer<B>>,
    /// Cleanup timers: namespace is the side whose buffer entry expires.
    timers: TimerService<K, u8>,
    watermark: i64,
    out: Records<O>,
    next: Box<dyn OneInputStage<O>>,
}

impl<A, B, K, KA, KB, P, O> IntervalJoinStage<A, B, K, KA, KB, P, O>
where
    A: ExchangeData,
    B: ExchangeData,
    K: Key,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
    P: ProcessJoinFunction<A, B, O>,
    O: Data,
{
    fn is_late(&self, timestamp: i64) -> bool {
        self.watermark != i64::MIN && timestamp < self.watermark
    }

    fn missing_timestamp(&self) -> UserError {
        "an interval join needs event timestamps on both inputs: call \
         assign_timestamps_and_watermarks upstream"
            .into()
    }

    fn add_left(&mut self, value: A, t: i64) -> Result<(), UserError> {
        if self.is_late(t) {
            match self.late.tags.0 {
                Some(_) => self.late.left.push(value, Some(t)),
                None => self.ctx.counters.add_late_dropped(1),
            }
            return Ok(());
        }
        let key = self.key_a.get_key(&value);
        for (&rt, values) in in_range(
            self.right.get_mut(&key, &()).map(|b| &*b),
            t + self.lower,
            t + self.upper,
        ) {
            let ctx = ProcessJoinContext {
                left_timestamp: t,
                right_timestamp: rt,
            };
            for r in values {
                self.function.process_element(
                    &value,
                    r,
                    &ctx,
                    &mut Collector::new(&mut self.out.values),
                )?;
                self.out.stamp_new(Some(ctx.timestamp()));
            }
        }
        let expires = t.saturating_add(self.upper);
        buffer(
            &mut self.left,
            &mut self.timers,
            key,
            LEFT,
            t,
            value,
            expires,
        );
        Ok(())
    }

    fn add_right(&mut self, value: B, t: i64) -> Result<(), UserError> {
        if self.is_late(t) {
            match self.late.tags.1 {
                Some(_) => self.late.right.push(value, Some(t)),
                None => self.ctx.counters.add_late_dropped(1),
            }
            return Ok(());
        }
        let key = self.key_b.get_key(&value);
        for (&lt, values) in in_range(
            self.left.get_mut(&key, &()).map(|b| &*b),
            t - self.upper,
            t - self.lower,
        ) {
            let ctx = ProcessJoinContext {
                left_timestamp: lt,
                right_timestamp: t,
            };
            for l in values {
                self.function.process_element(
                    l,
                    &value,
                    &ctx,
                    &mut Collector::new(&mut self.out.values),
                )?;
                self.out.stamp_new(Some(ctx.timestamp()));
            }
        }
        let expires = t.saturating_sub(self.lower);
        buffer(
            &mut self.right,
            &mut self.timers,
            key,
            RIGHT,
            t,
            value,
            expires,
        );
        Ok(())
    }

    /// Drops buffered records no future record can join with.
    fn clean_up(&mut self, watermark: i64) {
        while let Some((_, due)) = self.timers.pop_due(TimeDomain::EventTime, watermark) {
            for (key, side) in due {
                if side == LEFT {
                    trim(&mut self.left, &key, watermark.saturating_sub(self.upper));
                } else {
                    trim(&mut self.right, &key, watermark.saturating_add(self.lower));
                }
            }
        }
    }

    fn run(&mut self, f: impl FnOnce(&mut Self) -> Result<(), UserError>) {
        let ctx = self.ctx.clone();
        if let Err(e) = ctx.guard(|| f(self)) {
            ctx.fail(e);
        }
        self.late.flush();
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
}

/// The names of the interval join's buffers in checkpoints.
const LEFT_STATE: &str = "left-buffer";
const RIGHT_STATE: &str = "right-buffer";

impl<A, B, K, KA, KB, P, O> TwoInputStage<A, B> for IntervalJoinStage<A, B, K, KA, KB, P, O>
where
    A: ExchangeData,
    B: ExchangeData,
    K: Key,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
    P: ProcessJoinFunction<A, B, O>,
    O: Data,
{
    fn push1(&mut self, batch: &mut Records<A>) {
        self.ctx.counters.add_in(batch.len());
        self.run(|s| {
            for (x, t) in batch.drain() {
                let t = t.ok_or_else(|| s.missing_timestamp())?;
                s.add_left(x, t)?;
            }
            Ok(())
        });
    }

    fn push2(&mut self, batch: &mut Records<B>) {
        self.ctx.counters.add_in(batch.len());
        self.run(|s| {
            for (x, t) in batch.drain() {
                let t = t.ok_or_else(|| s.missing_timestamp())?;
                s.add_right(x, t)?;
            }
            Ok(())
        });
    }
}

impl<A, B, K, KA, KB, P, O> Stage for IntervalJoinStage<A, B, K, KA, KB, P, O>
where
    A: ExchangeData,
    B: ExchangeData,
    K: Key,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
    P: ProcessJoinFunction<A, B, O>,
    O: Data,
{
    fn next_stage(&mut self) -> Option<&mut dyn Stage> {
        Some(&mut *self.next)
    }

    fn watermark(&mut self, event: WatermarkEvent) {
        if let WatermarkEvent::Watermark(w) = event {
            self.watermark = w;
            self.clean_up(w);
        }
        self.next.watermark(event);
    }

    fn snapshot(&mut self, out: &mut OperatorSnapshot) {
        crate::stages::snapshot_table(&self.ctx, out, LEFT_STATE, &mut self.left);
        crate::stages::snapshot_table(&self.ctx, out, RIGHT_STATE, &mut self.right);
        crate::keyed_process::snapshot_timers(&self.ctx, &mut self.timers, out);
        self.next.snapshot(out);
    }
}

// ----- window join and co-group -----

/// A record of either input of a window join, as Flink's `TaggedUnion`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum TaggedUnion<A, B> {
    /// From the first input.
    One(A),
    /// From the second input.
    Two(B),
}

/// Joins the pairs of one key and window (Flink's `JoinFunction` / `FlatJoinFunction`).
pub trait JoinFunction<A, B, O>: Clone + Send + Sync + 'static {
    /// Emits the results of one pair.
    fn join(&mut self, first: &A, second: &B, out: &mut Collector<O>) -> Result<(), UserError>;
}

impl<A, B, O, F> JoinFunction<A, B, O> for F
where
    F: FnMut(&A, &B) -> O + Clone + Send + Sync + 'static,
{
    fn join(&mut self, first: &A, second: &B, out: &mut Collector<O>) -> Result<(), UserError> {
        out.collect(self(first, second));
        Ok(())
    }
}

/// Handles all records of both inputs of one key and window (Flink's `CoGroupFunction`).
pub trait CoGroupFunction<A, B, O>: Clone + Send + Sync + 'static {
    /// Emits the results of one group; either side may be empty.
    fn co_group(
        &mut self,
        first: &[A],
        second: &[B],
        out: &mut Collector<O>,
    ) -> Result<(), UserError>;
}

impl<A, B, O, F> CoGroupFunction<A, B, O> for F
where
    F: FnMut(&[A], &[B], &mut Collector<O>) -> Result<(), UserError>
        + Clone
        + Send
        + Sync
        + 'static,
{
    fn co_group(
        &mut self,
        first: &[A],
        second: &[B],
        out: &mut Collector<O>,
    ) -> Result<(), UserError> {
        self(first, second, out)
    }
}

/// `first.join(&second)` or `first.co_group(&second)`, before the keys are chosen.
pub struct TwoInputWindowing<A, B> {
    pub(crate) first: DataStream<A>,
    pub(crate) second: DataStream<B>,
}

impl<A: ExchangeData, B: ExchangeData> TwoInputWindowing<A, B> {
    /// The key of the first input.
    pub fn where_<K: Key, KA: KeySelector<A, K>>(self, key: KA) -> TwoInputWhere<A, B, K, KA> {
        TwoInputWhere {
            inputs: self,
            key_a: Arc::new(key),
            _key: PhantomData,
        }
    }
}

/// A window join or co-group with the first input's key.
pub struct TwoInputWhere<A, B, K, KA> {
    inputs: TwoInputWindowing<A, B>,
    key_a: Arc<KA>,
    _key: PhantomData<fn() -> K>,
}

impl<A: ExchangeData, B: ExchangeData, K: Key, KA: KeySelector<A, K>> TwoInputWhere<A, B, K, KA> {
    /// The key of the second input.
    pub fn equal_to<KB: KeySelector<B, K>>(self, key: KB) -> TwoInputKeyed<A, B, K, KA, KB> {
        TwoInputKeyed {
            inputs: self.inputs,
            key_a: self.key_a,
            key_b: Arc::new(key),
            _key: PhantomData,
        }
    }
}

/// A window join or co-group with both keys.
pub struct TwoInputKeyed<A, B, K, KA, KB> {
    inputs: TwoInputWindowing<A, B>,
    key_a: Arc<KA>,
    key_b: Arc<KB>,
    _key: PhantomData<fn() -> K>,
}

/// The key selector of a window join's tagged union: each input's own selector.
pub struct UnionKey<KA, KB>(Arc<KA>, Arc<KB>);

impl<A, B, K, KA: KeySelector<A, K>, KB: KeySelector<B, K>> KeySelector<TaggedUnion<A, B>, K>
    for UnionKey<KA, KB>
{
    #[inline]
    fn get_key(&self, value: &TaggedUnion<A, B>) -> K {
        match value {
            TaggedUnion::One(a) => self.0.get_key(a),
            TaggedUnion::Two(b) => self.1.get_key(b),
        }
    }
}

impl<A, B, K, KA, KB> TwoInputKeyed<A, B, K, KA, KB>
where
    A: ExchangeData,
    B: ExchangeData,
    K: Key,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
{
    /// The windows both inputs are cut into.
    pub fn window<WA: WindowAssigner<TaggedUnion<A, B>>>(
        self,
        assigner: WA,
    ) -> TwoInputWindowed<A, B, K, KA, KB, WA, WA::DefaultTrigger> {
        let inputs = self.inputs;
        let union = inputs
            .first
            .map(TaggedUnion::<A, B>::One)
            .union(&[&inputs.second.map(TaggedUnion::<A, B>::Two)]);
        TwoInputWindowed {
            windowed: union
                .key_by(UnionKey(self.key_a, self.key_b))
                .window(assigner),
        }
    }
}

/// Splits a window's tagged records by input (moving them) and runs the co-group function.
struct CoGroupEmit<F, A, B>(F, PhantomData<fn(A, B)>);

impl<F: Clone, A, B> Clone for CoGroupEmit<F, A, B> {
    fn clone(&self) -> Self {
        CoGroupEmit(self.0.clone(), PhantomData)
    }
}

impl<K, W, A, B, O, F> WindowEmit<K, W, TaggedUnion<A, B>, O> for CoGroupEmit<F, A, B>
where
    K: 'static,
    W: 'static,
    A: 'static,
    B: 'static,
    O: 'static,
    F: CoGroupFunction<A, B, O>,
{
    fn emit(
        &mut self,
        _key: &K,
        _ctx: &mut ProcessWindowContext<'_, K, W>,
        elements: &mut Vec<TaggedUnion<A, B>>,
        out: &mut Vec<O>,
    ) -> Result<(), UserError> {
        let mut first = Vec::new();
        let mut second = Vec::new();
        for e in elements.drain(..) {
            match e {
                TaggedUnion::One(a) => first.push(a),
                TaggedUnion::Two(b) => second.push(b),
            }
        }
        self.0.co_group(&first, &second, &mut Collector::new(out))
    }
}

/// A window join or co-group, ready for its function; the trigger, evictor and allowed
/// lateness can be set as on any windowed stream.
pub struct TwoInputWindowed<A, B, K, KA, KB, WA, TR, EV = NoEvictor> {
    windowed: WindowedStream<TaggedUnion<A, B>, K, UnionKey<KA, KB>, WA, TR, EV>,
}

impl<A, B, K, KA, KB, WA, TR, EV> TwoInputWindowed<A, B, K, KA, KB, WA, TR, EV>
where
    A: ExchangeData,
    B: ExchangeData,
    K: Key,
    KA: KeySelector<A, K>,
    KB: KeySelector<B, K>,
    WA: WindowAssigner<TaggedUnion<A, B>>,
    TR: Trigger<TaggedUnion<A, B>, WA::W> + Clone,
    EV: Evictor<TaggedUnion<A, B>, WA::W>,
{
    /// Replaces the windows' default trigger.
    pub fn trigger<TR2: Trigger<TaggedUnion<A, B>, WA::W> + Clone>(
        self,
        trigger: TR2,
    ) -> TwoInputWindowed<A, B, K, KA, KB, WA, TR2, EV> {
        TwoInputWindowed {
            windowed: self.windowed.trigger(trigger),
        }
    }

    /// Removes records of both inputs before or after the function runs.
    pub fn evictor<EV2: Evictor<TaggedUnion<A, B>, WA::W>>(
        self,
        evictor: EV2,
    ) -> TwoInputWindowed<A, B, K, KA, KB, WA, TR, EV2> {
        TwoInputWindowed {
            windowed: self.windowed.evictor(evictor),
        }
    }

    /// Keeps windows `lateness` past their end; late records fire them again.
    pub fn allowed_lateness(self, lateness: std::time::Duration) -> Self {
        TwoInputWindowed {
            windowed: self.windowed.allowed_lateness(lateness),
        }
    }

    /// Co-groups each key and window: `f` sees both sides' records (either may be empty).
    pub fn co_group<O: Data, F: CoGroupFunction<A, B, O>>(self, f: F) -> DataStream<O> {
        self.windowed
            .build(ListFold::new(), CoGroupEmit(f, PhantomData), false)
    }

    /// Joins each key and window: `f` runs for every pair of records, one from each input.
    pub fn apply<O: Data, F: JoinFunction<A, B, O>>(self, mut f: F) -> DataStream<O> {
        self.co_group(move |first: &[A], second: &[B], out: &mut Collector<O>| {
            for a in first {
                for b in second {
                    f.join(a, b, out)?;
                }
            }
            Ok(())
        })
    }
}
