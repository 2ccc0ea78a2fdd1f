//! The hash maps state is kept in. Keys of windowed state are structured (small
//! integers next to window bounds), which FxHash spreads poorly over hashbrown's
//! control bytes: lookups and removals probed long chains. foldhash mixes them well at
//! nearly Fx's speed; its fixed seed keeps iteration order the same from run to run.

use std::collections::{HashMap, HashSet};

/// The hasher of state maps.
pub(crate) type StateHasher = foldhash::fast::FixedState;

/// A hash map of state.
pub(crate) type StateHashMap<K, V> = HashMap<K, V, StateHasher>;

/// A hash set of state.
pub(crate) type StateHashSet<T> = HashSet<T, StateHasher>;
