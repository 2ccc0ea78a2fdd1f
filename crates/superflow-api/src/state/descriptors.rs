//! State descriptors: how a user function declares a state (name, type, TTL, and the
//! function of a reducing or aggregating state).

use std::marker::PhantomData;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};

use super::ttl::StateTtlConfig;
use crate::functions::ReduceFunction;
use crate::window::AggregateFunction;

/// Declares a value state: one value per key.
#[derive(Debug)]
pub struct ValueStateDescriptor<T> {
    pub(super) name: String,
    pub(super) ttl: Option<StateTtlConfig>,
    pub(super) _type: PhantomData<fn() -> T>,
}

/// Declares a list state: a list of values per key (with TTL, each element expires on
/// its own).
#[derive(Debug)]
pub struct ListStateDescriptor<T> {
    pub(super) name: String,
    pub(super) ttl: Option<StateTtlConfig>,
    pub(super) _type: PhantomData<fn() -> T>,
}

/// Declares a map state: a map per key (with TTL, each entry expires on its own).
#[derive(Debug)]
pub struct MapStateDescriptor<MK, MV> {
    pub(super) name: String,
    pub(super) ttl: Option<StateTtlConfig>,
    pub(super) _type: PhantomData<fn() -> (MK, MV)>,
}

macro_rules! plain_descriptor {
    ($name:ident, $kind:literal, $($param:ident),+) => {
        impl<$($param),+> $name<$($param),+> {
            #[doc = concat!("A ", $kind, " called `name`.")]
            pub fn new(name: impl Into<String>) -> Self {
                $name {
                    name: name.into(),
                    ttl: None,
                    _type: PhantomData,
                }
            }

            /// Lets values expire (Flink's `enableTimeToLive`).
            pub fn enable_time_to_live(mut self, ttl: StateTtlConfig) -> Self {
                self.ttl = Some(ttl);
                self
            }

            /// The state's name.
            pub fn get_name(&self) -> &str {
                &self.name
            }
        }

        impl<$($param),+> Clone for $name<$($param),+> {
            fn clone(&self) -> Self {
                $name {
                    name: self.name.clone(),
                    ttl: self.ttl.clone(),
                    _type: PhantomData,
                }
            }
        }
    };
}

plain_descriptor!(ValueStateDescriptor, "value state", T);
plain_descriptor!(ListStateDescriptor, "list state", T);
plain_descriptor!(MapStateDescriptor, "map state", MK, MV);

/// Declares a reducing state: values added to it are combined by a reduce function.
pub struct ReducingStateDescriptor<T> {
    pub(super) name: String,
    pub(super) ttl: Option<StateTtlConfig>,
    pub(super) reduce: Arc<dyn ReduceFunction<T>>,
}

impl<T> ReducingStateDescriptor<T> {
    /// A reducing state called `name`, combining values with `reduce`.
    pub fn new<R: ReduceFunction<T>>(name: impl Into<String>, reduce: R) -> Self {
        ReducingStateDescriptor {
            name: name.into(),
            ttl: None,
            reduce: Arc::new(reduce),
        }
    }

    /// Lets the value expire.
    pub fn enable_time_to_live(mut self, ttl: StateTtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<T> Clone for ReducingStateDescriptor<T> {
    fn clone(&self) -> Self {
        ReducingStateDescriptor {
            name: self.name.clone(),
            ttl: self.ttl.clone(),
            reduce: Arc::clone(&self.reduce),
        }
    }
}

/// Declares an aggregating state: values added to it go into an accumulator.
pub struct AggregatingStateDescriptor<IN, ACC, OUT> {
    pub(super) name: String,
    pub(super) ttl: Option<StateTtlConfig>,
    pub(super) aggregate: Arc<dyn AggregateFunction<IN, ACC, OUT>>,
}

impl<IN, ACC, OUT> AggregatingStateDescriptor<IN, ACC, OUT> {
    /// An aggregating state called `name`, with `aggregate`.
    pub fn new<F: AggregateFunction<IN, ACC, OUT>>(name: impl Into<String>, aggregate: F) -> Self {
        AggregatingStateDescriptor {
            name: name.into(),
            ttl: None,
            aggregate: Arc::new(aggregate),
        }
    }

    /// Lets the accumulator expire.
    pub fn enable_time_to_live(mut self, ttl: StateTtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<IN, ACC, OUT> Clone for AggregatingStateDescriptor<IN, ACC, OUT> {
    fn clone(&self) -> Self {
        AggregatingStateDescriptor {
            name: self.name.clone(),
            ttl: self.ttl.clone(),
            aggregate: Arc::clone(&self.aggregate),
        }
    }
}

/// The `&'static str` for a state name read from a checkpoint. Names come from code (a
/// handful per job), so each distinct one is leaked once and shared.
pub(crate) fn intern(name: String) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = match NAMES.lock() {
        Ok(names) => names,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.push(leaked);
    leaked
}

/// A value kept in keyed state: cloned on read, copied and serialized into checkpoints.
pub trait StateValue: Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> StateValue for T {}
