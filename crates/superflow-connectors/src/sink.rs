//! Sinks: `print()` and `write_as_text()` (the [`SinkFunction`] contract is the
//! runtime's, beside `SourceFunction`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use superflow_core::{RecordDisplay, UserError};
pub use superflow_runtime::sink::{SinkContext, SinkFunction};

/// Prints records to stdout or stderr, one per line, prefixed as Flink prefixes them:
/// `N> ` (the 1-based subtask) when the sink's parallelism is above one, and with a sink
/// identifier `id:N> `, or `id> ` at parallelism one.
#[derive(Debug, Clone, Default)]
pub struct PrintSink {
    to_stderr: bool,
    identifier: String,
    prefix: String,
    text: String,
}

impl PrintSink {
    /// A sink printing to stdout.
    pub fn stdout() -> Self {
        PrintSink::default()
    }

    /// A sink printing to stderr.
    pub fn stderr() -> Self {
        PrintSink {
            to_stderr: true,
            ..PrintSink::default()
        }
    }

    /// Prefixes every line with `identifier` (Flink's `print(sinkIdentifier)`).
    pub fn with_identifier(mut self, identifier: &str) -> Self {
        self.identifier = identifier.to_string();
        self
    }
}

impl<T: RecordDisplay + 'static> SinkFunction<T> for PrintSink {
    fn open(&mut self, ctx: &SinkContext) -> Result<(), UserError> {
        // Flink's PrintSinkOutputWriter: identifier, ":" and subtask, then "> ".
        let mut prefix = self.identifier.clone();
        if ctx.parallelism > 1 {
            if !prefix.is_empty() {
                prefix.push(':');
            }
            prefix.push_str(&(ctx.subtask + 1).to_string());
        }
        if !prefix.is_empty() {
            prefix.push_str("> ");
        }
        self.prefix = prefix;
        Ok(())
    }

    fn invoke(&mut self, value: T) -> Result<(), UserError> {
        let mut one = vec![value];
        self.invoke_batch(&mut one)
    }

    fn invoke_batch(&mut self, values: &mut Vec<T>) -> Result<(), UserError> {
        self.text.clear();
        for value in values.drain(..) {
            self.text.push_str(&self.prefix);
            value.fmt_record(&mut self.text)?;
            self.text.push('\n');
        }
        // One write per batch keeps lines of different subtasks whole.
        if self.to_stderr {
            std::io::stderr().lock().write_all(self.text.as_bytes())?;
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(self.text.as_bytes())?;
            out.flush()?;
        }
        Ok(())
    }
}

/// What `write_as_text` does when the target exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Fail when the file exists (Flink's default).
    #[default]
    NoOverwrite,
    /// Replace the existing file.
    Overwrite,
}

/// Writes records as lines of text. At parallelism 1 `path` is the file; above, it is a
/// directory holding one file per subtask, named `1`, `2`, ... as in Flink.
#[derive(Debug)]
pub struct TextFileSink {
    path: PathBuf,
    mode: WriteMode,
    writer: Option<BufWriter<File>>,
    text: String,
}

impl Clone for TextFileSink {
    fn clone(&self) -> Self {
        TextFileSink::new(self.path.clone(), self.mode)
    }
}

impl TextFileSink {
    /// A sink writing to `path`.
    pub fn new(path: impl Into<PathBuf>, mode: WriteMode) -> Self {
        TextFileSink {
            path: path.into(),
            mode,
            writer: None,
            text: String::new(),
        }
    }
}

impl<T: RecordDisplay + 'static> SinkFunction<T> for TextFileSink {
    fn open(&mut self, ctx: &SinkContext) -> Result<(), UserError> {
        let file_path = if ctx.parallelism > 1 {
            std::fs::create_dir_all(&self.path).map_err(|e| {
                format!(
                    "cannot create output directory '{}': {e}",
                    self.path.display()
                )
            })?;
            self.path.join((ctx.subtask + 1).to_string())
        } else {
            self.path.clone()
        };
        if self.mode == WriteMode::NoOverwrite && file_path.exists() {
            return Err(format!(
                "output file '{}' already exists (use WriteMode::Overwrite to replace it)",
                file_path.display()
            )
            .into());
        }
        let file = File::create(&file_path)
            .map_err(|e| format!("cannot create output file '{}': {e}", file_path.display()))?;
        self.writer = Some(BufWriter::with_capacity(1 << 16, file));
        Ok(())
    }

    fn invoke(&mut self, value: T) -> Result<(), UserError> {
        let mut one = vec![value];
        self.invoke_batch(&mut one)
    }

    fn invoke_batch(&mut self, values: &mut Vec<T>) -> Result<(), UserError> {
        let writer = self.writer.as_mut().ok_or("the text sink was not opened")?;
        self.text.clear();
        for value in values.drain(..) {
            value.fmt_record(&mut self.text)?;
            self.text.push('\n');
        }
        writer.write_all(self.text.as_bytes())?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        if let Some(mut writer) = self.writer.take() {
            writer.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(sink: PrintSink, subtask: usize, parallelism: usize) -> String {
        let mut sink = sink;
        SinkFunction::<i64>::open(
            &mut sink,
            &SinkContext {
                subtask,
                parallelism,
            },
        )
        .unwrap();
        sink.prefix
    }

    #[test]
    fn print_prefixes_lines_as_flink_does() {
        assert_eq!(prefix(PrintSink::stdout(), 0, 1), "");
        assert_eq!(prefix(PrintSink::stdout(), 1, 2), "2> ");
        assert_eq!(
            prefix(PrintSink::stdout().with_identifier("id"), 0, 1),
            "id> "
        );
        assert_eq!(
            prefix(PrintSink::stdout().with_identifier("id"), 1, 2),
            "id:2> "
        );
    }
}
