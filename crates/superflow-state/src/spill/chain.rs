//! The format of incremental checkpoints of keyed state: a chain of at most 8 files per
//! state, a full copy and then deltas of the keys changed, read back into one snapshot.

use std::hash::Hash;
use std::path::Path;

use serde::Serialize;
use superflow_core::assign_to_key_group;

use crate::snapshot::{write_raw_keyed_snapshot, Compression, EncodingError, SnapshotError};

/// Entries of one key group, as stored bytes.
pub(crate) type RawGroup<'a> = (u32, Vec<(&'a [u8], &'a [u8])>);

/// The files of one state's incremental checkpoint chain: a full file, then the deltas
/// after it.
#[derive(Debug, Default)]
pub(crate) struct IncrementalChain {
    files: Vec<String>,
}

impl IncrementalChain {
    /// How many files a chain grows to before the next checkpoint writes a full file
    /// again, so that a restore reads a bounded number of them.
    const MAX_FILES: usize = 8;

    /// Whether a chain has started: the next checkpoint may be a delta, so changes must
    /// be recorded (before that, none are, so that they do not pile up).
    pub(crate) fn started(&self) -> bool {
        !self.files.is_empty()
    }

    /// Adds checkpoint `checkpoint`'s file of partition `partition`. Returns whether it
    /// is a full file (the first, after [`Self::MAX_FILES`], at every checkpoint id
    /// [`is_full_checkpoint`], and when `full` asks), its name, and the chain a restore
    /// of that checkpoint reads.
    pub(crate) fn next(
        &mut self,
        partition: &str,
        checkpoint: u64,
        full: bool,
    ) -> (bool, String, Vec<String>) {
        let full = full
            || self.files.is_empty()
            || self.files.len() >= Self::MAX_FILES
            || is_full_checkpoint(checkpoint);
        if full {
            self.files.clear();
        }
        let file = format!("{partition}-c{checkpoint}");
        self.files.push(file.clone());
        (full, file, self.files.clone())
    }

    /// Ends the chain after the file just added: the next checkpoint writes a full file,
    /// and until then no changes need recording.
    pub(crate) fn pause(&mut self) {
        self.files.clear();
    }
}

/// Whether every state writes checkpoint `checkpoint` in full, whatever its chain: the
/// first and every 8th checkpoint id (1, 9, 17, ...), so that the chains of all states
/// restart together and such a checkpoint needs no file of an earlier one (the
/// coordinator keeps the newest of them: a damaged shared file then costs at most the
/// checkpoints after it).
pub fn is_full_checkpoint(checkpoint: u64) -> bool {
    checkpoint % IncrementalChain::MAX_FILES as u64 == 1
}

/// Appends a stored key to `out`: the key group of `key` (big-endian, so that keys sort
/// by group and a restore takes a range of groups), then `encoded`.
pub(crate) fn append_grouped_key<K: Hash + ?Sized, E: Serialize + ?Sized>(
    key: &K,
    encoded: &E,
    max_parallelism: usize,
    out: &mut Vec<u8>,
) -> Result<(), postcard::Error> {
    let group = assign_to_key_group(key, max_parallelism) as u16;
    out.extend_from_slice(&group.to_be_bytes());
    postcard::to_io(encoded, out).map(|_| ())
}

/// Writes file `file` of an incremental chain into directory `shared` (atomically), and
/// returns `chain` encoded, as a checkpoint part records it.
pub(crate) fn write_chain_file(
    shared: &Path,
    file: &str,
    bytes: &[u8],
    chain: &[String],
) -> Result<Vec<u8>, EncodingError> {
    let path = shared.join(file);
    let tmp = path.with_extension("tmp");
    std::fs::create_dir_all(shared)
        .and_then(|()| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| EncodingError::Write { path, source })?;
    postcard::to_stdvec(chain).map_err(EncodingError::Encode)
}

const DELTA_MAGIC: &[u8; 4] = b"SFKD";

/// Encodes changes of a stored map: each stored key with its value, or none if it was
/// removed; a CRC32 over them comes first.
pub(crate) fn encode_delta<'a>(
    entries: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(DELTA_MAGIC);
    out.extend_from_slice(&[0u8; 12]);
    for (key, value) in entries {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        match value {
            Some(value) => {
                out.push(1);
                out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                out.extend_from_slice(value);
            }
            None => out.push(0),
        }
    }
    let crc = crc32fast::hash(&out[16..]);
    let len = (out.len() - 16) as u64;
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out[8..16].copy_from_slice(&len.to_le_bytes());
    out
}

/// Reads the files of an incremental chain (a full one, then deltas, in order) and
/// returns the state they add up to, as a keyed snapshot.
pub fn read_chain(files: &[Vec<u8>]) -> Result<Vec<u8>, SnapshotError> {
    let mut state: std::collections::BTreeMap<&[u8], &[u8]> = std::collections::BTreeMap::new();
    for file in files {
        if file.len() < 16 || &file[..4] != DELTA_MAGIC {
            return Err(SnapshotError::UnknownFormat);
        }
        let crc = u32::from_le_bytes([file[4], file[5], file[6], file[7]]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&file[8..16]);
        let len = u64::from_le_bytes(len) as usize;
        let body = file
            .get(16..16usize.saturating_add(len))
            .ok_or(SnapshotError::Truncated(file.len()))?;
        let computed = crc32fast::hash(body);
        if computed != crc {
            return Err(SnapshotError::Checksum {
                stored: crc,
                computed,
            });
        }
        let mut rest = body;
        let cut = || SnapshotError::Decode("a change is cut off".into());
        let take =
            |rest: &mut &'_ [u8], n: usize| -> Option<usize> { (rest.len() >= n).then_some(n) };
        while !rest.is_empty() {
            take(&mut rest, 4).ok_or_else(cut)?;
            let klen = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let (key, tail) = rest[4..].split_at_checked(klen).ok_or_else(cut)?;
            let (&tag, tail) = tail.split_first().ok_or_else(cut)?;
            if tag == 0 {
                state.remove(key);
                rest = tail;
                continue;
            }
            let (vlen, tail) = tail.split_at_checked(4).ok_or_else(cut)?;
            let vlen = u32::from_le_bytes([vlen[0], vlen[1], vlen[2], vlen[3]]) as usize;
            let (value, tail) = tail.split_at_checked(vlen).ok_or_else(cut)?;
            state.insert(key, value);
            rest = tail;
        }
    }
    let mut groups: Vec<RawGroup<'_>> = Vec::new();
    for (key, value) in state {
        if key.len() < 2 {
            return Err(SnapshotError::Decode(
                "a stored key has no key group".into(),
            ));
        }
        let group = u16::from_be_bytes([key[0], key[1]]) as u32;
        if groups.last().is_none_or(|(g, _)| *g != group) {
            groups.push((group, Vec::new()));
        }
        if let Some((_, entries)) = groups.last_mut() {
            entries.push((&key[2..], value));
        }
    }
    write_raw_keyed_snapshot(
        groups
            .iter()
            .map(|(g, entries)| (*g, entries.iter().copied())),
        Compression::None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored key: the key group (big-endian), then the key's bytes.
    fn key(group: u16, name: &[u8]) -> Vec<u8> {
        let mut k = group.to_be_bytes().to_vec();
        k.extend_from_slice(name);
        k
    }

    #[test]
    fn a_later_delta_overrides_and_removes_what_an_earlier_file_holds() {
        let (a, b, c) = (key(0, b"a"), key(1, b"b"), key(1, b"c"));
        let full = encode_delta([(&a[..], Some(&b"1"[..])), (&b[..], Some(&b"2"[..]))].into_iter());
        let delta = encode_delta([(&a[..], None), (&c[..], Some(&b"3"[..]))].into_iter());
        let both = read_chain(&[full.clone(), delta]).unwrap();
        let expected =
            encode_delta([(&b[..], Some(&b"2"[..])), (&c[..], Some(&b"3"[..]))].into_iter());
        assert_eq!(both, read_chain(&[expected]).unwrap());
        assert_ne!(both, read_chain(&[full]).unwrap());
    }

    #[test]
    fn a_damaged_chain_file_is_refused_naming_the_damage() {
        let a = key(0, b"a");
        let file = encode_delta([(&a[..], Some(&b"value"[..]))].into_iter());
        let mut flipped = file.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(matches!(
            read_chain(&[flipped]),
            Err(SnapshotError::Checksum { .. })
        ));
        assert!(matches!(
            read_chain(&[file[..file.len() - 2].to_vec()]),
            Err(SnapshotError::Truncated(_))
        ));
        assert!(matches!(
            read_chain(&[b"not a chain file".to_vec()]),
            Err(SnapshotError::UnknownFormat)
        ));
    }
}
