//! Which clones are a checkpoint's copies of state.
//!
//! When a checkpoint passes an operator, its stages copy their state on the data path
//! and a writer thread encodes the copy later, while records of the next epoch already
//! change the state. So the copy must share nothing the data path goes on changing. A
//! Rust value's clone shares nothing mutable; a Python object's clone is a new
//! reference to the same object, which a Python function may change in place. Such a
//! type makes a deep copy when [`copying_for_snapshot`] says a clone is a snapshot's.

use std::cell::Cell;

thread_local! {
    static COPYING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `copy` (an operator's synchronous snapshot) with every clone it makes on this
/// thread marked as a snapshot's copy.
pub fn copy_for_snapshot<R>(copy: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            COPYING.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(COPYING.with(|c| c.replace(true)));
    copy()
}

/// Whether a clone made now is a snapshot's copy (inside [`copy_for_snapshot`]).
#[inline]
pub fn copying_for_snapshot() -> bool {
    COPYING.with(|c| c.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_holds_inside_the_copy_only_and_survives_a_panic() {
        assert!(!copying_for_snapshot());
        assert!(copy_for_snapshot(copying_for_snapshot));
        assert!(!copying_for_snapshot());
        let caught = std::panic::catch_unwind(|| copy_for_snapshot(|| panic!("in a copy")));
        assert!(caught.is_err());
        assert!(!copying_for_snapshot());
        copy_for_snapshot(|| assert!(copy_for_snapshot(copying_for_snapshot)));
    }
}
