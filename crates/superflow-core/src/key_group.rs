//! Key groups: the unit in which keyed state and keyed records are distributed.
//!
//! As in Flink, `key_group = murmur(hash(key)) % max_parallelism` and
//! `subtask = key_group * parallelism / max_parallelism`. Keeping the key group as
//! the unit means a snapshot taken at one parallelism restores at any other
//! parallelism up to `max_parallelism`.

use std::hash::{Hash, Hasher};

/// The default number of key groups, as in Flink.
pub const DEFAULT_MAX_PARALLELISM: usize = 128;
/// The largest max parallelism allowed, as in Flink (2^15).
pub const UPPER_BOUND_MAX_PARALLELISM: usize = 1 << 15;

/// A contiguous, inclusive range of key groups owned by one subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyGroupRange {
    /// First key group in the range.
    pub start: usize,
    /// Last key group in the range (inclusive).
    pub end: usize,
}

impl KeyGroupRange {
    /// Every key group.
    pub fn all() -> KeyGroupRange {
        KeyGroupRange {
            start: 0,
            end: usize::MAX,
        }
    }

    /// Whether `key_group` falls in this range.
    pub fn contains(&self, key_group: usize) -> bool {
        key_group >= self.start && key_group <= self.end
    }

    /// The number of key groups in the range.
    pub fn len(&self) -> usize {
        self.end + 1 - self.start
    }

    /// Whether the range holds no key group (never true for a computed range).
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

/// The stable hash code of a key. The hasher is fixed (FxHash, no random seed), so every
/// process of a job, and every restart, computes the same value.
pub fn key_hash<K: Hash + ?Sized>(key: &K) -> u32 {
    let mut hasher = rustc_hash::FxHasher::default();
    key.hash(&mut hasher);
    let h = hasher.finish();
    (h ^ (h >> 32)) as u32
}

/// The key group of a key: murmur3 over the key's hash code, modulo `max_parallelism`.
#[inline]
pub fn assign_to_key_group<K: Hash + ?Sized>(key: &K, max_parallelism: usize) -> usize {
    let code = key_hash(key).to_le_bytes();
    // Reading from an in-memory slice cannot fail.
    let mixed = murmur3::murmur3_32(&mut &code[..], 0).unwrap_or(0);
    (mixed as usize) % max_parallelism
}

/// The subtask that owns a key group.
#[inline]
pub fn subtask_for_key_group(
    key_group: usize,
    max_parallelism: usize,
    parallelism: usize,
) -> usize {
    key_group * parallelism / max_parallelism
}

/// The subtask that owns a key.
#[inline]
pub fn subtask_for_key<K: Hash + ?Sized>(
    key: &K,
    max_parallelism: usize,
    parallelism: usize,
) -> usize {
    subtask_for_key_group(
        assign_to_key_group(key, max_parallelism),
        max_parallelism,
        parallelism,
    )
}

/// The key groups a subtask owns: the inverse of [`subtask_for_key_group`].
pub fn key_group_range_for_subtask(
    max_parallelism: usize,
    parallelism: usize,
    subtask: usize,
) -> KeyGroupRange {
    let start = (subtask * max_parallelism).div_ceil(parallelism);
    let end = ((subtask + 1) * max_parallelism).div_ceil(parallelism) - 1;
    KeyGroupRange { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_groups_are_stable() {
        // Fixed expectations: a change here breaks restore of old snapshots.
        let a = assign_to_key_group(&42u64, 128);
        assert_eq!(a, assign_to_key_group(&42u64, 128));
        assert!(a < 128);
    }

    #[test]
    fn keys_spread_over_key_groups() {
        let mut seen = [0usize; 128];
        for k in 0u64..100_000 {
            seen[assign_to_key_group(&k, 128)] += 1;
        }
        let min = *seen.iter().min().unwrap_or(&0);
        let max = *seen.iter().max().unwrap_or(&0);
        assert!(
            min > 500 && max < 1100,
            "uneven spread: min {min} max {max}"
        );
    }

    proptest! {
        #[test]
        fn ranges_invert_the_assignment(maxp in 1usize..512, p in 1usize..64, kg in 0usize..512) {
            prop_assume!(p <= maxp && kg < maxp);
            let subtask = subtask_for_key_group(kg, maxp, p);
            prop_assert!(subtask < p);
            prop_assert!(key_group_range_for_subtask(maxp, p, subtask).contains(kg));
        }

        #[test]
        fn ranges_partition_all_key_groups(maxp in 1usize..512, p in 1usize..64) {
            prop_assume!(p <= maxp);
            let mut next = 0;
            for s in 0..p {
                let r = key_group_range_for_subtask(maxp, p, s);
                prop_assert_eq!(r.start, next);
                next = r.end + 1;
            }
            prop_assert_eq!(next, maxp);
        }
    }
}
