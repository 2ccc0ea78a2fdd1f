//! Operator (non-keyed) state of user functions, as Flink's `CheckpointedFunction`: a
//! function writes named lists into each checkpoint, and gets its share back on
//! restore: list state is dealt round-robin over the new subtasks, union list state goes
//! whole to every subtask.

use super::CheckpointError;
use serde::{de::DeserializeOwned, Serialize};

use super::snapshot::OperatorSnapshot;
use crate::build::StageContext;

/// What `initialize_state` sees: the restored lists, if the job restored.
pub struct FunctionInitializationContext<'a> {
    ctx: &'a StageContext,
}

impl<'a> FunctionInitializationContext<'a> {
    /// The context of the stage at `ctx`.
    pub fn new(ctx: &'a StageContext) -> Self {
        FunctionInitializationContext { ctx }
    }

    /// Whether the job started from a checkpoint or savepoint.
    pub fn is_restored(&self) -> bool {
        self.ctx.restored.is_some()
    }

    /// This subtask's share of list state `name` (empty on a fresh start).
    pub fn get_list_state<T: DeserializeOwned>(&self, name: &str) -> Vec<T> {
        self.ctx
            .restore_list(&format!("{OPERATOR_PREFIX}{name}"))
            .unwrap_or_default()
    }

    /// Every element of union list state `name`, from all old subtasks.
    pub fn get_union_list_state<T: DeserializeOwned>(&self, name: &str) -> Vec<T> {
        self.get_list_state(name)
    }
}

/// What `snapshot_state` writes into: named lists for this checkpoint.
pub struct FunctionSnapshotContext<'a> {
    ctx: &'a StageContext,
    out: &'a mut OperatorSnapshot,
}

/// The prefix of operator state's names in checkpoints.
const OPERATOR_PREFIX: &str = "operator/";

impl<'a> FunctionSnapshotContext<'a> {
    /// The context of the stage at `ctx`, writing into `out`.
    pub fn new(ctx: &'a StageContext, out: &'a mut OperatorSnapshot) -> Self {
        FunctionSnapshotContext { ctx, out }
    }

    /// The checkpoint being taken; `None` for the final state after the input ended.
    pub fn checkpoint_id(&self) -> Option<u64> {
        self.out.checkpoint()
    }

    /// Writes list state `name`: on restore, its elements are dealt over the subtasks.
    pub fn put_list_state<T: Serialize>(
        &mut self,
        name: &str,
        items: &[T],
    ) -> Result<(), CheckpointError> {
        self.put(name, items, false)
    }

    /// Writes union list state `name`: on restore, every subtask gets every element.
    pub fn put_union_list_state<T: Serialize>(
        &mut self,
        name: &str,
        items: &[T],
    ) -> Result<(), CheckpointError> {
        self.put(name, items, true)
    }

    fn put<T: Serialize>(
        &mut self,
        name: &str,
        items: &[T],
        union: bool,
    ) -> Result<(), CheckpointError> {
        self.out
            .add_list(
                self.ctx.state_id(&format!("{OPERATOR_PREFIX}{name}")),
                items,
                union,
            )
            .map_err(|e| CheckpointError::Encode {
                what: format!("list state '{name}'"),
                reason: e.to_string(),
            })
    }
}
