//! What every operator does besides running its stages ([`OperatorCore`]): delivering
//! input batches and watermarks to them, sending what they queued, holding a
//! capability for timers and the end of input, and its part in checkpoints
//! (alignment and snapshots).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use superflow_core::Data;
use timely::dataflow::operators::Capability;
use timely::progress::frontier::MutableAntichain;
use timely::scheduling::Activator;

use crate::batch::{Batch, DecodeFn, Records};
use crate::checkpoint::{
    checkpoint_of_epoch, CheckpointCoordinator, InstanceId, OperatorSnapshot, PartReport,
};
use crate::failure::raise;
use crate::graph::NodeId;
use crate::time::{processing_time_now, WakeUp, WatermarkTracker};

use super::{BuildCtx, ChainOutput, OneInputStage, Stage, TwoInputStage};

/// An operator subtask receiving batches.
pub(super) struct Receiver {
    operator: String,
    subtask: usize,
}

impl Receiver {
    /// The records of `data`; records from another process that do not decode fail
    /// the job, naming this operator.
    #[inline]
    fn records<T: Data>(&self, data: &mut Batch, decode: Option<DecodeFn>) -> Records<T> {
        data.try_take_records::<T>(decode)
            .unwrap_or_else(|e| raise(&self.operator, self.subtask, e))
    }
}

/// Hands one input batch of a one-input operator to its stages: a watermark through the
/// tracker, records of the main output to `push`. Returns whether the stages ran.
pub(super) fn deliver_one<I: Data>(
    core: &Receiver,
    tracker: &mut WatermarkTracker,
    consumer: &mut dyn OneInputStage<I>,
    data: &mut Batch,
    decode: Option<DecodeFn>,
) -> bool {
    if let Some(message) = data.as_watermark() {
        match tracker.update(0, message) {
            Some(event) => consumer.watermark(event),
            None => return false,
        }
    } else if data.tag() == 0 {
        let mut records = core.records::<I>(data, decode);
        consumer.push(&mut records);
    } else {
        return false;
    }
    true
}

/// [`deliver_one`] for input `input` of a two-input operator.
pub(super) fn deliver_two<A: Data, B: Data>(
    core: &Receiver,
    tracker: &mut WatermarkTracker,
    consumer: &mut dyn TwoInputStage<A, B>,
    input: usize,
    data: &mut Batch,
    decode: (Option<DecodeFn>, Option<DecodeFn>),
) -> bool {
    if let Some(message) = data.as_watermark() {
        match tracker.update(input as u8, message) {
            Some(event) => consumer.watermark(event),
            None => return false,
        }
    } else if data.tag() == 0 {
        if input == 0 {
            let mut records = core.records::<A>(data, decode.0);
            consumer.push1(&mut records);
        } else {
            let mut records = core.records::<B>(data, decode.1);
            consumer.push2(&mut records);
        }
    } else {
        return false;
    }
    true
}

/// A call into an operator's stages that no input batch carries.
pub(super) enum Signal<'a> {
    ProcessingTime(i64),
    Finish,
    /// Write the stages' state for a checkpoint (clones made meanwhile are the
    /// snapshot's copies: see `superflow_core::snapshot_copy`).
    Snapshot(&'a mut OperatorSnapshot),
    /// A batch of input `usize` held back for alignment, to process now.
    Replay(usize, &'a mut Batch),
}

/// What every Superflow operator does besides running its stages: it sends what the
/// chain queued (stamping watermarks with its channel), holds a capability at its input
/// frontier so that timers and the end of input can still emit, schedules itself for
/// processing-time wake-ups, and takes its part in checkpoints.
pub(super) struct OperatorCore {
    pub(super) queue: Rc<RefCell<Vec<Batch>>>,
    pub(super) wake: WakeUp,
    pub(super) activator: Activator,
    pub(super) scheduled: Option<i64>,
    pub(super) held: Option<Capability<u64>>,
    pub(super) finished: bool,
    /// Whether the stages were opened (or, on an idle subtask, found not to need it).
    opened: bool,
    pub(super) origin: u32,
    pub(super) subtask: u32,
    pub(super) peers: usize,
    pub(super) checkpoints: CheckpointPart,
}

/// An operator subtask's part in checkpoints: when its input frontier passes a
/// checkpoint's epoch it snapshots its stages; in exactly-once mode it holds back the
/// batches of later epochs until then (alignment).
pub(super) struct CheckpointPart {
    coordinator: Arc<CheckpointCoordinator>,
    aligned: bool,
    /// The checkpoints up to this one are taken: batches of epochs up to its interval
    /// are processed as they come.
    done: u64,
    deferred: Vec<(u64, usize, Batch)>,
    deferred_since: Option<Instant>,
    instance: InstanceId,
    operator: String,
    node: NodeId,
    subtask: usize,
    parallelism: usize,
}

impl CheckpointPart {
    /// A part of `coordinator`'s checkpoints for subtask `subtask` of `parallelism` of
    /// operator `operator` (node `node`).
    fn new(
        coordinator: Arc<CheckpointCoordinator>,
        instance: InstanceId,
        operator: String,
        node: NodeId,
        (subtask, parallelism): (usize, usize),
    ) -> CheckpointPart {
        CheckpointPart {
            aligned: coordinator.aligned(),
            done: coordinator.base(),
            coordinator,
            deferred: Vec::new(),
            deferred_since: None,
            instance,
            operator,
            node,
            subtask,
            parallelism,
        }
    }

    /// Holds back `data` (received at `epoch` on input `input`) if it comes after a
    /// checkpoint this subtask has not taken yet (exactly-once alignment); returns
    /// whether it did.
    fn hold_back(&mut self, epoch: u64, input: usize, data: &mut Batch) -> bool {
        if !self.aligned || checkpoint_of_epoch(epoch) <= self.done {
            return false;
        }
        self.deferred.push((epoch, input, std::mem::take(data)));
        self.deferred_since.get_or_insert_with(Instant::now);
        true
    }

    /// The next checkpoint to take, if the input frontier (`least`; `None` once the
    /// input ended) has passed its epoch: once the input ended, only held-back batches
    /// of a later checkpoint call for it.
    fn next_due(&self, least: Option<u64>) -> Option<u64> {
        let next = self.done + 1;
        let passed = match least {
            Some(least) => checkpoint_of_epoch(least) >= next,
            None => self
                .deferred
                .iter()
                .any(|(epoch, _, _)| checkpoint_of_epoch(*epoch) >= next),
        };
        passed.then_some(next)
    }

    /// Notes that `checkpoint` is taken, and returns the batches held back for it, in
    /// the order they came (not by epoch: an operator sends a periodic watermark at its
    /// input frontier, an earlier epoch than records it sent before it from the same
    /// checkpoint interval, and sorted the watermark would overtake those records and
    /// make them late). Batches of later checkpoints stay held.
    fn taken(&mut self, checkpoint: u64) -> Vec<(u64, usize, Batch)> {
        self.done = checkpoint;
        let deferred = std::mem::take(&mut self.deferred);
        let (due, later): (Vec<_>, Vec<_>) = deferred
            .into_iter()
            .partition(|(epoch, _, _)| checkpoint_of_epoch(*epoch) <= checkpoint);
        self.deferred = later;
        self.deferred_since = (!self.deferred.is_empty()).then(Instant::now);
        due
    }

    pub(super) fn report(&self, snapshot: OperatorSnapshot, sync: Duration) -> PartReport {
        PartReport {
            instance: self.instance,
            operator: self.operator.clone(),
            node: self.node,
            subtask: self.subtask,
            parallelism: self.parallelism,
            snapshot,
            sync,
            alignment: self
                .deferred_since
                .map_or(Duration::ZERO, |since| since.elapsed()),
        }
    }
}

impl OperatorCore {
    pub(super) fn new(
        ctx: &mut BuildCtx<'_>,
        chain: &ChainOutput,
        activator: Activator,
        origin: u32,
        head: NodeId,
    ) -> OperatorCore {
        let instance = InstanceId {
            operator: origin as usize,
            worker: ctx.worker(),
        };
        ctx.instances.push(instance);
        let coordinator = Arc::clone(&ctx.run.checkpoints);
        OperatorCore {
            queue: Rc::clone(&chain.queue),
            wake: chain.wake.clone(),
            activator,
            scheduled: None,
            held: None,
            finished: false,
            opened: false,
            origin,
            subtask: ctx.worker() as u32,
            peers: ctx.scope.peers(),
            checkpoints: CheckpointPart::new(
                coordinator,
                instance,
                chain.name(),
                head,
                (ctx.worker(), ctx.parallelism(head)),
            ),
        }
    }

    /// Who this operator subtask is, for failures outside its stages.
    pub(super) fn receiver(&self) -> Receiver {
        Receiver {
            operator: self.checkpoints.operator.clone(),
            subtask: self.checkpoints.subtask,
        }
    }

    /// Whether this subtask runs: a node of parallelism `p` has an operator on every
    /// worker, and those at `p` and above stay idle (no input, no state, no snapshot).
    fn active(&self) -> bool {
        self.checkpoints.subtask < self.checkpoints.parallelism
    }

    /// Opens the chain's stages the first time the operator runs, before any input or
    /// signal reaches them; an idle subtask's stages are never opened.
    pub(super) fn open_once(&mut self, stages: &mut dyn Stage) {
        if !std::mem::replace(&mut self.opened, true) && self.active() {
            stages.open();
        }
    }

    /// Holds back `data` (received at `epoch` on input `input`) if it comes after a
    /// checkpoint this subtask has not taken yet; returns whether it did.
    pub(super) fn defer(&mut self, epoch: u64, input: usize, data: &mut Batch) -> bool {
        self.checkpoints.hold_back(epoch, input, data)
    }

    pub(super) fn drain<CT: timely::dataflow::operators::CapabilityTrait<u64>>(
        &self,
        session: &mut timely::dataflow::operators::generic::Session<
            '_,
            '_,
            u64,
            timely::container::CapacityContainerBuilder<Batch>,
            CT,
        >,
    ) {
        let mut queue = self.queue.borrow_mut();
        for batch in queue.iter_mut() {
            batch.stamp_watermark_origin(self.origin, self.subtask, self.peers);
            session.give_container(batch);
        }
        queue.clear();
    }

    /// Takes every checkpoint whose epoch the input frontier (`least`, `None` when the
    /// input ended) has passed, each followed by the held-back batches it releases.
    pub(super) fn take_checkpoints(
        &mut self,
        least: Option<u64>,
        out: &mut timely::dataflow::operators::generic::OutputBuilderSession<
            '_,
            u64,
            timely::container::CapacityContainerBuilder<Batch>,
        >,
        signal: &mut dyn FnMut(Signal),
    ) {
        while let Some(next) = self.checkpoints.next_due(least) {
            let started = Instant::now();
            let mut snapshot = OperatorSnapshot::for_checkpoint(next);
            if self.active() {
                superflow_core::copy_for_snapshot(|| signal(Signal::Snapshot(&mut snapshot)));
            }
            let report = self.checkpoints.report(snapshot, started.elapsed());
            self.checkpoints.coordinator.report(next, report);
            let due = self.checkpoints.taken(next);
            for (epoch, input, mut batch) in due {
                signal(Signal::Replay(input, &mut batch));
                if let Some(held) = &self.held {
                    let cap = held.delayed(&epoch.max(*held.time()));
                    self.drain(&mut out.session(&cap));
                }
            }
        }
    }

    pub(super) fn after_inputs(
        &mut self,
        frontiers: &[MutableAntichain<u64>],
        out: &mut timely::dataflow::operators::generic::OutputBuilderSession<
            '_,
            u64,
            timely::container::CapacityContainerBuilder<Batch>,
        >,
        signal: &mut dyn FnMut(Signal),
    ) {
        if self.held.is_none() {
            return;
        }
        let least = frontiers
            .iter()
            .filter_map(|f| f.frontier().iter().min().copied())
            .min();
        self.take_checkpoints(least, out, signal);
        let Some(least) = least else {
            if !self.finished {
                self.finished = true;
                let active = self.active();
                if active {
                    signal(Signal::Finish);
                }
                if let Some(held) = &self.held {
                    self.drain(&mut out.session(held));
                }
                let started = Instant::now();
                let mut snapshot = OperatorSnapshot::new();
                if active {
                    superflow_core::copy_for_snapshot(|| signal(Signal::Snapshot(&mut snapshot)));
                }
                let report = self.checkpoints.report(snapshot, started.elapsed());
                if let Err(e) = self.checkpoints.coordinator.report_final(report) {
                    raise(
                        &self.checkpoints.operator,
                        self.checkpoints.subtask,
                        format!("cannot write the final state: {e}"),
                    );
                }
            }
            self.held = None;
            return;
        };
        if let Some(held) = &mut self.held {
            if *held.time() < least {
                held.downgrade(&least);
            }
        }
        if self.wake.next().is_none() {
            return;
        }
        let now = processing_time_now();
        if self.wake.take_due(now) && self.active() {
            signal(Signal::ProcessingTime(now));
            if let Some(held) = &self.held {
                self.drain(&mut out.session(held));
            }
        }
        if let Some(at) = self.wake.next() {
            let stale = self.scheduled.is_none_or(|s| s <= now || at < s);
            if stale {
                self.scheduled = Some(at);
                self.activator
                    .activate_after(Duration::from_millis((at - now).max(0) as u64));
            }
        }
    }
}

/// An input handle whose pact type is erased, for operators with several inputs.
pub(super) trait ErasedInput {
    fn for_each(
        &mut self,
        logic: &mut dyn FnMut(&timely::dataflow::operators::InputCapability<u64>, &mut Batch),
    );
}

impl<P> ErasedInput for timely::dataflow::operators::generic::InputHandleCore<u64, Batch, P>
where
    P: timely::communication::Pull<timely::dataflow::channels::Message<u64, Batch>>,
{
    fn for_each(
        &mut self,
        logic: &mut dyn FnMut(&timely::dataflow::operators::InputCapability<u64>, &mut Batch),
    ) {
        timely::dataflow::operators::generic::InputHandleCore::for_each(self, |cap, data| {
            logic(&cap, data)
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::checkpoint::coordinator::coordinator_for_test;
    use crate::checkpoint::{CheckpointConfig, CheckpointingMode, RunOutcome};
    use crate::control::JobControl;

    /// An epoch of checkpoint interval `checkpoint` (the batches sent after the
    /// checkpoint was triggered and before the next).
    fn epoch(checkpoint: u64, step: u64) -> u64 {
        (checkpoint << 32) | step
    }

    fn part(mode: CheckpointingMode) -> (CheckpointPart, Arc<CheckpointCoordinator>) {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = CheckpointConfig::new(Duration::from_secs(3600));
        config.mode = mode;
        config.storage = root.path().join("checkpoints");
        let coordinator = coordinator_for_test(config, "alignment", JobControl::new());
        let instance = InstanceId {
            operator: 0,
            worker: 0,
        };
        let part = CheckpointPart::new(Arc::clone(&coordinator), instance, "op".into(), 0, (0, 1));
        (part, coordinator)
    }

    fn values(batches: Vec<(u64, usize, Batch)>) -> Vec<(u64, usize, Vec<u32>)> {
        batches
            .into_iter()
            .map(|(epoch, input, mut batch)| (epoch, input, batch.take_vec::<u32>(None)))
            .collect()
    }

    #[test]
    fn exactly_once_holds_back_batches_after_an_untaken_checkpoint() {
        let (mut part, coordinator) = part(CheckpointingMode::ExactlyOnce);
        // Before checkpoint 1 is triggered: nothing is held.
        assert!(!part.hold_back(epoch(0, 5), 0, &mut Batch::local(vec![1u32])));
        // After it: batches of its interval wait until this subtask has taken it, on
        // either input, and the frontier of the other input has not passed it yet.
        assert!(part.hold_back(epoch(1, 0), 1, &mut Batch::local(vec![2u32])));
        assert!(part.hold_back(epoch(2, 0), 0, &mut Batch::local(vec![4u32])));
        assert!(part.hold_back(epoch(1, 3), 0, &mut Batch::local(vec![3u32])));
        assert_eq!(part.next_due(Some(epoch(0, 9))), None);
        assert_eq!(part.next_due(Some(epoch(1, 0))), Some(1));
        // Taking checkpoint 1 releases its batches in the order they came, and keeps
        // those of checkpoint 2.
        assert_eq!(
            values(part.taken(1)),
            vec![(epoch(1, 0), 1, vec![2]), (epoch(1, 3), 0, vec![3])]
        );
        assert!(part.deferred_since.is_some(), "checkpoint 2's batch waits");
        assert!(!part.hold_back(epoch(1, 7), 0, &mut Batch::local(vec![5u32])));
        // Once the input ended, the held batches of checkpoint 2 call for it.
        assert_eq!(part.next_due(None), Some(2));
        assert_eq!(values(part.taken(2)), vec![(epoch(2, 0), 0, vec![4])]);
        assert_eq!(part.next_due(None), None);
        assert!(part.deferred_since.is_none());
        coordinator.shutdown(RunOutcome::Cancelled);
    }

    #[test]
    fn at_least_once_holds_nothing_back() {
        let (mut part, coordinator) = part(CheckpointingMode::AtLeastOnce);
        assert!(!part.hold_back(epoch(3, 0), 0, &mut Batch::local(vec![1u32])));
        assert_eq!(part.next_due(Some(epoch(3, 0))), Some(1));
        assert!(part.taken(1).is_empty());
        assert_eq!(part.next_due(None), None);
        coordinator.shutdown(RunOutcome::Cancelled);
    }
}
