//! The bounds a record type must meet, in one place.
//!
//! `Data` is enough for operators that keep records on the worker that produced them.
//! `ExchangeData` adds serde, so the record can cross a process boundary.

use serde::{de::DeserializeOwned, Serialize};
use std::hash::Hash;

/// A record that can flow through a dataflow on one process.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// A record that can also be serialized to cross processes.
pub trait ExchangeData: Data + Serialize + DeserializeOwned {}
impl<T: Data + Serialize + DeserializeOwned> ExchangeData for T {}

/// A key of a keyed stream: hashed into a key group, compared for equality, and
/// serialized with the keyed state it addresses in checkpoints.
pub trait Key: Data + Hash + Eq + Serialize + DeserializeOwned {}
impl<T: Data + Hash + Eq + Serialize + DeserializeOwned> Key for T {}
