//! Directories a process names after itself (`<prefix>...-<pid>`): the staging copies
//! of an object store, the embedded store of each run. A process that is killed cannot
//! remove its own, so the next process that makes one removes those of processes that
//! have ended. Only where `/proc` tells which processes live.

use std::path::Path;

/// The name of a directory of this process: `<prefix><middle>-<pid>`.
pub(crate) fn own_name(prefix: &str, middle: &str) -> String {
    format!("{prefix}{middle}-{}", std::process::id())
}

/// Deletes the directories in `parent` named `<prefix>...-<pid>` whose process has
/// ended (never this process's).
pub(crate) fn remove_those_of_ended_processes(parent: &Path, prefix: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            tracing::debug!(path = %entry.path().display(), "deleting what an ended process left");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_of_ended_processes_are_deleted_and_others_kept() {
        let temp = tempfile::tempdir().unwrap();
        let ours = own_name("run-", "00ff");
        // No process has this id (above Linux's largest, 2^22).
        let ended = format!("run-00ff-{}", 1u32 << 23);
        let other = "run-notapid";
        let unrelated = format!("other-00ff-{}", 1u32 << 23);
        for name in [ours.as_str(), ended.as_str(), other, unrelated.as_str()] {
            std::fs::create_dir_all(temp.path().join(name).join("chk-1")).unwrap();
        }
        remove_those_of_ended_processes(temp.path(), "run-");
        assert!(temp.path().join(&ours).exists());
        assert!(temp.path().join(other).exists());
        assert!(temp.path().join(&unrelated).exists());
        assert_eq!(
            temp.path().join(&ended).exists(),
            !Path::new("/proc/self").exists()
        );
    }
}
