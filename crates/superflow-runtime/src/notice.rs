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

/// [`warn_user`], once per process for each message: a restart that finds the same
/// damaged checkpoint again says nothing new.
pub fn warn_user_once(message: impl std::fmt::Display) {
    static SAID: std::sync::Mutex<Option<std::collections::HashSet<String>>> =
        std::sync::Mutex::new(None);
    let message = message.to_string();
    let first = match SAID.lock() {
        Ok(mut said) => said
            .get_or_insert_with(Default::default)
            .insert(message.clone()),
        Err(_) => true,
    };
    if first {
        warn_user(message);
    }
}
