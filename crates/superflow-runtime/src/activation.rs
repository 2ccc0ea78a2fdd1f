//! The scope every operator activation runs in. An embedding runtime uses it to hold a
//! resource for exactly the time the worker runs operators: the Python binding holds
//! the GIL across an activation (many batches), and releases it while the worker parks,
//! so that calls into Python never take the GIL per record.

use std::fmt;
use std::sync::Arc;

/// Code run around each activation of each operator on a worker thread.
pub trait ActivationScope: Send + Sync + 'static {
    /// Runs `activation` (exactly once) inside the scope.
    fn enter(&self, activation: &mut dyn FnMut());
}

impl fmt::Debug for dyn ActivationScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActivationScope")
    }
}

/// Runs `body` in `scope`, or directly when there is none.
#[inline]
pub(crate) fn in_scope(scope: &Option<Arc<dyn ActivationScope>>, body: &mut dyn FnMut()) {
    match scope {
        None => body(),
        Some(scope) => scope.enter(body),
    }
}
