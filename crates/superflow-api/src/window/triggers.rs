//! Triggers: when a window's function runs (fires) and when its contents are dropped
//! (purged). The built-in triggers mirror Flink's: event time, processing time, count,
//! continuous event/processing time, purging, and never (for global windows).

use std::time::Duration;

use superflow_runtime::processing_time_now;
use superflow_state::TimeDomain;

use super::assigners::Window;

/// What a trigger decides for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerResult {
    /// Nothing happens.
    Continue,
    /// The window function runs; the contents stay.
    Fire,
    /// The contents are dropped without running the window function.
    Purge,
    /// The window function runs, then the contents are dropped.
    FireAndPurge,
}

impl TriggerResult {
    /// Whether the window function runs.
    pub fn is_fire(self) -> bool {
        matches!(self, TriggerResult::Fire | TriggerResult::FireAndPurge)
    }

    /// Whether the contents are dropped.
    pub fn is_purge(self) -> bool {
        matches!(self, TriggerResult::Purge | TriggerResult::FireAndPurge)
    }
}

/// A timer request a trigger makes, applied by the window operator for the current key
/// and window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerOp {
    RegisterEvent(i64),
    RegisterProcessing(i64),
    DeleteEvent(i64),
    DeleteProcessing(i64),
}

/// One value of a trigger's state: a number (a count, the next firing time), or bytes
/// the trigger encodes itself (a Python trigger keeps its objects pickled).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TriggerValue {
    /// A number, as the built-in triggers keep.
    Int(i64),
    /// Bytes in the trigger's own encoding.
    Bytes(Box<[u8]>),
}

/// A trigger's own state for one key and window: named values. It lives with the
/// window's contents in the operator's state.
pub type TriggerState = Vec<(&'static str, TriggerValue)>;

/// What a trigger can see and do for the current key and window.
pub struct TriggerContext<'a> {
    pub(crate) watermark: i64,
    pub(crate) ops: &'a mut Vec<TimerOp>,
    pub(crate) state: &'a mut TriggerState,
    pub(crate) merged: &'a [TriggerState],
}

impl TriggerContext<'_> {
    /// The operator's current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The wall clock, in milliseconds since the Unix epoch.
    pub fn current_processing_time(&self) -> i64 {
        processing_time_now()
    }

    /// Calls `on_event_time` when the watermark reaches `time`.
    pub fn register_event_time_timer(&mut self, time: i64) {
        self.ops.push(TimerOp::RegisterEvent(time));
    }

    /// Calls `on_processing_time` when the wall clock reaches `time`.
    pub fn register_processing_time_timer(&mut self, time: i64) {
        self.ops.push(TimerOp::RegisterProcessing(time));
    }

    /// Deletes an event-time timer of this window.
    pub fn delete_event_time_timer(&mut self, time: i64) {
        self.ops.push(TimerOp::DeleteEvent(time));
    }

    /// Deletes a processing-time timer of this window.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        self.ops.push(TimerOp::DeleteProcessing(time));
    }

    /// The trigger's number `name` for this key and window.
    pub fn get_state(&self, name: &str) -> Option<i64> {
        match self.value(name) {
            Some(TriggerValue::Int(v)) => Some(*v),
            _ => None,
        }
    }

    /// Sets the trigger's number `name` for this key and window.
    pub fn set_state(&mut self, name: &'static str, value: i64) {
        match self.state.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = TriggerValue::Int(value),
            None => self.state.push((name, TriggerValue::Int(value))),
        }
    }

    /// Clears the trigger's value `name` for this key and window.
    pub fn clear_state(&mut self, name: &str) {
        self.state.retain(|(n, _)| *n != name);
    }

    /// The trigger's value `name` for this key and window, a number or bytes.
    pub fn value(&self, name: &str) -> Option<&TriggerValue> {
        self.state.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Every value of the trigger for this key and window, by name.
    pub fn values(&self) -> impl Iterator<Item = (&'static str, &TriggerValue)> {
        self.state.iter().map(|(n, v)| (*n, v))
    }

    /// Sets the trigger's value `name`; a name made at run time is kept for the job.
    pub fn set_value(&mut self, name: &str, value: TriggerValue) {
        match self.state.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self
                .state
                .push((crate::state::intern(name.to_string()), value)),
        }
    }

    /// In `on_merge`: the values of the windows merged into this one (each window's
    /// state, by name), to combine as the trigger sees fit.
    pub fn merged_states(&self) -> &[TriggerState] {
        self.merged
    }

    /// In `on_merge`: combines number `name` of the merged windows into this window's.
    pub fn merge_state(&mut self, name: &'static str, combine: impl Fn(i64, i64) -> i64) {
        let merged = self
            .merged
            .iter()
            .filter_map(|s| match s.iter().find(|(n, _)| *n == name) {
                Some((_, TriggerValue::Int(v))) => Some(*v),
                _ => None,
            })
            .chain(self.get_state(name))
            .reduce(combine);
        if let Some(value) = merged {
            self.set_state(name, value);
        }
    }
}

/// Decides when a window fires (Flink's `Trigger`).
pub trait Trigger<T, W: Window>: Send + Sync + 'static {
    /// A record was added to `window`.
    fn on_element(
        &self,
        element: &T,
        timestamp: i64,
        window: &W,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult;

    /// An event-time timer of `window` fired.
    fn on_event_time(&self, time: i64, window: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult;

    /// A processing-time timer of `window` fired.
    fn on_processing_time(
        &self,
        time: i64,
        window: &W,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult;

    /// Whether the trigger supports merging windows (sessions).
    fn can_merge(&self) -> bool {
        false
    }

    /// Windows merged into `window`; re-register timers and merge state.
    fn on_merge(&self, _window: &W, _ctx: &mut TriggerContext<'_>) {}

    /// The window is removed: delete its timers and state.
    fn clear(&self, window: &W, ctx: &mut TriggerContext<'_>);
}

/// Fires when the watermark passes the end of the window (the default of event-time
/// windows); a record arriving later, within the allowed lateness, fires it again.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventTimeTrigger;

impl<T, W: Window> Trigger<T, W> for EventTimeTrigger {
    #[inline]
    fn on_element(&self, _: &T, _: i64, window: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        if window.max_timestamp() <= ctx.watermark {
            TriggerResult::Fire
        } else {
            ctx.register_event_time_timer(window.max_timestamp());
            TriggerResult::Continue
        }
    }
    fn on_event_time(&self, time: i64, window: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        if time == window.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }
    fn on_processing_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn on_merge(&self, window: &W, ctx: &mut TriggerContext<'_>) {
        if window.max_timestamp() > ctx.watermark {
            ctx.register_event_time_timer(window.max_timestamp());
        }
    }
    fn clear(&self, window: &W, ctx: &mut TriggerContext<'_>) {
        ctx.delete_event_time_timer(window.max_timestamp());
    }
}

/// Fires when the wall clock passes the end of the window (the default of
/// processing-time windows).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessingTimeTrigger;

impl<T, W: Window> Trigger<T, W> for ProcessingTimeTrigger {
    fn on_element(&self, _: &T, _: i64, window: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        ctx.register_processing_time_timer(window.max_timestamp());
        TriggerResult::Continue
    }
    fn on_event_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
    fn on_processing_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Fire
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn on_merge(&self, window: &W, ctx: &mut TriggerContext<'_>) {
        if window.max_timestamp() > ctx.current_processing_time() {
            ctx.register_processing_time_timer(window.max_timestamp());
        }
    }
    fn clear(&self, window: &W, ctx: &mut TriggerContext<'_>) {
        ctx.delete_processing_time_timer(window.max_timestamp());
    }
}

/// Fires every `n` records of a window.
#[derive(Debug, Clone, Copy)]
pub struct CountTrigger {
    max_count: i64,
}

impl CountTrigger {
    /// Fires when a window holds `n` new records.
    pub fn of(n: u64) -> Self {
        assert!(n > 0, "a count trigger needs a count above zero");
        CountTrigger {
            max_count: n as i64,
        }
    }
}

const COUNT: &str = "count";

impl<T, W: Window> Trigger<T, W> for CountTrigger {
    fn on_element(&self, _: &T, _: i64, _: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        let count = ctx.get_state(COUNT).unwrap_or(0) + 1;
        if count >= self.max_count {
            ctx.clear_state(COUNT);
            TriggerResult::Fire
        } else {
            ctx.set_state(COUNT, count);
            TriggerResult::Continue
        }
    }
    fn on_event_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
    fn on_processing_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn on_merge(&self, _: &W, ctx: &mut TriggerContext<'_>) {
        ctx.merge_state(COUNT, |a, b| a + b);
    }
    fn clear(&self, _: &W, ctx: &mut TriggerContext<'_>) {
        ctx.clear_state(COUNT);
    }
}

/// Turns every firing of the wrapped trigger into fire-and-purge.
#[derive(Debug, Clone, Copy)]
pub struct PurgingTrigger<TR> {
    inner: TR,
}

impl<TR> PurgingTrigger<TR> {
    /// Wraps `trigger`.
    pub fn of(trigger: TR) -> Self {
        PurgingTrigger { inner: trigger }
    }
}

fn purging(result: TriggerResult) -> TriggerResult {
    if result.is_fire() {
        TriggerResult::FireAndPurge
    } else {
        result
    }
}

impl<T, W: Window, TR: Trigger<T, W>> Trigger<T, W> for PurgingTrigger<TR> {
    fn on_element(&self, e: &T, t: i64, w: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        purging(self.inner.on_element(e, t, w, ctx))
    }
    fn on_event_time(&self, time: i64, w: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        purging(self.inner.on_event_time(time, w, ctx))
    }
    fn on_processing_time(&self, time: i64, w: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        purging(self.inner.on_processing_time(time, w, ctx))
    }
    fn can_merge(&self) -> bool {
        self.inner.can_merge()
    }
    fn on_merge(&self, w: &W, ctx: &mut TriggerContext<'_>) {
        self.inner.on_merge(w, ctx)
    }
    fn clear(&self, w: &W, ctx: &mut TriggerContext<'_>) {
        self.inner.clear(w, ctx)
    }
}

const NEXT_FIRE: &str = "next-fire";

/// The schedule of a continuous trigger: the window's next firing time, kept in the
/// trigger's state, and its timer in one clock.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    interval: i64,
    domain: TimeDomain,
}

impl Schedule {
    fn new(interval: Duration, domain: TimeDomain) -> Self {
        assert!(
            !interval.is_zero(),
            "a continuous trigger needs an interval"
        );
        Schedule {
            interval: interval.as_millis() as i64,
            domain,
        }
    }

    fn register(&self, time: i64, ctx: &mut TriggerContext<'_>) {
        match self.domain {
            TimeDomain::EventTime => ctx.register_event_time_timer(time),
            TimeDomain::ProcessingTime => ctx.register_processing_time_timer(time),
        }
    }

    /// Schedules the firing after `time` (never past the window's end).
    fn schedule_after(&self, time: i64, window_max: i64, ctx: &mut TriggerContext<'_>) {
        let next = (time + self.interval).min(window_max);
        ctx.set_state(NEXT_FIRE, next);
        self.register(next, ctx);
    }

    /// Starts the schedule, aligned to the interval, if the window has none.
    fn start(&self, time: i64, window_max: i64, ctx: &mut TriggerContext<'_>) {
        if ctx.get_state(NEXT_FIRE).is_none() {
            self.schedule_after(time - time.rem_euclid(self.interval), window_max, ctx);
        }
    }

    /// Whether `time` is the scheduled firing; if so, schedules the next one.
    fn fires_at(&self, time: i64, window_max: i64, ctx: &mut TriggerContext<'_>) -> bool {
        if ctx.get_state(NEXT_FIRE) != Some(time) {
            return false;
        }
        ctx.clear_state(NEXT_FIRE);
        self.schedule_after(time, window_max, ctx);
        true
    }

    /// Windows merged: the earliest next firing of theirs.
    fn merge(&self, ctx: &mut TriggerContext<'_>) {
        ctx.merge_state(NEXT_FIRE, i64::min);
        if let Some(next) = ctx.get_state(NEXT_FIRE) {
            self.register(next, ctx);
        }
    }

    fn clear(&self, ctx: &mut TriggerContext<'_>) {
        if let Some(next) = ctx.get_state(NEXT_FIRE) {
            match self.domain {
                TimeDomain::EventTime => ctx.delete_event_time_timer(next),
                TimeDomain::ProcessingTime => ctx.delete_processing_time_timer(next),
            }
        }
        ctx.clear_state(NEXT_FIRE);
    }
}

/// Fires every `interval` of event time, and at the end of the window.
#[derive(Debug, Clone, Copy)]
pub struct ContinuousEventTimeTrigger {
    schedule: Schedule,
}

impl ContinuousEventTimeTrigger {
    /// Fires every `interval` of event time.
    pub fn of(interval: Duration) -> Self {
        ContinuousEventTimeTrigger {
            schedule: Schedule::new(interval, TimeDomain::EventTime),
        }
    }
}

impl<T, W: Window> Trigger<T, W> for ContinuousEventTimeTrigger {
    fn on_element(&self, _: &T, t: i64, w: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        if w.max_timestamp() <= ctx.watermark {
            return TriggerResult::Fire;
        }
        ctx.register_event_time_timer(w.max_timestamp());
        self.schedule.start(t, w.max_timestamp(), ctx);
        TriggerResult::Continue
    }
    fn on_event_time(&self, time: i64, w: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        if time == w.max_timestamp() || self.schedule.fires_at(time, w.max_timestamp(), ctx) {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }
    fn on_processing_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn on_merge(&self, w: &W, ctx: &mut TriggerContext<'_>) {
        self.schedule.merge(ctx);
        if w.max_timestamp() > ctx.watermark {
            ctx.register_event_time_timer(w.max_timestamp());
        }
    }
    fn clear(&self, w: &W, ctx: &mut TriggerContext<'_>) {
        self.schedule.clear(ctx);
        ctx.delete_event_time_timer(w.max_timestamp());
    }
}

/// Fires every `interval` of processing time while the window receives records.
#[derive(Debug, Clone, Copy)]
pub struct ContinuousProcessingTimeTrigger {
    schedule: Schedule,
}

impl ContinuousProcessingTimeTrigger {
    /// Fires every `interval` of processing time.
    pub fn of(interval: Duration) -> Self {
        ContinuousProcessingTimeTrigger {
            schedule: Schedule::new(interval, TimeDomain::ProcessingTime),
        }
    }
}

impl<T, W: Window> Trigger<T, W> for ContinuousProcessingTimeTrigger {
    fn on_element(&self, _: &T, _: i64, w: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        let now = ctx.current_processing_time();
        self.schedule.start(now, w.max_timestamp(), ctx);
        TriggerResult::Continue
    }
    fn on_event_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
    fn on_processing_time(&self, time: i64, w: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        if self.schedule.fires_at(time, w.max_timestamp(), ctx) {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn on_merge(&self, _: &W, ctx: &mut TriggerContext<'_>) {
        self.schedule.merge(ctx);
    }
    fn clear(&self, _: &W, ctx: &mut TriggerContext<'_>) {
        self.schedule.clear(ctx);
    }
}

/// Never fires: the default of global windows, which need a trigger of their own.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverTrigger;

impl<T, W: Window> Trigger<T, W> for NeverTrigger {
    fn on_element(&self, _: &T, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
    fn on_event_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
    fn on_processing_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn clear(&self, _: &W, _: &mut TriggerContext<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::super::assigners::TimeWindow;
    use super::*;

    struct Harness {
        ops: Vec<TimerOp>,
        state: TriggerState,
        watermark: i64,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                ops: Vec::new(),
                state: Vec::new(),
                watermark: i64::MIN,
            }
        }
        fn ctx(&mut self) -> TriggerContext<'_> {
            TriggerContext {
                watermark: self.watermark,
                ops: &mut self.ops,
                state: &mut self.state,
                merged: &[],
            }
        }
    }

    #[test]
    fn event_time_trigger_registers_the_window_end_and_fires_late_records_at_once() {
        let w = TimeWindow::new(0, 10);
        let mut h = Harness::new();
        let r = Trigger::<u8, _>::on_element(&EventTimeTrigger, &1, 5, &w, &mut h.ctx());
        assert_eq!(r, TriggerResult::Continue);
        assert_eq!(h.ops, vec![TimerOp::RegisterEvent(9)]);
        assert_eq!(
            Trigger::<u8, _>::on_event_time(&EventTimeTrigger, 9, &w, &mut h.ctx()),
            TriggerResult::Fire
        );
        h.watermark = 20;
        assert_eq!(
            Trigger::<u8, _>::on_element(&EventTimeTrigger, &1, 5, &w, &mut h.ctx()),
            TriggerResult::Fire
        );
    }

    #[test]
    fn count_trigger_fires_every_n_and_purging_purges() {
        let w = TimeWindow::new(0, 10);
        let t = PurgingTrigger::of(CountTrigger::of(3));
        let mut h = Harness::new();
        let results: Vec<_> = (0..6)
            .map(|i| Trigger::<u8, _>::on_element(&t, &1, i, &w, &mut h.ctx()))
            .collect();
        use TriggerResult::*;
        assert_eq!(
            results,
            vec![
                Continue,
                Continue,
                FireAndPurge,
                Continue,
                Continue,
                FireAndPurge
            ]
        );
    }

    #[test]
    fn continuous_processing_time_trigger_fires_on_its_own_timer_only() {
        let w = TimeWindow::new(0, i64::MAX);
        let t = ContinuousProcessingTimeTrigger::of(Duration::from_millis(1000));
        let mut h = Harness::new();
        Trigger::<u8, _>::on_element(&t, &1, 5, &w, &mut h.ctx());
        let Some(&TimerOp::RegisterProcessing(first)) = h.ops.last() else {
            panic!("no processing-time timer: {:?}", h.ops);
        };
        assert_eq!(first % 1000, 0);
        // A second record does not register another timer.
        Trigger::<u8, _>::on_element(&t, &1, 6, &w, &mut h.ctx());
        assert_eq!(h.ops.len(), 1);
        assert_eq!(
            Trigger::<u8, _>::on_processing_time(&t, first + 1, &w, &mut h.ctx()),
            TriggerResult::Continue
        );
        assert_eq!(
            Trigger::<u8, _>::on_processing_time(&t, first, &w, &mut h.ctx()),
            TriggerResult::Fire
        );
        assert_eq!(
            h.ops.last(),
            Some(&TimerOp::RegisterProcessing(first + 1000))
        );
    }

    #[test]
    fn continuous_event_time_trigger_fires_every_interval_and_at_the_end() {
        let w = TimeWindow::new(0, 100);
        let t = ContinuousEventTimeTrigger::of(Duration::from_millis(30));
        let mut h = Harness::new();
        Trigger::<u8, _>::on_element(&t, &1, 5, &w, &mut h.ctx());
        assert_eq!(
            h.ops,
            vec![TimerOp::RegisterEvent(99), TimerOp::RegisterEvent(30)]
        );
        assert_eq!(
            Trigger::<u8, _>::on_event_time(&t, 30, &w, &mut h.ctx()),
            TriggerResult::Fire
        );
        assert_eq!(h.ops.last(), Some(&TimerOp::RegisterEvent(60)));
        assert_eq!(
            Trigger::<u8, _>::on_event_time(&t, 99, &w, &mut h.ctx()),
            TriggerResult::Fire
        );
    }
}
