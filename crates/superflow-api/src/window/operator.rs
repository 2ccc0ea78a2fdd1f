//! The window operator: assigns each record to windows, keeps their contents in keyed
//! state, asks the trigger when to fire, applies allowed lateness and the late-data side
//! output, merges session windows, and cleans windows up when they expire (Flink's
//! `WindowOperator` and `EvictingWindowOperator`).
//!
//! Sliding event-time windows with the default trigger take a faster path: each record
//! is added to one pane (the greatest common divisor of size and slide), and a window
//! merges its panes when it fires, instead of holding a copy of every record.

use std::sync::Arc;

use superflow_core::{Data, Key, UserError};
use superflow_runtime::{
    processing_time_now, OneInputStage, Records, SideOutputSink, Stage, StageContext, WakeUp,
    WatermarkEvent, MAX_WATERMARK,
};
use superflow_state::{StateTable, TimeDomain, TimerService};

use super::assigners::{TimeWindow, Window, WindowAssigner};
use super::functions::{EvictorContext, ProcessWindowContext, StateBag, WindowEmit, WindowFold};
use super::triggers::{TimerOp, Trigger, TriggerContext, TriggerState};
use crate::functions::{KeySelector, ProcessContext};
use crate::keyed_process::{restored_timers, snapshot_timers};
use crate::stages::{emit, snapshot_table};
use superflow_runtime::checkpoint::OperatorSnapshot;

/// The state of one window of one key: its contents (none after a purge), the trigger's
/// state, and the event-time timer last registered for it (so that a trigger asking for
/// the same timer on every record costs no timer-queue lookup).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct WindowSlot<Acc> {
    acc: Option<Acc>,
    #[serde(with = "trigger_state_format")]
    trigger: TriggerState,
    event_timer: i64,
}

/// Trigger state names are `&'static str` in memory and strings in checkpoints.
mod trigger_state_format {
    use super::TriggerState;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(state: &TriggerState, s: S) -> Result<S::Ok, S::Error> {
        state.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TriggerState, D::Error> {
        let named: Vec<(String, super::super::triggers::TriggerValue)> = Vec::deserialize(d)?;
        Ok(named
            .into_iter()
            .map(|(name, value)| (crate::state::intern(name), value))
            .collect())
    }
}

/// The names of the window operator's state in checkpoints.
const WINDOWS_STATE: &str = "windows";
const SESSIONS_STATE: &str = "sessions";
const WINDOW_STATES: &str = "window-state";
const GLOBAL_STATES: &str = "global-state";
/// The per-key count of records of count windows, in the key's global state.
const RECORDS_COUNTED: &str = "count-window-records";

impl<Acc> WindowSlot<Acc> {
    fn new() -> Self {
        WindowSlot {
            acc: None,
            trigger: Vec::new(),
            event_timer: i64::MIN,
        }
    }
}

/// How the operator was configured.
pub(crate) struct WindowSpec<A, TR> {
    pub assigner: Arc<A>,
    pub trigger: Arc<TR>,
    pub allowed_lateness: i64,
    /// The side output of late records, if the job asked for one.
    pub late_tag: Option<u32>,
    /// Use panes (sliding event-time windows with the default trigger and no evictor).
    pub panes: Option<Panes>,
    /// Whether the trigger is the assigner's default, whose timers are exactly one per
    /// window and key: a time whose timers cover a whole window fires it in one pass.
    pub default_trigger: bool,
}

/// Pane geometry of sliding windows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Panes {
    size: i64,
    slide: i64,
    offset: i64,
    pane: i64,
}

impl Panes {
    pub(crate) fn new(size: i64, slide: i64, offset: i64) -> Panes {
        fn gcd(a: i64, b: i64) -> i64 {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        Panes {
            size,
            slide,
            offset,
            pane: gcd(size, slide),
        }
    }
}

/// Timers, the watermark and the trigger's pending timer requests.
struct Clock<K, W> {
    timers: TimerService<K, W>,
    wake: WakeUp,
    ops: Vec<TimerOp>,
    watermark: i64,
    /// Batch mode, at the end of the input: timers registered now are ignored, as in
    /// Flink, so a trigger that registers again (a continuous trigger) cannot loop.
    quiesced: bool,
}

impl<K: Key, W: Window> Clock<K, W> {
    /// Applies the trigger's timer requests for `key` and `window`.
    fn apply_ops(&mut self, event_timer: &mut i64, key: &K, window: &W) {
        for op in self.ops.drain(..) {
            let registers = matches!(
                op,
                TimerOp::RegisterEvent(_) | TimerOp::RegisterProcessing(_)
            );
            if self.quiesced && registers {
                continue;
            }
            match op {
                TimerOp::RegisterEvent(t) => {
                    if *event_timer != t {
                        self.timers
                            .register(TimeDomain::EventTime, key.clone(), window.clone(), t);
                        *event_timer = t;
                    }
                }
                TimerOp::DeleteEvent(t) => {
                    self.timers.delete(TimeDomain::EventTime, key, window, t);
                    if *event_timer == t {
                        *event_timer = i64::MIN;
                    }
                }
                TimerOp::RegisterProcessing(t) => {
                    self.timers.register(
                        TimeDomain::ProcessingTime,
                        key.clone(),
                        window.clone(),
                        t,
                    );
                    self.wake.request(t);
                }
                TimerOp::DeleteProcessing(t) => {
                    self.timers
                        .delete(TimeDomain::ProcessingTime, key, window, t);
                }
            }
        }
    }

    fn trigger_context<'a>(
        &'a mut self,
        state: &'a mut TriggerState,
        merged: &'a [TriggerState],
    ) -> TriggerContext<'a> {
        TriggerContext {
            watermark: self.watermark,
            ops: &mut self.ops,
            state,
            merged,
        }
    }
}

/// Runs window functions and keeps their state.
struct Firing<K, W, F, E, O, IN> {
    fold: Arc<F>,
    emitter: E,
    window_states: StateTable<K, W, StateBag>,
    global_states: StateTable<K, (), StateBag>,
    side: ProcessContext,
    results: Vec<IN>,
    out: Records<O>,
}

impl<K, W, F, E, O, IN> Firing<K, W, F, E, O, IN>
where
    K: Key,
    W: Window,
    E: WindowEmit<K, W, IN, O>,
    O: Data,
    IN: Data,
{
    /// Runs the window function over `window`'s contents.
    fn fire<T>(
        &mut self,
        key: &K,
        window: &W,
        acc: &mut F::Acc,
        watermark: i64,
    ) -> Result<(), UserError>
    where
        F: WindowFold<T, W, Out = IN>,
    {
        let evictor_ctx = EvictorContext { watermark };
        self.results.clear();
        self.fold
            .results(acc, window, &evictor_ctx, &mut self.results);
        self.emit_results(key, window, watermark)?;
        self.fold.after_fire(acc, window, &evictor_ctx);
        Ok(())
    }

    /// Runs the window function over contents that are dropped afterwards.
    fn fire_last<T>(
        &mut self,
        key: &K,
        window: &W,
        acc: F::Acc,
        watermark: i64,
    ) -> Result<(), UserError>
    where
        F: WindowFold<T, W, Out = IN>,
    {
        let evictor_ctx = EvictorContext { watermark };
        self.results.clear();
        self.fold
            .take_results(acc, window, &evictor_ctx, &mut self.results);
        self.emit_results(key, window, watermark)
    }

    fn emit_results(&mut self, key: &K, window: &W, watermark: i64) -> Result<(), UserError> {
        let timestamp = window.max_timestamp();
        self.side.timestamp = Some(timestamp);
        let mut ctx = ProcessWindowContext {
            key,
            window,
            watermark,
            window_states: &mut self.window_states,
            global_states: &mut self.global_states,
            side: &mut self.side,
        };
        self.emitter
            .emit(key, &mut ctx, &mut self.results, &mut self.out.values)?;
        self.out.stamp_new(Some(timestamp));
        Ok(())
    }

    /// The window is gone: the process function's `clear`, then its per-window state.
    fn clear(&mut self, key: &K, window: &W, watermark: i64) -> Result<(), UserError> {
        if self.emitter.has_clear() {
            let mut ctx = ProcessWindowContext {
                key,
                window,
                watermark,
                window_states: &mut self.window_states,
                global_states: &mut self.global_states,
                side: &mut self.side,
            };
            self.emitter.clear(&mut ctx)?;
            self.window_states.remove(key, window);
        }
        Ok(())
    }
}

/// The window operator's stage.
pub(crate) struct WindowStage<T, K, KS, A: WindowAssigner<T>, TR, F: WindowFold<T, A::W>, E, O> {
    ctx: StageContext,
    key_selector: Arc<KS>,
    spec: WindowSpec<A, TR>,
    windows: StateTable<K, A::W, WindowSlot<F::Acc>>,
    /// The active windows of each key, for merging (session) assigners.
    sessions: StateTable<K, (), Vec<A::W>>,
    clock: Clock<K, A::W>,
    firing: Firing<K, A::W, F, E, O, F::Out>,
    side_sink: SideOutputSink,
    late: Records<T>,
    assigned: Vec<A::W>,
    next: Box<dyn OneInputStage<O>>,
}

impl<T, K, KS, A, TR, F, E, O> WindowStage<T, K, KS, A, TR, F, E, O>
where
    T: Data,
    K: Key,
    KS: KeySelector<T, K>,
    A: WindowAssigner<T>,
    TR: Trigger<T, A::W>,
    F: WindowFold<T, A::W>,
    E: WindowEmit<K, A::W, F::Out, O>,
    O: Data,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ctx: &StageContext,
        chain: &superflow_runtime::ChainOutput,
        key_selector: Arc<KS>,
        spec: WindowSpec<A, TR>,
        fold: Arc<F>,
        emitter: E,
        next: Box<dyn OneInputStage<O>>,
    ) -> Self {
        let side = ProcessContext::new(
            ctx.node,
            crate::stages::runtime_context(ctx),
            chain.side_output_sink(),
        );
        let stage = WindowStage {
            ctx: ctx.clone(),
            key_selector,
            spec,
            windows: ctx.keyed_table(WINDOWS_STATE),
            sessions: ctx.keyed_table(SESSIONS_STATE),
            clock: Clock {
                timers: restored_timers(ctx),
                wake: chain.wake_up(),
                ops: Vec::new(),
                watermark: i64::MIN,
                quiesced: false,
            },
            firing: Firing {
                fold,
                emitter,
                window_states: ctx.keyed_table(WINDOW_STATES),
                global_states: ctx.keyed_table(GLOBAL_STATES),
                side,
                results: Vec::new(),
                out: Records::default(),
            },
            side_sink: chain.side_output_sink(),
            late: Records::default(),
            assigned: Vec::new(),
            next,
        };
        if let Some(at) = stage.clock.timers.next_processing_time() {
            stage.clock.wake.request(at);
        }
        stage
    }

    fn event_time(&self) -> bool {
        self.spec.assigner.is_event_time()
    }

    fn cleanup_time(&self, window: &A::W) -> i64 {
        if self.event_time() {
            window
                .max_timestamp()
                .saturating_add(self.spec.allowed_lateness)
        } else {
            window.max_timestamp()
        }
    }

    fn cleanup_domain(&self) -> TimeDomain {
        if self.event_time() {
            TimeDomain::EventTime
        } else {
            TimeDomain::ProcessingTime
        }
    }

    fn is_window_late(&self, window: &A::W) -> bool {
        self.event_time() && self.cleanup_time(window) <= self.clock.watermark
    }

    fn is_element_late(&self, timestamp: i64) -> bool {
        self.event_time()
            && timestamp.saturating_add(self.spec.allowed_lateness) <= self.clock.watermark
    }

    fn late_record(&mut self, value: T, timestamp: i64) {
        match self.spec.late_tag {
            Some(_) => self.late.push(value, Some(timestamp)),
            None => self.ctx.counters.add_late_dropped(1),
        }
    }

    /// Adds `value` (for count windows, the key's `index`-th record) to `window` of
    /// `key` and acts on the trigger's decision.
    fn add_to_window(
        &mut self,
        key: &K,
        window: A::W,
        value: T,
        timestamp: i64,
        index: Option<u64>,
    ) -> Result<(), UserError> {
        let cleanup = self.cleanup_time(&window);
        let domain = self.cleanup_domain();
        let (slot, _) =
            self.windows
                .get_or_insert_with(key.clone(), window.clone(), WindowSlot::new);
        let result = {
            let mut tctx = self.clock.trigger_context(&mut slot.trigger, &[]);
            self.spec
                .trigger
                .on_element(&value, timestamp, &window, &mut tctx)
        };
        match &mut slot.acc {
            Some(acc) => self.firing.fold.add(acc, value, timestamp),
            None => slot.acc = Some(self.firing.fold.create(value, timestamp)),
        }
        self.clock.apply_ops(&mut slot.event_timer, key, &window);
        if result.is_fire() {
            if let Some(acc) = slot.acc.as_mut() {
                self.firing.fire(key, &window, acc, self.clock.watermark)?;
            }
        }
        if result.is_purge() {
            slot.acc = None;
            // A count window purged after its last record is done: nothing reaches it.
            if index.is_some() && index == self.spec.assigner.last_record_of(&window) {
                return match self.windows.remove(key, &window) {
                    Some(mut slot) => self.clear_window(key, &window, &mut slot),
                    None => Ok(()),
                };
            }
        }
        // The cleanup timer; for event time without lateness it is the trigger's own.
        if cleanup != i64::MAX && !(domain == TimeDomain::EventTime && slot.event_timer == cleanup)
        {
            self.clock
                .timers
                .register(domain, key.clone(), window, cleanup);
            if domain == TimeDomain::ProcessingTime {
                self.clock.wake.request(cleanup);
            }
        }
        Ok(())
    }

    /// Session windows: merges `window` with the key's windows it overlaps, moving their
    /// contents and trigger state into the merged window. Returns the window the record
    /// belongs to.
    fn merge_window(&mut self, key: &K, window: A::W) -> A::W {
        let (active, _) = self.sessions.get_or_insert_with(key.clone(), (), Vec::new);
        let mut result = window.clone();
        let mut merged: Vec<A::W> = Vec::new();
        while let Some(i) = active.iter().position(|w| w.intersects(&result)) {
            let w = active.swap_remove(i);
            result = result.cover(&w);
            merged.push(w);
        }
        active.push(result.clone());
        if merged.is_empty() || (merged.len() == 1 && merged[0] == result) {
            return result;
        }
        let domain = self.cleanup_domain();
        let mut slot = self
            .windows
            .remove(key, &result)
            .unwrap_or_else(WindowSlot::new);
        let mut merged_states = Vec::new();
        for m in merged.iter().filter(|m| **m != result) {
            if let Some(mut old) = self.windows.remove(key, m) {
                if let Some(acc) = old.acc.take() {
                    match &mut slot.acc {
                        Some(into) => self.firing.fold.merge(into, acc),
                        None => slot.acc = Some(acc),
                    }
                }
                // The merged window's trigger state as it was: `on_merge` combines it
                // (a count, a next firing) after `clear` has wiped the window's own.
                merged_states.push(old.trigger.clone());
                let mut tctx = self.clock.trigger_context(&mut old.trigger, &[]);
                self.spec.trigger.clear(m, &mut tctx);
                self.clock.apply_ops(&mut old.event_timer, key, m);
            }
            let cleanup = self.cleanup_time(m);
            self.clock.timers.delete(domain, key, m, cleanup);
            self.firing.window_states.remove(key, m);
        }
        let mut tctx = self
            .clock
            .trigger_context(&mut slot.trigger, &merged_states);
        self.spec.trigger.on_merge(&result, &mut tctx);
        self.clock.apply_ops(&mut slot.event_timer, key, &result);
        self.windows.insert(key.clone(), result.clone(), slot);
        result
    }

    fn process_record(
        &mut self,
        value: T,
        timestamp: Option<i64>,
        now: i64,
    ) -> Result<(), UserError> {
        let timestamp = match timestamp {
            Some(t) => t,
            None if self.event_time() => {
                return Err(
                    "a record has no event timestamp, but the window is in event time: call \
                     assign_timestamps_and_watermarks upstream, or use processing-time windows"
                        .into(),
                )
            }
            None => now,
        };
        let key = self.key_selector.get_key(&value);
        if let Some(panes) = self.spec.panes {
            self.process_in_pane(key, value, timestamp, panes);
            return Ok(());
        }
        let mut assigned = std::mem::take(&mut self.assigned);
        assigned.clear();
        let index = if self.spec.assigner.counts_records() {
            let index = self.next_record_index(&key);
            self.spec.assigner.assign_by_count(index, &mut assigned);
            Some(index)
        } else {
            self.spec
                .assigner
                .assign_windows(&value, timestamp, now, &mut assigned);
            None
        };
        if self.spec.assigner.is_merging() {
            for w in assigned.iter_mut() {
                *w = self.merge_window(&key, w.clone());
            }
        }
        assigned.retain(|w| !self.is_window_late(w));
        if assigned.is_empty() {
            self.assigned = assigned;
            if self.is_element_late(timestamp) {
                self.late_record(value, timestamp);
            }
            return Ok(());
        }
        let last = assigned.len() - 1;
        let mut value = Some(value);
        let mut result = Ok(());
        for (i, w) in assigned.drain(..).enumerate() {
            let v = if i == last {
                value.take()
            } else {
                value.clone()
            };
            if let Some(v) = v {
                if result.is_ok() {
                    result = self.add_to_window(&key, w, v, timestamp, index);
                }
            }
        }
        self.assigned = assigned;
        result
    }

    fn process_in_pane(&mut self, key: K, value: T, timestamp: i64, p: Panes) {
        // The last window containing the record ends here; once it fired, the record is late.
        let last_start = TimeWindow::window_start_with_offset(timestamp, p.offset, p.slide);
        if last_start + p.size - 1 <= self.clock.watermark {
            self.late_record(value, timestamp);
            return;
        }
        let pane_start = TimeWindow::window_start_with_offset(timestamp, p.offset, p.pane);
        let pane = time_window::<A::W>(pane_start, pane_start + p.pane);
        let (slot, created) = self
            .windows
            .get_or_insert_with(key.clone(), pane, WindowSlot::new);
        match &mut slot.acc {
            Some(acc) => self.firing.fold.add(acc, value, timestamp),
            None => slot.acc = Some(self.firing.fold.create(value, timestamp)),
        }
        if created {
            // A new pane: every window it belongs to fires for this key.
            let mut start = last_start;
            while start > pane_start - p.size {
                let end = start + p.size;
                if end - 1 > self.clock.watermark {
                    let w = time_window::<A::W>(start, end);
                    self.clock
                        .timers
                        .register(TimeDomain::EventTime, key.clone(), w, end - 1);
                }
                start -= p.slide;
            }
        }
    }

    fn fire_pane_window(&mut self, key: &K, window: &A::W, p: Panes) -> Result<(), UserError> {
        let Some(tw) = window.as_time_window() else {
            return Ok(());
        };
        let mut total: Option<F::Acc> = None;
        let mut start = tw.start;
        while start < tw.end {
            let pane = time_window::<A::W>(start, start + p.pane);
            if let Some(acc) = self
                .windows
                .get_mut(key, &pane)
                .and_then(|s| s.acc.as_ref())
            {
                match &mut total {
                    Some(t) => self.firing.fold.merge(t, acc.clone()),
                    None => total = Some(acc.clone()),
                }
            }
            start += p.pane;
        }
        if let Some(mut acc) = total {
            self.firing
                .fire(key, window, &mut acc, self.clock.watermark)?;
        }
        // Panes that no later window contains are done.
        let mut start = tw.start;
        while start < tw.start + p.slide {
            self.windows
                .remove(key, &time_window::<A::W>(start, start + p.pane));
            start += p.pane;
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        domain: TimeDomain,
        time: i64,
        key: K,
        window: A::W,
    ) -> Result<(), UserError> {
        if let Some(p) = self.spec.panes {
            return self.fire_pane_window(&key, &window, p);
        }
        if self.spec.assigner.is_merging() {
            let active = self
                .sessions
                .get_mut(&key, &())
                .is_some_and(|ws| ws.contains(&window));
            if !active {
                return Ok(());
            }
        }
        let Some(slot) = self.windows.remove(&key, &window) else {
            return Ok(());
        };
        self.on_timer_slot(domain, time, key, window, slot)
    }

    /// A timer of `key` and `window` fired; `slot` is the window's state, taken out.
    fn on_timer_slot(
        &mut self,
        domain: TimeDomain,
        time: i64,
        key: K,
        window: A::W,
        mut slot: WindowSlot<F::Acc>,
    ) -> Result<(), UserError> {
        if domain == TimeDomain::EventTime && slot.event_timer == time {
            slot.event_timer = i64::MIN;
        }
        let result = {
            let mut tctx = self.clock.trigger_context(&mut slot.trigger, &[]);
            match domain {
                TimeDomain::EventTime => self.spec.trigger.on_event_time(time, &window, &mut tctx),
                TimeDomain::ProcessingTime => self
                    .spec
                    .trigger
                    .on_processing_time(time, &window, &mut tctx),
            }
        };
        self.clock.apply_ops(&mut slot.event_timer, &key, &window);
        let cleanup = domain == self.cleanup_domain() && time == self.cleanup_time(&window);
        if result.is_fire() {
            if result.is_purge() || cleanup {
                if let Some(acc) = slot.acc.take() {
                    self.firing
                        .fire_last(&key, &window, acc, self.clock.watermark)?;
                }
            } else if let Some(acc) = slot.acc.as_mut() {
                self.firing.fire(&key, &window, acc, self.clock.watermark)?;
            }
        }
        if result.is_purge() {
            slot.acc = None;
        }
        if cleanup || (slot.acc.is_none() && self.has_all_records(&key, &window)) {
            self.clear_window(&key, &window, &mut slot)
        } else {
            self.windows.insert(key, window, slot);
            Ok(())
        }
    }

    /// Count windows: the index of `key`'s next record (from 0), counted in its global
    /// state.
    fn next_record_index(&mut self, key: &K) -> u64 {
        let states = &mut self.firing.global_states;
        if let Some(bag) = states.get_mut(key, &()) {
            let counted: &mut u64 = bag.get(RECORDS_COUNTED);
            *counted += 1;
            return *counted - 1;
        }
        let mut bag = StateBag::default();
        *bag.get::<u64>(RECORDS_COUNTED) = 1;
        states.insert(key.clone(), (), bag);
        0
    }

    /// Whether `window` of `key` is a count window that got its last record.
    fn has_all_records(&mut self, key: &K, window: &A::W) -> bool {
        let Some(last) = self.spec.assigner.last_record_of(window) else {
            return false;
        };
        self.firing
            .global_states
            .get_mut(key, &())
            .is_some_and(|bag| *bag.get::<u64>(RECORDS_COUNTED) > last)
    }

    /// Drops everything of an expired window: contents, trigger state and timers,
    /// per-window state, and its place in the key's sessions.
    fn clear_window(
        &mut self,
        key: &K,
        window: &A::W,
        slot: &mut WindowSlot<F::Acc>,
    ) -> Result<(), UserError> {
        let mut tctx = self.clock.trigger_context(&mut slot.trigger, &[]);
        self.spec.trigger.clear(window, &mut tctx);
        self.clock.apply_ops(&mut slot.event_timer, key, window);
        self.firing.clear(key, window, self.clock.watermark)?;
        if self.spec.assigner.is_merging() {
            if let Some(active) = self.sessions.get_mut(key, &()) {
                active.retain(|w| w != window);
                if active.is_empty() {
                    self.sessions.remove(key, &());
                }
            }
        }
        Ok(())
    }

    fn fire_timers(&mut self, domain: TimeDomain, until: i64) {
        let ctx = self.ctx.clone();
        let result = ctx.guard(|| {
            while let Some((time, due)) = self.clock.timers.pop_due(domain, until) {
                let whole = self
                    .whole_window(&due)
                    .and_then(|w| Some((self.windows.take_whole_namespace(&w, due.len())?, w)));
                if let Some((slots, window)) = whole {
                    for (key, slot) in slots {
                        self.on_timer_slot(domain, time, key, window.clone(), slot)?;
                    }
                    continue;
                }
                for (key, window) in due {
                    self.on_timer(domain, time, key, window)?;
                }
            }
            Ok::<(), UserError>(())
        });
        if let Err(e) = result {
            ctx.fail(e);
        }
        self.flush();
    }

    /// The window of every timer in `due`, if they share one and the trigger sets one
    /// timer per window and key: if the window holds exactly these keys, its state is
    /// taken in one piece instead of key by key.
    fn whole_window(&self, due: &[(K, A::W)]) -> Option<A::W> {
        if !self.spec.default_trigger
            || self.spec.panes.is_some()
            || self.spec.assigner.is_merging()
            || due.len() < 2
        {
            return None;
        }
        let window = &due[0].1;
        due.iter().all(|(_, w)| w == window).then(|| window.clone())
    }

    fn flush(&mut self) {
        self.firing.side.flush_side_outputs();
        if let Some(tag) = self.spec.late_tag {
            if !self.late.is_empty() {
                self.side_sink.emit(tag, std::mem::take(&mut self.late));
            }
        }
        emit(&self.ctx, &mut self.firing.out, &mut self.next);
    }
}

/// A time window as the assigner's window type (panes exist only for time windows).
fn time_window<W: Window>(start: i64, end: i64) -> W {
    match W::from_time_window(TimeWindow::new(start, end)) {
        Some(w) => w,
        None => panic!("internal error: panes are only used with time windows"),
    }
}

impl<T, K, KS, A, TR, F, E, O> OneInputStage<T> for WindowStage<T, K, KS, A, TR, F, E, O>
where
    T: Data,
    K: Key,
    KS: KeySelector<T, K>,
    A: WindowAssigner<T>,
    TR: Trigger<T, A::W>,
    F: WindowFold<T, A::W>,
    E: WindowEmit<K, A::W, F::Out, O>,
    O: Data,
{
    fn push(&mut self, batch: &mut Records<T>) {
        self.ctx.counters.add_in(batch.len());
        let now = if self.event_time() {
            0
        } else {
            processing_time_now()
        };
        let ctx = self.ctx.clone();
        let result = ctx.guard(|| {
            for (value, timestamp) in batch.drain() {
                self.process_record(value, timestamp, now)?;
            }
            Ok::<(), UserError>(())
        });
        if let Err(e) = result {
            ctx.fail(e);
        }
        self.flush();
    }
}

impl<T, K, KS, A, TR, F, E, O> Stage for WindowStage<T, K, KS, A, TR, F, E, O>
where
    T: Data,
    K: Key,
    KS: KeySelector<T, K>,
    A: WindowAssigner<T>,
    TR: Trigger<T, A::W>,
    F: WindowFold<T, A::W>,
    E: WindowEmit<K, A::W, F::Out, O>,
    O: Data,
{
    fn next_stage(&mut self) -> Option<&mut dyn Stage> {
        Some(&mut *self.next)
    }

    fn watermark(&mut self, event: WatermarkEvent) {
        if let WatermarkEvent::Watermark(w) = event {
            self.clock.watermark = w;
            if w == MAX_WATERMARK && self.ctx.runtime_mode.is_batch() {
                self.clock.quiesced = true;
            }
            self.fire_timers(TimeDomain::EventTime, w);
            // In batch mode processing time stands still until the input ends, where
            // every processing-time timer fires, as in Flink.
            if w == MAX_WATERMARK && self.ctx.runtime_mode.is_batch() {
                self.clock.quiesced = true;
                self.fire_timers(TimeDomain::ProcessingTime, MAX_WATERMARK);
            }
        }
        self.next.watermark(event);
    }

    fn on_processing_time(&mut self, now: i64) {
        if self.ctx.runtime_mode.is_batch() {
            self.next.on_processing_time(now);
            return;
        }
        self.fire_timers(TimeDomain::ProcessingTime, now);
        if let Some(next) = self.clock.timers.next_processing_time() {
            self.clock.wake.request(next);
        }
        self.next.on_processing_time(now);
    }

    fn finish(&mut self) {
        self.flush();
        self.next.finish();
    }

    fn snapshot(&mut self, out: &mut OperatorSnapshot) {
        snapshot_table(&self.ctx, out, WINDOWS_STATE, &mut self.windows);
        snapshot_table(&self.ctx, out, SESSIONS_STATE, &mut self.sessions);
        snapshot_table(
            &self.ctx,
            out,
            WINDOW_STATES,
            &mut self.firing.window_states,
        );
        snapshot_table(
            &self.ctx,
            out,
            GLOBAL_STATES,
            &mut self.firing.global_states,
        );
        snapshot_timers(&self.ctx, &mut self.clock.timers, out);
        self.next.snapshot(out);
    }
}
