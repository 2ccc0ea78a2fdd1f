//! The state an operator subtask writes into a checkpoint (named sections: keyed state
//! grouped by key group, or operator list state), and the restored state a new subtask
//! reads its share from, at any parallelism.

use super::CheckpointError;
use std::collections::HashMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// How a section is split when the job restores at another parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SectionKind {
    /// Keyed state grouped by key group: each new subtask reads the key groups of its
    /// range from every old part.
    Keyed,
    /// Operator list state: the elements of all old subtasks are dealt round-robin to the
    /// new ones (Flink's even-split redistribution).
    List,
    /// Union list state: every new subtask gets every element.
    UnionList,
    /// Keyed state written incrementally: the bytes name a chain of files in the
    /// storage's `shared` directory (a full one, then deltas); a restore reads them into
    /// a `Keyed` section.
    KeyedChain,
}

/// One named piece of an operator's state in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateSection {
    /// `uid/state-name`: matched by name on restore.
    pub state: String,
    /// How it is redistributed.
    pub kind: SectionKind,
    /// The encoded state.
    pub bytes: Vec<u8>,
}

/// Encodes a copy of some state, off the data path.
pub type DeferredEncoding = superflow_state::Encoding;

/// What one operator subtask writes for a checkpoint: a section per state, filled by
/// the stages of its chain. A stage either encodes its state at once, or hands over a
/// copy with the function that encodes it, which runs on the part's writer thread: the
/// data path then stops only for the copy.
#[derive(Default)]
pub struct OperatorSnapshot {
    pub(crate) sections: Vec<StateSection>,
    /// Behind a mutex only so that a final snapshot can be shared between threads.
    deferred: std::sync::Mutex<Vec<(String, SectionKind, DeferredEncoding)>>,
    checkpoint: Option<u64>,
}

impl std::fmt::Debug for OperatorSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorSnapshot")
            .field("sections", &self.sections.len())
            .field("deferred", &self.deferred.lock().map_or(0, |d| d.len()))
            .field("checkpoint", &self.checkpoint)
            .finish()
    }
}

impl OperatorSnapshot {
    /// An empty snapshot of a subtask's final state (after its input ended), which
    /// stands for it in every later checkpoint.
    pub fn new() -> OperatorSnapshot {
        OperatorSnapshot::default()
    }

    /// An empty snapshot for checkpoint `id`.
    pub fn for_checkpoint(id: u64) -> OperatorSnapshot {
        OperatorSnapshot {
            sections: Vec::new(),
            deferred: Default::default(),
            checkpoint: Some(id),
        }
    }

    /// The checkpoint this snapshot is for; `None` for a final snapshot.
    pub fn checkpoint(&self) -> Option<u64> {
        self.checkpoint
    }

    /// Adds keyed state written by `KeyedStore::snapshot`.
    pub fn add_keyed(&mut self, state: String, bytes: Vec<u8>) {
        self.sections.push(StateSection {
            state,
            kind: SectionKind::Keyed,
            bytes,
        });
    }

    /// Adds keyed state that `encode` writes later (as `KeyedStore::snapshot` does),
    /// from a copy the stage made.
    pub fn add_keyed_later(
        &mut self,
        state: String,
        encode: impl FnOnce() -> Result<Vec<u8>, superflow_state::EncodingError> + Send + 'static,
    ) {
        self.deferred_mut()
            .push((state, SectionKind::Keyed, Box::new(encode)));
    }

    /// Adds keyed state that `encode` writes incrementally (it writes its file into the
    /// storage's `shared` directory and returns the chain).
    pub fn add_keyed_chain_later(
        &mut self,
        state: String,
        encode: impl FnOnce() -> Result<Vec<u8>, superflow_state::EncodingError> + Send + 'static,
    ) {
        self.deferred_mut()
            .push((state, SectionKind::KeyedChain, Box::new(encode)));
    }

    /// Runs the deferred encodings.
    pub fn materialize(&mut self) -> Result<(), CheckpointError> {
        for (state, kind, encode) in std::mem::take(self.deferred_mut()) {
            let bytes = encode().map_err(|e| CheckpointError::Encode {
                what: format!("state '{state}'"),
                reason: e.to_string(),
            })?;
            self.sections.push(StateSection { state, kind, bytes });
        }
        Ok(())
    }

    /// Adds operator list state; `union` makes it union list state.
    pub fn add_list<T: Serialize>(
        &mut self,
        state: String,
        items: &[T],
        union: bool,
    ) -> Result<(), postcard::Error> {
        let elements = items
            .iter()
            .map(postcard::to_stdvec)
            .collect::<Result<Vec<_>, _>>()?;
        self.sections.push(StateSection {
            state,
            kind: if union {
                SectionKind::UnionList
            } else {
                SectionKind::List
            },
            bytes: postcard::to_stdvec(&elements)?,
        });
        Ok(())
    }

    /// The sections written so far.
    pub fn sections(&self) -> &[StateSection] {
        &self.sections
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty() && self.deferred.lock().map_or(true, |d| d.is_empty())
    }

    fn deferred_mut(&mut self) -> &mut Vec<(String, SectionKind, DeferredEncoding)> {
        match self.deferred.get_mut() {
            Ok(deferred) => deferred,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Total bytes of the sections.
    pub fn size(&self) -> usize {
        self.sections.iter().map(|s| s.bytes.len()).sum()
    }
}

/// One old subtask's section of a state.
#[derive(Debug, Clone)]
struct RestoredSection {
    subtask: usize,
    kind: SectionKind,
    bytes: Vec<u8>,
}

/// The state of a checkpoint, loaded once per process, from which every subtask
/// restores its share.
#[derive(Debug, Default)]
pub struct RestoredState {
    /// The checkpoint's id.
    pub checkpoint: u64,
    /// The line of checkpoints it belongs to ([`CheckpointMetadata::lineage`]).
    ///
    /// [`CheckpointMetadata::lineage`]: crate::checkpoint::CheckpointMetadata::lineage
    pub lineage: u64,
    /// The job's max parallelism it was written with (the number of key groups).
    pub max_parallelism: usize,
    /// The operators (by state uid) written with a max parallelism of their own.
    pub operator_key_groups: std::collections::BTreeMap<String, usize>,
    /// Where it was read from.
    pub path: std::path::PathBuf,
    sections: HashMap<String, Vec<RestoredSection>>,
}

impl RestoredState {
    /// An empty restored state for checkpoint `checkpoint`.
    pub fn new(checkpoint: u64, max_parallelism: usize, path: std::path::PathBuf) -> Self {
        RestoredState {
            checkpoint,
            lineage: 0,
            max_parallelism,
            operator_key_groups: Default::default(),
            path,
            sections: HashMap::new(),
        }
    }

    pub(crate) fn add(&mut self, subtask: usize, section: StateSection) {
        let sections = self.sections.entry(section.state).or_default();
        sections.push(RestoredSection {
            subtask,
            kind: section.kind,
            bytes: section.bytes,
        });
        sections.sort_by_key(|s| s.subtask);
    }

    /// The names of every state in the checkpoint.
    pub fn states(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }

    /// The number of key groups the operator stored under `uid` was written with.
    pub fn key_groups_of(&self, uid: &str) -> usize {
        self.operator_key_groups
            .get(uid)
            .copied()
            .unwrap_or(self.max_parallelism)
    }

    /// Whether the checkpoint holds keyed state of the operator stored under `uid`.
    pub fn has_keyed_state_of(&self, uid: &str) -> bool {
        self.sections.iter().any(|(state, sections)| {
            state
                .strip_prefix(uid)
                .is_some_and(|rest| rest.starts_with('/'))
                && sections
                    .iter()
                    .any(|s| matches!(s.kind, SectionKind::Keyed | SectionKind::KeyedChain))
        })
    }

    /// Whether the checkpoint holds state `state`.
    pub fn contains(&self, state: &str) -> bool {
        self.sections.contains_key(state)
    }

    /// Every old subtask's part of keyed state `state`; each holds whole key groups.
    pub fn keyed_parts(&self, state: &str) -> impl Iterator<Item = &[u8]> {
        self.sections
            .get(state)
            .into_iter()
            .flatten()
            .filter(|s| s.kind == SectionKind::Keyed)
            .map(|s| s.bytes.as_slice())
    }

    /// The elements of list state `state` that subtask `subtask` of `parallelism` gets:
    /// all of them for union list state, every `parallelism`-th otherwise.
    pub fn list<T: DeserializeOwned>(
        &self,
        state: &str,
        subtask: usize,
        parallelism: usize,
    ) -> Result<Vec<T>, CheckpointError> {
        let damaged = |e: postcard::Error| {
            let what = format!("list state '{state}' of checkpoint");
            CheckpointError::damaged(what, self.path.display(), format!("cannot decode it: {e}"))
        };
        let mut all = Vec::new();
        let mut union = false;
        for section in self.sections.get(state).into_iter().flatten() {
            union |= section.kind == SectionKind::UnionList;
            let elements: Vec<Vec<u8>> = postcard::from_bytes(&section.bytes).map_err(damaged)?;
            all.extend(elements);
        }
        all.into_iter()
            .enumerate()
            .filter(|(i, _)| union || i % parallelism.max(1) == subtask)
            .map(|(_, bytes)| postcard::from_bytes(&bytes).map_err(damaged))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restored(union: bool) -> RestoredState {
        let mut state = RestoredState::new(1, 128, "x".into());
        for subtask in 0..2u64 {
            let mut snapshot = OperatorSnapshot::new();
            let items = [subtask * 10, subtask * 10 + 1];
            snapshot.add_list("op/pos".into(), &items, union).unwrap();
            for section in snapshot.sections {
                state.add(subtask as usize, section);
            }
        }
        state
    }

    #[test]
    fn list_state_is_dealt_round_robin() {
        let state = restored(false);
        assert_eq!(state.list::<u64>("op/pos", 0, 3).unwrap(), vec![0, 11]);
        assert_eq!(state.list::<u64>("op/pos", 1, 3).unwrap(), vec![1]);
        assert_eq!(state.list::<u64>("op/pos", 2, 3).unwrap(), vec![10]);
        assert_eq!(state.list::<u64>("op/pos", 0, 1).unwrap().len(), 4);
    }

    #[test]
    fn union_list_state_goes_to_everyone() {
        let state = restored(true);
        for subtask in 0..3 {
            assert_eq!(
                state.list::<u64>("op/pos", subtask, 3).unwrap(),
                vec![0, 1, 10, 11]
            );
        }
    }
}
