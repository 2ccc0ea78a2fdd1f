//! Python functions behind the Rust function traits. Each call runs inside an operator
//! activation, which holds the GIL (see [`crate::GilScope`]), so no call takes it. A
//! Python exception fails the operator with the Python traceback as its cause.

use std::panic;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use superflow_api::{
    BroadcastContext, CoFlatMapFunction, CoMapFunction, Collector, KeySelector,
    KeyedBroadcastProcessFunction, KeyedCoProcessFunction, KeyedProcessContext,
    KeyedProcessFunction, KeyedReadOnlyContext, MapStateDescriptor, OutputTag, ProcessContext,
    ProcessFunction, ProcessJoinContext, ProcessJoinFunction, ReduceFunction, RuntimeContext,
    SendOn, TimeDomain, TimestampAssigner, ValueStateDescriptor, WatermarkGenerator,
    WatermarkOutput,
};
use superflow_core::UserError;
use superflow_runtime::sink::{SinkContext, SinkFunction};
use superflow_runtime::Records;

use crate::record::{PyKey, PyObj};

/// The Python traceback of `err`, as Python prints it.
pub(crate) fn describe(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        let lines = tb.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )?;
        let text: Vec<String> = lines.extract()?;
        Ok(text.concat())
    });
    match formatted {
        Ok(text) => text.trim_end().to_string(),
        Err(_) => err.to_string(),
    }
}

/// Fails the running operator with the Python exception `err`, from a function whose
/// Rust signature has no error (map, reduce, key selectors).
pub(crate) fn raise(py: Python<'_>, err: PyErr) -> ! {
    panic::resume_unwind(Box::new(describe(py, &err)))
}

fn user_error(py: Python<'_>, err: PyErr) -> UserError {
    describe(py, &err).into()
}

/// What a single-input Python function does with its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OneInputKind {
    /// The result is the output.
    Map,
    /// The result is iterated (None = nothing).
    FlatMap,
    /// The record is kept when the result is true.
    Filter,
    /// A `ProcessFunction`: `process_element(value, ctx)` yields outputs.
    Process,
}

/// A side-output marker: `(OutputTag, value)` yielded by a process function.
#[derive(Clone)]
pub(crate) struct SideOutputs {
    /// `superflow.datastream.OutputTag`.
    pub tag_class: PyObj,
}

impl SideOutputs {
    /// Emits the items of `result` (an iterable or None) to `out`, or to a side output.
    pub(crate) fn emit_all(
        &self,
        py: Python<'_>,
        result: Bound<'_, PyAny>,
        out: &mut Collector<PyObj>,
        side: &mut dyn FnMut(String, PyObj),
    ) -> PyResult<()> {
        if result.is_none() {
            return Ok(());
        }
        let tag_class = self.tag_class.bind(py);
        for item in result.try_iter()? {
            let item = item?;
            if let Ok(pair) = item.cast::<PyTuple>() {
                if pair.len() == 2 {
                    let first = pair.get_item(0)?;
                    if first.is_instance(tag_class)? {
                        let id: String = first.getattr(intern!(py, "tag_id"))?.extract()?;
                        side(id, PyObj(pair.get_item(1)?.unbind()));
                        continue;
                    }
                }
            }
            out.collect(PyObj(item.unbind()));
        }
        Ok(())
    }
}

/// `map`, `flat_map`, `filter` and `process` with a Python function. `rich` is the
/// function object when it has `open`/`close` (PyFlink's rich functions).
#[derive(Clone)]
pub(crate) struct PyOneInput {
    pub kind: OneInputKind,
    pub call: PyObj,
    pub rich: Option<PyObj>,
    pub context: Option<PyObj>,
    pub side: SideOutputs,
    pub runtime_context_class: PyObj,
}

/// `ProcessFunction::process_batch` of a Python-calling function: `process_one(py,
/// record, context, collector)` for each record of `batch`, attached to the
/// interpreter once for the batch (attaching per record costs a thread-local lookup
/// each time).
pub(crate) fn each_record_attached<I, O>(
    batch: &mut Records<I>,
    ctx: &mut ProcessContext,
    out: &mut Records<O>,
    send_on: SendOn<'_, O>,
    mut process_one: impl FnMut(
        Python<'_>,
        I,
        &mut ProcessContext,
        &mut Collector<O>,
    ) -> Result<(), UserError>,
) -> Result<(), UserError> {
    Python::attach(|py| {
        ctx.each_record(batch, out, send_on, |value, ctx, out| {
            process_one(py, value, ctx, out)
        })
    })
}

/// Makes the Python `RuntimeContext` a function's `open` receives.
pub(crate) fn python_runtime_context<'py>(
    py: Python<'py>,
    class: &PyObj,
    ctx: &RuntimeContext,
    keyed: bool,
) -> PyResult<Bound<'py, PyAny>> {
    class.bind(py).call1((
        ctx.task_name.as_str(),
        ctx.subtask,
        ctx.parallelism,
        ctx.max_parallelism,
        keyed,
    ))
}

impl PyOneInput {
    /// One record, with the interpreter attached.
    fn process_one(
        &mut self,
        py: Python<'_>,
        value: PyObj,
        ctx: &mut ProcessContext,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        let call = self.call.bind(py);
        let result: PyResult<()> = match self.kind {
            OneInputKind::Map => call
                .call1((value.0,))
                .map(|v| out.collect(PyObj(v.unbind()))),
            OneInputKind::Filter => {
                let keep = call
                    .call1((value.0.clone_ref(py),))
                    .and_then(|v| v.is_truthy());
                keep.map(|keep| {
                    if keep {
                        out.collect(value)
                    }
                })
            }
            OneInputKind::FlatMap => call
                .call1((value.0,))
                .and_then(|r| self.side.emit_all(py, r, out, &mut |_, _| {})),
            OneInputKind::Process => {
                let context = self.context.as_ref().map(|c| c.bind(py).clone());
                match context {
                    None => Ok(()),
                    Some(context) => {
                        let set = context
                            .setattr(intern!(py, "_timestamp"), ctx.timestamp())
                            .and_then(|_| {
                                context.setattr(intern!(py, "_watermark"), ctx.current_watermark())
                            });
                        set.and_then(|_| call.call1((value.0, &context)))
                            .and_then(|r| {
                                self.side.emit_all(py, r, out, &mut |tag, v| {
                                    ctx.output(&OutputTag::<PyObj>::new(tag), v)
                                })
                            })
                    }
                }
            }
        };
        result.map_err(|e| user_error(py, e))
    }
}

impl ProcessFunction<PyObj, PyObj> for PyOneInput {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        Python::attach(|py| {
            if let Some(rich) = &self.rich {
                let context = python_runtime_context(py, &self.runtime_context_class, ctx, false)
                    .map_err(|e| user_error(py, e))?;
                rich.bind(py)
                    .call_method1(intern!(py, "open"), (context,))
                    .map_err(|e| user_error(py, e))?;
            }
            if self.kind == OneInputKind::Process {
                let module = py
                    .import("superflow.datastream.functions")
                    .map_err(|e| user_error(py, e))?;
                let context = module
                    .getattr("_ProcessContext")
                    .and_then(|c| c.call0())
                    .map_err(|e| user_error(py, e))?;
                self.context = Some(PyObj(context.unbind()));
            }
            Ok(())
        })
    }

    fn process_element(
        &mut self,
        value: PyObj,
        ctx: &mut ProcessContext,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        Python::attach(|py| self.process_one(py, value, ctx, out))
    }

    fn process_batch(
        &mut self,
        batch: &mut Records<PyObj>,
        ctx: &mut ProcessContext,
        out: &mut Records<PyObj>,
        send_on: SendOn<'_, PyObj>,
    ) -> Result<(), UserError> {
        each_record_attached(batch, ctx, out, send_on, |py, value, ctx, out| {
            self.process_one(py, value, ctx, out)
        })
    }

    fn close(&mut self) -> Result<(), UserError> {
        Python::attach(|py| match &self.rich {
            Some(rich) => rich
                .bind(py)
                .call_method0(intern!(py, "close"))
                .map(|_| ())
                .map_err(|e| user_error(py, e)),
            None => Ok(()),
        })
    }
}

/// A Python key selector: the key is converted to a [`PyKey`].
pub(crate) struct PyKeySelector {
    pub call: PyObj,
}

impl KeySelector<PyObj, PyKey> for PyKeySelector {
    fn get_key(&self, value: &PyObj) -> PyKey {
        Python::attach(|py| {
            match self
                .call
                .bind(py)
                .call1((value.0.clone_ref(py),))
                .and_then(|k| PyKey::from_py(&k))
            {
                Ok(key) => key,
                Err(e) => raise(py, e),
            }
        })
    }
}

/// A Python timestamp assigner: `extract_timestamp(value, record_timestamp)`.
pub(crate) struct PyTimestampAssigner {
    pub call: PyObj,
}

impl TimestampAssigner<PyObj> for PyTimestampAssigner {
    fn extract_timestamp(&self, element: &PyObj, record_timestamp: Option<i64>) -> i64 {
        Python::attach(|py| {
            match self
                .call
                .bind(py)
                .call1((
                    element.0.clone_ref(py),
                    record_timestamp.unwrap_or(i64::MIN),
                ))
                .and_then(|t| t.extract::<i64>())
            {
                Ok(t) => t,
                Err(e) => raise(py, e),
            }
        })
    }
}

/// A watermark generator written in Python (`WatermarkStrategy.for_generator`): made
/// by its factory once per subtask, on first use (so that an error in it fails the job
/// naming the operator), and handed a `WatermarkOutput` of
/// `superflow.common.watermark_strategy` whose emissions are read back after each call.
pub(crate) struct PyWatermarkGenerator {
    pub factory: PyObj,
    pub made: Option<(PyObj, PyObj)>,
}

impl PyWatermarkGenerator {
    fn call(&mut self, output: &mut WatermarkOutput, method: &str, event: Option<(&PyObj, i64)>) {
        Python::attach(|py| {
            let result = (|| -> PyResult<()> {
                if self.made.is_none() {
                    let generator = self.factory.bind(py).call0()?;
                    let module = py.import("superflow.common.watermark_strategy")?;
                    let out = module.getattr("WatermarkOutput")?.call0()?;
                    self.made = Some((PyObj(generator.unbind()), PyObj(out.unbind())));
                }
                let Some((generator, out)) = &self.made else {
                    return Ok(());
                };
                let (generator, out) = (generator.bind(py), out.bind(py));
                match event {
                    Some((event, timestamp)) => {
                        generator.call_method1(method, (event.0.clone_ref(py), timestamp, out))?
                    }
                    None => generator.call_method1(method, (out,))?,
                };
                let watermark = out.getattr(intern!(py, "_watermark"))?;
                if !watermark.is_none() {
                    output.emit_watermark(watermark.extract::<i64>()?);
                    out.setattr(intern!(py, "_watermark"), py.None())?;
                }
                let idle = out.getattr(intern!(py, "_idle"))?;
                if !idle.is_none() {
                    if idle.extract::<bool>()? {
                        output.mark_idle();
                    } else {
                        output.mark_active();
                    }
                    out.setattr(intern!(py, "_idle"), py.None())?;
                }
                Ok(())
            })();
            if let Err(e) = result {
                raise(py, e)
            }
        })
    }
}

impl WatermarkGenerator<PyObj> for PyWatermarkGenerator {
    fn on_event(&mut self, event: &PyObj, timestamp: i64, output: &mut WatermarkOutput) {
        self.call(output, "on_event", Some((event, timestamp)));
    }
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        self.call(output, "on_periodic_emit", None);
    }
}

/// A Python reduce function.
pub(crate) struct PyReduce {
    pub call: PyObj,
}

impl ReduceFunction<PyObj> for PyReduce {
    fn reduce(&self, accumulated: PyObj, value: PyObj) -> PyObj {
        Python::attach(
            |py| match self.call.bind(py).call1((accumulated.0, value.0)) {
                Ok(v) => PyObj(v.unbind()),
                Err(e) => raise(py, e),
            },
        )
    }
}

/// `connect(..).map(CoMapFunction)` and `.flat_map(CoFlatMapFunction)`.
#[derive(Clone)]
pub(crate) struct PyCoFunction {
    pub first: PyObj,
    pub second: PyObj,
    pub side: SideOutputs,
}

impl PyCoFunction {
    fn call(&self, first: bool, value: PyObj) -> PyObj {
        Python::attach(|py| {
            let f = if first { &self.first } else { &self.second };
            match f.bind(py).call1((value.0,)) {
                Ok(v) => PyObj(v.unbind()),
                Err(e) => raise(py, e),
            }
        })
    }

    fn flat(&self, first: bool, value: PyObj, out: &mut Collector<PyObj>) {
        Python::attach(|py| {
            let f = if first { &self.first } else { &self.second };
            let result = f
                .bind(py)
                .call1((value.0,))
                .and_then(|r| self.side.emit_all(py, r, out, &mut |_, _| {}));
            if let Err(e) = result {
                raise(py, e)
            }
        })
    }
}

impl CoMapFunction<PyObj, PyObj, PyObj> for PyCoFunction {
    fn map1(&mut self, value: PyObj) -> PyObj {
        self.call(true, value)
    }
    fn map2(&mut self, value: PyObj) -> PyObj {
        self.call(false, value)
    }
}

impl CoFlatMapFunction<PyObj, PyObj, PyObj> for PyCoFunction {
    fn flat_map1(&mut self, value: PyObj, out: &mut Collector<PyObj>) {
        self.flat(true, value, out)
    }
    fn flat_map2(&mut self, value: PyObj, out: &mut Collector<PyObj>) {
        self.flat(false, value, out)
    }
}

/// A keyed state a Python function declared in `open`: the Python state object (of
/// `superflow.datastream.state`) and the Rust descriptor its per-key value lives under.
/// Before each call the current key's value is loaded into the Python object; after it,
/// a changed value is written back. List and map states keep a Python list or dict
/// (with a TTL, of stamped elements, which Python expires one by one).
#[derive(Clone)]
struct DeclaredPyState {
    handle: PyObj,
    descriptor: ValueStateDescriptor<PyObj>,
    /// `UpdateType.OnReadAndWrite`: a call that reads the value restarts its time to
    /// live. The value is loaded before every call, read or not, so the engine's state
    /// does not renew on that load; the call's reads renew it afterwards. (List and map
    /// states renew their elements in Python, and ask for this off.)
    renew_on_read: bool,
    /// Whether an expired value may be loaded (`ReturnExpiredIfNotCleanedUp`): such a
    /// load removes it, and a read of it renews nothing.
    returns_expired: bool,
    /// Whether the value loaded for this call was live (with `renew_on_read`, a read
    /// then renews it).
    loaded_live: bool,
    /// Whether the state has a time to live.
    timed: bool,
}

/// A Python `StateTtlConfig` as `_engine()` gives it: (ttl ms, reads renew, expired
/// returned, cleanup on full snapshot, incremental cleanup (entries per access, on every
/// record), compaction cleanup), with the background defaults already applied.
type PyTtl = (u64, bool, bool, bool, Option<(usize, bool)>, Option<u64>);

/// The engine's TTL of a Python state (always renewed on writes only; see
/// [`DeclaredPyState::renew_on_read`]).
fn ttl_config(
    (ms, _, expired_returned, full_snapshot, incremental, compaction): PyTtl,
) -> superflow_api::StateTtlConfig {
    let mut config = superflow_api::StateTtlConfig::new(std::time::Duration::from_millis(ms))
        .disable_cleanup_in_background();
    if expired_returned {
        config = config
            .set_state_visibility(superflow_api::StateVisibility::ReturnExpiredIfNotCleanedUp);
    }
    if full_snapshot {
        config = config.cleanup_full_snapshot();
    }
    if let Some((size, every_record)) = incremental {
        config = config.cleanup_incrementally(size, every_record);
    }
    if let Some(entries) = compaction {
        config = config.cleanup_in_compaction_filter(entries);
    }
    config
}

/// A Python `KeyedProcessFunction`.
#[derive(Clone)]
pub(crate) struct PyKeyedProcess {
    pub function: PyObj,
    pub side: SideOutputs,
    pub runtime_context_class: PyObj,
    context: Option<PyObj>,
    states: Vec<DeclaredPyState>,
    /// The class of the context handed to the function (in `superflow.datastream.functions`).
    context_class: &'static str,
    /// Whether the function runs on a keyed stream (may declare keyed state).
    keyed: bool,
}

impl PyKeyedProcess {
    pub(crate) fn new(function: PyObj, side: SideOutputs, runtime_context_class: PyObj) -> Self {
        PyKeyedProcess {
            function,
            side,
            runtime_context_class,
            context: None,
            states: Vec::new(),
            context_class: "_KeyedContext",
            keyed: true,
        }
    }

    /// Runs `body` (a call into Python) with the current key's context and state loaded,
    /// then stores changed state and applies the timer calls it made.
    fn with_key(&mut self, py: Python<'_>, ctx: &mut KeyedProcessContext<PyKey>) -> PyResult<()> {
        let Some(context) = self.context.as_ref().map(|c| c.bind(py).clone()) else {
            return Ok(());
        };
        let key = ctx.get_current_key().to_py(py)?;
        context.setattr(intern!(py, "_key"), key)?;
        context.setattr(intern!(py, "_timestamp"), ctx.timestamp())?;
        context.setattr(intern!(py, "_watermark"), ctx.current_watermark())?;
        let domain = match ctx.time_domain() {
            Some(TimeDomain::EventTime) => Some("EVENT_TIME"),
            Some(TimeDomain::ProcessingTime) => Some("PROCESSING_TIME"),
            None => None,
        };
        context.setattr(intern!(py, "_time_domain"), domain)?;
        // Python's list and map states stamp and expire their elements by this time.
        let now = if self.states.iter().any(|s| s.timed) {
            superflow_runtime::processing_time_now()
        } else {
            0
        };
        for state in &mut self.states {
            let value = ctx.get_state(&state.descriptor).value();
            if state.renew_on_read {
                // Without expired values returned, a value loaded is live; with them, it
                // was live if it is still there (an expired one went as it was loaded).
                state.loaded_live = value.is_some()
                    && (!state.returns_expired
                        || ctx.get_state(&state.descriptor).value().is_some());
            }
            state
                .handle
                .bind(py)
                .call_method1(intern!(py, "_load"), (value.map(|v| v.0), now))?;
        }
        Ok(())
    }

    fn after_call(&mut self, py: Python<'_>, ctx: &mut KeyedProcessContext<PyKey>) -> PyResult<()> {
        for state in &self.states {
            let handle = state.handle.bind(py);
            let changed = handle.getattr(intern!(py, "_dirty"))?.is_truthy()?;
            let renewed = state.loaded_live && handle.getattr(intern!(py, "_read"))?.is_truthy()?;
            if !changed && !renewed {
                continue;
            }
            let stored = handle.call_method0(intern!(py, "_store"))?;
            let mut slot = ctx.get_state(&state.descriptor);
            if stored.is_none() {
                slot.clear();
            } else {
                slot.update(PyObj(stored.unbind()));
            }
        }
        let Some(context) = self.context.as_ref().map(|c| c.bind(py).clone()) else {
            return Ok(());
        };
        let ops = context.getattr(intern!(py, "_timer_ops"))?;
        let ops = ops.cast::<PyList>()?;
        if ops.is_empty() {
            return Ok(());
        }
        for op in ops.iter() {
            let (what, time): (String, i64) = op.extract()?;
            let mut timers = ctx.timer_service();
            match what.as_str() {
                "register_event_time_timer" => timers.register_event_time_timer(time),
                "register_processing_time_timer" => timers.register_processing_time_timer(time),
                "delete_event_time_timer" => timers.delete_event_time_timer(time),
                _ => timers.delete_processing_time_timer(time),
            }
        }
        ops.call_method0("clear")?;
        Ok(())
    }
}

impl PyKeyedProcess {
    /// Calls `method(first, ctx)` of the function with the current key's context and
    /// state, emits what it yields, then stores changed state and applies timer calls.
    fn call(
        &mut self,
        ctx: &mut KeyedProcessContext<PyKey>,
        out: &mut Collector<PyObj>,
        method: &str,
        first: impl FnOnce(Python<'_>) -> Bound<'_, PyAny>,
    ) -> Result<(), UserError> {
        Python::attach(|py| {
            let result: PyResult<()> = (|| {
                self.with_key(py, ctx)?;
                let context = self.context.as_ref().map(|c| c.bind(py).clone());
                let result = self
                    .function
                    .bind(py)
                    .call_method1(method, (first(py), context))?;
                self.side.emit_all(py, result, out, &mut |tag, v| {
                    ctx.output(&OutputTag::<PyObj>::new(tag), v)
                })?;
                self.after_call(py, ctx)
            })();
            result.map_err(|e| user_error(py, e))
        })
    }
}

impl PyKeyedProcess {
    /// Runs the Python function's `open` and reads the state it declared.
    fn open_python(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        Python::attach(|py| {
            let opened: PyResult<()> = (|| {
                let runtime =
                    python_runtime_context(py, &self.runtime_context_class, ctx, self.keyed)?;
                let function = self.function.bind(py);
                function.call_method1(intern!(py, "open"), (&runtime,))?;
                let module = py.import("superflow.datastream.functions")?;
                self.context = Some(PyObj(module.getattr(self.context_class)?.call0()?.unbind()));
                let declared = runtime.getattr("_states")?;
                for item in declared.try_iter()? {
                    let (name, handle, ttl): (String, Bound<'_, PyAny>, Option<PyTtl>) =
                        item?.extract()?;
                    let mut descriptor = ValueStateDescriptor::<PyObj>::new(name);
                    let renew_on_read = ttl.is_some_and(|ttl| ttl.1);
                    let returns_expired = ttl.is_some_and(|ttl| ttl.2);
                    if let Some(ttl) = ttl {
                        descriptor = descriptor.enable_time_to_live(ttl_config(ttl));
                    }
                    self.states.push(DeclaredPyState {
                        handle: PyObj(handle.unbind()),
                        descriptor,
                        renew_on_read,
                        returns_expired,
                        loaded_live: false,
                        timed: ttl.is_some(),
                    });
                }
                Ok(())
            })();
            opened.map_err(|e| user_error(py, e))
        })
    }
}

impl PyKeyedProcess {
    /// Calls `on_timer(timestamp, ctx)`.
    fn fire(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedProcessContext<PyKey>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        self.call(ctx, out, "on_timer", |py| {
            pyo3::types::PyInt::new(py, timestamp).into_any()
        })
    }
}

impl KeyedProcessFunction<PyKey, PyObj, PyObj> for PyKeyedProcess {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.open_python(ctx)
    }

    fn process_element(
        &mut self,
        value: PyObj,
        ctx: &mut KeyedProcessContext<PyKey>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        self.call(ctx, out, "process_element", |py| value.0.into_bound(py))
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedProcessContext<PyKey>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        self.fire(timestamp, ctx, out)
    }

    fn close(&mut self) -> Result<(), UserError> {
        Python::attach(|py| {
            self.function
                .bind(py)
                .call_method0(intern!(py, "close"))
                .map(|_| ())
                .map_err(|e| user_error(py, e))
        })
    }
}

impl KeyedCoProcessFunction<PyKey, PyObj, PyObj, PyObj> for PyKeyedProcess {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.open_python(ctx)
    }

    fn close(&mut self) -> Result<(), UserError> {
        KeyedProcessFunction::close(self)
    }

    fn process_element1(
        &mut self,
        value: PyObj,
        ctx: &mut KeyedProcessContext<PyKey>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        self.call(ctx, out, "process_element1", |py| value.0.into_bound(py))
    }

    fn process_element2(
        &mut self,
        value: PyObj,
        ctx: &mut KeyedProcessContext<PyKey>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        self.call(ctx, out, "process_element2", |py| value.0.into_bound(py))
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedProcessContext<PyKey>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        self.fire(timestamp, ctx, out)
    }
}

/// Where the engine has no side outputs, a record yielded for one is an error rather
/// than lost.
fn no_side_outputs(tags: &[String], what: &str) -> PyResult<()> {
    match tags.first() {
        None => Ok(()),
        Some(tag) => Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
            "{what} yielded a record for side output '{tag}': side outputs are not available there (they are in process functions' process_element)"
        ))),
    }
}

/// A Python `KeyedBroadcastProcessFunction` (on a keyed stream) or
/// `BroadcastProcessFunction` (on a plain one). Each broadcast state descriptor's
/// contents are one Python dict, held in the engine's broadcast state under the key `()`
/// (so checkpoints pickle it, and every subtask restores it); the broadcast side changes
/// the dicts in place, the other side sees them through read-only views. The keyed side
/// runs as a keyed process function (key, keyed state, timers, side outputs).
#[derive(Clone)]
pub(crate) struct PyBroadcastProcess {
    keyed: PyKeyedProcess,
    names: Vec<String>,
    /// The broadcast dicts by name, as the last call saw them (rebuilt after a
    /// broadcast record, which may create them, and after a restore).
    views: Option<PyObj>,
}

/// The engine's broadcast state of descriptor `name`: one entry, the Python dict.
fn broadcast_descriptor(name: &str) -> MapStateDescriptor<(), PyObj> {
    MapStateDescriptor::new(name)
}

impl PyBroadcastProcess {
    /// Runs `process`'s function with broadcast states `names`, on a keyed stream or not.
    pub(crate) fn new(mut process: PyKeyedProcess, names: Vec<String>, keyed: bool) -> Self {
        process.keyed = keyed;
        process.context_class = if keyed {
            "_KeyedBroadcastContext"
        } else {
            "_ReadOnlyBroadcastContext"
        };
        PyBroadcastProcess {
            keyed: process,
            names,
            views: None,
        }
    }

    /// Hands the function's context the broadcast dicts, read only.
    fn show_views<K>(
        &mut self,
        py: Python<'_>,
        ctx: &KeyedReadOnlyContext<'_, K, (), PyObj>,
    ) -> PyResult<()> {
        let Some(context) = self.keyed.context.as_ref().map(|c| c.bind(py).clone()) else {
            return Ok(());
        };
        if self.views.is_none() {
            let views = pyo3::types::PyDict::new(py);
            for name in &self.names {
                match ctx
                    .get_broadcast_state(&broadcast_descriptor(name))
                    .get(&())
                {
                    Some(dict) => views.set_item(name, dict.bind(py))?,
                    None => views.set_item(name, pyo3::types::PyDict::new(py))?,
                }
            }
            self.views = Some(PyObj(views.into_any().unbind()));
        }
        if let Some(views) = &self.views {
            context.setattr(intern!(py, "_broadcast"), views.bind(py))?;
        }
        Ok(())
    }

    fn process_broadcast(
        &mut self,
        value: PyObj,
        ctx: &mut BroadcastContext<'_, (), PyObj>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        // A changed dict is the same object; a new one appears in the views next time.
        self.views = None;
        Python::attach(|py| {
            let result: PyResult<()> = (|| {
                let views = pyo3::types::PyDict::new(py);
                for name in &self.names {
                    let dict = ctx
                        .get_broadcast_state(&broadcast_descriptor(name))
                        .entry(())
                        .or_insert_with(|| PyObj(pyo3::types::PyDict::new(py).into_any().unbind()));
                    views.set_item(name, dict.bind(py))?;
                }
                let module = py.import("superflow.datastream.functions")?;
                let context = module.getattr("_BroadcastContext")?.call1((
                    views,
                    ctx.timestamp(),
                    ctx.current_watermark(),
                ))?;
                let result = self
                    .keyed
                    .function
                    .bind(py)
                    .call_method1(intern!(py, "process_broadcast_element"), (value.0, context))?;
                let mut tags = Vec::new();
                self.keyed
                    .side
                    .emit_all(py, result, out, &mut |tag, _| tags.push(tag))?;
                no_side_outputs(&tags, "process_broadcast_element")
            })();
            result.map_err(|e| user_error(py, e))
        })
    }
}

impl KeyedBroadcastProcessFunction<PyKey, PyObj, PyObj, PyObj, (), PyObj> for PyBroadcastProcess {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.keyed.open_python(ctx)
    }

    fn process_element(
        &mut self,
        value: PyObj,
        ctx: &mut KeyedReadOnlyContext<'_, PyKey, (), PyObj>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        Python::attach(|py| self.show_views(py, ctx).map_err(|e| user_error(py, e)))?;
        self.keyed
            .call(ctx, out, "process_element", |py| value.0.into_bound(py))
    }

    fn process_broadcast_element(
        &mut self,
        value: PyObj,
        ctx: &mut BroadcastContext<'_, (), PyObj>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        self.process_broadcast(value, ctx, out)
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedReadOnlyContext<'_, PyKey, (), PyObj>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        Python::attach(|py| self.show_views(py, ctx).map_err(|e| user_error(py, e)))?;
        self.keyed.fire(timestamp, ctx, out)
    }
}

impl KeyedBroadcastProcessFunction<(), PyObj, PyObj, PyObj, (), PyObj> for PyBroadcastProcess {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.keyed.open_python(ctx)
    }

    fn process_element(
        &mut self,
        value: PyObj,
        ctx: &mut KeyedReadOnlyContext<'_, (), (), PyObj>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        Python::attach(|py| {
            let result: PyResult<()> = (|| {
                self.show_views(py, ctx)?;
                let Some(context) = self.keyed.context.as_ref().map(|c| c.bind(py).clone()) else {
                    return Ok(());
                };
                context.setattr(intern!(py, "_timestamp"), ctx.timestamp())?;
                context.setattr(intern!(py, "_watermark"), ctx.current_watermark())?;
                let result = self
                    .keyed
                    .function
                    .bind(py)
                    .call_method1(intern!(py, "process_element"), (value.0, context))?;
                self.keyed.side.emit_all(py, result, out, &mut |tag, v| {
                    ctx.output(&OutputTag::<PyObj>::new(tag), v)
                })
            })();
            result.map_err(|e| user_error(py, e))
        })
    }

    fn process_broadcast_element(
        &mut self,
        value: PyObj,
        ctx: &mut BroadcastContext<'_, (), PyObj>,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        self.process_broadcast(value, ctx, out)
    }
}

/// A Python `ProcessJoinFunction` of an interval join: `process_element(left, right,
/// ctx)` yields the outputs.
#[derive(Clone)]
pub(crate) struct PyJoinProcess {
    pub function: PyObj,
    pub context_class: PyObj,
    pub side: SideOutputs,
}

impl ProcessJoinFunction<PyObj, PyObj, PyObj> for PyJoinProcess {
    fn process_element(
        &mut self,
        left: &PyObj,
        right: &PyObj,
        ctx: &ProcessJoinContext,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        Python::attach(|py| {
            let result: PyResult<()> = (|| {
                let context = self
                    .context_class
                    .bind(py)
                    .call1((ctx.left_timestamp, ctx.right_timestamp))?;
                let result = self.function.bind(py).call_method1(
                    intern!(py, "process_element"),
                    (left.clone_ref(py).0, right.clone_ref(py).0, context),
                )?;
                let mut tags = Vec::new();
                self.side
                    .emit_all(py, result, out, &mut |tag, _| tags.push(tag))?;
                no_side_outputs(&tags, "a ProcessJoinFunction")
            })();
            result.map_err(|e| user_error(py, e))
        })
    }
}

/// A sink writing each record with a Python function (`add_sink(callable)` or a
/// `SinkFunction` object's `invoke`).
#[derive(Clone)]
pub(crate) struct PySink {
    pub call: PyObj,
}

impl SinkFunction<PyObj> for PySink {
    fn open(&mut self, _ctx: &SinkContext) -> Result<(), UserError> {
        Ok(())
    }
    fn invoke(&mut self, value: PyObj) -> Result<(), UserError> {
        self.invoke_batch(&mut vec![value])
    }
    fn invoke_batch(&mut self, values: &mut Vec<PyObj>) -> Result<(), UserError> {
        Python::attach(|py| {
            let call = self.call.bind(py);
            for value in values.drain(..) {
                call.call1((value.0,)).map_err(|e| user_error(py, e))?;
            }
            Ok(())
        })
    }
}
