//! `StateTable`: keyed state addressed by (key, namespace) on either backend. Window
//! contents, session sets and join buffers live here: in a [`KeyedStore`] with the
//! in-memory backend, and in a [`SpillingMap`] over the embedded store with the LSM
//! backend, so that they grow beyond memory as declared keyed state does.
//!
//! Both write the same snapshot entries (key, namespace, value), so a checkpoint taken
//! with one backend restores into the other.

use std::hash::{Hash, Hasher};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use superflow_core::KeyGroupRange;

use crate::keyed::KeyedStore;
use crate::snapshot::SnapshotError;
use crate::spill::SpillingMap;

/// A key with its namespace, as the spilling map holds it.
///
/// It hashes as its key alone: the key group of an entry is the key's, so that a window
/// of a key restores on the subtask that owns the key. Encoded, it is the key then the
/// namespace, as a (key, namespace) entry of a keyed snapshot is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaced<K, N> {
    key: K,
    namespace: N,
}

impl<K: Hash, N> Hash for Namespaced<K, N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

/// Values of one state by key and namespace, in memory or partly in the embedded store.
pub enum StateTable<K, N, V> {
    /// Every value in memory, grouped by namespace.
    Memory(KeyedStore<K, N, V>),
    /// Values in memory up to a number of entries, the rest in the embedded store.
    Spilling(SpillingMap<Namespaced<K, N>, V>),
}

impl<K, N, V> StateTable<K, N, V>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    N: Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// A table held in memory.
    pub fn in_memory() -> Self {
        StateTable::Memory(KeyedStore::new())
    }

    /// The table of state `state` in `backend`: grouped by namespace in memory with the
    /// memory backend, spilling to the state's partition with a store.
    pub fn in_backend(
        backend: &dyn crate::StateBackend,
        state: &str,
        max_parallelism: usize,
    ) -> Result<Self, crate::StoreError> {
        let map = SpillingMap::in_backend(backend, state, max_parallelism, None)?;
        Ok(if map.is_spilling() {
            StateTable::Spilling(map)
        } else {
            Self::in_memory()
        })
    }

    fn namespaced(key: &K, namespace: &N) -> Namespaced<K, N> {
        Namespaced {
            key: key.clone(),
            namespace: namespace.clone(),
        }
    }

    /// The value of `key` in `namespace`, for update.
    pub fn get_mut(&mut self, key: &K, namespace: &N) -> Option<&mut V> {
        match self {
            StateTable::Memory(store) => store.get_mut(key, namespace),
            StateTable::Spilling(map) => map.get_mut(&Self::namespaced(key, namespace)),
        }
    }

    /// The value of `key` in `namespace`, created by `init` if absent. The flag says
    /// whether it was created.
    #[inline]
    pub fn get_or_insert_with(
        &mut self,
        key: K,
        namespace: N,
        init: impl FnOnce() -> V,
    ) -> (&mut V, bool) {
        match self {
            StateTable::Memory(store) => store.get_or_insert_with(key, namespace, init),
            StateTable::Spilling(map) => map.get_or_create(Namespaced { key, namespace }, init),
        }
    }

    /// Sets the value of `key` in `namespace`.
    pub fn insert(&mut self, key: K, namespace: N, value: V) {
        match self {
            StateTable::Memory(store) => {
                store.insert(key, namespace, value);
            }
            StateTable::Spilling(map) => map.insert(Namespaced { key, namespace }, value),
        }
    }

    /// Removes and returns the value of `key` in `namespace`.
    pub fn remove(&mut self, key: &K, namespace: &N) -> Option<V> {
        match self {
            StateTable::Memory(store) => store.remove(key, namespace),
            StateTable::Spilling(map) => map.remove(&Self::namespaced(key, namespace)),
        }
    }

    /// Every value of `namespace`, removed, if the table holds exactly `keys` of them:
    /// a window that fires for all its keys is taken in one piece. Only a table in
    /// memory knows its namespaces; a spilling one answers `None`.
    pub fn take_whole_namespace(
        &mut self,
        namespace: &N,
        keys: usize,
    ) -> Option<std::collections::hash_map::IntoIter<K, V>> {
        match self {
            StateTable::Memory(store) if store.namespace_len(namespace) == keys => {
                Some(store.take_namespace(namespace))
            }
            _ => None,
        }
    }

    /// Adds the entries of `snapshot` whose key groups fall in `range`.
    pub fn restore(
        &mut self,
        snapshot: &[u8],
        range: KeyGroupRange,
    ) -> Result<usize, SnapshotError> {
        match self {
            StateTable::Memory(store) => store.restore(snapshot, range),
            StateTable::Spilling(map) => map.restore(snapshot, range),
        }
    }

    /// Entries in memory (in memory: every entry).
    pub fn in_memory_len(&self) -> usize {
        match self {
            StateTable::Memory(store) => store.len(),
            StateTable::Spilling(map) => map.in_memory_len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::DiskStateStore;
    use crate::snapshot::{read_keyed_snapshot, Compression};

    fn fill(table: &mut StateTable<u64, u32, String>) {
        for key in 0..2_000u64 {
            for window in 0..3u32 {
                let (value, created) =
                    table.get_or_insert_with(key, window, || format!("{key}/{window}"));
                assert!(created);
                value.push('!');
            }
        }
        let (_, created) = table.get_or_insert_with(7, 1, String::new);
        assert!(!created);
        assert_eq!(table.remove(&7, &2).as_deref(), Some("7/2!"));
        table.insert(8, 9, "late".into());
    }

    fn check(table: &mut StateTable<u64, u32, String>) {
        assert_eq!(
            table.get_mut(&7, &1).map(|v| v.clone()).as_deref(),
            Some("7/1!")
        );
        assert_eq!(table.get_mut(&7, &2), None);
        assert_eq!(
            table.get_mut(&8, &9).map(|v| v.clone()).as_deref(),
            Some("late")
        );
        assert_eq!(
            table.get_mut(&1_999, &0).map(|v| v.clone()).as_deref(),
            Some("1999/0!")
        );
    }

    #[test]
    fn a_spilling_table_keeps_values_beyond_its_memory_and_snapshots_as_a_store_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStateStore::open(&dir.path().join("lsm")).unwrap();
        let mut spilling = StateTable::Spilling(SpillingMap::spilling(&store, "windows", 128, 100));
        let mut memory = StateTable::in_memory();
        fill(&mut spilling);
        fill(&mut memory);
        assert!(spilling.in_memory_len() <= 100);
        check(&mut spilling);
        check(&mut memory);

        let StateTable::Spilling(map) = &mut spilling else {
            unreachable!()
        };
        let from_disk = map.snapshot_later(128)().unwrap();
        let StateTable::Memory(store_in_memory) = &memory else {
            unreachable!()
        };
        let from_memory = store_in_memory.snapshot(128, Compression::None).unwrap();
        let entries = |bytes: &[u8]| {
            let mut all = Vec::new();
            read_keyed_snapshot(bytes, KeyGroupRange::all(), |k: u64, n: u32, v: String| {
                all.push((k, n, v))
            })
            .unwrap();
            all.sort();
            all
        };
        assert_eq!(entries(&from_disk), entries(&from_memory));
        assert_eq!(entries(&from_disk).len(), 6_000);

        // Each backend restores the other's snapshot, key group by key group.
        let half = KeyGroupRange { start: 0, end: 63 };
        let mut into_memory: StateTable<u64, u32, String> = StateTable::in_memory();
        into_memory.restore(&from_disk, half).unwrap();
        let other = DiskStateStore::open(&dir.path().join("other")).unwrap();
        let mut into_disk: StateTable<u64, u32, String> =
            StateTable::Spilling(SpillingMap::spilling(&other, "windows", 128, 10));
        into_disk.restore(&from_memory, half).unwrap();
        for key in 0..2_000u64 {
            let mine = half.contains(superflow_core::assign_to_key_group(&key, 128));
            assert_eq!(into_memory.get_mut(&key, &0).is_some(), mine, "key {key}");
            assert_eq!(into_disk.get_mut(&key, &0).is_some(), mine, "key {key}");
        }
    }
}
