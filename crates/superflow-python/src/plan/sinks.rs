//! The sinks the binding adds to a Python plan: `execute_and_collect`'s, and the
//! benchmark's, which sums in Rust so that `superflow.bench` times the job's Python
//! functions and not a Python sink.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use superflow_core::UserError;
use superflow_runtime::checkpoint::{FunctionInitializationContext, FunctionSnapshotContext};
use superflow_runtime::sink::SinkFunction;

use crate::record::{PyKey, PyObj};

/// The records of each `execute_and_collect` node, by node id.
pub(super) type Collected = Arc<Mutex<HashMap<usize, Vec<PyObj>>>>;

/// Gathers a subtask's records and hands them over when the input ends.
pub(super) struct CollectSink {
    node: usize,
    shared: Collected,
    local: Vec<PyObj>,
}

impl CollectSink {
    pub(super) fn new(node: usize, shared: Collected) -> CollectSink {
        CollectSink {
            node,
            shared,
            local: Vec::new(),
        }
    }
}

impl Clone for CollectSink {
    fn clone(&self) -> Self {
        CollectSink::new(self.node, Arc::clone(&self.shared))
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
pub(super) struct BenchTotals {
    pub(super) records: u64,
    pub(super) sum: i64,
    pub(super) keyed_max_sum: i64,
}

/// The sink of `python3 -m superflow.bench`: counts records and sums an integer field
/// (and, with a key field, the largest value per key), in Rust, so that the benchmark
/// times the Python functions of the job and not a Python sink.
pub(super) struct BenchSink {
    field: Option<usize>,
    key_field: Option<usize>,
    shared: Arc<Mutex<BenchTotals>>,
    local: BenchTotals,
    max_by_key: rustc_hash::FxHashMap<PyKey, i64>,
}

impl Clone for BenchSink {
    fn clone(&self) -> Self {
        BenchSink::new(self.field, self.key_field, Arc::clone(&self.shared))
    }
}

impl BenchSink {
    /// Sums field `field` of each record (the record itself without one), and the
    /// largest per key of field `key_field`, into `shared`.
    pub(super) fn new(
        field: Option<usize>,
        key_field: Option<usize>,
        shared: Arc<Mutex<BenchTotals>>,
    ) -> BenchSink {
        BenchSink {
            field,
            key_field,
            shared,
            local: BenchTotals::default(),
            max_by_key: Default::default(),
        }
    }

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
