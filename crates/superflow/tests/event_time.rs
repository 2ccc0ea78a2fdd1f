//! Event time: watermarks, windows, triggers, evictors, lateness and keyed timers,
//! checked against plain computations at parallelism 1, 2 and 4.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use superflow::prelude::*;
use superflow::{SourceError, SourceFunction, SourcePoll, SourceReader};

mod common;
use common::PunctuatedEveryRecord;

/// Appends every record to a shared vector as it arrives.
#[derive(Clone)]
struct SharedSink(std::sync::Arc<std::sync::Mutex<Vec<u64>>>);

impl SinkFunction<u64> for SharedSink {
    fn invoke(&mut self, value: u64) -> Result<(), UserError> {
        self.0.lock().map_err(|_| "poisoned")?.push(value);
        Ok(())
    }
}

const PARALLELISMS: [usize; 3] = [1, 2, 4];

fn env(p: usize) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(p);
    env
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// (key, timestamp) events, out of order by up to `bound` ms, deterministic.
fn events(n: u64, keys: u64, bound: i64) -> Vec<(u64, i64)> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let jitter = (state % (bound as u64 + 1)) as i64;
            (state % keys, (i as i64) * 3 - jitter)
        })
        .collect()
}

fn strategy(
    bound: i64,
) -> WatermarkStrategy<(u64, i64), impl superflow::TimestampAssigner<(u64, i64)>> {
    WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(bound as u64))
        .with_timestamp_assigner(|e: &(u64, i64), _| e.1)
}

/// Expected tumbling counts: (key, window end) -> count.
fn tumbling_counts(events: &[(u64, i64)], size: i64) -> Vec<(u64, i64, u64)> {
    let mut counts: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for &(k, t) in events {
        let start = t - t.rem_euclid(size);
        *counts.entry((k, start + size)).or_default() += 1;
    }
    counts.into_iter().map(|((k, e), c)| (k, e, c)).collect()
}

fn count_per_window<W: Window>(
    key: &u64,
    ctx: &mut ProcessWindowContext<'_, u64, W>,
    elements: &[u64],
    out: &mut Collector<(u64, i64, u64)>,
) -> Result<(), UserError> {
    let end = ctx.window().max_timestamp() + 1;
    out.collect((*key, end, elements.iter().sum()));
    Ok(())
}

struct Count;
impl AggregateFunction<(u64, i64), u64, u64> for Count {
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _: (u64, i64), acc: &mut u64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
}

#[test]
fn tumbling_event_time_counts_equal_batch_counts() -> Result<(), JobError> {
    let input = events(20_000, 17, 40);
    let expected = tumbling_counts(&input, 100);
    for p in PARALLELISMS {
        let env = env(p);
        let out = env
            .from_collection(input.clone())
            .assign_timestamps_and_watermarks(strategy(40))
            .key_by(|e: &(u64, i64)| e.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
            .aggregate_with_process(Count, count_per_window)
            .execute_and_collect()?;
        assert_eq!(sorted(out), expected, "p={p}");
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_epoch_cadence_or_watermark_interval() -> Result<(), JobError> {
    let input = events(5_000, 5, 20);
    let expected = tumbling_counts(&input, 50);
    for (cadence_ms, epoch_records, interval_ms) in [(1, 64, 0), (50, 65_536, 1), (5, 500, 200)] {
        let env = env(2);
        let mut flow = env.flow_control();
        flow.epoch_cadence = Duration::from_millis(cadence_ms);
        flow.max_epoch_records = epoch_records;
        flow.batch_size = 100;
        env.set_flow_control(flow);
        env.set_auto_watermark_interval(Duration::from_millis(interval_ms));
        let out = env
            .from_collection(input.clone())
            .assign_timestamps_and_watermarks(strategy(20))
            .key_by(|e: &(u64, i64)| e.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(50)))
            .aggregate_with_process(Count, count_per_window)
            .execute_and_collect()?;
        assert_eq!(sorted(out), expected, "cadence {cadence_ms} ms");
    }
    Ok(())
}

#[test]
fn window_results_carry_the_window_end_as_timestamp() -> Result<(), JobError> {
    let env = env(2);
    let stamps = env
        .from_elements(vec![(1u64, 5i64), (1, 15), (2, 25)])
        .assign_timestamps_and_watermarks(strategy(0))
        .key_by(|e: &(u64, i64)| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
        .reduce(|a: (u64, i64), _b: (u64, i64)| a)
        .process(
            |v: (u64, i64), ctx: &mut ProcessContext, out: &mut Collector<(u64, Option<i64>)>| {
                out.collect((v.0, ctx.timestamp()));
                Ok(())
            },
        )
        .execute_and_collect()?;
    assert_eq!(
        sorted(stamps),
        vec![(1, Some(9)), (1, Some(19)), (2, Some(29))]
    );
    Ok(())
}

#[test]
fn sliding_windows_match_a_plain_computation_with_and_without_panes() -> Result<(), JobError> {
    let input = events(6_000, 7, 30);
    let (size, slide) = (60i64, 20i64);
    let mut expected: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for &(k, t) in &input {
        let last = t - t.rem_euclid(slide);
        let mut start = last;
        while start > t - size {
            *expected.entry((k, start + size)).or_default() += 1;
            start -= slide;
        }
    }
    let expected: Vec<(u64, i64, u64)> =
        expected.into_iter().map(|((k, e), c)| (k, e, c)).collect();
    for p in PARALLELISMS {
        // reduce: pre-aggregated per pane.
        let windows = SlidingEventTimeWindows::of(
            Duration::from_millis(size as u64),
            Duration::from_millis(slide as u64),
        );
        let panes = self::env(p)
            .from_collection(input.clone())
            .assign_timestamps_and_watermarks(strategy(30))
            .map(|e: (u64, i64)| (e.0, 1u64))
            .key_by(|e: &(u64, u64)| e.0)
            .window(windows)
            .reduce_with_process(
                |a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1),
                |k: &u64,
                 ctx: &mut ProcessWindowContext<'_, u64, TimeWindow>,
                 e: &[(u64, u64)],
                 out: &mut Collector<(u64, i64, u64)>| {
                    out.collect((*k, ctx.window().end, e[0].1));
                    Ok(())
                },
            )
            .execute_and_collect()?;
        assert_eq!(sorted(panes), expected, "panes, p={p}");
        // process over all elements: one copy per window.
        let listed = self::env(p)
            .from_collection(input.clone())
            .assign_timestamps_and_watermarks(strategy(30))
            .map(|e: (u64, i64)| (e.0, 1u64))
            .key_by(|e: &(u64, u64)| e.0)
            .window(windows)
            .process(
                |k: &u64,
                 ctx: &mut ProcessWindowContext<'_, u64, TimeWindow>,
                 e: &[(u64, u64)],
                 out: &mut Collector<(u64, i64, u64)>| {
                    out.collect((*k, ctx.window().end, e.len() as u64));
                    Ok(())
                },
            )
            .execute_and_collect()?;
        assert_eq!(sorted(listed), expected, "list, p={p}");
    }
    Ok(())
}

#[test]
fn late_records_go_to_the_side_output_or_are_counted_as_dropped() -> Result<(), JobError> {
    // Watermark = max - 0 - 1 with a monotonous strategy, emitted after every batch.
    let input = vec![(1u64, 10i64), (1, 30), (1, 5), (1, 31), (1, 12)];
    for p in PARALLELISMS {
        let env = env(p);
        env.set_auto_watermark_interval(Duration::ZERO);
        let mut flow = env.flow_control();
        flow.batch_size = 1;
        env.set_flow_control(flow);
        let late = OutputTag::<(u64, i64)>::new("late");
        // One watermark generator sees the records in order: the watermark follows each.
        let windowed = env
            .from_collection(input.clone())
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_generator(PunctuatedEveryRecord::default)
                    .with_timestamp_assigner(|e: &(u64, i64), _| e.1),
            )
            .set_parallelism(1)
            .key_by(|e: &(u64, i64)| e.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
            .side_output_late_data(&late)
            .aggregate(Count);
        let late_records = windowed.get_side_output(&late).execute_and_collect()?;
        assert_eq!(sorted(late_records), vec![(1, 5), (1, 12)], "p={p}");
    }
    // Without a side output, the operator's metrics count them.
    let env = env(1);
    env.set_auto_watermark_interval(Duration::ZERO);
    let mut flow = env.flow_control();
    flow.batch_size = 1;
    env.set_flow_control(flow);
    env.from_collection(input)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_generator(PunctuatedEveryRecord::default)
                .with_timestamp_assigner(|e: &(u64, i64), _| e.1),
        )
        .key_by(|e: &(u64, i64)| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
        .aggregate(Count)
        .name("Counts")
        .print();
    let result = env.execute("late")?;
    assert_eq!(
        result.operator("Counts").map(|o| o.late_records_dropped),
        Some(2)
    );
    Ok(())
}

fn punctuated_env() -> StreamExecutionEnvironment {
    let env = env(1);
    env.set_auto_watermark_interval(Duration::ZERO);
    let mut flow = env.flow_control();
    flow.batch_size = 1;
    env.set_flow_control(flow);
    env
}

/// (key, event time) records, each its own watermark, counted per key in 10 ms tumbling
/// windows with 20 ms of allowed lateness, and handed to `process`.
fn counted_with_lateness<O: superflow::Data>(
    env: &StreamExecutionEnvironment,
    input: Vec<(u64, i64)>,
    process: impl ProcessWindowFunction<u64, O, u64, TimeWindow>,
) -> Result<Vec<O>, JobError> {
    env.from_elements(input)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_generator(PunctuatedEveryRecord::default)
                .with_timestamp_assigner(|e: &(u64, i64), _| e.1),
        )
        .key_by(|e: &(u64, i64)| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
        .allowed_lateness(Duration::from_millis(20))
        .aggregate_with_process(Count, process)
        .execute_and_collect()
}

#[test]
fn allowed_lateness_fires_the_window_again_with_the_updated_result() -> Result<(), JobError> {
    let env = punctuated_env();
    let input = vec![(1u64, 1i64), (1, 2), (1, 25), (1, 3), (1, 40), (1, 4)];
    let out = counted_with_lateness(&env, input, count_per_window)?;
    // [0,10) fires at watermark 24 with 2, again for the late 3 (within lateness), and is
    // gone when 4 arrives at watermark 39 (10 + 20 <= 39): 4 is dropped.
    assert_eq!(out, vec![(1, 10, 2), (1, 10, 3), (1, 30, 1), (1, 50, 1)]);
    Ok(())
}

/// Counts a window's firings in its window state and the key's firings in its global
/// state: (key, window end, elements, firing of this window, firing of this key).
fn count_firings(
    key: &u64,
    ctx: &mut ProcessWindowContext<'_, u64, TimeWindow>,
    elements: &[u64],
    out: &mut Collector<(u64, i64, u64, u32, u32)>,
) -> Result<(), UserError> {
    let end = ctx.window().end;
    let of_window = {
        let n = ctx.window_state::<u32>("firings");
        *n += 1;
        *n
    };
    let of_key = {
        let n = ctx.global_state::<u32>("firings");
        *n += 1;
        *n
    };
    out.collect((*key, end, elements[0], of_window, of_key));
    Ok(())
}

#[test]
fn process_window_functions_keep_per_window_and_per_key_state_on_either_backend(
) -> Result<(), JobError> {
    for lsm in [
        None,
        Some(TimerStorage::InStore),
        Some(TimerStorage::InMemory),
    ] {
        let env = punctuated_env();
        if let Some(timers) = lsm {
            // One entry per state in memory: window and key state live in the store.
            env.set_state_backend(StateBackendConfig::EmbeddedLsm {
                dir: None,
                cache_entries: 1,
                timers,
                block_cache_bytes: StateBackendConfig::DEFAULT_BLOCK_CACHE_BYTES,
            });
        }
        let input = vec![
            (1u64, 1i64),
            (2, 2),
            (1, 2),
            (1, 25),
            (2, 3),
            (1, 3),
            (1, 40),
            (1, 4),
        ];
        let out = counted_with_lateness(&env, input, count_firings)?;
        // [0,10) of key 1 fires at watermark 25 and again for the late 3: its second
        // firing. Key 2's windows count apart.
        assert_eq!(
            out,
            vec![
                (1, 10, 2, 1, 1),
                (2, 10, 1, 1, 1),
                (2, 10, 2, 2, 2),
                (1, 10, 3, 2, 2),
                (1, 30, 1, 1, 3),
                (1, 50, 1, 1, 4),
            ],
            "lsm: {lsm:?}"
        );
    }
    Ok(())
}

#[test]
fn session_windows_merge_when_a_bridging_record_arrives() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let input = vec![
            (1u64, 0i64),
            (1, 5),
            (1, 22),
            (1, 25),
            (2, 100),
            (1, 14), // bridges [0,15) and [22,35) with gap 10 -> [0,35)
            (1, 80),
        ];
        let out = env
            .from_collection(input)
            .assign_timestamps_and_watermarks(strategy(100))
            .key_by(|e: &(u64, i64)| e.0)
            .window(EventTimeSessionWindows::with_gap(Duration::from_millis(10)))
            .process(
                |k: &u64,
                 ctx: &mut ProcessWindowContext<'_, u64, TimeWindow>,
                 e: &[(u64, i64)],
                 out: &mut Collector<(u64, i64, i64, usize)>| {
                    out.collect((*k, ctx.window().start, ctx.window().end, e.len()));
                    Ok(())
                },
            )
            .execute_and_collect()?;
        assert_eq!(
            sorted(out),
            vec![(1, 0, 35, 5), (1, 80, 90, 1), (2, 100, 110, 1)],
            "p={p}"
        );
    }
    Ok(())
}

#[test]
fn merged_sessions_keep_their_trigger_state() -> Result<(), JobError> {
    // Two sessions of one record each, then a record bridging them: the merged session
    // holds three records, so a count trigger of 3 fires it (the merged windows' counts
    // are combined, as in Flink, not cleared before the merge).
    let env = env(1);
    let out = env
        .from_elements(vec![(1u64, 0i64), (1, 20), (1, 10)])
        .assign_timestamps_and_watermarks(strategy(100))
        .key_by(|e: &(u64, i64)| e.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_millis(10)))
        .trigger(CountTrigger::of(3))
        .process(
            |_: &u64,
             ctx: &mut ProcessWindowContext<'_, u64, TimeWindow>,
             e: &[(u64, i64)],
             out: &mut Collector<(i64, i64, usize)>| {
                out.collect((ctx.window().start, ctx.window().end, e.len()));
                Ok(())
            },
        )
        .execute_and_collect()?;
    assert_eq!(out, vec![(0, 30, 3)]);
    Ok(())
}

#[test]
fn dynamic_session_gaps_come_from_the_record() -> Result<(), JobError> {
    let env = env(2);
    let out = env
        .from_elements(vec![(1u64, 0i64), (1, 15), (2, 0), (2, 15)])
        .assign_timestamps_and_watermarks(strategy(50))
        .key_by(|e: &(u64, i64)| e.0)
        .window(EventTimeSessionWindows::with_dynamic_gap(
            |e: &(u64, i64)| Duration::from_millis(if e.0 == 1 { 20 } else { 5 }),
        ))
        .aggregate(Count)
        .execute_and_collect()?;
    assert_eq!(sorted(out), vec![1, 1, 2]);
    Ok(())
}

#[test]
fn count_windows_fire_per_key() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let input: Vec<(u64, i64)> = (0..23i64).map(|i| ((i % 2) as u64, i)).collect();
        let tumbling = env
            .from_collection(input.clone())
            .key_by(|e: &(u64, i64)| e.0)
            .count_window(5)
            .sum(1)
            .execute_and_collect()?;
        // Key 0: 0,2,..,22 (12 records) -> two windows; key 1: 11 records -> two windows.
        assert_eq!(
            sorted(tumbling),
            vec![(0, 20), (0, 70), (1, 25), (1, 75)],
            "p={p}"
        );
        let env = self::env(p);
        let sliding = env
            .from_collection(input)
            .key_by(|e: &(u64, i64)| e.0)
            .count_window_sliding(3, 2)
            .sum(1)
            .execute_and_collect()?;
        // Key 1 sees 1,3,5,7,...: fires every 2 records over the last 3.
        let key1: Vec<i64> = sorted(sliding)
            .into_iter()
            .filter(|e| e.0 == 1)
            .map(|e| e.1)
            .collect();
        assert_eq!(key1, vec![4, 15, 27, 39, 51], "p={p}");
    }
    Ok(())
}

/// (key, window id, sum) of each firing; counts the windows it is told to clear.
#[derive(Clone)]
struct SumPerCountWindow {
    cleared: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ProcessWindowFunction<(u64, i64), (u64, u64, i64), u64, CountWindow> for SumPerCountWindow {
    fn process(
        &mut self,
        key: &u64,
        ctx: &mut ProcessWindowContext<'_, u64, CountWindow>,
        elements: &[(u64, i64)],
        out: &mut Collector<(u64, u64, i64)>,
    ) -> Result<(), UserError> {
        out.collect((*key, ctx.window().id, elements.iter().map(|e| e.1).sum()));
        Ok(())
    }

    fn clear(
        &mut self,
        _: &mut ProcessWindowContext<'_, u64, CountWindow>,
    ) -> Result<(), UserError> {
        self.cleared
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn count_windows_are_numbered_per_key_and_dropped_once_full() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let input: Vec<(u64, i64)> = (0..23i64).map(|i| ((i % 2) as u64, i)).collect();
        let run = |assigner: CountWindows| {
            let cleared = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let out = env(p)
                .from_collection(input.clone())
                .key_by(|e: &(u64, i64)| e.0)
                .window(assigner)
                .process(SumPerCountWindow {
                    cleared: std::sync::Arc::clone(&cleared),
                })
                .execute_and_collect()?;
            Ok::<_, JobError>((
                sorted(out),
                cleared.load(std::sync::atomic::Ordering::SeqCst),
            ))
        };
        // Key 0 sees 0,2,..,22 (12 records), key 1 sees 1,3,..,21 (11).
        let (tumbling, cleared) = run(CountWindows::tumbling(5))?;
        assert_eq!(
            tumbling,
            vec![(0, 0, 20), (0, 1, 70), (1, 0, 25), (1, 1, 75)],
            "p={p}"
        );
        assert_eq!(cleared, 4, "every full window is dropped, p={p}");
        // Windows of 3 records from every 2nd, each fired when full.
        let (sliding, cleared) = run(CountWindows::sliding(3, 2))?;
        let key1: Vec<(u64, i64)> = sliding
            .into_iter()
            .filter(|e| e.0 == 1)
            .map(|e| (e.1, e.2))
            .collect();
        assert_eq!(
            key1,
            vec![(0, 9), (1, 21), (2, 33), (3, 45), (4, 57)],
            "p={p}"
        );
        assert_eq!(cleared, 10, "p={p}");
    }
    Ok(())
}

#[test]
fn continuous_event_time_trigger_fires_early_results() -> Result<(), JobError> {
    let env = punctuated_env();
    let out = env
        .from_elements(vec![(1u64, 1i64), (1, 12), (1, 25), (1, 61), (1, 150)])
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_generator(PunctuatedEveryRecord::default)
                .with_timestamp_assigner(|e: &(u64, i64), _| e.1),
        )
        .key_by(|e: &(u64, i64)| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
        .trigger(ContinuousEventTimeTrigger::of(Duration::from_millis(20)))
        .aggregate(Count)
        .execute_and_collect()?;
    // A record is added before the watermark that follows it. [0,100) fires early at 20
    // (3 records: 25 came before watermark 24), 40 and 60 (4), 80 (4) and at its end (4);
    // [100,200) at 160, 180 and its end, when the input ends.
    assert_eq!(out, vec![3, 4, 4, 4, 4, 1, 1, 1]);
    Ok(())
}

#[test]
fn evictors_and_custom_triggers() -> Result<(), JobError> {
    /// Fires when a record with value 0 arrives.
    #[derive(Clone)]
    struct OnZero;
    impl Trigger<(u64, i64), GlobalWindow> for OnZero {
        fn on_element(
            &self,
            e: &(u64, i64),
            _: i64,
            _: &GlobalWindow,
            _: &mut TriggerContext<'_>,
        ) -> TriggerResult {
            if e.1 == 0 {
                TriggerResult::FireAndPurge
            } else {
                TriggerResult::Continue
            }
        }
        fn on_event_time(
            &self,
            _: i64,
            _: &GlobalWindow,
            _: &mut TriggerContext<'_>,
        ) -> TriggerResult {
            TriggerResult::Continue
        }
        fn on_processing_time(
            &self,
            _: i64,
            _: &GlobalWindow,
            _: &mut TriggerContext<'_>,
        ) -> TriggerResult {
            TriggerResult::Continue
        }
        fn clear(&self, _: &GlobalWindow, _: &mut TriggerContext<'_>) {}
    }
    let env = env(2);
    let out = env
        .from_elements(vec![(1u64, 5i64), (1, 6), (1, 7), (1, 0), (1, 9), (1, 0)])
        .key_by(|e: &(u64, i64)| e.0)
        .window(GlobalWindows::create())
        .trigger(OnZero)
        .evictor(TimeEvictor::of(Duration::from_millis(1)))
        .sum(1)
        .execute_and_collect();
    // Records without timestamps cannot use a time evictor's notion of "newest" in event
    // time, but processing order stands in: global windows need no timestamps.
    let out = out?;
    assert_eq!(out.len(), 2);
    let env = self::env(2);
    let counted = env
        .from_elements(vec![(1u64, 5i64), (1, 6), (1, 7), (1, 0), (1, 9), (1, 0)])
        .key_by(|e: &(u64, i64)| e.0)
        .window(GlobalWindows::create())
        .trigger(OnZero)
        .evictor(CountEvictor::of(2))
        .sum(1)
        .execute_and_collect()?;
    assert_eq!(counted, vec![(1, 7), (1, 9)]);
    Ok(())
}

#[test]
fn event_time_windows_without_timestamps_fail_with_a_clear_message() {
    let env = env(1);
    env.from_elements(vec![(1u64, 1i64)])
        .key_by(|e: &(u64, i64)| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .aggregate(Count)
        .name("Per-second counts")
        .print();
    let err = env.execute("no timestamps").err().map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(err.contains("Per-second counts"), "{err}");
    assert!(err.contains("assign_timestamps_and_watermarks"), "{err}");
}

#[test]
fn window_all_sees_every_record_in_one_subtask() -> Result<(), JobError> {
    let input = events(3_000, 9, 10);
    let mut expected: BTreeMap<i64, u64> = BTreeMap::new();
    for &(_, t) in &input {
        *expected.entry(t - t.rem_euclid(100)).or_default() += 1;
    }
    let expected: Vec<u64> = expected.into_values().collect();
    let env = env(4);
    let out = env
        .from_collection(input)
        .assign_timestamps_and_watermarks(strategy(10))
        .window_all(TumblingEventTimeWindows::of(Duration::from_millis(100)))
        .aggregate(Count)
        .execute_and_collect()?;
    assert_eq!(sorted(out), sorted(expected));
    Ok(())
}

#[test]
fn keyed_process_function_timers_fire_per_key_in_event_time() -> Result<(), JobError> {
    /// Counts each key's records and reports the count 10 ms after the key's first one.
    #[derive(Clone, Default)]
    struct ReportAfter {
        counts: BTreeMap<u64, u64>,
    }
    impl KeyedProcessFunction<u64, (u64, i64), (u64, i64, u64)> for ReportAfter {
        fn process_element(
            &mut self,
            value: (u64, i64),
            ctx: &mut KeyedProcessContext<u64>,
            _: &mut Collector<(u64, i64, u64)>,
        ) -> Result<(), UserError> {
            let count = self.counts.entry(value.0).or_default();
            if *count == 0 {
                let at = ctx.timestamp().unwrap_or_default() + 10;
                ctx.timer_service().register_event_time_timer(at);
                // Registering twice keeps one timer.
                ctx.timer_service().register_event_time_timer(at);
            }
            *count += 1;
            Ok(())
        }
        fn on_timer(
            &mut self,
            timestamp: i64,
            ctx: &mut KeyedProcessContext<u64>,
            out: &mut Collector<(u64, i64, u64)>,
        ) -> Result<(), UserError> {
            let key = *ctx.get_current_key();
            assert_eq!(ctx.time_domain(), Some(TimeDomain::EventTime));
            out.collect((key, timestamp, self.counts.remove(&key).unwrap_or(0)));
            Ok(())
        }
    }
    for p in PARALLELISMS {
        let env = env(p);
        env.set_auto_watermark_interval(Duration::ZERO);
        let mut flow = env.flow_control();
        flow.batch_size = 1;
        env.set_flow_control(flow);
        let out = env
            .from_elements(vec![
                (1u64, 0i64),
                (2, 3),
                (1, 4),
                (1, 9),
                (1, 10),
                (2, 14),
                (1, 30),
            ])
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_generator(PunctuatedEveryRecord::default)
                    .with_timestamp_assigner(|e: &(u64, i64), _| e.1),
            )
            .set_parallelism(1)
            .key_by(|e: &(u64, i64)| e.0)
            .process(ReportAfter::default())
            .execute_and_collect()?;
        assert_eq!(
            sorted(out),
            vec![(1, 10, 4), (1, 40, 1), (2, 13, 2)],
            "p={p}"
        );
    }
    Ok(())
}

/// Emits `count` records, one key per record mod 3, then stays open for `linger` before
/// it finishes, so that processing-time windows close while the job still runs.
struct LingeringSource {
    count: i64,
    linger: Duration,
}

struct LingeringReader {
    next: i64,
    count: i64,
    linger_until: Option<std::time::Instant>,
    linger: Duration,
}

impl SourceFunction<(i64, u64)> for LingeringSource {
    fn name(&self) -> String {
        "Lingering Source".into()
    }
    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }
    fn create_reader(
        &self,
        _: usize,
        _: usize,
    ) -> Result<Box<dyn SourceReader<(i64, u64)>>, SourceError> {
        Ok(Box::new(LingeringReader {
            next: 0,
            count: self.count,
            linger_until: None,
            linger: self.linger,
        }))
    }
}

impl SourceReader<(i64, u64)> for LingeringReader {
    fn poll(&mut self, out: &mut Vec<(i64, u64)>, max: usize) -> Result<SourcePoll, SourceError> {
        if self.next < self.count {
            let end = (self.next + max as i64).min(self.count);
            out.extend((self.next..end).map(|x| (x % 3, 1)));
            self.next = end;
            return Ok(SourcePoll::Ready);
        }
        let until = *self
            .linger_until
            .get_or_insert_with(|| std::time::Instant::now() + self.linger);
        if std::time::Instant::now() >= until {
            Ok(SourcePoll::Finished)
        } else {
            Ok(SourcePoll::Pending(Duration::from_millis(5)))
        }
    }
}

#[test]
fn processing_time_windows_fire_on_the_wall_clock() -> Result<(), JobError> {
    for p in [1, 2] {
        let env = env(p);
        let out = env
            .from_source(LingeringSource {
                count: 10_000,
                linger: Duration::from_millis(300),
            })
            .key_by(|e: &(i64, u64)| e.0)
            .window(TumblingProcessingTimeWindows::of(Duration::from_millis(20)))
            .sum(1)
            .execute_and_collect()?;
        // Every record is counted once, in windows that closed while the source lingered.
        let mut per_key: BTreeMap<i64, u64> = BTreeMap::new();
        for (k, c) in out {
            *per_key.entry(k).or_default() += c;
        }
        assert_eq!(
            per_key,
            BTreeMap::from([(0, 3334), (1, 3333), (2, 3333)]),
            "p={p}"
        );
    }
    Ok(())
}

#[test]
fn keyed_process_functions_fire_processing_time_timers() -> Result<(), JobError> {
    /// Reports each key 20 ms of wall-clock time after its first record.
    #[derive(Clone, Default)]
    struct Later {
        armed: std::collections::BTreeSet<i64>,
    }
    impl KeyedProcessFunction<i64, (i64, u64), (i64, bool)> for Later {
        fn process_element(
            &mut self,
            v: (i64, u64),
            ctx: &mut KeyedProcessContext<i64>,
            _: &mut Collector<(i64, bool)>,
        ) -> Result<(), UserError> {
            if self.armed.insert(v.0) {
                let at = ctx.current_processing_time() + 20;
                ctx.timer_service().register_processing_time_timer(at);
                // A deleted timer never fires.
                ctx.timer_service().register_processing_time_timer(at + 1);
                ctx.timer_service().delete_processing_time_timer(at + 1);
            }
            Ok(())
        }
        fn on_timer(
            &mut self,
            _: i64,
            ctx: &mut KeyedProcessContext<i64>,
            out: &mut Collector<(i64, bool)>,
        ) -> Result<(), UserError> {
            let processing = ctx.time_domain() == Some(TimeDomain::ProcessingTime);
            out.collect((*ctx.get_current_key(), processing));
            Ok(())
        }
    }
    for p in [1, 2] {
        let env = env(p);
        let out = env
            .from_source(LingeringSource {
                count: 300,
                linger: Duration::from_millis(200),
            })
            .key_by(|e: &(i64, u64)| e.0)
            .process(Later::default())
            .execute_and_collect()?;
        assert_eq!(sorted(out), vec![(0, true), (1, true), (2, true)], "p={p}");
    }
    Ok(())
}

#[test]
fn an_idle_source_does_not_stall_windows() -> Result<(), JobError> {
    // One input of the union never sends a record and never ends; with idleness, the
    // windows of the other input still fire while the job runs.
    let env = env(2);
    let data: Vec<(u64, i64)> = (0..1000i64).map(|i| ((i % 4) as u64, i * 10)).collect();
    let active = env
        .from_collection(data)
        .assign_timestamps_and_watermarks(strategy(0).with_idleness(Duration::from_millis(50)));
    let idle = env
        .from_source(LingeringSource {
            count: 0,
            linger: Duration::from_secs(3600),
        })
        .map(|e: (i64, u64)| (e.1, e.0))
        .assign_timestamps_and_watermarks(strategy(0).with_idleness(Duration::from_millis(50)));
    let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let shared = std::sync::Arc::clone(&sink);
    active
        .union(&[&idle])
        .key_by(|e: &(u64, i64)| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(1000)))
        .aggregate(Count)
        .add_sink(SharedSink(shared));
    env.set_auto_watermark_interval(Duration::from_millis(10));
    let client = env.execute_async("idle")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Windows [0,1000) .. [8000,9000) of 4 keys close once the watermark reaches 9990.
    while sink.lock().map(|v| v.len()).unwrap_or(0) < 36 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    client.cancel();
    client.wait()?;
    let fired = sink.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(fired.len() >= 36, "only {} windows fired", fired.len());
    assert!(fired.iter().take(36).all(|&c| c == 25));
    Ok(())
}

mod joins {
    use super::*;
    use superflow::{KeyedCoProcessFunction, ProcessJoinContext};

    type Left = (u64, i64, char);
    type Right = (u64, i64, i64);

    fn lefts() -> Vec<Left> {
        vec![
            (1, 0, 'a'),
            (1, 12, 'b'),
            (2, 5, 'c'),
            (1, 25, 'd'),
            (3, 7, 'e'),
        ]
    }

    fn rights() -> Vec<Right> {
        vec![
            (1, 2, 100),
            (1, 14, 200),
            (2, 9, 300),
            (1, 40, 400),
            (2, 15, 500),
        ]
    }

    fn left_strategy() -> WatermarkStrategy<Left, impl superflow::TimestampAssigner<Left>> {
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(50))
            .with_timestamp_assigner(|e: &Left, _| e.1)
    }

    fn right_strategy() -> WatermarkStrategy<Right, impl superflow::TimestampAssigner<Right>> {
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(50))
            .with_timestamp_assigner(|e: &Right, _| e.1)
    }

    /// Both inputs, with timestamps and watermarks.
    fn inputs(env: &StreamExecutionEnvironment) -> (DataStream<Left>, DataStream<Right>) {
        (
            env.from_collection(lefts())
                .assign_timestamps_and_watermarks(left_strategy()),
            env.from_collection(rights())
                .assign_timestamps_and_watermarks(right_strategy()),
        )
    }

    #[test]
    fn tumbling_window_join_pairs_records_of_a_key_and_window() -> Result<(), JobError> {
        let mut expected = Vec::new();
        for l in lefts() {
            for r in rights() {
                if l.0 == r.0 && l.1 / 10 == r.1 / 10 {
                    expected.push((l.2, r.2));
                }
            }
        }
        for p in PARALLELISMS {
            let env = env(p);
            let (left, right) = inputs(&env);
            let out = left
                .join(&right)
                .where_(|l: &Left| l.0)
                .equal_to(|r: &Right| r.0)
                .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
                .apply(|l: &Left, r: &Right| (l.2, r.2))
                .execute_and_collect()?;
            assert_eq!(sorted(out), sorted(expected.clone()), "p={p}");
        }
        Ok(())
    }

    #[test]
    fn window_joins_take_a_custom_trigger_and_lateness() -> Result<(), JobError> {
        let mut expected = BTreeSet::new();
        for l in lefts() {
            for r in rights() {
                if l.0 == r.0 && l.1 / 10 == r.1 / 10 {
                    expected.insert((l.2, r.2));
                }
            }
        }
        let env = env(2);
        let (left, right) = inputs(&env);
        // Firing on every record, the last firing of each window holds all its pairs.
        let out = left
            .join(&right)
            .where_(|l: &Left| l.0)
            .equal_to(|r: &Right| r.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
            .trigger(CountTrigger::of(1))
            .allowed_lateness(Duration::from_millis(5))
            .apply(|l: &Left, r: &Right| (l.2, r.2))
            .execute_and_collect()?;
        assert_eq!(out.into_iter().collect::<BTreeSet<_>>(), expected);
        Ok(())
    }

    #[test]
    fn co_group_sees_both_sides_even_when_one_is_empty() -> Result<(), JobError> {
        let env = env(2);
        let (left, right) = inputs(&env);
        let out = left
            .co_group(&right)
            .where_(|l: &Left| l.0)
            .equal_to(|r: &Right| r.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(20)))
            .co_group(
                |l: &[Left], r: &[Right], out: &mut Collector<(usize, usize)>| {
                    out.collect((l.len(), r.len()));
                    Ok(())
                },
            )
            .execute_and_collect()?;
        // Key 1: [0,20) 2+2, [20,40) 1+0, [40,60) 0+1; key 2: [0,20) 1+2; key 3: [0,20) 1+0.
        assert_eq!(sorted(out), vec![(0, 1), (1, 0), (1, 0), (1, 2), (2, 2)]);
        Ok(())
    }

    #[test]
    fn sliding_and_session_window_joins() -> Result<(), JobError> {
        let env = env(2);
        let (left, right) = inputs(&env);
        let sliding = left
            .join(&right)
            .where_(|l: &Left| l.0)
            .equal_to(|r: &Right| r.0)
            .window(SlidingEventTimeWindows::of(
                Duration::from_millis(20),
                Duration::from_millis(10),
            ))
            .apply(|l: &Left, r: &Right| (l.2, r.2))
            .execute_and_collect()?;
        let mut expected = Vec::new();
        for start in (-10..50).step_by(10) {
            for l in lefts() {
                for r in rights() {
                    let inside = |t: i64| t >= start && t < start + 20;
                    if l.0 == r.0 && inside(l.1) && inside(r.1) {
                        expected.push((l.2, r.2));
                    }
                }
            }
        }
        assert_eq!(sorted(sliding), sorted(expected));

        let env = self::env(2);
        let (left, right) = inputs(&env);
        let sessions = left
            .join(&right)
            .where_(|l: &Left| l.0)
            .equal_to(|r: &Right| r.0)
            .window(EventTimeSessionWindows::with_gap(Duration::from_millis(5)))
            .apply(|l: &Left, r: &Right| (l.2, r.2))
            .execute_and_collect()?;
        // Key 1 sessions (gap 5): {0,2} {12,14} {25} {40}; key 2: {5,9} {15}.
        assert_eq!(sorted(sessions), vec![('a', 100), ('b', 200), ('c', 300)]);
        Ok(())
    }

    #[test]
    fn interval_join_bounds_are_inclusive_by_default() -> Result<(), JobError> {
        for p in PARALLELISMS {
            let env = env(p);
            let (left, right) = inputs(&env);
            let out = left
                .key_by(|l: &Left| l.0)
                .interval_join(&right.key_by(|r: &Right| r.0))
                .between(-2, 2)
                .process(
                    |l: &Left,
                     r: &Right,
                     ctx: &ProcessJoinContext,
                     out: &mut Collector<(char, i64, i64)>| {
                        out.collect((l.2, r.2, ctx.timestamp()));
                        Ok(())
                    },
                )
                .execute_and_collect()?;
            // a@0 ~ 100@2 (|2| inclusive), b@12 ~ 200@14; c@5 and 300@9 are 4 apart.
            assert_eq!(sorted(out), vec![('a', 100, 2), ('b', 200, 14)], "p={p}");

            let env = self::env(p);
            let (left, right) = inputs(&env);
            let exclusive = left
                .key_by(|l: &Left| l.0)
                .interval_join(&right.key_by(|r: &Right| r.0))
                .between(-2, 2)
                .upper_bound_exclusive()
                .process(
                    |l: &Left,
                     r: &Right,
                     _: &ProcessJoinContext,
                     out: &mut Collector<(char, i64)>| {
                        out.collect((l.2, r.2));
                        Ok(())
                    },
                )
                .execute_and_collect()?;
            assert!(exclusive.is_empty(), "p={p}: {exclusive:?}");
        }
        Ok(())
    }

    #[test]
    fn keyed_co_process_shares_timers_across_both_inputs() -> Result<(), JobError> {
        /// Emits, per key, how many records of each input arrived before the key's
        /// first record plus 10 ms of event time.
        #[derive(Clone, Default)]
        struct Tally {
            seen: BTreeMap<u64, (u32, u32)>,
        }
        impl Tally {
            /// Counts a record of input `first` (or the second) at `ts`.
            fn saw(&mut self, key: u64, ts: i64, first: bool, ctx: &mut KeyedProcessContext<u64>) {
                let entry = self.seen.entry(key).or_default();
                if *entry == (0, 0) {
                    ctx.timer_service().register_event_time_timer(ts + 10);
                }
                if first {
                    entry.0 += 1;
                } else {
                    entry.1 += 1;
                }
            }
        }
        impl KeyedCoProcessFunction<u64, Left, Right, (u64, u32, u32)> for Tally {
            fn process_element1(
                &mut self,
                v: Left,
                ctx: &mut KeyedProcessContext<u64>,
                _: &mut Collector<(u64, u32, u32)>,
            ) -> Result<(), UserError> {
                self.saw(v.0, v.1, true, ctx);
                Ok(())
            }
            fn process_element2(
                &mut self,
                v: Right,
                ctx: &mut KeyedProcessContext<u64>,
                _: &mut Collector<(u64, u32, u32)>,
            ) -> Result<(), UserError> {
                self.saw(v.0, v.1, false, ctx);
                Ok(())
            }
            fn on_timer(
                &mut self,
                _: i64,
                ctx: &mut KeyedProcessContext<u64>,
                out: &mut Collector<(u64, u32, u32)>,
            ) -> Result<(), UserError> {
                let key = *ctx.get_current_key();
                let (l, r) = self.seen.remove(&key).unwrap_or_default();
                out.collect((key, l, r));
                Ok(())
            }
        }
        for p in PARALLELISMS {
            let env = env(p);
            let (left, right) = inputs(&env);
            let out = left
                .key_by(|l: &Left| l.0)
                .connect(&right.key_by(|r: &Right| r.0))
                .process(Tally::default())
                .execute_and_collect()?;
            // With a 50 ms bound, every timer fires at the end of input: all records count.
            assert_eq!(sorted(out), vec![(1, 3, 3), (2, 1, 2), (3, 1, 0)], "p={p}");
        }
        Ok(())
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// With any out-of-orderness inside the bound, a tumbling-window count equals
        /// the batch count per (key, window), whatever the parallelism.
        #[test]
        fn tumbling_counts_match_batch_counts_within_the_bound(
            raw in proptest::collection::vec((0u64..6, 0i64..400, 0i64..30), 1..400),
            size in 10i64..120,
        ) {
            // Event i happens at i * 2 and is delivered up to 30 ms early or late.
            let input: Vec<(u64, i64)> = raw
                .iter()
                .enumerate()
                .map(|(i, &(k, _, jitter))| (k, (i as i64) * 2 + jitter - 15))
                .collect();
            let expected = tumbling_counts(&input, size);
            for p in PARALLELISMS {
                let env = env(p);
                env.set_auto_watermark_interval(Duration::from_millis(1));
                let out = env
                    .from_collection(input.clone())
                    .assign_timestamps_and_watermarks(strategy(30))
                    .key_by(|e: &(u64, i64)| e.0)
                    .window(TumblingEventTimeWindows::of(Duration::from_millis(size as u64)))
                    .aggregate_with_process(Count, count_per_window)
                    .execute_and_collect()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(sorted(out), expected.clone(), "p={}", p);
            }
        }
    }
}

#[test]
fn an_interval_join_whose_exclusive_bounds_leave_nothing_joins_nothing() -> Result<(), JobError> {
    let env = env(1);
    let strategy = || {
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(10))
            .with_timestamp_assigner(|e: &(u64, i64), _| e.1)
    };
    let left = env
        .from_elements(vec![(1u64, 5i64)])
        .assign_timestamps_and_watermarks(strategy());
    let right = env
        .from_elements(vec![(1u64, 5i64)])
        .assign_timestamps_and_watermarks(strategy());
    // [t, t] with both bounds excluded is empty.
    let out = left
        .key_by(|e: &(u64, i64)| e.0)
        .interval_join(&right.key_by(|e: &(u64, i64)| e.0))
        .between(0, 0)
        .lower_bound_exclusive()
        .upper_bound_exclusive()
        .process(
            |l: &(u64, i64),
             r: &(u64, i64),
             _: &superflow::ProcessJoinContext,
             out: &mut Collector<(i64, i64)>| {
                out.collect((l.1, r.1));
                Ok(())
            },
        )
        .execute_and_collect()?;
    assert!(out.is_empty(), "{out:?}");
    Ok(())
}

#[test]
fn draining_with_a_savepoint_fires_every_window_stopping_leaves_them_pending() {
    for drain in [false, true] {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let env = env(2);
        env.enable_checkpointing(Duration::from_secs(60));
        let storage = root.path().join("checkpoints");
        env.configure_checkpoints(|c| c.storage = storage);
        let fired = SharedSink(Default::default());
        // Event time runs a thousand times faster than the wall clock: 1 s windows of
        // 1,000 records each, the last one open when the job is stopped.
        env.from_generator(|i| (i % 4, i as i64), None, Some(10_000.0))
            .assign_timestamps_and_watermarks(strategy(0))
            .key_by(|e: &(u64, i64)| e.0)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
            .aggregate(Count)
            .add_sink(fired.clone());
        let client = env
            .execute_async("drained")
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(300));
        let dir = root.path().join("savepoint");
        let savepoint = if drain {
            client.drain_with_savepoint(&dir)
        } else {
            client.stop_with_savepoint(&dir)
        }
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(savepoint.join("_metadata").is_file());
        let result = client.wait().unwrap_or_else(|e| panic!("{e}"));
        let generated = result
            .operators
            .iter()
            .find(|o| o.name.contains("Source"))
            .map(|o| o.records_out)
            .unwrap_or_default();
        let counted: u64 = fired.0.lock().map(|v| v.iter().sum()).unwrap_or_default();
        assert!(generated > 1_000, "generated {generated}");
        if drain {
            assert_eq!(counted, generated, "drained: every window fired");
        } else {
            assert!(
                counted < generated,
                "stopped: the open windows did not fire ({counted} of {generated})"
            );
        }
    }
}

/// Emits `max timestamp - 3 s - 1` from every record (Flink's bounded out-of-orderness,
/// punctuated).
#[derive(Default)]
struct TrailingEveryRecord {
    max: Option<i64>,
}

impl<T> WatermarkGenerator<T> for TrailingEveryRecord {
    fn on_event(&mut self, _: &T, timestamp: i64, output: &mut WatermarkOutput) {
        let max = self.max.map_or(timestamp, |m| m.max(timestamp));
        self.max = Some(max);
        output.emit_watermark(max - 3000 - 1);
    }
    fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
}

/// Sums a window's values: (key, window start, sum).
fn sum_per_window(
    key: &u64,
    ctx: &mut ProcessWindowContext<'_, u64, TimeWindow>,
    elements: &[(u64, i64, i64)],
    out: &mut Collector<(u64, i64, i64)>,
) -> Result<(), UserError> {
    out.collect((*key, ctx.window().start, elements.iter().map(|e| e.2).sum()));
    Ok(())
}

/// The case Flink 2.3 was run on: (key, timestamp, value) records in 10 s tumbling
/// windows with 5 s of allowed lateness, the watermark trailing by 3 s from every record.
fn windows_of_punctuated_input(env: &StreamExecutionEnvironment) -> DataStream<(u64, i64, i64)> {
    let input = vec![
        (1u64, 1000i64, 1i64),
        (1, 14000, 1),
        (1, 2000, 5),
        (1, 30000, 1),
        (1, 3000, 7),
    ];
    env.set_auto_watermark_interval(Duration::ZERO);
    env.from_collection(input)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_generator(TrailingEveryRecord::default)
                .with_timestamp_assigner(|e: &(u64, i64, i64), _| e.1),
        )
        // One generator sees the records in order.
        .set_parallelism(1)
}

#[test]
fn a_watermark_from_on_event_acts_before_the_next_record_of_the_same_batch() -> Result<(), JobError>
{
    // All five records reach the generator in one batch (the default batch size), yet
    // each watermark acts before the next record, as in Flink: [0,10s) fires at 14000's
    // watermark (sum 1), again for the allowed-late 2000 (sum 6); 30000's watermark
    // (26999) passes its cleanup time (14999), so 3000 goes to the late side output.
    for p in PARALLELISMS {
        let late = OutputTag::<(u64, i64, i64)>::new("late");
        let windows = windows_of_punctuated_input(&env(p))
            .key_by(|e: &(u64, i64, i64)| e.0)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
            .allowed_lateness(Duration::from_secs(5))
            .side_output_late_data(&late)
            .process(sum_per_window);
        let late_records = windows.get_side_output(&late).execute_and_collect()?;
        assert_eq!(late_records, vec![(1, 3000, 7)], "p={p}");

        let out = windows_of_punctuated_input(&env(p))
            .key_by(|e: &(u64, i64, i64)| e.0)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
            .allowed_lateness(Duration::from_secs(5))
            .process(sum_per_window)
            .execute_and_collect()?;
        assert_eq!(
            sorted(out),
            vec![(1, 0, 1), (1, 0, 6), (1, 10000, 1), (1, 30000, 1)],
            "p={p}"
        );
    }
    Ok(())
}

/// Emits its (key, timestamp) records: the first `fast` at once, the rest after
/// `pause`, so that the watermarks of the first reach every operator before them.
struct PausedSource {
    records: Vec<(u64, i64)>,
    fast: usize,
    pause: Duration,
}

struct PausedReader {
    records: Vec<(u64, i64)>,
    next: usize,
    fast: usize,
    resume: Option<std::time::Instant>,
    pause: Duration,
}

impl SourceFunction<(u64, i64)> for PausedSource {
    fn name(&self) -> String {
        "Paused Source".into()
    }
    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }
    fn is_bounded(&self) -> bool {
        true
    }
    fn create_reader(
        &self,
        _: usize,
        _: usize,
    ) -> Result<Box<dyn SourceReader<(u64, i64)>>, SourceError> {
        Ok(Box::new(PausedReader {
            records: self.records.clone(),
            next: 0,
            fast: self.fast,
            resume: None,
            pause: self.pause,
        }))
    }
}

impl SourceReader<(u64, i64)> for PausedReader {
    fn poll(&mut self, out: &mut Vec<(u64, i64)>, _max: usize) -> Result<SourcePoll, SourceError> {
        if self.next < self.fast {
            out.extend_from_slice(&self.records[..self.fast]);
            self.next = self.fast;
            return Ok(SourcePoll::Ready);
        }
        let resume = *self
            .resume
            .get_or_insert_with(|| std::time::Instant::now() + self.pause);
        if self.next >= self.records.len() {
            return Ok(SourcePoll::Finished);
        }
        if std::time::Instant::now() < resume {
            return Ok(SourcePoll::Pending(Duration::from_millis(5)));
        }
        out.extend_from_slice(&self.records[self.next..]);
        self.next = self.records.len();
        Ok(SourcePoll::Ready)
    }
}

#[test]
fn interval_join_sends_late_records_to_side_outputs() -> Result<(), JobError> {
    for p in [1, 2] {
        let env = env(p);
        env.set_auto_watermark_interval(Duration::ZERO);
        let punctuated = || {
            WatermarkStrategy::for_generator(PunctuatedEveryRecord::default)
                .with_timestamp_assigner(|e: &(u64, i64), _| e.1)
        };
        // Left 5 comes 300 ms after left 50, whose watermark (49) it is behind.
        let left = env
            .from_source(PausedSource {
                records: vec![(1, 10), (1, 50), (1, 5)],
                fast: 2,
                pause: Duration::from_millis(300),
            })
            .assign_timestamps_and_watermarks(punctuated())
            .set_parallelism(1);
        let right = env
            .from_collection(vec![(1u64, 52i64)])
            .assign_timestamps_and_watermarks(punctuated())
            .set_parallelism(1);
        let (left_late, right_late) = (
            OutputTag::<(u64, i64)>::new("left-late"),
            OutputTag::<(u64, i64)>::new("right-late"),
        );
        let joined = left
            .key_by(|l: &(u64, i64)| l.0)
            .interval_join(&right.key_by(|r: &(u64, i64)| r.0))
            .between(0, 5)
            .side_output_left_late_data(&left_late)
            .side_output_right_late_data(&right_late)
            .process(
                |l: &(u64, i64),
                 r: &(u64, i64),
                 _: &ProcessJoinContext,
                 out: &mut Collector<(i64, i64)>| {
                    out.collect((l.1, r.1));
                    Ok(())
                },
            );
        let late = joined
            .get_side_output(&left_late)
            .union(&[&joined
                .get_side_output(&right_late)
                .map(|(k, t)| (k + 100, t))])
            .execute_and_collect()?;
        assert_eq!(late, vec![(1, 5)], "p={p}");
    }
    Ok(())
}
