//! A chain's stages: the traits a node implements to join a chain ([`NodeBuilder`],
//! [`Attach`]), the stages themselves ([`Stage`], with its lifecycle hooks, and its
//! inputs [`OneInputStage`], [`TwoInputStage`]), and where a chain's last stage puts
//! its output ([`ChainOutput`], side outputs).

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

/// A node that can feed a chain: it takes the downstream stage and builds the chain's
/// operator (or passes a wrapped stage further up).
pub trait Attach<T>: Send + Sync {
    /// Feeds this node's records into `downstream`, and returns the chain operator's
    /// output stream.
    fn attach<'s>(
        &self,
        ctx: &mut BuildCtx<'s>,
        downstream: Box<dyn OneInputStage<T>>,
        chain: &mut ChainOutput,
    ) -> BatchStream<'s>;
}

/// The lifecycle of a chain's stage, apart from its input. Each hook's default passes
/// the call on to the next stage, so a stage implements the hooks it acts on and
/// nothing else. The operator ([`OperatorCore`](super::operator_core)) calls `open`
/// once before anything else, and only on the subtasks that run (those below the
/// chain's parallelism): `finish` and `snapshot` never reach an idle subtask's stages,
/// so no stage checks its subtask or keeps an `opened` flag.
pub trait Stage: 'static {
    /// The stage this one hands its output and signals to; `None` ends the chain.
    fn next_stage(&mut self) -> Option<&mut dyn Stage>;
    /// Runs the user function's `open` (and restores its operator state).
    fn open(&mut self) {
        if let Some(next) = self.next_stage() {
            next.open();
        }
    }
    /// The operator's combined input watermark advanced (or all its inputs went idle).
    fn watermark(&mut self, event: WatermarkEvent) {
        if let Some(next) = self.next_stage() {
            next.watermark(event);
        }
    }
    /// Processing time reached a time some stage asked for (see [`WakeUp`]).
    fn on_processing_time(&mut self, now: i64) {
        if let Some(next) = self.next_stage() {
            next.on_processing_time(now);
        }
    }
    /// The input is exhausted: flush, close the user function, and pass it on.
    fn finish(&mut self) {
        if let Some(next) = self.next_stage() {
            next.finish();
        }
    }
    /// Writes the stage's state for a checkpoint, then asks the next stage to.
    fn snapshot(&mut self, out: &mut OperatorSnapshot) {
        if let Some(next) = self.next_stage() {
            next.snapshot(out);
        }
    }
}

/// A stage with one input (Flink's `OneInputStreamOperator`).
pub trait OneInputStage<T>: Stage {
    /// Consumes the records of `batch` (leaving it empty, its capacity for reuse).
    fn push(&mut self, batch: &mut Records<T>);
}

/// A stage with two inputs (Flink's `TwoInputStreamOperator`): connect, joins and the
/// broadcast pattern.
pub trait TwoInputStage<A, B>: Stage {
    /// Consumes records of the first input.
    fn push1(&mut self, batch: &mut Records<A>);
    /// Consumes records of the second input.
    fn push2(&mut self, batch: &mut Records<B>);
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

    /// The stage that ends a chain whose records leave the operator.
    pub fn tail<T: Data>(&self) -> Box<dyn OneInputStage<T>> {
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

impl Stage for QueueTail {
    fn next_stage(&mut self) -> Option<&mut dyn Stage> {
        None
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
}

impl<T: Data> OneInputStage<T> for QueueTail {
    fn push(&mut self, batch: &mut Records<T>) {
        if !batch.is_empty() {
            self.queue
                .borrow_mut()
                .push(Batch::local_records(std::mem::take(batch)).with_tag(self.tag));
        }
    }
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

    /// Records the hooks that reach it, and passes everything on by default.
    struct Recording {
        seen: Rc<RefCell<Vec<String>>>,
        next: Box<dyn OneInputStage<u64>>,
    }

    impl Stage for Recording {
        fn next_stage(&mut self) -> Option<&mut dyn Stage> {
            Some(&mut *self.next)
        }
        fn open(&mut self) {
            self.seen.borrow_mut().push("open".into());
            self.next.open();
        }
        fn finish(&mut self) {
            self.seen.borrow_mut().push("finish".into());
            self.next.finish();
        }
    }

    impl OneInputStage<u64> for Recording {
        fn push(&mut self, batch: &mut Records<u64>) {
            self.seen.borrow_mut().push(format!("push {}", batch.len()));
            self.next.push(batch);
        }
    }

    /// A stage that implements no hook itself.
    struct PassThrough {
        next: Box<dyn OneInputStage<u64>>,
    }

    impl Stage for PassThrough {
        fn next_stage(&mut self) -> Option<&mut dyn Stage> {
            Some(&mut *self.next)
        }
    }

    impl OneInputStage<u64> for PassThrough {
        fn push(&mut self, batch: &mut Records<u64>) {
            self.next.push(batch);
        }
    }

    #[test]
    fn a_stage_passes_on_every_hook_it_does_not_implement() {
        let chain = ChainOutput::new();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let recording = Recording {
            seen: Rc::clone(&seen),
            next: chain.tail(),
        };
        let mut head = PassThrough {
            next: Box::new(recording),
        };
        head.open();
        head.push(&mut Records::untimed(vec![1, 2, 3]));
        head.watermark(WatermarkEvent::Watermark(5));
        head.on_processing_time(9);
        head.snapshot(&mut OperatorSnapshot::new());
        head.finish();
        assert_eq!(*seen.borrow(), ["open", "push 3", "finish"]);
        // The watermark went through both stages to the chain's tail.
        let queued = chain.queue.borrow();
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[1].as_watermark().map(|w| w.value), Some(5));
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
