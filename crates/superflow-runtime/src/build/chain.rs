//! A chain's stages: the traits a node implements to join a chain ([`NodeBuilder`],
//! [`Attach`]), the stages themselves ([`Consumer`], [`BinaryConsumer`]), and where a
//! chain's last stage puts its output ([`ChainOutput`], side outputs).

use std::cell::RefCell;
use std::rc::Rc;

use superflow_core::Data;

use crate::batch::{Batch, Records};
use crate::checkpoint::OperatorSnapshot;
use crate::graph::NodeId;
use crate::time::{WakeUp, WatermarkEvent, WatermarkMessage};

use super::{BatchStream, BuildCtx};

/// Builds a node's physical operator(s). Implemented by the API for each node kind.
pub trait NodeBuilder: Send + Sync {
    /// Builds this node, whose output nothing has built yet, and returns its stream.
    fn materialize<'s>(&self, ctx: &mut BuildCtx<'s>) -> BatchStream<'s>;
}

/// A node that can feed a chain: it takes the downstream consumer and builds the chain's
/// operator (or passes a wrapped consumer further up).
pub trait Attach<T>: Send + Sync {
    /// Feeds this node's records into `downstream`, and returns the chain operator's
    /// output stream.
    fn attach<'s>(
        &self,
        ctx: &mut BuildCtx<'s>,
        downstream: Box<dyn Consumer<T>>,
        chain: &mut ChainOutput,
    ) -> BatchStream<'s>;
}

/// One stage of a chain, seen from upstream: it takes batches of `T`, and the time
/// signals of its operator. Every stage passes the signals it does not consume on to
/// the next stage ([`forward_time_signals!`](crate::forward_time_signals) does that).
pub trait Consumer<T>: 'static {
    /// Consumes the records of `batch` (leaving it empty, its capacity for reuse).
    fn push(&mut self, batch: &mut Records<T>);
    /// The operator's combined input watermark advanced (or all its inputs went idle).
    fn watermark(&mut self, event: WatermarkEvent);
    /// Processing time reached a time some stage asked for (see [`WakeUp`]).
    fn on_processing_time(&mut self, now: i64);
    /// The input is exhausted: flush and close.
    fn finish(&mut self);
    /// Writes the stage's state for a checkpoint, then asks the next stage to
    /// ([`forward_snapshot!`](crate::forward_snapshot) does that for stateless stages).
    fn snapshot(&mut self, out: &mut OperatorSnapshot);
}

/// Implements [`Consumer::snapshot`] for a stage without state of its own.
#[macro_export]
macro_rules! forward_snapshot {
    ($next:ident) => {
        fn snapshot(&mut self, out: &mut $crate::checkpoint::OperatorSnapshot) {
            self.$next.snapshot(out)
        }
    };
}

/// Implements [`Consumer::watermark`] and [`Consumer::on_processing_time`] for a stage
/// that only passes them on to the stage in field `$next`.
#[macro_export]
macro_rules! forward_time_signals {
    ($next:ident) => {
        fn watermark(&mut self, event: $crate::time::WatermarkEvent) {
            self.$next.watermark(event)
        }
        fn on_processing_time(&mut self, now: i64) {
            self.$next.on_processing_time(now)
        }
    };
}

/// Where a chain's last stage puts its output, and the chain's name.
pub struct ChainOutput {
    pub(super) queue: Rc<RefCell<Vec<Batch>>>,
    pub(super) names: Vec<String>,
    pub(super) wake: WakeUp,
}

impl ChainOutput {
    /// A new, empty chain output.
    pub fn new() -> ChainOutput {
        ChainOutput {
            queue: Rc::new(RefCell::new(Vec::new())),
            names: Vec::new(),
            wake: WakeUp::default(),
        }
    }

    /// Where the chain's stages ask for processing-time calls.
    pub fn wake_up(&self) -> WakeUp {
        self.wake.clone()
    }

    /// Records that node `name` is part of the chain (called tail first).
    pub fn add_name(&mut self, name: &str) {
        self.names.push(name.to_string());
    }

    /// The chain's name, as Flink shows it: `Map -> Filter -> Sink`.
    pub fn name(&self) -> String {
        let mut names = self.names.clone();
        names.reverse();
        names.join(" -> ")
    }

    /// The consumer that ends a chain whose records leave the operator.
    pub fn tail<T: Data>(&self) -> Box<dyn Consumer<T>> {
        Box::new(QueueTail {
            queue: Rc::clone(&self.queue),
            tag: 0,
        })
    }

    /// Emits a side output's batch from a stage of this chain.
    pub fn side_output_sink(&self) -> SideOutputSink {
        SideOutputSink {
            queue: Rc::clone(&self.queue),
        }
    }
}

impl Default for ChainOutput {
    fn default() -> Self {
        ChainOutput::new()
    }
}

struct QueueTail {
    queue: Rc<RefCell<Vec<Batch>>>,
    tag: u32,
}

impl<T: Data> Consumer<T> for QueueTail {
    fn push(&mut self, batch: &mut Records<T>) {
        if !batch.is_empty() {
            self.queue
                .borrow_mut()
                .push(Batch::local_records(std::mem::take(batch)).with_tag(self.tag));
        }
    }
    fn watermark(&mut self, event: WatermarkEvent) {
        // The operator stamps the channel (origin, subtask) when it sends the batch.
        let message = WatermarkMessage {
            origin: 0,
            subtask: 0,
            value: match event {
                WatermarkEvent::Watermark(w) => w,
                WatermarkEvent::Idle => i64::MIN,
            },
            idle: event == WatermarkEvent::Idle,
        };
        self.queue.borrow_mut().push(Batch::watermark(message, 0));
    }
    fn on_processing_time(&mut self, _now: i64) {}
    fn finish(&mut self) {}
    fn snapshot(&mut self, _out: &mut OperatorSnapshot) {}
}

/// Where a stage puts side-output records: batches tagged with the side output's tag,
/// on the same physical stream as the main output.
#[derive(Clone)]
pub struct SideOutputSink {
    queue: Rc<RefCell<Vec<Batch>>>,
}

impl SideOutputSink {
    /// Emits `records` on side output `tag`.
    pub fn emit<T: Data>(&self, tag: u32, records: Records<T>) {
        if !records.is_empty() {
            self.queue
                .borrow_mut()
                .push(Batch::local_records(records).with_tag(tag));
        }
    }
}

/// The tag of side output `name` of node `node`: stable, and distinct from 0 (main).
pub fn side_output_tag(node: NodeId, name: &str) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (node, name).hash(&mut hasher);
    (hasher.finish() as u32).max(1)
}

/// The logic of a two-input operator.
pub trait BinaryConsumer<A, B>: 'static {
    /// Consumes records of the first input.
    fn push1(&mut self, batch: &mut Records<A>);
    /// Consumes records of the second input.
    fn push2(&mut self, batch: &mut Records<B>);
    /// The combined watermark of both inputs advanced (or both went idle).
    fn watermark(&mut self, event: WatermarkEvent);
    /// Processing time reached a time some stage asked for.
    fn on_processing_time(&mut self, now: i64);
    /// Both inputs are exhausted.
    fn finish(&mut self);
    /// Writes the operator's state for a checkpoint, then asks the next stage to.
    fn snapshot(&mut self, out: &mut OperatorSnapshot);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_is_named_head_first_and_its_tail_queues_records_and_watermarks() {
        let mut chain = ChainOutput::new();
        for name in ["Print", "Filter", "Map"] {
            chain.add_name(name);
        }
        assert_eq!(chain.name(), "Map -> Filter -> Print");
        let mut tail = chain.tail::<u64>();
        let mut records = Records::untimed(vec![1u64, 2]);
        tail.push(&mut records);
        tail.push(&mut Records::default());
        tail.watermark(WatermarkEvent::Watermark(7));
        tail.watermark(WatermarkEvent::Idle);
        let mut queued = std::mem::take(&mut *chain.queue.borrow_mut());
        assert_eq!(queued.len(), 3, "an empty batch is not queued");
        let taken: Records<u64> = queued[0].take_records(None);
        assert_eq!((taken.values, queued[0].tag()), (vec![1, 2], 0));
        let marks: Vec<_> = queued[1..]
            .iter()
            .filter_map(|b| b.as_watermark().map(|w| (w.value, w.idle)))
            .collect();
        assert_eq!(marks, vec![(7, false), (i64::MIN, true)]);
    }

    #[test]
    fn side_outputs_are_queued_under_their_tag() {
        let chain = ChainOutput::new();
        let tag = side_output_tag(3, "late");
        assert_ne!(tag, 0, "0 is the main output");
        assert_ne!(tag, side_output_tag(4, "late"));
        assert_eq!(tag, side_output_tag(3, "late"));
        chain
            .side_output_sink()
            .emit(tag, Records::untimed(vec!["x".to_string()]));
        chain
            .side_output_sink()
            .emit::<String>(tag, Records::default());
        let queued = chain.queue.borrow();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].tag(), tag);
    }
}
