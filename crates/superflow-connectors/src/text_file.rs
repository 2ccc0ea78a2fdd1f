//! `read_text_file`: the lines of a file, or of every file in a directory.
//!
//! Each file is cut into byte ranges, one per subtask; a range owns every line that
//! starts inside it, so the subtasks read disjoint lines and together read all of them.
//!
//! Lines are decoded from a charset (UTF-8 by default; any ASCII-compatible one, as
//! Flink's `readTextFile(path, charsetName)` takes). Bytes that are not valid in it
//! become U+FFFD, as Java's decoder makes them, and the source warns once per file with
//! the count; in strict mode such a line fails the job with the file and line number.
//!
//! Monitoring a directory ([`TextFileSource::monitor_continuously`], Flink's
//! `FileSource.monitor_continuously`) makes the source unbounded: every subtask lists
//! the directory at each interval and reads, whole, the new files it owns (by a stable
//! hash of the path). The files seen are checkpointed as union state, so after a
//! restore, at any parallelism, no file is read twice and none is missed.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use superflow_runtime::{RestoredSplits, SourceError, SourceFunction, SourcePoll, SourceReader};

/// Reads text lines from a file or a directory of files.
#[derive(Debug, Clone)]
pub struct TextFileSource {
    path: PathBuf,
    /// How often a monitoring source lists the directory; `None` for a bounded source.
    discovery: Option<Duration>,
    /// The charset's name, as the user gave it (checked by `prepare`).
    charset: String,
    /// Whether a line with bytes not valid in the charset fails the job.
    strict: bool,
}

/// How a reader turns a line's bytes into text.
#[derive(Debug, Clone, Copy)]
struct LineDecoder {
    encoding: &'static encoding_rs::Encoding,
    /// ISO-8859-1 as Java decodes it: every byte is the code point of its value. (The
    /// WHATWG labels encoding_rs follows make "ISO-8859-1" windows-1252, which differs at
    /// 0x80..0x9F.)
    latin1: bool,
    strict: bool,
}

impl Default for LineDecoder {
    fn default() -> Self {
        LineDecoder {
            encoding: encoding_rs::UTF_8,
            latin1: false,
            strict: false,
        }
    }
}

impl LineDecoder {
    /// The decoder of charset `name`, or an error naming it: an unknown charset, or
    /// one whose lines cannot be split at the byte `\n` (UTF-16, UTF-32).
    fn of(name: &str, strict: bool) -> Result<LineDecoder, SourceError> {
        let label = name.trim().to_ascii_lowercase().replace('_', "-");
        if matches!(
            label.as_str(),
            "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "l1" | "cp819" | "iso-ir-100"
        ) {
            return Ok(LineDecoder {
                encoding: encoding_rs::WINDOWS_1252,
                latin1: true,
                strict,
            });
        }
        let encoding = encoding_rs::Encoding::for_label(name.trim().as_bytes())
            .ok_or_else(|| SourceError::new(format!("unknown charset '{name}'")))?;
        if !encoding.is_ascii_compatible() {
            return Err(SourceError::new(format!(
                "charset '{name}' is not supported by the text file source: lines are split at the byte '\\n', which needs an ASCII-compatible charset (UTF-8, ISO-8859-1, windows-1252, Shift_JIS, ...)"
            )));
        }
        Ok(LineDecoder {
            encoding,
            latin1: false,
            strict,
        })
    }

    /// The charset's name, for messages.
    fn name(&self) -> &'static str {
        if self.latin1 {
            "ISO-8859-1"
        } else {
            self.encoding.name()
        }
    }

    /// The text of a line; `None` when its bytes are not valid in the charset and the
    /// decoder is strict. A lenient decoder puts U+FFFD in their place, and says so
    /// through `malformed`.
    fn decode(&self, bytes: &[u8], malformed: &mut u64) -> Option<String> {
        if self.latin1 {
            return Some(encoding_rs::mem::decode_latin1(bytes).into_owned());
        }
        if self.encoding == encoding_rs::UTF_8 {
            if let Ok(text) = std::str::from_utf8(bytes) {
                return Some(text.to_string());
            }
        }
        let (text, _, had_errors) = self.encoding.decode(bytes);
        if had_errors {
            if self.strict {
                return None;
            }
            *malformed += 1;
        }
        Some(text.into_owned())
    }
}

impl TextFileSource {
    /// A source over `path` (a file, or a directory whose visible files are read).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TextFileSource {
            path: path.into(),
            discovery: None,
            charset: "UTF-8".into(),
            strict: false,
        }
    }

    /// Decodes the files from `charset` (a name or label such as `ISO-8859-1`,
    /// `windows-1252` or `Shift_JIS`; UTF-8 by default). An unknown charset, or one whose
    /// lines cannot be split at the byte `\n` (UTF-16), fails the job before it runs.
    pub fn with_charset(mut self, charset: &str) -> Self {
        self.charset = charset.to_string();
        self
    }

    /// Fails the job, naming the file and the line, at the first line whose bytes are not
    /// valid in the charset, instead of decoding them as U+FFFD with a warning.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    fn decoder(&self) -> Result<LineDecoder, SourceError> {
        LineDecoder::of(&self.charset, self.strict)
    }

    /// Keeps watching the directory, every `interval`, and reads each new visible file
    /// once: the source never ends. A file is read up to the size it had when it was
    /// found, so files should be moved into the directory whole (as with Flink).
    pub fn monitor_continuously(mut self, interval: Duration) -> Self {
        self.discovery = Some(interval);
        self
    }

    /// The files to read, with their sizes, in name order.
    fn files(&self) -> Result<Vec<(PathBuf, u64)>, SourceError> {
        let meta = std::fs::metadata(&self.path).map_err(|e| {
            SourceError::new(format!(
                "cannot read input path '{}': {e}",
                self.path.display()
            ))
        })?;
        if meta.is_file() {
            return Ok(vec![(self.path.clone(), meta.len())]);
        }
        let entries = std::fs::read_dir(&self.path).map_err(|e| {
            SourceError::new(format!(
                "cannot list input directory '{}': {e}",
                self.path.display()
            ))
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                SourceError::new(format!(
                    "cannot list input directory '{}': {e}",
                    self.path.display()
                ))
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Flink's file sources skip hidden and in-progress files.
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let meta = entry.metadata().map_err(|e| {
                SourceError::new(format!("cannot read '{}': {e}", entry.path().display()))
            })?;
            if meta.is_file() {
                files.push((entry.path(), meta.len()));
            }
        }
        files.sort();
        Ok(files)
    }
}

impl SourceFunction<String> for TextFileSource {
    fn is_replayable(&self) -> bool {
        true
    }

    fn is_bounded(&self) -> bool {
        self.discovery.is_none()
    }

    fn name(&self) -> String {
        match self.discovery {
            None => format!("TextFile Source: {}", self.path.display()),
            Some(_) => format!("Monitoring TextFile Source: {}", self.path.display()),
        }
    }

    fn prepare(&self) -> Result<(), SourceError> {
        self.decoder()?;
        let files = self.files()?;
        if files.is_empty() && self.discovery.is_none() {
            superflow_runtime::notice::warn_user(format!(
                "{}: no file to read (hidden files and those starting with '_' are skipped): the source ends at once",
                self.path.display()
            ));
        }
        for (file, _) in files {
            File::open(&file)
                .map_err(|e| SourceError::new(format!("cannot open '{}': {e}", file.display())))?;
        }
        Ok(())
    }

    fn create_reader(
        &self,
        subtask: usize,
        parallelism: usize,
    ) -> Result<Box<dyn SourceReader<String>>, SourceError> {
        if let Some(interval) = self.discovery {
            return Ok(Box::new(MonitoringReader::new(
                self,
                interval,
                TextFileReader {
                    decoder: self.decoder()?,
                    ..TextFileReader::default()
                },
                HashSet::new(),
                subtask,
                parallelism,
            )));
        }
        let splits = self
            .files()?
            .into_iter()
            .filter_map(|(path, len)| {
                let start = len * subtask as u64 / parallelism as u64;
                let end = len * (subtask as u64 + 1) / parallelism as u64;
                (start < end).then_some(Split { path, start, end })
            })
            .collect::<Vec<_>>();
        Ok(Box::new(TextFileReader {
            splits: splits.into_iter().rev().collect(),
            current: None,
            decoder: self.decoder()?,
        }))
    }

    fn restore_reader(
        &self,
        restored: RestoredSplits,
        subtask: usize,
        parallelism: usize,
    ) -> Result<Box<dyn SourceReader<String>>, SourceError> {
        let files = restore_splits(&restored.splits, self.decoder()?)?;
        let Some(interval) = self.discovery else {
            return Ok(Box::new(files));
        };
        // Every subtask gets every file seen; each keeps those it owns now.
        let mut seen = HashSet::new();
        for bytes in &restored.shared {
            let path = crate::decode_split::<PathBuf>(bytes)?;
            if owner(&path, parallelism) == subtask {
                seen.insert(path);
            }
        }
        Ok(Box::new(MonitoringReader::new(
            self,
            interval,
            files,
            seen,
            subtask,
            parallelism,
        )))
    }
}

/// The subtask that reads a monitored file, out of `parallelism`.
fn owner(path: &Path, parallelism: usize) -> usize {
    superflow_core::key_group::key_hash(path.to_string_lossy().as_ref()) as usize
        % parallelism.max(1)
}

/// A reader of the splits a checkpoint recorded, checking that their files are still
/// as long as they were.
fn restore_splits(splits: &[Vec<u8>], decoder: LineDecoder) -> Result<TextFileReader, SourceError> {
    let mut restored = Vec::with_capacity(splits.len());
    for bytes in splits {
        let (path, start, end) = crate::decode_split::<(PathBuf, u64, u64)>(bytes)?;
        let len = std::fs::metadata(&path)
            .map_err(|e| {
                SourceError::new(format!("cannot resume reading '{}': {e}", path.display()))
            })?
            .len();
        if len < end {
            return Err(SourceError::new(format!(
                "cannot resume reading '{}': it has {len} bytes, fewer than the {end} it had when the checkpoint was taken",
                path.display()
            )));
        }
        restored.push(Split { path, start, end });
    }
    Ok(TextFileReader {
        splits: restored.into_iter().rev().collect(),
        current: None,
        decoder,
    })
}

/// The reader of one subtask of a monitoring source: the files it found, read as a
/// bounded reader reads them, and the directory listed again when they are done.
struct MonitoringReader {
    source: TextFileSource,
    files: TextFileReader,
    /// The files this subtask owns that it has found (read or being read).
    seen: HashSet<PathBuf>,
    interval: Duration,
    next_discovery: Instant,
    subtask: usize,
    parallelism: usize,
}

impl MonitoringReader {
    /// Subtask `subtask` of `parallelism` of `source`, reading `files` and then new ones
    /// it has not `seen`; it lists the directory at its first poll.
    fn new(
        source: &TextFileSource,
        interval: Duration,
        files: TextFileReader,
        seen: HashSet<PathBuf>,
        subtask: usize,
        parallelism: usize,
    ) -> MonitoringReader {
        MonitoringReader {
            source: source.clone(),
            files,
            seen,
            interval,
            next_discovery: Instant::now(),
            subtask,
            parallelism,
        }
    }

    /// Lists the directory and queues the new files this subtask owns, in name order.
    fn discover(&mut self) -> Result<(), SourceError> {
        let mut found = Vec::new();
        for (path, len) in self.source.files()? {
            if owner(&path, self.parallelism) != self.subtask || self.seen.contains(&path) {
                continue;
            }
            tracing::debug!(file = %path.display(), subtask = self.subtask, "found a new file");
            self.seen.insert(path.clone());
            if len > 0 {
                found.push(Split {
                    path,
                    start: 0,
                    end: len,
                });
            }
        }
        // Read after what is queued: `splits` is taken from its end.
        found.reverse();
        found.append(&mut self.files.splits);
        self.files.splits = found;
        Ok(())
    }
}

impl SourceReader<String> for MonitoringReader {
    fn snapshot_splits(&self) -> Option<Vec<Vec<u8>>> {
        self.files.snapshot_splits()
    }

    fn snapshot_shared(&self) -> Vec<Vec<u8>> {
        let mut seen: Vec<&PathBuf> = self.seen.iter().collect();
        seen.sort();
        crate::encode_splits(&seen).unwrap_or_default()
    }

    fn poll(&mut self, out: &mut Vec<String>, max: usize) -> Result<SourcePoll, SourceError> {
        let before = out.len();
        if self.files.poll(out, max)? != SourcePoll::Finished || out.len() > before {
            return Ok(SourcePoll::Ready);
        }
        let now = Instant::now();
        if now >= self.next_discovery {
            self.next_discovery = now + self.interval;
            self.discover()?;
            if !self.files.splits.is_empty() {
                self.files.poll(out, max)?;
                return Ok(SourcePoll::Ready);
            }
        }
        // At least a millisecond, so that a zero interval does not spin.
        Ok(SourcePoll::Pending(
            self.next_discovery
                .saturating_duration_since(now)
                .max(Duration::from_millis(1)),
        ))
    }
}

/// A byte range of a file; its first line starts at `start` or after it (a range
/// that starts inside a line leaves that line to the range before).
struct Split {
    path: PathBuf,
    start: u64,
    end: u64,
}

struct OpenSplit {
    path: PathBuf,
    reader: BufReader<File>,
    position: u64,
    end: u64,
    line: Vec<u8>,
    /// Lines read whose bytes were not valid in the charset (decoded with U+FFFD).
    malformed: u64,
}

impl OpenSplit {
    /// Done with the split: warns if some of its lines were not valid in the charset.
    fn close(self, decoder: &LineDecoder) {
        if self.malformed > 0 {
            superflow_runtime::notice::warn_user(format!(
                "{}: {} line(s) were not valid {}: their bad bytes were read as U+FFFD (the replacement character), as Java reads them; give the file's charset, or read strictly to fail on such lines",
                self.path.display(),
                self.malformed,
                decoder.name()
            ));
        }
    }
}

#[derive(Default)]
struct TextFileReader {
    splits: Vec<Split>,
    current: Option<OpenSplit>,
    decoder: LineDecoder,
}

fn open_split(split: Split) -> Result<OpenSplit, SourceError> {
    let io_err = |e: std::io::Error| {
        SourceError::new(format!("cannot read '{}': {e}", split.path.display()))
    };
    let mut file = File::open(&split.path).map_err(io_err)?;
    let mut position = split.start;
    if split.start > 0 {
        // A range starting inside a line leaves that line to the previous range.
        file.seek(SeekFrom::Start(split.start - 1))
            .map_err(io_err)?;
        let mut previous = [0u8; 1];
        file.read_exact(&mut previous).map_err(io_err)?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        if previous[0] != b'\n' {
            let mut skipped = Vec::new();
            position += reader.read_until(b'\n', &mut skipped).map_err(io_err)? as u64;
        }
        return Ok(OpenSplit {
            path: split.path,
            reader,
            position,
            end: split.end,
            line: Vec::new(),
            malformed: 0,
        });
    }
    Ok(OpenSplit {
        path: split.path,
        reader: BufReader::with_capacity(1 << 16, file),
        position,
        end: split.end,
        line: Vec::new(),
        malformed: 0,
    })
}

/// The 1-based line number of the line starting at byte `offset` (only on the error path).
fn line_number(path: &Path, offset: u64) -> Option<u64> {
    let file = File::open(path).ok()?;
    let mut reader = BufReader::new(file.take(offset));
    let mut buf = Vec::new();
    reader.read_to_end(&mut buf).ok()?;
    Some(memchr::memchr_iter(b'\n', &buf).count() as u64 + 1)
}

impl SourceReader<String> for TextFileReader {
    fn snapshot_splits(&self) -> Option<Vec<Vec<u8>>> {
        // The open split resumes at the line after the last one read: its position is
        // a line start, so reopening it skips nothing.
        let current = self
            .current
            .as_ref()
            .map(|s| (s.path.clone(), s.position, s.end));
        let pending = self
            .splits
            .iter()
            .rev()
            .map(|s| (s.path.clone(), s.start, s.end));
        let all: Vec<(PathBuf, u64, u64)> = current.into_iter().chain(pending).collect();
        crate::encode_splits(&all)
    }

    fn poll(&mut self, out: &mut Vec<String>, max: usize) -> Result<SourcePoll, SourceError> {
        let mut produced = 0;
        while produced < max {
            let split = match &mut self.current {
                Some(split) => split,
                None => match self.splits.pop() {
                    Some(next) => self.current.insert(open_split(next)?),
                    None => return Ok(SourcePoll::Finished),
                },
            };
            if split.position >= split.end {
                if let Some(done) = self.current.take() {
                    done.close(&self.decoder);
                }
                continue;
            }
            split.line.clear();
            let read = split
                .reader
                .read_until(b'\n', &mut split.line)
                .map_err(|e| {
                    SourceError::new(format!("cannot read '{}': {e}", split.path.display()))
                })?;
            if read == 0 {
                if let Some(done) = self.current.take() {
                    done.close(&self.decoder);
                }
                continue;
            }
            let line_start = split.position;
            split.position += read as u64;
            let mut bytes = split.line.as_slice();
            if bytes.last() == Some(&b'\n') {
                bytes = &bytes[..bytes.len() - 1];
            }
            if bytes.last() == Some(&b'\r') {
                bytes = &bytes[..bytes.len() - 1];
            }
            match self.decoder.decode(bytes, &mut split.malformed) {
                Some(text) => out.push(text),
                None => {
                    let line = line_number(&split.path, line_start)
                        .map_or_else(|| "?".to_string(), |n| n.to_string());
                    return Err(SourceError::new(format!(
                        "{}:{line}: the line is not valid {}",
                        split.path.display(),
                        self.decoder.name()
                    )));
                }
            }
            produced += 1;
        }
        Ok(SourcePoll::Ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(source: &TextFileSource, p: usize) -> Result<Vec<String>, SourceError> {
        let mut all = Vec::new();
        for i in 0..p {
            let mut reader = source.create_reader(i, p)?;
            while reader.poll(&mut all, 3)? != SourcePoll::Finished {}
        }
        Ok(all)
    }

    #[test]
    fn every_line_is_read_once_at_any_parallelism() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut expected = Vec::new();
        for f in 0..3 {
            let mut file = File::create(dir.path().join(format!("part-{f}")))?;
            for l in 0..(f * 17 + 5) {
                let line = format!("file {f} line {l} {}", "x".repeat(l % 13));
                writeln!(file, "{line}")?;
                expected.push(line);
            }
        }
        File::create(dir.path().join(".hidden"))?.write_all(b"skip me\n")?;
        expected.sort();
        let source = TextFileSource::new(dir.path());
        for p in 1..=6 {
            let mut lines = read_all(&source, p)?;
            lines.sort();
            assert_eq!(lines, expected, "parallelism {p}");
        }
        Ok(())
    }

    fn write_file(dir: &Path, name: &str, lines: std::ops::Range<usize>) -> Vec<String> {
        let lines: Vec<String> = lines.map(|l| format!("{name} line {l}")).collect();
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(dir.join(name), text).unwrap();
        lines
    }

    /// Polls every reader until none has anything to read now.
    fn drain(readers: &mut [Box<dyn SourceReader<String>>], out: &mut Vec<String>) {
        for reader in readers.iter_mut() {
            loop {
                match reader.poll(out, 7).unwrap() {
                    SourcePoll::Ready => {}
                    SourcePoll::Pending(_) => break,
                    SourcePoll::Finished => panic!("a monitoring source never finishes"),
                }
            }
        }
    }

    #[test]
    fn a_monitoring_source_reads_each_new_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let source = TextFileSource::new(dir.path()).monitor_continuously(Duration::ZERO);
        let mut expected = write_file(dir.path(), "a", 0..5);
        let mut readers: Vec<_> = (0..3)
            .map(|i| source.create_reader(i, 3).unwrap())
            .collect();
        let mut out = Vec::new();
        drain(&mut readers, &mut out);
        for f in 0..6 {
            expected.extend(write_file(dir.path(), &format!("new-{f}"), 0..(f * 3 + 1)));
        }
        std::fs::write(dir.path().join(".hidden"), "skipped\n").unwrap();
        std::fs::write(dir.path().join("_temporary"), "skipped\n").unwrap();
        drain(&mut readers, &mut out);
        drain(&mut readers, &mut out);
        out.sort();
        expected.sort();
        assert_eq!(out, expected);
    }

    #[test]
    fn a_monitoring_source_restored_at_another_parallelism_reads_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let source = TextFileSource::new(dir.path()).monitor_continuously(Duration::ZERO);
        let mut expected = Vec::new();
        for f in 0..8 {
            expected.extend(write_file(dir.path(), &format!("old-{f}"), 0..40));
        }
        let mut readers: Vec<_> = (0..4)
            .map(|i| source.create_reader(i, 4).unwrap())
            .collect();
        // Each reader reads a little of its files: the rest is in its splits.
        let mut before = Vec::new();
        for reader in &mut readers {
            reader.poll(&mut before, 30).unwrap();
        }
        assert!(!before.is_empty());
        let splits: Vec<Vec<u8>> = readers
            .iter()
            .flat_map(|r| r.snapshot_splits().unwrap())
            .collect();
        let shared: Vec<Vec<u8>> = readers.iter().flat_map(|r| r.snapshot_shared()).collect();
        assert_eq!(shared.len(), 8, "every file is seen by one reader");
        // What is read after the checkpoint is replayed after the restore.
        drain(&mut readers, &mut Vec::new());
        for f in 0..5 {
            expected.extend(write_file(dir.path(), &format!("new-{f}"), 0..9));
        }
        // Operator list state is dealt round robin; union state goes to every subtask.
        let mut restored: Vec<_> = (0..2)
            .map(|i| {
                let own = splits
                    .iter()
                    .enumerate()
                    .filter(|(n, _)| n % 2 == i)
                    .map(|(_, s)| s.clone())
                    .collect();
                let restored = RestoredSplits {
                    splits: own,
                    shared: shared.clone(),
                };
                source.restore_reader(restored, i, 2).unwrap()
            })
            .collect();
        let mut after = Vec::new();
        drain(&mut restored, &mut after);
        drain(&mut restored, &mut after);
        let mut all: Vec<String> = before.into_iter().chain(after).collect();
        all.sort();
        expected.sort();
        assert_eq!(all, expected);
        // Another snapshot holds each file once, whichever subtask owns it now.
        let shared: Vec<Vec<u8>> = restored.iter().flat_map(|r| r.snapshot_shared()).collect();
        assert_eq!(shared.len(), 13);
    }

    #[test]
    fn invalid_utf8_names_file_and_line_in_strict_mode() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bad.txt");
        File::create(&path)?.write_all(b"ok\nfine\n\xff\xfe broken\nlast\n")?;
        let err = read_all(&TextFileSource::new(&path).strict(), 1)
            .err()
            .ok_or("expected an error")?;
        let text = err.to_string();
        assert!(
            text.contains("bad.txt:3:") && text.contains("not valid UTF-8"),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_and_no_line_is_lost(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bad.txt");
        File::create(&path)?.write_all(b"ok\n\xff broken\nlast\n")?;
        let mut lines = read_all(&TextFileSource::new(&path), 2)?;
        lines.sort();
        assert_eq!(lines, vec!["last", "ok", "\u{FFFD} broken"]);
        Ok(())
    }

    #[test]
    fn a_charset_decodes_the_files() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("latin1.txt");
        // "café", "größe" and a C1 control in ISO-8859-1: not valid UTF-8. Java reads 0x80
        // as U+0080 (windows-1252 would make it €).
        File::create(&path)?.write_all(b"caf\xe9\ngr\xf6\xdfe\n\x80\n")?;
        let source = TextFileSource::new(&path)
            .with_charset("ISO-8859-1")
            .strict();
        let mut lines = read_all(&source, 1)?;
        lines.sort();
        assert_eq!(lines, vec!["café", "größe", "\u{80}"]);
        let source = TextFileSource::new(&path).with_charset("windows-1252");
        assert!(read_all(&source, 1)?.contains(&"€".to_string()));
        for (charset, error) in [
            ("klingon", "unknown charset 'klingon'"),
            ("UTF-16", "ASCII-compatible"),
        ] {
            let err = TextFileSource::new(&path)
                .with_charset(charset)
                .prepare()
                .err();
            let text = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(text.contains(error), "{charset}: {text}");
        }
        Ok(())
    }

    #[test]
    fn missing_path_is_reported() {
        let err = TextFileSource::new("/no/such/file.txt")
            .prepare()
            .err()
            .map(|e| e.to_string());
        let text = err.unwrap_or_default();
        assert!(text.contains("/no/such/file.txt"), "{text}");
    }
}
