//! Windows of a keyed stream with Python functions: the assigner named by the plan
//! node, then `reduce`, `aggregate` (each optionally with a window function) or a
//! `ProcessWindowFunction` / `WindowFunction` over all of a window's records.

use std::time::Duration;

use pyo3::call::PyCallArgs as IntoPyObjectArgs;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyList;
use superflow_api::join::{TwoInputKeyed, TwoInputWindowed};
use superflow_api::window::{
    AggregateFunction, EventTimeSessionWindows, Evictor, GlobalWindow, ProcessWindowContext,
    ProcessWindowFunction, ProcessingTimeSessionWindows, SlidingEventTimeWindows,
    SlidingProcessingTimeWindows, TimeWindow, Trigger, TumblingEventTimeWindows,
    TumblingProcessingTimeWindows, Window, WindowAssigner, WindowedStream,
};
use superflow_api::{CoGroupFunction, Collector, DataStream, KeyedStream, OutputTag, TaggedUnion};
use superflow_core::UserError;

use crate::functions::{raise, PyKeySelector, PyReduce, SideOutputs};
use crate::record::{PyKey, PyObj};

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

/// The Python classes windows and their context are made of.
#[derive(Clone)]
pub(crate) struct WindowClasses {
    pub time_window: PyObj,
    pub global_window: PyObj,
    pub context: PyObj,
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
            other => Err(format!("unknown time-window assigner '{other}'")),
        }
    }};
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Applies lateness, the late-data side output and the functions of `spec`.
fn evaluate<A, TR, EV>(
    windowed: WindowedStream<PyObj, PyKey, PyKeySelector, A, TR, EV>,
    spec: &WindowSpec,
    classes: &WindowClasses,
    side: &SideOutputs,
) -> Result<DataStream<PyObj>, String>
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
            .ok_or_else(|| format!("window {} needs a function", spec.kind))
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
        (kind, _) => return Err(format!("unknown window function kind '{kind}'")),
    })
}

/// The windows of `keyed` that `spec` asks for, evaluated.
pub(crate) fn window(
    keyed: KeyedStream<PyObj, PyKey, PyKeySelector>,
    spec: &WindowSpec,
    classes: &WindowClasses,
    side: &SideOutputs,
) -> Result<DataStream<PyObj>, String> {
    if spec.size_ms == 0 {
        return Err(format!("{} windows need a size above zero", spec.assigner));
    }
    // Count windows measure in records: `size_ms` and `slide_ms` hold counts.
    match spec.assigner.as_str() {
        "count" if spec.slide_ms == 0 => {
            evaluate(keyed.count_window(spec.size_ms), spec, classes, side)
        }
        "count" => evaluate(
            keyed.count_window_sliding(spec.size_ms, spec.slide_ms),
            spec,
            classes,
            side,
        ),
        _ => {
            with_time_assigner!(spec, assigner => evaluate(keyed.window(assigner), spec, classes, side))
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
) -> Result<DataStream<PyObj>, String> {
    if spec.size_ms == 0 {
        return Err(format!("{} windows need a size above zero", spec.assigner));
    }
    with_time_assigner!(spec, assigner => Ok(finish_join(keyed.window(assigner), spec, function)))
}
