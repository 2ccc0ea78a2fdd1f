//! Warnings a user must see (a restart, a skipped checkpoint, operators without uids):
//! through `tracing` when the program installed a subscriber, on stderr otherwise, so a
//! job without logging set up still shows them.

/// Reports `message` as a warning.
pub fn warn_user(message: impl std::fmt::Display) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{message}");
    } else {
        eprintln!("warning: {message}");
    }
}
