//! `socket_text_stream(host, port)`: lines read from a TCP connection, by one subtask.
//!
//! The connection is opened before the job starts, so an unreachable address fails
//! `execute()` with a clear error instead of a running job with no input.

use std::io::{ErrorKind, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::Duration;

use superflow_runtime::{SourceError, SourceFunction, SourcePoll, SourceReader};

/// How long `prepare` waits for the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest line read by default (1 GiB): a peer that never sends a line break
/// fails the job with a clear error before it exhausts memory.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 30;

/// Lines of text from a TCP socket; the job's input ends when the peer closes.
pub struct SocketTextSource {
    host: String,
    port: u16,
    max_line_bytes: usize,
    connection: Mutex<Option<TcpStream>>,
}

impl SocketTextSource {
    /// A source reading from `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        SocketTextSource {
            host: host.into(),
            port,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            connection: Mutex::new(None),
        }
    }

    /// Fails the job, naming the line, when a line grows beyond `bytes` without a line
    /// break (1 GiB by default).
    pub fn with_max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes.max(1);
        self
    }

    fn connect(&self) -> Result<TcpStream, SourceError> {
        let address = format!("{}:{}", self.host, self.port);
        let unreachable =
            |reason: String| SourceError::new(format!("cannot connect to {address}: {reason}"));
        let addrs = address
            .to_socket_addrs()
            .map_err(|e| unreachable(e.to_string()))?;
        let mut last = String::from("the host name resolved to no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e.to_string(),
            }
        }
        Err(unreachable(last))
    }
}

impl SourceFunction<String> for SocketTextSource {
    fn name(&self) -> String {
        format!("Socket Stream: {}:{}", self.host, self.port)
    }

    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn prepare(&self) -> Result<(), SourceError> {
        let stream = self.connect()?;
        if let Ok(mut slot) = self.connection.lock() {
            *slot = Some(stream);
        }
        Ok(())
    }

    fn create_reader(
        &self,
        _subtask: usize,
        _parallelism: usize,
    ) -> Result<Box<dyn SourceReader<String>>, SourceError> {
        let prepared = self.connection.lock().ok().and_then(|mut slot| slot.take());
        let stream = match prepared {
            Some(stream) => stream,
            None => self.connect()?,
        };
        stream
            .set_nonblocking(true)
            .map_err(|e| SourceError::new(format!("socket {}:{}: {e}", self.host, self.port)))?;
        Ok(Box::new(SocketReader {
            address: format!("{}:{}", self.host, self.port),
            stream,
            pending: Vec::new(),
            start: 0,
            scanned: 0,
            max_line_bytes: self.max_line_bytes,
            line: 1,
        }))
    }
}

/// Reads lines in linear time: bytes are read into `pending` behind the lines not yet
/// taken, each byte is searched for a line break once (`scanned`), and taken lines are
/// dropped from the front only when they are half the buffer.
struct SocketReader {
    address: String,
    stream: TcpStream,
    pending: Vec<u8>,
    /// Where the next line starts in `pending`.
    start: usize,
    /// How far `pending` has been searched for a line break.
    scanned: usize,
    max_line_bytes: usize,
    line: u64,
}

/// The most bytes read from the socket at once.
const READ_CHUNK: usize = 256 * 1024;

impl SocketReader {
    /// Takes the line `pending[start..end]` (without its line break).
    fn take_line(&mut self, end: usize, out: &mut Vec<String>) -> Result<(), SourceError> {
        let mut bytes = &self.pending[self.start..end];
        if bytes.last() == Some(&b'\r') {
            bytes = &bytes[..bytes.len() - 1];
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            SourceError::new(format!(
                "{} line {}: the line is not valid UTF-8 ({e})",
                self.address, self.line
            ))
        })?;
        out.push(text.to_string());
        self.line += 1;
        Ok(())
    }

    /// The end of the next whole line in `pending`, searching only bytes not searched
    /// before.
    fn next_line_end(&mut self) -> Option<usize> {
        let from = self.scanned.max(self.start);
        match memchr::memchr(b'\n', &self.pending[from..]) {
            Some(at) => Some(from + at),
            None => {
                self.scanned = self.pending.len();
                None
            }
        }
    }

    /// Reads more bytes behind the pending ones; `Ok(0)` when the peer closed.
    fn read_more(&mut self) -> std::io::Result<usize> {
        if self.start > 0 && self.start * 2 >= self.pending.len() {
            self.pending.drain(..self.start);
            self.scanned -= self.start.min(self.scanned);
            self.start = 0;
        }
        let len = self.pending.len();
        self.pending.resize(len + READ_CHUNK, 0);
        let result = self.stream.read(&mut self.pending[len..]);
        let read = *result.as_ref().unwrap_or(&0);
        self.pending.truncate(len + read);
        result
    }
}

impl SourceReader<String> for SocketReader {
    fn poll(&mut self, out: &mut Vec<String>, max: usize) -> Result<SourcePoll, SourceError> {
        let mut produced = 0;
        loop {
            while produced < max {
                let Some(newline) = self.next_line_end() else {
                    break;
                };
                self.take_line(newline, out)?;
                self.start = newline + 1;
                produced += 1;
            }
            if produced >= max {
                return Ok(SourcePoll::Ready);
            }
            if self.pending.len() - self.start > self.max_line_bytes {
                return Err(SourceError::new(format!(
                    "{} line {}: the line is longer than {} bytes (the source's maximum line length; SocketTextSource::with_max_line_bytes raises it)",
                    self.address, self.line, self.max_line_bytes
                )));
            }
            match self.read_more() {
                Ok(0) => {
                    if self.start < self.pending.len() {
                        let len = self.pending.len();
                        self.take_line(len, out)?;
                        self.start = len;
                    }
                    return Ok(SourcePoll::Finished);
                }
                Ok(_) => {}
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted =>
                {
                    return Ok(if produced > 0 {
                        SourcePoll::Ready
                    } else {
                        SourcePoll::Pending(Duration::from_millis(5))
                    });
                }
                Err(e) => return Err(SourceError::new(format!("socket {}: {e}", self.address))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Instant;

    /// Serves `data` once on a local port, then closes.
    fn serve(data: Vec<u8>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut peer, _)) = listener.accept() {
                let _ = peer.write_all(&data);
            }
        });
        port
    }

    /// Every line the source reads, or its error.
    fn read_all(source: SocketTextSource) -> Result<Vec<String>, SourceError> {
        source.prepare()?;
        let mut reader = source.create_reader(0, 1)?;
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "the reader did not finish");
            match reader.poll(&mut out, 1024)? {
                SourcePoll::Finished => return Ok(out),
                SourcePoll::Pending(wait) => std::thread::sleep(wait),
                SourcePoll::Ready => {}
            }
        }
    }

    #[test]
    fn lines_short_long_and_unterminated_are_read_whole() {
        let long = "x".repeat(3 << 20);
        let text = format!("a\r\nb\n\n{long}\nlast");
        let port = serve(text.into_bytes());
        let lines = read_all(SocketTextSource::new("127.0.0.1", port)).unwrap();
        assert_eq!(lines.len(), 5);
        assert_eq!(&lines[..3], ["a", "b", ""]);
        assert_eq!(lines[3].len(), 3 << 20);
        assert_eq!(lines[4], "last");
    }

    #[test]
    fn many_lines_are_read_in_order() {
        let text: String = (0..200_000).map(|i| format!("{i}\n")).collect();
        let port = serve(text.into_bytes());
        let lines = read_all(SocketTextSource::new("127.0.0.1", port)).unwrap();
        assert_eq!(lines.len(), 200_000);
        assert!(lines.iter().enumerate().all(|(i, l)| *l == i.to_string()));
    }

    #[test]
    fn a_line_beyond_the_maximum_fails_naming_it() {
        let text = format!("ok\n{}\n", "y".repeat(1 << 20));
        let port = serve(text.into_bytes());
        let source = SocketTextSource::new("127.0.0.1", port).with_max_line_bytes(1000);
        let err = read_all(source)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("line 2") && err.contains("longer than 1000 bytes"),
            "{err}"
        );
    }
}
