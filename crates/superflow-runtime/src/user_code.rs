//! Which operator each worker thread is running user code of, so that a job that does
//! not stop when it is cancelled (a user function stuck on a record) can be named when
//! the process gives up on it.

use std::sync::{Arc, Mutex, Weak};

/// The operator and subtask a thread is in, if any.
type Slot = Mutex<Option<(Arc<str>, usize)>>;

thread_local! {
    static SLOT: Arc<Slot> = {
        let slot = Arc::new(Slot::default());
        if let Ok(mut all) = ALL.lock() {
            all.retain(|s| s.strong_count() > 0);
            all.push(Arc::downgrade(&slot));
        }
        slot
    };
}

/// Every worker thread's slot.
static ALL: Mutex<Vec<Weak<Slot>>> = Mutex::new(Vec::new());

/// Marks this thread as running user code of `operator` until dropped (stages nest:
/// the one before is restored).
pub(crate) struct InUserCode {
    before: Option<(Arc<str>, usize)>,
}

/// Marks this thread as running user code of `operator`'s subtask `subtask`.
#[inline]
pub(crate) fn enter(operator: &Arc<str>, subtask: usize) -> InUserCode {
    let before = SLOT.with(|slot| {
        slot.lock()
            .ok()
            .and_then(|mut s| s.replace((Arc::clone(operator), subtask)))
    });
    InUserCode { before }
}

impl Drop for InUserCode {
    fn drop(&mut self) {
        let before = self.before.take();
        SLOT.with(|slot| {
            if let Ok(mut s) = slot.lock() {
                *s = before;
            }
        });
    }
}

/// The operators whose user code some thread is running now, as `'name' (subtask n)`.
pub fn running_now() -> Vec<String> {
    let slots: Vec<Arc<Slot>> = ALL
        .lock()
        .map(|all| all.iter().filter_map(Weak::upgrade).collect())
        .unwrap_or_default();
    let mut running: Vec<String> = slots
        .iter()
        .filter_map(|slot| slot.lock().ok().and_then(|s| s.clone()))
        .map(|(name, subtask)| format!("'{name}' (subtask {})", subtask + 1))
        .collect();
    running.sort();
    running.dedup();
    running
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_in_user_code_is_named_until_it_leaves() {
        let (outer, inner): (Arc<str>, Arc<str>) = (Arc::from("Map"), Arc::from("Sink"));
        let (entered, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let worker = std::thread::spawn(move || {
            let _map = enter(&outer, 0);
            {
                let _sink = enter(&inner, 0);
            }
            let _ = entered.0.send(());
            let _ = release.1.recv();
        });
        let _ = entered.1.recv();
        assert!(running_now().contains(&"'Map' (subtask 1)".to_string()));
        assert!(!running_now().iter().any(|r| r.starts_with("'Sink'")));
        let _ = release.0.send(());
        let _ = worker.join();
        assert!(!running_now().iter().any(|r| r.starts_with("'Map'")));
    }
}
