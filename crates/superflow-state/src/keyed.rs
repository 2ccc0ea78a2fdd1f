//! `KeyedStore`: the in-memory store of one kind of keyed state of one operator subtask.
//!
//! Values are grouped by namespace first, then by key. Time windows are namespaces
//! shared by every key, so the records of the current window update a small table
//! that stays in cache, and a window that fires is read from its own table; one table
//! keyed by (key, window) was measured at a third of the speed, every access a cache
//! miss once a few hundred thousand windows were open.

use std::collections::hash_map::Entry;
use std::hash::Hash;

use crate::hashing::StateHashMap;

/// Values of one state, addressed by key and namespace (a window, or `()`).
#[derive(Debug, Clone)]
pub struct KeyedStore<K, N, V> {
    namespaces: StateHashMap<N, StateHashMap<K, V>>,
    len: usize,
    /// Emptied tables of removed namespaces, kept for the next namespaces: a new
    /// window then starts with the capacity the last one grew to.
    spare: Vec<StateHashMap<K, V>>,
}

/// How many emptied tables a store keeps for reuse, and up to which capacity: a few
/// small tables save their regrowth; large ones would hold memory for nothing.
const SPARE_TABLES: usize = 16;
const SPARE_TABLE_CAPACITY: usize = 16 * 1024;

impl<K, N, V> Default for KeyedStore<K, N, V> {
    fn default() -> Self {
        KeyedStore {
            namespaces: StateHashMap::default(),
            len: 0,
            spare: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone, V> KeyedStore<K, N, V> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key` in `namespace`.
    pub fn get(&self, key: &K, namespace: &N) -> Option<&V> {
        self.namespaces.get(namespace)?.get(key)
    }

    /// The value of `key` in `namespace`, for update.
    pub fn get_mut(&mut self, key: &K, namespace: &N) -> Option<&mut V> {
        self.namespaces.get_mut(namespace)?.get_mut(key)
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
        match self.entry(key, namespace) {
            Entry::Occupied(e) => (e.into_mut(), false),
            Entry::Vacant(e) => (e.insert(init()), true),
        }
    }

    /// The entry of `key` in `namespace`, to insert or update with one lookup. An entry
    /// left vacant leaves an empty namespace behind until the namespace is removed.
    #[inline]
    pub fn entry(&mut self, key: K, namespace: N) -> Entry<'_, K, V> {
        let spare = &mut self.spare;
        let values = self
            .namespaces
            .entry(namespace)
            .or_insert_with(|| spare.pop().unwrap_or_default());
        let entry = values.entry(key);
        if matches!(entry, Entry::Vacant(_)) {
            // Counted as if inserted: callers insert into vacant entries they ask for.
            self.len += 1;
        }
        entry
    }

    /// Sets the value of `key` in `namespace`.
    pub fn insert(&mut self, key: K, namespace: N, value: V) -> Option<V> {
        let spare = &mut self.spare;
        let previous = self
            .namespaces
            .entry(namespace)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .insert(key, value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Removes and returns the value of `key` in `namespace`.
    pub fn remove(&mut self, key: &K, namespace: &N) -> Option<V> {
        let values = self.namespaces.get_mut(namespace)?;
        let removed = values.remove(key);
        if removed.is_some() {
            self.len -= 1;
        }
        if values.is_empty() {
            if let Some(table) = self.namespaces.remove(namespace) {
                if self.spare.len() < SPARE_TABLES && table.capacity() <= SPARE_TABLE_CAPACITY {
                    self.spare.push(table);
                }
            }
        }
        removed
    }

    /// The number of keys with a value in `namespace`.
    pub fn namespace_len(&self, namespace: &N) -> usize {
        self.namespaces
            .get(namespace)
            .map_or(0, |values| values.len())
    }

    /// Removes every value of `namespace` at once (a window that fires for all its keys).
    pub fn take_namespace(&mut self, namespace: &N) -> std::collections::hash_map::IntoIter<K, V> {
        let values = self.namespaces.remove(namespace).unwrap_or_default();
        self.len -= values.len();
        values.into_iter()
    }

    /// Keeps the entries for which `keep` is true; tables left mostly empty are shrunk,
    /// so that memory the dropped values held is given back.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &N, &mut V) -> bool) {
        let mut removed = 0;
        self.namespaces.retain(|n, values| {
            let before = values.len();
            values.retain(|k, v| keep(k, n, v));
            removed += before - values.len();
            if values.len() * 4 < values.capacity() {
                values.shrink_to_fit();
            }
            !values.is_empty()
        });
        self.len -= removed;
        if self.namespaces.len() * 4 < self.namespaces.capacity() {
            self.namespaces.shrink_to_fit();
        }
    }

    /// The number of (key, namespace) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// How many entries the store's tables have room for: the memory it holds, in
    /// entries.
    pub fn capacity(&self) -> usize {
        self.namespaces
            .values()
            .map(|values| values.capacity())
            .sum()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &N, &V)> {
        self.namespaces
            .iter()
            .flat_map(|(n, values)| values.iter().map(move |(k, v)| (k, n, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_addressed_by_key_and_namespace() {
        let mut store: KeyedStore<String, u32, i64> = KeyedStore::new();
        let (v, created) = store.get_or_insert_with("a".into(), 1, || 0);
        *v += 5;
        assert!(created);
        let (v, created) = store.get_or_insert_with("a".into(), 1, || 0);
        assert!(!created);
        assert_eq!(*v, 5);
        store.insert("a".into(), 2, 7);
        store.insert("b".into(), 2, 8);
        assert_eq!(store.get(&"a".into(), &2), Some(&7));
        assert_eq!(store.len(), 3);
        assert_eq!(store.remove(&"a".into(), &1), Some(5));
        assert_eq!(store.get(&"a".into(), &1), None);
        assert_eq!(store.len(), 2);
        let mut all: Vec<_> = store.iter().map(|(k, n, v)| (k.clone(), *n, *v)).collect();
        all.sort();
        assert_eq!(all, vec![("a".into(), 2, 7), ("b".into(), 2, 8)]);
    }
}
