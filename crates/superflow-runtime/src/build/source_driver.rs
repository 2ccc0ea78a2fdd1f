//! The source operator ([`SourceDriver`]): it opens the subtask's reader (restored
//! from a checkpoint, or new), polls it for batches within the flow-control budget,
//! stamps epochs, reports the reader's position for each checkpoint, and at the end of
//! a bounded input sends the final watermark and the final position.

use std::sync::Arc;
use std::time::{Duration, Instant};

use superflow_core::Data;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::Capability;
use timely::scheduling::Activator;

use crate::batch::Batch;
use crate::checkpoint::{
    checkpoint_epoch, CheckpointCoordinator, InstanceId, OperatorSnapshot, PartReport,
};
use crate::control::JobControl;
use crate::graph::NodeId;
use crate::source::{FlowControl, SourceFunction, SourcePoll, SourceReader};
use crate::time::{WatermarkMessage, MAX_WATERMARK};

use super::{BatchOutput, BatchStream, BuildCtx, StageContext};

impl<'s> BuildCtx<'s> {
    /// Builds a source operator for node `id`. When a bounded source ends, it sends the
    /// maximum watermark, so every pending event-time window and timer fires.
    pub fn build_source<T: Data>(
        &mut self,
        id: NodeId,
        source: Arc<dyn SourceFunction<T>>,
    ) -> BatchStream<'s> {
        let ctx = self.stage_context(id);
        let mut builder = OperatorBuilder::new(ctx.name.to_string(), self.scope);
        let activator = self.scope.activator_for(builder.operator_info().address);
        let (output, stream) = builder.new_output::<Batch>();
        let origin = stream.name().node as u32;
        let instance = InstanceId {
            operator: origin as usize,
            worker: self.worker(),
        };
        self.instances.push(instance);
        let coordinator = Arc::clone(&self.run.checkpoints);
        let done = coordinator.base();
        let mut driver = SourceDriver {
            active: ctx.subtask < ctx.parallelism,
            ctx,
            source,
            reader: None,
            output: BatchOutput::from(output),
            capability: None,
            activator,
            control: Arc::clone(&self.run.control),
            probe: self.probe.clone(),
            flow: self.run.flow.clone(),
            coordinator,
            instance,
            origin,
            peers: self.scope.peers(),
            done,
            epoch: checkpoint_epoch(done),
            epoch_started: Instant::now(),
            epoch_records: 0,
            buffer: Vec::new(),
        };
        let scope = self.run.activation_scope.clone();
        builder.build(move |mut capabilities| {
            driver.capability = capabilities.pop();
            if let Some(cap) = driver.capability.as_mut() {
                cap.downgrade(&driver.epoch);
            }
            move |_frontiers| crate::activation::in_scope(&scope, &mut || driver.activate())
        });
        let producers = (0..self.parallelism(id) as u32)
            .map(|s| (origin, s))
            .collect();
        self.set_producers(&stream, producers);
        stream
    }
}

/// One subtask of a source operator: its reader, where it is in epochs and
/// checkpoints, and what it needs to send batches.
struct SourceDriver<T: Data> {
    ctx: StageContext,
    source: Arc<dyn SourceFunction<T>>,
    /// Whether this subtask runs (an idle one ends at once).
    active: bool,
    /// Created on the first activation.
    reader: Option<Box<dyn SourceReader<T>>>,
    output: BatchOutput,
    /// `None` once the source ended.
    capability: Option<Capability<u64>>,
    activator: Activator,
    control: Arc<JobControl>,
    probe: ProbeHandle<u64>,
    flow: FlowControl,
    coordinator: Arc<CheckpointCoordinator>,
    instance: InstanceId,
    origin: u32,
    peers: usize,
    /// The last checkpoint whose position was reported.
    done: u64,
    epoch: u64,
    epoch_started: Instant,
    epoch_records: usize,
    buffer: Vec<T>,
}

/// What one poll of the reader left to do.
enum PollOutcome {
    /// More records may be ready: activate again at once.
    More,
    /// The reader asked to wait this long.
    Wait(Duration),
    /// The input ended.
    Finished,
}

impl<T: Data> SourceDriver<T> {
    /// One activation: open, report triggered checkpoints, wait for the sinks if too
    /// far ahead, poll, and move to the next epoch when it is due.
    fn activate(&mut self) {
        if self.capability.is_none() {
            return;
        }
        if !self.active || self.control.should_stop() {
            self.finish();
            return;
        }
        self.open();
        if self.report_checkpoints() {
            return;
        }
        let sub_epoch = self.epoch - checkpoint_epoch(self.done);
        let in_flight = self.flow.max_epochs_in_flight;
        if sub_epoch + 1 >= in_flight && self.probe.less_than(&(self.epoch + 1 - in_flight)) {
            self.activator.activate_after(self.flow.blocked_poll);
            return;
        }
        match self.poll() {
            PollOutcome::Finished => {
                self.send(&mut self.final_watermark());
                self.finish();
            }
            PollOutcome::Wait(delay) => {
                self.next_epoch_if_due();
                self.activator
                    .activate_after(delay.min(self.flow.epoch_cadence));
            }
            PollOutcome::More => {
                self.next_epoch_if_due();
                self.activator.activate();
            }
        }
    }

    /// Creates the subtask's reader, from the restored checkpoint's position if any.
    fn open(&mut self) {
        if self.reader.is_some() {
            return;
        }
        let (ctx, source) = (&self.ctx, &self.source);
        let reader = ctx.guard(|| {
            let created = match ctx.restore_list::<Vec<u8>>(SOURCE_SPLITS) {
                Some(splits) => {
                    let restored = crate::source::RestoredSplits {
                        splits,
                        shared: ctx
                            .restore_list::<Vec<u8>>(SOURCE_SHARED)
                            .unwrap_or_default(),
                    };
                    source.restore_reader(restored, ctx.subtask, ctx.parallelism)
                }
                None => source.create_reader(ctx.subtask, ctx.parallelism),
            };
            match created {
                Ok(reader) => reader,
                Err(e) => ctx.fail(e),
            }
        });
        self.reader = Some(reader);
    }

    /// Reports the reader's position, after every record sent so far, for each
    /// checkpoint triggered since the last look, and moves to the next checkpoint's
    /// epochs. Returns whether the source stopped (stop with a savepoint).
    fn report_checkpoints(&mut self) -> bool {
        let triggered = self.coordinator.triggered();
        if triggered <= self.done {
            return false;
        }
        for id in self.done + 1..=triggered {
            let part = source_part(&self.ctx, self.instance, self.reader.as_deref(), Some(id));
            self.coordinator.report(id, part);
        }
        self.done = triggered;
        let stopping = self.done >= self.coordinator.stop_after();
        if stopping && self.coordinator.drains() {
            // Drain: the final watermark goes out before the savepoint's epoch, so that
            // the timers and windows it fires are in the savepoint, and their output is
            // committed with it.
            self.send(&mut self.final_watermark());
        }
        self.start_epoch(checkpoint_epoch(self.done));
        if stopping {
            // Stop with a savepoint: end here (drained, or with timers and windows
            // still pending).
            self.finish();
        }
        stopping
    }

    /// Polls the reader for up to a budget of batches, sending each at the current
    /// epoch. A checkpoint triggered, or an epoch due, ends the activation at once: a
    /// slow function chained to the source would otherwise hold the barrier back for
    /// every batch left in it.
    fn poll(&mut self) -> PollOutcome {
        let (Some(reader), Some(cap)) = (self.reader.as_mut(), self.capability.as_ref()) else {
            return PollOutcome::Finished;
        };
        let (ctx, flow, buffer) = (&self.ctx, &self.flow, &mut self.buffer);
        let mut out = self.output.activate();
        let mut session = out.session(cap);
        for _ in 0..flow.batches_per_activation {
            let poll = ctx.guard(|| reader.poll(buffer, flow.batch_size));
            if !buffer.is_empty() {
                ctx.counters.add_out(buffer.len());
                self.epoch_records += buffer.len();
                let records = std::mem::replace(buffer, Vec::with_capacity(flow.batch_size));
                session.give_container(&mut Batch::local(records));
            }
            match poll {
                Ok(SourcePoll::Ready) => {}
                Ok(SourcePoll::Pending(delay)) => return PollOutcome::Wait(delay),
                Ok(SourcePoll::Finished) => return PollOutcome::Finished,
                Err(e) => ctx.fail(e),
            }
            if self.epoch_records >= flow.max_epoch_records
                || self.coordinator.triggered() > self.done
                || self.epoch_started.elapsed() >= flow.epoch_cadence
            {
                break;
            }
        }
        PollOutcome::More
    }

    /// Opens the next epoch after `epoch_cadence` or `max_epoch_records`.
    fn next_epoch_if_due(&mut self) {
        if self.epoch_records >= self.flow.max_epoch_records
            || self.epoch_started.elapsed() >= self.flow.epoch_cadence
        {
            self.start_epoch(self.epoch + 1);
        }
    }

    fn start_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        if let Some(cap) = self.capability.as_mut() {
            cap.downgrade(&epoch);
        }
        self.epoch_started = Instant::now();
        self.epoch_records = 0;
    }

    /// The watermark a source sends when its input ends, or when it drains.
    fn final_watermark(&self) -> Batch {
        let end = WatermarkMessage {
            origin: self.origin,
            subtask: self.ctx.subtask as u32,
            value: MAX_WATERMARK,
            idle: false,
        };
        Batch::watermark(end, self.peers)
    }

    fn send(&mut self, batch: &mut Batch) {
        if let Some(cap) = self.capability.as_ref() {
            self.output.activate().session(cap).give_container(batch);
        }
    }

    /// Reports the final position and drops the capability: the source has ended.
    fn finish(&mut self) {
        report_source_final(
            &self.coordinator,
            &self.ctx,
            self.instance,
            self.reader.as_deref(),
        );
        self.capability = None;
    }
}

/// A source subtask's part of a checkpoint: the position of its reader's splits.
fn source_part<T>(
    ctx: &StageContext,
    instance: InstanceId,
    reader: Option<&dyn crate::source::SourceReader<T>>,
    checkpoint: Option<u64>,
) -> PartReport {
    let mut snapshot =
        checkpoint.map_or_else(OperatorSnapshot::new, OperatorSnapshot::for_checkpoint);
    if let Some((reader, splits)) = reader.and_then(|r| Some((r, r.snapshot_splits()?))) {
        if let Err(e) = snapshot.add_list(ctx.state_id(SOURCE_SPLITS), &splits, false) {
            ctx.fail(format!("cannot write the source's position: {e}"));
        }
        let shared = reader.snapshot_shared();
        if !shared.is_empty() {
            if let Err(e) = snapshot.add_list(ctx.state_id(SOURCE_SHARED), &shared, true) {
                ctx.fail(format!("cannot write the source's shared position: {e}"));
            }
        }
    }
    PartReport {
        instance,
        operator: ctx.name.to_string(),
        node: ctx.node,
        subtask: ctx.subtask,
        parallelism: ctx.parallelism,
        snapshot,
        sync: Duration::ZERO,
        alignment: Duration::ZERO,
    }
}

/// Reports a source subtask's final position.
fn report_source_final<T>(
    coordinator: &CheckpointCoordinator,
    ctx: &StageContext,
    instance: InstanceId,
    reader: Option<&dyn crate::source::SourceReader<T>>,
) {
    if let Err(e) = coordinator.report_final(source_part(ctx, instance, reader, None)) {
        ctx.fail(format!("cannot write the source's final position: {e}"));
    }
}

/// The state name of a source's positions.
const SOURCE_SPLITS: &str = "splits";

/// The state name of what a source's readers share (union list state).
const SOURCE_SHARED: &str = "shared-splits";
