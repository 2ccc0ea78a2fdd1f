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

/// Lines of text from a TCP socket; the job's input ends when the peer closes.
pub struct SocketTextSource {
    host: String,
    port: u16,
    connection: Mutex<Option<TcpStream>>,
}

impl SocketTextSource {
    /// A source reading from `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        SocketTextSource {
            host: host.into(),
            port,
            connection: Mutex::new(None),
        }
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
            buffer: vec![0u8; 64 * 1024],
            line: 1,
        }))
    }
}

struct SocketReader {
    address: String,
    stream: TcpStream,
    pending: Vec<u8>,
    buffer: Vec<u8>,
    line: u64,
}

impl SocketReader {
    fn take_line(&mut self, end: usize, out: &mut Vec<String>) -> Result<(), SourceError> {
        let mut bytes: Vec<u8> = self.pending.drain(..end).collect();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            SourceError::new(format!(
                "{} line {}: the line is not valid UTF-8 ({e})",
                self.address, self.line
            ))
        })?;
        self.line += 1;
        out.push(text);
        Ok(())
    }
}

impl SourceReader<String> for SocketReader {
    fn poll(&mut self, out: &mut Vec<String>, max: usize) -> Result<SourcePoll, SourceError> {
        let mut produced = 0;
        loop {
            while produced < max {
                let Some(newline) = memchr::memchr(b'\n', &self.pending) else {
                    break;
                };
                self.take_line(newline, out)?;
                self.pending.drain(..1);
                produced += 1;
            }
            if produced >= max {
                return Ok(SourcePoll::Ready);
            }
            match self.stream.read(&mut self.buffer) {
                Ok(0) => {
                    if !self.pending.is_empty() {
                        let len = self.pending.len();
                        self.take_line(len, out)?;
                    }
                    return Ok(SourcePoll::Finished);
                }
                Ok(n) => self.pending.extend_from_slice(&self.buffer[..n]),
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
