//! Bad programs and failing user code: each error names what was wrong and where, and
//! no failure hangs the job.

use std::io::Write;
use std::net::TcpListener;

use superflow::prelude::*;

fn env(p: usize) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(p);
    env
}

fn error_of(result: Result<JobExecutionResult, JobError>) -> String {
    match result {
        Ok(_) => panic!("the job should have failed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn panic_in_map_names_operator_cause_and_location() {
    for p in [1, 2, 4] {
        let env = env(p);
        env.from_sequence(0, 10_000)
            .map(|x: i64| {
                if x == 777 {
                    panic!("cannot handle record {x}");
                }
                x
            })
            .name("Fragile Map")
            .print_to_err();
        let err = error_of(env.execute("panicking job"));
        assert!(err.contains("operator 'Fragile Map'"), "{err}");
        assert!(err.contains("cannot handle record 777"), "{err}");
        assert!(
            err.contains("failures.rs:"),
            "the panic location is reported: {err}"
        );
    }
}

#[test]
fn panic_in_a_chained_filter_names_the_filter() {
    let env = env(2);
    env.from_sequence(0, 100)
        .map(|x: i64| x + 1)
        .filter(|x: &i64| {
            assert!(*x < 50, "value {x} too large");
            true
        })
        .name("Strict Filter")
        .print_to_err();
    let err = error_of(env.execute("chained"));
    assert!(
        err.contains("operator 'Strict Filter'") && err.contains("too large"),
        "{err}"
    );
}

#[test]
fn panic_in_keyed_reduce_after_an_exchange() {
    let env = env(4);
    env.from_sequence(0, 5000)
        .key_by(|x: &i64| x % 10)
        .reduce(|a: i64, b: i64| {
            if b == 4321 {
                panic!("overflow at {b}");
            }
            a + b
        })
        .name("Summer")
        .print_to_err();
    let err = error_of(env.execute("keyed panic"));
    assert!(
        err.contains("operator 'Summer'") && err.contains("overflow at 4321"),
        "{err}"
    );
}

#[test]
fn a_panic_in_a_key_selector_names_the_key_by() {
    let env = env(2);
    env.from_sequence(0, 5000)
        .key_by(|x: &i64| {
            if *x == 4321 {
                panic!("no key for {x}");
            }
            x % 10
        })
        .reduce(|a: i64, b: i64| a + b)
        .name("Summer")
        .print_to_err();
    let err = error_of(env.execute("key selector panic"));
    assert!(
        err.contains("operator 'Summer (key-by from Sequence Source)'")
            && err.contains("no key for 4321"),
        "{err}"
    );
}

#[test]
fn error_returned_by_a_process_function_fails_the_job() {
    let env = env(2);
    env.from_sequence(1, 100)
        .process(
            |x: i64, _ctx: &mut ProcessContext, out: &mut Collector<i64>| {
                if x == 42 {
                    return Err(format!("record {x} is not allowed").into());
                }
                out.collect(x);
                Ok(())
            },
        )
        .name("Validator")
        .print_to_err();
    let err = error_of(env.execute("returned error"));
    assert!(
        err.contains("operator 'Validator'") && err.contains("record 42 is not allowed"),
        "{err}"
    );
}

#[test]
fn failing_sink_is_reported() {
    #[derive(Clone)]
    struct Refusing;
    impl SinkFunction<i64> for Refusing {
        fn invoke(&mut self, value: i64) -> Result<(), UserError> {
            Err(format!("sink refused {value}").into())
        }
    }
    let env = env(1);
    env.from_sequence(7, 9)
        .add_sink(Refusing)
        .name("Refusing Sink");
    let err = error_of(env.execute("sink failure"));
    assert!(
        err.contains("operator 'Refusing Sink'") && err.contains("sink refused 7"),
        "{err}"
    );
}

#[test]
fn an_unbounded_job_that_fails_does_not_hang() {
    let env = env(2);
    env.from_generator(|i| i, None, None)
        .map(|i: u64| {
            if i == 100_000 {
                panic!("stop here");
            }
            i
        })
        .add_sink(Discard);
    let err = error_of(env.execute("unbounded failure"));
    assert!(err.contains("stop here"), "{err}");
}

#[derive(Clone)]
struct Discard;
impl<T: 'static> SinkFunction<T> for Discard {
    fn invoke(&mut self, _value: T) -> Result<(), UserError> {
        Ok(())
    }
    fn invoke_batch(&mut self, values: &mut Vec<T>) -> Result<(), UserError> {
        values.clear();
        Ok(())
    }
}

#[test]
fn missing_input_file_is_reported_before_running() {
    let env = env(2);
    env.read_text_file("/definitely/not/here.txt").print();
    let err = error_of(env.execute("missing file"));
    assert!(
        err.contains("cannot start") && err.contains("/definitely/not/here.txt"),
        "{err}"
    );
}

#[test]
fn unreachable_socket_is_reported_before_running() -> Result<(), std::io::Error> {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let env = env(1);
    env.socket_text_stream("127.0.0.1", port).print();
    let err = error_of(env.execute("no socket"));
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
    Ok(())
}

#[test]
fn invalid_parallelism_is_reported_before_running() {
    let env = env(0);
    env.from_sequence(0, 1).print();
    let err = error_of(env.execute("zero"));
    assert!(
        err.contains("invalid parallelism") && err.contains("at least 1, got 0"),
        "{err}"
    );

    let env = self::env(2);
    env.set_max_parallelism(4);
    env.from_sequence(0, 1)
        .map(|x: i64| x)
        .set_parallelism(8)
        .print();
    let err = error_of(env.execute("too wide"));
    assert!(
        err.contains("operator 'Map' is 8, which exceeds the max parallelism 4"),
        "{err}"
    );

    let env = self::env(2);
    env.from_elements(vec![1, 2]).set_parallelism(2).print();
    let err = error_of(env.execute("non-parallel source"));
    assert!(err.contains("'Collection Source' is not parallel"), "{err}");
}

#[test]
fn job_without_sink_is_rejected() {
    let env = env(1);
    let _ = env.from_sequence(0, 1).map(|x: i64| x);
    let err = error_of(env.execute("no sink"));
    assert!(err.contains("no sink"), "{err}");
}

#[test]
fn sum_of_a_text_field_is_rejected_when_the_job_is_built() {
    let env = env(1);
    env.from_elements(vec![("a".to_string(), 1i64)])
        .key_by(|t: &(String, i64)| t.0.clone())
        .sum(0)
        .print();
    let err = error_of(env.execute("bad sum"));
    assert!(
        err.contains("sum(0)") && err.contains("not numeric"),
        "{err}"
    );

    let env = self::env(1);
    env.from_elements(vec![("a".to_string(), 1i64)])
        .key_by(|t: &(String, i64)| t.0.clone())
        .max(5)
        .print();
    let err = error_of(env.execute("bad max"));
    assert!(
        err.contains("max(5)") && err.contains("out of range"),
        "{err}"
    );
}

#[test]
fn invalid_utf8_input_names_file_and_line() -> Result<(), std::io::Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("input.txt");
    std::fs::File::create(&path)?.write_all(b"one\ntwo\nthr\xffee\nfour\n")?;
    // Strictly read, the bad line fails the job naming it.
    let strict = env(1);
    strict
        .from_source(superflow::connectors::TextFileSource::new(&path).strict())
        .print_to_err();
    let err = error_of(strict.execute("bad utf8"));
    assert!(
        err.contains("input.txt:3:") && err.contains("not valid UTF-8"),
        "{err}"
    );
    // By default, as Java reads it: U+FFFD in place of the bad byte, and no line lost.
    let lenient = env(1);
    let mut lines = lenient
        .read_text_file(&path)
        .execute_and_collect()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    lines.sort();
    assert_eq!(lines, vec!["four", "one", "thr\u{FFFD}ee", "two"]);
    // In a charset of its own.
    let latin = env(1);
    let lines = latin
        .read_text_file_with_charset(&path, "windows-1252")
        .execute_and_collect()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    assert!(lines.contains(&"thrÿee".to_string()), "{lines:?}");
    Ok(())
}

#[test]
fn output_file_that_exists_is_not_overwritten() -> Result<(), std::io::Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("out.txt");
    std::fs::write(&path, "keep me\n")?;
    let env = env(1);
    env.from_sequence(1, 3).write_as_text(&path);
    let err = error_of(env.execute("existing output"));
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&path)?, "keep me\n");
    Ok(())
}
