//! [`StageContext`]: what a stage knows about where it runs (its operator, subtask,
//! checkpoints and state backend), and how it creates its keyed state and timers.

use std::rc::Rc;
use std::sync::Arc;

use crate::checkpoint::{CheckpointCoordinator, RestoredState};
use crate::failure::{guard, raise};
use crate::graph::NodeId;
use crate::metrics::OperatorCounters;

/// What a stage knows about where it runs.
#[derive(Clone)]
pub struct StageContext {
    /// The operator's node id.
    pub node: NodeId,
    /// The operator's name.
    pub name: Arc<str>,
    /// This subtask's index.
    pub subtask: usize,
    /// The operator's parallelism.
    pub parallelism: usize,
    /// The operator's max parallelism: the number of key groups of its keyed state.
    pub max_parallelism: usize,
    /// The operator's record counters on this worker.
    pub counters: Rc<OperatorCounters>,
    /// The name its state is stored under: the node's uid, or one derived from its
    /// position and name.
    pub uid: Arc<str>,
    /// The checkpoint the job restores from, if any.
    pub restored: Option<Arc<RestoredState>>,
    /// The job's checkpoint coordinator.
    pub checkpoints: Arc<CheckpointCoordinator>,
    /// Where keyed state lives: in memory, or partly in the embedded store.
    pub state_backend: Arc<dyn superflow_state::StateBackend>,
    /// The job's semantics: `Streaming` or `Batch` (never `Automatic`).
    pub runtime_mode: crate::RuntimeExecutionMode,
}

impl StageContext {
    /// Runs user code of this stage; a panic fails the job naming this operator.
    #[inline]
    pub fn guard<R>(&self, f: impl FnOnce() -> R) -> R {
        let _in_user_code = crate::user_code::enter(&self.name, self.subtask);
        guard(&self.name, self.subtask, f)
    }

    /// Fails the job with an error of this operator.
    pub fn fail(&self, cause: impl std::fmt::Display) -> ! {
        raise(&self.name, self.subtask, cause)
    }

    /// Fails the job with an error a function or sink of this operator returned: at
    /// once if it is [`superflow_core::Unrecoverable`], otherwise as [`Self::fail`]
    /// (restarting per the restart strategy).
    pub fn fail_with(&self, error: superflow_core::UserError) -> ! {
        if error.is::<superflow_core::Unrecoverable>() {
            crate::failure::raise_unrecoverable(&self.name, self.subtask, error)
        }
        raise(&self.name, self.subtask, error)
    }

    /// The id of this operator's state `name` in checkpoints.
    pub fn state_id(&self, name: &str) -> String {
        format!("{}/{name}", self.uid)
    }

    /// The name of this subtask's partition of state `name` in the embedded store.
    pub fn store_partition(&self, name: &str) -> String {
        format!("{}#{}", self.state_id(name), self.subtask)
    }

    /// The key groups this subtask owns.
    pub fn key_group_range(&self) -> superflow_core::KeyGroupRange {
        superflow_core::key_group_range_for_subtask(
            self.max_parallelism,
            self.parallelism,
            self.subtask,
        )
    }

    /// The latest completed checkpoint (transactional sinks commit up to it).
    pub fn completed_checkpoint(&self) -> u64 {
        self.checkpoints.completed()
    }

    /// The store of keyed state `name` of this subtask (spilling to the embedded store
    /// with that backend), holding its key groups of the restored checkpoint.
    pub fn keyed_map<K, V>(&self, name: &str) -> superflow_state::SpillingMap<K, V>
    where
        K: superflow_core::Key,
        V: serde::Serialize + serde::de::DeserializeOwned,
    {
        let opened = superflow_state::SpillingMap::in_backend(
            &*self.state_backend,
            &self.store_partition(name),
            self.max_parallelism,
            None,
        );
        let mut map = opened.unwrap_or_else(|e| self.fail(e));
        self.restore_keyed(name, |bytes, range| map.restore(bytes, range));
        map
    }

    /// The timers of this subtask, kept as state `name` (with the embedded backend and
    /// timers in its store, beyond some in memory in the store), holding this subtask's
    /// key groups of the restored checkpoint.
    pub fn timer_service<K, N>(&self, name: &str) -> superflow_state::TimerService<K, N>
    where
        K: superflow_core::Key,
        N: superflow_core::Key,
    {
        let opened = superflow_state::TimerService::in_backend(
            &*self.state_backend,
            &self.store_partition(name),
        );
        let mut timers = opened.unwrap_or_else(|e| self.fail(e));
        self.restore_keyed(name, |bytes, range| timers.restore(bytes, range));
        timers
    }

    /// The table of keyed state `name` addressed by key and namespace (window contents,
    /// join buffers), spilling to the embedded store with that backend, holding this
    /// subtask's key groups of the restored checkpoint.
    pub fn keyed_table<K, N, V>(&self, name: &str) -> superflow_state::StateTable<K, N, V>
    where
        K: superflow_core::Key,
        N: superflow_core::Key,
        V: serde::Serialize + serde::de::DeserializeOwned,
    {
        let opened = superflow_state::StateTable::in_backend(
            &*self.state_backend,
            &self.store_partition(name),
            self.max_parallelism,
        );
        let mut table = opened.unwrap_or_else(|e| self.fail(e));
        self.restore_keyed(name, |bytes, range| table.restore(bytes, range));
        table
    }

    /// The elements of list state `name` this subtask restores (none on a fresh start).
    /// A state that cannot be decoded fails the job, naming it.
    pub fn restore_list<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<Vec<T>> {
        let restored = self.restored.as_ref()?;
        let id = self.state_id(name);
        if !restored.contains(&id) {
            return None;
        }
        match restored.list(&id, self.subtask, self.parallelism) {
            Ok(items) => Some(items),
            // The error names the state and the checkpoint; failing names the operator.
            Err(e) => self.fail(e),
        }
    }

    /// Restores keyed state `name` with `restore`, called with each old part and this
    /// subtask's key groups; an error fails the job, naming the state.
    pub fn restore_keyed<E: std::fmt::Display>(
        &self,
        name: &str,
        mut restore: impl FnMut(&[u8], superflow_core::KeyGroupRange) -> Result<usize, E>,
    ) {
        let Some(restored) = self.restored.as_ref() else {
            return;
        };
        let id = self.state_id(name);
        let range = self.key_group_range();
        for part in restored.keyed_parts(&id) {
            if let Err(e) = restore(part, range) {
                self.fail(format!(
                    "cannot restore state '{id}' from {}: {e}",
                    restored.path.display()
                ));
            }
        }
    }
}
