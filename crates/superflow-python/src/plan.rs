//! Turns a Python job plan into a Rust job and runs it. The plan is a list of nodes
//! (dicts made by `superflow.datastream`), each naming its operation, its inputs (the
//! ids of earlier nodes) and its Python functions. Nodes are read while the GIL is held;
//! the job is built and run with it released, and the worker takes it per activation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::time::Duration;

use superflow_api::{
    Collector, DataStream, KeyedStream, MapStateDescriptor, OutputTag, ProcessContext,
    ProcessFunction, StreamExecutionEnvironment, WatermarkStrategy,
};
use superflow_connectors::{
    BucketAssigner, FileSink, OutputFileConfig, RollingPolicy, SinkFunction, TextFileSource,
};
use superflow_core::{JobError, UserError};
use superflow_runtime::checkpoint::{
    CheckpointStatus, FunctionInitializationContext, FunctionSnapshotContext,
};
use superflow_runtime::{FlowControl, JobClient, JobExecutionResult, Records};

use crate::functions::{
    each_record_attached, raise, OneInputKind, PyBroadcastProcess, PyCoFunction, PyJoinProcess,
    PyKeySelector, PyKeyedProcess, PyOneInput, PyReduce, PySink, PyTimestampAssigner,
    PyWatermarkGenerator, SideOutputs,
};
use crate::job_handle::JobHandle;
use crate::record::{PyKey, PyObj};
use crate::settings::PlanSettings;
use crate::window::{PyCoGroup, WindowClasses, WindowSpec};
use crate::JobExecutionError;

/// One node of the plan, read out of its Python dict.
struct PlanNode {
    id: usize,
    op: String,
    inputs: Vec<usize>,
    function: Option<PyObj>,
    function2: Option<PyObj>,
    rich: Option<PyObj>,
    elements: Vec<PyObj>,
    text: Option<String>,
    range: (i64, i64),
    /// Watermarks: the strategy's kind, bound and idleness (ms).
    watermarks: (Option<String>, Option<u64>, Option<u64>),
    name: Option<String>,
    uid: Option<String>,
    parallelism: Option<usize>,
    /// `set_max_parallelism()`: the operator's own number of key groups.
    max_parallelism: Option<usize>,
    /// `disable` (`disable_chaining()`) or `new_chain` (`start_new_chain()`).
    chaining: Option<String>,
    window: Option<WindowSpec>,
    /// The key selectors of a keyed co-process node.
    keys: (Option<PyObj>, Option<PyObj>),
    /// Whether an interval join's lower and upper bounds are exclusive.
    bounds: (bool, bool),
    /// The broadcast state descriptors' names of a broadcast process node.
    names: Vec<String>,
    /// A file sink's bucket assigner: `["date_time", format, time zone or None]` or
    /// `["base_path"]`.
    bucket: Vec<Option<String>>,
    /// The conversion of the node's records to their declared type, when that type
    /// changes values (`Types.FLOAT()`).
    declared: Option<PyObj>,
    /// The charset of a text file source.
    charset: Option<String>,
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

/// Python classes the operators need, looked up once.
struct PythonClasses {
    side: SideOutputs,
    runtime_context: PyObj,
    join_context: PyObj,
    windows: WindowClasses,
}

/// What a plan node became.
enum Built {
    Stream(DataStream<PyObj>),
    /// A Rust source and the map that makes its records Python objects, each already
    /// named and configured.
    Converted(DataStream<PyObj>),
    Keyed(DataStream<PyObj>, PyObj),
    Sink,
}

/// The records of each `execute_and_collect` node, by node id.
type Collected = Arc<Mutex<HashMap<usize, Vec<PyObj>>>>;

/// Gathers a subtask's records and hands them over when the input ends.
struct CollectSink {
    node: usize,
    shared: Collected,
    local: Vec<PyObj>,
}

impl Clone for CollectSink {
    fn clone(&self) -> Self {
        CollectSink {
            node: self.node,
            shared: Arc::clone(&self.shared),
            local: Vec::new(),
        }
    }
}

impl SinkFunction<PyObj> for CollectSink {
    fn invoke(&mut self, value: PyObj) -> Result<(), UserError> {
        self.local.push(value);
        Ok(())
    }
    fn invoke_batch(&mut self, values: &mut Vec<PyObj>) -> Result<(), UserError> {
        self.local.append(values);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), UserError> {
        let mut shared = self.shared.lock().map_err(|_| "collect sink poisoned")?;
        shared.entry(self.node).or_default().append(&mut self.local);
        Ok(())
    }
    // The records gathered so far are the sink's operator state, so that a job restored
    // from a checkpoint returns each record once.
    fn initialize_state(
        &mut self,
        ctx: &FunctionInitializationContext<'_>,
    ) -> Result<(), UserError> {
        self.local = ctx.get_list_state(COLLECTED_STATE);
        Ok(())
    }
    fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), UserError> {
        ctx.put_list_state(COLLECTED_STATE, &self.local)?;
        Ok(())
    }
}

const COLLECTED_STATE: &str = "collected";

/// What the benchmark's sink saw, over the subtasks of this process.
#[derive(Default)]
struct BenchTotals {
    records: u64,
    sum: i64,
    keyed_max_sum: i64,
}

/// The sink of `python3 -m superflow.bench`: counts records and sums an integer field
/// (and, with a key field, the largest value per key), in Rust, so that the benchmark
/// times the Python functions of the job and not a Python sink.
struct BenchSink {
    field: Option<usize>,
    key_field: Option<usize>,
    shared: Arc<Mutex<BenchTotals>>,
    local: BenchTotals,
    max_by_key: rustc_hash::FxHashMap<PyKey, i64>,
}

impl Clone for BenchSink {
    fn clone(&self) -> Self {
        BenchSink {
            field: self.field,
            key_field: self.key_field,
            shared: Arc::clone(&self.shared),
            local: BenchTotals::default(),
            max_by_key: Default::default(),
        }
    }
}

impl BenchSink {
    fn value(&self, record: &Bound<'_, PyAny>) -> PyResult<i64> {
        match self.field {
            None => record.extract(),
            Some(i) => record.get_item(i)?.extract(),
        }
    }
}

impl SinkFunction<PyObj> for BenchSink {
    fn invoke(&mut self, value: PyObj) -> Result<(), UserError> {
        self.invoke_batch(&mut vec![value])
    }
    fn invoke_batch(&mut self, values: &mut Vec<PyObj>) -> Result<(), UserError> {
        Python::attach(|py| -> PyResult<()> {
            for value in values.drain(..) {
                let record = value.bind(py);
                let v = self.value(record)?;
                self.local.records += 1;
                self.local.sum = self.local.sum.wrapping_add(v);
                if let Some(k) = self.key_field {
                    let key = PyKey::from_py(&record.get_item(k)?)?;
                    let slot = self.max_by_key.entry(key).or_insert(i64::MIN);
                    *slot = (*slot).max(v);
                }
            }
            Ok(())
        })
        .map_err(|e| e.to_string().into())
    }
    fn finish(&mut self) -> Result<(), UserError> {
        let mut shared = self.shared.lock().map_err(|_| "bench sink poisoned")?;
        shared.records += self.local.records;
        shared.sum = shared.sum.wrapping_add(self.local.sum);
        let keyed: i64 = self
            .max_by_key
            .values()
            .fold(0i64, |a, b| a.wrapping_add(*b));
        shared.keyed_max_sum = shared.keyed_max_sum.wrapping_add(keyed);
        Ok(())
    }
}

fn key_selector(py: Python<'_>, f: &PyObj) -> PyKeySelector {
    PyKeySelector {
        call: f.clone_ref(py),
    }
}

fn need<'a>(node: &'a PlanNode, f: &'a Option<PyObj>) -> Result<&'a PyObj, String> {
    f.as_ref()
        .ok_or_else(|| format!("node {} ({}) has no function", node.id, node.op))
}

/// The two key selectors of a node over two keyed inputs (keyed co-process, window join).
fn key_pair(node: &PlanNode) -> Result<(PyKeySelector, PyKeySelector), String> {
    Python::attach(|py| {
        Ok((
            PyKeySelector {
                call: need(node, &node.keys.0)?.clone_ref(py),
            },
            PyKeySelector {
                call: need(node, &node.keys.1)?.clone_ref(py),
            },
        ))
    })
}

/// Sets the node's name, uid, parallelism and max parallelism on the operator behind
/// `stream`.
fn configured<T: superflow_core::Data>(node: &PlanNode, stream: DataStream<T>) -> DataStream<T> {
    let mut s = stream;
    if let Some(name) = &node.name {
        s = s.name(name);
    }
    if let Some(uid) = &node.uid {
        s = s.uid(uid);
    }
    if let Some(p) = node.parallelism {
        s = s.set_parallelism(p);
    }
    if let Some(max) = node.max_parallelism {
        s = s.set_max_parallelism(max);
    }
    match node.chaining.as_deref() {
        Some("disable") => s.disable_chaining(),
        Some("new_chain") => s.start_new_chain(),
        _ => s,
    }
}

/// Turns a Rust source's records into Python objects, a batch per attachment to the
/// interpreter.
#[derive(Clone, Copy)]
struct ToPython<T>(for<'py> fn(Python<'py>, T) -> Bound<'py, PyAny>);

impl<T: superflow_core::Data> ProcessFunction<T, PyObj> for ToPython<T> {
    fn process_element(
        &mut self,
        value: T,
        _ctx: &mut ProcessContext,
        out: &mut Collector<PyObj>,
    ) -> Result<(), UserError> {
        Python::attach(|py| out.collect(PyObj((self.0)(py, value).unbind())));
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: &mut Records<T>,
        ctx: &mut ProcessContext,
        out: &mut Records<PyObj>,
    ) -> Result<(), UserError> {
        each_record_attached(batch, ctx, out, |py, value, _, out| {
            out.collect(PyObj((self.0)(py, value).unbind()));
            Ok(())
        })
    }
}

/// Configures a map the binding adds after `node`'s operator (the conversion of a Rust
/// source's records into Python objects, or of records into their declared type): it
/// runs beside the operator, named `name`, and its uid derives from the operator's.
fn follower(
    node: &PlanNode,
    map: DataStream<PyObj>,
    name: &str,
    uid_suffix: &str,
) -> DataStream<PyObj> {
    let mut s = map.name(name).stateless();
    if let Some(uid) = &node.uid {
        s = s.uid(&format!("{uid}/{uid_suffix}"));
    }
    if let Some(p) = node.parallelism {
        s = s.set_parallelism(p);
    }
    s
}

/// Configures the map that turns a Rust source's records into Python objects.
fn to_python(node: &PlanNode, map: DataStream<PyObj>) -> DataStream<PyObj> {
    follower(node, map, "To Python", "to-python")
}

/// A Python function of one input (`kind`) calling `call`, with `rich` as its function
/// object (for `open`/`close`), if any.
fn py_one_input(
    py: Python<'_>,
    kind: OneInputKind,
    call: PyObj,
    rich: Option<&PyObj>,
    classes: &PythonClasses,
) -> PyOneInput {
    PyOneInput {
        kind,
        call,
        rich: rich.map(|r| r.clone_ref(py)),
        context: None,
        side: classes.side.clone(),
        runtime_context_class: classes.runtime_context.clone_ref(py),
    }
}

/// Builds the Rust job of `nodes` on `env`; returns the collect nodes' shared buffer.
fn build(
    env: &StreamExecutionEnvironment,
    nodes: &[PlanNode],
    classes: &PythonClasses,
    bench: &Arc<Mutex<BenchTotals>>,
) -> Result<Collected, String> {
    let collected: Collected = Arc::default();
    let mut built: HashMap<usize, Built> = HashMap::new();
    for node in nodes {
        let stream_of = |index: usize| -> Result<DataStream<PyObj>, String> {
            let id = node
                .inputs
                .get(index)
                .ok_or_else(|| format!("node {} ({}) lacks input {index}", node.id, node.op))?;
            match built.get(id) {
                Some(Built::Stream(s)) => Ok(s.clone()),
                Some(Built::Keyed(s, f)) => {
                    let selector = Python::attach(|py| key_selector(py, f));
                    Ok(s.key_by(selector).as_stream())
                }
                _ => Err(format!("node {} ({}) reads a sink", node.id, node.op)),
            }
        };
        let keyed_of = || -> Result<KeyedStream<PyObj, PyKey, PyKeySelector>, String> {
            match node.inputs.first().and_then(|id| built.get(id)) {
                Some(Built::Keyed(s, f)) => Ok(s.key_by(Python::attach(|py| key_selector(py, f)))),
                _ => Err(format!("{} needs a keyed stream (key_by first)", node.op)),
            }
        };
        // A keyed (co-, broadcast) process node's Python function.
        let keyed_process = || -> Result<PyKeyedProcess, String> {
            Python::attach(|py| {
                need(node, &node.function).map(|f| {
                    PyKeyedProcess::new(
                        f.clone_ref(py),
                        classes.side.clone(),
                        classes.runtime_context.clone_ref(py),
                    )
                })
            })
        };
        let one_input = |kind: OneInputKind| -> Result<DataStream<PyObj>, String> {
            let function = Python::attach(|py| {
                let call = node
                    .function
                    .as_ref()
                    .map_or_else(|| PyObj(py.None()), |f| f.clone_ref(py));
                py_one_input(py, kind, call, node.rich.as_ref(), classes)
            });
            need(node, &node.function)?;
            Ok(stream_of(0)?.process(function))
        };
        let result = match node.op.as_str() {
            "from_collection" => Built::Stream(env.from_collection(node.elements.clone())),
            "from_sequence" => {
                let (start, end) = node.range;
                let source = configured(node, env.from_sequence(start, end));
                Built::Converted(to_python(
                    node,
                    source.process(ToPython(|py, v: i64| {
                        pyo3::types::PyInt::new(py, v).into_any()
                    })),
                ))
            }
            "read_text_file" => {
                let path = node.text.clone().unwrap_or_default();
                let mut files = TextFileSource::new(path);
                if let Some(charset) = &node.charset {
                    files = files.with_charset(charset);
                }
                // `start` is the discovery interval in ms; 0 for a bounded source.
                let source = match u64::try_from(node.range.0) {
                    Ok(interval) if interval > 0 => env.from_source(
                        files.monitor_continuously(std::time::Duration::from_millis(interval)),
                    ),
                    _ => env.from_source(files),
                };
                let source = configured(node, source);
                Built::Converted(to_python(
                    node,
                    source.process(ToPython(|py, line: String| {
                        pyo3::types::PyString::new(py, &line).into_any()
                    })),
                ))
            }
            // Python functions of unkeyed streams have no state to keep.
            "map" => Built::Stream(one_input(OneInputKind::Map)?.name("Map").stateless()),
            "flat_map" => Built::Stream(
                one_input(OneInputKind::FlatMap)?
                    .name("Flat Map")
                    .stateless(),
            ),
            "filter" => Built::Stream(one_input(OneInputKind::Filter)?.name("Filter").stateless()),
            "process" => Built::Stream(
                one_input(OneInputKind::Process)?
                    .name("Process")
                    .stateless(),
            ),
            "key_by" => {
                let f = Python::attach(|py| need(node, &node.function).map(|f| f.clone_ref(py)))?;
                Built::Keyed(stream_of(0)?, f)
            }
            "reduce" => {
                let f = Python::attach(|py| need(node, &node.function).map(|f| f.clone_ref(py)))?;
                Built::Stream(
                    keyed_of()?
                        .reduce(PyReduce { call: f })
                        .name("Keyed Reduce"),
                )
            }
            "window" => {
                let spec = node
                    .window
                    .as_ref()
                    .ok_or_else(|| format!("window node {} has no assigner", node.id))?;
                let stream =
                    crate::window::window(keyed_of()?, spec, &classes.windows, &classes.side)?;
                Built::Stream(stream.name("Window"))
            }
            "keyed_process" => {
                let function = keyed_process()?;
                Built::Stream(keyed_of()?.process(function).name("KeyedProcess"))
            }
            "union" => {
                let first = stream_of(0)?;
                let others = (1..node.inputs.len())
                    .map(stream_of)
                    .collect::<Result<Vec<_>, _>>()?;
                let refs: Vec<&DataStream<PyObj>> = others.iter().collect();
                Built::Stream(first.union(&refs))
            }
            "co_map" | "co_flat_map" => {
                let (a, b) = (stream_of(0)?, stream_of(1)?);
                let function = Python::attach(|py| -> Result<PyCoFunction, String> {
                    Ok(PyCoFunction {
                        first: need(node, &node.function)?.clone_ref(py),
                        second: need(node, &node.function2)?.clone_ref(py),
                        side: classes.side.clone(),
                    })
                })?;
                let connected = a.connect(&b);
                Built::Stream(if node.op == "co_map" {
                    connected.map(function).name("Co-Map")
                } else {
                    connected.flat_map(function).name("Co-Flat Map")
                })
            }
            "watermarks" => Built::Stream(assign_watermarks(node, stream_of(0)?)?),
            "co_keyed_process" => {
                let (a, b) = (stream_of(0)?, stream_of(1)?);
                let (key1, key2) = key_pair(node)?;
                let function = keyed_process()?;
                let keyed = a.connect(&b).key_by(key1, key2);
                Built::Stream(keyed.process(function).name("KeyedCoProcess"))
            }
            "broadcast_process" => {
                let descriptors: Vec<MapStateDescriptor<(), PyObj>> =
                    node.names.iter().map(MapStateDescriptor::new).collect();
                let broadcast = stream_of(1)?.broadcast_with(&descriptors);
                let keyed = matches!(
                    node.inputs.first().and_then(|id| built.get(id)),
                    Some(Built::Keyed(..))
                );
                let function = PyBroadcastProcess::new(keyed_process()?, node.names.clone(), keyed);
                Built::Stream(if keyed {
                    keyed_of()?
                        .connect_broadcast(&broadcast)
                        .process(function)
                        .name("Keyed Broadcast Process")
                } else {
                    stream_of(0)?
                        .connect_broadcast(&broadcast)
                        .process(function)
                        .name("Broadcast Process")
                })
            }
            "interval_join" => {
                let right = match node.inputs.get(1).and_then(|id| built.get(id)) {
                    Some(Built::Keyed(s, f)) => s.key_by(Python::attach(|py| key_selector(py, f))),
                    _ => return Err("interval_join needs a keyed stream on each side".into()),
                };
                let (lower, upper) = node.range;
                let mut joined = keyed_of()?.interval_join(&right).between(lower, upper);
                if node.bounds.0 {
                    joined = joined.lower_bound_exclusive();
                }
                if node.bounds.1 {
                    joined = joined.upper_bound_exclusive();
                }
                // `names`: the side outputs of late left and right records ("" for none).
                if let Some(tag) = node.names.first().filter(|t| !t.is_empty()) {
                    joined = joined.side_output_left_late_data(&OutputTag::new(tag.clone()));
                }
                if let Some(tag) = node.names.get(1).filter(|t| !t.is_empty()) {
                    joined = joined.side_output_right_late_data(&OutputTag::new(tag.clone()));
                }
                let function = Python::attach(|py| -> Result<_, String> {
                    Ok(PyJoinProcess {
                        function: need(node, &node.function)?.clone_ref(py),
                        context_class: classes.join_context.clone_ref(py),
                        side: classes.side.clone(),
                    })
                })?;
                Built::Stream(joined.process(function).name("Interval Join"))
            }
            "window_join" => {
                let (a, b) = (stream_of(0)?, stream_of(1)?);
                let spec = node
                    .window
                    .as_ref()
                    .ok_or_else(|| format!("window join node {} has no assigner", node.id))?;
                let (key1, key2) = key_pair(node)?;
                let function = Python::attach(|py| {
                    need(node, &node.function).map(|f| PyCoGroup {
                        function: f.clone_ref(py),
                        join: spec.kind == "join",
                        side: classes.side.clone(),
                    })
                })?;
                let keyed = a.join(&b).where_(key1).equal_to(key2);
                let name = if spec.kind == "join" {
                    "Window Join"
                } else {
                    "CoGroup"
                };
                Built::Stream(crate::window::window_join(keyed, spec, function)?.name(name))
            }
            "side_output" => {
                let tag = node.text.clone().unwrap_or_default();
                Built::Stream(stream_of(0)?.get_side_output(&OutputTag::<PyObj>::new(tag)))
            }
            "forward" => Built::Stream(stream_of(0)?.forward()),
            "rebalance" => Built::Stream(stream_of(0)?.rebalance()),
            "rescale" => Built::Stream(stream_of(0)?.rescale()),
            "shuffle" => Built::Stream(stream_of(0)?.shuffle()),
            "broadcast" => Built::Stream(stream_of(0)?.broadcast()),
            "global" => Built::Stream(stream_of(0)?.global()),
            "partition_custom" => {
                let (partitioner, selector) = Python::attach(|py| -> Result<_, String> {
                    Ok((
                        need(node, &node.function)?.clone_ref(py),
                        need(node, &node.function2)?.clone_ref(py),
                    ))
                })?;
                let partition = move |key: &PyObj, n: usize| -> usize {
                    Python::attach(|py| {
                        match partitioner
                            .bind(py)
                            .call1((key.0.clone_ref(py), n))
                            .and_then(|p| p.extract::<usize>())
                        {
                            Ok(p) => p % n.max(1),
                            Err(e) => raise(py, e),
                        }
                    })
                };
                let select = move |value: &PyObj| -> PyObj {
                    Python::attach(
                        |py| match selector.bind(py).call1((value.0.clone_ref(py),)) {
                            Ok(k) => PyObj(k.unbind()),
                            Err(e) => raise(py, e),
                        },
                    )
                };
                Built::Stream(stream_of(0)?.partition_custom(partition, select))
            }
            "print" => {
                // `text`: the sink identifier of `print(sink_identifier)`.
                let sink = match &node.text {
                    Some(identifier) => stream_of(0)?.print_with_identifier(identifier),
                    None => stream_of(0)?.print(),
                };
                configured(node, sink);
                Built::Sink
            }
            "collect" => {
                let sink = stream_of(0)?
                    .add_sink(CollectSink {
                        node: node.id,
                        shared: Arc::clone(&collected),
                        local: Vec::new(),
                    })
                    .name("Collect Sink");
                configured(node, sink);
                Built::Sink
            }
            "_bench_sink" => {
                stream_of(0)?
                    .add_sink(BenchSink {
                        field: node.range.0.try_into().ok(),
                        key_field: node.range.1.try_into().ok(),
                        shared: Arc::clone(bench),
                        local: BenchTotals::default(),
                        max_by_key: Default::default(),
                    })
                    .name("Bench Sink");
                Built::Sink
            }
            "file_sink" => {
                let dir = node
                    .text
                    .clone()
                    .ok_or_else(|| format!("file sink node {} has no path", node.id))?;
                let (part_size, rollover_ms) = node.range;
                let mut policy = RollingPolicy::default();
                if part_size > 0 {
                    policy.max_part_size = part_size as u64;
                }
                if rollover_ms > 0 {
                    policy.rollover_interval = std::time::Duration::from_millis(rollover_ms as u64);
                }
                let mut names = OutputFileConfig::default();
                if let [prefix, suffix] = node.names.as_slice() {
                    names.part_prefix.clone_from(prefix);
                    names.part_suffix.clone_from(suffix);
                }
                let buckets = match node.bucket.as_slice() {
                    [] => BucketAssigner::default(),
                    [Some(kind), ..] if kind == "base_path" => BucketAssigner::base_path(),
                    [Some(kind), Some(format), zone] if kind == "date_time" => {
                        BucketAssigner::date_time(format, zone.as_deref())
                    }
                    other => return Err(format!("unknown bucket assigner {other:?}")),
                };
                let name = format!("File Sink: {dir}");
                let sink = stream_of(0)?
                    .sink_to(
                        FileSink::new(dir)
                            .with_rolling_policy(policy)
                            .with_output_file_config(names)
                            .with_bucket_assigner(buckets),
                    )
                    .name(&name);
                configured(node, sink);
                Built::Sink
            }
            "sink" => {
                let f = Python::attach(|py| need(node, &node.function).map(|f| f.clone_ref(py)))?;
                configured(
                    node,
                    stream_of(0)?
                        .add_sink(PySink { call: f })
                        .name("Sink")
                        .stateless(),
                );
                Built::Sink
            }
            other => return Err(format!("unknown plan operation '{other}'")),
        };
        let result = match (result, &node.declared) {
            // A declared type that changes values (32-bit floats): the records take its
            // form as they leave the operator, as PyFlink's pass through Java.
            (Built::Stream(s), Some(convert)) => {
                let function = Python::attach(|py| {
                    py_one_input(py, OneInputKind::Map, convert.clone_ref(py), None, classes)
                });
                let converted = configured(node, s).process(function);
                Built::Stream(
                    follower(node, converted, "Declared Type", "declared-type").exchangeable(),
                )
            }
            (Built::Stream(s), None) => Built::Stream(configured(node, s).exchangeable()),
            (Built::Converted(s), _) => Built::Stream(s.exchangeable()),
            (other, _) => other,
        };
        built.insert(node.id, result);
    }
    Ok(collected)
}

/// `assign_timestamps_and_watermarks` with a Python `WatermarkStrategy`.
fn assign_watermarks(
    node: &PlanNode,
    stream: DataStream<PyObj>,
) -> Result<DataStream<PyObj>, String> {
    let (kind, bound, idle) = &node.watermarks;
    let mut strategy = match kind.as_deref() {
        Some("monotonous") => WatermarkStrategy::for_monotonous_timestamps(),
        Some("none") => WatermarkStrategy::no_watermarks(),
        Some("bounded") => WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(
            bound.unwrap_or(0),
        )),
        Some("generator") => {
            let factory =
                Python::attach(|py| need(node, &node.function2).map(|f| PyObj(f.0.clone_ref(py))))?;
            WatermarkStrategy::for_generator(move || PyWatermarkGenerator {
                factory: Python::attach(|py| PyObj(factory.0.clone_ref(py))),
                made: None,
            })
        }
        other => return Err(format!("unknown watermark strategy {other:?}")),
    };
    if let Some(ms) = idle {
        strategy = strategy.with_idleness(Duration::from_millis(*ms));
    }
    Ok(match &node.function {
        None => stream.assign_timestamps_and_watermarks(strategy),
        Some(f) => {
            let assigner = Python::attach(|py| PyTimestampAssigner {
                call: f.clone_ref(py),
            });
            stream.assign_timestamps_and_watermarks(strategy.with_timestamp_assigner(assigner))
        }
    })
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
        let collected = build(&env, &nodes, &classes, &totals)
            .map_err(pyo3::exceptions::PyValueError::new_err)?;
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
