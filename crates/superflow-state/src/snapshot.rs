//! The snapshot format of keyed state: entries written per key group, so that a
//! snapshot taken at one parallelism restores at another (each subtask reads the key
//! groups of its range from every part). Each group's entries are encoded with postcard
//! on their own (a range can be cut out without decoding them), the payload can be
//! compressed with lz4, and a CRC32 checksum covers it, so a damaged part is detected
//! instead of restored.

use std::hash::Hash;

use serde::{de::DeserializeOwned, Serialize};
use superflow_core::{assign_to_key_group, KeyGroupRange};

use crate::keyed::KeyedStore;

/// How a snapshot's payload is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as encoded.
    None,
    /// LZ4 block compression (fast, pure Rust).
    Lz4,
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes end before the header or the payload does.
    #[error("the snapshot is truncated ({0} bytes)")]
    Truncated(usize),
    /// The format marker or version is not this one.
    #[error("not a Superflow state snapshot, or a version this build cannot read")]
    UnknownFormat,
    /// The checksum does not match the payload.
    #[error("the snapshot is damaged: checksum {stored:08x} stored, {computed:08x} computed")]
    Checksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the payload read.
        computed: u32,
    },
    /// The payload does not decompress or decode.
    #[error("the snapshot's payload cannot be decoded: {0}")]
    Decode(String),
    /// Values could not be encoded.
    #[error("state could not be encoded: {0}")]
    Encode(String),
}

const MAGIC: &[u8; 4] = b"SFKS";
const VERSION: u8 = 2;
const HEADER: usize = 4 + 1 + 1 + 4 + 8;

/// The payload: each key group with its entries encoded on their own, so that the key
/// groups of a range can be cut out without knowing the entries' types.
type Groups = Vec<(u32, Vec<u8>)>;

/// Writes entries `(key, namespace, value)` as a keyed snapshot, grouped by the key
/// group of each key (of `max_parallelism`).
pub fn write_keyed_snapshot<'a, K, N, V>(
    entries: impl Iterator<Item = (&'a K, &'a N, &'a V)>,
    max_parallelism: usize,
    compression: Compression,
) -> Result<Vec<u8>, SnapshotError>
where
    K: Hash + Serialize + 'a,
    N: Serialize + 'a,
    V: Serialize + 'a,
{
    let mut groups: Vec<Vec<(&K, &N, &V)>> = (0..max_parallelism).map(|_| Vec::new()).collect();
    for (k, n, v) in entries {
        groups[assign_to_key_group(k, max_parallelism)].push((k, n, v));
    }
    let groups: Groups = groups
        .into_iter()
        .enumerate()
        .filter(|(_, entries)| !entries.is_empty())
        .map(|(group, entries)| Ok((group as u32, postcard::to_stdvec(&entries)?)))
        .collect::<Result<_, postcard::Error>>()
        .map_err(|e| SnapshotError::Encode(e.to_string()))?;
    encode_groups(&groups, compression)
}

/// Writes a keyed snapshot from entries already encoded: for each key group in
/// ascending order, its entries as (encoded key, encoded value). The result is the same
/// as [`write_keyed_snapshot`]'s over the decoded entries with the namespace `()`
/// (postcard writes a list as its length then its items, a tuple as its fields, and
/// `()` as nothing).
pub fn write_raw_keyed_snapshot<'a, E>(
    groups: impl Iterator<Item = (u32, E)>,
    compression: Compression,
) -> Result<Vec<u8>, SnapshotError>
where
    E: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut encoded: Groups = Vec::new();
    for (group, entries) in groups {
        let mut body = Vec::new();
        let mut count = 0u64;
        for (key, value) in entries {
            body.extend_from_slice(key);
            body.extend_from_slice(value);
            count += 1;
        }
        let mut bytes = Vec::with_capacity(body.len() + 10);
        let mut n = count;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                bytes.push(byte);
                break;
            }
            bytes.push(byte | 0x80);
        }
        bytes.extend_from_slice(&body);
        encoded.push((group, bytes));
    }
    encode_groups(&encoded, compression)
}

fn encode_groups(groups: &Groups, compression: Compression) -> Result<Vec<u8>, SnapshotError> {
    let encoded = postcard::to_stdvec(groups).map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let payload = match compression {
        Compression::None => encoded,
        Compression::Lz4 => lz4_flex::compress_prepend_size(&encoded),
    };
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(match compression {
        Compression::None => 0,
        Compression::Lz4 => 1,
    });
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

fn decode_groups(snapshot: &[u8]) -> Result<Groups, SnapshotError> {
    if snapshot.len() < HEADER {
        return Err(SnapshotError::Truncated(snapshot.len()));
    }
    if &snapshot[..4] != MAGIC || snapshot[4] != VERSION || snapshot[5] > 1 {
        return Err(SnapshotError::UnknownFormat);
    }
    let mut word = [0u8; 4];
    word.copy_from_slice(&snapshot[6..10]);
    let stored = u32::from_le_bytes(word);
    let mut size = [0u8; 8];
    size.copy_from_slice(&snapshot[10..18]);
    let size = u64::from_le_bytes(size) as usize;
    let payload = snapshot
        .get(HEADER..HEADER.saturating_add(size))
        .ok_or(SnapshotError::Truncated(snapshot.len()))?;
    let computed = crc32fast::hash(payload);
    if computed != stored {
        return Err(SnapshotError::Checksum { stored, computed });
    }
    let decompressed;
    let encoded = if snapshot[5] == 1 {
        decompressed = lz4_flex::decompress_size_prepended(payload)
            .map_err(|e| SnapshotError::Decode(e.to_string()))?;
        &decompressed[..]
    } else {
        payload
    };
    postcard::from_bytes(encoded).map_err(|e| SnapshotError::Decode(e.to_string()))
}

/// Calls `insert` with every entry of `snapshot` whose key group falls in `range`, after
/// verifying the checksum. Returns the number of entries.
pub fn read_keyed_snapshot<K, N, V>(
    snapshot: &[u8],
    range: KeyGroupRange,
    mut insert: impl FnMut(K, N, V),
) -> Result<usize, SnapshotError>
where
    K: DeserializeOwned,
    N: DeserializeOwned,
    V: DeserializeOwned,
{
    let mut restored = 0;
    for (group, bytes) in decode_groups(snapshot)? {
        if range.contains(group as usize) {
            let entries: Vec<(K, N, V)> =
                postcard::from_bytes(&bytes).map_err(|e| SnapshotError::Decode(e.to_string()))?;
            restored += entries.len();
            for (k, n, v) in entries {
                insert(k, n, v);
            }
        }
    }
    Ok(restored)
}

/// The key groups of `snapshot` that fall in `range`, as a snapshot of their own: for
/// state that is carried into the next checkpoint without being read.
pub fn filter_keyed_snapshot(
    snapshot: &[u8],
    range: KeyGroupRange,
) -> Result<Vec<u8>, SnapshotError> {
    let groups: Groups = decode_groups(snapshot)?
        .into_iter()
        .filter(|(group, _)| range.contains(*group as usize))
        .collect();
    encode_groups(&groups, Compression::None)
}

impl<K, N, V> KeyedStore<K, N, V>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    N: Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// Writes the store, its entries grouped by key group (of `max_parallelism`).
    pub fn snapshot(
        &self,
        max_parallelism: usize,
        compression: Compression,
    ) -> Result<Vec<u8>, SnapshotError> {
        write_keyed_snapshot(self.iter(), max_parallelism, compression)
    }

    /// Adds the entries of `snapshot` whose key groups fall in `range` (a subtask's
    /// share at the new parallelism). The checksum is verified first.
    pub fn restore(
        &mut self,
        snapshot: &[u8],
        range: KeyGroupRange,
    ) -> Result<usize, SnapshotError> {
        read_keyed_snapshot(snapshot, range, |k, n, v| {
            self.insert(k, n, v);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use superflow_core::{key_group_range_for_subtask, subtask_for_key};

    fn store_of(keys: std::ops::Range<u64>) -> KeyedStore<u64, u32, String> {
        let mut store = KeyedStore::new();
        for k in keys {
            store.insert(k, (k % 3) as u32, format!("value {k}"));
        }
        store
    }

    fn entries(store: &KeyedStore<u64, u32, String>) -> Vec<(u64, u32, String)> {
        let mut v: Vec<_> = store.iter().map(|(k, n, v)| (*k, *n, v.clone())).collect();
        v.sort();
        v
    }

    #[test]
    fn a_snapshot_at_four_restores_at_one_two_and_eight() {
        let max = 128;
        let all = store_of(0..10_000);
        // Four subtasks, each holding its own keys, each writing its part.
        let parts: Vec<Vec<u8>> = (0..4)
            .map(|s| {
                let mut mine = KeyedStore::new();
                for (k, n, v) in all.iter() {
                    if subtask_for_key(k, max, 4) == s {
                        mine.insert(*k, *n, v.clone());
                    }
                }
                mine.snapshot(max, Compression::Lz4)
            })
            .collect::<Result<_, _>>()
            .unwrap();
        for p in [1, 2, 8] {
            let mut union = KeyedStore::new();
            for s in 0..p {
                let range = key_group_range_for_subtask(max, p, s);
                let mut restored: KeyedStore<u64, u32, String> = KeyedStore::new();
                for part in &parts {
                    restored.restore(part, range).unwrap();
                }
                for (k, n, v) in restored.iter() {
                    assert_eq!(subtask_for_key(k, max, p), s, "key {k} restored at p={p}");
                    union.insert(*k, *n, v.clone());
                }
            }
            assert_eq!(entries(&union), entries(&all), "p={p}");
        }
    }

    #[test]
    fn damage_is_detected() {
        let store = store_of(0..100);
        for compression in [Compression::None, Compression::Lz4] {
            let bytes = store.snapshot(128, compression).unwrap();
            let everything = KeyGroupRange { start: 0, end: 127 };
            let mut flipped = bytes.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 0x40;
            assert!(matches!(
                KeyedStore::<u64, u32, String>::new().restore(&flipped, everything),
                Err(SnapshotError::Checksum { .. })
            ));
            assert!(matches!(
                KeyedStore::<u64, u32, String>::new()
                    .restore(&bytes[..bytes.len() / 2], everything),
                Err(SnapshotError::Truncated(_))
            ));
            assert!(matches!(
                KeyedStore::<u64, u32, String>::new().restore(b"not a snapshot at all", everything),
                Err(SnapshotError::UnknownFormat)
            ));
            let mut back = KeyedStore::new();
            assert_eq!(back.restore(&bytes, everything).unwrap(), 100);
            assert_eq!(entries(&back), entries(&store));
        }
    }

    #[test]
    fn a_filtered_snapshot_keeps_only_its_range() {
        let store = store_of(0..1000);
        let bytes = store.snapshot(128, Compression::Lz4).unwrap();
        let range = KeyGroupRange { start: 0, end: 63 };
        let filtered = filter_keyed_snapshot(&bytes, range).unwrap();
        let mut direct = KeyedStore::new();
        direct.restore(&bytes, range).unwrap();
        let mut through = KeyedStore::new();
        let everything = KeyGroupRange { start: 0, end: 127 };
        through.restore(&filtered, everything).unwrap();
        assert_eq!(entries(&through), entries(&direct));
        assert!(!entries(&direct).is_empty());
    }

    #[test]
    fn a_raw_snapshot_equals_the_typed_one() {
        let entries: Vec<(u64, String)> = (0..500).map(|k| (k, format!("v{k}"))).collect();
        let typed = write_keyed_snapshot(
            entries.iter().map(|(k, v)| (k, &(), v)),
            128,
            Compression::None,
        )
        .unwrap();
        type Encoded = Vec<(Vec<u8>, Vec<u8>)>;
        let mut by_group: std::collections::BTreeMap<u32, Encoded> =
            std::collections::BTreeMap::new();
        for (k, v) in &entries {
            by_group
                .entry(assign_to_key_group(k, 128) as u32)
                .or_default()
                .push((
                    postcard::to_stdvec(k).unwrap(),
                    postcard::to_stdvec(v).unwrap(),
                ));
        }
        let raw = write_raw_keyed_snapshot(
            by_group
                .iter()
                .map(|(g, es)| (*g, es.iter().map(|(k, v)| (&k[..], &v[..])))),
            Compression::None,
        )
        .unwrap();
        assert_eq!(raw, typed);
    }

    #[test]
    fn lz4_makes_repetitive_state_smaller() {
        let store = store_of(0..10_000);
        let plain = store.snapshot(128, Compression::None).unwrap();
        let packed = store.snapshot(128, Compression::Lz4).unwrap();
        assert!(
            packed.len() * 3 < plain.len() * 2,
            "{} vs {}",
            packed.len(),
            plain.len()
        );
    }
}
