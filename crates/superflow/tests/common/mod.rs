//! Helpers the integration tests share: reading a file sink's output, copying directories,
//! free ports, and a punctuated watermark generator.

use std::path::Path;

use superflow::prelude::{WatermarkGenerator, WatermarkOutput};

#[cfg(feature = "cloud-storage")]
pub mod s3;

/// The committed lines of a `FileSink` directory and its buckets (a directory per
/// hour by default), sorted; hidden (in-progress) parts are not output.
#[allow(dead_code)]
pub fn committed_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.path().is_dir() {
            lines.extend(committed_lines(&entry.path()));
        } else {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            lines.extend(text.lines().map(String::from));
        }
    }
    lines.sort();
    lines
}

/// Copies directory `from` to `to`, recursively.
#[allow(dead_code)]
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(from).into_iter().flatten().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// A loopback port free now (the system's choice of an unused one).
#[allow(dead_code)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// Free loopback addresses for `n` processes of a cluster, comma-separated.
#[allow(dead_code)]
pub fn loopback_addresses(n: usize) -> String {
    (0..n)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Asserts that `actual` and `expected` (both sorted) hold the same lines, naming up to
/// ten missing and ten extra lines when they do not.
#[allow(dead_code)]
pub fn assert_same_lines(actual: &[String], expected: &[String], context: &str) {
    if actual == expected {
        return;
    }
    let (mut missing, mut extra) = (Vec::new(), Vec::new());
    let (mut a, mut e) = (actual.iter().peekable(), expected.iter().peekable());
    loop {
        match (a.peek(), e.peek()) {
            (Some(x), Some(y)) if x == y => {
                a.next();
                e.next();
            }
            (Some(x), Some(y)) if x < y => extra.push(a.next().cloned()),
            (_, Some(_)) => missing.push(e.next().cloned()),
            (Some(_), None) => extra.push(a.next().cloned()),
            (None, None) => break,
        }
    }
    let first = |v: &[Option<String>]| v.iter().take(10).flatten().cloned().collect::<Vec<_>>();
    // Lines sort as text, so the first ten hide which kinds of line differ: count them
    // by their first word.
    let kinds = |v: &[Option<String>]| {
        let mut kinds = std::collections::BTreeMap::<String, usize>::new();
        for line in v.iter().flatten() {
            let kind = line.split_whitespace().next().unwrap_or_default();
            *kinds.entry(kind.to_string()).or_default() += 1;
        }
        kinds
    };
    panic!(
        "{context}: {} lines, expected {}; {} missing {:?} {:?}; {} extra {:?} {:?}",
        actual.len(),
        expected.len(),
        missing.len(),
        kinds(&missing),
        first(&missing),
        extra.len(),
        kinds(&extra),
        first(&extra)
    );
}

/// Emits a watermark right behind every record (a punctuated generator).
#[derive(Default)]
#[allow(dead_code)]
pub struct PunctuatedEveryRecord;

impl<T> WatermarkGenerator<T> for PunctuatedEveryRecord {
    fn on_event(&mut self, _: &T, timestamp: i64, output: &mut WatermarkOutput) {
        output.emit_watermark(timestamp - 1);
    }
    fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
}
