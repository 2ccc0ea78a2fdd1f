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

/// Why a copy of state could not be encoded for a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodingError {
    /// The backend's store could not be read.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    /// The snapshot could not be written.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A file of an incremental checkpoint could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An entry could not be encoded.
    #[error("state cannot be encoded: {0}")]
    Encode(postcard::Error),
    /// A stored entry could not be decoded.
    #[error("a stored entry cannot be decoded: {0}")]
    Decode(postcard::Error),
}

/// Encodes a copy of state on the checkpoint writer's thread.
pub type Encoding = Box<dyn FnOnce() -> Result<Vec<u8>, EncodingError> + Send>;

const MAGIC: &[u8; 4] = b"SFKS";
const VERSION: u8 = 3;
const HEADER: usize = 4 + 1 + 1 + 4 + 8;

/// Builds a snapshot's payload: key group after key group, each as its number (u32 LE),
/// the length of its entries (u32 LE) and the entries, encoded on their own so that the
/// groups of a range can be cut out without knowing the entries' types. Without
/// compression the payload is written in place behind the header.
struct SnapshotWriter {
    out: Vec<u8>,
    compression: Compression,
}

impl SnapshotWriter {
    fn new(compression: Compression, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(HEADER + capacity);
        out.resize(HEADER, 0);
        SnapshotWriter { out, compression }
    }

    fn group(&mut self, group: u32, entries: &[u8]) -> Result<(), SnapshotError> {
        let len = u32::try_from(entries.len())
            .map_err(|_| SnapshotError::Encode(format!("key group {group} holds over 4 GiB")))?;
        self.out.extend_from_slice(&group.to_le_bytes());
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(entries);
        Ok(())
    }

    fn finish(mut self) -> Vec<u8> {
        let flag = match self.compression {
            Compression::None => 0,
            Compression::Lz4 => {
                let packed = lz4_flex::compress_prepend_size(&self.out[HEADER..]);
                self.out.truncate(HEADER);
                self.out.extend_from_slice(&packed);
                1
            }
        };
        let crc = crc32fast::hash(&self.out[HEADER..]);
        let len = (self.out.len() - HEADER) as u64;
        self.out[..4].copy_from_slice(MAGIC);
        self.out[4] = VERSION;
        self.out[5] = flag;
        self.out[6..10].copy_from_slice(&crc.to_le_bytes());
        self.out[10..18].copy_from_slice(&len.to_le_bytes());
        self.out
    }
}

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
    let mut writer = SnapshotWriter::new(compression, 0);
    let mut scratch = Vec::new();
    for (group, entries) in groups.iter().enumerate() {
        if entries.is_empty() {
            continue;
        }
        scratch.clear();
        scratch = postcard::to_extend(entries, scratch)
            .map_err(|e| SnapshotError::Encode(e.to_string()))?;
        writer.group(group as u32, &scratch)?;
    }
    Ok(writer.finish())
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
    let mut writer = SnapshotWriter::new(compression, 0);
    let mut body = Vec::new();
    let mut bytes = Vec::new();
    for (group, entries) in groups {
        body.clear();
        let mut count = 0u64;
        for (key, value) in entries {
            body.extend_from_slice(key);
            body.extend_from_slice(value);
            count += 1;
        }
        bytes.clear();
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
        writer.group(group, &bytes)?;
    }
    Ok(writer.finish())
}

/// The payload of a snapshot, checked and decompressed.
enum Payload<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Payload<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(v) => v,
        }
    }
}

fn payload(snapshot: &[u8]) -> Result<Payload<'_>, SnapshotError> {
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
    if snapshot[5] == 1 {
        return lz4_flex::decompress_size_prepended(payload)
            .map(Payload::Owned)
            .map_err(|e| SnapshotError::Decode(e.to_string()));
    }
    Ok(Payload::Borrowed(payload))
}

/// Calls `each` with every key group of a payload and its encoded entries.
fn for_each_group(
    payload: &[u8],
    mut each: impl FnMut(u32, &[u8]) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let mut rest = payload;
    while !rest.is_empty() {
        let (head, tail) = rest
            .split_at_checked(8)
            .ok_or_else(|| SnapshotError::Decode("a key group's header is cut off".into()))?;
        let group = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let (entries, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| SnapshotError::Decode(format!("key group {group} is cut off")))?;
        each(group, entries)?;
        rest = tail;
    }
    Ok(())
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
    let payload = payload(snapshot)?;
    let mut restored = 0;
    for_each_group(payload.bytes(), |group, bytes| {
        if range.contains(group as usize) {
            let entries: Vec<(K, N, V)> =
                postcard::from_bytes(bytes).map_err(|e| SnapshotError::Decode(e.to_string()))?;
            restored += entries.len();
            for (k, n, v) in entries {
                insert(k, n, v);
            }
        }
        Ok(())
    })?;
    Ok(restored)
}

/// The key groups of `snapshot` that fall in `range`, as a snapshot of their own: for
/// state that is carried into the next checkpoint without being read.
pub fn filter_keyed_snapshot(
    snapshot: &[u8],
    range: KeyGroupRange,
) -> Result<Vec<u8>, SnapshotError> {
    let payload = payload(snapshot)?;
    let mut writer = SnapshotWriter::new(Compression::None, payload.bytes().len());
    for_each_group(payload.bytes(), |group, bytes| {
        if range.contains(group as usize) {
            writer.group(group, bytes)?;
        }
        Ok(())
    })?;
    Ok(writer.finish())
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
