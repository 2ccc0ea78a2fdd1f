//! Partitioning: how records move between the subtasks of two operators.
//!
//! Each non-forward edge becomes a timely exchange whose distributor hands every batch
//! to a [`BatchRouter`]. Routers are typed (built by the API, where the record type is
//! known) and run once per batch; the per-record work inside them is monomorphic.
//! Subtask `i` of an operator runs on worker `i`, so a target subtask is a worker index.

use std::sync::Arc;

use serde::Serialize;
use superflow_core::Data;
use timely::communication::Push;
use timely::dataflow::channels::pact::DistributorPact;
use timely::dataflow::channels::pushers::exchange::Distributor;
use timely::dataflow::channels::Message;
use timely::progress::Stamp;

use crate::batch::{Batch, DecodeFn, Records};

/// The partitioning scheme of an edge, as the user chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKind {
    /// Records stay on the producing subtask (and chain when parallelism matches).
    Forward,
    /// Round-robin over all downstream subtasks.
    Rebalance,
    /// Round-robin over a local subset of downstream subtasks.
    Rescale,
    /// Uniformly random.
    Shuffle,
    /// Every record to every downstream subtask.
    Broadcast,
    /// Everything to subtask 0.
    Global,
    /// By key group of the record's key.
    Hash,
    /// By a user partitioner.
    Custom,
}

/// What a router knows about where it runs.
#[derive(Debug, Clone)]
pub struct RouteContext {
    /// The worker (= upstream subtask) this router runs on.
    pub worker: usize,
    /// The parallelism of the producing operator.
    pub source_parallelism: usize,
    /// The parallelism of the consuming operator.
    pub target_parallelism: usize,
    /// The consuming operator's max parallelism (its number of key groups).
    pub max_parallelism: usize,
    /// The edge, as a failure of its key selector or partitioner names it:
    /// `Keyed Sum (key-by from Collection Source)`.
    pub edge: std::sync::Arc<str>,
}

/// Splits a batch into per-worker batches.
pub trait BatchRouter: 'static {
    /// Moves the records of `batch` into `out` (one slot per worker).
    fn route(&mut self, batch: &mut Batch, out: &mut [Batch]);
}

/// Builds a router on each worker.
pub type RouterFactory = Arc<dyn Fn(&RouteContext) -> Box<dyn BatchRouter> + Send + Sync>;

/// How an edge distributes records over the consumer's subtasks (Flink's
/// `StreamPartitioner`): the runtime's side of the user's choice, whose key selector or
/// `Partitioner` (the API's user trait) sits inside the router.
#[derive(Clone)]
pub struct StreamPartitioner {
    /// The scheme.
    pub kind: PartitionKind,
    /// The router (none for forward edges).
    pub router: Option<RouterFactory>,
    /// Decodes batches from other processes; `None` means the edge cannot cross processes.
    pub decode: Option<DecodeFn>,
}

impl std::fmt::Debug for StreamPartitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamPartitioner")
            .field("kind", &self.kind)
            .field("crosses_processes", &self.decode.is_some())
            .finish()
    }
}

impl StreamPartitioner {
    /// The forward partitioner.
    pub fn forward() -> StreamPartitioner {
        StreamPartitioner {
            kind: PartitionKind::Forward,
            router: None,
            decode: None,
        }
    }

    /// A partitioner from a per-record target function (`ctx` in, target subtask out),
    /// for records that can cross processes.
    pub fn by_target<T, F, M>(kind: PartitionKind, make: M) -> StreamPartitioner
    where
        T: Data + Serialize + serde::de::DeserializeOwned,
        F: FnMut(&T) -> usize + 'static,
        M: Fn(&RouteContext) -> F + Send + Sync + 'static,
    {
        let factory: RouterFactory = Arc::new(move |ctx: &RouteContext| {
            Box::new(RecordRouter::<T, F> {
                select: make(ctx),
                buffers: Vec::new(),
                wrap: Batch::exchangeable_records::<T>,
            }) as Box<dyn BatchRouter>
        });
        StreamPartitioner {
            kind,
            router: Some(factory),
            decode: Some(crate::batch::decoder_for::<T>()),
        }
    }

    /// Round-robin for records that never leave the process: the implicit rebalance
    /// Flink inserts between operators of different parallelism.
    pub fn local_rebalance<T: Data>() -> StreamPartitioner {
        let factory: RouterFactory = Arc::new(move |ctx: &RouteContext| {
            let mut next = round_robin(ctx);
            Box::new(RecordRouter::<T, _> {
                select: move |_: &T| next(),
                buffers: Vec::new(),
                wrap: Batch::local_records::<T>,
            }) as Box<dyn BatchRouter>
        });
        StreamPartitioner {
            kind: PartitionKind::Rebalance,
            router: Some(factory),
            decode: None,
        }
    }

    /// Whether batches on this edge can be sent to another process.
    pub fn crosses_processes(&self) -> bool {
        self.kind == PartitionKind::Forward || self.decode.is_some()
    }
}

/// The round-robin target sequence of a rebalance, starting after the worker's index so
/// that subtasks do not all begin with the same target.
pub fn round_robin(ctx: &RouteContext) -> impl FnMut() -> usize {
    let mut next = ctx.worker;
    let n = ctx.target_parallelism.max(1);
    move || {
        next = (next + 1) % n;
        next
    }
}

/// The targets of upstream subtask `ctx.worker` under rescale (Flink's pointwise pattern).
pub fn rescale_targets(ctx: &RouteContext) -> std::ops::Range<usize> {
    let (s, ps, pt) = (
        ctx.worker,
        ctx.source_parallelism.max(1),
        ctx.target_parallelism.max(1),
    );
    if pt >= ps {
        (s * pt / ps)..((s + 1) * pt / ps).max(s * pt / ps + 1)
    } else {
        let t = s * pt / ps;
        t..t + 1
    }
}

struct RecordRouter<T, F> {
    select: F,
    buffers: Vec<Records<T>>,
    wrap: fn(Records<T>) -> Batch,
}

impl<T: Data, F: FnMut(&T) -> usize + 'static> RecordRouter<T, F> {
    #[inline]
    fn target(&mut self, record: &T, workers: usize) -> usize {
        let target = (self.select)(record);
        // A custom partitioner may return an index out of range: Flink fails the job.
        if target >= workers {
            panic!("partitioner chose subtask {target}, but only {workers} exist");
        }
        target
    }
}

impl<T: Data, F: FnMut(&T) -> usize + 'static> BatchRouter for RecordRouter<T, F> {
    fn route(&mut self, batch: &mut Batch, out: &mut [Batch]) {
        if self.buffers.len() != out.len() {
            self.buffers = (0..out.len()).map(|_| Records::default()).collect();
        }
        let workers = out.len();
        let records = batch.take_records::<T>(None);
        match records.timestamps {
            None => {
                for record in records.values {
                    let target = self.target(&record, workers);
                    self.buffers[target].values.push(record);
                }
            }
            Some(timestamps) => {
                for (record, t) in records.values.into_iter().zip(timestamps) {
                    let target = self.target(&record, workers);
                    self.buffers[target].push(record, Some(t));
                }
            }
        }
        for (slot, buffer) in out.iter_mut().zip(self.buffers.iter_mut()) {
            if !buffer.is_empty() {
                *slot = (self.wrap)(std::mem::take(buffer));
            }
        }
    }
}

/// Sends whole batches to the target stored in each batch (used after a broadcast
/// fan-out, which copies a batch once per target before the exchange).
pub struct TaggedBatchRouter;

impl BatchRouter for TaggedBatchRouter {
    fn route(&mut self, batch: &mut Batch, out: &mut [Batch]) {
        let target = batch.target().unwrap_or(0);
        out[target] = std::mem::take(batch);
    }
}

/// The timely distributor of an exchange edge.
pub struct BatchDistributor {
    router: Box<dyn BatchRouter>,
    edge: std::sync::Arc<str>,
    out: Vec<Batch>,
    worker: usize,
}

impl Distributor<Batch> for BatchDistributor {
    fn partition<T: Clone, P: Push<Message<T, Batch>>>(
        &mut self,
        container: &mut Batch,
        stamp: &Stamp<T>,
        pushers: &mut [P],
    ) {
        if container.as_watermark().is_some() {
            // Every receiver tracks every sender's watermark.
            for pusher in pushers.iter_mut() {
                let mut copy = container.watermark_copy();
                Message::push_at(&mut copy, stamp.clone(), pusher);
            }
            return;
        }
        if container.tag() != 0 {
            // A side output's batch on the main output's edge: the consumer skips it, but
            // progress tracking counts it, so it stays on this worker unrouted.
            if let Some(pusher) = pushers.get_mut(self.worker) {
                Message::push_at(container, stamp.clone(), pusher);
                // A pusher may hand back a recycled container that still holds records
                // (timely's `push_at` does not clear it): it must not be sent again.
                *container = Batch::default();
            }
            return;
        }
        if self.out.len() != pushers.len() {
            self.out = (0..pushers.len()).map(|_| Batch::default()).collect();
        }
        // A key selector or a custom partitioner is user code: its panic fails the job
        // naming the edge, not the worker (nor, on several processes, a lost connection).
        let (router, out) = (&mut self.router, &mut self.out);
        crate::failure::guard(&self.edge, self.worker, || router.route(container, out));
        for (batch, pusher) in self.out.iter_mut().zip(pushers.iter_mut()) {
            if !batch.is_empty() {
                Message::push_at(batch, stamp.clone(), pusher);
                // As above: a recycled container left in the slot would be pushed again
                // by a later call whose router leaves this target's slot alone.
                *batch = Batch::default();
            }
        }
    }

    fn flush<T: Clone, P: Push<Message<T, Batch>>>(
        &mut self,
        _stamp: &Stamp<T>,
        _pushers: &mut [P],
    ) {
    }
}

/// The timely pact of an exchange edge.
pub type BatchPact = DistributorPact<Box<dyn FnOnce(usize) -> BatchDistributor>>;

/// Builds the pact for an edge with router `factory` on the current worker.
pub fn pact(factory: &RouterFactory, ctx: &RouteContext) -> BatchPact {
    let router = factory(ctx);
    let worker = ctx.worker;
    let edge = std::sync::Arc::clone(&ctx.edge);
    DistributorPact(Box::new(move |_peers| BatchDistributor {
        router,
        out: Vec::new(),
        worker,
        edge,
    }))
}
