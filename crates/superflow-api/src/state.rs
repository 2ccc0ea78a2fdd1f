//! Keyed state for user functions (Flink's `ValueState`, `ListState`, `MapState`,
//! `ReducingState` and `AggregatingState`), declared by descriptors and read through
//! the context of a keyed function, always for the current key.
//!
//! Each declared state is a [`SpillingMap`] of the operator subtask: in memory with the
//! default backend, partly in the embedded LSM store with the other.

use std::any::Any;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};
use superflow_core::{Key, KeyGroupRange};
use superflow_runtime::checkpoint::OperatorSnapshot;
use superflow_runtime::StageContext;
use superflow_state::{Compacted, CompactionCleanup, DiskStateStore, SpillingMap};

use crate::functions::ReduceFunction;
use crate::window::AggregateFunction;

/// When a value's time to live restarts (Flink's `StateTtlConfig.UpdateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateType {
    /// On creation and on every write.
    OnCreateAndWrite,
    /// On creation, writes and reads.
    OnReadAndWrite,
}

/// Whether an expired value that is still stored may be returned (Flink's
/// `StateTtlConfig.StateVisibility`). Either way, reading it removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateVisibility {
    /// Expired values are never returned.
    NeverReturnExpired,
    /// An expired value is returned by the read that removes it.
    ReturnExpiredIfNotCleanedUp,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Time to live of keyed state (Flink's `StateTtlConfig`), in processing time.
/// Expired values are removed when read, and in the background, as in Flink: each
/// access of the state checks a few more entries in memory (incremental cleanup, 5 by
/// default, `cleanup_incrementally` to tune), and with the embedded LSM backend the
/// store's compactions drop expired values on disk (`cleanup_in_compaction_filter`).
/// `disable_cleanup_in_background()` turns off the defaults of both (what was set
/// explicitly stays); `cleanup_full_snapshot()` also drops them when a checkpoint is
/// taken.
#[derive(Clone)]
pub struct StateTtlConfig {
    ttl: i64,
    update_type: UpdateType,
    visibility: StateVisibility,
    /// Entries checked per access, and whether on every record too (set explicitly).
    incremental_cleanup: Option<(usize, bool)>,
    cleanup_full_snapshot: bool,
    /// With the embedded store: compactions drop expired values, reading the clock
    /// again after this many values (set explicitly).
    compaction_cleanup: Option<u64>,
    /// Whether the background cleanups run by default (incremental, and at compaction).
    cleanup_in_background: bool,
    clock: Clock,
}

impl std::fmt::Debug for StateTtlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateTtlConfig")
            .field("ttl_ms", &self.ttl)
            .field("update_type", &self.update_type)
            .field("visibility", &self.visibility)
            .field("incremental_cleanup", &self.incremental_cleanup)
            .field("cleanup_full_snapshot", &self.cleanup_full_snapshot)
            .field("compaction_cleanup", &self.compaction_cleanup)
            .field("cleanup_in_background", &self.cleanup_in_background)
            .finish()
    }
}

impl StateTtlConfig {
    /// Values live `ttl` after their last write.
    pub fn new(ttl: std::time::Duration) -> Self {
        StateTtlConfig {
            ttl: ttl.as_millis() as i64,
            update_type: UpdateType::OnCreateAndWrite,
            visibility: StateVisibility::NeverReturnExpired,
            incremental_cleanup: None,
            cleanup_full_snapshot: false,
            compaction_cleanup: None,
            cleanup_in_background: true,
            clock: Arc::new(superflow_runtime::processing_time_now),
        }
    }

    /// When the time to live restarts.
    pub fn set_update_type(mut self, update_type: UpdateType) -> Self {
        self.update_type = update_type;
        self
    }

    /// Whether expired values may be returned.
    pub fn set_state_visibility(mut self, visibility: StateVisibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Each access of the state checks the next `cleanup_size` entries in memory for
    /// expired values, going round the state, and so does each record the operator
    /// handles if `run_cleanup_for_every_record` (Flink's `cleanupIncrementally`). A
    /// round that leaves the table mostly empty gives its memory back. With the
    /// embedded backend this covers the entries in memory; compactions clean the store.
    pub fn cleanup_incrementally(
        mut self,
        cleanup_size: usize,
        run_cleanup_for_every_record: bool,
    ) -> Self {
        self.incremental_cleanup = Some((cleanup_size.max(1), run_cleanup_for_every_record));
        self
    }

    /// Entries an access checks when incremental cleanup is on by default (Flink's).
    pub const DEFAULT_INCREMENTAL_CLEANUP_SIZE: usize = 5;

    /// Leaves expired values out of checkpoints (and drops them from memory when one is
    /// taken), as Flink's `cleanupFullSnapshot`.
    pub fn cleanup_full_snapshot(mut self) -> Self {
        self.cleanup_full_snapshot = true;
        self
    }

    /// How many values a compaction cleans up between two readings of the clock, unless
    /// told otherwise (Flink's default for its RocksDB compaction filter).
    pub const DEFAULT_QUERY_TIME_AFTER_ENTRIES: u64 = 1000;

    /// With the embedded LSM backend, compactions of the store drop expired values
    /// (and the expired elements of lists and maps), reading the clock again after
    /// every `query_time_after_entries` values, as Flink's
    /// `cleanupInRocksdbCompactFilter`. On by default, with 1,000.
    pub fn cleanup_in_compaction_filter(mut self, query_time_after_entries: u64) -> Self {
        self.compaction_cleanup = Some(query_time_after_entries.max(1));
        self
    }

    /// Turns off the cleanups that run in the background by default (incremental
    /// cleanup, and compaction cleanup in the embedded backend), as Flink's
    /// `disableCleanupInBackground`; those set explicitly stay. Expired values then go
    /// when read, by the cleanups set, or left out of full snapshots.
    pub fn disable_cleanup_in_background(mut self) -> Self {
        self.cleanup_in_background = false;
        self
    }

    /// The incremental cleanup in effect: (entries per access, on every record too).
    fn incremental(&self) -> Option<(usize, bool)> {
        self.incremental_cleanup.or(self
            .cleanup_in_background
            .then_some((Self::DEFAULT_INCREMENTAL_CLEANUP_SIZE, false)))
    }

    /// The compaction cleanup in effect: values between readings of the clock.
    fn compaction(&self) -> Option<u64> {
        self.compaction_cleanup.or(self
            .cleanup_in_background
            .then_some(Self::DEFAULT_QUERY_TIME_AFTER_ENTRIES))
    }

    /// Reads time from `clock` (milliseconds) instead of the wall clock: for tests.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn expired(&self, stamp: i64, now: i64) -> bool {
        stamp.saturating_add(self.ttl) <= now
    }
}

/// A stored value and when its time to live last restarted (kept in checkpoints, so
/// the time to live goes on after a restore). The stamp comes first, so that a
/// compaction reads it without decoding the value.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Stamped<T> {
    stamp: i64,
    value: T,
}

/// The TTL of one declared state.
#[derive(Clone)]
struct Ttl {
    config: Option<StateTtlConfig>,
}

impl Ttl {
    fn of(config: &Option<StateTtlConfig>) -> Ttl {
        Ttl {
            config: config.clone(),
        }
    }

    /// What a read of an element stamped `stamp` does at `now`: whether the element
    /// stays stored, and whether the read sees it. A live element is renewed if reads
    /// renew; an expired one goes, seen only if the visibility allows.
    fn read(&self, stamp: &mut i64, now: i64) -> (bool, bool) {
        if self.expired(*stamp, now) {
            return (false, self.returns_expired());
        }
        if self.renews_on_read() {
            *stamp = now;
        }
        (true, true)
    }

    fn now(&self) -> i64 {
        self.config.as_ref().map_or(0, |c| (c.clock)())
    }

    /// The incremental cleanup in effect: (entries per access, on every record too).
    fn incremental(&self) -> Option<(usize, bool)> {
        self.config.as_ref().and_then(|c| c.incremental())
    }

    /// Whether the incremental cleanup also runs on every record.
    fn cleans_on_every_record(&self) -> bool {
        self.incremental()
            .is_some_and(|(_, every_record)| every_record)
    }

    /// Whether a value stamped `stamp` is expired at `now`.
    fn expired(&self, stamp: i64, now: i64) -> bool {
        self.config.as_ref().is_some_and(|c| c.expired(stamp, now))
    }

    fn returns_expired(&self) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.visibility == StateVisibility::ReturnExpiredIfNotCleanedUp)
    }

    fn renews_on_read(&self) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.update_type == UpdateType::OnReadAndWrite)
    }
}

/// Declares a value state: one value per key.
#[derive(Debug)]
pub struct ValueStateDescriptor<T> {
    name: String,
    ttl: Option<StateTtlConfig>,
    _type: PhantomData<fn() -> T>,
}

/// Declares a list state: a list of values per key (with TTL, each element expires on
/// its own).
#[derive(Debug)]
pub struct ListStateDescriptor<T> {
    name: String,
    ttl: Option<StateTtlConfig>,
    _type: PhantomData<fn() -> T>,
}

/// Declares a map state: a map per key (with TTL, each entry expires on its own).
#[derive(Debug)]
pub struct MapStateDescriptor<MK, MV> {
    name: String,
    ttl: Option<StateTtlConfig>,
    _type: PhantomData<fn() -> (MK, MV)>,
}

macro_rules! plain_descriptor {
    ($name:ident, $kind:literal, $($param:ident),+) => {
        impl<$($param),+> $name<$($param),+> {
            #[doc = concat!("A ", $kind, " called `name`.")]
            pub fn new(name: impl Into<String>) -> Self {
                $name {
                    name: name.into(),
                    ttl: None,
                    _type: PhantomData,
                }
            }

            /// Lets values expire (Flink's `enableTimeToLive`).
            pub fn enable_time_to_live(mut self, ttl: StateTtlConfig) -> Self {
                self.ttl = Some(ttl);
                self
            }

            /// The state's name.
            pub fn get_name(&self) -> &str {
                &self.name
            }
        }

        impl<$($param),+> Clone for $name<$($param),+> {
            fn clone(&self) -> Self {
                $name {
                    name: self.name.clone(),
                    ttl: self.ttl.clone(),
                    _type: PhantomData,
                }
            }
        }
    };
}

plain_descriptor!(ValueStateDescriptor, "value state", T);
plain_descriptor!(ListStateDescriptor, "list state", T);
plain_descriptor!(MapStateDescriptor, "map state", MK, MV);

/// Declares a reducing state: values added to it are combined by a reduce function.
pub struct ReducingStateDescriptor<T> {
    name: String,
    ttl: Option<StateTtlConfig>,
    reduce: Arc<dyn ReduceFunction<T>>,
}

impl<T> ReducingStateDescriptor<T> {
    /// A reducing state called `name`, combining values with `reduce`.
    pub fn new<R: ReduceFunction<T>>(name: impl Into<String>, reduce: R) -> Self {
        ReducingStateDescriptor {
            name: name.into(),
            ttl: None,
            reduce: Arc::new(reduce),
        }
    }

    /// Lets the value expire.
    pub fn enable_time_to_live(mut self, ttl: StateTtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<T> Clone for ReducingStateDescriptor<T> {
    fn clone(&self) -> Self {
        ReducingStateDescriptor {
            name: self.name.clone(),
            ttl: self.ttl.clone(),
            reduce: Arc::clone(&self.reduce),
        }
    }
}

/// Declares an aggregating state: values added to it go into an accumulator.
pub struct AggregatingStateDescriptor<IN, ACC, OUT> {
    name: String,
    ttl: Option<StateTtlConfig>,
    aggregate: Arc<dyn AggregateFunction<IN, ACC, OUT>>,
}

impl<IN, ACC, OUT> AggregatingStateDescriptor<IN, ACC, OUT> {
    /// An aggregating state called `name`, with `aggregate`.
    pub fn new<F: AggregateFunction<IN, ACC, OUT>>(name: impl Into<String>, aggregate: F) -> Self {
        AggregatingStateDescriptor {
            name: name.into(),
            ttl: None,
            aggregate: Arc::new(aggregate),
        }
    }

    /// Lets the accumulator expire.
    pub fn enable_time_to_live(mut self, ttl: StateTtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<IN, ACC, OUT> Clone for AggregatingStateDescriptor<IN, ACC, OUT> {
    fn clone(&self) -> Self {
        AggregatingStateDescriptor {
            name: self.name.clone(),
            ttl: self.ttl.clone(),
            aggregate: Arc::clone(&self.aggregate),
        }
    }
}

/// The `&'static str` for a state name read from a checkpoint. Names come from code (a
/// handful per job), so each distinct one is leaked once and shared.
pub(crate) fn intern(name: String) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = match NAMES.lock() {
        Ok(names) => names,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.push(leaked);
    leaked
}

/// A value kept in keyed state: cloned on read, copied and serialized into checkpoints.
pub trait StateValue: Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> StateValue for T {}

/// One declared state: its values, and how expired values are swept out.
struct DeclaredState<K, S> {
    store: SpillingMap<K, S>,
    ttl: Ttl,
    live: fn(&mut S, &Ttl, i64) -> bool,
}

impl<K: Key, S: Clone + Send + Serialize + DeserializeOwned + 'static> DeclaredState<K, S> {
    /// Checks the next entries of the incremental cleanup's round, if it has one.
    fn clean_incrementally(&mut self) {
        let Some((size, _)) = self.ttl.incremental() else {
            return;
        };
        let (ttl, live, now) = (&self.ttl, self.live, self.ttl.now());
        self.store.retain_some(size, |_, v| live(v, ttl, now));
    }
}

/// A declared state whose value type is erased: what the backend needs for checkpoints.
trait ErasedState {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Writes the state (a copy, or its changes) into a checkpoint as `name`.
    fn snapshot(&mut self, ctx: &StageContext, out: &mut OperatorSnapshot, name: &str);
    /// Runs the incremental cleanup's step of a record, if the state asks for one.
    fn clean_for_record(&mut self);
}

impl<K: Key, S: Clone + Send + Serialize + DeserializeOwned + 'static> ErasedState
    for DeclaredState<K, S>
{
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn clean_for_record(&mut self) {
        if self.ttl.cleans_on_every_record() {
            self.clean_incrementally();
        }
    }

    fn snapshot(&mut self, ctx: &StageContext, out: &mut OperatorSnapshot, name: &str) {
        if self
            .ttl
            .config
            .as_ref()
            .is_some_and(|c| c.cleanup_full_snapshot)
        {
            let (ttl, live, now) = (&self.ttl, self.live, self.ttl.now());
            self.store.retain(|_, v| live(v, ttl, now));
        }
        crate::stages::snapshot_spilling(ctx, out, name, &mut self.store);
    }
}

/// The keyed states a function declared on one operator subtask, by name, and the
/// restored states it has not declared yet (carried into checkpoints as they are).
pub struct KeyedStateBackend<K> {
    states: HashMap<String, Box<dyn ErasedState>>,
    carried: HashMap<String, Vec<Vec<u8>>>,
    /// Whether a state runs its incremental cleanup on every record.
    cleans_for_records: bool,
    /// With the embedded backend: the store, the entries kept in memory, this subtask's
    /// prefix of partition names, and the max parallelism.
    spill: Option<(Arc<DiskStateStore>, usize, String, usize)>,
    _key: PhantomData<fn() -> K>,
}

impl<K> Default for KeyedStateBackend<K> {
    fn default() -> Self {
        KeyedStateBackend {
            states: HashMap::new(),
            carried: HashMap::new(),
            cleans_for_records: false,
            spill: None,
            _key: PhantomData,
        }
    }
}

/// The prefix of declared states' names in checkpoints.
const STATE_PREFIX: &str = "state/";

impl<K: Key> KeyedStateBackend<K> {
    /// A backend holding this subtask's key groups of the declared states in the
    /// checkpoint the job restores from.
    pub(crate) fn restored(ctx: &StageContext) -> Self {
        let mut backend = KeyedStateBackend {
            spill: ctx.state_store.as_ref().map(|embedded| {
                (
                    Arc::clone(&embedded.store),
                    embedded.cache_entries,
                    ctx.store_partition(STATE_PREFIX),
                    ctx.max_parallelism,
                )
            }),
            ..KeyedStateBackend::default()
        };
        let Some(restored) = ctx.restored.as_ref() else {
            return backend;
        };
        let prefix = ctx.state_id(STATE_PREFIX);
        let range = ctx.key_group_range();
        for id in restored.states() {
            let Some(name) = id.strip_prefix(&prefix) else {
                continue;
            };
            for part in restored.keyed_parts(id) {
                match superflow_state::filter_keyed_snapshot(part, range) {
                    Ok(mine) => backend
                        .carried
                        .entry(name.to_string())
                        .or_default()
                        .push(mine),
                    Err(e) => ctx.fail(format!("cannot restore state '{name}': {e}")),
                }
            }
        }
        backend
    }

    /// A record (or timer) is being handled: states whose incremental cleanup runs on
    /// every record take their step.
    #[inline]
    pub(crate) fn on_record(&mut self) {
        if self.cleans_for_records {
            for state in self.states.values_mut() {
                state.clean_for_record();
            }
        }
    }

    /// Writes every state into a checkpoint.
    pub(crate) fn snapshot(&mut self, ctx: &StageContext, out: &mut OperatorSnapshot) {
        for (name, state) in &mut self.states {
            state.snapshot(ctx, out, &format!("{STATE_PREFIX}{name}"));
        }
        for (name, parts) in &self.carried {
            for part in parts {
                out.add_keyed(ctx.state_id(&format!("{STATE_PREFIX}{name}")), part.clone());
            }
        }
    }

    /// The store of state `name`, holding values of type `S`; each access checks a few
    /// entries for expired values with `live` when the state has incremental cleanup.
    /// `elementwise`: `live` may drop some elements of a value (a list or a map);
    /// otherwise `S` is a [`Stamped`] value.
    fn store<S: Clone + Send + Serialize + DeserializeOwned + 'static>(
        &mut self,
        name: &str,
        kind: &str,
        ttl: &Ttl,
        live: fn(&mut S, &Ttl, i64) -> bool,
        elementwise: bool,
    ) -> &mut SpillingMap<K, S> {
        if !self.states.contains_key(name) {
            let mut store = match &self.spill {
                Some((disk, capacity, prefix, max_parallelism)) => {
                    SpillingMap::spilling_with_cleanup(
                        disk,
                        &format!("{prefix}/{name}"),
                        *max_parallelism,
                        *capacity,
                        compaction_cleanup(ttl, live, elementwise),
                    )
                }
                None => SpillingMap::in_memory(),
            };
            for part in self.carried.remove(name).unwrap_or_default() {
                if let Err(e) = store.restore(&part, KeyGroupRange::all()) {
                    panic!("state '{name}' cannot be restored as {kind}: {e}");
                }
            }
            self.cleans_for_records |= ttl.cleans_on_every_record();
            self.states.insert(
                name.to_string(),
                Box::new(DeclaredState::<K, S> {
                    store,
                    ttl: ttl.clone(),
                    live,
                }),
            );
        }
        let Some(state) = self
            .states
            .get_mut(name)
            .and_then(|s| s.as_any_mut().downcast_mut::<DeclaredState<K, S>>())
        else {
            panic!(
                "state '{name}' is declared twice with different types (here as {kind}); give each state its own name"
            )
        };
        state.clean_incrementally();
        &mut state.store
    }
}

/// The cleanup of a state's expired values when the embedded store compacts them, if
/// its TTL asks for one. A value that cannot be decoded is kept: a compaction must not
/// fail, and a read reports it.
fn compaction_cleanup<S: Serialize + DeserializeOwned + 'static>(
    ttl: &Ttl,
    live: fn(&mut S, &Ttl, i64) -> bool,
    elementwise: bool,
) -> Option<CompactionCleanup> {
    let query_time_after = ttl.config.as_ref()?.compaction()?;
    let ttl = ttl.clone();
    Some(Arc::new(move || {
        let ttl = ttl.clone();
        let mut now = ttl.now();
        let mut seen = 0u64;
        Box::new(move |bytes: &[u8]| {
            seen += 1;
            if seen % query_time_after == 0 {
                now = ttl.now();
            }
            if !elementwise {
                // A `Stamped` value: its stamp alone decides, and the value (a Python
                // object, say) is never decoded.
                return match postcard::take_from_bytes::<i64>(bytes) {
                    Ok((stamp, _)) if ttl.expired(stamp, now) => Compacted::Remove,
                    _ => Compacted::Keep,
                };
            }
            let Ok(mut value) = postcard::from_bytes::<S>(bytes) else {
                return Compacted::Keep;
            };
            if !live(&mut value, &ttl, now) {
                return Compacted::Remove;
            }
            match postcard::to_stdvec(&value) {
                Ok(encoded) if encoded != bytes => Compacted::Replace(encoded),
                _ => Compacted::Keep,
            }
        })
    }))
}

fn live_value<T>(v: &mut Stamped<T>, ttl: &Ttl, now: i64) -> bool {
    !ttl.expired(v.stamp, now)
}

fn live_list<T>(list: &mut Vec<Stamped<T>>, ttl: &Ttl, now: i64) -> bool {
    list.retain(|e| !ttl.expired(e.stamp, now));
    !list.is_empty()
}

fn live_map<MK, MV>(map: &mut HashMap<MK, Stamped<MV>>, ttl: &Ttl, now: i64) -> bool {
    map.retain(|_, e| !ttl.expired(e.stamp, now));
    !map.is_empty()
}

/// Reads the stamped value of `key`, applying TTL: an expired value is removed (and
/// returned only if the visibility allows); a live one is renewed on read if asked.
fn read_stamped<K: Key, T: StateValue>(
    store: &mut SpillingMap<K, Stamped<T>>,
    key: &K,
    ttl: &Ttl,
) -> Option<T> {
    let now = ttl.now();
    let entry = store.get_mut(key)?;
    let (stays, seen) = ttl.read(&mut entry.stamp, now);
    let value = seen.then(|| entry.value.clone());
    if !stays {
        store.remove(key);
    }
    value
}

/// A value state of the current key.
pub struct ValueState<'a, K, T> {
    store: &'a mut SpillingMap<K, Stamped<T>>,
    key: &'a K,
    ttl: Ttl,
}

impl<K: Key, T: StateValue> ValueState<'_, K, T> {
    /// The value, if one was set (and has not expired).
    pub fn value(&mut self) -> Option<T> {
        read_stamped(self.store, self.key, &self.ttl)
    }

    /// Sets the value.
    pub fn update(&mut self, value: T) {
        let stamp = self.ttl.now();
        self.store
            .insert(self.key.clone(), Stamped { value, stamp });
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.store.remove(self.key);
    }
}

/// A list state of the current key.
pub struct ListState<'a, K, T> {
    store: &'a mut SpillingMap<K, Vec<Stamped<T>>>,
    key: &'a K,
    ttl: Ttl,
}

impl<K: Key, T: StateValue> ListState<'_, K, T> {
    /// The values that have not expired, in the order they were added.
    pub fn get(&mut self) -> Vec<T> {
        let now = self.ttl.now();
        let (ttl, key) = (&self.ttl, self.key);
        let Some(list) = self.store.get_mut(key) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(list.len());
        list.retain_mut(|e| {
            let (stays, seen) = ttl.read(&mut e.stamp, now);
            if seen {
                out.push(e.value.clone());
            }
            stays
        });
        if list.is_empty() {
            self.store.remove(key);
        }
        out
    }

    /// Appends a value.
    pub fn add(&mut self, value: T) {
        let stamp = self.ttl.now();
        self.store
            .get_or_insert_with(self.key.clone(), Vec::new)
            .push(Stamped { value, stamp });
    }

    /// Appends values.
    pub fn add_all(&mut self, values: impl IntoIterator<Item = T>) {
        let stamp = self.ttl.now();
        self.store
            .get_or_insert_with(self.key.clone(), Vec::new)
            .extend(values.into_iter().map(|value| Stamped { value, stamp }));
    }

    /// Replaces the values.
    pub fn update(&mut self, values: Vec<T>) {
        self.clear();
        if !values.is_empty() {
            self.add_all(values);
        }
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.store.remove(self.key);
    }
}

/// A map state of the current key.
pub struct MapState<'a, K, MK, MV> {
    store: &'a mut SpillingMap<K, HashMap<MK, Stamped<MV>>>,
    key: &'a K,
    ttl: Ttl,
}

impl<K: Key, MK: StateValue + Hash + Eq, MV: StateValue> MapState<'_, K, MK, MV> {
    /// The value of `map_key`, if set and not expired.
    pub fn get(&mut self, map_key: &MK) -> Option<MV> {
        let now = self.ttl.now();
        let map = self.store.get_mut(self.key)?;
        let entry = map.get_mut(map_key)?;
        let (stays, seen) = self.ttl.read(&mut entry.stamp, now);
        let value = seen.then(|| entry.value.clone());
        if !stays {
            map.remove(map_key);
            if map.is_empty() {
                self.store.remove(self.key);
            }
        }
        value
    }

    /// Sets the value of `map_key`.
    pub fn put(&mut self, map_key: MK, value: MV) {
        let stamp = self.ttl.now();
        self.store
            .get_or_insert_with(self.key.clone(), HashMap::new)
            .insert(map_key, Stamped { value, stamp });
    }

    /// Removes `map_key`.
    pub fn remove(&mut self, map_key: &MK) {
        if let Some(map) = self.store.get_mut(self.key) {
            map.remove(map_key);
            if map.is_empty() {
                self.store.remove(self.key);
            }
        }
    }

    /// Whether `map_key` has a value that has not expired.
    pub fn contains(&mut self, map_key: &MK) -> bool {
        self.get(map_key).is_some()
    }

    /// The entries that have not expired, in no particular order.
    pub fn entries(&mut self) -> Vec<(MK, MV)> {
        let now = self.ttl.now();
        let (ttl, key) = (&self.ttl, self.key);
        let Some(map) = self.store.get_mut(key) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(map.len());
        map.retain(|k, e| {
            let (stays, seen) = ttl.read(&mut e.stamp, now);
            if seen {
                out.push((k.clone(), e.value.clone()));
            }
            stays
        });
        if map.is_empty() {
            self.store.remove(key);
        }
        out
    }

    /// Whether the map has no live entry.
    pub fn is_empty(&mut self) -> bool {
        self.entries().is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.store.remove(self.key);
    }
}

/// A reducing state of the current key.
pub struct ReducingState<'a, K, T> {
    store: &'a mut SpillingMap<K, Stamped<T>>,
    key: &'a K,
    ttl: Ttl,
    reduce: &'a dyn ReduceFunction<T>,
}

impl<K: Key, T: StateValue> ReducingState<'_, K, T> {
    /// The combined value, if any value was added (and it has not expired).
    pub fn get(&mut self) -> Option<T> {
        read_stamped(self.store, self.key, &self.ttl)
    }

    /// Combines `value` into the state.
    pub fn add(&mut self, value: T) {
        let now = self.ttl.now();
        let combined = match self.store.remove(self.key) {
            Some(current) if !self.ttl.expired(current.stamp, now) => {
                self.reduce.reduce(current.value, value)
            }
            _ => value,
        };
        self.store.insert(
            self.key.clone(),
            Stamped {
                value: combined,
                stamp: now,
            },
        );
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.store.remove(self.key);
    }
}

/// An aggregating state of the current key.
pub struct AggregatingState<'a, K, IN, ACC, OUT> {
    store: &'a mut SpillingMap<K, Stamped<ACC>>,
    key: &'a K,
    ttl: Ttl,
    aggregate: &'a dyn AggregateFunction<IN, ACC, OUT>,
}

impl<K: Key, IN: 'static, ACC: StateValue, OUT: 'static> AggregatingState<'_, K, IN, ACC, OUT> {
    /// The aggregate's result, if any value was added (and it has not expired).
    pub fn get(&mut self) -> Option<OUT> {
        let acc = read_stamped(self.store, self.key, &self.ttl)?;
        Some(self.aggregate.get_result(&acc))
    }

    /// Adds `value` to the accumulator.
    pub fn add(&mut self, value: IN) {
        let now = self.ttl.now();
        let aggregate = self.aggregate;
        let mut acc = match self.store.remove(self.key) {
            Some(current) if !self.ttl.expired(current.stamp, now) => current.value,
            _ => aggregate.create_accumulator(),
        };
        aggregate.add(value, &mut acc);
        self.store.insert(
            self.key.clone(),
            Stamped {
                value: acc,
                stamp: now,
            },
        );
    }

    /// Removes the accumulator.
    pub fn clear(&mut self) {
        self.store.remove(self.key);
    }
}

impl<K: Key> KeyedStateBackend<K> {
    /// The value state `descriptor` of `key`.
    pub fn value<'a, T: StateValue>(
        &'a mut self,
        descriptor: &ValueStateDescriptor<T>,
        key: &'a K,
    ) -> ValueState<'a, K, T> {
        let ttl = Ttl::of(&descriptor.ttl);
        ValueState {
            store: self.store(&descriptor.name, "a value state", &ttl, live_value, false),
            key,
            ttl,
        }
    }

    /// The list state `descriptor` of `key`.
    pub fn list<'a, T: StateValue>(
        &'a mut self,
        descriptor: &ListStateDescriptor<T>,
        key: &'a K,
    ) -> ListState<'a, K, T> {
        let ttl = Ttl::of(&descriptor.ttl);
        ListState {
            store: self.store(&descriptor.name, "a list state", &ttl, live_list, true),
            key,
            ttl,
        }
    }

    /// The map state `descriptor` of `key`.
    pub fn map<'a, MK: StateValue + Hash + Eq, MV: StateValue>(
        &'a mut self,
        descriptor: &MapStateDescriptor<MK, MV>,
        key: &'a K,
    ) -> MapState<'a, K, MK, MV> {
        let ttl = Ttl::of(&descriptor.ttl);
        MapState {
            store: self.store(&descriptor.name, "a map state", &ttl, live_map, true),
            key,
            ttl,
        }
    }

    /// The reducing state `descriptor` of `key`.
    pub fn reducing<'a, T: StateValue>(
        &'a mut self,
        descriptor: &'a ReducingStateDescriptor<T>,
        key: &'a K,
    ) -> ReducingState<'a, K, T> {
        let ttl = Ttl::of(&descriptor.ttl);
        ReducingState {
            store: self.store(
                &descriptor.name,
                "a reducing state",
                &ttl,
                live_value,
                false,
            ),
            key,
            ttl,
            reduce: descriptor.reduce.as_ref(),
        }
    }

    /// The aggregating state `descriptor` of `key`.
    pub fn aggregating<'a, IN, ACC: StateValue, OUT>(
        &'a mut self,
        descriptor: &'a AggregatingStateDescriptor<IN, ACC, OUT>,
        key: &'a K,
    ) -> AggregatingState<'a, K, IN, ACC, OUT> {
        let ttl = Ttl::of(&descriptor.ttl);
        AggregatingState {
            store: self.store(
                &descriptor.name,
                "an aggregating state",
                &ttl,
                live_value,
                false,
            ),
            key,
            ttl,
            aggregate: descriptor.aggregate.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    struct Clocked {
        now: Arc<AtomicI64>,
    }

    impl Clocked {
        fn new() -> Self {
            Clocked {
                now: Arc::new(AtomicI64::new(1_000)),
            }
        }
        fn ttl(&self, ms: u64) -> StateTtlConfig {
            let now = Arc::clone(&self.now);
            StateTtlConfig::new(Duration::from_millis(ms))
                .with_clock(move || now.load(Ordering::Relaxed))
        }
        fn advance(&self, ms: i64) {
            self.now.fetch_add(ms, Ordering::Relaxed);
        }
    }

    #[test]
    fn values_expire_after_their_ttl_since_the_last_write() {
        let clock = Clocked::new();
        let d = ValueStateDescriptor::<u32>::new("v").enable_time_to_live(clock.ttl(100));
        let mut backend = KeyedStateBackend::<u8>::default();
        backend.value(&d, &1).update(7);
        clock.advance(99);
        assert_eq!(backend.value(&d, &1).value(), Some(7));
        backend.value(&d, &1).update(8);
        clock.advance(99);
        assert_eq!(
            backend.value(&d, &1).value(),
            Some(8),
            "a write restarts the TTL"
        );
        clock.advance(1);
        assert_eq!(backend.value(&d, &1).value(), None);
    }

    #[test]
    fn reads_renew_with_on_read_and_write_and_expired_values_may_be_returned_once() {
        let clock = Clocked::new();
        let renewing = ValueStateDescriptor::<u32>::new("r")
            .enable_time_to_live(clock.ttl(100).set_update_type(UpdateType::OnReadAndWrite));
        // Without background cleanup, which would check the one key before the read.
        let lenient = ValueStateDescriptor::<u32>::new("l").enable_time_to_live(
            clock
                .ttl(100)
                .set_state_visibility(StateVisibility::ReturnExpiredIfNotCleanedUp)
                .disable_cleanup_in_background(),
        );
        let mut backend = KeyedStateBackend::<u8>::default();
        backend.value(&renewing, &1).update(1);
        backend.value(&lenient, &1).update(2);
        for _ in 0..5 {
            clock.advance(60);
            assert_eq!(backend.value(&renewing, &1).value(), Some(1));
        }
        assert_eq!(
            backend.value(&lenient, &1).value(),
            Some(2),
            "expired, returned once"
        );
        assert_eq!(backend.value(&lenient, &1).value(), None, "and then gone");
    }

    #[test]
    fn list_elements_and_map_entries_expire_one_by_one() {
        let clock = Clocked::new();
        let list = ListStateDescriptor::<u32>::new("list").enable_time_to_live(clock.ttl(100));
        let map = MapStateDescriptor::<u32, u32>::new("map").enable_time_to_live(clock.ttl(100));
        let mut backend = KeyedStateBackend::<u8>::default();
        backend.list(&list, &1).add(1);
        backend.map(&map, &1).put(1, 10);
        clock.advance(50);
        backend.list(&list, &1).add(2);
        backend.map(&map, &1).put(2, 20);
        clock.advance(50);
        assert_eq!(backend.list(&list, &1).get(), vec![2]);
        assert_eq!(backend.map(&map, &1).get(&1), None);
        assert_eq!(backend.map(&map, &1).entries(), vec![(2, 20)]);
        clock.advance(50);
        assert!(backend.list(&list, &1).get().is_empty());
        assert!(backend.map(&map, &1).is_empty());
    }

    #[test]
    fn reducing_and_aggregating_state_start_over_after_expiry() {
        struct Count;
        impl AggregateFunction<u32, u64, u64> for Count {
            fn create_accumulator(&self) -> u64 {
                0
            }
            fn add(&self, _: u32, acc: &mut u64) {
                *acc += 1;
            }
            fn get_result(&self, acc: &u64) -> u64 {
                *acc
            }
            fn merge(&self, acc: &mut u64, other: u64) {
                *acc += other;
            }
        }
        let clock = Clocked::new();
        let sum = ReducingStateDescriptor::new("sum", |a: u32, b: u32| a + b)
            .enable_time_to_live(clock.ttl(100));
        let count =
            AggregatingStateDescriptor::new("count", Count).enable_time_to_live(clock.ttl(100));
        let mut backend = KeyedStateBackend::<u8>::default();
        for v in [1, 2, 3] {
            backend.reducing(&sum, &1).add(v);
            backend.aggregating(&count, &1).add(v);
        }
        assert_eq!(backend.reducing(&sum, &1).get(), Some(6));
        assert_eq!(backend.aggregating(&count, &1).get(), Some(3));
        clock.advance(100);
        backend.reducing(&sum, &1).add(10);
        backend.aggregating(&count, &1).add(10);
        assert_eq!(backend.reducing(&sum, &1).get(), Some(10));
        assert_eq!(backend.aggregating(&count, &1).get(), Some(1));
    }

    #[test]
    fn compactions_of_the_embedded_store_drop_expired_values_and_elements() {
        let clock = Clocked::new();
        let lenient = |ttl: StateTtlConfig| {
            ttl.set_state_visibility(StateVisibility::ReturnExpiredIfNotCleanedUp)
        };
        let cleaned = ValueStateDescriptor::<u64>::new("cleaned")
            .enable_time_to_live(lenient(clock.ttl(100)));
        let kept = ValueStateDescriptor::<u64>::new("kept")
            .enable_time_to_live(lenient(clock.ttl(100)).disable_cleanup_in_background());
        let list =
            ListStateDescriptor::<u64>::new("list").enable_time_to_live(lenient(clock.ttl(100)));
        let map =
            MapStateDescriptor::<u64, u64>::new("map").enable_time_to_live(lenient(clock.ttl(100)));
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStateStore::open(&dir.path().join("lsm")).unwrap();
        let mut backend = KeyedStateBackend::<u64> {
            spill: Some((Arc::clone(&store), 100, "op#0".to_string(), 128)),
            ..KeyedStateBackend::default()
        };
        const KEYS: u64 = 20_000;
        for key in 0..KEYS {
            backend.value(&cleaned, &key).update(key);
            backend.value(&kept, &key).update(key);
            backend.list(&list, &key).add(key);
            backend.map(&map, &key).put(1, key);
        }
        clock.advance(60);
        for key in 0..KEYS {
            backend.list(&list, &key).add(key + 1);
            backend.map(&map, &key).put(2, key + 1);
        }
        // Every value but the last 100 of each state is in the store only.
        clock.advance(40);
        let left = |name: &str| store.compact(&format!("op#0/{name}"));
        let stored = KEYS as usize - 100..=KEYS as usize;
        assert!(
            stored.contains(&left("kept")),
            "no cleanup: every value stays"
        );
        assert!(
            left("cleaned") <= 100,
            "the expired values are gone from the store"
        );
        assert!(
            stored.contains(&left("list")),
            "each list keeps a live element"
        );
        assert!(stored.contains(&left("map")), "each map keeps a live entry");
        // An expired value still stored is returned once (the visibility allows it):
        // only those the compaction did not see (the last 100 in memory) come back.
        let returned = |backend: &mut KeyedStateBackend<u64>, d: &ValueStateDescriptor<u64>| {
            (0..KEYS)
                .filter(|key| backend.value(d, key).value().is_some())
                .count()
        };
        assert_eq!(returned(&mut backend, &kept), KEYS as usize);
        assert!(returned(&mut backend, &cleaned) <= 100);
        let expired_elements_seen = (0..KEYS)
            .filter(|key| backend.list(&list, key).get().len() == 2)
            .count()
            + (0..KEYS)
                .filter(|key| backend.map(&map, key).entries().len() == 2)
                .count();
        assert!(
            expired_elements_seen <= 200,
            "compaction rewrote lists and maps without their expired elements \
             ({expired_elements_seen} still had them)"
        );
    }

    /// Entries in memory and the table's capacity of value state `v`.
    fn value_table(backend: &mut KeyedStateBackend<u64>) -> (usize, usize) {
        backend
            .states
            .get_mut("v")
            .and_then(|s| {
                s.as_any_mut()
                    .downcast_mut::<DeclaredState<u64, Stamped<u64>>>()
            })
            .map(|s| (s.store.len(), s.store.capacity()))
            .unwrap_or_default()
    }

    #[test]
    fn incremental_cleanup_checks_entries_on_each_access_and_gives_memory_back() {
        let clock = Clocked::new();
        let d = ValueStateDescriptor::<u64>::new("v")
            .enable_time_to_live(clock.ttl(100).cleanup_incrementally(1_000, false));
        let mut backend = KeyedStateBackend::<u64>::default();
        for key in 0..100_000u64 {
            backend.value(&d, &key).update(key);
        }
        let (len, capacity_before) = value_table(&mut backend);
        assert_eq!(len, 100_000);
        clock.advance(100);
        // Each access to key 7 checks 1,000 more entries. The writes left a round of at
        // most 1,000 keys going, so 101 accesses check every key.
        for access in 1..=101 {
            backend.value(&d, &7).update(7);
            let (len, _) = value_table(&mut backend);
            assert!(
                len + 1_000 * access >= 100_000,
                "access {access}: {len} left"
            );
        }
        let (len, capacity_after) = value_table(&mut backend);
        assert_eq!(len, 1, "only the key written after the clock moved is left");
        assert!(
            capacity_after * 100 < capacity_before,
            "the table shrank: {capacity_before} -> {capacity_after}"
        );
    }

    #[test]
    fn background_cleanup_is_on_by_default_and_can_be_turned_off() {
        let clock = Clocked::new();
        let by_default = ValueStateDescriptor::<u64>::new("v").enable_time_to_live(clock.ttl(100));
        let off = ValueStateDescriptor::<u64>::new("v")
            .enable_time_to_live(clock.ttl(100).disable_cleanup_in_background());
        let explicit = ValueStateDescriptor::<u64>::new("v").enable_time_to_live(
            clock
                .ttl(100)
                .disable_cleanup_in_background()
                .cleanup_incrementally(10, false),
        );
        // Flink's default checks 5 entries an access; the writes may have left a round
        // of up to 5 keys going, so 202 accesses check 1,000 keys.
        for (d, accesses, left) in [
            (&by_default, 202, 1),
            (&off, 1_000, 1_001),
            (&explicit, 101, 1),
        ] {
            let mut backend = KeyedStateBackend::<u64>::default();
            for key in 0..1_000u64 {
                backend.value(d, &key).update(key);
            }
            clock.advance(100);
            for access in 0..accesses {
                assert!(value_table(&mut backend).0 + 10 * access >= 1_000);
                backend.value(d, &5_000).update(1);
            }
            assert_eq!(value_table(&mut backend).0, left);
        }
    }

    #[test]
    fn cleanup_for_every_record_runs_without_state_access() {
        let clock = Clocked::new();
        let d = ValueStateDescriptor::<u64>::new("v")
            .enable_time_to_live(clock.ttl(100).cleanup_incrementally(10, true));
        let mut backend = KeyedStateBackend::<u64>::default();
        for key in 0..1_000u64 {
            backend.value(&d, &key).update(key);
        }
        clock.advance(100);
        // 10 entries a record; the writes may have left a round of up to 10 keys going.
        for record in 0..101 {
            assert!(value_table(&mut backend).0 + 10 * record >= 1_000);
            backend.on_record();
        }
        assert_eq!(value_table(&mut backend).0, 0);
    }
}
