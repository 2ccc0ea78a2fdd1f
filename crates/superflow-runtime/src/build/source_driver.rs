//! The source operator: the loop that polls a source's reader for batches within the
//! flow-control budget, stamps epochs, sends the final watermark at the end of a
//! bounded input, and reports the readers' positions for checkpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use superflow_core::Data;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::batch::Batch;
use crate::checkpoint::{
    checkpoint_epoch, CheckpointCoordinator, InstanceId, OperatorSnapshot, PartReport,
};
use crate::graph::NodeId;
use crate::source::{SourceFunction, SourcePoll};
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
        let control = Arc::clone(&self.run.control);
        let probe = self.probe.clone();
        let flow = self.run.flow.clone();
        let peers = self.scope.peers();
        let mut builder = OperatorBuilder::new(ctx.name.to_string(), self.scope);
        let activator = self.scope.activator_for(builder.operator_info().address);
        let (output, stream) = builder.new_output::<Batch>();
        let mut output = BatchOutput::from(output);
        let origin = stream.name().node as u32;
        let instance = InstanceId {
            operator: origin as usize,
            worker: self.worker(),
        };
        self.instances.push(instance);
        let coordinator = Arc::clone(&self.run.checkpoints);
        let scope = self.run.activation_scope.clone();
        // The watermark a source sends when its input ends, or when it drains.
        let subtask = ctx.subtask as u32;
        let final_watermark = move || {
            let end = WatermarkMessage {
                origin,
                subtask,
                value: MAX_WATERMARK,
                idle: false,
            };
            Batch::watermark(end, peers)
        };
        builder.build(move |mut capabilities| {
            let mut capability = capabilities.pop();
            let mut reader: Option<Box<dyn crate::source::SourceReader<T>>> = None;
            let mut done = coordinator.base();
            let mut epoch: u64 = checkpoint_epoch(done);
            if let Some(cap) = capability.as_mut() {
                cap.downgrade(&epoch);
            }
            let mut epoch_started = Instant::now();
            let mut epoch_records = 0usize;
            let mut buffer: Vec<T> = Vec::new();
            move |_frontiers| {
                crate::activation::in_scope(&scope, &mut || {
                    let Some(cap) = capability.as_mut() else {
                        return;
                    };
                    if ctx.subtask >= ctx.parallelism || control.should_stop() {
                        report_source_final(&coordinator, &ctx, instance, reader.as_deref());
                        capability = None;
                        return;
                    }
                    let reader_ref = reader.get_or_insert_with(|| {
                        ctx.guard(|| {
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
                        })
                    });
                    let triggered = coordinator.triggered();
                    if triggered > done {
                        // The position after every record sent so far closes each checkpoint
                        // triggered since the last look.
                        for id in done + 1..=triggered {
                            coordinator.report(
                                id,
                                source_part(&ctx, instance, Some(&**reader_ref), Some(id)),
                            );
                        }
                        done = triggered;
                        let stopping = done >= coordinator.stop_after();
                        if stopping && coordinator.drains() {
                            // Drain: the final watermark goes out before the savepoint's
                            // epoch, so that the timers and windows it fires are in the
                            // savepoint, and their output is committed with it.
                            output
                                .activate()
                                .session(&*cap)
                                .give_container(&mut final_watermark());
                        }
                        epoch = checkpoint_epoch(done);
                        cap.downgrade(&epoch);
                        epoch_started = Instant::now();
                        epoch_records = 0;
                        if stopping {
                            // Stop with a savepoint: end here (drained, or with timers and
                            // windows still pending).
                            report_source_final(&coordinator, &ctx, instance, reader.as_deref());
                            capability = None;
                            return;
                        }
                    }
                    let sub_epoch = epoch - checkpoint_epoch(done);
                    if sub_epoch + 1 >= flow.max_epochs_in_flight
                        && probe.less_than(&(epoch + 1 - flow.max_epochs_in_flight))
                    {
                        activator.activate_after(flow.blocked_poll);
                        return;
                    }
                    let Some(reader_mut) = reader.as_mut() else {
                        return;
                    };
                    let mut out = output.activate();
                    let mut session = out.session(&*cap);
                    let mut finished = false;
                    let mut wait = None;
                    for _ in 0..flow.batches_per_activation {
                        let poll = ctx.guard(|| reader_mut.poll(&mut buffer, flow.batch_size));
                        if !buffer.is_empty() {
                            ctx.counters.add_out(buffer.len());
                            epoch_records += buffer.len();
                            let mut batch = Batch::local(std::mem::replace(
                                &mut buffer,
                                Vec::with_capacity(flow.batch_size),
                            ));
                            session.give_container(&mut batch);
                        }
                        match poll {
                            Ok(SourcePoll::Ready) => {}
                            Ok(SourcePoll::Pending(delay)) => {
                                wait = Some(delay);
                                break;
                            }
                            Ok(SourcePoll::Finished) => {
                                finished = true;
                                break;
                            }
                            Err(e) => ctx.fail(e),
                        }
                        // A checkpoint triggered, or an epoch due, ends the activation at
                        // once: a slow function chained to the source would otherwise hold
                        // the barrier back for every batch left in it.
                        if epoch_records >= flow.max_epoch_records
                            || coordinator.triggered() > done
                            || epoch_started.elapsed() >= flow.epoch_cadence
                        {
                            break;
                        }
                    }
                    if finished {
                        session.give_container(&mut final_watermark());
                        drop(session);
                        report_source_final(&coordinator, &ctx, instance, reader.as_deref());
                        capability = None;
                        return;
                    }
                    drop(session);
                    if epoch_records >= flow.max_epoch_records
                        || epoch_started.elapsed() >= flow.epoch_cadence
                    {
                        epoch += 1;
                        cap.downgrade(&epoch);
                        epoch_started = Instant::now();
                        epoch_records = 0;
                    }
                    match wait {
                        Some(delay) => activator.activate_after(delay.min(flow.epoch_cadence)),
                        None => activator.activate(),
                    }
                })
            }
        });
        let producers = (0..self.parallelism(id) as u32)
            .map(|s| (origin, s))
            .collect();
        self.set_producers(&stream, producers);
        stream
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
