//! Turning a panic in user code into an error that names the operator.
//!
//! Every call into user code on the data path runs inside [`guard`], per batch. A panic
//! there is caught and re-raised as an [`OperatorFailure`] payload carrying the
//! operator's name, the subtask, the message and the panic's location; the worker loop
//! catches that and fails the job. The panic hook installed here records the location
//! and keeps the default "thread panicked" report (a runtime backtrace) off the terminal
//! for panics on Superflow's worker threads, so the user's message stays on top.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, Once};

use superflow_core::OperatorFailure;

thread_local! {
    static LAST_PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
    static ON_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Set when a timely network thread panicked: another process of the job is gone.
static PEER_LOST: Mutex<Option<String>> = Mutex::new(None);

/// Why the connection to another process was lost, if it was.
pub fn peer_lost() -> Option<String> {
    PEER_LOST.lock().ok().and_then(|lost| lost.clone())
}

/// Forgets a lost connection of an earlier run, whose network threads have ended: a
/// process that runs several jobs (a test suite, a Python session) starts each afresh.
pub(crate) fn reset_peer_lost() {
    if let Ok(mut lost) = PEER_LOST.lock() {
        *lost = None;
    }
}

/// Installs the panic hook once per process. Panics on threads that are not Superflow
/// workers go to the previously installed hook unchanged.
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if ON_WORKER.with(|w| w.get()) {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                LAST_PANIC_LOCATION.with(|slot| *slot.borrow_mut() = location);
                if std::env::var_os("SUPERFLOW_BACKTRACE").is_some() {
                    previous(info);
                }
            } else if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("timely:send-") || n.starts_with("timely:recv-"))
            {
                // A peer process closed its connection (it failed or was killed). The
                // workers notice, stop, and the job reports it; no backtrace needed.
                if let Ok(mut lost) = PEER_LOST.lock() {
                    let message = panic_message(info.payload());
                    lost.get_or_insert(message);
                }
            } else {
                previous(info);
            }
        }));
    });
}

/// Marks the current thread as a worker thread (its panics are reported as job errors).
pub fn mark_worker_thread() {
    ON_WORKER.with(|w| w.set(true));
}

/// Runs `f` with this thread's panics reported as job errors instead of printed (for
/// joining the workers, when timely re-raises a network thread's panic).
pub fn quietly<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    let was = ON_WORKER.with(|w| w.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    ON_WORKER.with(|w| w.set(was));
    result
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(f) = payload.downcast_ref::<OperatorFailure>() {
        f.to_string()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Turns a caught panic payload into the failure of `operator`. A payload that already
/// is an `OperatorFailure` (raised by an inner operator of the same chain) is kept.
pub fn failure_from_panic(
    operator: &str,
    subtask: usize,
    payload: Box<dyn Any + Send>,
) -> OperatorFailure {
    match payload.downcast::<OperatorFailure>() {
        Ok(failure) => *failure,
        Err(payload) => OperatorFailure {
            fatal: false,
            operator: operator.to_string(),
            subtask,
            cause: panic_message(payload.as_ref()),
            location: LAST_PANIC_LOCATION.with(|slot| slot.borrow_mut().take()),
        },
    }
}

/// Runs `f` (user code of `operator`); a panic inside is re-raised as an
/// [`OperatorFailure`] naming the operator.
#[inline]
pub fn guard<R>(operator: &str, subtask: usize, f: impl FnOnce() -> R) -> R {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            panic::resume_unwind(Box::new(failure_from_panic(operator, subtask, payload)))
        }
    }
}

/// Fails the job with an error of the running operator that a restart cannot fix
/// ([`superflow_core::Unrecoverable`]).
pub fn raise_unrecoverable(operator: &str, subtask: usize, cause: impl std::fmt::Display) -> ! {
    panic::resume_unwind(Box::new(OperatorFailure {
        operator: operator.to_string(),
        subtask,
        cause: cause.to_string(),
        location: None,
        fatal: true,
    }))
}

/// Fails the running operator with an error it returned (not a panic).
pub fn raise(operator: &str, subtask: usize, cause: impl std::fmt::Display) -> ! {
    panic::resume_unwind(Box::new(OperatorFailure {
        fatal: false,
        operator: operator.to_string(),
        subtask,
        cause: cause.to_string(),
        location: None,
    }))
}
