//! `KeyedStore`: the in-memory store of one kind of keyed state of one operator subtask.

use std::hash::Hash;

use rustc_hash::FxHashMap;

/// Values of one state, addressed by key and namespace (a window, or `()`).
#[derive(Debug, Clone)]
pub struct KeyedStore<K, N, V> {
    entries: FxHashMap<(K, N), V>,
}

impl<K, N, V> Default for KeyedStore<K, N, V> {
    fn default() -> Self {
        KeyedStore {
            entries: FxHashMap::default(),
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
        // Tuples of references cannot borrow-look-up a tuple key, so clone the parts; keys
        // are small (ids, short strings) on every path that matters.
        self.entries.get(&(key.clone(), namespace.clone()))
    }

    /// The value of `key` in `namespace`, for update.
    pub fn get_mut(&mut self, key: &K, namespace: &N) -> Option<&mut V> {
        self.entries.get_mut(&(key.clone(), namespace.clone()))
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
        use std::collections::hash_map::Entry;
        match self.entries.entry((key, namespace)) {
            Entry::Occupied(e) => (e.into_mut(), false),
            Entry::Vacant(e) => (e.insert(init()), true),
        }
    }

    /// The entry of `key` in `namespace`, to insert or update with one lookup.
    #[inline]
    pub fn entry(
        &mut self,
        key: K,
        namespace: N,
    ) -> std::collections::hash_map::Entry<'_, (K, N), V> {
        self.entries.entry((key, namespace))
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &N, &mut V) -> bool) {
        self.entries.retain(|(k, n), v| keep(k, n, v));
    }

    /// Sets the value of `key` in `namespace`.
    pub fn insert(&mut self, key: K, namespace: N, value: V) -> Option<V> {
        self.entries.insert((key, namespace), value)
    }

    /// Removes and returns the value of `key` in `namespace`.
    pub fn remove(&mut self, key: &K, namespace: &N) -> Option<V> {
        self.entries.remove(&(key.clone(), namespace.clone()))
    }

    /// The number of (key, namespace) entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &N, &V)> {
        self.entries.iter().map(|((k, n), v)| (k, n, v))
    }

    /// The namespaces `key` has an entry in.
    pub fn namespaces_of<'a>(&'a self, key: &'a K) -> impl Iterator<Item = &'a N> + 'a {
        self.entries
            .keys()
            .filter(move |(k, _)| k == key)
            .map(|(_, n)| n)
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
        assert_eq!(store.get(&"a".into(), &2), Some(&7));
        assert_eq!(store.len(), 2);
        assert_eq!(store.remove(&"a".into(), &1), Some(5));
        assert_eq!(store.get(&"a".into(), &1), None);
    }
}
