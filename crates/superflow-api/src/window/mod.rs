//! Windows on keyed streams (`key_by(...).window(...)`) and on whole streams
//! (`window_all`): assigners, triggers, evictors, allowed lateness, the late-data side
//! output, and the window functions (`reduce`, `aggregate`, `process`, and incremental
//! aggregation combined with `process`).

pub mod assigners;
pub mod functions;
mod operator;
pub mod triggers;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use superflow_core::{Data, ExchangeData, FieldAggregate, Key};
use superflow_runtime::{side_output_tag, NodeKind};

use crate::functions::{KeySelector, OutputTag, ReduceFunction};
use crate::keyed::SharedKey;
use crate::stream::DataStream;

pub use assigners::{
    CountWindow, CountWindows, EventTimeSessionWindows, GlobalWindow, GlobalWindows,
    ProcessingTimeSessionWindows, SessionGapExtractor, SlidingEventTimeWindows,
    SlidingProcessingTimeWindows, TimeWindow, TumblingEventTimeWindows,
    TumblingProcessingTimeWindows, Window, WindowAssigner,
};
pub use functions::{
    AggregateFunction, CountEvictor, Evictor, EvictorContext, NoEvictor, ProcessWindowContext,
    ProcessWindowFunction, TimeEvictor,
};
pub use triggers::{
    ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger, CountTrigger, EventTimeTrigger,
    NeverTrigger, ProcessingTimeTrigger, PurgingTrigger, Trigger, TriggerContext, TriggerResult,
    TriggerState, TriggerValue,
};

pub(crate) use functions::ListFold;
use functions::{
    AggregateFold, EvictingFold, PassThrough, ReduceFold, UserProcess, WindowEmit, WindowFold,
};
use operator::{Panes, WindowSpec, WindowStage};

impl<T, W> Evictor<T, W> for NoEvictor {
    fn evict_before(&self, _: &mut Vec<(T, i64)>, _: &W, _: &EvictorContext) {}
    fn evict_after(&self, _: &mut Vec<(T, i64)>, _: &W, _: &EvictorContext) {}
}

/// A keyed stream cut into windows (Flink's `WindowedStream`), or a whole stream cut
/// into windows by one subtask (`AllWindowedStream`, from `window_all`).
pub struct WindowedStream<T, K, KS, A, TR, EV = NoEvictor> {
    input: DataStream<T>,
    key_selector: Arc<KS>,
    assigner: Arc<A>,
    trigger: TR,
    evictor: Option<Arc<EV>>,
    custom_trigger: bool,
    allowed_lateness: i64,
    late_tag: Option<String>,
    non_parallel: bool,
    _key: PhantomData<fn() -> K>,
}

/// A whole stream cut into windows, evaluated by one subtask (Flink's
/// `AllWindowedStream`): a windowed stream whose key is `()`.
pub type AllWindowedStream<T, A, TR, EV = NoEvictor> = WindowedStream<T, (), fn(&T), A, TR, EV>;

impl<T, K, KS, A> WindowedStream<T, K, KS, A, A::DefaultTrigger, NoEvictor>
where
    T: ExchangeData,
    K: Key,
    KS: KeySelector<T, K>,
    A: WindowAssigner<T>,
{
    pub(crate) fn new(
        input: DataStream<T>,
        key_selector: Arc<KS>,
        assigner: A,
        non_parallel: bool,
    ) -> Self {
        let trigger = assigner.default_trigger();
        WindowedStream {
            input,
            key_selector,
            assigner: Arc::new(assigner),
            trigger,
            evictor: None,
            custom_trigger: false,
            allowed_lateness: 0,
            late_tag: None,
            non_parallel,
            _key: PhantomData,
        }
    }
}

impl<T, K, KS, A, TR, EV> WindowedStream<T, K, KS, A, TR, EV>
where
    T: ExchangeData,
    K: Key,
    KS: KeySelector<T, K>,
    A: WindowAssigner<T>,
    TR: triggers::Trigger<T, A::W> + Clone,
    EV: Evictor<T, A::W>,
{
    /// Replaces the assigner's default trigger.
    pub fn trigger<TR2: Trigger<T, A::W> + Clone>(
        self,
        trigger: TR2,
    ) -> WindowedStream<T, K, KS, A, TR2, EV> {
        if self.assigner.is_merging() && !trigger.can_merge() {
            self.input.env.record_problem(
                "the trigger does not support merging windows (sessions): implement can_merge and on_merge"
                    .to_string(),
            );
        }
        WindowedStream {
            input: self.input,
            key_selector: self.key_selector,
            assigner: self.assigner,
            trigger,
            evictor: self.evictor,
            custom_trigger: true,
            allowed_lateness: self.allowed_lateness,
            late_tag: self.late_tag,
            non_parallel: self.non_parallel,
            _key: PhantomData,
        }
    }

    /// Removes elements before or after the window function runs. The window then keeps
    /// every element, as Flink's evicting window operator does.
    pub fn evictor<EV2: Evictor<T, A::W>>(
        self,
        evictor: EV2,
    ) -> WindowedStream<T, K, KS, A, TR, EV2> {
        WindowedStream {
            input: self.input,
            key_selector: self.key_selector,
            assigner: self.assigner,
            trigger: self.trigger,
            evictor: Some(Arc::new(evictor)),
            custom_trigger: self.custom_trigger,
            allowed_lateness: self.allowed_lateness,
            late_tag: self.late_tag,
            non_parallel: self.non_parallel,
            _key: PhantomData,
        }
    }

    /// Keeps event-time windows `lateness` past their end: a late record within it
    /// updates the window and fires it again. Later records are dropped, or sent to the
    /// late-data side output.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = lateness.as_millis() as i64;
        self
    }

    /// Sends records that arrive after their windows closed to side output `tag`
    /// (read it with `get_side_output` on the result).
    pub fn side_output_late_data(mut self, tag: &OutputTag<T>) -> Self {
        self.late_tag = Some(tag.id().to_string());
        self
    }

    fn panes(&self, incremental: bool) -> Option<Panes> {
        if !incremental
            || self.custom_trigger
            || self.evictor.is_some()
            || self.allowed_lateness != 0
        {
            return None;
        }
        let (size, slide, offset) = self.assigner.sliding_panes()?;
        // Panes pay off when windows overlap; with gaps between windows, some records
        // belong to no window, which the generic path handles.
        (size > slide).then(|| Panes::new(size, slide, offset))
    }

    pub(crate) fn build<F, E, O>(self, fold: F, emitter: E, incremental: bool) -> DataStream<O>
    where
        F: WindowFold<T, A::W>,
        E: WindowEmit<K, A::W, F::Out, O> + Clone + Send + Sync,
        O: Data,
    {
        let panes = self.panes(incremental);
        let fold = Arc::new(fold);
        let evictor = self.evictor.clone();
        let (key, assigner, trigger) = (
            Arc::clone(&self.key_selector),
            Arc::clone(&self.assigner),
            Arc::new(self.trigger.clone()),
        );
        let (lateness, late_name) = (self.allowed_lateness, self.late_tag.clone());
        let default_trigger = !self.custom_trigger;
        let stream = self.input.one_input(
            if self.non_parallel {
                "Window All"
            } else {
                "Window"
            },
            NodeKind::Operator,
            Arc::new(move |ctx, chain, next| {
                let spec = WindowSpec {
                    assigner: Arc::clone(&assigner),
                    trigger: Arc::clone(&trigger),
                    allowed_lateness: lateness,
                    late_tag: late_name.as_ref().map(|n| side_output_tag(ctx.node, n)),
                    panes,
                    default_trigger,
                };
                let key = Arc::new(SharedKey(Arc::clone(&key)));
                match &evictor {
                    None => Box::new(WindowStage::new(
                        ctx,
                        chain,
                        key,
                        spec,
                        Arc::clone(&fold),
                        emitter.clone(),
                        next,
                    )),
                    Some(evictor) => Box::new(WindowStage::new(
                        ctx,
                        chain,
                        key,
                        spec,
                        Arc::new(EvictingFold::new(Arc::clone(&fold), Arc::clone(evictor))),
                        emitter.clone(),
                        next,
                    )),
                }
            }),
        );
        if self.non_parallel {
            stream.set_parallelism(1)
        } else {
            stream
        }
    }

    /// Combines each window's records with `f`, incrementally; emits one record per
    /// window, stamped with the window's last timestamp.
    pub fn reduce<R: ReduceFunction<T>>(self, f: R) -> DataStream<T> {
        self.build(ReduceFold::new(f), PassThrough, true)
    }

    /// Combines each window's records with `f`, then hands the one result to `process`
    /// with the window's metadata.
    pub fn reduce_with_process<R, P, O>(self, f: R, process: P) -> DataStream<O>
    where
        R: ReduceFunction<T>,
        P: ProcessWindowFunction<T, O, K, A::W>,
        O: Data,
    {
        self.build(ReduceFold::new(f), UserProcess(process), true)
    }

    /// Aggregates each window's records with an accumulator; emits one result per window.
    pub fn aggregate<ACC, OUT, F>(self, f: F) -> DataStream<OUT>
    where
        ACC: ExchangeData,
        OUT: Data,
        F: AggregateFunction<T, ACC, OUT>,
    {
        self.build(AggregateFold::new(f), PassThrough, true)
    }

    /// Aggregates each window's records, then hands the result to `process`.
    pub fn aggregate_with_process<ACC, V, F, P, O>(self, f: F, process: P) -> DataStream<O>
    where
        ACC: ExchangeData,
        V: Data,
        F: AggregateFunction<T, ACC, V>,
        P: ProcessWindowFunction<V, O, K, A::W>,
        O: Data,
    {
        self.build(AggregateFold::new(f), UserProcess(process), true)
    }

    /// Hands all of each window's records to `process`.
    pub fn process<P, O>(self, process: P) -> DataStream<O>
    where
        P: ProcessWindowFunction<T, O, K, A::W>,
        O: Data,
    {
        self.build(ListFold::new(), UserProcess(process), false)
    }

    /// The sum of field `position` per window; other fields from the first record.
    pub fn sum(self, position: usize) -> DataStream<T>
    where
        T: FieldAggregate,
    {
        self.check_field("sum", position, true);
        self.reduce(move |mut acc: T, value: T| {
            acc.add_field(&value, position);
            acc
        })
    }

    /// The minimum of field `position` per window; other fields from the first record.
    pub fn min(self, position: usize) -> DataStream<T>
    where
        T: FieldAggregate,
    {
        self.check_field("min", position, false);
        self.reduce(move |mut acc: T, value: T| {
            if value.cmp_field(&acc, position).is_lt() {
                acc.copy_field(&value, position);
            }
            acc
        })
    }

    /// The maximum of field `position` per window; other fields from the first record.
    pub fn max(self, position: usize) -> DataStream<T>
    where
        T: FieldAggregate,
    {
        self.check_field("max", position, false);
        self.reduce(move |mut acc: T, value: T| {
            if value.cmp_field(&acc, position).is_gt() {
                acc.copy_field(&value, position);
            }
            acc
        })
    }

    fn check_field(&self, aggregation: &str, position: usize, numeric: bool)
    where
        T: FieldAggregate,
    {
        if let Err(problem) = T::check_position(position, numeric) {
            self.input
                .env
                .record_problem(format!("{aggregation}({position}): {problem}"));
        }
    }
}

impl<P: Clone> Clone for UserProcess<P> {
    fn clone(&self) -> Self {
        UserProcess(self.0.clone())
    }
}

impl Clone for PassThrough {
    fn clone(&self) -> Self {
        PassThrough
    }
}
