//! Keyed state for user functions (Flink's `ValueState`, `ListState`, `MapState`,
//! `ReducingState` and `AggregatingState`), declared by descriptors and read through
//! the context of a keyed function, always for the current key.
//!
//! Each declared state is a [`KeyedStore`] of the operator subtask, the store window
//! contents and timers use too.

use std::any::Any;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use superflow_core::Key;
use superflow_state::KeyedStore;

use crate::functions::ReduceFunction;
use crate::window::AggregateFunction;

/// Declares a value state: one value per key.
#[derive(Debug)]
pub struct ValueStateDescriptor<T> {
    name: String,
    _type: PhantomData<fn() -> T>,
}

impl<T> ValueStateDescriptor<T> {
    /// A value state called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ValueStateDescriptor {
            name: name.into(),
            _type: PhantomData,
        }
    }
}

impl<T> Clone for ValueStateDescriptor<T> {
    fn clone(&self) -> Self {
        Self::new(self.name.clone())
    }
}

/// Declares a list state: a list of values per key.
#[derive(Debug)]
pub struct ListStateDescriptor<T> {
    name: String,
    _type: PhantomData<fn() -> T>,
}

impl<T> ListStateDescriptor<T> {
    /// A list state called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ListStateDescriptor {
            name: name.into(),
            _type: PhantomData,
        }
    }
}

impl<T> Clone for ListStateDescriptor<T> {
    fn clone(&self) -> Self {
        Self::new(self.name.clone())
    }
}

/// Declares a map state: a map per key.
#[derive(Debug)]
pub struct MapStateDescriptor<MK, MV> {
    name: String,
    _type: PhantomData<fn() -> (MK, MV)>,
}

impl<MK, MV> MapStateDescriptor<MK, MV> {
    /// A map state called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        MapStateDescriptor {
            name: name.into(),
            _type: PhantomData,
        }
    }
}

impl<MK, MV> Clone for MapStateDescriptor<MK, MV> {
    fn clone(&self) -> Self {
        Self::new(self.name.clone())
    }
}

/// Declares a reducing state: values added to it are combined by a reduce function.
pub struct ReducingStateDescriptor<T> {
    name: String,
    reduce: Arc<dyn ReduceFunction<T>>,
}

impl<T> ReducingStateDescriptor<T> {
    /// A reducing state called `name`, combining values with `reduce`.
    pub fn new<R: ReduceFunction<T>>(name: impl Into<String>, reduce: R) -> Self {
        ReducingStateDescriptor {
            name: name.into(),
            reduce: Arc::new(reduce),
        }
    }
}

impl<T> Clone for ReducingStateDescriptor<T> {
    fn clone(&self) -> Self {
        ReducingStateDescriptor {
            name: self.name.clone(),
            reduce: Arc::clone(&self.reduce),
        }
    }
}

/// Declares an aggregating state: values added to it go into an accumulator.
pub struct AggregatingStateDescriptor<IN, ACC, OUT> {
    name: String,
    aggregate: Arc<dyn AggregateFunction<IN, ACC, OUT>>,
}

impl<IN, ACC, OUT> AggregatingStateDescriptor<IN, ACC, OUT> {
    /// An aggregating state called `name`, with `aggregate`.
    pub fn new<F: AggregateFunction<IN, ACC, OUT>>(name: impl Into<String>, aggregate: F) -> Self {
        AggregatingStateDescriptor {
            name: name.into(),
            aggregate: Arc::new(aggregate),
        }
    }
}

impl<IN, ACC, OUT> Clone for AggregatingStateDescriptor<IN, ACC, OUT> {
    fn clone(&self) -> Self {
        AggregatingStateDescriptor {
            name: self.name.clone(),
            aggregate: Arc::clone(&self.aggregate),
        }
    }
}

/// The keyed states a function declared on one operator subtask, by name.
pub struct KeyedStateBackend<K> {
    states: HashMap<String, Box<dyn Any>>,
    _key: PhantomData<fn() -> K>,
}

impl<K> Default for KeyedStateBackend<K> {
    fn default() -> Self {
        KeyedStateBackend {
            states: HashMap::new(),
            _key: PhantomData,
        }
    }
}

impl<K: Key> KeyedStateBackend<K> {
    /// The store of state `name`, holding values of type `S`.
    fn store<S: 'static>(&mut self, name: &str, kind: &str) -> &mut KeyedStore<K, (), S> {
        let slot = self
            .states
            .entry(name.to_string())
            .or_insert_with(|| Box::new(KeyedStore::<K, (), S>::new()));
        match slot.downcast_mut::<KeyedStore<K, (), S>>() {
            Some(store) => store,
            None => panic!(
                "state '{name}' is declared twice with different types (here as {kind}); give each state its own name"
            ),
        }
    }
}

/// A value state of the current key.
pub struct ValueState<'a, K, T> {
    store: &'a mut KeyedStore<K, (), T>,
    key: &'a K,
}

impl<K: Key, T: Clone> ValueState<'_, K, T> {
    /// The value, if one was set.
    pub fn value(&self) -> Option<T> {
        self.store.get(self.key, &()).cloned()
    }

    /// Sets the value.
    pub fn update(&mut self, value: T) {
        self.store.insert(self.key.clone(), (), value);
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.store.remove(self.key, &());
    }
}

/// A list state of the current key.
pub struct ListState<'a, K, T> {
    store: &'a mut KeyedStore<K, (), Vec<T>>,
    key: &'a K,
}

impl<K: Key, T: Clone> ListState<'_, K, T> {
    /// The values, in the order they were added (empty if none).
    pub fn get(&self) -> Vec<T> {
        self.store.get(self.key, &()).cloned().unwrap_or_default()
    }

    /// Appends a value.
    pub fn add(&mut self, value: T) {
        self.store
            .get_or_insert_with(self.key.clone(), (), Vec::new)
            .0
            .push(value);
    }

    /// Appends values.
    pub fn add_all(&mut self, values: impl IntoIterator<Item = T>) {
        self.store
            .get_or_insert_with(self.key.clone(), (), Vec::new)
            .0
            .extend(values);
    }

    /// Replaces the values.
    pub fn update(&mut self, values: Vec<T>) {
        if values.is_empty() {
            self.clear();
        } else {
            self.store.insert(self.key.clone(), (), values);
        }
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.store.remove(self.key, &());
    }
}

/// A map state of the current key.
pub struct MapState<'a, K, MK, MV> {
    store: &'a mut KeyedStore<K, (), HashMap<MK, MV>>,
    key: &'a K,
}

impl<K: Key, MK: Hash + Eq + Clone, MV: Clone> MapState<'_, K, MK, MV> {
    /// The value of `map_key`.
    pub fn get(&self, map_key: &MK) -> Option<MV> {
        self.store.get(self.key, &())?.get(map_key).cloned()
    }

    /// Sets the value of `map_key`.
    pub fn put(&mut self, map_key: MK, value: MV) {
        self.store
            .get_or_insert_with(self.key.clone(), (), HashMap::new)
            .0
            .insert(map_key, value);
    }

    /// Removes `map_key`.
    pub fn remove(&mut self, map_key: &MK) {
        if let Some(map) = self.store.get_mut(self.key, &()) {
            map.remove(map_key);
            if map.is_empty() {
                self.store.remove(self.key, &());
            }
        }
    }

    /// Whether `map_key` has a value.
    pub fn contains(&self, map_key: &MK) -> bool {
        self.store
            .get(self.key, &())
            .is_some_and(|m| m.contains_key(map_key))
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> Vec<(MK, MV)> {
        self.store
            .get(self.key, &())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.store.get(self.key, &()).is_none_or(HashMap::is_empty)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.store.remove(self.key, &());
    }
}

/// A reducing state of the current key.
pub struct ReducingState<'a, K, T> {
    store: &'a mut KeyedStore<K, (), T>,
    key: &'a K,
    reduce: &'a dyn ReduceFunction<T>,
}

impl<K: Key, T: Clone + 'static> ReducingState<'_, K, T> {
    /// The combined value, if any value was added.
    pub fn get(&self) -> Option<T> {
        self.store.get(self.key, &()).cloned()
    }

    /// Combines `value` into the state.
    pub fn add(&mut self, value: T) {
        let combined = match self.store.remove(self.key, &()) {
            Some(current) => self.reduce.reduce(current, value),
            None => value,
        };
        self.store.insert(self.key.clone(), (), combined);
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.store.remove(self.key, &());
    }
}

/// An aggregating state of the current key.
pub struct AggregatingState<'a, K, IN, ACC, OUT> {
    store: &'a mut KeyedStore<K, (), ACC>,
    key: &'a K,
    aggregate: &'a dyn AggregateFunction<IN, ACC, OUT>,
}

impl<K: Key, IN: 'static, ACC: 'static, OUT: 'static> AggregatingState<'_, K, IN, ACC, OUT> {
    /// The aggregate's result, if any value was added.
    pub fn get(&self) -> Option<OUT> {
        self.store
            .get(self.key, &())
            .map(|acc| self.aggregate.get_result(acc))
    }

    /// Adds `value` to the accumulator.
    pub fn add(&mut self, value: IN) {
        let aggregate = self.aggregate;
        let (acc, _) = self
            .store
            .get_or_insert_with(self.key.clone(), (), || aggregate.create_accumulator());
        aggregate.add(value, acc);
    }

    /// Removes the accumulator.
    pub fn clear(&mut self) {
        self.store.remove(self.key, &());
    }
}

impl<K: Key> KeyedStateBackend<K> {
    /// The value state `descriptor` of `key`.
    pub fn value<'a, T: 'static>(
        &'a mut self,
        descriptor: &ValueStateDescriptor<T>,
        key: &'a K,
    ) -> ValueState<'a, K, T> {
        ValueState {
            store: self.store(&descriptor.name, "a value state"),
            key,
        }
    }

    /// The list state `descriptor` of `key`.
    pub fn list<'a, T: 'static>(
        &'a mut self,
        descriptor: &ListStateDescriptor<T>,
        key: &'a K,
    ) -> ListState<'a, K, T> {
        ListState {
            store: self.store(&descriptor.name, "a list state"),
            key,
        }
    }

    /// The map state `descriptor` of `key`.
    pub fn map<'a, MK: 'static, MV: 'static>(
        &'a mut self,
        descriptor: &MapStateDescriptor<MK, MV>,
        key: &'a K,
    ) -> MapState<'a, K, MK, MV> {
        MapState {
            store: self.store(&descriptor.name, "a map state"),
            key,
        }
    }

    /// The reducing state `descriptor` of `key`.
    pub fn reducing<'a, T: 'static>(
        &'a mut self,
        descriptor: &'a ReducingStateDescriptor<T>,
        key: &'a K,
    ) -> ReducingState<'a, K, T> {
        ReducingState {
            store: self.store(&descriptor.name, "a reducing state"),
            key,
            reduce: descriptor.reduce.as_ref(),
        }
    }

    /// The aggregating state `descriptor` of `key`.
    pub fn aggregating<'a, IN, ACC: 'static, OUT>(
        &'a mut self,
        descriptor: &'a AggregatingStateDescriptor<IN, ACC, OUT>,
        key: &'a K,
    ) -> AggregatingState<'a, K, IN, ACC, OUT> {
        AggregatingState {
            store: self.store(&descriptor.name, "an aggregating state"),
            key,
            aggregate: descriptor.aggregate.as_ref(),
        }
    }
}
