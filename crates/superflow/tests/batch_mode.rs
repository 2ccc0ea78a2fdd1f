//! `RuntimeExecutionMode::Batch`: a bounded job emits final results only, as in Flink,
//! and `Automatic` picks batch for bounded sources.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use superflow::prelude::*;
use superflow::KeyedCoProcessFunction;

mod common;
use common::PunctuatedEveryRecord;

fn env(p: usize, mode: RuntimeExecutionMode) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(p);
    env.set_runtime_mode(mode);
    env
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn words() -> Vec<(String, i64)> {
    ["to", "be", "or", "not", "to", "be", "to"]
        .into_iter()
        .map(|w| (w.to_string(), 1))
        .collect()
}

fn counts(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(w, n)| (w.to_string(), *n)).collect()
}

#[test]
fn a_keyed_sum_emits_one_final_record_per_key() -> Result<(), JobError> {
    for p in [1, 2, 4] {
        for mode in [RuntimeExecutionMode::Batch, RuntimeExecutionMode::Automatic] {
            let out = env(p, mode)
                .from_collection(words())
                .key_by(|w: &(String, i64)| w.0.clone())
                .sum(1)
                .execute_and_collect()?;
            assert_eq!(
                sorted(out),
                counts(&[("be", 2), ("not", 1), ("or", 1), ("to", 3)]),
                "p={p} {mode:?}"
            );
        }
        // Streaming: a rolling sum, one record per input record.
        let out = env(p, RuntimeExecutionMode::Streaming)
            .from_collection(words())
            .key_by(|w: &(String, i64)| w.0.clone())
            .sum(1)
            .execute_and_collect()?;
        assert_eq!(out.len(), 7, "p={p}");
    }
    Ok(())
}

#[test]
fn event_time_windows_fire_once_with_every_record_and_none_is_late() -> Result<(), JobError> {
    // Out of order: with streaming semantics 5 and 12 are late behind 30's watermark.
    let input = vec![(1u64, 10i64), (1, 30), (1, 5), (1, 31), (1, 12)];
    let run = |mode: RuntimeExecutionMode, p: usize| {
        let env = env(p, mode);
        env.set_auto_watermark_interval(Duration::ZERO);
        env.from_collection(input.clone())
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_generator(PunctuatedEveryRecord::default)
                    .with_timestamp_assigner(|e: &(u64, i64), _| e.1),
            )
            // One generator sees the records in order.
            .set_parallelism(1)
            .key_by(|e: &(u64, i64)| e.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
            .process(
                |key: &u64,
                 ctx: &mut ProcessWindowContext<'_, u64, TimeWindow>,
                 elements: &[(u64, i64)],
                 out: &mut Collector<(u64, i64, usize)>| {
                    out.collect((*key, ctx.window().start, elements.len()));
                    Ok(())
                },
            )
            .execute_and_collect()
    };
    for p in [1, 2] {
        assert_eq!(
            sorted(run(RuntimeExecutionMode::Batch, p)?),
            vec![(1, 0, 1), (1, 10, 2), (1, 30, 2)],
            "p={p}"
        );
        assert_eq!(
            sorted(run(RuntimeExecutionMode::Streaming, p)?),
            vec![(1, 10, 1), (1, 30, 2)],
            "p={p}"
        );
    }
    Ok(())
}

/// A processing time an hour or more from now.
const FAR_AHEAD: i64 = 4_000_000_000_000;

#[test]
fn processing_time_timers_fire_at_the_end_of_the_input() -> Result<(), JobError> {
    /// Asks to be called at a time far ahead (once per key: timers are per key and
    /// time), and again a second after each call, which in batch mode, at the end of
    /// the input, is ignored, as in Flink, instead of looping.
    #[derive(Clone)]
    struct AnHourLater;
    impl KeyedProcessFunction<String, (String, i64), (String, bool)> for AnHourLater {
        fn process_element(
            &mut self,
            _: (String, i64),
            ctx: &mut KeyedProcessContext<String>,
            _: &mut Collector<(String, bool)>,
        ) -> Result<(), UserError> {
            ctx.timer_service()
                .register_processing_time_timer(FAR_AHEAD);
            Ok(())
        }
        fn on_timer(
            &mut self,
            time: i64,
            ctx: &mut KeyedProcessContext<String>,
            out: &mut Collector<(String, bool)>,
        ) -> Result<(), UserError> {
            ctx.timer_service()
                .register_processing_time_timer(time + 1000);
            ctx.timer_service().register_event_time_timer(time + 1000);
            let processing = ctx.time_domain() == Some(TimeDomain::ProcessingTime);
            out.collect((ctx.get_current_key().clone(), processing));
            Ok(())
        }
    }
    for p in [1, 2] {
        let out = env(p, RuntimeExecutionMode::Batch)
            .from_collection(words())
            .key_by(|w: &(String, i64)| w.0.clone())
            .process(AnHourLater)
            .execute_and_collect()?;
        assert_eq!(
            sorted(out),
            ["be", "not", "or", "to"]
                .map(|w| (w.to_string(), true))
                .to_vec(),
            "p={p}"
        );
    }
    Ok(())
}

#[test]
fn a_batch_job_with_an_unbounded_source_is_refused_naming_it() {
    let env = env(1, RuntimeExecutionMode::Batch);
    env.from_generator(|i| i as i64, None, None).print();
    let error = env.execute("unbounded").err().map(|e| e.to_string());
    let message = error.unwrap_or_default();
    assert!(
        message.contains("DataGenerator Source") && message.contains("BATCH"),
        "{message}"
    );
}

#[test]
fn automatic_runs_an_unbounded_job_as_streaming() -> Result<(), JobError> {
    // A rolling sum over an unbounded source emits as records arrive: with Automatic it
    // runs (it is not refused) and its client sees records before cancelling it.
    let env = env(1, RuntimeExecutionMode::Automatic);
    let seen = Arc::new(AtomicU64::new(0));
    env.from_generator(|i| (i % 3, 1i64), None, Some(10_000.0))
        .key_by(|r: &(u64, i64)| r.0)
        .sum(1)
        .add_sink(Counted(Arc::clone(&seen)));
    let client = env.execute_async("automatic")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.load(Ordering::Relaxed) < 100 {
        assert!(std::time::Instant::now() < deadline, "no rolling output");
        std::thread::sleep(Duration::from_millis(10));
    }
    client.cancel();
    let _ = client.wait();
    Ok(())
}

/// Counts the records it gets.
#[derive(Clone)]
struct Counted(Arc<AtomicU64>);

impl SinkFunction<(u64, i64)> for Counted {
    fn invoke(&mut self, _: (u64, i64)) -> Result<(), UserError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn keyed_co_process_functions_fire_processing_time_timers_at_the_end_too() -> Result<(), JobError> {
    /// Counts each key's records of both inputs, and reports the count when its
    /// processing-time timer fires (at the end of the input, in batch mode).
    #[derive(Clone)]
    struct CountAtTheEnd;
    impl KeyedCoProcessFunction<String, (String, i64), (String, i64), (String, i64)> for CountAtTheEnd {
        fn process_element1(
            &mut self,
            _: (String, i64),
            ctx: &mut KeyedProcessContext<String>,
            _: &mut Collector<(String, i64)>,
        ) -> Result<(), UserError> {
            let mut count = ctx.get_state(&ValueStateDescriptor::<i64>::new("count"));
            let n = count.value().unwrap_or(0) + 1;
            count.update(n);
            ctx.timer_service()
                .register_processing_time_timer(FAR_AHEAD);
            Ok(())
        }
        fn process_element2(
            &mut self,
            value: (String, i64),
            ctx: &mut KeyedProcessContext<String>,
            out: &mut Collector<(String, i64)>,
        ) -> Result<(), UserError> {
            self.process_element1(value, ctx, out)
        }
        fn on_timer(
            &mut self,
            time: i64,
            ctx: &mut KeyedProcessContext<String>,
            out: &mut Collector<(String, i64)>,
        ) -> Result<(), UserError> {
            ctx.timer_service().register_processing_time_timer(time + 1);
            let key = ctx.get_current_key().clone();
            let n = ctx
                .get_state(&ValueStateDescriptor::<i64>::new("count"))
                .value()
                .unwrap_or(0);
            out.collect((key, n));
            Ok(())
        }
    }
    for p in [1, 2] {
        let env = env(p, RuntimeExecutionMode::Batch);
        let (a, b) = (env.from_collection(words()), env.from_collection(words()));
        let out = a
            .key_by(|w: &(String, i64)| w.0.clone())
            .connect(&b.key_by(|w: &(String, i64)| w.0.clone()))
            .process(CountAtTheEnd)
            .execute_and_collect()?;
        assert_eq!(
            sorted(out),
            counts(&[("be", 4), ("not", 2), ("or", 2), ("to", 6)]),
            "p={p}"
        );
    }
    Ok(())
}
