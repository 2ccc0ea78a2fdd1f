//! The vocabulary every Superflow crate shares: what a record is, how keys map to
//! key groups and subtasks, how records print, the errors a job can end with, and
//! which clones are a checkpoint's copies of state.
//!
//! Nothing here knows about timely-dataflow; the runtime and the API build on it.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
// Nothing here indexes out of bounds: every slice access is checked (as fjall does).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod aggregate;
pub mod display;
pub mod error;
pub mod key_group;
pub mod record;
pub mod snapshot_copy;

pub use aggregate::{FieldAggregate, FieldPositionError, FieldValue};
pub use display::RecordDisplay;
pub use error::{JobError, OperatorFailure, Unrecoverable, UserError};
pub use key_group::{
    assign_to_key_group, key_group_range_for_subtask, subtask_for_key, subtask_for_key_group,
    KeyGroupRange, DEFAULT_MAX_PARALLELISM, UPPER_BOUND_MAX_PARALLELISM,
};
pub use record::{Data, ExchangeData, Key};
pub use snapshot_copy::{copy_for_snapshot, copying_for_snapshot};
