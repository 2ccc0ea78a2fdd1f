//! Per-operator record counts: kept per worker in plain cells on the data path, and
//! summed over workers when the job ends.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Counters of one operator on one worker.
#[derive(Debug, Default)]
pub struct OperatorCounters {
    /// Records that entered the operator.
    pub records_in: Cell<u64>,
    /// Records the operator emitted.
    pub records_out: Cell<u64>,
    /// Records dropped because they arrived after their windows closed (Flink's
    /// `numLateRecordsDropped`).
    pub late_records_dropped: Cell<u64>,
}

impl OperatorCounters {
    /// Counts `n` late records dropped.
    #[inline]
    pub fn add_late_dropped(&self, n: usize) {
        self.late_records_dropped
            .set(self.late_records_dropped.get() + n as u64);
    }
    /// Adds `n` to the input count.
    #[inline]
    pub fn add_in(&self, n: usize) {
        self.records_in.set(self.records_in.get() + n as u64);
    }
    /// Adds `n` to the output count.
    #[inline]
    pub fn add_out(&self, n: usize) {
        self.records_out.set(self.records_out.get() + n as u64);
    }
}

/// The counters of every operator on one worker.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    counters: std::cell::RefCell<BTreeMap<usize, Rc<OperatorCounters>>>,
}

impl WorkerMetrics {
    /// The counters of node `id`, created on first use.
    pub fn counters(&self, id: usize) -> Rc<OperatorCounters> {
        Rc::clone(self.counters.borrow_mut().entry(id).or_default())
    }

    /// A snapshot: node id to (records in, records out, late records dropped).
    pub fn snapshot(&self) -> BTreeMap<usize, (u64, u64, u64)> {
        self.counters
            .borrow()
            .iter()
            .map(|(id, c)| {
                (
                    *id,
                    (
                        c.records_in.get(),
                        c.records_out.get(),
                        c.late_records_dropped.get(),
                    ),
                )
            })
            .collect()
    }
}

/// What one operator did over the whole job, summed over its subtasks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OperatorMetrics {
    /// The operator's node id in the job graph.
    pub id: usize,
    /// The operator's name.
    pub name: String,
    /// The operator's uid, if set.
    pub uid: Option<String>,
    /// The operator's parallelism.
    pub parallelism: usize,
    /// Records that entered the operator.
    pub records_in: u64,
    /// Records the operator emitted.
    pub records_out: u64,
    /// Late records the operator dropped (windows without a late-data side output).
    pub late_records_dropped: u64,
}
