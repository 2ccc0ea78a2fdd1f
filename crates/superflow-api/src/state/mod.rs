//! Keyed state for user functions (Flink's `ValueState`, `ListState`, `MapState`,
//! `ReducingState` and `AggregatingState`), declared by descriptors and read through
//! the context of a keyed function, always for the current key.
//!
//! Each declared state is a [`SpillingMap`] of the operator subtask: in memory with the
//! default backend, partly in the embedded LSM store with the other.

mod descriptors;
mod handles;
mod registry;
mod ttl;

pub(crate) use descriptors::intern;
pub use descriptors::{
    AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor, ReducingStateDescriptor,
    StateValue, ValueStateDescriptor,
};
pub use handles::{AggregatingState, ListState, MapState, ReducingState, ValueState};
pub use registry::KeyedStateBackend;
pub use ttl::{StateTtlConfig, StateVisibility, UpdateType};

#[cfg(test)]
mod tests {
    use super::registry::DeclaredState;
    use super::ttl::Stamped;
    use super::*;
    use crate::window::AggregateFunction;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use superflow_state::DiskStateStore;

    struct Clocked {
        now: Arc<AtomicI64>,
    }

    impl Clocked {
        fn new() -> Self {
            Clocked {
                now: Arc::new(AtomicI64::new(1_000)),
            }
        }
        fn ttl(&self, ms: u64) -> StateTtlConfig {
            let now = Arc::clone(&self.now);
            StateTtlConfig::new(Duration::from_millis(ms))
                .with_clock(move || now.load(Ordering::Relaxed))
        }
        fn advance(&self, ms: i64) {
            self.now.fetch_add(ms, Ordering::Relaxed);
        }
    }

    #[test]
    fn values_expire_after_their_ttl_since_the_last_write() {
        let clock = Clocked::new();
        let d = ValueStateDescriptor::<u32>::new("v").enable_time_to_live(clock.ttl(100));
        let mut backend = KeyedStateBackend::<u8>::default();
        backend.value(&d, &1).update(7);
        clock.advance(99);
        assert_eq!(backend.value(&d, &1).value(), Some(7));
        backend.value(&d, &1).update(8);
        clock.advance(99);
        assert_eq!(
            backend.value(&d, &1).value(),
            Some(8),
            "a write restarts the TTL"
        );
        clock.advance(1);
        assert_eq!(backend.value(&d, &1).value(), None);
    }

    #[test]
    fn reads_renew_with_on_read_and_write_and_expired_values_may_be_returned_once() {
        let clock = Clocked::new();
        let renewing = ValueStateDescriptor::<u32>::new("r")
            .enable_time_to_live(clock.ttl(100).set_update_type(UpdateType::OnReadAndWrite));
        // Without background cleanup, which would check the one key before the read.
        let lenient = ValueStateDescriptor::<u32>::new("l").enable_time_to_live(
            clock
                .ttl(100)
                .set_state_visibility(StateVisibility::ReturnExpiredIfNotCleanedUp)
                .disable_cleanup_in_background(),
        );
        let mut backend = KeyedStateBackend::<u8>::default();
        backend.value(&renewing, &1).update(1);
        backend.value(&lenient, &1).update(2);
        for _ in 0..5 {
            clock.advance(60);
            assert_eq!(backend.value(&renewing, &1).value(), Some(1));
        }
        assert_eq!(
            backend.value(&lenient, &1).value(),
            Some(2),
            "expired, returned once"
        );
        assert_eq!(backend.value(&lenient, &1).value(), None, "and then gone");
    }

    #[test]
    fn list_elements_and_map_entries_expire_one_by_one() {
        let clock = Clocked::new();
        let list = ListStateDescriptor::<u32>::new("list").enable_time_to_live(clock.ttl(100));
        let map = MapStateDescriptor::<u32, u32>::new("map").enable_time_to_live(clock.ttl(100));
        let mut backend = KeyedStateBackend::<u8>::default();
        backend.list(&list, &1).add(1);
        backend.map(&map, &1).put(1, 10);
        clock.advance(50);
        backend.list(&list, &1).add(2);
        backend.map(&map, &1).put(2, 20);
        clock.advance(50);
        assert_eq!(backend.list(&list, &1).get(), vec![2]);
        assert_eq!(backend.map(&map, &1).get(&1), None);
        assert_eq!(backend.map(&map, &1).entries(), vec![(2, 20)]);
        clock.advance(50);
        assert!(backend.list(&list, &1).get().is_empty());
        assert!(backend.map(&map, &1).is_empty());
    }

    #[test]
    fn reducing_and_aggregating_state_start_over_after_expiry() {
        struct Count;
        impl AggregateFunction<u32, u64, u64> for Count {
            fn create_accumulator(&self) -> u64 {
                0
            }
            fn add(&self, _: u32, acc: &mut u64) {
                *acc += 1;
            }
            fn get_result(&self, acc: &u64) -> u64 {
                *acc
            }
            fn merge(&self, acc: &mut u64, other: u64) {
                *acc += other;
            }
        }
        let clock = Clocked::new();
        let sum = ReducingStateDescriptor::new("sum", |a: u32, b: u32| a + b)
            .enable_time_to_live(clock.ttl(100));
        let count =
            AggregatingStateDescriptor::new("count", Count).enable_time_to_live(clock.ttl(100));
        let mut backend = KeyedStateBackend::<u8>::default();
        for v in [1, 2, 3] {
            backend.reducing(&sum, &1).add(v);
            backend.aggregating(&count, &1).add(v);
        }
        assert_eq!(backend.reducing(&sum, &1).get(), Some(6));
        assert_eq!(backend.aggregating(&count, &1).get(), Some(3));
        clock.advance(100);
        backend.reducing(&sum, &1).add(10);
        backend.aggregating(&count, &1).add(10);
        assert_eq!(backend.reducing(&sum, &1).get(), Some(10));
        assert_eq!(backend.aggregating(&count, &1).get(), Some(1));
    }

    #[test]
    fn compactions_of_the_embedded_store_drop_expired_values_and_elements() {
        let clock = Clocked::new();
        let lenient = |ttl: StateTtlConfig| {
            ttl.set_state_visibility(StateVisibility::ReturnExpiredIfNotCleanedUp)
        };
        let cleaned = ValueStateDescriptor::<u64>::new("cleaned")
            .enable_time_to_live(lenient(clock.ttl(100)));
        let kept = ValueStateDescriptor::<u64>::new("kept")
            .enable_time_to_live(lenient(clock.ttl(100)).disable_cleanup_in_background());
        let list =
            ListStateDescriptor::<u64>::new("list").enable_time_to_live(lenient(clock.ttl(100)));
        let map =
            MapStateDescriptor::<u64, u64>::new("map").enable_time_to_live(lenient(clock.ttl(100)));
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStateStore::open(&dir.path().join("lsm")).unwrap();
        let mut backend = KeyedStateBackend::<u64> {
            backend: (
                Arc::new(superflow_state::EmbeddedStateBackend::new(
                    Arc::clone(&store),
                    100,
                    false,
                )),
                "op#0".to_string(),
                128,
            ),
            ..KeyedStateBackend::default()
        };
        const KEYS: u64 = 20_000;
        for key in 0..KEYS {
            backend.value(&cleaned, &key).update(key);
            backend.value(&kept, &key).update(key);
            backend.list(&list, &key).add(key);
            backend.map(&map, &key).put(1, key);
        }
        clock.advance(60);
        for key in 0..KEYS {
            backend.list(&list, &key).add(key + 1);
            backend.map(&map, &key).put(2, key + 1);
        }
        // Every value but the last 100 of each state is in the store only.
        clock.advance(40);
        let left = |name: &str| store.compact(&format!("op#0/{name}")).unwrap();
        let stored = KEYS as usize - 100..=KEYS as usize;
        assert!(
            stored.contains(&left("kept")),
            "no cleanup: every value stays"
        );
        assert!(
            left("cleaned") <= 100,
            "the expired values are gone from the store"
        );
        assert!(
            stored.contains(&left("list")),
            "each list keeps a live element"
        );
        assert!(stored.contains(&left("map")), "each map keeps a live entry");
        // An expired value still stored is returned once (the visibility allows it):
        // only those the compaction did not see (the last 100 in memory) come back.
        let returned = |backend: &mut KeyedStateBackend<u64>, d: &ValueStateDescriptor<u64>| {
            (0..KEYS)
                .filter(|key| backend.value(d, key).value().is_some())
                .count()
        };
        assert_eq!(returned(&mut backend, &kept), KEYS as usize);
        assert!(returned(&mut backend, &cleaned) <= 100);
        let expired_elements_seen = (0..KEYS)
            .filter(|key| backend.list(&list, key).get().len() == 2)
            .count()
            + (0..KEYS)
                .filter(|key| backend.map(&map, key).entries().len() == 2)
                .count();
        assert!(
            expired_elements_seen <= 200,
            "compaction rewrote lists and maps without their expired elements \
             ({expired_elements_seen} still had them)"
        );
    }

    /// Entries in memory and the table's capacity of value state `v`.
    fn value_table(backend: &mut KeyedStateBackend<u64>) -> (usize, usize) {
        backend
            .states
            .get_mut("v")
            .and_then(|s| {
                s.as_any_mut()
                    .downcast_mut::<DeclaredState<u64, Stamped<u64>>>()
            })
            .map(|s| (s.store.len(), s.store.capacity()))
            .unwrap_or_default()
    }

    #[test]
    fn incremental_cleanup_checks_entries_on_each_access_and_gives_memory_back() {
        let clock = Clocked::new();
        let d = ValueStateDescriptor::<u64>::new("v")
            .enable_time_to_live(clock.ttl(100).cleanup_incrementally(1_000, false));
        let mut backend = KeyedStateBackend::<u64>::default();
        for key in 0..100_000u64 {
            backend.value(&d, &key).update(key);
        }
        let (len, capacity_before) = value_table(&mut backend);
        assert_eq!(len, 100_000);
        clock.advance(100);
        // Each access to key 7 checks 1,000 more entries. The writes left a round of at
        // most 1,000 keys going, so 101 accesses check every key.
        for access in 1..=101 {
            backend.value(&d, &7).update(7);
            let (len, _) = value_table(&mut backend);
            assert!(
                len + 1_000 * access >= 100_000,
                "access {access}: {len} left"
            );
        }
        let (len, capacity_after) = value_table(&mut backend);
        assert_eq!(len, 1, "only the key written after the clock moved is left");
        assert!(
            capacity_after * 100 < capacity_before,
            "the table shrank: {capacity_before} -> {capacity_after}"
        );
    }

    #[test]
    fn background_cleanup_is_on_by_default_and_can_be_turned_off() {
        let clock = Clocked::new();
        let by_default = ValueStateDescriptor::<u64>::new("v").enable_time_to_live(clock.ttl(100));
        let off = ValueStateDescriptor::<u64>::new("v")
            .enable_time_to_live(clock.ttl(100).disable_cleanup_in_background());
        let explicit = ValueStateDescriptor::<u64>::new("v").enable_time_to_live(
            clock
                .ttl(100)
                .disable_cleanup_in_background()
                .cleanup_incrementally(10, false),
        );
        // Flink's default checks 5 entries an access; the writes may have left a round
        // of up to 5 keys going, so 202 accesses check 1,000 keys.
        for (d, accesses, left) in [
            (&by_default, 202, 1),
            (&off, 1_000, 1_001),
            (&explicit, 101, 1),
        ] {
            let mut backend = KeyedStateBackend::<u64>::default();
            for key in 0..1_000u64 {
                backend.value(d, &key).update(key);
            }
            clock.advance(100);
            for access in 0..accesses {
                assert!(value_table(&mut backend).0 + 10 * access >= 1_000);
                backend.value(d, &5_000).update(1);
            }
            assert_eq!(value_table(&mut backend).0, left);
        }
    }

    #[test]
    fn cleanup_for_every_record_runs_without_state_access() {
        let clock = Clocked::new();
        let d = ValueStateDescriptor::<u64>::new("v")
            .enable_time_to_live(clock.ttl(100).cleanup_incrementally(10, true));
        let mut backend = KeyedStateBackend::<u64>::default();
        for key in 0..1_000u64 {
            backend.value(&d, &key).update(key);
        }
        clock.advance(100);
        // 10 entries a record; the writes may have left a round of up to 10 keys going.
        for record in 0..101 {
            assert!(value_table(&mut backend).0 + 10 * record >= 1_000);
            backend.on_record();
        }
        assert_eq!(value_table(&mut backend).0, 0);
    }
}
