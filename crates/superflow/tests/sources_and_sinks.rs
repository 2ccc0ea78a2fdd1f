//! Sources, sinks, flow control, asynchronous execution and cancellation.

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use superflow::prelude::*;
use superflow::FlowControl;

fn env(p: usize) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(p);
    env
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn from_elements_keeps_order_at_parallelism_one() -> Result<(), JobError> {
    let env = env(1);
    let out = env
        .from_elements(vec!["c", "a", "b"])
        .execute_and_collect()?;
    assert_eq!(out, vec!["c", "a", "b"]);
    Ok(())
}

#[test]
fn sequence_and_generator_split_without_duplicates() -> Result<(), JobError> {
    for p in [1, 2, 4] {
        let env = env(p);
        let out = env.from_sequence(-50, 1000).execute_and_collect()?;
        assert_eq!(sorted(out), (-50..=1000).collect::<Vec<_>>(), "p={p}");

        let env = self::env(p);
        let out = env
            .from_generator(|i| format!("r{i}"), Some(500), None)
            .execute_and_collect()?;
        assert_eq!(
            sorted(out),
            sorted((0..500).map(|i| format!("r{i}")).collect::<Vec<_>>()),
            "p={p}"
        );
    }
    Ok(())
}

#[test]
fn rate_limited_generator_emits_everything() -> Result<(), JobError> {
    let env = env(2);
    let out = env
        .from_generator(|i| i, Some(300), Some(3000.0))
        .execute_and_collect()?;
    assert_eq!(sorted(out), (0..300).collect::<Vec<u64>>());
    Ok(())
}

#[test]
fn read_text_file_reads_every_line_of_a_directory() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut expected = Vec::new();
    for f in 0..3 {
        let mut file = std::fs::File::create(dir.path().join(format!("part-{f}.txt")))?;
        for l in 0..200 {
            writeln!(file, "f{f} l{l}")?;
            expected.push(format!("f{f} l{l}"));
        }
    }
    for p in [1, 2, 4] {
        let env = env(p);
        let out = env.read_text_file(dir.path()).execute_and_collect()?;
        assert_eq!(sorted(out), sorted(expected.clone()), "p={p}");
    }
    Ok(())
}

#[test]
fn socket_text_stream_reads_lines_until_the_peer_closes() -> Result<(), Box<dyn std::error::Error>>
{
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        for i in 0..100 {
            write!(conn, "line {i}\r\n")?;
        }
        write!(conn, "last without newline")?;
        Ok(())
    });
    let env = env(2);
    let out = env
        .socket_text_stream("127.0.0.1", port)
        .map(|l: String| l.to_uppercase())
        .execute_and_collect()?;
    server.join().map_err(|_| "server thread panicked")??;
    let mut expected: Vec<String> = (0..100).map(|i| format!("LINE {i}")).collect();
    expected.push("LAST WITHOUT NEWLINE".into());
    assert_eq!(sorted(out), sorted(expected));
    Ok(())
}

#[test]
fn write_as_text_writes_a_file_or_a_directory_per_subtask() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let single = dir.path().join("single.txt");
    let env = env(1);
    env.from_elements(vec![("a", 1), ("b", 2)])
        .write_as_text(&single);
    env.execute("write one")?;
    assert_eq!(std::fs::read_to_string(&single)?, "(a, 1)\n(b, 2)\n");

    let many = dir.path().join("many");
    let env = self::env(2);
    env.from_sequence(1, 100).write_as_text(&many);
    env.execute("write many")?;
    let mut lines = Vec::new();
    for name in ["1", "2"] {
        let text = std::fs::read_to_string(many.join(name))?;
        lines.extend(
            text.lines()
                .map(|l| l.parse::<i64>())
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    assert_eq!(sorted(lines), (1..=100).collect::<Vec<_>>());
    Ok(())
}

#[derive(Clone)]
struct SlowSink {
    produced: Arc<AtomicU64>,
    consumed: Arc<AtomicU64>,
    max_in_flight: Arc<AtomicU64>,
}

impl SinkFunction<u64> for SlowSink {
    fn invoke(&mut self, _value: u64) -> Result<(), UserError> {
        let consumed = self.consumed.fetch_add(1, Ordering::SeqCst) + 1;
        let in_flight = self
            .produced
            .load(Ordering::SeqCst)
            .saturating_sub(consumed);
        self.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        if consumed % 500 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

#[test]
fn a_slow_sink_holds_back_the_source() -> Result<(), JobError> {
    let flow = FlowControl {
        batch_size: 100,
        batches_per_activation: 4,
        max_epoch_records: 1000,
        max_epochs_in_flight: 2,
        epoch_cadence: Duration::from_secs(10),
        ..FlowControl::default()
    };
    let total = 30_000u64;
    let produced = Arc::new(AtomicU64::new(0));
    let sink = SlowSink {
        produced: Arc::clone(&produced),
        consumed: Arc::new(AtomicU64::new(0)),
        max_in_flight: Arc::new(AtomicU64::new(0)),
    };
    // The source's second subtask runs on another worker than the sink, so nothing but
    // flow control keeps it from running ahead.
    let env = env(2);
    env.set_flow_control(flow.clone());
    let counter = Arc::clone(&produced);
    env.from_generator(
        move |i| {
            counter.fetch_add(1, Ordering::SeqCst);
            i
        },
        Some(total),
        None,
    )
    .global()
    .add_sink(sink.clone())
    .set_parallelism(1);
    env.execute("slow sink")?;
    assert_eq!(sink.consumed.load(Ordering::SeqCst), total);
    // Each of the 2 source subtasks has at most `max_epochs_in_flight + 1` epochs (2 + 1)
    // open, each at most one batch over its size (1000 + 100); without flow control the
    // second subtask runs thousands of records ahead.
    let bound = 2 * 3 * 1100;
    let seen = sink.max_in_flight.load(Ordering::SeqCst);
    assert!(
        seen <= bound,
        "{seen} records were in flight, more than the bound {bound}"
    );
    Ok(())
}

#[test]
fn execute_async_can_be_cancelled() -> Result<(), JobError> {
    let env = env(2);
    let seen = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&seen);
    env.from_generator(|i| i, None, Some(20_000.0))
        .add_sink(CountingSink(counter));
    let client = env.execute_async("endless")?;
    while seen.load(Ordering::SeqCst) < 100 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!client.is_finished());
    client.cancel();
    let result = client.wait()?;
    assert_eq!(result.job_name, "endless");
    Ok(())
}

#[derive(Clone)]
struct CountingSink(Arc<AtomicU64>);

impl SinkFunction<u64> for CountingSink {
    fn invoke(&mut self, _value: u64) -> Result<(), UserError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
