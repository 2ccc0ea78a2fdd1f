//! Event timestamps and watermark generation: `WatermarkStrategy` (Flink's builder of
//! a timestamp assigner, a watermark generator and idleness), the generators Flink
//! ships, and the stage behind `assign_timestamps_and_watermarks`.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use superflow_core::Data;
use superflow_runtime::{
    processing_time_now, OneInputStage, Records, Stage, StageContext, WakeUp, WatermarkEvent,
    MAX_WATERMARK,
};

/// Extracts a record's event timestamp (milliseconds), given the timestamp it already
/// carries, if any.
pub trait TimestampAssigner<T>: Send + Sync + 'static {
    /// The event timestamp of `element`.
    fn extract_timestamp(&self, element: &T, record_timestamp: Option<i64>) -> i64;
}

impl<T, F> TimestampAssigner<T> for F
where
    F: Fn(&T, Option<i64>) -> i64 + Send + Sync + 'static,
{
    #[inline]
    fn extract_timestamp(&self, element: &T, record_timestamp: Option<i64>) -> i64 {
        self(element, record_timestamp)
    }
}

/// The assigner used when none is given: the timestamps records already carry.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordTimestamps;

impl<T> TimestampAssigner<T> for RecordTimestamps {
    #[inline]
    fn extract_timestamp(&self, _element: &T, record_timestamp: Option<i64>) -> i64 {
        match record_timestamp {
            Some(t) => t,
            None => panic!(
                "a record has no timestamp: give the watermark strategy a timestamp assigner \
                 (with_timestamp_assigner), or assign timestamps upstream"
            ),
        }
    }
}

/// Where a generator emits watermarks and idleness (Flink's `WatermarkOutput`).
#[derive(Debug, Clone)]
pub struct WatermarkOutput {
    watermark: i64,
    idle: bool,
}

impl WatermarkOutput {
    fn new() -> Self {
        WatermarkOutput {
            watermark: i64::MIN,
            idle: false,
        }
    }

    /// Emits a watermark; one that does not advance the last is ignored. Marks active.
    pub fn emit_watermark(&mut self, watermark: i64) {
        self.watermark = self.watermark.max(watermark);
        self.idle = false;
    }

    /// Declares the stream idle: downstream operators stop waiting for its watermark.
    pub fn mark_idle(&mut self) {
        self.idle = true;
    }

    /// Declares the stream active again.
    pub fn mark_active(&mut self) {
        self.idle = false;
    }
}

/// Generates watermarks from events and periodically (Flink's `WatermarkGenerator`).
pub trait WatermarkGenerator<T>: Send + 'static {
    /// Sees one event; may emit a watermark (punctuated generation).
    fn on_event(&mut self, event: &T, timestamp: i64, output: &mut WatermarkOutput);

    /// Sees a batch of events with their timestamps. The default calls `on_event` for
    /// each; generators that only track a maximum override it.
    fn on_events(&mut self, events: &[T], timestamps: &[i64], output: &mut WatermarkOutput) {
        for (event, &t) in events.iter().zip(timestamps) {
            self.on_event(event, t, output);
        }
    }

    /// Called every auto-watermark interval; may emit a watermark.
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput);

    /// Whether `on_event` may emit a watermark (or change idleness). Such a watermark
    /// takes effect before the next record, as in Flink, so the stage hands the
    /// generator one record at a time and cuts the batch where the watermark advances.
    /// Generators that emit only from `on_periodic_emit` say `false`, and see whole
    /// batches (`on_events`).
    fn emits_on_event(&self) -> bool {
        true
    }
}

/// Watermarks that trail the largest timestamp seen by a fixed bound (Flink's
/// `BoundedOutOfOrdernessWatermarks`): `max_timestamp - bound - 1`.
#[derive(Debug, Clone)]
pub struct BoundedOutOfOrderness {
    max_timestamp: i64,
    bound: i64,
}

impl BoundedOutOfOrderness {
    /// A generator tolerating records up to `bound` late.
    pub fn new(bound: Duration) -> Self {
        let bound = bound.as_millis() as i64;
        BoundedOutOfOrderness {
            // So that the first watermark, before any event, is i64::MIN.
            max_timestamp: i64::MIN + bound + 1,
            bound,
        }
    }
}

impl<T> WatermarkGenerator<T> for BoundedOutOfOrderness {
    #[inline]
    fn on_event(&mut self, _event: &T, timestamp: i64, _output: &mut WatermarkOutput) {
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }
    fn on_events(&mut self, _events: &[T], timestamps: &[i64], _output: &mut WatermarkOutput) {
        if let Some(&max) = timestamps.iter().max() {
            self.max_timestamp = self.max_timestamp.max(max);
        }
    }
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        output.emit_watermark(self.max_timestamp - self.bound - 1);
    }
    fn emits_on_event(&self) -> bool {
        false
    }
}

/// Emits no watermark (Flink's `NoWatermarksGenerator`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWatermarks;

impl<T> WatermarkGenerator<T> for NoWatermarks {
    fn on_event(&mut self, _: &T, _: i64, _: &mut WatermarkOutput) {}
    fn on_events(&mut self, _: &[T], _: &[i64], _: &mut WatermarkOutput) {}
    fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
    fn emits_on_event(&self) -> bool {
        false
    }
}

/// Wraps a generator: the stream is declared idle when no event arrived for `timeout`
/// of processing time (Flink's `WatermarksWithIdleness`).
struct WithIdleness<T> {
    inner: Box<dyn WatermarkGenerator<T>>,
    timeout: i64,
    last_activity: Option<i64>,
    events_since_check: bool,
}

impl<T: 'static> WatermarkGenerator<T> for WithIdleness<T> {
    fn on_event(&mut self, event: &T, timestamp: i64, output: &mut WatermarkOutput) {
        self.events_since_check = true;
        output.mark_active();
        self.inner.on_event(event, timestamp, output);
    }
    fn on_events(&mut self, events: &[T], timestamps: &[i64], output: &mut WatermarkOutput) {
        if !events.is_empty() {
            self.events_since_check = true;
            output.mark_active();
        }
        self.inner.on_events(events, timestamps, output);
    }
    fn emits_on_event(&self) -> bool {
        // A batch marks the stream active once; only the inner generator's own
        // watermarks need the record-by-record path.
        self.inner.emits_on_event()
    }
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        let now = processing_time_now();
        if std::mem::take(&mut self.events_since_check) {
            self.last_activity = Some(now);
        }
        let last = *self.last_activity.get_or_insert(now);
        if now - last >= self.timeout {
            output.mark_idle();
        } else {
            self.inner.on_periodic_emit(output);
        }
    }
}

type GeneratorFactory<T> = Arc<dyn Fn() -> Box<dyn WatermarkGenerator<T>> + Send + Sync>;

/// How a stream gets event timestamps and watermarks (Flink's `WatermarkStrategy`).
///
/// ```
/// # use superflow_api::WatermarkStrategy;
/// # use std::time::Duration;
/// let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(5))
///     .with_timestamp_assigner(|e: &(String, i64), _| e.1)
///     .with_idleness(Duration::from_secs(60));
/// ```
pub struct WatermarkStrategy<T, A = RecordTimestamps> {
    generator: GeneratorFactory<T>,
    assigner: Arc<A>,
    idleness: Option<Duration>,
}

impl<T, A> Clone for WatermarkStrategy<T, A> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            generator: Arc::clone(&self.generator),
            assigner: Arc::clone(&self.assigner),
            idleness: self.idleness,
        }
    }
}

impl<T: Data> WatermarkStrategy<T, RecordTimestamps> {
    /// Watermarks trailing the largest timestamp by `bound`.
    pub fn for_bounded_out_of_orderness(bound: Duration) -> Self {
        Self::for_generator(move || BoundedOutOfOrderness::new(bound))
    }

    /// Watermarks for timestamps that never decrease (a bound of zero).
    pub fn for_monotonous_timestamps() -> Self {
        Self::for_bounded_out_of_orderness(Duration::ZERO)
    }

    /// No watermarks: event time does not advance until the input ends.
    pub fn no_watermarks() -> Self {
        Self::for_generator(|| NoWatermarks)
    }

    /// Watermarks from a custom generator, made once per subtask.
    pub fn for_generator<G, F>(make: F) -> Self
    where
        G: WatermarkGenerator<T>,
        F: Fn() -> G + Send + Sync + 'static,
    {
        WatermarkStrategy {
            generator: Arc::new(move || Box::new(make()) as Box<dyn WatermarkGenerator<T>>),
            assigner: Arc::new(RecordTimestamps),
            idleness: None,
        }
    }
}

impl<T: Data, A: TimestampAssigner<T>> WatermarkStrategy<T, A> {
    /// Takes event timestamps from the records with `assigner`.
    pub fn with_timestamp_assigner<B: TimestampAssigner<T>>(
        self,
        assigner: B,
    ) -> WatermarkStrategy<T, B> {
        WatermarkStrategy {
            generator: self.generator,
            assigner: Arc::new(assigner),
            idleness: self.idleness,
        }
    }

    /// Declares a subtask idle after `timeout` without records, so that it does not
    /// hold back the watermark of the operators downstream.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }

    fn create_generator(&self) -> Box<dyn WatermarkGenerator<T>> {
        let inner = (self.generator)();
        match self.idleness {
            None => inner,
            Some(timeout) => Box::new(WithIdleness {
                inner,
                timeout: timeout.as_millis() as i64,
                last_activity: None,
                events_since_check: false,
            }),
        }
    }

    pub(crate) fn stage(
        &self,
        ctx: &StageContext,
        wake: WakeUp,
        interval: &Arc<AtomicU64>,
        next: Box<dyn OneInputStage<T>>,
    ) -> TimestampsAndWatermarksStage<T, A> {
        // In batch mode watermarks are perfect: none until the input ends, so no record
        // is late and each event-time window fires once, with all its records.
        let batch = ctx.runtime_mode.is_batch();
        let interval = if batch {
            0
        } else {
            interval.load(Ordering::Relaxed) as i64
        };
        let generator = if batch {
            Box::new(NoWatermarks)
        } else {
            self.create_generator()
        };
        TimestampsAndWatermarksStage {
            ctx: ctx.clone(),
            assigner: Arc::clone(&self.assigner),
            punctuated: generator.emits_on_event(),
            generator,
            output: WatermarkOutput::new(),
            emitted: i64::MIN,
            emitted_idle: false,
            interval,
            wake,
            timestamps: Vec::new(),
            next,
            _type: PhantomData,
        }
    }
}

/// Assigns timestamps to each record and emits the generator's watermarks. Upstream
/// watermarks are dropped, except the final maximum watermark of a bounded input.
pub(crate) struct TimestampsAndWatermarksStage<T, A> {
    ctx: StageContext,
    assigner: Arc<A>,
    generator: Box<dyn WatermarkGenerator<T>>,
    output: WatermarkOutput,
    emitted: i64,
    emitted_idle: bool,
    /// Whether the generator may emit from `on_event`: records then go to it one at a
    /// time.
    punctuated: bool,
    interval: i64,
    wake: WakeUp,
    timestamps: Vec<i64>,
    next: Box<dyn OneInputStage<T>>,
    _type: PhantomData<fn(T)>,
}

impl<T: Data, A: TimestampAssigner<T>> TimestampsAndWatermarksStage<T, A> {
    /// Hands the generator one record at a time, and sends each watermark it emits from
    /// `on_event` right after the record that caused it, before the next record (what
    /// Flink's timestamps-and-watermarks operator does). `self.timestamps` holds the
    /// batch's timestamps.
    fn push_punctuated(&mut self, batch: &mut Records<T>) {
        let timestamps = std::mem::take(&mut self.timestamps);
        let mut segment = Records {
            values: Vec::with_capacity(batch.len()),
            timestamps: None,
        };
        let mut segment_timestamps = Vec::with_capacity(batch.len());
        for (value, &timestamp) in batch.values.drain(..).zip(&timestamps) {
            let (generator, output) = (&mut self.generator, &mut self.output);
            self.ctx
                .guard(|| generator.on_event(&value, timestamp, output));
            segment.values.push(value);
            segment_timestamps.push(timestamp);
            let advanced =
                self.output.watermark > self.emitted || self.output.idle != self.emitted_idle;
            if advanced {
                self.forward_segment(&mut segment, &mut segment_timestamps);
                self.emit_progress();
            }
        }
        self.forward_segment(&mut segment, &mut segment_timestamps);
        self.emit_progress();
        batch.clear();
        self.timestamps = timestamps;
        self.timestamps.clear();
    }

    /// Sends the records gathered since the last watermark.
    fn forward_segment(&mut self, segment: &mut Records<T>, timestamps: &mut Vec<i64>) {
        if segment.values.is_empty() {
            return;
        }
        segment.timestamps = Some(std::mem::take(timestamps));
        self.ctx.counters.add_out(segment.len());
        self.next.push(segment);
        segment.values.clear();
        if let Some(mut used) = segment.timestamps.take() {
            used.clear();
            *timestamps = used;
        }
    }

    fn emit_progress(&mut self) {
        if self.output.idle {
            if !self.emitted_idle {
                self.emitted_idle = true;
                self.next.watermark(WatermarkEvent::Idle);
            }
            return;
        }
        if self.output.watermark > self.emitted || self.emitted_idle {
            self.emitted = self.emitted.max(self.output.watermark);
            self.emitted_idle = false;
            self.next.watermark(WatermarkEvent::Watermark(self.emitted));
        }
    }
}

impl<T: Data, A: TimestampAssigner<T>> OneInputStage<T> for TimestampsAndWatermarksStage<T, A> {
    fn push(&mut self, batch: &mut Records<T>) {
        self.ctx.counters.add_in(batch.len());
        let (assigner, timestamps) = (&self.assigner, &mut self.timestamps);
        timestamps.clear();
        self.ctx.guard(|| match &batch.timestamps {
            None => timestamps.extend(
                batch
                    .values
                    .iter()
                    .map(|v| assigner.extract_timestamp(v, None)),
            ),
            Some(previous) => timestamps.extend(
                batch
                    .values
                    .iter()
                    .zip(previous)
                    .map(|(v, &t)| assigner.extract_timestamp(v, Some(t))),
            ),
        });
        if self.punctuated {
            self.push_punctuated(batch);
            return;
        }
        let (generator, output) = (&mut self.generator, &mut self.output);
        self.ctx
            .guard(|| generator.on_events(&batch.values, timestamps, output));
        batch.timestamps = Some(std::mem::take(&mut self.timestamps));
        self.ctx.counters.add_out(batch.len());
        self.next.push(batch);
        if let Some(mut ts) = batch.timestamps.take() {
            ts.clear();
            self.timestamps = ts;
        }
        self.emit_progress();
    }
}

impl<T: Data, A: TimestampAssigner<T>> Stage for TimestampsAndWatermarksStage<T, A> {
    fn next_stage(&mut self) -> Option<&mut dyn Stage> {
        Some(&mut *self.next)
    }

    fn open(&mut self) {
        if self.interval > 0 {
            self.wake.request(processing_time_now() + self.interval);
        }
        self.next.open();
    }

    // Upstream watermarks stop here: this stage's generator makes the stream's own.
    fn watermark(&mut self, event: WatermarkEvent) {
        if event == WatermarkEvent::Watermark(MAX_WATERMARK) && self.emitted != MAX_WATERMARK {
            self.output.emit_watermark(MAX_WATERMARK);
            self.emit_progress();
        }
    }

    fn on_processing_time(&mut self, now: i64) {
        if self.interval > 0 {
            let (generator, output) = (&mut self.generator, &mut self.output);
            self.ctx.guard(|| generator.on_periodic_emit(output));
            self.emit_progress();
            if self.emitted != MAX_WATERMARK {
                self.wake.request(now + self.interval);
            }
        }
        self.next.on_processing_time(now);
    }
    // The generator starts afresh after a restore, as in Flink (no snapshot of its
    // own): the replayed records bring the watermark back.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_out_of_orderness_trails_the_maximum() {
        let mut g = BoundedOutOfOrderness::new(Duration::from_millis(10));
        let mut out = WatermarkOutput::new();
        WatermarkGenerator::<u8>::on_periodic_emit(&mut g, &mut out);
        assert_eq!(out.watermark, i64::MIN);
        g.on_events(&[1u8, 2, 3], &[100, 250, 90], &mut out);
        WatermarkGenerator::<u8>::on_periodic_emit(&mut g, &mut out);
        assert_eq!(out.watermark, 250 - 10 - 1);
    }
}
