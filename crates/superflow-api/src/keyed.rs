//! `KeyedStream`: a stream partitioned by key, with Flink's rolling aggregations.

use std::marker::PhantomData;
use std::sync::Arc;

use superflow_core::{Data, ExchangeData, FieldAggregate, Key, UserError};
use superflow_runtime::NodeKind;

use crate::functions::Collector;
use crate::functions::{KeySelector, ReduceFunction};
use crate::join::{IntervalJoin, KeyedConnectedStreams};
use crate::keyed_process::{KeyedProcessContext, KeyedProcessFunction, KeyedProcessStage};
use crate::stages::KeyedReduceStage;
use crate::stream::{hash_partitioner, DataStream};
use crate::window::{
    CountEvictor, CountTrigger, GlobalWindows, PurgingTrigger, WindowAssigner, WindowedStream,
};

/// A stream partitioned by key (Flink's `KeyedStream`). Aggregations are per key and
/// rolling: every record emits the key's updated result.
pub struct KeyedStream<T, K, KS> {
    pub(crate) input: DataStream<T>,
    pub(crate) key_selector: Arc<KS>,
    _key: PhantomData<fn() -> K>,
}

/// One key selector shared by a partitioner and the operator after it.
pub struct SharedKey<KS>(pub(crate) Arc<KS>);

impl<T, K, KS: KeySelector<T, K>> KeySelector<T, K> for SharedKey<KS> {
    #[inline]
    fn get_key(&self, value: &T) -> K {
        self.0.get_key(value)
    }
}

impl<T: ExchangeData, K: Key, KS: KeySelector<T, K>> KeyedStream<T, K, KS> {
    pub(crate) fn new(stream: DataStream<T>, key_selector: KS) -> Self {
        let key_selector = Arc::new(key_selector);
        let mut input = stream;
        input.partitioner = hash_partitioner(SharedKey(Arc::clone(&key_selector)));
        input.explicit_forward = false;
        KeyedStream {
            input,
            key_selector,
            _key: PhantomData,
        }
    }

    /// The keyed stream as a plain stream (still partitioned by key for the next operator).
    pub fn as_stream(&self) -> DataStream<T> {
        self.input.clone()
    }

    /// Runs a keyed process function: per record, with the key in context, timers and
    /// side outputs (Flink's `KeyedStream.process`).
    pub fn process<O: Data, P: KeyedProcessFunction<K, T, O>>(&self, function: P) -> DataStream<O> {
        let key = Arc::clone(&self.key_selector);
        self.input.one_input(
            "KeyedProcess",
            NodeKind::Operator,
            Arc::new(move |ctx, chain, next| {
                Box::new(KeyedProcessStage::new(
                    ctx,
                    chain,
                    Arc::new(SharedKey(Arc::clone(&key))),
                    function.clone(),
                    next,
                ))
            }),
        )
    }

    /// Flink's `keyBy(..).flatMap(RichFlatMapFunction)` with keyed state: `f(value, ctx,
    /// out)`, where `ctx` reads and writes the state of the record's key
    /// (`ctx.get_state(&descriptor)`, ...), as `getRuntimeContext().getState(..)` does.
    pub fn flat_map_with_state<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Data,
        F: FnMut(T, &mut KeyedProcessContext<K>, &mut Collector<O>) -> Result<(), UserError>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        self.process(f).name("Flat Map")
    }

    /// Flink's `keyBy(..).map(RichMapFunction)` with keyed state: `f(value, ctx)`.
    pub fn map_with_state<O, F>(&self, mut f: F) -> DataStream<O>
    where
        O: Data,
        F: FnMut(T, &mut KeyedProcessContext<K>) -> Result<O, UserError>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        self.process(
            move |value: T, ctx: &mut KeyedProcessContext<K>, out: &mut Collector<O>| {
                out.collect(f(value, ctx)?);
                Ok(())
            },
        )
        .name("Map")
    }

    /// Flink's `keyBy(..).filter(RichFilterFunction)` with keyed state: keeps the records
    /// for which `f(&value, ctx)` is true.
    pub fn filter_with_state<F>(&self, mut f: F) -> DataStream<T>
    where
        F: FnMut(&T, &mut KeyedProcessContext<K>) -> Result<bool, UserError>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        self.process(
            move |value: T, ctx: &mut KeyedProcessContext<K>, out: &mut Collector<T>| {
                if f(&value, ctx)? {
                    out.collect(value);
                }
                Ok(())
            },
        )
        .name("Filter")
    }

    /// Connects with another keyed stream, for a keyed co-process function.
    pub fn connect<B: ExchangeData, KB: KeySelector<B, K>>(
        &self,
        other: &KeyedStream<B, K, KB>,
    ) -> KeyedConnectedStreams<T, B, K, SharedKey<KS>, SharedKey<KB>> {
        self.input.connect(&other.input).key_by(
            SharedKey(Arc::clone(&self.key_selector)),
            SharedKey(Arc::clone(&other.key_selector)),
        )
    }

    /// Joins with `other` on key and time interval (Flink's `intervalJoin`): continue
    /// with `between`.
    pub fn interval_join<B: ExchangeData, KB: KeySelector<B, K>>(
        &self,
        other: &KeyedStream<B, K, KB>,
    ) -> IntervalJoin<T, B, K, KS, KB> {
        IntervalJoin {
            left: self.input.clone(),
            right: other.input.clone(),
            key_a: Arc::clone(&self.key_selector),
            key_b: Arc::clone(&other.key_selector),
            _key: PhantomData,
        }
    }

    /// Cuts each key's records into windows.
    pub fn window<A: WindowAssigner<T>>(
        &self,
        assigner: A,
    ) -> WindowedStream<T, K, KS, A, A::DefaultTrigger> {
        WindowedStream::new(
            self.input.clone(),
            Arc::clone(&self.key_selector),
            assigner,
            false,
        )
    }

    /// Windows of `size` records per key, each fired once full (Flink's `countWindow(n)`).
    pub fn count_window(
        &self,
        size: u64,
    ) -> WindowedStream<T, K, KS, GlobalWindows, PurgingTrigger<CountTrigger>> {
        self.window(GlobalWindows::create())
            .trigger(PurgingTrigger::of(CountTrigger::of(size)))
    }

    /// The last `size` records per key, fired every `slide` records (Flink's
    /// `countWindow(size, slide)`).
    pub fn count_window_sliding(
        &self,
        size: u64,
        slide: u64,
    ) -> WindowedStream<T, K, KS, GlobalWindows, CountTrigger, CountEvictor> {
        self.window(GlobalWindows::create())
            .evictor(CountEvictor::of(size as usize))
            .trigger(CountTrigger::of(slide))
    }

    /// Rolling reduce: `f(previous result, record)` per key; emits every new result.
    pub fn reduce<R: ReduceFunction<T>>(&self, f: R) -> DataStream<T> {
        self.rolling("Keyed Reduce", f)
    }

    fn rolling<R: ReduceFunction<T>>(&self, name: &str, f: R) -> DataStream<T> {
        let (key, reduce) = (Arc::clone(&self.key_selector), Arc::new(f));
        self.input.one_input(
            name,
            NodeKind::Operator,
            Arc::new(move |ctx, _chain, next| {
                let state = ctx.keyed_map(KeyedReduceStage::<T, K, KS, R>::STATE);
                Box::new(KeyedReduceStage {
                    ctx: ctx.clone(),
                    key: Arc::new(SharedKey(Arc::clone(&key))),
                    reduce: Arc::clone(&reduce),
                    state,
                    out: superflow_runtime::Records::default(),
                    next,
                    final_emitted: false,
                })
            }),
        )
    }

    fn checked(&self, aggregation: &str, position: usize, numeric: bool) -> bool
    where
        T: FieldAggregate,
    {
        match T::check_position(position, numeric) {
            Ok(()) => true,
            Err(problem) => {
                self.input
                    .env
                    .record_problem(format!("{aggregation}({position}): {problem}"));
                false
            }
        }
    }

    /// Rolling sum of field `position`; the other fields are those of the key's first record.
    pub fn sum(&self, position: usize) -> DataStream<T>
    where
        T: FieldAggregate,
    {
        self.checked("sum", position, true);
        self.rolling("Keyed Aggregation", move |mut acc: T, value: T| {
            acc.add_field(&value, position);
            acc
        })
    }

    /// Rolling minimum of field `position`; the other fields are those of the first record.
    pub fn min(&self, position: usize) -> DataStream<T>
    where
        T: FieldAggregate,
    {
        self.checked("min", position, false);
        self.rolling("Keyed Aggregation", move |mut acc: T, value: T| {
            if value.cmp_field(&acc, position).is_lt() {
                acc.copy_field(&value, position);
            }
            acc
        })
    }

    /// Rolling maximum of field `position`; the other fields are those of the first record.
    pub fn max(&self, position: usize) -> DataStream<T>
    where
        T: FieldAggregate,
    {
        self.checked("max", position, false);
        self.rolling("Keyed Aggregation", move |mut acc: T, value: T| {
            if value.cmp_field(&acc, position).is_gt() {
                acc.copy_field(&value, position);
            }
            acc
        })
    }

    /// The record with the smallest field `position` so far (the first on ties).
    pub fn min_by(&self, position: usize) -> DataStream<T>
    where
        T: FieldAggregate,
    {
        self.checked("min_by", position, false);
        self.rolling("Keyed Aggregation", move |acc: T, value: T| {
            if value.cmp_field(&acc, position).is_lt() {
                value
            } else {
                acc
            }
        })
    }

    /// The record with the largest field `position` so far (the first on ties).
    pub fn max_by(&self, position: usize) -> DataStream<T>
    where
        T: FieldAggregate,
    {
        self.checked("max_by", position, false);
        self.rolling("Keyed Aggregation", move |acc: T, value: T| {
            if value.cmp_field(&acc, position).is_gt() {
                value
            } else {
                acc
            }
        })
    }
}
