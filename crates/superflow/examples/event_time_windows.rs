//! Event time end to end: sensor readings arrive out of order, watermarks trail the
//! largest timestamp by 2 s, and a per-sensor average is computed over 10 s tumbling
//! windows. Readings later than the allowed lateness go to a side output.
//!
//! ```text
//! cargo run --release --example event_time_windows
//! ```

use std::time::Duration;

use superflow::prelude::*;

/// A sensor reading: sensor id, timestamp (ms), temperature.
type Reading = (String, i64, f64);

/// Average temperature: (sum, count) accumulated, the mean as the result.
struct Average;

impl AggregateFunction<Reading, (f64, u32), f64> for Average {
    fn create_accumulator(&self) -> (f64, u32) {
        (0.0, 0)
    }
    fn add(&self, r: Reading, acc: &mut (f64, u32)) {
        acc.0 += r.2;
        acc.1 += 1;
    }
    fn get_result(&self, acc: &(f64, u32)) -> f64 {
        acc.0 / f64::from(acc.1.max(1))
    }
    fn merge(&self, acc: &mut (f64, u32), other: (f64, u32)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
}

/// Watermarks 2 s behind the largest timestamp, emitted after every reading (a
/// punctuated generator), so that this example's output does not depend on timing.
#[derive(Default)]
struct TwoSecondsBehind {
    max: Option<i64>,
}

impl WatermarkGenerator<Reading> for TwoSecondsBehind {
    fn on_event(&mut self, _: &Reading, timestamp: i64, output: &mut WatermarkOutput) {
        let max = self.max.map_or(timestamp, |m| m.max(timestamp));
        self.max = Some(max);
        output.emit_watermark(max - 2_000 - 1);
    }
    fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
}

fn main() -> Result<(), JobError> {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    let readings: Vec<Reading> = vec![
        ("kitchen".into(), 1_000, 21.0),
        ("garage".into(), 2_500, 12.0),
        ("kitchen".into(), 9_000, 23.0),
        ("kitchen".into(), 4_000, 22.0), // out of order, within the 2 s bound
        ("garage".into(), 12_000, 13.0),
        ("kitchen".into(), 15_000, 24.0),
        ("kitchen".into(), 3_000, 20.0), // too late: its window closed at 10 s
        ("garage".into(), 31_000, 11.0),
    ];
    let late = OutputTag::<Reading>::new("late-readings");
    let averages = env
        .from_collection(readings)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_generator(TwoSecondsBehind::default)
                .with_timestamp_assigner(|r: &Reading, _| r.1),
        )
        // One generator sees the readings in order, so the watermark follows them.
        .set_parallelism(1)
        .key_by(|r: &Reading| r.0.clone())
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
        .side_output_late_data(&late)
        .aggregate_with_process(
            Average,
            |sensor: &String,
             ctx: &mut ProcessWindowContext<'_, String, TimeWindow>,
             means: &[f64],
             out: &mut Collector<(String, i64, i64, f64)>| {
                let w = ctx.window();
                out.collect((sensor.clone(), w.start, w.end, means[0]));
                Ok(())
            },
        );
    averages.print();
    averages.get_side_output(&late).print_to_err();
    // One reading per batch: each reading's watermark follows it before the next arrives.
    let mut flow = env.flow_control();
    flow.batch_size = 1;
    env.set_flow_control(flow);
    let result = env.execute("event_time_windows")?;
    eprintln!("done in {:?}", result.net_runtime);
    Ok(())
}
