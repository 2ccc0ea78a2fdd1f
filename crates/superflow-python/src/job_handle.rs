//! `JobHandle`: what Python's `JobClient` (`execute_async`) asks of a job running on
//! another Python thread: to cancel it, or to take a savepoint. The job's thread hands
//! the handle the job's controller once the job has started, and marks it ended when
//! the job is over, whatever the outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;
use superflow_runtime::JobController;

use crate::JobExecutionError;

/// A running job, for the Python thread that started it in the background.
#[pyclass(frozen, module = "superflow._superflow")]
pub(crate) struct JobHandle {
    controller: OnceLock<JobController>,
    ended: AtomicBool,
}

impl JobHandle {
    pub(crate) fn started(&self, controller: JobController) {
        let _ = self.controller.set(controller);
    }

    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }

    /// The job's controller, once the job has started (a call made before that waits).
    fn controller(&self, py: Python<'_>) -> PyResult<JobController> {
        loop {
            if let Some(controller) = self.controller.get() {
                return Ok(controller.clone());
            }
            if self.ended.load(Ordering::Acquire) {
                return Err(JobExecutionError::new_err("the job is not running"));
            }
            py.detach(|| std::thread::sleep(Duration::from_millis(5)));
        }
    }
}

#[pymethods]
impl JobHandle {
    #[new]
    fn new() -> Self {
        JobHandle {
            controller: OnceLock::new(),
            ended: AtomicBool::new(false),
        }
    }

    /// Stops the job's sources; the job drains its input and ends.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        self.controller(py)?.cancel();
        Ok(())
    }

    /// Takes a savepoint into `dir` (a directory or an object store URL); with `stop`
    /// the job ends there, after the final watermark if `drain`. Returns the savepoint's
    /// path once it is complete.
    #[pyo3(signature = (dir, stop=false, drain=false))]
    fn savepoint(&self, py: Python<'_>, dir: String, stop: bool, drain: bool) -> PyResult<String> {
        let controller = self.controller(py)?;
        let taken = py.detach(|| match (stop, drain) {
            (false, _) => controller.trigger_savepoint(dir),
            (true, false) => controller.stop_with_savepoint(dir),
            (true, true) => controller.drain_with_savepoint(dir),
        });
        taken
            .map(|path| path.display().to_string())
            .map_err(|e| JobExecutionError::new_err(e.to_string()))
    }

    /// Whether the job has ended.
    fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}
