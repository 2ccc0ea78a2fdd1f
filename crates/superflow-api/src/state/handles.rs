//! The handles a keyed function reads and writes its state through, always for the
//! current key: [`ValueState`], [`ListState`], [`MapState`], [`ReducingState`] and
//! [`AggregatingState`].

use std::collections::HashMap;
use std::hash::Hash;

use superflow_core::Key;
use superflow_state::SpillingMap;

use super::descriptors::{
    AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor, ReducingStateDescriptor,
    StateValue, ValueStateDescriptor,
};
use super::registry::KeyedStateBackend;
use super::ttl::{live_list, live_map, live_value, Stamped, Ttl};
use crate::functions::ReduceFunction;
use crate::window::AggregateFunction;

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
