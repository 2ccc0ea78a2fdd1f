//! Checkpoint files in a local directory: one part per operator subtask, written in
//! the background, and a metadata file written last that makes the checkpoint complete.
//! The metadata holds each part's size and CRC32, so a missing, truncated or damaged
//! part is detected on restore, and the restore falls back to the previous checkpoint.
//!
//! Layout: `<storage>/chk-<id>/<node>-<worker>.part` and `<storage>/chk-<id>/_metadata`
//! (JSON, for people and tools). A savepoint has the same layout in its own directory.

use super::CheckpointError;
use std::path::{Path, PathBuf};
use superflow_state::SnapshotError;

use serde::{Deserialize, Serialize};

use super::config::SnapshotCompression;
use super::snapshot::{RestoredState, SectionKind, StateSection};

const PART_MAGIC: &[u8; 4] = b"SFCP";
const PART_VERSION: u8 = 1;
/// The metadata file's name.
pub const METADATA_FILE: &str = "_metadata";

/// What the metadata records about one part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartMetadata {
    /// The file name inside the checkpoint's directory.
    pub file: String,
    /// The operator (chain) name.
    pub operator: String,
    /// The node id of the chain's head.
    pub node: usize,
    /// The subtask index.
    pub subtask: usize,
    /// The operator's parallelism when written.
    pub parallelism: usize,
    /// Size in bytes.
    pub size: u64,
    /// CRC32 of the whole file.
    pub crc32: u32,
    /// The states in the part, with their kinds.
    pub states: Vec<(String, SectionKind)>,
    /// Files of the storage's `shared` directory that incremental state in the part
    /// refers to.
    #[serde(default)]
    pub shared: Vec<String>,
    /// Bytes of the shared files this checkpoint wrote (its increments).
    #[serde(default)]
    pub incremental_bytes: u64,
    /// Time the data path stopped for the synchronous copy, in microseconds.
    pub sync_micros: u64,
    /// Time spent compressing and writing in the background, in microseconds.
    pub async_micros: u64,
    /// Time records of later epochs were held back for alignment, in microseconds.
    pub alignment_micros: u64,
}

/// The metadata of a complete checkpoint or savepoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointMetadata {
    /// The checkpoint id.
    pub id: u64,
    /// The job's name.
    pub job: String,
    /// The line of checkpoints this one belongs to: the run id of the run that started
    /// the job afresh, kept by every run restored from its checkpoints (0 in checkpoints
    /// of builds before it was recorded). Sinks record it with what they commit.
    #[serde(default)]
    pub lineage: u64,
    /// Whether this is a savepoint.
    pub savepoint: bool,
    /// When it was triggered (milliseconds since the Unix epoch).
    pub trigger_timestamp_ms: i64,
    /// The max parallelism (number of key groups) of the job.
    pub max_parallelism: usize,
    /// The operators (by state uid) with a max parallelism of their own, other than
    /// the job's.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub operator_key_groups: std::collections::BTreeMap<String, usize>,
    /// Every part.
    pub parts: Vec<PartMetadata>,
}

/// A directory holding a job's checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointStorage {
    root: PathBuf,
}

impl CheckpointStorage {
    /// Storage under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> CheckpointStorage {
        CheckpointStorage { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of checkpoint `id`.
    pub fn checkpoint_dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("chk-{id}"))
    }

    /// The object store this directory stages for, if any.
    fn remote(&self) -> Option<std::sync::Arc<super::remote::RemoteStorage>> {
        super::remote::mirroring(&self.root).filter(|r| r.staging() == self.root)
    }

    /// The names of the entries (directories and files) in directory `relative` of the
    /// storage: of the object store it stages for, or of the local directory. A local
    /// directory that does not exist has none.
    fn names_in(&self, relative: &str) -> Result<Vec<String>, CheckpointError> {
        match self.remote() {
            Some(remote) => remote.list(relative).map(|(mut dirs, files)| {
                dirs.extend(files);
                dirs
            }),
            None => Ok(std::fs::read_dir(self.root.join(relative))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()),
        }
    }

    /// Deletes file `relative` of the storage, here and in the object store it stages
    /// for.
    fn delete_file(&self, relative: &str) {
        let _ = std::fs::remove_file(self.root.join(relative));
        if let Some(remote) = self.remote() {
            remote.delete(relative);
        }
    }

    /// The ids of the checkpoint directories present, complete or not, ascending.
    pub fn checkpoint_ids(&self) -> Vec<u64> {
        let names = self.names_in("").unwrap_or_else(|e| {
            tracing::warn!("{e}");
            Vec::new()
        });
        let mut ids: Vec<u64> = names
            .iter()
            .filter_map(|n| n.strip_prefix("chk-").and_then(|n| n.parse().ok()))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Whether checkpoint `id` has its metadata (it may still be damaged).
    pub fn is_complete(&self, id: u64) -> bool {
        match self.remote() {
            Some(remote) => remote
                .exists(&format!("chk-{id}/{METADATA_FILE}"))
                .unwrap_or(false),
            None => self.checkpoint_dir(id).join(METADATA_FILE).is_file(),
        }
    }

    /// The metadata file of checkpoint `id`, if it has one.
    pub fn metadata_bytes(&self, id: u64) -> Option<Vec<u8>> {
        match self.remote() {
            Some(remote) => remote
                .read(&format!("chk-{id}/{METADATA_FILE}"))
                .ok()
                .flatten(),
            None => std::fs::read(self.checkpoint_dir(id).join(METADATA_FILE)).ok(),
        }
    }

    /// Deletes checkpoint `id`.
    pub fn delete(&self, id: u64) {
        let dir = self.checkpoint_dir(id);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %dir.display(), "cannot delete checkpoint: {e}");
            }
        }
        if let Some(remote) = self.remote() {
            remote.delete(&format!("chk-{id}"));
        }
    }

    /// Records that process 0 gave up the job after run `run_id` failed, with its
    /// error: the other processes, restarting, read it instead of waiting for a process 0
    /// that will not come back.
    /// Only the last job given up keeps its file: earlier ones are deleted first.
    pub fn record_give_up(&self, run_id: u64, cause: &str) {
        self.forget_give_ups();
        let path = self.root.join(give_up_file(run_id));
        if let Err(e) = write_atomically(&path, cause.as_bytes()) {
            tracing::warn!(path = %path.display(), "cannot record that the job was given up: {e}");
        }
    }

    /// Process 0's error, if it gave up the job after run `run_id` failed.
    pub fn give_up_of(&self, run_id: u64) -> Option<String> {
        let name = give_up_file(run_id);
        let bytes = match self.remote() {
            Some(remote) => remote.read(&name).ok().flatten(),
            None => std::fs::read(self.root.join(&name)).ok(),
        };
        bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Deletes what earlier jobs recorded with [`CheckpointStorage::record_give_up`]:
    /// only processes of the run given up read it, while they try to reconnect.
    pub fn forget_give_ups(&self) {
        let names = self.names_in("").unwrap_or_default();
        for name in names.iter().filter(|n| n.starts_with(GIVE_UP_PREFIX)) {
            self.delete_file(name);
        }
    }

    /// The names of the files incremental checkpoints share.
    pub fn shared_files(&self) -> Vec<String> {
        self.names_in(SHARED_DIR).unwrap_or_default()
    }

    /// Deletes shared file `name`.
    pub fn delete_shared(&self, name: &str) {
        self.delete_file(&format!("{SHARED_DIR}/{name}"));
    }

    /// Downloads checkpoint `id` of an object store into the staging directory (its
    /// metadata, its parts, the shared files they name) and returns its local
    /// directory; a local checkpoint is where it is.
    fn fetch(&self, id: u64) -> Result<PathBuf, CheckpointError> {
        let dir = self.checkpoint_dir(id);
        match self.remote() {
            Some(remote) => download_checkpoint(&remote, &format!("chk-{id}")).map(|()| dir),
            None => Ok(dir),
        }
    }
}

/// Downloads the checkpoint or savepoint at `relative` of an object store (`""`: the
/// store's root) into the staging directory: its metadata, its parts and the shared
/// files they name (under the store's root).
pub(crate) fn download_checkpoint(
    remote: &super::remote::RemoteStorage,
    relative: &str,
) -> Result<(), CheckpointError> {
    let under = |name: &str| match relative {
        "" => name.to_string(),
        dir => format!("{dir}/{name}"),
    };
    if !remote.download(&under(METADATA_FILE))? {
        return Err(CheckpointError::damaged(
            "checkpoint",
            remote.url_of(relative),
            "it has no metadata",
        ));
    }
    let staged = remote.staging().join(under(METADATA_FILE));
    let text = std::fs::read(&staged).map_err(|e| CheckpointError::io("read", staged, e))?;
    let metadata: CheckpointMetadata = serde_json::from_slice(&text)
        .map_err(|e| CheckpointError::damaged("the metadata of", remote.url_of(relative), e))?;
    for part in &metadata.parts {
        // A missing object shows as a missing part when the checkpoint is read.
        remote.download(&under(&part.file))?;
        for name in &part.shared {
            let local = remote.staging().join(SHARED_DIR).join(name);
            if !local.is_file() {
                remote.download(&format!("{SHARED_DIR}/{name}"))?;
            }
        }
    }
    Ok(())
}

/// Encodes a part's sections into its file format.
pub(crate) fn encode_part(
    sections: &[StateSection],
    compression: SnapshotCompression,
) -> Result<Vec<u8>, CheckpointError> {
    let encoded = postcard::to_stdvec(sections).map_err(|e| CheckpointError::Encode {
        what: "a part".into(),
        reason: e.to_string(),
    })?;
    let (flag, payload) = match compression {
        SnapshotCompression::None => (0u8, encoded),
        SnapshotCompression::Lz4 => (1u8, lz4_flex::compress_prepend_size(&encoded)),
        SnapshotCompression::Zstd => (
            2u8,
            ruzstd::encoding::compress_to_vec(
                encoded.as_slice(),
                ruzstd::encoding::CompressionLevel::Fastest,
            ),
        ),
    };
    let mut out = Vec::with_capacity(payload.len() + 6);
    out.extend_from_slice(PART_MAGIC);
    out.push(PART_VERSION);
    out.push(flag);
    out.extend_from_slice(&payload);
    Ok(out)
}

fn decode_part(bytes: &[u8]) -> Result<Vec<StateSection>, SnapshotError> {
    let (Some(header), Some(body)) = (bytes.get(..6), bytes.get(6..)) else {
        return Err(SnapshotError::Truncated(bytes.len()));
    };
    if &header[..4] != PART_MAGIC || header[4] != PART_VERSION {
        return Err(SnapshotError::UnknownFormat);
    }
    let cannot_decompress =
        |e: &dyn std::fmt::Display| SnapshotError::Decode(format!("cannot decompress: {e}"));
    let decompressed;
    let payload = match header[5] {
        0 => body,
        1 => {
            decompressed =
                lz4_flex::decompress_size_prepended(body).map_err(|e| cannot_decompress(&e))?;
            &decompressed[..]
        }
        2 => {
            use std::io::Read;
            let mut decoder =
                ruzstd::decoding::StreamingDecoder::new(body).map_err(|e| cannot_decompress(&e))?;
            let mut out = Vec::new();
            decoder
                .read_to_end(&mut out)
                .map_err(|e| cannot_decompress(&e))?;
            decompressed = out;
            &decompressed[..]
        }
        other => {
            return Err(SnapshotError::Decode(format!(
                "unknown compression {other}"
            )))
        }
    };
    postcard::from_bytes(payload).map_err(|e| SnapshotError::Decode(e.to_string()))
}

/// The file that says process 0 gave up a job after run `run_id`.
const GIVE_UP_PREFIX: &str = "_gave-up-";

fn give_up_file(run_id: u64) -> String {
    format!("{GIVE_UP_PREFIX}{run_id:016x}")
}

/// Writes `bytes` to `path` through a temporary file, so a reader never sees half a
/// file; a file of an object store's staging directory is uploaded too.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_local(path, bytes)?;
    if let Some(remote) = super::remote::mirroring(path) {
        remote.upload(path).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// Undoes [`write_atomically`]: deletes `path` here and in the object store it was
/// mirrored to, and its directory if nothing else is left in it.
pub(crate) fn remove_written(path: &Path) {
    let _ = std::fs::remove_file(path);
    if let Some(remote) = super::remote::mirroring(path) {
        remote.delete_staged(path);
    }
    if let Some(dir) = path.parent() {
        // Fails, as it should, while other files are in it.
        let _ = std::fs::remove_dir(dir);
    }
}

/// Writes `bytes` to `path` through a temporary file, locally only.
pub(crate) fn write_local(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Writes a checkpoint's metadata: the last file, which makes it complete.
pub(crate) fn write_metadata(
    dir: &Path,
    metadata: &CheckpointMetadata,
) -> Result<(), CheckpointError> {
    let json = serde_json::to_vec_pretty(metadata).map_err(|e| CheckpointError::Encode {
        what: "the metadata".into(),
        reason: e.to_string(),
    })?;
    let path = dir.join(METADATA_FILE);
    write_atomically(&path, &json).map_err(|e| CheckpointError::io("write", path, e))
}

/// Reads and verifies the checkpoint or savepoint in `dir`: every part must be present
/// with the size and checksum its metadata records.
pub fn load_checkpoint(dir: &Path) -> Result<(CheckpointMetadata, RestoredState), CheckpointError> {
    let metadata_path = dir.join(METADATA_FILE);
    let text = std::fs::read(&metadata_path)
        .map_err(|e| CheckpointError::io("read", &metadata_path, e))?;
    let metadata: CheckpointMetadata = serde_json::from_slice(&text)
        .map_err(|e| CheckpointError::damaged("metadata", metadata_path.display(), e))?;
    let mut state = RestoredState::new(metadata.id, metadata.max_parallelism, dir.to_path_buf());
    state.operator_key_groups = metadata.operator_key_groups.clone();
    state.lineage = metadata.lineage;
    for part in &metadata.parts {
        let path = dir.join(&part.file);
        let bytes = std::fs::read(&path).map_err(|e| CheckpointError::io("read part", &path, e))?;
        if bytes.len() as u64 != part.size {
            return Err(CheckpointError::damaged(
                "part",
                path.display(),
                format!(
                    "it has {} bytes, the metadata says {}",
                    bytes.len(),
                    part.size
                ),
            ));
        }
        let crc = crc32fast::hash(&bytes);
        if crc != part.crc32 {
            return Err(CheckpointError::damaged(
                "part",
                path.display(),
                format!("checksum {crc:08x}, the metadata says {:08x}", part.crc32),
            ));
        }
        let sections =
            decode_part(&bytes).map_err(|e| CheckpointError::damaged("part", path.display(), e))?;
        for mut section in sections {
            if section.kind == SectionKind::KeyedChain {
                section = read_chain_section(dir, section)?;
            }
            state.add(part.subtask, section);
        }
    }
    Ok((metadata, state))
}

/// The shared directory of the storage a checkpoint directory is in.
pub(crate) fn shared_dir(checkpoint_dir: &Path) -> PathBuf {
    checkpoint_dir
        .parent()
        .map_or_else(|| PathBuf::from(SHARED_DIR), |root| root.join(SHARED_DIR))
}

/// The directory of files incremental checkpoints share.
pub const SHARED_DIR: &str = "shared";

/// The names of a chain section's files.
pub(crate) fn chain_files(section: &StateSection) -> Result<Vec<String>, CheckpointError> {
    postcard::from_bytes(&section.bytes).map_err(|e| {
        CheckpointError::damaged("the file list of state", format!("'{}'", section.state), e)
    })
}

/// Reads the chain of files an incremental section names into a keyed section.
fn read_chain_section(dir: &Path, section: StateSection) -> Result<StateSection, CheckpointError> {
    let shared = shared_dir(dir);
    let mut files = Vec::new();
    for name in chain_files(&section)? {
        let path = shared.join(&name);
        let action = "read a shared file of state";
        files.push(std::fs::read(&path).map_err(|e| CheckpointError::io(action, path, e))?);
    }
    let bytes = superflow_state::read_chain(&files).map_err(|e| {
        let what = format!("the shared files of state '{}' in", section.state);
        CheckpointError::damaged(what, shared.display(), e)
    })?;
    Ok(StateSection {
        state: section.state,
        kind: SectionKind::Keyed,
        bytes,
    })
}

/// Finds what to restore from `path`: a checkpoint or savepoint directory (its own
/// metadata; damage is an error), or a storage root, where the newest complete
/// checkpoint that verifies is taken, skipping damaged ones with a warning. Either may
/// be the URL of an object store (`<storage URL>/chk-<id>` for one checkpoint).
pub fn find_restorable(
    path: &Path,
) -> Result<(CheckpointMetadata, RestoredState), CheckpointError> {
    let text = path.to_string_lossy();
    if super::remote::is_url(&text) {
        let text = text.trim_end_matches('/');
        let one = text.rsplit_once('/').and_then(|(root, last)| {
            let id = last.strip_prefix("chk-")?.parse::<u64>().ok()?;
            Some((root, id))
        });
        if let Some((root, id)) = one {
            let remote = super::remote::open(root)?;
            let storage = CheckpointStorage::new(remote.staging());
            let dir = storage.fetch(id)?;
            return with_remote_path(load_checkpoint(&dir), &remote, id);
        }
        let remote = super::remote::open(text)?;
        // A savepoint (or one checkpoint's directory) has its metadata at its root.
        if remote.exists(METADATA_FILE)? {
            download_checkpoint(&remote, "")?;
            return load_checkpoint(remote.staging()).map(|(metadata, mut state)| {
                state.path = PathBuf::from(remote.url());
                (metadata, state)
            });
        }
        return newest_sound(&CheckpointStorage::new(remote.staging()));
    }
    if path.join(METADATA_FILE).is_file() {
        return load_checkpoint(path);
    }
    newest_sound(&CheckpointStorage::new(path))
}

/// A checkpoint restored from an object store is named by its URL (other processes of
/// the job read it from there, not from this process's staging copy).
fn with_remote_path(
    loaded: Result<(CheckpointMetadata, RestoredState), CheckpointError>,
    remote: &super::remote::RemoteStorage,
    id: u64,
) -> Result<(CheckpointMetadata, RestoredState), CheckpointError> {
    loaded.map(|(metadata, mut state)| {
        state.path = PathBuf::from(remote.url_of(&format!("chk-{id}")));
        (metadata, state)
    })
}

fn newest_sound(
    storage: &CheckpointStorage,
) -> Result<(CheckpointMetadata, RestoredState), CheckpointError> {
    let remote = storage.remote();
    let mut damaged = Vec::new();
    for &id in storage.checkpoint_ids().iter().rev() {
        let name = match &remote {
            Some(remote) => remote.url_of(&format!("chk-{id}")),
            None => storage.checkpoint_dir(id).display().to_string(),
        };
        if !storage.is_complete(id) {
            crate::notice::warn_user_once(format!(
                "skipping checkpoint {id} ({name}): it has no metadata (it never completed)"
            ));
            continue;
        }
        let loaded = storage.fetch(id).and_then(|dir| load_checkpoint(&dir));
        let loaded = match &remote {
            Some(remote) => with_remote_path(loaded, remote, id),
            None => loaded,
        };
        match loaded {
            Ok(found) => {
                if !damaged.is_empty() {
                    crate::notice::warn_user_once(format!(
                        "restoring checkpoint {id}, older than damaged checkpoint {}: output that sinks committed after checkpoint {id} may be written again (a FileSink checks, and refuses to start unless told to quarantine that output or keep duplicates)",
                        damaged.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
                    ));
                }
                return Ok(found);
            }
            Err(e) => {
                crate::notice::warn_user_once(format!("skipping damaged checkpoint {id}: {e}"));
                damaged.push(id);
            }
        }
    }
    Err(CheckpointError::NothingToRestore(remote.map_or_else(
        || storage.root().display().to_string(),
        |r| r.url().to_string(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::OperatorSnapshot;

    #[test]
    fn only_the_last_job_given_up_keeps_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let storage = CheckpointStorage::new(dir.path());
        storage.record_give_up(1, "first");
        storage.record_give_up(2, "second");
        assert_eq!(storage.give_up_of(1), None);
        assert_eq!(storage.give_up_of(2).as_deref(), Some("second"));
        write_checkpoint(&storage, 3, 7);
        storage.forget_give_ups();
        assert_eq!(storage.give_up_of(2), None);
        assert_eq!(storage.checkpoint_ids(), vec![3], "checkpoints stay");
    }

    fn write_checkpoint(storage: &CheckpointStorage, id: u64, value: u64) {
        let mut snapshot = OperatorSnapshot::new();
        snapshot
            .add_list("src/pos".into(), &[value], false)
            .unwrap();
        let bytes = encode_part(snapshot.sections(), SnapshotCompression::Lz4).unwrap();
        let dir = storage.checkpoint_dir(id);
        write_atomically(&dir.join("0-0.part"), &bytes).unwrap();
        let metadata = CheckpointMetadata {
            id,
            job: "test".into(),
            lineage: 1,
            savepoint: false,
            trigger_timestamp_ms: 0,
            max_parallelism: 128,
            operator_key_groups: Default::default(),
            parts: vec![PartMetadata {
                file: "0-0.part".into(),
                operator: "Source".into(),
                node: 0,
                subtask: 0,
                parallelism: 1,
                size: bytes.len() as u64,
                crc32: crc32fast::hash(&bytes),
                states: vec![("src/pos".into(), SectionKind::List)],
                shared: Vec::new(),
                incremental_bytes: 0,
                sync_micros: 0,
                async_micros: 0,
                alignment_micros: 0,
            }],
        };
        write_metadata(&dir, &metadata).unwrap();
    }

    #[test]
    fn the_newest_sound_checkpoint_is_found_past_damage() {
        let root = tempfile::tempdir().unwrap();
        let storage = CheckpointStorage::new(root.path());
        write_checkpoint(&storage, 1, 10);
        write_checkpoint(&storage, 2, 20);
        write_checkpoint(&storage, 3, 30);
        // 3: a flipped byte; 2: truncated; 4: never completed.
        let part3 = storage.checkpoint_dir(3).join("0-0.part");
        let mut bytes = std::fs::read(&part3).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&part3, bytes).unwrap();
        let part2 = storage.checkpoint_dir(2).join("0-0.part");
        let bytes = std::fs::read(&part2).unwrap();
        std::fs::write(&part2, &bytes[..bytes.len() / 2]).unwrap();
        std::fs::create_dir_all(storage.checkpoint_dir(4)).unwrap();

        let (metadata, state) = find_restorable(root.path()).unwrap();
        assert_eq!(metadata.id, 1);
        assert_eq!(state.list::<u64>("src/pos", 0, 1).unwrap(), vec![10]);
        let damaged = load_checkpoint(&storage.checkpoint_dir(3)).unwrap_err();
        assert!(
            matches!(&damaged, CheckpointError::Damaged { what, .. } if what == "part"),
            "{damaged}"
        );
        assert!(damaged.to_string().contains("damaged"), "{damaged}");
    }

    #[test]
    fn parts_round_trip_with_every_compression() {
        let mut snapshot = OperatorSnapshot::new();
        let items: Vec<String> = (0..1_000).map(|i| format!("element {i}")).collect();
        snapshot.add_list("op/items".into(), &items, false).unwrap();
        let mut sizes = Vec::new();
        for compression in [
            SnapshotCompression::None,
            SnapshotCompression::Lz4,
            SnapshotCompression::Zstd,
        ] {
            let bytes = encode_part(snapshot.sections(), compression).unwrap();
            let sections = decode_part(&bytes).unwrap();
            assert_eq!(sections.len(), 1);
            assert_eq!(sections[0].bytes, snapshot.sections()[0].bytes);
            sizes.push(bytes.len());
        }
        assert!(sizes[1] < sizes[0] && sizes[2] < sizes[1], "{sizes:?}");
    }

    #[test]
    fn no_checkpoint_is_a_clear_error() {
        let root = tempfile::tempdir().unwrap();
        let err = find_restorable(root.path()).unwrap_err();
        assert!(matches!(err, CheckpointError::NothingToRestore(_)), "{err}");
        assert!(err.to_string().contains("no complete checkpoint"), "{err}");
    }
}
