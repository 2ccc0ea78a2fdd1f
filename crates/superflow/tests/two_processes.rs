//! The same job on two processes over loopback gives the same result as on one.
//!
//! The test re-runs its own binary twice as the two processes of a cluster (selected
//! by `SUPERFLOW_TEST_CHILD`), each collecting what its workers received into a file.

use std::path::{Path, PathBuf};
use std::process::Command;

use superflow::prelude::*;

mod common;
use common::loopback_addresses;

/// Word count by key across an exchange, and a count per word and 1 s event-time
/// window (watermarks cross the processes too).
fn build_job(env: &StreamExecutionEnvironment) -> DataStream<(String, i64)> {
    let words = env
        .from_sequence(0, 9_999)
        .map(|i: i64| (format!("w{}", i % 97), i));
    let counts = words
        .map(|t: (String, i64)| (t.0, 1i64))
        .key_by(|t: &(String, i64)| t.0.clone())
        .sum(1);
    let windowed = words
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(std::time::Duration::from_millis(50))
                .with_timestamp_assigner(|t: &(String, i64), _| t.1),
        )
        .map(|t: (String, i64)| (t.0, 1i64, t.1))
        .key_by(|t: &(String, i64, i64)| t.0.clone())
        .window(TumblingEventTimeWindows::of(
            std::time::Duration::from_secs(1),
        ))
        .reduce(|a: (String, i64, i64), b: (String, i64, i64)| (a.0, a.1 + b.1, a.2.min(b.2)))
        .map(|t: (String, i64, i64)| (format!("{}@{}", t.0, t.2 / 1000), t.1));
    counts.union(&[&windowed])
}

/// Starts the two processes of a cluster: this test binary running only `test`, each
/// configured by `configure(id, command)`. Their output is captured, so that their own
/// test reports do not mix into this one's.
fn spawn_cluster(
    test: &str,
    configure: impl Fn(usize, &mut Command),
) -> std::io::Result<Vec<std::process::Child>> {
    let addresses = loopback_addresses(2);
    (0..2)
        .map(|id| spawn_process(test, id, &addresses, &configure))
        .collect()
}

/// Starts process `id` of the two at `addresses` (see [`spawn_cluster`]).
fn spawn_process(
    test: &str,
    id: usize,
    addresses: &str,
    configure: &impl Fn(usize, &mut Command),
) -> std::io::Result<std::process::Child> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("SUPERFLOW_PROCESSES", "2")
        .env("SUPERFLOW_PROCESS_ID", id.to_string())
        .env("SUPERFLOW_ADDRESSES", addresses)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    configure(id, &mut command);
    command.spawn()
}

/// What a process printed, stdout then stderr.
fn text_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr)
}

/// Waits for every process of a cluster, which must all succeed; returns what each
/// printed.
fn wait_for_success(
    children: Vec<std::process::Child>,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut logs = Vec::new();
    for child in children {
        let output = child.wait_with_output()?;
        let text = text_of(&output);
        assert!(
            output.status.success(),
            "a process of the cluster failed: {}\n{text}",
            output.status
        );
        logs.push(text);
    }
    Ok(logs)
}

fn final_counts(records: &[(String, i64)]) -> std::collections::BTreeMap<String, i64> {
    let mut finals = std::collections::BTreeMap::new();
    for (word, count) in records {
        let e = finals.entry(word.clone()).or_insert(0);
        *e = (*e).max(*count);
    }
    finals
}

#[test]
fn two_process_child() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(out) = std::env::var("SUPERFLOW_TEST_CHILD") else {
        return Ok(());
    };
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(4);
    let records = build_job(&env).execute_and_collect()?;
    let text: String = records.iter().map(|(w, c)| format!("{w} {c}\n")).collect();
    std::fs::write(out, text)?;
    Ok(())
}

fn read_records(path: &Path) -> Result<Vec<(String, i64)>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut records = Vec::new();
    for line in text.lines() {
        let (word, count) = line.split_once(' ').ok_or("bad line")?;
        records.push((word.to_string(), count.parse()?));
    }
    Ok(records)
}

#[test]
fn two_processes_give_the_result_of_one() -> Result<(), Box<dyn std::error::Error>> {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(4);
    let single = build_job(&env).execute_and_collect()?;

    let dir = tempfile::tempdir()?;
    let children = spawn_cluster("two_process_child", |id, command| {
        command.env("SUPERFLOW_TEST_CHILD", dir.path().join(format!("out-{id}")));
    })?;
    wait_for_success(children)?;
    let mut both = read_records(&dir.path().join("out-0"))?;
    let second = read_records(&dir.path().join("out-1"))?;
    assert!(
        !both.is_empty() && !second.is_empty(),
        "both processes did part of the work"
    );
    both.extend(second);
    assert_eq!(both.len(), single.len());
    assert_eq!(final_counts(&both), final_counts(&single));
    // 97 words, and 97 words in each of 10 windows of 1 s.
    assert_eq!(final_counts(&single).len(), 97 + 970);
    Ok(())
}

#[test]
fn mismatched_child() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(parallelism) = std::env::var("SUPERFLOW_TEST_MISMATCH") else {
        return Ok(());
    };
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(parallelism.parse()?);
    build_job(&env).execute_and_collect()?;
    Ok(())
}

#[test]
fn processes_started_with_another_parallelism_are_refused_naming_the_difference(
) -> Result<(), Box<dyn std::error::Error>> {
    let children = spawn_cluster("mismatched_child", |id, command| {
        command.env("SUPERFLOW_TEST_MISMATCH", if id == 0 { "4" } else { "2" });
    })?;
    let mut texts = Vec::new();
    for child in children {
        // Neither may hang: a wait here would time out the whole test run.
        let output = child.wait_with_output()?;
        assert!(!output.status.success(), "{}", text_of(&output));
        texts.push(text_of(&output));
    }
    assert!(
        texts[0].contains("process 1 runs another job than process 0")
            && texts[0].contains("process 1 has 2 processes and 2 workers")
            && texts[0].contains("process 0 has 2 processes and 4 workers"),
        "{}",
        texts[0]
    );
    // The other process ends too, and says why it cannot go on.
    assert!(
        texts[1].contains("process 0 did not start the run"),
        "{}",
        texts[1]
    );
    Ok(())
}

#[test]
fn a_stray_connection_and_a_silent_one_are_ignored_while_the_cluster_starts(
) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let dir = tempfile::tempdir()?;
    let addresses = loopback_addresses(2);
    let configure = |id: usize, command: &mut Command| {
        command.env("SUPERFLOW_TEST_CHILD", dir.path().join(format!("out-{id}")));
    };
    let first = spawn_process("two_process_child", 0, &addresses, &configure)?;
    // Once process 0 listens: a port scan's garbage, and a connection that says nothing.
    let address = addresses.split(',').next().ok_or("no address")?;
    let mut stray = connect_when_listening(address)?;
    stray.write_all(b"hello\n")?;
    drop(stray);
    // 64 bytes of noise (a fixed xorshift sequence).
    let mut noise = std::net::TcpStream::connect(address)?;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    noise.write_all(&bytes)?;
    let silent = std::net::TcpStream::connect(address)?;
    let second = spawn_process("two_process_child", 1, &addresses, &configure)?;
    let logs = wait_for_success(vec![first, second])?;
    drop((noise, silent));
    let ignored = "process 0 ignored a connection from 127.0.0.1:";
    assert_eq!(logs[0].matches(ignored).count(), 3, "{}", logs[0]);
    for why in [
        "it closed before a whole handshake",
        "it did not start with a Superflow handshake",
        "it sent no handshake within 5 s",
    ] {
        assert!(logs[0].contains(why), "{why}: {}", logs[0]);
    }
    let records = read_records(&dir.path().join("out-0"))?.len()
        + read_records(&dir.path().join("out-1"))?.len();
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(4);
    assert_eq!(records, build_job(&env).execute_and_collect()?.len());
    Ok(())
}

/// Connects to `address`, retrying until it listens (60 s at most).
fn connect_when_listening(address: &str) -> std::io::Result<std::net::TcpStream> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match std::net::TcpStream::connect(address) {
            Ok(stream) => return Ok(stream),
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn an_impostor_without_the_job_secret_is_refused_and_the_job_runs(
) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir()?;
    let addresses = loopback_addresses(2);
    let configure = |id: usize, command: &mut Command| {
        command
            .env("SUPERFLOW_TEST_CHILD", dir.path().join(format!("out-{id}")))
            .env("SUPERFLOW_CLUSTER_SECRET", "the job's secret");
    };
    let first = spawn_process("two_process_child", 0, &addresses, &configure)?;
    let address = addresses.split(',').next().ok_or("no address")?;
    // A handshake as process 1 would send it, from processes that do not know the
    // secret: one without a challenge, one that answers process 0's challenge wrongly.
    let hello = |challenge: Option<[u8; 32]>| {
        let mut bytes = b"SFLOW\x00\x00\x01".to_vec();
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.push(u8::from(challenge.is_some()));
        bytes.extend(challenge.into_iter().flatten());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes
    };
    let mut unproven = connect_when_listening(address)?;
    unproven.write_all(&hello(None))?;
    let mut guesser = std::net::TcpStream::connect(address)?;
    guesser.write_all(&hello(Some([7; 32])))?;
    let mut answer_and_challenge = [0u8; 64];
    guesser.read_exact(&mut answer_and_challenge)?;
    guesser.write_all(&[0u8; 32])?;
    let second = spawn_process("two_process_child", 1, &addresses, &configure)?;
    let logs = wait_for_success(vec![first, second])?;
    drop((unproven, guesser));
    for why in [
        "it did not prove that it belongs to this job (it has no cluster secret",
        "it did not prove that it belongs to this job (its cluster secret differs)",
    ] {
        assert!(logs[0].contains(why), "{why}: {}", logs[0]);
    }
    assert!(!logs[0].contains("without authentication"), "{}", logs[0]);
    let records = read_records(&dir.path().join("out-0"))?.len()
        + read_records(&dir.path().join("out-1"))?.len();
    assert!(records > 0);
    Ok(())
}

/// Writes a marker file when the first records arrive, then keeps going.
#[derive(Clone)]
struct MarkWhenRunning(std::path::PathBuf);

impl SinkFunction<i64> for MarkWhenRunning {
    fn invoke(&mut self, _value: i64) -> Result<(), UserError> {
        if !self.0.exists() {
            std::fs::write(&self.0, "running")?;
        }
        Ok(())
    }
}

#[test]
fn endless_child() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(marker) = std::env::var("SUPERFLOW_TEST_ENDLESS") else {
        return Ok(());
    };
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    env.from_generator(|i| i as i64, None, Some(50_000.0))
        .key_by(|x: &i64| x % 10)
        .sum(0)
        .add_sink(MarkWhenRunning(marker.into()));
    let err = env.execute("endless").err().ok_or("an endless job ended")?;
    Err(err.to_string().into())
}

/// A process of `a_follower_that_restarts_learns_that_process_0_gave_up`: an endless
/// job checkpointing into the directory both share, whose map panics on process 0,
/// where no restart is allowed; the other process may restart three times. Prints the
/// job's error.
#[test]
fn give_up_child() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(dir) = std::env::var("SUPERFLOW_TEST_GIVE_UP") else {
        return Ok(());
    };
    let on_process_0 = std::env::var("SUPERFLOW_PROCESS_ID").as_deref() == Ok("0");
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    env.enable_checkpointing(std::time::Duration::from_millis(20));
    let storage = Path::new(&dir).join("checkpoints");
    env.configure_checkpoints(move |c| c.storage = storage);
    env.set_restart_strategy(if on_process_0 {
        RestartStrategy::None
    } else {
        RestartStrategy::fixed_delay(3, std::time::Duration::ZERO)
    });
    env.from_generator(|i| i as i64, None, Some(20_000.0))
        .map(move |x: i64| {
            if on_process_0 && x > 2_000 {
                panic!("process 0 fails at {x}");
            }
            x
        })
        .key_by(|x: &i64| x % 10)
        .sum(0)
        .add_sink(MarkWhenRunning(
            Path::new(&dir).join(format!("running-{}", std::process::id())),
        ));
    let err = env
        .execute("gives up")
        .err()
        .ok_or("an endless job ended")?;
    println!("job error: {err}");
    Ok(())
}

/// A process that restarts while process 0 gives the job up learns it from the
/// checkpoint storage and ends with process 0's error, instead of waiting out the
/// 60 s connect timeout for a process 0 that is gone.
#[test]
fn a_follower_that_restarts_learns_that_process_0_gave_up() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let children = spawn_cluster("give_up_child", |_, command| {
        command.env("SUPERFLOW_TEST_GIVE_UP", dir.path());
    })?;
    let outputs: Vec<String> = children
        .into_iter()
        .map(|child| Ok(text_of(&child.wait_with_output()?)))
        .collect::<Result<_, std::io::Error>>()?;
    assert!(outputs[0].contains("job error: "), "{}", outputs[0]);
    assert!(outputs[0].contains("process 0 fails at"), "{}", outputs[0]);
    assert!(
        outputs[1].contains("job error: ") && outputs[1].contains("process 0 gave the job up"),
        "{}",
        outputs[1]
    );
    assert!(outputs[1].contains("process 0 fails at"), "{}", outputs[1]);
    let records: Vec<_> = std::fs::read_dir(dir.path().join("checkpoints"))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("_gave-up-"))
        .collect();
    assert_eq!(records.len(), 1, "one record of the job given up");
    Ok(())
}

#[test]
fn a_killed_process_fails_the_other_instead_of_hanging() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut children = spawn_cluster("endless_child", |id, command| {
        command.env(
            "SUPERFLOW_TEST_ENDLESS",
            dir.path().join(format!("running-{id}")),
        );
    })?;
    // Both processes are past start-up once records reach a sink of each.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(dir.path().join("running-0").exists() && dir.path().join("running-1").exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the cluster did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    children[1].kill()?;
    children[1].wait()?;
    let survivor = children.remove(0);
    // The survivor must end by itself; a hang would time out the whole test run.
    let output = survivor.wait_with_output()?;
    let text = text_of(&output);
    assert!(!output.status.success());
    assert!(
        text.contains("lost the connection to another process of the job"),
        "{text}"
    );
    Ok(())
}

#[test]
fn ctrl_c_child() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(marker) = std::env::var("SUPERFLOW_TEST_CTRL_C") else {
        return Ok(());
    };
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    env.from_generator(|i| i as i64, None, Some(50_000.0))
        .add_sink(MarkWhenRunning(marker.into()));
    // Cancelled by Ctrl-C, the job drains and `execute` says so: it is not a finished
    // job, and a program that returns the error does not exit 0.
    match env.execute("until ctrl-c") {
        Err(JobError::Cancelled) => println!("job 'until ctrl-c' was cancelled cleanly"),
        other => println!("unexpected outcome: {other:?}"),
    }
    Ok(())
}

/// A job whose map is stuck on a record: Ctrl-C cannot drain it
/// (`SUPERFLOW_TEST_STUCK=marker[,grace ms]`).
#[test]
fn stuck_child() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(spec) = std::env::var("SUPERFLOW_TEST_STUCK") else {
        return Ok(());
    };
    let (marker, grace) = match spec.split_once(',') {
        Some((marker, ms)) => (marker.to_string(), Some(ms.parse::<u64>()?)),
        None => (spec, None),
    };
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(1);
    if let Some(ms) = grace {
        env.set_cancel_grace_period(std::time::Duration::from_millis(ms));
    }
    env.from_generator(|i| i as i64, None, None)
        .map(move |x: i64| {
            std::fs::write(&marker, "stuck").unwrap_or_default();
            std::thread::sleep(std::time::Duration::from_secs(3600));
            x
        })
        .name("Stuck")
        .print();
    let _ = env.execute("stuck");
    println!("execute returned");
    Ok(())
}

/// Runs this test binary's test `child` with `variable` set to `value`, its output
/// piped, and waits until its job wrote `marker`.
fn spawn_until_marked(
    child: &str,
    variable: &str,
    value: &str,
    marker: &Path,
) -> Result<std::process::Child, Box<dyn std::error::Error>> {
    let child = Command::new(std::env::current_exe()?)
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env(variable, value)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(child)
}

/// Runs `stuck_child`, waits until its map is stuck, and sends it SIGINT `signals`
/// times; returns its exit code and what it wrote to stderr.
fn interrupt_a_stuck_job(
    grace_ms: Option<u64>,
    signals: usize,
) -> Result<(Option<i32>, String), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let marker = dir.path().join("stuck");
    let spec = match grace_ms {
        Some(ms) => format!("{},{ms}", marker.display()),
        None => marker.display().to_string(),
    };
    let child = spawn_until_marked("stuck_child", "SUPERFLOW_TEST_STUCK", &spec, &marker)?;
    for _ in 0..signals {
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()?;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let output = child.wait_with_output()?;
    Ok((
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    ))
}

#[test]
fn a_second_ctrl_c_ends_a_job_stuck_in_user_code_naming_the_operator(
) -> Result<(), Box<dyn std::error::Error>> {
    let (code, stderr) = interrupt_a_stuck_job(None, 2)?;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("Ctrl-C: cancelling the job"), "{stderr}");
    assert!(
        stderr.contains("Ctrl-C again") && stderr.contains("'Stuck' (subtask 1)"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn the_grace_period_ends_a_job_stuck_in_user_code_naming_the_operator(
) -> Result<(), Box<dyn std::error::Error>> {
    let (code, stderr) = interrupt_a_stuck_job(Some(300), 1)?;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("0.3 s after Ctrl-C") && stderr.contains("'Stuck' (subtask 1)"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn ctrl_c_stops_an_unbounded_job_cleanly() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let marker = dir.path().join("running");
    let child = spawn_until_marked(
        "ctrl_c_child",
        "SUPERFLOW_TEST_CTRL_C",
        &marker.display().to_string(),
        &marker,
    )?;
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    assert!(status.success());
    let output = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("job 'until ctrl-c' was cancelled cleanly"),
        "{text}"
    );
    Ok(())
}

/// A keyed sum over an endless generator on two processes, with checkpoints. Process 0
/// runs it through a job handle: once both processes' sinks received records, it
/// stops the job with a savepoint (`SUPERFLOW_TEST_HANDLE=savepoint`, or `savepoint-url`
/// into a `file://` object store) or cancels it (`cancel`); the other process must end
/// with it.
#[test]
fn handle_child() -> Result<(), Box<dyn std::error::Error>> {
    let (Ok(mode), Ok(dir)) = (
        std::env::var("SUPERFLOW_TEST_HANDLE"),
        std::env::var("SUPERFLOW_TEST_DIR"),
    ) else {
        return Ok(());
    };
    let dir = std::path::PathBuf::from(dir);
    let process: usize = std::env::var("SUPERFLOW_PROCESS_ID")?.parse()?;
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(4);
    env.enable_checkpointing(std::time::Duration::from_millis(50));
    let storage = dir.join("checkpoints");
    env.configure_checkpoints(move |c| c.storage = storage);
    env.from_generator(|i| i as i64, None, Some(20_000.0))
        .uid("numbers")
        .key_by(|x: &i64| x % 10)
        .sum(0)
        .uid("sum")
        .add_sink(MarkWhenRunning(dir.join(format!("running-{process}"))))
        .uid("marker");
    if process != 0 {
        let result = env.execute("handled")?;
        println!("process {process} ended after {} restarts", result.restarts);
        return Ok(());
    }
    let client = env.execute_async("handled")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(dir.join("running-0").exists() && dir.join("running-1").exists()) {
        if std::time::Instant::now() > deadline {
            return Err("the cluster did not start".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if mode == "savepoint" {
        let path = client.stop_with_savepoint(dir.join("savepoint"))?;
        println!("savepoint at {}", path.display());
    } else if mode == "savepoint-url" {
        let url = format!("file://{}", dir.join("savepoint").display());
        let path = client.stop_with_savepoint(PathBuf::from(url))?;
        println!("savepoint at {}", path.display());
    } else {
        client.cancel();
    }
    let result = client.wait()?;
    println!("process 0 ended after {} restarts", result.restarts);
    Ok(())
}

fn run_handled(mode: &str) -> Result<(tempfile::TempDir, Vec<String>), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let children = spawn_cluster("handle_child", |_, command| {
        command
            .env("SUPERFLOW_TEST_HANDLE", mode)
            .env("SUPERFLOW_TEST_DIR", dir.path());
    })?;
    let logs = wait_for_success(children)?;
    Ok((dir, logs))
}

#[test]
fn stop_with_savepoint_on_process_0_stops_both_with_the_state_of_both(
) -> Result<(), Box<dyn std::error::Error>> {
    stopped_with_savepoint("savepoint")
}

#[test]
fn stop_with_savepoint_into_an_object_store_holds_the_parts_of_both_processes(
) -> Result<(), Box<dyn std::error::Error>> {
    stopped_with_savepoint("savepoint-url")
}

fn stopped_with_savepoint(mode: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (dir, logs) = run_handled(mode)?;
    let named = match mode {
        "savepoint-url" => format!(
            "savepoint at file://{}",
            dir.path().join("savepoint").display()
        ),
        _ => "savepoint at".to_string(),
    };
    assert!(logs[0].contains(&named), "{}", logs[0]);
    assert!(
        logs[1].contains("process 1 ended after 0 restarts"),
        "{}",
        logs[1]
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("savepoint/_metadata"))?)?;
    let parts = metadata["parts"].as_array().ok_or("no parts")?;
    let mut sum_subtasks: Vec<u64> = parts
        .iter()
        .filter(|p| p["states"].to_string().contains("sum/"))
        .filter_map(|p| p["subtask"].as_u64())
        .collect();
    sum_subtasks.sort_unstable();
    // Every subtask of the keyed sum wrote its part, those of process 1 included.
    assert_eq!(sum_subtasks, vec![0, 1, 2, 3], "{metadata}");
    for part in parts {
        let file = part["file"].as_str().ok_or("a part without a file")?;
        assert!(dir.path().join("savepoint").join(file).is_file(), "{file}");
    }
    Ok(())
}

#[test]
fn cancelling_on_process_0_ends_both() -> Result<(), Box<dyn std::error::Error>> {
    let (_dir, logs) = run_handled("cancel")?;
    assert!(
        logs[0].contains("process 0 ended after 0 restarts"),
        "{}",
        logs[0]
    );
    assert!(
        logs[1].contains("process 1 ended after 0 restarts"),
        "{}",
        logs[1]
    );
    Ok(())
}

#[test]
fn socket_child() -> Result<(), Box<dyn std::error::Error>> {
    let (Ok(port), Ok(out)) = (
        std::env::var("SUPERFLOW_TEST_SOCKET"),
        std::env::var("SUPERFLOW_TEST_CHILD"),
    ) else {
        return Ok(());
    };
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(4);
    let lengths = env
        .socket_text_stream("127.0.0.1", port.parse()?)
        .rebalance()
        .map(|line: String| (line.clone(), line.len() as i64))
        .key_by(|t: &(String, i64)| t.0.clone())
        .sum(1)
        .execute_and_collect()?;
    let text: String = lengths.iter().map(|(w, c)| format!("{w} {c}\n")).collect();
    std::fs::write(out, text)?;
    Ok(())
}

#[test]
fn a_socket_source_connects_from_the_one_process_that_runs_it(
) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let children = spawn_cluster("socket_child", |id, command| {
        command
            .env("SUPERFLOW_TEST_SOCKET", port.to_string())
            .env("SUPERFLOW_TEST_CHILD", dir.path().join(format!("out-{id}")));
    })?;
    // One connection, from process 0; a second process connecting would wait for lines
    // that never come (or take them from the first), as with `nc -l`.
    listener.set_nonblocking(true)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut connection = loop {
        match listener.accept() {
            Ok((connection, _)) => break connection,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no process connected to the socket"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    };
    connection.set_nonblocking(false)?;
    for word in ["ab", "cde", "ab"] {
        writeln!(connection, "{word}")?;
    }
    drop(connection);
    wait_for_success(children)?;
    assert!(
        listener.accept().is_err(),
        "a second process connected to the socket"
    );
    let mut both = read_records(&dir.path().join("out-0"))?;
    both.extend(read_records(&dir.path().join("out-1"))?);
    assert_eq!(
        final_counts(&both),
        [("ab".to_string(), 4), ("cde".to_string(), 3)]
            .into_iter()
            .collect()
    );
    Ok(())
}
