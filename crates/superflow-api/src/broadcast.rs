//! The broadcast state pattern (Flink's `BroadcastStream`, `BroadcastProcessFunction`
//! and `KeyedBroadcastProcessFunction`): a low-volume stream (rules, configuration) is
//! sent to every subtask of an operator, which keeps it in broadcast state (named maps,
//! the same on every subtask) and reads it while it handles the main, possibly keyed,
//! stream.
//!
//! Only the broadcast side writes broadcast state, so every subtask holds the same
//! maps; checkpoints store subtask 0's copy, and every subtask restores it, at any
//! parallelism.

use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use superflow_core::{Data, ExchangeData, Key, UserError};
use superflow_runtime::checkpoint::OperatorSnapshot;
use superflow_runtime::{processing_time_now, OneInputStage, Records, StageContext, TwoInputStage};
use superflow_state::TimeDomain;

use crate::functions::{Collector, KeySelector, RuntimeContext};
use crate::keyed::{KeyedStream, SharedKey};
use crate::keyed_process::{keyed_function_stage, KeyedFunctionStage, KeyedProcessContext};
use crate::stages::emit;
use crate::state::{MapStateDescriptor, StateValue};
use crate::stream::{ConnectedStreams, DataStream};

/// A stream sent to every subtask of the operator it connects to, with the broadcast
/// state descriptors that operator keeps (Flink's `BroadcastStream`).
pub struct BroadcastStream<T, BK, BV> {
    stream: DataStream<T>,
    names: Arc<Vec<String>>,
    _state: PhantomData<fn() -> (BK, BV)>,
}

impl<T: ExchangeData> DataStream<T> {
    /// Broadcasts this stream with broadcast state `descriptors` (Flink's
    /// `broadcast(descriptors...)`), to connect to a keyed or plain stream.
    pub fn broadcast_with<BK, BV>(
        &self,
        descriptors: &[MapStateDescriptor<BK, BV>],
    ) -> BroadcastStream<T, BK, BV> {
        BroadcastStream {
            stream: self.broadcast(),
            names: Arc::new(
                descriptors
                    .iter()
                    .map(|d| d.get_name().to_string())
                    .collect(),
            ),
            _state: PhantomData,
        }
    }

    /// Connects this stream with a broadcast stream (Flink's `connect(broadcastStream)`).
    pub fn connect_broadcast<B: Data, BK, BV>(
        &self,
        broadcast: &BroadcastStream<B, BK, BV>,
    ) -> BroadcastConnectedStream<T, B, (), BK, BV, UnitKey> {
        BroadcastConnectedStream {
            streams: ConnectedStreams {
                first: self.clone(),
                second: broadcast.stream.clone(),
            },
            key: Arc::new(UnitKey),
            names: Arc::clone(&broadcast.names),
            _key: PhantomData,
            _state: PhantomData,
        }
    }
}

impl<T: ExchangeData, K: Key, KS: KeySelector<T, K>> KeyedStream<T, K, KS> {
    /// Connects this keyed stream with a broadcast stream, for a
    /// [`KeyedBroadcastProcessFunction`].
    pub fn connect_broadcast<B: Data, BK, BV>(
        &self,
        broadcast: &BroadcastStream<B, BK, BV>,
    ) -> BroadcastConnectedStream<T, B, K, BK, BV, SharedKey<KS>> {
        BroadcastConnectedStream {
            streams: ConnectedStreams {
                first: self.input.clone(),
                second: broadcast.stream.clone(),
            },
            key: Arc::new(SharedKey(Arc::clone(&self.key_selector))),
            names: Arc::clone(&broadcast.names),
            _key: PhantomData,
            _state: PhantomData,
        }
    }
}

/// The key of a stream that is not keyed.
#[derive(Debug, Clone, Copy)]
pub struct UnitKey;

impl<T> KeySelector<T, ()> for UnitKey {
    #[inline]
    fn get_key(&self, _value: &T) {}
}

/// A stream connected with a broadcast stream (Flink's `BroadcastConnectedStream`).
pub struct BroadcastConnectedStream<A, B, K, BK, BV, KS> {
    streams: ConnectedStreams<A, B>,
    key: Arc<KS>,
    names: Arc<Vec<String>>,
    _key: PhantomData<fn() -> K>,
    _state: PhantomData<fn() -> (BK, BV)>,
}

impl<A, B, K, BK, BV, KS> BroadcastConnectedStream<A, B, K, BK, BV, KS>
where
    A: Data,
    B: Data,
    K: Key,
    BK: StateValue + Hash + Eq,
    BV: StateValue,
    KS: KeySelector<A, K>,
{
    /// Runs a keyed broadcast process function.
    pub fn process<O: Data, P: KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>>(
        &self,
        function: P,
    ) -> DataStream<O> {
        let (key, names) = (Arc::clone(&self.key), Arc::clone(&self.names));
        self.streams.binary(
            "Broadcast Process",
            Arc::new(move |ctx, chain, next| {
                Box::new(BroadcastStage {
                    ctx: ctx.clone(),
                    key: Arc::clone(&key),
                    function: function.clone(),
                    context: KeyedProcessContext::new(ctx, chain),
                    state: BroadcastState::restored(ctx, &names),
                    out: Records::default(),
                    next,
                    _in: PhantomData,
                })
            }),
        )
    }
}

impl<A, B, BK, BV> BroadcastConnectedStream<A, B, (), BK, BV, UnitKey>
where
    A: Data,
    B: Data,
    BK: StateValue + Hash + Eq,
    BV: StateValue,
{
    /// Runs a broadcast process function on a stream that is not keyed.
    pub fn process_plain<O: Data, P: BroadcastProcessFunction<A, B, O, BK, BV>>(
        &self,
        function: P,
    ) -> DataStream<O> {
        self.process(Plain(function))
    }
}

/// The broadcast state of one subtask: named maps.
pub struct BroadcastState<BK, BV> {
    maps: HashMap<String, HashMap<BK, BV>>,
}

/// The prefix of broadcast state's names in checkpoints.
const BROADCAST_PREFIX: &str = "broadcast/";

impl<BK: StateValue + Hash + Eq, BV: StateValue> BroadcastState<BK, BV> {
    fn restored(ctx: &StageContext, names: &[String]) -> Self {
        let mut maps = HashMap::new();
        for name in names {
            let entries: Vec<(BK, BV)> = ctx
                .restore_list(&format!("{BROADCAST_PREFIX}{name}"))
                .unwrap_or_default();
            maps.insert(name.clone(), entries.into_iter().collect());
        }
        BroadcastState { maps }
    }

    fn snapshot(&self, ctx: &StageContext, out: &mut OperatorSnapshot) {
        // Every subtask holds the same maps: subtask 0's copy stands for all.
        if ctx.subtask != 0 {
            return;
        }
        for (name, map) in &self.maps {
            let entries: Vec<(&BK, &BV)> = map.iter().collect();
            let id = ctx.state_id(&format!("{BROADCAST_PREFIX}{name}"));
            if let Err(e) = out.add_list(id, &entries, true) {
                ctx.fail(format!("cannot write broadcast state '{name}': {e}"));
            }
        }
    }
}

impl<BK: Hash + Eq, BV> BroadcastState<BK, BV> {
    fn read(&self, descriptor: &MapStateDescriptor<BK, BV>) -> ReadOnlyBroadcastState<'_, BK, BV> {
        ReadOnlyBroadcastState {
            map: self.maps.get(descriptor.get_name()),
        }
    }
}

/// Broadcast state as the keyed side sees it: read only.
pub struct ReadOnlyBroadcastState<'a, BK, BV> {
    map: Option<&'a HashMap<BK, BV>>,
}

impl<'a, BK: Hash + Eq, BV> ReadOnlyBroadcastState<'a, BK, BV> {
    /// The value of `key`.
    pub fn get(&self, key: &BK) -> Option<&'a BV> {
        self.map.and_then(|m| m.get(key))
    }

    /// Whether `key` has a value.
    pub fn contains(&self, key: &BK) -> bool {
        self.map.is_some_and(|m| m.contains_key(key))
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = (&'a BK, &'a BV)> {
        self.map.into_iter().flatten()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.map.map_or(0, HashMap::len)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The context of `process_element` and `on_timer` of a keyed broadcast process
/// function: everything a keyed process function has (key, keyed state, timers, side
/// outputs), and broadcast state to read.
pub struct KeyedReadOnlyContext<'a, K, BK, BV> {
    keyed: &'a mut KeyedProcessContext<K>,
    broadcast: &'a BroadcastState<BK, BV>,
}

impl<K, BK: Hash + Eq, BV> KeyedReadOnlyContext<'_, K, BK, BV> {
    /// Broadcast state `descriptor`, to read.
    pub fn get_broadcast_state(
        &self,
        descriptor: &MapStateDescriptor<BK, BV>,
    ) -> ReadOnlyBroadcastState<'_, BK, BV> {
        self.broadcast.read(descriptor)
    }
}

impl<K, BK, BV> std::ops::Deref for KeyedReadOnlyContext<'_, K, BK, BV> {
    type Target = KeyedProcessContext<K>;
    fn deref(&self) -> &Self::Target {
        self.keyed
    }
}

impl<K, BK, BV> std::ops::DerefMut for KeyedReadOnlyContext<'_, K, BK, BV> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.keyed
    }
}

/// The context of `process_broadcast_element`: broadcast state to read and write, the
/// record's timestamp and the clocks.
pub struct BroadcastContext<'a, BK, BV> {
    state: &'a mut BroadcastState<BK, BV>,
    timestamp: Option<i64>,
    watermark: i64,
}

impl<BK: Hash + Eq, BV> BroadcastContext<'_, BK, BV> {
    /// Broadcast state `descriptor`, to read and write.
    pub fn get_broadcast_state(
        &mut self,
        descriptor: &MapStateDescriptor<BK, BV>,
    ) -> &mut HashMap<BK, BV> {
        self.state
            .maps
            .entry(descriptor.get_name().to_string())
            .or_default()
    }

    /// The broadcast record's event timestamp, if it has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The wall clock, in milliseconds since the Unix epoch.
    pub fn current_processing_time(&self) -> i64 {
        processing_time_now()
    }
}

/// A function over a keyed stream connected with a broadcast stream (Flink's
/// `KeyedBroadcastProcessFunction`).
pub trait KeyedBroadcastProcessFunction<K, I1, I2, O, BK, BV>:
    Clone + Send + Sync + 'static
{
    /// Called once per subtask before the first record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }

    /// Called once per subtask after the last record.
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }

    /// Handles a record of the keyed stream.
    fn process_element(
        &mut self,
        value: I1,
        ctx: &mut KeyedReadOnlyContext<'_, K, BK, BV>,
        out: &mut Collector<O>,
    ) -> Result<(), UserError>;

    /// Handles a record of the broadcast stream (every subtask sees every one).
    fn process_broadcast_element(
        &mut self,
        value: I2,
        ctx: &mut BroadcastContext<'_, BK, BV>,
        out: &mut Collector<O>,
    ) -> Result<(), UserError>;

    /// A timer registered for `ctx.get_current_key()` fired at `timestamp`.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut KeyedReadOnlyContext<'_, K, BK, BV>,
        _out: &mut Collector<O>,
    ) -> Result<(), UserError> {
        Ok(())
    }
}

/// What `process_element` of a [`BroadcastProcessFunction`] sees: broadcast state to
/// read, the record's timestamp and the clocks.
pub struct ReadOnlyContext<'a, BK, BV> {
    broadcast: &'a BroadcastState<BK, BV>,
    timestamp: Option<i64>,
    watermark: i64,
}

impl<BK: Hash + Eq, BV> ReadOnlyContext<'_, BK, BV> {
    /// Broadcast state `descriptor`, to read.
    pub fn get_broadcast_state(
        &self,
        descriptor: &MapStateDescriptor<BK, BV>,
    ) -> ReadOnlyBroadcastState<'_, BK, BV> {
        self.broadcast.read(descriptor)
    }

    /// The record's event timestamp, if it has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }
}

/// A function over a plain stream connected with a broadcast stream (Flink's
/// `BroadcastProcessFunction`).
pub trait BroadcastProcessFunction<I1, I2, O, BK, BV>: Clone + Send + Sync + 'static {
    /// Handles a record of the plain stream.
    fn process_element(
        &mut self,
        value: I1,
        ctx: &ReadOnlyContext<'_, BK, BV>,
        out: &mut Collector<O>,
    ) -> Result<(), UserError>;

    /// Handles a record of the broadcast stream (every subtask sees every one).
    fn process_broadcast_element(
        &mut self,
        value: I2,
        ctx: &mut BroadcastContext<'_, BK, BV>,
        out: &mut Collector<O>,
    ) -> Result<(), UserError>;
}

/// Runs a [`BroadcastProcessFunction`] as a keyed one on the key `()`.
#[derive(Clone)]
struct Plain<P>(P);

impl<I1, I2, O, BK, BV, P> KeyedBroadcastProcessFunction<(), I1, I2, O, BK, BV> for Plain<P>
where
    P: BroadcastProcessFunction<I1, I2, O, BK, BV>,
    BK: Hash + Eq,
{
    fn process_element(
        &mut self,
        value: I1,
        ctx: &mut KeyedReadOnlyContext<'_, (), BK, BV>,
        out: &mut Collector<O>,
    ) -> Result<(), UserError> {
        let plain = ReadOnlyContext {
            broadcast: ctx.broadcast,
            timestamp: ctx.keyed.timestamp(),
            watermark: ctx.keyed.current_watermark(),
        };
        self.0.process_element(value, &plain, out)
    }

    fn process_broadcast_element(
        &mut self,
        value: I2,
        ctx: &mut BroadcastContext<'_, BK, BV>,
        out: &mut Collector<O>,
    ) -> Result<(), UserError> {
        self.0.process_broadcast_element(value, ctx, out)
    }
}

struct BroadcastStage<K, A, B, O, BK, BV, P, KS> {
    ctx: StageContext,
    key: Arc<KS>,
    function: P,
    context: KeyedProcessContext<K>,
    state: BroadcastState<BK, BV>,
    out: Records<O>,
    next: Box<dyn OneInputStage<O>>,
    _in: PhantomData<fn(A, B)>,
}

impl<K, A, B, O, BK, BV, P, KS> BroadcastStage<K, A, B, O, BK, BV, P, KS>
where
    K: Key,
    A: Data,
    B: Data,
    O: Data,
    BK: StateValue + Hash + Eq,
    BV: StateValue,
    P: KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>,
    KS: KeySelector<A, K>,
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

impl<K, A, B, O, BK, BV, P, KS> KeyedFunctionStage<K> for BroadcastStage<K, A, B, O, BK, BV, P, KS>
where
    K: Key,
    A: Data,
    B: Data,
    O: Data,
    BK: StateValue + Hash + Eq,
    BV: StateValue,
    P: KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>,
    KS: KeySelector<A, K>,
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

    fn snapshot_other_state(&mut self, out: &mut OperatorSnapshot) {
        self.state.snapshot(&self.ctx, out);
    }

    fn fire(&mut self, domain: TimeDomain, until: i64) {
        self.run(|s| {
            let (function, state, out) = (&mut s.function, &s.state, &mut s.out);
            s.context.fire_timers(domain, until, &mut |time, keyed| {
                let mut ctx = KeyedReadOnlyContext {
                    keyed,
                    broadcast: state,
                };
                function.on_timer(time, &mut ctx, &mut Collector::new(&mut out.values))?;
                out.stamp_new(ctx.timestamp());
                Ok(())
            })
        });
    }
}

impl<K, A, B, O, BK, BV, P, KS> TwoInputStage<A, B> for BroadcastStage<K, A, B, O, BK, BV, P, KS>
where
    K: Key,
    A: Data,
    B: Data,
    O: Data,
    BK: StateValue + Hash + Eq,
    BV: StateValue,
    P: KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>,
    KS: KeySelector<A, K>,
{
    fn push1(&mut self, batch: &mut Records<A>) {
        self.ctx.counters.add_in(batch.len());
        self.run(|s| {
            for (x, t) in batch.drain() {
                s.context.set_current(s.key.get_key(&x), t);
                let mut ctx = KeyedReadOnlyContext {
                    keyed: &mut s.context,
                    broadcast: &s.state,
                };
                s.function
                    .process_element(x, &mut ctx, &mut Collector::new(&mut s.out.values))?;
                s.out.stamp_new(t);
            }
            Ok(())
        });
    }

    fn push2(&mut self, batch: &mut Records<B>) {
        self.ctx.counters.add_in(batch.len());
        self.run(|s| {
            let watermark = s.context.current_watermark();
            for (x, t) in batch.drain() {
                let mut ctx = BroadcastContext {
                    state: &mut s.state,
                    timestamp: t,
                    watermark,
                };
                s.function.process_broadcast_element(
                    x,
                    &mut ctx,
                    &mut Collector::new(&mut s.out.values),
                )?;
                s.out.stamp_new(t);
            }
            Ok(())
        });
    }
}

keyed_function_stage!(impl<K, A, B, O, BK, BV, P, KS> for BroadcastStage<K, A, B, O, BK, BV, P, KS>
where
    K: Key,
    A: Data,
    B: Data,
    O: Data,
    BK: StateValue + Hash + Eq,
    BV: StateValue,
    P: KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>,
    KS: KeySelector<A, K>,
);
