//! Turns a Python job plan into a Rust job and runs it. The plan is a list of nodes
//! (dicts made by `superflow.datastream`), each naming its operation, its inputs (the
//! ids of earlier nodes) and its Python functions. Nodes are read while the GIL is held;
//! the job is built and run with it released, and the worker takes it per activation.

mod operations;
mod sinks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use superflow_api::{DataStream, StreamExecutionEnvironment};
use superflow_core::JobError;
use superflow_runtime::checkpoint::CheckpointStatus;
use superflow_runtime::{FlowControl, JobClient, JobExecutionResult};

use crate::functions::SideOutputs;
use crate::job_handle::JobHandle;
use crate::record::PyObj;
use crate::settings::PlanSettings;
use crate::window::{WindowClasses, WindowSpec};
use crate::JobExecutionError;

use operations::PlanBuilder;
use sinks::{BenchTotals, Collected};

/// One node of the plan, read out of its Python dict.
pub(super) struct PlanNode {
    pub(super) id: usize,
    pub(super) op: String,
    pub(super) inputs: Vec<usize>,
    pub(super) function: Option<PyObj>,
    pub(super) function2: Option<PyObj>,
    pub(super) rich: Option<PyObj>,
    pub(super) elements: Vec<PyObj>,
    pub(super) text: Option<String>,
    pub(super) range: (i64, i64),
    /// Watermarks: the strategy's kind, bound and idleness (ms).
    pub(super) watermarks: (Option<String>, Option<u64>, Option<u64>),
    pub(super) name: Option<String>,
    pub(super) uid: Option<String>,
    pub(super) parallelism: Option<usize>,
    /// `set_max_parallelism()`: the operator's own number of key groups.
    pub(super) max_parallelism: Option<usize>,
    /// `disable` (`disable_chaining()`) or `new_chain` (`start_new_chain()`).
    pub(super) chaining: Option<String>,
    pub(super) window: Option<WindowSpec>,
    /// The key selectors of a keyed co-process node.
    pub(super) keys: (Option<PyObj>, Option<PyObj>),
    /// Whether an interval join's lower and upper bounds are exclusive.
    pub(super) bounds: (bool, bool),
    /// The broadcast state descriptors' names of a broadcast process node.
    pub(super) names: Vec<String>,
    /// A file sink's bucket assigner: `["date_time", format, time zone or None]` or
    /// `["base_path"]`.
    pub(super) bucket: Vec<Option<String>>,
    /// The conversion of the node's records to their declared type, when that type
    /// changes values (`Types.FLOAT()`).
    pub(super) declared: Option<PyObj>,
    /// The charset of a text file source.
    pub(super) charset: Option<String>,
}

pub(crate) fn item<'py, T: FromPyObjectOwned<'py>>(
    dict: &Bound<'py, PyDict>,
    key: &str,
) -> PyResult<Option<T>> {
    match dict.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(v.extract().map_err(Into::into)?)),
        _ => Ok(None),
    }
}

impl PlanNode {
    fn read(node: &Bound<'_, PyAny>) -> PyResult<PlanNode> {
        let dict = node.cast::<PyDict>()?;
        let elements = match dict.get_item("elements")? {
            Some(list) if !list.is_none() => list
                .try_iter()?
                .map(|v| v.map(|v| PyObj(v.unbind())))
                .collect::<PyResult<Vec<_>>>()?,
            _ => Vec::new(),
        };
        Ok(PlanNode {
            id: item(dict, "id")?.unwrap_or(0),
            op: item(dict, "op")?.unwrap_or_default(),
            inputs: item(dict, "inputs")?.unwrap_or_default(),
            function: item::<Py<PyAny>>(dict, "fn")?.map(PyObj),
            function2: item::<Py<PyAny>>(dict, "fn2")?.map(PyObj),
            rich: item::<Py<PyAny>>(dict, "rich")?.map(PyObj),
            elements,
            text: item(dict, "text")?,
            range: (
                item(dict, "start")?.unwrap_or(0),
                item(dict, "end")?.unwrap_or(0),
            ),
            watermarks: (
                item(dict, "strategy")?,
                item(dict, "bound_ms")?,
                item(dict, "idle_ms")?,
            ),
            window: match item::<String>(dict, "assigner")? {
                None => None,
                Some(assigner) => Some(WindowSpec {
                    assigner,
                    size_ms: item(dict, "size_ms")?.unwrap_or(0),
                    slide_ms: item(dict, "slide_ms")?.unwrap_or(0),
                    offset_ms: item(dict, "offset_ms")?.unwrap_or(0),
                    lateness_ms: item(dict, "lateness_ms")?.unwrap_or(0),
                    late_tag: item(dict, "late_tag")?,
                    kind: item(dict, "window_kind")?.unwrap_or_default(),
                    function: item::<Py<PyAny>>(dict, "fn")?.map(PyObj),
                    window_function: item::<Py<PyAny>>(dict, "fn2")?.map(PyObj),
                    apply_style: item(dict, "apply_style")?.unwrap_or(false),
                    trigger: item::<Py<PyAny>>(dict, "trigger")?.map(PyObj),
                    evictor: item::<Py<PyAny>>(dict, "evictor")?.map(PyObj),
                    gap: item::<Py<PyAny>>(dict, "gap")?.map(PyObj),
                }),
            },
            keys: (
                item::<Py<PyAny>>(dict, "key1")?.map(PyObj),
                item::<Py<PyAny>>(dict, "key2")?.map(PyObj),
            ),
            bounds: (
                item(dict, "lower_exclusive")?.unwrap_or(false),
                item(dict, "upper_exclusive")?.unwrap_or(false),
            ),
            names: item(dict, "names")?.unwrap_or_default(),
            bucket: item(dict, "bucket")?.unwrap_or_default(),
            declared: item::<Py<PyAny>>(dict, "declared")?.map(PyObj),
            charset: item(dict, "charset")?,
            name: item(dict, "name")?,
            uid: item(dict, "uid")?,
            parallelism: item(dict, "parallelism")?,
            max_parallelism: item(dict, "max_parallelism")?,
            chaining: item(dict, "chaining")?,
        })
    }
}

impl PlanNode {
    /// The node as errors name it: `node 3 (map)`.
    fn describe(&self) -> String {
        format!("node {} ({})", self.id, self.op)
    }
}

/// Why a plan cannot become a Rust job. `superflow.datastream` makes plans without
/// these; each names the node, for a plan made otherwise (or a bug).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlanError {
    /// No builder is registered for the operation.
    #[error("unknown plan operation '{0}'")]
    UnknownOperation(String),
    /// The node names fewer inputs than its operation reads.
    #[error("{node} lacks input {index}")]
    MissingInput {
        /// The node.
        node: String,
        /// The input it lacks.
        index: usize,
    },
    /// The node reads the output of a sink.
    #[error("{0} reads a sink")]
    ReadsSink(String),
    /// The operation needs a keyed input.
    #[error("{0} needs a keyed stream (key_by first)")]
    NotKeyed(String),
    /// The node lacks something its operation needs.
    #[error("{0} has no {1}")]
    Missing(String, &'static str),
    /// The node's settings are not valid for its operation.
    #[error("{0}: {1}")]
    Invalid(String, String),
    /// The node's windows are not valid.
    #[error("{0}: {1}")]
    Window(String, crate::window::WindowSpecError),
}

/// Python classes the operators need, looked up once.
pub(super) struct PythonClasses {
    pub(super) side: SideOutputs,
    pub(super) runtime_context: PyObj,
    pub(super) join_context: PyObj,
    pub(super) windows: WindowClasses,
}

/// What a plan node became.
pub(super) enum Built {
    Stream(DataStream<PyObj>),
    /// A Rust source and the map that makes its records Python objects, each already
    /// named and configured.
    Converted(DataStream<PyObj>),
    Keyed(DataStream<PyObj>, PyObj),
    Sink,
}

/// Waits for the job with the GIL released, looking at Python's signals every few
/// milliseconds: Ctrl-C (KeyboardInterrupt) cancels the job, waits for it to drain,
/// and is raised.
fn wait_for(
    py: Python<'_>,
    client: JobClient,
    watch: Option<&Bound<'_, PyAny>>,
) -> PyResult<JobExecutionResult> {
    loop {
        if finished_within_50_ms(py, &client) {
            break;
        }
        if let Err(interrupt) = py.check_signals() {
            // Cancel, and give the job the grace period to stop: a function stuck on a
            // record would hold it forever. Ctrl-C again ends the process at once.
            client.cancel();
            let grace = superflow_runtime::control::cancel_grace_period();
            eprintln!(
                "KeyboardInterrupt: cancelling the job (Ctrl-C again, or {} s without it stopping, ends the process)",
                grace.as_secs_f64()
            );
            let deadline = std::time::Instant::now() + grace;
            loop {
                if finished_within_50_ms(py, &client) {
                    let _ = py.detach(move || client.wait());
                    return Err(interrupt);
                }
                if py.check_signals().is_err() {
                    superflow_runtime::control::give_up_on_cancelled_job("Ctrl-C again");
                }
                if std::time::Instant::now() >= deadline {
                    superflow_runtime::control::give_up_on_cancelled_job(&format!(
                        "{} s after Ctrl-C",
                        grace.as_secs_f64()
                    ));
                }
            }
        }
        // The supervisor of the job's other processes says when the job cannot go on.
        let verdict = match watch {
            Some(watch) => watch.call0()?,
            None => continue,
        };
        if !verdict.is_none() {
            client.cancel();
            let _ = py.detach(move || client.wait());
            return Err(JobExecutionError::new_err(verdict.str()?.to_string()));
        }
    }
    py.detach(move || client.wait()).map_err(|e| job_error(&e))
}

/// Waits up to 50 ms, with the GIL released, for the job to finish; says whether it did.
fn finished_within_50_ms(py: Python<'_>, client: &JobClient) -> bool {
    py.detach(|| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
        while !client.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        client.is_finished()
    })
}

fn job_error(e: &JobError) -> PyErr {
    JobExecutionError::new_err(e.to_string())
}

/// Runs a plan. `settings` holds `parallelism`, and optionally `max_parallelism` and
/// `cluster` (`(process_id, [addresses])`). Returns a dict with `net_runtime_ms`,
/// `collected` (node id to its records, of this process) and `operators`. `watch`, if
/// given, is called every 50 ms while the job runs; a result other than `None` cancels
/// the job and is raised as its error. `handle`, if given, learns of the job's start and
/// end, so that another Python thread can cancel it or take savepoints.
#[pyfunction]
#[pyo3(signature = (job_name, plan, settings, watch=None, handle=None))]
pub(crate) fn execute<'py>(
    py: Python<'py>,
    job_name: String,
    plan: &Bound<'py, PyList>,
    settings: &Bound<'py, PyDict>,
    watch: Option<Bound<'py, PyAny>>,
    handle: Option<Bound<'py, JobHandle>>,
) -> PyResult<Bound<'py, PyDict>> {
    /// Marks the handle ended however `execute` returns.
    struct Ends<'a>(Option<&'a JobHandle>);
    impl Drop for Ends<'_> {
        fn drop(&mut self) {
            if let Some(handle) = self.0 {
                handle.end();
            }
        }
    }
    let handle = handle.as_ref().map(|h| h.get());
    let _ends = Ends(handle);
    let nodes = plan
        .iter()
        .map(|n| PlanNode::read(&n))
        .collect::<PyResult<Vec<_>>>()?;
    let settings = PlanSettings::read(settings)?;
    let functions = py.import("superflow.datastream.functions")?;
    let classes = PythonClasses {
        side: SideOutputs {
            tag_class: PyObj(
                py.import("superflow.datastream.output_tag")?
                    .getattr("OutputTag")?
                    .unbind(),
            ),
        },
        runtime_context: PyObj(functions.getattr("RuntimeContext")?.unbind()),
        join_context: PyObj(functions.getattr("_JoinContext")?.unbind()),
        windows: {
            let module = py.import("superflow.datastream.window")?;
            WindowClasses {
                time_window: PyObj(module.getattr("TimeWindow")?.unbind()),
                global_window: PyObj(module.getattr("GlobalWindow")?.unbind()),
                count_window: PyObj(module.getattr("CountWindow")?.unbind()),
                context: PyObj(module.getattr("_WindowContext")?.unbind()),
                trigger_context: PyObj(module.getattr("_TriggerContext")?.unbind()),
            }
        },
    };
    let started = py.detach(move || -> Result<_, PyErr> {
        let env = StreamExecutionEnvironment::get_execution_environment();
        settings.apply(&env);
        env.set_activation_scope(crate::gil_scope());
        // Ctrl-C stays Python's: the wait below turns it into a cancellation.
        env.set_ctrl_c_cancels(false);
        // A Python function costs a hundred times a Rust one, so a source hands one batch
        // per activation: checkpoints, watermarks and cancellation then wait for a
        // thousand records, not sixteen thousand.
        env.set_flow_control(FlowControl {
            batches_per_activation: 1,
            max_epoch_records: 4 * 1024,
            ..FlowControl::default()
        });
        let totals = Arc::new(Mutex::new(BenchTotals::default()));
        let mut builder = PlanBuilder::new(&env, &classes, &totals);
        for node in &nodes {
            builder
                .add(node)
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        }
        let collected = builder.collected();
        let client = env.execute_async(&job_name).map_err(|e| job_error(&e))?;
        Ok((client, collected, totals))
    });
    let (client, collected, totals) = started?;
    if let Some(handle) = handle {
        handle.started(client.controller());
    }
    let result = wait_for(py, client, watch.as_ref())?;
    let collected = std::mem::take(
        &mut *collected
            .lock()
            .map_err(|_| JobExecutionError::new_err("collect sink poisoned"))?,
    );
    let bench = totals
        .lock()
        .map(|b| (b.records, b.sum, b.keyed_max_sum))
        .map_err(|_| JobExecutionError::new_err("bench sink poisoned"))?;
    let out = PyDict::new(py);
    out.set_item("job_name", &result.job_name)?;
    out.set_item("net_runtime_ms", result.net_runtime.as_secs_f64() * 1000.0)?;
    let lists = PyDict::new(py);
    for (id, records) in collected {
        let list = PyList::new(py, records.into_iter().map(|r| r.0))?;
        lists.set_item(id, list)?;
    }
    out.set_item("collected", lists)?;
    out.set_item("bench", bench)?;
    out.set_item("checkpoints", checkpoint_stats(py, &result)?)?;
    out.set_item("restarts", result.restarts)?;
    out.set_item("restart_causes", &result.restart_causes)?;
    out.set_item(
        "restored_from",
        result
            .restored_from
            .as_ref()
            .map(|p| p.display().to_string()),
    )?;
    let operators = PyList::empty(py);
    for op in &result.operators {
        let d = PyDict::new(py);
        d.set_item("name", &op.name)?;
        d.set_item("parallelism", op.parallelism)?;
        d.set_item("records_in", op.records_in)?;
        d.set_item("records_out", op.records_out)?;
        operators.append(d)?;
    }
    out.set_item("operators", operators)?;
    Ok(out)
}

/// The statistics of every checkpoint of a job (`CheckpointStats`), as Python dicts with
/// durations in milliseconds.
fn checkpoint_stats<'py>(
    py: Python<'py>,
    result: &JobExecutionResult,
) -> PyResult<Bound<'py, PyList>> {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let list = PyList::empty(py);
    for checkpoint in &result.checkpoints {
        let d = PyDict::new(py);
        d.set_item("id", checkpoint.id)?;
        d.set_item("savepoint", checkpoint.savepoint)?;
        match &checkpoint.status {
            CheckpointStatus::Completed => d.set_item("status", "COMPLETED")?,
            CheckpointStatus::Failed(reason) => {
                d.set_item("status", "FAILED")?;
                d.set_item("failure", reason)?;
            }
        }
        d.set_item("trigger_timestamp_ms", checkpoint.trigger_timestamp_ms)?;
        d.set_item("duration_ms", ms(checkpoint.duration))?;
        d.set_item("size_bytes", checkpoint.size_bytes)?;
        d.set_item("path", checkpoint.path.display().to_string())?;
        let operators = PyList::empty(py);
        for op in &checkpoint.operators {
            let o = PyDict::new(py);
            o.set_item("operator", &op.operator)?;
            o.set_item("parts", op.parts)?;
            o.set_item("size_bytes", op.size_bytes)?;
            o.set_item("sync_duration_ms", ms(op.sync_duration))?;
            o.set_item("async_duration_ms", ms(op.async_duration))?;
            o.set_item("alignment_duration_ms", ms(op.alignment_duration))?;
            operators.append(o)?;
        }
        d.set_item("operators", operators)?;
        list.append(d)?;
    }
    Ok(list)
}
