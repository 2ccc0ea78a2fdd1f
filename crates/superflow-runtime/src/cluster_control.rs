//! The control channel between process 0 of a job (the leader) and the other processes
//! (followers): one TCP connection per follower, set up beside timely's data connections
//! by `cluster.rs`, carrying JSON lines.
//!
//! Timely carries records and progress; what the processes must agree on besides is
//! said here: where each run starts from (the checkpoint to restore, the first id, the
//! run's id), which checkpoints are triggered, which parts each process wrote, when a
//! checkpoint completed or was abandoned, cancellation, and the final checkpoint of a
//! finished job. Process 0 decides all of it, as Flink's job manager does.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use superflow_core::OperatorFailure;

use crate::checkpoint::PartMetadata;

/// A message of the control channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ControlMessage {
    /// Leader to followers, before each run: the checkpoint it restores (an exact
    /// checkpoint or savepoint directory), the id its checkpoints start after, and an
    /// id of the run shared by every process (names of files a later run must tell
    /// apart).
    Start {
        /// The checkpoint to restore, if any.
        restore: Option<PathBuf>,
        /// Checkpoint ids of the run start after this one.
        base: u64,
        /// The run's id.
        run_id: u64,
    },
    /// Follower to leader: every worker of the process registered its operators.
    Ready,
    /// Leader to followers: checkpoint `id` is triggered; parts go to `dir` (a
    /// checkpoint's directory in each process's own storage root, which is the same
    /// shared directory unless the storage is an object store).
    Trigger {
        /// The checkpoint id.
        id: u64,
        /// Its directory.
        dir: PathBuf,
        /// Whether it is a savepoint.
        savepoint: bool,
        /// What the job does after it.
        after: crate::checkpoint::AfterSavepoint,
    },
    /// Follower to leader: every part of this process for checkpoint `id` is written.
    Parts {
        /// The checkpoint id.
        id: u64,
        /// The parts (subtasks without state write none).
        parts: Vec<PartMetadata>,
    },
    /// Follower to leader: a part of checkpoint `id` could not be written.
    PartFailed {
        /// The checkpoint id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// Leader to followers: checkpoint `id` is complete (transactional sinks commit).
    Completed {
        /// The checkpoint id.
        id: u64,
    },
    /// Leader to followers: checkpoint `id` failed or was abandoned.
    Aborted {
        /// The checkpoint id.
        id: u64,
    },
    /// Leader to followers: the job is cancelled.
    Cancel,
    /// Follower to leader: its workers finished; whether it has transactions to commit.
    Finishing {
        /// Whether the process has end actions (pre-committed transactions).
        end_actions: bool,
    },
    /// Leader to followers: write the final state into checkpoint `id` in `dir`.
    FinalCheckpoint {
        /// The checkpoint id.
        id: u64,
        /// Its directory.
        dir: PathBuf,
    },
    /// Leader to followers: no process has anything to commit; no final checkpoint.
    NoFinalCheckpoint,
    /// Leader to followers: the job did not finish on every process; nothing of its end
    /// is committed.
    EndAbandoned {
        /// Why.
        reason: String,
    },
    /// Follower to leader: its end actions ran, with these errors.
    EndDone {
        /// What went wrong committing.
        errors: Vec<String>,
    },
    /// Follower to leader: its run ended without finishing (failed or cancelled), and
    /// the failure of its own operators, if that was the cause.
    Ended {
        /// The operator failure of this process.
        failure: Option<OperatorFailure>,
    },
    /// Not sent: the connection closed or failed (made by the reading side).
    Disconnected(String),
}

/// One end of a control connection.
pub struct ControlLink {
    writer: ControlWriter,
    reader: BufReader<TcpStream>,
}

impl std::fmt::Debug for ControlLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlLink")
            .field("peer", &self.writer.peer)
            .finish()
    }
}

impl ControlLink {
    /// Wraps a connected socket to process `peer`.
    pub fn new(peer: usize, socket: TcpStream) -> std::io::Result<Self> {
        let reader = BufReader::new(socket.try_clone()?);
        Ok(ControlLink {
            writer: ControlWriter {
                peer,
                writer: socket,
            },
            reader,
        })
    }

    /// The process at the other end.
    pub fn peer(&self) -> usize {
        self.writer.peer
    }

    /// Sends `message`; an error means the other process is gone.
    pub fn send(&mut self, message: &ControlMessage) -> Result<(), ControlError> {
        self.writer.send(message)
    }

    /// Waits at most `timeout` for the next message.
    pub fn receive(&mut self, timeout: Duration) -> ControlMessage {
        if let Err(e) = self.reader.get_ref().set_read_timeout(Some(timeout)) {
            return ControlMessage::Disconnected(e.to_string());
        }
        let message = read_message(&mut self.reader, self.writer.peer);
        let _ = self.reader.get_ref().set_read_timeout(None);
        message
    }

    /// Splits the link: a writer kept by the caller, and a thread that hands every
    /// message read to `deliver` until the connection closes (`Disconnected` last).
    /// Bytes an earlier `receive` buffered are read first.
    pub fn split(
        self,
        deliver: impl Fn(usize, ControlMessage) + Send + 'static,
    ) -> Result<ControlWriter, ControlError> {
        let ControlLink { writer, mut reader } = self;
        let peer = writer.peer;
        std::thread::Builder::new()
            .name(format!("superflow-control-{peer}"))
            .spawn(move || loop {
                let message = read_message(&mut reader, peer);
                let last = matches!(message, ControlMessage::Disconnected(_));
                deliver(peer, message);
                if last {
                    return;
                }
            })
            .map_err(ControlError::Reader)?;
        Ok(writer)
    }
}

fn read_message(reader: &mut BufReader<TcpStream>, peer: usize) -> ControlMessage {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => ControlMessage::Disconnected(format!("process {peer} closed the connection")),
        Ok(_) => serde_json::from_str(&line).unwrap_or_else(|e| {
            ControlMessage::Disconnected(format!(
                "process {peer} sent an unreadable control message: {e}"
            ))
        }),
        Err(e) => ControlMessage::Disconnected(format!("process {peer}: {e}")),
    }
}

/// The sending half of a control connection.
pub struct ControlWriter {
    /// The process at the other end.
    pub peer: usize,
    writer: TcpStream,
}

impl ControlWriter {
    /// Sends `message`; an error means the other process is gone.
    pub fn send(&mut self, message: &ControlMessage) -> Result<(), ControlError> {
        let mut line = serde_json::to_vec(message).map_err(ControlError::Encode)?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|source| ControlError::Unreachable {
                peer: self.peer,
                source,
            })
    }

    /// Closes the connection (the reader thread at each end ends).
    pub fn close(&self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }
}

/// Why a control message could not go to another process.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The message could not be encoded.
    #[error("a control message cannot be encoded: {0}")]
    Encode(serde_json::Error),
    /// The connection failed: the other process is gone.
    #[error("cannot reach process {peer}: {source}")]
    Unreachable {
        /// The other process.
        peer: usize,
        /// What the connection said.
        source: std::io::Error,
    },
    /// The thread reading the connection could not be started.
    #[error("cannot start the control reader: {0}")]
    Reader(std::io::Error),
}

/// This process's place in the job's control channel.
#[derive(Debug, Default)]
pub enum ControlRole {
    /// One process: nothing to agree on.
    #[default]
    Alone,
    /// Process 0, linked to every other process.
    Leader(Vec<ControlLink>),
    /// Another process, linked to process 0.
    Follower(ControlLink),
}

impl ControlRole {
    /// Whether this process decides for the job (process 0, or the only one).
    pub fn decides(&self) -> bool {
        !matches!(self, ControlRole::Follower(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (ControlLink, ControlLink) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        (
            ControlLink::new(1, a).unwrap(),
            ControlLink::new(0, b).unwrap(),
        )
    }

    #[test]
    fn messages_cross_and_a_closed_link_reads_as_disconnected() {
        let (mut leader, mut follower) = pair();
        let start = ControlMessage::Start {
            restore: Some(PathBuf::from("/tmp/chk-3")),
            base: 3,
            run_id: 42,
        };
        leader.send(&start).unwrap();
        leader.send(&ControlMessage::Cancel).unwrap();
        assert_eq!(follower.receive(Duration::from_secs(5)), start);
        // The handshake buffered the next line; the reader thread must still see it.
        let (sender, received) = std::sync::mpsc::channel();
        let writer = follower
            .split(move |peer, m| {
                let _ = sender.send((peer, m));
            })
            .unwrap();
        assert_eq!(
            received.recv_timeout(Duration::from_secs(5)).unwrap(),
            (0, ControlMessage::Cancel)
        );
        drop(leader);
        assert!(matches!(
            received.recv_timeout(Duration::from_secs(5)).unwrap(),
            (0, ControlMessage::Disconnected(_))
        ));
        writer.close();
    }

    #[test]
    fn a_silent_peer_times_out_as_disconnected() {
        let (_leader, mut follower) = pair();
        assert!(matches!(
            follower.receive(Duration::from_millis(20)),
            ControlMessage::Disconnected(_)
        ));
    }
}
