//! Checkpoint storage in an object store, behind a URL (the `object_store` crate:
//! `file://` and `memory://` always; `s3://`, `gs://`, `az://` with the `cloud-storage`
//! cargo feature).
//!
//! The local storage directory becomes a staging copy (one per process): every file a
//! checkpoint writes there (parts, shared increments, the metadata last) is uploaded
//! under the same relative path as soon as it is written, so a checkpoint is complete
//! in the store once its metadata is. Listing, completeness and deletion ask the
//! store; a restore downloads the checkpoint it picks (its metadata, parts and the
//! shared files they name) into the staging directory and reads it from there, so the
//! checks of a local restore (sizes, checksums, fallback to an older checkpoint) apply.

use super::CheckpointError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// A checkpoint storage location in an object store.
pub struct RemoteStorage {
    url: String,
    store: Box<dyn ObjectStore>,
    prefix: ObjectPath,
    staging: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for RemoteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStorage")
            .field("url", &self.url)
            .field("staging", &self.staging)
            .finish()
    }
}

/// Whether `location` names an object store (a URL with a scheme) rather than a
/// directory.
pub fn is_url(location: &str) -> bool {
    location.split_once("://").is_some_and(|(scheme, _)| {
        scheme.len() > 1
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
    })
}

type Registry = Mutex<HashMap<String, Arc<RemoteStorage>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// How staging directories are named: the prefix, then the URL's hash and the process id.
const STAGING_PREFIX: &str = "superflow-staging-";

/// The storage at `url` (one per URL and process, so that a `memory://` store lives as
/// long as the process).
pub fn open(url: &str) -> Result<Arc<RemoteStorage>, CheckpointError> {
    let url = url.trim_end_matches('/').to_string();
    let mut registry = registry()
        .lock()
        .map_err(|_| CheckpointError::ObjectStore("the storage registry is poisoned".into()))?;
    if let Some(found) = registry.get(&url) {
        return Ok(Arc::clone(found));
    }
    let parsed = url::Url::parse(&url)
        .map_err(|e| CheckpointError::ObjectStore(format!("'{url}' is not a storage URL: {e}")))?;
    // Credentials, region and endpoint come from the environment, as the clouds' own
    // tools read them (AWS_*, GOOGLE_*, AZURE_*); `parse_url` alone would read none and
    // fall back to the instance metadata service.
    let environment = std::env::vars().filter(|(key, _)| {
        ["AWS_", "GOOGLE_", "AZURE_"]
            .iter()
            .any(|prefix| key.starts_with(prefix))
    });
    let (store, prefix) = object_store::parse_url_opts(&parsed, environment).map_err(|e| {
        CheckpointError::ObjectStore(format!("cannot open checkpoint storage '{url}': {e} (s3://, gs:// and az:// need the 'cloud-storage' feature)"))
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("superflow-object-store")
        .enable_all()
        .build()
        .map_err(|e| {
            CheckpointError::ObjectStore(format!("cannot start the object store client: {e}"))
        })?;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = foldhash::fast::FixedState::with_seed(11).build_hasher();
    hasher.write(url.as_bytes());
    // A process keeps its staging copy as long as it lives (a later run may restore
    // from it); nothing runs when it exits, so the next one cleans up.
    crate::leftovers::remove_those_of_ended_processes(&std::env::temp_dir(), STAGING_PREFIX);
    let staging = std::env::temp_dir().join(crate::leftovers::own_name(
        STAGING_PREFIX,
        &format!("{:016x}", hasher.finish()),
    ));
    let storage = Arc::new(RemoteStorage {
        url: url.clone(),
        store,
        prefix,
        staging,
        runtime,
    });
    registry.insert(url, Arc::clone(&storage));
    Ok(storage)
}

/// The remote storage whose staging directory holds `path`, if any.
pub fn mirroring(path: &Path) -> Option<Arc<RemoteStorage>> {
    let registry = registry().lock().ok()?;
    registry
        .values()
        .find(|r| path.starts_with(&r.staging))
        .cloned()
}

/// How a path is named to users and other processes: the URL it is staged for, or the
/// path itself.
pub fn name_of(path: &Path) -> PathBuf {
    mirroring(path)
        .and_then(|remote| {
            let relative = path.strip_prefix(&remote.staging).ok()?;
            Some(PathBuf::from(
                remote.url_of(&relative.to_string_lossy().replace('\\', "/")),
            ))
        })
        .unwrap_or_else(|| path.to_path_buf())
}

impl RemoteStorage {
    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The local staging directory (the storage directory the rest of the runtime
    /// writes to).
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    fn object(&self, relative: &str) -> ObjectPath {
        let mut path = self.prefix.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        path
    }

    /// The URL of `relative` (a checkpoint directory, to name it to other processes).
    pub fn url_of(&self, relative: &str) -> String {
        match relative.trim_matches('/') {
            "" => self.url.clone(),
            relative => format!("{}/{relative}", self.url),
        }
    }

    /// The store failed to `action` object `relative`.
    fn failed(&self, action: &str, relative: &str, e: object_store::Error) -> CheckpointError {
        CheckpointError::ObjectStore(format!("cannot {action} {}/{relative}: {e}", self.url))
    }

    /// The name under the storage's URL of the staged file `path`.
    fn relative(&self, path: &Path) -> Result<String, CheckpointError> {
        let relative = path.strip_prefix(&self.staging).map_err(|_| {
            let staging = self.staging.display();
            CheckpointError::ObjectStore(format!("{} is not in {staging}", path.display()))
        })?;
        Ok(relative.to_string_lossy().replace('\\', "/"))
    }

    /// Uploads the staged file `path`.
    pub fn upload(&self, path: &Path) -> Result<(), CheckpointError> {
        let relative = self.relative(path)?;
        let bytes = std::fs::read(path).map_err(|e| CheckpointError::io("read", path, e))?;
        let object = self.object(&relative);
        self.runtime
            .block_on(self.store.put(&object, PutPayload::from(bytes)))
            .map(|_| ())
            .map_err(|e| {
                let (path, url) = (path.display(), &self.url);
                CheckpointError::ObjectStore(format!("cannot upload {path} to {url}: {e}"))
            })
    }

    /// The bytes of `relative`, `None` if it does not exist.
    pub fn read(&self, relative: &str) -> Result<Option<Vec<u8>>, CheckpointError> {
        let object = self.object(relative);
        self.runtime.block_on(async {
            match self.store.get(&object).await {
                Ok(result) => result
                    .bytes()
                    .await
                    .map(|b| Some(b.to_vec()))
                    .map_err(|e| self.failed("read", relative, e)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.failed("read", relative, e)),
            }
        })
    }

    /// Whether `relative` exists (without reading it).
    pub fn exists(&self, relative: &str) -> Result<bool, CheckpointError> {
        let object = self.object(relative);
        match self.runtime.block_on(self.store.head(&object)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.failed("look up", relative, e)),
        }
    }

    /// Downloads `relative` into the staging directory; false if it does not exist.
    pub fn download(&self, relative: &str) -> Result<bool, CheckpointError> {
        let Some(bytes) = self.read(relative)? else {
            return Ok(false);
        };
        let path = self.staging.join(relative);
        super::storage::write_local(&path, &bytes)
            .map_err(|e| CheckpointError::io("write", path, e))?;
        Ok(true)
    }

    /// The names directly under `relative`: (sub-"directories", objects).
    pub fn list(&self, relative: &str) -> Result<(Vec<String>, Vec<String>), CheckpointError> {
        let object = self.object(relative);
        let listed = self
            .runtime
            .block_on(self.store.list_with_delimiter(Some(&object)))
            .map_err(|e| self.failed("list", relative, e))?;
        let name = |p: &ObjectPath| p.filename().map(str::to_string);
        Ok((
            listed.common_prefixes.iter().filter_map(name).collect(),
            listed
                .objects
                .iter()
                .filter_map(|o| name(&o.location))
                .collect(),
        ))
    }

    /// Deletes `relative` and everything under it.
    pub fn delete(&self, relative: &str) {
        let object = self.object(relative);
        let result: Result<(), object_store::Error> = self.runtime.block_on(async {
            use futures::TryStreamExt;
            let mut found: Vec<ObjectPath> = self
                .store
                .list(Some(&object))
                .map_ok(|m| m.location)
                .try_collect()
                .await?;
            found.push(object.clone());
            for location in found {
                match self.store.delete(&location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!("cannot delete {}/{relative}: {e}", self.url);
        }
    }

    /// Deletes the object the staged file `path` was uploaded to.
    pub fn delete_staged(&self, path: &Path) {
        match self.relative(path) {
            Ok(relative) => self.delete(&relative),
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_directories() {
        assert!(is_url("s3://bucket/checkpoints"));
        assert!(is_url("file:///tmp/x"));
        assert!(is_url("memory:///"));
        assert!(!is_url("/tmp/checkpoints"));
        assert!(!is_url("checkpoints"));
        assert!(!is_url("C://x"));
    }

    /// Without the feature a cloud URL is refused, naming the feature; with it, the
    /// client is built from the URL (and the environment's credentials) without I/O.
    #[test]
    fn cloud_urls_need_the_cloud_storage_feature() {
        let opened = open("s3://superflow-test-bucket/checkpoints");
        if cfg!(feature = "cloud-storage") {
            assert!(opened.is_ok(), "{:?}", opened.err());
        } else {
            let error = opened.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains("'cloud-storage' feature"), "{error}");
        }
    }

    #[test]
    fn files_go_up_and_come_back_down() {
        let storage = open("memory:///remote-test").unwrap();
        let staged = storage.staging().join("chk-1").join("a.part");
        super::super::storage::write_local(&staged, b"abc").unwrap();
        storage.upload(&staged).unwrap();
        assert_eq!(storage.read("chk-1/a.part").unwrap(), Some(b"abc".to_vec()));
        assert_eq!(storage.read("chk-1/missing").unwrap(), None);
        assert!(storage.exists("chk-1/a.part").unwrap());
        assert!(!storage.exists("chk-1/missing").unwrap());
        let (dirs, files) = storage.list("").unwrap();
        assert_eq!((dirs, files), (vec!["chk-1".to_string()], vec![]));
        std::fs::remove_dir_all(storage.staging()).unwrap();
        assert!(storage.download("chk-1/a.part").unwrap());
        assert_eq!(std::fs::read(&staged).unwrap(), b"abc");
        storage.delete("chk-1");
        assert_eq!(storage.read("chk-1/a.part").unwrap(), None);
        assert!(mirroring(&staged).is_some());
        std::fs::remove_dir_all(storage.staging()).unwrap();
    }
}
