//! State time-to-live (Flink's `StateTtlConfig`): the configuration, the stamps kept
//! with each value, and the sweeps that drop expired values (on access, incrementally,
//! and at the embedded store's compactions).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};
use superflow_state::{Compacted, CompactionCleanup};

/// When a value's time to live restarts (Flink's `StateTtlConfig.UpdateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateType {
    /// On creation and on every write.
    OnCreateAndWrite,
    /// On creation, writes and reads.
    OnReadAndWrite,
}

/// Whether an expired value that is still stored may be returned (Flink's
/// `StateTtlConfig.StateVisibility`). Either way, reading it removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateVisibility {
    /// Expired values are never returned.
    NeverReturnExpired,
    /// An expired value is returned by the read that removes it.
    ReturnExpiredIfNotCleanedUp,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Time to live of keyed state (Flink's `StateTtlConfig`), in processing time.
/// Expired values are removed when read, and in the background, as in Flink: each
/// access of the state checks a few more entries in memory (incremental cleanup, 5 by
/// default, `cleanup_incrementally` to tune), and with the embedded LSM backend the
/// store's compactions drop expired values on disk (`cleanup_in_compaction_filter`).
/// `disable_cleanup_in_background()` turns off the defaults of both (what was set
/// explicitly stays); `cleanup_full_snapshot()` also drops them when a checkpoint is
/// taken.
#[derive(Clone)]
pub struct StateTtlConfig {
    pub(super) ttl: i64,
    pub(super) update_type: UpdateType,
    pub(super) visibility: StateVisibility,
    /// Entries checked per access, and whether on every record too (set explicitly).
    pub(super) incremental_cleanup: Option<(usize, bool)>,
    pub(super) cleanup_full_snapshot: bool,
    /// With the embedded store: compactions drop expired values, reading the clock
    /// again after this many values (set explicitly).
    pub(super) compaction_cleanup: Option<u64>,
    /// Whether the background cleanups run by default (incremental, and at compaction).
    pub(super) cleanup_in_background: bool,
    pub(super) clock: Clock,
}

impl std::fmt::Debug for StateTtlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateTtlConfig")
            .field("ttl_ms", &self.ttl)
            .field("update_type", &self.update_type)
            .field("visibility", &self.visibility)
            .field("incremental_cleanup", &self.incremental_cleanup)
            .field("cleanup_full_snapshot", &self.cleanup_full_snapshot)
            .field("compaction_cleanup", &self.compaction_cleanup)
            .field("cleanup_in_background", &self.cleanup_in_background)
            .finish()
    }
}

impl StateTtlConfig {
    /// Values live `ttl` after their last write.
    pub fn new(ttl: std::time::Duration) -> Self {
        StateTtlConfig {
            ttl: ttl.as_millis() as i64,
            update_type: UpdateType::OnCreateAndWrite,
            visibility: StateVisibility::NeverReturnExpired,
            incremental_cleanup: None,
            cleanup_full_snapshot: false,
            compaction_cleanup: None,
            cleanup_in_background: true,
            clock: Arc::new(superflow_runtime::processing_time_now),
        }
    }

    /// When the time to live restarts.
    pub fn set_update_type(mut self, update_type: UpdateType) -> Self {
        self.update_type = update_type;
        self
    }

    /// Whether expired values may be returned.
    pub fn set_state_visibility(mut self, visibility: StateVisibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Each access of the state checks the next `cleanup_size` entries in memory for
    /// expired values, going round the state, and so does each record the operator
    /// handles if `run_cleanup_for_every_record` (Flink's `cleanupIncrementally`). A
    /// round that leaves the table mostly empty gives its memory back. With the
    /// embedded backend this covers the entries in memory; compactions clean the store.
    pub fn cleanup_incrementally(
        mut self,
        cleanup_size: usize,
        run_cleanup_for_every_record: bool,
    ) -> Self {
        self.incremental_cleanup = Some((cleanup_size.max(1), run_cleanup_for_every_record));
        self
    }

    /// Entries an access checks when incremental cleanup is on by default (Flink's).
    pub const DEFAULT_INCREMENTAL_CLEANUP_SIZE: usize = 5;

    /// Leaves expired values out of checkpoints (and drops them from memory when one is
    /// taken), as Flink's `cleanupFullSnapshot`.
    pub fn cleanup_full_snapshot(mut self) -> Self {
        self.cleanup_full_snapshot = true;
        self
    }

    /// How many values a compaction cleans up between two readings of the clock, unless
    /// told otherwise (Flink's default for its RocksDB compaction filter).
    pub const DEFAULT_QUERY_TIME_AFTER_ENTRIES: u64 = 1000;

    /// With the embedded LSM backend, compactions of the store drop expired values
    /// (and the expired elements of lists and maps), reading the clock again after
    /// every `query_time_after_entries` values, as Flink's
    /// `cleanupInRocksdbCompactFilter`. On by default, with 1,000.
    pub fn cleanup_in_compaction_filter(mut self, query_time_after_entries: u64) -> Self {
        self.compaction_cleanup = Some(query_time_after_entries.max(1));
        self
    }

    /// Turns off the cleanups that run in the background by default (incremental
    /// cleanup, and compaction cleanup in the embedded backend), as Flink's
    /// `disableCleanupInBackground`; those set explicitly stay. Expired values then go
    /// when read, by the cleanups set, or left out of full snapshots.
    pub fn disable_cleanup_in_background(mut self) -> Self {
        self.cleanup_in_background = false;
        self
    }

    /// The incremental cleanup in effect: (entries per access, on every record too).
    pub(super) fn incremental(&self) -> Option<(usize, bool)> {
        self.incremental_cleanup.or(self
            .cleanup_in_background
            .then_some((Self::DEFAULT_INCREMENTAL_CLEANUP_SIZE, false)))
    }

    /// The compaction cleanup in effect: values between readings of the clock.
    pub(super) fn compaction(&self) -> Option<u64> {
        self.compaction_cleanup.or(self
            .cleanup_in_background
            .then_some(Self::DEFAULT_QUERY_TIME_AFTER_ENTRIES))
    }

    /// Reads time from `clock` (milliseconds) instead of the wall clock: for tests.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub(super) fn expired(&self, stamp: i64, now: i64) -> bool {
        stamp.saturating_add(self.ttl) <= now
    }
}

/// A stored value and when its time to live last restarted (kept in checkpoints, so
/// the time to live goes on after a restore). The stamp comes first, so that a
/// compaction reads it without decoding the value.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Stamped<T> {
    pub(super) stamp: i64,
    pub(super) value: T,
}

/// The TTL of one declared state.
#[derive(Clone)]
pub(crate) struct Ttl {
    pub(super) config: Option<StateTtlConfig>,
}

impl Ttl {
    pub(super) fn of(config: &Option<StateTtlConfig>) -> Ttl {
        Ttl {
            config: config.clone(),
        }
    }

    /// What a read of an element stamped `stamp` does at `now`: whether the element
    /// stays stored, and whether the read sees it. A live element is renewed if reads
    /// renew; an expired one goes, seen only if the visibility allows.
    pub(super) fn read(&self, stamp: &mut i64, now: i64) -> (bool, bool) {
        if self.expired(*stamp, now) {
            return (false, self.returns_expired());
        }
        if self.renews_on_read() {
            *stamp = now;
        }
        (true, true)
    }

    pub(super) fn now(&self) -> i64 {
        self.config.as_ref().map_or(0, |c| (c.clock)())
    }

    /// The incremental cleanup in effect: (entries per access, on every record too).
    pub(super) fn incremental(&self) -> Option<(usize, bool)> {
        self.config.as_ref().and_then(|c| c.incremental())
    }

    /// Whether the incremental cleanup also runs on every record.
    pub(super) fn cleans_on_every_record(&self) -> bool {
        self.incremental()
            .is_some_and(|(_, every_record)| every_record)
    }

    /// Whether a value stamped `stamp` is expired at `now`.
    pub(super) fn expired(&self, stamp: i64, now: i64) -> bool {
        self.config.as_ref().is_some_and(|c| c.expired(stamp, now))
    }

    pub(super) fn returns_expired(&self) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.visibility == StateVisibility::ReturnExpiredIfNotCleanedUp)
    }

    pub(super) fn renews_on_read(&self) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.update_type == UpdateType::OnReadAndWrite)
    }
}

/// The cleanup of a state's expired values when the embedded store compacts them, if
/// its TTL asks for one. A value that cannot be decoded is kept: a compaction must not
/// fail, and a read reports it.
pub(crate) fn compaction_cleanup<S: Serialize + DeserializeOwned + 'static>(
    ttl: &Ttl,
    live: fn(&mut S, &Ttl, i64) -> bool,
    elementwise: bool,
) -> Option<CompactionCleanup> {
    let query_time_after = ttl.config.as_ref()?.compaction()?;
    let ttl = ttl.clone();
    Some(Arc::new(move || {
        let ttl = ttl.clone();
        let mut now = ttl.now();
        let mut seen = 0u64;
        Box::new(move |bytes: &[u8]| {
            seen += 1;
            if seen % query_time_after == 0 {
                now = ttl.now();
            }
            if !elementwise {
                // A `Stamped` value: its stamp alone decides, and the value (a Python
                // object, say) is never decoded.
                return match postcard::take_from_bytes::<i64>(bytes) {
                    Ok((stamp, _)) if ttl.expired(stamp, now) => Compacted::Remove,
                    _ => Compacted::Keep,
                };
            }
            let Ok(mut value) = postcard::from_bytes::<S>(bytes) else {
                return Compacted::Keep;
            };
            if !live(&mut value, &ttl, now) {
                return Compacted::Remove;
            }
            match postcard::to_stdvec(&value) {
                Ok(encoded) if encoded != bytes => Compacted::Replace(encoded),
                _ => Compacted::Keep,
            }
        })
    }))
}

pub(crate) fn live_value<T>(v: &mut Stamped<T>, ttl: &Ttl, now: i64) -> bool {
    !ttl.expired(v.stamp, now)
}

pub(crate) fn live_list<T>(list: &mut Vec<Stamped<T>>, ttl: &Ttl, now: i64) -> bool {
    list.retain(|e| !ttl.expired(e.stamp, now));
    !list.is_empty()
}

pub(crate) fn live_map<MK, MV>(map: &mut HashMap<MK, Stamped<MV>>, ttl: &Ttl, now: i64) -> bool {
    map.retain(|_, e| !ttl.expired(e.stamp, now));
    !map.is_empty()
}
