//! The builders of a Python plan's operations: one function per operation name, found
//! in [`OPERATIONS`]. A builder reads its node and the streams its inputs became
//! ([`PlanBuilder`]), and returns what the node becomes ([`Built`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;

use superflow_api::{
    Collector, DataStream, KeyedStream, MapStateDescriptor, OutputTag, ProcessContext,
    ProcessFunction, SendOn, StreamExecutionEnvironment, WatermarkStrategy,
};
use superflow_connectors::{
    BucketAssigner, CommittedAfterRestore, FileSink, OutputFileConfig, RollingPolicy,
    TextFileSource,
};
use superflow_core::UserError;
use superflow_runtime::Records;

use crate::functions::{
    each_record_attached, raise, OneInputKind, PyBroadcastProcess, PyCoFunction, PyJoinProcess,
    PyKeySelector, PyKeyedProcess, PyOneInput, PyReduce, PySink, PyTimestampAssigner,
    PyWatermarkGenerator,
};
use crate::record::{PyKey, PyObj};
use crate::window::PyCoGroup;

use super::sinks::{BenchSink, BenchTotals, CollectSink};
use super::{Built, Collected, PlanError, PlanNode, PythonClasses};

/// Builds one operation of the plan.
type BuildOperation = fn(&PlanBuilder<'_>, &PlanNode) -> Result<Built, PlanError>;

/// Every operation a plan may hold, by the name `superflow.datastream` gives it.
const OPERATIONS: &[(&str, BuildOperation)] = &[
    ("from_collection", from_collection),
    ("from_sequence", from_sequence),
    ("read_text_file", read_text_file),
    ("map", map),
    ("flat_map", flat_map),
    ("filter", filter),
    ("process", process),
    ("key_by", key_by),
    ("reduce", reduce),
    ("window", window),
    ("keyed_process", keyed_process),
    ("union", union),
    ("co_map", co_map),
    ("co_flat_map", co_flat_map),
    ("watermarks", watermarks),
    ("co_keyed_process", co_keyed_process),
    ("broadcast_process", broadcast_process),
    ("interval_join", interval_join),
    ("window_join", window_join),
    ("side_output", side_output),
    ("forward", |b, node| {
        Ok(Built::Stream(b.stream_of(node, 0)?.forward()))
    }),
    ("rebalance", |b, node| {
        Ok(Built::Stream(b.stream_of(node, 0)?.rebalance()))
    }),
    ("rescale", |b, node| {
        Ok(Built::Stream(b.stream_of(node, 0)?.rescale()))
    }),
    ("shuffle", |b, node| {
        Ok(Built::Stream(b.stream_of(node, 0)?.shuffle()))
    }),
    ("broadcast", |b, node| {
        Ok(Built::Stream(b.stream_of(node, 0)?.broadcast()))
    }),
    ("global", |b, node| {
        Ok(Built::Stream(b.stream_of(node, 0)?.global()))
    }),
    ("partition_custom", partition_custom),
    ("print", print),
    ("collect", collect),
    ("_bench_sink", bench_sink),
    ("file_sink", file_sink),
    ("sink", sink),
];

/// What building a plan's operations shares: the environment, the Python classes, the
/// sinks' shared buffers, and what each node built so far became.
pub(super) struct PlanBuilder<'a> {
    env: &'a StreamExecutionEnvironment,
    classes: &'a PythonClasses,
    bench: &'a Arc<Mutex<BenchTotals>>,
    collected: Collected,
    built: HashMap<usize, Built>,
}

impl<'a> PlanBuilder<'a> {
    pub(super) fn new(
        env: &'a StreamExecutionEnvironment,
        classes: &'a PythonClasses,
        bench: &'a Arc<Mutex<BenchTotals>>,
    ) -> PlanBuilder<'a> {
        PlanBuilder {
            env,
            classes,
            bench,
            collected: Arc::default(),
            built: HashMap::new(),
        }
    }

    /// Builds `node` (whose inputs are built) with its operation's builder.
    pub(super) fn add(&mut self, node: &PlanNode) -> Result<(), PlanError> {
        let Some((_, build)) = OPERATIONS.iter().find(|(op, _)| *op == node.op) else {
            return Err(PlanError::UnknownOperation(node.op.clone()));
        };
        let result = match (build(self, node)?, &node.declared) {
            // A declared type that changes values (32-bit floats): the records take its
            // form as they leave the operator, as PyFlink's pass through Java.
            (Built::Stream(s), Some(convert)) => {
                let function = Python::attach(|py| {
                    py_one_input(
                        py,
                        OneInputKind::Map,
                        convert.clone_ref(py),
                        None,
                        self.classes,
                    )
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
        self.built.insert(node.id, result);
        Ok(())
    }

    /// The records of the plan's collect nodes, once the job ran.
    pub(super) fn collected(&self) -> Collected {
        Arc::clone(&self.collected)
    }

    /// The stream of `node`'s input `index` (keyed inputs as their keyed stream).
    fn stream_of(&self, node: &PlanNode, index: usize) -> Result<DataStream<PyObj>, PlanError> {
        let id = node
            .inputs
            .get(index)
            .ok_or_else(|| PlanError::MissingInput {
                node: node.describe(),
                index,
            })?;
        match self.built.get(id) {
            Some(Built::Stream(s)) => Ok(s.clone()),
            Some(Built::Keyed(s, f)) => {
                let selector = Python::attach(|py| key_selector(py, f));
                Ok(s.key_by(selector).as_stream())
            }
            _ => Err(PlanError::ReadsSink(node.describe())),
        }
    }

    /// The keyed stream of `node`'s input `index`.
    fn keyed_input(
        &self,
        node: &PlanNode,
        index: usize,
    ) -> Result<KeyedStream<PyObj, PyKey, PyKeySelector>, PlanError> {
        match node.inputs.get(index).and_then(|id| self.built.get(id)) {
            Some(Built::Keyed(s, f)) => Ok(s.key_by(Python::attach(|py| key_selector(py, f)))),
            _ => Err(PlanError::NotKeyed(node.describe())),
        }
    }

    /// The keyed stream of `node`'s first input.
    fn keyed_of(
        &self,
        node: &PlanNode,
    ) -> Result<KeyedStream<PyObj, PyKey, PyKeySelector>, PlanError> {
        self.keyed_input(node, 0)
    }

    /// A keyed (co-, broadcast) process node's Python function.
    fn keyed_process(&self, node: &PlanNode) -> Result<PyKeyedProcess, PlanError> {
        Python::attach(|py| {
            need(node, &node.function).map(|f| {
                PyKeyedProcess::new(
                    f.clone_ref(py),
                    self.classes.side.clone(),
                    self.classes.runtime_context.clone_ref(py),
                )
            })
        })
    }

    /// `node`'s Python function of one input, applied to its input.
    fn one_input(
        &self,
        node: &PlanNode,
        kind: OneInputKind,
    ) -> Result<DataStream<PyObj>, PlanError> {
        let function = Python::attach(|py| {
            let call = node
                .function
                .as_ref()
                .map_or_else(|| PyObj(py.None()), |f| f.clone_ref(py));
            py_one_input(py, kind, call, node.rich.as_ref(), self.classes)
        });
        need(node, &node.function)?;
        Ok(self.stream_of(node, 0)?.process(function))
    }

    /// `node`'s function, for the operation's Rust side.
    fn function(&self, node: &PlanNode) -> Result<PyObj, PlanError> {
        Python::attach(|py| need(node, &node.function).map(|f| f.clone_ref(py)))
    }
}

fn from_collection(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    Ok(Built::Stream(b.env.from_collection(node.elements.clone())))
}

fn from_sequence(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let (start, end) = node.range;
    let source = configured(node, b.env.from_sequence(start, end));
    Ok(Built::Converted(to_python(
        node,
        source.process(ToPython(|py, v: i64| {
            pyo3::types::PyInt::new(py, v).into_any()
        })),
    )))
}

fn read_text_file(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let path = node.text.clone().unwrap_or_default();
    let mut files = TextFileSource::new(path);
    if let Some(charset) = &node.charset {
        files = files.with_charset(charset);
    }
    // `start` is the discovery interval in ms; 0 for a bounded source.
    let source = match u64::try_from(node.range.0) {
        Ok(interval) if interval > 0 => b
            .env
            .from_source(files.monitor_continuously(std::time::Duration::from_millis(interval))),
        _ => b.env.from_source(files),
    };
    let source = configured(node, source);
    Ok(Built::Converted(to_python(
        node,
        source.process(ToPython(|py, line: String| {
            pyo3::types::PyString::new(py, &line).into_any()
        })),
    )))
}

// Python functions of unkeyed streams have no state to keep.

fn map(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    Ok(Built::Stream(
        b.one_input(node, OneInputKind::Map)?
            .name("Map")
            .stateless(),
    ))
}

fn flat_map(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let stream = b.one_input(node, OneInputKind::FlatMap)?;
    Ok(Built::Stream(stream.name("Flat Map").stateless()))
}

fn filter(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let stream = b.one_input(node, OneInputKind::Filter)?;
    Ok(Built::Stream(stream.name("Filter").stateless()))
}

fn process(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let stream = b.one_input(node, OneInputKind::Process)?;
    Ok(Built::Stream(stream.name("Process").stateless()))
}

fn key_by(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    Ok(Built::Keyed(b.stream_of(node, 0)?, b.function(node)?))
}

fn reduce(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let call = b.function(node)?;
    let stream = b.keyed_of(node)?.reduce(PyReduce { call });
    Ok(Built::Stream(stream.name("Keyed Reduce")))
}

fn window(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let spec = node
        .window
        .as_ref()
        .ok_or_else(|| PlanError::Missing(node.describe(), "window assigner"))?;
    let classes = b.classes;
    let stream = crate::window::window(b.keyed_of(node)?, spec, &classes.windows, &classes.side)
        .map_err(|reason| PlanError::Window(node.describe(), reason))?;
    Ok(Built::Stream(stream.name("Window")))
}

fn keyed_process(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let function = b.keyed_process(node)?;
    Ok(Built::Stream(
        b.keyed_of(node)?.process(function).name("KeyedProcess"),
    ))
}

fn union(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let first = b.stream_of(node, 0)?;
    let others = (1..node.inputs.len())
        .map(|index| b.stream_of(node, index))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&DataStream<PyObj>> = others.iter().collect();
    Ok(Built::Stream(first.union(&refs)))
}

/// The two functions of a co-map or co-flat-map node.
fn co_function(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<PyCoFunction, PlanError> {
    Python::attach(|py| {
        Ok(PyCoFunction {
            first: need(node, &node.function)?.clone_ref(py),
            second: need(node, &node.function2)?.clone_ref(py),
            side: b.classes.side.clone(),
        })
    })
}

fn co_map(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let connected = b.stream_of(node, 0)?.connect(&b.stream_of(node, 1)?);
    Ok(Built::Stream(
        connected.map(co_function(b, node)?).name("Co-Map"),
    ))
}

fn co_flat_map(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let connected = b.stream_of(node, 0)?.connect(&b.stream_of(node, 1)?);
    let function = co_function(b, node)?;
    Ok(Built::Stream(
        connected.flat_map(function).name("Co-Flat Map"),
    ))
}

fn watermarks(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    Ok(Built::Stream(assign_watermarks(
        node,
        b.stream_of(node, 0)?,
    )?))
}

fn co_keyed_process(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let (a, c) = (b.stream_of(node, 0)?, b.stream_of(node, 1)?);
    let (key1, key2) = key_pair(node)?;
    let function = b.keyed_process(node)?;
    let keyed = a.connect(&c).key_by(key1, key2);
    Ok(Built::Stream(
        keyed.process(function).name("KeyedCoProcess"),
    ))
}

fn broadcast_process(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let descriptors: Vec<MapStateDescriptor<(), PyObj>> =
        node.names.iter().map(MapStateDescriptor::new).collect();
    let broadcast = b.stream_of(node, 1)?.broadcast_with(&descriptors);
    let keyed = matches!(
        node.inputs.first().and_then(|id| b.built.get(id)),
        Some(Built::Keyed(..))
    );
    let function = PyBroadcastProcess::new(b.keyed_process(node)?, node.names.clone(), keyed);
    Ok(Built::Stream(if keyed {
        b.keyed_of(node)?
            .connect_broadcast(&broadcast)
            .process(function)
            .name("Keyed Broadcast Process")
    } else {
        b.stream_of(node, 0)?
            .connect_broadcast(&broadcast)
            .process(function)
            .name("Broadcast Process")
    }))
}

fn interval_join(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let right = b
        .keyed_input(node, 1)
        .map_err(|_| PlanError::NotKeyed(node.describe()))?;
    let (lower, upper) = node.range;
    let mut joined = b
        .keyed_of(node)?
        .interval_join(&right)
        .between(lower, upper);
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
    let function = Python::attach(|py| -> Result<_, PlanError> {
        Ok(PyJoinProcess {
            function: need(node, &node.function)?.clone_ref(py),
            context_class: b.classes.join_context.clone_ref(py),
            side: b.classes.side.clone(),
        })
    })?;
    Ok(Built::Stream(
        joined.process(function).name("Interval Join"),
    ))
}

fn window_join(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let (a, c) = (b.stream_of(node, 0)?, b.stream_of(node, 1)?);
    let spec = node
        .window
        .as_ref()
        .ok_or_else(|| PlanError::Missing(node.describe(), "window assigner"))?;
    let (key1, key2) = key_pair(node)?;
    let function = Python::attach(|py| {
        need(node, &node.function).map(|f| PyCoGroup {
            function: f.clone_ref(py),
            join: spec.kind == "join",
            side: b.classes.side.clone(),
        })
    })?;
    let keyed = a.join(&c).where_(key1).equal_to(key2);
    let name = if spec.kind == "join" {
        "Window Join"
    } else {
        "CoGroup"
    };
    let joined = crate::window::window_join(keyed, spec, function)
        .map_err(|reason| PlanError::Window(node.describe(), reason))?;
    Ok(Built::Stream(joined.name(name)))
}

fn side_output(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let tag = node.text.clone().unwrap_or_default();
    let stream = b.stream_of(node, 0)?;
    Ok(Built::Stream(
        stream.get_side_output(&OutputTag::<PyObj>::new(tag)),
    ))
}

fn partition_custom(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let (partitioner, selector) = Python::attach(|py| -> Result<_, PlanError> {
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
    Ok(Built::Stream(
        b.stream_of(node, 0)?.partition_custom(partition, select),
    ))
}

fn print(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    // `text`: the sink identifier of `print(sink_identifier)`.
    let sink = match &node.text {
        Some(identifier) => b.stream_of(node, 0)?.print_with_identifier(identifier),
        None => b.stream_of(node, 0)?.print(),
    };
    configured(node, sink);
    Ok(Built::Sink)
}

fn collect(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let sink = b
        .stream_of(node, 0)?
        .add_sink(CollectSink::new(node.id, Arc::clone(&b.collected)))
        .name("Collect Sink");
    configured(node, sink);
    Ok(Built::Sink)
}

fn bench_sink(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let sink = BenchSink::new(
        node.range.0.try_into().ok(),
        node.range.1.try_into().ok(),
        Arc::clone(b.bench),
    );
    b.stream_of(node, 0)?.add_sink(sink).name("Bench Sink");
    Ok(Built::Sink)
}

fn file_sink(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let dir = node
        .text
        .clone()
        .ok_or_else(|| PlanError::Missing(node.describe(), "path"))?;
    let (part_size, rollover_ms) = node.range;
    let mut policy = RollingPolicy::default();
    if part_size > 0 {
        policy.max_part_size = part_size as u64;
    }
    if rollover_ms > 0 {
        policy.rollover_interval = std::time::Duration::from_millis(rollover_ms as u64);
    }
    let mut names = OutputFileConfig::default();
    let mut committed_after_restore = CommittedAfterRestore::default();
    if let [prefix, suffix, rest @ ..] = node.names.as_slice() {
        names.part_prefix.clone_from(prefix);
        names.part_suffix.clone_from(suffix);
        if let Some(choice) = rest.first() {
            committed_after_restore = choice
                .parse()
                .map_err(|reason| PlanError::Invalid(node.describe(), reason))?;
        }
    }
    let buckets = match node.bucket.as_slice() {
        [] => BucketAssigner::default(),
        [Some(kind), ..] if kind == "base_path" => BucketAssigner::base_path(),
        [Some(kind), Some(format), zone] if kind == "date_time" => {
            BucketAssigner::date_time(format, zone.as_deref())
        }
        other => {
            return Err(PlanError::Invalid(
                node.describe(),
                format!("unknown bucket assigner {other:?}"),
            ))
        }
    };
    let name = format!("File Sink: {dir}");
    let sink = b
        .stream_of(node, 0)?
        .sink_to(
            FileSink::new(dir)
                .with_rolling_policy(policy)
                .with_output_file_config(names)
                .with_bucket_assigner(buckets)
                .with_committed_after_restore(committed_after_restore),
        )
        .name(&name);
    configured(node, sink);
    Ok(Built::Sink)
}

fn sink(b: &PlanBuilder<'_>, node: &PlanNode) -> Result<Built, PlanError> {
    let call = b.function(node)?;
    let sink = b.stream_of(node, 0)?.add_sink(PySink { call });
    configured(node, sink.name("Sink").stateless());
    Ok(Built::Sink)
}

fn key_selector(py: Python<'_>, f: &PyObj) -> PyKeySelector {
    PyKeySelector {
        call: f.clone_ref(py),
    }
}

fn need<'a>(node: &'a PlanNode, f: &'a Option<PyObj>) -> Result<&'a PyObj, PlanError> {
    f.as_ref()
        .ok_or_else(|| PlanError::Missing(node.describe(), "function"))
}

/// The two key selectors of a node over two keyed inputs (keyed co-process, window join).
fn key_pair(node: &PlanNode) -> Result<(PyKeySelector, PyKeySelector), PlanError> {
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
        send_on: SendOn<'_, PyObj>,
    ) -> Result<(), UserError> {
        each_record_attached(batch, ctx, out, send_on, |py, value, _, out| {
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

/// `assign_timestamps_and_watermarks` with a Python `WatermarkStrategy`.
fn assign_watermarks(
    node: &PlanNode,
    stream: DataStream<PyObj>,
) -> Result<DataStream<PyObj>, PlanError> {
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
        other => {
            return Err(PlanError::Invalid(
                node.describe(),
                format!("unknown watermark strategy {other:?}"),
            ))
        }
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
