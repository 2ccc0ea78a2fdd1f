//! [`KeyedStateBackend`]: the states an operator subtask declared, each a
//! [`SpillingMap`], with their snapshots, restores and TTL sweeps.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};
use superflow_core::{Key, KeyGroupRange};
use superflow_runtime::checkpoint::OperatorSnapshot;
use superflow_runtime::StageContext;
use superflow_state::{MemoryStateBackend, SpillingMap, StateBackend};

use super::ttl::{compaction_cleanup, Ttl};

/// One declared state: its values, and how expired values are swept out.
pub(super) struct DeclaredState<K, S> {
    pub(super) store: SpillingMap<K, S>,
    pub(super) ttl: Ttl,
    pub(super) live: fn(&mut S, &Ttl, i64) -> bool,
}

impl<K: Key, S: Clone + Send + Serialize + DeserializeOwned + 'static> DeclaredState<K, S> {
    /// Checks the next entries of the incremental cleanup's round, if it has one.
    pub(super) fn clean_incrementally(&mut self) {
        let Some((size, _)) = self.ttl.incremental() else {
            return;
        };
        let (ttl, live, now) = (&self.ttl, self.live, self.ttl.now());
        self.store.retain_some(size, |_, v| live(v, ttl, now));
    }
}

/// A declared state whose value type is erased: what the backend needs for checkpoints.
pub(super) trait ErasedState {
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
    /// Every declared state, by name (seen by the tests of `state`).
    pub(super) states: HashMap<String, Box<dyn ErasedState>>,
    pub(super) carried: HashMap<String, Vec<Vec<u8>>>,
    /// Whether a state runs its incremental cleanup on every record.
    pub(super) cleans_for_records: bool,
    /// Where the states live, this subtask's prefix of partition names, and the max
    /// parallelism.
    pub(super) backend: (Arc<dyn StateBackend>, String, usize),
    /// The operator, its subtask and the checkpoint restored from, named when a
    /// restored state cannot be read as the type its descriptor asks for.
    pub(super) origin: Option<(Arc<str>, usize, String)>,
    pub(super) _key: PhantomData<fn() -> K>,
}

impl<K> Default for KeyedStateBackend<K> {
    fn default() -> Self {
        KeyedStateBackend {
            states: HashMap::new(),
            carried: HashMap::new(),
            cleans_for_records: false,
            backend: (Arc::new(MemoryStateBackend), String::new(), 0),
            origin: None,
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
            backend: (
                Arc::clone(&ctx.state_backend),
                ctx.store_partition(STATE_PREFIX),
                ctx.max_parallelism,
            ),
            origin: ctx.restored.as_ref().map(|restored| {
                (
                    Arc::clone(&ctx.name),
                    ctx.subtask,
                    restored.path.display().to_string(),
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
    pub(super) fn store<S: Clone + Send + Serialize + DeserializeOwned + 'static>(
        &mut self,
        name: &str,
        kind: &str,
        ttl: &Ttl,
        live: fn(&mut S, &Ttl, i64) -> bool,
        elementwise: bool,
    ) -> &mut SpillingMap<K, S> {
        if !self.states.contains_key(name) {
            let (backend, prefix, max_parallelism) = &self.backend;
            let opened = SpillingMap::in_backend(
                &**backend,
                &format!("{prefix}/{name}"),
                *max_parallelism,
                compaction_cleanup(ttl, live, elementwise),
            );
            let mut store = opened.unwrap_or_else(|e| panic!("state '{name}': {e}"));
            for part in self.carried.remove(name).unwrap_or_default() {
                if let Err(e) = store.restore(&part, KeyGroupRange::all()) {
                    let cause = format!("state '{name}' cannot be restored as {kind}: {e}");
                    match &self.origin {
                        Some((operator, subtask, checkpoint)) => superflow_runtime::failure::raise(
                            operator,
                            *subtask,
                            format!("{cause} (checkpoint {checkpoint})"),
                        ),
                        None => panic!("{cause}"),
                    }
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
