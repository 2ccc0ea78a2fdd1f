//! Windows of a keyed stream with Python functions: the assigner named by the plan
//! node, its trigger (one of Flink's built-in triggers, run in Rust, or a Python
//! `Trigger`) and evictor, then `reduce`, `aggregate` (each optionally with a window
//! function) or a `ProcessWindowFunction` / `WindowFunction` over all of a window's
//! records.

use std::time::Duration;

use pyo3::call::PyCallArgs as IntoPyObjectArgs;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyString, PyTuple};
use superflow_api::join::{TwoInputKeyed, TwoInputWindowed};
use superflow_api::window::{
    AggregateFunction, ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger, CountEvictor,
    CountTrigger, CountWindow, CountWindows, EventTimeSessionWindows, EventTimeTrigger, Evictor,
    EvictorContext, GlobalWindow, GlobalWindows, NeverTrigger, NoEvictor, ProcessWindowContext,
    ProcessWindowFunction, ProcessingTimeSessionWindows, ProcessingTimeTrigger, PurgingTrigger,
    SessionGapExtractor, SlidingEventTimeWindows, SlidingProcessingTimeWindows, TimeEvictor,
    TimeWindow, Trigger, TriggerContext, TriggerResult, TriggerValue, TumblingEventTimeWindows,
    TumblingProcessingTimeWindows, Window, WindowAssigner, WindowedStream,
};
use superflow_api::{CoGroupFunction, Collector, DataStream, KeyedStream, OutputTag, TaggedUnion};
use superflow_core::UserError;

use crate::functions::{raise, PyKeySelector, PyReduce, SideOutputs};
use crate::plan::item;
use crate::record::{pickle_dumps, pickle_loads, PyKey, PyObj};

/// A window as the Python object `superflow.datastream.window` defines for it.
pub(crate) trait PyWindowValue: Window {
    fn to_py<'py>(&self, py: Python<'py>, classes: &WindowClasses) -> PyResult<Bound<'py, PyAny>>;
}

impl PyWindowValue for TimeWindow {
    fn to_py<'py>(&self, py: Python<'py>, classes: &WindowClasses) -> PyResult<Bound<'py, PyAny>> {
        classes.time_window.bind(py).call1((self.start, self.end))
    }
}

impl PyWindowValue for GlobalWindow {
    fn to_py<'py>(&self, py: Python<'py>, classes: &WindowClasses) -> PyResult<Bound<'py, PyAny>> {
        classes.global_window.bind(py).call0()
    }
}

impl PyWindowValue for CountWindow {
    fn to_py<'py>(&self, py: Python<'py>, classes: &WindowClasses) -> PyResult<Bound<'py, PyAny>> {
        classes.count_window.bind(py).call1((self.id,))
    }
}

/// The Python classes windows and their context are made of.
#[derive(Clone)]
pub(crate) struct WindowClasses {
    pub time_window: PyObj,
    pub global_window: PyObj,
    pub count_window: PyObj,
    pub context: PyObj,
    pub trigger_context: PyObj,
}

/// What a window node asks for, read from its plan node.
pub(crate) struct WindowSpec {
    pub assigner: String,
    pub size_ms: u64,
    pub slide_ms: u64,
    pub offset_ms: u64,
    pub lateness_ms: u64,
    pub late_tag: Option<String>,
    /// `reduce`, `aggregate` or `process`.
    pub kind: String,
    /// The reduce function, or the `AggregateFunction` object.
    pub function: Option<PyObj>,
    /// The window function: `process(key, context, elements)` or, for
    /// `apply`, `apply(key, window, inputs)`.
    pub window_function: Option<PyObj>,
    pub apply_style: bool,
    /// The trigger the job set, as `superflow.datastream.window` describes it.
    pub trigger: Option<PyObj>,
    /// The evictor the job set, likewise.
    pub evictor: Option<PyObj>,
    /// A dynamic session gap: the record's gap in milliseconds.
    pub gap: Option<PyObj>,
}

/// A Python `AggregateFunction` (its accumulator is a Python object).
struct PyAggregate {
    function: PyObj,
}

impl PyAggregate {
    fn call<'py>(
        &self,
        method: &Bound<'py, pyo3::types::PyString>,
        args: impl IntoPyObjectArgs<'py>,
    ) -> PyObj {
        let py = method.py();
        match self.function.bind(py).call_method1(method, args) {
            Ok(v) => PyObj(v.unbind()),
            Err(e) => raise(py, e),
        }
    }
}

impl AggregateFunction<PyObj, PyObj, PyObj> for PyAggregate {
    fn create_accumulator(&self) -> PyObj {
        Python::attach(|py| {
            match self
                .function
                .bind(py)
                .call_method0(intern!(py, "create_accumulator"))
            {
                Ok(v) => PyObj(v.unbind()),
                Err(e) => raise(py, e),
            }
        })
    }
    fn add(&self, value: PyObj, accumulator: &mut PyObj) {
        Python::attach(|py| {
            let acc = accumulator.clone_ref(py);
            *accumulator = self.call(intern!(py, "add"), (value.0, acc.0));
        })
    }
    fn get_result(&self, accumulator: &PyObj) -> PyObj {
        Python::attach(|py| self.call(intern!(py, "get_result"), (accumulator.clone_ref(py).0,)))
    }
    fn merge(&self, accumulator: &mut PyObj, other: PyObj) {
        Python::attach(|py| {
            let acc = accumulator.clone_ref(py);
            *accumulator = self.call(intern!(py, "merge"), (acc.0, other.0));
        })
    }
}

/// A Python `ProcessWindowFunction` or `WindowFunction`.
#[derive(Clone)]
struct PyWindowProcess {
    function: PyObj,
    apply_style: bool,
    classes: WindowClasses,
    side: SideOutputs,
}

impl<W: PyWindowValue> ProcessWindowFunction<PyObj, PyObj, PyKey, W> for PyWindowProcess {
    fn process(
        &mut self,
        key: &PyKey,
        ctx: &mut ProcessWindowContext<'_, PyKey, W>,
        elements: &[PyObj],
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        Python::attach(|py| {
            let result: PyResult<()> = (|| {
                let key = key.to_py(py)?;
                let window = ctx.window().to_py(py, &self.classes)?;
                let elements = PyList::new(py, elements.iter().map(|e| e.clone_ref(py).0))?;
                let result = if self.apply_style {
                    self.function
                        .bind(py)
                        .call_method1(intern!(py, "apply"), (key, window, elements))?
                } else {
                    let context = self
                        .classes
                        .context
                        .bind(py)
                        .call1((window, ctx.current_watermark()))?;
                    self.function
                        .bind(py)
                        .call_method1(intern!(py, "process"), (key, context, elements))?
                };
                self.side.emit_all(py, result, out, &mut |tag, v| {
                    ctx.output(&OutputTag::<PyObj>::new(tag), v)
                })
            })();
            result.map_err(|e| crate::functions::describe(py, &e).into())
        })
    }
}

/// Evaluates `$body` with `$assigner` bound to the time-window assigner that `$spec`
/// names (its type differs per kind, so each kind is its own arm); other kinds are an
/// error.
macro_rules! with_time_assigner {
    ($spec:expr, $assigner:ident => $body:expr) => {{
        let spec: &WindowSpec = $spec;
        if spec.size_ms == 0 {
            return Err(WindowSpecError::ZeroSize(spec.assigner.clone()));
        }
        let (size, slide, offset) = (
            millis(spec.size_ms),
            millis(spec.slide_ms),
            millis(spec.offset_ms),
        );
        match spec.assigner.as_str() {
            "tumbling_event_time" => {
                let $assigner = TumblingEventTimeWindows::of_with_offset(size, offset);
                $body
            }
            "tumbling_processing_time" => {
                let $assigner = TumblingProcessingTimeWindows::of_with_offset(size, offset);
                $body
            }
            "sliding_event_time" => {
                let $assigner = SlidingEventTimeWindows::of_with_offset(size, slide, offset);
                $body
            }
            "sliding_processing_time" => {
                let $assigner = SlidingProcessingTimeWindows::of_with_offset(size, slide, offset);
                $body
            }
            "event_time_session" => {
                let $assigner = EventTimeSessionWindows::with_gap(size);
                $body
            }
            "processing_time_session" => {
                let $assigner = ProcessingTimeSessionWindows::with_gap(size);
                $body
            }
            other => Err(WindowSpecError::UnknownAssigner(other.to_string())),
        }
    }};
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// What is wrong with the windows a Python job asks for.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WindowSpecError {
    /// A window of size zero.
    #[error("{0} windows need a size above zero")]
    ZeroSize(String),
    /// An assigner this build does not know.
    #[error("unknown time-window assigner '{0}'")]
    UnknownAssigner(String),
    /// A window function kind that needs a function has none.
    #[error("window {0} needs a function")]
    NoFunction(String),
    /// A window function kind this build does not know.
    #[error("unknown window function kind '{0}'")]
    UnknownFunction(String),
    /// The trigger or evictor could not be read.
    #[error("{0}")]
    Python(PyErr),
}

/// Applies lateness, the late-data side output and the functions of `spec`.
fn evaluate<A, TR, EV>(
    windowed: WindowedStream<PyObj, PyKey, PyKeySelector, A, TR, EV>,
    spec: &WindowSpec,
    classes: &WindowClasses,
    side: &SideOutputs,
) -> Result<DataStream<PyObj>, WindowSpecError>
where
    A: WindowAssigner<PyObj>,
    A::W: PyWindowValue,
    TR: Trigger<PyObj, A::W> + Clone,
    EV: Evictor<PyObj, A::W>,
{
    let mut windowed = windowed;
    if spec.lateness_ms > 0 {
        windowed = windowed.allowed_lateness(millis(spec.lateness_ms));
    }
    if let Some(tag) = &spec.late_tag {
        windowed = windowed.side_output_late_data(&OutputTag::<PyObj>::new(tag.clone()));
    }
    let process = Python::attach(|py| {
        spec.window_function.as_ref().map(|f| PyWindowProcess {
            function: f.clone_ref(py),
            apply_style: spec.apply_style,
            classes: classes.clone(),
            side: side.clone(),
        })
    });
    let function = || {
        spec.function
            .as_ref()
            .map(|f| Python::attach(|py| f.clone_ref(py)))
            .ok_or_else(|| WindowSpecError::NoFunction(spec.kind.clone()))
    };
    Ok(match (spec.kind.as_str(), process) {
        ("reduce", None) => windowed.reduce(PyReduce { call: function()? }),
        ("reduce", Some(p)) => windowed.reduce_with_process(PyReduce { call: function()? }, p),
        ("aggregate", None) => windowed.aggregate(PyAggregate {
            function: function()?,
        }),
        ("aggregate", Some(p)) => windowed.aggregate_with_process(
            PyAggregate {
                function: function()?,
            },
            p,
        ),
        ("process", Some(p)) => windowed.process(p),
        (kind, _) => return Err(WindowSpecError::UnknownFunction(kind.to_string())),
    })
}

/// Evaluates `windowed` (with its assigner's default trigger) with the trigger and
/// evictor the job set, if any: each combination is a type of its own.
fn evaluate_with<A>(
    windowed: WindowedStream<PyObj, PyKey, PyKeySelector, A, A::DefaultTrigger, NoEvictor>,
    spec: &WindowSpec,
    classes: &WindowClasses,
    side: &SideOutputs,
    (trigger, evictor): (Option<PyTrigger>, Option<PyEvictor>),
) -> Result<DataStream<PyObj>, WindowSpecError>
where
    A: WindowAssigner<PyObj>,
    A::W: PyWindowValue,
{
    match (trigger, evictor) {
        (None, None) => evaluate(windowed, spec, classes, side),
        (Some(t), None) => evaluate(windowed.trigger(t), spec, classes, side),
        (None, Some(e)) => evaluate(windowed.evictor(e), spec, classes, side),
        (Some(t), Some(e)) => evaluate(windowed.trigger(t).evictor(e), spec, classes, side),
    }
}

/// The windows of `keyed` that `spec` asks for, evaluated.
pub(crate) fn window(
    keyed: KeyedStream<PyObj, PyKey, PyKeySelector>,
    spec: &WindowSpec,
    classes: &WindowClasses,
    side: &SideOutputs,
) -> Result<DataStream<PyObj>, WindowSpecError> {
    let (trigger, evictor) = Python::attach(|py| -> PyResult<_> {
        let trigger = match &spec.trigger {
            Some(t) => Some(PyTrigger::read(t.bind(py), classes)?),
            None => None,
        };
        let evictor = match &spec.evictor {
            Some(e) => Some(PyEvictor::read(e.bind(py))?),
            None => None,
        };
        Ok((trigger, evictor))
    })
    .map_err(WindowSpecError::Python)?;
    let gap = spec.gap.as_ref().map(|f| PyGap {
        extract: Python::attach(|py| f.clone_ref(py)),
    });
    // The windows of `assigner`, evaluated with the job's trigger and evictor.
    macro_rules! evaluated {
        ($assigner:expr) => {
            evaluate_with(
                keyed.window($assigner),
                spec,
                classes,
                side,
                (trigger, evictor),
            )
        };
    }
    match (spec.assigner.as_str(), gap) {
        // PyFlink's count windows: `size_ms` records from every `slide_ms`-th (every
        // `size_ms`-th for tumbling ones).
        ("count", _) => {
            let (size, slide) = (spec.size_ms, spec.slide_ms);
            if size == 0 {
                return Err(WindowSpecError::ZeroSize("count".into()));
            }
            evaluated!(CountWindows::sliding(
                size,
                if slide == 0 { size } else { slide }
            ))
        }
        ("global", _) => evaluated!(GlobalWindows::create()),
        ("event_time_session", Some(gap)) => {
            evaluated!(EventTimeSessionWindows::with_dynamic_gap(gap))
        }
        ("processing_time_session", Some(gap)) => {
            evaluated!(ProcessingTimeSessionWindows::with_dynamic_gap(gap))
        }
        _ => with_time_assigner!(spec, assigner => evaluated!(assigner)),
    }
}

/// A dynamic session gap from Python: `extract(element)` in milliseconds.
struct PyGap {
    extract: PyObj,
}

impl SessionGapExtractor<PyObj> for PyGap {
    fn extract(&self, element: &PyObj) -> i64 {
        Python::attach(|py| {
            let gap = self
                .extract
                .bind(py)
                .call1((element.bind(py),))
                .and_then(|gap| {
                    gap.extract::<i64>().map_err(|_| {
                        pyo3::exceptions::PyTypeError::new_err(format!(
                            "a session gap extractor returns milliseconds as an int, got {gap:?}"
                        ))
                    })
                });
            match gap {
                Ok(gap) => gap,
                Err(e) => raise(py, e),
            }
        })
    }
}

/// The trigger of a Python window: one of Flink's built-in triggers, run in Rust, or a
/// Python `Trigger`.
#[derive(Clone)]
enum PyTrigger {
    EventTime,
    ProcessingTime,
    Count(CountTrigger),
    ContinuousEventTime(ContinuousEventTimeTrigger),
    ContinuousProcessingTime(ContinuousProcessingTimeTrigger),
    Never,
    Purging(Box<PurgingTrigger<PyTrigger>>),
    Python(PythonTrigger),
}

impl PyTrigger {
    /// The trigger `spec` (a dict of `superflow.datastream.window`) describes.
    fn read(spec: &Bound<'_, PyAny>, classes: &WindowClasses) -> PyResult<PyTrigger> {
        let dict = spec.cast::<PyDict>()?;
        let kind: String = item(dict, "kind")?.unwrap_or_default();
        let interval = || -> PyResult<Duration> {
            Ok(Duration::from_millis(
                item(dict, "interval_ms")?.unwrap_or(0),
            ))
        };
        Ok(match kind.as_str() {
            "event_time" => PyTrigger::EventTime,
            "processing_time" => PyTrigger::ProcessingTime,
            "never" => PyTrigger::Never,
            "count" => PyTrigger::Count(CountTrigger::of(item(dict, "count")?.unwrap_or(1))),
            "continuous_event_time" => {
                PyTrigger::ContinuousEventTime(ContinuousEventTimeTrigger::of(interval()?))
            }
            "continuous_processing_time" => PyTrigger::ContinuousProcessingTime(
                ContinuousProcessingTimeTrigger::of(interval()?),
            ),
            "purging" => {
                let inner = dict.get_item("inner")?.ok_or_else(|| {
                    pyo3::exceptions::PyValueError::new_err("a purging trigger without its own")
                })?;
                PyTrigger::Purging(Box::new(PurgingTrigger::of(PyTrigger::read(
                    &inner, classes,
                )?)))
            }
            "python" => PyTrigger::Python(PythonTrigger {
                trigger: item::<Py<PyAny>>(dict, "trigger")?
                    .map(PyObj)
                    .ok_or_else(|| {
                        pyo3::exceptions::PyValueError::new_err(
                            "a Python trigger without its object",
                        )
                    })?,
                can_merge: item(dict, "can_merge")?.unwrap_or(false),
                classes: classes.clone(),
            }),
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown trigger '{other}'"
                )))
            }
        })
    }
}

/// Calls `$call` with `$t` bound to the trigger `$self` holds (a type per variant).
macro_rules! with_trigger {
    ($self:expr, $t:ident => $call:expr) => {
        match $self {
            PyTrigger::EventTime => {
                let $t = &EventTimeTrigger;
                $call
            }
            PyTrigger::ProcessingTime => {
                let $t = &ProcessingTimeTrigger;
                $call
            }
            PyTrigger::Count($t) => $call,
            PyTrigger::ContinuousEventTime($t) => $call,
            PyTrigger::ContinuousProcessingTime($t) => $call,
            PyTrigger::Never => {
                let $t = &NeverTrigger;
                $call
            }
            PyTrigger::Purging(purging) => {
                let $t = purging.as_ref();
                $call
            }
            PyTrigger::Python($t) => $call,
        }
    };
}

impl<W: PyWindowValue> Trigger<PyObj, W> for PyTrigger {
    fn on_element(
        &self,
        element: &PyObj,
        timestamp: i64,
        window: &W,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        with_trigger!(self, t => t.on_element(element, timestamp, window, ctx))
    }
    fn on_event_time(&self, time: i64, window: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        with_trigger!(self, t => Trigger::<PyObj, W>::on_event_time(t, time, window, ctx))
    }
    fn on_processing_time(
        &self,
        time: i64,
        window: &W,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        with_trigger!(self, t => Trigger::<PyObj, W>::on_processing_time(t, time, window, ctx))
    }
    fn can_merge(&self) -> bool {
        with_trigger!(self, t => Trigger::<PyObj, W>::can_merge(t))
    }
    fn on_merge(&self, window: &W, ctx: &mut TriggerContext<'_>) {
        with_trigger!(self, t => Trigger::<PyObj, W>::on_merge(t, window, ctx))
    }
    fn clear(&self, window: &W, ctx: &mut TriggerContext<'_>) {
        with_trigger!(self, t => Trigger::<PyObj, W>::clear(t, window, ctx))
    }
}

/// A Python `Trigger` object. Each call hands it a `_TriggerContext` holding the
/// window's trigger state (numbers as ints, other values pickled), and then applies the
/// timers it asked for and the states it changed.
#[derive(Clone)]
struct PythonTrigger {
    trigger: PyObj,
    can_merge: bool,
    classes: WindowClasses,
}

/// The timer requests of `_TriggerContext._ops`.
const REGISTER_EVENT: u8 = 0;
const REGISTER_PROCESSING: u8 = 1;
const DELETE_EVENT: u8 = 2;

fn value_to_py<'py>(py: Python<'py>, value: &TriggerValue) -> PyResult<Bound<'py, PyAny>> {
    match value {
        TriggerValue::Int(v) => Ok(PyInt::new(py, *v).into_any()),
        TriggerValue::Bytes(bytes) => pickle_loads(py, bytes),
    }
}

fn value_from_py(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<TriggerValue> {
    if value.is_exact_instance_of::<PyInt>() {
        if let Ok(v) = value.extract::<i64>() {
            return Ok(TriggerValue::Int(v));
        }
    }
    Ok(TriggerValue::Bytes(
        pickle_dumps(py, value)?.into_boxed_slice(),
    ))
}

/// A trigger state as the Python context reads it: a dict by state name.
fn values_to_py<'py, 'a>(
    py: Python<'py>,
    values: impl Iterator<Item = (&'static str, &'a TriggerValue)>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in values {
        dict.set_item(name, value_to_py(py, value)?)?;
    }
    Ok(dict)
}

impl PythonTrigger {
    /// Calls `method(*leading, window, context)` on the trigger, and applies what the
    /// call asked of the context; returns the call's result.
    fn call<'py, W: PyWindowValue>(
        &self,
        py: Python<'py>,
        method: &Bound<'py, PyString>,
        leading: Vec<Bound<'py, PyAny>>,
        window: &W,
        ctx: &mut TriggerContext<'_>,
        merging: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let values = values_to_py(py, ctx.values())?;
        let merged = if merging {
            let states = ctx
                .merged_states()
                .iter()
                .map(|state| values_to_py(py, state.iter().map(|(n, v)| (*n, v))))
                .collect::<PyResult<Vec<_>>>()?;
            Some(PyList::new(py, states)?)
        } else {
            None
        };
        let context = self.classes.trigger_context.bind(py).call1((
            ctx.current_watermark(),
            values,
            merged,
        ))?;
        let mut args = leading;
        args.push(window.to_py(py, &self.classes)?);
        args.push(context.clone());
        let result = self
            .trigger
            .bind(py)
            .call_method1(method, PyTuple::new(py, args)?)?;
        for op in context.getattr(intern!(py, "_ops"))?.try_iter()? {
            let (code, time): (u8, i64) = op?.extract()?;
            match code {
                REGISTER_EVENT => ctx.register_event_time_timer(time),
                REGISTER_PROCESSING => ctx.register_processing_time_timer(time),
                DELETE_EVENT => ctx.delete_event_time_timer(time),
                _ => ctx.delete_processing_time_timer(time),
            }
        }
        let changes = context.call_method0(intern!(py, "_changes"))?;
        for (name, value) in changes.cast::<PyDict>()?.iter() {
            let name: String = name.extract()?;
            if value.is_none() {
                ctx.clear_state(&name);
            } else {
                ctx.set_value(&name, value_from_py(py, &value)?);
            }
        }
        Ok(result)
    }

    fn decide<W: PyWindowValue>(
        &self,
        method: &'static str,
        leading: impl for<'py> FnOnce(Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>>,
        window: &W,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        Python::attach(|py| {
            let decided = leading(py)
                .and_then(|leading| {
                    self.call(py, &PyString::new(py, method), leading, window, ctx, false)
                })
                .and_then(|result| {
                    match result
                        .getattr("value")
                        .and_then(|v| v.extract::<(bool, bool)>())
                    {
                        Ok((false, false)) => Ok(TriggerResult::Continue),
                        Ok((true, false)) => Ok(TriggerResult::Fire),
                        Ok((false, true)) => Ok(TriggerResult::Purge),
                        Ok((true, true)) => Ok(TriggerResult::FireAndPurge),
                        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
                            "Trigger.{method} returns a TriggerResult, got {result:?}"
                        ))),
                    }
                });
            match decided {
                Ok(result) => result,
                Err(e) => raise(py, e),
            }
        })
    }

    fn notify<W: PyWindowValue>(
        &self,
        method: &'static str,
        window: &W,
        ctx: &mut TriggerContext<'_>,
        merging: bool,
    ) {
        Python::attach(|py| {
            let method = PyString::new(py, method);
            if let Err(e) = self.call(py, &method, Vec::new(), window, ctx, merging) {
                raise(py, e)
            }
        })
    }
}

impl<W: PyWindowValue> Trigger<PyObj, W> for PythonTrigger {
    fn on_element(
        &self,
        element: &PyObj,
        timestamp: i64,
        window: &W,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        self.decide(
            "on_element",
            |py| {
                Ok(vec![
                    element.bind(py).clone(),
                    PyInt::new(py, timestamp).into_any(),
                ])
            },
            window,
            ctx,
        )
    }
    fn on_event_time(&self, time: i64, window: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        self.decide(
            "on_event_time",
            |py| Ok(vec![PyInt::new(py, time).into_any()]),
            window,
            ctx,
        )
    }
    fn on_processing_time(
        &self,
        time: i64,
        window: &W,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        self.decide(
            "on_processing_time",
            |py| Ok(vec![PyInt::new(py, time).into_any()]),
            window,
            ctx,
        )
    }
    fn can_merge(&self) -> bool {
        self.can_merge
    }
    fn on_merge(&self, window: &W, ctx: &mut TriggerContext<'_>) {
        self.notify("on_merge", window, ctx, true)
    }
    fn clear(&self, window: &W, ctx: &mut TriggerContext<'_>) {
        self.notify("clear", window, ctx, false)
    }
}

/// The evictor of a Python window: Flink's count or time evictor.
#[derive(Clone, Copy)]
enum PyEvictor {
    Count(CountEvictor),
    Time(TimeEvictor),
}

impl PyEvictor {
    fn read(spec: &Bound<'_, PyAny>) -> PyResult<PyEvictor> {
        let dict = spec.cast::<PyDict>()?;
        let after = item(dict, "after")?.unwrap_or(false);
        match item::<String>(dict, "kind")?.as_deref() {
            Some("count") => Ok(PyEvictor::Count(CountEvictor::of_after(
                item(dict, "count")?.unwrap_or(0),
                after,
            ))),
            Some("time") => Ok(PyEvictor::Time(TimeEvictor::of_after(
                Duration::from_millis(item(dict, "size_ms")?.unwrap_or(0)),
                after,
            ))),
            other => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown evictor {other:?}"
            ))),
        }
    }
}

impl<W: Window> Evictor<PyObj, W> for PyEvictor {
    fn evict_before(&self, elements: &mut Vec<(PyObj, i64)>, window: &W, ctx: &EvictorContext) {
        match self {
            PyEvictor::Count(e) => Evictor::<PyObj, W>::evict_before(e, elements, window, ctx),
            PyEvictor::Time(e) => Evictor::<PyObj, W>::evict_before(e, elements, window, ctx),
        }
    }
    fn evict_after(&self, elements: &mut Vec<(PyObj, i64)>, window: &W, ctx: &EvictorContext) {
        match self {
            PyEvictor::Count(e) => Evictor::<PyObj, W>::evict_after(e, elements, window, ctx),
            PyEvictor::Time(e) => Evictor::<PyObj, W>::evict_after(e, elements, window, ctx),
        }
    }
}

/// The function of a window join (`join(first, second)` per pair, its result the
/// output) or co-group (`co_group(firsts, seconds)` yields the outputs).
#[derive(Clone)]
pub(crate) struct PyCoGroup {
    pub function: PyObj,
    pub join: bool,
    pub side: SideOutputs,
}

impl CoGroupFunction<PyObj, PyObj, PyObj> for PyCoGroup {
    fn co_group(
        &mut self,
        first: &[PyObj],
        second: &[PyObj],
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        Python::attach(|py| {
            let result: PyResult<()> = (|| {
                let function = self.function.bind(py);
                if self.join {
                    for a in first {
                        for b in second {
                            let joined = function.call_method1(
                                intern!(py, "join"),
                                (a.clone_ref(py).0, b.clone_ref(py).0),
                            )?;
                            out.collect(PyObj(joined.unbind()));
                        }
                    }
                    return Ok(());
                }
                let firsts = PyList::new(py, first.iter().map(|e| e.clone_ref(py).0))?;
                let seconds = PyList::new(py, second.iter().map(|e| e.clone_ref(py).0))?;
                let result = function.call_method1(intern!(py, "co_group"), (firsts, seconds))?;
                self.side.emit_all(py, result, out, &mut |_, _| {})
            })();
            result.map_err(|e| crate::functions::describe(py, &e).into())
        })
    }
}

type PyJoinKeyed = TwoInputKeyed<PyObj, PyObj, PyKey, PyKeySelector, PyKeySelector>;

fn finish_join<WA, TR>(
    windowed: TwoInputWindowed<PyObj, PyObj, PyKey, PyKeySelector, PyKeySelector, WA, TR>,
    spec: &WindowSpec,
    function: PyCoGroup,
) -> DataStream<PyObj>
where
    WA: WindowAssigner<TaggedUnion<PyObj, PyObj>>,
    TR: Trigger<TaggedUnion<PyObj, PyObj>, WA::W> + Clone,
{
    let windowed = if spec.lateness_ms > 0 {
        windowed.allowed_lateness(millis(spec.lateness_ms))
    } else {
        windowed
    };
    windowed.co_group(function)
}

/// A window join or co-group of two keyed inputs over the windows `spec` names.
pub(crate) fn window_join(
    keyed: PyJoinKeyed,
    spec: &WindowSpec,
    function: PyCoGroup,
) -> Result<DataStream<PyObj>, WindowSpecError> {
    with_time_assigner!(spec, assigner => Ok(finish_join(keyed.window(assigner), spec, function)))
}
