//! What runs over a window's contents: `AggregateFunction`, `ProcessWindowFunction` (with
//! its context, per-window and per-key state), evictors, and the folds that keep a
//! window's contents incrementally (reduce, aggregate) or as a list (process, evictors).

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use superflow_core::{Data, ExchangeData, UserError};
use superflow_runtime::processing_time_now;
use superflow_state::StateTable;

use super::assigners::Window;
use crate::functions::{Collector, OutputTag, ProcessContext, ReduceFunction};

/// Incremental aggregation with an accumulator (Flink's `AggregateFunction`).
pub trait AggregateFunction<IN, ACC, OUT>: Send + Sync + 'static {
    /// A new, empty accumulator.
    fn create_accumulator(&self) -> ACC;
    /// Adds one value to the accumulator.
    fn add(&self, value: IN, accumulator: &mut ACC);
    /// The result of an accumulator.
    fn get_result(&self, accumulator: &ACC) -> OUT;
    /// Merges `other` into `accumulator` (merging windows, and panes of sliding windows).
    fn merge(&self, accumulator: &mut ACC, other: ACC);
}

/// A state value of a process window function, with its type erased: it can still be
/// written into a checkpoint.
trait BagValue: Any + Send {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn encode(&self) -> Result<Vec<u8>, postcard::Error>;
}

impl<V: Serialize + Send + 'static> BagValue for V {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_stdvec(self)
    }
}

/// A value as held: in use, or as restored from a checkpoint and not read yet (its type
/// is known only when the function asks for it).
enum BagSlot {
    Live(Box<dyn BagValue>),
    Restored(Vec<u8>),
    /// A value that could not be encoded when its bag was copied for a checkpoint:
    /// writing the copy fails with this reason.
    Unencodable(String),
}

/// Named state values of a process window function, one set per key and window (or
/// per key, for global state).
#[derive(Default)]
pub struct StateBag(FxHashMap<&'static str, BagSlot>);

impl StateBag {
    pub(crate) fn get<V: Default + Serialize + DeserializeOwned + Send + 'static>(
        &mut self,
        name: &'static str,
    ) -> &mut V {
        let slot = self
            .0
            .entry(name)
            .or_insert_with(|| BagSlot::Live(Box::new(V::default())));
        let fresh = match slot {
            BagSlot::Restored(bytes) => {
                let value: V = postcard::from_bytes(bytes).unwrap_or_else(|e| {
                    panic!("window state '{name}' cannot be restored as the type asked for: {e}")
                });
                Some(value)
            }
            BagSlot::Live(v) => (!v.as_any_mut().is::<V>()).then(V::default),
            BagSlot::Unencodable(_) => Some(V::default()),
        };
        if let Some(value) = fresh {
            *slot = BagSlot::Live(Box::new(value));
        }
        match slot {
            BagSlot::Live(v) => match v.as_any_mut().downcast_mut::<V>() {
                Some(v) => v,
                None => unreachable!("the slot was just given type V"),
            },
            BagSlot::Restored(_) | BagSlot::Unencodable(_) => {
                unreachable!("the slot was just decoded")
            }
        }
    }
}

/// A copy for a checkpoint (or for the embedded store): every value in its encoded
/// form, decoded again when the function asks for it.
impl Clone for StateBag {
    fn clone(&self) -> Self {
        StateBag(
            self.0
                .iter()
                .map(|(name, slot)| {
                    let copy = match slot {
                        BagSlot::Live(v) => match v.encode() {
                            Ok(bytes) => BagSlot::Restored(bytes),
                            Err(e) => BagSlot::Unencodable(e.to_string()),
                        },
                        BagSlot::Restored(bytes) => BagSlot::Restored(bytes.clone()),
                        BagSlot::Unencodable(e) => BagSlot::Unencodable(e.clone()),
                    };
                    (*name, copy)
                })
                .collect(),
        )
    }
}

impl Serialize for StateBag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, slot) in &self.0 {
            match slot {
                BagSlot::Live(v) => {
                    let bytes = v.encode().map_err(S::Error::custom)?;
                    map.serialize_entry(name, &bytes)?;
                }
                BagSlot::Restored(bytes) => map.serialize_entry(name, bytes)?,
                BagSlot::Unencodable(e) => {
                    return Err(S::Error::custom(format!("window state '{name}': {e}")))
                }
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for StateBag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries: Vec<(String, Vec<u8>)> =
            FxHashMap::<String, Vec<u8>>::deserialize(deserializer)?
                .into_iter()
                .collect();
        Ok(StateBag(
            entries
                .into_iter()
                .map(|(name, bytes)| (crate::state::intern(name), BagSlot::Restored(bytes)))
                .collect(),
        ))
    }
}

/// The context of a process window function: the window, the clocks, per-window and
/// per-key state, and side outputs.
pub struct ProcessWindowContext<'a, K, W> {
    pub(crate) key: &'a K,
    pub(crate) window: &'a W,
    pub(crate) watermark: i64,
    pub(crate) window_states: &'a mut StateTable<K, W, StateBag>,
    pub(crate) global_states: &'a mut StateTable<K, (), StateBag>,
    pub(crate) side: &'a mut ProcessContext,
}

impl<K: superflow_core::Key, W: Window> ProcessWindowContext<'_, K, W> {
    /// The window being evaluated.
    pub fn window(&self) -> &W {
        self.window
    }

    /// The operator's current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The wall clock, in milliseconds since the Unix epoch.
    pub fn current_processing_time(&self) -> i64 {
        processing_time_now()
    }

    /// State `name` of this key and window, created with `Default` on first use and
    /// dropped when the window is cleared.
    pub fn window_state<V: Default + Serialize + DeserializeOwned + Send + 'static>(
        &mut self,
        name: &'static str,
    ) -> &mut V {
        let (bag, _) = self.window_states.get_or_insert_with(
            self.key.clone(),
            self.window.clone(),
            StateBag::default,
        );
        bag.get(name)
    }

    /// State `name` of this key, across all its windows.
    pub fn global_state<V: Default + Serialize + DeserializeOwned + Send + 'static>(
        &mut self,
        name: &'static str,
    ) -> &mut V {
        let (bag, _) =
            self.global_states
                .get_or_insert_with(self.key.clone(), (), StateBag::default);
        bag.get(name)
    }

    /// Emits `value` on side output `tag`, with the window's timestamp.
    pub fn output<S: Data>(&mut self, tag: &OutputTag<S>, value: S) {
        self.side.output(tag, value);
    }
}

/// A function over all of a window's elements (Flink's `ProcessWindowFunction`). With
/// `reduce` or `aggregate`, it receives the one pre-aggregated value.
pub trait ProcessWindowFunction<IN, OUT, K, W>: Clone + Send + Sync + 'static {
    /// Evaluates a window.
    fn process(
        &mut self,
        key: &K,
        ctx: &mut ProcessWindowContext<'_, K, W>,
        elements: &[IN],
        out: &mut Collector<OUT>,
    ) -> Result<(), UserError>;

    /// The window is removed; per-window state is dropped after this call.
    fn clear(&mut self, _ctx: &mut ProcessWindowContext<'_, K, W>) -> Result<(), UserError> {
        Ok(())
    }
}

impl<IN, OUT, K, W, F> ProcessWindowFunction<IN, OUT, K, W> for F
where
    F: FnMut(
            &K,
            &mut ProcessWindowContext<'_, K, W>,
            &[IN],
            &mut Collector<OUT>,
        ) -> Result<(), UserError>
        + Clone
        + Send
        + Sync
        + 'static,
{
    fn process(
        &mut self,
        key: &K,
        ctx: &mut ProcessWindowContext<'_, K, W>,
        elements: &[IN],
        out: &mut Collector<OUT>,
    ) -> Result<(), UserError> {
        self(key, ctx, elements, out)
    }
}

/// What an evictor can see besides the elements.
#[derive(Debug, Clone, Copy)]
pub struct EvictorContext {
    /// The operator's current watermark.
    pub watermark: i64,
}

/// Removes elements from a window before or after its function runs (Flink's
/// `Evictor`). Elements come with their timestamps, in arrival order.
pub trait Evictor<T, W>: Send + Sync + 'static {
    /// Called before the window function.
    fn evict_before(&self, elements: &mut Vec<(T, i64)>, window: &W, ctx: &EvictorContext);
    /// Called after the window function.
    fn evict_after(&self, elements: &mut Vec<(T, i64)>, window: &W, ctx: &EvictorContext);
}

/// Keeps the last `n` elements.
#[derive(Debug, Clone, Copy)]
pub struct CountEvictor {
    max_count: usize,
    after: bool,
}

impl CountEvictor {
    /// Keeps the last `n` elements, evicting before the window function.
    pub fn of(n: usize) -> Self {
        CountEvictor {
            max_count: n,
            after: false,
        }
    }

    /// Keeps the last `n` elements, evicting after the window function if `after`.
    pub fn of_after(n: usize, after: bool) -> Self {
        CountEvictor {
            max_count: n,
            after,
        }
    }

    fn evict<T>(&self, elements: &mut Vec<(T, i64)>) {
        if elements.len() > self.max_count {
            let excess = elements.len() - self.max_count;
            elements.drain(..excess);
        }
    }
}

impl<T, W> Evictor<T, W> for CountEvictor {
    fn evict_before(&self, elements: &mut Vec<(T, i64)>, _: &W, _: &EvictorContext) {
        if !self.after {
            self.evict(elements);
        }
    }
    fn evict_after(&self, elements: &mut Vec<(T, i64)>, _: &W, _: &EvictorContext) {
        if self.after {
            self.evict(elements);
        }
    }
}

/// Keeps the elements within `window_size` of the newest element's timestamp.
#[derive(Debug, Clone, Copy)]
pub struct TimeEvictor {
    window_size: i64,
    after: bool,
}

impl TimeEvictor {
    /// Keeps elements newer than the newest minus `window_size`, evicting before.
    pub fn of(window_size: Duration) -> Self {
        Self::of_after(window_size, false)
    }

    /// As `of`, evicting after the window function if `after`.
    pub fn of_after(window_size: Duration, after: bool) -> Self {
        TimeEvictor {
            window_size: window_size.as_millis() as i64,
            after,
        }
    }

    fn evict<T>(&self, elements: &mut Vec<(T, i64)>) {
        if let Some(newest) = elements.iter().map(|&(_, t)| t).max() {
            let cutoff = newest - self.window_size;
            elements.retain(|&(_, t)| t > cutoff);
        }
    }
}

impl<T, W> Evictor<T, W> for TimeEvictor {
    fn evict_before(&self, elements: &mut Vec<(T, i64)>, _: &W, _: &EvictorContext) {
        if !self.after {
            self.evict(elements);
        }
    }
    fn evict_after(&self, elements: &mut Vec<(T, i64)>, _: &W, _: &EvictorContext) {
        if self.after {
            self.evict(elements);
        }
    }
}

/// No evictor.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvictor;

/// How a window keeps its contents: incrementally (reduce, aggregate) or as a list.
pub trait WindowFold<T, W>: Send + Sync + 'static {
    /// The contents of one window.
    type Acc: ExchangeData;
    /// What the window function receives.
    type Out: Data;
    /// Contents holding one element.
    fn create(&self, value: T, timestamp: i64) -> Self::Acc;
    /// Adds an element.
    fn add(&self, acc: &mut Self::Acc, value: T, timestamp: i64);
    /// Merges `other` into `acc`.
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    /// The window function's input, when the window fires.
    fn results(
        &self,
        acc: &mut Self::Acc,
        window: &W,
        ctx: &EvictorContext,
        out: &mut Vec<Self::Out>,
    );
    /// The window function's input, when the window fires for the last time: the
    /// contents are dropped afterwards, so they can be moved instead of copied.
    fn take_results(
        &self,
        acc: Self::Acc,
        window: &W,
        ctx: &EvictorContext,
        out: &mut Vec<Self::Out>,
    ) {
        let mut acc = acc;
        self.results(&mut acc, window, ctx, out);
    }
    /// After the window function ran.
    fn after_fire(&self, _acc: &mut Self::Acc, _window: &W, _ctx: &EvictorContext) {}
}

/// Contents kept by a reduce function.
pub struct ReduceFold<T, R> {
    reduce: Arc<R>,
    _type: PhantomData<fn(T)>,
}

impl<T, R> ReduceFold<T, R> {
    pub(crate) fn new(reduce: R) -> Self {
        ReduceFold {
            reduce: Arc::new(reduce),
            _type: PhantomData,
        }
    }
}

impl<T: ExchangeData, W, R: ReduceFunction<T>> WindowFold<T, W> for ReduceFold<T, R> {
    type Acc = Option<T>;
    type Out = T;
    #[inline]
    fn create(&self, value: T, _: i64) -> Option<T> {
        Some(value)
    }
    #[inline]
    fn add(&self, acc: &mut Option<T>, value: T, _: i64) {
        *acc = Some(match acc.take() {
            Some(a) => self.reduce.reduce(a, value),
            None => value,
        });
    }
    fn merge(&self, acc: &mut Option<T>, other: Option<T>) {
        if let Some(o) = other {
            *acc = Some(match acc.take() {
                Some(a) => self.reduce.reduce(a, o),
                None => o,
            });
        }
    }
    fn results(&self, acc: &mut Option<T>, _: &W, _: &EvictorContext, out: &mut Vec<T>) {
        out.extend(acc.iter().cloned());
    }
    fn take_results(&self, acc: Option<T>, _: &W, _: &EvictorContext, out: &mut Vec<T>) {
        out.extend(acc);
    }
}

/// Contents kept by an aggregate function.
pub struct AggregateFold<T, ACC, OUT, F> {
    function: Arc<F>,
    _type: PhantomData<fn(T, ACC) -> OUT>,
}

impl<T, ACC, OUT, F> AggregateFold<T, ACC, OUT, F> {
    pub(crate) fn new(function: F) -> Self {
        AggregateFold {
            function: Arc::new(function),
            _type: PhantomData,
        }
    }
}

impl<T, ACC, OUT, W, F> WindowFold<T, W> for AggregateFold<T, ACC, OUT, F>
where
    T: Data,
    ACC: ExchangeData,
    OUT: Data,
    F: AggregateFunction<T, ACC, OUT>,
{
    type Acc = ACC;
    type Out = OUT;
    #[inline]
    fn create(&self, value: T, _: i64) -> ACC {
        let mut acc = self.function.create_accumulator();
        self.function.add(value, &mut acc);
        acc
    }
    #[inline]
    fn add(&self, acc: &mut ACC, value: T, _: i64) {
        self.function.add(value, acc);
    }
    fn merge(&self, acc: &mut ACC, other: ACC) {
        self.function.merge(acc, other);
    }
    fn results(&self, acc: &mut ACC, _: &W, _: &EvictorContext, out: &mut Vec<OUT>) {
        out.push(self.function.get_result(acc));
    }
}

/// Contents kept as the list of elements (for a process function without
/// pre-aggregation).
pub struct ListFold<T>(PhantomData<fn(T)>);

impl<T> ListFold<T> {
    pub(crate) fn new() -> Self {
        ListFold(PhantomData)
    }
}

impl<T: ExchangeData, W> WindowFold<T, W> for ListFold<T> {
    type Acc = Vec<(T, i64)>;
    type Out = T;
    fn create(&self, value: T, timestamp: i64) -> Self::Acc {
        vec![(value, timestamp)]
    }
    fn add(&self, acc: &mut Self::Acc, value: T, timestamp: i64) {
        acc.push((value, timestamp));
    }
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        acc.extend(other);
    }
    fn results(&self, acc: &mut Self::Acc, _: &W, _: &EvictorContext, out: &mut Vec<T>) {
        out.extend(acc.iter().map(|(v, _)| v.clone()));
    }
    fn take_results(&self, acc: Self::Acc, _: &W, _: &EvictorContext, out: &mut Vec<T>) {
        out.extend(acc.into_iter().map(|(v, _)| v));
    }
}

/// Contents kept as a list, so that an evictor can remove elements; the inner fold
/// (reduce, aggregate or list) runs over what remains when the window fires.
pub struct EvictingFold<F, E> {
    inner: Arc<F>,
    evictor: Arc<E>,
}

impl<F, E> EvictingFold<F, E> {
    pub(crate) fn new(inner: Arc<F>, evictor: Arc<E>) -> Self {
        EvictingFold { inner, evictor }
    }
}

impl<T: ExchangeData, W, F: WindowFold<T, W>, E: Evictor<T, W>> WindowFold<T, W>
    for EvictingFold<F, E>
{
    type Acc = Vec<(T, i64)>;
    type Out = F::Out;
    fn create(&self, value: T, timestamp: i64) -> Self::Acc {
        vec![(value, timestamp)]
    }
    fn add(&self, acc: &mut Self::Acc, value: T, timestamp: i64) {
        acc.push((value, timestamp));
    }
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        acc.extend(other);
    }
    fn results(
        &self,
        acc: &mut Self::Acc,
        window: &W,
        ctx: &EvictorContext,
        out: &mut Vec<F::Out>,
    ) {
        self.evictor.evict_before(acc, window, ctx);
        let mut elements = acc.iter().cloned();
        if let Some((first, t)) = elements.next() {
            let mut inner = self.inner.create(first, t);
            for (v, t) in elements {
                self.inner.add(&mut inner, v, t);
            }
            self.inner.results(&mut inner, window, ctx, out);
        }
    }
    fn after_fire(&self, acc: &mut Self::Acc, window: &W, ctx: &EvictorContext) {
        self.evictor.evict_after(acc, window, ctx);
    }
}

/// What turns a fired window's elements into output records.
pub trait WindowEmit<K, W, IN, OUT>: 'static {
    /// Emits the results of one window.
    fn emit(
        &mut self,
        key: &K,
        ctx: &mut ProcessWindowContext<'_, K, W>,
        elements: &mut Vec<IN>,
        out: &mut Vec<OUT>,
    ) -> Result<(), UserError>;

    /// The window is removed.
    fn clear(&mut self, _ctx: &mut ProcessWindowContext<'_, K, W>) -> Result<(), UserError> {
        Ok(())
    }

    /// Whether the emitter keeps per-window state to clear.
    fn has_clear(&self) -> bool {
        false
    }
}

/// Emits the pre-aggregated value itself (reduce or aggregate without a process function).
pub struct PassThrough;

impl<K: 'static, W: 'static, T: 'static> WindowEmit<K, W, T, T> for PassThrough {
    #[inline]
    fn emit(
        &mut self,
        _: &K,
        _: &mut ProcessWindowContext<'_, K, W>,
        elements: &mut Vec<T>,
        out: &mut Vec<T>,
    ) -> Result<(), UserError> {
        out.append(elements);
        Ok(())
    }
}

/// Runs the user's process window function.
pub struct UserProcess<P>(pub(crate) P);

impl<K: 'static, W: 'static, IN: 'static, OUT: 'static, P> WindowEmit<K, W, IN, OUT>
    for UserProcess<P>
where
    P: ProcessWindowFunction<IN, OUT, K, W>,
{
    fn emit(
        &mut self,
        key: &K,
        ctx: &mut ProcessWindowContext<'_, K, W>,
        elements: &mut Vec<IN>,
        out: &mut Vec<OUT>,
    ) -> Result<(), UserError> {
        let result = self.0.process(key, ctx, elements, &mut Collector::new(out));
        elements.clear();
        result
    }
    fn clear(&mut self, ctx: &mut ProcessWindowContext<'_, K, W>) -> Result<(), UserError> {
        self.0.clear(ctx)
    }
    fn has_clear(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_and_time_evictors_keep_the_newest() {
        let ctx = EvictorContext { watermark: 0 };
        let mut elements: Vec<(u8, i64)> = (0..5).map(|i| (i, i64::from(i) * 10)).collect();
        Evictor::<u8, ()>::evict_before(&CountEvictor::of(3), &mut elements, &(), &ctx);
        assert_eq!(elements, vec![(2, 20), (3, 30), (4, 40)]);
        Evictor::<u8, ()>::evict_before(
            &TimeEvictor::of(Duration::from_millis(15)),
            &mut elements,
            &(),
            &ctx,
        );
        assert_eq!(elements, vec![(3, 30), (4, 40)]);
    }
}
