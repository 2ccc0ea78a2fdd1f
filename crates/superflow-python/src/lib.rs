//! `superflow._superflow`: the native half of the Python package. The Python half
//! (`python/superflow`) records a job as a plan, a list of plain nodes; [`execute`]
//! turns the plan into a Rust job of Python records ([`PyObj`]) and runs it on this
//! process's one worker thread, holding the GIL across each operator activation.
//! Parallelism above one runs as several processes, started by the Python half; this
//! module runs one of them when given a cluster.

mod functions;
mod job_handle;
mod plan;
mod record;
mod settings;
mod window;

use std::sync::Arc;

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use superflow_runtime::ActivationScope;

pub use record::{PyKey, PyObj};

create_exception!(
    _superflow,
    JobExecutionError,
    PyRuntimeError,
    "A job failed: a user function raised, or the engine could not run it."
);

/// Holds the GIL for the length of an operator activation, so that the Python calls
/// of a whole batch take it once; the worker releases it when it parks.
pub(crate) struct GilScope;

impl ActivationScope for GilScope {
    fn enter(&self, activation: &mut dyn FnMut()) {
        Python::attach(|_| activation())
    }
}

pub(crate) fn gil_scope() -> Arc<dyn ActivationScope> {
    Arc::new(GilScope)
}

/// The native module.
#[pymodule]
fn _superflow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(plan::execute, m)?)?;
    m.add_class::<job_handle::JobHandle>()?;
    m.add("JobExecutionError", m.py().get_type::<JobExecutionError>())?;
    Ok(())
}
