//! `KeyedProcessFunction`: per-record logic on a keyed stream with event-time and
//! processing-time timers, and the stage that runs it. Timers live in the operator's
//! keyed state ([`superflow_state::TimerService`]), deduplicated per key and time.

use std::marker::PhantomData;
use std::sync::Arc;

use superflow_core::{Data, Key, UserError};
use superflow_runtime::checkpoint::OperatorSnapshot;
use superflow_runtime::{
    processing_time_now, OneInputStage, Records, StageContext, WakeUp, WatermarkEvent,
    MAX_WATERMARK,
};
use superflow_state::{TimeDomain, TimerService};

use std::hash::Hash;

use crate::functions::{Collector, KeySelector, OutputTag, ProcessContext, RuntimeContext};
use crate::stages::emit;
use crate::state::{
    AggregatingState, AggregatingStateDescriptor, KeyedStateBackend, ListState,
    ListStateDescriptor, MapState, MapStateDescriptor, ReducingState, ReducingStateDescriptor,
    StateValue, ValueState, ValueStateDescriptor,
};

/// A keyed process function (Flink's `KeyedProcessFunction`): handles each record with
/// its key in context, and timers it registered for that key. Each subtask has its own
/// clone.
pub trait KeyedProcessFunction<K, I, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before the first record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }

    /// Handles one record.
    fn process_element(
        &mut self,
        value: I,
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

    /// Called once when the input has ended.
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }
}

impl<K, I, O, F> KeyedProcessFunction<K, I, O> for F
where
    F: FnMut(I, &mut KeyedProcessContext<K>, &mut Collector<O>) -> Result<(), UserError>
        + Clone
        + Send
        + Sync
        + 'static,
{
    fn process_element(
        &mut self,
        value: I,
        ctx: &mut KeyedProcessContext<K>,
        out: &mut Collector<O>,
    ) -> Result<(), UserError> {
        self(value, ctx, out)
    }
}

/// The context of a keyed process function: the current key and timestamp, timers,
/// side outputs and the clocks.
pub struct KeyedProcessContext<K> {
    base: ProcessContext,
    key: Option<K>,
    state: KeyedStateBackend<K>,
    timers: TimerService<K, ()>,
    domain: Option<TimeDomain>,
    wake: WakeUp,
    /// Batch mode, at the end of the input: timers registered now are ignored, as in
    /// Flink, so an `on_timer` that registers again cannot loop.
    quiesced: bool,
}

/// Registers and deletes the current key's timers (Flink's `TimerService`).
pub struct KeyedTimerService<'a, K> {
    ctx: &'a mut KeyedProcessContext<K>,
}

impl<K: Key> KeyedProcessContext<K> {
    /// The key of the record (or timer) being handled.
    pub fn get_current_key(&self) -> &K {
        match &self.key {
            Some(k) => k,
            None => panic!("get_current_key() called outside process_element/on_timer"),
        }
    }

    /// The event timestamp of the current record, or the time of the firing event-time
    /// timer; `None` for records without timestamps and for processing-time timers.
    pub fn timestamp(&self) -> Option<i64> {
        self.base.timestamp()
    }

    /// In `on_timer`: which clock the firing timer follows.
    pub fn time_domain(&self) -> Option<TimeDomain> {
        self.domain
    }

    /// The operator's current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.base.current_watermark()
    }

    /// The wall clock, in milliseconds since the Unix epoch.
    pub fn current_processing_time(&self) -> i64 {
        processing_time_now()
    }

    /// The timers of the current key.
    pub fn timer_service(&mut self) -> KeyedTimerService<'_, K> {
        KeyedTimerService { ctx: self }
    }

    fn key_ref(key: &Option<K>) -> &K {
        match key {
            Some(k) => k,
            None => panic!("keyed state used outside process_element/on_timer"),
        }
    }

    /// The value state `descriptor` of the current key.
    pub fn get_state<T: StateValue>(
        &mut self,
        descriptor: &ValueStateDescriptor<T>,
    ) -> ValueState<'_, K, T> {
        self.state.value(descriptor, Self::key_ref(&self.key))
    }

    /// The list state `descriptor` of the current key.
    pub fn get_list_state<T: StateValue>(
        &mut self,
        descriptor: &ListStateDescriptor<T>,
    ) -> ListState<'_, K, T> {
        self.state.list(descriptor, Self::key_ref(&self.key))
    }

    /// The map state `descriptor` of the current key.
    pub fn get_map_state<MK: StateValue + Hash + Eq, MV: StateValue>(
        &mut self,
        descriptor: &MapStateDescriptor<MK, MV>,
    ) -> MapState<'_, K, MK, MV> {
        self.state.map(descriptor, Self::key_ref(&self.key))
    }

    /// The reducing state `descriptor` of the current key.
    pub fn get_reducing_state<'a, T: StateValue>(
        &'a mut self,
        descriptor: &'a ReducingStateDescriptor<T>,
    ) -> ReducingState<'a, K, T> {
        self.state.reducing(descriptor, Self::key_ref(&self.key))
    }

    /// The aggregating state `descriptor` of the current key.
    pub fn get_aggregating_state<'a, IN, ACC: StateValue, OUT>(
        &'a mut self,
        descriptor: &'a AggregatingStateDescriptor<IN, ACC, OUT>,
    ) -> AggregatingState<'a, K, IN, ACC, OUT> {
        self.state.aggregating(descriptor, Self::key_ref(&self.key))
    }

    /// Emits `value` on side output `tag`, with the current timestamp.
    pub fn output<S: Data>(&mut self, tag: &OutputTag<S>, value: S) {
        self.base.output(tag, value);
    }

    /// Where the function runs.
    pub fn runtime_context(&self) -> &RuntimeContext {
        self.base.runtime_context()
    }

    fn current_key(&self) -> K {
        self.get_current_key().clone()
    }

    pub(crate) fn new(ctx: &StageContext, chain: &superflow_runtime::ChainOutput) -> Self {
        let base = ProcessContext::new(
            ctx.node,
            crate::stages::runtime_context(ctx),
            chain.side_output_sink(),
        );
        let context = KeyedProcessContext {
            base,
            key: None,
            state: KeyedStateBackend::restored(ctx),
            timers: restored_timers(ctx),
            domain: None,
            wake: chain.wake_up(),
            quiesced: false,
        };
        context.request_next_wake_up();
        context
    }

    /// Sets the record being handled.
    #[inline]
    pub(crate) fn set_current(&mut self, key: K, timestamp: Option<i64>) {
        self.key = Some(key);
        self.base.timestamp = timestamp;
        self.state.on_record();
    }

    pub(crate) fn set_watermark(&mut self, watermark: i64) {
        self.base.watermark = watermark;
    }

    /// Fires the due timers of `domain`, including those registered while firing, calling
    /// `on_timer(time, ctx)` with the timer's key current.
    pub(crate) fn fire_timers(
        &mut self,
        domain: TimeDomain,
        until: i64,
        on_timer: &mut dyn FnMut(i64, &mut Self) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        while let Some((time, due)) = self.timers.pop_due(domain, until) {
            let timestamp = (domain == TimeDomain::EventTime).then_some(time);
            for (key, ()) in due {
                self.set_current(key, timestamp);
                self.domain = Some(domain);
                let result = on_timer(time, self);
                self.domain = None;
                result?;
            }
        }
        Ok(())
    }

    /// Writes the keyed state and timers into a checkpoint.
    pub(crate) fn snapshot(&mut self, ctx: &StageContext, out: &mut OperatorSnapshot) {
        self.state.snapshot(ctx, out);
        snapshot_timers(ctx, &mut self.timers, out);
    }

    /// Schedules the operator for the next processing-time timer.
    pub(crate) fn request_next_wake_up(&self) {
        if let Some(next) = self.timers.next_processing_time() {
            self.wake.request(next);
        }
    }

    pub(crate) fn flush_side_outputs(&mut self) {
        self.base.flush_side_outputs();
    }
}

impl<K: Key> KeyedTimerService<'_, K> {
    /// The operator's current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.ctx.current_watermark()
    }

    /// The wall clock, in milliseconds since the Unix epoch.
    pub fn current_processing_time(&self) -> i64 {
        processing_time_now()
    }

    /// Calls `on_timer` when the watermark reaches `time` (once per key and time).
    pub fn register_event_time_timer(&mut self, time: i64) {
        if self.ctx.quiesced {
            return;
        }
        let key = self.ctx.current_key();
        self.ctx
            .timers
            .register(TimeDomain::EventTime, key, (), time);
    }

    /// Calls `on_timer` when the wall clock reaches `time` (once per key and time).
    pub fn register_processing_time_timer(&mut self, time: i64) {
        if self.ctx.quiesced {
            return;
        }
        let key = self.ctx.current_key();
        self.ctx
            .timers
            .register(TimeDomain::ProcessingTime, key, (), time);
        self.ctx.wake.request(time);
    }

    /// Deletes the current key's event-time timer at `time`, if any.
    pub fn delete_event_time_timer(&mut self, time: i64) {
        let key = self.ctx.current_key();
        self.ctx
            .timers
            .delete(TimeDomain::EventTime, &key, &(), time);
    }

    /// Deletes the current key's processing-time timer at `time`, if any.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        let key = self.ctx.current_key();
        self.ctx
            .timers
            .delete(TimeDomain::ProcessingTime, &key, &(), time);
    }
}

/// The name of a keyed function's timers in checkpoints.
pub(crate) const TIMERS_STATE: &str = "timers";

/// The timers of this subtask (in the embedded store beyond a number in memory, with
/// that backend), holding its key groups of the checkpoint the job restores from.
pub(crate) fn restored_timers<K: Key, N: Key>(ctx: &StageContext) -> TimerService<K, N> {
    ctx.timer_service(TIMERS_STATE)
}

/// Writes `timers` into a checkpoint. With timers in the embedded store, the changes
/// since the last checkpoint (incremental); otherwise the data path copies the timers
/// in memory, and the writer thread encodes them with the stored ones.
pub(crate) fn snapshot_timers<K: Key, N: Key>(
    ctx: &StageContext,
    timers: &mut TimerService<K, N>,
    out: &mut OperatorSnapshot,
) {
    let id = ctx.state_id(TIMERS_STATE);
    let incremental = out
        .checkpoint()
        .and_then(|checkpoint| Some((checkpoint, ctx.checkpoints.incremental_dir(checkpoint)?)))
        .and_then(|(checkpoint, shared)| {
            timers.snapshot_incremental(checkpoint, shared, ctx.max_parallelism)
        });
    match incremental {
        Some(encode) => out.add_keyed_chain_later(id, encode),
        None => out.add_keyed_later(
            id,
            timers.snapshot_later(ctx.max_parallelism, superflow_state::Compression::None),
        ),
    }
}

/// The lifecycle a stage of a keyed function (keyed process, keyed co-process, keyed
/// broadcast process) shares: the watermark fires the due event-time timers, the
/// processing time the due processing-time timers; in batch mode processing time stands
/// still, and the end of the input fires every timer with the timer service quiesced
/// (what the timers register is ignored, as in Flink). The function opens and closes
/// with the operator, and the keyed state and timers go into checkpoints.
/// [`keyed_function_stage!`] makes these hooks the stage's [`Stage`] implementation.
pub(crate) trait KeyedFunctionStage<K: Key> {
    /// The stage's context.
    fn stage(&self) -> &StageContext;
    /// The keyed function's context, which holds the timers.
    fn keyed_context(&mut self) -> &mut KeyedProcessContext<K>;
    /// Fires the due timers of `domain`, up to `until`, through the user's function.
    fn fire(&mut self, domain: TimeDomain, until: i64);
    /// Runs the user function's `open`.
    fn open_function(&mut self, runtime: &RuntimeContext) -> Result<(), UserError>;
    /// Runs the user function's `close`.
    fn close_function(&mut self) -> Result<(), UserError>;
    /// Writes the state the stage holds besides keyed state and timers.
    fn snapshot_other_state(&mut self, _out: &mut OperatorSnapshot) {}

    /// [`Stage::open`] before passing it on.
    fn open_keyed(&mut self) {
        let ctx = self.stage().clone();
        crate::stages::open_function(&ctx, |runtime| self.open_function(runtime));
    }

    /// [`Stage::finish`] before passing it on.
    fn close_keyed(&mut self) {
        let ctx = self.stage().clone();
        crate::stages::close_at_end(&ctx, || self.close_function());
    }

    /// [`Stage::snapshot`] before passing it on.
    fn snapshot_keyed(&mut self, out: &mut OperatorSnapshot) {
        let ctx = self.stage().clone();
        self.keyed_context().snapshot(&ctx, out);
        self.snapshot_other_state(out);
    }

    /// The operator's watermark advanced (call before passing the watermark on).
    fn timers_on_watermark(&mut self, event: WatermarkEvent) {
        let WatermarkEvent::Watermark(w) = event else {
            return;
        };
        self.keyed_context().set_watermark(w);
        let end_of_batch = w == MAX_WATERMARK && self.stage().runtime_mode.is_batch();
        self.keyed_context().quiesced |= end_of_batch;
        self.fire(TimeDomain::EventTime, w);
        if end_of_batch {
            self.fire(TimeDomain::ProcessingTime, MAX_WATERMARK);
        }
    }

    /// Processing time reached a requested time (call before passing it on).
    fn timers_on_processing_time(&mut self, now: i64) {
        if self.stage().runtime_mode.is_batch() {
            return;
        }
        self.fire(TimeDomain::ProcessingTime, now);
        self.keyed_context().request_next_wake_up();
    }
}

/// Implements [`Stage`] for a stage that implements [`KeyedFunctionStage`] and passes
/// its output to the stage in its `next` field.
macro_rules! keyed_function_stage {
    (impl<$($param:ident),*> for $stage:ty where $($bounds:tt)*) => {
        impl<$($param),*> superflow_runtime::Stage for $stage
        where
            $($bounds)*
        {
            fn next_stage(&mut self) -> Option<&mut dyn superflow_runtime::Stage> {
                Some(&mut *self.next)
            }
            fn open(&mut self) {
                self.open_keyed();
                self.next.open();
            }
            fn watermark(&mut self, event: superflow_runtime::WatermarkEvent) {
                self.timers_on_watermark(event);
                self.next.watermark(event);
            }
            fn on_processing_time(&mut self, now: i64) {
                self.timers_on_processing_time(now);
                self.next.on_processing_time(now);
            }
            fn finish(&mut self) {
                self.close_keyed();
                self.next.finish();
            }
            fn snapshot(&mut self, out: &mut superflow_runtime::checkpoint::OperatorSnapshot) {
                self.snapshot_keyed(out);
                self.next.snapshot(out);
            }
        }
    };
}
pub(crate) use keyed_function_stage;

/// Runs a keyed process function.
pub(crate) struct KeyedProcessStage<K, I, O, P, KS> {
    ctx: StageContext,
    key_selector: Arc<KS>,
    function: P,
    context: KeyedProcessContext<K>,
    out: Records<O>,
    next: Box<dyn OneInputStage<O>>,
    _in: PhantomData<fn(I)>,
}

impl<K, I, O, P, KS> KeyedProcessStage<K, I, O, P, KS>
where
    K: Key,
    I: Data,
    O: Data,
    P: KeyedProcessFunction<K, I, O>,
    KS: KeySelector<I, K>,
{
    pub(crate) fn new(
        ctx: &StageContext,
        chain: &superflow_runtime::ChainOutput,
        key_selector: Arc<KS>,
        function: P,
        next: Box<dyn OneInputStage<O>>,
    ) -> Self {
        KeyedProcessStage {
            ctx: ctx.clone(),
            key_selector,
            function,
            context: KeyedProcessContext::new(ctx, chain),
            out: Records::default(),
            next,
            _in: PhantomData,
        }
    }
}

impl<K, I, O, P, KS> KeyedFunctionStage<K> for KeyedProcessStage<K, I, O, P, KS>
where
    K: Key,
    I: Data,
    O: Data,
    P: KeyedProcessFunction<K, I, O>,
    KS: KeySelector<I, K>,
{
    fn stage(&self) -> &StageContext {
        &self.ctx
    }

    fn keyed_context(&mut self) -> &mut KeyedProcessContext<K> {
        &mut self.context
    }

    fn open_function(&mut self, runtime: &RuntimeContext) -> Result<(), UserError> {
        self.function.open(runtime)
    }

    fn close_function(&mut self) -> Result<(), UserError> {
        self.function.close()
    }

    /// Fires the due timers of `domain`, including those registered while firing.
    fn fire(&mut self, domain: TimeDomain, until: i64) {
        let (function, context, out) = (&mut self.function, &mut self.context, &mut self.out);
        let result = self.ctx.guard(|| {
            context.fire_timers(domain, until, &mut |time, ctx| {
                function.on_timer(time, ctx, &mut Collector::new(&mut out.values))?;
                out.stamp_new(ctx.timestamp());
                Ok(())
            })
        });
        if let Err(e) = result {
            self.ctx.fail(e);
        }
        self.context.flush_side_outputs();
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
}

impl<K, I, O, P, KS> OneInputStage<I> for KeyedProcessStage<K, I, O, P, KS>
where
    K: Key,
    I: Data,
    O: Data,
    P: KeyedProcessFunction<K, I, O>,
    KS: KeySelector<I, K>,
{
    fn push(&mut self, batch: &mut Records<I>) {
        self.ctx.counters.add_in(batch.len());
        let (function, context, out, keys) = (
            &mut self.function,
            &mut self.context,
            &mut self.out,
            &self.key_selector,
        );
        let result = self.ctx.guard(|| {
            for (x, t) in batch.drain() {
                context.set_current(keys.get_key(&x), t);
                function.process_element(x, context, &mut Collector::new(&mut out.values))?;
                out.stamp_new(t);
            }
            Ok::<(), UserError>(())
        });
        if let Err(e) = result {
            self.ctx.fail(e);
        }
        self.context.base.flush_side_outputs();
        emit(&self.ctx, &mut self.out, &mut self.next);
    }
}

keyed_function_stage!(impl<K, I, O, P, KS> for KeyedProcessStage<K, I, O, P, KS>
where
    K: Key,
    I: Data,
    O: Data,
    P: KeyedProcessFunction<K, I, O>,
    KS: KeySelector<I, K>,
);
