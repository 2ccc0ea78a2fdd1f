//! `read_text_file`: the lines of a file, or of every file in a directory.
//!
//! Each file is cut into byte ranges, one per subtask; a range owns every line that
//! starts inside it, so the subtasks read disjoint lines and together read all of them.
//! A line that is not UTF-8 fails the job with the file and line number.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use superflow_runtime::{SourceError, SourceFunction, SourcePoll, SourceReader};

/// Reads text lines from a file or a directory of files.
#[derive(Debug, Clone)]
pub struct TextFileSource {
    path: PathBuf,
}

impl TextFileSource {
    /// A source over `path` (a file, or a directory whose visible files are read).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TextFileSource { path: path.into() }
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

    fn name(&self) -> String {
        format!("TextFile Source: {}", self.path.display())
    }

    fn prepare(&self) -> Result<(), SourceError> {
        for (file, _) in self.files()? {
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
        }))
    }

    fn restore_reader(
        &self,
        splits: Vec<Vec<u8>>,
        _subtask: usize,
        _parallelism: usize,
    ) -> Result<Box<dyn SourceReader<String>>, SourceError> {
        let mut restored = Vec::with_capacity(splits.len());
        for bytes in &splits {
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
        Ok(Box::new(TextFileReader {
            splits: restored.into_iter().rev().collect(),
            current: None,
        }))
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
}

struct TextFileReader {
    splits: Vec<Split>,
    current: Option<OpenSplit>,
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
        });
    }
    Ok(OpenSplit {
        path: split.path,
        reader: BufReader::with_capacity(1 << 16, file),
        position,
        end: split.end,
        line: Vec::new(),
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
                self.current = None;
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
                self.current = None;
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
            match std::str::from_utf8(bytes) {
                Ok(text) => out.push(text.to_string()),
                Err(e) => {
                    let line = line_number(&split.path, line_start)
                        .map_or_else(|| "?".to_string(), |n| n.to_string());
                    return Err(SourceError::new(format!(
                        "{}:{line}: the line is not valid UTF-8 ({e})",
                        split.path.display()
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

    #[test]
    fn invalid_utf8_names_file_and_line() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bad.txt");
        File::create(&path)?.write_all(b"ok\nfine\n\xff\xfe broken\nlast\n")?;
        let err = read_all(&TextFileSource::new(&path), 1)
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
    fn missing_path_is_reported() {
        let err = TextFileSource::new("/no/such/file.txt")
            .prepare()
            .err()
            .map(|e| e.to_string());
        let text = err.unwrap_or_default();
        assert!(text.contains("/no/such/file.txt"), "{text}");
    }
}
